//! The store's rules kept in memory: [`MemoryStore`], for deterministic unit
//! tests of operations and of the channel's ordered path. It keeps what the
//! DynamoDB adapter promises — conditional writes that tell who won,
//! subscription, reverse index and count changed together, expired items
//! unseen — without keys or a network. Every call first yields to the
//! scheduler (a seeded number of times), so concurrent operations on a
//! current-thread runtime interleave between store calls as they would
//! between DynamoDB requests, the same way for the same seed.
//!
//! Not a replacement for the DynamoDB Local tests: those prove the adapter.

use super::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Width of the sweeper's buckets, as the adapter files connections.
const SWEEP_BUCKET_SECONDS: i64 = 60;

fn bucket(at: i64) -> i64 {
    at.div_euclid(SWEEP_BUCKET_SECONDS)
}

#[derive(Default)]
struct Tables {
    connections: BTreeMap<String, ConnectionItem>,
    /// (connection, channel) → (alias, ttl): the reverse index.
    reverse: BTreeMap<(String, String), (Option<String>, i64)>,
    /// (channel, connection) → subscription: in connection order, as
    /// DynamoDB returns a channel's partition.
    subscriptions: BTreeMap<(String, String), SubscriptionItem>,
    counts: HashMap<String, i64>,
    laned: HashMap<String, bool>,
    jtis: HashMap<String, i64>,
    members: HashMap<String, (String, i64)>,
    owed: BTreeMap<(String, String), OwedChange>,
    sweep_cursor: Option<i64>,
    messages: BTreeMap<(String, String), MessageItem>,
    /// (channel, position) → entry of the recovery log.
    log: BTreeMap<(String, String), LoggedFrame>,
    /// (channel, message id) → (position, ttl), for ids that are not positions.
    log_ids: HashMap<(String, String), (String, i64)>,
    recover_until: HashMap<String, i64>,
    /// (channel, message, reaction, uid) → reaction.
    reactions: BTreeMap<(String, String, String, String), ReactionItem>,
    storage: BTreeMap<(String, String), StorageItem>,
    schedules: BTreeMap<(i64, String), ScheduleItem>,
}

/// A store in a map. Cloning is not offered: share it in an `Arc`.
#[derive(Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
    /// A xorshift state: how often each call yields first.
    seed: Mutex<u64>,
    /// Operation name → how many of its calls succeed before one fails.
    failures: Mutex<HashMap<&'static str, u32>>,
    /// Every call made, by operation name, in order.
    calls: Mutex<Vec<&'static str>>,
}

fn alive(ttl: i64, now: i64) -> bool {
    ttl > now
}

fn alive_until(ttl: Option<i64>, now: i64) -> bool {
    ttl.is_none_or(|t| t > now)
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// Interleaves differently (and reproducibly) per seed; 0 yields once
    /// per call.
    pub fn with_seed(seed: u64) -> Self {
        let store = MemoryStore::default();
        *store.seed.lock().unwrap_or_else(PoisonError::into_inner) = seed;
        store
    }

    /// After `succeeding` more calls of `operation` (a method name, e.g.
    /// `"put_message"`), the next one fails as a DynamoDB request can.
    pub fn fail_once_after(&self, operation: &'static str, succeeding: u32) {
        lock(&self.failures).insert(operation, succeeding);
    }

    /// How many times `operation` was called.
    pub fn calls_of(&self, operation: &str) -> usize {
        lock(&self.calls)
            .iter()
            .filter(|c| **c == operation)
            .count()
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        lock(&self.tables)
    }

    /// What every call does first: yield (as a request would), then fail if
    /// told to.
    async fn call(&self, operation: &'static str) -> Result<(), StoreError> {
        lock(&self.calls).push(operation);
        let yields = {
            let mut seed = lock(&self.seed);
            if *seed == 0 {
                1
            } else {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                1 + *seed % 4
            }
        };
        for _ in 0..yields {
            tokio::task::yield_now().await;
        }
        let mut failures = lock(&self.failures);
        match failures.get_mut(operation) {
            Some(0) => {
                failures.remove(operation);
                Err(StoreError::Dynamo {
                    operation,
                    message: "failure injected by the test".into(),
                })
            }
            Some(left) => {
                *left -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn key(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

/// The largest possible ULID text, as the adapter bounds a listing.
const MAX_ULID: &str = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ";

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn put_connection(&self, item: &ConnectionItem) -> Result<(), StoreError> {
        self.call("put_connection").await?;
        self.tables()
            .connections
            .insert(item.connection_id.clone(), item.clone());
        Ok(())
    }

    async fn get_connection(
        &self,
        connection_id: &str,
        now: i64,
    ) -> Result<Option<ConnectionItem>, StoreError> {
        self.call("get_connection").await?;
        Ok(self
            .tables()
            .connections
            .get(connection_id)
            .filter(|c| alive(c.ttl, now))
            .cloned())
    }

    async fn touch_connection(&self, connection_id: &str, now: i64) -> Result<(), StoreError> {
        self.call("touch_connection").await?;
        if let Some(c) = self.tables().connections.get_mut(connection_id) {
            c.last_seen = now;
        }
        Ok(())
    }

    async fn set_connection_umd(
        &self,
        connection_id: &str,
        umd: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.call("set_connection_umd").await?;
        Ok(match self.tables().connections.get_mut(connection_id) {
            Some(c) => {
                c.umd = umd.map(str::to_owned);
                true
            }
            None => false,
        })
    }

    async fn reschedule_sweep(&self, connection_id: &str, sweep_at: i64) -> Result<(), StoreError> {
        self.call("reschedule_sweep").await?;
        if let Some(c) = self.tables().connections.get_mut(connection_id) {
            c.sweep_at = sweep_at;
        }
        Ok(())
    }

    async fn due_for_sweep(&self, now: i64, lookback: i64) -> Result<DueForSweep, StoreError> {
        self.call("due_for_sweep").await?;
        let tables = self.tables();
        let oldest = bucket(now - lookback);
        let first = match tables.sweep_cursor {
            Some(done) => (done + 1).max(oldest),
            None => oldest,
        };
        let due = |at: i64| (first..=bucket(now)).contains(&bucket(at)) && at <= now;
        Ok(DueForSweep {
            connections: tables
                .connections
                .values()
                .filter(|c| due(c.sweep_at) && alive(c.ttl, now))
                .cloned()
                .collect(),
            owed: tables
                .owed
                .values()
                .filter(|o| due(o.sweep_at) && alive(o.ttl, now))
                .cloned()
                .collect(),
        })
    }

    async fn heartbeat_due_within(&self, now: i64, until: i64) -> Result<bool, StoreError> {
        self.call("heartbeat_due_within").await?;
        Ok(self
            .tables()
            .connections
            .values()
            .any(|c| c.heartbeat_timeout.is_some() && c.sweep_at > now && c.sweep_at <= until))
    }

    async fn advance_sweep_cursor(&self, now: i64) -> Result<(), StoreError> {
        self.call("advance_sweep_cursor").await?;
        self.tables().sweep_cursor = Some(bucket(now) - 1);
        Ok(())
    }

    async fn channel_with_alias(
        &self,
        connection_id: &str,
        alias: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        self.call("channel_with_alias").await?;
        Ok(self
            .tables()
            .reverse
            .iter()
            .filter(|((c, _), (a, ttl))| {
                c == connection_id && a.as_deref() == Some(alias) && alive(*ttl, now)
            })
            .map(|((_, channel), _)| channel.clone())
            .next())
    }

    async fn connection_channels(
        &self,
        connection_id: &str,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.call("connection_channels").await?;
        Ok(self
            .tables()
            .reverse
            .iter()
            .filter(|((c, _), (_, ttl))| c == connection_id && alive(*ttl, now))
            .map(|((_, channel), _)| channel.clone())
            .collect())
    }

    async fn delete_connection(&self, connection_id: &str) -> Result<bool, StoreError> {
        self.call("delete_connection").await?;
        Ok(self.tables().connections.remove(connection_id).is_some())
    }

    async fn scan_connections(&self, now: i64) -> Result<Vec<ConnectionItem>, StoreError> {
        self.call("scan_connections").await?;
        Ok(self
            .tables()
            .connections
            .values()
            .filter(|c| alive(c.ttl, now))
            .cloned()
            .collect())
    }

    async fn consume_jti(&self, jti: &str, exp: i64, now: i64) -> Result<bool, StoreError> {
        self.call("consume_jti").await?;
        let mut tables = self.tables();
        // As the adapter's condition: absent, or its marker expired.
        if tables.jtis.get(jti).is_some_and(|ttl| *ttl >= now) {
            return Ok(false);
        }
        tables.jtis.insert(jti.to_owned(), exp.max(now) + 60);
        Ok(true)
    }

    async fn release_jti(&self, jti: &str) -> Result<(), StoreError> {
        self.call("release_jti").await?;
        self.tables().jtis.remove(jti);
        Ok(())
    }

    async fn jti_used(&self, jti: &str, now: i64) -> Result<bool, StoreError> {
        self.call("jti_used").await?;
        Ok(self.tables().jtis.get(jti).is_some_and(|t| alive(*t, now)))
    }

    async fn subscribe(
        &self,
        item: &SubscriptionItem,
        now: i64,
    ) -> Result<SubscribeOutcome, StoreError> {
        self.call("subscribe").await?;
        let mut tables = self.tables();
        if !tables.connections.contains_key(&item.connection_id) {
            return Ok(SubscribeOutcome::ConnectionGone);
        }
        let at = key(&item.channel, &item.connection_id);
        if tables.subscriptions.get(&at).is_some_and(|s| s.ttl >= now) {
            return Ok(SubscribeOutcome::AlreadySubscribed);
        }
        tables.subscriptions.insert(at, item.clone());
        tables.reverse.insert(
            key(&item.connection_id, &item.channel),
            (item.alias.clone(), item.ttl),
        );
        if item.counted {
            *tables.counts.entry(item.channel.clone()).or_default() += 1;
        }
        Ok(SubscribeOutcome::Subscribed)
    }

    async fn unsubscribe(
        &self,
        channel: &str,
        connection_id: &str,
        now: i64,
        owe_until: Option<i64>,
    ) -> Result<Option<SubscriptionItem>, StoreError> {
        self.call("unsubscribe").await?;
        let mut tables = self.tables();
        let at = key(channel, connection_id);
        let live = tables
            .subscriptions
            .get(&at)
            .is_some_and(|s| alive(s.ttl, now));
        let removed = tables.subscriptions.remove(&at);
        tables.reverse.remove(&key(connection_id, channel));
        let Some(existing) = removed.filter(|_| live) else {
            // Expired leftovers go quietly; they never counted as live.
            return Ok(None);
        };
        if let Some(sweep_at) = owe_until {
            tables
                .owed
                .insert(at, OwedChange::for_removal(&existing, sweep_at));
        }
        if existing.counted {
            *tables.counts.entry(channel.to_owned()).or_default() -= 1;
        }
        Ok(Some(existing))
    }

    async fn get_subscription(
        &self,
        channel: &str,
        connection_id: &str,
        now: i64,
    ) -> Result<Option<SubscriptionItem>, StoreError> {
        self.call("get_subscription").await?;
        Ok(self
            .tables()
            .subscriptions
            .get(&key(channel, connection_id))
            .filter(|s| alive(s.ttl, now))
            .cloned())
    }

    async fn welcome_subscription(
        &self,
        channel: &str,
        connection_id: &str,
        subscribed_at_ms: i64,
    ) -> Result<Option<SubscriptionItem>, StoreError> {
        self.call("welcome_subscription").await?;
        Ok(
            match self
                .tables()
                .subscriptions
                .get_mut(&key(channel, connection_id))
            {
                Some(s) if s.subscribed_at_ms == subscribed_at_ms => {
                    s.pending = false;
                    Some(s.clone())
                }
                _ => None,
            },
        )
    }

    async fn set_subscription_umd(
        &self,
        channel: &str,
        connection_id: &str,
        umd: Option<&str>,
        at_ms: i64,
    ) -> Result<Option<SubscriptionItem>, StoreError> {
        self.call("set_subscription_umd").await?;
        Ok(
            match self
                .tables()
                .subscriptions
                .get_mut(&key(channel, connection_id))
            {
                Some(s) => {
                    let before = s.clone();
                    s.umd = umd.map(str::to_owned);
                    s.umd_at_ms = at_ms;
                    Some(before)
                }
                None => None,
            },
        )
    }

    async fn channel_subscriptions(
        &self,
        channel: &str,
        now: i64,
    ) -> Result<Vec<SubscriptionItem>, StoreError> {
        self.call("channel_subscriptions").await?;
        Ok(self
            .tables()
            .subscriptions
            .iter()
            .filter(|((c, _), s)| c == channel && alive(s.ttl, now))
            .map(|(_, s)| s.clone())
            .collect())
    }

    async fn channel_subscriber_ids(
        &self,
        channel: &str,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.call("channel_subscriber_ids").await?;
        Ok(self
            .tables()
            .subscriptions
            .iter()
            .filter(|((c, _), s)| c == channel && alive(s.ttl, now))
            .map(|((_, connection), _)| connection.clone())
            .collect())
    }

    async fn subscriptions_count(&self, channel: &str) -> Result<i64, StoreError> {
        self.call("subscriptions_count").await?;
        Ok(self.tables().counts.get(channel).copied().unwrap_or(0))
    }

    async fn channel_audience(
        &self,
        channel: &str,
        now: i64,
    ) -> Result<ChannelAudience, StoreError> {
        self.call("channel_audience").await?;
        let tables = self.tables();
        let mut audience = ChannelAudience {
            laned: tables.laned.get(channel).copied().unwrap_or(false),
            recover_until: tables.recover_until.get(channel).copied(),
            ..ChannelAudience::default()
        };
        for ((c, connection), s) in &tables.subscriptions {
            if c != channel || !alive(s.ttl, now) {
                continue;
            }
            audience.recoverable |= s.recoverable;
            if !(s.recoverable && s.pending) {
                audience.subscribers.push(connection.clone());
            }
        }
        Ok(audience)
    }

    async fn set_fan_out_laned(&self, channel: &str, laned: bool) -> Result<(), StoreError> {
        self.call("set_fan_out_laned").await?;
        self.tables().laned.insert(channel.to_owned(), laned);
        Ok(())
    }

    async fn announced_members(
        &self,
        channel: &str,
        now: i64,
    ) -> Result<Option<(String, i64)>, StoreError> {
        self.call("announced_members").await?;
        Ok(self
            .tables()
            .members
            .get(channel)
            .filter(|(_, ttl)| alive(*ttl, now))
            .cloned())
    }

    async fn remember_members(
        &self,
        channel: &str,
        members: Option<&str>,
        ttl: i64,
    ) -> Result<(), StoreError> {
        self.call("remember_members").await?;
        let mut tables = self.tables();
        match members {
            Some(members) => tables
                .members
                .insert(channel.to_owned(), (members.to_owned(), ttl)),
            None => tables.members.remove(channel),
        };
        Ok(())
    }

    async fn settle_owed_change(&self, owed: &OwedChange) -> Result<(), StoreError> {
        self.call("settle_owed_change").await?;
        let mut tables = self.tables();
        let at = key(&owed.channel, &owed.connection_id);
        if tables
            .owed
            .get(&at)
            .is_some_and(|o| o.subscribed_at_ms == owed.subscribed_at_ms)
        {
            tables.owed.remove(&at);
        }
        Ok(())
    }

    async fn defer_owed_change(&self, owed: &OwedChange, sweep_at: i64) -> Result<(), StoreError> {
        self.call("defer_owed_change").await?;
        if let Some(o) = self
            .tables()
            .owed
            .get_mut(&key(&owed.channel, &owed.connection_id))
            .filter(|o| o.subscribed_at_ms == owed.subscribed_at_ms)
        {
            o.sweep_at = sweep_at;
        }
        Ok(())
    }

    async fn log_frame(&self, frame: &LoggedFrame) -> Result<(), StoreError> {
        self.call("log_frame").await?;
        let mut tables = self.tables();
        tables
            .log
            .entry(key(&frame.channel, &frame.position))
            .or_insert_with(|| frame.clone());
        if let Some(id) = &frame.message_id {
            tables
                .log_ids
                .entry(key(&frame.channel, id))
                .or_insert_with(|| (frame.position.clone(), frame.ttl));
        }
        Ok(())
    }

    async fn logged_before(
        &self,
        channel: &str,
        position: &str,
    ) -> Result<Option<String>, StoreError> {
        self.call("logged_before").await?;
        Ok(self
            .tables()
            .log
            .range(key(channel, "")..key(channel, position))
            .next_back()
            .map(|((_, p), _)| p.clone()))
    }

    async fn logged_after(
        &self,
        channel: &str,
        named: &str,
        now: i64,
        limit: usize,
    ) -> Result<LogAfter, StoreError> {
        self.call("logged_after").await?;
        let tables = self.tables();
        let position = match tables.log_ids.get(&key(channel, named)) {
            Some((position, ttl)) if alive(*ttl, now) => position.clone(),
            _ => named.to_owned(),
        };
        let found = tables
            .log
            .get(&key(channel, &position))
            .is_some_and(|f| alive(f.ttl, now));
        let after = tables
            .log
            .range((
                std::ops::Bound::Excluded(key(channel, &position)),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|((c, _), _)| c == channel)
            .map(|(_, f)| f)
            .filter(|f| alive(f.ttl, now))
            .take(limit + 1)
            .cloned()
            .collect();
        Ok(LogAfter {
            position,
            found,
            after,
        })
    }

    async fn unlog_from(&self, channel: &str, from: &str) -> Result<(), StoreError> {
        self.call("unlog_from").await?;
        let mut tables = self.tables();
        let stale: Vec<_> = tables
            .log
            .range(key(channel, from)..)
            .take_while(|((c, _), _)| c == channel)
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            tables.log.remove(&k);
        }
        Ok(())
    }

    async fn recover_until(&self, channel: &str) -> Result<Option<i64>, StoreError> {
        self.call("recover_until").await?;
        Ok(self.tables().recover_until.get(channel).copied())
    }

    async fn extend_recovery(
        &self,
        channel: &str,
        until: i64,
        keep_last: bool,
    ) -> Result<(), StoreError> {
        self.call("extend_recovery").await?;
        let mut tables = self.tables();
        let kept = tables
            .recover_until
            .entry(channel.to_owned())
            .or_insert(until);
        *kept = (*kept).max(until);
        if keep_last {
            let last = tables
                .log
                .range_mut(key(channel, "")..key(channel, "~"))
                .next_back();
            if let Some((_, frame)) = last {
                frame.ttl = frame.ttl.max(until);
            }
        }
        Ok(())
    }

    async fn put_message(&self, item: &MessageItem) -> Result<(), StoreError> {
        self.call("put_message").await?;
        self.tables()
            .messages
            .entry(key(&item.channel, &item.id))
            .or_insert_with(|| MessageItem {
                reactions: Default::default(),
                ..item.clone()
            });
        Ok(())
    }

    async fn get_message(
        &self,
        channel: &str,
        id: &str,
        now: i64,
    ) -> Result<Option<MessageItem>, StoreError> {
        self.call("get_message").await?;
        // As the adapter's read: the counts are not part of the item's record.
        Ok(self
            .tables()
            .messages
            .get(&key(channel, id))
            .filter(|m| alive_until(m.ttl, now))
            .map(|m| MessageItem {
                reactions: Default::default(),
                ..m.clone()
            }))
    }

    async fn list_messages(
        &self,
        q: &MessageQuery<'_>,
        now: i64,
    ) -> Result<MessagePage, StoreError> {
        self.call("list_messages").await?;
        let lower = match q.after {
            Some(after) if after >= q.window_start.as_str() => after.to_owned(),
            _ => q.window_start.clone(),
        };
        let upper = q.before.unwrap_or(MAX_ULID).to_owned();
        let mut messages = Vec::new();
        if lower > upper {
            return Ok(MessagePage { messages });
        }
        let tables = self.tables();
        let mut found: Vec<&MessageItem> = tables
            .messages
            .range(key(q.channel, &lower)..=key(q.channel, &upper))
            .map(|(_, m)| m)
            .filter(|m| m.stored && alive_until(m.ttl, now))
            .collect();
        if q.newest_first {
            found.reverse();
        }
        let mut bytes = 0usize;
        for message in found {
            if Some(message.id()) == q.after || Some(message.id()) == q.before {
                continue;
            }
            bytes += message.data.len() + message.meta.as_ref().map_or(0, String::len) + 128;
            if bytes > q.max_bytes && !messages.is_empty() {
                break;
            }
            let mut message = message.clone();
            message.reactions.retain(|_, count| *count > 0);
            messages.push(message);
            if messages.len() >= q.limit {
                break;
            }
        }
        Ok(MessagePage { messages })
    }

    async fn change_reaction(
        &self,
        channel: &str,
        message_id: &str,
        item: &ReactionItem,
        add: bool,
        now: i64,
    ) -> Result<ReactionChange, StoreError> {
        self.call("change_reaction").await?;
        let mut tables = self.tables();
        let message_there = tables
            .messages
            .get(&key(channel, message_id))
            .is_some_and(|m| m.stored && alive_until(m.ttl, now));
        if !message_there {
            return Ok(ReactionChange::MessageGone);
        }
        let at = (
            channel.to_owned(),
            message_id.to_owned(),
            item.reaction.clone(),
            item.uid.clone(),
        );
        let present = tables.reactions.contains_key(&at);
        if add == present {
            return Ok(ReactionChange::Unchanged);
        }
        if add {
            tables.reactions.insert(at, item.clone());
        } else {
            tables.reactions.remove(&at);
        }
        if let Some(message) = tables.messages.get_mut(&key(channel, message_id)) {
            *message.reactions.entry(item.reaction.clone()).or_default() +=
                if add { 1 } else { -1 };
        }
        Ok(ReactionChange::Changed)
    }

    async fn get_reaction(
        &self,
        channel: &str,
        message_id: &str,
        reaction: &str,
        uid: &str,
        now: i64,
    ) -> Result<Option<ReactionItem>, StoreError> {
        self.call("get_reaction").await?;
        let at = (
            channel.to_owned(),
            message_id.to_owned(),
            reaction.to_owned(),
            uid.to_owned(),
        );
        Ok(self
            .tables()
            .reactions
            .get(&at)
            .filter(|r| alive_until(r.ttl, now))
            .cloned())
    }

    async fn message_reactions(
        &self,
        channel: &str,
        message_id: &str,
        now: i64,
    ) -> Result<Vec<ReactionItem>, StoreError> {
        self.call("message_reactions").await?;
        Ok(self
            .tables()
            .reactions
            .iter()
            .filter(|((c, m, _, _), r)| c == channel && m == message_id && alive_until(r.ttl, now))
            .map(|(_, r)| r.clone())
            .collect())
    }

    async fn get_storage(
        &self,
        channel: &str,
        key_name: &str,
        now: i64,
    ) -> Result<Option<StorageItem>, StoreError> {
        self.call("get_storage").await?;
        Ok(self
            .tables()
            .storage
            .get(&key(channel, key_name))
            .filter(|e| alive_until(e.ttl, now))
            .cloned())
    }

    async fn put_storage(&self, entry: &StorageItem) -> Result<(), StoreError> {
        self.call("put_storage").await?;
        self.tables()
            .storage
            .insert(key(&entry.channel, &entry.key), entry.clone());
        Ok(())
    }

    async fn list_storage(
        &self,
        channel: &str,
        after: Option<&str>,
        now: i64,
        limit: usize,
        wanted: &(dyn for<'k> Fn(&'k str) -> bool + Send + Sync),
    ) -> Result<Vec<StorageItem>, StoreError> {
        self.call("list_storage").await?;
        Ok(self
            .tables()
            .storage
            .iter()
            .filter(|((c, k), e)| {
                c == channel
                    && after.is_none_or(|after| k.as_str() > after)
                    && alive_until(e.ttl, now)
                    && !e.cleared
                    && wanted(k)
            })
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn put_schedule(&self, schedule: &ScheduleItem) -> Result<(), StoreError> {
        self.call("put_schedule").await?;
        self.tables()
            .schedules
            .insert((schedule.due_ms, schedule.name.clone()), schedule.clone());
        Ok(())
    }

    async fn earliest_schedules(&self, limit: i32) -> Result<Vec<ScheduleItem>, StoreError> {
        self.call("earliest_schedules").await?;
        Ok(self
            .tables()
            .schedules
            .values()
            .take(usize::try_from(limit).unwrap_or(0))
            .cloned()
            .collect())
    }

    async fn delete_schedule(&self, due_ms: i64, name: &str) -> Result<(), StoreError> {
        self.call("delete_schedule").await?;
        self.tables().schedules.remove(&(due_ms, name.to_owned()));
        Ok(())
    }
}
