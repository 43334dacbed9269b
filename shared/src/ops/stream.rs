//! One change from the table's stream: clean up after
//! an expired connection, and tell the backend what changed (pub/sub events of
//! connections, subscriptions, counts and expired storage entries).

use super::Ctx;
use crate::effects::Effects;
use crate::pubsub::{self, ConnectionFacts, PubSubEvent};
use crate::store::{Change, ConnectionItem, StorageItem};
use sockhop_core::error::ProtocolError;

/// What one stream change requires. An error means the record must be
/// retried (the stream function reports it as a batch item failure).
pub async fn apply(cx: Ctx<'_>, change: &Change) -> Result<Effects, ProtocolError> {
    let mut effects = Effects::new();
    match change {
        // Greeted from the delivery queue, where `$connect` put its greeting
        // (docs/adr/0005); the item's arrival asks nothing more.
        Change::Connected { .. } => {}
        Change::ConnectionExpired {
            connection_id,
            item,
        } => {
            effects.cleanup(connection_id);
            // The gateway closed it at its expiry; DynamoDB removes it later.
            if let Some(item) = item {
                let at = (item.expires_at * 1000).min(cx.now.millis());
                effects.emit(disconnected(item, at));
            }
        }
        Change::Ignored => {}
        other => {
            if let Some(event) = told(other, cx.now.millis()) {
                effects.emit(event);
            }
        }
    }
    Ok(effects)
}

/// The backend event a change of the table is (pure); `now_ms` is when it was
/// seen, which for a removed connection is when it disconnected.
pub fn told(change: &Change, now_ms: i64) -> Option<PubSubEvent> {
    Some(match change {
        Change::Disconnected { item } => disconnected(item, now_ms),
        Change::ConnectionUpdated { item } => pubsub::connection(
            "hotsock.connectionUpdated",
            &ConnectionFacts::of(item),
            None,
        ),
        Change::Subscribed { item } | Change::Unsubscribed { item } => {
            let kind = match change {
                Change::Subscribed { .. } => "hotsock.subscribed",
                _ => "hotsock.unsubscribed",
            };
            pubsub::subscription(
                kind,
                &item.channel,
                &item.connection_id,
                item.uid.as_deref(),
                item.umd_value(),
            )
        }
        // Counts are clamped at 0 where they are read, so here too.
        Change::CountChanged { channel, count } => {
            pubsub::channel_updated(channel, (*count).max(0))
        }
        Change::StorageExpired { item } => expired(item),
        _ => return None,
    })
}

fn disconnected(item: &ConnectionItem, now_ms: i64) -> PubSubEvent {
    pubsub::connection(
        "hotsock.disconnected",
        &ConnectionFacts::of(item),
        Some(now_ms),
    )
}

/// A storage entry's TTL ran out: its value is gone, nobody wrote.
fn expired(item: &StorageItem) -> PubSubEvent {
    let previous = serde_json::from_str(&item.data).unwrap_or(serde_json::Value::Null);
    let meta = serde_json::from_str(&item.meta)
        .unwrap_or_else(|_| sockhop_core::protocol::Meta::new(None, None));
    let change = pubsub::StorageChange {
        channel: &item.channel,
        key: &item.key,
        data: serde_json::Value::Null,
        previous,
        expired: true,
        expires_at: item.ttl,
        meta: &meta,
    };
    pubsub::storage_updated(&change, None)
}
