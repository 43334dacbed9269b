#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let app: &'static sockhop::App = Box::leak(Box::new(sockhop::App::from_env().await?));
    lambda_http::run(sockhop_http::router(app)).await
}
