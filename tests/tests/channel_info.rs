//! Channel info on the local stage: `connection/getChannelInfo` (the `getInfo`
//! grant, no subscription needed) and the admin `GET /channels/{name}`;
//! counts exact after bursts of concurrent subscribes, unsubscribes and
//! disconnects.

use serde_json::{json, Value};
use sockhop_tests::{Client, TestStage, TEST_API_KEY};
use std::time::{Duration, Instant};

fn claims(uid: &str, channels: Value) -> Value {
    json!({"scope": "connect", "uid": uid, "umd": {"name": uid}, "channels": channels})
}

async fn admin_info(stage: &TestStage, channel: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = stage
        .http
        .get(format!("{}/channels/{channel}", stage.stage.http_url()));
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let response = request.send().await.expect("admin read");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls the admin read until its count is `want` (disconnects are processed
/// after the socket closes), then returns the last reply.
async fn count_becomes(stage: &TestStage, channel: &str, want: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = admin_info(stage, channel, Some(TEST_API_KEY)).await;
        assert_eq!(status, 200, "{body}");
        if body["subscriptionsCount"] == want || Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn get_info_needs_the_grant_but_no_subscription() {
    let stage = TestStage::start().await;
    let mut member = stage
        .connect(claims("ann", json!({"room": {"subscribe": true}})))
        .await;
    member.subscribe("room").await;
    let mut hidden = stage
        .connect(claims(
            "spy",
            json!({"room": {"subscribe": true, "omitFromSubCount": true}}),
        ))
        .await;
    hidden.subscribe("room").await;

    let reader = stage
        .connect(claims("reader", json!({"room": {"getInfo": true}})))
        .await;
    let (status, body) = stage
        .connection_api(&reader, "getChannelInfo", json!({"channel": "room"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"channel": "room", "subscriptionsCount": 1}),
        "no members on a non-presence channel; omitFromSubCount is not counted"
    );

    // No getInfo: refused with its code, subscribed or not.
    let (status, body) = stage
        .connection_api(&member, "getChannelInfo", json!({"channel": "room"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("GET_INFO_PERMISSION_DENIED")),
        "{body}"
    );
    // An explicit false wins over a wildcard grant.
    let denied = stage
        .connect(claims(
            "d",
            json!({"*": {"getInfo": true}, "room": {"getInfo": false}}),
        ))
        .await;
    let (status, _) = stage
        .connection_api(&denied, "getChannelInfo", json!({"channel": "room"}))
        .await;
    assert_eq!(status, 403);
    // Bad input.
    for (body, code) in [
        (json!({}), "INVALID_CHANNEL"),
        (json!({"channel": "a b"}), "INVALID_CHANNEL"),
        (json!({"channel": 5}), "INVALID_REQUEST"),
    ] {
        let (status, reply) = stage
            .connection_api(&reader, "getChannelInfo", body.clone())
            .await;
        assert_eq!(
            (status, reply["error"]["code"].clone()),
            (400, json!(code)),
            "{body} -> {reply}"
        );
    }
    // Refusals changed nothing.
    let (status, body) = stage
        .connection_api(&reader, "getChannelInfo", json!({"channel": "room"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["subscriptionsCount"], 1);
}

#[tokio::test]
async fn presence_members_are_one_per_uid_and_subscriptions_count_each() {
    let stage = TestStage::start().await;
    let grant = json!({"presence.lobby": {"subscribe": true, "getInfo": true}});
    let mut jim_phone = stage.connect(claims("jim", grant.clone())).await;
    let mut jim_laptop = stage.connect(claims("jim", grant.clone())).await;
    let mut pam = stage.connect(claims("pam", grant.clone())).await;
    for client in [&mut jim_phone, &mut jim_laptop, &mut pam] {
        assert_eq!(
            client.subscribe("presence.lobby").await["event"],
            "hotsock.subscribed"
        );
    }
    let (status, body) = stage
        .connection_api(&pam, "getChannelInfo", json!({"channel": "presence.lobby"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["channel"], "presence.lobby");
    assert_eq!(body["subscriptionsCount"], 3);
    let mut uids: Vec<&str> = body["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["uid"].as_str().expect("uid"))
        .collect();
    uids.sort();
    assert_eq!(uids, ["jim", "pam"]);
    assert_eq!(body["members"][0]["umd"]["name"], body["members"][0]["uid"]);

    let admin = count_becomes(&stage, "presence.lobby", 3).await;
    assert_eq!(admin["name"], "presence.lobby");
    assert_eq!(admin["members"].as_array().map(Vec::len), Some(2));
    // An unused presence channel: zero and an empty list; others have no members.
    let (_, empty) = admin_info(&stage, "presence.nobody", Some(TEST_API_KEY)).await;
    assert_eq!(
        empty,
        json!({"name": "presence.nobody", "subscriptionsCount": 0, "members": []})
    );
    let (_, plain) = admin_info(&stage, "never-used", Some(TEST_API_KEY)).await;
    assert_eq!(
        plain,
        json!({"name": "never-used", "subscriptionsCount": 0})
    );
}

#[tokio::test]
async fn the_admin_read_needs_an_api_key_and_a_valid_name() {
    let stage = TestStage::start().await;
    let (status, body) = admin_info(&stage, "room", None).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("UNAUTHORIZED"))
    );
    let (status, _) = admin_info(&stage, "room", Some("wrong-key")).await;
    assert_eq!(status, 401);
    let (status, body) = admin_info(&stage, "a%2Cb", Some(TEST_API_KEY)).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("INVALID_CHANNEL")),
        "{body}"
    );
}

#[tokio::test]
async fn counts_stay_exact_through_bursts_of_joins_leaves_and_disconnects() {
    let stage = TestStage::start().await;
    let grant = json!({"presence.burst": {"subscribe": true}});
    let mut clients: Vec<Client> = Vec::new();
    for i in 0..40 {
        clients.push(
            stage
                .connect(claims(&format!("u{}", i % 30), grant.clone()))
                .await,
        );
    }
    // Each waits for its own hotsock.subscribed (others' memberAdded may come first).
    futures::future::join_all(clients.iter_mut().map(|c| async move {
        c.send(json!({"event": "hotsock.subscribe", "channel": "presence.burst"}))
            .await;
        c.expect_event("hotsock.subscribed").await
    }))
    .await;
    let full = count_becomes(&stage, "presence.burst", 40).await;
    assert_eq!(full["subscriptionsCount"], 40);
    assert_eq!(full["members"].as_array().map(Vec::len), Some(30));

    // At once: 10 unsubscribe, 15 disconnect, 15 stay (u25..u29 and u0..u9's second sockets).
    let mut rest = clients.split_off(10);
    let leaving = clients;
    let dropping: Vec<Client> = rest.drain(..15).collect();
    let unsubscribes = futures::future::join_all(leaving.into_iter().map(|mut c| async move {
        c.send(json!({"event": "hotsock.unsubscribe", "channel": "presence.burst"}))
            .await;
        c.expect_event("hotsock.unsubscribed").await;
        c
    }));
    let disconnects = futures::future::join_all(dropping.into_iter().map(Client::close));
    let (_still_connected, _) = tokio::join!(unsubscribes, disconnects);

    let after = count_becomes(&stage, "presence.burst", 15).await;
    assert_eq!(after["subscriptionsCount"], 15, "{after}");
    let mut uids: Vec<String> = after["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["uid"].as_str().expect("uid").to_owned())
        .collect();
    uids.sort();
    let mut expected: Vec<String> = (25..40).map(|i| format!("u{}", i % 30)).collect();
    expected.sort();
    expected.dedup();
    assert_eq!(uids, expected);
    assert_eq!(stage.subscriptions_count("presence.burst").await, 15);
}
