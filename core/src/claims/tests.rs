use super::*;
use serde_json::json;

fn parse(v: Value) -> Result<Claims, ClaimsError> {
    match v {
        Value::Object(map) => Claims::parse(&map),
        _ => panic!("test payloads are objects"),
    }
}

fn claims(v: Value) -> Claims {
    parse(v).expect("valid claims")
}

fn with_channels(channels: Value) -> Claims {
    claims(json!({"exp": 2_000_000_000, "scope": "connect", "channels": channels}))
}

fn perms(c: &Claims, channel: &str) -> ChannelPermissions {
    ChannelPermissions::single(c.channels.grant_for(channel))
}

// ---- parsing and validation ----

#[test]
fn parses_every_claim() {
    let c = claims(json!({
        "exp": 2_000_000_000, "nbf": 1_000, "iat": 999.5, "jti": "j1",
        "scope": "connect subscribe umd", "uid": "jim", "umd": {"name": "Jim"},
        "keepAlive": true, "heartbeatTimeout": 30, "singleUse": true,
        "connectionId": "abc=", "umdUpdate": true, "umdPropagate": true,
        "channels": {"chat": {"subscribe": true}},
        "custom": "ignored"
    }));
    assert_eq!(c.exp, 2_000_000_000);
    assert_eq!(c.nbf, Some(1_000));
    assert_eq!(c.iat, Some(999));
    assert_eq!(c.jti.as_deref(), Some("j1"));
    assert_eq!(c.scopes(), &[Scope::Connect, Scope::Subscribe, Scope::Umd]);
    assert_eq!(c.uid.as_deref(), Some("jim"));
    assert_eq!(c.umd, Some(json!({"name": "Jim"})));
    assert!(c.keep_alive && c.single_use && c.umd_update && c.umd_propagate);
    assert_eq!(c.heartbeat_timeout, Some(30));
    assert_eq!(c.connection_id.as_deref(), Some("abc="));
    assert!(perms(&c, "chat").may_subscribe());
}

#[test]
fn defaults_when_optional_claims_are_absent() {
    let c = claims(json!({"exp": 1, "scope": "subscribe"}));
    assert!(c.has_scope(Scope::Subscribe));
    assert!(!c.has_scope(Scope::Connect));
    assert!(c.uid.is_none() && c.umd.is_none() && c.jti.is_none());
    assert!(!c.keep_alive && !c.single_use && !c.umd_update && !c.umd_propagate);
    assert!(c.heartbeat_timeout.is_none());
    assert!(c.channels.is_empty());
}

#[test]
fn null_umd_reads_as_none() {
    assert!(claims(json!({"exp": 1, "scope": "connect", "umd": null}))
        .umd
        .is_none());
}

#[test]
fn scope_is_required_and_unknown_words_ignored() {
    assert_eq!(
        parse(json!({"exp": 1})).unwrap_err(),
        ClaimsError::MissingScope
    );
    assert_eq!(
        parse(json!({"exp": 1, "scope": ""})).unwrap_err(),
        ClaimsError::MissingScope
    );
    assert_eq!(
        parse(json!({"exp": 1, "scope": "admin root"})).unwrap_err(),
        ClaimsError::MissingScope
    );
    let c = claims(json!({"exp": 1, "scope": "  admin   connect connect "}));
    assert_eq!(c.scopes(), &[Scope::Connect]);
}

#[test]
fn exp_is_required() {
    assert_eq!(
        parse(json!({"scope": "connect"})).unwrap_err(),
        ClaimsError::MissingExpiry
    );
}

#[test]
fn wrong_types_are_rejected_with_the_field_named() {
    for bad in [
        json!({"exp": "soon", "scope": "connect"}),
        json!({"exp": 1, "scope": 7}),
        json!({"exp": 1, "scope": "connect", "uid": 5}),
        json!({"exp": 1, "scope": "connect", "keepAlive": "yes"}),
        json!({"exp": 1, "scope": "connect", "channels": []}),
        json!({"exp": 1, "scope": "connect", "channels": {"c": {"subscribe": "true"}}}),
        json!({"exp": 1, "scope": "connect", "channels": {"c": {"messages": {"e": {"store": "1"}}}}}),
        json!({"exp": 1, "scope": "connect", "channels": {"c": {"messages": {"e": {"react": 5}}}}}),
    ] {
        let err = parse(bad.clone()).unwrap_err();
        assert!(
            matches!(err, ClaimsError::WrongType(..)),
            "{bad} gave {err:?}"
        );
        assert_eq!(err.code(), "TOKEN_INVALID_CLAIMS");
    }
}

#[test]
fn uid_length_is_capped_in_characters() {
    let ok = "é".repeat(128);
    assert!(parse(json!({"exp": 1, "scope": "connect", "uid": ok})).is_ok());
    let long = "é".repeat(129);
    assert_eq!(
        parse(json!({"exp": 1, "scope": "connect", "uid": long})).unwrap_err(),
        ClaimsError::UidTooLong
    );
}

#[test]
fn umd_size_is_capped_at_one_kib() {
    // {"a":"…"} is 8 bytes of JSON around the string.
    let fits = "x".repeat(1024 - 8);
    assert!(parse(json!({"exp": 1, "scope": "connect", "umd": {"a": fits}})).is_ok());
    let over = "x".repeat(1024 - 7);
    assert_eq!(
        parse(json!({"exp": 1, "scope": "connect", "umd": {"a": over}})).unwrap_err(),
        ClaimsError::UmdTooLarge
    );
}

#[test]
fn heartbeat_timeout_range_is_5_to_600() {
    for ok in [5, 600, 60] {
        assert!(parse(json!({"exp": 1, "scope": "connect", "heartbeatTimeout": ok})).is_ok());
    }
    for bad in [4, 601, 0, -1] {
        assert_eq!(
            parse(json!({"exp": 1, "scope": "connect", "heartbeatTimeout": bad})).unwrap_err(),
            ClaimsError::HeartbeatTimeoutOutOfRange
        );
    }
}

#[test]
fn single_use_needs_a_jti() {
    assert_eq!(
        parse(json!({"exp": 1, "scope": "connect", "singleUse": true})).unwrap_err(),
        ClaimsError::SingleUseWithoutJti
    );
    assert_eq!(
        parse(json!({"exp": 1, "scope": "connect", "singleUse": true, "jti": ""})).unwrap_err(),
        ClaimsError::SingleUseWithoutJti
    );
    assert!(parse(json!({"exp": 1, "scope": "connect", "singleUse": true, "jti": "x"})).is_ok());
    assert!(parse(json!({"exp": 1, "scope": "connect", "singleUse": false})).is_ok());
}

#[test]
fn alias_only_on_exact_keys_and_unique() {
    let err = parse(json!({"exp": 1, "scope": "connect",
        "channels": {"chat-*": {"alias": "chat"}}}))
    .unwrap_err();
    assert!(matches!(
        err,
        ClaimsError::ExactKeyOnly {
            directive: "alias",
            ..
        }
    ));
    let err = parse(json!({"exp": 1, "scope": "connect",
        "channels": {"a": {"alias": "x"}, "b": {"alias": "x"}}}))
    .unwrap_err();
    assert_eq!(err, ClaimsError::DuplicateAlias("x".into()));
    let err = parse(json!({"exp": 1, "scope": "connect",
        "channels": {"a": {"alias": "bad name"}}}))
    .unwrap_err();
    assert!(matches!(err, ClaimsError::InvalidDirective { .. }));
}

#[test]
fn auto_subscribe_only_on_exact_keys_of_connect_tokens() {
    let err = parse(json!({"exp": 1, "scope": "connect",
        "channels": {"chat-*": {"autoSubscribe": true}}}))
    .unwrap_err();
    assert!(matches!(
        err,
        ClaimsError::ExactKeyOnly {
            directive: "autoSubscribe",
            ..
        }
    ));
    // Outside a connect token autoSubscribe (and broadcast) mean nothing and are
    // dropped, so a backend may reuse one claims builder for both tokens.
    let sub = parse(
        json!({"exp": 1, "scope": "subscribe", "channels": {"chat": {
        "subscribe": true, "autoSubscribe": true,
        "messages": {"m": {"broadcast": true}}}}}),
    )
    .expect("accepted");
    assert!(sub.channels.auto_subscribe_channels().is_empty());
    assert!(!ChannelPermissions::single(sub.channels.grant_for("chat"))
        .message("m")
        .may_send(false));
    // autoSubscribe: false is harmless anywhere.
    assert!(parse(json!({"exp": 1, "scope": "subscribe",
        "channels": {"chat-*": {"autoSubscribe": false}}}))
    .is_ok());
}

#[test]
fn invalid_regex_rejects_the_token() {
    let err = parse(json!({"exp": 1, "scope": "connect",
        "channels": {"#regex:(": {"subscribe": true}}}))
    .unwrap_err();
    assert!(matches!(err, ClaimsError::Pattern(_)));
    let err = parse(json!({"exp": 1, "scope": "connect",
        "channels": {"c": {"messages": {"#regex:[": {"publish": true}}}}}))
    .unwrap_err();
    assert!(matches!(err, ClaimsError::Pattern(_)));
    let err = parse(json!({"exp": 1, "scope": "connect",
        "channels": {"c": {"storage": {"#regex:)": {"get": true}}}}}))
    .unwrap_err();
    assert!(matches!(err, ClaimsError::Pattern(_)));
}

#[test]
fn regex_keys_grant_what_go_would_and_no_more() {
    let c = with_channels(json!({
        "#regex:^chat-\\d+$": {"subscribe": true},
        "#regex:^\\Qroom.\\E\\w+$": {"subscribe": true}
    }));
    assert!(perms(&c, "chat-42").may_subscribe());
    assert!(!perms(&c, "chat-٤٢").may_subscribe(), "Go's \\d is ASCII");
    assert!(perms(&c, "room.lobby_1").may_subscribe());
    assert!(
        !perms(&c, "roomxlobby").may_subscribe(),
        "\\Q quotes the dot"
    );
    assert!(!perms(&c, "room.café").may_subscribe(), "Go's \\w is ASCII");
    // A pattern Go refuses makes the token invalid, as it would there.
    assert!(parse(json!({"exp": 1, "scope": "connect",
        "channels": {"#regex:(?x) chat": {"subscribe": true}}}))
    .is_err());
}

#[test]
fn exact_keys_must_be_valid_names() {
    for channels in [
        json!({"bad name": {"subscribe": true}}),
        json!({"a,b": {"subscribe": true}}),
        json!({"c": {"messages": {"#hash": {"publish": true}}}}),
        json!({"c": {"storage": {"has space": {"get": true}}}}),
    ] {
        assert!(
            parse(json!({"exp": 1, "scope": "connect", "channels": channels.clone()})).is_err(),
            "{channels}"
        );
    }
}

#[test]
fn store_ranges_are_enforced() {
    let msg = |store: i64| {
        parse(json!({"exp": 1, "scope": "connect",
            "channels": {"c": {"messages": {"e": {"store": store}}}}}))
    };
    for ok in [-1, 0, 1, MAX_STORE_SECONDS] {
        assert!(msg(ok).is_ok(), "{ok}");
    }
    for bad in [-2, MAX_STORE_SECONDS + 1] {
        assert!(msg(bad).is_err(), "{bad}");
    }
    let kv = |store: i64| {
        parse(json!({"exp": 1, "scope": "connect",
            "channels": {"c": {"storage": {"k": {"store": store}}}}}))
    };
    for ok in [-1, 1, MAX_STORE_SECONDS] {
        assert!(kv(ok).is_ok(), "{ok}");
    }
    for bad in [0, -2, MAX_STORE_SECONDS + 1] {
        assert!(kv(bad).is_err(), "{bad}");
    }
}

#[test]
fn negative_history_start_and_bad_reactions_are_rejected() {
    assert!(parse(json!({"exp": 1, "scope": "connect",
        "channels": {"c": {"historyStart": -5}}}))
    .is_err());
    assert!(parse(json!({"exp": 1, "scope": "connect",
        "channels": {"c": {"messages": {"e": {"react": ["ok", "#no"]}}}}}))
    .is_err());
    assert!(parse(json!({"exp": 1, "scope": "connect",
        "channels": {"c": {"messages": {"e": {"react": ["  "]}}}}}))
    .is_err());
}

// ---- channel resolution ----

#[test]
fn no_matching_entry_denies_everything() {
    let c = with_channels(json!({"chat": {"subscribe": true, "getInfo": true}}));
    let p = perms(&c, "other");
    assert!(!p.may_subscribe());
    assert!(!p.may_get_info());
    assert!(p.history_start().is_none());
    assert!(!p.message("chat").may_send(true));
}

#[test]
fn exact_wildcard_and_regex_keys_grant() {
    let c = with_channels(json!({
        "exact": {"subscribe": true},
        "room-*": {"subscribe": true},
        "#regex:^team\\.[0-9]+$": {"subscribe": true}
    }));
    assert!(perms(&c, "exact").may_subscribe());
    assert!(perms(&c, "room-1").may_subscribe());
    assert!(perms(&c, "team.7").may_subscribe());
    assert!(!perms(&c, "team.x").may_subscribe());
    assert!(!perms(&c, "exact2").may_subscribe());
}

#[test]
fn explicit_false_in_any_match_wins() {
    let c = with_channels(json!({
        "*": {"subscribe": true, "getInfo": true},
        "secret-*": {"subscribe": false},
        "#regex:^admin": {"getInfo": false}
    }));
    assert!(perms(&c, "lobby").may_subscribe());
    assert!(!perms(&c, "secret-1").may_subscribe());
    assert!(perms(&c, "secret-1").may_get_info());
    assert!(!perms(&c, "admin-room").may_get_info());
    assert!(perms(&c, "admin-room").may_subscribe());
    // An exact true does not beat a pattern's false either.
    let c = with_channels(json!({"vip": {"subscribe": true}, "v*": {"subscribe": false}}));
    assert!(!perms(&c, "vip").may_subscribe());
}

#[test]
fn boolean_channel_directives_resolve() {
    let c = with_channels(json!({"c": {"omitFromSubCount": true, "umdUpdate": true}}));
    assert!(perms(&c, "c").omit_from_sub_count());
    assert!(perms(&c, "c").may_update_umd());
    assert!(!perms(&c, "d").omit_from_sub_count());
    assert!(!perms(&c, "d").may_update_umd());
}

#[test]
fn history_start_prefers_exact_then_most_specific_pattern() {
    let c = with_channels(json!({
        "#regex:room": {"historyStart": 1},
        "*": {"historyStart": 2},
        "room-*": {"historyStart": 3},
        "room-1": {"historyStart": 4}
    }));
    assert_eq!(perms(&c, "room-1").history_start(), Some(4.0));
    assert_eq!(perms(&c, "room-2").history_start(), Some(3.0));
    assert_eq!(perms(&c, "my-room").history_start(), Some(2.0));
    let only_regex = with_channels(json!({"#regex:room": {"historyStart": 0}}));
    assert_eq!(perms(&only_regex, "x-room").history_start(), Some(0.0));
}

#[test]
fn valued_directive_skips_entries_that_do_not_set_it() {
    let c = with_channels(json!({"room-1": {"subscribe": true}, "room-*": {"historyStart": 9}}));
    assert_eq!(perms(&c, "room-1").history_start(), Some(9.0));
}

#[test]
fn aliases_resolve_and_may_not_be_channels_of_the_same_token() {
    let c = with_channels(json!({
        "private-chat-123": {"alias": "chat", "subscribe": true},
        "lobby": {"alias": "hall", "subscribe": true},
        "chat-*": {"subscribe": true}
    }));
    assert_eq!(c.channels.resolve_alias("chat"), Some("private-chat-123"));
    assert_eq!(c.channels.resolve_alias("private-chat-123"), None);
    assert_eq!(c.channels.resolve_alias("hall"), Some("lobby"));
    assert_eq!(c.channels.resolve_alias("nothing"), None);
    assert_eq!(c.channels.alias_of("private-chat-123"), Some("chat"));
    assert_eq!(c.channels.alias_of("chat-1"), None);
    for clash in [
        json!({"lobby": {"alias": "hall"}, "hall": {"subscribe": true}}),
        json!({"lobby": {"alias": "lobby"}}),
    ] {
        let err = parse(json!({"exp": 1, "scope": "connect", "channels": clash})).unwrap_err();
        assert!(matches!(err, ClaimsError::AliasIsAChannel(_)), "{err}");
    }
    assert_eq!(
        perms(&c, "private-chat-123").alias().as_deref(),
        Some("chat")
    );
}

#[test]
fn auto_subscribe_lists_exact_subscribable_keys() {
    let c = with_channels(json!({
        "a": {"subscribe": true, "autoSubscribe": true},
        "b": {"autoSubscribe": true},
        "c": {"subscribe": true, "autoSubscribe": false},
        "d": {"subscribe": true, "autoSubscribe": true},
        "d*": {"subscribe": false},
        "e": {"autoSubscribe": true},
        "*": {"subscribe": true}
    }));
    // b gets subscribe from "*"; d is denied by "d*".
    assert_eq!(c.channels.auto_subscribe_channels(), vec!["a", "b", "e"]);
}

// ---- message resolution ----

#[test]
fn message_directives_resolve_by_event_pattern() {
    let c = with_channels(json!({"chat": {"messages": {
        "chat": {"publish": true, "echo": true, "store": 86400,
                 "react": ["❤️", "👍"], "scheduleBefore": 99, "emitPubSubEvent": true},
        "is-*": {"publish": true},
        "#regex:^sys\\.": {"broadcast": true}
    }}}));
    let p = perms(&c, "chat");
    let chat = p.message("chat");
    assert!(chat.may_send(true));
    assert!(!chat.may_send(false));
    assert!(chat.echo);
    assert_eq!(chat.store, 86400);
    assert!(chat.may_react("👍"));
    assert!(!chat.may_react("😂"));
    assert_eq!(chat.schedule_before, Some(99));
    assert!(chat.emit_pub_sub_event);
    let typing = p.message("is-typing");
    assert!(typing.may_send(true));
    assert!(!typing.echo);
    assert_eq!(typing.store, 0);
    assert!(!typing.may_react("👍"));
    assert!(p.message("sys.alert").may_send(false));
    assert!(!p.message("other").may_send(true));
}

#[test]
fn broadcast_sends_unsubscribed_unless_publish_is_false() {
    let c = with_channels(json!({"c": {"messages": {
        "b": {"broadcast": true},
        "bp": {"broadcast": true, "publish": true},
        "bf": {"broadcast": true, "publish": false},
        "p": {"publish": true}
    }}}));
    let p = perms(&c, "c");
    assert!(p.message("b").may_send(false) && p.message("b").may_send(true));
    assert!(p.message("bp").may_send(false) && p.message("bp").may_send(true));
    assert!(!p.message("bf").may_send(false) && !p.message("bf").may_send(true));
    assert!(!p.message("p").may_send(false) && p.message("p").may_send(true));
}

#[test]
fn explicit_false_across_channel_entries_wins_for_events() {
    let c = with_channels(json!({
        "*": {"messages": {"*": {"publish": true, "echo": true}}},
        "quiet-*": {"messages": {"chat": {"publish": false}}},
        "#regex:^noecho": {"messages": {"#regex:.": {"echo": false}}}
    }));
    assert!(perms(&c, "loud").message("chat").may_send(true));
    assert!(!perms(&c, "quiet-1").message("chat").may_send(true));
    assert!(perms(&c, "quiet-1").message("other").may_send(true));
    assert!(perms(&c, "loud").message("x").echo);
    assert!(!perms(&c, "noecho-room").message("x").echo);
}

#[test]
fn store_prefers_exact_event_then_specific_pattern_then_channel() {
    let c = with_channels(json!({
        "*": {"messages": {"*": {"store": 10}, "chat": {"store": 20}}},
        "room-*": {"messages": {"*": {"store": 30}, "ch*": {"store": 40}}}
    }));
    // Exact event key wins over any event pattern, even on a broader channel key.
    assert_eq!(perms(&c, "room-1").message("chat").store, 20);
    // More specific event pattern next.
    assert_eq!(perms(&c, "room-1").message("chatter").store, 40);
    // Same event pattern: the more specific channel key breaks the tie.
    assert_eq!(perms(&c, "room-1").message("x").store, 30);
    assert_eq!(perms(&c, "lobby").message("x").store, 10);
    // Forever.
    let c = with_channels(json!({"c": {"messages": {"e": {"store": -1}}}}));
    assert_eq!(perms(&c, "c").message("e").store, STORE_FOREVER);
}

#[test]
fn react_true_false_and_lists() {
    let c = with_channels(json!({"c": {"messages": {
        "any": {"react": true}, "none": {"react": false}, "few": {"react": ["a"]},
        "f*": {"react": true}
    }}}));
    let p = perms(&c, "c");
    assert!(p.message("any").may_react("whatever"));
    assert!(!p.message("none").may_react("a"));
    // The exact "few" list beats the broader "f*" true.
    assert!(p.message("few").may_react("a"));
    assert!(!p.message("few").may_react("b"));
    assert!(p.message("fun").may_react("b"));
    assert!(!p.message("unset").may_react("a"));
}

#[test]
fn an_explicit_react_false_wins_over_a_more_specific_grant() {
    // Hotsock's rule for `react`: an explicit `false` cannot be overridden,
    // whichever key is more specific.
    let c = with_channels(json!({
        "chat.*": {"messages": {"*": {"react": false}}},
        "chat.1": {"messages": {"msg": {"react": true}, "vote": {"react": ["yes"]}}}
    }));
    let p = perms(&c, "chat.1");
    assert!(!p.message("msg").may_react("👍"));
    assert!(!p.message("vote").may_react("yes"));
    // Where no `false` matches, the most specific grant still decides.
    let open = with_channels(
        json!({"c": {"messages": {"*": {"react": true}, "vote": {"react": ["yes"]}}}}),
    );
    assert!(!perms(&open, "c").message("vote").may_react("no"));
    assert!(perms(&open, "c").message("chat").may_react("no"));
}

// ---- storage resolution ----

#[test]
fn storage_directives_resolve() {
    let c = with_channels(json!({"c": {"storage": {
        "title": {"observe": true, "get": true, "set": true, "store": 60, "scheduleBefore": 5,
                  "emitPubSubEvent": true},
        "cfg-*": {"get": true},
        "cfg-secret": {"get": false}
    }}}));
    let p = perms(&c, "c");
    let title = p.storage("title");
    assert!(title.observe && title.get && title.set && title.emit_pub_sub_event);
    assert_eq!(title.store, 60);
    assert_eq!(title.schedule_before, Some(5));
    let cfg = p.storage("cfg-a");
    assert!(cfg.get && !cfg.set && !cfg.observe);
    assert_eq!(cfg.store, STORE_FOREVER, "storage defaults to forever");
    assert!(!p.storage("cfg-secret").get);
    assert!(!p.storage("nothing").get);
}

// ---- layering (subscribe token over connect token) ----

#[test]
fn a_subscribe_token_adds_grants_and_replaces_values_but_cannot_lift_a_false() {
    let connect = with_channels(json!({"room-*": {
        "historyStart": 100,
        "messages": {"chat": {"publish": true, "echo": true, "store": 60}, "secret": {"publish": false}}
    }}));
    let subscribe = claims(
        json!({"exp": 1, "scope": "subscribe", "channels": {"room-1": {
            "subscribe": true, "historyStart": 50,
            "messages": {"chat": {"echo": false, "store": 10}, "extra": {"publish": true},
                         "secret": {"publish": true}}
        }}}),
    );
    let p = ChannelPermissions::layered(
        connect.channels.grant_for("room-1"),
        Some(subscribe.channels.grant_for("room-1")),
    );
    assert!(
        p.may_subscribe(),
        "the subscribe token grants what the connect token lacked"
    );
    assert_eq!(
        p.history_start(),
        Some(50.0),
        "a valued directive: the subscribe token's"
    );
    let chat = p.message("chat");
    assert!(chat.may_send(true), "publish from the connect token");
    assert!(
        !chat.echo,
        "the subscribe token's explicit false denies echo"
    );
    assert_eq!(chat.store, 10);
    assert!(p.message("extra").may_send(true));
    assert!(
        !p.message("secret").may_send(true),
        "the connect token's explicit false is not lifted by the subscribe token"
    );
    // Without the subscribe token nothing of it applies.
    let alone = ChannelPermissions::layered(connect.channels.grant_for("room-1"), None);
    assert!(!alone.may_subscribe());
    assert!(!alone.message("extra").may_send(true));
    assert_eq!(alone.history_start(), Some(100.0));
}

#[test]
fn an_explicit_false_in_the_connect_token_denies_a_subscribe_tokens_true() {
    let connect = with_channels(json!({"room-*": {"subscribe": false}}));
    let subscribe = claims(json!({"exp": 1, "scope": "subscribe",
        "channels": {"room-1": {"subscribe": true, "storage": {"k": {"get": true}}}}}));
    let deny_get = with_channels(json!({"room-1": {"storage": {"*": {"get": false}}}}));
    let p = ChannelPermissions::layered(
        connect.channels.grant_for("room-1"),
        Some(subscribe.channels.grant_for("room-1")),
    );
    assert!(!p.may_subscribe());
    let q = ChannelPermissions::layered(
        deny_get.channels.grant_for("room-1"),
        Some(subscribe.channels.grant_for("room-1")),
    );
    assert!(
        !q.storage("k").get,
        "storage flags resolve across tokens too"
    );
}

#[test]
fn then_appends_lower_precedence_layers() {
    let a = with_channels(json!({"c": {"getInfo": false}}));
    let b = with_channels(json!({"c": {"getInfo": true, "subscribe": true}}));
    let p = perms(&a, "c").then(perms(&b, "c"));
    assert!(!p.may_get_info());
    assert!(p.may_subscribe());
}

#[test]
fn grants_round_trip_through_json_for_storage() {
    let c = with_channels(json!({
        "room-*": {"subscribe": true, "messages": {"#regex:^c": {"publish": true}}},
        "room-1": {"alias": "r1", "storage": {"k": {"get": true}}}
    }));
    let p = perms(&c, "room-1");
    let text = serde_json::to_string(&p).expect("serialize");
    // Compiled keys are stored as their source strings, as before they were
    // kept compiled, so grants stored by earlier releases read the same.
    let stored: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(stored["layers"][0]["entries"][0]["key"], "room-*");
    assert_eq!(
        stored["layers"][0]["entries"][0]["directives"]["messages"]["#regex:^c"]["publish"],
        true
    );
    let back: ChannelPermissions = serde_json::from_str(&text).expect("deserialize");
    assert_eq!(back, p);
    assert!(back.message("chat").may_send(true));
    assert!(back.storage("k").get);
    assert_eq!(back.alias().as_deref(), Some("r1"));
}

#[test]
fn corrupted_stored_grant_keys_deny() {
    let p: ChannelPermissions = serde_json::from_value(json!({"layers": [{"entries": [
        {"key": "#regex:(", "directives": {"messages": {"e": {"publish": true}}}},
        {"key": "c", "directives": {"messages": {"#regex:[": {"publish": true}},
                                    "storage": {"#regex:)": {"get": true}}}}
    ]}]}))
    .expect("shape is valid");
    assert!(!p.message("e").may_send(true));
    assert!(!p.message("[").may_send(true));
    assert!(!p.storage(")").get);
    // A channel flag's explicit false still denies from an entry whose key no
    // longer compiles, as every false in any entry does.
    let q: ChannelPermissions = serde_json::from_value(json!({"layers": [{"entries": [
        {"key": "#regex:(", "directives": {"subscribe": false}},
        {"key": "c", "directives": {"subscribe": true}}
    ]}]}))
    .expect("shape is valid");
    assert!(!q.may_subscribe());
}
