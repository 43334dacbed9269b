//! Delivery of a written message to the channel's subscribers, run by the
//! stream function in commit (= id) order per channel; and the audience rule
//! every fan-out shares.

use super::{internal, Ctx};
use crate::effects::Effects;
use crate::error::ProtocolError;
use crate::protocol::{Meta, ServerMessage};
use crate::store::{MessageItem, SubscriptionItem};

/// The wire frame of a stored or delivered message. It names the real channel
/// even for subscribers by alias: clients map real names to their aliases from
/// `meta.channelAlias` of `hotsock.subscribed`, as hotsock-js does.
pub fn message_frame(message: &MessageItem) -> ServerMessage {
    let data = serde_json::from_str(&message.data).unwrap_or(serde_json::Value::Null);
    let meta: Option<Meta> = message
        .meta
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok());
    ServerMessage::message(message.id(), &message.event, &message.channel, data, meta)
}

/// Who receives a frame (pure): every subscriber but the sender, unless the
/// sender asked for echo.
pub fn recipients(
    subscriptions: &[SubscriptionItem],
    sender: Option<&str>,
    echo: bool,
) -> Vec<String> {
    subscriptions
        .iter()
        .filter(|sub| echo || sender != Some(sub.connection_id.as_str()))
        .map(|sub| sub.connection_id.clone())
        .collect()
}

/// The frames that deliver `message` to the channel's current subscribers.
/// An unstored message is removed once its frames are decided (TTL removes it
/// anyway should that fail).
pub async fn deliver(cx: Ctx<'_>, message: &MessageItem) -> Result<Effects, ProtocolError> {
    let subscriptions = cx
        .app
        .store
        .channel_subscriptions(&message.channel, cx.secs())
        .await
        .map_err(internal)?;
    let mut effects = Effects::new();
    effects.send_to(
        recipients(&subscriptions, message.sender.as_deref(), message.echo),
        &message_frame(message),
    );
    if !message.stored {
        if let Err(err) = cx
            .app
            .store
            .delete_message(&message.channel, message.id())
            .await
        {
            tracing::warn!(error = %err, id = message.id(), "transient message left for TTL");
        }
    }
    Ok(effects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(sender: Option<&str>, echo: bool) -> MessageItem {
        MessageItem {
            id: "01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
            channel: "chat".into(),
            event: "msg".into(),
            data: r#"{"text":"hi"}"#.into(),
            meta: Some(r#"{"uid":"jim","umd":null}"#.into()),
            stored: true,
            sender: sender.map(str::to_owned),
            echo,
            ttl: None,
            reactions: Default::default(),
        }
    }

    fn sub(connection_id: &str, alias: Option<&str>) -> SubscriptionItem {
        SubscriptionItem {
            channel: "chat".into(),
            connection_id: connection_id.into(),
            uid: None,
            umd: None,
            permissions: "{}".into(),
            alias: alias.map(str::to_owned),
            subscribed_at_ms: 0,
            counted: true,
            ttl: 0,
        }
    }

    #[test]
    fn sender_is_skipped_without_echo() {
        let subs = [sub("a", None), sub("b", None)];
        assert_eq!(recipients(&subs, Some("a"), false), vec!["b".to_owned()]);
        assert_eq!(
            recipients(&subs, Some("a"), true),
            vec!["a".to_owned(), "b".to_owned()]
        );
        assert_eq!(recipients(&subs, None, false).len(), 2);
    }

    #[test]
    fn alias_subscribers_get_the_real_channel_name() {
        let subs = [sub("a", None), sub("b", Some("room"))];
        assert_eq!(
            recipients(&subs, None, false),
            vec!["a".to_owned(), "b".to_owned()]
        );
        let frame = message_frame(&message(None, false));
        assert_eq!(
            serde_json::to_value(&frame).expect("json"),
            json!({"id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "event": "msg", "channel": "chat",
                   "data": {"text": "hi"}, "meta": {"uid": "jim", "umd": null}})
        );
    }
}
