//! `connection/listMessages`: stored history, within what the subscription may see.

use super::deliver::message_frame;
use super::reactions::reactions_json;
use super::{internal, require_subscription, Connection};
use crate::app::App;
use crate::error::{ErrorCode, ProtocolError};
use crate::store::MessageQuery;
use serde::Deserialize;
use serde_json::{json, Value};
use ulid::Ulid;

pub const PAGE_SIZE: usize = 100;
/// One page stays under 1 MB of message JSON.
pub const PAGE_BYTES: usize = 1_000_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMessagesRequest {
    pub channel: String,
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub before: Option<String>,
    #[serde(default)]
    pub reverse: bool,
    #[serde(default)]
    pub expand_reactions: bool,
}

/// The smallest id visible to a subscription (pure): from `historyStart` when
/// the token grants it (0 = everything), else from the moment it subscribed.
pub fn window_start(history_start: Option<i64>, subscribed_at_ms: i64) -> String {
    let from_ms = match history_start {
        Some(seconds) => seconds.saturating_mul(1000).min(subscribed_at_ms),
        None => subscribed_at_ms,
    };
    Ulid::from_parts(from_ms.max(0) as u64, 0).to_string()
}

fn cursor(
    value: &Option<String>,
    name: &str,
    channel: &str,
) -> Result<Option<String>, ProtocolError> {
    match value {
        None => Ok(None),
        Some(v) => Ulid::from_string(v)
            .map(|u| Some(u.to_string()))
            .map_err(|_| {
                ProtocolError::new(
                    ErrorCode::InvalidRequest,
                    format!("{name} must be a message id"),
                )
                .with_channel(channel)
            }),
    }
}

pub async fn list_messages(
    app: &App,
    connection: &Connection,
    request: &ListMessagesRequest,
) -> Result<Value, ProtocolError> {
    let requested = request.channel.as_str();
    let after = cursor(&request.after, "after", requested)?;
    let before = cursor(&request.before, "before", requested)?;
    let subscription = require_subscription(app, connection, requested).await?;
    let channel = subscription.channel.as_str();
    let permissions = subscription.permissions().map_err(internal)?;
    let query = MessageQuery {
        channel,
        window_start: window_start(permissions.history_start(), subscription.subscribed_at_ms),
        after: after.as_deref(),
        before: before.as_deref(),
        newest_first: request.reverse,
        limit: PAGE_SIZE,
        max_bytes: PAGE_BYTES,
    };
    let page = app
        .store
        .list_messages(&query, app.now())
        .await
        .map_err(internal)?;
    let expanded: Vec<Option<Vec<crate::store::ReactionItem>>> = if request.expand_reactions {
        let reads = page.messages.iter().map(|m| async move {
            if m.reactions.is_empty() {
                return Ok(Some(Vec::new()));
            }
            app.store
                .message_reactions(channel, m.id(), app.now())
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
            let mut value =
                serde_json::to_value(message_frame(m, requested)).unwrap_or(Value::Null);
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
        let zero = window_start(Some(0), sub);
        assert_eq!(Ulid::from_string(&zero).expect("ulid").timestamp_ms(), 0);
        let earlier = window_start(Some(1_600_000_000), sub);
        assert_eq!(
            Ulid::from_string(&earlier).expect("ulid").timestamp_ms(),
            1_600_000_000_000
        );
        // A historyStart after the subscription shows no less than the subscription would.
        let later = window_start(Some(1_800_000_000), sub);
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

    #[test]
    fn cursors_must_be_ulids() {
        assert!(cursor(&Some("nope".into()), "after", "c").is_err());
        assert_eq!(cursor(&None, "after", "c").expect("none"), None);
        let id = Ulid::from_parts(1, 2).to_string();
        assert_eq!(
            cursor(&Some(id.to_lowercase()), "after", "c").expect("ok"),
            Some(id)
        );
    }
}
