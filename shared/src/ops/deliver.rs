//! Delivery of a written message to the channel's subscribers, run by the
//! stream function in commit (= id) order per channel.

use super::{disconnect, internal};
use crate::app::App;
use crate::error::ProtocolError;
use crate::protocol::{Meta, ServerMessage};
use crate::store::{MessageItem, SubscriptionItem};
use std::collections::BTreeMap;

/// The wire frame of a stored or delivered message, under the channel name the
/// recipient knows (its alias, if it subscribed by one).
pub fn message_frame(message: &MessageItem, client_channel: &str) -> ServerMessage {
    let data = serde_json::from_str(&message.data).unwrap_or(serde_json::Value::Null);
    let meta: Option<Meta> = message
        .meta
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok());
    ServerMessage::message(message.id(), &message.event, client_channel, data, meta)
}

/// Who receives a frame, grouped by the channel name each knows it by (pure):
/// every subscriber but the sender, unless the sender asked for echo.
pub fn recipients<'a>(
    subscriptions: &'a [SubscriptionItem],
    sender: Option<&str>,
    echo: bool,
) -> BTreeMap<&'a str, Vec<String>> {
    let mut groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for sub in subscriptions {
        if sender == Some(sub.connection_id.as_str()) && !echo {
            continue;
        }
        let name = sub.alias.as_deref().unwrap_or(&sub.channel);
        groups
            .entry(name)
            .or_default()
            .push(sub.connection_id.clone());
    }
    groups
}

/// Sends one frame per channel name to `groups`, cleaning up sockets found gone.
pub async fn fan_out(
    app: &App,
    groups: BTreeMap<&str, Vec<String>>,
    frame_for: impl Fn(&str) -> ServerMessage,
) {
    for (name, connection_ids) in groups {
        let frame = frame_for(name).to_json();
        for gone in app.gateway.fan_out(&connection_ids, &frame).await {
            // Boxed: cleanup can announce presence leaves, which fan out again.
            Box::pin(disconnect::cleanup(app, &gone)).await;
        }
    }
}

pub async fn deliver(app: &App, message: &MessageItem) -> Result<(), ProtocolError> {
    let subscriptions = app
        .store
        .channel_subscriptions(&message.channel, app.now())
        .await
        .map_err(internal)?;
    let groups = recipients(&subscriptions, message.sender.as_deref(), message.echo);
    fan_out(app, groups, |name| message_frame(message, name)).await;
    if !message.stored {
        app.store
            .delete_message(&message.channel, message.id())
            .await
            .map_err(internal)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(sender: Option<&str>, echo: bool) -> MessageItem {
        MessageItem {
            pk: "MSG#chat".into(),
            sk: "01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
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
            pk: "CHAN#chat".into(),
            sk: format!("SUB#{connection_id}"),
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
        let r = recipients(&subs, Some("a"), false);
        assert_eq!(r.get("chat"), Some(&vec!["b".to_owned()]));
        let r = recipients(&subs, Some("a"), true);
        assert_eq!(r.get("chat"), Some(&vec!["a".to_owned(), "b".to_owned()]));
        let r = recipients(&subs, None, false);
        assert_eq!(r.get("chat").map(Vec::len), Some(2));
    }

    #[test]
    fn alias_subscribers_get_their_own_name() {
        let subs = [sub("a", None), sub("b", Some("room"))];
        let r = recipients(&subs, None, false);
        assert_eq!(r.get("room"), Some(&vec!["b".to_owned()]));
        assert_eq!(r.get("chat"), Some(&vec!["a".to_owned()]));
        let frame = message_frame(&message(None, false), "room");
        assert_eq!(
            serde_json::to_value(&frame).expect("json"),
            json!({"id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "event": "msg", "channel": "room",
                   "data": {"text": "hi"}, "meta": {"uid": "jim", "umd": null}})
        );
    }
}
