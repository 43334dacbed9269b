//! Harness for black-box tests: a real local stage on a real port, against
//! DynamoDB Local (started by `scripts/test.sh`, found via DYNAMODB_ENDPOINT),
//! driven by real WebSocket and HTTP clients.

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sockhop_local::{Stage, StageOptions};
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// TEST-ONLY HS256 secret: signs the tokens of these tests and nothing else.
pub const TEST_SECRET: &[u8] = b"sockhop-TEST-ONLY-hs256-secret-not-for-real-use";
/// TEST-ONLY Bearer key of the server API (`POST /publish`) of every test stage.
pub const TEST_API_KEY: &str = "TEST-ONLY-server-api-key-1";
/// How long a test waits for a frame it expects.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub fn dynamodb_endpoint() -> String {
    std::env::var("DYNAMODB_ENDPOINT").unwrap_or_else(|_| {
        panic!("DYNAMODB_ENDPOINT is not set: run the tests with scripts/test.sh, which starts DynamoDB Local")
    })
}

/// moto's standalone server (started by `scripts/test.sh`, found via
/// SQS_ENDPOINT): the SQS API for the delivery queue adapter's tests.
pub fn sqs_endpoint() -> String {
    std::env::var("SQS_ENDPOINT").unwrap_or_else(|_| {
        panic!("SQS_ENDPOINT is not set: run the tests with scripts/test.sh, which starts moto")
    })
}

/// Test-only static credentials for the SDK clients of tests (DynamoDB Local
/// and moto accept any).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await
}

/// A stage with its own table, so tests never see each other's items.
pub struct TestStage {
    pub stage: Stage,
    pub http: reqwest::Client,
}

impl TestStage {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut StageOptions)) -> Self {
        // Errors the stage logs show up in a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,aws_config=error".into()),
            )
            .with_test_writer()
            .try_init();
        let mut options = StageOptions::new(root());
        options.port = 0;
        options.dynamodb_endpoint = Some(dynamodb_endpoint());
        options.table_name = format!("test-{}", ulid::Ulid::new());
        options.examples_dir = None;
        options.env = vec![
            ("SIGNING_KEY_1_METHOD".into(), "HS256".into()),
            (
                "SIGNING_KEY_1_ENCODED".into(),
                base64::engine::general_purpose::STANDARD.encode(TEST_SECRET),
            ),
            ("HTTP_API_KEY_1".into(), TEST_API_KEY.into()),
            (
                "CONNECTION_SECRET_KEY".into(),
                base64::engine::general_purpose::STANDARD
                    .encode(b"TEST-ONLY connection secret key"),
            ),
        ];
        adjust(&mut options);
        let stage = sockhop_local::start(options).await.expect("stage starts");
        TestStage {
            stage,
            http: reqwest::Client::new(),
        }
    }

    pub fn ws_url(&self, token: &str) -> String {
        format!("{}?token={token}", self.stage.websocket_url())
    }

    /// Connects and waits for `hotsock.connected`.
    pub async fn connect(&self, claims: Value) -> Client {
        let mut client = self
            .try_connect(&sign(claims))
            .await
            .expect("upgrade accepted");
        let connected = client.expect_event("hotsock.connected").await;
        client.connection_id = connected["data"]["connectionId"]
            .as_str()
            .expect("id")
            .to_owned();
        client.secret = connected["data"]["connectionSecret"]
            .as_str()
            .expect("secret")
            .to_owned();
        client.connected = connected;
        client
    }

    /// Attempts the upgrade; on refusal returns the HTTP status and body.
    pub async fn try_connect(&self, token: &str) -> Result<Client, (u16, String)> {
        match tokio_tungstenite::connect_async(self.ws_url(token)).await {
            Ok((socket, _)) => Ok(Client {
                socket,
                connection_id: String::new(),
                secret: String::new(),
                connected: Value::Null,
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                Err((status, body))
            }
            Err(other) => panic!("unexpected connect error: {other}"),
        }
    }

    /// `POST /connection/<op>` as `client`; returns status and JSON body.
    pub async fn connection_api(&self, client: &Client, op: &str, body: Value) -> (u16, Value) {
        self.connection_api_as(&client.connection_id, &client.secret, op, body)
            .await
    }

    pub async fn connection_api_as(
        &self,
        id: &str,
        secret: &str,
        op: &str,
        body: Value,
    ) -> (u16, Value) {
        let mut url =
            url::Url::parse(&format!("{}/connection/{op}", self.stage.http_url())).expect("url");
        url.query_pairs_mut()
            .append_pair("connectionId", id)
            .append_pair("connectionSecret", secret);
        let response = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            .expect("http api answers");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// Another process's app on the stage's table (as another Lambda instance
    /// would be), with `extra` configuration.
    pub async fn other_app(&self, extra: &[(&'static str, String)]) -> sockhop::App {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let mut env: std::collections::HashMap<&str, String> = [
            ("TABLE_NAME", self.stage.table_name.clone()),
            ("DYNAMODB_ENDPOINT", self.stage.dynamodb_endpoint.clone()),
            ("SIGNING_KEY_1_METHOD", "HS256".to_owned()),
            ("SIGNING_KEY_1_ENCODED", b64(TEST_SECRET)),
            (
                "CONNECTION_SECRET_KEY",
                b64(b"TEST-ONLY connection secret key"),
            ),
        ]
        .into_iter()
        .collect();
        env.extend(extra.iter().cloned());
        let config = sockhop::app::Config::from_env(|name| env.get(name).cloned()).expect("config");
        sockhop::App::with_sdk_config(config, &sdk_config().await)
    }

    /// `POST /publish` with the test API key; returns status and JSON body.
    pub async fn server_publish(&self, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/publish", self.stage.http_url()))
            .header("authorization", format!("Bearer {TEST_API_KEY}"))
            .json(&body)
            .send()
            .await
            .expect("server api answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Publishes a `marker` message on `channel` through the server API (queued
    /// behind everything already on the channel's ordered path), for
    /// [`Client::expect_next_event`]`("marker")`.
    pub async fn publish_marker(&self, channel: &str) {
        let (status, body) = self
            .server_publish(json!({"channel": channel, "event": "marker", "data": null}))
            .await;
        assert_eq!(status, 202, "marker on {channel}: {body}");
    }

    /// Proves that nothing more reaches `client` from what the test did so
    /// far where no frame is ordered behind it (frames run as concurrent
    /// invocations that answer nothing): `actor`, whose frames caused it,
    /// pings first and must be answered next (so the stage has read its
    /// earlier frames, and they posted nothing to it before the pong); then
    /// the stage must be quiet — no client frame in hand and the delivery
    /// queue empty, twice in a row — and `client` pings: whatever the earlier
    /// frames posted was handed to its socket before that pong, so the pong
    /// must be next. A quiescence check, not a timed wait.
    pub async fn expect_nothing_more(&self, actor: &mut Client, client: Option<&mut Client>) {
        actor.send(json!({"event": "hotsock.ping"})).await;
        actor.expect_next_event("hotsock.pong").await;
        let start = std::time::Instant::now();
        let quiet = || self.stage.queue.is_idle() && self.stage.registry.frames_in_hand() == 0;
        loop {
            if quiet() {
                tokio::task::yield_now().await;
                if quiet() {
                    break;
                }
            }
            assert!(start.elapsed() < WAIT, "the stage stayed busy for {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let client = match client {
            Some(client) => client,
            None => actor,
        };
        client.send(json!({"event": "hotsock.ping"})).await;
        client.expect_next_event("hotsock.pong").await;
    }

    /// Waits until every queued message has been delivered (a publish's 202
    /// means queued, not yet delivered or stored).
    pub async fn deliveries_settled(&self) {
        let start = std::time::Instant::now();
        while !self.stage.queue.is_idle() {
            assert!(
                start.elapsed() < WAIT,
                "deliveries still pending after {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The channel's stored subscription count (its META item).
    pub async fn subscriptions_count(&self, channel: &str) -> i64 {
        self.stage
            .app
            .store
            .subscriptions_count(channel)
            .await
            .expect("count")
    }

    /// Every item in the stage's table whose pk starts with `prefix`.
    pub async fn items_with_pk_prefix(&self, prefix: &str) -> Vec<Value> {
        let client = self.dynamodb().await;
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = client
                .scan()
                .table_name(&self.stage.table_name)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .expect("scan");
            for item in out.items.unwrap_or_default() {
                let pk = item
                    .get("pk")
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                if pk.starts_with(prefix) {
                    let sk = item
                        .get("sk")
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default();
                    items.push(json!({"pk": pk, "sk": sk}));
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        items
    }

    pub async fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "t", "t", None, None, "test",
            ))
            .endpoint_url(&self.stage.dynamodb_endpoint)
            .load()
            .await;
        aws_sdk_dynamodb::Client::new(&sdk)
    }
}

/// Signs claims with the test key; `exp` defaults to an hour from now.
pub fn sign(mut claims: Value) -> String {
    if let Some(map) = claims.as_object_mut() {
        map.entry("exp").or_insert(json!(now() + 3600));
    }
    sockhop::token::sign_hs256(TEST_SECRET, &claims)
}

pub struct Client {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub connection_id: String,
    pub secret: String,
    pub connected: Value,
}

impl Client {
    pub async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("send frame");
    }

    /// The next JSON frame, or `None` after `wait` (or when the socket closed).
    pub async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        loop {
            match tokio::time::timeout(wait, self.socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Some(serde_json::from_str(&text).expect("server frames are JSON"))
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => {
                    return None
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    pub async fn next(&mut self) -> Value {
        self.next_within(WAIT).await.expect("a frame arrives")
    }

    /// Skips frames until one with `event` arrives.
    pub async fn expect_event(&mut self, event: &str) -> Value {
        loop {
            let frame = self
                .next_within(WAIT)
                .await
                .unwrap_or_else(|| panic!("no {event} frame arrived"));
            if frame["event"] == event {
                return frame;
            }
        }
    }

    /// Asserts the very next frame is `event` (unlike [`Client::expect_event`],
    /// which skips frames) and returns it.
    ///
    /// This is how a test proves a frame did *not* come: after the action whose
    /// frame must not arrive, it causes a marker known to reach this client
    /// after that frame would have (a message published later on the same
    /// channel: a channel's records are delivered one at a time, in queue
    /// order, each one's posts before the next runs; or a frame posted after
    /// the call that would have posted the unwanted one has returned), and
    /// asserts the marker is the next frame. Unlike a timed wait, it cannot
    /// pass because the unwanted frame was merely late.
    pub async fn expect_next_event(&mut self, event: &str) -> Value {
        let frame = self
            .next_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("no frame arrived; expected {event} next"));
        assert_eq!(frame["event"], event, "expected {event} next, got {frame}");
        frame
    }

    /// Asserts nothing arrives for `wait`: the fallback where no later frame
    /// is ordered after the one that must not come and no quiet stage proves
    /// it (a schedule that must not fire yet, an expiry), so no marker can
    /// prove its absence. It passes if that frame is merely late; prefer
    /// [`Client::expect_next_event`] after a marker wherever one exists, or
    /// [`TestStage::expect_nothing_more`] for frames that answer nothing.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(frame) = self.next_within(wait).await {
            panic!("expected no frame, got {frame}");
        }
    }

    /// Skips to the next `hotsock.error` and checks its code and channel.
    pub async fn expect_error(&mut self, code: &str, channel: Option<&str>) -> Value {
        let frame = self.expect_event("hotsock.error").await;
        assert_eq!(frame["error"]["code"], code, "{frame}");
        assert!(frame["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert_eq!(frame["data"], json!({}));
        match channel {
            Some(c) => assert_eq!(frame["channel"], c, "{frame}"),
            None => assert!(frame.get("channel").is_none(), "{frame}"),
        }
        frame
    }

    pub async fn subscribe(&mut self, channel: &str) -> Value {
        self.send(json!({"event": "hotsock.subscribe", "channel": channel}))
            .await;
        self.next().await
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
