//! [`DynamoStore`] as the store port: each call is the adapter's own method.

use super::DynamoStore;
use crate::store::*;

#[async_trait::async_trait]
impl Store for DynamoStore {
    async fn channel_audience(
        &self,
        channel: &str,
        now: i64,
    ) -> Result<ChannelAudience, StoreError> {
        DynamoStore::channel_audience(self, channel, now).await
    }
    async fn set_fan_out_laned(&self, channel: &str, laned: bool) -> Result<(), StoreError> {
        DynamoStore::set_fan_out_laned(self, channel, laned).await
    }
    async fn put_connection(&self, item: &ConnectionItem) -> Result<(), StoreError> {
        DynamoStore::put_connection(self, item).await
    }
    async fn get_connection(
        &self,
        connection_id: &str,
        now: i64,
    ) -> Result<Option<ConnectionItem>, StoreError> {
        DynamoStore::get_connection(self, connection_id, now).await
    }
    async fn touch_connection(&self, connection_id: &str, now: i64) -> Result<(), StoreError> {
        DynamoStore::touch_connection(self, connection_id, now).await
    }
    async fn set_connection_umd(
        &self,
        connection_id: &str,
        umd: Option<&str>,
    ) -> Result<bool, StoreError> {
        DynamoStore::set_connection_umd(self, connection_id, umd).await
    }
    async fn reschedule_sweep(&self, connection_id: &str, sweep_at: i64) -> Result<(), StoreError> {
        DynamoStore::reschedule_sweep(self, connection_id, sweep_at).await
    }
    async fn due_for_sweep(&self, now: i64, lookback: i64) -> Result<DueForSweep, StoreError> {
        DynamoStore::due_for_sweep(self, now, lookback).await
    }
    async fn heartbeat_due_within(&self, now: i64, until: i64) -> Result<bool, StoreError> {
        DynamoStore::heartbeat_due_within(self, now, until).await
    }
    async fn advance_sweep_cursor(&self, now: i64) -> Result<(), StoreError> {
        DynamoStore::advance_sweep_cursor(self, now).await
    }
    async fn channel_with_alias(
        &self,
        connection_id: &str,
        alias: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        DynamoStore::channel_with_alias(self, connection_id, alias, now).await
    }
    async fn connection_channels(
        &self,
        connection_id: &str,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        DynamoStore::connection_channels(self, connection_id, now).await
    }
    async fn delete_connection(&self, connection_id: &str) -> Result<bool, StoreError> {
        DynamoStore::delete_connection(self, connection_id).await
    }
    async fn scan_connections(&self, now: i64) -> Result<Vec<ConnectionItem>, StoreError> {
        DynamoStore::scan_connections(self, now).await
    }
    async fn consume_jti(&self, jti: &str, exp: i64, now: i64) -> Result<bool, StoreError> {
        DynamoStore::consume_jti(self, jti, exp, now).await
    }
    async fn release_jti(&self, jti: &str) -> Result<(), StoreError> {
        DynamoStore::release_jti(self, jti).await
    }
    async fn jti_used(&self, jti: &str, now: i64) -> Result<bool, StoreError> {
        DynamoStore::jti_used(self, jti, now).await
    }
    async fn subscribe(
        &self,
        item: &SubscriptionItem,
        now: i64,
    ) -> Result<SubscribeOutcome, StoreError> {
        DynamoStore::subscribe(self, item, now).await
    }
    async fn unsubscribe(
        &self,
        channel: &str,
        connection_id: &str,
        now: i64,
        owe_until: Option<i64>,
    ) -> Result<Option<SubscriptionItem>, StoreError> {
        DynamoStore::unsubscribe(self, channel, connection_id, now, owe_until).await
    }
    async fn get_subscription(
        &self,
        channel: &str,
        connection_id: &str,
        now: i64,
    ) -> Result<Option<SubscriptionItem>, StoreError> {
        DynamoStore::get_subscription(self, channel, connection_id, now).await
    }
    async fn welcome_subscription(
        &self,
        channel: &str,
        connection_id: &str,
        subscribed_at_ms: i64,
    ) -> Result<Option<SubscriptionItem>, StoreError> {
        DynamoStore::welcome_subscription(self, channel, connection_id, subscribed_at_ms).await
    }
    async fn set_subscription_umd(
        &self,
        channel: &str,
        connection_id: &str,
        umd: Option<&str>,
        at_ms: i64,
    ) -> Result<Option<SubscriptionItem>, StoreError> {
        DynamoStore::set_subscription_umd(self, channel, connection_id, umd, at_ms).await
    }
    async fn channel_subscriptions(
        &self,
        channel: &str,
        now: i64,
    ) -> Result<Vec<SubscriptionItem>, StoreError> {
        DynamoStore::channel_subscriptions(self, channel, now).await
    }
    async fn channel_subscriber_ids(
        &self,
        channel: &str,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        DynamoStore::channel_subscriber_ids(self, channel, now).await
    }
    async fn subscriptions_count(&self, channel: &str) -> Result<i64, StoreError> {
        DynamoStore::subscriptions_count(self, channel).await
    }
    async fn announced_members(
        &self,
        channel: &str,
        now: i64,
    ) -> Result<Option<(String, i64)>, StoreError> {
        DynamoStore::announced_members(self, channel, now).await
    }
    async fn remember_members(
        &self,
        channel: &str,
        members: Option<&str>,
        ttl: i64,
    ) -> Result<(), StoreError> {
        DynamoStore::remember_members(self, channel, members, ttl).await
    }
    async fn settle_owed_change(&self, owed: &OwedChange) -> Result<(), StoreError> {
        DynamoStore::settle_owed_change(self, owed).await
    }
    async fn defer_owed_change(&self, owed: &OwedChange, sweep_at: i64) -> Result<(), StoreError> {
        DynamoStore::defer_owed_change(self, owed, sweep_at).await
    }
    async fn log_frame(&self, frame: &LoggedFrame) -> Result<(), StoreError> {
        DynamoStore::log_frame(self, frame).await
    }
    async fn logged_before(
        &self,
        channel: &str,
        position: &str,
    ) -> Result<Option<String>, StoreError> {
        DynamoStore::logged_before(self, channel, position).await
    }
    async fn logged_after(
        &self,
        channel: &str,
        named: &str,
        now: i64,
        limit: usize,
    ) -> Result<LogAfter, StoreError> {
        DynamoStore::logged_after(self, channel, named, now, limit).await
    }
    async fn unlog_from(&self, channel: &str, from: &str) -> Result<(), StoreError> {
        DynamoStore::unlog_from(self, channel, from).await
    }
    async fn recover_until(&self, channel: &str) -> Result<Option<i64>, StoreError> {
        DynamoStore::recover_until(self, channel).await
    }
    async fn extend_recovery(
        &self,
        channel: &str,
        until: i64,
        keep_last: bool,
    ) -> Result<(), StoreError> {
        DynamoStore::extend_recovery(self, channel, until, keep_last).await
    }
    async fn put_message(&self, item: &MessageItem) -> Result<(), StoreError> {
        DynamoStore::put_message(self, item).await
    }
    async fn get_message(
        &self,
        channel: &str,
        id: &str,
        now: i64,
    ) -> Result<Option<MessageItem>, StoreError> {
        DynamoStore::get_message(self, channel, id, now).await
    }
    async fn list_messages(
        &self,
        query: &MessageQuery<'_>,
        now: i64,
    ) -> Result<MessagePage, StoreError> {
        DynamoStore::list_messages(self, query, now).await
    }
    async fn change_reaction(
        &self,
        channel: &str,
        message_id: &str,
        item: &ReactionItem,
        add: bool,
        now: i64,
    ) -> Result<ReactionChange, StoreError> {
        DynamoStore::change_reaction(self, channel, message_id, item, add, now).await
    }
    async fn get_reaction(
        &self,
        channel: &str,
        message_id: &str,
        reaction: &str,
        uid: &str,
        now: i64,
    ) -> Result<Option<ReactionItem>, StoreError> {
        DynamoStore::get_reaction(self, channel, message_id, reaction, uid, now).await
    }
    async fn message_reactions(
        &self,
        channel: &str,
        message_id: &str,
        now: i64,
    ) -> Result<Vec<ReactionItem>, StoreError> {
        DynamoStore::message_reactions(self, channel, message_id, now).await
    }
    async fn get_storage(
        &self,
        channel: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<StorageItem>, StoreError> {
        DynamoStore::get_storage(self, channel, key, now).await
    }
    async fn put_storage(&self, entry: &StorageItem) -> Result<(), StoreError> {
        DynamoStore::put_storage(self, entry).await
    }
    async fn list_storage(
        &self,
        channel: &str,
        after: Option<&str>,
        now: i64,
        limit: usize,
        wanted: &(dyn for<'k> Fn(&'k str) -> bool + Send + Sync),
    ) -> Result<Vec<StorageItem>, StoreError> {
        DynamoStore::list_storage(self, channel, after, now, limit, wanted).await
    }
    async fn put_schedule(&self, schedule: &ScheduleItem) -> Result<(), StoreError> {
        DynamoStore::put_schedule(self, schedule).await
    }
    async fn earliest_schedules(&self, limit: i32) -> Result<Vec<ScheduleItem>, StoreError> {
        DynamoStore::earliest_schedules(self, limit).await
    }
    async fn delete_schedule(&self, due_ms: i64, name: &str) -> Result<(), StoreError> {
        DynamoStore::delete_schedule(self, due_ms, name).await
    }
}
