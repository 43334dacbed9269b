//! Channel storage entries: one item per (channel, key).

use super::{alive, each_page, keys, s, Item, Store, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use std::ops::ControlFlow;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageItem {
    pub channel: String,
    pub key: String,
    /// JSON text of the value.
    pub data: String,
    /// JSON text of the last writer's `{"uid","umd"}`.
    pub meta: String,
    /// Unix seconds at which the entry expires; none: forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    /// The queued write that set this value, so a retry of that write (the
    /// deliver step failed after writing) is told apart from a repeat of
    /// the same value by someone else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_id: Option<String>,
    /// A cleared entry, kept a while (with its `write_id`) so a retried clear
    /// is recognised; reads skip it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cleared: bool,
    /// Written with `emitPubSubEvent`: its TTL expiry is told to the backend.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub emit: bool,
    /// With `emit`: the JSON text of the value this write replaced, so a retry
    /// of the write tells the backend the same `dataPrevious`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

impl Store {
    /// The entry of `key`, cleared ones included (see [`StorageItem::cleared`]).
    pub async fn get_storage(
        &self,
        channel: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<StorageItem>, StoreError> {
        let item = self
            .get(keys::storage_pk(channel), key.to_owned(), now)
            .await?;
        Ok(item.map(serde_dynamo::from_item).transpose()?)
    }

    pub async fn put_storage(&self, entry: &StorageItem) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(super::keyed(
                entry,
                keys::storage_pk(&entry.channel),
                entry.key.clone(),
            )?))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("PutItem", e))?;
        Ok(())
    }

    /// The channel's live entries in key order, after `after` when given,
    /// keeping only keys `wanted` accepts, at most `limit` of them.
    pub async fn list_storage(
        &self,
        channel: &str,
        after: Option<&str>,
        now: i64,
        limit: usize,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<Vec<StorageItem>, StoreError> {
        let pk = keys::storage_pk(channel);
        let mut found: Vec<Item> = Vec::new();
        let fetch = |start: Option<Item>| {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .expression_attribute_values(":pk", s(&pk))
                .set_exclusive_start_key(start);
            query = match after {
                Some(after) => query
                    .key_condition_expression("pk = :pk AND sk > :after")
                    .expression_attribute_values(":after", s(after)),
                None => query.key_condition_expression("pk = :pk"),
            };
            super::query_page(query)
        };
        each_page(fetch, |page| {
            for item in page {
                let key = match item.get("sk") {
                    Some(AttributeValue::S(key)) => key.as_str(),
                    _ => continue,
                };
                let cleared = matches!(item.get("cleared"), Some(AttributeValue::Bool(true)));
                if alive(&item, now) && !cleared && wanted(key) {
                    found.push(item);
                    if found.len() >= limit {
                        return ControlFlow::Break(());
                    }
                }
            }
            ControlFlow::Continue(())
        })
        .await?;
        Ok(serde_dynamo::from_items(found)?)
    }
}
