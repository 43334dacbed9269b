//! Dev-only conveniences: the stage's generated HS256 signing key and a
//! token-minting endpoint. Never part of a deployed stage.

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use std::path::Path;

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
        .with_state(key)
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
