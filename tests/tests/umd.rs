//! User metadata updates (`hotsock.umdUpdate`, `connection/umdUpdate`) and
//! `hotsock.memberUpdated`, over real sockets and HTTP against DynamoDB Local.

use serde_json::{json, Value};
use sockhop_tests::{sign, Client, TestStage};

const ROOM: &str = "presence.room";

/// A user who may join presence rooms and publish `m` on them (with echo).
fn member_claims(uid: &str, umd: Value) -> Value {
    json!({"scope": "connect", "uid": uid, "umd": umd, "channels": {
        "presence.*": {"subscribe": true, "getInfo": true,
                       "messages": {"m": {"publish": true, "echo": true}}},
        "news": {"subscribe": true, "messages": {"m": {"publish": true, "echo": true}}}
    }})
}

async fn join(stage: &TestStage, uid: &str, umd: Value) -> (Client, Value) {
    let mut client = stage.connect(member_claims(uid, umd)).await;
    client
        .send(json!({"event": "hotsock.subscribe", "channel": ROOM}))
        .await;
    let subscribed = client.expect_event("hotsock.subscribed").await;
    (client, subscribed)
}

/// A umd token for `client` (bound by connectionId) with extra claims.
fn umd_token(client: &Client, umd: Value, extra: Value) -> String {
    let mut claims = json!({"scope": "umd", "connectionId": client.connection_id, "umd": umd});
    for (k, v) in extra.as_object().expect("object") {
        claims[k] = v.clone();
    }
    sign(claims)
}

fn may_update(channel: &str) -> Value {
    json!({"channels": {channel: {"umdUpdate": true}}})
}

fn member(uid: &str, umd: Value) -> Value {
    json!({"uid": uid, "umd": umd})
}

#[tokio::test]
async fn a_channel_update_tells_every_member_and_later_messages_carry_it() {
    let stage = TestStage::start().await;
    let (mut jim, _) = join(&stage, "jim", json!({"name": "Jim"})).await;
    let (mut pam, _) = join(&stage, "pam", json!({"name": "Pam"})).await;
    jim.expect_event("hotsock.memberAdded").await;

    let token = umd_token(&pam, json!({"name": "Pam B."}), may_update(ROOM));
    pam.send(json!({"event": "hotsock.umdUpdate", "channel": ROOM, "data": {"token": token}}))
        .await;
    let expected = json!({"event": "hotsock.memberUpdated", "channel": ROOM, "data": {
        "member": member("pam", json!({"name": "Pam B."})),
        "members": [member("jim", json!({"name": "Jim"})), member("pam", json!({"name": "Pam B."}))]
    }});
    // Every member hears it, the updater included.
    assert_eq!(jim.next().await, expected);
    assert_eq!(pam.next().await, expected);

    pam.send(json!({"event": "m", "channel": ROOM, "data": 1}))
        .await;
    let message = jim.expect_event("m").await;
    assert_eq!(message["meta"], member("pam", json!({"name": "Pam B."})));
    // Pam's own echo, so her next frame is the answer to her next subscribe.
    assert_eq!(pam.expect_event("m").await["meta"], message["meta"]);
    let (status, info) = stage
        .connection_api(&jim, "getChannelInfo", json!({"channel": ROOM}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(info["members"], expected["data"]["members"]);
    // The connection's own umd is unchanged: elsewhere Pam is still "Pam".
    let news = pam.subscribe("news").await;
    assert_eq!(news["event"], "hotsock.subscribed", "{news}");
    pam.send(json!({"event": "m", "channel": "news", "data": 2}))
        .await;
    assert_eq!(
        pam.expect_event("m").await["meta"]["umd"],
        json!({"name": "Pam"})
    );
}

#[tokio::test]
async fn the_http_update_answers_200_and_the_same_umd_again_tells_nobody() {
    let stage = TestStage::start().await;
    let (mut jim, _) = join(&stage, "jim", json!("j")).await;
    let (mut pam, _) = join(&stage, "pam", json!("p")).await;
    jim.expect_event("hotsock.memberAdded").await;
    let token = umd_token(&jim, json!("away"), may_update("presence.*"));
    let (status, body) = stage
        .connection_api(&jim, "umdUpdate", json!({"channel": ROOM, "token": token}))
        .await;
    assert_eq!((status, body), (200, json!({})));
    for client in [&mut jim, &mut pam] {
        let updated = client.expect_event("hotsock.memberUpdated").await;
        assert_eq!(updated["data"]["member"], member("jim", json!("away")));
    }
    // Setting what is already there changes nothing anyone sees.
    let (status, _) = stage
        .connection_api(&jim, "umdUpdate", json!({"channel": ROOM, "token": token}))
        .await;
    assert_eq!(status, 200);
    // A change told would reach both before the marker behind it on the channel.
    stage.publish_marker(ROOM).await;
    pam.expect_next_event("marker").await;
    jim.expect_next_event("marker").await;
}

#[tokio::test]
async fn a_connection_update_is_inherited_and_propagated_only_when_asked() {
    let stage = TestStage::start().await;
    let (mut jim, _) = join(&stage, "jim", json!(1)).await;
    let (mut pam, _) = join(&stage, "pam", json!(1)).await;
    jim.expect_event("hotsock.memberAdded").await;

    // Without umdPropagate: later subscriptions take the new umd, existing ones keep theirs.
    // (Over HTTP: the 200 says it is done. Over the socket nothing answers a
    // connection-level update, so a subscribe sent right after could overtake it.)
    let token = umd_token(&pam, json!(2), json!({"umdUpdate": true}));
    let (status, _) = stage
        .connection_api(&pam, "umdUpdate", json!({"token": token}))
        .await;
    assert_eq!(status, 200);
    let news = pam.subscribe("news").await;
    assert_eq!(news["event"], "hotsock.subscribed", "{news}");
    assert_eq!(news["meta"]["umd"], json!(2));
    pam.send(json!({"event": "m", "channel": ROOM, "data": "x"}))
        .await;
    // Nothing told of the update: a change would be queued before the message.
    assert_eq!(jim.expect_next_event("m").await["meta"]["umd"], json!(1));

    // With umdPropagate: every subscription takes it, and presence members hear.
    let token = umd_token(
        &pam,
        json!(3),
        json!({"umdUpdate": true, "umdPropagate": true}),
    );
    pam.send(json!({"event": "hotsock.umdUpdate", "data": {"token": token}}))
        .await;
    let updated = jim.expect_event("hotsock.memberUpdated").await;
    assert_eq!(updated["data"]["member"], member("pam", json!(3)));
    pam.send(json!({"event": "m", "channel": "news", "data": "y"}))
        .await;
    let echo = loop {
        let frame = pam.expect_event("m").await;
        if frame["data"] == "y" {
            break frame;
        }
    };
    assert_eq!(echo["meta"]["umd"], json!(3));
}

#[tokio::test]
async fn a_second_connection_with_another_umd_is_a_member_update() {
    let stage = TestStage::start().await;
    let (mut jim, _) = join(&stage, "jim", json!("desk")).await;
    let (mut pam, _) = join(&stage, "pam", Value::Null).await;
    jim.expect_event("hotsock.memberAdded").await;
    let (mut phone, subscribed) = join(&stage, "jim", json!("phone")).await;
    let members = json!([member("jim", json!("phone")), member("pam", Value::Null)]);
    assert_eq!(subscribed["data"]["members"], members);
    for client in [&mut jim, &mut pam, &mut phone] {
        let updated = client.expect_event("hotsock.memberUpdated").await;
        assert_eq!(updated["data"]["member"], member("jim", json!("phone")));
        assert_eq!(updated["data"]["members"], members);
    }
    // When the phone leaves, Jim's other connection's umd is his again.
    phone.close().await;
    for client in [&mut jim, &mut pam] {
        let updated = client.expect_event("hotsock.memberUpdated").await;
        assert_eq!(updated["data"]["member"], member("jim", json!("desk")));
    }
    // The leave told nothing more: the marker behind it is Pam's next frame.
    stage.publish_marker(ROOM).await;
    pam.expect_next_event("marker").await;
}

#[tokio::test]
async fn refusals_have_stable_codes_and_change_nothing() {
    let stage = TestStage::start().await;
    let (mut jim, _) = join(&stage, "jim", json!("j")).await;
    let (mut pam, _) = join(&stage, "pam", json!("p")).await;
    jim.expect_event("hotsock.memberAdded").await;
    let other = stage.connect(member_claims("kev", Value::Null)).await;

    let allowed = may_update(ROOM);
    let cases: Vec<(&str, Value, &str, u16)> = vec![
        ("no token", json!({}), "INVALID_UMD_TOKEN", 401),
        (
            "not a JWT",
            json!({"token": "nope"}),
            "INVALID_UMD_TOKEN",
            401,
        ),
        (
            "expired",
            json!({"token": umd_token(&pam, json!(9), json!({"exp": 1000, "channels": {ROOM: {"umdUpdate": true}}}))}),
            "INVALID_UMD_TOKEN",
            401,
        ),
        (
            "subscribe scope",
            json!({"token": umd_token(&pam, json!(9), json!({"scope": "subscribe", "channels": {ROOM: {"umdUpdate": true}}}))}),
            "INVALID_UMD_TOKEN",
            401,
        ),
        (
            "another connection",
            json!({"token": umd_token(&other, json!(9), allowed.clone())}),
            "INVALID_UMD_TOKEN",
            401,
        ),
        (
            "another uid",
            json!({"token": sign(json!({"scope": "umd", "uid": "kev", "umd": 9, "channels": {ROOM: {"umdUpdate": true}}}))}),
            "INVALID_UMD_TOKEN",
            401,
        ),
        (
            "no umdUpdate directive",
            json!({"token": umd_token(&pam, json!(9), json!({"channels": {ROOM: {"subscribe": true}}}))}),
            "UMD_UPDATE_NOT_ALLOWED",
            403,
        ),
        (
            "explicit false wins",
            json!({"token": umd_token(&pam, json!(9), json!({"channels": {"presence.*": {"umdUpdate": true}, ROOM: {"umdUpdate": false}}}))}),
            "UMD_UPDATE_NOT_ALLOWED",
            403,
        ),
        (
            "umd over 1 KiB",
            json!({"token": umd_token(&pam, json!("x".repeat(1100)), allowed.clone())}),
            "UMD_TOO_LARGE",
            413,
        ),
    ];
    for (case, mut body, code, status) in cases {
        body["channel"] = json!(ROOM);
        let (got_status, got) = stage.connection_api(&pam, "umdUpdate", body.clone()).await;
        assert_eq!(
            (got_status, got["error"]["code"].as_str()),
            (status, Some(code)),
            "{case}: {got}"
        );
        let mut frame = json!({"event": "hotsock.umdUpdate", "channel": ROOM, "data": {}});
        if let Some(token) = body.get("token") {
            frame["data"]["token"] = token.clone();
        }
        pam.send(frame).await;
        pam.expect_error(code, Some(ROOM)).await;
    }
    // The connection-level update needs the claim; the channel one a subscription.
    let token = umd_token(&pam, json!(9), allowed.clone());
    pam.send(json!({"event": "hotsock.umdUpdate", "data": {"token": token}}))
        .await;
    pam.expect_error("UMD_UPDATE_NOT_ALLOWED", None).await;
    let token = umd_token(&pam, json!(9), may_update("presence.elsewhere"));
    pam.send(json!({"event": "hotsock.umdUpdate", "channel": "presence.elsewhere", "data": {"token": token}}))
        .await;
    pam.expect_error("NOT_SUBSCRIBED", Some("presence.elsewhere"))
        .await;

    // Refused updates told nobody: the marker is Jim's next frame.
    stage.publish_marker(ROOM).await;
    jim.expect_next_event("marker").await;
    let (_, info) = stage
        .connection_api(&jim, "getChannelInfo", json!({"channel": ROOM}))
        .await;
    assert_eq!(
        info["members"],
        json!([member("jim", json!("j")), member("pam", json!("p"))])
    );
}

#[tokio::test]
async fn a_single_use_token_updates_once() {
    let stage = TestStage::start().await;
    let (mut jim, _) = join(&stage, "jim", json!(0)).await;
    let mut claims = may_update(ROOM);
    claims["singleUse"] = json!(true);
    claims["jti"] = json!(format!("umd-{}", jim.connection_id));
    // Bound by uid rather than connectionId.
    claims["scope"] = json!("umd");
    claims["uid"] = json!("jim");
    claims["umd"] = json!(1);
    let token = sign(claims);
    // A refused attempt (no subscription to that channel) does not spend it.
    let (status, _) = stage
        .connection_api(
            &jim,
            "umdUpdate",
            json!({"channel": "presence.other", "token": token}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = stage
        .connection_api(&jim, "umdUpdate", json!({"channel": ROOM, "token": token}))
        .await;
    assert_eq!(status, 200);
    let updated = jim.expect_event("hotsock.memberUpdated").await;
    assert_eq!(updated["data"]["member"], member("jim", json!(1)));
    jim.send(json!({"event": "hotsock.umdUpdate", "channel": ROOM, "data": {"token": token}}))
        .await;
    let err = jim.expect_error("INVALID_UMD_TOKEN", Some(ROOM)).await;
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("already used")),
        "{err}"
    );
}

#[tokio::test]
async fn a_token_bound_by_uid_changes_only_subscriptions_acting_as_that_uid() {
    let stage = TestStage::start().await;
    let (mut pam, _) = join(&stage, "pam", json!("p")).await;
    // A subscribe token makes this connection's subscription act as "bot-42".
    let mut jim = stage.connect(member_claims("jim", json!("j"))).await;
    let as_bot = sign(
        json!({"scope": "subscribe", "connectionId": jim.connection_id,
        "uid": "bot-42", "umd": "bot", "channels": {ROOM: {"subscribe": true}}}),
    );
    jim.send(json!({"event": "hotsock.subscribe", "channel": ROOM, "data": {"token": as_bot}}))
        .await;
    jim.expect_event("hotsock.subscribed").await;
    pam.expect_event("hotsock.memberAdded").await;
    let as_jim = sign(json!({"scope": "umd", "uid": "jim", "umd": "hijack",
        "umdUpdate": true, "umdPropagate": true, "channels": {ROOM: {"umdUpdate": true}}}));
    let (status, body) = stage
        .connection_api(&jim, "umdUpdate", json!({"channel": ROOM, "token": as_jim}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("INVALID_UMD_TOKEN"))
    );
    // Propagated from the connection, it skips the subscription acting as another uid.
    let (status, _) = stage
        .connection_api(&jim, "umdUpdate", json!({"token": as_jim}))
        .await;
    assert_eq!(status, 200);
    stage.publish_marker(ROOM).await;
    pam.expect_next_event("marker").await;
    let (_, info) = stage
        .connection_api(&pam, "getChannelInfo", json!({"channel": ROOM}))
        .await;
    assert_eq!(
        info["members"],
        json!([member("pam", json!("p")), member("bot-42", json!("bot"))])
    );
}
