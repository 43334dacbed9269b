//! Presence channels: member lists and member events over real sockets.

use serde_json::{json, Value};
use sockhop_tests::{Client, TestStage};
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(700);

fn claims(uid: Option<&str>, umd: Value) -> Value {
    let mut c =
        json!({"scope": "connect", "umd": umd, "channels": {"presence.*": {"subscribe": true}}});
    if let Some(uid) = uid {
        c["uid"] = json!(uid);
    }
    c
}

async fn join(stage: &TestStage, uid: &str) -> (Client, Value) {
    let mut c = stage.connect(claims(Some(uid), json!({"name": uid}))).await;
    let frame = c.subscribe("presence.room").await;
    assert_eq!(frame["event"], "hotsock.subscribed", "{frame}");
    (c, frame)
}

fn member(uid: &str) -> Value {
    json!({"uid": uid, "umd": {"name": uid}})
}

#[tokio::test]
async fn members_join_and_leave() {
    let stage = TestStage::start().await;
    let (mut jim, frame) = join(&stage, "jim").await;
    assert_eq!(frame["data"]["members"], json!([member("jim")]));

    let (mut pam, frame) = join(&stage, "pam").await;
    assert_eq!(
        frame["data"]["members"],
        json!([member("jim"), member("pam")])
    );
    let added = jim.expect_event("hotsock.memberAdded").await;
    assert_eq!(
        added,
        json!({"event": "hotsock.memberAdded", "channel": "presence.room",
               "data": {"member": member("pam"), "members": [member("jim"), member("pam")]}})
    );
    pam.expect_silence(QUIET).await;

    // A second connection of the same user with the same umd is no news.
    let (jim_again, frame) = join(&stage, "jim").await;
    assert_eq!(
        frame["data"]["members"],
        json!([member("jim"), member("pam")])
    );
    pam.expect_silence(QUIET).await;

    // Jim leaves one of two connections: still a member.
    jim_again.close().await;
    pam.expect_silence(QUIET).await;

    pam.send(json!({"event": "hotsock.unsubscribe", "channel": "presence.room"}))
        .await;
    pam.expect_event("hotsock.unsubscribed").await;
    let removed = jim.expect_event("hotsock.memberRemoved").await;
    assert_eq!(
        removed["data"],
        json!({"member": member("pam"), "members": [member("jim")]})
    );
}

#[tokio::test]
async fn disconnecting_the_last_connection_removes_the_member() {
    let stage = TestStage::start().await;
    let (mut jim, _) = join(&stage, "jim").await;
    let (pam, _) = join(&stage, "pam").await;
    jim.expect_event("hotsock.memberAdded").await;
    pam.close().await;
    let removed = jim.expect_event("hotsock.memberRemoved").await;
    assert_eq!(removed["data"]["members"], json!([member("jim")]));
    assert_eq!(removed["data"]["member"]["uid"], "pam");
}

#[tokio::test]
async fn presence_needs_a_uid_and_standard_channels_have_no_members() {
    let stage = TestStage::start().await;
    let mut anon = stage.connect(claims(None, Value::Null)).await;
    anon.send(json!({"event": "hotsock.subscribe", "channel": "presence.room"}))
        .await;
    let err = anon.expect_event("hotsock.error").await;
    assert_eq!(err["error"]["code"], "PRESENCE_CHANNEL_USER_ID_REQUIRED");
    assert_eq!(err["channel"], "presence.room");
    let mut jim = stage
        .connect(
            json!({"scope": "connect", "uid": "jim", "channels": {"plain": {"subscribe": true}}}),
        )
        .await;
    let frame = jim.subscribe("plain").await;
    assert!(frame["data"].get("members").is_none(), "{frame}");
}

#[tokio::test]
async fn users_joining_at_once_all_reach_the_member_list() {
    let stage = TestStage::start().await;
    let (mut jim, _) = join(&stage, "jim").await;
    let uids: Vec<String> = (0..6).map(|i| format!("user-{i}")).collect();
    let mut joiners = Vec::new();
    for uid in &uids {
        joiners.push(stage.connect(claims(Some(uid), json!({"name": uid}))).await);
    }
    // Others' memberAdded may arrive before a joiner's own hotsock.subscribed.
    let frames = futures::future::join_all(joiners.iter_mut().map(|c| async move {
        c.send(json!({"event": "hotsock.subscribe", "channel": "presence.room"}))
            .await;
        c.expect_event("hotsock.subscribed").await
    }))
    .await;

    // Every join is announced once; the list read after the last write holds everyone.
    let mut everyone: Vec<Value> = vec![member("jim")];
    everyone.extend(uids.iter().map(|u| member(u)));
    let mut lists = Vec::new();
    for _ in &uids {
        let added = jim.expect_event("hotsock.memberAdded").await;
        lists.push(
            added["data"]["members"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
    }
    jim.expect_silence(QUIET).await;
    let complete = |list: &Vec<Value>| everyone.iter().all(|m| list.contains(m));
    assert!(
        lists.iter().any(complete),
        "no memberAdded listed every member: {lists:?}"
    );
    assert!(
        frames
            .iter()
            .any(|f| f["data"]["members"].as_array().is_some_and(&complete)),
        "no joiner's hotsock.subscribed listed every member"
    );
}
