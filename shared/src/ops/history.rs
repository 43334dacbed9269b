//! `connection/listMessages`: stored history, within what the subscription may see.

use super::deliver::message_frame;
use super::reactions::reactions_json;
use super::{internal, require_subscription, window_start, Connection, Ctx};
use crate::store::MessageQuery;
use serde_json::{json, Value};
use sockhop_core::error::ProtocolError;
use sockhop_core::protocol::ListMessages;

/// One page stays under 1 MB of message JSON.
pub const PAGE_BYTES: usize = 1_000_000;

/// `connection/listMessages`: one page of the channel's stored messages.
pub async fn list_messages(
    cx: Ctx<'_>,
    connection: &Connection,
    request: &ListMessages,
) -> Result<Value, ProtocolError> {
    let requested = request.channel.as_str();
    let subscription = require_subscription(cx, connection, requested).await?;
    let channel = subscription.channel.as_str();
    let permissions = subscription.permissions().map_err(internal)?;
    let query = MessageQuery {
        channel,
        window_start: window_start(permissions.history_start(), subscription.subscribed_at_ms),
        after: request.after.as_deref(),
        before: request.before.as_deref(),
        newest_first: request.reverse,
        limit: request.limit,
        max_bytes: PAGE_BYTES,
    };
    let page = cx
        .app
        .store
        .list_messages(&query, cx.secs())
        .await
        .map_err(internal)?;
    let expanded: Vec<Option<Vec<crate::store::ReactionItem>>> = if request.expand_reactions {
        let reads = page.messages.iter().map(|m| async move {
            if m.reactions.is_empty() {
                return Ok(Some(Vec::new()));
            }
            cx.app
                .store
                .message_reactions(channel, m.id(), cx.secs())
                .await
                .map(Some)
        });
        futures::future::try_join_all(reads)
            .await
            .map_err(internal)?
    } else {
        vec![None; page.messages.len()]
    };
    let messages: Vec<Value> = page
        .messages
        .iter()
        .zip(&expanded)
        .map(|(m, items)| {
            let mut value = serde_json::from_str(&message_frame(m)).unwrap_or(Value::Null);
            if request.expand_reactions || !m.reactions.is_empty() {
                value["reactions"] = reactions_json(m, items.as_deref());
            }
            value
        })
        .collect();
    Ok(json!({ "messages": messages }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ulid::Ulid;

    #[test]
    fn window_defaults_to_subscription_time() {
        let start = window_start(None, 1_700_000_000_123);
        assert_eq!(
            Ulid::from_string(&start).expect("ulid").timestamp_ms(),
            1_700_000_000_123
        );
        assert_eq!(Ulid::from_string(&start).expect("ulid").random(), 0);
    }

    #[test]
    fn history_start_opens_the_window_earlier_but_not_later() {
        let sub = 1_700_000_000_000;
        let zero = window_start(Some(0.0), sub);
        assert_eq!(Ulid::from_string(&zero).expect("ulid").timestamp_ms(), 0);
        let earlier = window_start(Some(1_600_000_000.0), sub);
        assert_eq!(
            Ulid::from_string(&earlier).expect("ulid").timestamp_ms(),
            1_600_000_000_000
        );
        // A historyStart after the subscription shows no less than the subscription would.
        let later = window_start(Some(1_800_000_000.0), sub);
        assert_eq!(
            Ulid::from_string(&later).expect("ulid").timestamp_ms(),
            sub as u64
        );
    }

    #[test]
    fn every_id_of_the_window_sorts_at_or_after_its_start() {
        let start = window_start(None, 5_000);
        assert!(Ulid::from_parts(5_000, 0).to_string() >= start);
        assert!(Ulid::from_parts(5_000, 1).to_string() > start);
        assert!(Ulid::from_parts(4_999, u128::MAX >> 48).to_string() < start);
    }
}
