//! Stored messages, one partition per channel, sorted by id. Only messages
//! with `store` are written, by the deliver function, once, in queue order
//! (docs/adr/0002-delivery-queue.md).

use super::{each_page, keyed, keys, n, query_page, s, DynamoStore, Item, StoreError};
use crate::store::*;
use aws_sdk_dynamodb::types::AttributeValue;
use std::ops::ControlFlow;

/// The largest possible ULID text, as an inclusive upper bound.
const MAX_ULID: &str = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ";

impl DynamoStore {
    /// Writes a delivered message once: a retried delivery of the same
    /// message (same id) finds it written and leaves it, reaction counts and
    /// all.
    pub async fn put_message(&self, item: &MessageItem) -> Result<(), StoreError> {
        self.put_first(keyed(item, keys::message_pk(&item.channel), &item.id)?)
            .await
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
