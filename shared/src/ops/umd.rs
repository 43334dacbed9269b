//! `hotsock.umdUpdate` / `connection/umdUpdate`: a connected user changes
//! their metadata with a `umd`-scoped token (docs/protocol.md, "User metadata
//! updates"). On one subscription (the token's channel `umdUpdate` directive),
//! or on the connection (the `umdUpdate` claim), which later subscriptions
//! inherit and, with `umdPropagate`, every existing one takes too. Presence
//! members hear of it as `hotsock.memberUpdated`, in the channel's order.

use super::membership::queue_change;
use super::single_use;
use super::subscribe::check_token_binding;
use super::{internal, named_channel, Connection, Ctx};
use crate::store::SubscriptionItem;
use serde_json::Value;
use sockhop_core::claims::{ChannelPermissions, Claims, ClaimsError, Scope};
use sockhop_core::error::{ErrorCode, ProtocolError};
use sockhop_core::names;

fn invalid_token(message: impl Into<String>) -> ProtocolError {
    ProtocolError::new(ErrorCode::InvalidUmdToken, message)
}

fn not_allowed(message: impl Into<String>) -> ProtocolError {
    ProtocolError::new(ErrorCode::UmdUpdateNotAllowed, message)
}

/// The token's claims, verified, with the `umd` scope, naming this connection.
fn umd_token_claims(
    cx: Ctx<'_>,
    connection: &Connection,
    token: &str,
) -> Result<Claims, ProtocolError> {
    let payload = cx
        .app
        .config
        .verifier
        .verify(token, cx.secs())
        .map_err(|e| invalid_token(e.to_string()))?;
    let claims = Claims::parse(&payload).map_err(|e| match e {
        ClaimsError::UmdTooLarge => ProtocolError::new(ErrorCode::UmdTooLarge, e.to_string()),
        e => invalid_token(e.to_string()),
    })?;
    check_token_binding(connection, &claims, Scope::Umd).map_err(invalid_token)?;
    Ok(claims)
}

/// What a umd token may change (pure): the subscription to `channel` when
/// its grant for that channel says `umdUpdate`, the connection when the
/// token has the `umdUpdate` claim.
pub fn check_update(claims: &Claims, channel: Option<&str>) -> Result<(), ProtocolError> {
    match channel {
        Some(channel) => ChannelPermissions::single(claims.channels.grant_for(channel))
            .may_update_umd()
            .then_some(())
            .ok_or_else(|| {
                not_allowed(format!("the token does not allow umdUpdate on {channel:?}"))
            }),
        None => claims
            .umd_update
            .then_some(())
            .ok_or_else(|| not_allowed("the token does not have the umdUpdate claim")),
    }
}

/// Runs a umd update; the token's `umd` (absent: none) becomes the new one.
pub async fn update(
    cx: Ctx<'_>,
    connection: &Connection,
    requested: Option<&str>,
    token: &str,
) -> Result<(), ProtocolError> {
    let claims = umd_token_claims(cx, connection, token)?;
    let umd = claims.umd.as_ref().map(Value::to_string);
    match requested {
        Some(requested) => {
            let named = named_channel(cx, connection, requested).await?;
            let in_channel = |e: ProtocolError| e.with_channel(requested);
            check_update(&claims, Some(&named.channel)).map_err(in_channel)?;
            let Some(subscription) = &named.subscription else {
                return Err(not_subscribed(requested));
            };
            if !token_covers(&claims, subscription) {
                return Err(in_channel(invalid_token(
                    "the token is for another uid than this subscription's",
                )));
            }
            spend(cx, &claims).await.map_err(in_channel)?;
            if !update_subscription(cx, &named.channel, connection.id(), umd.as_deref())
                .await
                .map_err(in_channel)?
            {
                return Err(not_subscribed(requested));
            }
        }
        None => {
            check_update(&claims, None)?;
            spend(cx, &claims).await?;
            let store = &cx.app.store;
            if !store
                .set_connection_umd(connection.id(), umd.as_deref())
                .await
                .map_err(internal)?
            {
                return Err(ProtocolError::new(
                    ErrorCode::Unauthorized,
                    "connection not found",
                ));
            }
            if claims.umd_propagate {
                let channels = store
                    .connection_channels(connection.id(), cx.secs())
                    .await
                    .map_err(internal)?;
                for channel in channels {
                    let covered = store
                        .get_subscription(&channel, connection.id(), cx.secs())
                        .await
                        .map_err(internal)?
                        .is_some_and(|s| token_covers(&claims, &s));
                    if covered {
                        update_subscription(cx, &channel, connection.id(), umd.as_deref()).await?;
                    }
                }
            }
        }
    }
    Ok(())
}

async fn spend(cx: Ctx<'_>, claims: &Claims) -> Result<(), ProtocolError> {
    if single_use::spend(cx, claims).await? {
        Ok(())
    } else {
        Err(invalid_token(single_use::ALREADY_USED))
    }
}

/// Whether a umd token may change this subscription (pure): one bound by
/// `uid` only changes subscriptions acting as that uid (a subscribe token may
/// have given a subscription another uid than the connection's).
pub fn token_covers(claims: &Claims, subscription: &SubscriptionItem) -> bool {
    match (&claims.connection_id, &claims.uid) {
        (Some(_), _) => true,
        (None, uid) => uid.is_some() && subscription.uid == *uid,
    }
}

fn not_subscribed(requested: &str) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::NotSubscribed,
        format!("subscribe to {requested:?} first"),
    )
    .with_channel(requested)
}

/// Sets one subscription's umd and, on a presence channel, queues the change
/// for its members; false when the subscription is gone. (Even the same umd
/// is news when the uid has several subscriptions: its latest umd is listed.)
async fn update_subscription(
    cx: Ctx<'_>,
    channel: &str,
    connection_id: &str,
    umd: Option<&str>,
) -> Result<bool, ProtocolError> {
    let store = &cx.app.store;
    let Some(before) = store
        .set_subscription_umd(channel, connection_id, umd, cx.now.millis())
        .await
        .map_err(internal)?
    else {
        return Ok(false);
    };
    if names::is_presence_channel(channel) {
        if let Err(err) = queue_change(cx, channel, Default::default()).await {
            // Not told, so not kept: the update fails as a whole.
            let restored = store
                .set_subscription_umd(
                    channel,
                    connection_id,
                    before.umd.as_deref(),
                    before.umd_at_ms,
                )
                .await;
            if let Err(undo) = restored {
                tracing::error!(%channel, error = %undo, "a umd update that could not be told was not undone");
            }
            return Err(err);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Claims {
        let mut map = value.as_object().expect("object").clone();
        map.entry("exp").or_insert(json!(4_000_000_000i64));
        map.entry("scope").or_insert(json!("umd"));
        Claims::parse(&map).expect("claims")
    }

    #[test]
    fn a_uid_bound_token_changes_only_subscriptions_of_that_uid() {
        let sub = |uid: Option<&str>| SubscriptionItem {
            channel: "presence.room".into(),
            connection_id: "c1".into(),
            uid: uid.map(str::to_owned),
            umd: None,
            permissions: "{}".into(),
            alias: None,
            subscribed_at_ms: 0,
            umd_at_ms: 0,
            pending: false,
            recoverable: false,
            counted: true,
            ttl: 0,
        };
        let by_uid = claims(json!({"uid": "jim"}));
        assert!(token_covers(&by_uid, &sub(Some("jim"))));
        assert!(!token_covers(&by_uid, &sub(Some("bot-42"))));
        assert!(!token_covers(&by_uid, &sub(None)));
        let by_connection = claims(json!({"connectionId": "c1"}));
        assert!(token_covers(&by_connection, &sub(Some("bot-42"))));
    }

    #[test]
    fn a_channel_update_needs_the_channel_directive_and_a_connection_update_the_claim() {
        let token = claims(json!({"umdUpdate": true,
            "channels": {"presence.*": {"umdUpdate": true}, "presence.locked": {"umdUpdate": false}}}));
        assert!(check_update(&token, Some("presence.room")).is_ok());
        assert!(check_update(&token, None).is_ok());
        let err = check_update(&token, Some("presence.locked")).unwrap_err();
        assert_eq!(err.code, ErrorCode::UmdUpdateNotAllowed);
        assert_eq!(
            check_update(&token, Some("other")).unwrap_err().code,
            ErrorCode::UmdUpdateNotAllowed
        );
        let channel_only = claims(json!({"channels": {"presence.room": {"umdUpdate": true}}}));
        assert_eq!(
            check_update(&channel_only, None).unwrap_err().code,
            ErrorCode::UmdUpdateNotAllowed
        );
    }
}
