//! The operations, shared by the WebSocket, HTTP and server paths. Each module
//! keeps its decisions in pure functions (unit-tested) and its I/O in a thin
//! async function over [`App`](crate::app::App).

pub mod connect;
pub mod deliver;
pub mod disconnect;
pub mod frame;
pub mod history;
pub mod presence;
pub mod publish;
pub mod reactions;
pub mod subscribe;
pub mod sweep;

use crate::claims::Claims;
use crate::error::{ErrorCode, ProtocolError};
use crate::protocol::Meta;
use crate::store::{ConnectionItem, StoreError};

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
    pub claims: Claims,
}

impl Connection {
    /// Re-reads the stored claims; they were validated at connect, so a failure
    /// here means the item was tampered with.
    pub fn from_item(item: ConnectionItem) -> Result<Self, ProtocolError> {
        let payload: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&item.claims).map_err(|_| corrupt())?;
        let claims = Claims::parse(&payload).map_err(|_| corrupt())?;
        Ok(Connection { item, claims })
    }

    pub fn id(&self) -> &str {
        &self.item.connection_id
    }

    /// The real channel behind a name this client sent (its alias, or itself).
    pub fn real_channel<'a>(&'a self, requested: &'a str) -> &'a str {
        self.claims
            .channels
            .resolve_alias(requested)
            .unwrap_or(requested)
    }

    pub fn meta(&self) -> Meta {
        Meta::new(self.item.uid.clone(), self.item.umd_value())
    }
}

fn corrupt() -> ProtocolError {
    ProtocolError::new(ErrorCode::InternalError, "connection record is unreadable")
}

/// Loads the calling connection; a connection that is gone gets `Unauthorized`.
pub async fn load_connection(
    app: &crate::app::App,
    connection_id: &str,
) -> Result<Connection, ProtocolError> {
    let item = app
        .store
        .get_connection(connection_id, app.now())
        .await
        .map_err(internal)?
        .ok_or_else(|| ProtocolError::new(ErrorCode::Unauthorized, "connection not found"))?;
    Connection::from_item(item)
}

/// Sends one frame to one connection; a connection found gone is cleaned up at
/// once (PROTOCOL.md §8).
pub async fn send(
    app: &crate::app::App,
    connection_id: &str,
    frame: &crate::protocol::ServerMessage,
) {
    match app.gateway.post(connection_id, &frame.to_json()).await {
        Ok(()) => {}
        Err(crate::gateway::PostError::Gone) => disconnect::cleanup(app, connection_id).await,
        Err(crate::gateway::PostError::Failed(reason)) => {
            tracing::warn!(connection_id, %reason, "post failed");
        }
    }
}

/// Answers a client's bad request with `hotsock.error`.
pub async fn send_error(app: &crate::app::App, connection_id: &str, err: ProtocolError) {
    send(
        app,
        connection_id,
        &crate::protocol::ServerMessage::error(err),
    )
    .await;
}

/// The caller's subscription to the channel it named, for operations that need
/// one (history, reactions); `NOT_SUBSCRIBED` carrying the client's name if none.
pub async fn require_subscription(
    app: &crate::app::App,
    connection: &Connection,
    requested: &str,
) -> Result<crate::store::SubscriptionItem, ProtocolError> {
    crate::names::validate_channel(requested)?;
    app.store
        .get_subscription(
            connection.real_channel(requested),
            connection.id(),
            app.now(),
        )
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            ProtocolError::new(
                ErrorCode::NotSubscribed,
                format!("subscribe to {requested:?} first"),
            )
            .with_channel(requested)
        })
}
