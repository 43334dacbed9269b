//! Subscribing, publishing, echo, permissions and bad frames over real sockets.

use serde_json::{json, Value};
use sockhop_tests::{sign, Client, TestStage};
use std::time::Duration;

fn chat_claims(uid: &str, echo: bool) -> Value {
    json!({"scope": "connect", "uid": uid, "channels": {
        "chat": {"subscribe": true, "messages": {"msg": {"publish": true, "echo": echo}}},
        "locked": {"subscribe": false},
        "bcast": {"messages": {"alert": {"broadcast": true}}}
    }})
}

async fn subscribed(stage: &TestStage, uid: &str, echo: bool) -> Client {
    let mut client = stage.connect(chat_claims(uid, echo)).await;
    let frame = client.subscribe("chat").await;
    assert_eq!(frame["event"], "hotsock.subscribed", "{frame}");
    client
}

#[tokio::test]
async fn subscribed_frame_has_data_and_meta() {
    let stage = TestStage::start().await;
    let mut client = stage.connect(chat_claims("jim", false)).await;
    let frame = client.subscribe("chat").await;
    assert_eq!(
        frame,
        json!({"event": "hotsock.subscribed", "channel": "chat", "data": {}, "meta": {"uid": "jim", "umd": null}})
    );
}

#[tokio::test]
async fn two_clients_exchange_messages_without_echo() {
    let stage = TestStage::start().await;
    let mut jim = subscribed(&stage, "jim", false).await;
    let mut pam = subscribed(&stage, "pam", false).await;
    jim.send(json!({"channel": "chat", "event": "msg", "data": {"text": "hi pam"}}))
        .await;
    let got = pam.expect_event("msg").await;
    assert_eq!(got["channel"], "chat");
    assert_eq!(got["data"], json!({"text": "hi pam"}));
    assert_eq!(got["meta"], json!({"uid": "jim", "umd": null}));
    let id = got["id"].as_str().expect("id");
    assert!(ulid::Ulid::from_string(id).is_ok(), "{id}");
    // Pam's reply comes after Jim's message on the channel's path, so an echo
    // of his would be his next frame.
    pam.send(json!({"channel": "chat", "event": "msg", "data": "hello jim"}))
        .await;
    assert_eq!(jim.expect_next_event("msg").await["data"], "hello jim");
}

#[tokio::test]
async fn echo_sends_the_sender_its_own_copy() {
    let stage = TestStage::start().await;
    let mut jim = subscribed(&stage, "jim", true).await;
    let mut pam = subscribed(&stage, "pam", false).await;
    jim.send(json!({"channel": "chat", "event": "msg", "data": 1}))
        .await;
    let own = jim.expect_event("msg").await;
    let theirs = pam.expect_event("msg").await;
    assert_eq!(own["id"], theirs["id"]);
    assert_eq!(own["data"], 1);
}

#[tokio::test]
async fn unsubscribed_clients_receive_nothing() {
    let stage = TestStage::start().await;
    let mut jim = subscribed(&stage, "jim", false).await;
    let mut pam = subscribed(&stage, "pam", false).await;
    pam.send(json!({"event": "hotsock.unsubscribe", "channel": "chat"}))
        .await;
    assert_eq!(
        pam.next().await,
        json!({"event": "hotsock.unsubscribed", "channel": "chat", "data": {}, "meta": {"uid": "pam", "umd": null}})
    );
    jim.send(json!({"channel": "chat", "event": "msg", "data": 1}))
        .await;
    // Jim's message answers nothing to anyone here; once the stage is quiet,
    // a copy to Pam would already be ahead of her pong.
    stage.expect_nothing_more(&mut jim, Some(&mut pam)).await;
}

async fn expect_error(client: &mut Client, code: &str, channel: Option<&str>) -> Value {
    client.expect_error(code, channel).await
}

#[tokio::test]
async fn subscribe_errors_carry_codes_and_channels() {
    let stage = TestStage::start().await;
    let mut jim = subscribed(&stage, "jim", false).await;
    jim.send(json!({"event": "hotsock.subscribe", "channel": "chat"}))
        .await;
    expect_error(&mut jim, "ALREADY_SUBSCRIBED", Some("chat")).await;
    jim.send(json!({"event": "hotsock.subscribe", "channel": "locked"}))
        .await;
    expect_error(&mut jim, "SUBSCRIBE_PERMISSION_DENIED", Some("locked")).await;
    jim.send(json!({"event": "hotsock.subscribe", "channel": "unknown"}))
        .await;
    expect_error(&mut jim, "SUBSCRIBE_PERMISSION_DENIED", Some("unknown")).await;
    jim.send(json!({"event": "hotsock.unsubscribe", "channel": "unknown"}))
        .await;
    expect_error(&mut jim, "NOT_SUBSCRIBED", Some("unknown")).await;
    jim.send(
        json!({"event": "hotsock.subscribe", "channel": "other", "data": {"token": "garbage"}}),
    )
    .await;
    expect_error(&mut jim, "INVALID_SUBSCRIBE_TOKEN", Some("other")).await;
    // Exactly one subscription and a count of one remain.
    let items = stage.items_with_pk_prefix("CHAN#chat").await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(stage.subscriptions_count("chat").await, 1);
}

#[tokio::test]
async fn subscribe_tokens_grant_and_must_name_the_connection() {
    let stage = TestStage::start().await;
    let mut jim = stage
        .connect(json!({"scope": "connect", "uid": "jim"}))
        .await;
    let id = jim.connection_id.clone();
    let grant = |extra: Value| {
        let mut claims = json!({"scope": "subscribe", "channels": {"vip": {"subscribe": true}}});
        claims
            .as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        sign(claims)
    };
    // For another connection, for another uid, without the scope, expired: refused.
    for bad in [
        grant(json!({"connectionId": "someone-else"})),
        grant(json!({"uid": "pam"})),
        grant(json!({})),
        sign(
            json!({"scope": "connect", "connectionId": id, "channels": {"vip": {"subscribe": true}}}),
        ),
        grant(json!({"connectionId": id, "exp": sockhop_tests::now() - 5})),
    ] {
        jim.send(json!({"event": "hotsock.subscribe", "channel": "vip", "data": {"token": bad}}))
            .await;
        expect_error(&mut jim, "INVALID_SUBSCRIBE_TOKEN", Some("vip")).await;
    }
    // A valid token that does not grant this channel.
    let other = sign(
        json!({"scope": "subscribe", "connectionId": id, "channels": {"x": {"subscribe": true}}}),
    );
    jim.send(json!({"event": "hotsock.subscribe", "channel": "vip", "data": {"token": other}}))
        .await;
    expect_error(&mut jim, "SUBSCRIBE_PERMISSION_DENIED", Some("vip")).await;
    // By connectionId, with the subscribe token's umd taking precedence.
    let token = grant(json!({"connectionId": id, "umd": {"badge": "gold"}}));
    jim.send(json!({"event": "hotsock.subscribe", "channel": "vip", "data": {"token": token}}))
        .await;
    let frame = jim.expect_event("hotsock.subscribed").await;
    assert_eq!(
        frame["meta"],
        json!({"uid": "jim", "umd": {"badge": "gold"}})
    );
    // By uid, single use: the second use is refused.
    let once = sign(
        json!({"scope": "subscribe", "uid": "jim", "singleUse": true, "jti": "s1",
        "channels": {"vip2": {"subscribe": true}}}),
    );
    jim.send(json!({"event": "hotsock.subscribe", "channel": "vip2", "data": {"token": once}}))
        .await;
    jim.expect_event("hotsock.subscribed").await;
    jim.send(json!({"event": "hotsock.unsubscribe", "channel": "vip2"}))
        .await;
    jim.expect_event("hotsock.unsubscribed").await;
    jim.send(json!({"event": "hotsock.subscribe", "channel": "vip2", "data": {"token": once}}))
        .await;
    expect_error(&mut jim, "INVALID_SUBSCRIBE_TOKEN", Some("vip2")).await;
}

/// A single-use subscribe token is spent only by a subscribe it allowed: a
/// refused attempt (no grant for that channel, already subscribed, a presence
/// channel without a uid) leaves it for the next one.
#[tokio::test]
async fn a_refused_subscribe_does_not_spend_a_single_use_token() {
    let stage = TestStage::start().await;
    let mut jim = stage
        .connect(json!({"scope": "connect", "channels": {"open": {"subscribe": true}}}))
        .await;
    let once = sign(
        json!({"scope": "subscribe", "connectionId": jim.connection_id,
        "singleUse": true, "jti": format!("once-{}", jim.connection_id),
        "channels": {"open": {"subscribe": true}, "vip": {"subscribe": true},
                     "presence.room": {"subscribe": true}}}),
    );
    let subscribe = |channel: &str| json!({"event": "hotsock.subscribe", "channel": channel, "data": {"token": once}});
    // Refused for what the token does not grant.
    jim.send(subscribe("other")).await;
    expect_error(&mut jim, "SUBSCRIBE_PERMISSION_DENIED", Some("other")).await;
    // Refused: presence needs a uid, which neither token has.
    jim.send(subscribe("presence.room")).await;
    expect_error(
        &mut jim,
        "PRESENCE_CHANNEL_USER_ID_REQUIRED",
        Some("presence.room"),
    )
    .await;
    // Refused: already subscribed (through the connect token).
    assert_eq!(jim.subscribe("open").await["event"], "hotsock.subscribed");
    jim.send(subscribe("open")).await;
    expect_error(&mut jim, "ALREADY_SUBSCRIBED", Some("open")).await;
    // None of those spent it: it subscribes once, then it is spent.
    jim.send(subscribe("vip")).await;
    assert_eq!(
        jim.expect_event("hotsock.subscribed").await["channel"],
        "vip"
    );
    jim.send(json!({"event": "hotsock.unsubscribe", "channel": "vip"}))
        .await;
    jim.expect_event("hotsock.unsubscribed").await;
    jim.send(subscribe("vip")).await;
    expect_error(&mut jim, "INVALID_SUBSCRIBE_TOKEN", Some("vip")).await;
}

#[tokio::test]
async fn publish_permissions_are_enforced() {
    let stage = TestStage::start().await;
    let mut jim = stage.connect(chat_claims("jim", false)).await;
    let mut pam = subscribed(&stage, "pam", false).await;
    // Not subscribed: publish is not enough.
    jim.send(json!({"channel": "chat", "event": "msg", "data": 1}))
        .await;
    expect_error(&mut jim, "PUBLISH_PERMISSION_DENIED", Some("chat")).await;
    jim.subscribe("chat").await;
    jim.send(json!({"channel": "chat", "event": "other", "data": 1}))
        .await;
    expect_error(&mut jim, "PUBLISH_PERMISSION_DENIED", Some("chat")).await;
    // A refused publish that was queued anyway would reach Pam before this.
    stage.publish_marker("chat").await;
    pam.expect_next_event("marker").await;
    // Broadcast works without a subscription.
    let mut listener = stage
        .connect(json!({"scope": "connect", "channels": {"bcast": {"subscribe": true}}}))
        .await;
    listener.subscribe("bcast").await;
    jim.send(json!({"channel": "bcast", "event": "alert", "data": "!"}))
        .await;
    assert_eq!(listener.expect_event("alert").await["data"], "!");
}

#[tokio::test]
async fn bad_frames_get_errors_and_the_connection_stays_open() {
    let stage = TestStage::start().await;
    let mut jim = subscribed(&stage, "jim", true).await;
    jim.send_text("this is not json").await;
    expect_error(&mut jim, "INVALID_MESSAGE", None).await;
    jim.send_text("[1,2,3]").await;
    expect_error(&mut jim, "INVALID_MESSAGE", None).await;
    jim.send(json!({"event": "hotsock.launchRockets"})).await;
    expect_error(&mut jim, "UNKNOWN_COMMAND", None).await;
    jim.send(json!({"event": "hotsock.subscribe", "channel": "bad channel"}))
        .await;
    expect_error(&mut jim, "INVALID_CHANNEL", Some("bad channel")).await;
    jim.send(json!({"event": "hotsock.subscribe", "channel": "a*b"}))
        .await;
    expect_error(&mut jim, "INVALID_CHANNEL", Some("a*b")).await;
    let long = "x".repeat(257);
    jim.send(json!({"event": "hotsock.subscribe", "channel": long}))
        .await;
    expect_error(&mut jim, "INVALID_CHANNEL", Some(&long)).await;
    jim.send(json!({"channel": "chat", "event": "msg", "data": "x".repeat(33 * 1024)}))
        .await;
    expect_error(&mut jim, "MESSAGE_TOO_LARGE", Some("chat")).await;
    jim.send(json!({"channel": "chat", "event": "hotsock.fake", "data": 1}))
        .await;
    jim.expect_event("hotsock.error").await;
    // Still open and working.
    jim.send(json!({"event": "hotsock.ping"})).await;
    assert_eq!(
        jim.expect_event("hotsock.pong").await,
        json!({"event": "hotsock.pong", "data": "{}"})
    );
    jim.send(json!({"channel": "chat", "event": "msg", "data": "ok"}))
        .await;
    assert_eq!(jim.expect_event("msg").await["data"], "ok");
    // Nothing bad was stored.
    let messages = stage.items_with_pk_prefix("MSG#").await;
    assert!(messages.len() <= 1, "{messages:?}");
}

#[tokio::test]
async fn heartbeat_and_pong_are_silent_and_heartbeat_is_recorded() {
    let stage = TestStage::start().await;
    let mut jim = stage
        .connect(json!({"scope": "connect", "heartbeatTimeout": 30}))
        .await;
    let before = stage
        .stage
        .app
        .store
        .get_connection(&jim.connection_id, 0)
        .await
        .expect("read")
        .expect("connection");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    jim.send(json!({"event": "hotsock.heartbeat"})).await;
    jim.send(json!({"event": "hotsock.pong"})).await;
    // Neither frame answers anything (each its own concurrent invocation).
    stage.expect_nothing_more(&mut jim, None).await;
    let after = stage
        .stage
        .app
        .store
        .get_connection(&jim.connection_id, 0)
        .await
        .expect("read")
        .expect("connection");
    assert!(after.last_seen > before.last_seen);
    assert_eq!(after.heartbeat_timeout, Some(30));
}

#[tokio::test]
async fn messages_are_delivered_to_100_subscribers() {
    let stage = TestStage::start().await;
    let mut clients = Vec::new();
    for i in 0..100 {
        let mut c = stage
            .connect(json!({"scope": "connect", "uid": format!("u{i}"), "channels": {"big": {"subscribe": true}}}))
            .await;
        assert_eq!(c.subscribe("big").await["event"], "hotsock.subscribed");
        clients.push(c);
    }
    let mut server = stage.connect(json!({"scope": "connect", "channels": {"big": {"messages": {"go": {"broadcast": true}}}}})).await;
    server
        .send(json!({"channel": "big", "event": "go", "data": {"n": 1}}))
        .await;
    let received =
        futures::future::join_all(clients.iter_mut().map(|c| c.expect_event("go"))).await;
    assert_eq!(received.len(), 100);
    assert!(received.iter().all(|f| f["data"] == json!({"n": 1})));
    let ids: std::collections::BTreeSet<_> = received.iter().map(|f| f["id"].to_string()).collect();
    assert_eq!(ids.len(), 1, "one message, one id");
    assert_eq!(stage.subscriptions_count("big").await, 100);
}

#[tokio::test]
async fn each_channel_is_delivered_in_id_order_to_everyone() {
    let stage = TestStage::start().await;
    let claims = |uid: &str| {
        json!({"scope": "connect", "uid": uid, "channels": {"race": {"subscribe": true,
            "messages": {"n": {"publish": true, "echo": true}}}}})
    };
    let mut publishers = Vec::new();
    for p in 0..4 {
        let mut c = stage.connect(claims(&format!("p{p}"))).await;
        c.subscribe("race").await;
        publishers.push(c);
    }
    let mut watcher = stage.connect(claims("w")).await;
    watcher.subscribe("race").await;
    // Four connections fire 25 frames each without waiting: $default runs
    // concurrently, so writes race for the channel.
    futures::future::join_all(publishers.iter_mut().enumerate().map(|(p, c)| async move {
        for i in 0..25 {
            c.send(json!({"channel": "race", "event": "n", "data": {"p": p, "i": i}}))
                .await;
        }
    }))
    .await;
    let mut everyone: Vec<&mut Client> = publishers.iter_mut().collect();
    everyone.push(&mut watcher);
    let mut sequences = Vec::new();
    for client in everyone {
        let mut ids = Vec::new();
        while ids.len() < 100 {
            let frame = client.expect_event("n").await;
            ids.push(frame["id"].as_str().expect("id").to_owned());
        }
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "delivered out of id order");
        sequences.push(ids);
    }
    assert!(
        sequences.windows(2).all(|w| w[0] == w[1]),
        "everyone sees the same sequence"
    );
}

/// Many connections subscribing to one channel at once all touch its count
/// item; every subscribe succeeds and the count is exact. (DynamoDB Local
/// serialises transactions; in AWS the ones that lose a conflict are run again,
/// see `shared/src/adapters/dynamodb/subscriptions.rs::only_pure_conflicts_are_retried`.)
#[tokio::test]
async fn simultaneous_subscribes_to_one_channel_all_succeed() {
    let stage = TestStage::start().await;
    let mut clients = Vec::new();
    for i in 0..40 {
        clients.push(stage.connect(chat_claims(&format!("u{i}"), false)).await);
    }
    let frames = futures::future::join_all(clients.iter_mut().map(|c| c.subscribe("chat"))).await;
    for frame in &frames {
        assert_eq!(frame["event"], "hotsock.subscribed", "{frame}");
    }
    assert_eq!(stage.subscriptions_count("chat").await, 40);
}

/// Channel names are limited in characters (256, Hotsock's limit), not in
/// bytes: 256 emoji (1,024 bytes, more than `SUB#<name>` fits in a DynamoDB
/// sort key) subscribe like any name, 257 are refused by name, never an
/// `INTERNAL_ERROR` from the database.
#[tokio::test]
async fn channel_names_are_limited_in_characters_not_bytes() {
    let stage = TestStage::start().await;
    let mut jim = stage
        .connect(json!({"scope": "connect", "channels": {"*": {"subscribe": true}}}))
        .await;
    let too_long = "😀".repeat(257);
    jim.send(json!({"event": "hotsock.subscribe", "channel": too_long}))
        .await;
    expect_error(&mut jim, "INVALID_CHANNEL", Some(&too_long)).await;
    let widest = "😀".repeat(256);
    assert_eq!(jim.subscribe(&widest).await["event"], "hotsock.subscribed");
    jim.send(json!({"event": "hotsock.unsubscribe", "channel": widest}))
        .await;
    assert_eq!(
        jim.expect_event("hotsock.unsubscribed").await["channel"],
        widest.as_str()
    );
}

/// Frames over the protocol's 128 KiB are answered `MESSAGE_TOO_LARGE` and the
/// socket stays; a frame the socket cannot take at all gets a Close frame with
/// 1009 (not a dropped TCP connection); a client's Close is answered.
#[tokio::test]
async fn oversize_frames_and_closes_are_answered() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::Message;
    let stage = TestStage::start().await;
    let mut jim = subscribed(&stage, "jim", true).await;
    let big = json!({"channel": "chat", "event": "msg", "data": "x".repeat(200 * 1024)});
    jim.send(big).await;
    // Too big to be read as a frame, so no channel is known to name.
    expect_error(&mut jim, "MESSAGE_TOO_LARGE", None).await;
    jim.send(json!({"event": "hotsock.ping"})).await;
    jim.expect_event("hotsock.pong").await;

    jim.send_text(&"y".repeat(2 * 1024 * 1024)).await;
    let close = loop {
        match jim.socket.next().await {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a Close frame, got {other:?}"),
        }
    };
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Size));

    let mut pam = subscribed(&stage, "pam", true).await;
    pam.socket
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
        .expect("close sent");
    let answer = loop {
        match pam.socket.next().await {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected the Close to be answered, got {other:?}"),
        }
    };
    assert_eq!(answer.map(|f| f.code), Some(CloseCode::Normal));
}

/// The stage's management API is for the stage's own handlers: a post or a
/// delete from anyone else who reaches the port is refused and the socket
/// neither hears it nor closes.
#[tokio::test]
async fn forged_management_calls_are_refused() {
    let stage = TestStage::start().await;
    let mut jim = subscribed(&stage, "jim", true).await;
    let url = format!(
        "{}/@connections/{}",
        stage.stage.websocket_url().replacen("ws://", "http://", 1),
        jim.connection_id
    );
    let forged = "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=00";
    let post = stage
        .http
        .post(&url)
        .header("authorization", forged)
        .body(r#"{"event":"forged"}"#)
        .send()
        .await
        .expect("answer");
    assert_eq!(post.status().as_u16(), 403);
    let delete = stage.http.delete(&url).send().await.expect("answer");
    assert_eq!(delete.status().as_u16(), 403);
    // A forged post accepted would have been written before its answer, a
    // delete would have closed the socket: either comes before this echo.
    jim.send(json!({"channel": "chat", "event": "msg", "data": "still open"}))
        .await;
    assert_eq!(jim.expect_next_event("msg").await["data"], "still open");
}

/// `data` arrives as the publisher wrote it: object keys in their order.
#[tokio::test]
async fn data_keeps_its_key_order() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let stage = TestStage::start().await;
    let mut jim = subscribed(&stage, "jim", true).await;
    jim.send_text(r#"{"channel":"chat","event":"msg","data":{"zebra":1,"apple":{"y":2,"b":3}}}"#)
        .await;
    let text = loop {
        match jim.socket.next().await {
            Some(Ok(Message::Text(t))) if t.contains("zebra") => break t.to_string(),
            Some(Ok(_)) => continue,
            other => panic!("no message: {other:?}"),
        }
    };
    assert!(
        text.contains(r#""data":{"zebra":1,"apple":{"y":2,"b":3}}"#),
        "{text}"
    );
}

/// Channel names are counted in characters, as Hotsock counts them: a
/// 256-character name of four-byte characters (1,024 bytes) works everywhere,
/// though `SUB#<name>` would overflow DynamoDB's 1,024-byte sort key (the
/// store keeps such a name under its digest there).
#[tokio::test]
async fn a_256_character_name_of_four_byte_characters_is_a_channel_like_any_other() {
    let stage = TestStage::start().await;
    let channel = "😀".repeat(256);
    let claims = json!({"scope": "connect", "uid": "jim", "channels": {channel.as_str(): {
        "subscribe": true, "historyStart": 0,
        "messages": {"msg": {"publish": true, "echo": true, "store": 600}},
        "storage": {"k": {"set": true, "get": true}}}}});
    let mut jim = stage.connect(claims).await;
    assert_eq!(jim.subscribe(&channel).await["event"], "hotsock.subscribed");
    assert_eq!(stage.subscriptions_count(&channel).await, 1);
    jim.send(json!({"channel": channel, "event": "msg", "data": "hi"}))
        .await;
    let echo = jim.expect_event("msg").await;
    assert_eq!(echo["channel"], channel.as_str());
    stage.deliveries_settled().await;
    let (status, listed) = stage
        .connection_api(&jim, "listMessages", json!({"channel": channel}))
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["messages"][0]["id"], echo["id"]);
    let (status, _) = stage
        .connection_api(
            &jim,
            "channelStorageSet",
            json!({"channel": channel, "key": "k", "data": 1}),
        )
        .await;
    assert_eq!(status, 202, "a storage write is queued");
    jim.send(json!({"event": "hotsock.unsubscribe", "channel": channel}))
        .await;
    jim.expect_event("hotsock.unsubscribed").await;
    assert_eq!(stage.subscriptions_count(&channel).await, 0);
    // The reverse index item went with the subscription.
    assert!(stage
        .items_with_pk_prefix(&format!("CONN#{}", jim.connection_id))
        .await
        .iter()
        .all(|i| i["sk"] == "CONN"));
}
