//! `$connect`: who may open a socket, what is stored for it, and the greeting
//! (`hotsock.connected`, then auto-subscriptions) sent once it is open.
//!
//! The connection secret is never stored: it is an HMAC of the connection id and
//! a random nonce under the stage's `CONNECTION_SECRET_KEY`, so the stream
//! function can re-derive it for the greeting while the table holds only the
//! nonce and a SHA-256 of the secret.

use super::{internal, load_connection, subscribe, Connection};
use crate::app::App;
use crate::claims::{Claims, Scope};
use crate::gateway::PostError;
use crate::protocol::ServerMessage;
use crate::store::{keys, ConnectionItem};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::time::Duration;

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
    app: &App,
    token: Option<&str>,
    now: i64,
) -> Result<(Claims, String), ConnectRefusal> {
    let token = token
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ConnectRefusal::unauthorized("TOKEN_MISSING", "the token query parameter is required")
        })?;
    let payload = app
        .config
        .verifier
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
    let payload = serde_json::Value::Object(payload).to_string();
    Ok((claims, payload))
}

/// `$connect`: checks the token, spends a single-use token, stores the connection.
pub async fn connect(
    app: &App,
    connection_id: &str,
    token: Option<&str>,
) -> Result<(), ConnectRefusal> {
    let now_ms = app.now_ms();
    let (claims, payload) = check_connect_token(app, token, now_ms / 1000)?;
    if claims.single_use {
        let jti = claims.jti.as_deref().unwrap_or_default();
        let fresh = app
            .store
            .consume_jti(jti, claims.exp, now_ms / 1000)
            .await
            .map_err(|e| server_error(internal(e).message))?;
        if !fresh {
            return Err(ConnectRefusal::unauthorized(
                "TOKEN_ALREADY_USED",
                "this single-use token was already used",
            ));
        }
    }
    let nonce = random_nonce();
    let item = new_connection_item(
        connection_id,
        &claims,
        payload,
        &nonce,
        &app.config.connection_secret_key,
        now_ms,
        app.config.connection_lifetime_seconds,
    );
    app.store
        .put_connection(&item)
        .await
        .map_err(|e| server_error(internal(e).message))?;
    Ok(())
}

fn server_error(message: String) -> ConnectRefusal {
    ConnectRefusal {
        status: 500,
        code: "INTERNAL_ERROR",
        message,
    }
}

fn random_nonce() -> String {
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The connection item for a verified token (pure).
pub fn new_connection_item(
    connection_id: &str,
    claims: &Claims,
    payload: String,
    nonce: &str,
    secret_key: &[u8],
    now_ms: i64,
    lifetime_seconds: i64,
) -> ConnectionItem {
    let secret = connection_secret(secret_key, connection_id, nonce);
    let expires_at = now_ms / 1000 + lifetime_seconds;
    ConnectionItem {
        pk: keys::connection_pk(connection_id),
        sk: keys::CONNECTION_SK.into(),
        connection_id: connection_id.to_owned(),
        secret_nonce: nonce.to_owned(),
        secret_hash: secret_hash(&secret),
        uid: claims.uid.clone(),
        umd: claims.umd.as_ref().map(|v| v.to_string()),
        claims: payload,
        connected_at_ms: now_ms,
        expires_at,
        keep_alive: claims.keep_alive,
        heartbeat_timeout: claims.heartbeat_timeout,
        last_seen: now_ms / 1000,
        ttl: expires_at + CONNECTION_TTL_GRACE_SECONDS,
    }
}

/// The connection secret: HMAC-SHA256(key, "<connection id>.<nonce>"), base64url.
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
    let expected = item.secret_hash.as_bytes();
    let actual = secret_hash(given);
    let actual = actual.as_bytes();
    expected.len() == actual.len()
        && expected
            .iter()
            .zip(actual)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// RFC 3339 UTC with whole seconds, as hotsock.connected carries it.
pub fn rfc3339(unix_seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The greeting, sent by the stream function when the connection item appears:
/// `hotsock.connected` first, then one `hotsock.subscribed` per auto-subscribe
/// channel. The socket may not be open yet when the record arrives, so a Gone
/// answer is retried for a few seconds before the connection is given up.
pub async fn greet(app: &App, connection_id: &str) -> Result<(), crate::error::ProtocolError> {
    let connection: Connection = match load_connection(app, connection_id).await {
        Ok(connection) => connection,
        // Already disconnected before the record was processed: nobody to greet.
        Err(e) if e.code == crate::error::ErrorCode::Unauthorized => return Ok(()),
        Err(e) => return Err(e),
    };
    let item = &connection.item;
    let secret = connection_secret(
        &app.config.connection_secret_key,
        &item.connection_id,
        &item.secret_nonce,
    );
    let frame = ServerMessage::connected(
        &item.connection_id,
        &rfc3339(item.expires_at),
        &secret,
        connection.meta(),
    )
    .to_json();
    let mut delay = Duration::from_millis(50);
    loop {
        match app.gateway.post(connection_id, &frame).await {
            Ok(()) => break,
            Err(PostError::Gone) if delay < Duration::from_secs(3) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(PostError::Gone) => {
                super::disconnect::cleanup(app, connection_id).await;
                return Ok(());
            }
            Err(PostError::Failed(reason)) => {
                tracing::warn!(connection_id, %reason, "greeting failed");
                return Ok(());
            }
        }
    }
    for channel in connection.claims.channels.auto_subscribe_channels() {
        if let Err(err) = subscribe::subscribe(app, &connection, &channel, None, true).await {
            super::send_error(app, connection_id, err).await;
        }
    }
    Ok(())
}
