//! The Client HTTP API (`/connection/<op>`) and the server publish API
//! (`/publish`), one axum route per operation: behind a Lambda function URL in
//! AWS, mounted at `/` by the local stage. Each route parses its request into
//! the same command set as WebSocket frames and hands it to the driver.
//! The web console (`/console`, [`console`]) is served from here too.

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lambda_http::RequestExt;
use serde::Deserialize;
use serde_json::{json, Value};
use sockhop::clock::Timestamp;
use sockhop::driver;
use sockhop::error::{ErrorCode, ProtocolError};
use sockhop::ops::dispatch::Request as Command;
use sockhop::ops::publish::parse_server_request;
use sockhop::ops::{connect, load_connection, Connection, Ctx};
use sockhop::protocol::{unknown_http_operation, HttpOperation};
use sockhop::pubsub::{Origin, TRIGGER_CLIENT_HTTP, TRIGGER_SERVER_HTTP};
use sockhop::App;
use tower_http::cors::{Any, CorsLayer};

pub mod console;

type AppState = &'static App;

/// Browsers call these routes from the app's own origin.
pub fn any_origin() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods(Any)
        .allow_headers(Any)
}

pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/connection/{operation}", post(client_operation))
        .route("/publish", post(server_publish))
        .route("/channels/{name}", get(channel_info))
        .route("/channels/{name}/storage", get(channel_storage))
        .merge(console::routes())
        .layer(any_origin())
        .with_state(app)
}

/// The router as the Lambda function runs it: each request logs its metrics
/// line, as every other function's invocations do ([`sockhop::lambda::run`]).
pub fn lambda_router(app: AppState) -> Router {
    router(app).layer(axum::middleware::from_fn(
        move |request: Request, next: axum::middleware::Next| async move {
            let request_id = lambda_request_id(request.extensions());
            let invocation = sockhop::lambda::Invocation::start(app, request_id);
            let response = next.run(request).await;
            invocation.log_end(app);
            response
        },
    ))
}

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

/// The calling connection, proven by `connectionId` and `connectionSecret` in
/// the query string.
pub struct Caller(Connection, Origin);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Credentials {
    connection_id: Option<String>,
    connection_secret: Option<String>,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let Query(credentials) = Query::<Credentials>::from_request_parts(parts, app)
            .await
            .map_err(|e| error(ErrorCode::InvalidRequest, e.body_text()))?;
        let (Some(id), Some(secret)) = (credentials.connection_id, credentials.connection_secret)
        else {
            return Err(error(
                ErrorCode::Unauthorized,
                "connectionId and connectionSecret query parameters are required",
            ));
        };
        let forbidden = || error(ErrorCode::Forbidden, "unknown connection or wrong secret");
        let cx = Ctx::new(app, Timestamp::now());
        let connection = load_connection(cx, &id).await.map_err(|e| match e.code {
            ErrorCode::Unauthorized => forbidden(),
            _ => ApiError(e),
        })?;
        if !connect::secret_matches(&connection.item, &secret) {
            return Err(forbidden());
        }
        let origin = http_origin(TRIGGER_CLIENT_HTTP, &parts.headers, &parts.extensions);
        Ok(Caller(connection, origin))
    }
}

/// The request body as JSON (an empty body counts as `{}`); anything else is
/// `INVALID_REQUEST`.
pub struct JsonBody(Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let raw = String::from_request(request, state)
            .await
            .map_err(|e| error(ErrorCode::InvalidRequest, e.body_text()))?;
        let raw = if raw.trim().is_empty() { "{}" } else { &raw };
        serde_json::from_str(raw)
            .map(JsonBody)
            .map_err(|e| error(ErrorCode::InvalidRequest, format!("invalid JSON body: {e}")))
    }
}

/// `POST /connection/{operation}`: one of [`HttpOperation`] for the caller,
/// authenticated before the name is looked at (an unknown one is `NOT_FOUND`,
/// its body unread). 202 for what is queued (`publishMessage`,
/// `channelStorageSet`), else 200.
async fn client_operation(
    State(app): State<AppState>,
    Path(operation): Path<String>,
    Caller(connection, origin): Caller,
    body: Result<JsonBody, ApiError>,
) -> Result<Response, ApiError> {
    let operation =
        HttpOperation::from_name(&operation).ok_or_else(|| unknown_http_operation(&operation))?;
    let JsonBody(body) = body?;
    let request = Command::Client {
        connection: &connection,
        command: operation.parse(body)?,
    };
    let reply = driver::command_from(app, Timestamp::now(), request, &origin).await?;
    let status = if operation.accepted_later() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(reply)).into_response())
}

/// Who sent an HTTP request, for backend events: the address a function URL
/// (or proxy) forwarded, the `User-Agent`, and the request id of the Lambda
/// invocation that accepted it (one of its own where no Lambda runs it: the
/// local stage).
fn http_origin(trigger: &str, headers: &HeaderMap, extensions: &Extensions) -> Origin {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Origin {
        // The last address is the one the function URL saw; earlier ones are
        // the client's to claim.
        source_ip: header("x-forwarded-for")
            .and_then(|f| f.rsplit(',').next().map(|ip| ip.trim().to_owned())),
        user_agent: header("user-agent"),
        ..Origin::new(trigger, Some(lambda_request_id(extensions)))
    }
}

/// The Lambda request id `lambda_http` puts on each request, or a fresh id.
fn lambda_request_id(extensions: &Extensions) -> String {
    extensions
        .lambda_context_ref()
        .map(|context| context.request_id.clone())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| ulid::Ulid::new().to_string())
}

/// The `Authorization: Bearer <key>` a request carries.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// `POST /publish` (202): the server publish API, the same message format as
/// the publish function.
async fn server_publish(
    State(app): State<AppState>,
    headers: HeaderMap,
    extensions: Extensions,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    require_api_key(app, &headers).await?;
    let request = parse_server_request(body)?;
    let origin = http_origin(TRIGGER_SERVER_HTTP, &headers, &extensions);
    let reply =
        driver::command_from(app, Timestamp::now(), Command::Server(request), &origin).await?;
    Ok((StatusCode::ACCEPTED, Json(reply)).into_response())
}

/// Refuses a server API request without one of the API keys (a key store
/// that cannot be read is a 500, not a misleading 401).
async fn require_api_key(app: AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let refused = || {
        error(
            ErrorCode::Unauthorized,
            "a valid Bearer API key is required",
        )
    };
    let Some(presented) = bearer(headers) else {
        return Err(refused());
    };
    match app.api_keys.accepts(presented).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(refused()),
        Err(err) => {
            tracing::error!(error = %err, "API keys unreadable");
            Err(ApiError(ProtocolError::internal()))
        }
    }
}

/// `GET /channels/{name}` with an API key: the channel's count and members.
async fn channel_info(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_api_key(app, &headers).await?;
    let cx = Ctx::new(app, Timestamp::now());
    Ok(Json(
        sockhop::ops::channel_info::for_server(cx, &name).await?,
    ))
}

/// The query of the admin storage read: `keys` comma-separated, `after` a key.
#[derive(Deserialize)]
struct StorageQuery {
    keys: Option<String>,
    after: Option<String>,
}

/// `GET /channels/{name}/storage` with an API key: the channel's entries.
async fn channel_storage(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<StorageQuery>,
) -> Result<Json<Value>, ApiError> {
    require_api_key(app, &headers).await?;
    let (keys, after) = sockhop::protocol::parse_storage_read(
        &name,
        query.keys.as_deref(),
        query.after.as_deref(),
    )?;
    let cx = Ctx::new(app, Timestamp::now());
    let items =
        sockhop::ops::storage::list_for_server(cx, &name, keys.as_deref(), after.as_deref())
            .await?;
    Ok(Json(items))
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
        let accepted = |value: &str| {
            bearer(&headers(value)).is_some_and(|k| sockhop::api_keys::matches_any(&keys, k))
        };
        assert!(accepted("Bearer key-one"));
        assert!(accepted("Bearer key-two"));
        assert!(!accepted("Bearer key-three"));
        assert!(!accepted("key-one"));
        assert!(!accepted("Bearer key-on"));
        assert!(bearer(&HeaderMap::new()).is_none());
        assert!(!sockhop::api_keys::matches_any(&[], ""));
    }
}
