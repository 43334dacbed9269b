//! The store port: what the operations need from the table, as records and
//! one trait. The DynamoDB adapter ([`DynamoStore`](crate::adapters::dynamodb::DynamoStore))
//! is the production implementation and the only code that knows keys,
//! indexes and conditions; [`memory::MemoryStore`] keeps the same rules in a
//! map for deterministic unit tests of the ordered path. Every read drops
//! items whose `ttl` has passed (`now` is passed in: time is the caller's).

pub mod memory;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("dynamodb {operation} failed: {message}")]
    Dynamo {
        operation: &'static str,
        message: String,
    },
    #[error("stored item could not be read: {0}")]
    Corrupt(String),
    #[error("{0}: too many writers at once, gave up retrying")]
    Contention(&'static str),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionItem {
    pub connection_id: String,
    /// Random input to the connection secret's derivation (never the secret).
    pub secret_nonce: String,
    /// SHA-256 of the connection secret, hex.
    pub secret_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// JSON text of the user metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umd: Option<String>,
    /// JSON text of the connect token's verified payload, re-read for permissions.
    pub claims: String,
    pub connected_at_ms: i64,
    /// Unix seconds at which the gateway closes the connection.
    pub expires_at: i64,
    pub keep_alive: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_timeout: Option<u32>,
    /// Unix seconds of the last heartbeat (or connect).
    pub last_seen: i64,
    /// The client's address and `User-Agent` at connect (backend events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Unix seconds at which the sweeper next looks at this connection
    /// (`ops::sweep::next_sweep`); the store files it under the sweep index.
    #[serde(default)]
    pub sweep_at: i64,
    pub ttl: i64,
}

impl ConnectionItem {
    pub fn umd_value(&self) -> Option<serde_json::Value> {
        self.umd
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
    }
}

/// What the sweep index holds that is due.
#[derive(Debug, Default)]
pub struct DueForSweep {
    /// Connections needing a keepAlive, a close, or a look at their deadlines.
    pub connections: Vec<ConnectionItem>,
    /// Presence changes whose removal could not queue them.
    pub owed: Vec<OwedChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionItem {
    pub channel: String,
    pub connection_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// JSON text of the subscription's user metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umd: Option<String>,
    /// JSON text of [`sockhop_core::claims::ChannelPermissions`].
    pub permissions: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    pub subscribed_at_ms: i64,
    /// When `umd` was last set (at subscribe or by an update): a uid with
    /// several subscriptions is listed with its latest umd.
    #[serde(default)]
    pub umd_at_ms: i64,
    /// Waiting for its welcome (`hotsock.subscribed`, storage catch-up) at its
    /// place in the channel's order; until then it is neither a presence
    /// member nor a storage observer (docs/architecture.md, "Ordered welcomes").
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    /// It asked to resume (`data.resume`, granted by `recover`): the channel's
    /// messages are logged while it is there and for the recovery window after
    /// (docs/adr/0006), and until its welcome it gets nothing live (what came
    /// before the welcome is its replay).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recoverable: bool,
    /// Whether this subscription adds to `subscriptionsCount`.
    pub counted: bool,
    pub ttl: i64,
}

impl SubscriptionItem {
    pub fn umd_value(&self) -> Option<serde_json::Value> {
        self.umd
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
    }

    pub fn permissions(&self) -> Result<sockhop_core::claims::ChannelPermissions, StoreError> {
        serde_json::from_str(&self.permissions).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeOutcome {
    Subscribed,
    AlreadySubscribed,
    /// The connection item is gone: it disconnected while subscribing.
    ConnectionGone,
}

/// How long an owed change is kept for the sweeper to retry: long past any
/// outage worth waiting out.
const OWED_CHANGE_LIFETIME_SECONDS: i64 = 24 * 3600;

/// A presence change that a subscription's removal owes the channel's
/// members. It is written in the removal's own transaction and settled once
/// the change is queued. If queueing fails (or the process dies first), the
/// sweeper finds it through the sweep index at `sweep_at` and queues it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwedChange {
    pub channel: String,
    pub connection_id: String,
    /// The removed subscription's, which tells this owed change from one a
    /// later subscription of the same connection may owe.
    pub subscribed_at_ms: i64,
    pub sweep_at: i64,
    pub ttl: i64,
}

impl OwedChange {
    /// What removing `subscription` owes, due for the sweeper at `sweep_at`.
    pub fn for_removal(subscription: &SubscriptionItem, sweep_at: i64) -> Self {
        OwedChange {
            channel: subscription.channel.clone(),
            connection_id: subscription.connection_id.clone(),
            subscribed_at_ms: subscription.subscribed_at_ms,
            sweep_at,
            ttl: sweep_at + OWED_CHANGE_LIFETIME_SECONDS,
        }
    }
}

/// Who a batch of a channel's messages goes to, in one read of the channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelAudience {
    /// Subscriber connection ids, without recoverable subscriptions still
    /// waiting for their welcome (their replay brings what comes before it).
    pub subscribers: Vec<String>,
    /// Whether its messages go out in lanes (docs/adr/0004).
    pub laned: bool,
    /// A recoverable subscription is on the channel (welcomed or not).
    pub recoverable: bool,
    /// Until when the channel's frames are logged for resumes even with no
    /// recoverable subscription on it (the META item's `recoverUntil`).
    pub recover_until: Option<i64>,
}

/// One entry of a channel's recovery log (docs/adr/0006), at its position
/// on the channel's ordered path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggedFrame {
    pub channel: String,
    /// The queue position of the record that produced it.
    pub position: String,
    /// The position logged just before it; `None` starts a chain: nothing
    /// before it can be resumed past it (the log had a gap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
    /// The message's id, when it is not the position (an id given before
    /// queueing: `eagerIdGeneration`, an eager schedule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The frame as sent; `None` for a subscription's starting mark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<String>,
    /// For a storage update, its key: replayed only to whom observes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_key: Option<String>,
    /// For a message sent without echo, its sender's connection, which never
    /// got it: not replayed to that connection's resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unechoed_by: Option<String>,
    /// For a member event, the member list (JSON) its recipients had before
    /// it: a resume that replays it starts from that list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members_before: Option<String>,
    pub ttl: i64,
}

/// What the recovery log holds after a position a client names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogAfter {
    /// The position named (a message id resolved to its position).
    pub position: String,
    /// Whether an unexpired entry is at that position.
    pub found: bool,
    /// The unexpired entries after it, in order, at most the limit asked + 1.
    pub after: Vec<LoggedFrame>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageItem {
    /// The message id (a ULID), which is also the item's sort key.
    #[serde(rename = "sk")]
    pub id: String,
    pub channel: String,
    pub event: String,
    /// JSON text of `data`.
    pub data: String,
    /// JSON text of `meta`, absent for server-published messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<String>,
    /// Listed by `listMessages`; unstored messages only pass through for delivery.
    pub stored: bool,
    /// The publishing connection, which gets its own copy only with `echo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    pub echo: bool,
    /// Absent for messages kept forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    /// Reaction counts, read from the item's `rx#<reaction>` attributes (they
    /// are written only by [`Store::change_reaction`]).
    #[serde(skip)]
    pub reactions: std::collections::BTreeMap<String, i64>,
}

impl MessageItem {
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// One `listMessages` query, with exclusive `after`/`before` cursors and the
/// inclusive lower bound of the visible window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageQuery<'a> {
    pub channel: &'a str,
    pub window_start: String,
    pub after: Option<&'a str>,
    pub before: Option<&'a str>,
    pub newest_first: bool,
    pub limit: usize,
    pub max_bytes: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MessagePage {
    pub messages: Vec<MessageItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReactionItem {
    pub reaction: String,
    pub uid: String,
    /// JSON text of the reactor's user metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    /// The reaction's own id (a ULID), given when it was added; its removal's
    /// backend event tells the same (items from before it was kept have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at_ms: Option<i64>,
    /// JSON text of the request that added it (the backend events' origin),
    /// which its removal's event reports as Hotsock's does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

impl ReactionItem {
    pub fn umd_value(&self) -> Option<serde_json::Value> {
        self.umd
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReactionChange {
    Changed,
    /// Added twice or removed when absent: nothing to do or tell.
    Unchanged,
    /// The message is gone (expired or never stored).
    MessageGone,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageItem {
    pub channel: String,
    pub key: String,
    /// JSON text of the value.
    pub data: String,
    /// JSON text of the last writer's `{"uid","umd"}`.
    pub meta: String,
    /// Unix seconds at which the entry expires; none: forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    /// The queued write that set this value, so a retry of that write (the
    /// deliver step failed after writing) is told apart from a repeat of
    /// the same value by someone else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_id: Option<String>,
    /// A cleared entry, kept a while (with its `write_id`) so a retried clear
    /// is recognised; reads skip it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cleared: bool,
    /// Written with `emitPubSubEvent`: its TTL expiry is told to the backend.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub emit: bool,
    /// With `emit`: the JSON text of the value this write replaced, so a retry
    /// of the write tells the backend the same `dataPrevious`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

/// A schedule waiting to fall due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleItem {
    pub name: String,
    pub due_ms: i64,
    /// What the publish function is invoked with.
    pub payload: String,
}

/// What one stream record asks of the stream function.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A connection item appeared: greet the socket.
    Connected {
        connection_id: String,
    },
    /// DynamoDB's TTL removed a connection item: clean up what it left (and
    /// tell the backend it disconnected, with the item as it was).
    ConnectionExpired {
        connection_id: String,
        item: Option<Box<ConnectionItem>>,
    },
    /// The rest tells the backend only (`hotsock.*` pub/sub events): a
    /// connection item we deleted (disconnect, cleanup) ...
    Disconnected {
        item: Box<ConnectionItem>,
    },
    /// ... a connection's own umd changed ...
    ConnectionUpdated {
        item: Box<ConnectionItem>,
    },
    /// ... a subscription began or ended (any cause, TTL included) ...
    Subscribed {
        item: Box<SubscriptionItem>,
    },
    Unsubscribed {
        item: Box<SubscriptionItem>,
    },
    /// ... a channel's `subscriptionsCount` changed ...
    CountChanged {
        channel: String,
        count: i64,
    },
    /// ... or TTL removed a storage entry written with `emitPubSubEvent`.
    StorageExpired {
        item: Box<StorageItem>,
    },
    /// Anything else (stored messages, reactions, members, cleared storage).
    Ignored,
}

/// What the operations read and write. Conditional writes report their
/// outcome as values (`bool`, [`SubscribeOutcome`], `Option`), so two racing
/// callers can tell which of them won.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    // Connections.
    async fn put_connection(&self, item: &ConnectionItem) -> Result<(), StoreError>;
    async fn get_connection(
        &self,
        connection_id: &str,
        now: i64,
    ) -> Result<Option<ConnectionItem>, StoreError>;
    /// Records liveness for heartbeat timeouts; a no-op for a connection that is
    /// already gone, so a late heartbeat cannot resurrect it.
    async fn touch_connection(&self, connection_id: &str, now: i64) -> Result<(), StoreError>;
    /// Replaces the connection's default umd (JSON text; `None` removes it);
    /// false when the connection is gone.
    async fn set_connection_umd(
        &self,
        connection_id: &str,
        umd: Option<&str>,
    ) -> Result<bool, StoreError>;
    /// Files the connection for the sweeper at `sweep_at`; a no-op for a
    /// connection already gone.
    async fn reschedule_sweep(&self, connection_id: &str, sweep_at: i64) -> Result<(), StoreError>;
    /// What is due for the sweeper by `now`, since its last finished pass (at
    /// most `lookback` seconds back).
    async fn due_for_sweep(&self, now: i64, lookback: i64) -> Result<DueForSweep, StoreError>;
    /// Whether a connection with a `heartbeatTimeout` is due for the sweeper
    /// after `now` and no later than `until`.
    async fn heartbeat_due_within(&self, now: i64, until: i64) -> Result<bool, StoreError>;
    /// Records that the sweeper is done with everything due before `now`'s
    /// bucket.
    async fn advance_sweep_cursor(&self, now: i64) -> Result<(), StoreError>;
    /// The channel this connection subscribed to under `alias`, if any.
    async fn channel_with_alias(
        &self,
        connection_id: &str,
        alias: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError>;
    /// Channels this connection is subscribed to.
    async fn connection_channels(
        &self,
        connection_id: &str,
        now: i64,
    ) -> Result<Vec<String>, StoreError>;
    /// Deletes the connection; true when this call removed it (so only one of
    /// two racing cleanups reports the disconnect).
    async fn delete_connection(&self, connection_id: &str) -> Result<bool, StoreError>;
    /// Every live connection (the local stage's start only).
    async fn scan_connections(&self, now: i64) -> Result<Vec<ConnectionItem>, StoreError>;

    // Single-use tokens.
    /// Spends a `jti` until `exp`: true when this call spent it.
    async fn consume_jti(&self, jti: &str, exp: i64, now: i64) -> Result<bool, StoreError>;
    /// Gives a spent `jti` back.
    async fn release_jti(&self, jti: &str) -> Result<(), StoreError>;
    /// Whether a `jti` is spent (read only).
    async fn jti_used(&self, jti: &str, now: i64) -> Result<bool, StoreError>;

    // Subscriptions.
    /// Writes the subscription, its reverse index and the count together,
    /// conditional on no live subscription and a live connection.
    async fn subscribe(
        &self,
        item: &SubscriptionItem,
        now: i64,
    ) -> Result<SubscribeOutcome, StoreError>;
    /// Removes a subscription with its reverse index and count contribution;
    /// the removed item, or `None` when there was none (so two racing
    /// removals count once). With `owe_until`, files the presence change the
    /// removal owes ([`OwedChange`]) in the same write.
    async fn unsubscribe(
        &self,
        channel: &str,
        connection_id: &str,
        now: i64,
        owe_until: Option<i64>,
    ) -> Result<Option<SubscriptionItem>, StoreError>;
    async fn get_subscription(
        &self,
        channel: &str,
        connection_id: &str,
        now: i64,
    ) -> Result<Option<SubscriptionItem>, StoreError>;
    /// Ends the wait for its welcome of the subscription made at
    /// `subscribed_at_ms`; it as it now is, or `None` when it is gone or
    /// replaced. Idempotent.
    async fn welcome_subscription(
        &self,
        channel: &str,
        connection_id: &str,
        subscribed_at_ms: i64,
    ) -> Result<Option<SubscriptionItem>, StoreError>;
    /// Replaces a subscription's umd, set at `at_ms`; the subscription as it
    /// was before, or `None` when it is gone.
    async fn set_subscription_umd(
        &self,
        channel: &str,
        connection_id: &str,
        umd: Option<&str>,
        at_ms: i64,
    ) -> Result<Option<SubscriptionItem>, StoreError>;
    async fn channel_subscriptions(
        &self,
        channel: &str,
        now: i64,
    ) -> Result<Vec<SubscriptionItem>, StoreError>;
    /// The connection ids of a channel's subscribers.
    async fn channel_subscriber_ids(
        &self,
        channel: &str,
        now: i64,
    ) -> Result<Vec<String>, StoreError>;
    /// `subscriptionsCount` of a channel (0 when it never had one).
    async fn subscriptions_count(&self, channel: &str) -> Result<i64, StoreError>;
    /// What a batch of the channel's messages needs, in one read.
    async fn channel_audience(
        &self,
        channel: &str,
        now: i64,
    ) -> Result<ChannelAudience, StoreError>;
    /// Sets whether the channel's messages go out in lanes.
    async fn set_fan_out_laned(&self, channel: &str, laned: bool) -> Result<(), StoreError>;

    // Presence.
    /// The JSON text of the last announced member list and until when it is
    /// kept.
    async fn announced_members(
        &self,
        channel: &str,
        now: i64,
    ) -> Result<Option<(String, i64)>, StoreError>;
    /// Remembers the member list just announced until `ttl`; `None` forgets it.
    async fn remember_members(
        &self,
        channel: &str,
        members: Option<&str>,
        ttl: i64,
    ) -> Result<(), StoreError>;
    /// The owed change is queued: it goes, unless a later removal replaced it.
    async fn settle_owed_change(&self, owed: &OwedChange) -> Result<(), StoreError>;
    /// Queueing it failed again: due for the sweeper once more at `sweep_at`.
    async fn defer_owed_change(&self, owed: &OwedChange, sweep_at: i64) -> Result<(), StoreError>;

    // The recovery log (docs/adr/0006).
    /// Logs a frame once: a retry finds it logged and leaves it as it was.
    async fn log_frame(&self, frame: &LoggedFrame) -> Result<(), StoreError>;
    /// The last position logged before `position`, expired or not (the
    /// `prev` of an entry logged at it; one already deleted is not seen).
    async fn logged_before(
        &self,
        channel: &str,
        position: &str,
    ) -> Result<Option<String>, StoreError>;
    /// The entries after `named` (a position, or a message id logged under
    /// another position), up to `limit` + 1 of them.
    async fn logged_after(
        &self,
        channel: &str,
        named: &str,
        now: i64,
        limit: usize,
    ) -> Result<LogAfter, StoreError>;
    /// Forgets the entries at and after `from` (not the ids' pointers): what
    /// a failed try of the channel's step at `from` logged, before its retry
    /// logs what it decides.
    async fn unlog_from(&self, channel: &str, from: &str) -> Result<(), StoreError>;
    /// Until when the channel's frames are logged with no recoverable
    /// subscription on it.
    async fn recover_until(&self, channel: &str) -> Result<Option<i64>, StoreError>;
    /// Logs the channel's frames at least until `until`. With `keep_last`,
    /// its last entry is kept at least until then too: a subscriber that
    /// leaves now may resume from it.
    async fn extend_recovery(
        &self,
        channel: &str,
        until: i64,
        keep_last: bool,
    ) -> Result<(), StoreError>;

    // Messages and reactions.
    /// Writes a delivered message once: a retry with the same id leaves the
    /// first write (and its reaction counts) as it is.
    async fn put_message(&self, item: &MessageItem) -> Result<(), StoreError>;
    async fn get_message(
        &self,
        channel: &str,
        id: &str,
        now: i64,
    ) -> Result<Option<MessageItem>, StoreError>;
    /// Stored, unexpired messages in id order, within the query's bounds.
    async fn list_messages(
        &self,
        query: &MessageQuery<'_>,
        now: i64,
    ) -> Result<MessagePage, StoreError>;
    /// Adds or removes a user's reaction and the message's count together.
    async fn change_reaction(
        &self,
        channel: &str,
        message_id: &str,
        item: &ReactionItem,
        add: bool,
        now: i64,
    ) -> Result<ReactionChange, StoreError>;
    async fn get_reaction(
        &self,
        channel: &str,
        message_id: &str,
        reaction: &str,
        uid: &str,
        now: i64,
    ) -> Result<Option<ReactionItem>, StoreError>;
    async fn message_reactions(
        &self,
        channel: &str,
        message_id: &str,
        now: i64,
    ) -> Result<Vec<ReactionItem>, StoreError>;

    // Channel storage.
    async fn get_storage(
        &self,
        channel: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<StorageItem>, StoreError>;
    async fn put_storage(&self, entry: &StorageItem) -> Result<(), StoreError>;
    /// Live, uncleared entries after key `after`, in key order, that `wanted`
    /// keeps, up to `limit`.
    async fn list_storage(
        &self,
        channel: &str,
        after: Option<&str>,
        now: i64,
        limit: usize,
        wanted: &(dyn for<'k> Fn(&'k str) -> bool + Send + Sync),
    ) -> Result<Vec<StorageItem>, StoreError>;

    // The local stage's schedules.
    async fn put_schedule(&self, schedule: &ScheduleItem) -> Result<(), StoreError>;
    /// Up to `limit` schedules, soonest due first.
    async fn earliest_schedules(&self, limit: i32) -> Result<Vec<ScheduleItem>, StoreError>;
    async fn delete_schedule(&self, due_ms: i64, name: &str) -> Result<(), StoreError>;
}
