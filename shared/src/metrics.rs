//! What this process asked of AWS: every request the SDK clients send, per
//! service operation, with the DynamoDB capacity it consumes by AWS's pricing
//! model. Counted by an SDK interceptor on each client
//! ([`CountRequests`](crate::adapters::count_requests::CountRequests)), so
//! nothing the code does escapes it (retries included). The local stage serves
//! the counts at `/dev/stats`; the bench turns them into requests and cost per
//! operation.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

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
    /// Every IAM action the requests needed ([`iam_actions`]).
    actions: Mutex<BTreeSet<String>>,
}

impl RequestCounts {
    /// The IAM actions every request so far needed, as [`iam_actions`] names
    /// them: what the process's role must allow.
    pub fn actions(&self) -> BTreeSet<String> {
        self.actions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn need(&self, actions: Vec<String>) {
        self.actions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(actions);
    }

    pub fn snapshot(&self) -> BTreeMap<String, OperationCount> {
        self.operations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn add(&self, operation: String, count: OperationCount) {
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

/// The requests per operation between two snapshots (`before` taken
/// earlier): what one Lambda invocation asked of AWS.
pub fn requests_between(
    before: &BTreeMap<String, OperationCount>,
    after: &BTreeMap<String, OperationCount>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(operation, count)| {
            let earlier = before.get(operation).map_or(0, |c| c.requests);
            let made = count.requests.saturating_sub(earlier);
            (made > 0).then(|| (operation.clone(), made))
        })
        .collect()
}

/// What the process did that an operator watches, added up by the driver and
/// a few operations, and told once per Lambda invocation as CloudWatch metrics
/// ([`emf_line`]: Embedded Metric Format in the logs, so no API calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Measure {
    /// Connections opened (`$connect` accepted).
    Connections,
    /// Subscriptions made.
    Subscribes,
    /// Messages and storage writes accepted onto a channel's ordered path.
    MessagesPublished,
    /// Frames that reached a socket.
    FramesDelivered,
    /// Frames that did not reach a socket still open (it is closed).
    FramesFailed,
    /// Connections cleaned up after their socket was found gone or closed.
    GoneCleanups,
    /// Time spent posting frames to sockets.
    FanOutMilliseconds,
    /// Backend events the sinks did not accept after their retries.
    EventsLost,
    /// Presence changes a removal could not queue, left for the sweeper.
    OwedPresenceChanges,
}

impl Measure {
    pub fn name(self) -> &'static str {
        match self {
            Measure::Connections => "Connections",
            Measure::Subscribes => "Subscribes",
            Measure::MessagesPublished => "MessagesPublished",
            Measure::FramesDelivered => "FramesDelivered",
            Measure::FramesFailed => "FramesFailed",
            Measure::GoneCleanups => "GoneCleanups",
            Measure::FanOutMilliseconds => "FanOutMilliseconds",
            Measure::EventsLost => "EventsLost",
            Measure::OwedPresenceChanges => "OwedPresenceChanges",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Measure::FanOutMilliseconds => "Milliseconds",
            _ => "Count",
        }
    }
}

/// The process's running totals of each [`Measure`].
#[derive(Debug, Default)]
pub struct Activity {
    totals: Mutex<BTreeMap<Measure, f64>>,
}

impl Activity {
    pub fn add(&self, measure: Measure, value: f64) {
        if value != 0.0 {
            *self
                .totals
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(measure)
                .or_default() += value;
        }
    }

    pub fn snapshot(&self) -> BTreeMap<Measure, f64> {
        self.totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What was added between two snapshots of an [`Activity`].
pub fn activity_between(
    before: &BTreeMap<Measure, f64>,
    after: &BTreeMap<Measure, f64>,
) -> BTreeMap<Measure, f64> {
    after
        .iter()
        .filter_map(|(measure, total)| {
            let added = total - before.get(measure).copied().unwrap_or(0.0);
            (added != 0.0).then_some((*measure, added))
        })
        .collect()
}

/// The namespace of Sockhop's own metrics.
pub const METRICS_NAMESPACE: &str = "Sockhop";

/// One invocation as an Embedded Metric Format log line (pure): its measures
/// as metrics in [`METRICS_NAMESPACE`], by stack and by stack and function;
/// with the AWS requests it made and the IAM actions its process needed as
/// plain properties (the emulated deploy's tests read those). `None` when it
/// did nothing worth a line.
pub fn emf_line(
    stack: &str,
    function: &str,
    request_id: &str,
    at_ms: i64,
    activity: &BTreeMap<Measure, f64>,
    requests: &BTreeMap<String, u64>,
    actions: &BTreeSet<String>,
) -> Option<String> {
    if activity.is_empty() && requests.is_empty() {
        return None;
    }
    let metrics: Vec<serde_json::Value> = activity
        .keys()
        .map(|m| serde_json::json!({"Name": m.name(), "Unit": m.unit()}))
        .collect();
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": at_ms,
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [["StackName"], ["StackName", "FunctionName"]],
                "Metrics": metrics,
            }],
        },
        "StackName": stack,
        "FunctionName": function,
        "requestId": request_id,
        "awsRequests": requests,
        "iamActions": actions,
    });
    for (measure, value) in activity {
        line[measure.name()] = serde_json::json!(value);
    }
    Some(line.to_string())
}

/// The IAM actions one request needs, from the request itself: `action` on
/// the resource its service's grant names in template.yaml (the table, the
/// queue, ...), with a qualifier where one service's grants differ by more:
/// `dynamodb:Query index/<name>` for a query of an index, and
/// `execute-api:ManageConnections <METHOD>` for the management API's
/// `@connections` methods. A transaction needs the action of each item it
/// writes (DynamoDB authorizes `TransactWriteItems` item by item), a
/// schedule with a role `iam:PassRole`, an SNS batch `sns:Publish`.
pub fn iam_actions(operation: &str, method: &str, body: &[u8]) -> Vec<String> {
    let json = || serde_json::from_slice::<serde_json::Value>(body).unwrap_or_default();
    let (service, op) = operation.split_once('.').unwrap_or(("", operation));
    match (service, op) {
        ("dynamodb", "TransactWriteItems") => {
            let mut actions: Vec<String> = json()["TransactItems"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|item| {
                    let kind = item.as_object()?.keys().next()?;
                    Some(match kind.as_str() {
                        "ConditionCheck" => "dynamodb:ConditionCheckItem".to_owned(),
                        other => format!("dynamodb:{other}Item"),
                    })
                })
                .collect();
            actions.sort();
            actions.dedup();
            actions
        }
        ("dynamodb", "TransactGetItems") => vec!["dynamodb:GetItem".into()],
        ("dynamodb", op @ ("Query" | "Scan")) => match json()["IndexName"].as_str() {
            Some(index) => vec![format!("dynamodb:{op} index/{index}")],
            None => vec![format!("dynamodb:{op}")],
        },
        ("dynamodb", op) => vec![format!("dynamodb:{op}")],
        ("apigateway", _) => vec![format!("execute-api:ManageConnections {method}")],
        ("scheduler", "CreateSchedule") if json()["Target"]["RoleArn"].is_string() => {
            vec!["scheduler:CreateSchedule".into(), "iam:PassRole".into()]
        }
        ("sns", "Publish" | "PublishBatch") => vec!["sns:Publish".into()],
        (service, op) => vec![format!("{service}:{op}")],
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
    fn an_invocations_requests_are_the_difference_of_two_snapshots() {
        let counts = RequestCounts::default();
        counts.add("dynamodb.GetItem".into(), dynamodb_units("GetItem", b"{}"));
        let before = counts.snapshot();
        counts.add("dynamodb.GetItem".into(), dynamodb_units("GetItem", b"{}"));
        counts.add(
            "sqs.SendMessage".into(),
            OperationCount {
                requests: 2,
                ..Default::default()
            },
        );
        let made = requests_between(&before, &counts.snapshot());
        assert_eq!(
            made.into_iter().collect::<Vec<_>>(),
            vec![
                ("dynamodb.GetItem".to_owned(), 1),
                ("sqs.SendMessage".to_owned(), 2)
            ]
        );
        assert!(requests_between(&counts.snapshot(), &counts.snapshot()).is_empty());
    }

    #[test]
    fn each_request_names_the_iam_actions_it_needs() {
        let transaction =
            br#"{"TransactItems":[{"ConditionCheck":{}},{"Put":{}},{"Update":{}},{"Put":{}}]}"#;
        assert_eq!(
            iam_actions("dynamodb.TransactWriteItems", "POST", transaction),
            [
                "dynamodb:ConditionCheckItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem"
            ]
        );
        assert_eq!(
            iam_actions("dynamodb.Query", "POST", br#"{"IndexName":"sweep"}"#),
            ["dynamodb:Query index/sweep"]
        );
        assert_eq!(
            iam_actions("dynamodb.Query", "POST", b"{}"),
            ["dynamodb:Query"]
        );
        assert_eq!(
            iam_actions("apigateway.GetConnection", "GET", b""),
            ["execute-api:ManageConnections GET"]
        );
        assert_eq!(
            iam_actions(
                "scheduler.CreateSchedule",
                "POST",
                br#"{"Target":{"RoleArn":"arn:r"}}"#
            ),
            ["scheduler:CreateSchedule", "iam:PassRole"]
        );
        assert_eq!(
            iam_actions("sns.PublishBatch", "POST", b"Action=PublishBatch"),
            ["sns:Publish"]
        );
        assert_eq!(
            iam_actions("sqs.SendMessage", "POST", b"{}"),
            ["sqs:SendMessage"]
        );
        assert_eq!(
            iam_actions("events.PutEvents", "POST", b"{}"),
            ["events:PutEvents"]
        );
    }

    #[test]
    fn an_invocation_is_one_embedded_metric_format_line() {
        let activity = Activity::default();
        activity.add(Measure::FramesDelivered, 3.0);
        let before = activity.snapshot();
        activity.add(Measure::FramesDelivered, 2.0);
        activity.add(Measure::FanOutMilliseconds, 12.5);
        activity.add(Measure::GoneCleanups, 0.0);
        let added = activity_between(&before, &activity.snapshot());
        let requests = BTreeMap::from([("dynamodb.Query".to_owned(), 1)]);
        let actions = BTreeSet::from(["dynamodb:Query".to_owned()]);
        let line = emf_line(
            "sockhop",
            "sockhop-deliver-1",
            "req-1",
            1_700_000_000_000,
            &added,
            &requests,
            &actions,
        )
        .expect("a line");
        let parsed: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        let directive = &parsed["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Sockhop");
        assert_eq!(
            directive["Metrics"],
            serde_json::json!([
                {"Name": "FramesDelivered", "Unit": "Count"},
                {"Name": "FanOutMilliseconds", "Unit": "Milliseconds"}
            ])
        );
        // Every metric and every dimension is a top-level member (EMF's rule).
        assert_eq!(parsed["FramesDelivered"], 2.0);
        assert_eq!(parsed["FanOutMilliseconds"], 12.5);
        assert_eq!(parsed["StackName"], "sockhop");
        assert_eq!(parsed["FunctionName"], "sockhop-deliver-1");
        assert_eq!(
            parsed["requestId"], "req-1",
            "every line names its invocation"
        );
        assert_eq!(parsed["_aws"]["Timestamp"], 1_700_000_000_000_i64);
        assert_eq!(parsed["iamActions"], serde_json::json!(["dynamodb:Query"]));
        assert!(
            parsed.get("GoneCleanups").is_none(),
            "nothing added, nothing told"
        );
        assert!(emf_line(
            "s",
            "f",
            "r",
            0,
            &BTreeMap::new(),
            &BTreeMap::new(),
            &actions
        )
        .is_none());
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
