//! Connection items and the per-connection reverse index of subscriptions.

use super::{keyed, keys, n, s, DynamoStore, Item, StoreError};
use crate::store::*;
use serde::{Deserialize, Serialize};

/// The reverse index under a connection: lets disconnect find every subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConnectionSubscriptionItem {
    pub channel: String,
    /// The subscription's alias, so a name the client sends can be resolved
    /// from this partition alone (items written before aliases were kept here
    /// have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    pub ttl: i64,
}

impl DynamoStore {
    pub async fn put_connection(&self, item: &ConnectionItem) -> Result<(), StoreError> {
        let mut attributes = keyed(
            item,
            keys::connection_pk(&item.connection_id),
            keys::CONNECTION_SK,
        )?;
        attributes.insert("sweepBucket".into(), n(keys::sweep_bucket(item.sweep_at)));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(attributes))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("PutItem", e))?;
        Ok(())
    }

    pub async fn get_connection(
        &self,
        connection_id: &str,
        now: i64,
    ) -> Result<Option<ConnectionItem>, StoreError> {
        let item = self
            .get(
                keys::connection_pk(connection_id),
                keys::CONNECTION_SK.into(),
                now,
            )
            .await?;
        Ok(item.map(serde_dynamo::from_item).transpose()?)
    }

    /// Records liveness for heartbeat timeouts; a no-op for a connection that is
    /// already gone, so a late heartbeat cannot resurrect it.
    pub async fn touch_connection(&self, connection_id: &str, now: i64) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::connection_pk(connection_id)))
            .key("sk", s(keys::CONNECTION_SK))
            .update_expression("SET lastSeen = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        super::conditional(result, "UpdateItem").map(|_| ())
    }

    /// Replaces the connection's default umd (JSON text; `None` removes it);
    /// false when the connection is gone.
    pub async fn set_connection_umd(
        &self,
        connection_id: &str,
        umd: Option<&str>,
    ) -> Result<bool, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::connection_pk(connection_id)))
            .key("sk", s(keys::CONNECTION_SK))
            .condition_expression("attribute_exists(pk)");
        let update = match umd {
            Some(umd) => update
                .update_expression("SET umd = :umd")
                .expression_attribute_values(":umd", s(umd)),
            None => update.update_expression("REMOVE umd"),
        };
        super::conditional(update.send().await, "UpdateItem")
    }

    /// Files the connection under the sweep index at `sweep_at`; a no-op for a
    /// connection already gone.
    pub async fn reschedule_sweep(
        &self,
        connection_id: &str,
        sweep_at: i64,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::connection_pk(connection_id)))
            .key("sk", s(keys::CONNECTION_SK))
            .update_expression("SET sweepAt = :at, sweepBucket = :bucket")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", n(sweep_at))
            .expression_attribute_values(":bucket", n(keys::sweep_bucket(sweep_at)))
            .send()
            .await;
        super::conditional(result, "UpdateItem").map(|_| ())
    }

    /// What is due for the sweeper by `now`: the sweep index's buckets after
    /// the sweeper's cursor (at most `lookback` seconds back) up to the
    /// current one. A query per bucket, usually two; never a scan.
    pub async fn due_for_sweep(&self, now: i64, lookback: i64) -> Result<DueForSweep, StoreError> {
        let current = keys::sweep_bucket(now);
        let oldest = keys::sweep_bucket(now - lookback);
        let first = match self.sweep_cursor().await? {
            Some(done) => (done + 1).max(oldest),
            None => oldest,
        };
        let mut found = Vec::new();
        for bucket in first..=current {
            let fetch = |start: Option<Item>| async move {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(keys::SWEEP_INDEX)
                    .key_condition_expression("sweepBucket = :bucket AND sweepAt <= :now")
                    .expression_attribute_values(":bucket", n(bucket))
                    .expression_attribute_values(":now", n(now))
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| StoreError::dynamo("Query", e))?;
                Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
            };
            super::each_page(fetch, |page| {
                found.extend(page.into_iter().filter(|i| super::alive(i, now)));
                std::ops::ControlFlow::Continue(())
            })
            .await?;
        }
        let mut due = DueForSweep::default();
        for item in found {
            let owed = item
                .get("sk")
                .and_then(|sk| sk.as_s().ok())
                .is_some_and(|sk| sk.starts_with(keys::OWED_PREFIX));
            if owed {
                due.owed.push(serde_dynamo::from_item(item)?);
            } else {
                due.connections.push(serde_dynamo::from_item(item)?);
            }
        }
        Ok(due)
    }

    /// Whether a connection with a `heartbeatTimeout` is filed under the sweep
    /// index after `now` and no later than `until`: while one is, the sweeper
    /// keeps passing (`driver::sweep_within`). Reads keys only.
    pub async fn heartbeat_due_within(&self, now: i64, until: i64) -> Result<bool, StoreError> {
        for bucket in keys::sweep_bucket(now + 1)..=keys::sweep_bucket(until) {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(keys::SWEEP_INDEX)
                .key_condition_expression(
                    "sweepBucket = :bucket AND sweepAt BETWEEN :after AND :until",
                )
                .filter_expression("attribute_exists(heartbeatTimeout)")
                .projection_expression("pk")
                .expression_attribute_values(":bucket", n(bucket))
                .expression_attribute_values(":after", n(now + 1))
                .expression_attribute_values(":until", n(until))
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Query", e))?;
            if out.count > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Records that every sweep bucket before the one of `now` is done (the
    /// current one may still gain due connections within its minute).
    pub async fn advance_sweep_cursor(&self, now: i64) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::SWEEP_CURSOR_PK))
            .item("sk", s(keys::SWEEP_CURSOR_SK))
            .item("done", n(keys::sweep_bucket(now) - 1))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("PutItem", e))?;
        Ok(())
    }

    async fn sweep_cursor(&self) -> Result<Option<i64>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::SWEEP_CURSOR_PK))
            .key("sk", s(keys::SWEEP_CURSOR_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        Ok(out
            .item
            .and_then(|i| i.get("done").and_then(|v| v.as_n().ok()).cloned())
            .and_then(|v| v.parse().ok()))
    }

    /// Channels this connection is subscribed to, from the reverse index.
    /// The channel this connection subscribed to under `alias`, if any.
    pub async fn channel_with_alias(
        &self,
        connection_id: &str,
        alias: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .connection_subscriptions(connection_id, now)
            .await?
            .into_iter()
            .find(|s| s.alias.as_deref() == Some(alias))
            .map(|s| s.channel))
    }

    pub async fn connection_channels(
        &self,
        connection_id: &str,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self
            .connection_subscriptions(connection_id, now)
            .await?
            .into_iter()
            .map(|s| s.channel)
            .collect())
    }

    async fn connection_subscriptions(
        &self,
        connection_id: &str,
        now: i64,
    ) -> Result<Vec<ConnectionSubscriptionItem>, StoreError> {
        let items = self
            .query_partition(
                &keys::connection_pk(connection_id),
                Some(keys::SUB_PREFIX),
                now,
            )
            .await?;
        items
            .into_iter()
            .map(|i| serde_dynamo::from_item(i).map_err(StoreError::from))
            .collect()
    }

    /// Deletes the connection item; true when this call removed it (so only one
    /// of two racing cleanups reports the disconnect).
    pub async fn delete_connection(&self, connection_id: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(keys::connection_pk(connection_id)))
            .key("sk", s(keys::CONNECTION_SK))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        super::conditional(result, "DeleteItem")
    }
}
