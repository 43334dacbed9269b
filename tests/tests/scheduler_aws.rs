//! The EventBridge Scheduler adapter against moto's standalone server: the
//! one-time schedule a scheduled publish creates is the one template.yaml's
//! role and publish function expect, and its input, handed to the publish
//! function when due, delivers the message as decided.

use aws_sdk_scheduler::types::{ActionAfterCompletion, FlexibleTimeWindowMode};
use serde_json::{json, Value};
use sockhop::clock::Timestamp;
use sockhop::ops::dispatch::Request;
use sockhop::ops::publish::parse_server_request;
use sockhop::App;
use sockhop_tests::{sdk_config, sqs_endpoint, TestStage};

const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:test-publish";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/test-scheduler";

/// moto serves every service on one port.
async fn scheduler_client() -> aws_sdk_scheduler::Client {
    let config = aws_sdk_scheduler::config::Builder::from(&sdk_config().await)
        .endpoint_url(sqs_endpoint())
        .build();
    aws_sdk_scheduler::Client::from_conf(config)
}

async fn aws_side_app(stage: &TestStage, group: &str) -> App {
    stage
        .other_app(&[
            ("SCHEDULE_GROUP_NAME", group.to_owned()),
            ("SCHEDULE_TARGET_ARN", FUNCTION_ARN.to_owned()),
            ("SCHEDULE_ROLE_ARN", ROLE_ARN.to_owned()),
            ("SCHEDULER_ENDPOINT", sqs_endpoint()),
        ])
        .await
}

#[tokio::test]
async fn a_scheduled_publish_creates_a_one_time_schedule_that_invokes_the_publish_function() {
    let stage = TestStage::start().await;
    let scheduler = scheduler_client().await;
    let group = format!("test-{}", ulid::Ulid::new());
    scheduler
        .create_schedule_group()
        .name(&group)
        .send()
        .await
        .expect("group");
    let app = aws_side_app(&stage, &group).await;
    let mut listener = stage
        .connect(json!({"scope": "connect", "channels": {"news": {"subscribe": true}}}))
        .await;
    listener.subscribe("news").await;

    let request = parse_server_request(json!({"channel": "news", "event": "e", "data": {"n": 1},
        "scheduleExpression": "at(2030-01-01T09:00:00)", "scheduleExpressionTimezone": "Europe/Paris"}))
    .expect("valid");
    let now = Timestamp::from_secs(1_893_456_000 - 86_400); // 2029-12-31T00:00:00Z
    let reply = sockhop::driver::command(&app, now, Request::Server(request))
        .await
        .expect("scheduled");
    let arn = reply["scheduleArn"].as_str().expect("arn").to_owned();
    let name = arn.rsplit('/').next().expect("name").to_owned();
    assert!(arn.contains(&format!(":schedule/{group}/")), "{arn}");

    let schedule = scheduler
        .get_schedule()
        .group_name(&group)
        .name(&name)
        .send()
        .await
        .expect("the schedule exists");
    assert_eq!(schedule.arn(), Some(arn.as_str()));
    assert_eq!(
        schedule.schedule_expression(),
        Some("at(2030-01-01T09:00:00)")
    );
    assert_eq!(
        schedule.schedule_expression_timezone(),
        Some("Europe/Paris")
    );
    assert_eq!(
        schedule.action_after_completion(),
        Some(&ActionAfterCompletion::Delete)
    );
    assert_eq!(
        schedule.flexible_time_window().map(|w| w.mode()),
        Some(&FlexibleTimeWindowMode::Off)
    );
    let target = schedule.target().expect("target");
    assert_eq!(target.arn(), FUNCTION_ARN);
    assert_eq!(target.role_arn(), ROLE_ARN);
    let retry = target.retry_policy().expect("retry policy");
    assert_eq!(retry.maximum_event_age_in_seconds(), Some(86_400));
    assert!(retry.maximum_retry_attempts().unwrap_or(0) > 0);
    assert!(app.requests.snapshot()["scheduler.CreateSchedule"].requests >= 1);

    // When it falls due, EventBridge Scheduler invokes the publish function
    // with the input: the message arrives as it was decided.
    // Timed: the schedule must not fire by itself, and nothing is ordered
    // behind a firing.
    listener
        .expect_silence(std::time::Duration::from_millis(200))
        .await;
    let input: Value = serde_json::from_str(target.input().expect("input")).expect("JSON input");
    let answer = sockhop_publish::handle(stage.stage.app, input)
        .await
        .expect("published");
    assert_eq!(answer, json!({"channel": "news", "event": "e"}));
    let frame = listener.expect_event("e").await;
    assert_eq!(frame["data"], json!({"n": 1}));
}

#[tokio::test]
async fn without_a_scheduler_a_scheduled_publish_fails_loudly_and_the_api_refuses_forged_payloads()
{
    let stage = TestStage::start().await;
    let app = stage.other_app(&[]).await;
    let request = parse_server_request(json!({"channel": "news", "event": "e",
        "scheduleExpression": "at(2030-01-01T09:00:00)"}))
    .expect("valid");
    let now = Timestamp::from_secs(1_893_456_000 - 86_400);
    let err = sockhop::driver::command(&app, now, Request::Server(request))
        .await
        .expect_err("no scheduler");
    assert_eq!(err.code.as_str(), "INTERNAL_ERROR");
    // Only the publish function takes a schedule's payload; POST /publish
    // (API keys) does not.
    let (status, reply) = stage
        .server_publish(
            json!({"sockhopScheduled": {"channel": "news", "event": "e", "data": 1,
            "meta": null, "sender": null, "echo": false, "store": 0, "eagerId": false,
            "deduplicationId": null, "storageKey": null}}),
        )
        .await;
    assert_eq!(
        (status, &reply["error"]["code"]),
        (400, &json!("INVALID_REQUEST"))
    );
}
