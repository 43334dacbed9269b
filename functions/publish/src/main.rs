use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let app: &'static sockhop::App = Box::leak(Box::new(sockhop::App::from_env().await?));
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        sockhop_publish::handle(app, event.payload)
    }))
    .await
}
