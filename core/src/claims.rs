//! The claims of a verified token, validated on parse, and the permission
//! resolution rule shared by channels, events and storage keys.
//!
//! Resolution (docs/protocol.md, "Permissions"): gather every entry whose key matches; a boolean
//! directive that is explicitly `false` in any of them wins, otherwise `true` from
//! any of them, otherwise the default (`false`). A valued directive (`store`,
//! `historyStart`, `react`, `scheduleBefore`) comes from the most specific matching
//! key that sets it — exact, then wildcard, then regex; see
//! [`Pattern::cmp_specificity`]. For events and storage keys the event/key pattern
//! decides first and the channel pattern breaks ties.
//!
//! `react` is valued, but an explicit `false` in any matching entry wins over
//! the most specific `true` or list, as for a boolean (Hotsock's rule).
//!
//! A subscription's permissions are layers: a subscribe token's grant over the
//! connect token's. A boolean directive (and `react: false`) is resolved over
//! every layer's matching entries together, so an explicit `false` in either
//! token denies, whatever the other says (docs/design.md, "Permission
//! resolution"): a subscribe token adds grants, it cannot lift a deny. A valued
//! directive comes from the first layer that sets it, so a subscribe token's
//! `store` or `historyStart` replaces the connect token's.

use crate::names;
use crate::pattern::{Pattern, PatternError, PatternKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::BTreeMap;

pub mod explain;
#[cfg(test)]
mod tests;

pub use explain::explain;

pub const MIN_HEARTBEAT_TIMEOUT: u32 = 5;
pub const MAX_HEARTBEAT_TIMEOUT: u32 = 600;
/// `store` upper bound in seconds (100 years), from Hotsock's claims reference.
pub const MAX_STORE_SECONDS: i64 = 3_155_695_200;
/// `store: -1` keeps a message or storage entry forever.
pub const STORE_FOREVER: i64 = -1;

/// Whether `store` seconds suit a storage entry: -1 (forever) or 1 to
/// [`MAX_STORE_SECONDS`]; unlike a message's, 0 has no meaning here.
pub fn valid_storage_store(store: i64) -> bool {
    store == STORE_FOREVER || (1..=MAX_STORE_SECONDS).contains(&store)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    #[error("claim {0:?} has the wrong type: {1}")]
    WrongType(String, String),
    #[error("the scope claim is required")]
    MissingScope,
    #[error("the exp claim is required")]
    MissingExpiry,
    #[error("uid must be at most 128 characters")]
    UidTooLong,
    #[error("umd must be at most 1 KiB of JSON")]
    UmdTooLarge,
    #[error("heartbeatTimeout must be between 5 and 600 seconds")]
    HeartbeatTimeoutOutOfRange,
    #[error("singleUse tokens must carry a jti")]
    SingleUseWithoutJti,
    #[error(transparent)]
    Pattern(#[from] PatternError),
    #[error("channel {0:?}: {1}")]
    InvalidChannel(String, String),
    #[error("channel {channel:?}: {directive} is only allowed on exact channel names")]
    ExactKeyOnly {
        channel: String,
        directive: &'static str,
    },
    #[error("alias {0:?} is given to more than one channel")]
    DuplicateAlias(String),
    #[error("alias {0:?} is also a channel of this token")]
    AliasIsAChannel(String),
    #[error("channel {channel:?}: {message}")]
    InvalidDirective { channel: String, message: String },
    #[error("the claims are not a JSON object: {0}")]
    NotAnObject(String),
}

impl ClaimsError {
    pub fn code(&self) -> &'static str {
        "TOKEN_INVALID_CLAIMS"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Connect,
    Subscribe,
    Umd,
}

/// A verified token's claims. Unknown claims are ignored, like other JWT consumers
/// do, so backends may add their own.
#[derive(Debug, Clone)]
pub struct Claims {
    pub exp: i64,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
    pub jti: Option<String>,
    scopes: Vec<Scope>,
    pub uid: Option<String>,
    pub umd: Option<Value>,
    pub channels: ChannelRules,
    pub keep_alive: bool,
    pub heartbeat_timeout: Option<u32>,
    pub single_use: bool,
    pub connection_id: Option<String>,
    pub umd_update: bool,
    pub umd_propagate: bool,
}

/// The JSON shape of the claims; validated further in [`Claims::parse`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawClaims {
    exp: Option<NumericDate>,
    nbf: Option<NumericDate>,
    iat: Option<NumericDate>,
    jti: Option<String>,
    scope: Option<String>,
    uid: Option<String>,
    #[serde(default, deserialize_with = "present_value")]
    umd: Option<Value>,
    #[serde(default)]
    channels: BTreeMap<String, ChannelDirectives>,
    #[serde(default)]
    keep_alive: bool,
    heartbeat_timeout: Option<i64>,
    #[serde(default)]
    single_use: bool,
    connection_id: Option<String>,
    #[serde(default)]
    umd_update: bool,
    #[serde(default)]
    umd_propagate: bool,
}

/// A NumericDate directive (`scheduleBefore`): fractions of a second are dropped.
fn whole_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<NumericDate>::deserialize(d).map(|n| n.map(|n| n.seconds()))
}

/// JWT NumericDate: an integer or a float of seconds.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumericDate {
    Int(i64),
    Float(f64),
}

impl NumericDate {
    fn seconds(&self) -> i64 {
        match self {
            NumericDate::Int(i) => *i,
            NumericDate::Float(f) => *f as i64,
        }
    }
}

/// `"umd": null` is kept as `Some(Value::Null)` only to tell "set to null" from
/// "absent"; both read as no umd.
fn present_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl Claims {
    /// Parses and validates a verified token's payload. Every rule of docs/protocol.md
    /// is checked here, so a token that parses can be trusted to be well-formed.
    pub fn parse(payload: &Map<String, Value>) -> Result<Self, ClaimsError> {
        let raw: RawClaims = serde_json::from_value(Value::Object(payload.clone()))
            .map_err(|e| ClaimsError::WrongType(field_of(&e.to_string()), e.to_string()))?;
        let exp = raw.exp.ok_or(ClaimsError::MissingExpiry)?.seconds();
        let scope = raw.scope.ok_or(ClaimsError::MissingScope)?;
        let scopes = parse_scopes(&scope);
        if scopes.is_empty() {
            return Err(ClaimsError::MissingScope);
        }
        if let Some(uid) = &raw.uid {
            if uid.chars().count() > names::MAX_UID_CHARS {
                return Err(ClaimsError::UidTooLong);
            }
        }
        let umd = raw.umd.filter(|v| !v.is_null());
        if let Some(umd) = &umd {
            if names::validate_umd_size(umd).is_err() {
                return Err(ClaimsError::UmdTooLarge);
            }
        }
        let heartbeat_timeout = match raw.heartbeat_timeout {
            None => None,
            Some(t)
                if (MIN_HEARTBEAT_TIMEOUT as i64..=MAX_HEARTBEAT_TIMEOUT as i64).contains(&t) =>
            {
                Some(t as u32)
            }
            Some(_) => return Err(ClaimsError::HeartbeatTimeoutOutOfRange),
        };
        if raw.single_use && raw.jti.as_deref().is_none_or(str::is_empty) {
            return Err(ClaimsError::SingleUseWithoutJti);
        }
        let channels = ChannelRules::new(raw.channels, scopes.contains(&Scope::Connect))?;
        Ok(Claims {
            exp,
            nbf: raw.nbf.map(|n| n.seconds()),
            iat: raw.iat.map(|n| n.seconds()),
            jti: raw.jti,
            scopes,
            uid: raw.uid,
            umd,
            channels,
            keep_alive: raw.keep_alive,
            heartbeat_timeout,
            single_use: raw.single_use,
            connection_id: raw.connection_id,
            umd_update: raw.umd_update,
            umd_propagate: raw.umd_propagate,
        })
    }

    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }
}

/// Unknown scope words are ignored so newer backends can send more.
fn parse_scopes(scope: &str) -> Vec<Scope> {
    let mut scopes: Vec<Scope> = scope
        .split_ascii_whitespace()
        .filter_map(|word| match word {
            "connect" => Some(Scope::Connect),
            "subscribe" => Some(Scope::Subscribe),
            "umd" => Some(Scope::Umd),
            _ => None,
        })
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

/// Pulls the offending field's name out of a serde error for a clearer message.
fn field_of(message: &str) -> String {
    message
        .split('`')
        .nth(1)
        .map(str::to_owned)
        .unwrap_or_else(|| "claims".to_owned())
}

/// The directives of one `channels` entry, as the token states them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelDirectives {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_subscribe: Option<bool>,
    /// Unix seconds, fractions allowed (read to the millisecond).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_start: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub get_info: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub omit_from_sub_count: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub umd_update: Option<bool>,
    /// Sockhop's extension: a subscription may ask to resume after a drop
    /// (`data.resume` on subscribe), which logs the channel's messages for the
    /// stage's recovery window (docs/protocol.md, "Resume").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recover: Option<bool>,
    /// Keyed by event pattern, compiled as the token is read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub messages: BTreeMap<PatternKey, MessageDirectives>,
    /// Keyed by storage-key pattern, compiled as the token is read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage: BTreeMap<PatternKey, StorageDirectives>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageDirectives {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub react: Option<ReactRule>,
    #[serde(
        default,
        deserialize_with = "whole_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub schedule_before: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emit_pub_sub_event: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageDirectives {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observe: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub get: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<i64>,
    #[serde(
        default,
        deserialize_with = "whole_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub schedule_before: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emit_pub_sub_event: Option<bool>,
}

/// `react`: `true` allows any reaction, `false` none, a list only those.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReactRule {
    Any(bool),
    List(Vec<String>),
}

impl ReactRule {
    pub fn allows(&self, reaction: &str) -> bool {
        match self {
            ReactRule::Any(allowed) => *allowed,
            ReactRule::List(list) => list.iter().any(|r| r == reaction),
        }
    }
}

/// A token's `channels`, with every key compiled and every directive validated.
#[derive(Debug, Clone, Default)]
pub struct ChannelRules {
    entries: Vec<(Pattern, ChannelDirectives)>,
}

impl ChannelRules {
    fn new(
        raw: BTreeMap<String, ChannelDirectives>,
        connect_scope: bool,
    ) -> Result<Self, ClaimsError> {
        let mut entries = Vec::with_capacity(raw.len());
        let mut aliases = std::collections::BTreeSet::new();
        for (key, mut directives) in raw {
            if !connect_scope {
                // Only a connect token auto-subscribes or lets non-subscribers
                // publish; elsewhere these directives have no effect.
                directives.auto_subscribe = None;
                for message in directives.messages.values_mut() {
                    message.broadcast = None;
                }
            }
            let pattern = Pattern::parse(&key)?;
            if pattern.is_exact() {
                names::validate_channel(&key)
                    .map_err(|e| ClaimsError::InvalidChannel(key.clone(), e.message))?;
            }
            validate_channel_directives(&key, &pattern, &directives)?;
            if let Some(alias) = &directives.alias {
                if !aliases.insert(alias.clone()) {
                    return Err(ClaimsError::DuplicateAlias(alias.clone()));
                }
            }
            entries.push((pattern, directives));
        }
        // An alias spelled like a channel of the same token would be ambiguous.
        if let Some(alias) = aliases.iter().find(|a| {
            entries
                .iter()
                .any(|(p, _)| p.is_exact() && p.source() == a.as_str())
        }) {
            return Err(ClaimsError::AliasIsAChannel(alias.clone()));
        }
        Ok(ChannelRules { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Everything this token says about `channel`: the entries whose key matches.
    pub fn grant_for(&self, channel: &str) -> ChannelGrant {
        ChannelGrant {
            entries: self
                .entries
                .iter()
                .filter(|(pattern, _)| pattern.matches(channel))
                .map(|(pattern, directives)| GrantEntry {
                    key: PatternKey::from(pattern.clone()),
                    directives: directives.clone(),
                })
                .collect(),
        }
    }

    /// The real channel behind a name a client sent, when the name is one of
    /// this token's aliases. (An alias cannot also be an exact key of the same
    /// token; that is refused on parse.)
    pub fn resolve_alias(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find_map(|(pattern, d)| (d.alias.as_deref() == Some(name)).then(|| pattern.source()))
    }

    /// The alias this token gives `channel`, if any (exact keys only).
    pub fn alias_of(&self, channel: &str) -> Option<&str> {
        self.entries.iter().find_map(|(pattern, d)| {
            (pattern.is_exact() && pattern.source() == channel)
                .then_some(d.alias.as_deref())
                .flatten()
        })
    }

    /// Channels to subscribe on connect: exact keys with `autoSubscribe: true`,
    /// in key order. `autoSubscribe` is a grant of its own (Hotsock's examples
    /// pair it with no `subscribe`); an explicit `subscribe: false` still wins.
    pub fn auto_subscribe_channels(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(p, d)| p.is_exact() && d.auto_subscribe == Some(true))
            .map(|(p, _)| p.source().to_owned())
            .filter(|channel| {
                ChannelPermissions::single(self.grant_for(channel)).flag(|d| d.subscribe)
                    != Some(false)
            })
            .collect()
    }
}

fn validate_channel_directives(
    key: &str,
    pattern: &Pattern,
    d: &ChannelDirectives,
) -> Result<(), ClaimsError> {
    let invalid = |message: String| ClaimsError::InvalidDirective {
        channel: key.to_owned(),
        message,
    };
    if d.alias.is_some() && !pattern.is_exact() {
        return Err(ClaimsError::ExactKeyOnly {
            channel: key.to_owned(),
            directive: "alias",
        });
    }
    if let Some(alias) = &d.alias {
        names::validate_channel(alias)
            .map_err(|e| invalid(format!("alias {alias:?}: {}", e.message)))?;
    }
    if d.auto_subscribe == Some(true) && !pattern.is_exact() {
        return Err(ClaimsError::ExactKeyOnly {
            channel: key.to_owned(),
            directive: "autoSubscribe",
        });
    }
    if let Some(start) = d.history_start {
        if !start.is_finite() || start < 0.0 {
            return Err(invalid("historyStart must be 0 or a Unix time".into()));
        }
    }
    for (event, m) in &d.messages {
        let event_pattern = event.compiled().map_err(|e| e.clone())?;
        let event = event.source();
        if event_pattern.is_exact() {
            names::validate_event(event)
                .map_err(|e| invalid(format!("messages {event:?}: {}", e.message)))?;
        }
        if let Some(store) = m.store {
            if !(STORE_FOREVER..=MAX_STORE_SECONDS).contains(&store) {
                return Err(invalid(format!(
                    "messages {event:?}: store must be -1, 0 or up to {MAX_STORE_SECONDS}"
                )));
            }
        }
        if let Some(ReactRule::List(list)) = &m.react {
            for reaction in list {
                names::validate_reaction(reaction)
                    .map_err(|e| invalid(format!("messages {event:?}: {}", e.message)))?;
            }
        }
    }
    for (storage_key, s) in &d.storage {
        let key_pattern = storage_key.compiled().map_err(|e| e.clone())?;
        let storage_key = storage_key.source();
        if key_pattern.is_exact() {
            names::validate_storage_key(storage_key)
                .map_err(|e| invalid(format!("storage {storage_key:?}: {}", e.message)))?;
        }
        if let Some(store) = s.store {
            if !valid_storage_store(store) {
                return Err(invalid(format!(
                    "storage {storage_key:?}: store must be -1 or 1 to {MAX_STORE_SECONDS}"
                )));
            }
        }
    }
    Ok(())
}

/// One token's matching entries for one channel; stored with a subscription so
/// later publishes and storage calls are checked without the token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelGrant {
    pub entries: Vec<GrantEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantEntry {
    /// The channel key, compiled (stored as its source string).
    pub key: PatternKey,
    pub directives: ChannelDirectives,
}

impl ChannelGrant {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries whose keys no longer compile cannot come from a token we parsed;
    /// skipping them (denying) is the safe reading of a corrupted store item.
    fn patterned(&self) -> impl Iterator<Item = (&Pattern, &ChannelDirectives)> {
        self.entries
            .iter()
            .filter_map(|e| e.key.pattern().map(|p| (p, &e.directives)))
    }
}

/// The one resolver behind channels, events and storage keys: per layer (a
/// subscribe token's grant, then the connect token's), the matching entries'
/// directives of one kind, each with the keys that matched it, most deciding
/// first (an event's or storage key's pattern, then its channel's).
struct Matched<'a, D> {
    layers: Vec<Vec<(Vec<&'a Pattern>, &'a D)>>,
}

impl<'a, D> Matched<'a, D> {
    /// Boolean resolution over every layer at once: an explicit `false`
    /// anywhere wins, then any `true`.
    fn flag(&self, pick: impl Fn(&D) -> Option<bool>) -> Option<bool> {
        let mut seen = None;
        for value in self.all().filter_map(pick) {
            if !value {
                return Some(false);
            }
            seen = Some(true);
        }
        seen
    }

    /// Valued resolution: in the first layer that sets the value, the most
    /// specific matching keys' (compared key by key).
    fn valued<T: Clone>(&self, pick: impl Fn(&D) -> Option<&T>) -> Option<T> {
        self.layers.iter().find_map(|layer| {
            layer
                .iter()
                .filter_map(|(keys, d)| pick(d).map(|v| (keys, v)))
                .max_by(|(a, _), (b, _)| {
                    a.iter()
                        .zip(b.iter())
                        .map(|(x, y)| x.cmp_specificity(y))
                        .find(|o| *o != Ordering::Equal)
                        .unwrap_or(Ordering::Equal)
                })
                .map(|(_, v)| v.clone())
        })
    }

    fn any(&self, test: impl Fn(&D) -> bool) -> bool {
        self.all().any(test)
    }

    fn all(&self) -> impl Iterator<Item = &'a D> + '_ {
        self.layers.iter().flatten().map(|(_, d)| *d)
    }
}

/// The permissions of a connection or subscription on one channel: grants in
/// precedence order (a subscribe token's first, then the connect token's).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelPermissions {
    pub layers: Vec<ChannelGrant>,
}

/// What a sender may do with one event on one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagePermissions {
    publish: Option<bool>,
    broadcast: bool,
    pub echo: bool,
    /// Seconds to keep the message: 0 not stored, -1 forever.
    pub store: i64,
    pub react: Option<ReactRule>,
    pub schedule_before: Option<i64>,
    pub emit_pub_sub_event: bool,
}

impl MessagePermissions {
    /// `publish` lets a subscriber send; `broadcast` lets anyone send, unless
    /// `publish` is explicitly `false`.
    pub fn may_send(&self, subscribed: bool) -> bool {
        match self.publish {
            Some(false) => false,
            Some(true) if subscribed => true,
            _ => self.broadcast,
        }
    }

    pub fn may_react(&self, reaction: &str) -> bool {
        self.react.as_ref().is_some_and(|r| r.allows(reaction))
    }
}

/// What a connection may do with one storage key on one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct StoragePermissions {
    pub observe: bool,
    pub get: bool,
    pub set: bool,
    /// Seconds to keep the entry; -1 (the default) forever.
    pub store: i64,
    pub schedule_before: Option<i64>,
    pub emit_pub_sub_event: bool,
}

impl ChannelPermissions {
    pub fn single(grant: ChannelGrant) -> Self {
        ChannelPermissions {
            layers: vec![grant],
        }
    }

    /// A subscribe token's grant overrides the connect token's.
    pub fn layered(connect: ChannelGrant, subscribe: Option<ChannelGrant>) -> Self {
        ChannelPermissions {
            layers: subscribe.into_iter().chain(Some(connect)).collect(),
        }
    }

    /// Joins permissions from several sources, earlier ones taking precedence.
    pub fn then(mut self, other: ChannelPermissions) -> Self {
        self.layers.extend(other.layers);
        self
    }

    /// The matching channel entries of every layer.
    fn channel(&self) -> Matched<'_, ChannelDirectives> {
        Matched {
            layers: self
                .layers
                .iter()
                .map(|g| g.patterned().map(|(p, d)| (vec![p], d)).collect())
                .collect(),
        }
    }

    /// The entries of every layer's `messages` or `storage` maps (`map`)
    /// whose key matches `name`, with the channel key they sit under.
    fn keyed<'a, D>(
        &'a self,
        name: &str,
        map: impl Fn(&'a ChannelDirectives) -> &'a BTreeMap<PatternKey, D>,
    ) -> Matched<'a, D> {
        let mut layers = Vec::with_capacity(self.layers.len());
        for grant in &self.layers {
            let mut found = Vec::new();
            for (channel_key, d) in grant.patterned() {
                for (key, directives) in map(d) {
                    if let Some(p) = key.pattern().filter(|p| p.matches(name)) {
                        found.push((vec![p, channel_key], directives));
                    }
                }
            }
            layers.push(found);
        }
        Matched { layers }
    }

    /// Over every entry of every layer, even one whose key no longer compiles
    /// (a corrupted stored grant): its explicit `false` still denies.
    fn flag(&self, pick: impl Fn(&ChannelDirectives) -> Option<bool>) -> Option<bool> {
        Matched {
            layers: self
                .layers
                .iter()
                .map(|g| {
                    g.entries
                        .iter()
                        .map(|e| (Vec::new(), &e.directives))
                        .collect()
                })
                .collect(),
        }
        .flag(pick)
    }

    fn valued<T: Clone>(&self, pick: impl Fn(&ChannelDirectives) -> Option<&T>) -> Option<T> {
        self.channel().valued(pick)
    }

    pub fn may_subscribe(&self) -> bool {
        self.flag(|d| d.subscribe).unwrap_or(false)
    }

    /// Whether any storage key may be observed here (so a subscribe that
    /// observes nothing skips reading the channel's storage).
    pub fn may_observe_storage(&self) -> bool {
        self.layers.iter().any(|grant| {
            grant
                .patterned()
                .any(|(_, d)| d.storage.values().any(|s| s.observe == Some(true)))
        })
    }

    pub fn may_get_info(&self) -> bool {
        self.flag(|d| d.get_info).unwrap_or(false)
    }

    pub fn omit_from_sub_count(&self) -> bool {
        self.flag(|d| d.omit_from_sub_count).unwrap_or(false)
    }

    pub fn may_update_umd(&self) -> bool {
        self.flag(|d| d.umd_update).unwrap_or(false)
    }

    /// Whether a subscription may ask to resume (`recover`, Sockhop's extension).
    pub fn may_recover(&self) -> bool {
        self.flag(|d| d.recover).unwrap_or(false)
    }

    /// Unix seconds from which stored messages are visible; `None` means only
    /// messages published during the current subscription.
    pub fn history_start(&self) -> Option<f64> {
        self.valued(|d| d.history_start.as_ref())
    }

    pub fn alias(&self) -> Option<String> {
        self.valued(|d| d.alias.as_ref())
    }

    pub fn message(&self, event: &str) -> MessagePermissions {
        let m = self.keyed(event, |d| &d.messages);
        // An explicit `react: false` anywhere wins; otherwise the most specific
        // `true` or list of the first layer that sets one.
        let react = if m.any(|m| m.react == Some(ReactRule::Any(false))) {
            Some(ReactRule::Any(false))
        } else {
            m.valued(|m| m.react.as_ref())
        };
        MessagePermissions {
            publish: m.flag(|m| m.publish),
            broadcast: m.flag(|m| m.broadcast).unwrap_or(false),
            echo: m.flag(|m| m.echo).unwrap_or(false),
            store: m.valued(|m| m.store.as_ref()).unwrap_or(0),
            react,
            schedule_before: m.valued(|m| m.schedule_before.as_ref()),
            emit_pub_sub_event: m.flag(|m| m.emit_pub_sub_event).unwrap_or(false),
        }
    }

    pub fn storage(&self, key: &str) -> StoragePermissions {
        let s = self.keyed(key, |d| &d.storage);
        StoragePermissions {
            observe: s.flag(|s| s.observe).unwrap_or(false),
            get: s.flag(|s| s.get).unwrap_or(false),
            set: s.flag(|s| s.set).unwrap_or(false),
            store: s.valued(|s| s.store.as_ref()).unwrap_or(STORE_FOREVER),
            schedule_before: s.valued(|s| s.schedule_before.as_ref()),
            emit_pub_sub_event: s.flag(|s| s.emit_pub_sub_event).unwrap_or(false),
        }
    }
}

/// Connect-token claims already parsed (their `#regex:` keys compiled), per
/// connection, so a frame costs no parsing: one per warm Lambda or stage.
/// Bounded; when full it starts over, which only costs a re-parse.
#[derive(Default)]
pub struct ClaimsCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, CachedClaims>>,
}

struct CachedClaims {
    /// The payload text the claims were parsed from: a different text for the
    /// same connection id (ids are reused only across stages) is parsed anew.
    payload: String,
    claims: std::sync::Arc<Claims>,
}

impl ClaimsCache {
    pub const CAPACITY: usize = 4096;

    /// The claims of `payload` (a connection's stored token payload), parsed
    /// once per connection.
    pub fn get_or_parse(
        &self,
        connection_id: &str,
        payload: &str,
    ) -> Result<std::sync::Arc<Claims>, ClaimsError> {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(hit) = entries.get(connection_id).filter(|c| c.payload == payload) {
            return Ok(hit.claims.clone());
        }
        let map: Map<String, Value> =
            serde_json::from_str(payload).map_err(|e| ClaimsError::NotAnObject(e.to_string()))?;
        let claims = std::sync::Arc::new(Claims::parse(&map)?);
        if entries.len() >= Self::CAPACITY {
            entries.clear();
        }
        entries.insert(
            connection_id.to_owned(),
            CachedClaims {
                payload: payload.to_owned(),
                claims: claims.clone(),
            },
        );
        Ok(claims)
    }

    /// Drops a connection that is gone.
    pub fn forget(&self, connection_id: &str) {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(connection_id);
    }

    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
