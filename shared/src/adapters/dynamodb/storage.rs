//! Channel storage entries: one item per (channel, key).

use super::{alive, each_page, keys, s, DynamoStore, Item, StoreError};
use crate::store::*;
use aws_sdk_dynamodb::types::AttributeValue;
use std::ops::ControlFlow;

impl DynamoStore {
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
        wanted: &(dyn for<'k> Fn(&'k str) -> bool + Send + Sync),
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
