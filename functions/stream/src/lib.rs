//! The table's stream: greets new connections, delivers published messages,
//! and cleans up connections whose TTL expired.
//!
//! Records of one partition (one channel's messages) are handled in stream
//! order, which is id order; different partitions run concurrently.

use aws_lambda_events::dynamodb::{Event, EventRecord};
use futures::stream::{self, StreamExt};
use sockhop::ops::{connect, deliver, disconnect};
use sockhop::store::{keys, MessageItem};
use sockhop::App;

/// Partitions handled at once within one batch.
const PARTITION_CONCURRENCY: usize = 16;

/// What one stream record asks of us.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Connected { connection_id: String },
    ConnectionExpired { connection_id: String },
    Published(Box<MessageItem>),
    Ignored,
}

fn string_attr(image: &serde_dynamo::Item, name: &str) -> Option<String> {
    match image.get(name) {
        Some(serde_dynamo::AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Classifies a record by its keys and event name (pure).
pub fn classify(record: &EventRecord) -> Change {
    let change = &record.change;
    let image = if record.event_name == "REMOVE" {
        &change.old_image
    } else {
        &change.new_image
    };
    let (Some(pk), Some(sk)) = (
        string_attr(&change.keys, "pk").or_else(|| string_attr(image, "pk")),
        string_attr(&change.keys, "sk").or_else(|| string_attr(image, "sk")),
    ) else {
        return Change::Ignored;
    };
    let by_ttl = record
        .user_identity
        .as_ref()
        .is_some_and(|u| u.type_ == "Service" && u.principal_id == "dynamodb.amazonaws.com");
    match (
        record.event_name.as_str(),
        pk.strip_prefix(keys::CONN_PREFIX),
    ) {
        ("INSERT", Some(id)) if sk == keys::CONNECTION_SK => Change::Connected {
            connection_id: id.to_owned(),
        },
        ("REMOVE", Some(id)) if sk == keys::CONNECTION_SK && by_ttl => Change::ConnectionExpired {
            connection_id: id.to_owned(),
        },
        ("INSERT", None) if pk.starts_with(keys::MSG_PREFIX) => {
            match serde_dynamo::from_item::<_, MessageItem>(change.new_image.clone()) {
                Ok(message) => Change::Published(Box::new(message)),
                Err(err) => {
                    tracing::error!(pk, sk, error = %err, "unreadable message record");
                    Change::Ignored
                }
            }
        }
        _ => Change::Ignored,
    }
}

fn partition_key(record: &EventRecord) -> String {
    string_attr(&record.change.keys, "pk").unwrap_or_default()
}

async fn apply(app: &App, change: Change) {
    let result = match change {
        Change::Connected { connection_id } => connect::greet(app, &connection_id).await,
        Change::ConnectionExpired { connection_id } => {
            disconnect::cleanup(app, &connection_id).await;
            Ok(())
        }
        Change::Published(message) => deliver::deliver(app, &message).await,
        Change::Ignored => Ok(()),
    };
    if let Err(err) = result {
        tracing::error!(code = err.code.as_str(), message = %err.message, "stream record failed");
    }
}

async fn apply_in_order(app: &App, records: Vec<EventRecord>) {
    for record in records {
        apply(app, classify(&record)).await;
    }
}

pub async fn handle(app: &App, event: Event) -> Result<(), lambda_runtime::Error> {
    // Group by partition, keeping stream order inside each group.
    let mut groups: Vec<(String, Vec<EventRecord>)> = Vec::new();
    for record in event.records {
        let pk = partition_key(&record);
        match groups.iter_mut().find(|(key, _)| *key == pk) {
            Some((_, records)) => records.push(record),
            None => groups.push((pk, vec![record])),
        }
    }
    let work: Vec<_> = groups
        .into_iter()
        .map(|(_, records)| apply_in_order(app, records))
        .collect();
    stream::iter(work)
        .buffer_unordered(PARTITION_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    Ok(())
}
