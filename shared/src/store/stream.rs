//! What a record of the table's stream means: the store knows the keys, so it
//! is the one to tell a new connection from everything else. Messages do not
//! travel through the stream (they go through the delivery queue).

use super::keys;
use aws_lambda_events::dynamodb::EventRecord;
use serde_dynamo::{AttributeValue, Item};

/// What one stream record asks of the stream function.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A connection item appeared: greet the socket.
    Connected { connection_id: String },
    /// DynamoDB's TTL removed a connection item: clean up what it left.
    ConnectionExpired { connection_id: String },
    /// Anything else (stored messages, subscriptions, counts, reactions,
    /// deletions we made).
    Ignored,
}

fn string_attr(image: &Item, name: &str) -> Option<String> {
    match image.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Classifies a record by its keys, event name and who made it (pure).
pub fn classify_stream_record(record: &EventRecord) -> Change {
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
    let connection = pk
        .strip_prefix(keys::CONN_PREFIX)
        .filter(|_| sk == keys::CONNECTION_SK);
    match (record.event_name.as_str(), connection) {
        ("INSERT", Some(id)) => Change::Connected {
            connection_id: id.to_owned(),
        },
        ("REMOVE", Some(id)) if by_ttl => Change::ConnectionExpired {
            connection_id: id.to_owned(),
        },
        _ => Change::Ignored,
    }
}

/// The partition a record belongs to: records of one partition must be
/// handled in stream order; different partitions are independent.
pub fn partition_of(record: &EventRecord) -> String {
    string_attr(&record.change.keys, "pk").unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(
        name: &str,
        keys: serde_json::Value,
        image: serde_json::Value,
        ttl: bool,
    ) -> EventRecord {
        let mut value = json!({
            "eventID": "1",
            "eventName": name,
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "Keys": keys,
                "NewImage": if name == "REMOVE" { json!({}) } else { image.clone() },
                "OldImage": if name == "REMOVE" { image } else { json!({}) },
                "SequenceNumber": "100",
                "SizeBytes": 1,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
        });
        if ttl {
            value["userIdentity"] =
                json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
        }
        serde_json::from_value(value).expect("record")
    }

    fn keys(pk: &str, sk: &str) -> serde_json::Value {
        json!({"pk": {"S": pk}, "sk": {"S": sk}})
    }

    #[test]
    fn new_connections_are_greeted_and_only_ttl_removals_clean_up() {
        let k = keys("CONN#abc", "CONN");
        assert_eq!(
            classify_stream_record(&record("INSERT", k.clone(), k.clone(), false)),
            Change::Connected {
                connection_id: "abc".into()
            }
        );
        assert_eq!(
            classify_stream_record(&record("REMOVE", k.clone(), k.clone(), true)),
            Change::ConnectionExpired {
                connection_id: "abc".into()
            }
        );
        // Our own delete ($disconnect) already cleaned up.
        assert_eq!(
            classify_stream_record(&record("REMOVE", k.clone(), k.clone(), false)),
            Change::Ignored
        );
        assert_eq!(
            classify_stream_record(&record("MODIFY", k.clone(), k, false)),
            Change::Ignored
        );
        // The reverse index under a connection is not a connection.
        let sub = keys("CONN#abc", "SUB#chat");
        assert_eq!(
            classify_stream_record(&record("INSERT", sub.clone(), sub, false)),
            Change::Ignored
        );
    }

    #[test]
    fn stored_messages_are_not_deliveries() {
        let k = keys("MSG#chat", "01ARZ3NDEKTSV4RRFFQ69G5FAV");
        assert_eq!(
            classify_stream_record(&record("INSERT", k.clone(), k, false)),
            Change::Ignored
        );
        for (pk, sk) in [
            ("CHAN#chat", "SUB#c1"),
            ("CHAN#chat", "META"),
            ("RXN#chat#1", "x#u"),
        ] {
            let k = keys(pk, sk);
            assert_eq!(
                classify_stream_record(&record("INSERT", k.clone(), k, false)),
                Change::Ignored
            );
        }
    }

    #[test]
    fn partitions_come_from_the_keys() {
        let k = keys("MSG#chat", "1");
        assert_eq!(
            partition_of(&record("INSERT", k.clone(), k, false)),
            "MSG#chat"
        );
    }
}
