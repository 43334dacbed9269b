//! Why a token grants what it grants on one channel, for the web console
//! (`POST /console/explain`). Every value here is the resolver's own answer
//! ([`ChannelPermissions`], over the entries [`ChannelRules::grant_for`]
//! matched); the explanation adds the keys behind it: which keys matched (an
//! exact name, a `*` wildcard or a `#regex:`), which of them set the
//! directive, where an explicit `false` won, and which key was the most
//! specific for a valued directive (the resolver, `Matched`, picks it, so the choice
//! cannot drift from the one the stage makes).
//!
//! One token, as a connection's connect token grants it; a subscribe token's
//! grants would join them for one subscription.

use super::{
    ChannelPermissions, ChannelRules, Claims, Matched, MessageDirectives, ReactRule,
    StorageDirectives, STORE_FOREVER,
};
use crate::names;
use crate::pattern::Pattern;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// What form a key has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    Exact,
    Wildcard,
    Regex,
}

impl KeyKind {
    pub fn of(pattern: &Pattern) -> Self {
        match pattern {
            Pattern::Exact(_) => KeyKind::Exact,
            Pattern::Wildcard { .. } => KeyKind::Wildcard,
            Pattern::Regex { .. } => KeyKind::Regex,
        }
    }

    fn word(self) -> &'static str {
        match self {
            KeyKind::Exact => "exact",
            KeyKind::Wildcard => "wildcard",
            KeyKind::Regex => "regex",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Key {
    pub key: String,
    pub kind: KeyKind,
}

impl Key {
    fn of(pattern: &Pattern) -> Self {
        Key {
            key: pattern.source().to_owned(),
            kind: KeyKind::of(pattern),
        }
    }
}

/// What one key's value did to the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// An explicit `false`: it wins over every `true`.
    Wins,
    /// A `true` that an explicit `false` of another matching key overrules.
    Overruled,
    /// A `true`, and nothing says `false`.
    Grants,
    /// The most specific key that sets a valued directive: its value is the answer.
    Decides,
    /// Sets a valued directive too, but a more specific key decides.
    LessSpecific,
}

/// One matching key that sets a directive.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// The `channels` key of the entry.
    pub channel_key: String,
    /// The key that set the value: the channel key, or the event (storage)
    /// key inside the entry's `messages` (`storage`).
    pub key: String,
    pub kind: KeyKind,
    pub value: Value,
    pub outcome: Outcome,
}

/// One directive's answer and its reasons.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Directive {
    pub name: &'static str,
    pub value: Value,
    /// No matching key sets it: the default applies.
    pub default: bool,
    pub sources: Vec<Source>,
    pub why: String,
}

/// The directives of one event or storage key of the channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Section {
    pub name: String,
    /// Why the name is not one a client could use, if it is not.
    pub invalid: Option<String>,
    pub directives: Vec<Directive>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The name asked about.
    pub name: String,
    /// The channel it names: itself, or the channel of the token's alias `name`.
    pub channel: String,
    /// The alias the token gives the channel.
    pub alias: Option<String>,
    /// Why `channel` is not a channel name, if it is not.
    pub invalid: Option<String>,
    /// The token's `channels` keys that match, in the token's order.
    pub matched: Vec<Key>,
    pub unmatched: Vec<Key>,
    pub directives: Vec<Directive>,
    pub event: Option<Section>,
    pub storage_key: Option<Section>,
    /// The event keys (`messages`) and storage keys of the matching entries.
    pub events: Vec<String>,
    pub storage_keys: Vec<String>,
}

/// Explains what `claims` grant on the channel `name` (a channel or one of the
/// token's aliases), and for `event` and storage `key` when given.
pub fn explain(claims: &Claims, name: &str, event: Option<&str>, key: Option<&str>) -> Explanation {
    let rules = &claims.channels;
    let channel = rules.resolve_alias(name).unwrap_or(name).to_owned();
    let grant = rules.grant_for(&channel);
    let permissions = ChannelPermissions::single(grant.clone());
    let entries: Vec<_> = grant.patterned().collect();

    let said_by_channel = |pick: &dyn Fn(&super::ChannelDirectives) -> Option<Value>| {
        entries
            .iter()
            .map(|(pattern, d)| Said {
                keys: vec![(*pattern).clone()],
                channel_key: pattern.source().to_owned(),
                value: pick(d),
            })
            .collect::<Vec<_>>()
    };
    let flag = |name, pick: &dyn Fn(&super::ChannelDirectives) -> Option<bool>, value| {
        explain_flag(name, said_by_channel(&|d| pick(d).map(Value::Bool)), value)
    };
    let auto = rules.auto_subscribe_channels().contains(&channel);
    let mut directives = vec![
        flag("subscribe", &|d| d.subscribe, permissions.may_subscribe()),
        explain_auto_subscribe(
            said_by_channel(&|d| d.auto_subscribe.map(Value::Bool)),
            auto,
            permissions.may_subscribe(),
        ),
        flag("getInfo", &|d| d.get_info, permissions.may_get_info()),
        flag(
            "omitFromSubCount",
            &|d| d.omit_from_sub_count,
            permissions.omit_from_sub_count(),
        ),
        flag("umdUpdate", &|d| d.umd_update, permissions.may_update_umd()),
        explain_valued(
            "historyStart",
            said_by_channel(&|d| d.history_start.map(|v| json!(v))),
            json!(permissions.history_start()),
            "only messages published since the subscription began are listed",
        ),
        explain_valued(
            "alias",
            said_by_channel(&|d| d.alias.as_ref().map(|a| json!(a))),
            json!(permissions.alias()),
            "the channel has no other name",
        ),
    ];
    if let Some(d) = directives.iter_mut().find(|d| d.name == "umdUpdate") {
        d.why
            .push_str(" (a umd update counts only the umd token's own grant)");
    }

    let event = event.map(|event| Section {
        name: event.to_owned(),
        invalid: names::validate_event(event).err().map(|e| e.message),
        directives: explain_event(&entries, &permissions, event),
    });
    let storage_key = key.map(|key| Section {
        name: key.to_owned(),
        invalid: names::validate_storage_key(key).err().map(|e| e.message),
        directives: explain_storage(&entries, &permissions, key),
    });
    let (matched, unmatched) = keys_of(rules, &channel);
    let events: BTreeSet<String> = entries
        .iter()
        .flat_map(|(_, d)| d.messages.keys().map(|k| k.source().to_owned()))
        .collect();
    let storage_keys: BTreeSet<String> = entries
        .iter()
        .flat_map(|(_, d)| d.storage.keys().map(|k| k.source().to_owned()))
        .collect();
    Explanation {
        name: name.to_owned(),
        alias: permissions.alias(),
        invalid: names::validate_channel(&channel).err().map(|e| e.message),
        channel,
        matched,
        unmatched,
        directives,
        event,
        storage_key,
        events: events.into_iter().collect(),
        storage_keys: storage_keys.into_iter().collect(),
    }
}

fn keys_of(rules: &ChannelRules, channel: &str) -> (Vec<Key>, Vec<Key>) {
    let (matched, unmatched): (Vec<_>, Vec<_>) =
        rules.entries.iter().partition(|(p, _)| p.matches(channel));
    let keys = |entries: Vec<&(Pattern, _)>| entries.into_iter().map(|(p, _)| Key::of(p)).collect();
    (keys(matched), keys(unmatched))
}

/// One matching entry's say on a directive: its keys in the resolver's order of
/// specificity (the event or storage key first, then the channel key) and the
/// value it sets, if any.
struct Said {
    keys: Vec<Pattern>,
    channel_key: String,
    value: Option<Value>,
}

impl Said {
    fn source(&self, outcome: Outcome) -> Source {
        Source {
            channel_key: self.channel_key.clone(),
            key: self.keys[0].source().to_owned(),
            kind: KeyKind::of(&self.keys[0]),
            value: self.value.clone().unwrap_or(Value::Null),
            outcome,
        }
    }

    /// `exact key "chat"`, or for an event key `wildcard key "*" of channel key "chat"`.
    fn describe(&self) -> String {
        let own = format!(
            "{} key {:?}",
            KeyKind::of(&self.keys[0]).word(),
            self.keys[0].source()
        );
        match self.keys.get(1) {
            Some(channel) => format!("{own} (channel key {:?})", channel.source()),
            None => own,
        }
    }
}

fn list(said: &[&Said]) -> String {
    let parts: Vec<String> = said.iter().map(|s| s.describe()).collect();
    match parts.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

/// A boolean directive: every matching key counts, an explicit `false` wins.
fn explain_flag(name: &'static str, said: Vec<Said>, value: bool) -> Directive {
    let setting: Vec<&Said> = said.iter().filter(|s| s.value.is_some()).collect();
    let is_false = |s: &&Said| s.value == Some(Value::Bool(false));
    let denied = setting.iter().any(is_false);
    // The resolver's own rule over the same values: a test keeps them together.
    let values: Vec<Option<bool>> = setting
        .iter()
        .map(|s| s.value.as_ref().and_then(Value::as_bool))
        .collect();
    debug_assert_eq!(
        Matched {
            layers: vec![values.iter().map(|v| (Vec::new(), v)).collect()],
        }
        .flag(|v| *v),
        (!setting.is_empty()).then_some(!denied)
    );
    let (falses, trues): (Vec<&Said>, Vec<&Said>) = setting.iter().copied().partition(is_false);
    let why = if setting.is_empty() {
        format!(
            "no matching key sets {name}, so the default applies: {}",
            yes_no(value)
        )
    } else if denied && trues.is_empty() {
        format!("explicit false in {}", list(&falses))
    } else if denied {
        format!(
            "explicit false in {} wins over true in {}",
            list(&falses),
            list(&trues)
        )
    } else {
        format!("true in {}", list(&trues))
    };
    let sources = setting
        .iter()
        .map(|s| {
            s.source(match (is_false(s), denied) {
                (true, _) => Outcome::Wins,
                (false, true) => Outcome::Overruled,
                (false, false) => Outcome::Grants,
            })
        })
        .collect();
    Directive {
        name,
        value: Value::Bool(value),
        default: setting.is_empty(),
        sources,
        why,
    }
}

/// A valued directive: the most specific key that sets it decides.
fn explain_valued(
    name: &'static str,
    said: Vec<Said>,
    value: Value,
    default_means: &str,
) -> Directive {
    let indices: Vec<usize> = (0..said.len()).collect();
    // The resolver's own choice, asked with each candidate's index as its value.
    let candidates: Vec<Option<usize>> = said
        .iter()
        .zip(&indices)
        .map(|(s, i)| s.value.as_ref().map(|_| *i))
        .collect();
    let winner = Matched {
        layers: vec![said
            .iter()
            .zip(&candidates)
            .map(|(s, c)| (s.keys.iter().collect(), c))
            .collect()],
    }
    .valued(|c| c.as_ref());
    let setting: Vec<(usize, &Said)> = said
        .iter()
        .enumerate()
        .filter(|(_, s)| s.value.is_some())
        .collect();
    let why = match winner.map(|w| &said[w]) {
        None => format!("no matching key sets {name}: {default_means}"),
        Some(w) if setting.len() == 1 => format!("from {}", w.describe()),
        Some(w) => format!(
            "from {}, the most specific of the {} keys that set it (exact beats wildcard, \
             which beats regex; then the key with more literal characters)",
            w.describe(),
            setting.len()
        ),
    };
    let sources = setting
        .iter()
        .map(|(i, s)| {
            s.source(if Some(*i) == winner {
                Outcome::Decides
            } else {
                Outcome::LessSpecific
            })
        })
        .collect();
    Directive {
        name,
        value,
        default: winner.is_none(),
        sources,
        why,
    }
}

fn explain_auto_subscribe(said: Vec<Said>, auto: bool, may_subscribe: bool) -> Directive {
    let mut d = explain_flag("autoSubscribe", said, auto);
    let asked = d.sources.iter().any(|s| s.value == Value::Bool(true));
    d.why = if auto {
        format!("{}: subscribed right after connecting", d.why)
    } else if asked && d.sources.iter().all(|s| s.value == Value::Bool(true)) {
        let exact = d.sources.iter().any(|s| s.kind == KeyKind::Exact);
        if !exact {
            "autoSubscribe counts only on exact channel keys of connect tokens".to_owned()
        } else if !may_subscribe {
            format!("{}, but an explicit subscribe: false wins", d.why)
        } else {
            format!("{} (connect tokens only)", d.why)
        }
    } else {
        format!("{}: not subscribed on connect", d.why)
    };
    d
}

/// The matching entries' event keys that match `event`, as the resolver finds them.
fn said_by_event(
    entries: &[(&Pattern, &super::ChannelDirectives)],
    event: &str,
    pick: &dyn Fn(&MessageDirectives) -> Option<Value>,
) -> Vec<Said> {
    entries
        .iter()
        .flat_map(|(channel_key, d)| {
            d.messages.iter().filter_map(move |(key, m)| {
                let pattern = key.pattern()?;
                pattern.matches(event).then(|| Said {
                    keys: vec![pattern.clone(), (*channel_key).clone()],
                    channel_key: channel_key.source().to_owned(),
                    value: pick(m),
                })
            })
        })
        .collect()
}

fn explain_event(
    entries: &[(&Pattern, &super::ChannelDirectives)],
    permissions: &ChannelPermissions,
    event: &str,
) -> Vec<Directive> {
    let m = permissions.message(event);
    let said =
        |pick: &dyn Fn(&MessageDirectives) -> Option<Value>| said_by_event(entries, event, pick);
    let flag = |name, pick: fn(&MessageDirectives) -> Option<bool>, value| {
        explain_flag(name, said(&|d| pick(d).map(Value::Bool)), value)
    };
    let publish = flag("publish", |d| d.publish, m.publish == Some(true));
    let mut broadcast = flag("broadcast", |d| d.broadcast, m.broadcast);
    broadcast.why.push_str(" (counts in connect tokens only)");
    let sending = |subscribed: bool| {
        let allowed = m.may_send(subscribed);
        let why = match (m.publish, m.broadcast, subscribed) {
            (Some(false), _, _) => "publish is explicitly false: refused, broadcast or not",
            (Some(true), _, true) => "publish: true lets a subscriber send it",
            (_, true, _) => "broadcast: true lets any connection send it, subscribed or not",
            (Some(true), false, false) => {
                "publish covers subscribers only, and broadcast is not granted"
            }
            _ => "neither publish nor broadcast is granted",
        };
        Directive {
            name: if subscribed {
                "send, subscribed"
            } else {
                "send, not subscribed"
            },
            value: Value::Bool(allowed),
            default: false,
            sources: Vec::new(),
            why: why.to_owned(),
        }
    };
    let react_said = said(&|d| d.react.as_ref().map(|r| json!(r)));
    let react = if m.react == Some(ReactRule::Any(false))
        && react_said
            .iter()
            .any(|s| s.value == Some(Value::Bool(false)))
    {
        // An explicit react: false wins like a boolean's false.
        let mut d = explain_flag("react", react_said, false);
        d.value = json!(false);
        d.why = d
            .why
            .replace(" wins over true in ", " wins over the true or list in ");
        d
    } else {
        explain_valued(
            "react",
            react_said,
            json!(m.react),
            "no reactions to messages of this event",
        )
    };
    vec![
        publish,
        broadcast,
        sending(true),
        sending(false),
        flag("echo", |d| d.echo, m.echo),
        explain_valued(
            "store",
            said(&|d| d.store.map(|v| json!(v))),
            json!(m.store),
            "0, the message is delivered and not stored",
        ),
        react,
        explain_valued(
            "scheduleBefore",
            said(&|d| d.schedule_before.map(|v| json!(v))),
            json!(m.schedule_before),
            "the event may not be scheduled",
        ),
        flag(
            "emitPubSubEvent",
            |d| d.emit_pub_sub_event,
            m.emit_pub_sub_event,
        ),
    ]
}

fn explain_storage(
    entries: &[(&Pattern, &super::ChannelDirectives)],
    permissions: &ChannelPermissions,
    key: &str,
) -> Vec<Directive> {
    let s = permissions.storage(key);
    let said = |pick: &dyn Fn(&StorageDirectives) -> Option<Value>| -> Vec<Said> {
        entries
            .iter()
            .flat_map(|(channel_key, d)| {
                d.storage.iter().filter_map(move |(k, st)| {
                    let pattern = k.pattern()?;
                    pattern.matches(key).then(|| Said {
                        keys: vec![pattern.clone(), (*channel_key).clone()],
                        channel_key: channel_key.source().to_owned(),
                        value: pick(st),
                    })
                })
            })
            .collect()
    };
    let flag = |name, pick: fn(&StorageDirectives) -> Option<bool>, value| {
        explain_flag(name, said(&|d| pick(d).map(Value::Bool)), value)
    };
    vec![
        flag("observe", |d| d.observe, s.observe),
        flag("get", |d| d.get, s.get),
        flag("set", |d| d.set, s.set),
        explain_valued(
            "store",
            said(&|d| d.store.map(|v| json!(v))),
            json!(s.store),
            if s.store == STORE_FOREVER {
                "-1, the entry is kept until cleared"
            } else {
                "the default"
            },
        ),
        explain_valued(
            "scheduleBefore",
            said(&|d| d.schedule_before.map(|v| json!(v))),
            json!(s.schedule_before),
            "writes of the key may not be scheduled",
        ),
        flag(
            "emitPubSubEvent",
            |d| d.emit_pub_sub_event,
            s.emit_pub_sub_event,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(channels: Value) -> Claims {
        let Value::Object(map) =
            json!({"exp": 2_000_000_000, "scope": "connect", "channels": channels})
        else {
            unreachable!()
        };
        Claims::parse(&map).expect("valid claims")
    }

    fn directive<'a>(directives: &'a [Directive], name: &str) -> &'a Directive {
        directives
            .iter()
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    }

    fn outcome(d: &Directive, key: &str) -> Option<Outcome> {
        d.sources.iter().find(|s| s.key == key).map(|s| s.outcome)
    }

    #[test]
    fn matched_keys_are_named_with_their_kind() {
        let c = claims(json!({
            "room-42": {"subscribe": true},
            "room-*": {"subscribe": true},
            "#regex:^room-[0-9]+$": {},
            "other": {"subscribe": true},
        }));
        let e = explain(&c, "room-42", None, None);
        assert_eq!(e.channel, "room-42");
        let matched: Vec<_> = e.matched.iter().map(|k| (k.key.as_str(), k.kind)).collect();
        assert!(matched.contains(&("room-42", KeyKind::Exact)));
        assert!(matched.contains(&("room-*", KeyKind::Wildcard)));
        assert!(matched.contains(&("#regex:^room-[0-9]+$", KeyKind::Regex)));
        assert_eq!(
            e.unmatched,
            vec![Key {
                key: "other".into(),
                kind: KeyKind::Exact
            }]
        );
        let subscribe = directive(&e.directives, "subscribe");
        assert_eq!(subscribe.value, json!(true));
        assert!(!subscribe.default);
        assert_eq!(
            subscribe.sources.len(),
            2,
            "the regex entry does not set it"
        );
        assert!(subscribe
            .sources
            .iter()
            .all(|s| s.outcome == Outcome::Grants));
        assert!(subscribe.why.starts_with("true in "), "{}", subscribe.why);
    }

    #[test]
    fn an_explicit_false_wins_and_says_over_what() {
        let c = claims(json!({
            "room-*": {"subscribe": true, "getInfo": true},
            "#regex:^room-4[0-9]$": {"subscribe": false},
        }));
        let e = explain(&c, "room-42", None, None);
        let subscribe = directive(&e.directives, "subscribe");
        assert_eq!(subscribe.value, json!(false));
        assert_eq!(subscribe.sources.len(), 2);
        assert_eq!(outcome(subscribe, "room-*"), Some(Outcome::Overruled));
        assert_eq!(
            outcome(subscribe, "#regex:^room-4[0-9]$"),
            Some(Outcome::Wins)
        );
        assert_eq!(
            subscribe.why,
            r##"explicit false in regex key "#regex:^room-4[0-9]$" wins over true in wildcard key "room-*""##
        );
        // Elsewhere the wildcard alone grants.
        let other = explain(&c, "room-7", None, None);
        assert_eq!(directive(&other.directives, "subscribe").value, json!(true));
        // A directive nobody sets has its default.
        let omit = directive(&e.directives, "omitFromSubCount");
        assert!(omit.default && omit.sources.is_empty());
        assert_eq!(omit.value, json!(false));
    }

    #[test]
    fn valued_directives_name_the_most_specific_key() {
        let c = claims(json!({
            "chat-1": {"historyStart": 100},
            "chat-*": {"historyStart": 200, "messages": {
                "*": {"store": 60, "publish": true},
                "typing": {"store": 0, "publish": false},
            }},
            "*": {"messages": {"typing": {"store": 5}}},
        }));
        let e = explain(&c, "chat-1", Some("typing"), None);
        let history = directive(&e.directives, "historyStart");
        assert_eq!(history.value, json!(100.0));
        assert_eq!(outcome(history, "chat-*"), Some(Outcome::LessSpecific));
        assert_eq!(outcome(history, "chat-1"), Some(Outcome::Decides));
        assert!(
            history
                .why
                .starts_with(r#"from exact key "chat-1", the most specific of the 2 keys"#),
            "{}",
            history.why
        );
        let event = e.event.expect("event section");
        let store = directive(&event.directives, "store");
        // The exact event key decides first; the channel key breaks the tie.
        assert_eq!(store.value, json!(0));
        let decided: Vec<_> = store
            .sources
            .iter()
            .filter(|s| s.outcome == Outcome::Decides)
            .map(|s| (s.key.as_str(), s.channel_key.as_str()))
            .collect();
        assert_eq!(decided, vec![("typing", "chat-*")]);
        let publish = directive(&event.directives, "publish");
        assert_eq!(publish.value, json!(false));
        assert!(publish.why.starts_with(r#"explicit false in exact key "typing" (channel key "chat-*") wins over true in wildcard key "*""#), "{}", publish.why);
        let send = directive(&event.directives, "send, subscribed");
        assert_eq!(send.value, json!(false));
        assert_eq!(
            send.why,
            "publish is explicitly false: refused, broadcast or not"
        );
        assert_eq!(e.events, vec!["*".to_owned(), "typing".to_owned()]);
    }

    #[test]
    fn every_answer_is_the_resolvers() {
        // The explanation's values are the permissions the stage enforces, for
        // a token mixing every key form, explicit falses and valued directives.
        let c = claims(json!({
            "room-1": {"subscribe": true, "alias": "lobby", "historyStart": 5,
                "messages": {"chat": {"publish": true, "react": ["👍"]}},
                "storage": {"title": {"get": true, "set": false, "store": 60}}},
            "room-*": {"getInfo": true, "omitFromSubCount": false, "umdUpdate": true,
                "messages": {"*": {"broadcast": true, "echo": true, "store": -1, "react": true,
                    "scheduleBefore": 1_900_000_000, "emitPubSubEvent": true}},
                "storage": {"*": {"observe": true, "set": true, "get": false, "scheduleBefore": 1_800_000_000}}},
            "#regex:1$": {"messages": {"#regex:^ch": {"echo": false, "react": false}},
                "storage": {"#regex:^ti": {"emitPubSubEvent": true}}},
        }));
        for channel in ["room-1", "room-2", "lobby", "nothing"] {
            for event in ["chat", "other"] {
                for key in ["title", "x"] {
                    let e = explain(&c, channel, Some(event), Some(key));
                    let real = c.channels.resolve_alias(channel).unwrap_or(channel);
                    let p = ChannelPermissions::single(c.channels.grant_for(real));
                    let value = |d: &[Directive], name| directive(d, name).value.clone();
                    assert_eq!(value(&e.directives, "subscribe"), json!(p.may_subscribe()));
                    assert_eq!(value(&e.directives, "getInfo"), json!(p.may_get_info()));
                    assert_eq!(value(&e.directives, "umdUpdate"), json!(p.may_update_umd()));
                    assert_eq!(
                        value(&e.directives, "historyStart"),
                        json!(p.history_start())
                    );
                    assert_eq!(value(&e.directives, "alias"), json!(p.alias()));
                    let m = p.message(event);
                    let ev = &e.event.as_ref().expect("event").directives;
                    assert_eq!(value(ev, "send, subscribed"), json!(m.may_send(true)));
                    assert_eq!(value(ev, "send, not subscribed"), json!(m.may_send(false)));
                    assert_eq!(value(ev, "echo"), json!(m.echo));
                    assert_eq!(value(ev, "store"), json!(m.store));
                    assert_eq!(value(ev, "react"), json!(m.react));
                    assert_eq!(value(ev, "scheduleBefore"), json!(m.schedule_before));
                    let s = p.storage(key);
                    let st = &e.storage_key.as_ref().expect("key").directives;
                    for (name, want) in [("observe", s.observe), ("get", s.get), ("set", s.set)] {
                        assert_eq!(value(st, name), json!(want), "{channel} {key} {name}");
                    }
                    assert_eq!(value(st, "store"), json!(s.store));
                    // A valued directive's deciding source carries the answer.
                    for d in e.directives.iter().chain(ev).chain(st) {
                        if let Some(decides) =
                            d.sources.iter().find(|s| s.outcome == Outcome::Decides)
                        {
                            assert_eq!(
                                decides.value, d.value,
                                "{channel} {event} {key} {}",
                                d.name
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn react_false_wins_over_a_more_specific_list() {
        let c = claims(json!({
            "chat": {"messages": {"msg": {"react": ["👍"]}}},
            "*": {"messages": {"*": {"react": false}}},
        }));
        let e = explain(&c, "chat", Some("msg"), None);
        let react = directive(&e.event.as_ref().expect("event").directives, "react");
        assert_eq!(react.value, json!(false));
        assert!(
            react.why.contains("wins over the true or list in"),
            "{}",
            react.why
        );
        assert_eq!(
            react
                .sources
                .iter()
                .find(|s| s.key == "*")
                .map(|s| s.outcome),
            Some(Outcome::Wins)
        );
    }

    #[test]
    fn aliases_invalid_names_and_auto_subscribe_are_explained() {
        let c = claims(json!({
            "room.7f3a": {"alias": "room", "autoSubscribe": true},
            "quiet": {"autoSubscribe": true, "subscribe": false},
        }));
        let e = explain(&c, "room", None, None);
        assert_eq!((e.name.as_str(), e.channel.as_str()), ("room", "room.7f3a"));
        assert_eq!(e.alias.as_deref(), Some("room"));
        let auto = directive(&e.directives, "autoSubscribe");
        assert_eq!(auto.value, json!(true));
        assert!(
            auto.why.ends_with("subscribed right after connecting"),
            "{}",
            auto.why
        );
        let quiet = explain(&c, "quiet", None, None);
        let auto = directive(&quiet.directives, "autoSubscribe");
        assert_eq!(auto.value, json!(false));
        assert!(
            auto.why.ends_with("but an explicit subscribe: false wins"),
            "{}",
            auto.why
        );
        let bad = explain(&c, "room-*", Some("#x"), Some("a b"));
        assert!(bad.invalid.is_some());
        assert!(bad.event.expect("event").invalid.is_some());
        assert!(bad.storage_key.expect("key").invalid.is_some());
        assert!(bad.matched.is_empty());
    }

    #[test]
    fn it_serializes_for_the_console() {
        let c = claims(json!({"chat": {"subscribe": true}}));
        let value = serde_json::to_value(explain(&c, "chat", None, Some("k"))).expect("json");
        assert_eq!(value["matched"], json!([{"key": "chat", "kind": "exact"}]));
        assert_eq!(value["directives"][0]["sources"][0]["outcome"], "grants");
        assert_eq!(value["directives"][0]["sources"][0]["channelKey"], "chat");
        assert_eq!(value["storageKey"]["name"], "k");
        assert!(value["event"].is_null());
    }
}
