//! Property tests: nothing a client sends may panic the parser, every rejection has a
//! code and a message, errors only ever echo a channel the frame really had, and
//! everything accepted satisfies the §2 name rules.

// Test code: a panic is the failure report (clippy.toml allows unwrap in #[test]s, not helpers).
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::{Map, Value};
use sockhop_core::error::ErrorCode;
use sockhop_core::names;
use sockhop_core::protocol::{
    parse_client_frame, parse_ulid, ClientCommand, ClientFrame, ServerMessage, MAX_FRAME_BYTES,
};

/// Checks the parser's contract for one input.
fn check(text: &str) {
    let frame_channel = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("channel").and_then(Value::as_str).map(str::to_owned));
    match parse_client_frame(text) {
        Err(err) => {
            assert!(ErrorCode::ALL.contains(&err.code));
            assert!(!err.message.is_empty());
            if let Some(c) = &err.channel {
                assert_eq!(
                    Some(c),
                    frame_channel.as_ref(),
                    "echoed channel not in frame"
                );
            }
            if text.len() <= MAX_FRAME_BYTES && frame_channel.is_some() {
                assert_eq!(err.channel, frame_channel, "error lost the frame's channel");
            }
            // Every error renders as a frame that parses back.
            let json = ServerMessage::error(err).to_json();
            let v: Value = serde_json::from_str(&json).unwrap();
            assert_eq!(v["event"], "hotsock.error");
            assert!(v["data"].is_object());
        }
        Ok(ClientFrame::Ping | ClientFrame::Pong) => assert!(text.len() <= MAX_FRAME_BYTES),
        Ok(ClientFrame::Command(cmd)) => {
            assert!(text.len() <= MAX_FRAME_BYTES);
            if let Some(c) = cmd.channel() {
                assert!(names::validate_channel(c).is_ok(), "accepted channel {c:?}");
                assert_eq!(Some(c), frame_channel.as_deref());
            }
            match &cmd {
                ClientCommand::Publish { event, data, .. } => {
                    assert!(names::validate_client_event(event).is_ok());
                    assert!(names::validate_data_size(data).is_ok());
                }
                ClientCommand::ChannelStorageSet { key, data, .. } => {
                    assert!(names::validate_storage_key(key).is_ok());
                    assert!(names::validate_data_size(data).is_ok());
                }
                ClientCommand::ChannelStorageGet { key, .. } => {
                    assert!(names::validate_storage_key(key).is_ok());
                }
                ClientCommand::MessageReaction {
                    message_id,
                    reaction,
                    ..
                } => {
                    assert!(parse_ulid(message_id).is_some());
                    assert!(names::validate_reaction(reaction).is_ok());
                }
                ClientCommand::Subscribe { token, .. } => {
                    assert!(token.as_deref().is_none_or(|t| !t.is_empty()));
                }
                ClientCommand::UmdUpdate { token, .. } => assert!(!token.is_empty()),
                ClientCommand::ListMessages(_)
                | ClientCommand::ListReactions { .. }
                | ClientCommand::GetChannelInfo { .. }
                | ClientCommand::ChannelStorageList { .. } => {
                    panic!("a frame parsed into an HTTP-only command: {cmd:?}")
                }
                ClientCommand::Unsubscribe { .. } | ClientCommand::Heartbeat => {}
            }
        }
    }
}

/// Strings that hit the interesting branches: commands, reserved prefixes, forbidden
/// chars, boundaries, ULIDs.
fn interesting_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("hotsock.subscribe".to_owned()),
        Just("hotsock.unsubscribe".to_owned()),
        Just("hotsock.ping".to_owned()),
        Just("hotsock.pong".to_owned()),
        Just("hotsock.heartbeat".to_owned()),
        Just("hotsock.messageReaction".to_owned()),
        Just("hotsock.channelStorageSet".to_owned()),
        Just("hotsock.channelStorageGet".to_owned()),
        Just("hotsock.umdUpdate".to_owned()),
        Just("hotsock.connected".to_owned()),
        Just("presence.room".to_owned()),
        Just("01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned()),
        Just("81ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned()),
        Just("add".to_owned()),
        Just("remove".to_owned()),
        Just(String::new()),
        Just("a".repeat(256)),
        Just("a".repeat(257)),
        Just("é".repeat(129)),
        "[a-z.#*, \n\t\\-]{0,12}",
        "\\PC{0,20}",
        any::<String>(),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        interesting_string().prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((field_name(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("event".to_owned()),
        Just("channel".to_owned()),
        Just("data".to_owned()),
        Just("key".to_owned()),
        Just("token".to_owned()),
        Just("messageId".to_owned()),
        Just("reaction".to_owned()),
        Just("action".to_owned()),
        "[a-zA-Z]{1,8}",
    ]
}

/// Mostly strings from `s` (so frames often get past the first checks), sometimes
/// any leaf (so wrong types are exercised too).
fn mostly<S>(s: S) -> impl Strategy<Value = Value>
where
    S: Strategy<Value = String> + 'static,
{
    prop_oneof![
        4 => s.prop_map(Value::String),
        1 => interesting_string().prop_map(Value::String),
        1 => leaf(),
    ]
}

fn event_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("hotsock.subscribe".to_owned()),
        Just("hotsock.unsubscribe".to_owned()),
        Just("hotsock.ping".to_owned()),
        Just("hotsock.pong".to_owned()),
        Just("hotsock.heartbeat".to_owned()),
        Just("hotsock.messageReaction".to_owned()),
        Just("hotsock.channelStorageSet".to_owned()),
        Just("hotsock.channelStorageGet".to_owned()),
        Just("hotsock.umdUpdate".to_owned()),
        "[a-z][a-z.]{0,10}",
    ]
}

/// Objects shaped like client frames, with random subsets of the real fields.
fn frame_object() -> impl Strategy<Value = Value> {
    let reaction_data = (
        prop::option::weighted(
            0.9,
            mostly(prop_oneof![
                Just("01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned()),
                Just("01arz3ndektsv4rrffq69g5fav".to_owned()),
            ]),
        ),
        prop::option::weighted(
            0.9,
            mostly(prop_oneof![Just("👍".to_owned()), "[a-z]{1,3}"]),
        ),
        prop::option::weighted(
            0.9,
            mostly(prop_oneof![
                Just("add".to_owned()),
                Just("remove".to_owned())
            ]),
        ),
        prop::option::weighted(0.9, mostly(Just("a.b.c".to_owned()))),
    )
        .prop_map(|(message_id, reaction, action, token)| {
            let mut m = Map::new();
            for (k, v) in [
                ("messageId", message_id),
                ("reaction", reaction),
                ("action", action),
                ("token", token),
            ] {
                if let Some(v) = v {
                    m.insert(k.to_owned(), v);
                }
            }
            Value::Object(m)
        });
    let data = prop_oneof![1 => json_value(), 2 => reaction_data];
    (
        prop::option::weighted(0.9, mostly(event_name())),
        prop::option::weighted(
            0.9,
            mostly(prop_oneof![
                Just("chat".to_owned()),
                Just("presence.room".to_owned()),
                "[a-z.]{1,10}",
            ]),
        ),
        prop::option::weighted(0.8, data),
        prop::option::of(mostly("[a-z]{1,6}")),
        prop::collection::vec((field_name(), json_value()), 0..3),
    )
        .prop_map(|(event, channel, data, key, extra)| {
            let mut m: Map<String, Value> = extra.into_iter().collect();
            for (k, v) in [
                ("event", event),
                ("channel", channel),
                ("data", data),
                ("key", key),
            ] {
                if let Some(v) = v {
                    m.insert(k.to_owned(), v);
                }
            }
            Value::Object(m)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        check(&text);
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value()) {
        check(&value.to_string());
    }

    #[test]
    fn frame_shaped_objects_never_panic(frame in frame_object()) {
        check(&frame.to_string());
    }

    #[test]
    fn truncated_frames_never_panic(frame in frame_object(), cut in any::<prop::sample::Index>()) {
        let text = frame.to_string();
        let mut at = cut.index(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        check(&text[..at]);
    }

    #[test]
    fn names_never_panic(s in interesting_string()) {
        let _ = names::validate_channel(&s);
        let _ = names::validate_event(&s);
        let _ = names::validate_client_event(&s);
        let _ = names::validate_storage_key(&s);
        let _ = names::validate_reaction(&s);
        let _ = names::is_presence_channel(&s);
        let _ = parse_ulid(&s);
    }
}

#[test]
fn oversized_inputs_are_cheap_rejections() {
    let huge = "x".repeat(MAX_FRAME_BYTES * 8);
    let err = parse_client_frame(&huge).unwrap_err();
    assert_eq!(err.code, ErrorCode::MessageTooLarge);
}
