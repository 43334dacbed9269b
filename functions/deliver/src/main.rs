#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    sockhop::lambda::run(sockhop_deliver::handle).await
}
