//! Channel aliases on the wire, as Hotsock documents them and hotsock-js relies
//! on: frames always name the real channel; `hotsock.subscribed` and
//! `hotsock.unsubscribed` carry the alias as `meta.channelAlias` whenever the
//! subscription has one; every command accepts the alias.

use serde_json::{json, Value};
use sockhop_tests::{sign, Client, TestStage};
const ROOM: &str = "private-room-7f3a";

fn room_claims(uid: &str) -> Value {
    json!({"scope": "connect", "uid": uid, "channels": {
        ROOM: {"alias": "room", "subscribe": true, "messages": {"msg": {"publish": true}}}
    }})
}

#[tokio::test]
async fn frames_name_the_real_channel_and_meta_names_the_alias() {
    let stage = TestStage::start().await;
    let mut jim = stage.connect(room_claims("jim")).await;
    let mut pam = stage.connect(room_claims("pam")).await;
    let expected = |uid: &str| {
        json!({"event": "hotsock.subscribed", "channel": ROOM, "data": {},
               "meta": {"uid": uid, "umd": null, "channelAlias": "room"}})
    };
    // By the alias and by the real name alike.
    assert_eq!(jim.subscribe("room").await, expected("jim"));
    assert_eq!(pam.subscribe(ROOM).await, expected("pam"));

    pam.send(json!({"channel": ROOM, "event": "msg", "data": 1}))
        .await;
    assert_eq!(jim.expect_event("msg").await["channel"], ROOM);
    jim.send(json!({"channel": "room", "event": "msg", "data": 2}))
        .await;
    let got = pam.expect_event("msg").await;
    assert_eq!(
        (got["channel"].as_str(), &got["data"]),
        (Some(ROOM), &json!(2))
    );
    // No echo: the marker after it on the channel is Jim's next frame.
    stage.publish_marker(ROOM).await;
    jim.expect_next_event("marker").await;

    jim.send(json!({"event": "hotsock.unsubscribe", "channel": "room"}))
        .await;
    assert_eq!(
        jim.expect_event("hotsock.unsubscribed").await,
        json!({"event": "hotsock.unsubscribed", "channel": ROOM, "data": {},
               "meta": {"uid": "jim", "umd": null, "channelAlias": "room"}})
    );
    // Only the real channel has items.
    assert_eq!(
        stage
            .items_with_pk_prefix(&format!("CHAN#{ROOM}"))
            .await
            .len(),
        2
    );
    assert!(stage.items_with_pk_prefix("CHAN#room").await.is_empty());
}

/// The case that breaks the real client when the shape is wrong: a handler
/// bound on the alias of an auto-subscribed channel. Each message arrives once,
/// under the real name, after a subscribed frame that maps it to the alias.
#[tokio::test]
async fn auto_subscribed_aliases_need_no_subscribe_grant() {
    let stage = TestStage::start().await;
    let mut jim = stage
        .connect(json!({"scope": "connect", "uid": "jim", "channels": {
            "notifications-jim": {"alias": "notifications", "autoSubscribe": true}
        }}))
        .await;
    assert_eq!(
        jim.expect_event("hotsock.subscribed").await,
        json!({"event": "hotsock.subscribed", "channel": "notifications-jim",
               "data": {"autoSubscribed": true},
               "meta": {"uid": "jim", "umd": null, "channelAlias": "notifications"}})
    );
    for n in 1..=2 {
        let (status, _) = stage
            .server_publish(
                json!({"channel": "notifications-jim", "event": "notification", "data": n}),
            )
            .await;
        assert_eq!(status, 202);
        let got = jim.expect_event("notification").await;
        assert_eq!(got["channel"], "notifications-jim");
        assert_eq!(got["data"], n);
    }
    // Each arrived once: a second copy would come before the marker.
    stage.publish_marker("notifications-jim").await;
    jim.expect_next_event("marker").await;
}

fn game_token(client: &Client, uid: &str) -> String {
    sign(
        json!({"scope": "subscribe", "connectionId": client.connection_id, "uid": uid,
        "channels": {"presence.game-9": {"alias": "game", "subscribe": true, "historyStart": 0,
            "messages": {"move": {"publish": true, "store": 600, "react": true}}}}}),
    )
}

async fn join_game(client: &mut Client, uid: &str) -> Value {
    let token = game_token(client, uid);
    client
        .send(json!({"event": "hotsock.subscribe", "channel": "game", "data": {"token": token}}))
        .await;
    client.expect_event("hotsock.subscribed").await
}

/// An alias that only a subscribe token defines works for every later command
/// of that connection: publish, reactions, listMessages, listReactions,
/// unsubscribe; member and reaction events name the real channel.
#[tokio::test]
async fn subscribe_token_aliases_resolve_for_every_command() {
    let stage = TestStage::start().await;
    let mut jim = stage
        .connect(json!({"scope": "connect", "uid": "jim"}))
        .await;
    let mut pam = stage
        .connect(json!({"scope": "connect", "uid": "pam"}))
        .await;
    let joined = join_game(&mut jim, "jim").await;
    assert_eq!(joined["channel"], "presence.game-9");
    assert_eq!(joined["meta"]["channelAlias"], "game");
    assert_eq!(
        joined["data"]["members"],
        json!([{"uid": "jim", "umd": null}])
    );
    join_game(&mut pam, "pam").await;
    let added = jim.expect_event("hotsock.memberAdded").await;
    assert_eq!(added["channel"], "presence.game-9");

    jim.send(json!({"channel": "game", "event": "move", "data": "e4"}))
        .await;
    let got = pam.expect_event("move").await;
    assert_eq!(got["channel"], "presence.game-9");
    let id = got["id"].as_str().expect("stored id").to_owned();

    let (status, page) = stage
        .connection_api(&pam, "listMessages", json!({"channel": "game"}))
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["messages"][0]["id"], id.as_str());
    assert_eq!(page["messages"][0]["channel"], "presence.game-9");

    pam.send(
        json!({"event": "hotsock.messageReaction", "channel": "game",
        "data": {"messageId": id, "reaction": "🔥", "action": "add"}}),
    )
    .await;
    let reaction = jim.expect_event("hotsock.messageReactionAdded").await;
    assert_eq!(reaction["channel"], "presence.game-9");
    let (status, list) = stage
        .connection_api(
            &jim,
            "listReactions",
            json!({"channel": "game", "messageId": id}),
        )
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["reactions"], json!([{"reaction": "🔥", "uid": "pam"}]));

    pam.send(json!({"event": "hotsock.unsubscribe", "channel": "game"}))
        .await;
    let left = pam.expect_event("hotsock.unsubscribed").await;
    assert_eq!(
        (
            left["channel"].as_str(),
            left["meta"]["channelAlias"].as_str()
        ),
        (Some("presence.game-9"), Some("game"))
    );
    assert_eq!(
        jim.expect_event("hotsock.memberRemoved").await["channel"],
        "presence.game-9"
    );
    // Gone with the subscription: the alias names nothing any more.
    let (status, body) = stage
        .connection_api(&pam, "listMessages", json!({"channel": "game"}))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "NOT_SUBSCRIBED");
    assert_eq!(body["error"]["channel"], "game");
}

#[tokio::test]
async fn an_alias_spelled_like_a_channel_of_its_token_is_refused() {
    let stage = TestStage::start().await;
    let clash = json!({"lobby": {"alias": "hall", "subscribe": true}, "hall": {"subscribe": true}});
    let refused = stage
        .try_connect(&sign(json!({"scope": "connect", "channels": clash})))
        .await
        .err()
        .expect("refused");
    assert_eq!(refused.0, 401);
    assert!(refused.1.contains("TOKEN_INVALID_CLAIMS"), "{}", refused.1);

    let mut jim = stage
        .connect(json!({"scope": "connect", "uid": "jim"}))
        .await;
    let token = sign(
        json!({"scope": "subscribe", "connectionId": jim.connection_id,
        "channels": clash}),
    );
    jim.send(json!({"event": "hotsock.subscribe", "channel": "hall", "data": {"token": token}}))
        .await;
    jim.expect_error("INVALID_SUBSCRIBE_TOKEN", Some("hall"))
        .await;
}

/// Errors name the channel as the client sent it, so a client can settle the
/// subscription it keeps under the alias.
#[tokio::test]
async fn errors_name_the_alias_the_client_used() {
    let stage = TestStage::start().await;
    let mut jim = stage
        .connect(json!({"scope": "connect", "uid": "jim", "channels": {
            "secret-1": {"alias": "secret", "subscribe": false}
        }}))
        .await;
    jim.send(json!({"event": "hotsock.subscribe", "channel": "secret"}))
        .await;
    jim.expect_error("SUBSCRIBE_PERMISSION_DENIED", Some("secret"))
        .await;
    jim.send(json!({"channel": "secret", "event": "msg", "data": 1}))
        .await;
    jim.expect_error("PUBLISH_PERMISSION_DENIED", Some("secret"))
        .await;
}

/// A real channel name takes priority over an alias of the same name, as
/// Hotsock documents: at subscribe, when the tokens allow subscribing to that
/// name as it is; afterwards, when the connection holds a subscription to it.
#[tokio::test]
async fn a_real_channel_name_takes_priority_over_an_alias_of_the_same_name() {
    let stage = TestStage::start().await;
    let mut jim = stage
        .connect(json!({"scope": "connect", "uid": "jim", "channels": {
            "room-*": {"subscribe": true},
            "room-1": {"subscribe": true, "alias": "room-lobby"}
        }}))
        .await;
    // "room-lobby" is a channel the wildcard grants, and room-1's alias.
    let real = jim.subscribe("room-lobby").await;
    assert_eq!(real["event"], "hotsock.subscribed", "{real}");
    assert_eq!(
        real["channel"], "room-lobby",
        "the real channel, not room-1"
    );
    assert!(real["meta"].get("channelAlias").is_none(), "{real}");
    let aliased = jim.subscribe("room-1").await;
    assert_eq!(aliased["meta"]["channelAlias"], "room-lobby");
    // Later commands: the subscription by that real name wins too.
    jim.send(json!({"event": "hotsock.unsubscribe", "channel": "room-lobby"}))
        .await;
    let left = jim.expect_event("hotsock.unsubscribed").await;
    assert_eq!(left["channel"], "room-lobby", "{left}");
    assert_eq!(stage.subscriptions_count("room-1").await, 1, "room-1 stays");
    // With no real subscription of that name left, the alias names room-1.
    jim.send(json!({"event": "hotsock.unsubscribe", "channel": "room-lobby"}))
        .await;
    let left = jim.expect_event("hotsock.unsubscribed").await;
    assert_eq!(left["channel"], "room-1", "{left}");
}
