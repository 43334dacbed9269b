//! The AWS sinks of backend events: an EventBridge bus (`PutEvents`) and an SNS
//! topic (`PublishBatch`), each at most 10 entries a request. Entries a
//! request did not accept are sent again, a few times, before the loss is
//! reported.

use super::{EventSink, PubSubEvent, SinkError, SOURCE};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

/// Entries one PutEvents or PublishBatch request takes.
pub const BATCH: usize = 10;
/// Bytes of events one request carries at most: both services refuse a
/// request over 256 KiB in total, and ten messages of 32 KiB data would be.
/// The margin covers what the JSON does not count: SNS's message attributes
/// (the metadata again, at most a few KiB) and EventBridge's per-entry fields.
pub const BATCH_BYTES: usize = 200 * 1024;

/// The events in batches of at most [`BATCH`] entries and [`BATCH_BYTES`]
/// (by the size of their JSON), in order (pure).
pub fn batches(events: Vec<PubSubEvent>) -> Vec<Vec<PubSubEvent>> {
    let mut out: Vec<Vec<PubSubEvent>> = Vec::new();
    let mut bytes = 0;
    for event in events {
        let size = serde_json::to_string(&event).map_or(0, |t| t.len());
        match out.last_mut() {
            Some(batch) if batch.len() < BATCH && bytes + size <= BATCH_BYTES => {
                bytes += size;
                batch.push(event);
            }
            _ => {
                bytes = size;
                out.push(vec![event]);
            }
        }
    }
    out
}
/// Attempts at an entry before it is reported lost.
pub const ATTEMPTS: u32 = 4;

/// Sends `events` in [`batches`] through `send`, which returns the
/// positions (within the batch it was given) that were not accepted, or an
/// error for the whole batch; those are sent again after a growing pause.
pub async fn send_batched<F, Fut>(events: Vec<PubSubEvent>, mut send: F) -> Result<(), SinkError>
where
    F: FnMut(Vec<PubSubEvent>) -> Fut,
    Fut: Future<Output = Result<Vec<usize>, String>>,
{
    let total = events.len();
    let mut lost = 0;
    let mut reason = String::new();
    for batch in batches(events) {
        let mut pending = batch;
        for attempt in 1..=ATTEMPTS {
            let failed = match send(pending.clone()).await {
                Ok(failed) => failed,
                Err(err) => {
                    reason = err;
                    (0..pending.len()).collect()
                }
            };
            if failed.is_empty() {
                pending.clear();
                break;
            }
            pending = failed
                .into_iter()
                .filter_map(|i| pending.get(i).cloned())
                .collect();
            if attempt < ATTEMPTS {
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            } else if reason.is_empty() {
                reason = "entries refused".into();
            }
        }
        lost += pending.len();
    }
    if lost == 0 {
        Ok(())
    } else {
        Err(SinkError::Rejected {
            failed: lost,
            total,
            reason,
        })
    }
}

/// One PutEvents entry: `detail` is the event, `detail-type` its dataType.
pub fn eventbridge_entry(bus: &str, event: &PubSubEvent) -> PutEventsRequestEntry {
    PutEventsRequestEntry::builder()
        .event_bus_name(bus)
        .source(SOURCE)
        .detail_type(&event.data_type)
        .detail(serde_json::to_string(event).unwrap_or_default())
        .build()
}

/// The SNS message attributes for filter policies: `source`, `type`,
/// `dataType` and the metadata but `hotsockVersion` (for storage events only
/// `channel`, `key` and `trigger`, as documented).
pub fn sns_attributes(event: &PubSubEvent) -> HashMap<String, MessageAttributeValue> {
    let string = |v: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .expect("data type is set")
    };
    let mut attributes = HashMap::from([
        ("source".to_owned(), string(&event.source)),
        ("type".to_owned(), string(&event.kind)),
        ("dataType".to_owned(), string(&event.data_type)),
    ]);
    let storage = event.kind == "hotsock.channelStorageUpdated";
    for (name, value) in &event.metadata {
        let wanted = if storage {
            matches!(name.as_str(), "channel" | "key" | "trigger")
        } else {
            name != "hotsockVersion"
        };
        // SNS refuses empty attribute values.
        if wanted && !value.is_empty() {
            attributes.insert(name.clone(), string(value));
        }
    }
    attributes
}

/// One PublishBatch entry, `id` unique within its batch.
pub fn sns_entry(id: usize, event: &PubSubEvent) -> PublishBatchRequestEntry {
    PublishBatchRequestEntry::builder()
        .id(format!("e{id}"))
        .message(serde_json::to_string(event).unwrap_or_default())
        .set_message_attributes(Some(sns_attributes(event)))
        .build()
        .expect("id and message are set")
}

pub struct EventBridgeSink {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeSink {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: String) -> Self {
        EventBridgeSink { client, bus }
    }
}

impl EventSink for EventBridgeSink {
    fn enabled(&self) -> bool {
        true
    }

    fn publish(&self, events: Vec<PubSubEvent>) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(send_batched(events, move |batch| async move {
            let entries = batch
                .iter()
                .map(|e| eventbridge_entry(&self.bus, e))
                .collect();
            let out = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string())?;
            // Results come in request order; a failed one carries an error code.
            Ok(out
                .entries()
                .iter()
                .enumerate()
                .filter(|(_, r)| r.error_code().is_some())
                .map(|(i, _)| i)
                .collect())
        }))
    }
}

pub struct SnsSink {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsSink {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: String) -> Self {
        SnsSink { client, topic_arn }
    }
}

impl EventSink for SnsSink {
    fn enabled(&self) -> bool {
        true
    }

    fn publish(&self, events: Vec<PubSubEvent>) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(send_batched(events, move |batch| async move {
            let entries = batch
                .iter()
                .enumerate()
                .map(|(i, e)| sns_entry(i, e))
                .collect();
            let out = self
                .client
                .publish_batch()
                .topic_arn(&self.topic_arn)
                .set_publish_batch_request_entries(Some(entries))
                .send()
                .await
                .map_err(|e| aws_sdk_sns::error::DisplayErrorContext(e).to_string())?;
            Ok(out
                .failed()
                .iter()
                .filter_map(|f| f.id().strip_prefix('e')?.parse().ok())
                .collect())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Meta;
    use crate::pubsub::{channel_updated, storage_updated, Origin, StorageChange};
    use serde_json::json;
    use std::sync::Mutex;

    fn events(n: usize) -> Vec<PubSubEvent> {
        (0..n).map(|i| channel_updated("c", i as i64)).collect()
    }

    #[test]
    fn eventbridge_entries_carry_the_event_as_detail() {
        let event = channel_updated("room", 3);
        let entry = eventbridge_entry("bus-1", &event);
        assert_eq!(entry.event_bus_name(), Some("bus-1"));
        assert_eq!(entry.source(), Some("hotsock.v1"));
        assert_eq!(entry.detail_type(), Some("channel"));
        let detail: serde_json::Value =
            serde_json::from_str(entry.detail().expect("detail")).expect("JSON");
        assert_eq!(detail["type"], "hotsock.channelUpdated");
        assert_eq!(
            detail["data"],
            json!({"name": "room", "subscriptionsCount": 3})
        );
    }

    #[test]
    fn sns_attributes_follow_the_documented_filters() {
        let attrs = |e: &PubSubEvent| {
            let mut names: Vec<String> = sns_attributes(e).into_keys().collect();
            names.sort();
            names
        };
        assert_eq!(
            attrs(&channel_updated("room", 1)),
            ["channel", "dataType", "source", "type"]
        );
        let meta = Meta::new(None, None);
        let change = StorageChange {
            channel: "doc",
            key: "k",
            data: json!(1),
            previous: json!(null),
            expired: false,
            expires_at: None,
            meta: &meta,
        };
        let origin =
            Origin::new("client.websocket", None).as_connection("c1", Some("1.1.1.1"), None);
        assert_eq!(
            attrs(&storage_updated(&change, Some(&origin))),
            ["channel", "dataType", "key", "source", "trigger", "type"]
        );
        let entry = sns_entry(7, &channel_updated("room", 1));
        assert_eq!(entry.id(), "e7");
        let value = &entry.message_attributes().expect("attributes")["type"];
        assert_eq!(value.data_type(), "String");
        assert_eq!(value.string_value(), Some("hotsock.channelUpdated"));
    }

    #[tokio::test]
    async fn batches_of_ten_and_only_refused_entries_are_sent_again() {
        let sent: Mutex<Vec<Vec<i64>>> = Mutex::new(Vec::new());
        let result = send_batched(events(23), |batch| {
            let counts: Vec<i64> = batch
                .iter()
                .map(|e| e.data["subscriptionsCount"].as_i64().expect("count"))
                .collect();
            let first_try = !sent
                .lock()
                .expect("lock")
                .iter()
                .flatten()
                .any(|c| counts.contains(c));
            sent.lock().expect("lock").push(counts.clone());
            async move {
                // The first time, the entries at positions 1 and 3 are refused.
                Ok(if first_try && counts.len() >= 4 {
                    vec![1, 3]
                } else {
                    vec![]
                })
            }
        })
        .await;
        assert!(result.is_ok(), "{result:?}");
        let sent = sent.into_inner().expect("lock");
        assert_eq!(
            sent,
            vec![
                (0..10).collect::<Vec<i64>>(),
                vec![1, 3],
                (10..20).collect(),
                vec![11, 13],
                (20..23).collect(),
            ]
        );
    }

    #[test]
    fn batches_stay_under_the_request_size_limit() {
        let big = |i: i64| {
            let mut e = channel_updated("c", i);
            e.data["padding"] = json!("x".repeat(30 * 1024));
            e
        };
        let sizes: Vec<usize> = batches((0..10).map(big).collect())
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, [6, 4]);
        let sizes: Vec<usize> = batches(events(25)).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 5]);
    }

    #[tokio::test]
    async fn entries_refused_every_time_are_reported_lost() {
        let calls = Mutex::new(0);
        let result = send_batched(events(3), |batch| {
            *calls.lock().expect("lock") += 1;
            let n = batch.len();
            async move {
                if n == 3 {
                    Ok(vec![2])
                } else {
                    Err("throttled".to_owned())
                }
            }
        })
        .await;
        assert_eq!(*calls.lock().expect("lock"), ATTEMPTS);
        match result {
            Err(SinkError::Rejected {
                failed,
                total,
                reason,
            }) => {
                assert_eq!((failed, total), (1, 3));
                assert_eq!(reason, "throttled");
            }
            other => panic!("{other:?}"),
        }
    }
}
