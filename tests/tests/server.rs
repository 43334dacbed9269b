//! The server publish API and the sweeper.

use serde_json::{json, Value};
use sockhop_tests::TestStage;
use std::time::Duration;

const API_KEY: &str = "TEST-ONLY-api-key";

async fn stage_with_key() -> TestStage {
    TestStage::start_with(|o| o.env.push(("HTTP_API_KEY_2".into(), API_KEY.into()))).await
}

async fn publish(stage: &TestStage, key: &str, body: Value) -> (u16, Value) {
    let response = stage
        .http
        .post(format!("{}/publish", stage.stage.http_url()))
        .header("authorization", format!("Bearer {key}"))
        .json(&body)
        .send()
        .await
        .expect("answer");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn listener_claims() -> Value {
    json!({"scope": "connect", "uid": "l", "channels": {"news": {"subscribe": true, "historyStart": 0}}})
}

#[tokio::test]
async fn server_publish_over_http_delivers_stores_and_deduplicates() {
    let stage = stage_with_key().await;
    let mut listener = stage.connect(listener_claims()).await;
    listener.subscribe("news").await;
    let (status, reply) = publish(
        &stage,
        API_KEY,
        json!({"channel": "news", "event": "headline",
        "data": {"t": 1}, "store": 60, "eagerIdGeneration": true}),
    )
    .await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["channel"], "news");
    assert_eq!(reply["event"], "headline");
    let got = listener.expect_event("headline").await;
    assert_eq!(got["id"], reply["id"]);
    assert_eq!(got["data"], json!({"t": 1}));
    assert!(
        got.get("meta").is_none(),
        "server messages have no meta: {got}"
    );
    // Stored: listed.
    let (_, page) = stage
        .connection_api(&listener, "listMessages", json!({"channel": "news"}))
        .await;
    assert_eq!(page["messages"].as_array().map(Vec::len), Some(1));
    // Deduplicated within the window.
    for _ in 0..2 {
        let (status, _) = publish(
            &stage,
            API_KEY,
            json!({"channel": "news", "event": "once",
            "deduplicationId": "d-1"}),
        )
        .await;
        assert_eq!(status, 202);
    }
    listener.expect_event("once").await;
    // The copy, had it been queued, would come before the marker.
    stage.publish_marker("news").await;
    listener.expect_next_event("marker").await;
}

#[tokio::test]
async fn server_publish_rejects_bad_keys_and_bad_messages() {
    let stage = stage_with_key().await;
    let (status, body) = publish(&stage, "wrong", json!({"channel": "news", "event": "x"})).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    let response = stage
        .http
        .post(format!("{}/publish", stage.stage.http_url()))
        .body("{}")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 401);
    for (body, code) in [
        (
            json!({"channel": "bad name", "event": "x"}),
            "INVALID_CHANNEL",
        ),
        (
            json!({"channel": "news", "event": "hotsock.fake"}),
            "INVALID_EVENT",
        ),
        (
            json!({"channel": "news", "event": "x", "data": "y".repeat(40_000)}),
            "MESSAGE_TOO_LARGE",
        ),
        (
            json!({"channel": "news", "event": "x", "store": -7}),
            "INVALID_REQUEST",
        ),
        (json!({"channel": "news"}), "INVALID_REQUEST"),
    ] {
        let (status, reply) = publish(&stage, API_KEY, body.clone()).await;
        assert!((400..500).contains(&status), "{body}: {status}");
        assert_eq!(reply["error"]["code"], code, "{body}: {reply}");
    }
    assert!(stage.items_with_pk_prefix("MSG#").await.is_empty());
}

#[tokio::test]
async fn publish_function_handler_publishes() {
    let stage = TestStage::start().await;
    let mut listener = stage.connect(listener_claims()).await;
    listener.subscribe("news").await;
    let reply = sockhop_publish_reply(
        &stage,
        json!({"channel": "news", "event": "direct", "data": 5}),
    )
    .await;
    assert_eq!(reply, json!({"channel": "news", "event": "direct"}));
    assert_eq!(listener.expect_event("direct").await["data"], 5);
    let bad = sockhop_publish::handle(stage.stage.app, json!({"channel": "", "event": "x"})).await;
    let diagnostic = lambda_runtime::Diagnostic::from(bad.expect_err("empty channel"));
    assert_eq!(diagnostic.error_type, "INVALID_CHANNEL");
}

async fn sockhop_publish_reply(stage: &TestStage, payload: Value) -> Value {
    sockhop_publish::handle(stage.stage.app, payload)
        .await
        .expect("published")
}

#[tokio::test]
async fn sweeper_closes_connections_that_miss_heartbeats() {
    let stage = TestStage::start_with(|o| o.sweep_interval = Duration::from_secs(1)).await;
    let mut quiet = stage
        .connect(json!({"scope": "connect", "heartbeatTimeout": 5, "channels": {"news": {"subscribe": true}}}))
        .await;
    quiet.subscribe("news").await;
    let mut chatty = stage
        .connect(json!({"scope": "connect", "heartbeatTimeout": 5}))
        .await;
    // The chatty one heartbeats; the quiet one does not.
    let beats = async {
        for _ in 0..8 {
            chatty.send(json!({"event": "hotsock.heartbeat"})).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        chatty
    };
    let closed = async { quiet.next_within(Duration::from_secs(12)).await };
    let (mut chatty, frame) = tokio::join!(beats, closed);
    assert!(
        frame.is_none(),
        "the quiet connection was closed, got {frame:?}"
    );
    let items = stage.items_with_pk_prefix("CONN#").await;
    assert_eq!(
        items.len(),
        1,
        "only the chatty connection remains: {items:?}"
    );
    assert_eq!(stage.subscriptions_count("news").await, 0);
    chatty.send(json!({"event": "hotsock.ping"})).await;
    chatty.expect_event("hotsock.pong").await;
}

/// At the production sweep interval (a minute, as the template schedules
/// the sweeper), a connection that misses its heartbeat is closed within a few
/// seconds of its deadline, not up to a minute late: while heartbeat deadlines
/// are ahead, a sweep keeps passing every couple of seconds.
#[tokio::test]
async fn at_the_production_sweep_interval_a_missed_heartbeat_is_acted_on_within_seconds() {
    let stage = TestStage::start_with(|o| o.sweep_interval = Duration::from_secs(60)).await;
    let mut chatty = stage
        .connect(json!({"scope": "connect", "heartbeatTimeout": 20}))
        .await;
    // Past the stage's first sweep (a minute after it started), heartbeating.
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(62) {
        chatty.send(json!({"event": "hotsock.heartbeat"})).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    // Connected mid-interval, then silent: its deadline is 5 s on.
    let mut quiet = stage
        .connect(json!({"scope": "connect", "heartbeatTimeout": 5}))
        .await;
    let connected = std::time::Instant::now();
    let beats = async {
        for _ in 0..6 {
            chatty.send(json!({"event": "hotsock.heartbeat"})).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        chatty
    };
    let closed = async {
        // Open until its deadline: it answers a ping at 3 s.
        tokio::time::sleep(Duration::from_secs(3)).await;
        quiet.send(json!({"event": "hotsock.ping"})).await;
        assert_eq!(
            quiet.expect_event("hotsock.pong").await["event"],
            "hotsock.pong"
        );
        let frame = quiet.next_within(Duration::from_secs(20)).await;
        (frame, connected.elapsed())
    };
    let (mut chatty, (frame, after)) = tokio::join!(beats, closed);
    assert!(frame.is_none(), "closed, not {frame:?}");
    // Its last sign of life was the connect (a ping is not a heartbeat): the
    // deadline is 5 s on; a pass every 2 s closes it within a few more.
    assert!(
        after >= Duration::from_secs(5) && after <= Duration::from_secs(10),
        "closed {after:?} after connecting"
    );
    chatty.send(json!({"event": "hotsock.ping"})).await;
    chatty.expect_event("hotsock.pong").await;
}

/// A queued message that cannot be delivered is reported back as a batch item
/// failure together with the rest of its channel (so the FIFO queue hands them
/// out again, in order), and does not keep other channels' messages from being
/// delivered. Ids come from the queue position (first receive time, then
/// sequence number), or are the publisher's when it asked for one eagerly.
#[tokio::test]
async fn failed_queued_messages_are_reported_with_the_rest_of_their_channel() {
    let stage = TestStage::start().await;
    let mut listener = stage.connect(listener_claims()).await;
    listener.subscribe("news").await;
    let record = |id: &str, channel: &str, sequence: u64, body: String| {
        json!({
            "messageId": id,
            "body": body,
            "attributes": {
                "MessageGroupId": channel,
                "SequenceNumber": sequence.to_string(),
                "ApproximateFirstReceiveTimestamp": "1700000000000",
                "ApproximateReceiveCount": "1",
            },
            "eventSource": "aws:sqs",
        })
    };
    let body = |channel: &str, data: i64, id: Option<&str>| {
        let mut b = json!({"channel": channel, "event": "direct", "data": data});
        if let Some(id) = id {
            b["id"] = json!(id);
        }
        b.to_string()
    };
    let event: aws_lambda_events::sqs::SqsEvent = serde_json::from_value(json!({"Records": [
        // Unreadable: fails, and the rest of its channel with it.
        record("a", "other", 1, "{not json".into()),
        record("b", "other", 2, body("other", 1, None)),
        // Another channel is unaffected and keeps its order.
        record("c", "news", 3, body("news", 42, None)),
        record("d", "news", 4, body("news", 43, Some("01ARZ3NDEKTSV4RRFFQ69G5FA3"))),
    ]}))
    .expect("event");
    let response = sockhop_deliver::handle(stage.stage.app, event)
        .await
        .expect("the batch is answered");
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["a", "b"]);
    let first = listener.expect_event("direct").await;
    assert_eq!(first["data"], 42);
    assert_eq!(first["id"], sockhop::ids::queued_id(1_700_000_000_000, 3));
    let second = listener.expect_event("direct").await;
    assert_eq!(second["data"], 43);
    assert_eq!(second["id"], "01ARZ3NDEKTSV4RRFFQ69G5FA3");
}
