//! Least privilege, derived from the code: each function's role in
//! template.yaml grants exactly the AWS actions its code paths need.
//!
//! Each test builds one function's `App` with the environment the template
//! gives that function (read from the template), against local services: the
//! table of a local stage (DynamoDB Local), moto (SQS FIFO, EventBridge
//! Scheduler, EventBridge, SNS) and the stage's emulation of the management
//! API, reached through a relay that can make a socket look gone or refuse
//! its frames. It drives every path of the function through its crate's
//! `handle`, with the events AWS would send, real clients on real sockets
//! wherever a post must arrive, and then compares the IAM actions the
//! function's requests needed (`App.requests.actions()`, named by
//! `sockhop::metrics::iam_actions`) with what its role grants, both ways:
//! a grant no path needs fails, and so does a need no grant covers.
//!
//! How a grant's resource qualifies its action, as `iam_actions` names needs:
//! `!GetAtt Table.Arn` → `dynamodb:X`; `!Sub "${Table.Arn}/index/sweep"` →
//! `dynamodb:X index/sweep`; `…/${WebSocketApi}/${StageNameParameter}/POST/@connections/*`
//! → `execute-api:ManageConnections POST`; anything else → the action alone
//! (tests/tests/template.rs checks every grant's scope).
//!
//! `SOCKHOP_TEMPLATE` names another template to check (for trying mutations).

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures::StreamExt;
use serde_json::{json, Value};
use serde_yaml::Value as Yaml;
use sockhop::clock::Timestamp;
use sockhop::App;
use sockhop_tests::{
    now, root, sdk_config, sign, sqs_endpoint, Client, TestStage, TEST_API_KEY, TEST_SECRET, WAIT,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// What the schedules of these tests target and run as (moto checks neither).
const PUBLISH_FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:grants-publish";
const SCHEDULER_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/grants-scheduler";

// ====================================================================== the template

/// `template.yaml`, or the file `SOCKHOP_TEMPLATE` names.
fn template() -> Yaml {
    let path = std::env::var_os("SOCKHOP_TEMPLATE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root().join("template.yaml"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn function<'a>(t: &'a Yaml, id: &str) -> &'a Yaml {
    t.get("Resources")
        .and_then(|r| r.get(id))
        .unwrap_or_else(|| panic!("template.yaml has no {id}"))
}

/// `!Sub "..."` / `!Sub ["...", {...}]` / `Fn::Sub: ...` → the format string.
fn sub_string(v: &Yaml) -> Option<String> {
    let arg = match v {
        Yaml::Tagged(tagged) if tagged.tag.to_string().trim_start_matches('!') == "Sub" => {
            &tagged.value
        }
        Yaml::Mapping(m) if m.len() == 1 => m.get("Fn::Sub")?,
        _ => return None,
    };
    match arg {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Sequence(seq) => seq.first()?.as_str().map(str::to_owned),
        _ => None,
    }
}

fn one_or_many(v: Option<&Yaml>) -> Vec<Yaml> {
    match v {
        Some(Yaml::Sequence(seq)) => seq.clone(),
        Some(one) => vec![one.clone()],
        None => Vec::new(),
    }
}

/// The action a grant of `action` on `resource` allows, qualified like
/// `sockhop::metrics::iam_actions` names a need.
fn qualified(action: &str, resource: &Yaml) -> String {
    let Some(arn) = sub_string(resource) else {
        return action.to_owned();
    };
    if let Some((_, index)) = arn.split_once(".Arn}/index/") {
        return format!("{action} index/{index}");
    }
    if let Some((_, route)) = arn.split_once("${WebSocketApi}/") {
        // ${StageNameParameter}/<METHOD>/@connections/*
        let method = route.split('/').nth(1).unwrap_or("*");
        return format!("{action} {method}");
    }
    action.to_owned()
}

/// Every action `function`'s role grants, qualified by its resources.
fn granted(t: &Yaml, id: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let policies = function(t, id)
        .get("Properties")
        .and_then(|p| p.get("Policies"));
    for policy in one_or_many(policies) {
        let statements = one_or_many(policy.get("Statement"));
        assert!(
            !statements.is_empty(),
            "{id}: a policy without inline statements (write them out)"
        );
        for statement in statements {
            let resources = one_or_many(statement.get("Resource"));
            for action in one_or_many(statement.get("Action")) {
                let action = action.as_str().expect("actions are strings");
                for resource in &resources {
                    out.insert(qualified(action, resource));
                }
            }
        }
    }
    out
}

/// The names of the environment variables the template gives `function`:
/// the Globals' and its own.
fn template_env(t: &Yaml, id: &str) -> BTreeSet<String> {
    let variables = |v: Option<&Yaml>| -> Vec<String> {
        v.and_then(|e| e.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(Yaml::as_mapping)
            .map(|m| {
                m.keys()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut names: BTreeSet<String> = variables(t.get("Globals").and_then(|g| g.get("Function")))
        .into_iter()
        .collect();
    names.extend(variables(function(t, id).get("Properties")));
    names
}

// ====================================================================== what the paths needed

/// The IAM actions a function's paths needed, each with the first path that
/// needed it.
struct Needs {
    app: &'static App,
    seen: BTreeSet<String>,
    first: BTreeMap<String, String>,
}

impl Needs {
    fn new(app: &'static App) -> Self {
        Needs {
            app,
            seen: app.requests.actions(),
            first: BTreeMap::new(),
        }
    }

    /// Attributes every action needed since the last path to `path`.
    fn after(&mut self, path: &str) {
        let now = self.app.requests.actions();
        for action in now.difference(&self.seen) {
            self.first.insert(action.clone(), path.to_owned());
        }
        self.seen = now;
    }

    /// The function's role grants exactly what its paths needed.
    fn assert_granted_exactly(mut self, id: &str) {
        self.after("work after the last named path");
        let granted = granted(&template(), id);
        let needed: BTreeSet<String> = self.first.keys().cloned().collect();
        println!("{id} needs {needed:?}");
        let mut problems = Vec::new();
        for (action, path) in &self.first {
            if !granted.contains(action) {
                problems.push(format!(
                    "{id}: {action} is needed by \"{path}\" but not granted"
                ));
            }
        }
        for action in granted.difference(&needed) {
            problems.push(format!(
                "{id}: {action} is granted but no exercised path needs it"
            ));
        }
        assert!(
            problems.is_empty(),
            "{id}'s role in template.yaml is not least privilege:\n  {}\n(needed: {needed:?})",
            problems.join("\n  ")
        );
    }
}

// ====================================================================== the management API, with faults

/// What the relay answers for a connection instead of relaying.
#[derive(Default)]
struct Faults {
    /// The socket is gone: every call answers 410.
    vanished: HashSet<String>,
    /// Every frame is refused (413); GetConnection and DeleteConnection are relayed.
    refusing: HashSet<String>,
    /// The next posts' answers, in order (`true`: Gone), then relayed.
    posts: HashMap<String, VecDeque<bool>>,
}

/// Stands between the functions and the stage's management API: relays
/// every call, unless a fault is set for its connection.
struct Relay {
    stage: String,
    http: reqwest::Client,
    faults: Mutex<Faults>,
}

impl Relay {
    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn vanish(&self, client: &Client) {
        self.faults().vanished.insert(client.connection_id.clone());
    }

    fn refuse(&self, client: &Client) {
        self.faults().refusing.insert(client.connection_id.clone());
    }

    /// The client's next posts answer Gone where `gone` says so.
    fn script_posts(&self, client: &Client, gone: &[bool]) {
        self.faults()
            .posts
            .insert(client.connection_id.clone(), gone.iter().copied().collect());
    }

    /// The answer a fault gives, if one applies.
    fn fault(&self, method: &Method, id: &str) -> Option<Response> {
        let mut faults = self.faults();
        let gone = || gateway_error(StatusCode::GONE, "GoneException", "the connection is gone");
        if faults.vanished.contains(id) {
            return Some(gone());
        }
        if method != Method::POST {
            return None;
        }
        if faults.refusing.contains(id) {
            return Some(gateway_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLargeException",
                "the frame was refused",
            ));
        }
        match faults.posts.get_mut(id).and_then(VecDeque::pop_front) {
            Some(true) => Some(gone()),
            _ => None,
        }
    }
}

fn gateway_error(status: StatusCode, kind: &'static str, message: &str) -> Response {
    (
        status,
        [
            ("x-amzn-errortype", kind),
            ("content-type", "application/json"),
        ],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

async fn relay_call(
    State(relay): State<Arc<Relay>>,
    UrlPath(id): UrlPath<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(answer) = relay.fault(&method, &id) {
        return answer;
    }
    let mut request = relay
        .http
        .request(method, format!("{}{}", relay.stage, uri.path()))
        .body(body);
    for (name, value) in &headers {
        if name != axum::http::header::HOST && name != axum::http::header::CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            let kind = answer.headers().get("x-amzn-errortype").cloned();
            let body = answer.bytes().await.unwrap_or_default();
            let mut response = (status, body).into_response();
            if let Some(kind) = kind {
                response.headers_mut().insert("x-amzn-errortype", kind);
            }
            response
        }
        Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}

// ====================================================================== the installation

/// A stage, moto's resources and the relay: what one function runs against.
struct World {
    stage: TestStage,
    relay: Arc<Relay>,
    management_endpoint: String,
    /// Signs as the stage's own clients, which its management API requires
    /// (DynamoDB Local and moto take any key).
    sdk: aws_config::SdkConfig,
    sqs: aws_sdk_sqs::Client,
    scheduler: aws_sdk_scheduler::Client,
    queue_url: String,
    schedule_group: String,
    bus: String,
    topic_arn: String,
    /// The two generated server API keys' secrets (template.yaml's
    /// HttpApiSecretKey1/2), in moto, holding the test's API key.
    secret_arns: Vec<String>,
}

impl World {
    async fn start() -> World {
        // The stage's own sweeper stays out of the way: the sweeper under
        // test finds what is due.
        let stage = TestStage::start_with(|o| o.sweep_interval = Duration::from_secs(3600)).await;
        let moto = sdk_config().await;
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&moto)
                .endpoint_url(sqs_endpoint())
                .build(),
        );
        let scheduler = aws_sdk_scheduler::Client::from_conf(
            aws_sdk_scheduler::config::Builder::from(&moto)
                .endpoint_url(sqs_endpoint())
                .build(),
        );
        let unique = ulid::Ulid::new().to_string().to_lowercase();
        // Shaped like template.yaml's DeliveryQueue.
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("grants-{unique}.fifo"))
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
            .send()
            .await
            .expect("queue")
            .queue_url
            .expect("queue url");
        let schedule_group = format!("grants-{unique}");
        scheduler
            .create_schedule_group()
            .name(&schedule_group)
            .send()
            .await
            .expect("schedule group");
        let bridge = aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::config::Builder::from(&moto)
                .endpoint_url(sqs_endpoint())
                .build(),
        );
        let bus = format!("grants-{unique}");
        bridge
            .create_event_bus()
            .name(&bus)
            .send()
            .await
            .expect("bus");
        let sns = aws_sdk_sns::Client::from_conf(
            aws_sdk_sns::config::Builder::from(&moto)
                .endpoint_url(sqs_endpoint())
                .build(),
        );
        let topic_arn = sns
            .create_topic()
            .name(format!("grants-{unique}"))
            .send()
            .await
            .expect("topic")
            .topic_arn
            .expect("topic arn");

        let secrets = aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::config::Builder::from(&moto)
                .endpoint_url(sqs_endpoint())
                .build(),
        );
        let mut secret_arns = Vec::new();
        for (n, value) in [(1, TEST_API_KEY), (2, "TEST-ONLY-second-generated-key")] {
            let arn = secrets
                .create_secret()
                .name(format!("grants-{unique}/http-api-secret-key-{n}"))
                .secret_string(value)
                .send()
                .await
                .expect("secret")
                .arn
                .expect("secret arn");
            secret_arns.push(arn);
        }

        let relay = Arc::new(Relay {
            stage: stage.stage.http_url(),
            http: reqwest::Client::new(),
            faults: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("relay port");
        let management_endpoint = format!(
            "http://{}/{}",
            listener.local_addr().expect("address"),
            sockhop_local::STAGE_NAME
        );
        let router = axum::Router::new()
            .route(
                &format!("/{}/@connections/{{id}}", sockhop_local::STAGE_NAME),
                axum::routing::any(relay_call),
            )
            .with_state(relay.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });

        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                stage.stage.access_key_id.clone(),
                "local",
                None,
                None,
                "grants",
            ))
            .load()
            .await;
        World {
            stage,
            relay,
            management_endpoint,
            sdk,
            sqs,
            scheduler,
            queue_url,
            schedule_group,
            bus,
            topic_arn,
            secret_arns,
        }
    }

    /// This installation's value of a variable the template sets.
    fn value_of(&self, name: &str) -> String {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        match name {
            "TABLE_NAME" => self.stage.stage.table_name.clone(),
            "SIGNING_KEY_1_METHOD" => "HS256".into(),
            "SIGNING_KEY_1_ENCODED" => b64(TEST_SECRET),
            // The stage's: connection secrets made at its connect check out here.
            "CONNECTION_SECRET_KEY" => b64(b"TEST-ONLY connection secret key"),
            // The generated keys (no explicit ones: the test's key is a secret).
            "HTTP_API_KEY_SECRET_ARNS" => self.secret_arns.join(","),
            "SOCKHOP_STACK_NAME" => "grants".into(),
            // Parameters this installation leaves empty.
            "SIGNING_KEY_1_ID"
            | "SIGNING_KEY_2_METHOD"
            | "SIGNING_KEY_2_ENCODED"
            | "SIGNING_KEY_2_ID"
            | "TOKEN_AUDIENCE"
            | "TOKEN_ISSUER"
            | "HTTP_API_KEY_1"
            | "HTTP_API_KEY_2" => String::new(),
            "WEBSOCKET_MANAGEMENT_ENDPOINT" => self.management_endpoint.clone(),
            "DELIVERY_QUEUE_URL" => self.queue_url.clone(),
            "SCHEDULE_GROUP_NAME" => self.schedule_group.clone(),
            "SCHEDULE_ROLE_ARN" => SCHEDULER_ROLE_ARN.into(),
            "SCHEDULE_TARGET_ARN" => PUBLISH_FUNCTION_ARN.into(),
            // Backend events on, to both sinks.
            "EVENTS_BUS_NAME" => self.bus.clone(),
            "EVENTS_TOPIC_ARN" => self.topic_arn.clone(),
            // The stack parameter's default.
            "FAN_OUT_LANE_SIZE" => "250".into(),
            "RECOVERY_WINDOW_SECONDS" => "120".into(),
            other => panic!(
                "template.yaml gives the functions {other}, which tests/tests/grants.rs has \
                 no value for: add one to World::value_of"
            ),
        }
    }

    /// The process of function `id` as the template configures it: the
    /// variables the template gives it, and only those (plus the endpoints of
    /// the local services).
    async fn app(&self, id: &str) -> &'static App {
        let mut env: HashMap<String, String> = template_env(&template(), id)
            .into_iter()
            .map(|name| {
                let value = self.value_of(&name);
                (name, value)
            })
            .collect();
        env.insert(
            "DYNAMODB_ENDPOINT".into(),
            self.stage.stage.dynamodb_endpoint.clone(),
        );
        for endpoint in [
            "SQS_ENDPOINT",
            "SCHEDULER_ENDPOINT",
            "EVENTS_ENDPOINT",
            "SECRETS_ENDPOINT",
        ] {
            env.insert(endpoint.into(), sqs_endpoint());
        }
        let config =
            sockhop::app::Config::from_env(|name| env.get(name).cloned()).expect("configuration");
        Box::leak(Box::new(App::with_sdk_config(config, &self.sdk)))
    }

    /// The next batch the delivery queue hands out (up to 10, as the event
    /// source mapping's BatchSize), as Lambda's event; removed from the queue.
    async fn next_batch(&self) -> Option<SqsEvent> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive");
        if out.messages().is_empty() {
            return None;
        }
        let mut records = Vec::new();
        for m in out.messages() {
            let attributes: HashMap<String, String> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            records.push(json!({"messageId": m.message_id(), "body": m.body(),
                "attributes": attributes, "eventSource": "aws:sqs"}));
            self.sqs
                .delete_message()
                .queue_url(&self.queue_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
        Some(serde_json::from_value(json!({ "Records": records })).expect("SQS event"))
    }

    /// Everything queued since the last look, as the queue carries it.
    async fn queued(&self) -> Vec<Value> {
        let mut bodies = Vec::new();
        while let Some(batch) = self.next_batch().await {
            for record in batch.records {
                let body = record.body.unwrap_or_default();
                bodies.push(serde_json::from_str(&body).expect("queued JSON"));
            }
        }
        bodies
    }

    /// Hands everything queued to the deliver function, batch by batch.
    async fn deliver_all(&self, deliver: &App) {
        while let Some(batch) = self.next_batch().await {
            let answer = sockhop_deliver::handle(deliver, batch)
                .await
                .expect("handled");
            assert!(
                answer.batch_item_failures.is_empty(),
                "deliveries failed: {:?}",
                answer.batch_item_failures
            );
        }
    }

    /// The schedules of this installation's group.
    async fn schedules(&self) -> Vec<String> {
        self.scheduler
            .list_schedules()
            .group_name(&self.schedule_group)
            .send()
            .await
            .expect("list schedules")
            .schedules()
            .iter()
            .filter_map(|s| s.name().map(str::to_owned))
            .collect()
    }

    /// The input a schedule invokes the publish function with.
    async fn schedule_input(&self, name: &str) -> Value {
        let schedule = self
            .scheduler
            .get_schedule()
            .group_name(&self.schedule_group)
            .name(name)
            .send()
            .await
            .expect("schedule");
        let input = schedule.target().and_then(|t| t.input()).expect("input");
        serde_json::from_str(input).expect("JSON input")
    }

    /// An item of the stage's table, as DynamoDB holds it.
    async fn item(&self, pk: &str, sk: &str) -> Option<HashMap<String, AttributeValue>> {
        self.stage
            .dynamodb()
            .await
            .get_item()
            .table_name(&self.stage.stage.table_name)
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("get item")
            .item
    }

    async fn connection(&self, client: &Client) -> Option<sockhop::store::ConnectionItem> {
        self.stage
            .stage
            .app
            .store
            .get_connection(&client.connection_id, now())
            .await
            .expect("read")
    }

    async fn subscribed(&self, channel: &str, client: &Client) -> bool {
        self.stage
            .stage
            .app
            .store
            .get_subscription(channel, &client.connection_id, now())
            .await
            .expect("read")
            .is_some()
    }

    /// Changes a client's connection item (as time passing would).
    async fn age(&self, client: &Client, change: impl FnOnce(&mut sockhop::store::ConnectionItem)) {
        let mut item = self.connection(client).await.expect("connected");
        change(&mut item);
        self.stage
            .stage
            .app
            .store
            .put_connection(&item)
            .await
            .expect("write");
    }

    /// Whether a presence change is still owed on `channel`.
    async fn owed_changes(&self, channel: &str) -> usize {
        self.stage
            .items_with_pk_prefix(&format!("CHAN#{channel}"))
            .await
            .iter()
            .filter(|i| i["pk"] == format!("CHAN#{channel}"))
            .filter(|i| i["sk"].as_str().is_some_and(|sk| sk.starts_with("OWED#")))
            .count()
    }
}

// ====================================================================== events AWS sends

/// An API Gateway WebSocket event of `route`, with `extra` fields (and
/// `context` fields in its request context).
fn websocket_event(
    route: &str,
    event_type: &str,
    connection_id: &str,
    context: Value,
    extra: Value,
) -> ApiGatewayWebsocketProxyRequest {
    let now_ms = Timestamp::now().millis();
    let mut event = json!({
        "requestContext": {
            "routeKey": route, "eventType": event_type, "messageDirection": "IN",
            "stage": sockhop_local::STAGE_NAME, "connectedAt": now_ms, "requestTimeEpoch": now_ms,
            "requestId": ulid::Ulid::new().to_string(), "extendedRequestId": ulid::Ulid::new().to_string(),
            "messageId": ulid::Ulid::new().to_string(), "identity": {"sourceIp": "127.0.0.1"},
            "domainName": "grants.invalid", "connectionId": connection_id, "apiId": "grants",
        },
        "isBase64Encoded": false,
    });
    for (k, v) in context.as_object().expect("object") {
        event["requestContext"][k] = v.clone();
    }
    for (k, v) in extra.as_object().expect("object") {
        event[k] = v.clone();
    }
    serde_json::from_value(event).expect("API Gateway event")
}

fn connect_event(connection_id: &str, token: Option<&str>) -> ApiGatewayWebsocketProxyRequest {
    let mut extra = json!({"headers": {"user-agent": "grants-test"}});
    if let Some(token) = token {
        extra["queryStringParameters"] = json!({ "token": token });
        extra["multiValueQueryStringParameters"] = json!({ "token": [token] });
    }
    websocket_event("$connect", "CONNECT", connection_id, json!({}), extra)
}

fn frame_event(connection_id: &str, frame: &Value) -> ApiGatewayWebsocketProxyRequest {
    websocket_event(
        "$default",
        "MESSAGE",
        connection_id,
        json!({}),
        json!({"body": frame.to_string()}),
    )
}

fn disconnect_event(connection_id: &str) -> ApiGatewayWebsocketProxyRequest {
    websocket_event(
        "$disconnect",
        "DISCONNECT",
        connection_id,
        json!({"disconnectStatusCode": 1001, "disconnectReason": "Going away"}),
        json!({}),
    )
}

/// A stream image: an item in the stream's JSON attribute form.
fn image(item: &HashMap<String, AttributeValue>) -> Value {
    fn attribute(v: &AttributeValue) -> Value {
        match v {
            AttributeValue::S(s) => json!({ "S": s }),
            AttributeValue::N(n) => json!({ "N": n }),
            AttributeValue::Bool(b) => json!({ "BOOL": b }),
            AttributeValue::Null(_) => json!({"NULL": true}),
            AttributeValue::Ss(ss) => json!({ "SS": ss }),
            AttributeValue::Ns(ns) => json!({ "NS": ns }),
            AttributeValue::L(l) => json!({"L": l.iter().map(attribute).collect::<Vec<_>>()}),
            AttributeValue::M(m) => json!({"M": image(m)}),
            other => panic!("an attribute type this test does not convert: {other:?}"),
        }
    }
    Value::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), attribute(v)))
            .collect(),
    )
}

/// One record of the table's stream (NEW_AND_OLD_IMAGES), as Lambda hands it
/// over; `by_ttl` marks a removal by DynamoDB's TTL.
fn stream_record(name: &str, old: Option<Value>, new: Option<Value>, by_ttl: bool) -> Value {
    let either = new.as_ref().or(old.as_ref()).expect("an image");
    let keys = json!({"pk": either["pk"], "sk": either["sk"]});
    let mut record = json!({
        "eventID": ulid::Ulid::new().to_string(),
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/grants/stream/1",
        "dynamodb": {
            "Keys": keys,
            "NewImage": new.unwrap_or(json!({})),
            "OldImage": old.unwrap_or(json!({})),
            "SequenceNumber": Timestamp::now().millis().to_string(),
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    });
    if by_ttl {
        record["userIdentity"] =
            json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
    }
    record
}

fn stream_event(records: Vec<Value>) -> aws_lambda_events::dynamodb::Event {
    serde_json::from_value(json!({ "Records": records })).expect("stream event")
}

// ====================================================================== helpers

/// A connection id no socket has (API Gateway's are 16 characters; any short id works).
fn fresh_connection_id() -> String {
    format!("c-{}", ulid::Ulid::new())
}

/// `at(…)` `secs` from now, in UTC.
fn at_in(secs: i64) -> String {
    let due = jiff::Timestamp::from_second(now() + secs)
        .expect("in range")
        .to_zoned(jiff::tz::TimeZone::UTC)
        .datetime();
    format!("at({})", due.strftime("%Y-%m-%dT%H:%M:%S"))
}

/// Waits until the server closes the client's socket.
async fn expect_closed(client: &mut Client) {
    loop {
        match tokio::time::timeout(WAIT, client.socket.next()).await {
            Err(_) => panic!("the socket of {} was not closed", client.connection_id),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// Frames until `enough` holds for those read (each arrives within [`WAIT`]).
async fn read_until(client: &mut Client, enough: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut frames = Vec::new();
    while !enough(&frames) {
        frames.push(client.next().await);
    }
    frames
}

/// The queued membership changes on `channel`: `welcome` names the joiner.
fn memberships<'a>(queued: &'a [Value], channel: &str) -> Vec<&'a Value> {
    queued
        .iter()
        .filter(|q| q["channel"] == channel && !q["membership"].is_null())
        .map(|q| &q["membership"])
        .collect()
}

/// A user of the chat, the presence room, the lobby (storage) and the news,
/// with every grant a path below needs.
fn member_claims(uid: &str) -> Value {
    let before = now() + 7200;
    json!({"scope": "connect", "uid": uid, "umd": {"name": uid}, "channels": {
        "chat": {"subscribe": true, "historyStart": 0, "messages": {
            "chat": {"publish": true, "echo": true, "store": 3600, "react": ["👍"],
                     "emitPubSubEvent": true, "scheduleBefore": before},
            "fleeting": {"publish": true}}},
        "presence.room": {"subscribe": true, "getInfo": true},
        "lobby": {"subscribe": true, "storage": {"*": {"observe": true, "get": true, "set": true,
            "emitPubSubEvent": true, "scheduleBefore": before}}},
        "news": {"subscribe": true}
    }})
}

async fn member(world: &World, uid: &str) -> Client {
    world.stage.connect(member_claims(uid)).await
}

/// Subscribes over the socket (the stage's own functions answer).
async fn join(client: &mut Client, channel: &str) {
    client
        .send(json!({"event": "hotsock.subscribe", "channel": channel}))
        .await;
    let subscribed = client.expect_event("hotsock.subscribed").await;
    assert_eq!(subscribed["channel"], channel, "{subscribed}");
}

/// A stored `chat` message on the chat channel, published and delivered by
/// the stage; its id.
async fn stored_chat_message(world: &World, listener: &mut Client) -> String {
    let (status, _) = world
        .stage
        .server_publish(
            json!({"channel": "chat", "event": "chat", "data": {"text": "hi"}, "store": 3600}),
        )
        .await;
    assert_eq!(status, 202);
    let message = listener.expect_event("chat").await;
    world.stage.deliveries_settled().await;
    message["id"].as_str().expect("id").to_owned()
}

/// The chat's subscribers for a fan-out: `jim` and `pam` read, `ghost`'s
/// socket is gone (its presence subscription leaves with it), `refused`'s
/// socket refuses frames.
struct Chat {
    jim: Client,
    pam: Client,
    ghost: Client,
    refused: Client,
    message_id: String,
}

async fn chat(world: &World) -> Chat {
    let mut jim = member(world, "jim").await;
    let mut pam = member(world, "pam").await;
    let mut ghost = member(world, "ghost").await;
    let mut refused = member(world, "refused").await;
    for client in [&mut jim, &mut pam, &mut ghost, &mut refused] {
        join(client, "chat").await;
    }
    join(&mut ghost, "presence.room").await;
    let message_id = stored_chat_message(world, &mut pam).await;
    world.relay.vanish(&ghost);
    world.relay.refuse(&refused);
    Chat {
        jim,
        pam,
        ghost,
        refused,
        message_id,
    }
}

impl Chat {
    /// The fan-out reached everyone: jim and pam read `event`, the ghost was
    /// cleaned up (its presence leave queued), the refusing socket closed.
    async fn reached_everyone(&mut self, world: &World, event: &str) {
        self.pam.expect_event(event).await;
        self.jim.expect_event(event).await;
        expect_closed(&mut self.refused).await;
        assert!(
            world.connection(&self.ghost).await.is_none(),
            "the gone socket's connection was cleaned up"
        );
        let queued = world.queued().await;
        assert_eq!(
            memberships(&queued, "presence.room").len(),
            1,
            "the gone member's leave is queued: {queued:?}"
        );
        assert_eq!(world.owed_changes("presence.room").await, 0);
    }
}

// ====================================================================== connect

#[tokio::test]
async fn connect_function_is_granted_exactly_what_its_paths_need() {
    let world = World::start().await;
    let app = world.app("ConnectFunction").await;
    let mut needs = Needs::new(app);
    let connect = |token: Option<String>| async move {
        let answer =
            sockhop_connect::handle(app, connect_event(&fresh_connection_id(), token.as_deref()))
                .await
                .expect("handled");
        let body = match answer.body {
            Some(aws_lambda_events::encodings::Body::Text(text)) => {
                serde_json::from_str(&text).expect("JSON")
            }
            _ => Value::Null,
        };
        (answer.status_code, body["error"]["code"].clone())
    };

    let (status, _) = connect(Some(sign(json!({"scope": "connect", "uid": "jim"})))).await;
    assert_eq!(status, 200);
    needs.after("a good token");

    let once =
        sign(json!({"scope": "connect", "singleUse": true, "jti": ulid::Ulid::new().to_string()}));
    assert_eq!(connect(Some(once.clone())).await.0, 200);
    assert_eq!(
        connect(Some(once)).await,
        (401, json!("TOKEN_ALREADY_USED"))
    );
    needs.after("a single-use token, used twice");

    let refused = [
        (None, 401, "TOKEN_MISSING"),
        (
            Some(sockhop::token::sign_hs256(
                b"another key",
                &json!({"scope": "connect", "exp": now() + 60}),
            )),
            401,
            "TOKEN_BAD_SIGNATURE",
        ),
        (
            Some(sign(json!({"scope": "connect", "exp": now() - 60}))),
            401,
            "TOKEN_EXPIRED",
        ),
        (
            Some(sign(json!({"scope": "subscribe"}))),
            403,
            "TOKEN_SCOPE_NOT_CONNECT",
        ),
        (
            Some(sign(json!({"scope": "connect", "connectionId": "c"}))),
            403,
            "TOKEN_CONNECTION_ID_NOT_ALLOWED",
        ),
    ];
    for (token, status, code) in refused {
        assert_eq!(connect(token).await, (status, json!(code)));
    }
    needs.after("refused tokens");

    needs.assert_granted_exactly("ConnectFunction");
}

// ====================================================================== disconnect

#[tokio::test]
async fn disconnect_function_is_granted_exactly_what_its_paths_need() {
    let world = World::start().await;
    let app = world.app("DisconnectFunction").await;
    let mut needs = Needs::new(app);
    let mut jim = member(&world, "jim").await;
    let mut pam = member(&world, "pam").await;
    join(&mut jim, "presence.room").await;
    join(&mut pam, "presence.room").await;
    join(&mut jim, "news").await;
    // A subscription past its TTL that DynamoDB has not removed yet.
    let stale = sockhop::store::SubscriptionItem {
        channel: "old".into(),
        connection_id: jim.connection_id.clone(),
        uid: Some("jim".into()),
        umd: None,
        permissions: "{}".into(),
        alias: None,
        subscribed_at_ms: (now() - 600) * 1000,
        umd_at_ms: 0,
        pending: false,
        recoverable: false,
        counted: false,
        ttl: now() - 60,
    };
    let stage_store = &world.stage.stage.app.store;
    stage_store
        .subscribe(&stale, now() - 600)
        .await
        .expect("stale subscription");

    let answer = sockhop_disconnect::handle(app, disconnect_event(&jim.connection_id))
        .await
        .expect("handled");
    assert_eq!(answer.status_code, 200);
    assert!(world.connection(&jim).await.is_none());
    for channel in ["presence.room", "news", "old"] {
        assert!(!world.subscribed(channel, &jim).await, "{channel} is left");
    }
    assert_eq!(world.stage.subscriptions_count("news").await, 0);
    assert!(world
        .stage
        .items_with_pk_prefix(&format!("CONN#{}", jim.connection_id))
        .await
        .is_empty());
    let queued = world.queued().await;
    let leaves = memberships(&queued, "presence.room");
    assert_eq!(leaves.len(), 1, "jim's leave is queued: {queued:?}");
    assert!(leaves[0].get("welcome").is_none());
    assert_eq!(world.owed_changes("presence.room").await, 0);
    needs.after("$disconnect of a presence member with a stale subscription");

    // API Gateway's $disconnect for a connection cleaned up before.
    let answer = sockhop_disconnect::handle(app, disconnect_event(&jim.connection_id))
        .await
        .expect("handled");
    assert_eq!(answer.status_code, 200);
    needs.after("$disconnect of a connection already cleaned up");

    needs.assert_granted_exactly("DisconnectFunction");
}

// ====================================================================== default

#[tokio::test]
async fn default_function_is_granted_exactly_what_its_paths_need() {
    let world = World::start().await;
    let app = world.app("DefaultFunction").await;
    let mut needs = Needs::new(app);
    let mut chat = chat(&world).await;
    let jim_id = chat.jim.connection_id.clone();
    let frame = |body: Value| {
        let id = jim_id.clone();
        async move {
            let answer = sockhop_default::handle(app, frame_event(&id, &body))
                .await
                .expect("handled");
            assert_eq!(answer.status_code, 200);
        }
    };
    let jim = &mut chat.jim;

    frame(json!({"event": "hotsock.ping"})).await;
    jim.expect_event("hotsock.pong").await;
    frame(json!({"event": "hotsock.pong"})).await;
    needs.after("ping, pong");

    world.age(jim, |c| c.last_seen = now() - 100).await;
    let before = now();
    frame(json!({"event": "hotsock.heartbeat"})).await;
    assert!(world.connection(jim).await.expect("connected").last_seen >= before);
    needs.after("heartbeat");

    frame(json!({"event": "hotsock.subscribe", "channel": "news"})).await;
    assert_eq!(
        jim.expect_event("hotsock.subscribed").await["channel"],
        "news"
    );
    needs.after("subscribe to a plain channel");

    frame(json!({"event": "hotsock.subscribe", "channel": "presence.room"})).await;
    frame(json!({"event": "hotsock.subscribe", "channel": "lobby"})).await;
    let queued = world.queued().await;
    for channel in ["presence.room", "lobby"] {
        let welcomes = memberships(&queued, channel);
        assert_eq!(welcomes.len(), 1, "{channel}: {queued:?}");
        assert_eq!(welcomes[0]["welcome"], jim_id.as_str());
    }
    needs.after("subscribe to a presence channel and to an observed storage channel");

    let vip = sign(
        json!({"scope": "subscribe", "connectionId": jim_id, "singleUse": true,
        "jti": ulid::Ulid::new().to_string(), "channels": {"vip": {"subscribe": true}}}),
    );
    let subscribe_vip =
        json!({"event": "hotsock.subscribe", "channel": "vip", "data": {"token": vip}});
    frame(subscribe_vip.clone()).await;
    assert_eq!(
        jim.expect_event("hotsock.subscribed").await["channel"],
        "vip"
    );
    frame(json!({"event": "hotsock.unsubscribe", "channel": "vip"})).await;
    jim.expect_event("hotsock.unsubscribed").await;
    frame(subscribe_vip).await;
    jim.expect_error("INVALID_SUBSCRIBE_TOKEN", Some("vip"))
        .await;
    needs.after("subscribe with a single-use subscribe token, used twice");

    let rename = sign(
        json!({"scope": "umd", "connectionId": jim_id, "umd": {"name": "Jim B."},
        "channels": {"presence.room": {"umdUpdate": true}}}),
    );
    frame(json!({"event": "hotsock.umdUpdate", "channel": "presence.room", "data": {"token": rename}}))
        .await;
    let queued = world.queued().await;
    assert_eq!(memberships(&queued, "presence.room").len(), 1, "{queued:?}");
    needs.after("umd update of a presence subscription");

    let everywhere = sign(
        json!({"scope": "umd", "connectionId": jim_id, "umd": {"name": "J"},
        "umdUpdate": true, "umdPropagate": true, "singleUse": true,
        "jti": ulid::Ulid::new().to_string()}),
    );
    frame(json!({"event": "hotsock.umdUpdate", "data": {"token": everywhere}})).await;
    let connection = world.connection(jim).await.expect("connected");
    assert_eq!(connection.umd.as_deref(), Some(r#"{"name":"J"}"#));
    let queued = world.queued().await;
    assert_eq!(memberships(&queued, "presence.room").len(), 1, "{queued:?}");
    needs.after("umd update of the connection, propagated, single-use");

    frame(json!({"event": "hotsock.unsubscribe", "channel": "news"})).await;
    assert_eq!(
        jim.expect_event("hotsock.unsubscribed").await["channel"],
        "news"
    );
    frame(json!({"event": "hotsock.unsubscribe", "channel": "presence.room"})).await;
    let queued = world.queued().await;
    let farewells = memberships(&queued, "presence.room");
    assert_eq!(farewells.len(), 1, "{queued:?}");
    assert_eq!(farewells[0]["farewell"]["connectionId"], jim_id.as_str());
    assert_eq!(world.owed_changes("presence.room").await, 0);
    needs.after("unsubscribe from a plain and from a presence channel");

    frame(json!({"event": "fleeting", "channel": "chat", "data": 1})).await;
    frame(json!({"event": "chat", "channel": "chat", "data": 2, "eagerIdGeneration": true})).await;
    let queued = world.queued().await;
    assert_eq!(queued.len(), 2, "{queued:?}");
    assert!(queued[1]["id"].is_string(), "an eager id: {queued:?}");
    needs.after("publish unstored and stored messages");

    frame(
        json!({"event": "chat", "channel": "chat", "data": 3, "scheduleExpression": at_in(3600)}),
    )
    .await;
    assert_eq!(world.schedules().await.len(), 1);
    needs.after("a scheduled publish");

    frame(json!({"event": "hotsock.channelStorageSet", "channel": "lobby", "key": "k", "data": {"v": 1}}))
        .await;
    let queued = world.queued().await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0]["key"], "k");
    frame(json!({"event": "hotsock.channelStorageSet", "channel": "lobby", "key": "k", "data": {"v": 2},
        "scheduleExpression": at_in(3600)}))
    .await;
    assert_eq!(world.schedules().await.len(), 2);
    frame(json!({"event": "hotsock.channelStorageGet", "channel": "lobby", "key": "k"})).await;
    assert_eq!(
        jim.expect_event("hotsock.channelStorageData").await["key"],
        "k"
    );
    needs.after("storage set, scheduled set and get");

    let reaction = |action: &str| {
        json!({"event": "hotsock.messageReaction", "channel": "chat",
               "data": {"messageId": chat.message_id, "reaction": "👍", "action": action}})
    };
    let (add, remove) = (reaction("add"), reaction("remove"));
    frame(add).await;
    chat.reached_everyone(&world, "hotsock.messageReactionAdded")
        .await;
    needs.after("a reaction (with a backend event) reaching a gone and a refusing socket");
    frame(remove).await;
    chat.pam
        .expect_event("hotsock.messageReactionRemoved")
        .await;
    needs.after("a reaction removed");

    // History and the other reads are the Client HTTP API's, not frames.
    frame(json!({"event": "hotsock.listMessages", "channel": "chat"})).await;
    chat.jim.expect_error("UNKNOWN_COMMAND", Some("chat")).await;
    frame(json!({"event": "chat"})).await;
    chat.jim.expect_error("INVALID_CHANNEL", None).await;
    needs.after("frames refused");

    needs.assert_granted_exactly("DefaultFunction");
}

// ====================================================================== http

#[tokio::test]
async fn http_function_is_granted_exactly_what_its_paths_need() {
    let world = World::start().await;
    let app = world.app("HttpFunction").await;
    let mut needs = Needs::new(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("port");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, sockhop_http::router(app)).await });
    let http = reqwest::Client::new();
    let mut chat = chat(&world).await;
    join(&mut chat.jim, "presence.room").await;
    join(&mut chat.jim, "lobby").await;
    let (id, secret) = (chat.jim.connection_id.clone(), chat.jim.secret.clone());
    let as_caller = |op: &str, secret: &str| {
        let mut url = url::Url::parse(&format!("{base}/connection/{op}")).expect("url");
        url.query_pairs_mut()
            .append_pair("connectionId", &id)
            .append_pair("connectionSecret", secret);
        url
    };
    let call = |op: &str, body: Value| {
        let request = http.post(as_caller(op, &secret)).json(&body);
        async move {
            let answer = request.send().await.expect("answered");
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let server = |method: Method, path: &str, body: Option<Value>| {
        let mut request = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(TEST_API_KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let answer = request.send().await.expect("answered");
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    let (status, _) = call(
        "publishMessage",
        json!({"channel": "chat", "event": "chat", "data": 1}),
    )
    .await;
    assert_eq!(status, 202);
    let (status, reply) = call(
        "publishMessage",
        json!({"channel": "chat", "event": "chat", "data": 2,
        "scheduleExpression": at_in(3600)}),
    )
    .await;
    assert_eq!(status, 202, "{reply}");
    assert!(reply["scheduleArn"].is_string(), "{reply}");
    assert_eq!(world.queued().await.len(), 1);
    needs.after("publishMessage, immediate and scheduled");

    let react = |action: &str| {
        json!({"event": "hotsock.messageReaction", "channel": "chat",
               "data": {"messageId": chat.message_id, "reaction": "👍", "action": action}})
    };
    let (add, remove) = (react("add"), react("remove"));
    assert_eq!(call("publishMessage", add).await.0, 202);
    chat.reached_everyone(&world, "hotsock.messageReactionAdded")
        .await;
    needs.after("publishMessage of a reaction reaching a gone and a refusing socket");

    let (status, page) = call(
        "listMessages",
        json!({"channel": "chat", "expandReactions": true}),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["messages"][0]["reactions"]["👍"]["count"], 1, "{page}");
    let (status, listed) = call(
        "listReactions",
        json!({"channel": "chat", "messageId": chat.message_id}),
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    needs.after("listMessages with reactions, listReactions");

    assert_eq!(call("publishMessage", remove).await.0, 202);
    chat.pam
        .expect_event("hotsock.messageReactionRemoved")
        .await;
    needs.after("publishMessage of a reaction removed");

    let (status, _) = call(
        "channelStorageSet",
        json!({"channel": "lobby", "key": "k", "data": {"v": 1}}),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(world.queued().await[0]["key"], "k");
    let (status, reply) = call(
        "channelStorageSet",
        json!({"channel": "lobby", "key": "k", "data": {"v": 2},
        "scheduleExpression": at_in(3600)}),
    )
    .await;
    assert_eq!(status, 202, "{reply}");
    let (status, entry) = call("channelStorageGet", json!({"channel": "lobby", "key": "k"})).await;
    assert_eq!(status, 200, "{entry}");
    let (status, list) = call("channelStorageList", json!({"channel": "lobby"})).await;
    assert_eq!(status, 200, "{list}");
    needs.after("channelStorageSet (immediate, scheduled), Get, List");

    let (status, info) = call("getChannelInfo", json!({"channel": "presence.room"})).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["members"][0]["uid"], "jim", "{info}");
    needs.after("getChannelInfo of a presence channel");

    let token = sign(json!({"scope": "umd", "connectionId": id, "umd": 1,
        "channels": {"presence.room": {"umdUpdate": true}}}));
    let (status, reply) = call(
        "umdUpdate",
        json!({"channel": "presence.room", "token": token}),
    )
    .await;
    assert_eq!((status, reply), (200, json!({})));
    assert_eq!(memberships(&world.queued().await, "presence.room").len(), 1);
    needs.after("umdUpdate on a presence channel");

    let (status, _) = call("noSuchOperation", json!({})).await;
    assert_eq!(status, 404);
    let (status, _) = http
        .post(as_caller("listMessages", "wrong"))
        .json(&json!({"channel": "chat"}))
        .send()
        .await
        .map(|a| (a.status().as_u16(), ()))
        .expect("answered");
    assert_eq!(status, 403);
    needs.after("an unknown operation, a wrong secret");

    let (status, reply) = server(
        Method::POST,
        "/publish",
        Some(json!({"channel": "news", "event": "e",
        "data": 1, "store": 60, "eagerIdGeneration": true, "emitPubSubEvent": true})),
    )
    .await;
    assert_eq!(status, 202, "{reply}");
    assert!(reply["id"].is_string());
    let (status, reply) = server(
        Method::POST,
        "/publish",
        Some(json!({"channel": "news", "event": "e",
        "scheduleExpression": at_in(3600)})),
    )
    .await;
    assert_eq!(status, 202, "{reply}");
    let (status, _) = server(
        Method::POST,
        "/publish",
        Some(json!({"channel": "lobby",
        "event": "hotsock.channelStorageSet", "key": "k", "data": 3, "emitPubSubEvent": true})),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(world.queued().await.len(), 2);
    let (status, reply) = server(
        Method::POST,
        "/publish",
        Some(json!({"channel": "chat",
        "event": "hotsock.messageReaction", "uid": "backend", "emitPubSubEvent": true,
        "data": {"messageId": chat.message_id, "reaction": "👍", "action": "add"}})),
    )
    .await;
    assert_eq!(status, 202, "{reply}");
    chat.pam.expect_event("hotsock.messageReactionAdded").await;
    needs.after("POST /publish: a message, a scheduled one, a storage write, a reaction");

    let (status, info) = server(Method::GET, "/channels/presence.room", None).await;
    assert_eq!(status, 200, "{info}");
    let (status, items) = server(Method::GET, "/channels/lobby/storage?keys=k", None).await;
    assert_eq!(status, 200, "{items}");
    let (status, _) = http
        .get(format!("{base}/channels/lobby"))
        .send()
        .await
        .map(|a| (a.status().as_u16(), ()))
        .expect("answered");
    assert_eq!(status, 401);
    needs.after("GET /channels/{name} and /channels/{name}/storage, without a key");

    let once = sign(json!({"scope": "connect", "singleUse": true, "jti": "console-grants"}));
    let (status, reply) = server(
        Method::POST,
        "/console/explain",
        Some(json!({"token": once, "channel": "chat", "event": "chat"})),
    )
    .await;
    assert_eq!(
        (status, &reply["token"]["ok"]),
        (200, &json!(true)),
        "{reply}"
    );
    let (status, _) = server(Method::GET, "/console", None).await;
    assert_eq!(status, 200);
    needs.after("the web console: its page, and explaining a single-use token");

    needs.assert_granted_exactly("HttpFunction");
}

// ====================================================================== publish

#[tokio::test]
async fn publish_function_is_granted_exactly_what_its_paths_need() {
    let world = World::start().await;
    let app = world.app("PublishFunction").await;
    let mut needs = Needs::new(app);
    let mut chat = chat(&world).await;
    let invoke = |payload: Value| sockhop_publish::handle(app, payload);

    let reply = invoke(
        json!({"channel": "news", "event": "e", "data": 1, "store": 60,
        "eagerIdGeneration": true, "deduplicationId": "d-1", "emitPubSubEvent": true}),
    )
    .await
    .expect("published");
    assert!(reply["id"].is_string(), "{reply}");
    assert_eq!(world.queued().await.len(), 1);
    needs.after("a server publish");

    let reply = invoke(json!({"channel": "news", "event": "e", "data": 2,
        "scheduleExpression": at_in(3600)}))
    .await
    .expect("scheduled");
    assert!(reply["scheduleArn"].is_string(), "{reply}");
    needs.after("a scheduled server publish");

    let schedules = world.schedules().await;
    assert_eq!(schedules.len(), 1);
    let input = world.schedule_input(&schedules[0]).await;
    assert!(input.get("sockhopScheduled").is_some(), "{input}");
    invoke(input).await.expect("published when due");
    assert_eq!(world.queued().await[0]["data"], 2);
    needs.after("a schedule falling due ({\"sockhopScheduled\": …})");

    invoke(
        json!({"channel": "lobby", "event": "hotsock.channelStorageSet", "key": "k",
        "data": {"v": 1}, "emitPubSubEvent": true}),
    )
    .await
    .expect("queued");
    assert_eq!(world.queued().await[0]["key"], "k");
    let reply = invoke(
        json!({"channel": "lobby", "event": "hotsock.channelStorageSet", "key": "k",
        "data": {"v": 2}, "scheduleExpression": at_in(3600)}),
    )
    .await
    .expect("scheduled");
    assert!(reply["scheduleArn"].is_string(), "{reply}");
    needs.after("a storage write, immediate and scheduled");

    let react = |action: &str| {
        json!({"channel": "chat", "event": "hotsock.messageReaction", "uid": "backend",
            "emitPubSubEvent": true,
            "data": {"messageId": chat.message_id, "reaction": "👍", "action": action}})
    };
    let (add, remove) = (react("add"), react("remove"));
    invoke(add).await.expect("reacted");
    chat.reached_everyone(&world, "hotsock.messageReactionAdded")
        .await;
    needs.after("a reaction reaching a gone and a refusing socket");
    invoke(remove).await.expect("reaction removed");
    chat.pam
        .expect_event("hotsock.messageReactionRemoved")
        .await;
    needs.after("a reaction removed");

    let refused = invoke(
        json!({"channel": "chat", "event": "hotsock.messageReaction", "uid": "b",
        "data": {"messageId": ulid::Ulid::new().to_string(), "reaction": "👍", "action": "add"}}),
    )
    .await;
    assert!(
        refused.is_err_and(|e| e.to_string().starts_with("MESSAGE_NOT_FOUND")),
        "a reaction on no message"
    );
    assert!(invoke(json!({"channel": "", "event": "e"})).await.is_err());
    needs.after("refused payloads");

    needs.assert_granted_exactly("PublishFunction");
}

// ====================================================================== deliver

#[tokio::test]
async fn deliver_function_is_granted_exactly_what_its_paths_need() {
    let world = World::start().await;
    let app = world.app("DeliverFunction").await;
    // What publishes and subscribes here: the queue's content comes from the
    // code that writes it.
    let clients = world.app("DefaultFunction").await;
    let mut needs = Needs::new(app);
    let frame = |client: &Client, body: Value| {
        let id = client.connection_id.clone();
        async move {
            sockhop_default::handle(clients, frame_event(&id, &body))
                .await
                .expect("handled");
        }
    };
    let mut jim = member(&world, "jim").await;
    let mut pam = member(&world, "pam").await;
    let mut ghost = member(&world, "ghost").await;
    let mut refused = member(&world, "refused").await;

    frame(
        &jim,
        json!({"event": "hotsock.channelStorageSet", "channel": "lobby", "key": "k", "data": 1}),
    )
    .await;
    world.deliver_all(app).await;
    needs.after("a storage write nobody observes yet");

    for client in [&jim, &pam, &ghost] {
        frame(
            client,
            json!({"event": "hotsock.subscribe", "channel": "presence.room"}),
        )
        .await;
    }
    frame(
        &jim,
        json!({"event": "hotsock.subscribe", "channel": "lobby"}),
    )
    .await;
    for client in [&mut jim, &mut pam, &mut ghost, &mut refused] {
        let id = client.connection_id.clone();
        frame(
            client,
            json!({"event": "hotsock.subscribe", "channel": "chat"}),
        )
        .await;
        let subscribed = client.expect_event("hotsock.subscribed").await;
        assert_eq!(subscribed["channel"], "chat", "{id}: {subscribed}");
    }
    world.deliver_all(app).await;
    // Channels are delivered side by side: the two welcomes come in either order.
    let welcomed =
        |f: &Value| f["event"] == "hotsock.subscribed" && f["channel"] == "presence.room";
    let caught_up = |f: &Value| f["event"] == "hotsock.channelStorageUpdated";
    let frames = read_until(&mut jim, |read| {
        read.iter().any(welcomed) && read.iter().any(caught_up)
    })
    .await;
    let welcome = frames.iter().find(|f| welcomed(f)).expect("welcome");
    assert_eq!(
        welcome["data"]["members"].as_array().map(Vec::len),
        Some(3),
        "{welcome}"
    );
    let catch_up = frames.iter().find(|f| caught_up(f)).expect("catch-up");
    assert_eq!(catch_up["data"], 1, "{catch_up}");
    assert!(world.item("CHAN#presence.room", "MEMBERS").await.is_some());
    needs.after("welcomes: presence members, storage catch-up");

    world.relay.vanish(&ghost);
    world.relay.refuse(&refused);
    frame(
        &jim,
        json!({"event": "chat", "channel": "chat", "data": "stored"}),
    )
    .await;
    frame(
        &jim,
        json!({"event": "fleeting", "channel": "chat", "data": "unstored"}),
    )
    .await;
    frame(
        &jim,
        json!({"event": "hotsock.channelStorageSet", "channel": "lobby", "key": "k", "data": 2}),
    )
    .await;
    // The fan-out's cleanup queues the gone member's leave: delivered too.
    world.deliver_all(app).await;
    assert_eq!(pam.expect_event("chat").await["data"], "stored");
    assert_eq!(pam.expect_event("fleeting").await["data"], "unstored");
    let update = jim.expect_event("hotsock.channelStorageUpdated").await;
    assert_eq!(update["data"], 2, "{update}");
    expect_closed(&mut refused).await;
    assert!(world.connection(&ghost).await.is_none());
    let removed = pam.expect_event("hotsock.memberRemoved").await;
    assert_eq!(removed["data"]["member"]["uid"], "ghost", "{removed}");
    assert_eq!(world.owed_changes("presence.room").await, 0);
    needs.after(
        "messages stored and unstored (with backend events) and a storage write, reaching a \
         gone and a refusing socket; the gone member's leave",
    );

    for client in [&jim, &pam] {
        frame(
            client,
            json!({"event": "hotsock.unsubscribe", "channel": "presence.room"}),
        )
        .await;
    }
    world.deliver_all(app).await;
    assert_eq!(
        jim.expect_event("hotsock.unsubscribed").await["channel"],
        "presence.room"
    );
    assert_eq!(
        pam.expect_event("hotsock.unsubscribed").await["channel"],
        "presence.room"
    );
    assert!(world.item("CHAN#presence.room", "MEMBERS").await.is_none());
    needs.after("farewells: the last members leave");

    // Greetings, queued by `$connect` (docs/adr/0005). A connection whose
    // token auto-subscribes: the stage greeted and subscribed it already; it
    // left both channels, so its greeting (queues deliver at least once)
    // subscribes it again.
    let greet = |client: &Client| {
        let greeting = sockhop::ops::deliver::Queued::Greeting {
            connection_id: client.connection_id.clone(),
        };
        async move {
            let cx = sockhop::ops::Ctx::new(clients, sockhop::clock::Timestamp::now());
            let unique = ulid::Ulid::new().to_string();
            sockhop::ops::deliver::enqueue(cx, &greeting, None, &unique)
                .await
                .expect("queued");
        }
    };
    let mut auto = world
        .stage
        .connect(json!({"scope": "connect", "uid": "auto", "channels": {
            "news": {"subscribe": true, "autoSubscribe": true},
            "presence.lobby": {"subscribe": true, "autoSubscribe": true}}}))
        .await;
    for _ in 0..2 {
        auto.expect_event("hotsock.subscribed").await;
    }
    for channel in ["news", "presence.lobby"] {
        auto.send(json!({"event": "hotsock.unsubscribe", "channel": channel}))
            .await;
        auto.expect_event("hotsock.unsubscribed").await;
    }
    // The gateway says Gone once for a live socket: asked, it is open.
    world.relay.script_posts(&auto, &[false, true]);
    greet(&auto).await;
    world.deliver_all(app).await;
    auto.expect_event("hotsock.connected").await;
    let mut welcomed: Vec<String> = Vec::new();
    for _ in 0..2 {
        let frame = auto.expect_event("hotsock.subscribed").await;
        welcomed.push(frame["channel"].as_str().expect("channel").to_owned());
    }
    welcomed.sort();
    assert_eq!(welcomed, ["news", "presence.lobby"]);
    needs.after("a new connection: greeting, auto-subscriptions (a Gone for an open socket)");

    let mut refused_greeting = member(&world, "refused-greeting").await;
    world.relay.refuse(&refused_greeting);
    greet(&refused_greeting).await;
    world.deliver_all(app).await;
    expect_closed(&mut refused_greeting).await;
    needs.after("a greeting the gateway refuses");

    needs.assert_granted_exactly("DeliverFunction");
}

// ====================================================================== stream

#[tokio::test]
async fn stream_function_is_granted_exactly_what_its_paths_need() {
    let world = World::start().await;
    let app = world.app("StreamFunction").await;
    let mut needs = Needs::new(app);
    let world = &world;
    let connection_image = |client: &Client| {
        let pk = format!("CONN#{}", client.connection_id);
        async move { image(&world.item(&pk, "CONN").await.expect("connection item")) }
    };
    let stream = |records: Vec<Value>| async move {
        let answer = sockhop_stream::handle(app, stream_event(records))
            .await
            .expect("handled");
        assert!(
            answer.batch_item_failures.is_empty(),
            "records failed: {:?}",
            answer.batch_item_failures
        );
    };

    // TTL removes a connection that still has subscriptions.
    let mut expired = member(world, "expired").await;
    join(&mut expired, "presence.room").await;
    join(&mut expired, "news").await;
    let old = connection_image(&expired).await;
    world
        .stage
        .dynamodb()
        .await
        .delete_item()
        .table_name(&world.stage.stage.table_name)
        .key(
            "pk",
            AttributeValue::S(format!("CONN#{}", expired.connection_id)),
        )
        .key("sk", AttributeValue::S("CONN".into()))
        .send()
        .await
        .expect("expired");
    stream(vec![stream_record("REMOVE", Some(old.clone()), None, true)]).await;
    assert!(!world.subscribed("presence.room", &expired).await);
    assert!(!world.subscribed("news", &expired).await);
    let queued = world.queued().await;
    assert_eq!(memberships(&queued, "presence.room").len(), 1, "{queued:?}");
    assert_eq!(world.owed_changes("presence.room").await, 0);
    needs.after("a connection's TTL expiry: cleanup, presence leave");

    // Records that only tell the backend.
    let mut jim = member(world, "jim").await;
    join(&mut jim, "news").await;
    let subscription = image(
        &world
            .item("CHAN#news", &format!("SUB#{}", jim.connection_id))
            .await
            .expect("subscription"),
    );
    let count = image(&world.item("CHAN#news", "META").await.expect("count"));
    let mut fewer = count.clone();
    fewer["subscriptionsCount"] = json!({"N": "0"});
    let jim_now = connection_image(&jim).await;
    let mut jim_before = jim_now.clone();
    jim_before["umd"] = json!({"S": "\"before\""});
    let entry = json!({"pk": {"S": "STORE#lobby"}, "sk": {"S": "k"}, "channel": {"S": "lobby"},
        "key": {"S": "k"}, "data": {"S": "1"}, "meta": {"S": "{\"uid\":null,\"umd\":null}"},
        "emit": {"BOOL": true}, "ttl": {"N": (now() - 5).to_string()}});
    stream(vec![
        stream_record("INSERT", None, Some(subscription.clone()), false),
        stream_record("MODIFY", Some(fewer), Some(count), false),
        stream_record("MODIFY", Some(jim_before), Some(jim_now), false),
        stream_record("REMOVE", Some(entry), None, true),
        stream_record("REMOVE", Some(subscription), None, false),
        stream_record("REMOVE", Some(old), None, false),
    ])
    .await;
    needs.after("backend events: subscriptions, counts, umd, storage expiry, disconnects");

    needs.assert_granted_exactly("StreamFunction");
}

// ====================================================================== sweeper

#[tokio::test]
async fn sweeper_function_is_granted_exactly_what_its_paths_need() {
    let world = World::start().await;
    let app = world.app("SweeperFunction").await;
    let mut needs = Needs::new(app);
    let store = &world.stage.stage.app.store;
    let sweep = || async {
        let scheduled = json!({"version": "0", "id": ulid::Ulid::new().to_string(),
            "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012",
            "time": "2030-01-01T00:00:00Z", "region": "us-east-1", "resources": [], "detail": {}});
        sockhop_sweeper::handle(app, scheduled)
            .await
            .expect("swept");
    };
    // The sweeper ran four minutes ago: a few minutes of the index to read.
    store
        .advance_sweep_cursor(now() - 240)
        .await
        .expect("cursor");
    let keep_alive = |uid: &str| {
        json!({"scope": "connect", "uid": uid, "keepAlive": true,
        "channels": {"news": {"subscribe": true}}})
    };
    // Connected 500 s ago: the first keepAlive (480 s) is due.
    let due = |c: &mut sockhop::store::ConnectionItem| {
        c.connected_at_ms = (now() - 500) * 1000;
        c.sweep_at = now() - 20;
    };
    let mut kept = world.stage.connect(keep_alive("kept")).await;
    let mut vanished = world.stage.connect(keep_alive("vanished")).await;
    let mut refused = world.stage.connect(keep_alive("refused")).await;
    for client in [&mut kept, &mut vanished, &mut refused] {
        join(client, "news").await;
        world.age(client, due).await;
    }
    world.relay.vanish(&vanished);
    world.relay.refuse(&refused);
    sweep().await;
    kept.expect_event("hotsock.keepAlive").await;
    assert!(world.connection(&kept).await.expect("kept").sweep_at > now());
    assert!(world.connection(&vanished).await.is_none());
    expect_closed(&mut refused).await;
    needs.after("keepAlives due: to an open, a gone and a refusing socket");

    // Missed its heartbeat, in a presence room; its socket is gone too.
    let mut silent = world
        .stage
        .connect(
            json!({"scope": "connect", "uid": "silent", "heartbeatTimeout": 30,
            "channels": {"presence.room": {"subscribe": true}}}),
        )
        .await;
    join(&mut silent, "presence.room").await;
    world
        .age(&silent, |c| {
            c.last_seen = now() - 100;
            // Due now (an earlier minute may be behind the sweeper's cursor).
            c.sweep_at = now();
        })
        .await;
    world.relay.vanish(&silent);
    sweep().await;
    assert!(world.connection(&silent).await.is_none());
    assert!(!world.subscribed("presence.room", &silent).await);
    let queued = world.queued().await;
    assert_eq!(memberships(&queued, "presence.room").len(), 1, "{queued:?}");
    needs.after("a missed heartbeat: close, cleanup of a presence subscription");

    // A removal that could not queue the change it owes the members.
    let mut left = member(&world, "left").await;
    join(&mut left, "presence.room").await;
    store
        .unsubscribe("presence.room", &left.connection_id, now(), Some(now()))
        .await
        .expect("unsubscribed")
        .expect("was subscribed");
    assert_eq!(world.owed_changes("presence.room").await, 1);
    sweep().await;
    assert_eq!(world.owed_changes("presence.room").await, 0);
    let queued = world.queued().await;
    assert_eq!(memberships(&queued, "presence.room").len(), 1, "{queued:?}");
    needs.after("an owed presence change");

    needs.assert_granted_exactly("SweeperFunction");
}
