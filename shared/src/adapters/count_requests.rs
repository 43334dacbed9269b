//! The SDK interceptor every AWS client of the app carries: each request it
//! sends is counted per service operation, with its DynamoDB capacity and the
//! IAM actions it needs, in the process's [`RequestCounts`].

use crate::metrics::{dynamodb_units, iam_actions, OperationCount, RequestCounts};
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use std::sync::Arc;

/// The interceptor every SDK client of the app carries.
#[derive(Debug, Clone)]
pub struct CountRequests(pub Arc<RequestCounts>);

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "CountRequests"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request();
        let body = request.body().bytes().unwrap_or_default();
        let (operation, count) = match request.headers().get("x-amz-target") {
            // JSON protocols (DynamoDB, SQS): "DynamoDB_20120810.PutItem".
            Some(target) => {
                let (service, op) = target.split_once('.').unwrap_or(("", target));
                let service = if service.starts_with("DynamoDB") {
                    "dynamodb"
                } else if service.starts_with("AmazonSQS") {
                    "sqs"
                } else if service == "AWSEvents" {
                    "events"
                } else {
                    service
                };
                let count = if service == "dynamodb" {
                    dynamodb_units(op, body)
                } else {
                    OperationCount {
                        requests: 1,
                        ..OperationCount::default()
                    }
                };
                (format!("{service}.{op}"), count)
            }
            // The query protocol (SNS, the only such client): "Action=Publish...".
            None if body.starts_with(b"Action=") => {
                let action = body[7..]
                    .split(|b| *b == b'&')
                    .next()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .unwrap_or_default();
                (
                    format!("sns.{action}"),
                    OperationCount {
                        requests: 1,
                        ..OperationCount::default()
                    },
                )
            }
            // REST protocols: EventBridge Scheduler (POST / GET / DELETE
            // /schedules/{name}) and the management API (@connections/{id}).
            None => {
                let scheduler = request.uri().contains("/schedules/");
                let op = match (scheduler, request.method()) {
                    (true, "POST") => "CreateSchedule",
                    (true, "GET") => "GetSchedule",
                    (true, "DELETE") => "DeleteSchedule",
                    (false, "POST") => "PostToConnection",
                    (false, "DELETE") => "DeleteConnection",
                    (false, "GET") => "GetConnection",
                    (_, other) => other,
                };
                let service = if scheduler { "scheduler" } else { "apigateway" };
                (
                    format!("{service}.{op}"),
                    OperationCount {
                        requests: 1,
                        ..OperationCount::default()
                    },
                )
            }
        };
        self.0.need(iam_actions(&operation, request.method(), body));
        self.0.add(operation, count);
        Ok(())
    }
}
