//! Backend (pub/sub) events on the local stage, watched as a developer would:
//! through `GET /dev/events` (Server-Sent Events) and through a webhook of the
//! test's own (`--events-url`). Each event's exact body is checked.

use serde_json::{json, Value};
use sockhop_tests::{Client, TestStage};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);
const VERSION: &str = sockhop::pubsub::VERSION;

/// Events as they arrive, from the SSE stream or the webhook.
struct Watch {
    rx: mpsc::UnboundedReceiver<(String, Value)>,
    /// Arrived but not asked for yet.
    early: VecDeque<(String, Value)>,
    /// Every event `expect` returned, in order.
    seen: Vec<Value>,
}

impl Watch {
    /// The next event of `kind` for which `wanted` holds (others are kept).
    async fn expect(&mut self, kind: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(at) = self
            .early
            .iter()
            .position(|(k, body)| k == kind && wanted(body))
        {
            let body = self.early.remove(at).expect("present").1;
            self.seen.push(body.clone());
            return body;
        }
        loop {
            let (k, body) = tokio::time::timeout(WAIT, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no {kind} event; others: {:?}", self.early))
                .expect("the watch is open");
            if k == kind && wanted(&body) {
                self.seen.push(body.clone());
                return body;
            }
            self.early.push_back((k, body));
        }
    }

    /// Every one of `bodies` arrived here too, exactly.
    async fn received_all(&mut self, bodies: &[Value]) {
        for body in bodies {
            let kind = body["type"].as_str().expect("type").to_owned();
            self.expect(&kind, |b| b == body).await;
        }
    }

    /// Nothing of `kind` matching `wanted` arrives within `wait`.
    async fn expect_none(&mut self, kind: &str, wanted: impl Fn(&Value) -> bool, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            self.early.push_back(event);
        }
        assert!(
            !self.early.iter().any(|(k, b)| k == kind && wanted(b)),
            "unexpected {kind}: {:?}",
            self.early
        );
    }
}

/// `GET /dev/events`, parsed: `event:` lines name the type, `data:` the body.
async fn sse(stage: &TestStage) -> Watch {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut response = reqwest::get(format!("{}/dev/events", stage.stage.http_url()))
        .await
        .expect("the event stream opens");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().ok(),
        Some("text/event-stream")
    );
    tokio::spawn(async move {
        let (mut buffer, mut kind) = (String::new(), String::new());
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find('\n') {
                let line: String = buffer.drain(..=end).collect();
                let line = line.trim_end();
                if let Some(k) = line.strip_prefix("event: ") {
                    kind = k.to_owned();
                } else if let Some(data) = line.strip_prefix("data: ") {
                    let body: Value = serde_json::from_str(data).expect("an event is JSON");
                    assert_eq!(body["type"], kind.as_str(), "event: names the type");
                    let _ = tx.send((kind.clone(), body));
                }
            }
        }
    });
    // The stream is subscribed once the response headers arrived.
    Watch {
        rx,
        early: VecDeque::new(),
        seen: Vec::new(),
    }
}

/// A webhook receiver: every POSTed body, with its `x-sockhop-event` header.
async fn webhook() -> (String, Watch) {
    use axum::http::HeaderMap;
    let (tx, rx) = mpsc::unbounded_channel::<(String, Value)>();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let tx = tx.clone();
            async move {
                let kind = headers["x-sockhop-event"].to_str().unwrap_or("").to_owned();
                let body: Value = serde_json::from_str(&body).expect("JSON body");
                assert_eq!(body["type"], kind.as_str());
                let _ = tx.send((kind, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (
        url,
        Watch {
            rx,
            early: VecDeque::new(),
            seen: Vec::new(),
        },
    )
}

fn envelope(kind: &str, metadata: Value, data: Value, data_type: &str) -> Value {
    json!({"source": "hotsock.v1", "type": kind, "metadata": metadata, "data": data,
           "dataType": data_type})
}

/// An RFC 3339 UTC timestamp within the last minute.
fn recent(value: &Value) -> bool {
    value
        .as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .is_some_and(|t| {
            let age = jiff::Timestamp::now().duration_since(t);
            age >= jiff::SignedDuration::from_secs(-1) && age < jiff::SignedDuration::from_secs(60)
        })
}

fn on(channel: &str) -> impl Fn(&Value) -> bool + '_ {
    move |b: &Value| b["metadata"]["channel"] == channel
}

#[tokio::test]
async fn connections_and_subscriptions_are_told_through_the_stream_and_the_webhook() {
    let (url, mut hook) = webhook().await;
    let stage = TestStage::start_with(|o| o.events_url = Some(url)).await;
    let mut live = sse(&stage).await;
    let mut jim = stage
        .connect(
            json!({"scope": "connect", "uid": "jim", "umd": {"n": 1}, "keepAlive": true,
            "channels": {"news": {"subscribe": true}}}),
        )
        .await;
    let id = jim.connection_id.clone();

    let mut connected = live.expect("hotsock.connected", |_| true).await;
    let mut told = vec![connected.clone()];
    assert!(recent(&connected["data"]["connectedAt"]), "{connected}");
    connected["data"]["connectedAt"] = json!("T");
    assert_eq!(
        connected,
        envelope(
            "hotsock.connected",
            json!({"hotsockVersion": VERSION}),
            json!({"id": id, "connectedAt": "T", "disconnectedAt": null, "keepAlive": true,
                "sourceIp": "127.0.0.1", "uid": "jim", "umd": {"n": 1}, "userAgent": null}),
            "connection"
        )
    );

    jim.subscribe("news").await;
    let subscription =
        json!({"channel": "news", "connectionId": id, "uid": "jim", "umd": {"n": 1}});
    let subscribed = envelope(
        "hotsock.subscribed",
        json!({"channel": "news", "hotsockVersion": VERSION}),
        subscription.clone(),
        "subscription",
    );
    assert_eq!(
        live.expect("hotsock.subscribed", |_| true).await,
        subscribed
    );
    told.push(subscribed.clone());
    let counted = |n: i64| {
        envelope(
            "hotsock.channelUpdated",
            json!({"channel": "news", "hotsockVersion": VERSION}),
            json!({"name": "news", "subscriptionsCount": n}),
            "channel",
        )
    };
    assert_eq!(
        live.expect("hotsock.channelUpdated", |_| true).await,
        counted(1)
    );

    jim.send(json!({"event": "hotsock.unsubscribe", "channel": "news"}))
        .await;
    jim.expect_event("hotsock.unsubscribed").await;
    let mut unsubscribed = subscribed.clone();
    unsubscribed["type"] = json!("hotsock.unsubscribed");
    assert_eq!(
        live.expect("hotsock.unsubscribed", |_| true).await,
        unsubscribed
    );
    assert_eq!(
        live.expect("hotsock.channelUpdated", |_| true).await,
        counted(0)
    );

    jim.close().await;
    let disconnected = live.expect("hotsock.disconnected", |_| true).await;
    assert!(
        recent(&disconnected["data"]["disconnectedAt"]),
        "{disconnected}"
    );
    assert_eq!(disconnected["data"]["id"], id.as_str());
    assert_eq!(disconnected["dataType"], "connection");
    told.extend([unsubscribed, disconnected]);

    // The webhook got the same bodies.
    for body in told {
        let kind = body["type"].as_str().expect("type").to_owned();
        assert_eq!(hook.expect(&kind, |_| true).await, body);
    }
}

/// Publishes `m` (raising events) and `n` (not) on `chat`, stores both,
/// reacts, and writes `status` (raising events) and `quiet` (not).
fn chatter(uid: &str) -> Value {
    json!({"scope": "connect", "uid": uid, "umd": "U", "channels": {"chat": {"subscribe": true,
        "messages": {"m": {"publish": true, "echo": true, "store": 60, "emitPubSubEvent": true,
                           "react": true},
                     "n": {"publish": true, "store": 60, "react": true}},
        "storage": {"status": {"set": true, "get": true, "emitPubSubEvent": true},
                    "quiet": {"set": true}}}}})
}

#[tokio::test]
async fn messages_reactions_and_storage_are_told_only_when_emit_pub_sub_event_allows() {
    let (url, mut hook) = webhook().await;
    let stage = TestStage::start_with(|o| o.events_url = Some(url)).await;
    let mut live = sse(&stage).await;
    let mut pam = stage.connect(chatter("pam")).await;
    pam.subscribe("chat").await;
    let id = pam.connection_id.clone();

    pam.send(json!({"event": "n", "channel": "chat", "data": "quiet"}))
        .await;
    pam.send(json!({"event": "m", "channel": "chat", "data": {"text": "hi"}}))
        .await;
    let echo = pam.expect_event("m").await;
    let message_id = echo["id"].as_str().expect("id").to_owned();
    let mut published = live.expect("hotsock.messagePublished", on("chat")).await;
    assert!(
        published["metadata"]["requestId"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{published}"
    );
    published["metadata"]["requestId"] = json!("R");
    assert_eq!(
        published,
        envelope(
            "hotsock.messagePublished",
            json!({"channel": "chat", "connectionId": id, "event": "m", "hotsockVersion": VERSION,
                "requestId": "R", "sourceIp": "127.0.0.1", "trigger": "client.websocket"}),
            json!({"channel": "chat", "event": "m", "id": message_id, "data": {"text": "hi"},
                "meta": {"uid": "pam", "umd": "U"}}),
            "message"
        )
    );

    // Server publishes: only with emitPubSubEvent; no connection, the HTTP door.
    for emit in [false, true] {
        let (status, _) = stage
            .server_publish(json!({"channel": "chat", "event": "s", "data": emit,
                "emitPubSubEvent": emit}))
            .await;
        assert_eq!(status, 202);
    }
    let server = live
        .expect("hotsock.messagePublished", |b| b["data"]["event"] == "s")
        .await;
    assert_eq!(server["data"]["data"], true);
    assert!(server["data"].get("meta").is_none(), "{server}");
    assert_eq!(server["metadata"]["trigger"], "server.http");
    assert!(server["metadata"].get("connectionId").is_none());

    // A reaction on the emitting event is told; on the other, not.
    pam.send(
        json!({"event": "hotsock.messageReaction", "channel": "chat",
        "data": {"messageId": message_id, "reaction": "👍", "action": "add"}}),
    )
    .await;
    let mut reacted = live
        .expect("hotsock.messageReactionAdded", on("chat"))
        .await;
    assert!(recent(&reacted["data"]["createdAt"]), "{reacted}");
    assert!(recent(&reacted["data"]["expiresAt"]) || reacted["data"]["expiresAt"].is_string());
    let reaction_id = reacted["data"]["id"].as_str().expect("id").to_owned();
    reacted["data"]["createdAt"] = json!("T");
    reacted["data"]["expiresAt"] = json!("E");
    reacted["metadata"]["requestId"] = json!("R");
    assert_eq!(
        reacted,
        envelope(
            "hotsock.messageReactionAdded",
            json!({"channel": "chat", "connectionId": id, "hotsockVersion": VERSION,
                "reaction": "👍", "requestId": "R", "sourceIp": "127.0.0.1",
                "trigger": "client.websocket"}),
            json!({"channel": "chat", "messageId": message_id, "id": reaction_id,
                "reaction": "👍", "uid": "pam", "umd": "U", "createdAt": "T", "expiresAt": "E"}),
            "messageReaction"
        )
    );

    // Storage (over HTTP, so the writes keep their order): a change is told
    // with the value before; the same value again and the key without the
    // directive are not.
    for (key, value) in [
        ("status", json!("away")),
        ("status", json!("back")),
        ("status", json!("back")),
        ("quiet", json!(1)),
    ] {
        let (status, _) = stage
            .connection_api(
                &pam,
                "channelStorageSet",
                json!({"channel": "chat", "key": key, "data": value}),
            )
            .await;
        assert_eq!(status, 202);
    }
    let first = live
        .expect("hotsock.channelStorageUpdated", on("chat"))
        .await;
    assert_eq!(first["data"]["dataPrevious"], Value::Null);
    let second = live
        .expect("hotsock.channelStorageUpdated", on("chat"))
        .await;
    assert_eq!(
        second,
        envelope(
            "hotsock.channelStorageUpdated",
            json!({"channel": "chat", "connectionId": id, "hotsockVersion": VERSION,
                "key": "status", "sourceIp": "127.0.0.1", "trigger": "client.http"}),
            json!({"channel": "chat", "key": "status", "data": "back", "dataPrevious": "away",
                "expired": false, "expiresAt": null, "meta": {"uid": "pam", "umd": "U"}}),
            "channelStorage"
        )
    );
    stage.deliveries_settled().await;
    live.expect_none(
        "hotsock.channelStorageUpdated",
        |_| true,
        Duration::from_millis(500),
    )
    .await;
    live.expect_none(
        "hotsock.messagePublished",
        |b| b["data"]["event"] == "n" || b["data"]["data"] == false,
        Duration::ZERO,
    )
    .await;
    // The webhook got the very same events.
    hook.received_all(&live.seen).await;
}

/// `requestId` is the Lambda invocation's request id, as Hotsock documents
/// ("the request ID for the Lambda invocation that originally accepted the
/// message"), not one Sockhop makes up.
#[tokio::test]
async fn a_lambda_publish_names_its_invocation_as_the_request_id() {
    let stage = TestStage::start().await;
    let mut live = sse(&stage).await;
    let payload = json!({"channel": "news", "event": "e", "data": 1, "emitPubSubEvent": true});
    sockhop_publish::handle_invocation(stage.stage.app, payload, "9d1d380a-lambda".into())
        .await
        .expect("published");
    let published = live.expect("hotsock.messagePublished", on("news")).await;
    assert_eq!(published["metadata"]["requestId"], "9d1d380a-lambda");
    assert_eq!(published["metadata"]["trigger"], "server.lambda");
}

/// A reaction's removal is told as Hotsock tells it: the same shape as its
/// addition, with the reaction's own id, its creation time, and the
/// metadata of the request that added it, whichever request removes it.
#[tokio::test]
async fn a_removed_reaction_is_told_with_the_id_time_and_origin_of_its_addition() {
    let stage = TestStage::start().await;
    let mut live = sse(&stage).await;
    let mut pam = stage.connect(chatter("pam")).await;
    pam.subscribe("chat").await;
    pam.send(json!({"event": "m", "channel": "chat", "data": "react to me"}))
        .await;
    let message_id = pam.expect_event("m").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // Added over the WebSocket...
    pam.send(
        json!({"event": "hotsock.messageReaction", "channel": "chat",
        "data": {"messageId": message_id, "reaction": "👍", "action": "add"}}),
    )
    .await;
    pam.expect_event("hotsock.messageReactionAdded").await;
    let added = live
        .expect("hotsock.messageReactionAdded", on("chat"))
        .await;
    // ... a moment later, removed over the Client HTTP API.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (status, _) = stage
        .connection_api(
            &pam,
            "publishMessage",
            json!({"event": "hotsock.messageReaction", "channel": "chat",
                "data": {"messageId": message_id, "reaction": "👍", "action": "remove"}}),
        )
        .await;
    assert_eq!(status, 202, "publishMessage answers 202");
    let removed = live
        .expect("hotsock.messageReactionRemoved", on("chat"))
        .await;
    assert_eq!(
        removed["data"], added["data"],
        "the reaction as it was added"
    );
    assert_eq!(
        removed["metadata"], added["metadata"],
        "the metadata of the request that added it (client.websocket, its requestId)"
    );
    assert_eq!(removed["metadata"]["trigger"], "client.websocket");
    assert_eq!(removed["dataType"], "messageReaction");
    // Removing it again changes nothing and tells nothing: the next event is
    // a later message's.
    let (status, _) = stage
        .connection_api(
            &pam,
            "publishMessage",
            json!({"event": "hotsock.messageReaction", "channel": "chat",
                "data": {"messageId": message_id, "reaction": "👍", "action": "remove"}}),
        )
        .await;
    assert_eq!(status, 202, "publishMessage answers 202");
    pam.send(json!({"event": "m", "channel": "chat", "data": "after"}))
        .await;
    live.expect("hotsock.messagePublished", |b| b["data"]["data"] == "after")
        .await;
    // Events arrive in the order they were raised, so a second removal event
    // would be among those that came before it.
    live.expect_none("hotsock.messageReactionRemoved", on("chat"), Duration::ZERO)
        .await;
}

async fn join(client: &mut Client) {
    client
        .send(json!({"event": "hotsock.subscribe", "channel": "presence.room"}))
        .await;
    client.expect_event("hotsock.subscribed").await;
}

#[tokio::test]
async fn presence_changes_are_told_once_per_uid() {
    let (url, mut hook) = webhook().await;
    let stage = TestStage::start_with(|o| o.events_url = Some(url)).await;
    let mut live = sse(&stage).await;
    let grant = |uid: &str, umd: Value| {
        json!({"scope": "connect", "uid": uid, "umd": umd,
            "channels": {"presence.room": {"subscribe": true}}})
    };
    let mut jim = stage.connect(grant("jim", json!("J"))).await;
    join(&mut jim).await;
    let metadata = json!({"channel": "presence.room", "hotsockVersion": VERSION});
    assert_eq!(
        live.expect("hotsock.memberAdded", |_| true).await,
        envelope(
            "hotsock.memberAdded",
            metadata.clone(),
            json!({"uid": "jim", "umd": "J", "members": [{"uid": "jim", "umd": "J"}]}),
            "channelMember"
        )
    );
    // A connection-level umd update is a connectionUpdated (no member change:
    // without umdPropagate the subscription keeps its umd).
    let token = sockhop_tests::sign(json!({"scope": "umd", "connectionId": jim.connection_id,
        "umd": "J-away", "umdUpdate": true}));
    let (status, _) = stage
        .connection_api(&jim, "umdUpdate", json!({"token": token}))
        .await;
    assert_eq!(status, 200);
    let updated = live.expect("hotsock.connectionUpdated", |_| true).await;
    assert_eq!(updated["data"]["umd"], "J-away");
    assert_eq!(updated["data"]["id"], jim.connection_id.as_str());
    assert_eq!(updated["dataType"], "connection");
    // A second connection of jim with another umd: an update, not an add.
    let mut jim2 = stage.connect(grant("jim", json!("J2"))).await;
    join(&mut jim2).await;
    assert_eq!(
        live.expect("hotsock.memberUpdated", |_| true).await,
        envelope(
            "hotsock.memberUpdated",
            metadata.clone(),
            json!({"uid": "jim", "umd": "J2", "members": [{"uid": "jim", "umd": "J2"}]}),
            "channelMember"
        )
    );
    jim2.close().await;
    jim.close().await;
    let removed = live.expect("hotsock.memberRemoved", |_| true).await;
    assert_eq!(removed["data"]["uid"], "jim");
    assert_eq!(removed["data"]["members"], json!([]));
    stage.deliveries_settled().await;
    live.expect_none("hotsock.memberAdded", |_| true, Duration::from_millis(500))
        .await;
    live.expect_none("hotsock.memberRemoved", |_| true, Duration::ZERO)
        .await;
    hook.received_all(&live.seen).await;
}
