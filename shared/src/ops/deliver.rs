//! The channel's ordered path: what the delivery queue carries, putting it
//! there, and delivering a queued message to the channel's subscribers (run by
//! the deliver function in queue = id order per channel); and the audience
//! rule every fan-out shares.

use super::{internal, Ctx};
use crate::effects::Effects;
use crate::pubsub::Origin;
use crate::queue::{deduplication_id, Enqueue};
use crate::store::MessageItem;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sockhop_core::claims::STORE_FOREVER;
use sockhop_core::error::{ErrorCode, ProtocolError};
use sockhop_core::protocol::Meta;

/// A published message on its way to delivery, as the queue carries it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    /// Set when the publisher was told the id (`eagerIdGeneration`); otherwise
    /// the message's place in the queue gives it one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub channel: String,
    pub event: String,
    /// The publisher's JSON, carried and delivered as it is, never re-parsed.
    pub data: Box<RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// The publishing connection: it gets a copy only with `echo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    #[serde(default)]
    pub echo: bool,
    /// Seconds to keep: 0 not stored, -1 forever.
    #[serde(default)]
    pub store: i64,
    /// Set for a storage write of this key (`event` is
    /// `hotsock.channelStorageSet`): it travels the channel's ordered path too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Set for a membership change (a welcome, a presence change) rather than
    /// a message: `event` and `data` are unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<MembershipChange>,
    /// Set when delivering it raises a backend event (`emitPubSubEvent`):
    /// who published it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emit: Option<Origin>,
}

/// A change of who is on a channel, applied in the channel's order
/// (`ops::subscribe::apply_membership`): the joiner's welcome, then what the
/// presence members must be told.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipChange {
    /// The connection whose subscription is welcomed here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcome: Option<String>,
    /// When that subscription was made: a later one of the same connection
    /// (unsubscribed and subscribed again meanwhile) waits for its own welcome.
    #[serde(default)]
    pub subscribed_at_ms: i64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_subscribed: bool,
    /// A `hotsock.unsubscribed` to send here, after the subscription's welcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub farewell: Option<Farewell>,
}

/// The answer to an unsubscribe of a subscription welcomed in order: sent
/// from the same ordered path, so it can never arrive before the welcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Farewell {
    pub connection_id: String,
    /// The frame, as JSON text.
    pub frame: String,
    /// The subscription went before its welcome was applied (which then finds
    /// nothing to welcome): its `hotsock.subscribed`, with this meta, is sent
    /// first, so every subscribe is answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unwelcomed: Option<Meta>,
}

/// What a queued record asks of the deliver step.
pub enum Step<'a> {
    Message,
    StorageWrite { key: &'a str },
    Membership(&'a MembershipChange),
}

impl Queued {
    pub fn step(&self) -> Step<'_> {
        match (&self.membership, &self.key) {
            (Some(change), _) => Step::Membership(change),
            (None, Some(key)) => Step::StorageWrite { key },
            (None, None) => Step::Message,
        }
    }

    /// A membership change for `channel` (nothing to deliver itself).
    pub fn membership(channel: &str, change: MembershipChange) -> Self {
        Queued {
            id: None,
            channel: channel.to_owned(),
            event: String::new(),
            data: RawValue::NULL.to_owned(),
            meta: None,
            sender: None,
            echo: false,
            store: 0,
            key: None,
            membership: Some(change),
            emit: None,
        }
    }
}

/// Puts a record on the channel's ordered path. Returns once the queue has it
/// (a publisher may then be told it was accepted); `deduplication` is the
/// publisher's id, else `unique`.
pub async fn enqueue(
    cx: Ctx<'_>,
    queued: &Queued,
    deduplication: Option<&str>,
    unique: &str,
) -> Result<(), ProtocolError> {
    let body = serde_json::to_string(queued).map_err(|_| ProtocolError::internal())?;
    let message = Enqueue {
        deduplication_id: deduplication_id(deduplication.unwrap_or(unique)),
        group: crate::queue::message_group(&queued.channel),
        body,
    };
    cx.app.queue.send(message).await.map_err(|err| {
        tracing::error!(error = %err, "queueing failed");
        ProtocolError::new(ErrorCode::InternalError, "temporary failure, try again")
    })
}

/// Until when something kept `store` seconds from `now` lives (`None`:
/// forever, or not kept at all: 0).
pub fn kept_until(store: i64, now: i64) -> Option<i64> {
    match store {
        STORE_FOREVER | 0 => None,
        seconds => Some(now + seconds),
    }
}

/// The item a queued message becomes, with id `id`, delivered at `now` (pure).
pub fn message_item(queued: &Queued, id: String, now: i64) -> MessageItem {
    let ttl = kept_until(queued.store, now);
    MessageItem {
        id,
        channel: queued.channel.clone(),
        event: queued.event.clone(),
        data: queued.data.get().to_owned(),
        meta: queued
            .meta
            .as_ref()
            .and_then(|m| serde_json::to_string(m).ok()),
        stored: queued.store != 0,
        sender: queued.sender.clone(),
        echo: queued.echo,
        ttl,
        reactions: Default::default(),
    }
}

/// The wire frame of a message: `data` and `meta` are spliced in as the JSON
/// they were stored as. It names the real channel even for subscribers by
/// alias: clients map real names to their aliases from `meta.channelAlias` of
/// `hotsock.subscribed`, as hotsock-js does.
pub fn message_frame(message: &MessageItem) -> String {
    #[derive(Serialize)]
    struct Frame<'a> {
        id: &'a str,
        event: &'a str,
        channel: &'a str,
        /// `None` (unreadable, which a stored item never is) is sent as `null`.
        data: Option<&'a RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        meta: Option<&'a RawValue>,
    }
    let data = serde_json::from_str::<&RawValue>(&message.data).ok();
    let meta = message
        .meta
        .as_deref()
        .and_then(|m| serde_json::from_str::<&RawValue>(m).ok());
    serde_json::to_string(&Frame {
        id: message.id(),
        event: &message.event,
        channel: &message.channel,
        data,
        meta,
    })
    .unwrap_or_default()
}

/// Who receives a frame (pure): every subscriber but the sender, unless the
/// sender asked for echo.
pub fn recipients<'a>(
    subscribers: impl IntoIterator<Item = &'a str>,
    sender: Option<&str>,
    echo: bool,
) -> Vec<String> {
    subscribers
        .into_iter()
        .filter(|id| echo || sender != Some(*id))
        .map(str::to_owned)
        .collect()
}

/// The connection ids of the channel's current subscribers, read once for a
/// batch of its messages.
pub async fn subscribers(cx: Ctx<'_>, channel: &str) -> Result<Vec<String>, ProtocolError> {
    cx.app
        .store
        .channel_subscriber_ids(channel, cx.secs())
        .await
        .map_err(internal)
}

/// Delivers one queued message with id `id` to `subscriptions`: a stored
/// message is written first (once; a retry writes the same item again), an
/// unstored one is never written.
pub async fn deliver(
    cx: Ctx<'_>,
    subscribers: &[String],
    queued: &Queued,
    id: String,
) -> Result<Effects, ProtocolError> {
    let message = message_item(queued, id, cx.secs());
    if message.stored {
        cx.app.store.put_message(&message).await.map_err(internal)?;
    }
    let mut effects = Effects::new();
    effects.send_text(
        recipients(
            subscribers.iter().map(String::as_str),
            message.sender.as_deref(),
            message.echo,
        ),
        message_frame(&message),
    );
    if let Some(origin) = &queued.emit {
        let data = serde_json::from_str(queued.data.get()).unwrap_or(serde_json::Value::Null);
        effects.emit(crate::pubsub::message_published(
            &queued.channel,
            &queued.event,
            &message.id,
            data,
            queued.meta.as_ref(),
            origin,
        ));
    }
    Ok(effects)
}

/// A queue record that can never be delivered (its body is not a message).
pub fn unreadable(reason: impl std::fmt::Display) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::InternalError,
        format!("unreadable queued message: {reason}"),
    )
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

    #[test]
    fn store_seconds_become_ttl_and_stored_flag() {
        let queued = |store: i64| Queued {
            store,
            ..Queued::membership("chat", MembershipChange::default())
        };
        let now = 1_700_000_000;
        // Not stored: no item lives on, and it is not marked stored.
        let unstored = message_item(&queued(0), "01A".into(), now);
        assert_eq!((unstored.stored, unstored.ttl), (false, None));
        // Seconds: kept that long from delivery.
        let kept = message_item(&queued(3600), "01B".into(), now);
        assert_eq!((kept.stored, kept.ttl), (true, Some(now + 3600)));
        // -1: stored, forever (no ttl).
        let forever = message_item(&queued(-1), "01C".into(), now);
        assert_eq!((forever.stored, forever.ttl), (true, None));
        assert_eq!(kept_until(0, now), None);
        assert_eq!(kept_until(60, now), Some(now + 60));
    }

    #[test]
    fn sender_is_skipped_without_echo() {
        let subs = ["a", "b"];
        assert_eq!(recipients(subs, Some("a"), false), vec!["b".to_owned()]);
        assert_eq!(
            recipients(subs, Some("a"), true),
            vec!["a".to_owned(), "b".to_owned()]
        );
        assert_eq!(recipients(subs, None, false).len(), 2);
    }

    #[test]
    fn alias_subscribers_get_the_real_channel_name() {
        let frame = message_frame(&message(None, false));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&frame).expect("json"),
            json!({"id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "event": "msg", "channel": "chat",
                   "data": {"text": "hi"}, "meta": {"uid": "jim", "umd": null}})
        );
    }

    /// `data` reaches subscribers byte for byte: key order, number spelling
    /// and big integers as the publisher wrote them.
    #[test]
    fn data_is_spliced_not_reparsed() {
        let text = r#"{"z":1,"a":[1.50,18446744073709551616123],"m":"\u00e9"}"#;
        let queued: Queued = serde_json::from_str(&format!(
            r#"{{"channel":"chat","event":"msg","data":{text},"store":60}}"#
        ))
        .expect("queued");
        let item = message_item(&queued, "01ARZ3NDEKTSV4RRFFQ69G5FAV".into(), 1_000);
        assert_eq!((item.stored, item.ttl), (true, Some(1_060)));
        let frame = message_frame(&item);
        assert!(frame.contains(&format!(r#""data":{text}"#)), "{frame}");
        assert!(
            !frame.contains("meta"),
            "a server message has no meta: {frame}"
        );
        let unstored = Queued {
            store: 0,
            ..queued.clone()
        };
        assert!(!message_item(&unstored, "x".into(), 1_000).stored);
        let forever = Queued {
            store: -1,
            ..queued
        };
        assert_eq!(message_item(&forever, "x".into(), 1_000).ttl, None);
    }
}
