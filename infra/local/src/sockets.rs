//! The WebSocket endpoint and the management API, emulating API Gateway: every
//! socket event becomes the Lambda event AWS would send to the same handler.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sockhop::gateway::{PostError, Sockets};
use sockhop::App;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};

/// API Gateway's per-message limit for WebSocket frames.
/// What the socket reads at all. Frames between the protocol's 128 KiB and this
/// reach the handler, which answers `MESSAGE_TOO_LARGE` and keeps the socket;
/// beyond it the socket is closed with 1009 (message too big), with a Close frame.
const MAX_READ_BYTES: usize = 1024 * 1024;

/// Bytes of frames a socket may have waiting to be written. A client that
/// reads slower than its channels publish reaches it and is closed (1008), so
/// one stalled reader costs bounded memory and never holds up the others.
pub const MAX_QUEUED_BYTES: usize = 4 * 1024 * 1024;
/// How long one frame may take to be written before the reader counts as stalled.
const WRITE_PATIENCE: Duration = Duration::from_secs(10);

#[derive(Debug)]
enum Outbound {
    Text(String),
    Close,
}

/// An open socket's outgoing queue, bounded by [`MAX_QUEUED_BYTES`].
struct Lane {
    tx: mpsc::UnboundedSender<Outbound>,
    queued: Arc<AtomicUsize>,
    /// Told when the queue overflows: the socket closes as a slow consumer.
    overflow: Arc<Notify>,
}

/// A socket known to the stage: pending while `$connect` runs (posts queue
/// up, as the greeting may race the upgrade), then open.
enum Entry {
    Pending(Vec<Outbound>),
    Open(Lane),
}

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
enum Refused {
    Unknown,
    Overflow,
}

pub struct Registry {
    sockets: Mutex<HashMap<String, Entry>>,
    idle_timeout: Duration,
    max_lifetime: Duration,
    /// Client frames whose `$default` handler has not finished yet.
    frames_in_hand: std::sync::atomic::AtomicUsize,
}

impl Registry {
    pub fn new(idle_timeout: Duration, max_lifetime: Duration) -> Self {
        Registry {
            sockets: Mutex::new(HashMap::new()),
            idle_timeout,
            max_lifetime,
            frames_in_hand: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// How many client frames are being handled right now (frames run
    /// concurrently, as Lambda invokes `$default` concurrently): with an idle
    /// queue, zero means every frame already caused has been posted.
    pub fn frames_in_hand(&self) -> usize {
        self.frames_in_hand
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.sockets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a frame for the socket (or for when it opens).
    fn send(&self, id: &str, message: Outbound) -> Result<(), Refused> {
        let mut sockets = self.lock();
        match sockets.get_mut(id) {
            Some(Entry::Pending(queue)) => {
                queue.push(message);
                Ok(())
            }
            Some(Entry::Open(lane)) => {
                if let Outbound::Text(text) = &message {
                    let queued = lane.queued.fetch_add(text.len(), Ordering::Relaxed);
                    if queued + text.len() > MAX_QUEUED_BYTES {
                        lane.queued.fetch_sub(text.len(), Ordering::Relaxed);
                        lane.overflow.notify_one();
                        return Err(Refused::Overflow);
                    }
                }
                lane.tx.send(message).map_err(|_| Refused::Unknown)
            }
            None => Err(Refused::Unknown),
        }
    }

    fn open(&self, id: &str, lane: Lane) {
        let mut sockets = self.lock();
        if let Some(Entry::Pending(queue)) = sockets.remove(id) {
            for message in queue {
                if let Outbound::Text(text) = &message {
                    lane.queued.fetch_add(text.len(), Ordering::Relaxed);
                }
                let _ = lane.tx.send(message);
            }
        }
        sockets.insert(id.to_owned(), Entry::Open(lane));
    }

    fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    pub fn close_all(&self) {
        for entry in self.lock().values() {
            if let Entry::Open(lane) = entry {
                let _ = lane.tx.send(Outbound::Close);
            }
        }
    }

    pub fn count(&self) -> usize {
        self.lock().len()
    }
}

/// The stage's sockets as the app's [`Sockets`]: a frame goes straight to the
/// socket's outgoing queue, as API Gateway's management API would deliver it,
/// without an HTTP round trip per recipient. (The management API over HTTP stays
/// on `/v1/@connections/{id}` for the SDK adapter's tests.)
pub struct LocalSockets(pub Arc<Registry>);

impl Sockets for LocalSockets {
    fn post<'a>(
        &'a self,
        connection_id: &'a str,
        frame: &'a str,
    ) -> BoxFuture<'a, Result<(), PostError>> {
        let sent = self.0.send(connection_id, Outbound::Text(frame.to_owned()));
        Box::pin(async move { sent.map_err(post_error) })
    }

    fn close<'a>(&'a self, connection_id: &'a str) -> BoxFuture<'a, Result<(), PostError>> {
        let sent = self.0.send(connection_id, Outbound::Close);
        Box::pin(async move { sent.map_err(post_error) })
    }

    fn is_open<'a>(&'a self, connection_id: &'a str) -> BoxFuture<'a, Result<bool, PostError>> {
        let open = self.0.lock().contains_key(connection_id);
        Box::pin(async move { Ok(open) })
    }
}

fn post_error(refused: Refused) -> PostError {
    match refused {
        Refused::Unknown => PostError::Gone,
        Refused::Overflow => PostError::Failed("the socket's outgoing queue is full".into()),
    }
}

#[derive(Clone)]
struct SocketState {
    app: &'static App,
    registry: Arc<Registry>,
    addr: SocketAddr,
    /// The access key id the stage's own SDK clients sign with (random per
    /// run): management calls signed with anything else are refused, so nobody
    /// who merely reaches the port can post to or close others' sockets.
    access_key_id: Arc<str>,
}

pub fn router(
    app: &'static App,
    registry: Arc<Registry>,
    addr: SocketAddr,
    access_key_id: &str,
) -> Router {
    let state = SocketState {
        app,
        registry,
        addr,
        access_key_id: access_key_id.into(),
    };
    let stage = crate::STAGE_NAME;
    Router::new()
        .route(&format!("/{stage}"), get(upgrade))
        .route(
            &format!("/{stage}/@connections/{{id}}"),
            post(post_to_connection)
                .get(get_connection)
                .delete(delete_connection),
        )
        .with_state(state)
}

/// An API-Gateway-style connection id: 16 characters of URL-safe Base64.
fn new_connection_id() -> String {
    let bytes: [u8; 10] = rand::random();
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The request context API Gateway puts on every WebSocket event.
fn request_context(
    state: &SocketState,
    connection_id: &str,
    route: &str,
    event_type: &str,
    connected_at: i64,
) -> Value {
    let now = now_ms();
    json!({
        "routeKey": route,
        "eventType": event_type,
        "messageDirection": "IN",
        "stage": crate::STAGE_NAME,
        "connectedAt": connected_at,
        "requestTimeEpoch": now,
        "requestTime": sockhop::protocol::format_rfc3339_utc(now / 1000).unwrap_or_default(),
        "requestId": ulid::Ulid::new().to_string(),
        "extendedRequestId": ulid::Ulid::new().to_string(),
        "messageId": ulid::Ulid::new().to_string(),
        "identity": {"sourceIp": "127.0.0.1"},
        "domainName": state.addr.to_string(),
        "connectionId": connection_id,
        "apiId": "local",
    })
}

fn event(value: Value) -> ApiGatewayWebsocketProxyRequest {
    serde_json::from_value(value).expect("the stage builds well-formed API Gateway events")
}

async fn upgrade(
    State(state): State<SocketState>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let connection_id = new_connection_id();
    let connected_at = now_ms();
    let header_map: BTreeMap<String, String> = headers
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.to_string(), v.to_owned())))
        .collect();
    let multi_query: BTreeMap<&String, Vec<&String>> =
        query.iter().map(|(k, v)| (k, vec![v])).collect();
    let connect_event = event(json!({
        "headers": header_map,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "requestContext": request_context(&state, &connection_id, "$connect", "CONNECT", connected_at),
        "isBase64Encoded": false,
    }));
    state
        .registry
        .lock()
        .insert(connection_id.clone(), Entry::Pending(Vec::new()));
    // `$connect` runs to its end even if the client leaves meanwhile (this
    // request is then dropped), and is followed by `$disconnect`, as in API
    // Gateway: nothing the connect wrote is left behind.
    let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
    let connect_state = state.clone();
    let id = connection_id.clone();
    tokio::spawn(async move {
        let answer = sockhop_connect::handle(connect_state.app, connect_event).await;
        let accepted = matches!(&answer, Ok(a) if a.status_code == 200);
        if answer_tx.send(answer).is_err() && accepted {
            connect_state.registry.remove(&id);
            disconnected(&connect_state, &id, connected_at, 1006, "Connection lost").await;
        }
    });
    let answer = match answer_rx.await {
        Ok(Ok(answer)) => answer,
        Ok(Err(err)) => {
            state.registry.remove(&connection_id);
            tracing::error!(error = %err, "$connect handler failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
        Err(_) => {
            state.registry.remove(&connection_id);
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
    };
    if answer.status_code != 200 {
        state.registry.remove(&connection_id);
        let status =
            StatusCode::from_u16(answer.status_code as u16).unwrap_or(StatusCode::FORBIDDEN);
        let body = match answer.body {
            Some(aws_lambda_events::encodings::Body::Text(text)) => text,
            _ => String::new(),
        };
        return (status, [("content-type", "application/json")], body).into_response();
    }
    let failed_state = state.clone();
    let failed_id = connection_id.clone();
    ws.max_message_size(MAX_READ_BYTES)
        .on_failed_upgrade(move |err| {
            // Accepted, then the client left before the socket opened.
            tracing::debug!(error = %err, "upgrade failed after $connect");
            failed_state.registry.remove(&failed_id);
            tokio::spawn(async move {
                disconnected(
                    &failed_state,
                    &failed_id,
                    connected_at,
                    1006,
                    "Connection lost",
                )
                .await;
            });
        })
        .on_upgrade(move |socket| run_socket(state, socket, connection_id, connected_at))
}

async fn run_socket(
    state: SocketState,
    socket: WebSocket,
    connection_id: String,
    connected_at: i64,
) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let overflow = Arc::new(Notify::new());
    state.registry.open(
        &connection_id,
        Lane {
            tx,
            queued: queued.clone(),
            overflow: overflow.clone(),
        },
    );
    let started = Instant::now();
    let mut last_activity = Instant::now();
    let mut disconnect_status = 1005;
    let mut reason = "Client closed the connection";
    loop {
        let idle_left = state
            .registry
            .idle_timeout
            .saturating_sub(last_activity.elapsed());
        let life_left = state
            .registry
            .max_lifetime
            .saturating_sub(started.elapsed());
        tokio::select! {
            outbound = rx.recv() => match outbound {
                Some(Outbound::Text(text)) => {
                    last_activity = Instant::now();
                    queued.fetch_sub(text.len(), Ordering::Relaxed);
                    match tokio::time::timeout(WRITE_PATIENCE, sink.send(Message::Text(text.into()))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break,
                        Err(_) => {
                            // Not even a Close frame would get through.
                            disconnect_status = 1006;
                            reason = "Slow consumer: a frame waited too long to be written";
                            break;
                        }
                    }
                }
                Some(Outbound::Close) | None => {
                    let _ = sink.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
                    disconnect_status = 1000;
                    reason = "Connection deleted by the management API";
                    break;
                }
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    last_activity = Instant::now();
                    dispatch(&state, &connection_id, connected_at, text.to_string());
                }
                Some(Ok(Message::Binary(bytes))) => {
                    last_activity = Instant::now();
                    dispatch(&state, &connection_id, connected_at, String::from_utf8_lossy(&bytes).into_owned());
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => last_activity = Instant::now(),
                Some(Ok(Message::Close(frame))) => {
                    disconnect_status = frame.as_ref().map_or(1005, |f| f.code);
                    // Answer the closing handshake, echoing the client's code.
                    // (The socket may already have queued that reply itself; then the
                    // send fails and the flush writes the queued one.)
                    let reply = frame.map(|f| CloseFrame { code: f.code, reason: "".into() });
                    let _ = sink.send(Message::Close(reply)).await;
                    let _ = sink.flush().await;
                    break;
                }
                Some(Err(err)) => {
                    // A protocol violation (oversize message, invalid UTF-8, a
                    // reserved opcode) still gets a Close frame saying why.
                    let (code, why) = close_for(&err);
                    let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: why.into() }))).await;
                    disconnect_status = code;
                    reason = why;
                    break;
                }
                None => {
                    disconnect_status = 1006;
                    reason = "Connection lost";
                    break;
                }
            },
            _ = overflow.notified() => {
                let _ = tokio::time::timeout(WRITE_PATIENCE, sink.send(Message::Close(Some(CloseFrame { code: 1008, reason: "Slow consumer".into() })))).await;
                disconnect_status = 1008;
                reason = "Slow consumer: the outgoing queue overflowed";
                break;
            }
            _ = tokio::time::sleep(idle_left) => {
                let _ = sink.send(Message::Close(Some(CloseFrame { code: 1001, reason: "Going away".into() }))).await;
                disconnect_status = 1001;
                reason = "Idle timeout";
                break;
            }
            _ = tokio::time::sleep(life_left) => {
                let _ = sink.send(Message::Close(Some(CloseFrame { code: 1001, reason: "Going away".into() }))).await;
                disconnect_status = 1001;
                reason = "Maximum connection lifetime reached";
                break;
            }
        }
    }
    state.registry.remove(&connection_id);
    // What was queued goes with the socket.
    drop(rx);
    disconnected(
        &state,
        &connection_id,
        connected_at,
        disconnect_status,
        reason,
    )
    .await;
}

/// The `$disconnect` event for a connection that ended.
async fn disconnected(
    state: &SocketState,
    connection_id: &str,
    connected_at: i64,
    status: u16,
    reason: &str,
) {
    let mut context = request_context(
        state,
        connection_id,
        "$disconnect",
        "DISCONNECT",
        connected_at,
    );
    context["disconnectStatusCode"] = json!(status);
    context["disconnectReason"] = json!(reason);
    let disconnect_event = event(json!({"requestContext": context, "isBase64Encoded": false}));
    if let Err(err) = sockhop_disconnect::handle(state.app, disconnect_event).await {
        tracing::error!(error = %err, "$disconnect handler failed");
    }
}

/// Each frame is its own invocation, run concurrently like API Gateway does,
/// so ordering guarantees are tested against the real race.
fn dispatch(state: &SocketState, connection_id: &str, connected_at: i64, body: String) {
    let frame_event = event(json!({
        "requestContext": request_context(state, connection_id, "$default", "MESSAGE", connected_at),
        "body": body,
        "isBase64Encoded": false,
    }));
    let app = state.app;
    let registry = state.registry.clone();
    registry
        .frames_in_hand
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    tokio::spawn(async move {
        if let Err(err) = sockhop_default::handle(app, frame_event).await {
            tracing::error!(error = %err, "$default handler failed");
        }
        registry
            .frames_in_hand
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    });
}

fn gone() -> Response {
    (
        StatusCode::GONE,
        [
            ("x-amzn-errortype", "GoneException"),
            ("content-type", "application/json"),
        ],
        json!({"message": null}).to_string(),
    )
        .into_response()
}

/// Whether a management call was signed by this stage's own clients.
fn signed_by_stage(state: &SocketState, headers: &HeaderMap) -> bool {
    let credential = format!("Credential={}/", state.access_key_id);
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(&credential))
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        [("content-type", "application/json")],
        json!({"message": "Forbidden"}).to_string(),
    )
        .into_response()
}

async fn post_to_connection(
    State(state): State<SocketState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !signed_by_stage(&state, &headers) {
        return forbidden();
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    match state.registry.send(&id, Outbound::Text(text)) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(Refused::Unknown) => gone(),
        Err(Refused::Overflow) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("x-amzn-errortype", "LimitExceededException")],
            json!({"message": "the connection's outgoing queue is full"}).to_string(),
        )
            .into_response(),
    }
}

async fn get_connection(
    State(state): State<SocketState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !signed_by_stage(&state, &headers) {
        return forbidden();
    }
    if state.registry.lock().contains_key(&id) {
        (
            StatusCode::OK,
            axum::Json(json!({"identity": {"sourceIp": "127.0.0.1"}})),
        )
            .into_response()
    } else {
        gone()
    }
}

async fn delete_connection(
    State(state): State<SocketState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !signed_by_stage(&state, &headers) {
        return forbidden();
    }
    match state.registry.send(&id, Outbound::Close) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(_) => gone(),
    }
}

/// The close code and reason for a socket error (RFC 6455 §7.4.1).
fn close_for(err: &axum::Error) -> (u16, &'static str) {
    let text = err.to_string().to_ascii_lowercase();
    if text.contains("too long") || text.contains("too big") || text.contains("size") {
        (1009, "Message too big")
    } else if text.contains("utf-8") || text.contains("utf8") {
        (1007, "Invalid frame payload data")
    } else {
        (1002, "Protocol error")
    }
}
