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
use sha2::{Digest, Sha256};
use sockhop_core::claims::STORE_FOREVER;
use sockhop_core::error::{ErrorCode, ProtocolError};
use sockhop_core::protocol::{events, Meta};

/// What the delivery queue carries: one record per kind, each travelling the
/// channel's ordered path. On the queue it is today's flat JSON body
/// (`QueuedBody`), so records queued before an upgrade are delivered after it.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "QueuedBody")]
pub enum Queued {
    /// A published message, delivered to the channel's subscribers.
    Message(QueuedMessage),
    /// A storage write (`hotsock.channelStorageSet`).
    StorageWrite(StorageWrite),
    /// A membership change (a welcome, a farewell, a presence change).
    Membership {
        channel: String,
        change: MembershipChange,
    },
    /// One lane's share of a big channel's message (docs/adr/0004), in its
    /// own FIFO group ([`crate::queue::lane_group`]).
    Lane(LaneDelivery),
    /// A new connection's greeting (`hotsock.connected`) and then its
    /// auto-subscriptions, queued by `$connect` in the connection's own
    /// group ([`crate::queue::greeting_group`]; docs/adr/0005).
    Greeting { connection_id: String },
}

/// A message's frame for one lane of its channel's recipients, as the
/// channel's step found them; delivered by its own invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaneDelivery {
    pub channel: String,
    pub lane: u32,
    pub message_id: String,
    /// The frame, as JSON text.
    pub frame: String,
    /// The lane's recipients.
    pub to: Vec<String>,
}

/// A lane record's body: `channel` and `lane` only, so a deliver step from
/// before lanes (which requires `event` and `data`) refuses it as unreadable
/// and the queue hands it to a newer one, rather than delivering it as a
/// message to the whole channel.
#[derive(Serialize)]
struct LaneBody<'a> {
    channel: &'a str,
    lane: &'a LaneDelivery,
}

/// A greeting's body: only `greet`, so a deliver step from before greetings
/// were queued refuses it (no `channel`, `event` or `data`).
#[derive(Serialize)]
struct GreetingBody<'a> {
    greet: &'a str,
}

impl Serialize for Queued {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Queued::Greeting { connection_id } => GreetingBody {
                greet: connection_id,
            }
            .serialize(serializer),
            Queued::Lane(lane) => LaneBody {
                channel: &lane.channel,
                lane,
            }
            .serialize(serializer),
            other => QueuedBody::from(other.clone()).serialize(serializer),
        }
    }
}

/// A published message on its way to delivery.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    /// Set when the publisher was told the id (`eagerIdGeneration`); otherwise
    /// the message's place in the queue gives it one.
    pub id: Option<String>,
    pub channel: String,
    pub event: String,
    /// The publisher's JSON, carried and delivered as it is, never re-parsed.
    pub data: Box<RawValue>,
    pub meta: Option<Meta>,
    /// The publishing connection: it gets a copy only with `echo`.
    pub sender: Option<String>,
    pub echo: bool,
    /// Seconds to keep: 0 not stored, -1 forever.
    pub store: i64,
    /// Set when delivering it raises a backend event (`emitPubSubEvent`):
    /// who published it.
    pub emit: Option<Origin>,
}

/// A write of one storage entry, applied in the channel's order
/// (`ops::storage::apply`). Its id is always its place in the queue.
#[derive(Debug, Clone)]
pub struct StorageWrite {
    pub channel: String,
    pub key: String,
    /// The value, as the writer sent it (`null` clears the entry).
    pub data: Box<RawValue>,
    pub meta: Option<Meta>,
    /// Seconds to keep: -1 forever.
    pub store: i64,
    /// Set when the write raises a backend event: who wrote it.
    pub emit: Option<Origin>,
}

impl Queued {
    /// The channel whose ordered path it travels.
    pub fn channel(&self) -> &str {
        match self {
            Queued::Message(message) => &message.channel,
            Queued::StorageWrite(write) => &write.channel,
            Queued::Membership { channel, .. } => channel,
            Queued::Lane(lane) => &lane.channel,
            Queued::Greeting { .. } => "",
        }
    }

    /// The id the publisher was told (eager messages only).
    pub fn preset_id(&self) -> Option<&str> {
        match self {
            Queued::Message(message) => message.id.as_deref(),
            Queued::StorageWrite(_)
            | Queued::Membership { .. }
            | Queued::Lane(_)
            | Queued::Greeting { .. } => None,
        }
    }
}

/// The queue body as it has always been written: one flat object whose
/// optional `key` and `membership` tell the kind. Only [`Queued`] converts to
/// and from it, so a body with both is never written (read, `membership`
/// wins, as it always did).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueuedBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    /// Absent only in a greeting (which has `greet`).
    #[serde(default)]
    channel: String,
    /// Absent only in a lane record (which has `lane`).
    #[serde(default)]
    event: String,
    #[serde(default = "null_data")]
    data: Box<RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    meta: Option<Meta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sender: Option<String>,
    #[serde(default)]
    echo: bool,
    #[serde(default)]
    store: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    membership: Option<MembershipChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    emit: Option<Origin>,
    #[serde(default, skip_serializing)]
    lane: Option<LaneDelivery>,
    #[serde(default, skip_serializing)]
    greet: Option<String>,
}

fn null_data() -> Box<RawValue> {
    RawValue::NULL.to_owned()
}

impl From<QueuedBody> for Queued {
    fn from(body: QueuedBody) -> Self {
        if let Some(lane) = body.lane {
            return Queued::Lane(lane);
        }
        if let Some(connection_id) = body.greet {
            return Queued::Greeting { connection_id };
        }
        // A write's `event`, `sender` and `echo` were always
        // `hotsock.channelStorageSet`, none and false; a membership change's
        // other fields were unused.
        match (body.membership, body.key) {
            (Some(change), _) => Queued::Membership {
                channel: body.channel,
                change,
            },
            (None, Some(key)) => Queued::StorageWrite(StorageWrite {
                channel: body.channel,
                key,
                data: body.data,
                meta: body.meta,
                store: body.store,
                emit: body.emit,
            }),
            (None, None) => Queued::Message(QueuedMessage {
                id: body.id,
                channel: body.channel,
                event: body.event,
                data: body.data,
                meta: body.meta,
                sender: body.sender,
                echo: body.echo,
                store: body.store,
                emit: body.emit,
            }),
        }
    }
}

impl From<Queued> for QueuedBody {
    fn from(queued: Queued) -> Self {
        // Every field an older deliver step requires is written, with the
        // values it was always given, so it can still read a newer body.
        match queued {
            Queued::Message(m) => QueuedBody {
                id: m.id,
                channel: m.channel,
                event: m.event,
                data: m.data,
                meta: m.meta,
                sender: m.sender,
                echo: m.echo,
                store: m.store,
                key: None,
                membership: None,
                emit: m.emit,
                lane: None,
                greet: None,
            },
            Queued::StorageWrite(w) => QueuedBody {
                id: None,
                channel: w.channel,
                event: events::CHANNEL_STORAGE_SET.to_owned(),
                data: w.data,
                meta: w.meta,
                sender: None,
                echo: false,
                store: w.store,
                key: Some(w.key),
                membership: None,
                emit: w.emit,
                lane: None,
                greet: None,
            },
            Queued::Membership { channel, change } => QueuedBody {
                id: None,
                channel,
                event: String::new(),
                data: RawValue::NULL.to_owned(),
                meta: None,
                sender: None,
                echo: false,
                store: 0,
                key: None,
                membership: Some(change),
                emit: None,
                lane: None,
                greet: None,
            },
            // Written as a `LaneBody` (see `Serialize for Queued`).
            Queued::Lane(lane) => QueuedBody {
                id: None,
                channel: lane.channel.clone(),
                event: String::new(),
                data: null_data(),
                meta: None,
                sender: None,
                echo: false,
                store: 0,
                key: None,
                membership: None,
                emit: None,
                lane: Some(lane),
                greet: None,
            },
            // Written as a `GreetingBody` (see `Serialize for Queued`).
            Queued::Greeting { connection_id } => QueuedBody {
                id: None,
                channel: String::new(),
                event: String::new(),
                data: null_data(),
                meta: None,
                sender: None,
                echo: false,
                store: 0,
                key: None,
                membership: None,
                emit: None,
                lane: None,
                greet: Some(connection_id),
            },
        }
    }
}

/// A change of who is on a channel, applied in the channel's order
/// (`ops::membership::apply`): the joiner's welcome, then what the
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
    /// What the welcomed subscription asked of the recovery log (docs/adr/0006).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<sockhop_core::protocol::Resume>,
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
    let group = match queued {
        Queued::Lane(lane) => crate::queue::lane_group(&lane.channel, lane.lane),
        Queued::Greeting { connection_id } => crate::queue::greeting_group(connection_id),
        other => crate::queue::message_group(other.channel()),
    };
    let message = Enqueue {
        deduplication_id: deduplication_id(deduplication.unwrap_or(unique)),
        group,
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
pub fn message_item(queued: &QueuedMessage, id: String, now: i64) -> MessageItem {
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

/// Lanes a big channel's recipients are split over (docs/adr/0004): fixed,
/// so a connection's lane never changes.
pub const LANES: u32 = 32;

/// The lane of a connection (pure): a digest of its id, so every message to
/// it after the channel's step travels one FIFO group.
pub fn lane_of(connection_id: &str) -> u32 {
    let digest = Sha256::digest(connection_id.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % LANES
}

/// The recipients of one message by lane (pure), each lane's in an order
/// shuffled by the message id, so nobody is always posted to last.
pub fn by_lane(recipients: Vec<String>, message_id: &str) -> Vec<(u32, Vec<String>)> {
    let mut lanes: std::collections::BTreeMap<u32, Vec<(u64, String)>> = Default::default();
    for id in recipients {
        let mut hash = Sha256::new();
        hash.update(message_id.as_bytes());
        hash.update(id.as_bytes());
        let digest = hash.finalize();
        let place = u64::from_be_bytes([
            digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
        ]);
        lanes.entry(lane_of(&id)).or_default().push((place, id));
    }
    lanes
        .into_iter()
        .map(|(lane, mut ids)| {
            ids.sort_unstable();
            (lane, ids.into_iter().map(|(_, id)| id).collect())
        })
        .collect()
}

/// Who a batch of the channel's messages goes to, read once for the batch:
/// its subscribers, whether the channel is fanned out in lanes, and where its
/// recovery log stands.
#[derive(Debug, Clone, Default)]
pub struct Audience {
    pub subscribers: Vec<String>,
    /// Once in lanes, a channel stays in lanes until a delivery finds it
    /// empty: an inline message could overtake lane records still queued.
    pub laned: bool,
    pub log: super::resume::LogState,
}

/// Reads the channel's [`Audience`] (one query, as the subscriber ids alone
/// were).
pub async fn audience(cx: Ctx<'_>, channel: &str) -> Result<Audience, ProtocolError> {
    let read = cx
        .app
        .store
        .channel_audience(channel, cx.secs())
        .await
        .map_err(internal)?;
    Ok(Audience {
        subscribers: read.subscribers,
        laned: read.laned,
        log: super::resume::LogState {
            recoverable: read.recoverable,
            recover_until: read.recover_until,
            last: None,
        },
    })
}

/// Delivers one queued message with id `id`, at `position` on the channel's
/// ordered path, to its audience: a stored message is written first (once; a
/// retry writes the same item again), an unstored one is never written, and
/// while the channel is resumable its frame is logged (docs/adr/0006). Up to the lane size the frames are posted
/// here; above it, or for a channel already in lanes, one record per lane is
/// queued (all of them, or the step fails and is retried; their
/// deduplication ids make a retry queue nothing twice).
pub async fn deliver(
    cx: Ctx<'_>,
    audience: &mut Audience,
    queued: &QueuedMessage,
    id: String,
    position: &str,
) -> Result<Effects, ProtocolError> {
    let message = message_item(queued, id, cx.secs());
    if message.stored {
        cx.app.store.put_message(&message).await.map_err(internal)?;
    }
    let frame = message_frame(&message);
    if audience.log.logging(cx.secs()) {
        let logged = super::resume::Logged {
            message_id: Some(&message.id),
            frame: Some(frame.clone()),
            unechoed_by: message.sender.as_deref().filter(|_| !message.echo),
            ..Default::default()
        };
        super::resume::log(cx, &queued.channel, &mut audience.log, position, logged).await?;
    }
    let to = recipients(
        audience.subscribers.iter().map(String::as_str),
        message.sender.as_deref(),
        message.echo,
    );
    let mut effects = Effects::new();
    if audience.laned && audience.subscribers.is_empty() {
        set_laned(cx, &queued.channel, false).await?;
        audience.laned = false;
    }
    if audience.laned || to.len() > cx.app.config.fan_out_lane_size {
        if !audience.laned {
            set_laned(cx, &queued.channel, true).await?;
            audience.laned = true;
        }
        let sends = by_lane(to, &message.id).into_iter().map(|(lane, to)| {
            let record = Queued::Lane(LaneDelivery {
                channel: queued.channel.clone(),
                lane,
                message_id: message.id.clone(),
                frame: frame.clone(),
                to,
            });
            let deduplication = format!("lane:{}#{lane}", message.id);
            async move { enqueue(cx, &record, Some(&deduplication), &deduplication).await }
        });
        futures::future::try_join_all(sends).await?;
    } else {
        effects.send_text(to, frame);
    }
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

async fn set_laned(cx: Ctx<'_>, channel: &str, laned: bool) -> Result<(), ProtocolError> {
    cx.app
        .store
        .set_fan_out_laned(channel, laned)
        .await
        .map_err(internal)
}

/// A run of one lane's records, in the channel's order: each message's frame
/// to its recipients, pipelined (a connection gets its next frame as soon as
/// it has the previous one, without waiting for the lane's slowest post).
pub fn deliver_lanes(lanes: &[&LaneDelivery]) -> Effects {
    let mut effects = Effects::new();
    effects.pipeline(
        lanes
            .iter()
            .map(|lane| (lane.to.clone(), lane.frame.clone()))
            .collect(),
    );
    effects
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

    fn queued_message(store: i64) -> QueuedMessage {
        QueuedMessage {
            id: None,
            channel: "chat".into(),
            event: "msg".into(),
            data: RawValue::NULL.to_owned(),
            meta: None,
            sender: None,
            echo: false,
            store,
            emit: None,
        }
    }

    #[test]
    fn store_seconds_become_ttl_and_stored_flag() {
        let queued = queued_message;
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
        let queued = match serde_json::from_str(&format!(
            r#"{{"channel":"chat","event":"msg","data":{text},"store":60}}"#
        ))
        .expect("queued")
        {
            Queued::Message(message) => message,
            other => panic!("a message: {other:?}"),
        };
        let item = message_item(&queued, "01ARZ3NDEKTSV4RRFFQ69G5FAV".into(), 1_000);
        assert_eq!((item.stored, item.ttl), (true, Some(1_060)));
        let frame = message_frame(&item);
        assert!(frame.contains(&format!(r#""data":{text}"#)), "{frame}");
        assert!(
            !frame.contains("meta"),
            "a server message has no meta: {frame}"
        );
        let unstored = QueuedMessage {
            store: 0,
            ..queued.clone()
        };
        assert!(!message_item(&unstored, "x".into(), 1_000).stored);
        let forever = QueuedMessage {
            store: -1,
            ..queued
        };
        assert_eq!(message_item(&forever, "x".into(), 1_000).ttl, None);
    }

    /// Queue bodies exactly as the flat `Queued` struct wrote them before the
    /// record was an enum (captured from that code): records queued before an
    /// upgrade are read after it, and written the same way.
    const MESSAGE_FULL: &str = r#"{"id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","channel":"chat","event":"msg","data":{"text":"hi"},"meta":{"uid":"jim","umd":{"a":1}},"sender":"conn-A","echo":true,"store":60,"emit":{"trigger":"client.websocket","connectionId":"conn-A","requestId":"req-1","sourceIp":"1.2.3.4","userAgent":"ua"}}"#;
    const MESSAGE_MIN: &str =
        r#"{"channel":"chat","event":"msg","data":{"text":"hi"},"echo":false,"store":0}"#;
    const STORAGE_FULL: &str = r#"{"channel":"chat","event":"hotsock.channelStorageSet","data":{"text":"hi"},"meta":{"uid":"jim","umd":{"a":1}},"echo":false,"store":-1,"key":"doc","emit":{"trigger":"client.websocket","connectionId":"conn-A","requestId":"req-1","sourceIp":"1.2.3.4","userAgent":"ua"}}"#;
    const STORAGE_MIN: &str = r#"{"channel":"chat","event":"hotsock.channelStorageSet","data":{"text":"hi"},"echo":false,"store":0,"key":"doc"}"#;
    const WELCOME: &str = r#"{"channel":"presence.room","event":"","data":null,"echo":false,"store":0,"membership":{"welcome":"conn-B","subscribedAtMs":1700000000123,"autoSubscribed":true}}"#;
    const FAREWELL: &str = r#"{"channel":"presence.room","event":"","data":null,"echo":false,"store":0,"membership":{"subscribedAtMs":0,"farewell":{"connectionId":"conn-B","frame":"{\"event\":\"hotsock.unsubscribed\"}","unwelcomed":{"uid":"jim","umd":null}}}}"#;
    const CHANGE: &str = r#"{"channel":"presence.room","event":"","data":null,"echo":false,"store":0,"membership":{"subscribedAtMs":0}}"#;

    fn decode(body: &str) -> Queued {
        serde_json::from_str(body).expect("a queue body")
    }

    fn origin() -> Origin {
        Origin::new(
            crate::pubsub::TRIGGER_CLIENT_WEBSOCKET,
            Some("req-1".into()),
        )
        .as_connection("conn-A", Some("1.2.3.4"), Some("ua"))
    }

    #[test]
    fn messages_decode_from_todays_bodies() {
        let Queued::Message(full) = decode(MESSAGE_FULL) else {
            panic!("a message");
        };
        assert_eq!(full.id.as_deref(), Some("01ARZ3NDEKTSV4RRFFQ69G5FAV"));
        assert_eq!(
            (full.channel.as_str(), full.event.as_str()),
            ("chat", "msg")
        );
        assert_eq!(full.data.get(), r#"{"text":"hi"}"#);
        assert_eq!(
            full.meta,
            Some(Meta::new(Some("jim".into()), Some(json!({"a": 1}))))
        );
        assert_eq!(full.sender.as_deref(), Some("conn-A"));
        assert_eq!((full.echo, full.store), (true, 60));
        assert_eq!(full.emit, Some(origin()));
        let Queued::Message(min) = decode(MESSAGE_MIN) else {
            panic!("a message");
        };
        assert_eq!(
            (min.id, min.meta, min.sender, min.echo, min.store, min.emit),
            (None, None, None, false, 0, None)
        );
    }

    #[test]
    fn storage_writes_decode_from_todays_bodies() {
        let Queued::StorageWrite(full) = decode(STORAGE_FULL) else {
            panic!("a storage write");
        };
        assert_eq!((full.channel.as_str(), full.key.as_str()), ("chat", "doc"));
        assert_eq!(full.data.get(), r#"{"text":"hi"}"#);
        assert_eq!(
            full.meta,
            Some(Meta::new(Some("jim".into()), Some(json!({"a": 1}))))
        );
        assert_eq!((full.store, full.emit), (-1, Some(origin())));
        let Queued::StorageWrite(min) = decode(STORAGE_MIN) else {
            panic!("a storage write");
        };
        assert_eq!((min.meta, min.store, min.emit), (None, 0, None));
    }

    #[test]
    fn membership_changes_decode_from_todays_bodies() {
        let Queued::Membership { channel, change } = decode(WELCOME) else {
            panic!("a membership change");
        };
        assert_eq!(channel, "presence.room");
        assert_eq!(
            change,
            MembershipChange {
                welcome: Some("conn-B".into()),
                subscribed_at_ms: 1_700_000_000_123,
                auto_subscribed: true,
                resume: None,
                farewell: None,
            }
        );
        // A resume travels with its welcome and reads back the same; one
        // queued before resumes named connections (a bare position) still reads.
        let since = sockhop_core::protocol::Since {
            position: "01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
            connections: vec!["conn-B".into()],
        };
        let resuming = Queued::Membership {
            channel: "feed".into(),
            change: MembershipChange {
                welcome: Some("conn-C".into()),
                resume: Some(sockhop_core::protocol::Resume::After(since.clone())),
                ..MembershipChange::default()
            },
        };
        let text = serde_json::to_string(&resuming).expect("body");
        assert!(
            text.contains(
                r#""resume":{"after":{"position":"01ARZ3NDEKTSV4RRFFQ69G5FAV","connections":["conn-B"]}}"#
            ),
            "{text}"
        );
        let Queued::Membership { change, .. } = decode(&text) else {
            panic!("a membership change");
        };
        assert_eq!(
            change.resume,
            Some(sockhop_core::protocol::Resume::After(since))
        );
        let older = text.replace(
            r#"{"position":"01ARZ3NDEKTSV4RRFFQ69G5FAV","connections":["conn-B"]}"#,
            r#""01ARZ3NDEKTSV4RRFFQ69G5FAV""#,
        );
        let Queued::Membership { change, .. } = decode(&older) else {
            panic!("a membership change");
        };
        assert_eq!(
            change.resume,
            Some(sockhop_core::protocol::Resume::After(
                sockhop_core::protocol::Since::position("01ARZ3NDEKTSV4RRFFQ69G5FAV")
            ))
        );
        let Queued::Membership { change, .. } = decode(FAREWELL) else {
            panic!("a membership change");
        };
        assert_eq!(
            change.farewell,
            Some(Farewell {
                connection_id: "conn-B".into(),
                frame: r#"{"event":"hotsock.unsubscribed"}"#.into(),
                unwelcomed: Some(Meta::new(Some("jim".into()), None)),
            })
        );
        let Queued::Membership { change, .. } = decode(CHANGE) else {
            panic!("a membership change");
        };
        assert_eq!(change, MembershipChange::default());
        // A body with both a key and a membership change was never written;
        // read, it is the membership change it always was.
        let both = CHANGE.replace(r#""store":0,"#, r#""store":0,"key":"doc","#);
        assert!(matches!(decode(&both), Queued::Membership { .. }));
    }

    /// Every kind encodes to exactly today's body, and decodes back to itself.
    #[test]
    fn every_kind_round_trips_in_todays_shape() {
        for body in [
            MESSAGE_FULL,
            MESSAGE_MIN,
            STORAGE_FULL,
            STORAGE_MIN,
            WELCOME,
            FAREWELL,
            CHANGE,
        ] {
            let encoded = serde_json::to_string(&decode(body)).expect("encode");
            assert_eq!(encoded, body);
            let again = serde_json::to_string(&decode(&encoded)).expect("encode");
            assert_eq!(again, body);
        }
        let built = Queued::Membership {
            channel: "presence.room".into(),
            change: MembershipChange::default(),
        };
        assert_eq!(serde_json::to_string(&built).expect("encode"), CHANGE);
        assert_eq!(decode(CHANGE).channel(), "presence.room");
        assert_eq!(
            decode(MESSAGE_FULL).preset_id(),
            Some("01ARZ3NDEKTSV4RRFFQ69G5FAV")
        );
        assert_eq!(decode(STORAGE_FULL).preset_id(), None);
    }

    /// What a deliver step from before lanes and queued greetings required
    /// of every body: `channel`, `event` and `data`.
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Before {
        channel: String,
        event: String,
        data: Box<RawValue>,
    }

    #[test]
    fn a_lane_record_round_trips_and_an_older_deliver_step_refuses_it() {
        let lane = LaneDelivery {
            channel: "chat".into(),
            lane: 7,
            message_id: "01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
            frame: r#"{"event":"msg"}"#.into(),
            to: vec!["a".into(), "b".into()],
        };
        let body = serde_json::to_string(&Queued::Lane(lane.clone())).expect("body");
        let value: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(value["channel"], "chat");
        assert!(
            value.get("event").is_none() && value.get("data").is_none(),
            "{body}"
        );
        match serde_json::from_str::<Queued>(&body).expect("read") {
            Queued::Lane(read) => assert_eq!(read, lane),
            other => panic!("read as {other:?}"),
        }
        assert!(serde_json::from_str::<Before>(&body).is_err());
    }

    #[test]
    fn a_lanes_run_is_one_pipeline_in_the_channels_order() {
        let record = |id: &str, to: &[&str]| LaneDelivery {
            channel: "chat".into(),
            lane: 3,
            message_id: id.into(),
            frame: format!("frame {id}"),
            to: to.iter().map(|t| t.to_string()).collect(),
        };
        let (a, b, c) = (
            record("1", &["x", "y"]),
            record("2", &["y"]),
            record("3", &["x", "y"]),
        );
        let effects = deliver_lanes(&[&a, &b, &c]);
        assert_eq!(effects.iter().count(), 1, "one pipeline for the run");
        assert_eq!(effects.frames_to("x"), ["frame 1", "frame 3"]);
        assert_eq!(effects.frames_to("y"), ["frame 1", "frame 2", "frame 3"]);
    }

    #[test]
    fn recipients_keep_their_lane_and_are_shuffled_per_message() {
        let ids: Vec<String> = (0..1000).map(|i| format!("c{i}")).collect();
        let first = by_lane(ids.clone(), "01A");
        let second = by_lane(ids.clone(), "01B");
        let lanes = |split: &[(u32, Vec<String>)]| -> Vec<(u32, Vec<String>)> {
            split
                .iter()
                .map(|(lane, to)| {
                    let mut to = to.clone();
                    to.sort();
                    (*lane, to)
                })
                .collect()
        };
        // The same lanes for every message, every recipient once.
        assert_eq!(lanes(&first), lanes(&second));
        assert_eq!(first.iter().map(|(_, to)| to.len()).sum::<usize>(), 1000);
        assert!(first.len() > 24 && first.iter().all(|(lane, _)| *lane < LANES));
        for (lane, to) in &first {
            assert!(to.iter().all(|id| lane_of(id) == *lane));
        }
        // Within a lane, another message posts in another order.
        assert!(first.iter().zip(&second).any(|((_, a), (_, b))| a != b));
    }

    #[test]
    fn a_greeting_round_trips_and_an_older_deliver_step_refuses_it() {
        let greeting = Queued::Greeting {
            connection_id: "abc=".into(),
        };
        let body = serde_json::to_string(&greeting).expect("body");
        assert_eq!(body, r#"{"greet":"abc="}"#);
        match serde_json::from_str::<Queued>(&body).expect("read") {
            Queued::Greeting { connection_id } => assert_eq!(connection_id, "abc="),
            other => panic!("read as {other:?}"),
        }
        assert!(serde_json::from_str::<Before>(&body).is_err());
    }
}
