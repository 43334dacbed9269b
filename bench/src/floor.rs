//! The database floors, measured on the same DynamoDB Local as the stage, in a
//! table of the bench's own (never the stage's):
//!
//! - per message: one PutItem (the message) and one consistent Query of the
//!   channel's subscriber partition (all pages), one after the other, which is
//!   the least any design that stores subscribers in DynamoDB does per publish;
//! - per subscribe: one TransactWriteItems of a subscribe's shape: a condition
//!   check on the connection, the subscription put (only if absent), its
//!   reverse-index put and the channel's count update.

use anyhow::Context;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, KeySchemaElement, KeyType,
    Put, PutRequest, ScalarAttributeType, TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use futures::StreamExt;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The SDK configuration of the bench's DynamoDB Local clients: dummy
/// credentials, one region, no endpoint (each client names its own).
pub async fn local_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "bench",
            "bench",
            None,
            None,
            "sockhop-bench",
        ))
        .load()
        .await
}

/// A DynamoDB client for an endpoint with dummy credentials (DynamoDB Local).
pub async fn client(endpoint: &str) -> Client {
    let sdk = local_sdk_config().await;
    Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(endpoint)
            .build(),
    )
}

pub struct Floor {
    client: Client,
    table: String,
}

/// A stand-in connection id of API Gateway's length.
fn connection_id(i: usize) -> String {
    format!("bench{i:010}=")
}

impl Floor {
    pub async fn create(client: Client, table: String) -> anyhow::Result<Self> {
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
        };
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        client
            .create_table()
            .table_name(&table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .attribute_definitions(attribute("pk")?)
            .attribute_definitions(attribute("sk")?)
            .send()
            .await
            .context("CreateTable for the floor")?;
        Ok(Floor { client, table })
    }

    pub async fn delete(self) {
        let _ = self
            .client
            .delete_table()
            .table_name(&self.table)
            .send()
            .await;
    }

    async fn batch_put(&self, items: Vec<HashMap<String, AttributeValue>>) -> anyhow::Result<()> {
        for chunk in items.chunks(25) {
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    Ok(WriteRequest::builder()
                        .put_request(PutRequest::builder().set_item(Some(item.clone())).build()?)
                        .build())
                })
                .collect::<anyhow::Result<_>>()?;
            while !pending.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .context("BatchWriteItem")?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut left| left.remove(&self.table))
                    .unwrap_or_default();
            }
        }
        Ok(())
    }

    /// A subscriber partition of `n` items (key + connection id, the least a
    /// fan-out needs) for channel `channel`.
    pub async fn seed_subscribers(&self, channel: &str, n: usize) -> anyhow::Result<()> {
        let items = (0..n)
            .map(|i| {
                HashMap::from([
                    ("pk".to_owned(), s(format!("subs-{channel}"))),
                    ("sk".to_owned(), s(connection_id(i))),
                    ("connectionId".to_owned(), s(connection_id(i))),
                ])
            })
            .collect();
        self.batch_put(items).await
    }

    /// One message's database floor: PutItem of the message, then a
    /// consistent Query of the whole subscriber partition. Returns the time
    /// taken and the subscribers read.
    pub async fn message(&self, channel: &str, data: &str) -> anyhow::Result<(Duration, usize)> {
        let started = Instant::now();
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("msgs-{channel}")))
            .item("sk", s(ulid::Ulid::new().to_string()))
            .item("event", s("bench"))
            .item("data", s(data))
            .send()
            .await
            .context("PutItem")?;
        let mut read = 0;
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(format!("subs-{channel}")))
                .set_exclusive_start_key(start)
                .send()
                .await
                .context("Query")?;
            read += page.items().len();
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok((started.elapsed(), read))
    }

    /// `n` connection items for the transaction floor to check.
    pub async fn seed_connections(&self, n: usize) -> anyhow::Result<()> {
        let items = (0..n)
            .map(|i| {
                HashMap::from([
                    ("pk".to_owned(), s(format!("conn-{}", connection_id(i)))),
                    ("sk".to_owned(), s("conn")),
                    ("uid".to_owned(), s(format!("u{i}"))),
                ])
            })
            .collect();
        self.batch_put(items).await
    }

    fn subscribe_transaction(
        &self,
        channel: &str,
        i: usize,
    ) -> anyhow::Result<Vec<TransactWriteItem>> {
        let conn = connection_id(i);
        Ok(vec![
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name(&self.table)
                        .key("pk", s(format!("conn-{conn}")))
                        .key("sk", s("conn"))
                        .condition_expression("attribute_exists(pk)")
                        .build()?,
                )
                .build(),
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .item("pk", s(format!("subs-{channel}")))
                        .item("sk", s(&conn))
                        .item("connectionId", s(&conn))
                        .item("subscribedAtMs", n(1_700_000_000_000u64 + i as u64))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()?,
                )
                .build(),
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .item("pk", s(format!("conn-{conn}")))
                        .item("sk", s(format!("sub-{channel}")))
                        .item("channel", s(channel))
                        .build()?,
                )
                .build(),
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .key("pk", s(format!("meta-{channel}")))
                        .key("sk", s("meta"))
                        .update_expression("ADD subscriptionsCount :one")
                        .expression_attribute_values(":one", n(1))
                        .build()?,
                )
                .build(),
        ])
    }

    /// `n` subscribe-shaped transactions to `channel`, at most `concurrency`
    /// in flight; conflicting ones (DynamoDB cancels a transaction that
    /// collides with another on the count item) are retried. Returns the time
    /// taken and the retries.
    pub async fn subscribes(
        &self,
        channel: &str,
        n: usize,
        concurrency: usize,
    ) -> anyhow::Result<(Duration, u64)> {
        let transactions = (0..n)
            .map(|i| self.subscribe_transaction(channel, i))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let started = Instant::now();
        let results: Vec<anyhow::Result<u64>> = futures::stream::iter(transactions)
            .map(|items| async move {
                let mut retries = 0;
                loop {
                    let sent = self
                        .client
                        .transact_write_items()
                        .set_transact_items(Some(items.clone()))
                        .send()
                        .await;
                    match sent {
                        Ok(_) => return Ok(retries),
                        Err(e) if retries < 50 && is_conflict(&e) => {
                            retries += 1;
                            tokio::time::sleep(Duration::from_millis(1 + retries % 5)).await;
                        }
                        Err(e) => {
                            return Err(anyhow::anyhow!(
                                "TransactWriteItems: {}",
                                aws_sdk_dynamodb::error::DisplayErrorContext(e)
                            ))
                        }
                    }
                }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let elapsed = started.elapsed();
        let mut retries = 0;
        for result in results {
            retries += result?;
        }
        Ok((elapsed, retries))
    }
}

fn is_conflict<E: ProvideErrorMetadata, R>(
    error: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> bool {
    let text = match error {
        aws_sdk_dynamodb::error::SdkError::ServiceError(e) => {
            format!(
                "{} {}",
                e.err().code().unwrap_or(""),
                e.err().message().unwrap_or("")
            )
        }
        _ => return false,
    };
    text.contains("TransactionConflict") || text.contains("TransactionInProgress")
}

/// An item's size by DynamoDB's rules: each attribute's name plus its value
/// (strings and binaries by length, numbers about one byte per two
/// significant digits plus one, maps and lists 3 bytes plus one per element).
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(text) => text.len(),
        AttributeValue::N(number) => number_size(number),
        AttributeValue::B(bytes) => bytes.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(texts) => texts.iter().map(String::len).sum(),
        AttributeValue::Ns(numbers) => numbers.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(blobs) => blobs.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(name, value)| name.len() + value_size(value) + 1)
                .sum::<usize>()
        }
        AttributeValue::L(list) => {
            3 + list
                .iter()
                .map(|value| value_size(value) + 1)
                .sum::<usize>()
        }
        _ => 0,
    }
}

fn number_size(number: &str) -> usize {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let significant = digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len()
        .max(1);
    significant.div_ceil(2) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_sizes_follow_dynamodb_rules() {
        let item = HashMap::from([
            ("pk".to_owned(), s("abc")),
            ("n".to_owned(), n(1_700_000_000_123u64)),
            ("ok".to_owned(), AttributeValue::Bool(true)),
        ]);
        // 2+3, 1+(13 digits -> 7)+1, 2+1
        assert_eq!(item_size(&item), 5 + 9 + 3);
        assert_eq!(number_size("100"), 2);
        assert_eq!(number_size("-0.5"), 2);
    }
}
