//! One change from the table's stream: greet a new connection, clean up after
//! an expired connection.

use super::{connect, Ctx};
use crate::effects::Effects;
use crate::error::ProtocolError;
use crate::store::Change;

/// What one stream change requires. An error means the record must be
/// retried (the stream function reports it as a batch item failure).
pub async fn apply(cx: Ctx<'_>, change: &Change) -> Result<Effects, ProtocolError> {
    match change {
        Change::Connected { connection_id } => connect::greet(cx, connection_id).await,
        Change::ConnectionExpired { connection_id } => {
            let mut effects = Effects::new();
            effects.cleanup(connection_id);
            Ok(effects)
        }
        Change::Ignored => Ok(Effects::new()),
    }
}

/// What the change requires once [`apply`]'s effects were performed: a new
/// connection's auto-subscriptions, after its greeting.
pub async fn then(cx: Ctx<'_>, change: &Change) -> Result<Effects, ProtocolError> {
    match change {
        Change::Connected { connection_id } => connect::auto_subscribe(cx, connection_id).await,
        _ => Ok(Effects::new()),
    }
}
