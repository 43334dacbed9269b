//! One contract, two stores: the DynamoDB adapter (against DynamoDB Local)
//! and the in-memory store the ordered-path unit tests run on answer the same
//! calls the same way, so what those tests prove holds for the real one.

use sockhop::memory::MemoryStore;
use sockhop::store::*;
use sockhop_tests::TestStage;
use std::sync::Arc;

const NOW: i64 = 1_900_000_000;

fn connection(id: &str) -> ConnectionItem {
    ConnectionItem {
        connection_id: id.into(),
        secret_nonce: "n".into(),
        secret_hash: "h".into(),
        uid: Some("ann".into()),
        umd: None,
        claims: "{}".into(),
        connected_at_ms: NOW * 1000,
        expires_at: NOW + 7200,
        keep_alive: false,
        heartbeat_timeout: None,
        last_seen: NOW,
        source_ip: None,
        user_agent: None,
        sweep_at: NOW + 60,
        ttl: NOW + 7200,
    }
}

fn subscription(channel: &str, id: &str, at_ms: i64) -> SubscriptionItem {
    SubscriptionItem {
        channel: channel.into(),
        connection_id: id.into(),
        uid: Some("ann".into()),
        umd: None,
        permissions: "{}".into(),
        alias: Some("room".into()),
        subscribed_at_ms: at_ms,
        umd_at_ms: at_ms,
        pending: true,
        recoverable: false,
        counted: true,
        ttl: NOW + 7200,
    }
}

fn message(channel: &str, id: &str, stored: bool) -> MessageItem {
    MessageItem {
        id: id.into(),
        channel: channel.into(),
        event: "e".into(),
        data: format!("\"{id}\""),
        meta: None,
        stored,
        sender: None,
        echo: false,
        ttl: None,
        reactions: Default::default(),
    }
}

fn storage(channel: &str, key: &str, ttl: Option<i64>, cleared: bool) -> StorageItem {
    StorageItem {
        channel: channel.into(),
        key: key.into(),
        data: "1".into(),
        meta: "{}".into(),
        ttl,
        write_id: None,
        cleared,
        emit: false,
        previous: None,
    }
}

/// Everything the contract checks, in one pass over a fresh store; returns
/// a transcript of the answers so the two stores can be compared whole too.
async fn contract(store: &dyn Store) -> Vec<String> {
    let mut said = Vec::new();
    let mut say = |s: String| said.push(s);

    // Subscriptions: conditional on a live connection and no live duplicate.
    let sub = subscription("chat", "c1", 1);
    assert_eq!(
        store.subscribe(&sub, NOW).await.expect("subscribe"),
        SubscribeOutcome::ConnectionGone
    );
    store.put_connection(&connection("c1")).await.expect("put");
    assert_eq!(
        store.subscribe(&sub, NOW).await.expect("subscribe"),
        SubscribeOutcome::Subscribed
    );
    assert_eq!(
        store.subscribe(&sub, NOW).await.expect("again"),
        SubscribeOutcome::AlreadySubscribed
    );
    assert_eq!(store.subscriptions_count("chat").await.expect("count"), 1);
    assert_eq!(
        store
            .channel_with_alias("c1", "room", NOW)
            .await
            .expect("alias"),
        Some("chat".to_owned())
    );
    assert_eq!(
        store
            .connection_channels("c1", NOW)
            .await
            .expect("channels"),
        vec!["chat".to_owned()]
    );
    // A welcome of another subscription finds nothing; its own ends pending.
    assert!(store
        .welcome_subscription("chat", "c1", 2)
        .await
        .expect("welcome")
        .is_none());
    let welcomed = store
        .welcome_subscription("chat", "c1", 1)
        .await
        .expect("welcome")
        .expect("found");
    assert!(!welcomed.pending);
    let before = store
        .set_subscription_umd("chat", "c1", Some("{\"a\":1}"), 5)
        .await
        .expect("umd")
        .expect("found");
    assert_eq!(before.umd, None, "the answer is the subscription as it was");
    say(format!(
        "{:?}",
        store
            .channel_subscriptions("chat", NOW)
            .await
            .expect("list")
    ));
    // Removal: once, with its count and the owed presence change.
    let removed = store
        .unsubscribe("chat", "c1", NOW, Some(NOW + 30))
        .await
        .expect("unsubscribe");
    assert_eq!(removed.map(|s| s.umd), Some(Some("{\"a\":1}".to_owned())));
    assert!(store
        .unsubscribe("chat", "c1", NOW, None)
        .await
        .expect("twice")
        .is_none());
    assert_eq!(store.subscriptions_count("chat").await.expect("count"), 0);
    assert!(store
        .connection_channels("c1", NOW)
        .await
        .expect("channels")
        .is_empty());
    let due = store.due_for_sweep(NOW + 30, 600).await.expect("due");
    assert_eq!(due.owed.len(), 1, "{due:?}");
    store
        .settle_owed_change(&due.owed[0])
        .await
        .expect("settle");
    assert!(store
        .due_for_sweep(NOW + 30, 600)
        .await
        .expect("due")
        .owed
        .is_empty());
    // Expired subscriptions are neither seen nor a bar to subscribing again.
    let short = SubscriptionItem {
        ttl: NOW - 1,
        ..subscription("chat", "c1", 3)
    };
    assert_eq!(
        store.subscribe(&short, NOW - 10).await.expect("subscribe"),
        SubscribeOutcome::Subscribed
    );
    assert!(store
        .get_subscription("chat", "c1", NOW)
        .await
        .expect("get")
        .is_none());
    assert_eq!(
        store
            .subscribe(&subscription("chat", "c1", 4), NOW)
            .await
            .expect("over an expired one"),
        SubscribeOutcome::Subscribed
    );

    // A channel's audience: its subscribers and its lanes flag, beside the
    // count (which the flag leaves alone).
    say(format!(
        "{:?}",
        store.channel_audience("chat", NOW).await.expect("audience")
    ));
    let count = store.subscriptions_count("chat").await.expect("count");
    store.set_fan_out_laned("chat", true).await.expect("laned");
    let audience = store.channel_audience("chat", NOW).await.expect("audience");
    assert_eq!(
        (audience.subscribers, audience.laned),
        (vec!["c1".to_owned()], true)
    );
    assert_eq!(
        store.subscriptions_count("chat").await.expect("count"),
        count
    );
    store
        .set_fan_out_laned("chat", false)
        .await
        .expect("inline");
    assert!(
        !store
            .channel_audience("chat", NOW)
            .await
            .expect("audience")
            .laned
    );

    // Single-use tokens.
    assert!(store.consume_jti("j", NOW + 60, NOW).await.expect("spend"));
    assert!(!store.consume_jti("j", NOW + 60, NOW).await.expect("reuse"));
    assert!(store.jti_used("j", NOW).await.expect("used"));
    store.release_jti("j").await.expect("release");
    assert!(!store.jti_used("j", NOW).await.expect("unused"));

    // Messages: written once; listed in order within exclusive cursors.
    for id in ["01A", "01B", "01C", "01D"] {
        store
            .put_message(&message("chat", id, id != "01C"))
            .await
            .expect("put");
    }
    let first = message("chat", "01A", true);
    store
        .put_message(&MessageItem {
            data: "\"changed\"".into(),
            ..first
        })
        .await
        .expect("again");
    let query = |after, before, newest_first, limit| MessageQuery {
        channel: "chat",
        window_start: "0".into(),
        after,
        before,
        newest_first,
        limit,
        max_bytes: 1 << 20,
    };
    for q in [
        query(None, None, false, 10),
        query(Some("01A"), None, false, 10),
        query(None, Some("01D"), true, 1),
        query(Some("01A"), Some("01D"), false, 10),
    ] {
        let page = store.list_messages(&q, NOW).await.expect("list");
        say(format!(
            "{:?}",
            page.messages
                .iter()
                .map(|m| (m.id.clone(), m.data.clone()))
                .collect::<Vec<_>>()
        ));
    }
    // Reactions: once per user, counted, refused on a message not stored.
    let reaction = ReactionItem {
        reaction: "like".into(),
        uid: "ann".into(),
        umd: None,
        ttl: None,
        id: Some("r1".into()),
        created_at_ms: Some(1),
        origin: None,
    };
    for (id, add) in [("01A", true), ("01A", true), ("01C", true), ("01B", false)] {
        say(format!(
            "{:?}",
            store
                .change_reaction("chat", id, &reaction, add, NOW)
                .await
                .expect("react")
        ));
    }
    let page = store
        .list_messages(&query(None, Some("01B"), false, 10), NOW)
        .await
        .expect("list");
    say(format!("{:?}", page.messages[0].reactions));
    say(format!(
        "{:?}",
        store
            .message_reactions("chat", "01A", NOW)
            .await
            .expect("all")
    ));

    // Storage: key order, exclusive `after`, expired and cleared unseen.
    for (key, ttl, cleared) in [
        ("a", None, false),
        ("b", Some(NOW - 1), false),
        ("c", None, true),
        ("d", Some(NOW + 60), false),
        ("e", None, false),
    ] {
        store
            .put_storage(&storage("chat", key, ttl, cleared))
            .await
            .expect("put");
    }
    let keys = |items: Vec<StorageItem>| items.into_iter().map(|i| i.key).collect::<Vec<_>>();
    say(format!(
        "{:?}",
        keys(
            store
                .list_storage("chat", None, NOW, 10, &|_| true)
                .await
                .expect("list")
        )
    ));
    say(format!(
        "{:?}",
        keys(
            store
                .list_storage("chat", Some("a"), NOW, 1, &|k| k != "d")
                .await
                .expect("list")
        )
    ));

    // Members remembered and forgotten; connections deleted once.
    store
        .remember_members("presence.x", Some("[1]"), NOW + 5)
        .await
        .expect("remember");
    say(format!(
        "{:?}",
        store
            .announced_members("presence.x", NOW)
            .await
            .expect("read")
    ));
    store
        .remember_members("presence.x", None, 0)
        .await
        .expect("forget");
    assert!(store
        .announced_members("presence.x", NOW)
        .await
        .expect("read")
        .is_none());
    assert!(store.delete_connection("c1").await.expect("delete"));
    assert!(!store.delete_connection("c1").await.expect("twice"));
    said
}

#[tokio::test]
async fn the_memory_store_keeps_the_dynamodb_stores_contract() {
    let stage = TestStage::start().await;
    let dynamo: Arc<dyn Store> = stage.stage.app.store.clone();
    let real = contract(dynamo.as_ref()).await;
    let memory = contract(&MemoryStore::new()).await;
    assert_eq!(memory, real);
    // The transcript holds real answers (so equal cannot mean both empty).
    assert!(real.iter().any(|line| line.contains("01D")), "{real:?}");
}

/// Positions of the recovery log's contract, and an id that is not one.
const A: &str = "01J00000000000000000000001";
const B: &str = "01J00000000000000000000002";
const C: &str = "01J00000000000000000000003";
const EAGER: &str = "01H00000000000000000000009";
/// A member event's position: a step after C.
const C1: &str = "01J00000000000000000000003.000001";

/// A log entry; B is a storage update and C a message sent without echo, C1
/// a member event (what each carries survives the round trip).
fn entry(position: &str, prev: Option<&str>, id: Option<&str>, ttl: i64) -> LoggedFrame {
    LoggedFrame {
        channel: "log".into(),
        position: position.into(),
        prev: prev.map(str::to_owned),
        message_id: id.map(str::to_owned),
        frame: id.map(|id| format!("{{\"id\":\"{id}\"}}")),
        storage_key: (position == B).then(|| "settings".to_owned()),
        unechoed_by: (position == C).then(|| "conn-x".to_owned()),
        members_before: (position == C1).then(|| r#"[{"uid":"jim"}]"#.to_owned()),
        ttl,
    }
}

/// The recovery log (docs/adr/0006): entries by position, pointers from ids
/// that are not positions, first writes kept, expired entries unread but
/// still linked to, the channel's window only ever extended, and a failed
/// try's entries forgotten from a position on.
async fn log_contract(store: &dyn Store) -> Vec<String> {
    let mut said = Vec::new();
    store
        .log_frame(&entry(A, None, None, NOW - 1))
        .await
        .expect("log");
    store
        .log_frame(&entry(B, Some(A), Some(EAGER), NOW + 60))
        .await
        .expect("log");
    store
        .log_frame(&entry(C, Some(B), Some(C), NOW + 60))
        .await
        .expect("log");
    // A retry's write leaves the first.
    store
        .log_frame(&entry(C, None, Some(C), NOW + 1))
        .await
        .expect("again");
    store
        .log_frame(&entry(C1, Some(C), None, NOW + 60))
        .await
        .expect("log");
    assert_eq!(
        store
            .logged_before("log", C)
            .await
            .expect("before")
            .as_deref(),
        Some(B)
    );
    assert_eq!(
        store.logged_before("log", A).await.expect("before"),
        None,
        "nothing before the first"
    );
    assert_eq!(
        store
            .logged_before("log", B)
            .await
            .expect("before")
            .as_deref(),
        Some(A),
        "an expired entry is still linked to"
    );
    let from_a = store.logged_after("log", A, NOW, 10).await.expect("after");
    assert!(!from_a.found, "A has expired");
    assert_eq!(from_a.after.len(), 3);
    assert_eq!(from_a.after[1], entry(C, Some(B), Some(C), NOW + 60));
    assert_eq!(
        from_a.after[2],
        entry(C1, Some(C), None, NOW + 60),
        "a step sorts after its position"
    );
    said.push(format!("{from_a:?}"));
    let by_id = store
        .logged_after("log", EAGER, NOW, 10)
        .await
        .expect("after");
    assert_eq!(
        (by_id.position.as_str(), by_id.found),
        (B, true),
        "the id points at its position"
    );
    assert_eq!(by_id.after.len(), 2);
    let limited = store.logged_after("log", "0", NOW, 0).await.expect("after");
    assert_eq!(limited.after.len(), 1, "limit + 1, to tell there were more");
    said.push(format!(
        "{:?}",
        store
            .logged_after("other", A, NOW, 10)
            .await
            .expect("other")
    ));

    assert_eq!(store.recover_until("log").await.expect("until"), None);
    store
        .extend_recovery("log", NOW + 10, false)
        .await
        .expect("extend");
    store
        .extend_recovery("log", NOW + 5, false)
        .await
        .expect("not back");
    assert_eq!(
        store.recover_until("log").await.expect("until"),
        Some(NOW + 10)
    );
    // Keeping the last entry: C1 lives on past its own ttl, C does not.
    store
        .extend_recovery("log", NOW + 600, true)
        .await
        .expect("keep last");
    let kept = store
        .logged_after("log", B, NOW + 100, 10)
        .await
        .expect("after");
    assert_eq!(
        kept.after
            .iter()
            .map(|e| e.position.as_str())
            .collect::<Vec<_>>(),
        [C1]
    );
    assert_eq!(kept.after[0].ttl, NOW + 600);
    assert!(!kept.found, "B was not kept");
    said.push(format!("{kept:?}"));
    // A failed try's entries go from a position on, the ids' pointers stay.
    store.unlog_from("log", C).await.expect("unlog");
    assert_eq!(
        store
            .logged_before("log", "~")
            .await
            .expect("before")
            .as_deref(),
        Some(B)
    );
    let by_id = store
        .logged_after("log", EAGER, NOW, 10)
        .await
        .expect("after");
    assert_eq!((by_id.position.as_str(), by_id.found), (B, true));
    assert!(by_id.after.is_empty(), "{by_id:?}");
    store
        .unlog_from("log", C)
        .await
        .expect("nothing left to unlog");
    said.push(format!("{by_id:?}"));
    said
}

#[tokio::test]
async fn both_stores_keep_the_recovery_logs_contract() {
    let stage = TestStage::start().await;
    let dynamo: Arc<dyn Store> = stage.stage.app.store.clone();
    let real = log_contract(dynamo.as_ref()).await;
    let memory = log_contract(&MemoryStore::new()).await;
    assert_eq!(memory, real);
}

/// Rounds of a subscribe and an unsubscribe of the same connection at once:
/// whichever wins, the answers agree with what is stored. An unsubscribe that
/// found nothing must not remove the subscription committed meanwhile.
async fn racing_subscribe_and_unsubscribe(store: &dyn Store) -> (usize, usize) {
    store
        .put_connection(&connection("racer"))
        .await
        .expect("put");
    let (mut removed, mut kept) = (0, 0);
    for round in 0..40 {
        let item = subscription("race", "racer", NOW * 1000 + round);
        let (subscribed, unsubscribed) = tokio::join!(
            store.subscribe(&item, NOW),
            store.unsubscribe("race", "racer", NOW, None)
        );
        assert!(
            matches!(subscribed.expect("subscribe"), SubscribeOutcome::Subscribed),
            "round {round}"
        );
        let stored = store
            .get_subscription("race", "racer", NOW)
            .await
            .expect("read");
        let count = store.subscriptions_count("race").await.expect("count");
        match unsubscribed.expect("unsubscribe") {
            Some(gone) => {
                assert_eq!(
                    gone.subscribed_at_ms, item.subscribed_at_ms,
                    "round {round}"
                );
                assert!(stored.is_none(), "round {round}: removed yet stored");
                assert_eq!(count, 0, "round {round}");
                removed += 1;
            }
            None => {
                assert!(stored.is_some(), "round {round}: not removed yet gone");
                assert_eq!(count, 1, "round {round}");
                store
                    .unsubscribe("race", "racer", NOW, None)
                    .await
                    .expect("unsubscribe")
                    .expect("the kept subscription is there to remove");
                kept += 1;
            }
        }
    }
    (removed, kept)
}

#[tokio::test]
async fn an_unsubscribe_racing_a_subscribe_agrees_with_what_is_stored() {
    let stage = TestStage::start().await;
    let (removed, kept) = racing_subscribe_and_unsubscribe(stage.stage.app.store.as_ref()).await;
    assert_eq!(removed + kept, 40);
    let (removed, kept) = racing_subscribe_and_unsubscribe(&MemoryStore::new()).await;
    assert_eq!(removed + kept, 40);
}
