#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    sockhop::lambda::run_with_request_id(sockhop_default::handle_invocation).await
}
