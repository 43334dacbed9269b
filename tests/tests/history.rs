//! `listMessages` and `publishMessage` over the Client HTTP API.

use serde_json::{json, Value};
use sockhop_tests::{Client, TestStage};
use std::time::Duration;

fn claims(uid: &str, history_start: Option<i64>, store: i64) -> Value {
    let mut channel = json!({"subscribe": true,
        "messages": {"msg": {"publish": true, "store": store}, "tmp": {"publish": true}}});
    if let Some(start) = history_start {
        channel["historyStart"] = json!(start);
    }
    json!({"scope": "connect", "uid": uid, "channels": {"log": channel}})
}

fn ids(page: &Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Publishes over the Client HTTP API on channel `log`; the stage must accept it
/// (202: queued), and the test waits until it is delivered.
async fn publish(stage: &TestStage, writer: &Client, event: &str, data: Value) {
    let (status, body) = stage
        .connection_api(
            writer,
            "publishMessage",
            json!({"channel": "log", "event": event, "data": data}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    stage.deliveries_settled().await;
}

/// The `data` of every message `reader` can list on channel `log` (first page).
async fn listed_data(stage: &TestStage, reader: &Client) -> Vec<Value> {
    let (status, page) = stage
        .connection_api(reader, "listMessages", json!({"channel": "log"}))
        .await;
    assert_eq!(status, 200, "{page}");
    page["messages"]
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["data"].clone())
        .collect()
}

#[tokio::test]
async fn pages_250_messages_both_directions() {
    let stage = TestStage::start().await;
    let mut writer = stage.connect(claims("w", Some(0), 3600)).await;
    writer.subscribe("log").await;
    for i in 0..250 {
        publish(&stage, &writer, "msg", json!({"i": i})).await;
    }
    let mut reader = stage.connect(claims("r", Some(0), 3600)).await;
    reader.subscribe("log").await;

    // Forward: oldest first, 100 per page, `after` continues.
    let mut forward = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut body = json!({"channel": "log"});
        if let Some(a) = &after {
            body["after"] = json!(a);
        }
        let (status, page) = stage.connection_api(&reader, "listMessages", body).await;
        assert_eq!(status, 200, "{page}");
        let page_ids = ids(&page);
        pages += 1;
        assert!(page_ids.len() <= 100);
        if page_ids.is_empty() {
            break;
        }
        if forward.is_empty() {
            let first = &page["messages"][0];
            assert_eq!(first["data"], json!({"i": 0}));
            assert_eq!(first["event"], "msg");
            assert_eq!(first["channel"], "log");
            assert_eq!(first["meta"], json!({"uid": "w", "umd": null}));
        }
        after = page_ids.last().cloned();
        forward.extend(page_ids);
    }
    assert_eq!(forward.len(), 250);
    assert_eq!(pages, 4, "100 + 100 + 50 + empty");
    let mut sorted = forward.clone();
    sorted.sort();
    assert_eq!(forward, sorted);

    // Backward: newest first with `reverse`, `before` continues.
    let mut backward = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut body = json!({"channel": "log", "reverse": true});
        if let Some(b) = &before {
            body["before"] = json!(b);
        }
        let (_, page) = stage.connection_api(&reader, "listMessages", body).await;
        let page_ids = ids(&page);
        if page_ids.is_empty() {
            break;
        }
        if backward.is_empty() {
            assert_eq!(page["messages"][0]["data"], json!({"i": 249}));
        }
        before = page_ids.last().cloned();
        backward.extend(page_ids);
    }
    backward.reverse();
    assert_eq!(backward, forward);
}

#[tokio::test]
async fn without_history_start_only_messages_since_subscribing_are_listed() {
    let stage = TestStage::start().await;
    let mut writer = stage.connect(claims("w", None, 3600)).await;
    writer.subscribe("log").await;
    publish(&stage, &writer, "msg", json!("old")).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut late = stage.connect(claims("late", None, 3600)).await;
    late.subscribe("log").await;
    publish(&stage, &writer, "msg", json!("new")).await;
    assert_eq!(listed_data(&stage, &late).await, [json!("new")]);
    assert_eq!(listed_data(&stage, &writer).await.len(), 2);
}

#[tokio::test]
async fn unstored_and_expired_messages_are_not_listed() {
    let stage = TestStage::start().await;
    // TTLs have whole-second granularity: 3 s leaves room to list before expiry.
    let mut writer = stage.connect(claims("w", Some(0), 3)).await;
    writer.subscribe("log").await;
    publish(&stage, &writer, "tmp", json!("never stored")).await;
    publish(&stage, &writer, "msg", json!("three seconds")).await;
    assert_eq!(listed_data(&stage, &writer).await, [json!("three seconds")]);
    tokio::time::sleep(Duration::from_millis(4100)).await;
    let (_, page) = stage
        .connection_api(&writer, "listMessages", json!({"channel": "log"}))
        .await;
    assert_eq!(page, json!({"messages": []}), "expired message listed");
}

#[tokio::test]
async fn http_api_rejects_bad_credentials_and_requests() {
    let stage = TestStage::start().await;
    let mut jim = stage.connect(claims("jim", Some(0), 60)).await;
    let (status, body) = stage
        .connection_api_as(
            &jim.connection_id,
            "wrong-secret",
            "listMessages",
            json!({"channel": "log"}),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "FORBIDDEN");
    let (status, _) = stage
        .connection_api_as(
            "nope",
            &jim.secret,
            "listMessages",
            json!({"channel": "log"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = stage
        .connection_api_as("", "", "listMessages", json!({}))
        .await;
    assert!(status == 401 || status == 403, "{status} {body}");
    // An absurd id is refused like an unknown one, not a 500 from the database.
    let (status, body) = stage
        .connection_api_as(
            &"x".repeat(2048),
            &jim.secret,
            "listMessages",
            json!({"channel": "log"}),
        )
        .await;
    assert_eq!((status, &body["error"]["code"]), (403, &json!("FORBIDDEN")));
    // Not subscribed yet.
    let (status, body) = stage
        .connection_api(&jim, "listMessages", json!({"channel": "log"}))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "NOT_SUBSCRIBED");
    jim.subscribe("log").await;
    let (status, body) = stage
        .connection_api(&jim, "listMessages", json!({"channel": "bad name"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "INVALID_CHANNEL");
    let (status, body) = stage
        .connection_api(
            &jim,
            "listMessages",
            json!({"channel": "log", "after": "xyz"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = stage
        .connection_api(
            &jim,
            "publishMessage",
            json!({"channel": "log", "event": "nope"}),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "PUBLISH_PERMISSION_DENIED");
    let (status, body) = stage
        .connection_api(
            &jim,
            "publishMessage",
            json!({"channel": "log", "event": "msg", "data": "x".repeat(40_000)}),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    let (status, body) = stage.connection_api(&jim, "frobnicate", json!({})).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = stage
        .connection_api(
            &jim,
            "publishMessage",
            json!({"channel": "log", "event": "msg", "eagerIdGeneration": true}),
        )
        .await;
    assert_eq!(status, 202);
    assert!(
        body["id"]
            .as_str()
            .is_some_and(|id| ulid::Ulid::from_string(id).is_ok()),
        "{body}"
    );
    assert_eq!(body["channel"], "log");
    // Malformed JSON body.
    let url = format!(
        "{}/connection/listMessages?connectionId={}&connectionSecret={}",
        stage.stage.http_url(),
        url::form_urlencoded::byte_serialize(jim.connection_id.as_bytes()).collect::<String>(),
        jim.secret
    );
    let response = stage
        .http
        .post(url)
        .body("{not json")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 400);
    // Published over HTTP, delivered over the socket like any other (no echo
    // for the sender).
    let mut pam = stage.connect(claims("pam", Some(0), 60)).await;
    pam.subscribe("log").await;
    publish(&stage, &jim, "msg", json!("to pam")).await;
    let got = pam.expect_event("msg").await;
    assert_eq!(got["data"], "to pam");
    assert_eq!(got["meta"]["uid"], "jim");
    // No echo: the marker behind it on the channel is Jim's next frame.
    stage.publish_marker("log").await;
    jim.expect_next_event("marker").await;
}
