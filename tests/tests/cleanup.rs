//! Disconnects and dead sockets leave nothing behind.

use serde_json::{json, Value};
use sockhop_tests::{Client, TestStage};
use std::time::{Duration, Instant};

fn claims(uid: &str) -> serde_json::Value {
    json!({"scope": "connect", "uid": uid, "channels": {
        "a": {"subscribe": true, "messages": {"m": {"publish": true}}},
        "b": {"subscribe": true},
        "hidden": {"subscribe": true, "omitFromSubCount": true}
    }})
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

async fn subscribe_all(client: &mut Client) {
    for channel in ["a", "b", "hidden"] {
        assert_eq!(
            client.subscribe(channel).await["event"],
            "hotsock.subscribed"
        );
    }
}

#[tokio::test]
async fn disconnect_removes_every_item_and_count() {
    let stage = TestStage::start().await;
    let mut jim = stage.connect(claims("jim")).await;
    subscribe_all(&mut jim).await;
    assert_eq!(
        stage.items_with_pk_prefix("CONN#").await.len(),
        4,
        "connection + 3 index items"
    );
    assert_eq!(stage.subscriptions_count("a").await, 1);
    assert_eq!(stage.subscriptions_count("hidden").await, 0);
    jim.close().await;
    eventually("connection items removed", || async {
        stage.items_with_pk_prefix("CONN#").await.is_empty()
    })
    .await;
    let subs: Vec<_> = stage
        .items_with_pk_prefix("CHAN#")
        .await
        .into_iter()
        .filter(|i| i["sk"].as_str().is_some_and(|s| s.starts_with("SUB#")))
        .collect();
    assert!(subs.is_empty(), "{subs:?}");
    for channel in ["a", "b", "hidden"] {
        assert_eq!(stage.subscriptions_count(channel).await, 0);
    }
}

#[tokio::test]
async fn a_killed_client_is_removed_when_a_post_finds_it_gone() {
    let stage = TestStage::start().await;
    let mut alive = stage.connect(claims("alive")).await;
    alive.subscribe("a").await;
    let mut dying = stage.connect(claims("dying")).await;
    dying.subscribe("a").await;
    let dying_id = dying.connection_id.clone();
    // The socket vanishes but its items stay, as when $disconnect never ran.
    let app = stage.stage.app;
    drop(dying);
    eventually("socket gone from the stage", || async {
        // $disconnect cleans up; put the items back to model a lost event.
        app.store
            .get_connection(&dying_id, 0)
            .await
            .expect("read")
            .is_none()
    })
    .await;
    restore_subscription(&stage, &dying_id, "a", "dying").await;
    assert_eq!(stage.subscriptions_count("a").await, 2);
    alive
        .send(json!({"channel": "a", "event": "m", "data": 1}))
        .await;
    eventually("gone subscription removed", || async {
        app.store
            .get_subscription("a", &dying_id, 0)
            .await
            .expect("read")
            .is_none()
    })
    .await;
    assert_eq!(stage.subscriptions_count("a").await, 1);
    assert!(stage
        .items_with_pk_prefix(&format!("CONN#{dying_id}"))
        .await
        .is_empty());
}

/// Writes a connection and its subscription to `channel` for a socket that no
/// longer exists, as a lost `$disconnect` would leave them.
async fn restore_subscription(stage: &TestStage, connection_id: &str, channel: &str, uid: &str) {
    use sockhop::store::{ConnectionItem, SubscriptionItem};
    let app = stage.stage.app;
    let now = sockhop_tests::now();
    let connection = ConnectionItem {
        source_ip: None,
        user_agent: None,
        connection_id: connection_id.into(),
        secret_nonce: "n".into(),
        secret_hash: "h".into(),
        uid: Some(uid.into()),
        umd: None,
        claims: json!({"exp": now + 60, "scope": "connect"}).to_string(),
        connected_at_ms: now * 1000,
        expires_at: now + 60,
        keep_alive: false,
        heartbeat_timeout: None,
        last_seen: now,
        sweep_at: now + 60,
        ttl: now + 600,
    };
    app.store
        .put_connection(&connection)
        .await
        .expect("put connection");
    let subscription = SubscriptionItem {
        channel: channel.into(),
        connection_id: connection_id.into(),
        uid: Some(uid.into()),
        umd: None,
        permissions: "{\"layers\":[]}".into(),
        alias: None,
        subscribed_at_ms: now * 1000,
        umd_at_ms: now * 1000,
        pending: false,
        recoverable: false,
        counted: true,
        ttl: now + 600,
    };
    let outcome = app
        .store
        .subscribe(&subscription, now)
        .await
        .expect("subscribe");
    assert_eq!(outcome, sockhop::store::SubscribeOutcome::Subscribed);
}

#[tokio::test]
async fn racing_cleanups_decrement_the_count_once() {
    let stage = TestStage::start().await;
    let mut jim = stage.connect(claims("jim")).await;
    subscribe_all(&mut jim).await;
    let app = stage.stage.app;
    let id = jim.connection_id.clone();
    let now = sockhop::clock::Timestamp::now();
    futures::future::join_all((0..5).map(|_| sockhop::driver::disconnected(app, now, &id))).await;
    for channel in ["a", "b", "hidden"] {
        assert_eq!(
            app.store.subscriptions_count(channel).await.expect("count"),
            0,
            "{channel}"
        );
    }
    assert!(stage.items_with_pk_prefix("CONN#").await.is_empty());
}

#[tokio::test]
async fn idle_and_overage_connections_are_closed_and_cleaned_up() {
    let stage = TestStage::start_with(|o| {
        o.idle_timeout = Duration::from_secs(1);
        o.max_lifetime = Duration::from_secs(3);
    })
    .await;
    let mut idle = stage.connect(claims("idle")).await;
    idle.subscribe("a").await;
    assert!(
        idle.next_within(Duration::from_secs(5)).await.is_none(),
        "closed when idle"
    );
    // Pinging keeps a connection from idling out, but not past its lifetime.
    let mut busy = stage.connect(claims("busy")).await;
    let started = Instant::now();
    loop {
        busy.send(json!({"event": "hotsock.ping"})).await;
        match busy.next_within(Duration::from_millis(700)).await {
            Some(frame) => assert_eq!(frame["event"], "hotsock.pong"),
            None => break,
        }
        assert!(started.elapsed() < Duration::from_secs(8), "never closed");
    }
    let lived = started.elapsed();
    assert!(
        lived >= Duration::from_millis(2500),
        "closed by idling, not lifetime: {lived:?}"
    );
    eventually("both cleaned up", || async {
        stage.items_with_pk_prefix("CONN#").await.is_empty()
    })
    .await;
    assert_eq!(stage.subscriptions_count("a").await, 0);
}

/// Fifty sockets on a presence channel die at once without `$disconnect`: a
/// publish still reaches the live members, every dead one is cleaned up once
/// (after the delivery, by the driver's worklist, not recursively), and the
/// live members hear each leave and end with the true member list.
#[tokio::test]
async fn fifty_gone_sockets_at_once_do_not_stop_a_publish() {
    let stage = TestStage::start().await;
    let room = "presence.room";
    let grant = |uid: &str| {
        json!({"scope": "connect", "uid": uid, "channels": {
            room: {"subscribe": true, "messages": {"m": {"publish": true}}}
        }})
    };
    let mut jim = stage.connect(grant("jim")).await;
    jim.subscribe(room).await;
    // Connected before the ghosts, whose greetings (each waiting for its socket
    // for a few seconds) would hold up Pam's.
    let mut pam = stage.connect(grant("pam")).await;
    let ghosts: Vec<String> = (0..50).map(|i| format!("ghost-{i:02}")).collect();
    futures::future::join_all(
        ghosts
            .iter()
            .map(|id| restore_subscription(&stage, id, room, id)),
    )
    .await;
    // Pam's join tells Jim of her and of the ghosts still there (each ghost's
    // greeting finds it gone and cleans it up after a few seconds, so on a slow
    // machine some may be gone already: the assertions below hold either way).
    pam.send(json!({"event": "hotsock.subscribe", "channel": room}))
        .await;
    // Published once Pam is subscribed: sent at once, it could be delivered
    // before her subscription exists (each frame is its own invocation).
    // (Her welcome waits for the ghosts' greetings to give up, seconds.)
    let welcome = pam
        .next_within(Duration::from_secs(60))
        .await
        .expect("Pam is welcomed");
    assert_eq!(welcome["event"], "hotsock.subscribed", "{welcome}");
    jim.send(json!({"channel": room, "event": "m", "data": "still here"}))
        .await;
    // Until each member's last list is the true one: every ghost it was told
    // of is removed exactly once, and the message arrives among the leaves.
    for (member, expects_message, mut first) in
        [(&mut jim, false, None), (&mut pam, true, Some(welcome))]
    {
        let mut known = std::collections::BTreeSet::new();
        let mut removed = std::collections::BTreeSet::new();
        let mut message = None;
        let uids = |list: &Value| -> Vec<String> {
            list.as_array()
                .expect("members")
                .iter()
                .filter_map(|m| m["uid"].as_str().map(str::to_owned))
                .collect()
        };
        let mut settled = false;
        let mut last = Vec::new();
        loop {
            // Fifty cleanups contend on the channel's count item in DynamoDB
            // Local; the leaves are told once they are done, seconds later.
            // Once the list is the true one, what follows in a burst is read too.
            let wait = Duration::from_secs(if settled { 1 } else { 30 });
            let next = match first.take() {
                Some(frame) => Some(frame),
                None => member.next_within(wait).await,
            };
            let Some(frame) = next else {
                assert!(
                    settled,
                    "no frame arrived; last list {last:?}, removed {removed:?}, message {message:?}"
                );
                break;
            };
            let list = match frame["event"].as_str() {
                Some("hotsock.subscribed" | "hotsock.memberAdded") => {
                    uids(&frame["data"]["members"])
                }
                Some("hotsock.memberRemoved") => {
                    let uid = frame["data"]["member"]["uid"]
                        .as_str()
                        .expect("uid")
                        .to_owned();
                    assert!(removed.insert(uid.clone()), "{uid} removed twice");
                    uids(&frame["data"]["members"])
                }
                Some("m") => {
                    message = Some(frame["data"].clone());
                    Vec::new()
                }
                _ => panic!("unexpected frame {frame}"),
            };
            known.extend(list.iter().filter(|u| u.starts_with("ghost")).cloned());
            if !list.is_empty() {
                last.clone_from(&list);
            }
            if last == ["jim", "pam"] && (!expects_message || message.is_some()) {
                settled = true;
            }
        }
        assert_eq!(removed, known, "every ghost told of is told gone");
        if expects_message {
            assert_eq!(message, Some(json!("still here")));
        }
    }
    assert_eq!(stage.subscriptions_count(room).await, 2);
    assert_eq!(
        stage.items_with_pk_prefix("CONN#").await.len(),
        4,
        "two live connections and their index items remain"
    );
    // Nothing more was queued for the room: the marker is Pam's next frame.
    stage.publish_marker(room).await;
    pam.expect_next_event("marker").await;
}

/// The sweeper finds due connections through the sweep index — a query per
/// minute bucket since its last pass — and never scans the table, however many
/// other items it holds.
#[tokio::test]
async fn the_sweeper_queries_due_connections_and_never_scans() {
    let stage = TestStage::start().await;
    let mut keeps = stage
        .connect(json!({"scope": "connect", "uid": "keeps", "keepAlive": true}))
        .await;
    let mut ends = stage.connect(claims("ends")).await;
    subscribe_all(&mut ends).await;
    let app = stage.stage.app;
    let before = app.requests.snapshot();
    let count =
        |snapshot: &std::collections::BTreeMap<String, sockhop::metrics::OperationCount>,
         op: &str| snapshot.get(op).map_or(0, |c| c.requests);
    // Ten minutes on: `keeps` is due a keepAlive; nobody is past their lifetime.
    let later = sockhop::clock::Timestamp::from_secs(sockhop_tests::now() + 600);
    let report = sockhop::driver::sweep(app, later).await.expect("sweep");
    assert_eq!(report.delivered, 1, "one keepAlive");
    assert_eq!(
        keeps.expect_event("hotsock.keepAlive").await["event"],
        "hotsock.keepAlive"
    );
    assert!(report.cleaned.is_empty());
    // A second pass at the same moment finds nothing due: `keeps` was filed under its next keepAlive.
    let again = sockhop::driver::sweep(app, later).await.expect("sweep");
    assert_eq!(again.delivered, 0);
    // Just past every lifetime (2 hours): both are closed and cleaned up.
    let end = sockhop::clock::Timestamp::from_secs(sockhop_tests::now() + 2 * 3600 + 60);
    let last = sockhop::driver::sweep(app, end).await.expect("sweep");
    assert_eq!(last.cleaned.len(), 2, "{last:?}");
    assert!(stage.items_with_pk_prefix("CONN#").await.is_empty());
    assert_eq!(stage.subscriptions_count("a").await, 0);
    let after = app.requests.snapshot();
    assert_eq!(
        count(&after, "dynamodb.Scan"),
        count(&before, "dynamodb.Scan"),
        "no scan"
    );
    assert!(count(&after, "dynamodb.Query") > count(&before, "dynamodb.Query"));
}
