//! Channel info (docs/protocol.md, "Channel info and admin reads"): the
//! subscription count (without `omitFromSubCount` subscriptions) and, on a
//! presence channel, its members, for a connection granted `getInfo` and for
//! the backend's admin read.

use super::presence::members;
use super::{internal, named_channel, Connection, Ctx};
use serde_json::{json, Map, Value};
use sockhop_core::error::{ErrorCode, ProtocolError};
use sockhop_core::names;

/// `connection/getChannelInfo`: needs `getInfo` on the channel (from the
/// subscription when there is one, else the connect token); no subscription
/// needed. `{"channel","subscriptionsCount","members"?}`.
pub async fn for_connection(
    cx: Ctx<'_>,
    connection: &Connection,
    requested: &str,
) -> Result<Value, ProtocolError> {
    let named = named_channel(cx, connection, requested).await?;
    let (permissions, _) = named.acting(connection)?;
    if !permissions.may_get_info() {
        return Err(ProtocolError::new(
            ErrorCode::GetInfoPermissionDenied,
            format!("not allowed to get info on {requested:?}"),
        )
        .with_channel(requested));
    }
    info(cx, "channel", &named.channel)
        .await
        .map_err(|e| e.with_channel(requested))
}

/// `GET /channels/{name}` (API key checked by the caller):
/// `{"name","subscriptionsCount","members"?}`; `0` (and `[]`) for a channel
/// never used.
pub async fn for_server(cx: Ctx<'_>, channel: &str) -> Result<Value, ProtocolError> {
    names::validate_channel(channel)?;
    info(cx, "name", channel).await
}

async fn info(cx: Ctx<'_>, name_field: &str, channel: &str) -> Result<Value, ProtocolError> {
    let count = cx
        .app
        .store
        .subscriptions_count(channel)
        .await
        .map_err(internal)?;
    let mut reply = Map::new();
    reply.insert(name_field.to_owned(), json!(channel));
    // A count below zero would be a bookkeeping fault; never show one.
    reply.insert("subscriptionsCount".to_owned(), json!(count.max(0)));
    if names::is_presence_channel(channel) {
        let subscriptions = cx
            .app
            .store
            .channel_subscriptions(channel, cx.secs())
            .await
            .map_err(internal)?;
        reply.insert("members".to_owned(), json!(members(&subscriptions)));
    }
    Ok(Value::Object(reply))
}
