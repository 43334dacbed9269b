//! Reactions (one partition per message, one item per reaction and uid) and the counts
//! kept on the message item, changed together in one transaction so counts
//! stay exact when users react at once.

use super::subscriptions::build_error;
use super::{
    backoff, keyed, keys, n, s, transact_put, DynamoStore, Item, StoreError, MAX_CONFLICT_RETRIES,
};
use crate::store::*;
use aws_sdk_dynamodb::types::{Delete, TransactWriteItem, Update};
use std::collections::BTreeMap;

/// Message attributes holding reaction counts are named `rx#<reaction>`:
/// top-level attributes, so `ADD` works before any reaction exists.
pub const COUNT_PREFIX: &str = "rx#";

/// Reaction counts found on a raw message item (pure).
pub fn reaction_counts(item: &Item) -> BTreeMap<String, i64> {
    item.iter()
        .filter_map(|(name, value)| {
            let reaction = name.strip_prefix(COUNT_PREFIX)?;
            let count: i64 = value.as_n().ok()?.parse().ok()?;
            (count > 0).then(|| (reaction.to_owned(), count))
        })
        .collect()
}

impl DynamoStore {
    /// Adds or removes one (message, reaction, uid) reaction and its count.
    pub async fn change_reaction(
        &self,
        channel: &str,
        message_id: &str,
        item: &ReactionItem,
        add: bool,
        now: i64,
    ) -> Result<ReactionChange, StoreError> {
        let count = TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(&self.table)
                    .key("pk", s(keys::message_pk(channel)))
                    .key("sk", s(message_id))
                    .update_expression("ADD #count :delta")
                    .condition_expression(
                        "attribute_exists(pk) AND #stored = :yes AND (attribute_not_exists(#ttl) OR #ttl > :now)",
                    )
                    .expression_attribute_names("#count", format!("{COUNT_PREFIX}{}", item.reaction))
                    .expression_attribute_names("#stored", "stored")
                    .expression_attribute_names("#ttl", "ttl")
                    .expression_attribute_values(":delta", n(if add { 1 } else { -1 }))
                    .expression_attribute_values(":yes", aws_sdk_dynamodb::types::AttributeValue::Bool(true))
                    .expression_attribute_values(":now", n(now))
                    .build()
                    .map_err(build_error)?,
            )
            .build();
        let reaction = if add {
            transact_put(
                &self.table,
                keyed(
                    item,
                    keys::reaction_pk(channel, message_id),
                    keys::reaction_sk(&item.reaction, &item.uid),
                )?,
                |put| put.condition_expression("attribute_not_exists(pk)"),
            )?
        } else {
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .key("pk", s(keys::reaction_pk(channel, message_id)))
                        .key("sk", s(keys::reaction_sk(&item.reaction, &item.uid)))
                        .condition_expression("attribute_exists(pk)")
                        .build()
                        .map_err(build_error)?,
                )
                .build()
        };
        let mut attempt = 0;
        loop {
            let result = self
                .client
                .transact_write_items()
                .transact_items(count.clone())
                .transact_items(reaction.clone())
                .send()
                .await;
            let Err(e) = result else {
                return Ok(ReactionChange::Changed);
            };
            let reasons: Vec<Option<String>> = match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) => {
                    c.cancellation_reasons().iter().map(|r| r.code().map(str::to_owned)).collect()
                }
                _ => return Err(StoreError::dynamo("TransactWriteItems", e)),
            };
            let failed = |i: usize| {
                reasons.get(i).and_then(|r| r.as_deref()) == Some("ConditionalCheckFailed")
            };
            if failed(0) {
                return Ok(ReactionChange::MessageGone);
            }
            if failed(1) {
                return Ok(ReactionChange::Unchanged);
            }
            if attempt >= MAX_CONFLICT_RETRIES {
                return Err(StoreError::dynamo("TransactWriteItems", e));
            }
            attempt += 1;
            tokio::time::sleep(backoff(attempt)).await;
        }
    }

    /// One user's reaction with one value on a message, as it was added.
    pub async fn get_reaction(
        &self,
        channel: &str,
        message_id: &str,
        reaction: &str,
        uid: &str,
        now: i64,
    ) -> Result<Option<ReactionItem>, StoreError> {
        let item = self
            .get(
                keys::reaction_pk(channel, message_id),
                keys::reaction_sk(reaction, uid),
                now,
            )
            .await?;
        Ok(item.map(serde_dynamo::from_item).transpose()?)
    }

    /// Every reaction on one message.
    pub async fn message_reactions(
        &self,
        channel: &str,
        message_id: &str,
        now: i64,
    ) -> Result<Vec<ReactionItem>, StoreError> {
        let items = self
            .query_partition(&keys::reaction_pk(channel, message_id), None, now)
            .await?;
        Ok(serde_dynamo::from_items(items)?)
    }
}
