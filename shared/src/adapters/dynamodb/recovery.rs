//! A channel's recovery log (docs/adr/0006): one partition per channel, its
//! entries sorted by position on the channel's ordered path, each living the
//! stage's recovery window; a message whose id is not its position also gets
//! a pointer from the id. The channel's META item says until when the log is
//! kept with no recoverable subscription on the channel.

use super::{each_page, keyed, keys, n, query_page, s, DynamoStore};
use crate::store::{LogAfter, LoggedFrame, StoreError};
use std::ops::ControlFlow;

/// Every position sorts below this (a ULID's characters are `0-9A-Z`).
const AFTER_EVERY_POSITION: &str = keys::LOG_ID_PREFIX;

#[derive(serde::Serialize, serde::Deserialize)]
struct Pointer {
    position: String,
    ttl: i64,
}

impl DynamoStore {
    pub async fn log_frame(&self, frame: &LoggedFrame) -> Result<(), StoreError> {
        let pk = keys::log_pk(&frame.channel);
        self.put_first(keyed(frame, pk.clone(), &frame.position)?)
            .await?;
        if let Some(id) = &frame.message_id {
            let pointer = Pointer {
                position: frame.position.clone(),
                ttl: frame.ttl,
            };
            self.put_first(keyed(&pointer, pk, keys::log_id_sk(id))?)
                .await?;
        }
        Ok(())
    }

    /// The newest entry below `position`, expired or not.
    pub async fn logged_before(
        &self,
        channel: &str,
        position: &str,
    ) -> Result<Option<String>, StoreError> {
        let (page, _) = query_page(
            self.client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND sk < :below")
                .expression_attribute_values(":pk", s(keys::log_pk(channel)))
                .expression_attribute_values(":below", s(position))
                .projection_expression("sk")
                .scan_index_forward(false)
                .limit(1),
        )
        .await?;
        Ok(page
            .into_iter()
            .next()
            .and_then(|i| i.get("sk").and_then(|v| v.as_s().ok()).cloned()))
    }

    pub async fn logged_after(
        &self,
        channel: &str,
        named: &str,
        now: i64,
        limit: usize,
    ) -> Result<LogAfter, StoreError> {
        let pk = keys::log_pk(channel);
        let position = match self.get(pk.clone(), keys::log_id_sk(named), now).await? {
            Some(item) => serde_dynamo::from_item::<_, Pointer>(item)?.position,
            None => named.to_owned(),
        };
        let found = self.get(pk.clone(), position.clone(), now).await?.is_some();
        let mut after = Vec::new();
        let mut unreadable = None;
        let fetch = |start| {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":from", s(&position))
                .expression_attribute_values(":to", s(AFTER_EVERY_POSITION))
                .filter_expression("#ttl > :now")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":now", n(now))
                // Pages no longer than asked (the named entry and one more
                // than the limit): a check for the position alone reads two.
                .limit(i32::try_from(limit + 2).unwrap_or(i32::MAX).min(1000))
                .set_exclusive_start_key(start);
            query_page(query)
        };
        each_page(fetch, |page| {
            for item in page {
                // BETWEEN is inclusive: the named position itself is not after it.
                if item.get("sk").and_then(|v| v.as_s().ok()) == Some(&position) {
                    continue;
                }
                match serde_dynamo::from_item::<_, LoggedFrame>(item) {
                    Ok(frame) => after.push(frame),
                    Err(e) => {
                        unreadable = Some(e);
                        return ControlFlow::Break(());
                    }
                }
                if after.len() > limit {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        })
        .await?;
        if let Some(e) = unreadable {
            return Err(e.into());
        }
        Ok(LogAfter {
            position,
            found,
            after,
        })
    }

    /// One page is enough: a step logs a run's member events and one mark.
    pub async fn unlog_from(&self, channel: &str, from: &str) -> Result<(), StoreError> {
        let pk = keys::log_pk(channel);
        let (page, _) = query_page(
            self.client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":from", s(from))
                .expression_attribute_values(":to", s(AFTER_EVERY_POSITION))
                .projection_expression("sk"),
        )
        .await?;
        for item in page {
            let Some(sk) = item.get("sk").and_then(|v| v.as_s().ok()) else {
                continue;
            };
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(&pk))
                .key("sk", s(sk))
                .send()
                .await
                .map_err(|e| StoreError::dynamo("DeleteItem", e))?;
        }
        Ok(())
    }

    pub async fn recover_until(&self, channel: &str) -> Result<Option<i64>, StoreError> {
        let meta = self
            .get(keys::channel_pk(channel), keys::META_SK.into(), 0)
            .await?;
        Ok(meta
            .and_then(|i| i.get("recoverUntil").cloned())
            .and_then(|v| v.as_n().ok().and_then(|n| n.parse().ok())))
    }

    /// Only ever later: a smaller `until` (a slower writer) leaves it.
    pub async fn extend_recovery(
        &self,
        channel: &str,
        until: i64,
        keep_last: bool,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::channel_pk(channel)))
            .key("sk", s(keys::META_SK))
            .update_expression("SET recoverUntil = :until")
            .condition_expression("attribute_not_exists(recoverUntil) OR recoverUntil < :until")
            .expression_attribute_values(":until", n(until))
            .send()
            .await;
        super::conditional(result, "UpdateItem")?;
        if !keep_last {
            return Ok(());
        }
        let Some(last) = self.logged_before(channel, AFTER_EVERY_POSITION).await? else {
            return Ok(());
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::log_pk(channel)))
            .key("sk", s(last))
            .update_expression("SET #ttl = :until")
            .condition_expression("attribute_exists(pk) AND #ttl < :until")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":until", n(until))
            .send()
            .await;
        super::conditional(result, "UpdateItem").map(|_| ())
    }
}
