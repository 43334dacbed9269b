//! The table's stream: greets new connections and cleans up connections whose
//! TTL expired (messages go through the delivery queue instead). Failed records are reported
//! back (`ReportBatchItemFailures`), so Lambda retries from the first one.

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use sockhop::clock::Timestamp;
use sockhop::driver;
use sockhop::lambda::Failure;
use sockhop::App;

pub async fn handle(app: &App, event: Event) -> Result<DynamoDbEventResponse, Failure> {
    Ok(driver::stream_batch(app, Timestamp::now(), event).await)
}
