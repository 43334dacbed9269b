//! Dev-only conveniences: the stage's generated HS256 signing key and a
//! token-minting endpoint. Never part of a deployed stage.

use crate::queue::LocalQueue;
use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

/// How long minted dev tokens live unless the request says otherwise.
const DEV_TOKEN_SECONDS: i64 = 3600;

pub fn random_key_base64() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A DEV-ONLY HMAC key, generated on first start and kept in `.local/`
/// (gitignored) so tokens minted by one run still verify in the next.
#[derive(Clone)]
pub struct DevKey {
    secret: Vec<u8>,
}

impl std::fmt::Debug for DevKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DevKey(..)")
    }
}

impl DevKey {
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("dev-signing-key");
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(secret) = base64::engine::general_purpose::STANDARD.decode(text.trim()) {
                if secret.len() >= 32 {
                    return Ok(DevKey { secret });
                }
            }
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let encoded = random_key_base64();
        std::fs::write(&path, &encoded)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let secret = base64::engine::general_purpose::STANDARD.decode(&encoded)?;
        Ok(DevKey { secret })
    }

    pub fn encoded(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.secret)
    }

    /// Signs `claims`, filling in `exp` (one hour) and `scope` (`connect`)
    /// when they are absent.
    pub fn sign(&self, mut claims: Value) -> String {
        if let Some(map) = claims.as_object_mut() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            map.entry("exp").or_insert(json!(now + DEV_TOKEN_SECONDS));
            map.entry("iat").or_insert(json!(now));
            map.entry("scope").or_insert(json!("connect"));
        }
        sockhop::token::sign_hs256(&self.secret, &claims)
    }
}

pub fn router(key: Option<DevKey>) -> Router {
    Router::new()
        .route("/dev/token", post(mint))
        .route("/collaborative-todo", post(todo_session))
        .route("/real-time-chat", post(chat_session))
        .route("/game-lobby", post(lobby_session))
        .route("/game-lobby/rename", post(lobby_rename))
        .with_state(key)
}

/// `GET /dev/stats`: every AWS request the stage's handlers made so far, per
/// operation, with DynamoDB capacity units (sockhop::metrics), and the delivery
/// queue's depth. The bench reads it around each operation it measures.
pub fn stats_router(app: &'static sockhop::App, queue: Arc<LocalQueue>) -> Router {
    Router::new()
        .route("/dev/stats", axum::routing::get(stats))
        .with_state((app, queue))
}

async fn stats(
    State((app, queue)): State<(&'static sockhop::App, Arc<LocalQueue>)>,
) -> Json<Value> {
    Json(json!({"requests": app.requests.snapshot(), "queue": queue.stats()}))
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn no_dev_key() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "demo tokens exist only with the stage's generated dev key",
    )
}

/// The session a demo request names (`{"sessionId"?}`), or a new one.
pub fn session_id(body: &str) -> Result<String, &'static str> {
    let requested = if body.trim().is_empty() {
        None
    } else {
        let value: Value = serde_json::from_str(body).map_err(|_| "the body must be JSON")?;
        match value.get("sessionId") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err("sessionId must be a string"),
        }
    };
    match requested {
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            Ok(id)
        }
        Some(_) => Err("sessionId must be 1-64 letters, digits, - or _"),
        None => Ok(ulid::Ulid::new().to_string().to_lowercase()[16..].to_owned()),
    }
}

/// Claims of one demo user: subscribe, full history and resume after a drop
/// (`recover`, Sockhop's extension) on one channel, with the given per-event
/// directives.
pub fn demo_claims(uid: &str, name: &str, channel: &str, messages: Value) -> Value {
    json!({
        "scope": "connect",
        "uid": uid,
        "umd": {"name": name},
        "channels": {channel: {
            "subscribe": true, "historyStart": 0, "recover": true, "messages": messages
        }}
    })
}

/// A demo endpoint's reply: the channel, the session and, per user, a token
/// signed over `claims(uid, name)`.
fn session_reply(
    key: &DevKey,
    channel: &str,
    session: &str,
    users: [(&str, &str); 2],
    claims: impl Fn(&str, &str) -> Value,
) -> Value {
    let mut reply = json!({"channel": channel, "sessionId": session});
    for (uid, name) in users {
        reply[uid] = json!({"token": key.sign(claims(uid, name))});
    }
    reply
}

/// `POST /collaborative-todo` → tokens for Alice and Bob on `todo-<session>`.
async fn todo_session(State(key): State<Option<DevKey>>, body: String) -> Response {
    let Some(key) = key else { return no_dev_key() };
    let session = match session_id(&body) {
        Ok(s) => s,
        Err(m) => return error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", m),
    };
    let action = json!({"publish": true, "echo": true, "store": 86400});
    let messages = json!({"add-item": action, "toggle-item": action, "delete-item": action});
    let channel = format!("todo-{session}");
    Json(session_reply(
        &key,
        &channel,
        &session,
        [("alice", "Alice"), ("bob", "Bob")],
        |uid, name| demo_claims(uid, name, &channel, messages.clone()),
    ))
    .into_response()
}

/// `POST /real-time-chat` → tokens for Jim and Pam on `chat-<session>`.
async fn chat_session(State(key): State<Option<DevKey>>, body: String) -> Response {
    let Some(key) = key else { return no_dev_key() };
    let session = match session_id(&body) {
        Ok(s) => s,
        Err(m) => return error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", m),
    };
    let messages = json!({
        "chat": {"publish": true, "echo": true, "store": 86400, "react": ["❤️", "👍", "👎", "😂"]},
        "hotsock.messageReaction": {"echo": true},
        "is-typing": {"publish": true}
    });
    let channel = format!("chat-{session}");
    Json(session_reply(
        &key,
        &channel,
        &session,
        [("jim", "Jim"), ("pam", "Pam")],
        |uid, name| demo_claims(uid, name, &channel, messages.clone()),
    ))
    .into_response()
}

/// The game lobby's two players: uid, name, colour; Ada hosts.
const LOBBY_PLAYERS: [(&str, &str, &str); 2] =
    [("ada", "Ada", "#e8590c"), ("lin", "Lin", "#0ca678")];

/// A lobby player's user metadata: what the others see in the member list.
fn lobby_umd(uid: &str, name: &str) -> Value {
    let color = LOBBY_PLAYERS
        .iter()
        .find(|(u, _, _)| *u == uid)
        .map_or("#868e96", |(_, _, c)| c);
    json!({"name": name, "color": color, "host": uid == "ada"})
}

fn lobby_channel(session: &str) -> String {
    format!("presence.lobby-{session}")
}

/// Claims of one game-lobby player on its presence channel: subscribe without
/// history; every player observes and reads the room settings and every
/// `player.<uid>` entry, writes its own `player.<uid>`, and only the host
/// writes `settings`; a panel that drops resumes (`recover`).
pub fn lobby_claims(uid: &str, name: &str, channel: &str, host: bool) -> Value {
    let own = format!("player.{uid}");
    json!({
        "scope": "connect",
        "uid": uid,
        "umd": lobby_umd(uid, name),
        "channels": {channel: {
            "subscribe": true,
            "recover": true,
            "storage": {
                "settings": {"observe": true, "get": true, "set": host},
                "player.*": {"observe": true, "get": true},
                own: {"set": true},
            }
        }}
    })
}

/// `POST /game-lobby` → tokens for Ada (the host) and Lin on
/// `presence.lobby-<session>`.
async fn lobby_session(State(key): State<Option<DevKey>>, body: String) -> Response {
    let Some(key) = key else { return no_dev_key() };
    let session = match session_id(&body) {
        Ok(s) => s,
        Err(m) => return error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", m),
    };
    let channel = lobby_channel(&session);
    Json(session_reply(
        &key,
        &channel,
        &session,
        [("ada", "Ada"), ("lin", "Lin")],
        |uid, name| lobby_claims(uid, name, &channel, uid == "ada"),
    ))
    .into_response()
}

/// The longest display name a lobby player may take.
const MAX_LOBBY_NAME_CHARS: usize = 24;

/// A rename request: whose name, in which lobby, to what (trimmed, 1–24
/// characters); the umd token's claims, or why not.
pub fn lobby_rename_claims(body: &str) -> Result<Value, &'static str> {
    let request: Value = serde_json::from_str(body).map_err(|_| "the body must be JSON")?;
    if !request["sessionId"].is_string() {
        return Err("sessionId is required");
    }
    let session = session_id(body)?;
    let uid = request["uid"].as_str().unwrap_or_default();
    if !LOBBY_PLAYERS.iter().any(|(u, _, _)| *u == uid) {
        return Err("uid must be one of the lobby's players");
    }
    let name = request["name"].as_str().map(str::trim).unwrap_or_default();
    if name.is_empty() || name.chars().count() > MAX_LOBBY_NAME_CHARS {
        return Err("name must be 1-24 characters");
    }
    Ok(json!({
        "scope": "umd",
        "uid": uid,
        "umd": lobby_umd(uid, name),
        "channels": {lobby_channel(&session): {"umdUpdate": true}}
    }))
}

/// `POST /game-lobby/rename` `{"sessionId","uid","name"}` → `{"token"}`: a
/// umd token the player's page sends as `hotsock.umdUpdate`, as an app's
/// backend would issue one after checking the new name.
async fn lobby_rename(State(key): State<Option<DevKey>>, body: String) -> Response {
    let Some(key) = key else { return no_dev_key() };
    match lobby_rename_claims(&body) {
        Ok(claims) => Json(json!({"token": key.sign(claims)})).into_response(),
        Err(m) => error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", m),
    }
}

/// `POST /dev/token` with the claims as the body → `{"token": …}`.
async fn mint(State(key): State<Option<DevKey>>, body: String) -> Response {
    let Some(key) = key else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": "NOT_FOUND", "message": "dev tokens exist only with the generated dev key"}})),
        )
            .into_response();
    };
    let claims: Value = if body.trim().is_empty() {
        json!({})
    } else {
        match serde_json::from_str(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": {"code": "INVALID_REQUEST", "message": "the body must be a JSON object of claims"}})),
                )
                    .into_response()
            }
        }
    };
    Json(json!({"token": key.sign(claims)})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lobby_renames_are_umd_tokens_for_one_player_on_one_lobby() {
        let claims =
            lobby_rename_claims(r#"{"sessionId":"s1","uid":"lin","name":"  Lin the Bold "}"#)
                .expect("claims");
        assert_eq!(
            claims,
            json!({"scope": "umd", "uid": "lin",
                   "umd": {"name": "Lin the Bold", "color": "#0ca678", "host": false},
                   "channels": {"presence.lobby-s1": {"umdUpdate": true}}})
        );
        for bad in [
            r#"{"uid":"lin","name":"x"}"#,
            r#"{"sessionId":"s1","uid":"eve","name":"x"}"#,
            r#"{"sessionId":"s1","uid":"lin","name":"   "}"#,
            r#"{"sessionId":"s1","uid":"lin","name":"abcdefghijklmnopqrstuvwxy"}"#,
            r#"{"sessionId":"../x","uid":"lin","name":"x"}"#,
            "nope",
        ] {
            assert!(lobby_rename_claims(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn session_ids_are_taken_or_made_and_validated() {
        assert_eq!(
            session_id(r#"{"sessionId":"abc-1_X"}"#),
            Ok("abc-1_X".into())
        );
        let made = session_id("").expect("new id");
        assert_eq!(made.len(), 10);
        assert!(made.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(
            session_id("{}").expect("new"),
            session_id("{}").expect("new")
        );
        assert!(session_id(r#"{"sessionId":null}"#).is_ok());
        for bad in [
            r#"{"sessionId":""}"#,
            r#"{"sessionId":"a b"}"#,
            r#"{"sessionId":5}"#,
            "nope",
        ] {
            assert!(session_id(bad).is_err(), "{bad}");
        }
        assert!(session_id(&format!(r#"{{"sessionId":"{}"}}"#, "a".repeat(65))).is_err());
    }

    #[test]
    fn demo_claims_parse_as_tokens_the_stage_accepts() {
        let claims = demo_claims(
            "jim",
            "Jim",
            "chat-x",
            json!({"chat": {"publish": true, "react": ["👍"]}}),
        );
        let mut map = claims.as_object().expect("object").clone();
        map.insert("exp".into(), json!(1));
        let parsed = sockhop::claims::Claims::parse(&map).expect("valid");
        let p = sockhop::claims::ChannelPermissions::single(parsed.channels.grant_for("chat-x"));
        assert!(p.may_subscribe());
        assert_eq!(p.history_start(), Some(0.0));
        assert!(p.message("chat").may_react("👍"));
    }
}
