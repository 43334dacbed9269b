//! The web console: `console/` of the repository, embedded in this function so a
//! stack serves it from its function URL (`WebConsoleHttpUrl` =
//! `{HttpApiUrl}console`) with nothing else in the Lambda zip, and the local
//! stage serves it at `/console` through the same router.
//!
//! - `GET /console`: the page; `GET /console/…`: its script, styles and the
//!   bundled client (`examples/lib/hotsock-lite.js`). `/console/` redirects to
//!   `/console`, whose relative asset paths then resolve under any prefix
//!   (MiniStack serves function URLs under `/_aws/lambda-url/{id}/`).
//! - `GET /console/config`: the stage's own WebSocket URL (the page's default
//!   when its query has no `wssUrl`) and the meaning of every error code.
//! - `POST /console/explain` `{token, channel?, event?, key?}`: whether the
//!   stage accepts the token, with the stable code and its meaning when not (a
//!   browser cannot read a refused upgrade's body, so this is how the console
//!   learns why), and what the token grants on a channel, explained by the
//!   resolver itself ([`sockhop::claims::explain()`]). It needs no credential
//!   beyond the token: it tells its holder what the stage would do with it, and
//!   spends nothing (a single-use token stays unused).
//!
//! The page is static and has no privileges of its own; these routes answer any
//! origin, like the rest of the HTTP API.

use super::{error, ApiError, AppState, JsonBody};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sockhop::claims::{Claims, Scope};
use sockhop::clock::Timestamp;
use sockhop::error::ErrorCode;
use sockhop::ops::connect::check_connect_token;

const PAGE: &str = include_str!("../../../console/index.html");
const SCRIPT: &str = include_str!("../../../console/console.js");
const STYLE: &str = include_str!("../../../console/console.css");
const CLIENT: &str = include_str!("../../../examples/lib/hotsock-lite.js");

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// The page may load only its own files; it talks to whatever stage its query
/// names (`wssUrl`, `httpUrl`), and nobody may frame it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self' ws: wss: http: https:; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'none'";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(page))
        .route("/console/", get(to_page))
        .route("/console/console.js", get(|| file(SCRIPT, JAVASCRIPT)))
        .route("/console/hotsock-lite.js", get(|| file(CLIENT, JAVASCRIPT)))
        .route(
            "/console/console.css",
            get(|| file(STYLE, "text/css; charset=utf-8")),
        )
        .route("/console/config", get(config))
        .route("/console/explain", post(explain))
}

fn headers(content_type: &'static str) -> [(HeaderName, &'static str); 4] {
    [
        (header::CONTENT_TYPE, content_type),
        // Always the copy this function carries: a new deploy shows at once.
        (header::CACHE_CONTROL, "no-cache"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ]
}

async fn page() -> Response {
    (
        headers("text/html; charset=utf-8"),
        [(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)],
        PAGE,
    )
        .into_response()
}

async fn file(body: &'static str, content_type: &'static str) -> Response {
    (headers(content_type), body).into_response()
}

/// `/console/` → `../console`, keeping the query (`wssUrl`, `httpUrl`).
async fn to_page(RawQuery(query): RawQuery) -> Response {
    let location = match query {
        Some(q) if !q.is_empty() => format!("../console?{q}"),
        _ => "../console".to_owned(),
    };
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response()
}

/// The WebSocket URL clients use: the management endpoint's, with its scheme
/// (`https://{api}.execute-api…/{stage}`, or an emulator's or the local
/// stage's `http://…`) turned into the WebSocket one.
pub fn websocket_url(management_endpoint: &str) -> String {
    let endpoint = management_endpoint.trim_end_matches('/');
    if let Some(rest) = endpoint.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = endpoint.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        endpoint.to_owned()
    }
}

/// `GET /console/config`.
async fn config(State(app): State<AppState>) -> Json<Value> {
    let codes: serde_json::Map<String, Value> = MEANINGS
        .iter()
        .map(|(code, meaning)| ((*code).to_owned(), json!(meaning)))
        .collect();
    Json(json!({
        "webSocketUrl": app.config.management_endpoint.as_deref().map(websocket_url),
        "errorCodes": codes,
    }))
}

#[derive(Deserialize)]
struct ExplainRequest {
    token: Option<String>,
    channel: Option<String>,
    event: Option<String>,
    key: Option<String>,
}

/// `POST /console/explain` (see the module's documentation).
async fn explain(
    State(app): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let request: ExplainRequest = serde_path_to_error::deserialize(body)
        .map_err(|e| error(ErrorCode::InvalidRequest, format!("invalid request: {e}")))?;
    let at = Timestamp::now();
    let now = at.secs();
    let token = request.token.as_deref().map(str::trim).unwrap_or_default();
    let verifier = &app.config.verifier;
    // A verified token's claims are explained even when it cannot open a
    // connection (a subscribe token, say): they are what it grants.
    let claims = verifier
        .verify(token, now)
        .ok()
        .and_then(|payload| Claims::parse(&payload).ok());
    let mut verdict = match check_connect_token(verifier, Some(token), now) {
        Ok(_) => None,
        Err(refusal) => Some((refusal.status, refusal.code, refusal.message)),
    };
    if verdict.is_none() {
        if let Some(claims) = &claims {
            let cx = sockhop::ops::Ctx::new(app, at);
            let used = sockhop::ops::single_use::is_spent(cx, claims).await?;
            if used {
                verdict = Some((
                    401,
                    "TOKEN_ALREADY_USED",
                    sockhop::ops::single_use::ALREADY_USED.to_owned(),
                ));
            }
        }
    }
    let mut token_result = json!({
        "ok": verdict.is_none(),
        "verified": claims.is_some(),
        "scopes": claims.as_ref().map(|c| c.scopes().iter().map(scope_name).collect::<Vec<_>>()),
        "singleUse": claims.as_ref().is_some_and(|c| c.single_use),
        "code": null, "status": null, "message": null, "meaning": null,
    });
    if let Some((status, code, message)) = verdict {
        token_result["code"] = json!(code);
        token_result["status"] = json!(status);
        token_result["message"] = json!(message);
        token_result["meaning"] = json!(meaning(code));
    }
    let channel = match (&claims, request.channel.as_deref()) {
        (Some(claims), Some(channel)) => serde_json::to_value(sockhop::claims::explain(
            claims,
            channel,
            request.event.as_deref().filter(|e| !e.is_empty()),
            request.key.as_deref().filter(|k| !k.is_empty()),
        ))
        .map_err(|_| sockhop::error::ProtocolError::internal())?,
        _ => Value::Null,
    };
    Ok(Json(json!({"token": token_result, "channel": channel})))
}

fn scope_name(scope: &Scope) -> &'static str {
    match scope {
        Scope::Connect => "connect",
        Scope::Subscribe => "subscribe",
        Scope::Umd => "umd",
    }
}

/// What a code means, in the words of docs/protocol.md's tables.
pub fn meaning(code: &str) -> Option<&'static str> {
    MEANINGS.iter().find(|(c, _)| *c == code).map(|(_, m)| *m)
}

/// Every stable code a client can meet: the refusals of a WebSocket upgrade,
/// then those of frames and HTTP requests ([`ErrorCode::ALL`]). A test keeps
/// it complete.
pub const MEANINGS: &[(&str, &str)] = &[
    ("TOKEN_MISSING", "The WebSocket URL carries no token query parameter."),
    ("TOKEN_MALFORMED", "Not a compact JWT, or its header's typ is not JWT."),
    ("TOKEN_ALGORITHM_NOT_ALLOWED", "The header's alg is not the method of a signing key of this stage."),
    ("TOKEN_UNKNOWN_KEY_ID", "The header's kid names no signing key of this stage."),
    ("TOKEN_BAD_SIGNATURE", "The signature does not verify with this stage's key: the token was signed with another key, or altered."),
    ("TOKEN_EXPIRED", "Its exp has passed (there is no leeway); sign a fresh token."),
    ("TOKEN_NOT_YET_VALID", "Its nbf is still ahead."),
    ("TOKEN_WRONG_AUDIENCE", "The stage requires an audience that the aud claim does not carry."),
    ("TOKEN_WRONG_ISSUER", "The stage requires an issuer that the iss claim does not match."),
    ("TOKEN_MISSING_EXPIRY", "The token has no numeric exp claim, which is required."),
    ("TOKEN_INVALID_CLAIMS", "A claim has the wrong type or breaks a rule: no known scope, uid over 128 characters, umd over 1 KiB, singleUse without jti, a #regex: key that does not compile, or an invalid directive."),
    ("TOKEN_ALREADY_USED", "A single-use token that was already used: each one opens one connection."),
    ("TOKEN_SCOPE_NOT_CONNECT", "A valid token without the connect scope (a subscribe or umd token cannot open a connection)."),
    ("TOKEN_CONNECTION_ID_NOT_ALLOWED", "The token carries connectionId: it is bound to a connection, so it never opens one."),
    ("SUBSCRIBE_PERMISSION_DENIED", "No subscribe grant for the channel: no matching key sets subscribe to true, or one sets it to false."),
    ("INVALID_SUBSCRIBE_TOKEN", "The subscribe token is malformed, badly signed, expired, already used, without the subscribe scope, or for another connection or uid."),
    ("ALREADY_SUBSCRIBED", "This connection is subscribed to the channel already."),
    ("NOT_SUBSCRIBED", "The command needs a subscription to the channel (unsubscribe, history, reactions)."),
    ("PRESENCE_CHANNEL_USER_ID_REQUIRED", "A presence channel (presence.*) needs a uid in the token."),
    ("PRESENCE_CHANNEL_CAPACITY_REACHED", "The presence channel's member list is full (100 KB)."),
    ("INVALID_MESSAGE", "The frame is not JSON, not an object, or a field has the wrong type."),
    ("UNKNOWN_COMMAND", "A hotsock.* event that is not a client command."),
    ("INVALID_CHANNEL", "The channel is missing or malformed: 1-256 characters, none of * # , or whitespace."),
    ("INVALID_EVENT", "The event is missing or malformed: 1-128 characters, no *, not starting with # or hotsock. (reserved)."),
    ("INVALID_STORAGE_KEY", "The storage key is missing or malformed: 1-128 characters, none of * # , or whitespace."),
    ("INVALID_REACTION", "The reaction is blank, over 100 bytes, or contains #."),
    ("MESSAGE_TOO_LARGE", "data is over 32 KiB, or the frame over 128 KiB."),
    ("UMD_TOO_LARGE", "umd is over 1 KiB of JSON."),
    ("PUBLISH_PERMISSION_DENIED", "Neither publish (while subscribed) nor broadcast is granted for this event on this channel, or publish is explicitly false."),
    ("REACTION_NOT_ALLOWED", "The message's event does not allow this reaction (its react directive)."),
    ("MESSAGE_NOT_FOUND", "No stored, unexpired message with that id on the channel within this subscription's history."),
    ("REACTION_USER_ID_REQUIRED", "Reacting needs a uid in the token."),
    ("STORAGE_PERMISSION_DENIED", "No get or set grant for this storage key."),
    ("INVALID_UMD_TOKEN", "The umd token is missing, malformed, badly signed, expired, already used, without the umd scope, or for another connection or uid."),
    ("UMD_UPDATE_NOT_ALLOWED", "The umd token grants no umdUpdate on the channel (or, without a channel, carries no umdUpdate claim)."),
    ("GET_INFO_PERMISSION_DENIED", "getChannelInfo needs the getInfo grant on the channel."),
    ("INVALID_SCHEDULE_EXPRESSION", "scheduleExpression is not at(YYYY-MM-DDTHH:MM:SS), or names no such date."),
    ("INVALID_SCHEDULE_TIMEZONE", "scheduleExpressionTimezone is not an IANA timezone."),
    ("SCHEDULE_IN_PAST", "The scheduled time is not in the future."),
    ("SCHEDULE_PERMISSION_DENIED", "No scheduleBefore grant covering the scheduled time."),
    ("UNAUTHORIZED", "Missing or wrong credentials: the connection's id and secret, or the server API key."),
    ("FORBIDDEN", "Unknown connection, or a wrong connection secret."),
    ("NOT_FOUND", "No such HTTP operation."),
    ("INVALID_REQUEST", "A malformed HTTP body, cursor or field."),
    ("INVALID_RESUME_POSITION", "A subscribe's data.resume is neither true nor {\"position\": <message id>} (Sockhop's resume extension)."),
    ("RESUME_POSITION_AHEAD", "The resume position is later than anything the channel has sent."),
    ("RESUME_POSITION_UNKNOWN", "The resume position is recent but not one of this channel's: another channel's, or made up."),
    ("INTERNAL_ERROR", "A failure inside the stage (logged there); try again."),
];

#[cfg(test)]
mod tests {
    use super::*;
    use sockhop::token::TokenError;

    #[test]
    fn every_code_a_client_can_meet_has_a_meaning_and_is_documented() {
        let protocol = include_str!("../../../docs/protocol.md");
        let token_codes = [
            TokenError::Malformed,
            TokenError::NotJwtType,
            TokenError::UnsupportedAlgorithm,
            TokenError::UnknownKeyId,
            TokenError::BadSignature,
            TokenError::Expired,
            TokenError::NotYetValid,
            TokenError::WrongAudience,
            TokenError::WrongIssuer,
            TokenError::MissingExpiry,
        ]
        .map(|e| e.code());
        let refusals = [
            "TOKEN_MISSING",
            "TOKEN_INVALID_CLAIMS",
            "TOKEN_ALREADY_USED",
            "TOKEN_SCOPE_NOT_CONNECT",
            "TOKEN_CONNECTION_ID_NOT_ALLOWED",
        ];
        let codes: Vec<&str> = token_codes
            .into_iter()
            .chain(refusals)
            .chain(ErrorCode::ALL.iter().map(ErrorCode::as_str))
            .collect();
        for (code, _) in MEANINGS {
            assert!(codes.contains(code), "{code} is no code of the stage");
        }
        for code in codes {
            assert!(meaning(code).is_some(), "{code} has no meaning");
            assert!(
                protocol.contains(&format!("`{code}`")),
                "{code} is not in docs/protocol.md"
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for (code, text) in MEANINGS {
            assert!(seen.insert(code), "{code} twice");
            assert!(text.ends_with('.'), "{code}: {text}");
        }
    }

    #[test]
    fn the_websocket_url_is_the_management_endpoints() {
        assert_eq!(
            websocket_url("https://abc.execute-api.eu-west-1.amazonaws.com/v1"),
            "wss://abc.execute-api.eu-west-1.amazonaws.com/v1"
        );
        assert_eq!(
            websocket_url("http://127.0.0.1:4566/_aws/execute-api/abc/v1/"),
            "ws://127.0.0.1:4566/_aws/execute-api/abc/v1"
        );
        assert_eq!(
            websocket_url("http://127.0.0.1:4000/v1"),
            "ws://127.0.0.1:4000/v1"
        );
    }

    #[test]
    fn the_page_references_its_assets_relative_to_console() {
        for asset in ["console/console.css", "console/console.js"] {
            assert!(PAGE.contains(&format!("\"{asset}\"")), "{asset}");
        }
        assert!(SCRIPT.contains("from \"./hotsock-lite.js\""));
    }
}
