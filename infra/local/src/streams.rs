//! Polls DynamoDB Local's stream and hands each batch to the stream function as
//! the Lambda event AWS would send: one shard at a time, in order, parents
//! before children (what `ParallelizationFactor: 1` gives in AWS).

use aws_lambda_events::dynamodb::Event;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use serde_json::{json, Value};
use sockhop::App;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

const SHARD_REFRESH: Duration = Duration::from_secs(1);
/// Retries of a batch whose records failed, as the template's event source
/// mapping allows (`MaximumRetryAttempts`); then the records are skipped.
const MAX_BATCH_RETRIES: u32 = 10;

pub struct StreamPoller {
    streams: aws_sdk_dynamodbstreams::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    interval: Duration,
}

/// Where reading of one shard stands.
struct Shard {
    parent: Option<String>,
    /// `None` once the shard is closed and drained, or while it must be re-read.
    iterator: Option<String>,
    /// Where to read from when the iterator must be made again.
    position: Position,
    /// Consecutive failed attempts at the record at `position`.
    failures: u32,
    closed: bool,
}

/// A shard position, as a sequence number.
#[derive(Debug, Clone, PartialEq)]
enum Position {
    /// The oldest record left.
    Oldest,
    /// Whatever comes after the moment reading started.
    Latest,
    /// After the last record the stream function took.
    After(String),
    /// At a record the stream function reported failed: it runs again.
    At(String),
}

/// The stream and the shards as they were when the stage started.
pub struct Primed {
    arn: String,
    shards: BTreeMap<String, Shard>,
}

impl StreamPoller {
    pub fn new(
        sdk: &aws_config::SdkConfig,
        endpoint: &str,
        table: &str,
        interval: Duration,
    ) -> Self {
        StreamPoller {
            streams: aws_sdk_dynamodbstreams::Client::from_conf(
                aws_sdk_dynamodbstreams::config::Builder::from(sdk)
                    .endpoint_url(endpoint)
                    .build(),
            ),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(sdk)
                    .endpoint_url(endpoint)
                    .build(),
            ),
            table: table.to_owned(),
            interval,
        }
    }

    async fn stream_arn(&self) -> String {
        loop {
            match self
                .dynamodb
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
            {
                Ok(out) => {
                    if let Some(arn) = out.table.and_then(|t| t.latest_stream_arn) {
                        return arn;
                    }
                }
                Err(err) => tracing::warn!(error = ?err, "waiting for the table's stream"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Where reading starts: every shard that exists now is read from its
    /// latest record on, so a stage restarted on kept data never replays what
    /// an earlier run handled (those sockets are gone anyway); shards that
    /// appear later are read from their oldest record. Called before the stage
    /// accepts connections, so no new record is missed.
    pub async fn prime(&self) -> Primed {
        let arn = self.stream_arn().await;
        let mut shards = BTreeMap::new();
        self.refresh_shards(&arn, &mut shards, Position::Latest)
            .await;
        Primed { arn, shards }
    }

    async fn refresh_shards(
        &self,
        arn: &str,
        shards: &mut BTreeMap<String, Shard>,
        from: Position,
    ) {
        let mut start: Option<String> = None;
        loop {
            let out = match self
                .streams
                .describe_stream()
                .stream_arn(arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
            {
                Ok(out) => out,
                Err(err) => {
                    tracing::warn!(error = ?err, "DescribeStream failed");
                    return;
                }
            };
            let Some(description) = out.stream_description else {
                return;
            };
            for shard in description.shards.unwrap_or_default() {
                let Some(id) = shard.shard_id else { continue };
                if shards.contains_key(&id) {
                    continue;
                }
                let iterator = self
                    .streams
                    .get_shard_iterator()
                    .stream_arn(arn)
                    .shard_id(&id)
                    .shard_iterator_type(match from {
                        Position::Latest => ShardIteratorType::Latest,
                        _ => ShardIteratorType::TrimHorizon,
                    })
                    .send()
                    .await
                    .ok()
                    .and_then(|o| o.shard_iterator);
                shards.insert(
                    id,
                    Shard {
                        parent: shard.parent_shard_id,
                        iterator,
                        position: from.clone(),
                        failures: 0,
                        closed: false,
                    },
                );
            }
            match description.last_evaluated_shard_id {
                Some(last) => start = Some(last),
                None => return,
            }
        }
    }

    /// A fresh iterator at `position`. If that record itself was trimmed away,
    /// reading restarts at the oldest record left.
    async fn resume(&self, arn: &str, shard: &str, position: &Position) -> Option<String> {
        let (kind, sequence) = match position {
            Position::Oldest => (ShardIteratorType::TrimHorizon, None),
            Position::Latest => (ShardIteratorType::Latest, None),
            Position::After(s) => (ShardIteratorType::AfterSequenceNumber, Some(s)),
            Position::At(s) => (ShardIteratorType::AtSequenceNumber, Some(s)),
        };
        if let Some(sequence) = sequence {
            let resumed = self
                .streams
                .get_shard_iterator()
                .stream_arn(arn)
                .shard_id(shard)
                .shard_iterator_type(kind)
                .sequence_number(sequence)
                .send()
                .await;
            if let Ok(out) = resumed {
                return out.shard_iterator;
            }
            tracing::warn!(
                shard,
                "stream records at {sequence} were trimmed; resuming at the oldest"
            );
        }
        self.streams
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .ok()
            .and_then(|o| o.shard_iterator)
    }

    pub async fn run(self, app: &'static App, primed: Primed) {
        let Primed { arn, mut shards } = primed;
        let mut refreshed = Some(Instant::now());
        loop {
            if refreshed.is_none_or(|at| at.elapsed() > SHARD_REFRESH) {
                self.refresh_shards(&arn, &mut shards, Position::Oldest)
                    .await;
                refreshed = Some(Instant::now());
            }
            let open: HashMap<String, bool> = shards
                .iter()
                .map(|(id, s)| (id.clone(), !s.closed))
                .collect();
            let mut delivered = false;
            let mut retry_pause = Duration::ZERO;
            for (id, shard) in shards.iter_mut() {
                if shard.iterator.is_none() && !shard.closed {
                    shard.iterator = self.resume(&arn, id, &shard.position).await;
                }
                let parent_open = shard
                    .parent
                    .as_ref()
                    .is_some_and(|p| open.get(p).copied().unwrap_or(false));
                let Some(iterator) = shard.iterator.clone() else {
                    continue;
                };
                if parent_open {
                    continue;
                }
                match self
                    .streams
                    .get_records()
                    .shard_iterator(iterator)
                    .send()
                    .await
                {
                    Ok(out) => {
                        shard.closed = out.next_shard_iterator.is_none();
                        shard.iterator = out.next_shard_iterator;
                        let records = out.records.unwrap_or_default();
                        if let Some(last) = records.last().and_then(|r| r.dynamodb.as_ref()) {
                            if let Some(sequence) = &last.sequence_number {
                                shard.position = Position::After(sequence.clone());
                            }
                        }
                        if !records.is_empty() {
                            delivered = true;
                            let first_in_batch = records
                                .first()
                                .and_then(|r| r.dynamodb.as_ref())
                                .and_then(|d| d.sequence_number.clone());
                            let event = lambda_event(&arn, records);
                            // A failed invocation retries the whole batch, as in AWS.
                            let first_failed = match sockhop_stream::handle(app, event).await {
                                Ok(response) => first_failure(&response.batch_item_failures),
                                Err(err) => {
                                    tracing::error!(error = %err, "stream handler failed");
                                    first_in_batch
                                }
                            };
                            if let Some(sequence) = first_failed {
                                shard.failures += 1;
                                if shard.failures > MAX_BATCH_RETRIES {
                                    tracing::error!(shard = %id, sequence, "stream record skipped after {MAX_BATCH_RETRIES} retries");
                                    shard.position = Position::After(sequence);
                                    shard.failures = 0;
                                } else {
                                    // Read again from the failed record, after a pause
                                    // that grows with each failure.
                                    shard.position = Position::At(sequence);
                                    shard.closed = false;
                                    retry_pause = retry_pause
                                        .max(Duration::from_millis(50 << shard.failures.min(6)));
                                }
                                shard.iterator = None;
                            } else {
                                shard.failures = 0;
                            }
                        }
                    }
                    Err(err) => {
                        // Expired or trimmed iterators are re-made on the next pass,
                        // after the last record already handled.
                        tracing::debug!(error = ?err, "GetRecords failed; resuming the shard");
                        shard.iterator = None;
                    }
                }
            }
            if !retry_pause.is_zero() {
                tokio::time::sleep(retry_pause).await;
            } else if !delivered {
                tokio::time::sleep(self.interval).await;
            }
        }
    }
}

/// The sequence number Lambda would resume from: the smallest reported.
fn first_failure(
    failures: &[aws_lambda_events::streams::DynamoDbBatchItemFailure],
) -> Option<String> {
    failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .min_by(|a, b| {
            // Sequence numbers are decimal strings of varying length.
            a.len().cmp(&b.len()).then_with(|| a.cmp(b))
        })
}

fn image(item: Option<HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>) -> Value {
    item.map(|i| serde_json::to_value(serde_dynamo::Item::from(i)).unwrap_or(Value::Null))
        .unwrap_or(Value::Null)
}

/// The Lambda event for a batch of stream records, as AWS shapes it.
pub fn lambda_event(arn: &str, records: Vec<Record>) -> Event {
    let records: Vec<Value> = records
        .into_iter()
        .map(|record| {
            let change = record
                .dynamodb
                .unwrap_or_else(|| aws_sdk_dynamodbstreams::types::StreamRecord::builder().build());
            let mut value = json!({
                "eventID": record.event_id,
                "eventName": record.event_name.map(|n| n.as_str().to_owned()),
                "eventVersion": record.event_version,
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "eventSourceARN": arn,
                "dynamodb": {
                    "Keys": image(change.keys),
                    "NewImage": image(change.new_image),
                    "OldImage": image(change.old_image),
                    "SequenceNumber": change.sequence_number,
                    "SizeBytes": change.size_bytes.unwrap_or(0),
                    "StreamViewType": change.stream_view_type.map(|v| v.as_str().to_owned()),
                },
            });
            if let Some(identity) = record.user_identity {
                value["userIdentity"] = json!({
                    "type": identity.r#type,
                    "principalId": identity.principal_id,
                });
            }
            // DynamoDB Local marks TTL deletions with an event name the SDK does
            // not know and no identity; AWS sends REMOVE by the DynamoDB service.
            let name = value["eventName"].as_str().unwrap_or_default();
            if !matches!(name, "INSERT" | "MODIFY" | "REMOVE")
                && !value["dynamodb"]["OldImage"].is_null()
            {
                value["eventName"] = json!("REMOVE");
                value["userIdentity"] =
                    json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
            }
            value
        })
        .collect();
    serde_json::from_value(json!({ "Records": records }))
        .expect("the stage builds well-formed stream events")
}
