#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::run(sockhop_http::lambda_router(sockhop::lambda::app().await?)).await
}
