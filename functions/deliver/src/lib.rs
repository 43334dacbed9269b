//! The delivery queue's consumer: each published message, in queue order per
//! channel, gets its id, is written when stored and goes out to the channel's
//! subscribers. Failed messages are reported back (`ReportBatchItemFailures`)
//! with the rest of their channel, so the FIFO queue hands them out again in
//! order (docs/adr/0002-delivery-queue.md).

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use sockhop::clock::Timestamp;
use sockhop::driver;
use sockhop::lambda::Failure;
use sockhop::App;

pub async fn handle(app: &App, event: SqsEvent) -> Result<SqsBatchResponse, Failure> {
    Ok(driver::queue_batch(app, Timestamp::now(), event).await)
}
