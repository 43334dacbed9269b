//! The Client HTTP API (`/connection/<op>`), served by one axum router: behind
//! a Lambda function URL in AWS, mounted at `/` by the local stage.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sockhop::error::{ErrorCode, ProtocolError};
use sockhop::ops::{connect, history, load_connection, publish, reactions, Connection};
use sockhop::protocol::{events, ReactionAction};
use sockhop::App;
use tower_http::cors::{Any, CorsLayer};

/// An error as JSON with the status its code maps to.
pub struct ApiError(ProtocolError);

impl From<ProtocolError> for ApiError {
    fn from(e: ProtocolError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut error = json!({"code": self.0.code.as_str(), "message": self.0.message});
        if let Some(channel) = &self.0.channel {
            error["channel"] = json!(channel);
        }
        (status, Json(json!({ "error": error }))).into_response()
    }
}

fn error(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError(ProtocolError::new(code, message))
}

pub fn router(app: &'static App) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods(Any)
        .allow_headers(Any);
    Router::new()
        .route("/connection/{op}", post(connection_op))
        .route("/publish", post(server_publish))
        .layer(cors)
        .with_state(app)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Credentials {
    connection_id: Option<String>,
    connection_secret: Option<String>,
}

/// The calling connection, proven by its id and secret.
async fn authenticate(app: &App, credentials: Credentials) -> Result<Connection, ApiError> {
    let (Some(id), Some(secret)) = (credentials.connection_id, credentials.connection_secret)
    else {
        return Err(error(
            ErrorCode::Unauthorized,
            "connectionId and connectionSecret query parameters are required",
        ));
    };
    let forbidden = || error(ErrorCode::Forbidden, "unknown connection or wrong secret");
    let connection = load_connection(app, &id).await.map_err(|e| match e.code {
        ErrorCode::Unauthorized => forbidden(),
        _ => ApiError(e),
    })?;
    if !connect::secret_matches(&connection.item, &secret) {
        return Err(forbidden());
    }
    Ok(connection)
}

fn body<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    let raw = if raw.trim().is_empty() { "{}" } else { raw };
    serde_json::from_str(raw)
        .map_err(|e| error(ErrorCode::InvalidRequest, format!("invalid JSON body: {e}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListReactionsRequest {
    channel: String,
    message_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReactionRequest {
    message_id: String,
    reaction: String,
    action: ReactionAction,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublishMessageRequest {
    channel: String,
    event: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    eager_id_generation: bool,
}

async fn connection_op(
    State(app): State<&'static App>,
    Path(op): Path<String>,
    Query(credentials): Query<Credentials>,
    raw: String,
) -> Result<Response, ApiError> {
    let connection = authenticate(app, credentials).await?;
    match op.as_str() {
        "listMessages" => {
            let request: history::ListMessagesRequest = body(&raw)?;
            let page = history::list_messages(app, &connection, &request).await?;
            Ok((StatusCode::OK, Json(page)).into_response())
        }
        "listReactions" => {
            let request: ListReactionsRequest = body(&raw)?;
            let reply =
                reactions::list_reactions(app, &connection, &request.channel, &request.message_id)
                    .await?;
            Ok((StatusCode::OK, Json(reply)).into_response())
        }
        "publishMessage" => {
            let request: PublishMessageRequest = body(&raw)?;
            sockhop::names::validate_channel(&request.channel)?;
            if request.event == events::MESSAGE_REACTION {
                let reaction: ReactionRequest = serde_json::from_value(request.data)
                    .map_err(|e| error(ErrorCode::InvalidRequest, format!("reaction data: {e}")))?;
                reactions::react(
                    app,
                    &connection,
                    &request.channel,
                    &reaction.message_id,
                    &reaction.reaction,
                    reaction.action,
                )
                .await?;
                let reply = json!({"channel": request.channel, "event": request.event});
                return Ok((StatusCode::ACCEPTED, Json(reply)).into_response());
            }
            let id = publish::publish_from_client(
                app,
                &connection,
                &request.channel,
                &request.event,
                request.data,
            )
            .await?;
            let mut reply = json!({"channel": request.channel, "event": request.event});
            if request.eager_id_generation {
                reply["id"] = json!(id);
            }
            Ok((StatusCode::ACCEPTED, Json(reply)).into_response())
        }
        other => Err(error(
            ErrorCode::NotFound,
            format!("unknown operation {other:?}"),
        )),
    }
}

/// Whether the request carries one of the stage's API keys as a Bearer token.
/// With no keys configured the server API is closed.
pub fn api_key_matches(keys: &[String], headers: &HeaderMap) -> bool {
    let Some(given) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    // Compare every key in constant time so timing tells nothing.
    keys.iter().fold(false, |found, key| {
        let same = key.len() == given.len()
            && key
                .bytes()
                .zip(given.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        found | same
    })
}

/// `POST /publish`: the server publish API, the same message format as the
/// publish function.
async fn server_publish(
    State(app): State<&'static App>,
    headers: HeaderMap,
    raw: String,
) -> Result<Response, ApiError> {
    if !api_key_matches(&app.config.api_keys, &headers) {
        return Err(error(
            ErrorCode::Unauthorized,
            "a valid Bearer API key is required",
        ));
    }
    let request: publish::ServerPublish = body(&raw)?;
    let reply = publish::publish_from_server(app, &request).await?;
    Ok((StatusCode::ACCEPTED, Json(reply)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::AUTHORIZATION,
            value.parse().expect("header"),
        );
        h
    }

    #[test]
    fn api_keys_are_bearer_tokens() {
        let keys = vec!["key-one".to_owned(), "key-two".to_owned()];
        assert!(api_key_matches(&keys, &headers("Bearer key-one")));
        assert!(api_key_matches(&keys, &headers("Bearer key-two")));
        assert!(!api_key_matches(&keys, &headers("Bearer key-three")));
        assert!(!api_key_matches(&keys, &headers("key-one")));
        assert!(!api_key_matches(&keys, &headers("Bearer key-on")));
        assert!(!api_key_matches(&keys, &HeaderMap::new()));
        assert!(!api_key_matches(&[], &headers("Bearer ")));
    }
}
