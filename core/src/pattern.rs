//! Keys of `channels`, `messages` and `storage` in a token: an exact name, a `*`
//! wildcard pattern, or `#regex:<pattern>`.

use quick_cache::sync::Cache;
use regex::{Regex, RegexBuilder};
use std::cmp::Ordering;
use std::sync::LazyLock;

mod re2;

/// Regexes come from tokens, so their compiled size is capped to keep a hostile
/// token from costing a function its memory.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;
const REGEX_PREFIX: &str = "#regex:";

/// Compiled `*` and `#regex:` keys, shared by every token the process reads.
/// A token's keys are compiled once, as it is read ([`PatternKey`]); this
/// spares the next token with the same keys (every connection of an app, each
/// subscriber's stored grant a storage write's fan-out reads) the compile, which
/// costs microseconds to milliseconds for a regex. Bounded, so tokens with
/// ever-new keys cannot grow it; a `Regex` clone shares its program.
static COMPILED: LazyLock<Cache<String, Result<Pattern, PatternError>>> =
    LazyLock::new(|| Cache::new(COMPILED_CAPACITY));
const COMPILED_CAPACITY: usize = 4096;

#[derive(Debug, Clone)]
pub enum Pattern {
    Exact(String),
    /// `*` matches any run of characters, including none.
    Wildcard {
        source: String,
        regex: Regex,
    },
    /// Unanchored like RE2's partial match: write `^…$` to match a whole name.
    /// The source is Go's RE2 syntax with Go's meaning (ASCII `\d \w \s \b`,
    /// `\Q…\E`), compiled after rewriting into the `regex` crate's.
    Regex {
        source: String,
        regex: Regex,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pattern {key:?}: {reason}")]
pub struct PatternError {
    pub key: String,
    pub reason: String,
}

impl Pattern {
    /// The pattern a token key means; a `*` or `#regex:` key is compiled once
    /// per process (its error too) and served from the process-wide cache after.
    pub fn parse(key: &str) -> Result<Self, PatternError> {
        if !key.starts_with(REGEX_PREFIX) && !key.contains('*') {
            return Self::compile(key);
        }
        if let Some(compiled) = COMPILED.get(key) {
            return compiled;
        }
        let compiled = Self::compile(key);
        COMPILED.insert(key.to_owned(), compiled.clone());
        compiled
    }

    fn compile(key: &str) -> Result<Self, PatternError> {
        let fail = |reason: String| PatternError {
            key: key.to_owned(),
            reason,
        };
        if let Some(source) = key.strip_prefix(REGEX_PREFIX) {
            if source.is_empty() {
                return Err(fail("empty regex".into()));
            }
            // Go's RE2 dialect, as Hotsock reads it (see `re2`).
            let rust = re2::to_rust(source).map_err(fail)?;
            let regex = RegexBuilder::new(&rust)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| fail(e.to_string()))?;
            return Ok(Pattern::Regex {
                source: key.to_owned(),
                regex,
            });
        }
        if key.is_empty() {
            return Err(fail("empty key".into()));
        }
        if !key.contains('*') {
            return Ok(Pattern::Exact(key.to_owned()));
        }
        let body = key
            .split('*')
            .map(regex::escape)
            .collect::<Vec<_>>()
            .join(".*");
        let regex = RegexBuilder::new(&format!("^(?s:{body})$"))
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        Ok(Pattern::Wildcard {
            source: key.to_owned(),
            regex,
        })
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Exact(exact) => exact == name,
            Pattern::Wildcard { regex, .. } | Pattern::Regex { regex, .. } => regex.is_match(name),
        }
    }

    pub fn is_exact(&self) -> bool {
        matches!(self, Pattern::Exact(_))
    }

    pub fn source(&self) -> &str {
        match self {
            Pattern::Exact(s) => s,
            Pattern::Wildcard { source, .. } | Pattern::Regex { source, .. } => source,
        }
    }

    /// How specific a key is, for choosing among valued directives: an exact key
    /// beats any wildcard, which beats any regex; among wildcards the one with more
    /// literal characters wins, then the one with fewer `*`; among regexes the
    /// longer source wins. Equal specificity falls back to key order (see
    /// [`Pattern::cmp_specificity`]).
    fn specificity(&self) -> (u8, usize, usize) {
        match self {
            Pattern::Exact(s) => (3, s.chars().count(), 0),
            Pattern::Wildcard { source, .. } => {
                let stars = source.matches('*').count();
                (2, source.chars().count() - stars, usize::MAX - stars)
            }
            Pattern::Regex { source, .. } => (1, source.chars().count(), 0),
        }
    }

    /// `Greater` when `self` is more specific than `other`. Ties are broken by the
    /// key text (smaller first wins) so the choice never depends on map order.
    pub fn cmp_specificity(&self, other: &Pattern) -> Ordering {
        self.specificity()
            .cmp(&other.specificity())
            .then_with(|| other.source().cmp(self.source()))
    }
}

/// A token key kept compiled beside its source: what a token's `messages` and
/// `storage` maps and a stored grant's entries are keyed by, so resolving a
/// permission compiles nothing. It reads and writes as the source string; a
/// key that does not compile is kept with its error (a token parse reports
/// it; a corrupted stored grant's key then matches nothing, which denies).
/// Ordered and compared by source, like the string keys it replaces.
#[derive(Debug, Clone)]
pub struct PatternKey {
    compiled: Result<Pattern, PatternError>,
}

impl PatternKey {
    pub fn new(key: &str) -> Self {
        PatternKey {
            compiled: Pattern::parse(key),
        }
    }

    pub fn source(&self) -> &str {
        match &self.compiled {
            Ok(pattern) => pattern.source(),
            Err(e) => &e.key,
        }
    }

    /// The compiled pattern, or why the key does not compile.
    pub fn compiled(&self) -> Result<&Pattern, &PatternError> {
        self.compiled.as_ref()
    }

    /// The pattern when it compiled.
    pub fn pattern(&self) -> Option<&Pattern> {
        self.compiled.as_ref().ok()
    }

    pub fn matches(&self, name: &str) -> bool {
        self.pattern().is_some_and(|p| p.matches(name))
    }
}

impl From<Pattern> for PatternKey {
    fn from(pattern: Pattern) -> Self {
        PatternKey {
            compiled: Ok(pattern),
        }
    }
}

impl PartialEq for PatternKey {
    fn eq(&self, other: &Self) -> bool {
        self.source() == other.source()
    }
}

impl Eq for PatternKey {}

impl PartialOrd for PatternKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PatternKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.source().cmp(other.source())
    }
}

impl std::borrow::Borrow<str> for PatternKey {
    fn borrow(&self) -> &str {
        self.source()
    }
}

impl serde::Serialize for PatternKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.source())
    }
}

impl<'de> serde::Deserialize<'de> for PatternKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let key = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(PatternKey::new(&key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(key: &str) -> Pattern {
        Pattern::parse(key).expect("valid pattern")
    }

    #[test]
    fn a_pattern_key_reads_and_writes_as_its_source_and_keeps_a_bad_one_matching_nothing() {
        let keys: std::collections::BTreeMap<PatternKey, u8> =
            serde_json::from_str(r##"{"chat-*": 1, "#regex:[z-a]": 2, "a": 3}"##).expect("keys");
        let chat = keys
            .keys()
            .find(|k| k.source() == "chat-*")
            .expect("chat-*");
        assert!(chat.matches("chat-1") && !chat.matches("x"));
        let bad = keys
            .keys()
            .find(|k| k.source() == "#regex:[z-a]")
            .expect("bad");
        assert!(bad.compiled().is_err());
        assert!(!bad.matches("z") && !bad.matches(""));
        assert_eq!(keys.get("a"), Some(&3));
        assert_eq!(
            serde_json::to_string(&keys).expect("json"),
            r##"{"#regex:[z-a]":2,"a":3,"chat-*":1}"##
        );
    }

    #[test]
    fn exact_matches_only_itself() {
        assert!(p("chat").matches("chat"));
        assert!(!p("chat").matches("chat2"));
        assert!(!p("chat").matches("Chat"));
        assert!(p("chat").is_exact());
    }

    #[test]
    fn star_matches_any_run_anywhere() {
        assert!(p("*").matches(""));
        assert!(p("*").matches("anything.at/all"));
        assert!(p("chat-*").matches("chat-"));
        assert!(p("chat-*").matches("chat-123"));
        assert!(!p("chat-*").matches("xchat-1"));
        assert!(p("*-room").matches("big-room"));
        assert!(!p("*-room").matches("big-room2"));
        assert!(p("a*b*c").matches("abc"));
        assert!(p("a*b*c").matches("a-x-b-y-c"));
        assert!(!p("a*b*c").matches("a-x-c"));
        assert!(p("presence.*.users").matches("presence.team.users"));
    }

    #[test]
    fn wildcard_escapes_regex_metacharacters() {
        assert!(p("a.b*").matches("a.bc"));
        assert!(!p("a.b*").matches("axbc"));
        assert!(p("(x)*").matches("(x)yz"));
        assert!(p("*+").matches("a+"));
        assert!(!p("*+").matches("aa"));
    }

    #[test]
    fn star_spans_newlines_in_names() {
        // Names cannot hold newlines, but matching must not depend on that.
        assert!(p("a*").matches("a\nb"));
    }

    #[test]
    fn regex_is_unanchored_unless_anchored() {
        assert!(p("#regex:chat").matches("my-chat-room"));
        assert!(p("#regex:^chat\\.[0-9]+$").matches("chat.42"));
        assert!(!p("#regex:^chat\\.[0-9]+$").matches("chat.42x"));
        assert!(!p("#regex:^chat\\.[0-9]+$").matches("xchat.42"));
    }

    #[test]
    fn invalid_and_empty_patterns_are_rejected() {
        assert!(Pattern::parse("#regex:(unclosed").is_err());
        assert!(Pattern::parse("#regex:").is_err());
        assert!(Pattern::parse("").is_err());
        let err = Pattern::parse("#regex:[z-a]").unwrap_err();
        assert_eq!(err.key, "#regex:[z-a]");
    }

    #[test]
    fn a_compiled_key_means_the_same_from_the_cache() {
        for _ in 0..3 {
            let regex = p("#regex:^cached-[0-9]+$");
            assert!(regex.matches("cached-42"));
            assert!(!regex.matches("cached-x"));
            assert_eq!(regex.source(), "#regex:^cached-[0-9]+$");
            let wildcard = p("cached.*");
            assert!(wildcard.matches("cached.a.b"));
            assert!(!wildcard.matches("other.a"));
            // A refused key is refused every time, with the same reason.
            assert_eq!(
                Pattern::parse("#regex:(cached").unwrap_err(),
                Pattern::parse("#regex:(cached").unwrap_err()
            );
        }
        // More keys than the cache holds: each still means what it says.
        for i in 0..COMPILED_CAPACITY + 100 {
            assert!(p(&format!("evict-{i}-*")).matches(&format!("evict-{i}-x")));
        }
        assert!(p("#regex:^cached-[0-9]+$").matches("cached-7"));
    }

    #[test]
    fn oversized_regex_is_rejected() {
        assert!(Pattern::parse("#regex:(a{1000}){1000}").is_err());
    }

    #[test]
    fn specificity_orders_exact_then_wildcard_then_regex() {
        let exact = p("chat-1");
        let long_wild = p("chat-*");
        let short_wild = p("c*");
        let two_stars = p("chat*-*");
        let regex = p("#regex:^chat-1$");
        assert_eq!(exact.cmp_specificity(&long_wild), Ordering::Greater);
        assert_eq!(long_wild.cmp_specificity(&short_wild), Ordering::Greater);
        assert_eq!(short_wild.cmp_specificity(&regex), Ordering::Greater);
        assert_eq!(regex.cmp_specificity(&exact), Ordering::Less);
        // Same literal count: fewer stars is more specific.
        assert_eq!(p("chat-*").cmp_specificity(&two_stars), Ordering::Greater);
        // Full tie: the smaller key text wins, so it is deterministic.
        assert_eq!(p("a*").cmp_specificity(&p("b*")), Ordering::Greater);
        assert_eq!(p("a*").cmp_specificity(&p("a*")), Ordering::Equal);
    }
}
