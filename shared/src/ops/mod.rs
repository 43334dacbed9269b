//! The operations, shared by the WebSocket, HTTP and server paths. Each decides
//! what must happen and returns it as [`Effects`](crate::effects::Effects); the
//! driver performs them. Reads, and writes whose outcome is part of the
//! decision (a conditional subscribe, an ordered publish), happen here through
//! the store; the decisions themselves are pure functions, unit-tested.
//!
//! Module order (no cycles; checked by `tests/tests/structure.rs`):
//! `deliver` ← `presence` ← `membership` ← `disconnect`, `subscribe`, `sweep`, `umd`;
//! `deliver` ← `publish` ← `storage` ← `membership`; `subscribe` ← `connect`, `umd`;
//! `presence` ← `channel_info`, `subscribe`; `deliver`, `reactions` ← `history`;
//! `single_use` ← `connect`, `subscribe`, `umd`; `sweep` ← `connect`;
//! `connect` ← `stream`; all of them ← `dispatch`.

pub mod channel_info;
pub mod connect;
pub mod deliver;
pub mod disconnect;
pub mod dispatch;
pub mod history;
pub mod membership;
pub mod presence;
pub mod publish;
pub mod reactions;
pub mod resume;
pub mod single_use;
pub mod storage;
pub mod stream;
pub mod subscribe;
pub mod sweep;
pub mod umd;

use crate::pubsub::Origin;
use crate::runtime::app::App;
use crate::store::{ConnectionItem, StoreError, SubscriptionItem};
use sockhop_core::claims::{ChannelPermissions, Claims};
use sockhop_core::clock::Timestamp;
use sockhop_core::error::{ErrorCode, ProtocolError};
use sockhop_core::protocol::Meta;
use std::sync::Arc;

/// What every operation runs with: the process's state and the moment the
/// invocation started (read once by the handler).
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub app: &'a App,
    pub now: Timestamp,
    /// Who asked (door, request id, address), for backend events' metadata.
    pub origin: Option<&'a Origin>,
}

impl<'a> Ctx<'a> {
    pub fn new(app: &'a App, now: Timestamp) -> Self {
        Ctx {
            app,
            now,
            origin: None,
        }
    }

    pub fn with_origin(self, origin: &'a Origin) -> Self {
        Ctx {
            origin: Some(origin),
            ..self
        }
    }

    /// The origin of what `connection` does (its id, address and user agent).
    pub fn origin_of(&self, connection: &Connection) -> Origin {
        let item = &connection.item;
        self.origin
            .cloned()
            .unwrap_or_else(|| Origin::new(crate::pubsub::TRIGGER_CLIENT_WEBSOCKET, None))
            .as_connection(
                &item.connection_id,
                item.source_ip.as_deref(),
                item.user_agent.as_deref(),
            )
    }

    /// The origin of a server request (`server.lambda` unless told).
    pub fn server_origin(&self) -> Origin {
        self.origin
            .cloned()
            .unwrap_or_else(|| Origin::new(crate::pubsub::TRIGGER_SERVER_LAMBDA, None))
    }

    /// Unix seconds, what the table's `ttl` and token expiry use.
    pub fn secs(&self) -> i64 {
        self.now.secs()
    }
}

/// A storage failure as the client sees it: logged in full here, reported as a
/// stable code without internals.
pub fn internal(err: StoreError) -> ProtocolError {
    tracing::error!(error = %err, "store failure");
    ProtocolError::new(ErrorCode::InternalError, "temporary failure, try again")
}

/// A live connection with its connect token's claims.
#[derive(Debug, Clone)]
pub struct Connection {
    pub item: ConnectionItem,
    pub claims: Arc<Claims>,
}

impl Connection {
    pub fn id(&self) -> &str {
        &self.item.connection_id
    }

    pub fn meta(&self) -> Meta {
        Meta::new(self.item.uid.clone(), self.item.umd_value())
    }
}

/// The longest connection id looked up.
pub const MAX_CONNECTION_ID_BYTES: usize = 128;

/// Loads the calling connection with its claims (parsed once per connection
/// and cached); a connection that is gone gets `Unauthorized`.
pub async fn load_connection(
    cx: Ctx<'_>,
    connection_id: &str,
) -> Result<Connection, ProtocolError> {
    // API Gateway's ids are 16 characters; anything far longer names no
    // connection and must not reach DynamoDB's key-size limits.
    if connection_id.is_empty() || connection_id.len() > MAX_CONNECTION_ID_BYTES {
        return Err(ProtocolError::new(
            ErrorCode::Unauthorized,
            "connection not found",
        ));
    }
    let item = cx
        .app
        .store
        .get_connection(connection_id, cx.secs())
        .await
        .map_err(internal)?
        .ok_or_else(|| ProtocolError::new(ErrorCode::Unauthorized, "connection not found"))?;
    // The claims were validated at connect; failing now means the item was
    // tampered with.
    let claims = cx
        .app
        .claims
        .get_or_parse(&item.connection_id, &item.claims)
        .map_err(|_| {
            ProtocolError::new(ErrorCode::InternalError, "connection record is unreadable")
        })?;
    Ok(Connection { item, claims })
}

/// The smallest id visible to a subscription (pure): from `historyStart` when
/// the token grants it (0 = everything), else from the moment it subscribed.
pub fn window_start(history_start: Option<f64>, subscribed_at_ms: i64) -> String {
    let from_ms = match history_start {
        // Fractions of a second count to the millisecond (`as` saturates).
        Some(seconds) => ((seconds * 1000.0).floor() as i64).min(subscribed_at_ms),
        None => subscribed_at_ms,
    };
    ulid::Ulid::from_parts(from_ms.max(0) as u64, 0).to_string()
}

/// A channel as a client named it: the real channel and the caller's
/// subscription to it, if any.
pub struct NamedChannel {
    pub channel: String,
    pub subscription: Option<SubscriptionItem>,
}

impl NamedChannel {
    /// What the caller may do on the channel and who it acts as: its
    /// subscription's permissions and metadata when subscribed (the subscribe
    /// token's directives included), else its connect token's.
    pub fn acting(
        &self,
        connection: &Connection,
    ) -> Result<(ChannelPermissions, Meta), ProtocolError> {
        Ok(match &self.subscription {
            Some(sub) => (
                sub.permissions().map_err(internal)?,
                Meta::new(sub.uid.clone(), sub.umd_value()),
            ),
            None => (
                ChannelPermissions::single(connection.claims.channels.grant_for(&self.channel)),
                connection.meta(),
            ),
        })
    }
}

/// Resolves a name a client sent (a real name, or an alias from its connect
/// token or from the subscribe token of one of its subscriptions) and loads
/// its subscription. A subscription to a real channel of that name takes
/// priority over an alias of the same name (as Hotsock documents); the reads
/// for aliases happen only when the name found no such subscription.
pub async fn named_channel(
    cx: Ctx<'_>,
    connection: &Connection,
    requested: &str,
) -> Result<NamedChannel, ProtocolError> {
    let store = &cx.app.store;
    let subscription = store
        .get_subscription(requested, connection.id(), cx.secs())
        .await
        .map_err(internal)?;
    if subscription.is_some() {
        return Ok(NamedChannel {
            channel: requested.to_owned(),
            subscription,
        });
    }
    if let Some(channel) = connection.claims.channels.resolve_alias(requested) {
        return Ok(NamedChannel {
            subscription: store
                .get_subscription(channel, connection.id(), cx.secs())
                .await
                .map_err(internal)?,
            channel: channel.to_owned(),
        });
    }
    let aliased = store
        .channel_with_alias(connection.id(), requested, cx.secs())
        .await
        .map_err(internal)?;
    match aliased {
        Some(channel) => Ok(NamedChannel {
            subscription: store
                .get_subscription(&channel, connection.id(), cx.secs())
                .await
                .map_err(internal)?,
            channel,
        }),
        None => Ok(NamedChannel {
            channel: requested.to_owned(),
            subscription: None,
        }),
    }
}

/// The caller's subscription to the channel it named, for operations that need
/// one (history, reactions); `NOT_SUBSCRIBED` carrying the client's name if none.
pub async fn require_subscription(
    cx: Ctx<'_>,
    connection: &Connection,
    requested: &str,
) -> Result<SubscriptionItem, ProtocolError> {
    named_channel(cx, connection, requested)
        .await?
        .subscription
        .ok_or_else(|| {
            ProtocolError::new(
                ErrorCode::NotSubscribed,
                format!("subscribe to {requested:?} first"),
            )
            .with_channel(requested)
        })
}
