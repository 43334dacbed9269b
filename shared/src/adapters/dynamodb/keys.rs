//! Partition and sort keys of the one table (docs/architecture.md, "Data model"). Private to the store: nothing else names a key.

pub const CONNECTION_SK: &str = "CONN";
pub const META_SK: &str = "META";
/// Under a presence channel: the member list its members were last told.
pub const MEMBERS_SK: &str = "MEMBERS";
pub const SUB_PREFIX: &str = "SUB#";
pub const CONN_PREFIX: &str = "CONN#";
pub const CHAN_PREFIX: &str = "CHAN#";
pub const MSG_PREFIX: &str = "MSG#";
pub const JTI_PREFIX: &str = "JTI#";
/// Under a channel: a presence change a removal still owes its members.
pub const OWED_PREFIX: &str = "OWED#";

pub fn connection_pk(connection_id: &str) -> String {
    format!("{CONN_PREFIX}{connection_id}")
}

pub fn channel_pk(channel: &str) -> String {
    format!("{CHAN_PREFIX}{channel}")
}

/// Sort key of a subscription under its channel: one per connection.
pub fn subscription_sk(connection_id: &str) -> String {
    format!("{SUB_PREFIX}{connection_id}")
}

/// DynamoDB's limit on a sort key, in bytes.
const MAX_SORT_KEY_BYTES: usize = 1024;

/// Sort key of the reverse index under a connection: one per channel. A
/// channel is up to 256 characters, up to 1,024 bytes of UTF-8, so
/// `SUB#<channel>` may not fit a sort key; such a channel goes under `SUB##`
/// and the SHA-256 of its name (no channel name contains `#`, so the two forms
/// never meet). The item carries the channel itself, which is what is read.
pub fn connection_subscription_sk(channel: &str) -> String {
    let plain = format!("{SUB_PREFIX}{channel}");
    if plain.len() <= MAX_SORT_KEY_BYTES {
        return plain;
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(channel.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{SUB_PREFIX}#{hex}")
}

/// Sort key of the change a connection's removal owes a channel's members.
pub fn owed_change_sk(connection_id: &str) -> String {
    format!("{OWED_PREFIX}{connection_id}")
}

pub fn message_pk(channel: &str) -> String {
    format!("{MSG_PREFIX}{channel}")
}

/// A channel's recovery log (docs/adr/0006): entries sorted by position.
pub const LOG_PREFIX: &str = "LOG#";
/// Under the log: a message id that is not its position, pointing at it.
/// `~` sorts after every ULID, so a range of positions never meets these.
pub const LOG_ID_PREFIX: &str = "~";

pub fn log_pk(channel: &str) -> String {
    format!("{LOG_PREFIX}{channel}")
}

pub fn log_id_sk(message_id: &str) -> String {
    format!("{LOG_ID_PREFIX}{message_id}")
}

pub fn jti_pk(jti: &str) -> String {
    format!("{JTI_PREFIX}{jti}")
}

pub const RXN_PREFIX: &str = "RXN#";

/// All reactions of one message share a partition.
pub fn reaction_pk(channel: &str, message_id: &str) -> String {
    format!("{RXN_PREFIX}{channel}#{message_id}")
}

/// One item per (reaction, uid): a user reacts with a value at most once.
/// Reactions cannot contain `#`, so the split is unambiguous.
pub fn reaction_sk(reaction: &str, uid: &str) -> String {
    format!("{reaction}#{uid}")
}

/// The index of connections (and owed changes) by when the sweeper must next
/// look at them.
pub const SWEEP_INDEX: &str = "sweep";
/// Width of one `sweepBucket` of that index: a sweep a minute reads one or two.
pub const SWEEP_BUCKET_SECONDS: i64 = 60;

/// The `sweepBucket` (index partition) of a connection due at `at`.
pub fn sweep_bucket(at: i64) -> i64 {
    at.div_euclid(SWEEP_BUCKET_SECONDS)
}

/// The sweeper's progress: every bucket up to the one it holds is done.
pub const SWEEP_CURSOR_PK: &str = "SWEEP";
pub const SWEEP_CURSOR_SK: &str = "CURSOR";

pub const STORE_PREFIX: &str = "STORE#";

/// A channel's storage entries share a partition, one item per key (sorted by
/// key, so listing pages by key).
pub fn storage_pk(channel: &str) -> String {
    format!("{STORE_PREFIX}{channel}")
}

/// The local stage's pending schedules (in AWS they live in EventBridge
/// Scheduler): one partition, sorted by when they fall due.
pub const SCHEDULES_PK: &str = "SCHEDULES";

/// Sort key of a schedule: its due time, zero-padded so text order is time
/// order, then its name.
pub fn schedule_sk(due_ms: i64, name: &str) -> String {
    format!("{due_ms:015}#{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_index_keys_fit_dynamodb_whatever_the_channel() {
        assert_eq!(connection_subscription_sk("chat"), "SUB#chat");
        // 255 four-byte characters: 1,024 bytes with the prefix, fits as it is.
        let fits = "😀".repeat(255);
        assert_eq!(connection_subscription_sk(&fits), format!("SUB#{fits}"));
        // 256 of them (a valid name) would be 1,028 bytes: the digest form.
        let long = "😀".repeat(256);
        let key = connection_subscription_sk(&long);
        assert!(
            key.len() <= MAX_SORT_KEY_BYTES && key.starts_with("SUB##"),
            "{key}"
        );
        assert_eq!(key, connection_subscription_sk(&long), "stable");
        assert_ne!(key, connection_subscription_sk(&"😃".repeat(256)));
    }
}
