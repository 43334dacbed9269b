//! Arbitrary payloads to the claims parser and the permission resolver: never a
//! panic, and whatever parses resolves.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use sockhop_core::claims::{ChannelPermissions, Claims};

/// Keys the parser cares about, plus noise, so generated payloads reach deep.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("exp".to_owned()),
        Just("scope".to_owned()),
        Just("uid".to_owned()),
        Just("umd".to_owned()),
        Just("channels".to_owned()),
        Just("messages".to_owned()),
        Just("storage".to_owned()),
        Just("subscribe".to_owned()),
        Just("publish".to_owned()),
        Just("store".to_owned()),
        Just("react".to_owned()),
        Just("alias".to_owned()),
        Just("autoSubscribe".to_owned()),
        Just("historyStart".to_owned()),
        Just("heartbeatTimeout".to_owned()),
        Just("singleUse".to_owned()),
        Just("jti".to_owned()),
        Just("*".to_owned()),
        Just("#regex:^a.*".to_owned()),
        Just("#regex:(".to_owned()),
        "[a-z*#:.()\\[\\]-]{0,12}",
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "[ -~]{0,20}".prop_map(Value::String),
        Just(json!("connect subscribe umd")),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn claims_parse_never_panics(map in prop::collection::btree_map(key(), value(), 0..8)) {
        let payload: Map<String, Value> = map.into_iter().collect();
        if let Ok(claims) = Claims::parse(&payload) {
            let _ = claims.channels.auto_subscribe_channels();
            for channel in ["a", "abc", "*", "presence.x"] {
                let p = ChannelPermissions::single(claims.channels.grant_for(channel));
                let _ = (p.may_subscribe(), p.history_start(), p.alias());
                let _ = p.message("e").may_send(true);
                let _ = p.storage("k").store;
                let _ = claims.channels.resolve_alias(channel);
            }
        }
    }

    #[test]
    fn well_formed_channels_always_parse_or_reject_cleanly(
        channels in prop::collection::btree_map(key(), value(), 0..6)
    ) {
        let payload = json!({"exp": 1, "scope": "connect", "channels": channels});
        let result = Claims::parse(payload.as_object().expect("object"));
        if let Err(e) = result {
            prop_assert_eq!(e.code(), "TOKEN_INVALID_CLAIMS");
            prop_assert!(!e.to_string().is_empty());
        }
    }
}
