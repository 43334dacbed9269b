//! Channel storage on the local stage: writes, reads, observers, catch-up on
//! subscribe, the Client HTTP API, server-side writes and the admin read, TTL,
//! and bad input.

use serde_json::{json, Value};
use sockhop_tests::{Client, TestStage};
use std::time::Duration;

/// A player of the lobby: observes and reads everything, writes `player.*`;
/// only the host may write `settings`.
fn player(uid: &str, host: bool) -> Value {
    json!({"scope": "connect", "uid": uid, "umd": {"name": uid},
    "channels": {"lobby": {"subscribe": true,
        "messages": {"chat": {"publish": true}},
        "storage": {
            "*": {"observe": true, "get": true},
            "settings": {"set": host},
            "player.*": {"set": true, "store": 3600},
            "secret": {"observe": false, "get": false}
        }}}})
}

/// Subscribed to the lobby, with every catch-up frame read.
async fn joined(stage: &TestStage, uid: &str, host: bool) -> Client {
    let mut client = stage.connect(player(uid, host)).await;
    client.subscribe("lobby").await;
    client
}

async fn storage_set(client: &mut Client, key: &str, data: Value) {
    client
        .send(json!({"event": "hotsock.channelStorageSet", "channel": "lobby", "key": key, "data": data}))
        .await;
}

async fn storage_get(client: &mut Client, key: &str) -> Value {
    client
        .send(json!({"event": "hotsock.channelStorageGet", "channel": "lobby", "key": key}))
        .await;
    client.expect_event("hotsock.channelStorageData").await
}

#[tokio::test]
async fn observers_see_every_change_and_the_writer_its_own() {
    let stage = TestStage::start().await;
    let mut host = joined(&stage, "host", true).await;
    let mut guest = joined(&stage, "guest", false).await;
    storage_set(&mut host, "settings", json!({"mode": "duel", "max": 2})).await;
    for client in [&mut host, &mut guest] {
        let update = client.expect_event("hotsock.channelStorageUpdated").await;
        assert_eq!(
            update,
            json!({"event": "hotsock.channelStorageUpdated", "channel": "lobby", "key": "settings",
                   "data": {"mode": "duel", "max": 2},
                   "meta": {"uid": "host", "umd": {"name": "host"}}})
        );
    }
    // The same value again changes nothing and tells nobody.
    storage_set(&mut host, "settings", json!({"mode": "duel", "max": 2})).await;
    // A key nobody may observe is written silently.
    stage
        .server_publish(json!({"channel": "lobby", "event": "hotsock.channelStorageSet", "key": "secret", "data": 1}))
        .await;
    // Both writes are on the channel's path before the marker.
    stage.publish_marker("lobby").await;
    host.expect_next_event("marker").await;
    guest.expect_next_event("marker").await;
    // Reads: the entry with its writer; an unset key is null / null.
    let data = storage_get(&mut guest, "settings").await;
    assert_eq!(data["data"], json!({"mode": "duel", "max": 2}));
    assert_eq!(data["meta"]["uid"], "host");
    let unset = storage_get(&mut guest, "player.nobody").await;
    assert_eq!(
        unset,
        json!({"event": "hotsock.channelStorageData", "channel": "lobby", "key": "player.nobody",
               "data": null, "meta": null})
    );
    // null and {} clear: observers get null, reads find nothing.
    storage_set(&mut guest, "player.guest", json!({"ready": true})).await;
    guest.expect_event("hotsock.channelStorageUpdated").await;
    host.expect_event("hotsock.channelStorageUpdated").await;
    storage_set(&mut guest, "player.guest", json!({})).await;
    let cleared = host.expect_event("hotsock.channelStorageUpdated").await;
    assert_eq!(cleared["data"], Value::Null);
    assert_eq!(cleared["key"], "player.guest");
    guest.expect_event("hotsock.channelStorageUpdated").await;
    assert_eq!(
        storage_get(&mut host, "player.guest").await["data"],
        Value::Null
    );
}

#[tokio::test]
async fn a_new_subscriber_is_caught_up_right_after_subscribed() {
    let stage = TestStage::start().await;
    let mut host = joined(&stage, "host", true).await;
    storage_set(&mut host, "settings", json!({"mode": "coop"})).await;
    storage_set(&mut host, "player.host", json!({"colour": "red"})).await;
    stage
        .server_publish(json!({"channel": "lobby", "event": "hotsock.channelStorageSet", "key": "secret", "data": "hidden"}))
        .await;
    stage.deliveries_settled().await;
    let mut late = stage.connect(player("late", false)).await;
    late.send(json!({"event": "hotsock.subscribe", "channel": "lobby"}))
        .await;
    assert_eq!(late.next().await["event"], "hotsock.subscribed");
    let mut caught_up = Vec::new();
    for _ in 0..2 {
        let frame = late.next().await;
        assert_eq!(frame["event"], "hotsock.channelStorageUpdated", "{frame}");
        caught_up.push((frame["key"].clone(), frame["data"].clone()));
    }
    assert_eq!(
        caught_up,
        vec![
            (json!("player.host"), json!({"colour": "red"})),
            (json!("settings"), json!({"mode": "coop"}))
        ]
    );
    // The catch-up is part of the welcome, ahead of the marker.
    stage.publish_marker("lobby").await;
    late.expect_next_event("marker").await;
}

#[tokio::test]
async fn permissions_decide_and_no_subscription_is_needed() {
    let stage = TestStage::start().await;
    // Not subscribed: connect-token grants suffice for get and set.
    let mut guest = stage.connect(player("guest", false)).await;
    storage_set(&mut guest, "settings", json!({"mode": "mine"})).await;
    guest
        .expect_error("STORAGE_PERMISSION_DENIED", Some("lobby"))
        .await;
    storage_set(&mut guest, "player.guest", json!({"ready": false})).await;
    // The frame is handled on its own (as API Gateway would), so poll for its effect.
    let mut read = Value::Null;
    for _ in 0..50 {
        read = storage_get(&mut guest, "player.guest").await["data"].clone();
        if !read.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(read, json!({"ready": false}));
    guest
        .send(json!({"event": "hotsock.channelStorageGet", "channel": "lobby", "key": "secret"}))
        .await;
    guest
        .expect_error("STORAGE_PERMISSION_DENIED", Some("lobby"))
        .await;
    // Over HTTP: the same rules and codes.
    let (status, body) = stage
        .connection_api(
            &guest,
            "channelStorageSet",
            json!({"channel": "lobby", "key": "settings", "data": 1}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("STORAGE_PERMISSION_DENIED"))
    );
    let (status, body) = stage
        .connection_api(
            &guest,
            "channelStorageSet",
            json!({"channel": "lobby", "key": "player.guest", "data": {"ready": true}}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body,
        json!({"channel": "lobby", "event": "hotsock.channelStorageSet"})
    );
    stage.deliveries_settled().await;
    let (status, body) = stage
        .connection_api(
            &guest,
            "channelStorageGet",
            json!({"channel": "lobby", "key": "player.guest"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["event"], "hotsock.channelStorageData");
    assert_eq!(body["data"], json!({"ready": true}));
    assert_eq!(
        body["meta"],
        json!({"uid": "guest", "umd": {"name": "guest"}})
    );
    // A channel without storage grants.
    let (status, body) = stage
        .connection_api(
            &guest,
            "channelStorageGet",
            json!({"channel": "elsewhere", "key": "k"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("STORAGE_PERMISSION_DENIED"))
    );
}

#[tokio::test]
async fn lists_page_by_key_and_show_only_what_may_be_read() {
    let stage = TestStage::start().await;
    for (key, data) in [
        ("player.a", 1),
        ("player.b", 2),
        ("player.c", 3),
        ("secret", 4),
    ] {
        let (status, _) = stage
            .server_publish(json!({"channel": "lobby", "event": "hotsock.channelStorageSet", "key": key, "data": data}))
            .await;
        assert_eq!(status, 202);
    }
    stage.deliveries_settled().await;
    let guest = stage.connect(player("guest", false)).await;
    let list = |body: Value| stage.connection_api(&guest, "channelStorageList", body);
    let keys = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["key"].as_str().expect("key").to_owned())
            .collect()
    };
    let (status, all) = list(json!({"channel": "lobby"})).await;
    assert_eq!(status, 200);
    assert_eq!(
        keys(&all),
        ["player.a", "player.b", "player.c"],
        "secret is not readable"
    );
    assert_eq!(
        all["items"][0],
        json!({"key": "player.a", "data": 1, "meta": {"uid": null, "umd": null}})
    );
    let (_, after) = list(json!({"channel": "lobby", "after": "player.a"})).await;
    assert_eq!(keys(&after), ["player.b", "player.c"]);
    let (_, some) =
        list(json!({"channel": "lobby", "keys": ["player.c", "secret", "missing"]})).await;
    assert_eq!(keys(&some), ["player.c"]);
    let too_many: Vec<String> = (0..101).map(|i| format!("k{i}")).collect();
    let (status, body) = list(json!({"channel": "lobby", "keys": too_many})).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("INVALID_REQUEST"))
    );
    // The admin read sees everything, with the API key only.
    let url = format!("{}/channels/lobby/storage", stage.stage.http_url());
    let admin = stage
        .http
        .get(&url)
        .header(
            "authorization",
            format!("Bearer {}", sockhop_tests::TEST_API_KEY),
        )
        .send()
        .await
        .expect("admin read");
    assert_eq!(admin.status(), 200);
    let body: Value = admin.json().await.expect("json");
    assert_eq!(keys(&body), ["player.a", "player.b", "player.c", "secret"]);
    let some = stage
        .http
        .get(format!("{url}?keys=secret,player.b&after=player.a"))
        .header(
            "authorization",
            format!("Bearer {}", sockhop_tests::TEST_API_KEY),
        )
        .send()
        .await
        .expect("admin read");
    let body: Value = some.json().await.expect("json");
    assert_eq!(keys(&body), ["player.b", "secret"]);
    let refused = stage.http.get(&url).send().await.expect("answer");
    assert_eq!(refused.status(), 401);
}

#[tokio::test]
async fn long_lists_come_in_pages_of_100_and_a_subscriber_still_sees_everything() {
    let stage = TestStage::start().await;
    // 150 readable entries and `secret`, written straight into the table (the
    // write path has its own tests; 151 queued writes one after another only
    // make this slow).
    let mut written: Vec<String> = (0..150).map(|i| format!("player.{i:03}")).collect();
    written.push("secret".into());
    let store = &stage.stage.app.store;
    let entries: Vec<_> = written
        .iter()
        .map(|key| sockhop::store::StorageItem {
            channel: "lobby".into(),
            key: key.clone(),
            data: json!(key).to_string(),
            meta: json!({"uid": null, "umd": null}).to_string(),
            ttl: None,
            write_id: None,
            cleared: false,
            emit: false,
            previous: None,
        })
        .collect();
    futures::future::try_join_all(entries.iter().map(|entry| store.put_storage(entry)))
        .await
        .expect("entries written");
    let readable: Vec<String> = written[..150].to_vec();
    let keys_of = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["key"].as_str().expect("key").to_owned())
            .collect()
    };

    let mut guest = stage.connect(player("guest", false)).await;
    let (_, first) = stage
        .connection_api(&guest, "channelStorageList", json!({"channel": "lobby"}))
        .await;
    assert_eq!(keys_of(&first), readable[..100]);
    let (_, second) = stage
        .connection_api(
            &guest,
            "channelStorageList",
            json!({"channel": "lobby", "after": readable[99]}),
        )
        .await;
    assert_eq!(
        keys_of(&second),
        readable[100..],
        "secret is skipped, not counted"
    );

    let admin_page = |after: Option<&str>| {
        let mut url = format!("{}/channels/lobby/storage", stage.stage.http_url());
        if let Some(after) = after {
            url.push_str(&format!("?after={after}"));
        }
        let request = stage.http.get(url).header(
            "authorization",
            format!("Bearer {}", sockhop_tests::TEST_API_KEY),
        );
        async move {
            let body: Value = request
                .send()
                .await
                .expect("admin read")
                .json()
                .await
                .expect("json");
            body
        }
    };
    let first = admin_page(None).await;
    assert_eq!(keys_of(&first), written[..100]);
    let second = admin_page(Some(&written[99])).await;
    assert_eq!(keys_of(&second), written[100..]);

    // Observing is not paged: the catch-up has every observable entry.
    let subscribed = guest.subscribe("lobby").await;
    assert_eq!(subscribed["event"], "hotsock.subscribed");
    let mut caught_up = Vec::new();
    for _ in 0..150 {
        let frame = guest.next().await;
        assert_eq!(frame["event"], "hotsock.channelStorageUpdated", "{frame}");
        caught_up.push(frame["key"].as_str().expect("key").to_owned());
    }
    assert_eq!(caught_up, readable);
    stage.publish_marker("lobby").await;
    guest.expect_next_event("marker").await;
}

#[tokio::test]
async fn entries_expire_silently_after_their_store_seconds() {
    let stage = TestStage::start().await;
    let mut writer = stage
        .connect(
            json!({"scope": "connect", "uid": "w", "channels": {"lobby": {"subscribe": true,
            "storage": {"flash": {"observe": true, "get": true, "set": true, "store": 1}}}}}),
        )
        .await;
    writer.subscribe("lobby").await;
    storage_set(&mut writer, "flash", json!("now you see it")).await;
    assert_eq!(
        writer.expect_event("hotsock.channelStorageUpdated").await["data"],
        "now you see it"
    );
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    // Gone for reads, lists and catch-up, though DynamoDB has not deleted it; no frame said so.
    // Timed: an expiry is no record on the channel's path, so nothing is
    // ordered after a frame it might send.
    writer.expect_silence(Duration::from_millis(100)).await;
    assert_eq!(storage_get(&mut writer, "flash").await["data"], Value::Null);
    let (_, list) = stage
        .connection_api(&writer, "channelStorageList", json!({"channel": "lobby"}))
        .await;
    assert_eq!(list, json!({"items": []}));
    let mut late = stage
        .connect(
            json!({"scope": "connect", "channels": {"lobby": {"subscribe": true,
            "storage": {"flash": {"observe": true}}}}}),
        )
        .await;
    late.subscribe("lobby").await;
    // No catch-up of the expired entry: it would come before the marker.
    stage.publish_marker("lobby").await;
    late.expect_next_event("marker").await;
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let stage = TestStage::start().await;
    let mut host = joined(&stage, "host", true).await;
    storage_set(&mut host, "settings", json!({"mode": "duel"})).await;
    host.expect_event("hotsock.channelStorageUpdated").await;
    for key in [
        "",
        "has space",
        "star*",
        "hash#",
        "comma,",
        &"k".repeat(129),
    ] {
        storage_set(&mut host, key, json!(1)).await;
        host.expect_error("INVALID_STORAGE_KEY", Some("lobby"))
            .await;
    }
    host.send(json!({"event": "hotsock.channelStorageSet", "channel": "lobby", "data": 1}))
        .await;
    host.expect_error("INVALID_STORAGE_KEY", Some("lobby"))
        .await;
    storage_set(&mut host, "settings", json!("x".repeat(33 * 1024))).await;
    host.expect_error("MESSAGE_TOO_LARGE", Some("lobby")).await;
    host.send(
        json!({"event": "hotsock.channelStorageSet", "channel": "lobby", "key": "settings",
        "data": 1, "scheduleExpression": "at(2030-01-01T00:00:00)"}),
    )
    .await;
    // No scheduleBefore grant (tests/tests/schedule.rs has the rest).
    host.expect_error("SCHEDULE_PERMISSION_DENIED", Some("lobby"))
        .await;
    let (status, body) = stage
        .server_publish(json!({"channel": "lobby", "event": "hotsock.channelStorageSet", "key": "a b", "data": 1}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("INVALID_STORAGE_KEY"))
    );
    let (status, body) = stage
        .server_publish(json!({"channel": "lobby", "event": "hotsock.channelStorageSet", "key": "k", "data": 1, "store": 0}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("INVALID_REQUEST"))
    );
    stage.deliveries_settled().await;
    assert_eq!(
        storage_get(&mut host, "settings").await["data"],
        json!({"mode": "duel"})
    );
    // The refused writes told nobody: the marker is the host's next frame.
    stage.publish_marker("lobby").await;
    host.expect_next_event("marker").await;
}

/// Writers racing on one key, with messages in between: every observer sees
/// the same sequence of updates and messages, and ends on the stored value.
#[tokio::test]
async fn racing_writers_leave_every_observer_on_one_value_in_one_order() {
    let stage = TestStage::start().await;
    let mut alice = joined(&stage, "alice", false).await;
    let mut bob = joined(&stage, "bob", false).await;
    let mut watcher = joined(&stage, "watcher", false).await;
    let rounds = 15;
    for i in 0..rounds {
        storage_set(&mut alice, "player.turn", json!({"by": "alice", "i": i})).await;
        storage_set(&mut bob, "player.turn", json!({"by": "bob", "i": i})).await;
        stage
            .server_publish(json!({"channel": "lobby", "event": "tick", "data": i}))
            .await;
    }
    stage.deliveries_settled().await;
    let a = sequence(&mut alice).await;
    let b = sequence(&mut bob).await;
    let w = sequence(&mut watcher).await;
    assert_eq!(a, w, "alice and the watcher saw one order");
    assert_eq!(b, w, "bob and the watcher saw one order");
    assert_eq!(
        w.iter().filter(|(e, _)| e == "tick").count(),
        rounds,
        "every message"
    );
    let last_update = w
        .iter()
        .rev()
        .find(|(e, _)| e == "hotsock.channelStorageUpdated")
        .map(|(_, d)| d.clone())
        .expect("updates");
    assert_eq!(
        storage_get(&mut watcher, "player.turn").await["data"],
        last_update
    );
}

/// Every frame until the socket has been quiet for half a second.
async fn sequence(client: &mut Client) -> Vec<(Value, Value)> {
    let mut seen = Vec::new();
    while let Some(frame) = client.next_within(Duration::from_millis(500)).await {
        seen.push((frame["event"].clone(), frame["data"].clone()));
    }
    seen
}
