//! What a record of the table's stream means: the store knows the keys, so it
//! is the one to tell a new connection from everything else. Messages do not
//! travel through the stream (they go through the delivery queue).

use super::keys;
use crate::store::*;
use aws_lambda_events::dynamodb::EventRecord;
use serde_dynamo::{AttributeValue, Item};

fn string_attr(image: &Item, name: &str) -> Option<String> {
    match image.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    }
}

/// An item image as the store's type (`None`: not that kind of item).
fn decode<T: serde::de::DeserializeOwned>(item: &Item) -> Option<Box<T>> {
    serde_dynamo::from_item(item.clone()).ok().map(Box::new)
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
    let event = record.event_name.as_str();
    if let Some(id) = connection {
        return match event {
            "INSERT" => Change::Connected {
                connection_id: id.to_owned(),
            },
            "REMOVE" if by_ttl => Change::ConnectionExpired {
                connection_id: id.to_owned(),
                item: decode(&change.old_image),
            },
            "REMOVE" => decode(&change.old_image)
                .map_or(Change::Ignored, |item| Change::Disconnected { item }),
            "MODIFY" if change.old_image.get("umd") != change.new_image.get("umd") => {
                decode(&change.new_image)
                    .map_or(Change::Ignored, |item| Change::ConnectionUpdated { item })
            }
            _ => Change::Ignored,
        };
    }
    if let Some(channel) = pk.strip_prefix(keys::CHAN_PREFIX) {
        if sk.starts_with(keys::SUB_PREFIX) {
            return match event {
                "INSERT" => decode(&change.new_image)
                    .map_or(Change::Ignored, |item| Change::Subscribed { item }),
                "REMOVE" => decode(&change.old_image)
                    .map_or(Change::Ignored, |item| Change::Unsubscribed { item }),
                _ => Change::Ignored,
            };
        }
        if sk == keys::META_SK {
            let count = |image: &Item| match image.get("subscriptionsCount") {
                Some(AttributeValue::N(n)) => n.parse::<i64>().ok(),
                _ => None,
            };
            let (before, after) = (count(&change.old_image), count(&change.new_image));
            return match after {
                Some(count) if event != "REMOVE" && before != after => Change::CountChanged {
                    channel: channel.to_owned(),
                    count,
                },
                _ => Change::Ignored,
            };
        }
    }
    if pk.starts_with(keys::STORE_PREFIX) && event == "REMOVE" && by_ttl {
        let emitting = matches!(
            change.old_image.get("emit"),
            Some(AttributeValue::Bool(true))
        );
        let item: Option<Box<StorageItem>> = decode(&change.old_image);
        if let Some(item) = item.filter(|i| emitting && !i.cleared) {
            return Change::StorageExpired { item };
        }
    }
    Change::Ignored
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
                connection_id: "abc".into(),
                item: None
            }
        );
        // Our own delete ($disconnect) already cleaned up (an image without
        // the connection's attributes tells nothing either).
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

    fn modify(
        keys: serde_json::Value,
        old: serde_json::Value,
        new: serde_json::Value,
    ) -> EventRecord {
        let mut r = record("MODIFY", keys, json!({}), false);
        r.change.old_image = serde_json::from_value(old).expect("image");
        r.change.new_image = serde_json::from_value(new).expect("image");
        r
    }

    #[test]
    fn what_the_backend_is_told_comes_from_subscription_count_connection_and_storage_records() {
        let sub = keys("CHAN#news", "SUB#abc");
        let image = json!({"pk": {"S": "CHAN#news"}, "sk": {"S": "SUB#abc"},
            "channel": {"S": "news"}, "connectionId": {"S": "abc"}, "uid": {"S": "jim"},
            "permissions": {"S": "{}"}, "subscribedAtMs": {"N": "1"}, "counted": {"BOOL": true},
            "ttl": {"N": "9"}});
        let subscribed =
            classify_stream_record(&record("INSERT", sub.clone(), image.clone(), false));
        assert!(
            matches!(&subscribed, Change::Subscribed { item } if item.channel == "news" && item.connection_id == "abc"),
            "{subscribed:?}"
        );
        let gone = classify_stream_record(&record("REMOVE", sub, image, true));
        assert!(
            matches!(&gone, Change::Unsubscribed { item } if item.uid.as_deref() == Some("jim"))
        );

        let meta = keys("CHAN#news", "META");
        let count = |n: i64| json!({"subscriptionsCount": {"N": n.to_string()}});
        assert_eq!(
            classify_stream_record(&modify(meta.clone(), count(1), count(2))),
            Change::CountChanged {
                channel: "news".into(),
                count: 2
            }
        );
        assert_eq!(
            classify_stream_record(&modify(meta, count(2), count(2))),
            Change::Ignored
        );

        let conn = keys("CONN#abc", "CONN");
        let connection = |umd: &str| {
            json!({"connectionId": {"S": "abc"}, "secretNonce": {"S": "n"},
            "secretHash": {"S": "h"}, "umd": {"S": umd}, "claims": {"S": "{}"},
            "connectedAtMs": {"N": "1"}, "expiresAt": {"N": "2"}, "keepAlive": {"BOOL": false},
            "lastSeen": {"N": "1"}, "ttl": {"N": "3"}})
        };
        let updated =
            classify_stream_record(&modify(conn.clone(), connection("1"), connection("2")));
        assert!(
            matches!(&updated, Change::ConnectionUpdated { item } if item.umd.as_deref() == Some("2"))
        );
        assert_eq!(
            classify_stream_record(&modify(conn.clone(), connection("1"), connection("1"))),
            Change::Ignored
        );
        let removed = classify_stream_record(&record("REMOVE", conn, connection("1"), false));
        assert!(matches!(removed, Change::Disconnected { .. }));

        let entry = |emit: bool, cleared: bool| {
            json!({"channel": {"S": "doc"}, "key": {"S": "k"},
            "data": {"S": "1"}, "meta": {"S": "{}"}, "emit": {"BOOL": emit},
            "cleared": {"BOOL": cleared}, "ttl": {"N": "5"}})
        };
        let store = keys("STORE#doc", "k");
        assert!(matches!(
            classify_stream_record(&record("REMOVE", store.clone(), entry(true, false), true)),
            Change::StorageExpired { .. }
        ));
        for (emit, cleared, ttl) in [
            (false, false, true),
            (true, true, true),
            (true, false, false),
        ] {
            assert_eq!(
                classify_stream_record(&record("REMOVE", store.clone(), entry(emit, cleared), ttl)),
                Change::Ignored
            );
        }
    }
}
