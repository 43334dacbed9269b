//! The delivery queue: every published message waits here, in order per
//! channel, for the deliver function (docs/adr/0002-delivery-queue.md). In AWS it
//! is an SQS FIFO queue whose message group is the channel; the local stage has
//! an in-process queue with the same semantics behind the same trait.

use futures::future::BoxFuture;
use sha2::{Digest, Sha256};

/// One message for the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueue {
    /// The channel: messages of one group are delivered one after another, in
    /// the order they were queued.
    pub group: String,
    /// A second message with the same id within five minutes, in the same group,
    /// is accepted and dropped.
    pub deduplication_id: String,
    /// The JSON of [`crate::ops::deliver::Queued`].
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("no delivery queue is configured (DELIVERY_QUEUE_URL)")]
    NotConfigured,
    #[error("the delivery queue refused the message: {0}")]
    Send(String),
}

/// Where published messages go. A send that returns `Ok` is durably queued: the
/// publisher may be told it was accepted.
pub trait DeliveryQueue: Send + Sync {
    fn send(&self, message: Enqueue) -> BoxFuture<'_, Result<(), QueueError>>;
}

/// A deduplication id as SQS accepts it (at most 128 printable ASCII
/// characters): a publisher's own id is hashed, so any string works.
pub fn deduplication_id(publisher_id: &str) -> String {
    let digest = Sha256::digest(publisher_id.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

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

/// Stands in when no queue is configured: every publish is refused with a
/// clear error instead of being lost.
pub struct NoQueue;

impl DeliveryQueue for NoQueue {
    fn send(&self, _: Enqueue) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async { Err(QueueError::NotConfigured) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deduplication_ids_fit_sqs_whatever_the_publisher_sent() {
        for publisher in ["", "order-1", &"x".repeat(500), "ünïcødé 🙂"] {
            let id = deduplication_id(publisher);
            assert_eq!(id.len(), 64);
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_eq!(deduplication_id("a"), deduplication_id("a"));
        assert_ne!(deduplication_id("a"), deduplication_id("b"));
    }
}
