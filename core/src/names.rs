//! Name and size rules from docs/protocol.md ("Names and limits"), shared by the WebSocket, HTTP and server
//! publish paths (and token parsing) so that every entry point rejects the same input
//! with the same code.

use crate::error::{ErrorCode, ProtocolError};
use serde_json::Value;
use std::io;

/// Longest channel name, in chars.
pub const MAX_CHANNEL_LEN: usize = 256;
/// Longest event name, in chars.
pub const MAX_EVENT_LEN: usize = 128;
/// Longest storage key, in chars.
pub const MAX_STORAGE_KEY_LEN: usize = 128;
/// Longest reaction, in UTF-8 bytes.
pub const MAX_REACTION_BYTES: usize = 100;
/// Largest `data`, serialized as compact JSON (32 KiB).
pub const MAX_DATA_BYTES: usize = 32 * 1024;
/// Largest `umd`, serialized as compact JSON (1 KiB).
pub const MAX_UMD_BYTES: usize = 1024;
/// Longest `uid`, in chars.
pub const MAX_UID_CHARS: usize = 128;
/// Largest presence member list (`[{"uid","umd"}]` serialized), in bytes.
pub const MAX_PRESENCE_MEMBERS_BYTES: usize = 100_000;

/// Prefix that makes a channel a presence channel.
pub const PRESENCE_PREFIX: &str = "presence.";
/// Prefix reserved for protocol events.
pub const RESERVED_EVENT_PREFIX: &str = "hotsock.";

fn err(code: ErrorCode, message: String) -> Result<(), ProtocolError> {
    Err(ProtocolError::new(code, message))
}

/// Names that would break pattern keys (`*`, `#`), list parameters (`,`) or logs
/// (whitespace, control chars) are rejected.
fn forbidden_name_char(c: char) -> bool {
    matches!(c, '*' | '#' | ',') || c.is_whitespace() || c.is_control()
}

fn describe(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        '\n' => "a newline".to_owned(),
        '\r' => "a carriage return".to_owned(),
        '\t' => "a tab".to_owned(),
        c if c.is_control() || c.is_whitespace() => format!("U+{:04X}", c as u32),
        c => format!("'{c}'"),
    }
}

/// Channel: 1–256 chars, no `*`, `#`, `,`, whitespace or control chars.
pub fn validate_channel(channel: &str) -> Result<(), ProtocolError> {
    if channel.is_empty() {
        return err(
            ErrorCode::InvalidChannel,
            "channel must not be empty".into(),
        );
    }
    let len = channel.chars().count();
    if len > MAX_CHANNEL_LEN {
        return err(
            ErrorCode::InvalidChannel,
            format!("channel is {len} chars long; the limit is {MAX_CHANNEL_LEN}"),
        );
    }
    if let Some(c) = channel.chars().find(|&c| forbidden_name_char(c)) {
        return err(
            ErrorCode::InvalidChannel,
            format!("channel must not contain {}", describe(c)),
        );
    }
    Ok(())
}

/// Whether `channel` is a presence channel (tracks members, needs a `uid`).
pub fn is_presence_channel(channel: &str) -> bool {
    channel.starts_with(PRESENCE_PREFIX)
}

/// Base event rule, shared by every publisher: 1–128 chars, no `*`, not starting
/// with `#`. Allows `hotsock.*` because tokens and server publishes name commands.
pub fn validate_event(event: &str) -> Result<(), ProtocolError> {
    if event.is_empty() {
        return err(ErrorCode::InvalidEvent, "event must not be empty".into());
    }
    let len = event.chars().count();
    if len > MAX_EVENT_LEN {
        return err(
            ErrorCode::InvalidEvent,
            format!("event is {len} chars long; the limit is {MAX_EVENT_LEN}"),
        );
    }
    if event.contains('*') {
        return err(ErrorCode::InvalidEvent, "event must not contain '*'".into());
    }
    if event.starts_with('#') {
        return err(
            ErrorCode::InvalidEvent,
            "event must not start with '#'".into(),
        );
    }
    Ok(())
}

/// Event a client may publish: the base rule, and not in the reserved `hotsock.`
/// namespace.
pub fn validate_client_event(event: &str) -> Result<(), ProtocolError> {
    validate_event(event)?;
    if event.starts_with(RESERVED_EVENT_PREFIX) {
        return err(
            ErrorCode::InvalidEvent,
            format!("event must not start with {RESERVED_EVENT_PREFIX:?}"),
        );
    }
    Ok(())
}

/// Storage key: 1–128 chars, no `*`, `#`, `,`, whitespace or control chars.
pub fn validate_storage_key(key: &str) -> Result<(), ProtocolError> {
    if key.is_empty() {
        return err(
            ErrorCode::InvalidStorageKey,
            "storage key must not be empty".into(),
        );
    }
    let len = key.chars().count();
    if len > MAX_STORAGE_KEY_LEN {
        return err(
            ErrorCode::InvalidStorageKey,
            format!("storage key is {len} chars long; the limit is {MAX_STORAGE_KEY_LEN}"),
        );
    }
    if let Some(c) = key.chars().find(|&c| forbidden_name_char(c)) {
        return err(
            ErrorCode::InvalidStorageKey,
            format!("storage key must not contain {}", describe(c)),
        );
    }
    Ok(())
}

/// Reaction: not blank, at most 100 bytes, no `#` (reserved for regex keys).
pub fn validate_reaction(reaction: &str) -> Result<(), ProtocolError> {
    if reaction.trim().is_empty() {
        return err(
            ErrorCode::InvalidReaction,
            "reaction must not be blank".into(),
        );
    }
    if reaction.len() > MAX_REACTION_BYTES {
        return err(
            ErrorCode::InvalidReaction,
            format!(
                "reaction is {} bytes long; the limit is {MAX_REACTION_BYTES}",
                reaction.len()
            ),
        );
    }
    if reaction.contains('#') {
        return err(
            ErrorCode::InvalidReaction,
            "reaction must not contain '#'".into(),
        );
    }
    Ok(())
}

/// `data` must serialize to at most 32 KiB of compact JSON.
pub fn validate_data_size(data: &Value) -> Result<(), ProtocolError> {
    match json_size_up_to(data, MAX_DATA_BYTES) {
        Some(_) => Ok(()),
        None => err(
            ErrorCode::MessageTooLarge,
            format!("data is larger than {MAX_DATA_BYTES} bytes"),
        ),
    }
}

/// `umd` must serialize to at most 1 KiB of compact JSON.
pub fn validate_umd_size(umd: &Value) -> Result<(), ProtocolError> {
    match json_size_up_to(umd, MAX_UMD_BYTES) {
        Some(_) => Ok(()),
        None => err(
            ErrorCode::UmdTooLarge,
            format!("umd is larger than {MAX_UMD_BYTES} bytes"),
        ),
    }
}

/// Length of `value` as compact JSON, in bytes.
pub fn json_size(value: &Value) -> usize {
    let mut counter = Counter {
        count: 0,
        limit: usize::MAX,
    };
    // Serializing a `Value` only fails through the writer, which never fails here.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.count
}

/// Length of `value` as compact JSON if it is at most `limit` bytes. Stops early, so
/// checking a huge value costs no more than `limit` bytes of work.
pub fn json_size_up_to(value: &Value, limit: usize) -> Option<usize> {
    let mut counter = Counter { count: 0, limit };
    serde_json::to_writer(&mut counter, value).ok()?;
    Some(counter.count)
}

/// An `io::Write` that only counts, and fails once past its limit.
struct Counter {
    count: usize,
    limit: usize,
}

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.count = self.count.saturating_add(buf.len());
        if self.count > self.limit {
            return Err(io::Error::other("size limit exceeded"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_size_matches_to_string() {
        for v in [
            json!(null),
            json!({"a": [1, 2.5, "é\"\n"], "b": {}}),
            json!("x".repeat(5000)),
        ] {
            let s = serde_json::to_string(&v).unwrap();
            assert_eq!(json_size(&v), s.len());
            assert_eq!(json_size_up_to(&v, s.len()), Some(s.len()));
            assert_eq!(json_size_up_to(&v, s.len() - 1), None);
        }
    }
}
