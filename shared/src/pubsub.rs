//! Backend (pub/sub) events (docs/protocol.md, "Pub/sub events"): what happens
//! inside Sockhop, in Hotsock's event format, for the application's backend.
//! Operations return them as [`crate::effects::Effect::Emit`]; the driver hands
//! them to the app's [`EventSink`] after the frames: EventBridge and/or SNS in
//! AWS ([`event_sinks`](crate::adapters::event_sinks), sending in [`batch`]es), the local stage's
//! live stream and webhook locally. This module is pure apart from the trait.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sockhop_core::protocol::{Member, Meta};
use std::collections::BTreeMap;

pub mod batch;

/// `source` of every event.
pub const SOURCE: &str = "hotsock.v1";
/// `metadata.hotsockVersion`: the version of the installation (Sockhop's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One event, as the backend receives it (EventBridge `detail`, SNS `Message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PubSubEvent {
    pub source: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// String keys and string values; always `hotsockVersion`.
    pub metadata: BTreeMap<String, String>,
    pub data: Value,
    #[serde(rename = "dataType")]
    pub data_type: String,
}

/// Who started what an event reports (message, storage and reaction events'
/// metadata).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Origin {
    /// `client.websocket`, `client.http`, `server.lambda` or `server.http`.
    pub trigger: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

pub const TRIGGER_CLIENT_WEBSOCKET: &str = "client.websocket";
pub const TRIGGER_CLIENT_HTTP: &str = "client.http";
pub const TRIGGER_SERVER_LAMBDA: &str = "server.lambda";
pub const TRIGGER_SERVER_HTTP: &str = "server.http";

impl Origin {
    pub fn new(trigger: &str, request_id: Option<String>) -> Self {
        Origin {
            trigger: trigger.to_owned(),
            request_id,
            ..Origin::default()
        }
    }

    /// The same origin, acting as a connection: its id, and its address and
    /// user agent unless the request brought its own (HTTP).
    pub fn as_connection(
        &self,
        connection_id: &str,
        source_ip: Option<&str>,
        user_agent: Option<&str>,
    ) -> Origin {
        Origin {
            connection_id: Some(connection_id.to_owned()),
            source_ip: self.source_ip.clone().or(source_ip.map(str::to_owned)),
            user_agent: self.user_agent.clone().or(user_agent.map(str::to_owned)),
            ..self.clone()
        }
    }

    fn put(&self, metadata: &mut BTreeMap<String, String>, with_request_id: bool) {
        metadata.insert("trigger".into(), self.trigger.clone());
        let optional = [
            ("connectionId", &self.connection_id),
            ("sourceIp", &self.source_ip),
            ("userAgent", &self.user_agent),
        ];
        for (name, value) in optional {
            if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
                metadata.insert(name.into(), value.clone());
            }
        }
        if with_request_id {
            if let Some(id) = &self.request_id {
                metadata.insert("requestId".into(), id.clone());
            }
        }
    }
}

/// RFC 3339 in UTC, to the millisecond (`connectedAt`, `expiresAt`, ...).
pub fn rfc3339_millis(ms: i64) -> Value {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| Value::String(format!("{t:.3}")))
        .unwrap_or(Value::Null)
}

/// RFC 3339 of Unix seconds, or `null`.
pub fn rfc3339_secs(secs: Option<i64>) -> Value {
    match secs {
        Some(s) => jiff::Timestamp::from_second(s)
            .map(|t| Value::String(t.to_string()))
            .unwrap_or(Value::Null),
        None => Value::Null,
    }
}

fn metadata(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    m.insert("hotsockVersion".into(), VERSION.to_owned());
    m
}

fn event(
    kind: &str,
    metadata: BTreeMap<String, String>,
    data: Value,
    data_type: &str,
) -> PubSubEvent {
    PubSubEvent {
        source: SOURCE.to_owned(),
        kind: kind.to_owned(),
        metadata,
        data,
        data_type: data_type.to_owned(),
    }
}

/// What a connection event carries about the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionFacts<'a> {
    pub id: &'a str,
    pub connected_at_ms: i64,
    pub keep_alive: bool,
    pub source_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub uid: Option<&'a str>,
    pub umd: Option<Value>,
}

impl<'a> ConnectionFacts<'a> {
    /// What a connection item tells of the connection.
    pub fn of(item: &'a crate::store::ConnectionItem) -> Self {
        ConnectionFacts {
            id: &item.connection_id,
            connected_at_ms: item.connected_at_ms,
            keep_alive: item.keep_alive,
            source_ip: item.source_ip.as_deref(),
            user_agent: item.user_agent.as_deref(),
            uid: item.uid.as_deref(),
            umd: item.umd_value(),
        }
    }
}

/// `hotsock.connected`, `hotsock.disconnected` (with when) or
/// `hotsock.connectionUpdated`: dataType `connection`.
pub fn connection(
    kind: &str,
    c: &ConnectionFacts<'_>,
    disconnected_at_ms: Option<i64>,
) -> PubSubEvent {
    let data = json!({
        "id": c.id,
        "connectedAt": rfc3339_millis(c.connected_at_ms),
        "disconnectedAt": disconnected_at_ms.map_or(Value::Null, rfc3339_millis),
        "keepAlive": c.keep_alive,
        "sourceIp": c.source_ip,
        "uid": c.uid,
        "umd": c.umd.clone().unwrap_or(Value::Null),
        "userAgent": c.user_agent,
    });
    event(kind, metadata(&[]), data, "connection")
}

/// `hotsock.subscribed` / `hotsock.unsubscribed`: dataType `subscription`.
pub fn subscription(
    kind: &str,
    channel: &str,
    connection_id: &str,
    uid: Option<&str>,
    umd: Option<Value>,
) -> PubSubEvent {
    let data = json!({"channel": channel, "connectionId": connection_id, "uid": uid,
                      "umd": umd.unwrap_or(Value::Null)});
    event(
        kind,
        metadata(&[("channel", channel)]),
        data,
        "subscription",
    )
}

/// `hotsock.channelUpdated`: dataType `channel`.
pub fn channel_updated(channel: &str, subscriptions_count: i64) -> PubSubEvent {
    let data = json!({"name": channel, "subscriptionsCount": subscriptions_count});
    event(
        "hotsock.channelUpdated",
        metadata(&[("channel", channel)]),
        data,
        "channel",
    )
}

/// `hotsock.messagePublished`: dataType `message`; `meta` only for messages
/// of a client with a uid or umd.
pub fn message_published(
    channel: &str,
    event_name: &str,
    id: &str,
    data: Value,
    meta: Option<&Meta>,
    origin: &Origin,
) -> PubSubEvent {
    let mut body = Map::new();
    body.insert("channel".into(), json!(channel));
    body.insert("event".into(), json!(event_name));
    body.insert("id".into(), json!(id));
    body.insert("data".into(), data);
    if let Some(meta) = meta.filter(|m| m.uid.is_some() || m.umd.is_some()) {
        body.insert("meta".into(), json!({"uid": meta.uid, "umd": meta.umd}));
    }
    let mut md = metadata(&[("channel", channel), ("event", event_name)]);
    origin.put(&mut md, true);
    event(
        "hotsock.messagePublished",
        md,
        Value::Object(body),
        "message",
    )
}

/// A storage entry's change for `hotsock.channelStorageUpdated`.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageChange<'a> {
    pub channel: &'a str,
    pub key: &'a str,
    /// `null` when cleared or expired.
    pub data: Value,
    /// `null` when the key had no value.
    pub previous: Value,
    pub expired: bool,
    pub expires_at: Option<i64>,
    pub meta: &'a Meta,
}

/// `hotsock.channelStorageUpdated`: dataType `channelStorage`. `origin` is
/// `None` for a TTL expiry (nobody wrote).
pub fn storage_updated(change: &StorageChange<'_>, origin: Option<&Origin>) -> PubSubEvent {
    let data = json!({
        "channel": change.channel,
        "key": change.key,
        "data": change.data,
        "dataPrevious": change.previous,
        "expired": change.expired,
        "expiresAt": rfc3339_secs(change.expires_at),
        "meta": {"uid": change.meta.uid, "umd": change.meta.umd},
    });
    let mut md = metadata(&[("channel", change.channel), ("key", change.key)]);
    if let Some(origin) = origin {
        origin.put(&mut md, false);
    }
    event("hotsock.channelStorageUpdated", md, data, "channelStorage")
}

/// A reaction for `hotsock.messageReactionAdded` / `...Removed`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReactionFacts<'a> {
    pub channel: &'a str,
    pub message_id: &'a str,
    /// The reaction event's own id.
    pub id: &'a str,
    pub reaction: &'a str,
    pub uid: &'a str,
    pub umd: Option<Value>,
    pub created_at_ms: i64,
    pub expires_at: Option<i64>,
}

/// `hotsock.messageReactionAdded` / `hotsock.messageReactionRemoved`:
/// dataType `messageReaction`.
pub fn reaction(added: bool, r: &ReactionFacts<'_>, origin: &Origin) -> PubSubEvent {
    let kind = if added {
        "hotsock.messageReactionAdded"
    } else {
        "hotsock.messageReactionRemoved"
    };
    let data = json!({
        "channel": r.channel,
        "messageId": r.message_id,
        "id": r.id,
        "reaction": r.reaction,
        "uid": r.uid,
        "umd": r.umd.clone().unwrap_or(Value::Null),
        "createdAt": rfc3339_millis(r.created_at_ms),
        "expiresAt": rfc3339_secs(r.expires_at),
    });
    let mut md = metadata(&[("channel", r.channel), ("reaction", r.reaction)]);
    origin.put(&mut md, true);
    event(kind, md, data, "messageReaction")
}

/// `hotsock.memberAdded` / `memberUpdated` / `memberRemoved`: dataType
/// `channelMember`; `members` is the list after the change.
pub fn member(kind: &str, channel: &str, member: &Member, members: &[Member]) -> PubSubEvent {
    let data = json!({"uid": member.uid, "umd": member.umd, "members": members});
    event(
        kind,
        metadata(&[("channel", channel)]),
        data,
        "channelMember",
    )
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{failed} of {total} events were not accepted: {reason}")]
    Rejected {
        failed: usize,
        total: usize,
        reason: String,
    },
}

impl SinkError {
    /// How many events were lost.
    pub fn lost(&self) -> usize {
        match self {
            SinkError::Rejected { failed, .. } => *failed,
        }
    }
}

/// Where events go. A `publish` that returns `Err` has already retried what
/// was refused; what it reports was lost.
pub trait EventSink: Send + Sync {
    /// Whether anything listens: with nothing enabled, events are not even made
    /// where making them costs a read.
    fn enabled(&self) -> bool;
    fn publish(&self, events: Vec<PubSubEvent>) -> BoxFuture<'_, Result<(), SinkError>>;
}

/// Events are off (the template's default): nothing is sent, nobody pays.
pub struct NoEvents;

impl EventSink for NoEvents {
    fn enabled(&self) -> bool {
        false
    }

    fn publish(&self, _: Vec<PubSubEvent>) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Every configured sink gets every event (EventBridge and SNS both on).
pub struct FanOut(pub Vec<Box<dyn EventSink>>);

impl EventSink for FanOut {
    fn enabled(&self) -> bool {
        self.0.iter().any(|s| s.enabled())
    }

    fn publish(&self, events: Vec<PubSubEvent>) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let results =
                futures::future::join_all(self.0.iter().map(|s| s.publish(events.clone()))).await;
            // Every sink's losses count (and are told), not the first one's.
            let errors: Vec<SinkError> = results.into_iter().filter_map(Result::err).collect();
            if errors.is_empty() {
                return Ok(());
            }
            Err(SinkError::Rejected {
                failed: errors.iter().map(SinkError::lost).sum(),
                total: events.len() * self.0.len(),
                reason: errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_the_envelope_and_the_version() {
        let facts = ConnectionFacts {
            id: "c1",
            connected_at_ms: 1_717_170_465_231,
            keep_alive: true,
            source_ip: Some("12.34.56.78"),
            user_agent: None,
            uid: Some("jim"),
            umd: Some(json!({"n": 1})),
        };
        let connected = connection("hotsock.connected", &facts, None);
        let body = serde_json::to_value(&connected).expect("serializes");
        assert_eq!(
            body,
            json!({"source": "hotsock.v1", "type": "hotsock.connected",
                "metadata": {"hotsockVersion": VERSION}, "dataType": "connection",
                "data": {"id": "c1", "connectedAt": "2024-05-31T15:47:45.231Z",
                    "disconnectedAt": null, "keepAlive": true, "sourceIp": "12.34.56.78",
                    "uid": "jim", "umd": {"n": 1}, "userAgent": null}})
        );
        let gone = connection("hotsock.disconnected", &facts, Some(1_717_170_466_000));
        assert_eq!(gone.data["disconnectedAt"], "2024-05-31T15:47:46.000Z");
    }

    #[test]
    fn origins_fill_metadata_and_only_message_and_reaction_events_carry_request_ids() {
        let origin = Origin::new(TRIGGER_CLIENT_WEBSOCKET, Some("req-1".into())).as_connection(
            "c1",
            Some("1.2.3.4"),
            Some("UA"),
        );
        let published = message_published("chat", "m", "01J", json!(1), None, &origin);
        assert_eq!(
            serde_json::to_value(&published.metadata).expect("map"),
            json!({"channel": "chat", "event": "m", "hotsockVersion": VERSION,
                "trigger": "client.websocket", "connectionId": "c1", "requestId": "req-1",
                "sourceIp": "1.2.3.4", "userAgent": "UA"})
        );
        assert!(published.data.get("meta").is_none());
        let meta = Meta::new(Some("jim".into()), None);
        let change = StorageChange {
            channel: "doc",
            key: "title",
            data: json!("b"),
            previous: json!("a"),
            expired: false,
            expires_at: None,
            meta: &meta,
        };
        let stored = storage_updated(&change, Some(&origin));
        assert!(!stored.metadata.contains_key("requestId"));
        assert_eq!(stored.metadata["key"], "title");
        assert_eq!(stored.data["meta"], json!({"uid": "jim", "umd": null}));
        // An HTTP request's own address wins over the connection's.
        let http = Origin {
            source_ip: Some("9.9.9.9".into()),
            ..Origin::new(TRIGGER_CLIENT_HTTP, None)
        }
        .as_connection("c1", Some("1.2.3.4"), None);
        assert_eq!(http.source_ip.as_deref(), Some("9.9.9.9"));
    }
}
