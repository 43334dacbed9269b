//! The delivery queue's SQS adapter against moto's standalone SQS (a FIFO queue,
//! as in AWS): what a publish sends is what the deliver function consumes, in
//! order, deduplicated, with ids from the queue position.

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use serde_json::{json, Value};
use sockhop::clock::Timestamp;
use sockhop::ops::dispatch::Request;
use sockhop::ops::publish::parse_server_request;
use sockhop::ops::{load_connection, Ctx};
use sockhop::protocol::ClientCommand;
use sockhop::App;
use sockhop_tests::{sdk_config, sqs_endpoint, TestStage};
use std::collections::HashMap;

async fn sqs() -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::config::Builder::from(&sdk_config().await)
        .endpoint_url(sqs_endpoint())
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// A FIFO queue of its own, shaped like template.yaml's DeliveryQueue.
async fn fifo_queue(sqs: &aws_sdk_sqs::Client) -> String {
    sqs.create_queue()
        .queue_name(format!("test-{}.fifo", ulid::Ulid::new()))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("url")
}

/// An app configured as in AWS: SqsQueue on `queue_url`, the stage's table.
async fn aws_side_app(stage: &TestStage, queue_url: &str) -> &'static App {
    let extra = [
        ("DELIVERY_QUEUE_URL", queue_url.to_owned()),
        ("SQS_ENDPOINT", sqs_endpoint()),
    ];
    Box::leak(Box::new(stage.other_app(&extra).await))
}

async fn server_publish(app: &App, body: Value) -> Value {
    let request = parse_server_request(body).expect("valid");
    sockhop::driver::command(app, Timestamp::now(), Request::Server(request))
        .await
        .expect("queued")
}

/// Everything the queue holds, as the Lambda event source would hand it over.
async fn receive_all(sqs: &aws_sdk_sqs::Client, url: &str) -> aws_lambda_events::sqs::SqsEvent {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .expect("receive");
    let records: Vec<Value> = out
        .messages()
        .iter()
        .map(|m| {
            let attributes: HashMap<String, String> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            json!({"messageId": m.message_id(), "body": m.body(), "attributes": attributes,
                   "eventSource": "aws:sqs"})
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("event")
}

#[tokio::test]
async fn publishes_travel_an_sqs_fifo_queue_in_order_and_deduplicated() {
    let stage = TestStage::start().await;
    let sqs = sqs().await;
    let url = fifo_queue(&sqs).await;
    let app = aws_side_app(&stage, &url).await;
    let mut listener = stage
        .connect(json!({"scope": "connect", "uid": "l",
            "channels": {"news": {"subscribe": true, "historyStart": 0}}}))
        .await;
    listener.subscribe("news").await;

    let publish = |data: i64, extra: Value| {
        let mut body = json!({"channel": "news", "event": "e", "data": data});
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        server_publish(app, body)
    };
    assert_eq!(
        publish(1, json!({})).await,
        json!({"channel": "news", "event": "e"})
    );
    publish(2, json!({"deduplicationId": "order-2"})).await;
    // A retry of the same publish within five minutes is accepted and dropped.
    publish(2, json!({"deduplicationId": "order-2"})).await;
    let eager = publish(3, json!({"store": 600, "eagerIdGeneration": true})).await;
    let eager_id = eager["id"].as_str().expect("eager id").to_owned();

    let event = receive_all(&sqs, &url).await;
    assert_eq!(
        event.records.len(),
        3,
        "the duplicate never entered the queue"
    );
    for record in &event.records {
        assert_eq!(record.attributes["MessageGroupId"], "news");
        assert!(record.attributes.contains_key("SequenceNumber"));
    }
    // The ids the queue positions give (SQS's sequence numbers increase
    // within a group, so these do; moto's are random, so they are read here
    // rather than assumed in order).
    let position_ids: Vec<String> = event.records[..2]
        .iter()
        .map(|r| {
            let number = |name: &str| r.attributes[name].parse::<u128>().expect(name);
            sockhop::ids::queued_id(
                number("ApproximateFirstReceiveTimestamp") as u64,
                number("SequenceNumber"),
            )
        })
        .collect();
    let response = sockhop_deliver::handle(stage.stage.app, event)
        .await
        .expect("handled");
    assert!(response.batch_item_failures.is_empty());

    let mut ids = Vec::new();
    for data in [1, 2, 3] {
        let frame = listener.expect_event("e").await;
        assert_eq!(frame["data"], data, "queue order: {frame}");
        ids.push(frame["id"].as_str().expect("id").to_owned());
    }
    assert_eq!(ids[..2], position_ids[..], "ids from the queue positions");
    assert_eq!(ids[2], eager_id, "an eager id is kept");
    let (status, page) = stage
        .connection_api(&listener, "listMessages", json!({"channel": "news"}))
        .await;
    assert_eq!(status, 200);
    let listed: Vec<&Value> = page["messages"].as_array().expect("list").iter().collect();
    assert_eq!(listed.len(), 1, "only the stored message: {page}");
    assert_eq!(listed[0]["id"], eager_id.as_str());
    assert!(
        app.requests.snapshot()["sqs.SendMessage"].requests >= 4,
        "the interceptor counted the sends"
    );
}

#[tokio::test]
async fn without_a_queue_publishes_fail_loudly() {
    let stage = TestStage::start().await;
    let app = stage.other_app(&[]).await;
    let request = parse_server_request(json!({"channel": "news", "event": "e"})).expect("valid");
    let err = sockhop::driver::command(&app, Timestamp::now(), Request::Server(request))
        .await
        .expect_err("no 202 for a message that cannot be delivered");
    assert_eq!(err.code.as_str(), "INTERNAL_ERROR");
}

/// Two publishing processes (two Lambda instances, each with its own id
/// generator and clients) race into one channel: every subscriber gets all
/// messages in one and the same order, and ids increase in that order.
#[tokio::test]
async fn two_publishing_processes_race_into_one_order() {
    let stage = TestStage::start().await;
    let mut other = stage.other_app(&[]).await;
    other.queue = stage.stage.queue.clone();
    let publishers: [&App; 2] = [stage.stage.app, &other];
    let mut listeners = Vec::new();
    for uid in ["x", "y", "z"] {
        let mut l = stage
            .connect(json!({"scope": "connect", "uid": uid,
                "channels": {"race": {"subscribe": true}}}))
            .await;
        l.subscribe("race").await;
        listeners.push(l);
    }
    const EACH: usize = 60;
    let runs = publishers.iter().enumerate().map(|(p, app)| async move {
        for n in 0..EACH {
            let request = parse_server_request(
                json!({"channel": "race", "event": "n", "data": format!("{p}-{n}")}),
            )
            .expect("valid");
            sockhop::driver::command(app, Timestamp::now(), Request::Server(request))
                .await
                .expect("queued");
        }
    });
    futures::future::join_all(runs).await;
    let mut orders = Vec::new();
    for listener in &mut listeners {
        let mut seen = Vec::new();
        let mut ids = Vec::new();
        while seen.len() < 2 * EACH {
            let frame = listener.expect_event("n").await;
            seen.push(frame["data"].as_str().expect("data").to_owned());
            ids.push(frame["id"].as_str().expect("id").to_owned());
        }
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids follow delivery order"
        );
        for p in 0..2 {
            let mine: Vec<&String> = seen
                .iter()
                .filter(|d| d.starts_with(&format!("{p}-")))
                .collect();
            let expected: Vec<String> = (0..EACH).map(|n| format!("{p}-{n}")).collect();
            assert_eq!(
                mine,
                expected.iter().collect::<Vec<_>>(),
                "each publisher's own order kept"
            );
        }
        orders.push(seen);
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "one order for everyone"
    );
}

/// A client command as another process runs it, on the AWS side's queue.
async fn client_command(app: &App, connection_id: &str, command: ClientCommand) {
    let now = Timestamp::now();
    let connection = load_connection(Ctx::new(app, now), connection_id)
        .await
        .expect("connection");
    let request = Request::Client {
        connection: &connection,
        command,
    };
    sockhop::driver::command(app, now, request)
        .await
        .expect("accepted");
}

#[tokio::test]
async fn an_unsubscribe_that_overtakes_the_welcome_is_answered_after_a_subscribed() {
    let stage = TestStage::start().await;
    let sqs = sqs().await;
    let url = fifo_queue(&sqs).await;
    let app = aws_side_app(&stage, &url).await;
    let mut jim = stage
        .connect(json!({"scope": "connect", "uid": "jim", "umd": "J",
            "channels": {"presence.room": {"subscribe": true}}}))
        .await;
    let channel = || "presence.room".to_owned();
    // The welcome waits in SQS; meanwhile the subscription goes.
    let subscribe = ClientCommand::Subscribe {
        channel: channel(),
        token: None,
        resume: None,
    };
    client_command(app, &jim.connection_id, subscribe).await;
    let unsubscribe = ClientCommand::Unsubscribe { channel: channel() };
    client_command(app, &jim.connection_id, unsubscribe).await;
    // Both answers wait in SQS, which nothing drains until the test hands it
    // over, so only a direct post could reach Jim; it would have been written
    // before the command returned, ahead of this pong.
    jim.send(json!({"event": "hotsock.ping"})).await;
    jim.expect_next_event("hotsock.pong").await;
    assert_eq!(stage.subscriptions_count("presence.room").await, 0);

    let event = receive_all(&sqs, &url).await;
    assert_eq!(event.records.len(), 2, "the welcome and the farewell");
    let response = sockhop_deliver::handle(stage.stage.app, event)
        .await
        .expect("handled");
    assert!(response.batch_item_failures.is_empty());
    // The welcome found nothing to welcome; the farewell answers both.
    let subscribed = jim.next().await;
    assert_eq!(subscribed["event"], "hotsock.subscribed", "{subscribed}");
    assert_eq!(subscribed["meta"], json!({"uid": "jim", "umd": "J"}));
    assert_eq!(subscribed["data"]["members"], json!([]));
    assert_eq!(jim.next().await["event"], "hotsock.unsubscribed");
    // The handler has returned and SQS holds nothing more: anything else it
    // posted would come before this pong.
    jim.send(json!({"event": "hotsock.ping"})).await;
    jim.expect_next_event("hotsock.pong").await;
}

/// A channel name SQS does not take as a message group (non-ASCII, or over
/// 128 characters: channel names may be 256 characters of any Unicode) goes
/// under its digest, and the deliver step reads the channel from the record,
/// so its subscribers get the message.
#[tokio::test]
async fn channels_sqs_cannot_name_as_a_group_travel_under_their_digest() {
    let stage = TestStage::start().await;
    let sqs = sqs().await;
    let url = fifo_queue(&sqs).await;
    let app = aws_side_app(&stage, &url).await;
    let channel = format!("чат-🙂-{}", "x".repeat(200));
    let mut listener = stage
        .connect(json!({"scope": "connect", "channels": {channel.as_str(): {"subscribe": true}}}))
        .await;
    assert_eq!(
        listener.subscribe(&channel).await["event"],
        "hotsock.subscribed"
    );
    server_publish(
        app,
        json!({"channel": channel, "event": "e", "data": "привет"}),
    )
    .await;
    let event = receive_all(&sqs, &url).await;
    assert_eq!(event.records.len(), 1);
    let group = &event.records[0].attributes["MessageGroupId"];
    assert_eq!(group, &sockhop::queue::message_group(&channel));
    assert!(group.starts_with('#') && group.len() <= 128, "{group}");
    let response = sockhop_deliver::handle(stage.stage.app, event)
        .await
        .expect("handled");
    assert!(response.batch_item_failures.is_empty());
    let frame = listener.expect_event("e").await;
    assert_eq!(frame["channel"], channel.as_str());
    assert_eq!(frame["data"], "привет");
}
