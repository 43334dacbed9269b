//! `App`: configuration, store, gateway, id source and claims cache, built
//! once per process (a Lambda cold start, or the local stage) and shared by
//! every handler. It holds no clock: handlers read the time once and pass it.

use crate::adapters::count_requests::CountRequests;
use crate::adapters::dynamodb::DynamoStore;
use crate::adapters::event_sinks::{EventBridgeSink, SnsSink};
use crate::adapters::eventbridge_scheduler::EventBridgeScheduler;
use crate::adapters::management_api::ManagementApi;
use crate::adapters::sqs::SqsQueue;
use crate::api_keys::ApiKeys;
use crate::gateway::Gateway;
use crate::metrics::{Activity, RequestCounts};
use crate::pacing::Pacing;
use crate::pubsub::{EventSink, FanOut, NoEvents};
use crate::queue::{DeliveryQueue, NoQueue};
use crate::scheduler::{NoScheduler, Scheduler, SchedulerTarget};
use crate::store::Store;
use base64::Engine;
use sockhop_core::claims::ClaimsCache;
use sockhop_core::ids::IdGenerator;
use sockhop_core::token::{KeyConfigError, Verifier};
use std::sync::Arc;

/// API Gateway closes every WebSocket connection after two hours.
pub const DEFAULT_CONNECTION_LIFETIME_SECONDS: i64 = 2 * 60 * 60;

/// The sweeper's schedule in template.yaml: `rate(1 minute)`.
pub const DEFAULT_SWEEP_INTERVAL_SECONDS: i64 = 60;
/// How often the sweeper passes again while heartbeat deadlines are ahead.
pub const DEFAULT_SWEEP_TICK_SECONDS: i64 = 2;
/// How long before its next scheduled run a sweeper invocation stops passing
/// (the template's sweeper timeout is 55 s of a minute).
const SWEEP_WATCH_MARGIN_SECONDS: i64 = 8;
/// API Gateway's idle connection timeout.
pub const DEFAULT_IDLE_TIMEOUT_SECONDS: i64 = 600;
/// Above this many recipients a channel's message goes out in lanes
/// (docs/adr/0004): Hotsock's batch size.
pub const DEFAULT_FAN_OUT_LANE_SIZE: usize = 250;
/// How long a resumable channel's frames are kept for a subscriber that
/// dropped (docs/adr/0006): Ably's and Socket.IO's two minutes.
pub const DEFAULT_RECOVERY_WINDOW_SECONDS: i64 = 120;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Keys(#[from] KeyConfigError),
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Everything a function reads from its environment, the same locally and in AWS.
#[derive(Debug)]
pub struct Config {
    pub table_name: String,
    /// Overrides the DynamoDB endpoint (DynamoDB Local).
    pub dynamodb_endpoint: Option<String>,
    /// `https://{api}.execute-api.{region}.amazonaws.com/{stage}` or the local
    /// stage's `http://127.0.0.1:4000/v1`.
    pub management_endpoint: Option<String>,
    pub verifier: Verifier,
    /// Derives each connection's secret; see [`crate::ops::connect`].
    pub connection_secret_key: Vec<u8>,
    /// Bearer keys of the server HTTP API (`/publish`, `/channels/*`) given
    /// as they are (`HTTP_API_KEY_1`, `HTTP_API_KEY_2`).
    pub api_keys: Vec<String>,
    /// Secrets Manager secrets holding more such keys, generated at deploy
    /// (`HTTP_API_KEY_SECRET_ARNS`, comma-separated).
    pub api_key_secret_arns: Vec<String>,
    /// A Secrets Manager endpoint other than AWS's (tests against moto).
    pub secrets_endpoint: Option<String>,
    pub connection_lifetime_seconds: i64,
    /// How often the sweeper runs (its schedule in template.yaml): keepAlive
    /// timing depends on it.
    pub sweep_interval_seconds: i64,
    /// How often the sweeper passes again within its invocation while
    /// heartbeat deadlines are coming up (`SWEEP_TICK_SECONDS`, default 2):
    /// a missed heartbeat is acted on within about this long.
    pub sweep_tick_millis: u64,
    /// Seconds of silence after which the gateway closes a socket: 600 in API
    /// Gateway (fixed); the local stage's `--idle-timeout`.
    pub idle_timeout_seconds: i64,
    /// A channel with more recipients than this is fanned out in lanes, each
    /// by its own invocation (`FAN_OUT_LANE_SIZE`, default 250; docs/adr/0004).
    pub fan_out_lane_size: usize,
    /// How long a subscriber that asked to resume may be away and still get
    /// every frame it missed (`RECOVERY_WINDOW_SECONDS`, default 120).
    pub recovery_window_seconds: i64,
    /// The SQS FIFO queue published messages go through (docs/adr/0002).
    pub delivery_queue_url: Option<String>,
    /// An SQS endpoint other than AWS's (tests against moto).
    pub sqs_endpoint: Option<String>,
    /// EventBridge Scheduler's group, target and role for scheduled publishes
    /// (`SCHEDULE_GROUP_NAME`, `SCHEDULE_TARGET_ARN`, `SCHEDULE_ROLE_ARN`).
    pub scheduler_target: Option<SchedulerTarget>,
    /// An EventBridge Scheduler endpoint other than AWS's (tests against moto).
    pub scheduler_endpoint: Option<String>,
    /// Backend events go to this EventBridge bus (`EVENTS_BUS_NAME`) and/or
    /// SNS topic (`EVENTS_TOPIC_ARN`); neither set: events are off.
    pub events_bus_name: Option<String>,
    pub events_topic_arn: Option<String>,
    /// An EventBridge and SNS endpoint other than AWS's (tests against moto).
    pub events_endpoint: Option<String>,
}

impl Config {
    /// How long one sweeper invocation keeps passing: until shortly before
    /// the next one (nothing beyond its first pass with a short interval).
    pub fn sweep_watch_millis(&self) -> i64 {
        let interval = self.sweep_interval_seconds;
        (interval - SWEEP_WATCH_MARGIN_SECONDS)
            .max(interval / 2)
            .max(0)
            * 1000
    }

    /// Reads the configuration through `get` (the process environment in
    /// production; a map in tests). Empty values count as unset.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let verifier = Verifier::from_env(get)?;
        let connection_secret_key = match get("CONNECTION_SECRET_KEY") {
            Some(encoded) => base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|e| ConfigError::Invalid {
                    name: "CONNECTION_SECRET_KEY",
                    reason: e.to_string(),
                })?,
            None => return Err(ConfigError::Missing("CONNECTION_SECRET_KEY")),
        };
        if connection_secret_key.len() < 16 {
            return Err(ConfigError::Invalid {
                name: "CONNECTION_SECRET_KEY",
                reason: "must decode to at least 16 bytes".into(),
            });
        }
        let connection_lifetime_seconds = match get("CONNECTION_LIFETIME_SECONDS") {
            Some(v) => v.parse().map_err(|_| ConfigError::Invalid {
                name: "CONNECTION_LIFETIME_SECONDS",
                reason: format!("{v:?} is not a number of seconds"),
            })?,
            None => DEFAULT_CONNECTION_LIFETIME_SECONDS,
        };
        let seconds = |name: &'static str, default: i64| match get(name) {
            Some(v) => {
                v.parse()
                    .ok()
                    .filter(|s: &i64| *s > 0)
                    .ok_or_else(|| ConfigError::Invalid {
                        name,
                        reason: format!("{v:?} is not a positive number of seconds"),
                    })
            }
            None => Ok(default),
        };
        let sweep_interval_seconds =
            seconds("SWEEP_INTERVAL_SECONDS", DEFAULT_SWEEP_INTERVAL_SECONDS)?;
        let idle_timeout_seconds = seconds("IDLE_TIMEOUT_SECONDS", DEFAULT_IDLE_TIMEOUT_SECONDS)?;
        let sweep_tick_seconds = seconds("SWEEP_TICK_SECONDS", DEFAULT_SWEEP_TICK_SECONDS)?;
        let recovery_window_seconds =
            seconds("RECOVERY_WINDOW_SECONDS", DEFAULT_RECOVERY_WINDOW_SECONDS)?;
        let fan_out_lane_size =
            match get("FAN_OUT_LANE_SIZE") {
                Some(v) => v.parse().ok().filter(|n: &usize| *n > 0).ok_or_else(|| {
                    ConfigError::Invalid {
                        name: "FAN_OUT_LANE_SIZE",
                        reason: format!("{v:?} is not a positive number of recipients"),
                    }
                })?,
                None => DEFAULT_FAN_OUT_LANE_SIZE,
            };
        Ok(Config {
            table_name: get("TABLE_NAME").unwrap_or_else(|| "sockhop".into()),
            dynamodb_endpoint: get("DYNAMODB_ENDPOINT"),
            management_endpoint: get("WEBSOCKET_MANAGEMENT_ENDPOINT"),
            verifier,
            connection_secret_key,
            api_keys: ["HTTP_API_KEY_1", "HTTP_API_KEY_2"]
                .into_iter()
                .filter_map(get)
                .collect(),
            api_key_secret_arns: get("HTTP_API_KEY_SECRET_ARNS")
                .map(|arns| {
                    arns.split(',')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            secrets_endpoint: get("SECRETS_ENDPOINT"),
            connection_lifetime_seconds,
            sweep_interval_seconds,
            sweep_tick_millis: u64::try_from(sweep_tick_seconds).unwrap_or(2) * 1000,
            idle_timeout_seconds,
            fan_out_lane_size,
            recovery_window_seconds,
            delivery_queue_url: get("DELIVERY_QUEUE_URL"),
            sqs_endpoint: get("SQS_ENDPOINT"),
            scheduler_target: match (
                get("SCHEDULE_GROUP_NAME"),
                get("SCHEDULE_TARGET_ARN"),
                get("SCHEDULE_ROLE_ARN"),
            ) {
                (Some(group), Some(function_arn), Some(role_arn)) => Some(SchedulerTarget {
                    group,
                    function_arn,
                    role_arn,
                }),
                _ => None,
            },
            scheduler_endpoint: get("SCHEDULER_ENDPOINT"),
            events_bus_name: get("EVENTS_BUS_NAME"),
            events_topic_arn: get("EVENTS_TOPIC_ARN"),
            events_endpoint: get("EVENTS_ENDPOINT"),
        })
    }
}

pub struct App {
    pub config: Config,
    /// The table: DynamoDB, or an in-memory one in unit tests.
    pub store: Arc<dyn Store>,
    pub gateway: Gateway,
    pub ids: IdGenerator,
    pub claims: ClaimsCache,
    /// Where publishes go; the local stage puts its in-process queue here.
    pub queue: Arc<dyn DeliveryQueue>,
    /// Where scheduled publishes wait; the local stage puts its own here.
    pub scheduler: Arc<dyn Scheduler>,
    /// Where backend events go; the local stage puts its live stream here.
    pub events: Arc<dyn EventSink>,
    /// Every AWS request this process made (see [`crate::metrics`]).
    pub requests: Arc<RequestCounts>,
    /// What this process did that an operator watches (metrics).
    pub activity: Arc<Activity>,
    /// The server API's Bearer keys.
    pub api_keys: ApiKeys,
    /// How waits wait and what chance draws (nonces, jitter, sweep ticks).
    pub pacing: Pacing,
}

impl App {
    /// Builds the AWS clients from the default credential chain, with the
    /// endpoint overrides the configuration names.
    pub async fn new(config: Config) -> Self {
        let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        App::with_sdk_config(config, &shared)
    }

    /// Builds the clients from a given AWS configuration (the local stage passes
    /// static dev credentials so nothing probes for real ones).
    pub fn with_sdk_config(config: Config, shared: &aws_config::SdkConfig) -> Self {
        let requests = Arc::new(RequestCounts::default());
        let counting = CountRequests(requests.clone());
        let mut dynamo =
            aws_sdk_dynamodb::config::Builder::from(shared).interceptor(counting.clone());
        if let Some(endpoint) = &config.dynamodb_endpoint {
            dynamo = dynamo.endpoint_url(endpoint);
        }
        let mut management = aws_sdk_apigatewaymanagement::config::Builder::from(shared)
            .interceptor(counting.clone());
        if let Some(endpoint) = &config.management_endpoint {
            management = management.endpoint_url(endpoint);
        }
        let pacing = Pacing::real();
        let store = Arc::new(
            DynamoStore::new(
                aws_sdk_dynamodb::Client::from_conf(dynamo.build()),
                config.table_name.clone(),
            )
            .paced(pacing.clone()),
        );
        let gateway = Gateway::paced(
            Arc::new(ManagementApi::new(
                aws_sdk_apigatewaymanagement::Client::from_conf(management.build()),
            )),
            pacing.clone(),
        );
        let scheduler: Arc<dyn Scheduler> = match &config.scheduler_target {
            Some(target) => {
                let mut builder =
                    aws_sdk_scheduler::config::Builder::from(shared).interceptor(counting.clone());
                if let Some(endpoint) = &config.scheduler_endpoint {
                    builder = builder.endpoint_url(endpoint);
                }
                Arc::new(EventBridgeScheduler::new(
                    aws_sdk_scheduler::Client::from_conf(builder.build()),
                    target.clone(),
                ))
            }
            None => Arc::new(NoScheduler),
        };
        let events = event_sink(&config, shared, &counting, &pacing);
        let api_keys = api_keys(&config, shared, &counting);
        let queue: Arc<dyn DeliveryQueue> = match &config.delivery_queue_url {
            Some(url) => {
                let mut sqs = aws_sdk_sqs::config::Builder::from(shared).interceptor(counting);
                if let Some(endpoint) = &config.sqs_endpoint {
                    sqs = sqs.endpoint_url(endpoint);
                }
                Arc::new(SqsQueue::new(
                    aws_sdk_sqs::Client::from_conf(sqs.build()),
                    url.clone(),
                ))
            }
            None => Arc::new(NoQueue),
        };
        App {
            config,
            store,
            gateway,
            ids: IdGenerator::default(),
            claims: ClaimsCache::default(),
            queue,
            scheduler,
            events,
            requests,
            activity: Arc::default(),
            api_keys,
            pacing,
        }
    }

    /// An app over the given ports and no AWS client (unit tests use the
    /// [`memory`](crate::memory) ones): no scheduler, no backend events, the
    /// configured API keys only, real pacing (set [`App::pacing`] to change
    /// it; the gateway's is its own).
    pub fn with_ports(
        config: Config,
        store: Arc<dyn Store>,
        gateway: Gateway,
        queue: Arc<dyn DeliveryQueue>,
    ) -> Self {
        let api_keys = ApiKeys::configured(config.api_keys.clone());
        App {
            config,
            store,
            gateway,
            ids: IdGenerator::default(),
            claims: ClaimsCache::default(),
            queue,
            scheduler: Arc::new(NoScheduler),
            events: Arc::new(NoEvents),
            requests: Arc::default(),
            activity: Arc::default(),
            api_keys,
            pacing: Pacing::real(),
        }
    }

    /// Reads [`Config`] from the process environment.
    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = Config::from_env(|name| std::env::var(name).ok())?;
        Ok(App::new(config).await)
    }
}

/// The server API's keys: the configured ones, and the generated secrets
/// when the stack names them.
fn api_keys(config: &Config, shared: &aws_config::SdkConfig, counting: &CountRequests) -> ApiKeys {
    if config.api_key_secret_arns.is_empty() {
        return ApiKeys::configured(config.api_keys.clone());
    }
    let mut builder =
        aws_sdk_secretsmanager::config::Builder::from(shared).interceptor(counting.clone());
    if let Some(endpoint) = &config.secrets_endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    ApiKeys::with_secrets(
        config.api_keys.clone(),
        aws_sdk_secretsmanager::Client::from_conf(builder.build()),
        config.api_key_secret_arns.clone(),
    )
}

/// The configured event sinks: EventBridge, SNS, both, or none.
fn event_sink(
    config: &Config,
    shared: &aws_config::SdkConfig,
    counting: &CountRequests,
    pacing: &Pacing,
) -> Arc<dyn EventSink> {
    let mut sinks: Vec<Box<dyn EventSink>> = Vec::new();
    if let Some(bus) = &config.events_bus_name {
        let mut builder = aws_sdk_eventbridge::config::Builder::from(shared)
            .interceptor(counting.clone())
            .timeout_config(events_timeouts());
        if let Some(endpoint) = &config.events_endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        sinks.push(Box::new(EventBridgeSink::new(
            aws_sdk_eventbridge::Client::from_conf(builder.build()),
            bus.clone(),
            pacing.pause.clone(),
        )));
    }
    if let Some(topic) = &config.events_topic_arn {
        let mut builder = aws_sdk_sns::config::Builder::from(shared)
            .interceptor(counting.clone())
            .timeout_config(events_timeouts());
        if let Some(endpoint) = &config.events_endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        sinks.push(Box::new(SnsSink::new(
            aws_sdk_sns::Client::from_conf(builder.build()),
            topic.clone(),
            pacing.pause.clone(),
        )));
    }
    match sinks.len() {
        0 => Arc::new(NoEvents),
        _ => Arc::new(FanOut(sinks)),
    }
}

/// Events are published at the end of an invocation: a hung sink must fail
/// fast rather than hold the invocation (and its channel) up.
fn events_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(std::time::Duration::from_millis(800))
        .operation_timeout(std::time::Duration::from_secs(2))
        .build()
}
