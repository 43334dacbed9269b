//! Scheduled messages and storage writes on the local stage: every door
//! (server publish, WebSocket, Client HTTP API), timezones, `scheduleBefore`,
//! refusals, and schedules kept across a stage restart.

use serde_json::{json, Value};
use sockhop_tests::{Client, TestStage};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How late after its due time a scheduled message may arrive (the local
/// scheduler fires within a second; delivery takes the rest).
const LATE: i64 = 1_500;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

/// Waits until just past a whole second, so "N seconds out" is N seconds
/// (an `at()` expression has no fractions); returns that second.
async fn whole_second() -> i64 {
    let now = now_ms();
    let next = (now / 1000 + 1) * 1000;
    tokio::time::sleep(Duration::from_millis((next - now + 5) as u64)).await;
    next / 1000
}

/// `at(…)` for the wall time of `secs` in `timezone`.
fn at(secs: i64, timezone: &str) -> String {
    let zone = jiff::tz::TimeZone::get(timezone).expect("known timezone");
    let local = jiff::Timestamp::from_second(secs)
        .expect("in range")
        .to_zoned(zone)
        .datetime();
    format!("at({})", local.strftime("%Y-%m-%dT%H:%M:%S"))
}

fn utc(secs: i64) -> String {
    at(secs, "UTC")
}

/// Waits for `event` and checks it arrived between `due_secs` and
/// [`LATE`] after it.
async fn arrives_on_time(client: &mut Client, event: &str, due_secs: i64) -> Value {
    let frame = client.expect_event(event).await;
    let arrived = now_ms();
    let due = due_secs * 1000;
    assert!(
        (due..=due + LATE).contains(&arrived),
        "{event} arrived {} ms after its due time: {frame}",
        arrived - due
    );
    frame
}

fn assert_schedule_arn(reply: &Value) {
    let arn = reply["scheduleArn"].as_str().unwrap_or_default();
    assert!(
        arn.starts_with("arn:aws:scheduler:") && arn.contains(":schedule/"),
        "{reply}"
    );
}

async fn pending_schedules(stage: &TestStage) -> usize {
    stage.items_with_pk_prefix("SCHEDULES").await.len()
}

fn listener_claims() -> Value {
    json!({"scope": "connect", "uid": "listener", "channels": {"news": {"subscribe": true,
        "historyStart": 0}}})
}

#[tokio::test]
async fn a_server_publish_three_seconds_out_arrives_then_in_order_with_live_messages() {
    let stage = TestStage::start().await;
    let mut listener = stage.connect(listener_claims()).await;
    listener.subscribe("news").await;

    let second = whole_second().await;
    let due = second + 3;
    let (status, reply) = stage
        .server_publish(json!({"channel": "news", "event": "e", "data": "scheduled",
            "scheduleExpression": utc(due), "eagerIdGeneration": true, "store": 600}))
        .await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["channel"], "news");
    assert_eq!(reply["event"], "e");
    assert_schedule_arn(&reply);
    let eager_id = reply["id"].as_str().expect("eager id").to_owned();
    assert_eq!(pending_schedules(&stage).await, 1);

    stage
        .server_publish(json!({"channel": "news", "event": "e", "data": "before"}))
        .await;
    let before = listener.expect_event("e").await;
    assert_eq!(before["data"], "before");
    let scheduled = arrives_on_time(&mut listener, "e", due).await;
    assert_eq!(scheduled["data"], "scheduled");
    assert_eq!(scheduled["id"], eager_id.as_str());
    stage
        .server_publish(json!({"channel": "news", "event": "e", "data": "after"}))
        .await;
    let after = listener.expect_event("e").await;
    assert_eq!(after["data"], "after");
    let ids = [&before["id"], &scheduled["id"], &after["id"]].map(|v| v.as_str().expect("id"));
    assert!(ids[0] < ids[1] && ids[1] < ids[2], "{ids:?}");
    // It is stored as asked, and the schedule is gone once it ran.
    let (status, page) = stage
        .connection_api(&listener, "listMessages", json!({"channel": "news"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["messages"][0]["id"], eager_id.as_str(), "{page}");
    assert_eq!(pending_schedules(&stage).await, 0);
    // Timed: a schedule firing twice would not be ordered behind any marker.
    listener.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_timezone_other_than_utc_lands_at_the_right_instant() {
    let stage = TestStage::start().await;
    let mut listener = stage.connect(listener_claims()).await;
    listener.subscribe("news").await;
    let due = whole_second().await + 3;
    for zone in ["America/New_York", "Asia/Kolkata"] {
        let (status, reply) = stage
            .server_publish(json!({"channel": "news", "event": "e", "data": zone,
                "scheduleExpression": at(due, zone), "scheduleExpressionTimezone": zone}))
            .await;
        assert_eq!(status, 202, "{reply}");
        // The same wall time read as UTC would be hours away (or past).
        assert_ne!(at(due, zone), utc(due));
    }
    for _ in 0..2 {
        arrives_on_time(&mut listener, "e", due).await;
    }
}

/// Publishes `m` (with echo) and writes `draft.*` on `room`, scheduling up to
/// `before`; `n` may be published but not scheduled.
fn writer_claims(before: i64) -> Value {
    json!({"scope": "connect", "uid": "w", "channels": {"room": {"subscribe": true,
        "messages": {"m": {"publish": true, "echo": true, "scheduleBefore": before},
                     "n": {"publish": true, "echo": true}},
        "storage": {"draft.*": {"set": true, "get": true, "observe": true,
                                "scheduleBefore": before},
                    "title": {"set": true, "get": true, "observe": true}}}}})
}

#[tokio::test]
async fn clients_schedule_over_the_socket_and_http_within_schedule_before() {
    let stage = TestStage::start().await;
    let due = whole_second().await + 3;
    let mut writer = stage.connect(writer_claims(due + 60)).await;
    let subscribed = writer.subscribe("room").await;
    assert_eq!(subscribed["event"], "hotsock.subscribed", "{subscribed}");

    writer
        .send(json!({"event": "m", "channel": "room", "data": "socket",
            "scheduleExpression": utc(due)}))
        .await;
    let (status, reply) = stage
        .connection_api(
            &writer,
            "publishMessage",
            json!({"channel": "room", "event": "m",
            "data": "http", "scheduleExpression": utc(due)}),
        )
        .await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(
        (&reply["channel"], &reply["event"]),
        (&json!("room"), &json!("m"))
    );
    assert_schedule_arn(&reply);
    writer
        .send(
            json!({"event": "hotsock.channelStorageSet", "channel": "room", "key": "draft.1",
            "data": "socket", "scheduleExpression": utc(due)}),
        )
        .await;
    let (status, reply) = stage
        .connection_api(
            &writer,
            "channelStorageSet",
            json!({"channel": "room",
            "key": "draft.2", "data": "http", "scheduleExpression": utc(due)}),
        )
        .await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["event"], "hotsock.channelStorageSet");
    assert_schedule_arn(&reply);
    // Nothing happens before the due time; then all of it. (A socket frame is
    // its own invocation, so which of a frame and an HTTP call was scheduled
    // first is not fixed.)
    // Timed: what must not come yet is due later, not behind any marker.
    writer.expect_silence(Duration::from_millis(1_500)).await;
    let (_, early) = stage
        .connection_api(
            &writer,
            "channelStorageGet",
            json!({"channel": "room", "key": "draft.1"}),
        )
        .await;
    assert_eq!(early["data"], Value::Null, "{early}");
    let mut arrived = Vec::new();
    for _ in 0..4 {
        let frame = writer
            .next_within(Duration::from_secs(5))
            .await
            .expect("a frame");
        assert!(now_ms() >= due * 1000, "{frame} came early");
        arrived.push((frame["event"].clone(), frame["data"].clone()));
    }
    assert!(now_ms() <= due * 1000 + LATE, "late");
    let updated = json!("hotsock.channelStorageUpdated");
    arrived.sort_by_key(|(event, data)| (event.to_string(), data.to_string()));
    assert_eq!(
        arrived,
        [
            (updated.clone(), json!("http")),
            (updated, json!("socket")),
            (json!("m"), json!("http")),
            (json!("m"), json!("socket")),
        ]
    );
}

#[tokio::test]
async fn a_scheduled_server_storage_write_updates_observers_when_due() {
    let stage = TestStage::start().await;
    let mut observer = stage.connect(writer_claims(0)).await;
    observer.subscribe("room").await;
    let due = whole_second().await + 2;
    let (status, reply) = stage
        .server_publish(
            json!({"channel": "room", "event": "hotsock.channelStorageSet",
            "key": "title", "data": {"t": "later"}, "scheduleExpression": utc(due)}),
        )
        .await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["event"], "hotsock.channelStorageSet");
    assert_schedule_arn(&reply);
    let update = arrives_on_time(&mut observer, "hotsock.channelStorageUpdated", due).await;
    assert_eq!(
        (&update["key"], &update["data"]),
        (&json!("title"), &json!({"t": "later"}))
    );
    let (_, entry) = stage
        .connection_api(
            &observer,
            "channelStorageGet",
            json!({"channel": "room", "key": "title"}),
        )
        .await;
    assert_eq!(entry["data"], json!({"t": "later"}));
}

#[tokio::test]
async fn refusals_have_stable_codes_and_schedule_nothing() {
    let stage = TestStage::start().await;
    let now = whole_second().await;
    let mut writer = stage.connect(writer_claims(now + 60)).await;
    writer.subscribe("room").await;
    let cases = [
        (
            "m",
            json!({"scheduleExpression": "at(tomorrow)"}),
            "INVALID_SCHEDULE_EXPRESSION",
        ),
        (
            "m",
            json!({"scheduleExpression": "rate(5 minutes)"}),
            "INVALID_SCHEDULE_EXPRESSION",
        ),
        (
            "m",
            json!({"scheduleExpression": "at(2030-02-30T10:00:00)"}),
            "INVALID_SCHEDULE_EXPRESSION",
        ),
        ("m", json!({"scheduleExpression": 1}), "INVALID_REQUEST"),
        (
            "m",
            json!({"scheduleExpression": utc(now + 30), "scheduleExpressionTimezone": "Mars/Base"}),
            "INVALID_SCHEDULE_TIMEZONE",
        ),
        (
            "m",
            json!({"scheduleExpression": utc(now - 5)}),
            "SCHEDULE_IN_PAST",
        ),
        (
            "m",
            json!({"scheduleExpression": utc(now + 120)}),
            "SCHEDULE_PERMISSION_DENIED",
        ),
        (
            "n",
            json!({"scheduleExpression": utc(now + 30)}),
            "SCHEDULE_PERMISSION_DENIED",
        ),
    ];
    for (event, schedule, code) in &cases {
        let mut frame = json!({"event": event, "channel": "room", "data": 1});
        frame
            .as_object_mut()
            .expect("object")
            .extend(schedule.as_object().expect("object").clone());
        writer.send(frame.clone()).await;
        writer.expect_error(code, Some("room")).await;
        let (status, reply) = stage.connection_api(&writer, "publishMessage", frame).await;
        assert_eq!(reply["error"]["code"], *code, "{reply}");
        assert_eq!(
            status,
            if code.contains("PERMISSION") {
                403
            } else {
                400
            }
        );
    }
    // Storage: the key's own scheduleBefore decides.
    writer
        .send(
            json!({"event": "hotsock.channelStorageSet", "channel": "room", "key": "title",
            "data": 1, "scheduleExpression": utc(now + 30)}),
        )
        .await;
    writer
        .expect_error("SCHEDULE_PERMISSION_DENIED", Some("room"))
        .await;
    // A schedule years ahead is taken, as Hotsock (and EventBridge Scheduler) would.
    let (status, reply) = stage
        .server_publish(
            json!({"channel": "room", "event": "far", "scheduleExpression":
            utc(now + 5 * 366 * 86_400)}),
        )
        .await;
    assert_eq!(status, 202, "{reply}");
    assert!(reply["scheduleArn"].is_string(), "{reply}");
    // The server needs no grant, but not the past.
    for (expression, code) in [(utc(now - 1), "SCHEDULE_IN_PAST")] {
        let (status, reply) = stage
            .server_publish(
                json!({"channel": "room", "event": "m", "scheduleExpression": expression}),
            )
            .await;
        assert_eq!(
            (status, &reply["error"]["code"]),
            (400, &json!(code)),
            "{reply}"
        );
        let (status, reply) = stage
            .server_publish(
                json!({"channel": "room", "event": "hotsock.channelStorageSet",
                "key": "title", "data": 1, "scheduleExpression": expression}),
            )
            .await;
        assert_eq!(
            (status, &reply["error"]["code"]),
            (400, &json!(code)),
            "{reply}"
        );
    }
    assert_eq!(
        pending_schedules(&stage).await,
        1,
        "only the far schedule waits; no refusal scheduled anything"
    );
    // A refusal queued at once would reach the writer before the marker (none
    // was scheduled: the count above).
    stage.publish_marker("room").await;
    writer.expect_next_event("marker").await;
}

#[tokio::test]
async fn schedules_survive_a_stage_restart_on_kept_data() {
    let first = TestStage::start().await;
    let table = first.stage.table_name.clone();
    let due = whole_second().await + 4;
    let (status, reply) = first
        .server_publish(json!({"channel": "news", "event": "e", "data": "kept",
            "scheduleExpression": utc(due)}))
        .await;
    assert_eq!(status, 202, "{reply}");
    let TestStage { stage, .. } = first;
    stage.stop().await;

    let second = TestStage::start_with(|options| options.table_name = table).await;
    let mut listener = second.connect(listener_claims()).await;
    listener.subscribe("news").await;
    let frame = arrives_on_time(&mut listener, "e", due).await;
    assert_eq!(frame["data"], "kept");
    assert_eq!(pending_schedules(&second).await, 0);
}
