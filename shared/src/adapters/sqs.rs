//! The delivery queue in AWS: an SQS FIFO queue, each channel's records in its
//! [`message_group`](crate::queue::message_group) (docs/adr/0002-delivery-queue.md).

use crate::queue::{DeliveryQueue, Enqueue, QueueError};
use futures::future::BoxFuture;

/// The SQS FIFO queue of an installation.
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: String) -> Self {
        SqsQueue { client, url }
    }
}

impl DeliveryQueue for SqsQueue {
    fn send(&self, message: Enqueue) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            self.client
                .send_message()
                .queue_url(&self.url)
                .message_group_id(message.group)
                .message_deduplication_id(message.deduplication_id)
                .message_body(message.body)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    QueueError::Send(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
                })
        })
    }
}
