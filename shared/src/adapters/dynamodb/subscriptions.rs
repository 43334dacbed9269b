//! Subscriptions (`CHAN#<channel>` / `SUB#<connection>`), their reverse index and
//! the channel's subscription count, always changed together in one transaction.

use super::connections::ConnectionSubscriptionItem;
use super::{cancelled_conditions, keyed, keys, n, s, transact_put, DynamoStore, StoreError};
use crate::store::*;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, ReturnValue, TransactWriteItem, Update,
};

impl DynamoStore {
    /// Writes the subscription, its reverse index and the count as one
    /// transaction, conditional on no live subscription and a live connection,
    /// so a double subscribe or a racing disconnect cannot leave strays.
    pub async fn subscribe(
        &self,
        item: &SubscriptionItem,
        now: i64,
    ) -> Result<SubscribeOutcome, StoreError> {
        let (forward, back) = subscription_items(item)?;
        let writes = vec![
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name(&self.table)
                        .key("pk", s(keys::connection_pk(&item.connection_id)))
                        .key("sk", s(keys::CONNECTION_SK))
                        .condition_expression("attribute_exists(pk)")
                        .build()
                        .map_err(build_error)?,
                )
                .build(),
            transact_put(&self.table, forward, |put| {
                put.condition_expression("attribute_not_exists(pk) OR #ttl <= :now")
                    .expression_attribute_names("#ttl", "ttl")
                    .expression_attribute_values(":now", n(now))
            })?,
            transact_put(&self.table, back, |put| put)?,
        ];
        let delta = if item.counted { 1 } else { 0 };
        match self
            .transact_with_count(writes, &item.channel, delta)
            .await?
        {
            Ok(()) => Ok(SubscribeOutcome::Subscribed),
            Err(e) => match cancelled_conditions(&e) {
                Some(failed) if failed.first() == Some(&true) => {
                    Ok(SubscribeOutcome::ConnectionGone)
                }
                Some(failed) if failed.get(1) == Some(&true) => {
                    Ok(SubscribeOutcome::AlreadySubscribed)
                }
                _ => Err(StoreError::dynamo("TransactWriteItems", e)),
            },
        }
    }

    /// Removes a subscription with its reverse index and count contribution.
    /// Returns the removed item, or `None` when there was none to remove (so two
    /// racing removals decrement the count once).
    /// With `owe_until`, the removal also files the presence change it owes
    /// the channel's members ([`OwedChange`], due for the sweeper
    /// then), in the same transaction: a leave is never removed untold.
    pub async fn unsubscribe(
        &self,
        channel: &str,
        connection_id: &str,
        now: i64,
        owe_until: Option<i64>,
    ) -> Result<Option<SubscriptionItem>, StoreError> {
        // The removed item is returned as it was deleted: the delete is
        // conditional on the subscription read (same subscribedAtMs, same
        // pending state), so a welcome between the read and the delete makes
        // it read again rather than report a stale `pending`.
        for _ in 0..super::MAX_CONFLICT_RETRIES {
            let Some(existing) = self.get_subscription(channel, connection_id, now).await? else {
                // Expired leftovers are removed quietly; they never counted as live.
                self.delete_expired_subscription_items(channel, connection_id, now)
                    .await?;
                return Ok(None);
            };
            let unchanged = if existing.pending {
                "subscribedAtMs = :at AND pending = :yes"
            } else {
                "subscribedAtMs = :at AND attribute_not_exists(pending)"
            };
            let mut subscription = Delete::builder()
                .table_name(&self.table)
                .key("pk", s(keys::channel_pk(channel)))
                .key("sk", s(keys::subscription_sk(connection_id)))
                .condition_expression(unchanged)
                .expression_attribute_values(":at", n(existing.subscribed_at_ms));
            if existing.pending {
                subscription =
                    subscription.expression_attribute_values(":yes", AttributeValue::Bool(true));
            }
            let mut writes = vec![
                TransactWriteItem::builder()
                    .delete(subscription.build().map_err(build_error)?)
                    .build(),
                TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(&self.table)
                            .key("pk", s(keys::connection_pk(connection_id)))
                            .key("sk", s(keys::connection_subscription_sk(channel)))
                            .build()
                            .map_err(build_error)?,
                    )
                    .build(),
            ];
            if let Some(sweep_at) = owe_until {
                writes.push(super::members::owed_transact_put(
                    &OwedChange::for_removal(&existing, sweep_at),
                    &self.table,
                )?);
            }
            let delta = if existing.counted { -1 } else { 0 };
            match self.transact_with_count(writes, channel, delta).await? {
                Ok(()) => return Ok(Some(existing)),
                // Gone or changed since the read: read again.
                Err(e) if cancelled_conditions(&e).is_some_and(|f| f.first() == Some(&true)) => {}
                Err(e) => return Err(StoreError::dynamo("TransactWriteItems", e)),
            }
        }
        Err(StoreError::Corrupt(
            "a subscription kept changing under its unsubscribe".into(),
        ))
    }

    /// Removes a subscription's two items if they are expired leftovers. The
    /// delete is conditional on the expiry: a subscribe that commits between
    /// the read that found nothing live and this delete must not be undone.
    async fn delete_expired_subscription_items(
        &self,
        channel: &str,
        connection_id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        for (pk, sk) in [
            (
                keys::channel_pk(channel),
                keys::subscription_sk(connection_id),
            ),
            (
                keys::connection_pk(connection_id),
                keys::connection_subscription_sk(channel),
            ),
        ] {
            let deleted = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(pk))
                .key("sk", s(sk))
                .condition_expression("#ttl <= :now")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":now", n(now))
                .send()
                .await;
            match deleted {
                // Absent or live: nothing of ours to remove.
                Ok(_) => {}
                Err(e) if super::is_condition_failure(&e) => {}
                Err(e) => return Err(StoreError::dynamo("DeleteItem", e)),
            }
        }
        Ok(())
    }

    pub async fn get_subscription(
        &self,
        channel: &str,
        connection_id: &str,
        now: i64,
    ) -> Result<Option<SubscriptionItem>, StoreError> {
        let item = self
            .get(
                keys::channel_pk(channel),
                keys::subscription_sk(connection_id),
                now,
            )
            .await?;
        Ok(item.map(serde_dynamo::from_item).transpose()?)
    }

    /// Ends the wait for its welcome of the subscription made at
    /// `subscribed_at_ms`; the subscription as it now is, or `None` when it is
    /// gone (or replaced by a later one). Idempotent, so a retried welcome
    /// finds it.
    pub async fn welcome_subscription(
        &self,
        channel: &str,
        connection_id: &str,
        subscribed_at_ms: i64,
    ) -> Result<Option<SubscriptionItem>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::channel_pk(channel)))
            .key("sk", s(keys::subscription_sk(connection_id)))
            .update_expression("REMOVE pending")
            .condition_expression("subscribedAtMs = :at")
            .expression_attribute_values(":at", n(subscribed_at_ms))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.attributes.map(serde_dynamo::from_item).transpose()?),
            Err(e) if super::is_condition_failure(&e) => Ok(None),
            Err(e) => Err(StoreError::dynamo("UpdateItem", e)),
        }
    }

    /// Replaces a subscription's umd (JSON text; `None` removes it), set at
    /// `at_ms`. The subscription as it was before, or `None` when it is gone.
    pub async fn set_subscription_umd(
        &self,
        channel: &str,
        connection_id: &str,
        umd: Option<&str>,
        at_ms: i64,
    ) -> Result<Option<SubscriptionItem>, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::channel_pk(channel)))
            .key("sk", s(keys::subscription_sk(connection_id)))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", n(at_ms))
            .return_values(ReturnValue::AllOld);
        let update = match umd {
            Some(umd) => update
                .update_expression("SET umd = :umd, umdAtMs = :at")
                .expression_attribute_values(":umd", s(umd)),
            None => update.update_expression("SET umdAtMs = :at REMOVE umd"),
        };
        match update.send().await {
            Ok(out) => Ok(out.attributes.map(serde_dynamo::from_item).transpose()?),
            Err(e) if super::is_condition_failure(&e) => Ok(None),
            Err(e) => Err(StoreError::dynamo("UpdateItem", e)),
        }
    }

    /// Every live subscription of a channel.
    pub async fn channel_subscriptions(
        &self,
        channel: &str,
        now: i64,
    ) -> Result<Vec<SubscriptionItem>, StoreError> {
        let items = self
            .query_partition(&keys::channel_pk(channel), Some(keys::SUB_PREFIX), now)
            .await?;
        Ok(serde_dynamo::from_items(items)?)
    }

    /// The connection ids of a channel's subscribers: all a fan-out needs, so
    /// only they are read (the per-message read of the delivery path).
    pub async fn channel_subscriber_ids(
        &self,
        channel: &str,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let items = self
            .query_partition_reading(
                &keys::channel_pk(channel),
                Some(keys::SUB_PREFIX),
                now,
                Some(&["connectionId"]),
            )
            .await?;
        items
            .into_iter()
            .map(|item| {
                item.get("connectionId")
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .ok_or_else(|| {
                        StoreError::Corrupt("a subscription without connectionId".into())
                    })
            })
            .collect()
    }

    /// `subscriptionsCount` of a channel (0 when it never had one).
    pub async fn subscriptions_count(&self, channel: &str) -> Result<i64, StoreError> {
        let item = self
            .get(keys::channel_pk(channel), keys::META_SK.into(), 0)
            .await?;
        Ok(item
            .and_then(|i| i.get("subscriptionsCount").cloned())
            .and_then(|v| v.as_n().ok().and_then(|n| n.parse().ok()))
            .unwrap_or(0))
    }
}

impl DynamoStore {
    /// Writes subscriptions (and, with `reverse_index`, the connection's
    /// side that cleanup reads) as plain puts, 25 items a BatchWriteItem,
    /// `concurrency` requests at a time, unprocessed items sent again: a
    /// seeding path for benchmarks that need tens of thousands of subscribers
    /// in seconds, where a subscribe is one transaction each (bench
    /// `aws-model`). Not a subscribe: no conditions, no welcome, and the
    /// channels' `subscriptionsCount` is left as it was.
    pub async fn seed_subscriptions(
        &self,
        items: &[SubscriptionItem],
        reverse_index: bool,
        concurrency: usize,
    ) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        use futures::stream::{self, StreamExt, TryStreamExt};
        let mut writes = Vec::with_capacity(items.len() * 2);
        for item in items {
            let (forward, back) = subscription_items(item)?;
            let items = if reverse_index {
                vec![forward, back]
            } else {
                vec![forward]
            };
            for attributes in items {
                let put = PutRequest::builder()
                    .set_item(Some(attributes))
                    .build()
                    .map_err(build_error)?;
                writes.push(WriteRequest::builder().put_request(put).build());
            }
        }
        let chunks: Vec<Vec<WriteRequest>> = writes.chunks(25).map(<[_]>::to_vec).collect();
        stream::iter(chunks)
            .map(|mut chunk| async move {
                for attempt in 0..super::MAX_CONFLICT_RETRIES {
                    let answer = self
                        .client
                        .batch_write_item()
                        .request_items(&self.table, chunk)
                        .send()
                        .await
                        .map_err(|e| StoreError::dynamo("BatchWriteItem", e))?;
                    chunk = answer
                        .unprocessed_items
                        .and_then(|mut left| left.remove(&self.table))
                        .unwrap_or_default();
                    if chunk.is_empty() {
                        return Ok(());
                    }
                    let wait = super::conflict_backoff(&*self.pacing.chance, attempt + 1);
                    self.pacing.pause.pause(wait).await;
                }
                Err(StoreError::Corrupt(
                    "BatchWriteItem left items unprocessed".into(),
                ))
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}

impl DynamoStore {
    /// A channel's subscriber ids and its `laned` flag (kept on its `META`
    /// item beside the count) in one query: from `META` on, the partition
    /// holds `META`, owed changes and the subscriptions (the member list,
    /// `MEMBERS`, sorts before and is not read). Only the ids, the flag and
    /// the keys are read.
    pub async fn channel_audience(
        &self,
        channel: &str,
        now: i64,
    ) -> Result<ChannelAudience, StoreError> {
        let pk = keys::channel_pk(channel);
        let mut audience = ChannelAudience::default();
        let mut corrupt = false;
        let fetch = |start: Option<super::Item>| {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND sk >= :meta")
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":meta", s(keys::META_SK))
                .projection_expression(
                    "sk, connectionId, laned, pending, recoverable, recoverUntil, #ttl",
                )
                .expression_attribute_names("#ttl", "ttl")
                .set_exclusive_start_key(start);
            super::query_page(query)
        };
        let flag = |item: &super::Item, name: &str| {
            matches!(item.get(name), Some(AttributeValue::Bool(true)))
        };
        super::each_page(fetch, |page| {
            for item in page.into_iter().filter(|i| super::alive(i, now)) {
                let sk = item.get("sk").and_then(|v| v.as_s().ok());
                match sk {
                    Some(sk) if sk == keys::META_SK => {
                        audience.laned = flag(&item, "laned");
                        audience.recover_until = item
                            .get("recoverUntil")
                            .and_then(|v| v.as_n().ok())
                            .and_then(|n| n.parse().ok());
                    }
                    Some(sk) if sk.starts_with(keys::SUB_PREFIX) => {
                        let recoverable = flag(&item, "recoverable");
                        audience.recoverable |= recoverable;
                        if recoverable && flag(&item, "pending") {
                            continue;
                        }
                        match item.get("connectionId").and_then(|v| v.as_s().ok()) {
                            Some(id) => audience.subscribers.push(id.clone()),
                            None => corrupt = true,
                        }
                    }
                    _ => {}
                }
            }
            std::ops::ControlFlow::Continue(())
        })
        .await?;
        if corrupt {
            return Err(StoreError::Corrupt(
                "a subscription without connectionId".into(),
            ));
        }
        Ok(audience)
    }

    pub async fn set_fan_out_laned(&self, channel: &str, laned: bool) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::channel_pk(channel)))
            .key("sk", s(keys::META_SK))
            .update_expression("SET laned = :laned")
            .expression_attribute_values(":laned", AttributeValue::Bool(laned))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("UpdateItem", e))?;
        Ok(())
    }
}

/// A subscription's two items, keyed: the channel's side (the subscriber
/// list) and the connection's (what its cleanup reads).
fn subscription_items(item: &SubscriptionItem) -> Result<(super::Item, super::Item), StoreError> {
    let reverse = ConnectionSubscriptionItem {
        channel: item.channel.clone(),
        alias: item.alias.clone(),
        ttl: item.ttl,
    };
    let forward = keyed(
        item,
        keys::channel_pk(&item.channel),
        keys::subscription_sk(&item.connection_id),
    )?;
    let back = keyed(
        &reverse,
        keys::connection_pk(&item.connection_id),
        keys::connection_subscription_sk(&item.channel),
    )?;
    Ok((forward, back))
}

type TransactError = aws_sdk_dynamodb::error::SdkError<
    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
    aws_sdk_dynamodb::config::http::HttpResponse,
>;
type TransactResult = Result<(), TransactError>;

impl DynamoStore {
    /// Runs `writes` as one transaction, with the channel's subscription count
    /// changed by `delta` in it when that is not zero. The outer error is a
    /// request that could not be built; the inner one is DynamoDB's answer.
    async fn transact_with_count(
        &self,
        mut writes: Vec<TransactWriteItem>,
        channel: &str,
        delta: i64,
    ) -> Result<TransactResult, StoreError> {
        if delta != 0 {
            writes.push(count_change(&self.table, channel, delta)?);
        }
        // Subscribes to one channel all touch its count item; a transaction that
        // lost to another one on it is cancelled (TransactionConflict) and safe
        // to run again, so it is, after a short jittered pause.
        let writes = &writes;
        let transaction = || async move {
            self.client
                .transact_write_items()
                .set_transact_items(Some(writes.clone()))
                .send()
                .await
                .map(drop)
        };
        Ok(self.retry_conflicts(transaction, lost_a_conflict).await)
    }
}

/// A transaction cancelled only because another one touched the same items, with
/// no condition failing: running it again is safe.
fn lost_a_conflict(e: &TransactError) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
            let codes: Vec<Option<&str>> =
                c.cancellation_reasons().iter().map(|r| r.code()).collect();
            codes.contains(&Some("TransactionConflict"))
                && !codes.contains(&Some("ConditionalCheckFailed"))
        }
        _ => false,
    }
}

fn count_change(table: &str, channel: &str, delta: i64) -> Result<TransactWriteItem, StoreError> {
    Ok(TransactWriteItem::builder()
        .update(
            Update::builder()
                .table_name(table)
                .key("pk", s(keys::channel_pk(channel)))
                .key("sk", s(keys::META_SK))
                .update_expression("ADD subscriptionsCount :delta")
                .expression_attribute_values(":delta", n(delta))
                .build()
                .map_err(build_error)?,
        )
        .build())
}

pub(super) fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Corrupt(format!("request could not be built: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;
    use aws_sdk_dynamodb::types::CancellationReason;

    fn cancelled(codes: &[&str]) -> TransactError {
        let reasons = codes
            .iter()
            .map(|c| CancellationReason::builder().code(*c).build())
            .collect();
        let err = TransactWriteItemsError::TransactionCanceledException(
            TransactionCanceledException::builder()
                .set_cancellation_reasons(Some(reasons))
                .build(),
        );
        let response = aws_sdk_dynamodb::config::http::HttpResponse::new(
            400.try_into().expect("status"),
            "".into(),
        );
        aws_sdk_dynamodb::error::SdkError::service_error(err, response)
    }

    #[test]
    fn only_pure_conflicts_are_retried() {
        assert!(lost_a_conflict(&cancelled(&[
            "None",
            "TransactionConflict"
        ])));
        // A failed condition decides the outcome: never retried.
        assert!(!lost_a_conflict(&cancelled(&[
            "ConditionalCheckFailed",
            "TransactionConflict"
        ])));
        assert!(!lost_a_conflict(&cancelled(&["None", "ThrottlingError"])));
    }
}
