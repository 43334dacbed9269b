//! Wire-frame contract tests: every server frame against the literal shapes in
//! docs/protocol.md: every client command, every parse error path, the name
//! boundaries and message id ordering.

// Test code: a panic is the failure report (clippy.toml allows unwrap in #[test]s, not helpers).
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use sockhop_core::clock::Timestamp;
use sockhop_core::error::{ErrorCode, ProtocolError};
use sockhop_core::ids::IdGenerator;
use sockhop_core::names::{self, *};
use sockhop_core::protocol::*;
use std::collections::HashSet;

const ULID: &str = "01ARZ3NDEKTSV4RRFFQ69G5FAV";

// ---------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------

/// Serializes, checks it is one JSON object on one line, compares to `expected`, and
/// checks the frame survives a round trip.
fn assert_frame(msg: &ServerMessage, expected: Value) {
    let text = msg.to_json();
    assert!(!text.contains('\n'), "one frame per line: {text}");
    let actual: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(actual, expected, "frame {text}");
    let back: ServerMessage = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, msg, "round trip of {text}");
}

fn meta(uid: &str, umd: Value) -> Meta {
    Meta::new(Some(uid.to_owned()), Some(umd))
}

fn parse_frame(v: Value) -> Result<ClientFrame, ProtocolError> {
    parse_client_frame(&v.to_string())
}

/// A frame that must be a command (not a keep-alive).
fn parse(v: Value) -> Result<ClientCommand, ProtocolError> {
    parse_frame(v).map(|frame| match frame {
        ClientFrame::Command(command) => command,
        keep_alive => panic!("a command, not {keep_alive:?}"),
    })
}

#[track_caller]
fn assert_err(v: Value, code: ErrorCode, channel: Option<&str>) -> ProtocolError {
    let err = parse(v.clone()).expect_err(&format!("{v} should fail"));
    assert_eq!(err.code, code, "{v}: {}", err.message);
    assert_eq!(err.channel.as_deref(), channel, "{v}: channel");
    assert!(!err.message.is_empty());
    err
}

#[track_caller]
fn assert_text_err(text: &str, code: ErrorCode) {
    let err = parse_client_frame(text).expect_err(text);
    assert_eq!(err.code, code, "{text:?}: {}", err.message);
    assert_eq!(err.channel, None);
}

/// A JSON string value whose serialized form (with quotes) is exactly `n` bytes.
fn string_of_serialized_len(n: usize) -> Value {
    let v = Value::String("x".repeat(n - 2));
    assert_eq!(serde_json::to_string(&v).unwrap().len(), n);
    v
}

// ---------------------------------------------------------------------------------
// server -> client frames
// ---------------------------------------------------------------------------------

#[test]
fn connected_matches_protocol_example() {
    let msg = ServerMessage::connected(
        "JCnTZd_KoAMCF-A=",
        "2026-11-22T20:09:23Z",
        "1FfpK4PHV1B7ZryUSCsN",
        Meta::new(Some("jim".into()), None),
    );
    let literal = r#"{"event":"hotsock.connected","data":{"connectionId":"JCnTZd_KoAMCF-A=","connectionExpiresAt":"2026-11-22T20:09:23Z","connectionSecret":"1FfpK4PHV1B7ZryUSCsN"},"meta":{"uid":"jim","umd":null}}"#;
    assert_frame(&msg, serde_json::from_str(literal).unwrap());
    assert_eq!(msg.meta().unwrap().uid.as_deref(), Some("jim"));
}

#[test]
fn connected_without_uid_still_has_meta_with_nulls() {
    let msg = ServerMessage::connected("c", "2026-01-01T00:00:00Z", "s", Meta::default());
    assert_frame(
        &msg,
        json!({
            "event": "hotsock.connected",
            "data": {"connectionId": "c", "connectionExpiresAt": "2026-01-01T00:00:00Z", "connectionSecret": "s"},
            "meta": {"uid": null, "umd": null}
        }),
    );
}

#[test]
fn connected_with_umd() {
    let msg = ServerMessage::connected("c", "t", "s", meta("jim", json!({"name": "Jim"})));
    assert_eq!(
        serde_json::from_str::<Value>(&msg.to_json()).unwrap()["meta"],
        json!({"uid": "jim", "umd": {"name": "Jim"}})
    );
}

#[test]
fn subscribed_plain() {
    let msg = ServerMessage::subscribed("chat", meta("U", json!({"m": 1})), None, false);
    assert_frame(
        &msg,
        json!({"event":"hotsock.subscribed","channel":"chat","data":{},"meta":{"uid":"U","umd":{"m":1}}}),
    );
}

#[test]
fn subscribed_without_uid_has_meta_and_data() {
    let msg = ServerMessage::subscribed("chat", Meta::default(), None, false);
    assert_frame(
        &msg,
        json!({"event":"hotsock.subscribed","channel":"chat","data":{},"meta":{"uid":null,"umd":null}}),
    );
}

#[test]
fn subscribed_presence_with_members() {
    let members = vec![
        Member::new("jim", Some(json!({"n": "Jim"}))),
        Member::new("pam", None),
    ];
    let msg = ServerMessage::subscribed(
        "presence.room",
        meta("jim", json!({"n": "Jim"})),
        Some(members),
        false,
    );
    assert_frame(
        &msg,
        json!({
            "event": "hotsock.subscribed",
            "channel": "presence.room",
            "data": {"members": [{"uid": "jim", "umd": {"n": "Jim"}}, {"uid": "pam", "umd": null}]},
            "meta": {"uid": "jim", "umd": {"n": "Jim"}}
        }),
    );
}

#[test]
fn subscribed_presence_empty_members_is_an_array() {
    let msg = ServerMessage::subscribed("presence.x", Meta::default(), Some(vec![]), false);
    let v: Value = serde_json::from_str(&msg.to_json()).unwrap();
    assert_eq!(v["data"], json!({"members": []}));
}

#[test]
fn subscribed_auto_with_alias() {
    let msg = ServerMessage::subscribed(
        "real-channel",
        Meta::new(Some("u".into()), None).with_alias("friendly"),
        None,
        true,
    );
    assert_frame(
        &msg,
        json!({
            "event": "hotsock.subscribed",
            "channel": "real-channel",
            "data": {"autoSubscribed": true},
            "meta": {"uid": "u", "umd": null, "channelAlias": "friendly"}
        }),
    );
}

#[test]
fn unsubscribed() {
    let msg = ServerMessage::unsubscribed("chat", meta("U", json!(null)));
    assert_frame(
        &msg,
        json!({"event":"hotsock.unsubscribed","channel":"chat","data":{},"meta":{"uid":"U","umd":null}}),
    );
}

#[test]
fn pong_keep_alive_ping_exact_text() {
    assert_eq!(
        ServerMessage::pong().to_json(),
        r#"{"event":"hotsock.pong","data":"{}"}"#
    );
    assert_eq!(
        ServerMessage::keep_alive().to_json(),
        r#"{"event":"hotsock.keepAlive","data":{}}"#
    );
    assert_eq!(
        ServerMessage::ping().to_json(),
        r#"{"event":"hotsock.ping","data":{}}"#
    );
    for msg in [
        ServerMessage::pong(),
        ServerMessage::keep_alive(),
        ServerMessage::ping(),
    ] {
        let back: ServerMessage = serde_json::from_str(&msg.to_json()).unwrap();
        assert_eq!(back, msg);
    }
}

#[test]
fn error_with_channel_exact_text() {
    let err = ProtocolError::new(ErrorCode::SubscribePermissionDenied, "not allowed")
        .with_channel("chat");
    let msg = ServerMessage::error(err);
    assert_eq!(
        msg.to_json(),
        r#"{"event":"hotsock.error","channel":"chat","data":{},"error":{"code":"SUBSCRIBE_PERMISSION_DENIED","message":"not allowed"}}"#
    );
    let back: ServerMessage = serde_json::from_str(&msg.to_json()).unwrap();
    assert_eq!(back, msg);
}

#[test]
fn error_without_channel() {
    let msg = ServerMessage::error(ProtocolError::new(ErrorCode::InvalidMessage, "bad"));
    assert_frame(
        &msg,
        json!({"event":"hotsock.error","data":{},"error":{"code":"INVALID_MESSAGE","message":"bad"}}),
    );
}

#[test]
fn error_frames_for_the_codes_hotsock_js_acts_on() {
    for (code, wire) in [
        (
            ErrorCode::SubscribePermissionDenied,
            "SUBSCRIBE_PERMISSION_DENIED",
        ),
        (ErrorCode::InvalidSubscribeToken, "INVALID_SUBSCRIBE_TOKEN"),
        (ErrorCode::AlreadySubscribed, "ALREADY_SUBSCRIBED"),
        (ErrorCode::NotSubscribed, "NOT_SUBSCRIBED"),
    ] {
        let msg = ServerMessage::error(ProtocolError::new(code, "m").with_channel("c"));
        let v: Value = serde_json::from_str(&msg.to_json()).unwrap();
        assert_eq!(v["error"]["code"], wire);
        assert_eq!(v["channel"], "c");
        assert_eq!(v["data"], json!({}));
    }
}

#[test]
fn published_message_with_meta() {
    let msg = ServerMessage::message(
        ULID,
        "chat.message",
        "chat",
        json!({"text": "hi"}),
        Some(meta("jim", json!(null))),
    );
    assert_frame(
        &msg,
        json!({"id": ULID, "event": "chat.message", "channel": "chat", "data": {"text": "hi"}, "meta": {"uid": "jim", "umd": null}}),
    );
}

#[test]
fn published_message_from_server_has_no_meta() {
    let msg = ServerMessage::message(ULID, "e", "c", json!([1, 2]), None);
    assert_frame(
        &msg,
        json!({"id": ULID, "event": "e", "channel": "c", "data": [1, 2]}),
    );
}

#[test]
fn published_message_with_null_data_keeps_data_field() {
    let msg = ServerMessage::message(ULID, "e", "c", Value::Null, None);
    let v: Value = serde_json::from_str(&msg.to_json()).unwrap();
    assert!(v.as_object().unwrap().contains_key("data"));
    assert_eq!(v["data"], Value::Null);
}

#[test]
fn member_frames_carry_member_and_members() {
    let jim = Member::new("jim", Some(json!({"n": 1})));
    let pam = Member::new("pam", None);
    let cases = [
        (
            ServerMessage::member_added("presence.r", pam.clone(), vec![jim.clone(), pam.clone()]),
            "hotsock.memberAdded",
            json!([{"uid": "jim", "umd": {"n": 1}}, {"uid": "pam", "umd": null}]),
        ),
        (
            ServerMessage::member_updated(
                "presence.r",
                pam.clone(),
                vec![jim.clone(), pam.clone()],
            ),
            "hotsock.memberUpdated",
            json!([{"uid": "jim", "umd": {"n": 1}}, {"uid": "pam", "umd": null}]),
        ),
        (
            ServerMessage::member_removed("presence.r", pam.clone(), vec![jim.clone()]),
            "hotsock.memberRemoved",
            json!([{"uid": "jim", "umd": {"n": 1}}]),
        ),
    ];
    for (msg, event, members) in cases {
        assert_frame(
            &msg,
            json!({
                "event": event,
                "channel": "presence.r",
                "data": {"member": {"uid": "pam", "umd": null}, "members": members}
            }),
        );
    }
}

#[test]
fn member_removed_last_member_has_empty_members() {
    let msg = ServerMessage::member_removed("presence.r", Member::new("a", None), vec![]);
    let v: Value = serde_json::from_str(&msg.to_json()).unwrap();
    assert_eq!(v["data"]["members"], json!([]));
}

#[test]
fn reaction_frames() {
    let id = "01ARZ3NDEKTSV4RRFFQ69G5FAW";
    let added = ServerMessage::reaction(id, true, "chat", ULID, "👍", meta("jim", json!(null)));
    assert_frame(
        &added,
        json!({
            "id": id,
            "event": "hotsock.messageReactionAdded",
            "channel": "chat",
            "data": {"messageId": ULID, "reaction": "👍", "action": "add"},
            "meta": {"uid": "jim", "umd": null}
        }),
    );
    let removed =
        ServerMessage::reaction(id, false, "chat", ULID, "👍", meta("jim", json!({"a": 1})));
    assert_frame(
        &removed,
        json!({
            "id": id,
            "event": "hotsock.messageReactionRemoved",
            "channel": "chat",
            "data": {"messageId": ULID, "reaction": "👍", "action": "remove"},
            "meta": {"uid": "jim", "umd": {"a": 1}}
        }),
    );
}

#[test]
fn storage_updated_frame() {
    let msg =
        ServerMessage::storage_updated("doc", "title", json!("Hello"), meta("jim", json!(null)));
    assert_frame(
        &msg,
        json!({"event": "hotsock.channelStorageUpdated", "channel": "doc", "key": "title", "data": "Hello", "meta": {"uid": "jim", "umd": null}}),
    );
}

#[test]
fn storage_updated_by_server_has_null_uid() {
    let msg = ServerMessage::storage_updated("doc", "k", json!({"x": 1}), Meta::default());
    let v: Value = serde_json::from_str(&msg.to_json()).unwrap();
    assert_eq!(v["meta"], json!({"uid": null, "umd": null}));
}

#[test]
fn storage_data_set_and_unset() {
    let set = ServerMessage::storage_data(
        "doc",
        "k",
        Some(json!({"v": 2})),
        Some(meta("u", json!(null))),
    );
    assert_frame(
        &set,
        json!({"event": "hotsock.channelStorageData", "channel": "doc", "key": "k", "data": {"v": 2}, "meta": {"uid": "u", "umd": null}}),
    );
    let unset = ServerMessage::storage_data("doc", "k", None, None);
    assert_frame(
        &unset,
        json!({"event": "hotsock.channelStorageData", "channel": "doc", "key": "k", "data": null, "meta": null}),
    );
    assert_eq!(unset.meta, Some(None));
    assert!(unset.meta().is_none());
}

#[test]
fn deserialize_distinguishes_absent_and_null_meta() {
    let absent: ServerMessage = serde_json::from_str(r#"{"event":"e","data":{}}"#).unwrap();
    assert_eq!(absent.meta, None);
    let null: ServerMessage =
        serde_json::from_str(r#"{"event":"e","data":{},"meta":null}"#).unwrap();
    assert_eq!(null.meta, Some(None));
}

#[test]
fn meta_new_normalizes_null_umd() {
    assert_eq!(
        Meta::new(Some("u".into()), Some(Value::Null)),
        Meta::new(Some("u".into()), None)
    );
}

#[test]
fn rfc3339_formatting() {
    assert_eq!(
        format_rfc3339_utc(1_795_378_163).as_deref(),
        Some("2026-11-22T20:09:23Z")
    );
    assert_eq!(
        format_rfc3339_utc(0).as_deref(),
        Some("1970-01-01T00:00:00Z")
    );
    assert_eq!(format_rfc3339_utc(i64::MAX), None);
    // The ends of RFC 3339's four-digit years.
    assert_eq!(
        format_rfc3339_utc(253_402_300_799).as_deref(),
        Some("9999-12-31T23:59:59Z")
    );
    assert_eq!(format_rfc3339_utc(253_402_300_800), None);
    assert_eq!(
        format_rfc3339_utc(-62_167_219_200).as_deref(),
        Some("0000-01-01T00:00:00Z")
    );
    assert_eq!(format_rfc3339_utc(-62_167_219_201), None);
    assert_eq!(format_rfc3339_utc(i64::MIN), None);
}

// ---------------------------------------------------------------------------------
// client -> server: every command of docs/protocol.md
// ---------------------------------------------------------------------------------

#[test]
fn parse_subscribe() {
    assert_eq!(
        parse(json!({"event": "hotsock.subscribe", "channel": "chat"})).unwrap(),
        ClientCommand::Subscribe {
            channel: "chat".into(),
            token: None,
            resume: None
        }
    );
    assert_eq!(
        parse(json!({"event": "hotsock.subscribe", "channel": "chat", "data": {"token": "a.b.c"}}))
            .unwrap(),
        ClientCommand::Subscribe {
            channel: "chat".into(),
            token: Some("a.b.c".into()),
            resume: None
        }
    );
}

#[test]
fn parse_subscribe_tolerates_empty_or_null_data() {
    for data in [json!(null), json!({}), json!({"token": null})] {
        assert_eq!(
            parse(json!({"event": "hotsock.subscribe", "channel": "c", "data": data})).unwrap(),
            ClientCommand::Subscribe {
                channel: "c".into(),
                token: None,
                resume: None
            }
        );
    }
}

#[test]
fn parse_subscribe_resume() {
    let resume = |value: serde_json::Value| {
        parse(json!({"event": "hotsock.subscribe", "channel": "c", "data": {"resume": value}}))
    };
    let id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let asked = |r| ClientCommand::Subscribe {
        channel: "c".into(),
        token: None,
        resume: r,
    };
    assert_eq!(resume(json!(true)).unwrap(), asked(Some(Resume::Start)));
    assert_eq!(resume(json!(false)).unwrap(), asked(None));
    assert_eq!(resume(json!(null)).unwrap(), asked(None));
    assert_eq!(
        resume(json!({"position": id})).unwrap(),
        asked(Some(Resume::After(Since::position(id))))
    );
    assert_eq!(
        resume(json!({"position": id.to_lowercase()})).unwrap(),
        asked(Some(Resume::After(Since::position(id)))),
        "a ULID is read in either case"
    );
    // A member event's or a storage update's position: a step after a ULID.
    let step = format!("{id}.000002");
    assert_eq!(
        resume(json!({"position": step, "connectionIds": ["c1", "c2"]})).unwrap(),
        asked(Some(Resume::After(Since {
            position: step.clone(),
            connections: vec!["c1".into(), "c2".into()],
        })))
    );
    let too_many: Vec<String> = (0..11).map(|i| format!("c{i}")).collect();
    for bad in [
        json!({"position": "nope"}),
        json!({"position": 5}),
        json!({"position": format!("{id}.2")}),
        json!({"position": id, "connectionIds": "c1"}),
        json!({"position": id, "connectionIds": [1]}),
        json!({"position": id, "connectionIds": [""]}),
        json!({"position": id, "connectionIds": too_many}),
        json!({}),
        json!("01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        json!(1),
    ] {
        let err = resume(bad.clone()).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidResumePosition, "{bad}");
        assert_eq!(
            err.channel.as_deref(),
            Some("c"),
            "{bad}: the channel is named"
        );
    }
}

#[test]
fn parse_exact_hotsock_js_frames() {
    // What hotsock-js sends, byte for byte (JSON.stringify drops undefined fields).
    assert_eq!(
        parse_client_frame(r#"{"event":"hotsock.subscribe","channel":"my-channel"}"#).unwrap(),
        ClientFrame::Command(ClientCommand::Subscribe {
            channel: "my-channel".into(),
            token: None,
            resume: None
        })
    );
    assert_eq!(
        parse_client_frame(r#"{"event":"hotsock.unsubscribe","channel":"my-channel"}"#).unwrap(),
        ClientFrame::Command(ClientCommand::Unsubscribe {
            channel: "my-channel".into()
        })
    );
    assert_eq!(
        parse_client_frame(r#"{"event":"hotsock.pong"}"#).unwrap(),
        ClientFrame::Pong
    );
    assert_eq!(
        parse_client_frame(r#"{"channel":"my-channel","event":"my-event","data":{"a":1}}"#)
            .unwrap(),
        ClientFrame::Command(ClientCommand::Publish {
            channel: "my-channel".into(),
            event: "my-event".into(),
            data: json!({"a": 1}),
            eager_id: false,
            schedule: None
        })
    );
}

#[test]
fn parse_unsubscribe() {
    assert_eq!(
        parse(json!({"event": "hotsock.unsubscribe", "channel": "chat"})).unwrap(),
        ClientCommand::Unsubscribe {
            channel: "chat".into()
        }
    );
}

#[test]
fn parse_ping_heartbeat_pong_ignore_other_fields() {
    assert_eq!(
        parse_frame(json!({"event": "hotsock.ping"})).unwrap(),
        ClientFrame::Ping
    );
    assert_eq!(
        parse(json!({"event": "hotsock.heartbeat"})).unwrap(),
        ClientCommand::Heartbeat
    );
    assert_eq!(
        parse_frame(json!({"event": "hotsock.pong"})).unwrap(),
        ClientFrame::Pong
    );
    assert_eq!(
        parse_frame(json!({"event": "hotsock.ping", "channel": 5, "data": "x"})).unwrap(),
        ClientFrame::Ping
    );
}

#[test]
fn parse_publish() {
    assert_eq!(
        parse(json!({"channel": "chat", "event": "msg", "data": {"text": "hi"}})).unwrap(),
        ClientCommand::Publish {
            channel: "chat".into(),
            event: "msg".into(),
            data: json!({"text": "hi"}),
            eager_id: false,
            schedule: None
        }
    );
}

#[test]
fn parse_publish_without_data_is_null() {
    assert_eq!(
        parse(json!({"channel": "chat", "event": "typing"})).unwrap(),
        ClientCommand::Publish {
            channel: "chat".into(),
            event: "typing".into(),
            data: Value::Null,
            eager_id: false,
            schedule: None
        }
    );
}

#[test]
fn parse_publish_ignores_unknown_fields() {
    assert_eq!(
        parse(json!({"channel": "c", "event": "e", "data": 1, "extra": {"x": 1}, "id": "nope"}))
            .unwrap(),
        ClientCommand::Publish {
            channel: "c".into(),
            event: "e".into(),
            data: json!(1),
            eager_id: false,
            schedule: None
        }
    );
}

#[test]
fn parse_message_reaction_add_and_remove() {
    for (action, expected) in [
        ("add", ReactionAction::Add),
        ("remove", ReactionAction::Remove),
    ] {
        assert_eq!(
            parse(json!({
                "event": "hotsock.messageReaction",
                "channel": "chat",
                "data": {"messageId": ULID, "reaction": "👍", "action": action}
            }))
            .unwrap(),
            ClientCommand::MessageReaction {
                channel: "chat".into(),
                message_id: ULID.into(),
                reaction: "👍".into(),
                action: expected
            }
        );
    }
}

#[test]
fn parse_message_reaction_canonicalizes_message_id() {
    let cmd = parse(json!({
        "event": "hotsock.messageReaction",
        "channel": "chat",
        "data": {"messageId": ULID.to_lowercase(), "reaction": "x", "action": "add"}
    }))
    .unwrap();
    let ClientCommand::MessageReaction { message_id, .. } = cmd else {
        panic!("not a reaction")
    };
    assert_eq!(message_id, ULID);
}

#[test]
fn parse_channel_storage_set() {
    assert_eq!(
        parse(json!({"event": "hotsock.channelStorageSet", "channel": "doc", "key": "title", "data": {"t": "x"}}))
            .unwrap(),
        ClientCommand::ChannelStorageSet {
            channel: "doc".into(),
            key: "title".into(),
            data: json!({"t": "x"}),
            schedule: None
        }
    );
    // null, {} and absent data all mean "clear"; the handler decides, the parser keeps them.
    for (data, expected) in [(json!(null), json!(null)), (json!({}), json!({}))] {
        assert_eq!(
            parse(json!({"event": "hotsock.channelStorageSet", "channel": "doc", "key": "k", "data": data}))
                .unwrap(),
            ClientCommand::ChannelStorageSet {
                channel: "doc".into(),
                key: "k".into(),
                data: expected,
            schedule: None
            }
        );
    }
    assert_eq!(
        parse(json!({"event": "hotsock.channelStorageSet", "channel": "doc", "key": "k"})).unwrap(),
        ClientCommand::ChannelStorageSet {
            channel: "doc".into(),
            key: "k".into(),
            data: Value::Null,
            schedule: None
        }
    );
}

#[test]
fn parse_channel_storage_get() {
    assert_eq!(
        parse(json!({"event": "hotsock.channelStorageGet", "channel": "doc", "key": "title"}))
            .unwrap(),
        ClientCommand::ChannelStorageGet {
            channel: "doc".into(),
            key: "title".into()
        }
    );
}

#[test]
fn parse_umd_update() {
    assert_eq!(
        parse(json!({"event": "hotsock.umdUpdate", "data": {"token": "a.b.c"}})).unwrap(),
        ClientCommand::UmdUpdate {
            channel: None,
            token: "a.b.c".into()
        }
    );
    assert_eq!(
        parse(json!({"event": "hotsock.umdUpdate", "channel": "presence.r", "data": {"token": "a.b.c"}}))
            .unwrap(),
        ClientCommand::UmdUpdate {
            channel: Some("presence.r".into()),
            token: "a.b.c".into()
        }
    );
    assert_eq!(
        parse(json!({"event": "hotsock.umdUpdate", "channel": null, "data": {"token": "t"}}))
            .unwrap(),
        ClientCommand::UmdUpdate {
            channel: None,
            token: "t".into()
        }
    );
}

#[test]
fn command_channel_accessor() {
    let cases = [
        (
            json!({"event": "hotsock.subscribe", "channel": "a"}),
            Some("a"),
        ),
        (
            json!({"event": "hotsock.unsubscribe", "channel": "b"}),
            Some("b"),
        ),
        (json!({"event": "e", "channel": "c"}), Some("c")),
        (
            json!({"event": "hotsock.channelStorageGet", "channel": "d", "key": "k"}),
            Some("d"),
        ),
        (
            json!({"event": "hotsock.channelStorageSet", "channel": "e", "key": "k"}),
            Some("e"),
        ),
        (
            json!({"event": "hotsock.messageReaction", "channel": "f", "data": {"messageId": ULID, "reaction": "r", "action": "add"}}),
            Some("f"),
        ),
        (
            json!({"event": "hotsock.umdUpdate", "data": {"token": "t"}}),
            None,
        ),
        (json!({"event": "hotsock.heartbeat"}), None),
    ];
    for (frame, channel) in cases {
        assert_eq!(parse(frame.clone()).unwrap().channel(), channel, "{frame}");
    }
}

#[test]
fn parse_client_value_accepts_decoded_objects() {
    assert_eq!(
        parse_client_value(json!({"event": "hotsock.ping"})).unwrap(),
        ClientFrame::Ping
    );
    assert_eq!(
        parse_client_value(json!([1])).unwrap_err().code,
        ErrorCode::InvalidMessage
    );
}

// ---------------------------------------------------------------------------------
// client -> server: error paths
// ---------------------------------------------------------------------------------

#[test]
fn not_json_or_not_object() {
    for text in [
        "",
        " ",
        "not json",
        "{",
        "{\"event\":",
        "[]",
        "[{}]",
        "1",
        "\"x\"",
        "null",
        "true",
        "{\"event\":\"hotsock.ping\"} {}",
        "\u{feff}{}",
    ] {
        assert_text_err(text, ErrorCode::InvalidMessage);
    }
}

#[test]
fn deeply_nested_json_is_rejected_not_a_stack_overflow() {
    let depth = 20_000;
    let text = format!(
        r#"{{"event":"e","channel":"c","data":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let err = parse_client_frame(&text).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidMessage);
    // Beyond the frame limit the parser never even looks at the nesting.
    let depth = 100_000;
    let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert_text_err(&text, ErrorCode::MessageTooLarge);
}

#[test]
fn frame_size_limit() {
    let pad = |n: usize| {
        let base = r#"{"event":"hotsock.ping","x":""}"#.len();
        format!(
            r#"{{"event":"hotsock.ping","x":"{}"}}"#,
            "a".repeat(n - base)
        )
    };
    assert_eq!(pad(MAX_FRAME_BYTES).len(), MAX_FRAME_BYTES);
    assert_eq!(
        parse_client_frame(&pad(MAX_FRAME_BYTES)).unwrap(),
        ClientFrame::Ping
    );
    assert_text_err(&pad(MAX_FRAME_BYTES + 1), ErrorCode::MessageTooLarge);
}

#[test]
fn missing_or_bad_event() {
    assert_err(json!({}), ErrorCode::InvalidEvent, None);
    assert_err(json!({"channel": "c"}), ErrorCode::InvalidEvent, Some("c"));
    assert_err(
        json!({"channel": "c", "event": null}),
        ErrorCode::InvalidEvent,
        Some("c"),
    );
    assert_err(
        json!({"channel": "c", "event": ""}),
        ErrorCode::InvalidEvent,
        Some("c"),
    );
    for bad in [json!(5), json!(true), json!({}), json!(["e"])] {
        assert_err(
            json!({"channel": "c", "event": bad}),
            ErrorCode::InvalidMessage,
            Some("c"),
        );
    }
}

#[test]
fn unknown_hotsock_commands() {
    for event in [
        "hotsock.",
        "hotsock.nope",
        "hotsock.connected",
        "hotsock.subscribed",
        "hotsock.error",
        "hotsock.keepAlive",
        "hotsock.channelStorageUpdated",
        "hotsock.Subscribe",
        "hotsock.subscribe ",
    ] {
        assert_err(
            json!({"event": event, "channel": "c"}),
            ErrorCode::UnknownCommand,
            Some("c"),
        );
        assert_err(json!({"event": event}), ErrorCode::UnknownCommand, None);
    }
}

#[test]
fn channel_errors_for_every_channel_command() {
    let frames = [
        json!({"event": "hotsock.subscribe"}),
        json!({"event": "hotsock.unsubscribe"}),
        json!({"event": "e", "data": 1}),
        json!({"event": "hotsock.messageReaction", "data": {"messageId": ULID, "reaction": "r", "action": "add"}}),
        json!({"event": "hotsock.channelStorageSet", "key": "k", "data": 1}),
        json!({"event": "hotsock.channelStorageGet", "key": "k"}),
    ];
    for frame in frames {
        // missing
        assert_err(frame.clone(), ErrorCode::InvalidChannel, None);
        // null
        let mut f = frame.clone();
        f["channel"] = Value::Null;
        assert_err(f, ErrorCode::InvalidChannel, None);
        // wrong type: no string channel to carry
        for bad in [json!(5), json!(["c"]), json!({"c": 1}), json!(false)] {
            let mut f = frame.clone();
            f["channel"] = bad;
            assert_err(f, ErrorCode::InvalidMessage, None);
        }
        // invalid names are carried back verbatim so the client can settle state
        for bad in ["", "a b", "a*", "#x", "a,b", "a\nb", &"x".repeat(257)] {
            let mut f = frame.clone();
            f["channel"] = json!(bad);
            assert_err(f, ErrorCode::InvalidChannel, Some(bad));
        }
    }
}

#[test]
fn umd_update_channel_errors() {
    assert_err(
        json!({"event": "hotsock.umdUpdate", "channel": "a b", "data": {"token": "t"}}),
        ErrorCode::InvalidChannel,
        Some("a b"),
    );
    assert_err(
        json!({"event": "hotsock.umdUpdate", "channel": 1, "data": {"token": "t"}}),
        ErrorCode::InvalidMessage,
        None,
    );
}

#[test]
fn subscribe_token_errors() {
    for token in [json!(""), json!(5), json!({}), json!(["t"]), json!(true)] {
        assert_err(
            json!({"event": "hotsock.subscribe", "channel": "c", "data": {"token": token}}),
            ErrorCode::InvalidSubscribeToken,
            Some("c"),
        );
    }
    for data in [json!("token"), json!(5), json!(["t"])] {
        assert_err(
            json!({"event": "hotsock.subscribe", "channel": "c", "data": data}),
            ErrorCode::InvalidMessage,
            Some("c"),
        );
    }
}

#[test]
fn umd_token_errors() {
    for data in [
        json!(null),
        json!({}),
        json!({"token": null}),
        json!({"token": ""}),
        json!({"token": 1}),
    ] {
        assert_err(
            json!({"event": "hotsock.umdUpdate", "channel": "c", "data": data}),
            ErrorCode::InvalidUmdToken,
            Some("c"),
        );
    }
    assert_err(
        json!({"event": "hotsock.umdUpdate"}),
        ErrorCode::InvalidUmdToken,
        None,
    );
    assert_err(
        json!({"event": "hotsock.umdUpdate", "data": "t"}),
        ErrorCode::InvalidMessage,
        None,
    );
}

#[test]
fn publish_event_errors() {
    for event in ["#x", "a*b", "*", &"e".repeat(129), &"é".repeat(129)] {
        assert_err(
            json!({"event": event, "channel": "c", "data": 1}),
            ErrorCode::InvalidEvent,
            Some("c"),
        );
    }
    // a `#` or `hotsock` inside the name is fine
    assert!(parse(json!({"event": "a#b", "channel": "c"})).is_ok());
    assert!(parse(json!({"event": "my.hotsock.thing", "channel": "c"})).is_ok());
    assert!(parse(json!({"event": "e".repeat(128), "channel": "c"})).is_ok());
    assert!(parse(json!({"event": "é".repeat(128), "channel": "c"})).is_ok());
}

#[test]
fn data_size_limits_on_publish_and_storage_set() {
    let ok = string_of_serialized_len(MAX_DATA_BYTES);
    let too_big = string_of_serialized_len(MAX_DATA_BYTES + 1);
    assert!(parse(json!({"event": "e", "channel": "c", "data": ok})).is_ok());
    assert_err(
        json!({"event": "e", "channel": "c", "data": too_big}),
        ErrorCode::MessageTooLarge,
        Some("c"),
    );
    assert!(parse(
        json!({"event": "hotsock.channelStorageSet", "channel": "c", "key": "k", "data": ok})
    )
    .is_ok());
    assert_err(
        json!({"event": "hotsock.channelStorageSet", "channel": "c", "key": "k", "data": too_big}),
        ErrorCode::MessageTooLarge,
        Some("c"),
    );
}

#[test]
fn data_size_counts_compact_serialization_not_input_text() {
    // Whitespace in the frame does not count; escapes do.
    let text = format!(
        r#"{{"event":"e","channel":"c","data":   "{}"   }}"#,
        "x".repeat(MAX_DATA_BYTES - 2)
    );
    assert!(parse_client_frame(&text).is_ok());
    let escaped = format!(
        r#"{{"event":"e","channel":"c","data":"{}\n"}}"#,
        "x".repeat(MAX_DATA_BYTES - 3)
    );
    assert_eq!(
        parse_client_frame(&escaped).unwrap_err().code,
        ErrorCode::MessageTooLarge
    );
}

#[test]
fn storage_key_errors() {
    for frame in [
        json!({"event": "hotsock.channelStorageSet", "channel": "c", "data": 1}),
        json!({"event": "hotsock.channelStorageGet", "channel": "c"}),
    ] {
        assert_err(frame.clone(), ErrorCode::InvalidStorageKey, Some("c"));
        let mut f = frame.clone();
        f["key"] = Value::Null;
        assert_err(f, ErrorCode::InvalidStorageKey, Some("c"));
        for bad in ["", "a b", "a*", "a#", "a,b", "a\tb", &"k".repeat(129)] {
            let mut f = frame.clone();
            f["key"] = json!(bad);
            assert_err(f, ErrorCode::InvalidStorageKey, Some("c"));
        }
        for bad in [json!(1), json!(["k"]), json!({})] {
            let mut f = frame.clone();
            f["key"] = bad;
            assert_err(f, ErrorCode::InvalidMessage, Some("c"));
        }
    }
}

#[test]
fn message_reaction_errors() {
    let frame =
        |data: Value| json!({"event": "hotsock.messageReaction", "channel": "c", "data": data});
    let c = Some("c");
    assert_err(
        json!({"event": "hotsock.messageReaction", "channel": "c"}),
        ErrorCode::InvalidMessage,
        c,
    );
    assert_err(frame(json!(null)), ErrorCode::InvalidMessage, c);
    assert_err(frame(json!("x")), ErrorCode::InvalidMessage, c);
    // messageId
    assert_err(
        frame(json!({"reaction": "r", "action": "add"})),
        ErrorCode::InvalidMessage,
        c,
    );
    assert_err(
        frame(json!({"messageId": 1, "reaction": "r", "action": "add"})),
        ErrorCode::InvalidMessage,
        c,
    );
    for bad in [
        "",
        "nope",
        "01ARZ3NDEKTSV4RRFFQ69G5FA",
        "01ARZ3NDEKTSV4RRFFQ69G5FAVX",
        "81ARZ3NDEKTSV4RRFFQ69G5FAV",
    ] {
        assert_err(
            frame(json!({"messageId": bad, "reaction": "r", "action": "add"})),
            ErrorCode::MessageNotFound,
            c,
        );
    }
    // reaction
    assert_err(
        frame(json!({"messageId": ULID, "action": "add"})),
        ErrorCode::InvalidReaction,
        c,
    );
    assert_err(
        frame(json!({"messageId": ULID, "reaction": null, "action": "add"})),
        ErrorCode::InvalidReaction,
        c,
    );
    assert_err(
        frame(json!({"messageId": ULID, "reaction": 1, "action": "add"})),
        ErrorCode::InvalidMessage,
        c,
    );
    for bad in ["", "  ", "\n", "a#", &"r".repeat(101)] {
        assert_err(
            frame(json!({"messageId": ULID, "reaction": bad, "action": "add"})),
            ErrorCode::InvalidReaction,
            c,
        );
    }
    // action
    for bad in [
        json!(null),
        json!("ADD"),
        json!("toggle"),
        json!(1),
        json!(true),
    ] {
        assert_err(
            frame(json!({"messageId": ULID, "reaction": "r", "action": bad})),
            ErrorCode::InvalidMessage,
            c,
        );
    }
    assert_err(
        frame(json!({"messageId": ULID, "reaction": "r"})),
        ErrorCode::InvalidMessage,
        c,
    );
    // channel first
    assert_err(
        json!({"event": "hotsock.messageReaction", "channel": "a b", "data": {}}),
        ErrorCode::InvalidChannel,
        Some("a b"),
    );
}

#[test]
fn errors_render_as_error_frames_with_channel() {
    let err = parse(json!({"event": "hotsock.subscribe", "channel": "bad channel"})).unwrap_err();
    let v: Value = serde_json::from_str(&ServerMessage::error(err).to_json()).unwrap();
    assert_eq!(v["event"], "hotsock.error");
    assert_eq!(v["channel"], "bad channel");
    assert_eq!(v["data"], json!({}));
    assert_eq!(v["error"]["code"], "INVALID_CHANNEL");
    assert!(v["error"]["message"].as_str().unwrap().contains("space"));
}

// ---------------------------------------------------------------------------------
// names (docs/protocol.md, "Names")
// ---------------------------------------------------------------------------------

#[track_caller]
fn code_of(r: Result<(), ProtocolError>) -> Option<ErrorCode> {
    r.err().map(|e| {
        assert!(!e.message.is_empty());
        assert_eq!(e.channel, None);
        e.code
    })
}

#[test]
fn channel_length_boundaries_count_chars() {
    assert_eq!(MAX_CHANNEL_LEN, 256);
    let bad = Some(ErrorCode::InvalidChannel);
    assert_eq!(code_of(validate_channel("")), bad);
    assert_eq!(code_of(validate_channel("a")), None);
    assert_eq!(code_of(validate_channel(&"a".repeat(256))), None);
    assert_eq!(code_of(validate_channel(&"a".repeat(257))), bad);
    // 256 two-byte chars (512 bytes) is still 256 chars
    assert_eq!(code_of(validate_channel(&"é".repeat(256))), None);
    assert_eq!(code_of(validate_channel(&"é".repeat(257))), bad);
    // Characters, not bytes, as Hotsock counts: 256 four-byte characters
    // (1,024 bytes) are a valid name; the store keeps such names under keys that
    // fit DynamoDB's limits (tests/tests/channels.rs).
    assert_eq!(code_of(validate_channel(&"😀".repeat(256))), None);
    assert_eq!(code_of(validate_channel(&"😀".repeat(257))), bad);
}

#[test]
fn channel_forbidden_chars() {
    for c in [
        '*', '#', ',', ' ', '\n', '\r', '\t', '\0', '\u{7f}', '\u{1b}', '\u{a0}', '\u{2028}',
        '\u{3000}',
    ] {
        for name in [
            format!("{c}"),
            format!("a{c}"),
            format!("{c}a"),
            format!("a{c}b"),
        ] {
            let err = validate_channel(&name).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidChannel, "{name:?}");
        }
    }
    let err = validate_channel("a b").unwrap_err();
    assert!(err.message.contains("space"), "{}", err.message);
    let err = validate_channel("a\nb").unwrap_err();
    assert!(err.message.contains("newline"), "{}", err.message);
    let err = validate_channel(&"a".repeat(300)).unwrap_err();
    assert!(err.message.contains("256"), "{}", err.message);
}

#[test]
fn channel_allowed_chars() {
    for name in [
        "chat",
        "presence.room-1",
        "a.b_c-d:e/f@g!h",
        "ünïcødé",
        "日本語",
        "😀",
        "UPPER.lower.123",
        "a=b&c?d",
    ] {
        assert!(validate_channel(name).is_ok(), "{name}");
    }
}

#[test]
fn presence_channels() {
    assert!(is_presence_channel("presence.room"));
    assert!(is_presence_channel("presence."));
    assert!(!is_presence_channel("presence"));
    assert!(!is_presence_channel("Presence.room"));
    assert!(!is_presence_channel("mypresence.room"));
    assert!(!is_presence_channel("chat"));
}

#[test]
fn event_rules() {
    assert_eq!(MAX_EVENT_LEN, 128);
    let bad = Some(ErrorCode::InvalidEvent);
    assert_eq!(code_of(validate_event("")), bad);
    assert_eq!(code_of(validate_event("e")), None);
    assert_eq!(code_of(validate_event(&"e".repeat(128))), None);
    assert_eq!(code_of(validate_event(&"e".repeat(129))), bad);
    assert_eq!(code_of(validate_event(&"ü".repeat(128))), None);
    assert_eq!(code_of(validate_event(&"ü".repeat(129))), bad);
    assert_eq!(code_of(validate_event("*")), bad);
    assert_eq!(code_of(validate_event("a*")), bad);
    assert_eq!(code_of(validate_event("#a")), bad);
    assert_eq!(code_of(validate_event("a#")), None);
    // The base rule allows the reserved namespace: tokens and server publishes use it.
    assert_eq!(code_of(validate_event("hotsock.messageReaction")), None);
    assert_eq!(
        code_of(validate_client_event("hotsock.messageReaction")),
        bad
    );
    assert_eq!(code_of(validate_client_event("hotsock.")), bad);
    assert_eq!(code_of(validate_client_event("hotsock")), None);
    assert_eq!(code_of(validate_client_event("Hotsock.x")), None);
    assert_eq!(code_of(validate_client_event("#a")), bad);
    assert_eq!(code_of(validate_client_event("chat.message")), None);
}

#[test]
fn storage_key_rules() {
    let bad = Some(ErrorCode::InvalidStorageKey);
    assert_eq!(code_of(validate_storage_key("")), bad);
    assert_eq!(code_of(validate_storage_key("k")), None);
    assert_eq!(code_of(validate_storage_key(&"k".repeat(128))), None);
    assert_eq!(code_of(validate_storage_key(&"k".repeat(129))), bad);
    assert_eq!(code_of(validate_storage_key(&"ß".repeat(128))), None);
    assert_eq!(code_of(validate_storage_key(&"ß".repeat(129))), bad);
    for c in ['*', '#', ',', ' ', '\n', '\t', '\r', '\0', '\u{a0}'] {
        assert_eq!(
            code_of(validate_storage_key(&format!("a{c}b"))),
            bad,
            "{c:?}"
        );
    }
    assert_eq!(code_of(validate_storage_key("doc.title-1:x")), None);
}

#[test]
fn reaction_rules_count_bytes() {
    let bad = Some(ErrorCode::InvalidReaction);
    assert_eq!(code_of(validate_reaction("👍")), None);
    assert_eq!(code_of(validate_reaction("thumbs up")), None);
    assert_eq!(code_of(validate_reaction("")), bad);
    assert_eq!(code_of(validate_reaction(" ")), bad);
    assert_eq!(code_of(validate_reaction("\t\n ")), bad);
    assert_eq!(code_of(validate_reaction("#")), bad);
    assert_eq!(code_of(validate_reaction("a#b")), bad);
    assert_eq!(code_of(validate_reaction(&"r".repeat(100))), None);
    assert_eq!(code_of(validate_reaction(&"r".repeat(101))), bad);
    // 25 four-byte emoji = 100 bytes; 26 = 104 bytes
    assert_eq!(code_of(validate_reaction(&"😀".repeat(25))), None);
    assert_eq!(code_of(validate_reaction(&"😀".repeat(26))), bad);
}

#[test]
fn data_size_boundary() {
    assert_eq!(MAX_DATA_BYTES, 32768);
    assert_eq!(
        code_of(validate_data_size(&string_of_serialized_len(32768))),
        None
    );
    assert_eq!(
        code_of(validate_data_size(&string_of_serialized_len(32769))),
        Some(ErrorCode::MessageTooLarge)
    );
    assert_eq!(code_of(validate_data_size(&Value::Null)), None);
    // Multibyte chars count as their UTF-8 bytes.
    let v = json!("é".repeat(16383)); // 32766 bytes + 2 quotes
    assert_eq!(names::json_size(&v), 32768);
    assert_eq!(code_of(validate_data_size(&v)), None);
    let v = json!({"a": "x".repeat(32760)});
    assert_eq!(names::json_size(&v), 32760 + 8);
    assert_eq!(code_of(validate_data_size(&v)), None);
    let v = json!({"a": "x".repeat(32761)});
    assert_eq!(
        code_of(validate_data_size(&v)),
        Some(ErrorCode::MessageTooLarge)
    );
}

#[test]
fn umd_size_boundary() {
    assert_eq!(MAX_UMD_BYTES, 1024);
    assert_eq!(
        code_of(validate_umd_size(&string_of_serialized_len(1024))),
        None
    );
    assert_eq!(
        code_of(validate_umd_size(&string_of_serialized_len(1025))),
        Some(ErrorCode::UmdTooLarge)
    );
}

#[test]
fn other_limits() {
    assert_eq!(MAX_UID_CHARS, 128);
    assert_eq!(MAX_PRESENCE_MEMBERS_BYTES, 100_000);
    assert_eq!(MAX_STORAGE_KEY_LEN, 128);
    assert_eq!(MAX_REACTION_BYTES, 100);
    assert_eq!(MAX_FRAME_BYTES, 131_072);
}

// ---------------------------------------------------------------------------------
// error codes
// ---------------------------------------------------------------------------------

#[test]
fn error_code_wire_strings_match_serde() {
    let mut seen = HashSet::new();
    for code in ErrorCode::ALL {
        let wire = code.as_str();
        assert!(seen.insert(wire), "duplicate {wire}");
        assert_eq!(serde_json::to_value(code).unwrap(), json!(wire));
        assert_eq!(
            serde_json::from_value::<ErrorCode>(json!(wire)).unwrap(),
            *code
        );
        assert_eq!(code.to_string(), wire);
        assert!(wire.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
        assert!(matches!(
            code.http_status(),
            400 | 401 | 403 | 404 | 409 | 413 | 500
        ));
    }
}

#[test]
fn error_code_statuses() {
    use ErrorCode::*;
    let expected = [
        (SubscribePermissionDenied, 403),
        (InvalidSubscribeToken, 401),
        (AlreadySubscribed, 409),
        (NotSubscribed, 403),
        (PresenceChannelUserIdRequired, 403),
        (PresenceChannelCapacityReached, 409),
        (InvalidMessage, 400),
        (UnknownCommand, 400),
        (InvalidChannel, 400),
        (InvalidEvent, 400),
        (InvalidStorageKey, 400),
        (InvalidReaction, 400),
        (MessageTooLarge, 413),
        (UmdTooLarge, 413),
        (PublishPermissionDenied, 403),
        (ReactionNotAllowed, 403),
        (MessageNotFound, 404),
        (ReactionUserIdRequired, 403),
        (StoragePermissionDenied, 403),
        (InvalidUmdToken, 401),
        (UmdUpdateNotAllowed, 403),
        (GetInfoPermissionDenied, 403),
        (InvalidScheduleExpression, 400),
        (InvalidScheduleTimezone, 400),
        (ScheduleInPast, 400),
        (SchedulePermissionDenied, 403),
        (Unauthorized, 401),
        (Forbidden, 403),
        (NotFound, 404),
        (InvalidRequest, 400),
        (InvalidResumePosition, 400),
        (ResumePositionAhead, 400),
        (ResumePositionUnknown, 400),
        (InternalError, 500),
    ];
    assert_eq!(expected.len(), ErrorCode::ALL.len());
    for (code, status) in expected {
        assert_eq!(code.http_status(), status, "{code}");
    }
}

#[test]
fn protocol_error_basics() {
    let e = ProtocolError::new(ErrorCode::NotSubscribed, "not subscribed to chat");
    assert_eq!(e.to_string(), "not subscribed to chat");
    assert_eq!(e.channel, None);
    assert_eq!(e.http_status(), 403);
    let e = e.with_channel("chat");
    assert_eq!(e.channel.as_deref(), Some("chat"));
    let i = ProtocolError::internal();
    assert_eq!(i.code, ErrorCode::InternalError);
    assert_eq!(i.http_status(), 500);
}

// ---------------------------------------------------------------------------------
// message ids
// ---------------------------------------------------------------------------------

#[test]
fn ids_strictly_increase() {
    let ids = IdGenerator::new();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let all: Vec<String> = (0..10_000).map(|_| ids.next_id(Timestamp::now())).collect();
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for pair in all.windows(2) {
        assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
    }
    for id in &all {
        assert_eq!(id.len(), 26);
        let ts = ulid_timestamp_ms(id).unwrap();
        assert!(
            ts >= before && ts <= after + 1,
            "{ts} outside {before}..{after}"
        );
    }
}

#[test]
fn ids_unique_across_threads() {
    let ids = std::sync::Arc::new(IdGenerator::default());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let ids = ids.clone();
            std::thread::spawn(move || {
                let mine: Vec<String> = (0..2_500).map(|_| ids.next_id(Timestamp::now())).collect();
                assert!(mine.windows(2).all(|p| p[0] < p[1]));
                mine
            })
        })
        .collect();
    let mut all = HashSet::new();
    for h in handles {
        for id in h.join().unwrap() {
            assert!(all.insert(id));
        }
    }
    assert_eq!(all.len(), 10_000);
}

#[test]
fn ulid_timestamps() {
    assert_eq!(ulid_timestamp_ms(ULID), Some(1_469_922_850_259));
    assert_eq!(
        ulid_timestamp_ms(&ULID.to_lowercase()),
        Some(1_469_922_850_259)
    );
    assert_eq!(ulid_timestamp_ms(""), None);
    assert_eq!(ulid_timestamp_ms("not-a-ulid"), None);
    assert_eq!(ulid_timestamp_ms("81ARZ3NDEKTSV4RRFFQ69G5FAV"), None);
}

// ---------------------------------------------------------------------------------
// Client HTTP API bodies: the same command set and validation as frames
// ---------------------------------------------------------------------------------

#[test]
fn http_operations_parse_into_the_frame_commands() {
    let lower = ULID.to_lowercase();
    // A reaction over publishMessage is the same command as over WebSocket,
    // lowercase id included.
    let over_http = parse_http_command(
        "publishMessage",
        json!({"channel": "chat", "event": "hotsock.messageReaction",
               "data": {"messageId": lower, "reaction": "👍", "action": "add"}}),
    )
    .expect("reaction");
    let over_ws = parse_client_value(
        json!({"channel": "chat", "event": "hotsock.messageReaction",
        "data": {"messageId": lower, "reaction": "👍", "action": "add"}}),
    )
    .expect("frame");
    assert_eq!(ClientFrame::Command(over_http), over_ws);
    // umdUpdate takes `token` at the top of the body; `channel` is optional.
    assert_eq!(
        ClientFrame::Command(
            parse_http_command("umdUpdate", json!({"channel": "presence.r", "token": "a.b.c"}))
                .expect("umd")
        ),
        parse_client_value(
            json!({"event": "hotsock.umdUpdate", "channel": "presence.r", "data": {"token": "a.b.c"}})
        )
        .expect("frame")
    );
    assert_eq!(
        parse_http_command("umdUpdate", json!({"token": "t"})).expect("umd"),
        ClientCommand::UmdUpdate {
            channel: None,
            token: "t".into()
        }
    );
    let missing = parse_http_command("umdUpdate", json!({"channel": "presence.r"})).unwrap_err();
    assert_eq!(missing.code.as_str(), "INVALID_UMD_TOKEN");
    assert_eq!(
        parse_http_command(
            "publishMessage",
            json!({"channel": "c", "event": "e", "data": [1]})
        )
        .expect("publish"),
        ClientCommand::Publish {
            channel: "c".into(),
            event: "e".into(),
            data: json!([1]),
            eager_id: false,
            schedule: None
        }
    );
    assert_eq!(
        parse_http_command(
            "listMessages",
            json!({"channel": "c", "after": lower, "limit": 5})
        )
        .expect("list"),
        ClientCommand::ListMessages(ListMessages {
            channel: "c".into(),
            after: Some(ULID.into()),
            before: None,
            reverse: false,
            limit: 5,
            expand_reactions: false,
        })
    );
    assert_eq!(
        parse_http_command("listReactions", json!({"channel": "c", "messageId": lower}))
            .expect("reactions"),
        ClientCommand::ListReactions {
            channel: "c".into(),
            message_id: ULID.into()
        }
    );
}

#[test]
fn http_operation_errors_have_stable_codes() {
    let code =
        |op: &str, body: serde_json::Value| parse_http_command(op, body).expect_err("refused").code;
    assert_eq!(code("frobnicate", json!({})), ErrorCode::NotFound);
    assert_eq!(code("listMessages", json!([])), ErrorCode::InvalidRequest);
    assert_eq!(
        code("listMessages", json!({"channel": "c", "after": "xyz"})),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        code("listMessages", json!({"channel": "c", "reverse": "yes"})),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        code("listMessages", json!({"channel": "bad name"})),
        ErrorCode::InvalidChannel
    );
    assert_eq!(
        code(
            "listReactions",
            json!({"channel": "c", "messageId": "nope"})
        ),
        ErrorCode::MessageNotFound
    );
    assert_eq!(
        code(
            "publishMessage",
            json!({"channel": "c", "event": "hotsock.subscribe"})
        ),
        ErrorCode::InvalidEvent
    );
    assert_eq!(
        code("publishMessage", json!({"channel": "c", "event": 5})),
        ErrorCode::InvalidRequest,
        "a wrong field type is INVALID_REQUEST over HTTP"
    );
    assert_eq!(
        code(
            "publishMessage",
            json!({"channel": "c", "event": "e", "data": "x".repeat(40_000)})
        ),
        ErrorCode::MessageTooLarge
    );
    let err = parse_http_command("listMessages", json!({"channel": "c", "after": 1}))
        .expect_err("refused");
    assert_eq!(
        err.channel.as_deref(),
        Some("c"),
        "errors carry the channel"
    );
}

/// Hotsock's listMessages: `after` pages oldest-first, `before` pages
/// newest-first (`reverse`); each direction ignores the other cursor, unread.
#[test]
fn list_messages_reads_only_the_cursor_of_its_direction() {
    let list = |body: Value| match parse_http_command("listMessages", body) {
        Ok(ClientCommand::ListMessages(l)) => Ok(l),
        Ok(other) => panic!("not a list: {other:?}"),
        Err(e) => Err(e.code),
    };
    let forward = list(json!({"channel": "c", "after": ULID, "before": ULID})).unwrap();
    assert_eq!(
        (forward.after.as_deref(), forward.before),
        (Some(ULID), None)
    );
    assert_eq!(forward.limit, 100, "Hotsock's default page size");
    let backward =
        list(json!({"channel": "c", "after": ULID, "before": ULID, "reverse": true})).unwrap();
    assert_eq!(
        (backward.after, backward.before.as_deref()),
        (None, Some(ULID))
    );
    // An ignored cursor is not even validated.
    assert!(list(json!({"channel": "c", "before": "junk"})).is_ok());
    assert!(list(json!({"channel": "c", "after": "junk", "reverse": true})).is_ok());
    assert_eq!(
        list(json!({"channel": "c", "after": "junk"})).unwrap_err(),
        ErrorCode::InvalidRequest
    );
    assert_eq!(list(json!({"channel": "c", "limit": 1})).unwrap().limit, 1);
    assert_eq!(
        list(json!({"channel": "c", "limit": 1000})).unwrap().limit,
        1000
    );
    for bad in [json!(0), json!(1001), json!(-1), json!(2.5), json!("10")] {
        assert_eq!(
            list(json!({"channel": "c", "limit": bad})).unwrap_err(),
            ErrorCode::InvalidRequest,
            "limit {bad}"
        );
    }
}

#[test]
fn schedule_fields_are_carried_as_strings_and_checked_when_used() {
    let frame = json!({"channel": "c", "event": "e", "scheduleExpression": "at(2030-01-01T09:00:00)",
                       "scheduleExpressionTimezone": "Europe/Paris"});
    let ClientCommand::Publish { schedule, .. } = parse(frame).expect("publish") else {
        panic!("not a publish");
    };
    let schedule = schedule.expect("scheduled");
    assert_eq!(schedule.expression, "at(2030-01-01T09:00:00)");
    assert_eq!(schedule.timezone.as_deref(), Some("Europe/Paris"));
    // A timezone alone schedules nothing.
    let ClientCommand::ChannelStorageSet { schedule, .. } =
        parse(json!({"event": "hotsock.channelStorageSet",
        "channel": "c", "key": "k", "scheduleExpressionTimezone": "UTC"}))
        .expect("write")
    else {
        panic!("not a storage write");
    };
    assert_eq!(schedule, None);
    for (field, bad) in [
        ("scheduleExpression", json!(5)),
        ("scheduleExpressionTimezone", json!({})),
    ] {
        let mut frame =
            json!({"channel": "c", "event": "e", "scheduleExpression": "at(2030-01-01T09:00:00)"});
        frame[field] = bad;
        let err = parse(frame).unwrap_err();
        assert_eq!(err.code.as_str(), "INVALID_REQUEST", "{field}");
        assert_eq!(err.channel.as_deref(), Some("c"));
    }
}

#[test]
fn the_http_operations_are_found_by_their_names_only() {
    use sockhop_core::protocol::HttpOperation;
    for op in HttpOperation::ALL {
        assert_eq!(HttpOperation::from_name(op.name()), Some(op));
    }
    let names: std::collections::BTreeSet<_> =
        HttpOperation::ALL.iter().map(|op| op.name()).collect();
    assert_eq!(names.len(), HttpOperation::ALL.len(), "names are distinct");
    for other in [
        "",
        "publishmessage",
        "PublishMessage",
        "subscribe",
        "hotsock.ping",
    ] {
        assert_eq!(HttpOperation::from_name(other), None, "{other:?}");
        assert_eq!(
            parse_http_command(other, json!({})).unwrap_err().code,
            ErrorCode::NotFound
        );
    }
    // Only what goes onto a channel's ordered path is answered 202.
    let later: Vec<_> = HttpOperation::ALL
        .iter()
        .filter(|op| op.accepted_later())
        .map(|op| op.name())
        .collect();
    assert_eq!(later, ["publishMessage", "channelStorageSet"]);
}
