//! What this process asked of AWS: every request the SDK clients send, per
//! service operation, with the DynamoDB capacity it consumes by AWS's pricing
//! model. Counted by an SDK interceptor on each client, so nothing the code
//! does escapes it (retries included). The local stage serves the counts at
//! `/dev/stats`; the bench turns them into requests and cost per operation.

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Requests and capacity of one operation (`dynamodb.PutItem`, `sqs.SendMessage`,
/// `apigateway.PostToConnection`, ...).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationCount {
    pub requests: u64,
    /// DynamoDB write request units (1 per KB written, doubled in a transaction).
    pub write_units: f64,
    /// DynamoDB read request units (per 4 KB read, halved when eventually consistent).
    pub read_units: f64,
}

#[derive(Debug, Default)]
pub struct RequestCounts {
    operations: Mutex<BTreeMap<String, OperationCount>>,
}

impl RequestCounts {
    pub fn snapshot(&self) -> BTreeMap<String, OperationCount> {
        self.operations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn add(&self, operation: String, count: OperationCount) {
        let mut operations = self
            .operations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let total = operations.entry(operation).or_default();
        total.requests += count.requests;
        total.write_units += count.write_units;
        total.read_units += count.read_units;
    }
}

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
        self.0.add(operation, count);
        Ok(())
    }
}

/// Capacity by DynamoDB's on-demand pricing model, from the request itself:
/// writes cost 1 unit per started KB of item (the request body bounds the item
/// size), twice that in a transaction; reads 1 unit per started 4 KB, half when
/// eventually consistent. Sockhop's items are small, so reads are costed at
/// one 4 KB block per item read or per query page.
pub fn dynamodb_units(operation: &str, body: &[u8]) -> OperationCount {
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let kb = |bytes: usize| (bytes.max(1)).div_ceil(1024) as f64;
    let read = |consistent: bool| if consistent { 1.0 } else { 0.5 };
    let consistent = request["ConsistentRead"] == serde_json::Value::Bool(true);
    let (write_units, read_units) = match operation {
        "PutItem" | "UpdateItem" | "DeleteItem" => (kb(body.len()), 0.0),
        "TransactWriteItems" => {
            let items = request["TransactItems"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .map(|i| 2.0 * kb(i.to_string().len()))
                        .sum::<f64>()
                })
                .unwrap_or(0.0);
            (items, 0.0)
        }
        "BatchWriteItem" => {
            let items: usize = request["RequestItems"]
                .as_object()
                .map(|tables| {
                    tables
                        .values()
                        .filter_map(|v| v.as_array())
                        .map(Vec::len)
                        .sum()
                })
                .unwrap_or(0);
            (items as f64, 0.0)
        }
        "GetItem" | "Query" | "Scan" => (0.0, read(consistent)),
        _ => (0.0, 0.0),
    };
    OperationCount {
        requests: 1,
        write_units,
        read_units,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_follows_the_pricing_model() {
        let put = dynamodb_units("PutItem", br#"{"Item":{"pk":{"S":"a"}}}"#);
        assert_eq!(
            (put.requests, put.write_units, put.read_units),
            (1, 1.0, 0.0)
        );
        let big = dynamodb_units("PutItem", &vec![b' '; 2500]);
        assert_eq!(big.write_units, 3.0);
        let transaction = dynamodb_units(
            "TransactWriteItems",
            br#"{"TransactItems":[{"Put":{}},{"Update":{}},{"ConditionCheck":{}}]}"#,
        );
        assert_eq!(transaction.write_units, 6.0);
        assert_eq!(dynamodb_units("Query", b"{}").read_units, 0.5);
        assert_eq!(
            dynamodb_units("GetItem", br#"{"ConsistentRead":true}"#).read_units,
            1.0
        );
    }

    #[test]
    fn counts_add_up_per_operation() {
        let counts = RequestCounts::default();
        counts.add("dynamodb.PutItem".into(), dynamodb_units("PutItem", b"{}"));
        counts.add("dynamodb.PutItem".into(), dynamodb_units("PutItem", b"{}"));
        let snapshot = counts.snapshot();
        assert_eq!(snapshot["dynamodb.PutItem"].requests, 2);
        assert_eq!(snapshot["dynamodb.PutItem"].write_units, 2.0);
    }
}
