//! Messages, one partition per channel, sorted by id. Every published message
//! is written here, stored or not: the table's stream then hands each channel's
//! messages to the stream function in commit order, which the ordering
//! condition below makes equal to id order (docs/adr/0001-ordered-delivery.md).

use super::subscriptions::build_error;
use super::{
    cancelled_conditions, each_page, keyed, keys, n, query_page, s, transact_put, Item, Store,
    StoreError,
};
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};
use std::ops::ControlFlow;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageItem {
    /// The message id (a ULID), which is also the item's sort key.
    #[serde(rename = "sk")]
    pub id: String,
    pub channel: String,
    pub event: String,
    /// JSON text of `data`.
    pub data: String,
    /// JSON text of `meta`, absent for server-published messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<String>,
    /// Listed by `listMessages`; unstored messages only pass through for delivery.
    pub stored: bool,
    /// The publishing connection, which gets its own copy only with `echo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    pub echo: bool,
    /// Absent for messages kept forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    /// Reaction counts, read from the item's `rx#<reaction>` attributes (they
    /// are written only by [`Store::change_reaction`]).
    #[serde(skip)]
    pub reactions: std::collections::BTreeMap<String, i64>,
}

impl MessageItem {
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// How an ordered write ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderedPut {
    Written,
    /// The channel already has this id or a later one (`last`), or another
    /// write collided: retry with an id above `last`.
    Behind {
        last: Option<String>,
    },
}

/// One `listMessages` query, with exclusive `after`/`before` cursors and the
/// inclusive lower bound of the visible window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageQuery<'a> {
    pub channel: &'a str,
    pub window_start: String,
    pub after: Option<&'a str>,
    pub before: Option<&'a str>,
    pub newest_first: bool,
    pub limit: usize,
    pub max_bytes: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MessagePage {
    pub messages: Vec<MessageItem>,
}

/// The largest possible ULID text, as an inclusive upper bound.
const MAX_ULID: &str = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ";

impl Store {
    /// Writes a message if, and only if, its id sorts after the channel's
    /// `lastMessageId`, so that per channel commit order equals id order. When
    /// it does not (another publisher won), nothing is written and the caller
    /// retries with an id above [`OrderedPut::Behind`]'s `last`.
    pub async fn put_message_ordered(&self, item: &MessageItem) -> Result<OrderedPut, StoreError> {
        let order = TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(&self.table)
                    .key("pk", s(keys::channel_pk(&item.channel)))
                    .key("sk", s(keys::META_SK))
                    .update_expression("SET lastMessageId = :id")
                    .condition_expression(
                        "attribute_not_exists(lastMessageId) OR lastMessageId < :id",
                    )
                    .expression_attribute_values(":id", s(item.id.clone()))
                    .build()
                    .map_err(build_error)?,
            )
            .build();
        let put = transact_put(
            &self.table,
            keyed(item, keys::message_pk(&item.channel), &item.id)?,
            |put| put.condition_expression("attribute_not_exists(pk)"),
        )?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(order)
            .transact_items(put)
            .send()
            .await;
        match result {
            Ok(_) => Ok(OrderedPut::Written),
            Err(e) if cancelled_conditions(&e).is_some() => Ok(OrderedPut::Behind {
                last: self.last_message_id(&item.channel).await?,
            }),
            Err(e) => Err(StoreError::dynamo("TransactWriteItems", e)),
        }
    }

    async fn last_message_id(&self, channel: &str) -> Result<Option<String>, StoreError> {
        let item = self
            .get(keys::channel_pk(channel), keys::META_SK.into(), 0)
            .await?;
        Ok(item
            .and_then(|i| i.get("lastMessageId").cloned())
            .and_then(|v| v.as_s().ok().cloned()))
    }

    pub async fn get_message(
        &self,
        channel: &str,
        id: &str,
        now: i64,
    ) -> Result<Option<MessageItem>, StoreError> {
        let item = self
            .get(keys::message_pk(channel), id.to_owned(), now)
            .await?;
        Ok(item.map(serde_dynamo::from_item).transpose()?)
    }

    /// Removes a delivered message that was not to be stored.
    pub async fn delete_message(&self, channel: &str, id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(keys::message_pk(channel)))
            .key("sk", s(id))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("DeleteItem", e))?;
        Ok(())
    }

    /// Stored, unexpired messages in id order (newest first when asked), up to
    /// `limit` messages or `max_bytes` of message JSON.
    pub async fn list_messages(
        &self,
        q: &MessageQuery<'_>,
        now: i64,
    ) -> Result<MessagePage, StoreError> {
        let lower = match q.after {
            Some(after) if after >= q.window_start.as_str() => after.to_owned(),
            _ => q.window_start.clone(),
        };
        let upper = q.before.unwrap_or(MAX_ULID).to_owned();
        let mut messages = Vec::new();
        let mut bytes = 0usize;
        if lower > upper {
            return Ok(MessagePage { messages });
        }
        let fetch = |start: Option<Item>| {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                .filter_expression("#stored = :yes AND (attribute_not_exists(#ttl) OR #ttl > :now)")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_names("#stored", "stored")
                .expression_attribute_values(":pk", s(keys::message_pk(q.channel)))
                .expression_attribute_values(":lo", s(lower.clone()))
                .expression_attribute_values(":hi", s(upper.clone()))
                .expression_attribute_values(":yes", AttributeValue::Bool(true))
                .expression_attribute_values(":now", n(now))
                .scan_index_forward(!q.newest_first)
                .limit((q.limit as i32).clamp(1, 1000))
                .set_exclusive_start_key(start);
            query_page(query)
        };
        let mut unreadable = None;
        each_page(fetch, |page| {
            for raw in page {
                let reactions = super::reaction_counts(&raw);
                let mut message: MessageItem = match serde_dynamo::from_item(raw) {
                    Ok(message) => message,
                    Err(e) => {
                        unreadable = Some(e);
                        return ControlFlow::Break(());
                    }
                };
                message.reactions = reactions;
                // BETWEEN is inclusive; the cursors are not.
                if Some(message.id()) == q.after || Some(message.id()) == q.before {
                    continue;
                }
                bytes += message.data.len() + message.meta.as_ref().map_or(0, String::len) + 128;
                if bytes > q.max_bytes && !messages.is_empty() {
                    return ControlFlow::Break(());
                }
                messages.push(message);
                if messages.len() >= q.limit {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        })
        .await?;
        if let Some(e) = unreadable {
            return Err(e.into());
        }
        Ok(MessagePage { messages })
    }
}
