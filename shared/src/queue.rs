//! The delivery queue: every published message waits here, in order per
//! channel, for the deliver function (docs/adr/0002-delivery-queue.md). In AWS it
//! is an SQS FIFO queue whose message group is the channel
//! ([`SqsQueue`](crate::adapters::sqs::SqsQueue)); the local stage has an in-process queue with the
//! same semantics behind the same trait.

use futures::future::BoxFuture;
use sha2::{Digest, Sha256};

/// One message for the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueue {
    /// The channel's [`message_group`]: messages of one group are delivered
    /// one after another, in the order they were queued.
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

/// The message group of a channel's records, as SQS FIFO accepts it (at
/// most 128 characters, ASCII letters, digits and punctuation): the channel
/// name itself when it is such a string, otherwise `#` and the SHA-256 of the
/// name in hex (no channel name contains `#`, so the two forms never meet).
/// Channel names may be 256 characters of any Unicode; a group id must not.
pub fn message_group(channel: &str) -> String {
    let fits = !channel.is_empty()
        && channel.len() <= 128
        && channel
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b.is_ascii_punctuation());
    if fits {
        return channel.to_owned();
    }
    let digest = Sha256::digest(channel.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("#{hex}")
}

/// The message group of lane `lane` of a channel's fan-out (docs/adr/0004):
/// its [`message_group`] and `#<lane>`, or, when that would pass SQS's 128
/// characters, the digest form's. No channel name contains `#`, so a lane's
/// group is never a channel's.
pub fn lane_group(channel: &str, lane: u32) -> String {
    let group = message_group(channel);
    let suffix = format!("#{lane}");
    if group.len() + suffix.len() <= 128 {
        return group + &suffix;
    }
    let digest = Sha256::digest(channel.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("#{hex}{suffix}")
}

/// The message group of a connection's greeting (docs/adr/0005): its own, so
/// greetings never wait for each other or for a channel. `#greet#` and the
/// connection id when that fits SQS's 128 characters, else its digest (no
/// channel group starts with `#greet#`: a digest group is `#` and hex).
pub fn greeting_group(connection_id: &str) -> String {
    let fits = connection_id.len() <= 120
        && connection_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b.is_ascii_punctuation());
    if fits {
        return format!("#greet#{connection_id}");
    }
    let digest = Sha256::digest(connection_id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("#greet#{hex}")
}

/// A deduplication id as SQS accepts it (at most 128 printable ASCII
/// characters): a publisher's own id is hashed, so any string works.
pub fn deduplication_id(publisher_id: &str) -> String {
    let digest = Sha256::digest(publisher_id.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
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
    fn message_groups_fit_sqs_whatever_the_channel_is_named() {
        let sqs_accepts = |g: &str| {
            (1..=128).contains(&g.len())
                && g.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b.is_ascii_punctuation())
        };
        // Names SQS takes as they are stay themselves (readable in the console).
        for channel in ["chat", "presence.room-1", "a:b/c_d!", &"x".repeat(128)] {
            assert_eq!(message_group(channel), channel);
        }
        // The rest get one stable id each, distinct from any channel name.
        let long = "x".repeat(129);
        let four_bytes = "🙂".repeat(256);
        for channel in [
            "чат",
            "chat-🙂",
            long.as_str(),
            four_bytes.as_str(),
            "tab\tname",
        ] {
            let group = message_group(channel);
            assert!(sqs_accepts(&group), "{channel:?} -> {group:?}");
            assert!(group.starts_with('#') && group.len() == 65);
            assert_eq!(group, message_group(channel), "stable");
        }
        assert_ne!(message_group("чат"), message_group("чат2"));
    }

    #[test]
    fn lane_groups_fit_sqs_and_never_meet_a_channels_group() {
        assert_eq!(lane_group("chat", 7), "chat#7");
        let long = "x".repeat(128);
        for channel in ["chat", long.as_str(), "чат"] {
            for lane in [0, 31] {
                let group = lane_group(channel, lane);
                assert!(
                    group.len() <= 128 && group.ends_with(&format!("#{lane}")),
                    "{group}"
                );
                assert_ne!(group, message_group(channel));
            }
        }
        assert_ne!(lane_group(&long, 1), lane_group(&long, 2));
    }

    #[test]
    fn greeting_groups_are_the_connections_own() {
        assert_eq!(
            greeting_group("L0SM9cOFvHcCIhw="),
            "#greet#L0SM9cOFvHcCIhw="
        );
        let long = "x".repeat(200);
        let group = greeting_group(&long);
        assert!(
            group.starts_with("#greet#") && group.len() <= 128,
            "{group}"
        );
        assert_ne!(greeting_group("a"), greeting_group("b"));
        // No channel's group (a name, or `#` and hex) starts so.
        assert!(!message_group("чат").starts_with("#greet#"));
    }

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
