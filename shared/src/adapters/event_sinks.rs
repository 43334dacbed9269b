//! The AWS sinks of backend events: an EventBridge bus (`PutEvents`) and an SNS
//! topic (`PublishBatch`), each sent in [`batches`](crate::pubsub::batch) of
//! at most 10 entries a request, whose refused entries are sent again a few
//! times before the loss is reported.

use crate::pacing::Pause;
use crate::pubsub::batch::send_batched;
use crate::pubsub::{EventSink, PubSubEvent, SinkError, SOURCE};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Arc;

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
    pause: Arc<dyn Pause>,
}

impl EventBridgeSink {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: String, pause: Arc<dyn Pause>) -> Self {
        EventBridgeSink { client, bus, pause }
    }
}

impl EventSink for EventBridgeSink {
    fn enabled(&self) -> bool {
        true
    }

    fn publish(&self, events: Vec<PubSubEvent>) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(send_batched(
            &*self.pause,
            events,
            move |batch| async move {
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
            },
        ))
    }
}

pub struct SnsSink {
    client: aws_sdk_sns::Client,
    topic_arn: String,
    pause: Arc<dyn Pause>,
}

impl SnsSink {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: String, pause: Arc<dyn Pause>) -> Self {
        SnsSink {
            client,
            topic_arn,
            pause,
        }
    }
}

impl EventSink for SnsSink {
    fn enabled(&self) -> bool {
        true
    }

    fn publish(&self, events: Vec<PubSubEvent>) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(send_batched(
            &*self.pause,
            events,
            move |batch| async move {
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
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pubsub::{channel_updated, storage_updated, Origin, StorageChange};
    use serde_json::json;
    use sockhop_core::protocol::Meta;

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
}
