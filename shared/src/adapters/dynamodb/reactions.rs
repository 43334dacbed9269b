//! Reactions (one partition per message, one item per reaction and uid) and the counts
//! kept on the message item, changed together in one transaction so counts
//! stay exact when users react at once.

use super::subscriptions::build_error;
use super::{keyed, keys, n, s, transact_put, DynamoStore, Item, StoreError};
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
        let (count, reaction) = (&count, &reaction);
        let transaction = || async move {
            self.client
                .transact_write_items()
                .transact_items(count.clone())
                .transact_items(reaction.clone())
                .send()
                .await
        };
        // A cancellation with no condition failing lost a conflict on the
        // message's count: run again. A failed condition is an answer.
        let condition_failed = |e: &TransactError, i: usize| {
            cancellation_reasons(e).is_some_and(|reasons| {
                reasons.get(i).and_then(|r| r.as_deref()) == Some("ConditionalCheckFailed")
            })
        };
        let retryable = |e: &TransactError| {
            cancellation_reasons(e).is_some() && !condition_failed(e, 0) && !condition_failed(e, 1)
        };
        match self.retry_conflicts(transaction, retryable).await {
            Ok(_) => Ok(ReactionChange::Changed),
            Err(e) if condition_failed(&e, 0) => Ok(ReactionChange::MessageGone),
            Err(e) if condition_failed(&e, 1) => Ok(ReactionChange::Unchanged),
            Err(e) => Err(StoreError::dynamo("TransactWriteItems", e)),
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

type TransactError = aws_sdk_dynamodb::error::SdkError<
    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
    aws_sdk_dynamodb::config::http::HttpResponse,
>;

/// The reasons of a cancelled transaction, one per item in order.
fn cancellation_reasons(e: &TransactError) -> Option<Vec<Option<String>>> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => Some(
            c.cancellation_reasons()
                .iter()
                .map(|r| r.code().map(str::to_owned))
                .collect(),
        ),
        _ => None,
    }
}
