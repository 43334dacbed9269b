//! The channel's ordered path, unit-tested through the in-memory ports: the
//! store's rules in a map (`MemoryStore`), sockets that keep their frames
//! (`MemorySockets`), waits that return at once (`InstantPause`), seeded
//! chance (`SeededChance`) and the local stage's queue pumped by hand. Operations
//! run concurrently on one thread and interleave between store calls, the
//! same way for the same seed: every race below is run under many seeds and
//! checked without a single timed wait.

use base64::Engine;
use futures::future::join_all;
use serde_json::{json, Value};
use sockhop::app::Config;
use sockhop::clock::Timestamp;
use sockhop::gateway::Gateway;
use sockhop::memory::{InstantPause, MemorySockets, MemoryStore, SeededChance};
use sockhop::ops::dispatch::Request;
use sockhop::ops::publish::parse_server_request;
use sockhop::ops::{connect, Ctx};
use sockhop::pacing::Pacing;
use sockhop::pubsub::{Origin, TRIGGER_CLIENT_WEBSOCKET};
use sockhop::store::Store;
use sockhop::App;
use sockhop_local::queue::LocalQueue;
use sockhop_tests::{sign, TEST_SECRET};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One app over in-memory ports, at a fixed moment.
struct World {
    app: App,
    store: Arc<MemoryStore>,
    sockets: Arc<MemorySockets>,
    /// Every wait the app asked for (the gateway's and the app's own).
    pause: Arc<InstantPause>,
    queue: Arc<LocalQueue>,
    now: Timestamp,
    /// The queue's clock: each hand-out a moment later than the last.
    wall_ms: std::cell::Cell<u64>,
    /// Every message group the queue handed out.
    groups: std::cell::RefCell<BTreeSet<String>>,
}

impl World {
    fn new(seed: u64) -> Self {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let env = [
            ("SIGNING_KEY_1_METHOD", "HS256".to_owned()),
            ("SIGNING_KEY_1_ENCODED", b64(TEST_SECRET)),
            (
                "CONNECTION_SECRET_KEY",
                b64(b"TEST-ONLY connection secret key"),
            ),
        ];
        let config =
            Config::from_env(|name| env.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()))
                .expect("config");
        let store = Arc::new(MemoryStore::with_seed(seed));
        let sockets = Arc::new(MemorySockets::new());
        let queue = LocalQueue::new();
        let pause = Arc::new(InstantPause::new());
        let pacing = Pacing {
            pause: pause.clone(),
            chance: Arc::new(SeededChance::new(seed)),
        };
        let mut app = App::with_ports(
            config,
            store.clone(),
            Gateway::paced(sockets.clone(), pacing.clone()),
            queue.clone(),
        );
        app.pacing = pacing;
        let now = Timestamp::now();
        World {
            app,
            store,
            sockets,
            pause,
            queue,
            now,
            wall_ms: std::cell::Cell::new(now.millis() as u64),
            groups: Default::default(),
        }
    }

    /// `$connect` with these claims, as connection `id`, and its greeting
    /// (queued by `$connect`, delivered here).
    async fn connect(&self, id: &str, claims: Value) {
        let cx = Ctx::new(&self.app, self.now);
        connect::connect(cx, id, Some(&sign(claims)), connect::Peer::default())
            .await
            .expect("connected");
        self.drain().await;
        let greeting: Value =
            serde_json::from_str(&self.sockets.frames(id)[0]).expect("a greeting");
        assert_eq!(greeting["event"], "hotsock.connected");
    }

    /// A frame from the client's socket (`$default`).
    async fn send(&self, id: &str, frame: Value) {
        let origin = Origin::new(TRIGGER_CLIENT_WEBSOCKET, None);
        sockhop::driver::client_frame(&self.app, self.now, id, &frame.to_string(), &origin).await;
    }

    async fn server_publish(&self, body: Value) {
        let request = parse_server_request(body).expect("valid");
        sockhop::driver::command(&self.app, self.now, Request::Server(request))
            .await
            .expect("accepted");
    }

    /// One hand-out of every ready group, each delivered as the deliver
    /// function would and settled; false when nothing was ready.
    async fn pump_once(&self) -> bool {
        let wall = self.wall_ms.get() + 1;
        self.wall_ms.set(wall);
        // An hour ahead: redelivery pauses are over.
        let batches = self
            .queue
            .take_ready(Instant::now() + Duration::from_secs(3600), wall);
        if batches.is_empty() {
            return false;
        }
        for (group, event) in batches {
            self.groups.borrow_mut().insert(group.clone());
            let handed_out = event.records.len();
            let response = sockhop::driver::queue_batch(&self.app, self.now, event).await;
            let failed: HashSet<String> = response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect();
            self.queue.settle(&group, handed_out, &failed);
        }
        true
    }

    /// Pumps until the queue is empty.
    async fn drain(&self) {
        for _ in 0..10_000 {
            if !self.pump_once().await && self.queue.is_idle() {
                return;
            }
        }
        panic!("the queue did not drain");
    }

    /// The frames `id` received after its greeting, parsed.
    fn frames(&self, id: &str) -> Vec<Value> {
        self.sockets
            .frames(id)
            .iter()
            .skip(1)
            .map(|f| serde_json::from_str(f).expect("json frame"))
            .collect()
    }

    fn events(&self, id: &str) -> Vec<String> {
        self.frames(id)
            .iter()
            .map(|f| f["event"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

fn presence_claims(uid: &str) -> Value {
    json!({"scope": "connect", "uid": uid, "umd": {"name": uid},
           "channels": {"presence.*": {"subscribe": true}, "chat": {"subscribe": true}}})
}

/// Runs `test` on a current-thread runtime, so interleavings depend on the
/// seed alone.
fn run<F: std::future::Future<Output = ()>>(test: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(test);
}

/// A subscribe racing its own unsubscribe (the client sent both at once): every
/// command is answered, `hotsock.unsubscribed` never comes before
/// `hotsock.subscribed`, and what is stored agrees with the last answer.
#[test]
fn a_subscribe_racing_its_unsubscribe_is_answered_in_order_and_leaves_no_stray() {
    let mut endings = BTreeSet::new();
    for seed in 1..=60 {
        run(async {
            let world = World::new(seed);
            world.connect("conn-a", presence_claims("ann")).await;
            let channel = "presence.room";
            futures::join!(
                world.send(
                    "conn-a",
                    json!({"event": "hotsock.subscribe", "channel": channel})
                ),
                world.send(
                    "conn-a",
                    json!({"event": "hotsock.unsubscribe", "channel": channel})
                ),
                world.drain(),
            );
            world.drain().await;
            let events = world.events("conn-a");
            let subscribed = events.iter().position(|e| e == "hotsock.subscribed");
            let unsubscribed = events.iter().position(|e| e == "hotsock.unsubscribed");
            let errors = events.iter().filter(|e| *e == "hotsock.error").count();
            // Two commands, two answers.
            assert_eq!(events.len(), 2, "seed {seed}: {events:?}");
            assert!(subscribed.is_some(), "seed {seed}: {events:?}");
            if let (Some(s), Some(u)) = (subscribed, unsubscribed) {
                assert!(s < u, "seed {seed}: farewell before welcome: {events:?}");
            } else {
                assert_eq!(errors, 1, "seed {seed}: {events:?}");
            }
            let still = world
                .store
                .get_subscription(channel, "conn-a", world.now.secs())
                .await
                .expect("read");
            let count = world
                .store
                .subscriptions_count(channel)
                .await
                .expect("count");
            match unsubscribed {
                Some(_) => {
                    assert!(still.is_none(), "seed {seed}: a stray subscription");
                    assert_eq!(count, 0, "seed {seed}");
                    endings.insert("unsubscribed");
                }
                None => {
                    assert!(still.is_some_and(|s| !s.pending), "seed {seed}");
                    assert_eq!(count, 1, "seed {seed}");
                    endings.insert("subscribed");
                }
            }
        });
    }
    // The seeds reached both outcomes: the race really was run both ways.
    assert_eq!(
        endings,
        BTreeSet::from(["subscribed", "unsubscribed"]),
        "only {endings:?}"
    );
}

/// What a member believes the member list is after the frames it got: the
/// list of its `hotsock.subscribed`, then each member event's list.
fn believed_members(frames: &[Value]) -> Vec<String> {
    let mut members = Vec::new();
    for frame in frames {
        let list = match frame["event"].as_str() {
            Some("hotsock.subscribed")
            | Some("hotsock.memberAdded")
            | Some("hotsock.memberRemoved")
            | Some("hotsock.memberUpdated") => &frame["data"]["members"],
            _ => continue,
        };
        members = list
            .as_array()
            .expect("a member list")
            .iter()
            .map(|m| m["uid"].as_str().expect("uid").to_owned())
            .collect();
    }
    members
}

/// 50 connections join one presence channel at once while the queue is being
/// delivered: each is welcomed once, and every member ends believing the
/// same, true list of all 50.
#[test]
fn fifty_racing_joins_end_in_one_true_member_list() {
    for seed in [3, 17, 29, 101] {
        run(async {
            let world = World::new(seed);
            let ids: Vec<String> = (0..50).map(|i| format!("conn-{i:02}")).collect();
            for (i, id) in ids.iter().enumerate() {
                world
                    .connect(id, presence_claims(&format!("user-{i:02}")))
                    .await;
            }
            let joins = ids.iter().map(|id| {
                world.send(
                    id,
                    json!({"event": "hotsock.subscribe", "channel": "presence.lobby"}),
                )
            });
            // Delivery runs while the joins are still coming in.
            let pumping = async {
                for _ in 0..40 {
                    world.pump_once().await;
                    tokio::task::yield_now().await;
                }
            };
            futures::join!(join_all(joins), pumping);
            world.drain().await;
            let everyone: Vec<String> = (0..50).map(|i| format!("user-{i:02}")).collect();
            // Welcomes went out while others were still joining: the lists
            // they carried differ (the race was run, not serialised).
            let welcome_sizes: BTreeSet<usize> = ids
                .iter()
                .map(|id| believed_members(&world.frames(id)[..1]).len())
                .collect();
            assert!(welcome_sizes.len() > 1, "seed {seed}: {welcome_sizes:?}");
            for id in &ids {
                let frames = world.frames(id);
                let welcomes = frames
                    .iter()
                    .filter(|f| f["event"] == "hotsock.subscribed")
                    .count();
                assert_eq!(welcomes, 1, "seed {seed}, {id}: {frames:?}");
                assert_eq!(
                    frames[0]["event"], "hotsock.subscribed",
                    "seed {seed}, {id}: the welcome comes first"
                );
                let mut believed = believed_members(&frames);
                believed.sort();
                assert_eq!(believed, everyone, "seed {seed}, {id}");
            }
            assert_eq!(
                world
                    .store
                    .subscriptions_count("presence.lobby")
                    .await
                    .expect("count"),
                50
            );
        });
    }
}

/// A stored message whose write fails mid-batch is retried with the rest of
/// its channel's batch after it: every subscriber gets every message once,
/// in publish order, ids increasing.
#[test]
fn a_failed_message_is_retried_as_a_suffix_with_no_repeat() {
    for failing in [0, 3, 9] {
        run(async {
            let world = World::new(7);
            for id in ["conn-a", "conn-b"] {
                world.connect(id, presence_claims(id)).await;
                world
                    .send(id, json!({"event": "hotsock.subscribe", "channel": "chat"}))
                    .await;
            }
            world.drain().await;
            for n in 0..10 {
                world
                    .server_publish(json!({"channel": "chat", "event": "note",
                                           "data": {"n": n}, "store": 60}))
                    .await;
            }
            world.store.fail_once_after("put_message", failing);
            world.drain().await;
            // The failure happened, and cost one extra write attempt only
            // (the suffix from the failed message on, nothing before it).
            assert_eq!(world.store.calls_of("put_message"), 11, "failing {failing}");
            for id in ["conn-a", "conn-b"] {
                let notes: Vec<Value> = world
                    .frames(id)
                    .into_iter()
                    .filter(|f| f["event"] == "note")
                    .collect();
                let order: Vec<i64> = notes
                    .iter()
                    .map(|f| f["data"]["n"].as_i64().expect("n"))
                    .collect();
                assert_eq!(
                    order,
                    (0..10).collect::<Vec<_>>(),
                    "failing {failing}, {id}"
                );
                let ids: Vec<&str> = notes
                    .iter()
                    .map(|f| f["id"].as_str().expect("id"))
                    .collect();
                assert!(
                    ids.windows(2).all(|w| w[0] < w[1]),
                    "failing {failing}, {id}: ids not increasing: {ids:?}"
                );
            }
        });
    }
}

/// A subscriber that hangs up is cleaned up after the channel's messages are
/// out, and its presence leave reaches the others in the channel's order.
#[test]
fn a_member_that_hangs_up_is_removed_and_told_after_the_messages() {
    run(async {
        let world = World::new(11);
        for (id, uid) in [("conn-a", "ann"), ("conn-b", "bob")] {
            world.connect(id, presence_claims(uid)).await;
            world
                .send(
                    id,
                    json!({"event": "hotsock.subscribe", "channel": "presence.room"}),
                )
                .await;
            world.drain().await;
        }
        world.sockets.hang_up("conn-b");
        world
            .server_publish(json!({"channel": "presence.room", "event": "note", "data": 1}))
            .await;
        world.drain().await;
        assert_eq!(
            world.events("conn-a"),
            [
                "hotsock.subscribed",
                "hotsock.memberAdded",
                "note",
                "hotsock.memberRemoved"
            ]
        );
        assert_eq!(believed_members(&world.frames("conn-a")), ["ann"]);
        let left = world
            .store
            .get_connection("conn-b", world.now.secs())
            .await
            .expect("read");
        assert!(left.is_none(), "the gone connection was cleaned up");
        assert_eq!(
            world
                .store
                .subscriptions_count("presence.room")
                .await
                .expect("count"),
            1
        );
    });
}

/// A greeting queued while API Gateway still refuses posts to the connection
/// (its `$connect` has not returned) is posted again after growing pauses
/// and arrives before the auto-subscription's welcome; the pauses are asked
/// of the pause port, so the test waits for nothing.
#[test]
fn a_greeting_refused_while_the_socket_opens_is_retried_then_welcomed() {
    run(async {
        let world = World::new(5);
        world.sockets.opening("conn-a", 3);
        world
            .connect(
                "conn-a",
                json!({"scope": "connect", "uid": "ann",
                       "channels": {"news": {"subscribe": true, "autoSubscribe": true}}}),
            )
            .await;
        let ms = Duration::from_millis;
        assert_eq!(world.pause.waits(), [ms(50), ms(100), ms(200)]);
        let frames: Vec<Value> = world
            .sockets
            .frames("conn-a")
            .iter()
            .map(|f| serde_json::from_str(f).expect("json"))
            .collect();
        let events: Vec<&str> = frames.iter().filter_map(|f| f["event"].as_str()).collect();
        assert_eq!(events, ["hotsock.connected", "hotsock.subscribed"]);
        assert_eq!(frames[1]["channel"], "news");
    });
}

/// Two worlds with the same seed draw the same connection secret, a world
/// with another seed a different one: the nonce comes from the chance port.
#[test]
fn the_connection_secret_nonce_comes_from_the_chance_port() {
    let secret = |seed: u64| {
        let mut secret = String::new();
        run(async {
            let world = World::new(seed);
            world
                .connect("conn-a", json!({"scope": "connect", "uid": "ann"}))
                .await;
            let greeting: Value =
                serde_json::from_str(&world.sockets.frames("conn-a")[0]).expect("json");
            secret = greeting["data"]["connectionSecret"]
                .as_str()
                .expect("a connection secret")
                .to_owned();
        });
        secret
    };
    assert_eq!(secret(7), secret(7));
    assert_ne!(secret(7), secret(8));
}

/// A 1,000-subscriber channel is fanned out in lanes (each its own FIFO group,
/// delivered by its own hand-out): 200 messages published at once reach every
/// subscriber once each, all in one order, ids increasing; and the channel
/// stays in lanes when it shrinks, until it empties.
#[test]
fn a_big_channel_in_lanes_delivers_racing_messages_to_everyone_in_one_order() {
    run(async {
        let world = World::new(5);
        let ids: Vec<String> = (0..1000).map(|i| format!("conn-{i:04}")).collect();
        for id in &ids {
            world.connect(id, presence_claims(id)).await;
            world
                .send(id, json!({"event": "hotsock.subscribe", "channel": "chat"}))
                .await;
        }
        let publishes = (0..200).map(|n| {
            world.server_publish(json!({"channel": "chat", "event": "note", "data": {"n": n}}))
        });
        // Delivery runs while the publishes are still coming in.
        let pumping = async {
            for _ in 0..50 {
                world.pump_once().await;
                tokio::task::yield_now().await;
            }
        };
        futures::join!(join_all(publishes), pumping);
        world.drain().await;
        let lane_groups: BTreeSet<String> = world
            .groups
            .borrow()
            .iter()
            .filter(|g| g.starts_with("chat#"))
            .cloned()
            .collect();
        assert!(lane_groups.len() > 16, "in lanes: {lane_groups:?}");
        let notes = |id: &str| -> Vec<(String, i64)> {
            world
                .frames(id)
                .into_iter()
                .filter(|f| f["event"] == "note")
                .map(|f| {
                    (
                        f["id"].as_str().expect("id").to_owned(),
                        f["data"]["n"].as_i64().expect("n"),
                    )
                })
                .collect()
        };
        let first = notes(&ids[0]);
        assert_eq!(first.len(), 200);
        let distinct: BTreeSet<i64> = first.iter().map(|(_, n)| *n).collect();
        assert_eq!(distinct.len(), 200, "each message once");
        assert!(
            first.windows(2).all(|w| w[0].0 < w[1].0),
            "ids increase in the order received"
        );
        for id in &ids {
            assert_eq!(notes(id), first, "{id} got another order or set");
        }

        // Shrunk to 10 subscribers, the channel stays in lanes.
        for id in &ids[10..] {
            world
                .send(
                    id,
                    json!({"event": "hotsock.unsubscribe", "channel": "chat"}),
                )
                .await;
        }
        world.drain().await;
        world.groups.borrow_mut().clear();
        world
            .server_publish(json!({"channel": "chat", "event": "note", "data": {"n": 200}}))
            .await;
        world.drain().await;
        assert!(
            world.groups.borrow().iter().any(|g| g.starts_with("chat#")),
            "{:?}",
            world.groups.borrow()
        );
        assert_eq!(notes(&ids[0]).len(), 201);
        assert_eq!(notes(&ids[500]).len(), 200, "no longer subscribed");
        // Empty, it leaves lanes: the next message is delivered inline.
        for id in &ids[..10] {
            world
                .send(
                    id,
                    json!({"event": "hotsock.unsubscribe", "channel": "chat"}),
                )
                .await;
        }
        world.drain().await;
        world
            .server_publish(json!({"channel": "chat", "event": "note", "data": 0}))
            .await;
        world.drain().await;
        world.groups.borrow_mut().clear();
        world.connect("late", presence_claims("late")).await;
        world
            .send(
                "late",
                json!({"event": "hotsock.subscribe", "channel": "chat"}),
            )
            .await;
        world
            .server_publish(json!({"channel": "chat", "event": "note", "data": 1}))
            .await;
        world.drain().await;
        let groups: BTreeSet<String> = world
            .groups
            .borrow()
            .iter()
            .filter(|g| !g.starts_with("#greet#"))
            .cloned()
            .collect();
        assert_eq!(groups, BTreeSet::from(["chat".to_owned()]), "inline again");
        assert_eq!(world.events("late"), ["hotsock.subscribed", "note"]);
    });
}

/// A presence subscriber resumes on a new connection after it hung up while
/// its own leave, a note and another's join went by; the step that welcomes
/// it fails once wherever it writes the log, and is retried. It gets each
/// frame it missed once, then its own return, and ends with the true list:
/// what a failed try logged is not replayed on top of being told live.
#[test]
fn a_resumed_presence_subscriber_gets_each_missed_frame_once_even_when_its_welcome_is_retried() {
    let claims = |uid: &str| {
        json!({"scope": "connect", "uid": uid, "umd": {"name": uid},
               "channels": {"presence.*": {"subscribe": true, "recover": true}}})
    };
    let subscribe = |resume: Value| json!({"event": "hotsock.subscribe", "channel": "presence.room", "data": {"resume": resume}});
    for failing in 0..3 {
        run(async {
            let world = World::new(5);
            world.connect("conn-a", claims("ada")).await;
            world.send("conn-a", subscribe(json!(true))).await;
            world.drain().await;
            world.connect("conn-b", claims("bob")).await;
            world.send("conn-b", subscribe(json!(true))).await;
            world.drain().await;
            let last = world.frames("conn-a").pop().expect("bob's join");
            assert_eq!(last["event"], "hotsock.memberAdded");
            let position = last["position"].as_str().expect("a position").to_owned();

            world.sockets.hang_up("conn-a");
            world
                .server_publish(json!({"channel": "presence.room", "event": "note", "data": 1}))
                .await;
            world.drain().await;
            world.connect("conn-c", claims("cat")).await;
            world.send("conn-c", subscribe(json!(true))).await;
            world.drain().await;

            world.connect("conn-a2", claims("ada")).await;
            world.store.fail_once_after("log_frame", failing);
            world
                .send(
                    "conn-a2",
                    subscribe(json!({"position": position, "connectionIds": ["conn-a"]})),
                )
                .await;
            world.drain().await;
            let frames = world.frames("conn-a2");
            let seen: Vec<String> = frames
                .iter()
                .map(|f| {
                    let who = f["data"]["member"]["uid"].as_str().unwrap_or_default();
                    format!("{} {who}", f["event"].as_str().unwrap_or_default())
                })
                .collect();
            assert_eq!(
                seen,
                [
                    "hotsock.subscribed ",
                    // The note found her gone: her leave comes after it.
                    "note ",
                    "hotsock.memberRemoved ada",
                    "hotsock.memberAdded cat",
                    "hotsock.memberAdded ada",
                ],
                "failing {failing}"
            );
            assert_eq!(frames[0]["data"]["recovered"], true);
            assert_eq!(
                believed_members(&frames[..1]),
                ["ada", "bob"],
                "welcomed with the list it had"
            );
            let true_list = believed_members(&world.frames("conn-b"));
            assert_eq!(true_list.len(), 3, "{true_list:?}");
            assert_eq!(believed_members(&frames), true_list);
            assert!(
                world.store.calls_of("log_frame") > 0,
                "the channel was logged"
            );
        });
    }
}

/// A resume with nothing to replay, welcomed in the same run as another's
/// join: its welcome names the position it gave (the join's event follows
/// it), so a drop right after the welcome still resumes to the join.
#[test]
fn a_resume_welcomed_beside_a_join_stands_where_it_named_until_the_join_arrives() {
    let claims = |uid: &str| {
        json!({"scope": "connect", "uid": uid,
               "channels": {"presence.*": {"subscribe": true, "recover": true}}})
    };
    let subscribe = |resume: Value| json!({"event": "hotsock.subscribe", "channel": "presence.room", "data": {"resume": resume}});
    run(async {
        let world = World::new(9);
        world.connect("conn-a", claims("ada")).await;
        world.send("conn-a", subscribe(json!(true))).await;
        world.drain().await;
        let welcome = world.frames("conn-a").pop().expect("welcome");
        let position = welcome["data"]["position"]
            .as_str()
            .expect("position")
            .to_owned();
        // Ada comes back on a second connection (the first still open) in the
        // same step as Bob's join.
        world.connect("conn-a2", claims("ada")).await;
        world.connect("conn-b", claims("bob")).await;
        world
            .send("conn-a2", subscribe(json!({"position": position})))
            .await;
        world.send("conn-b", subscribe(json!(true))).await;
        world.drain().await;
        let frames = world.frames("conn-a2");
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert_eq!(frames[0]["data"]["recovered"], true);
        assert_eq!(
            frames[0]["data"]["position"], position,
            "the join's event follows: it stands where it named"
        );
        assert_eq!(frames[1]["event"], "hotsock.memberAdded");
        // Dropped right after the welcome: the join is replayed from there.
        world.connect("conn-a3", claims("ada")).await;
        world
            .send("conn-a3", subscribe(json!({"position": position})))
            .await;
        world.drain().await;
        let again = world.frames("conn-a3");
        assert_eq!(again[0]["data"]["recovered"], true, "{again:?}");
        assert!(
            again
                .iter()
                .any(|f| f["event"] == "hotsock.memberAdded" && f["data"]["member"]["uid"] == "bob"),
            "{again:?}"
        );
    });
}
