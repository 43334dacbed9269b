//! Presence channels: member lists and member events over real sockets.

use serde_json::{json, Value};
use sockhop_tests::{Client, TestStage, WAIT};
use std::time::{Duration, Instant};

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
    // Her own join is not announced to her: the marker behind it comes next.
    stage.publish_marker("presence.room").await;
    pam.expect_next_event("marker").await;

    // A second connection of the same user with the same umd is no news.
    let (jim_again, frame) = join(&stage, "jim").await;
    assert_eq!(
        frame["data"]["members"],
        json!([member("jim"), member("pam")])
    );
    stage.publish_marker("presence.room").await;
    pam.expect_next_event("marker").await;

    // Jim leaves one of two connections: still a member. The leave is queued
    // once the subscription and the change it owes (`OWED#`) are gone; the
    // marker goes behind it.
    jim_again.close().await;
    let start = Instant::now();
    loop {
        let items = stage.items_with_pk_prefix("CHAN#presence.room").await;
        let owed = items
            .iter()
            .any(|i| i["sk"].as_str().is_some_and(|sk| sk.starts_with("OWED#")));
        if !owed && stage.subscriptions_count("presence.room").await == 2 {
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "the leave was not queued: {items:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stage.publish_marker("presence.room").await;
    pam.expect_next_event("marker").await;

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
    // The change the leave owed was queued, so its owed item is settled.
    let start = std::time::Instant::now();
    while !owed_changes(&stage).await.is_empty() {
        assert!(
            start.elapsed() < sockhop_tests::WAIT,
            "owed change not settled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The list the members were told goes with the last member.
    let told = |items: &[Value]| items.iter().any(|i| i["sk"] == "MEMBERS");
    assert!(told(
        &stage.items_with_pk_prefix("CHAN#presence.room").await
    ));
    jim.close().await;
    let start = std::time::Instant::now();
    while told(&stage.items_with_pk_prefix("CHAN#presence.room").await) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "MEMBERS item left behind"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `OWED#` items under presence.room: leaves filed but not yet queued.
async fn owed_changes(stage: &TestStage) -> Vec<Value> {
    stage
        .items_with_pk_prefix("CHAN#presence.room")
        .await
        .into_iter()
        .filter(|i| i["sk"].as_str().is_some_and(|sk| sk.starts_with("OWED#")))
        .collect()
}

/// A `$disconnect` whose leave the queue refuses (in AWS: a role without
/// `sqs:SendMessage`, or SQS failing) is not lost: the removal filed the
/// change it owes the members in its own transaction, and the next sweep
/// queues it, so the others hear `hotsock.memberRemoved` after all.
#[tokio::test]
async fn a_leave_the_queue_refused_is_told_by_the_next_sweep() {
    // No sweeps of its own: this test runs the one that matters.
    let stage = TestStage::start_with(|o| o.sweep_interval = Duration::from_secs(3600)).await;
    let (mut jim, _) = join(&stage, "jim").await;
    let (pam, _) = join(&stage, "pam").await;
    jim.expect_event("hotsock.memberAdded").await;

    // Pam's disconnect runs in a process whose every SendMessage fails (an app
    // without a delivery queue).
    let refusing = stage.other_app(&[]).await;
    let now = sockhop::clock::Timestamp::now();
    sockhop::driver::disconnected(&refusing, now, &pam.connection_id).await;
    assert_eq!(stage.subscriptions_count("presence.room").await, 1);
    let owed = owed_changes(&stage).await;
    assert_eq!(owed.len(), 1, "the removal filed what it owes: {owed:?}");
    assert_eq!(owed[0]["sk"], format!("OWED#{}", pam.connection_id));

    // Not told yet: a message published now is Jim's next frame.
    let (status, _) = stage
        .server_publish(json!({"channel": "presence.room", "event": "marker", "data": 1}))
        .await;
    assert_eq!(status, 202);
    assert_eq!(jim.next().await["event"], "marker");

    // The sweep after the owed change fell due queues it.
    let later = sockhop::clock::Timestamp::from_secs(now.secs() + 61);
    sockhop::driver::sweep(stage.stage.app, later)
        .await
        .expect("sweep");
    let removed = jim.expect_event("hotsock.memberRemoved").await;
    assert_eq!(
        removed["data"],
        json!({"member": member("pam"), "members": [member("jim")]})
    );
    assert!(owed_changes(&stage).await.is_empty(), "settled once queued");
    pam.close().await;
}

#[tokio::test]
async fn an_unsubscribe_right_after_subscribing_is_answered_after_the_welcome() {
    let stage = TestStage::start().await;
    let mut jim = stage.connect(claims(Some("jim"), Value::Null)).await;
    for _ in 0..3 {
        jim.send(json!({"event": "hotsock.subscribe", "channel": "presence.room"}))
            .await;
        jim.send(json!({"event": "hotsock.unsubscribe", "channel": "presence.room"}))
            .await;
        // Each frame is its own invocation, so the unsubscribe may find no
        // subscription yet (NOT_SUBSCRIBED). If it found one, even one not yet
        // welcomed, both are answered and the welcome comes first.
        let mut events: Vec<Value> = Vec::new();
        let mut frames: Vec<Value> = Vec::new();
        let has = |events: &[Value], e: &str| events.iter().any(|x| x == e);
        // Until the answers are complete (however slowly they come), then
        // anything more would be extra.
        let answered = |events: &[Value]| {
            has(events, "hotsock.unsubscribed")
                || (has(events, "hotsock.error") && has(events, "hotsock.subscribed"))
        };
        while !answered(&events) {
            let frame = jim.next_within(WAIT).await;
            let frame = frame.unwrap_or_else(|| panic!("answers incomplete: {frames:?}"));
            events.push(frame["event"].clone());
            frames.push(frame);
        }
        while let Some(frame) = jim.next_within(QUIET).await {
            events.push(frame["event"].clone());
        }
        let subscribed = events.iter().position(|e| e == "hotsock.subscribed");
        match events.iter().position(|e| e == "hotsock.unsubscribed") {
            Some(unsubscribed) => {
                assert!(subscribed.is_some_and(|s| s < unsubscribed), "{events:?}");
                assert_eq!(events.len(), 2, "{events:?}");
            }
            None => {
                events.sort_by_key(|e| e.to_string());
                assert_eq!(events, ["hotsock.error", "hotsock.subscribed"]);
                jim.send(json!({"event": "hotsock.unsubscribe", "channel": "presence.room"}))
                    .await;
                let answer = jim.next().await;
                assert_eq!(
                    answer["event"], "hotsock.unsubscribed",
                    "{answer} after {frames:?}"
                );
            }
        }
    }
    let again = jim.subscribe("presence.room").await;
    assert_eq!(again["event"], "hotsock.subscribed", "{again}");
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
    // Announced once each: a repeat would come before the marker.
    stage.publish_marker("presence.room").await;
    jim.expect_next_event("marker").await;
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

/// What one member heard: its last member list, and each member event by uid.
#[derive(Default, Clone)]
struct Heard {
    last: Option<Value>,
    events: std::collections::BTreeMap<(String, String), usize>,
}

/// Notes what `frame` tells; a member is never told of its own join.
fn note(frame: &Value, uid: &str, heard: &mut Heard) {
    let event = frame["event"].as_str().unwrap_or_default();
    if let Some(who) = frame["data"]["member"]["uid"].as_str() {
        assert!(
            !(event == "hotsock.memberAdded" && who == uid),
            "{uid} was told of its own join"
        );
        *heard
            .events
            .entry((event.to_owned(), who.to_owned()))
            .or_default() += 1;
    }
    if let Some(list) = frame["data"].get("members") {
        heard.last = Some(list.clone());
    }
}

/// Reads until `event` (about `who`, when given) arrives, noting what it hears.
async fn until(client: &mut Client, event: &str, who: Option<&str>, uid: &str, heard: &mut Heard) {
    loop {
        let frame = client.next().await;
        note(&frame, uid, heard);
        if frame["event"] == event && who.is_none_or(|w| frame["data"]["member"]["uid"] == w) {
            return;
        }
    }
}

#[tokio::test]
async fn concurrent_joins_updates_and_leaves_end_with_every_member_holding_the_true_list() {
    let stage = TestStage::start().await;
    let uids: Vec<String> = (0..14).map(|i| format!("user-{i:02}")).collect();
    let mut clients = Vec::new();
    for uid in &uids {
        clients.push(stage.connect(claims(Some(uid), json!({"name": uid}))).await);
    }
    let mut lists: Vec<Heard> = vec![Heard::default(); uids.len()];
    // Eleven join at once.
    futures::future::join_all(
        clients
            .iter_mut()
            .zip(&uids)
            .zip(lists.iter_mut())
            .take(11)
            .map(|((c, uid), last)| async move {
                c.send(json!({"event": "hotsock.subscribe", "channel": "presence.room"}))
                    .await;
                until(c, "hotsock.subscribed", None, uid, last).await;
            }),
    )
    .await;
    // Then at once: three more join, four leave, four change their umd.
    let work = clients
        .iter_mut()
        .zip(&uids)
        .zip(lists.iter_mut())
        .enumerate()
        .map(|(i, ((c, uid), last))| async move {
            match i {
                0..4 => {
                    c.send(json!({"event": "hotsock.unsubscribe", "channel": "presence.room"}))
                        .await;
                    until(c, "hotsock.unsubscribed", None, uid, last).await;
                }
                4..8 => {
                    let token = sockhop_tests::sign(json!({"scope": "umd",
                        "connectionId": c.connection_id, "umd": {"name": "renamed"},
                        "channels": {"presence.room": {"umdUpdate": true}}}));
                    c.send(
                        json!({"event": "hotsock.umdUpdate", "channel": "presence.room",
                                  "data": {"token": token}}),
                    )
                    .await;
                    until(c, "hotsock.memberUpdated", Some(uid), uid, last).await;
                }
                11.. => {
                    c.send(json!({"event": "hotsock.subscribe", "channel": "presence.room"}))
                        .await;
                    until(c, "hotsock.subscribed", None, uid, last).await;
                }
                _ => {}
            }
        });
    futures::future::join_all(work).await;
    stage.deliveries_settled().await;

    let checker = stage
        .connect(json!({"scope": "connect", "channels": {"presence.room": {"getInfo": true}}}))
        .await;
    let (status, info) = stage
        .connection_api(
            &checker,
            "getChannelInfo",
            json!({"channel": "presence.room"}),
        )
        .await;
    assert_eq!(status, 200);
    let truth = info["members"].clone();
    let members = truth.as_array().expect("members");
    // Members are listed by when they joined; they joined at once, so their
    // order is the race's (every member's list must still be this one, below).
    let mut listed: Vec<&str> = members.iter().filter_map(|m| m["uid"].as_str()).collect();
    listed.sort_unstable();
    assert_eq!(
        listed,
        uids[4..].iter().map(String::as_str).collect::<Vec<_>>()
    );
    let mut renamed: Vec<&str> = members
        .iter()
        .filter(|m| m["umd"]["name"] == "renamed")
        .filter_map(|m| m["uid"].as_str())
        .collect();
    renamed.sort_unstable();
    assert_eq!(
        renamed,
        ["user-04", "user-05", "user-06", "user-07"],
        "{truth}"
    );
    // Every member's last list is the true one. Those there from the start
    // heard each later leave, join and rename exactly once.
    for (i, ((client, uid), last)) in clients
        .iter_mut()
        .zip(&uids)
        .zip(lists.iter_mut())
        .enumerate()
        .skip(4)
    {
        while let Some(frame) = client.next_within(QUIET).await {
            note(&frame, uid, last);
        }
        assert_eq!(last.last.as_ref(), Some(&truth), "{uid}");
        let heard = &last.events;
        if i < 11 {
            let once = |event: &str, who: &[String]| {
                who.iter()
                    .all(|w| heard.get(&(event.to_owned(), w.clone())) == Some(&1))
            };
            assert!(
                once("hotsock.memberRemoved", &uids[..4]),
                "{uid}: {heard:?}"
            );
            assert!(once("hotsock.memberAdded", &uids[11..]), "{uid}: {heard:?}");
            assert!(
                once("hotsock.memberUpdated", &uids[4..8]),
                "{uid}: {heard:?}"
            );
        }
    }
}
