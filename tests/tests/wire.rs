//! Wire details from Hotsock's documentation, over real sockets and HTTP:
//! listMessages cursors and limit, listReactions' window, server-side
//! reactions, token edge rules, keepAlive timing, CORS on every stage route.

use serde_json::{json, Value};
use sockhop_tests::{sign, Client, TestStage};
use std::time::{Duration, Instant};

fn chat_claims(uid: &str, history_start: Option<Value>) -> Value {
    let mut chat = json!({"subscribe": true, "messages": {
        "msg": {"publish": true, "echo": true, "store": 600, "react": true}
    }});
    if let Some(start) = history_start {
        chat["historyStart"] = start;
    }
    json!({"scope": "connect", "uid": uid, "channels": {"chat": chat}})
}

async fn chatter(stage: &TestStage, uid: &str, history_start: Option<Value>) -> Client {
    let mut client = stage.connect(chat_claims(uid, history_start)).await;
    assert_eq!(
        client.subscribe("chat").await["event"],
        "hotsock.subscribed"
    );
    client
}

/// Publishes `n` stored messages as `client`; returns their ids in order.
async fn post(client: &mut Client, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        client
            .send(json!({"channel": "chat", "event": "msg", "data": i}))
            .await;
        let echoed = client.expect_event("msg").await;
        ids.push(echoed["id"].as_str().expect("id").to_owned());
    }
    ids
}

fn ids_of(page: &Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn list_messages_pages_each_direction_by_its_own_cursor() {
    let stage = TestStage::start().await;
    let mut jim = chatter(&stage, "jim", Some(json!(0))).await;
    let ids = post(&mut jim, 5).await;
    let list = |body: Value| stage.connection_api(&jim, "listMessages", body);

    // Oldest first from `after`; `before` is ignored.
    let (status, page) = list(json!({"channel": "chat", "after": ids[1], "before": ids[0]})).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids_of(&page), ids[2..].to_vec());
    // Newest first from `before`; `after` is ignored.
    let (_, page) =
        list(json!({"channel": "chat", "reverse": true, "before": ids[3], "after": ids[4]})).await;
    let mut older: Vec<String> = ids[..3].to_vec();
    older.reverse();
    assert_eq!(ids_of(&page), older);
    // `limit` sizes the page; paging by the last id continues where it stopped.
    let (_, first) = list(json!({"channel": "chat", "limit": 2})).await;
    assert_eq!(ids_of(&first), ids[..2].to_vec());
    let (_, next) = list(json!({"channel": "chat", "limit": 2, "after": ids[1]})).await;
    assert_eq!(ids_of(&next), ids[2..4].to_vec());
    for bad in [json!(0), json!(1001), json!("2")] {
        let (status, body) = list(json!({"channel": "chat", "limit": bad})).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "INVALID_REQUEST");
    }
}

/// hotsock-js' own chat demo posts Client HTTP API bodies without a JSON
/// content type.
#[tokio::test]
async fn client_http_api_reads_bodies_whatever_their_content_type() {
    let stage = TestStage::start().await;
    let mut jim = chatter(&stage, "jim", Some(json!(0))).await;
    let ids = post(&mut jim, 1).await;
    let url = format!(
        "{}/connection/listMessages?connectionId={}&connectionSecret={}",
        stage.stage.http_url(),
        jim.connection_id,
        jim.secret
    );
    let response = stage
        .http
        .post(url)
        .header("content-type", "text/plain;charset=UTF-8")
        .body(json!({"channel": "chat"}).to_string())
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 200);
    let page: Value = response.json().await.expect("json");
    assert_eq!(ids_of(&page), ids);
}

async fn list_reactions(stage: &TestStage, client: &Client, id: &str) -> (u16, Value) {
    stage
        .connection_api(
            client,
            "listReactions",
            json!({"channel": "chat", "messageId": id}),
        )
        .await
}

#[tokio::test]
async fn history_start_takes_fractions_and_bounds_list_reactions() {
    let stage = TestStage::start().await;
    let mut jim = chatter(&stage, "jim", Some(json!(0))).await;
    let early = post(&mut jim, 1).await.remove(0);
    jim.send(
        json!({"event": "hotsock.messageReaction", "channel": "chat",
        "data": {"messageId": early, "reaction": "👍", "action": "add"}}),
    )
    .await;
    jim.expect_event("hotsock.messageReactionAdded").await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    // A fractional historyStart between the two messages, to the millisecond.
    let cut = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as f64
        / 1000.0;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let late = post(&mut jim, 1).await.remove(0);
    let pam = chatter(&stage, "pam", Some(json!(cut))).await;
    let (status, page) = stage
        .connection_api(&pam, "listMessages", json!({"channel": "chat"}))
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids_of(&page), vec![late.clone()]);

    // The early message is outside Pam's window, and so are its reactions.
    let (status, body) = list_reactions(&stage, &pam, &early).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "MESSAGE_NOT_FOUND");
    let (status, body) = list_reactions(&stage, &pam, &late).await;
    assert_eq!((status, &body["reactions"]), (200, &json!([])));
    let (status, body) = list_reactions(&stage, &jim, &early).await;
    assert_eq!(status, 200);
    assert_eq!(body["reactions"], json!([{"reaction": "👍", "uid": "jim"}]));
}

#[tokio::test]
async fn server_reactions_through_the_publish_api() {
    let stage = TestStage::start().await;
    let mut jim = chatter(&stage, "jim", Some(json!(0))).await;
    let (status, reply) = stage
        .server_publish(
            json!({"channel": "chat", "event": "news", "data": 1, "store": 600,
            "eagerIdGeneration": true}),
        )
        .await;
    assert_eq!(status, 202, "{reply}");
    let id = reply["id"].as_str().expect("eager id").to_owned();
    jim.expect_event("news").await;

    let reaction = |action: &str| {
        json!({"channel": "chat", "event": "hotsock.messageReaction", "uid": "bot",
            "umd": {"name": "Bot"},
            "data": {"messageId": id, "reaction": "🤖", "action": action}})
    };
    let (status, reply) = stage.server_publish(reaction("add")).await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(
        reply,
        json!({"channel": "chat", "event": "hotsock.messageReaction"})
    );
    let added = jim.expect_event("hotsock.messageReactionAdded").await;
    assert_eq!(
        (&added["data"], &added["meta"]),
        (
            &json!({"messageId": id, "reaction": "🤖", "action": "add"}),
            &json!({"uid": "bot", "umd": {"name": "Bot"}})
        )
    );
    // The publish function (direct Lambda invoke) takes the same request.
    sockhop_publish::handle(stage.stage.app, reaction("remove"))
        .await
        .expect("removed");
    assert_eq!(
        jim.expect_event("hotsock.messageReactionRemoved").await["meta"]["uid"],
        "bot"
    );
    let (_, list) = list_reactions(&stage, &jim, &id).await;
    assert_eq!(list["reactions"], json!([]));

    let mut without_uid = reaction("add");
    without_uid.as_object_mut().expect("object").remove("uid");
    let (status, body) = stage.server_publish(without_uid).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("INVALID_REQUEST"))
    );
    let mut unknown = reaction("add");
    unknown["data"]["messageId"] = json!("01ARZ3NDEKTSV4RRFFQ69G5FAV");
    let (status, body) = stage.server_publish(unknown).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("MESSAGE_NOT_FOUND"))
    );
    let mut bad_action = reaction("toggle");
    bad_action["data"]["action"] = json!("toggle");
    let (status, _) = stage.server_publish(bad_action).await;
    assert_eq!(status, 400);
    // A reaction is posted before its call answers; the marker is posted after.
    stage.publish_marker("chat").await;
    jim.expect_next_event("marker").await;
    // An empty deduplicationId is no deduplicationId: both copies arrive.
    for n in 0..2 {
        let (status, _) = stage
            .server_publish(
                json!({"channel": "chat", "event": "dup", "data": n, "deduplicationId": ""}),
            )
            .await;
        assert_eq!(status, 202);
        assert_eq!(jim.expect_event("dup").await["data"], n);
    }
}

#[tokio::test]
async fn token_edge_rules() {
    let stage = TestStage::start().await;
    // A token bound to a connection cannot open one.
    let (status, body) = stage
        .try_connect(&sign(json!({"scope": "connect", "connectionId": "abc"})))
        .await
        .err()
        .expect("refused");
    assert_eq!(status, 403);
    assert!(body.contains("TOKEN_CONNECTION_ID_NOT_ALLOWED"), "{body}");

    // An empty uid is no uid: no presence, no subscribe-token match.
    let mut nobody = stage
        .connect(
            json!({"scope": "connect", "uid": "", "channels": {"presence.p": {"subscribe": true}}}),
        )
        .await;
    assert_eq!(
        nobody.connected["meta"],
        json!({"uid": null, "umd": null}),
        "an empty uid shows as none"
    );
    nobody
        .send(json!({"event": "hotsock.subscribe", "channel": "presence.p"}))
        .await;
    nobody
        .expect_error("PRESENCE_CHANNEL_USER_ID_REQUIRED", Some("presence.p"))
        .await;
    let by_empty_uid =
        sign(json!({"scope": "subscribe", "uid": "", "channels": {"x": {"subscribe": true}}}));
    nobody
        .send(
            json!({"event": "hotsock.subscribe", "channel": "x", "data": {"token": by_empty_uid}}),
        )
        .await;
    nobody
        .expect_error("INVALID_SUBSCRIBE_TOKEN", Some("x"))
        .await;

    // autoSubscribe and broadcast mean nothing in a subscribe token: accepted,
    // without effect.
    let mut jim = stage
        .connect(json!({"scope": "connect", "uid": "jim"}))
        .await;
    let token = sign(
        json!({"scope": "subscribe", "connectionId": jim.connection_id,
        "channels": {"bc": {"subscribe": true, "autoSubscribe": true,
            "messages": {"alert": {"broadcast": true}}}}}),
    );
    jim.send(json!({"event": "hotsock.subscribe", "channel": "bc", "data": {"token": token}}))
        .await;
    let subscribed = jim.expect_event("hotsock.subscribed").await;
    assert!(subscribed["data"].get("autoSubscribed").is_none());
    jim.send(json!({"channel": "bc", "event": "alert", "data": 1}))
        .await;
    jim.expect_error("PUBLISH_PERMISSION_DENIED", Some("bc"))
        .await;
}

/// A keepAlive connection is never silent for the idle timeout; one without
/// keepAlive is closed by it. (A stage with a 10 s idle timeout and a sweep
/// every 2 s stands in for API Gateway's 600 s and a sweep a minute: keepAlives
/// every 6 s, with two sweeps' room, as in AWS.)
#[tokio::test]
async fn keep_alive_frames_beat_the_idle_timeout() {
    let stage = TestStage::start_with(|o| {
        o.idle_timeout = Duration::from_secs(10);
        o.sweep_interval = Duration::from_secs(2);
    })
    .await;
    let mut kept = stage
        .connect(json!({"scope": "connect", "keepAlive": true}))
        .await;
    let mut idle = stage.connect(json!({"scope": "connect"})).await;
    let started = Instant::now();
    let mut keep_alives = 0;
    while started.elapsed() < Duration::from_secs(16) {
        let frame = kept
            .next_within(Duration::from_secs(10))
            .await
            .expect("a keepAlive comes before the idle timeout closes the socket");
        assert_eq!(frame, json!({"event": "hotsock.keepAlive", "data": {}}));
        keep_alives += 1;
    }
    assert!(keep_alives >= 2, "{keep_alives} keepAlives in 16 s");
    // The other socket was closed by the idle timeout long ago.
    assert!(idle.next_within(Duration::from_millis(100)).await.is_none());
    kept.send(json!({"event": "hotsock.ping"})).await;
    assert_eq!(kept.expect_event("hotsock.pong").await["data"], "{}");
}

/// Every route the stage serves answers a browser's preflight from another
/// origin (an app on its own dev-server port).
#[tokio::test]
async fn every_stage_route_answers_cors_preflight() {
    let stage = TestStage::start_with(|o| {
        o.examples_dir = Some(sockhop_tests::root().join("examples"));
    })
    .await;
    let origin = "http://localhost:5173";
    for path in [
        "/",
        "/examples/collaborative-todo/",
        "/dev/token",
        "/collaborative-todo",
        "/real-time-chat",
        "/game-lobby",
        "/examples/game-lobby/",
        "/connection/publishMessage",
        "/connection/listMessages",
        "/connection/listReactions",
        "/connection/getChannelInfo",
        "/connection/someFutureOperation",
        "/publish",
    ] {
        let url = format!("{}{path}", stage.stage.http_url());
        let response = stage
            .http
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,authorization",
            )
            .send()
            .await
            .expect("answer");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        let allowed: Vec<_> = response
            .headers()
            .get_all("access-control-allow-origin")
            .iter()
            .collect();
        assert_eq!(allowed, ["*"], "{path}: exactly one allow-origin header");
        let methods = response
            .headers()
            .get("access-control-allow-methods")
            .and_then(|m| m.to_str().ok())
            .unwrap_or_default();
        assert!(
            methods.contains('*') || methods.contains("POST"),
            "{path}: {methods}"
        );
    }
    // The actual requests carry the header too.
    for (method, path) in [
        (reqwest::Method::GET, "/examples/collaborative-todo/"),
        (reqwest::Method::POST, "/dev/token"),
    ] {
        let response = stage
            .http
            .request(method, format!("{}{path}", stage.stage.http_url()))
            .header("origin", origin)
            .send()
            .await
            .expect("answer");
        assert_eq!(
            response
                .headers()
                .get("access-control-allow-origin")
                .map(|v| v.as_bytes()),
            Some(&b"*"[..]),
            "{path}"
        );
    }
}
