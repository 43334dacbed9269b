//! `$connect`: who may open a socket, what is stored for it, and the greeting
//! (`hotsock.connected`, then auto-subscriptions) sent once it is open.
//!
//! The connection secret is never stored: it is an HMAC of the connection id and
//! a random nonce under the stage's `CONNECTION_SECRET_KEY`, so the stream
//! function can re-derive it for the greeting while the table holds only the
//! nonce and a SHA-256 of the secret.

use super::{internal, load_connection, single_use, subscribe, Connection, Ctx};
use crate::effects::Effects;
use crate::store::ConnectionItem;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sockhop_core::claims::{Claims, Scope};
use sockhop_core::clock::Timestamp;
use sockhop_core::error::ErrorCode;
use sockhop_core::protocol::{format_rfc3339_utc, ServerMessage};
use sockhop_core::token::Verifier;
use subtle::ConstantTimeEq;

/// Characters of base64url HMAC output used as the secret (192 bits).
const SECRET_CHARS: usize = 32;
/// Extra life of a connection item past the gateway's own limit, so late
/// `$disconnect` events still find it.
const CONNECTION_TTL_GRACE_SECONDS: i64 = 300;

/// Why an upgrade is refused: the status API Gateway answers with, a stable
/// code and a message (sent as the JSON body of the refusal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ConnectRefusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ConnectRefusal {
    fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        ConnectRefusal {
            status: 401,
            code,
            message: message.into(),
        }
    }
}

/// Verifies a connect token: every bad-token case is 401; a valid token without
/// the `connect` scope is 403.
pub fn check_connect_token(
    verifier: &Verifier,
    token: Option<&str>,
    now: i64,
) -> Result<(Claims, String), ConnectRefusal> {
    let token = token
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ConnectRefusal::unauthorized("TOKEN_MISSING", "the token query parameter is required")
        })?;
    let payload = verifier
        .verify(token, now)
        .map_err(|e| ConnectRefusal::unauthorized(e.code(), e.to_string()))?;
    let claims = Claims::parse(&payload)
        .map_err(|e| ConnectRefusal::unauthorized(e.code(), e.to_string()))?;
    if !claims.has_scope(Scope::Connect) {
        return Err(ConnectRefusal {
            status: 403,
            code: "TOKEN_SCOPE_NOT_CONNECT",
            message: "the token does not have the connect scope".into(),
        });
    }
    // A token bound to a connection (for subscribing) never opens a new one,
    // even with the connect scope.
    if claims.connection_id.is_some() {
        return Err(ConnectRefusal {
            status: 403,
            code: "TOKEN_CONNECTION_ID_NOT_ALLOWED",
            message: "a token with connectionId cannot open a connection".into(),
        });
    }
    let payload = serde_json::Value::Object(payload).to_string();
    Ok((claims, payload))
}

/// `$connect`: checks the token, spends a single-use token, stores the connection.
/// Where a connection comes from, as the gateway saw it (kept for backend
/// events).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

pub async fn connect(
    cx: Ctx<'_>,
    connection_id: &str,
    token: Option<&str>,
    peer: Peer,
) -> Result<(), ConnectRefusal> {
    let app = cx.app;
    let (claims, payload) = check_connect_token(&app.config.verifier, token, cx.secs())?;
    let fresh = single_use::spend(cx, &claims)
        .await
        .map_err(|e| server_error(e.message))?;
    if !fresh {
        return Err(ConnectRefusal::unauthorized(
            "TOKEN_ALREADY_USED",
            single_use::ALREADY_USED,
        ));
    }
    let mut item = new_connection_item(
        connection_id,
        &claims,
        payload,
        &nonce(app.pacing.chance.nonce()),
        &app.config.connection_secret_key,
        cx.now,
        app.config.connection_lifetime_seconds,
    );
    item.source_ip = peer.source_ip;
    item.user_agent = peer.user_agent;
    let schedule = super::sweep::SweepSchedule::of(&app.config);
    item.sweep_at = super::sweep::next_sweep(&item, cx.secs(), schedule);
    app.store
        .put_connection(&item)
        .await
        .map_err(|e| server_error(internal(e).message))?;
    // The greeting goes through the delivery queue, not the table's stream,
    // so it waits for no stream poll (docs/adr/0005). Not queued, the
    // connection would never be greeted: the upgrade is refused instead (the
    // client reconnects; the item left behind expires, or the sweeper finds
    // its socket gone).
    let greeting = super::deliver::Queued::Greeting {
        connection_id: connection_id.to_owned(),
    };
    super::deliver::enqueue(cx, &greeting, Some(connection_id), connection_id)
        .await
        .map_err(|e| server_error(e.message))?;
    app.activity.add(crate::metrics::Measure::Connections, 1.0);
    Ok(())
}

fn server_error(message: String) -> ConnectRefusal {
    ConnectRefusal {
        status: 500,
        code: "INTERNAL_ERROR",
        message,
    }
}

fn nonce(bytes: [u8; 16]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The connection item for a verified token (pure).
pub fn new_connection_item(
    connection_id: &str,
    claims: &Claims,
    payload: String,
    nonce: &str,
    secret_key: &[u8],
    now: Timestamp,
    lifetime_seconds: i64,
) -> ConnectionItem {
    let secret = connection_secret(secret_key, connection_id, nonce);
    let expires_at = now.secs() + lifetime_seconds;
    ConnectionItem {
        connection_id: connection_id.to_owned(),
        secret_nonce: nonce.to_owned(),
        secret_hash: secret_hash(&secret),
        // An empty uid is no uid: `null` in every frame and event, as for a
        // token without one (Hotsock shows `"uid":null` when there is none).
        uid: claims.uid.clone().filter(|uid| !uid.is_empty()),
        umd: claims.umd.as_ref().map(|v| v.to_string()),
        claims: payload,
        connected_at_ms: now.millis(),
        expires_at,
        keep_alive: claims.keep_alive,
        heartbeat_timeout: claims.heartbeat_timeout,
        last_seen: now.secs(),
        source_ip: None,
        user_agent: None,
        sweep_at: expires_at,
        ttl: expires_at + CONNECTION_TTL_GRACE_SECONDS,
    }
}

/// The connection secret: `HMAC-SHA256(key, "<connection id>.<nonce>")`, base64url.
pub fn connection_secret(key: &[u8], connection_id: &str, nonce: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(connection_id.as_bytes());
    mac.update(b".");
    mac.update(nonce.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    text.truncate(SECRET_CHARS);
    text
}

pub fn secret_hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `given` is this connection's secret; compares in constant time.
pub fn secret_matches(item: &ConnectionItem, given: &str) -> bool {
    item.secret_hash
        .as_bytes()
        .ct_eq(secret_hash(given).as_bytes())
        .into()
}

/// `hotsock.connected` for a stored connection (pure): the secret is derived
/// again from the stored nonce.
pub fn greeting(item: &ConnectionItem, secret_key: &[u8]) -> ServerMessage {
    let secret = connection_secret(secret_key, &item.connection_id, &item.secret_nonce);
    ServerMessage::connected(
        &item.connection_id,
        &format_rfc3339_utc(item.expires_at).unwrap_or_default(),
        &secret,
        sockhop_core::protocol::Meta::new(item.uid.clone(), item.umd_value()),
    )
}

/// The greeting, when the stream shows the connection item appeared:
/// `hotsock.connected`. Its auto-subscriptions follow once it went out
/// ([`auto_subscribe`]).
pub async fn greet(
    cx: Ctx<'_>,
    connection_id: &str,
) -> Result<Effects, sockhop_core::error::ProtocolError> {
    let mut effects = Effects::new();
    if let Some(connection) = still_connected(cx, connection_id).await? {
        effects.greet(
            connection_id,
            &greeting(&connection.item, &cx.app.config.connection_secret_key),
        );
        let facts = crate::pubsub::ConnectionFacts::of(&connection.item);
        effects.emit(crate::pubsub::connection("hotsock.connected", &facts, None));
    }
    Ok(effects)
}

/// After the greeting: one subscription per auto-subscribe channel (a
/// refused one answers `hotsock.error`). Run only once the greeting reached
/// the socket, because a welcome in the channel's order is posted by another
/// invocation, which must not find the socket not yet open.
pub async fn auto_subscribe(
    cx: Ctx<'_>,
    connection_id: &str,
) -> Result<Effects, sockhop_core::error::ProtocolError> {
    let mut effects = Effects::new();
    let Some(connection) = still_connected(cx, connection_id).await? else {
        return Ok(effects);
    };
    for channel in connection.claims.channels.auto_subscribe_channels() {
        match subscribe::subscribe(cx, &connection, &channel, None, None, true).await {
            Ok(subscribed) => effects.append(subscribed),
            Err(err) => effects.send(connection_id, &ServerMessage::error(err)),
        }
    }
    Ok(effects)
}

/// The connection, unless it disconnected before the stream record was
/// processed (then there is nobody to greet).
async fn still_connected(
    cx: Ctx<'_>,
    connection_id: &str,
) -> Result<Option<Connection>, sockhop_core::error::ProtocolError> {
    match load_connection(cx, connection_id).await {
        Ok(connection) => Ok(Some(connection)),
        Err(e) if e.code == ErrorCode::Unauthorized => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: serde_json::Value) -> Claims {
        Claims::parse(value.as_object().expect("object")).expect("claims")
    }

    #[test]
    fn secrets_are_derived_not_stored() {
        let key = b"0123456789abcdef";
        let a = connection_secret(key, "conn-1", "nonce");
        assert_eq!(a.len(), 32);
        assert_eq!(
            a,
            connection_secret(key, "conn-1", "nonce"),
            "deterministic"
        );
        assert_ne!(a, connection_secret(key, "conn-2", "nonce"));
        assert_ne!(a, connection_secret(key, "conn-1", "other"));
        assert_ne!(a, connection_secret(b"fedcba9876543210", "conn-1", "nonce"));
        let c = claims(json!({"exp": 10_000, "scope": "connect", "uid": "jim"}));
        let item = new_connection_item(
            "conn-1",
            &c,
            "{}".into(),
            "nonce",
            key,
            Timestamp::from_millis(1_000_500),
            7_200,
        );
        assert_eq!(item.secret_nonce, "nonce");
        assert!(
            !format!("{item:?}").contains(&a),
            "the secret itself is never kept"
        );
        assert!(secret_matches(&item, &a));
        assert!(!secret_matches(
            &item,
            &connection_secret(key, "conn-1", "x")
        ));
        assert!(!secret_matches(&item, ""));
        assert_eq!(item.expires_at, 1_000 + 7_200);
        assert_eq!(item.ttl, item.expires_at + CONNECTION_TTL_GRACE_SECONDS);
        assert_eq!(item.connected_at_ms, 1_000_500);
    }

    #[test]
    fn the_greeting_carries_the_derived_secret() {
        let key = b"0123456789abcdef";
        let c = claims(json!({"exp": 10_000, "scope": "connect", "uid": "jim", "umd": {"n": 1}}));
        let item = new_connection_item("c", &c, "{}".into(), "n", key, Timestamp::from_secs(0), 60);
        let frame: serde_json::Value =
            serde_json::from_str(&greeting(&item, key).to_json()).expect("json");
        assert_eq!(frame["event"], "hotsock.connected");
        assert_eq!(
            frame["data"]["connectionSecret"],
            connection_secret(key, "c", "n")
        );
        assert_eq!(frame["data"]["connectionExpiresAt"], "1970-01-01T00:01:00Z");
        assert_eq!(frame["meta"], json!({"uid": "jim", "umd": {"n": 1}}));
    }
}
