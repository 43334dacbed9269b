//! The member list a presence channel's members were last told
//! (`CHAN#<channel>` / `MEMBERS`): each presence change is told as the
//! difference from it, so changes that raced are told once, in one order.
//! And the changes a removal still owes them (`CHAN#<channel>` /
//! `OWED#<connection>`), so that no leave goes untold.

use super::{keyed, keys, n, s, transact_put, DynamoStore, Item, StoreError};
use crate::store::*;
use aws_sdk_dynamodb::types::TransactWriteItem;

/// The key of an owed change: under its channel, one per connection.
fn owed_key(owed: &OwedChange) -> (String, String) {
    (
        keys::channel_pk(&owed.channel),
        keys::owed_change_sk(&owed.connection_id),
    )
}

/// The owed change's item, filed under the sweep index at its `sweep_at`.
pub(super) fn owed_item(owed: &OwedChange) -> Result<Item, StoreError> {
    let (pk, sk) = owed_key(owed);
    let mut item = keyed(owed, pk, sk)?;
    item.insert("sweepBucket".into(), n(keys::sweep_bucket(owed.sweep_at)));
    Ok(item)
}

/// Its put inside the removal's transaction (it replaces an older one of
/// the same connection, which this one's change also covers).
pub(super) fn owed_transact_put(
    owed: &OwedChange,
    table: &str,
) -> Result<TransactWriteItem, StoreError> {
    transact_put(table, owed_item(owed)?, |put| put)
}

impl DynamoStore {
    /// The JSON text of the last announced member list and until when it is
    /// kept (`None`: nobody was told of anyone yet, or everyone left).
    pub async fn announced_members(
        &self,
        channel: &str,
        now: i64,
    ) -> Result<Option<(String, i64)>, StoreError> {
        let Some(mut item) = self
            .get(keys::channel_pk(channel), keys::MEMBERS_SK.into(), now)
            .await?
        else {
            return Ok(None);
        };
        let members = item.remove("members").and_then(|v| v.as_s().ok().cloned());
        let ttl = item
            .get("ttl")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Ok(members.map(|m| (m, ttl)))
    }

    /// Remembers the member list just announced until `ttl` (when the last
    /// member's subscription would expire); `None`: the channel is empty, so
    /// the item goes.
    pub async fn remember_members(
        &self,
        channel: &str,
        members: Option<&str>,
        ttl: i64,
    ) -> Result<(), StoreError> {
        let (pk, sk) = (s(keys::channel_pk(channel)), s(keys::MEMBERS_SK));
        match members {
            Some(members) => self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", pk)
                .item("sk", sk)
                .item("members", s(members))
                .item("ttl", n(ttl))
                .send()
                .await
                .map(drop)
                .map_err(|e| StoreError::dynamo("PutItem", e)),
            None => self
                .client
                .delete_item()
                .table_name(&self.table)
                .key("pk", pk)
                .key("sk", sk)
                .send()
                .await
                .map(drop)
                .map_err(|e| StoreError::dynamo("DeleteItem", e)),
        }
    }

    /// The change is queued: the owed item goes, unless a later removal of
    /// the same connection replaced it meanwhile.
    pub async fn settle_owed_change(&self, owed: &OwedChange) -> Result<(), StoreError> {
        let (pk, sk) = owed_key(owed);
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .condition_expression("subscribedAtMs = :at")
            .expression_attribute_values(":at", n(owed.subscribed_at_ms))
            .send()
            .await;
        super::conditional(result, "DeleteItem").map(|_| ())
    }

    /// Queueing failed again: the sweeper looks at it once more at `sweep_at`.
    pub async fn defer_owed_change(
        &self,
        owed: &OwedChange,
        sweep_at: i64,
    ) -> Result<(), StoreError> {
        let (pk, sk) = owed_key(owed);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .update_expression("SET sweepAt = :due, sweepBucket = :bucket")
            .condition_expression("subscribedAtMs = :at")
            .expression_attribute_values(":due", n(sweep_at))
            .expression_attribute_values(":bucket", n(keys::sweep_bucket(sweep_at)))
            .expression_attribute_values(":at", n(owed.subscribed_at_ms))
            .send()
            .await;
        super::conditional(result, "UpdateItem").map(|_| ())
    }
}
