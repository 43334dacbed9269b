//! Channel storage (docs/protocol.md, "Channel storage"): reads answer at
//! once; writes travel the channel's ordered delivery path like messages, so
//! storage updates and messages reach every subscriber in one order and the
//! last of concurrent writes to a key is the value every observer ends with.

use super::deliver::{kept_until, StorageWrite};
use super::publish::{emitting, publish_or_schedule, Outgoing, Published, ServerStorageSet};
use super::{internal, named_channel, Connection, Ctx};
use crate::effects::Effects;
use crate::store::{StorageItem, SubscriptionItem};
use serde_json::{json, Value};
use sockhop_core::claims::ChannelPermissions;
use sockhop_core::error::{ErrorCode, ProtocolError};
use sockhop_core::protocol::{events, Meta, ServerMessage};
use sockhop_core::schedule::{Grant, ScheduleRequest};

fn denied(what: &str, key: &str, client_channel: &str) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::StoragePermissionDenied,
        format!("not allowed to {what} storage key {key:?} on {client_channel:?}"),
    )
    .with_channel(client_channel)
}

/// `hotsock.channelStorageGet` / `connection/channelStorageGet`: the entry as
/// a `hotsock.channelStorageData` object (`data` and `meta` null when unset).
pub async fn get(
    cx: Ctx<'_>,
    connection: &Connection,
    requested: &str,
    key: &str,
) -> Result<ServerMessage, ProtocolError> {
    let named = named_channel(cx, connection, requested).await?;
    let (permissions, _) = named.acting(connection)?;
    if !permissions.storage(key).get {
        return Err(denied("get", key, requested));
    }
    let entry = cx
        .app
        .store
        .get_storage(&named.channel, key, cx.secs())
        .await
        .map_err(|e| internal(e).with_channel(requested))?
        .filter(|e| !e.cleared);
    Ok(match entry {
        Some(entry) => {
            let (data, meta) = entry_parts(&entry);
            ServerMessage::storage_data(&named.channel, key, Some(data), Some(meta))
        }
        None => ServerMessage::storage_data(&named.channel, key, None, None),
    })
}

/// `hotsock.channelStorageSet` / `connection/channelStorageSet`: queued on the
/// channel's ordered path; the entry lives for the grant's `store` seconds.
/// With a schedule, the write waits until then (`scheduleBefore` must cover it).
pub async fn set(
    cx: Ctx<'_>,
    connection: &Connection,
    requested: &str,
    key: &str,
    data: Value,
    schedule: Option<&ScheduleRequest>,
) -> Result<Published, ProtocolError> {
    let named = named_channel(cx, connection, requested).await?;
    let (permissions, meta) = named.acting(connection)?;
    let allowed = permissions.storage(key);
    if !allowed.set {
        return Err(denied("set", key, requested));
    }
    let mut write = storage_write(named.channel, key, data, Some(meta), allowed.store);
    write.emit = emitting(cx, allowed.emit_pub_sub_event).then(|| cx.origin_of(connection));
    let grant = Grant::Client {
        schedule_before: allowed.schedule_before,
    };
    publish_or_schedule(cx, write, schedule, grant)
        .await
        .map_err(|e| e.with_channel(requested))
}

/// A server-side write (publish API, `event: hotsock.channelStorageSet`):
/// no permissions, no writer; `store` seconds (-1 forever).
pub async fn set_from_server(
    cx: Ctx<'_>,
    write: &ServerStorageSet,
) -> Result<Published, ProtocolError> {
    let mut outgoing = storage_write(
        write.channel.clone(),
        &write.key,
        write.data.clone(),
        None,
        write.store,
    );
    outgoing.emit = emitting(cx, write.emit_pub_sub_event).then(|| cx.server_origin());
    publish_or_schedule(cx, outgoing, write.schedule.as_ref(), Grant::Server).await
}

/// A storage write on the channel's ordered path.
fn storage_write(
    channel: String,
    key: &str,
    data: Value,
    meta: Option<Meta>,
    store: i64,
) -> Outgoing {
    Outgoing {
        channel,
        event: events::CHANNEL_STORAGE_SET.to_owned(),
        data,
        meta,
        sender: None,
        echo: false,
        store,
        eager_id: false,
        preset_id: None,
        deduplication_id: None,
        storage_key: Some(key.to_owned()),
        emit: None,
    }
}

/// Entries in one page of a storage list; page on with `after` = the last key.
/// 100 entries of at most 32 KiB keep a reply far below Lambda's 6 MB.
pub const STORAGE_LIST_PAGE: usize = 100;

/// `connection/channelStorageList`: the entries the caller may `get`, in key
/// order, only `keys` when given, after `after`, one page.
pub async fn list(
    cx: Ctx<'_>,
    connection: &Connection,
    requested: &str,
    keys: Option<&[String]>,
    after: Option<&str>,
) -> Result<Value, ProtocolError> {
    let named = named_channel(cx, connection, requested).await?;
    let (permissions, _) = named.acting(connection)?;
    let wanted = |key: &str| {
        keys.is_none_or(|keys| keys.iter().any(|k| k == key)) && permissions.storage(key).get
    };
    let entries = cx
        .app
        .store
        .list_storage(&named.channel, after, cx.secs(), STORAGE_LIST_PAGE, &wanted)
        .await
        .map_err(|e| internal(e).with_channel(requested))?;
    Ok(items_json(entries.iter()))
}

/// The admin read (`GET /channels/{name}/storage`): live entries, only `keys`
/// when given, after `after`, one page; no permissions (the API keys were checked).
pub async fn list_for_server(
    cx: Ctx<'_>,
    channel: &str,
    keys: Option<&[String]>,
    after: Option<&str>,
) -> Result<Value, ProtocolError> {
    let wanted = |key: &str| keys.is_none_or(|keys| keys.iter().any(|k| k == key));
    let entries = cx
        .app
        .store
        .list_storage(channel, after, cx.secs(), STORAGE_LIST_PAGE, &wanted)
        .await
        .map_err(internal)?;
    Ok(items_json(entries.iter()))
}

fn items_json<'a>(entries: impl Iterator<Item = &'a StorageItem>) -> Value {
    let items: Vec<Value> = entries
        .map(|entry| {
            let (data, meta) = entry_parts(entry);
            json!({"key": entry.key, "data": data, "meta": meta})
        })
        .collect();
    json!({ "items": items })
}

/// An entry's value and last writer, as stored (unreadable text reads as null).
fn entry_parts(entry: &StorageItem) -> (Value, Meta) {
    let data = serde_json::from_str(&entry.data).unwrap_or(Value::Null);
    let meta = serde_json::from_str(&entry.meta).unwrap_or_else(|_| Meta::new(None, None));
    (data, meta)
}

/// Whether a value clears the entry: `null` or `{}` (pure).
pub fn clears(data: &Value) -> bool {
    match data {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// Whether a subscription is told of updates to `key` (pure over its stored
/// permissions). One still waiting for its welcome is not: its catch-up,
/// later in the channel's order, reads the value.
fn observes(sub: &SubscriptionItem, key: &str) -> bool {
    !sub.pending
        && sub
            .permissions()
            .is_ok_and(|p: ChannelPermissions| p.storage(key).observe)
}

/// How long a cleared entry's tombstone outlives the clear: longer than a
/// queued write is retried (5 receives, 180 s apart in AWS).
const TOMBSTONE_SECONDS: i64 = 3600;

/// What a queued write does to the entry it finds (pure).
#[derive(Debug, PartialEq)]
enum Change {
    /// The value is already there, set by another write: nobody is told.
    Unchanged,
    /// This very write was applied before and its frames may not have gone
    /// out (a retry): tell the observers again, write nothing.
    Retried,
    /// Clear the entry (a tombstone for a while) and tell the observers.
    Clear,
    /// Write the value and tell the observers.
    Set,
}

fn change(current: Option<&StorageItem>, data: &Value, write_id: &str) -> Change {
    if current.is_some_and(|c| c.write_id.as_deref() == Some(write_id)) {
        return Change::Retried;
    }
    let current_data = current
        .filter(|c| !c.cleared)
        .map(|c| serde_json::from_str::<Value>(&c.data).unwrap_or(Value::Null));
    match (clears(data), current_data) {
        (true, None) => Change::Unchanged,
        (true, Some(_)) => Change::Clear,
        (false, Some(value)) if &value == data => Change::Unchanged,
        (false, _) => Change::Set,
    }
}

/// Applies a queued write (id `write_id`), run by the deliver step in the
/// channel's order: writes or deletes the entry when its value changes, then
/// reads the channel's subscriptions and tells every observer, the writer
/// included. A subscriber joining meanwhile is welcomed with its catch-up in
/// the same order, before or after this write, so it ends with the last value.
/// An unchanged value writes and sends nothing.
pub async fn apply(
    cx: Ctx<'_>,
    write: &StorageWrite,
    write_id: &str,
    log: &mut super::resume::LogState,
) -> Result<Effects, ProtocolError> {
    let key = write.key.as_str();
    let store = &cx.app.store;
    let now = cx.secs();
    let data: Value = serde_json::from_str(write.data.get()).map_err(super::deliver::unreadable)?;
    let current = store
        .get_storage(&write.channel, key, now)
        .await
        .map_err(internal)?;
    let meta = write.meta.clone().unwrap_or_else(|| Meta::new(None, None));
    let decided = change(current.as_ref(), &data, write_id);
    let retried = decided == Change::Retried;
    // The value before this write, as the backend is told it: on a retry the
    // entry is this write's own, which kept what it replaced.
    let previous_text = match &current {
        Some(c) if retried => c.previous.clone(),
        // (Reads leave expired entries out.)
        Some(c) if !c.cleared => Some(c.data.clone()),
        _ => None,
    };
    let lifetime = kept_until(write.store, now);
    let sent = match decided {
        Change::Unchanged => return Ok(Effects::new()),
        Change::Retried if clears(&data) => Value::Null,
        Change::Retried => data,
        change => {
            let cleared = change == Change::Clear;
            let ttl = if cleared {
                Some(now + TOMBSTONE_SECONDS)
            } else {
                lifetime
            };
            store
                .put_storage(&StorageItem {
                    channel: write.channel.clone(),
                    key: key.to_owned(),
                    data: if cleared {
                        "null".to_owned()
                    } else {
                        write.data.get().to_owned()
                    },
                    meta: serde_json::to_string(&meta).map_err(|_| ProtocolError::internal())?,
                    ttl,
                    write_id: Some(write_id.to_owned()),
                    cleared,
                    emit: write.emit.is_some() && !cleared,
                    previous: write.emit.as_ref().and(previous_text.clone()),
                })
                .await
                .map_err(internal)?;
            if cleared {
                Value::Null
            } else {
                data
            }
        }
    };
    let subscriptions = store
        .channel_subscriptions(&write.channel, now)
        .await
        .map_err(internal)?;
    let mut effects = Effects::new();
    if let Some(origin) = &write.emit {
        let previous = previous_text
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null);
        let expires_at = if sent.is_null() { None } else { lifetime };
        let change = crate::pubsub::StorageChange {
            channel: &write.channel,
            key,
            data: sent.clone(),
            previous,
            expired: false,
            expires_at,
            meta: &meta,
        };
        effects.emit(crate::pubsub::storage_updated(&change, Some(origin)));
    }
    let update = ServerMessage::storage_updated(&write.channel, key, sent, meta);
    let (resumable, plain): (Vec<_>, Vec<_>) = subscriptions
        .iter()
        .filter(|sub| observes(sub, key))
        .partition(|sub| sub.recoverable);
    let ids = |subs: Vec<&SubscriptionItem>| subs.iter().map(|s| s.connection_id.clone()).collect();
    // Resumable observers get it with its position (its id), which a
    // resumable channel logs for those that come back (docs/adr/0006).
    let logging = log.logging(now);
    if logging || !resumable.is_empty() {
        let positioned = update.clone().at_position(write_id).to_json();
        if logging {
            let logged = super::resume::Logged {
                frame: Some(positioned.clone()),
                storage_key: Some(key),
                ..Default::default()
            };
            super::resume::log(cx, &write.channel, log, write_id, logged).await?;
        }
        effects.send_text(ids(resumable), positioned);
    }
    effects.send_to(ids(plain), &update);
    Ok(effects)
}

/// Right after `hotsock.subscribed`, at the subscription's place in the
/// channel's order: one `hotsock.channelStorageUpdated` per live entry it
/// observes (no read when it observes none).
pub async fn catch_up(
    cx: Ctx<'_>,
    subscription: &SubscriptionItem,
) -> Result<Effects, ProtocolError> {
    let mut effects = Effects::new();
    let permissions = subscription.permissions().map_err(internal)?;
    if !permissions.may_observe_storage() {
        return Ok(effects);
    }
    // Every observed entry, however many: a subscriber must see the whole state.
    let entries = cx
        .app
        .store
        .list_storage(&subscription.channel, None, cx.secs(), usize::MAX, &|key| {
            permissions.storage(key).observe
        })
        .await
        .map_err(internal)?;
    for entry in &entries {
        let (data, meta) = entry_parts(entry);
        effects.send(
            &subscription.connection_id,
            &ServerMessage::storage_updated(&entry.channel, &entry.key, data, meta),
        );
    }
    Ok(effects)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(data: &str, write_id: &str) -> StorageItem {
        StorageItem {
            channel: "c".into(),
            key: "k".into(),
            data: data.into(),
            meta: "{}".into(),
            ttl: None,
            write_id: Some(write_id.into()),
            cleared: false,
            emit: false,
            previous: None,
        }
    }

    #[test]
    fn a_write_changes_only_what_differs_and_a_retry_is_told_again() {
        let set = entry(r#"{"a":1}"#, "w1");
        assert_eq!(change(None, &json!({"a": 1}), "w2"), Change::Set);
        assert_eq!(change(Some(&set), &json!({"a": 2}), "w2"), Change::Set);
        assert_eq!(
            change(Some(&set), &json!({"a": 1}), "w2"),
            Change::Unchanged
        );
        assert_eq!(change(Some(&set), &json!({"a": 1}), "w1"), Change::Retried);
        assert_eq!(change(Some(&set), &Value::Null, "w2"), Change::Clear);
        assert_eq!(change(Some(&set), &json!({}), "w2"), Change::Clear);
        assert_eq!(change(None, &Value::Null, "w2"), Change::Unchanged);
        let tombstone = StorageItem {
            cleared: true,
            ..entry("null", "w3")
        };
        assert_eq!(
            change(Some(&tombstone), &Value::Null, "w4"),
            Change::Unchanged
        );
        assert_eq!(
            change(Some(&tombstone), &Value::Null, "w3"),
            Change::Retried
        );
        assert_eq!(
            change(Some(&tombstone), &json!({"a": 1}), "w4"),
            Change::Set
        );
    }

    #[test]
    fn null_and_empty_objects_clear() {
        assert!(clears(&Value::Null));
        assert!(clears(&json!({})));
        assert!(!clears(&json!({"a": 1})));
        assert!(!clears(&json!([])));
        assert!(!clears(&json!("")));
        assert!(!clears(&json!(0)));
    }
}
