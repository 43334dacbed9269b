//! Resuming after a drop (Sockhop's extension, docs/adr/0006) over real
//! sockets against DynamoDB Local: a subscription that asked (`data.resume`,
//! granted by `recover`) comes back on a new connection naming the last
//! position it saw and gets every frame it missed, once, in the channel's
//! order, before anything live.

use serde_json::{json, Value};
use sockhop_tests::{Client, TestStage};
use std::time::Duration;

fn claims(uid: &str, recover: bool) -> Value {
    json!({"scope": "connect", "uid": uid, "channels": {
        "feed": {"subscribe": true, "recover": recover},
        "other": {"subscribe": true, "recover": true},
    }})
}

/// How long a resumed subscription's answer may take: it waits for its turn
/// on the channel's ordered path, behind what was published before it, which
/// on a busy machine is longer than one frame's usual wait.
const WELCOME_WAIT: Duration = Duration::from_secs(60);

/// Subscribes with `data.resume` and returns the `hotsock.subscribed`, which
/// must be the next frame (nothing of the channel comes before it).
async fn subscribe_resuming(client: &mut Client, channel: &str, resume: Value) -> Value {
    client
        .send(json!({"event": "hotsock.subscribe", "channel": channel, "data": {"resume": resume}}))
        .await;
    let frame = client
        .next_within(WELCOME_WAIT)
        .await
        .expect("an answer to the subscribe");
    assert_eq!(frame["event"], "hotsock.subscribed", "{frame}");
    frame
}

/// Publishes `n` messages on `feed` through the server API, in turn: stored,
/// unstored, and with an id given at publish (`eagerIdGeneration`), whose id
/// is not its position on the channel.
async fn publish_mixed(stage: &TestStage, from: usize, n: usize) {
    for i in from..from + n {
        let mut body = json!({"channel": "feed", "event": "item", "data": {"i": i}});
        match i % 3 {
            0 => body["store"] = json!(3600),
            1 => {}
            _ => body["eagerIdGeneration"] = json!(true),
        }
        let (status, answer) = stage.server_publish(body).await;
        assert_eq!(status, 202, "{answer}");
    }
}

/// The ids of the messages `client` receives up to and including the
/// `marker` (skipping nothing else: any other frame fails the test).
async fn ids_until_marker(client: &mut Client) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let frame = client.next().await;
        let event = frame["event"].as_str().unwrap_or_default().to_owned();
        assert!(
            event == "item" || event == "marker",
            "unexpected frame {frame}"
        );
        ids.push(frame["id"].as_str().expect("id").to_owned());
        if event == "marker" {
            return ids;
        }
    }
}

#[tokio::test]
async fn a_dropped_subscriber_resumes_with_every_frame_exactly_once_in_order() {
    let stage = TestStage::start().await;
    // The reference: a plain subscriber sees the channel's one order.
    let mut watcher = stage.connect(claims("w", false)).await;
    watcher.subscribe("feed").await;
    let mut ada = stage.connect(claims("ada", true)).await;
    let subscribed = subscribe_resuming(&mut ada, "feed", json!(true)).await;
    assert!(
        subscribed["data"]["position"].is_string(),
        "a resumable subscription is told its position: {subscribed}"
    );
    assert!(
        subscribed["data"].get("recovered").is_none(),
        "{subscribed}"
    );

    publish_mixed(&stage, 0, 6).await;
    stage.publish_marker("feed").await;
    let seen = ids_until_marker(&mut ada).await;
    let last_seen = seen.last().expect("a message").clone();
    assert_eq!(ids_until_marker(&mut watcher).await, seen);
    ada.close().await;

    // 200 while Ada is away (delivered before she is back: the watcher has
    // them all), then 100 more while she resumes.
    publish_mixed(&stage, 6, 200).await;
    stage.publish_marker("feed").await;
    let mut expected = ids_until_marker(&mut watcher).await;
    let mut ada = stage.connect(claims("ada", true)).await;
    let racing = async {
        publish_mixed(&stage, 206, 100).await;
        stage.publish_marker("feed").await;
    };
    let resuming = async {
        let subscribed = subscribe_resuming(&mut ada, "feed", json!({"position": last_seen})).await;
        let mut resumed = ids_until_marker(&mut ada).await;
        resumed.extend(ids_until_marker(&mut ada).await);
        (subscribed, resumed)
    };
    let ((subscribed, resumed), ()) = tokio::join!(resuming, racing);
    assert_eq!(subscribed["data"]["recovered"], true, "{subscribed}");
    expected.extend(ids_until_marker(&mut watcher).await);
    assert_eq!(expected.len(), 302);
    assert_eq!(
        resumed, expected,
        "every frame since the position, once, in the channel's order"
    );
    // And nothing after the marker but what is published next.
    stage.publish_marker("feed").await;
    let marker = ada.expect_next_event("marker").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        subscribed["data"]["position"], last_seen,
        "with frames to follow, it stands where it named until they come"
    );
    // Nothing missed: recovered, standing at its new welcome's mark, from
    // which it resumes again.
    ada.close().await;
    let mut ada = stage.connect(claims("ada", true)).await;
    let quiet = subscribe_resuming(&mut ada, "feed", json!({"position": marker})).await;
    assert_eq!(quiet["data"]["recovered"], true, "{quiet}");
    let mark = quiet["data"]["position"]
        .as_str()
        .expect("position")
        .to_owned();
    assert!(mark > marker, "{quiet}");
    ada.close().await;
    let mut ada = stage.connect(claims("ada", true)).await;
    let again = subscribe_resuming(&mut ada, "feed", json!({"position": mark})).await;
    assert_eq!(again["data"]["recovered"], true, "{again}");
    stage.publish_marker("feed").await;
    ada.expect_next_event("marker").await;
}

#[tokio::test]
async fn a_resume_past_the_window_or_across_a_gap_recovers_nothing() {
    let stage =
        TestStage::start_with(|o| o.env.push(("RECOVERY_WINDOW_SECONDS".into(), "1".into()))).await;
    let mut ada = stage.connect(claims("ada", true)).await;
    let subscribed = subscribe_resuming(&mut ada, "feed", json!(true)).await;
    let position = subscribed["data"]["position"]
        .as_str()
        .expect("position")
        .to_owned();
    ada.close().await;
    // Past the window (an expiry, so a timed wait): the channel was not
    // logged when this was published.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    publish_mixed(&stage, 0, 2).await;
    let mut ada = stage.connect(claims("ada", true)).await;
    let subscribed = subscribe_resuming(&mut ada, "feed", json!({"position": position})).await;
    assert_eq!(subscribed["data"]["recovered"], false, "{subscribed}");
    stage.publish_marker("feed").await;
    ada.expect_next_event("marker").await;

    // Across a gap: Bob's position is older than a lapse the channel had
    // while nobody resumable was on it, even though it is logged again now
    // (Ada is back) and what came after the lapse is in the log.
    let mut bob = stage.connect(claims("bob", true)).await;
    let subscribed = subscribe_resuming(&mut bob, "feed", json!(true)).await;
    let bobs = subscribed["data"]["position"]
        .as_str()
        .expect("position")
        .to_owned();
    bob.close().await;
    ada.close().await;
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    publish_mixed(&stage, 2, 1).await;
    let mut carol = stage.connect(claims("carol", true)).await;
    subscribe_resuming(&mut carol, "feed", json!(true)).await;
    publish_mixed(&stage, 3, 1).await;
    let mut bob = stage.connect(claims("bob", true)).await;
    let subscribed = subscribe_resuming(&mut bob, "feed", json!({"position": bobs})).await;
    assert_eq!(subscribed["data"]["recovered"], false, "{subscribed}");
    stage.publish_marker("feed").await;
    bob.expect_next_event("marker").await;
}

#[tokio::test]
async fn bad_positions_are_refused_with_stable_codes_and_change_nothing() {
    let stage = TestStage::start().await;
    let mut ada = stage.connect(claims("ada", true)).await;
    subscribe_resuming(&mut ada, "other", json!(true)).await;
    let (status, answer) = stage
        .server_publish(json!({"channel": "other", "event": "item", "data": 1}))
        .await;
    assert_eq!(status, 202, "{answer}");
    let elsewhere = ada.expect_next_event("item").await["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let future = ulid::Ulid::from_parts(
        u64::try_from(sockhop_tests::now() + 3600).expect("time") * 1000,
        1,
    )
    .to_string();
    for (resume, code) in [
        (json!({"position": "not-a-ulid"}), "INVALID_RESUME_POSITION"),
        (json!({"position": 7}), "INVALID_RESUME_POSITION"),
        (json!("yes"), "INVALID_RESUME_POSITION"),
        (json!({"position": future}), "RESUME_POSITION_AHEAD"),
        (json!({"position": elsewhere}), "RESUME_POSITION_UNKNOWN"),
    ] {
        ada.send(
            json!({"event": "hotsock.subscribe", "channel": "feed", "data": {"resume": resume}}),
        )
        .await;
        ada.expect_error(code, Some("feed")).await;
    }
    // Nothing was subscribed: a plain subscribe is the first.
    let subscribed = ada.subscribe("feed").await;
    assert_eq!(subscribed["event"], "hotsock.subscribed", "{subscribed}");

    // Without `recover` a resume is a plain subscribe, told it recovered nothing.
    let mut bob = stage.connect(claims("bob", false)).await;
    let subscribed = subscribe_resuming(&mut bob, "feed", json!({"position": elsewhere})).await;
    assert_eq!(subscribed["data"]["recovered"], false, "{subscribed}");
    assert!(subscribed["data"].get("position").is_none(), "{subscribed}");
    let mut carol = stage.connect(claims("carol", false)).await;
    let subscribed = subscribe_resuming(&mut carol, "feed", json!(true)).await;
    assert_eq!(subscribed["data"], json!({}), "{subscribed}");
}

/// A frame as a test compares it: (event, id, storage key or member, data).
type Seen = (String, String, Value);

fn seen(frame: &Value) -> Seen {
    let event = frame["event"].as_str().unwrap_or_default().to_owned();
    let name = match event.as_str() {
        "hotsock.channelStorageUpdated" => frame["key"].clone(),
        e if e.starts_with("hotsock.member") => frame["data"]["member"]["uid"].clone(),
        _ => frame["id"].clone(),
    };
    let name = name.as_str().unwrap_or_default().to_owned();
    (event, name, frame["data"].clone())
}

/// The frames `client` receives up to and including the first `until`.
async fn frames_until(client: &mut Client, until: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = client.next().await;
        let last = until(&frame);
        frames.push(frame);
        if last {
            return frames;
        }
    }
}

/// The frames `client` receives up to and including the `marker`.
async fn frames_until_marker(client: &mut Client) -> Vec<Seen> {
    let frames = frames_until(client, |f| f["event"] == "marker").await;
    frames.iter().map(seen).collect()
}

#[tokio::test]
async fn storage_updates_are_replayed_in_the_channels_order_to_their_observers_only() {
    let stage = TestStage::start().await;
    let observing = |uid: &str, observe: bool| {
        json!({"scope": "connect", "uid": uid, "channels": {"feed": {
            "subscribe": true, "recover": true,
            "storage": {"settings": {"observe": observe, "get": true}}}}})
    };
    let mut watcher = stage.connect(observing("w", true)).await;
    watcher.subscribe("feed").await;
    let mut ada = stage.connect(observing("ada", true)).await;
    subscribe_resuming(&mut ada, "feed", json!(true)).await;
    let mut bob = stage.connect(observing("bob", false)).await;
    subscribe_resuming(&mut bob, "feed", json!(true)).await;
    stage.publish_marker("feed").await;
    let adas = ids_until_marker(&mut ada).await.pop().expect("the marker");
    let bobs = ids_until_marker(&mut bob).await.pop().expect("the marker");
    watcher.expect_event("marker").await;
    ada.close().await;
    bob.close().await;

    for i in 0..20 {
        let (status, body) = match i % 4 {
            0 => {
                stage
                    .server_publish(
                        json!({"channel": "feed", "event": "hotsock.channelStorageSet",
                    "key": "settings", "data": {"round": i}}),
                    )
                    .await
            }
            _ => {
                stage
                    .server_publish(json!({"channel": "feed", "event": "item", "data": {"i": i}}))
                    .await
            }
        };
        assert_eq!(status, 202, "{body}");
    }
    stage.publish_marker("feed").await;
    let expected = frames_until_marker(&mut watcher).await;
    assert_eq!(
        expected
            .iter()
            .filter(|f| f.0 == "hotsock.channelStorageUpdated")
            .count(),
        5
    );

    let mut ada = stage.connect(observing("ada", true)).await;
    let subscribed = subscribe_resuming(&mut ada, "feed", json!({"position": adas})).await;
    assert_eq!(subscribed["data"]["recovered"], true, "{subscribed}");
    assert_eq!(
        frames_until_marker(&mut ada).await,
        expected,
        "messages and storage updates, once, in the channel's order, and no catch-up after"
    );
    let mut bob = stage.connect(observing("bob", false)).await;
    let subscribed = subscribe_resuming(&mut bob, "feed", json!({"position": bobs})).await;
    assert_eq!(subscribed["data"]["recovered"], true, "{subscribed}");
    let without_storage: Vec<_> = expected
        .iter()
        .filter(|f| f.0 != "hotsock.channelStorageUpdated")
        .cloned()
        .collect();
    assert_eq!(
        frames_until_marker(&mut bob).await,
        without_storage,
        "updates only to observers"
    );
    stage.publish_marker("feed").await;
    ada.expect_next_event("marker").await;
}

/// Who is on a presence channel, by uid, as a frame's member list says.
fn uids(members: &Value) -> Vec<String> {
    members
        .as_array()
        .expect("a member list")
        .iter()
        .map(|m| m["uid"].as_str().expect("uid").to_owned())
        .collect()
}

#[tokio::test]
async fn a_presence_subscriber_resumes_member_events_storage_and_messages_exactly_once() {
    const ROOM: &str = "presence.room";
    let stage = TestStage::start().await;
    let member = |uid: &str, recover: bool| {
        json!({"scope": "connect", "uid": uid, "channels": {ROOM: {
            "subscribe": true, "recover": recover,
            "messages": {"say": {"publish": true}},
            "storage": {"topic": {"observe": true}}}}})
    };
    // The watcher, not resumable, sees the channel's one order.
    let mut watcher = stage.connect(member("w", false)).await;
    watcher.subscribe(ROOM).await;
    let mut ada = stage.connect(member("ada", true)).await;
    subscribe_resuming(&mut ada, ROOM, json!(true)).await;
    watcher.expect_next_event("hotsock.memberAdded").await;
    let mut bob = stage.connect(member("bob", false)).await;
    bob.subscribe(ROOM).await;
    // Ada's last frame before she drops is a member event: its position is
    // where she resumes.
    let bob_joined = ada.expect_next_event("hotsock.memberAdded").await;
    let last_seen = bob_joined["position"]
        .as_str()
        .expect("a resumable subscriber's member event has a position")
        .to_owned();
    watcher.expect_next_event("hotsock.memberAdded").await;
    // Then she says something (without echo: she never gets it), and drops.
    ada.send(json!({"event": "say", "channel": ROOM, "data": "bye"}))
        .await;
    let said = watcher.expect_next_event("say").await;
    let old_connection = ada.connection_id.clone();
    ada.close().await;
    let mut expected = frames_until(&mut watcher, |f| f["event"] == "hotsock.memberRemoved").await;

    // While she is away: messages of every kind, storage updates, joins and a leave.
    let mut carol = Some(stage.connect(member("carol", false)).await);
    if let Some(carol) = carol.as_mut() {
        carol.subscribe(ROOM).await;
    }
    let mut dave = stage.connect(member("dave", false)).await;
    dave.subscribe(ROOM).await;
    for round in 0..10 {
        let (status, body) = stage
            .server_publish(
                json!({"channel": ROOM, "event": "hotsock.channelStorageSet",
                "key": "topic", "data": {"round": round}}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        for i in 0..18 {
            let mut message =
                json!({"channel": ROOM, "event": "item", "data": {"i": round * 18 + i}});
            match i % 3 {
                0 => message["store"] = json!(3600),
                1 => {}
                _ => message["eagerIdGeneration"] = json!(true),
            }
            let (status, body) = stage.server_publish(message).await;
            assert_eq!(status, 202, "{body}");
        }
        if round == 5 {
            carol.take().expect("carol").close().await;
            break_until_left(&mut watcher, &mut expected).await;
        }
    }
    stage.publish_marker(ROOM).await;
    expected.extend(frames_until(&mut watcher, |f| f["event"] == "marker").await);
    let expected: Vec<Seen> = expected.iter().map(seen).collect();
    let count = |event: &str| expected.iter().filter(|f| f.0 == event).count();
    assert_eq!(count("item"), 180);
    assert_eq!(count("hotsock.channelStorageUpdated"), 10);
    assert_eq!(count("hotsock.memberAdded"), 2, "carol and dave");
    assert_eq!(
        count("hotsock.memberRemoved"),
        2,
        "ada's old connection and carol"
    );

    let mut ada = stage.connect(member("ada", true)).await;
    let subscribed = subscribe_resuming(
        &mut ada,
        ROOM,
        json!({"position": last_seen, "connectionIds": [old_connection]}),
    )
    .await;
    assert_eq!(subscribed["data"]["recovered"], true, "{subscribed}");
    assert_eq!(subscribed["data"]["position"], last_seen.as_str());
    assert_eq!(
        uids(&subscribed["data"]["members"]),
        ["w", "ada", "bob"],
        "the list as she had it when she left"
    );
    let replayed = frames_until(&mut ada, |f| f["event"] == "marker").await;
    assert!(
        replayed.iter().all(|f| f["id"] != said["id"]),
        "not what she said herself without echo"
    );
    assert_eq!(
        replayed.iter().map(seen).collect::<Vec<_>>(),
        expected,
        "every frame since her position, once, in the channel's order"
    );
    // Every frame with no id carried a position, in the channel's order.
    let positions: Vec<&str> = replayed
        .iter()
        .filter(|f| f.get("id").is_none())
        .map(|f| f["position"].as_str().expect("a position"))
        .collect();
    assert_eq!(positions.len(), 14);
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    // Then her own return, as every member hears it, and the list is now's.
    let back = ada.expect_next_event("hotsock.memberAdded").await;
    assert_eq!(back["data"]["member"]["uid"], "ada");
    assert_eq!(uids(&back["data"]["members"]), ["w", "bob", "dave", "ada"]);
    let told = watcher.expect_next_event("hotsock.memberAdded").await;
    assert!(
        told.get("position").is_none(),
        "Hotsock's frame for the others: {told}"
    );
    stage.publish_marker(ROOM).await;
    ada.expect_next_event("marker").await;
    dave.close().await;
    bob.close().await;
}

/// Collects the watcher's frames up to the one saying somebody left.
async fn break_until_left(watcher: &mut Client, into: &mut Vec<Value>) {
    into.extend(frames_until(watcher, |f| f["event"] == "hotsock.memberRemoved").await);
}
