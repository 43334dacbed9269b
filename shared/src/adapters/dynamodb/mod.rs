//! The store on DynamoDB: the only module that talks to the table and knows
//! its keys. One submodule per item family; every read drops items whose
//! `ttl` has passed, because DynamoDB deletes expired items up to days late.

mod connections;
mod keys;
mod members;
mod messages;
mod reactions;
mod recovery;
mod schedules;
mod storage;
mod stream;
mod subscriptions;

mod port;

pub use reactions::reaction_counts;
pub use stream::{classify_stream_record, partition_of};

use crate::pacing::{Chance, Pacing};
use crate::store::{ConnectionItem, StoreError};
use backon::Retryable;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::builders::PutBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;
use std::future::Future;
use std::ops::ControlFlow;
use std::time::Duration;

pub type Item = HashMap<String, AttributeValue>;

impl StoreError {
    pub(crate) fn dynamo<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
        operation: &'static str,
        err: SdkError<E, R>,
    ) -> Self {
        let message = match &err {
            SdkError::ServiceError(service) => {
                let e = service.err();
                format!(
                    "{}: {}",
                    e.code().unwrap_or("unknown"),
                    e.message().unwrap_or("")
                )
            }
            other => format!("{other:?}"),
        };
        StoreError::Dynamo { operation, message }
    }
}

impl From<serde_dynamo::Error> for StoreError {
    fn from(e: serde_dynamo::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// How a transaction that lost a conflict waits and jitters before it
    /// runs again.
    pacing: Pacing,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            pacing: Pacing::real(),
        }
    }

    /// The same store, waiting and drawing jitter through `pacing`.
    pub fn paced(self, pacing: Pacing) -> Self {
        DynamoStore { pacing, ..self }
    }

    /// Runs `transaction` until it succeeds, fails for a reason `retryable`
    /// refuses, or has been run again [`MAX_CONFLICT_RETRIES`] times, with a
    /// [`conflict_backoff`] pause before each new try.
    async fn retry_conflicts<T, E, Fut>(
        &self,
        transaction: impl FnMut() -> Fut,
        retryable: impl FnMut(&E) -> bool,
    ) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let chance = self.pacing.chance.clone();
        let pauses =
            (1..=MAX_CONFLICT_RETRIES).map(move |attempt| conflict_backoff(&*chance, attempt));
        transaction
            .retry(pauses)
            .sleep(self.pacing.sleeper())
            .when(retryable)
            .await
    }

    /// All items of one partition, following pagination, with expired items
    /// dropped. `sk_prefix` narrows to one family inside the partition.
    async fn query_partition(
        &self,
        pk: &str,
        sk_prefix: Option<&str>,
        now: i64,
    ) -> Result<Vec<Item>, StoreError> {
        self.query_partition_reading(pk, sk_prefix, now, None).await
    }

    /// [`DynamoStore::query_partition`], reading only `attributes` (and `ttl`) of
    /// each item when given.
    async fn query_partition_reading(
        &self,
        pk: &str,
        sk_prefix: Option<&str>,
        now: i64,
        attributes: Option<&[&str]>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let fetch = |start: Option<Item>| {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .expression_attribute_values(":pk", s(pk))
                .set_exclusive_start_key(start);
            if let Some(attributes) = attributes {
                let mut names = vec!["#ttl".to_owned()];
                query = query.expression_attribute_names("#ttl", "ttl");
                for (i, attribute) in attributes.iter().enumerate() {
                    let name = format!("#a{i}");
                    query = query.expression_attribute_names(&name, *attribute);
                    names.push(name);
                }
                query = query.projection_expression(names.join(", "));
            }
            query = match sk_prefix {
                Some(prefix) => query
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(prefix)),
                None => query.key_condition_expression("pk = :pk"),
            };
            query_page(query)
        };
        each_page(fetch, |page| {
            items.extend(page.into_iter().filter(|i| alive(i, now)));
            ControlFlow::Continue(())
        })
        .await?;
        Ok(items)
    }

    async fn get(&self, pk: String, sk: String, now: i64) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        Ok(out.item.filter(|i| alive(i, now)))
    }

    /// A single-use token's `jti` may be used once: the conditional put fails on
    /// reuse. The marker lives until the token expires, after which the token is
    /// refused anyway.
    pub async fn consume_jti(&self, jti: &str, exp: i64, now: i64) -> Result<bool, StoreError> {
        self.put_once(keys::jti_pk(jti), "JTI", exp.max(now) + 60, now)
            .await
    }

    /// Gives a single-use token's `jti` back: the request it was spent for
    /// was refused after all.
    pub async fn release_jti(&self, jti: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(keys::jti_pk(jti)))
            .key("sk", s("JTI"))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("DeleteItem", e))?;
        Ok(())
    }

    /// Writes an item unless one with its key is there already (a retry's
    /// write of the same leaves the first as it was).
    pub(super) async fn put_first(&self, item: Item) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        conditional(result, "PutItem").map(|_| ())
    }

    /// Writes a marker item unless a live one exists; true when this call wrote
    /// it. The marker expires at `ttl`.
    async fn put_once(&self, pk: String, sk: &str, ttl: i64, now: i64) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(pk))
            .item("sk", s(sk))
            .item("ttl", n(ttl))
            .condition_expression("attribute_not_exists(pk) OR #ttl <= :now")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        conditional(result, "PutItem")
    }
}

impl DynamoStore {
    /// Whether a single-use token's `jti` was spent (read only: the web
    /// console's explain asks without spending it).
    pub async fn jti_used(&self, jti: &str, now: i64) -> Result<bool, StoreError> {
        Ok(self
            .get(keys::jti_pk(jti), "JTI".into(), now)
            .await?
            .is_some())
    }

    /// Every live connection item. A scan, for the local stage's start only
    /// (ending the connections of an earlier run); the sweeper uses the sweep
    /// index ([`DynamoStore::due_for_sweep`]).
    pub async fn scan_connections(&self, now: i64) -> Result<Vec<ConnectionItem>, StoreError> {
        let mut found = Vec::new();
        let fetch = |start: Option<Item>| async move {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :conn")
                .expression_attribute_values(":conn", s(keys::CONNECTION_SK))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Scan", e))?;
            Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
        };
        each_page(fetch, |page| {
            found.extend(page.into_iter().filter(|i| alive(i, now)));
            ControlFlow::Continue(())
        })
        .await?;
        Ok(serde_dynamo::from_items(found)?)
    }
}

/// Follows `LastEvaluatedKey` from page to page until the result is exhausted
/// or `visit` breaks. `fetch` sends one request from a start key.
pub(crate) async fn each_page<F, Fut>(
    mut fetch: F,
    mut visit: impl FnMut(Vec<Item>) -> ControlFlow<()>,
) -> Result<(), StoreError>
where
    F: FnMut(Option<Item>) -> Fut,
    Fut: Future<Output = Result<(Vec<Item>, Option<Item>), StoreError>>,
{
    let mut start = None;
    loop {
        let (items, next) = fetch(start.take()).await?;
        if visit(items).is_break() {
            return Ok(());
        }
        match next {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(()),
        }
    }
}

/// Sends one page of a query: its items and where the next page starts.
pub(crate) async fn query_page(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
) -> Result<(Vec<Item>, Option<Item>), StoreError> {
    let out = query
        .send()
        .await
        .map_err(|e| StoreError::dynamo("Query", e))?;
    Ok((out.items.unwrap_or_default(), out.last_evaluated_key))
}

/// A transaction's put of `attributes`, with its condition (if any) set by
/// `condition`.
pub(crate) fn transact_put(
    table: &str,
    attributes: Item,
    condition: impl FnOnce(PutBuilder) -> PutBuilder,
) -> Result<TransactWriteItem, StoreError> {
    let put = condition(Put::builder().table_name(table).set_item(Some(attributes)))
        .build()
        .map_err(|e| StoreError::Corrupt(format!("request could not be built: {e}")))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// How often a transaction that lost a conflict on a hot item (a channel's
/// count, a message's reaction count) is run again before giving up.
pub(crate) const MAX_CONFLICT_RETRIES: u32 = 32;

/// How long to wait before retry `attempt` (1-based) of a write that collided
/// with another: a few jittered milliseconds, the spread growing with the
/// attempt (up to the tenth), so writers that keep colliding spread out.
pub fn conflict_backoff(chance: &dyn Chance, attempt: u32) -> Duration {
    let spread = 2 + u64::from(attempt.min(10)) * 3;
    Duration::from_millis(chance.below(spread))
}

/// An item as written: its attributes plus the table keys only the store knows.
pub(crate) fn keyed<T: serde::Serialize>(
    item: &T,
    pk: String,
    sk: impl Into<String>,
) -> Result<Item, StoreError> {
    let mut attributes: Item = serde_dynamo::to_item(item)?;
    attributes.insert("pk".into(), s(pk));
    attributes.insert("sk".into(), s(sk));
    Ok(attributes)
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// An item without `ttl` lives forever; one whose `ttl` has passed is gone.
pub(crate) fn alive(item: &Item, now: i64) -> bool {
    match item.get("ttl") {
        Some(AttributeValue::N(ttl)) => ttl.parse::<i64>().map_or(true, |t| t > now),
        _ => true,
    }
}

/// A conditional write's answer: `true` when it was made, `false` when its
/// condition did not hold (for the caller that is an answer, not an error).
pub(crate) fn conditional<T, E, R>(
    result: Result<T, SdkError<E, R>>,
    operation: &'static str,
) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_condition_failure(&e) => Ok(false),
        Err(e) => Err(StoreError::dynamo(operation, e)),
    }
}

pub(crate) fn is_condition_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

/// Which items of a cancelled transaction failed their condition, by position.
pub(crate) fn cancelled_conditions<R>(
    err: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
) -> Option<Vec<bool>> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => Some(
            e.cancellation_reasons()
                .iter()
                .map(|r| r.code() == Some("ConditionalCheckFailed"))
                .collect(),
        ),
        _ => None,
    }
}
