//! The EventBridge and SNS sinks of backend events against moto's standalone
//! server: events are sent in batches of 10 and arrive where a backend reads
//! them — an SQS queue behind an EventBridge rule, and one subscribed to the
//! SNS topic — with the documented envelope and SNS message attributes.

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{json, Value};
use sockhop::pubsub::{channel_updated, PubSubEvent};
use sockhop_tests::{sdk_config, sqs_endpoint, TestStage};

async fn sqs() -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::config::Builder::from(&sdk_config().await)
        .endpoint_url(sqs_endpoint())
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// A queue and its ARN.
async fn queue(sqs: &aws_sdk_sqs::Client) -> (String, String) {
    let url = sqs
        .create_queue()
        .queue_name(format!("events-{}", ulid::Ulid::new()))
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("attributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("arn");
    (url, arn)
}

/// Every message body the queue holds (`n` expected).
async fn drain(sqs: &aws_sdk_sqs::Client, url: &str, n: usize) -> Vec<Value> {
    let mut bodies = Vec::new();
    for _ in 0..20 {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        for m in out.messages() {
            bodies.push(serde_json::from_str(m.body().unwrap_or("null")).expect("JSON"));
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
        if bodies.len() >= n {
            break;
        }
    }
    bodies
}

fn events(n: i64) -> Vec<PubSubEvent> {
    (0..n).map(|i| channel_updated("room", i)).collect()
}

#[tokio::test]
async fn events_reach_an_eventbridge_rule_and_an_sns_subscription_in_batches() {
    let stage = TestStage::start().await;
    let config = sdk_config().await;
    let sqs = sqs().await;
    let bridge = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(&config)
            .endpoint_url(sqs_endpoint())
            .build(),
    );
    let sns = aws_sdk_sns::Client::from_conf(
        aws_sdk_sns::config::Builder::from(&config)
            .endpoint_url(sqs_endpoint())
            .build(),
    );
    // EventBridge: a bus whose rule sends hotsock.v1 events to a queue.
    let bus = format!("bus-{}", ulid::Ulid::new());
    bridge
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .expect("bus");
    let (bus_queue, bus_queue_arn) = queue(&sqs).await;
    bridge
        .put_rule()
        .name("all")
        .event_bus_name(&bus)
        .event_pattern(json!({"source": ["hotsock.v1"]}).to_string())
        .send()
        .await
        .expect("rule");
    bridge
        .put_targets()
        .rule("all")
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(&bus_queue_arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("targets");
    // SNS: a topic with a queue subscribed.
    let topic = sns
        .create_topic()
        .name(format!("topic-{}", ulid::Ulid::new()))
        .send()
        .await
        .expect("topic")
        .topic_arn
        .expect("arn");
    let (topic_queue, topic_queue_arn) = queue(&sqs).await;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&topic_queue_arn)
        .send()
        .await
        .expect("subscription");

    let app = stage
        .other_app(&[
            ("EVENTS_BUS_NAME", bus.clone()),
            ("EVENTS_TOPIC_ARN", topic.clone()),
            ("EVENTS_ENDPOINT", sqs_endpoint()),
        ])
        .await;
    assert!(app.events.enabled());
    app.events.publish(events(12)).await.expect("accepted");
    let counts = app.requests.snapshot();
    assert_eq!(
        counts["events.PutEvents"].requests, 2,
        "12 events in batches of 10"
    );
    assert_eq!(counts["sns.PublishBatch"].requests, 2, "{counts:?}");

    let from_bus = drain(&sqs, &bus_queue, 12).await;
    assert_eq!(from_bus.len(), 12);
    let mut seen: Vec<i64> = from_bus
        .iter()
        .map(|e| {
            assert_eq!(e["source"], "hotsock.v1");
            assert_eq!(e["detail-type"], "channel");
            assert_eq!(e["detail"]["type"], "hotsock.channelUpdated");
            assert_eq!(e["detail"]["metadata"]["channel"], "room");
            e["detail"]["data"]["subscriptionsCount"]
                .as_i64()
                .expect("count")
        })
        .collect();
    seen.sort();
    assert_eq!(seen, (0..12).collect::<Vec<_>>());

    let from_topic = drain(&sqs, &topic_queue, 12).await;
    assert_eq!(from_topic.len(), 12);
    for notification in &from_topic {
        let event: Value =
            serde_json::from_str(notification["Message"].as_str().expect("Message")).expect("JSON");
        assert_eq!(event["source"], "hotsock.v1");
        assert_eq!(event["dataType"], "channel");
        let attributes = &notification["MessageAttributes"];
        assert_eq!(
            attributes["type"]["Value"], "hotsock.channelUpdated",
            "{notification}"
        );
        assert_eq!(attributes["dataType"]["Value"], "channel");
        assert_eq!(attributes["source"]["Value"], "hotsock.v1");
        assert_eq!(attributes["channel"]["Value"], "room");
        assert!(attributes.get("hotsockVersion").is_none());
    }
}
