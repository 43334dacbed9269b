//! Reactions over WebSocket and the Client HTTP API, and the demo sessions.

use serde_json::{json, Value};
use sockhop_tests::{Client, TestStage};
use std::time::Duration;

const REACTIONS: [&str; 4] = ["❤️", "👍", "👎", "😂"];

fn chat_claims(uid: &str) -> Value {
    json!({"scope": "connect", "uid": uid, "umd": {"name": uid}, "channels": {"chat": {
        "subscribe": true, "historyStart": 0,
        "messages": {
            "chat": {"publish": true, "echo": true, "store": 3600, "react": REACTIONS},
            "fleeting": {"publish": true}
        }
    }}})
}

async fn joined(stage: &TestStage, uid: &str) -> Client {
    let mut c = stage.connect(chat_claims(uid)).await;
    assert_eq!(c.subscribe("chat").await["event"], "hotsock.subscribed");
    c
}

fn react(id: &str, reaction: &str, action: &str) -> Value {
    json!({"event": "hotsock.messageReaction", "channel": "chat",
           "data": {"messageId": id, "reaction": reaction, "action": action}})
}

async fn post_chat(jim: &mut Client, pam: &mut Client, text: &str) -> String {
    jim.send(json!({"channel": "chat", "event": "chat", "data": {"text": text}}))
        .await;
    let got = pam.expect_event("chat").await;
    jim.expect_event("chat").await;
    got["id"].as_str().expect("id").to_owned()
}

/// Hotsock: every subscriber of the channel, the reactor included, gets the
/// reaction event, which has an `id` of its own.
#[tokio::test]
async fn reactions_fan_out_to_every_subscriber_and_count() {
    let stage = TestStage::start().await;
    let mut jim = joined(&stage, "jim").await;
    let mut pam = joined(&stage, "pam").await;
    let id = post_chat(&mut jim, &mut pam, "hello").await;

    pam.send(react(&id, "👍", "add")).await;
    let mut seen_by_jim = jim.expect_event("hotsock.messageReactionAdded").await;
    let event_id = seen_by_jim
        .as_object_mut()
        .and_then(|f| f.remove("id"))
        .expect("reaction events carry an id");
    let event_id = event_id.as_str().expect("string id");
    assert!(
        event_id.len() == 26 && event_id > id.as_str(),
        "a ULID after the message's: {event_id}"
    );
    assert_eq!(
        seen_by_jim,
        json!({"event": "hotsock.messageReactionAdded", "channel": "chat",
               "data": {"messageId": id, "reaction": "👍", "action": "add"},
               "meta": {"uid": "pam", "umd": {"name": "pam"}}})
    );
    assert_eq!(
        pam.expect_event("hotsock.messageReactionAdded").await["id"],
        event_id
    );
    jim.send(react(&id, "👍", "add")).await;
    assert_eq!(
        pam.expect_event("hotsock.messageReactionAdded").await["meta"]["uid"],
        "jim"
    );
    assert_eq!(
        jim.expect_event("hotsock.messageReactionAdded").await["meta"]["uid"],
        "jim"
    );

    // One reaction per (message, value, uid): a repeat changes nothing.
    pam.send(react(&id, "👍", "add")).await;
    // The repeat is its own invocation, which answers nothing.
    stage.expect_nothing_more(&mut pam, Some(&mut jim)).await;

    let (status, page) = stage
        .connection_api(&jim, "listMessages", json!({"channel": "chat"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        page["messages"][0]["reactions"],
        json!({"👍": {"count": 2}})
    );

    pam.send(react(&id, "👍", "remove")).await;
    let removed = jim.expect_event("hotsock.messageReactionRemoved").await;
    assert_eq!(removed["data"]["action"], "remove");
    let (_, page) = stage
        .connection_api(
            &jim,
            "listMessages",
            json!({"channel": "chat", "expandReactions": true}),
        )
        .await;
    assert_eq!(
        page["messages"][0]["reactions"],
        json!({"👍": {"count": 1, "items": [{"uid": "jim", "umd": {"name": "jim"}}]}})
    );
    let (status, list) = stage
        .connection_api(
            &pam,
            "listReactions",
            json!({"channel": "chat", "messageId": id}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        list,
        json!({"reactions": [{"reaction": "👍", "uid": "jim", "umd": {"name": "jim"}}]})
    );
}

#[tokio::test]
async fn messages_without_reactions_list_empty_reactions_only_when_expanded() {
    let stage = TestStage::start().await;
    let mut jim = joined(&stage, "jim").await;
    let mut pam = joined(&stage, "pam").await;
    post_chat(&mut jim, &mut pam, "plain").await;
    let (_, page) = stage
        .connection_api(&jim, "listMessages", json!({"channel": "chat"}))
        .await;
    assert!(page["messages"][0].get("reactions").is_none(), "{page}");
    let (_, page) = stage
        .connection_api(
            &jim,
            "listMessages",
            json!({"channel": "chat", "expandReactions": true}),
        )
        .await;
    assert_eq!(page["messages"][0]["reactions"], json!({}));
}

#[tokio::test]
async fn reaction_errors() {
    let stage = TestStage::start().await;
    let mut jim = joined(&stage, "jim").await;
    let mut pam = joined(&stage, "pam").await;
    let id = post_chat(&mut jim, &mut pam, "hi").await;
    let expect = |code: &'static str| {
        move |frame: Value| assert_eq!(frame["error"]["code"], code, "{frame}")
    };

    pam.send(react(&id, "🦄", "add")).await;
    expect("REACTION_NOT_ALLOWED")(pam.expect_event("hotsock.error").await);
    pam.send(react("01ARZ3NDEKTSV4RRFFQ69G5FAV", "👍", "add"))
        .await;
    expect("MESSAGE_NOT_FOUND")(pam.expect_event("hotsock.error").await);
    pam.send(react(&id, "bad#one", "add")).await;
    expect("INVALID_REACTION")(pam.expect_event("hotsock.error").await);
    // Unstored messages cannot be reacted to.
    jim.send(json!({"channel": "chat", "event": "fleeting", "data": 1}))
        .await;
    let fleeting = pam.expect_event("fleeting").await;
    pam.send(react(fleeting["id"].as_str().expect("id"), "👍", "add"))
        .await;
    expect("MESSAGE_NOT_FOUND")(pam.expect_event("hotsock.error").await);
    // No uid, no reaction.
    let mut anon = stage
        .connect(
            json!({"scope": "connect", "channels": {"chat": {"subscribe": true,
            "messages": {"chat": {"react": true}}}}}),
        )
        .await;
    anon.subscribe("chat").await;
    anon.send(react(&id, "👍", "add")).await;
    expect("REACTION_USER_ID_REQUIRED")(anon.expect_event("hotsock.error").await);
    // Not subscribed.
    pam.send(json!({"event": "hotsock.unsubscribe", "channel": "chat"}))
        .await;
    pam.expect_event("hotsock.unsubscribed").await;
    pam.send(react(&id, "👍", "add")).await;
    let err = pam.expect_event("hotsock.error").await;
    expect("NOT_SUBSCRIBED")(err.clone());
    assert_eq!(err["channel"], "chat");
    // Nothing was counted.
    let (_, page) = stage
        .connection_api(&jim, "listMessages", json!({"channel": "chat"}))
        .await;
    assert!(page["messages"][0].get("reactions").is_none(), "{page}");
}

#[tokio::test]
async fn concurrent_reactions_keep_exact_counts() {
    let stage = TestStage::start().await;
    let mut jim = joined(&stage, "jim").await;
    let mut pam = joined(&stage, "pam").await;
    let id = post_chat(&mut jim, &mut pam, "popular").await;
    let mut reactors = Vec::new();
    for i in 0..12 {
        reactors.push(joined(&stage, &format!("r{i}")).await);
    }
    // Everyone adds two reactions at once, over both paths.
    futures::future::join_all(reactors.iter_mut().enumerate().map(|(i, c)| {
        let stage = &stage;
        let id = id.clone();
        async move {
            c.send(react(&id, "👍", "add")).await;
            if i % 2 == 0 {
                c.send(react(&id, "❤️", "add")).await;
            } else {
                let (status, body) = stage
                    .connection_api(
                        c,
                        "publishMessage",
                        json!({"channel": "chat", "event": "hotsock.messageReaction",
                        "data": {"messageId": id, "reaction": "❤️", "action": "add"}}),
                    )
                    .await;
                assert_eq!(status, 202, "{body}");
            }
        }
    }))
    .await;
    // Jim sees all 24 additions.
    for _ in 0..24 {
        jim.expect_event("hotsock.messageReactionAdded").await;
    }
    let (_, page) = stage
        .connection_api(&jim, "listMessages", json!({"channel": "chat"}))
        .await;
    assert_eq!(
        page["messages"][0]["reactions"],
        json!({"👍": {"count": 12}, "❤️": {"count": 12}})
    );
    let (_, list) = stage
        .connection_api(
            &jim,
            "listReactions",
            json!({"channel": "chat", "messageId": id}),
        )
        .await;
    assert_eq!(list["reactions"].as_array().map(Vec::len), Some(24));
}

#[tokio::test]
async fn reactions_expire_with_their_message() {
    let stage = TestStage::start().await;
    let claims = |uid: &str| {
        json!({"scope": "connect", "uid": uid, "channels": {"chat": {"subscribe": true, "historyStart": 0,
            "messages": {"short": {"publish": true, "store": 3, "react": true}}}}})
    };
    let mut jim = stage.connect(claims("jim")).await;
    jim.subscribe("chat").await;
    let mut pam = stage.connect(claims("pam")).await;
    pam.subscribe("chat").await;
    jim.send(json!({"channel": "chat", "event": "short", "data": 1}))
        .await;
    let id = pam.expect_event("short").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    pam.send(react(&id, "x", "add")).await;
    jim.expect_event("hotsock.messageReactionAdded").await;
    let items = stage.items_with_pk_prefix("RXN#").await;
    assert_eq!(items.len(), 1);
    tokio::time::sleep(Duration::from_millis(4100)).await;
    pam.send(react(&id, "y", "add")).await;
    assert_eq!(
        pam.expect_event("hotsock.error").await["error"]["code"],
        "MESSAGE_NOT_FOUND"
    );
    let (_, list) = stage
        .connection_api(
            &pam,
            "listReactions",
            json!({"channel": "chat", "messageId": id}),
        )
        .await;
    assert_eq!(list, json!({"reactions": []}));
}

#[tokio::test]
async fn demo_sessions_mint_working_tokens() {
    let stage = TestStage::start_with(|o| {
        // Demo tokens need the stage's own dev key.
        o.env.retain(|(k, _)| !k.starts_with("SIGNING_KEY_"));
        o.root = std::env::temp_dir().join(format!("sockhop-demo-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&o.root).expect("temp root");
        std::fs::copy(
            sockhop_tests::root().join("template.yaml"),
            o.root.join("template.yaml"),
        )
        .expect("template");
    })
    .await;
    let base = stage.stage.http_url();
    let chat: Value = stage
        .http
        .post(format!("{base}/real-time-chat"))
        .body(r#"{"sessionId":"s1"}"#)
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(chat["channel"], "chat-s1");
    assert_eq!(chat["sessionId"], "s1");
    let todo: Value = stage
        .http
        .post(format!("{base}/collaborative-todo"))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    let session = todo["sessionId"].as_str().expect("session");
    assert_eq!(todo["channel"], format!("todo-{session}"));
    let bad = stage
        .http
        .post(format!("{base}/collaborative-todo"))
        .body(r#"{"sessionId":"no spaces"}"#)
        .send()
        .await
        .expect("answer");
    assert_eq!(bad.status().as_u16(), 400);

    let mut jim = stage
        .try_connect(chat["jim"]["token"].as_str().expect("token"))
        .await
        .expect("jim connects");
    let mut pam = stage
        .try_connect(chat["pam"]["token"].as_str().expect("token"))
        .await
        .expect("pam connects");
    assert_eq!(
        jim.expect_event("hotsock.connected").await["meta"],
        json!({"uid": "jim", "umd": {"name": "Jim"}})
    );
    pam.expect_event("hotsock.connected").await;
    jim.subscribe("chat-s1").await;
    pam.subscribe("chat-s1").await;
    jim.send(json!({"channel": "chat-s1", "event": "is-typing", "data": {}}))
        .await;
    pam.expect_event("is-typing").await;
    jim.send(json!({"channel": "chat-s1", "event": "chat", "data": {"text": "hi"}}))
        .await;
    let id = pam.expect_event("chat").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    pam.send(
        json!({"event": "hotsock.messageReaction", "channel": "chat-s1",
        "data": {"messageId": id, "reaction": "😂", "action": "add"}}),
    )
    .await;
    pam.expect_event("hotsock.messageReactionAdded").await;
    jim.expect_event("hotsock.messageReactionAdded").await;
    let todo_channel = todo["channel"].as_str().expect("channel");
    let mut alice = stage
        .try_connect(todo["alice"]["token"].as_str().expect("token"))
        .await
        .expect("alice");
    alice.expect_event("hotsock.connected").await;
    alice.subscribe(todo_channel).await;
    alice.send(json!({"channel": todo_channel, "event": "add-item", "data": {"id": "1", "text": "milk"}})).await;
    assert_eq!(alice.expect_event("add-item").await["data"]["text"], "milk");
}
