//! `bench aws-model`: the real delivery code (`App::with_ports`, the
//! driver's queue handling, `ops::deliver`, `ops::connect`) run against
//! DynamoDB Local with AWS's waits put where the local stage has none, for
//! today's design and the new one side by side (README, "AWS-latency
//! model").
//!
//! - Sockets ([`aws::ModelSockets`]) only count and timestamp frames: each
//!   post sleeps a sampled PostToConnection round trip; posts before a
//!   connection's `$connect` returned answer Gone; a set of stalled sockets
//!   take long, a set of throttled ones fail after the adapter's retries.
//! - The delivery queue ([`aws::ModelQueue`]) is SQS FIFO with Lambda's event
//!   source: a SendMessage round trip, a receive-and-invoke wait, one
//!   invocation per group at a time in group order, batches of up to 10,
//!   groups concurrently within the account's concurrency.
//! - Subscriptions are items in DynamoDB Local, seeded in batches
//!   (`DynamoStore::seed_subscriptions`); every read and write the code does
//!   there is real and counted (`app.requests`).
//!
//! "Today" is the design before lanes and the queued greeting: a lane size
//! above any channel (one invocation posts to the whole channel), and the
//! greeting sent after the connection item's stream record is read (record
//! wait + the shard's poll, 4 a second + the stream function's invoke).
//! "New" is lanes (`FAN_OUT_LANE_SIZE` 250, 32 lanes: docs/adr/0004) and the
//! greeting queued from `$connect` in the connection's own group
//! (docs/adr/0005).
//!
//! Sources of the waits (also printed with each run, [`latency::Params::table`]):
//! - Lambda polls a DynamoDB stream shard 4 times a second (AWS Lambda
//!   developer guide, "Using Lambda with DynamoDB": polling and batching).
//! - 1,000 concurrent executions per account and region by default (AWS
//!   Lambda quotas; Hotsock docs, "Limits & Scaling").
//! - SQS FIFO with Lambda: messages of a group in order, one batch of a group
//!   at a time, up to 10 messages a batch, concurrency up to the number of
//!   active groups (AWS Lambda developer guide, "Configuring scaling behavior
//!   for SQS event source mappings"; "Lambda parameters for Amazon SQS event
//!   source mappings").
//! - PostToConnection round trip ~20 ms (issue 24); the other waits are
//!   assumptions, chosen so today's greeting lands where Hotsock's did before
//!   it moved off the stream: 300-600 ms, then 30-60 ms (Hotsock changelog,
//!   v1.3.0). Hotsock fans channels over 250 subscribers out in batches of
//!   250 across invocations (changelog, v1.10.0).
//! - The throttled post's retries are the management API adapter's (issue 23:
//!   three retries 25, 50 and 100 ms apart).

mod aws;
mod latency;

use anyhow::{bail, Context};
use aws::{Behaviour, ModelQueue, ModelSockets, Tally};
use base64::Engine;
use latency::{LogNormal, Params, Sampler};
use serde_json::json;
use sockhop::adapters::count_requests::CountRequests;
use sockhop::adapters::dynamodb::DynamoStore;
use sockhop::app::Config;
use sockhop::clock::Timestamp;
use sockhop::gateway::Gateway;
use sockhop::metrics::{OperationCount, RequestCounts};
use sockhop::ops::deliver::{Queued, QueuedMessage};
use sockhop::ops::Ctx;
use sockhop::store::SubscriptionItem;
use sockhop::App;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone)]
pub struct ModelArgs {
    /// A smaller, faster run (fan-outs to 1k and 10k, fewer messages).
    #[arg(long)]
    quick: bool,
    /// Use this DynamoDB instead of starting DynamoDB Local.
    #[arg(long)]
    dynamodb_endpoint: Option<String>,
    /// The repository root (template.yaml, infra/dynamodb-local/start.sh).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Channel sizes for publish -> last subscriber [default: 1000,10000,50000; quick: 1000,10000].
    #[arg(long, value_delimiter = ',')]
    fan_out: Option<Vec<usize>>,
    /// Messages per fan-out size [default: 3, 2 above 20,000; quick: 1].
    #[arg(long)]
    messages: Option<usize>,
    /// Subscribers of the channel whose messages/s are measured [default: 10000].
    #[arg(long)]
    throughput_subscribers: Option<usize>,
    /// Messages published at once for messages/s [default: 30; quick: 15];
    /// today's design gets at most 3 (each takes seconds).
    #[arg(long)]
    burst: Option<usize>,
    /// Connections greeted [default: 200; quick: 60].
    #[arg(long)]
    connections: Option<usize>,
    /// New connections a second while greeting.
    #[arg(long, default_value_t = 50.0)]
    connect_rate: f64,
    /// Subscribers of the channel with stalled sockets [default: 1000; quick: 500].
    #[arg(long)]
    stall_subscribers: Option<usize>,
    /// Messages to it, at --stall-rate a second [default: 10; quick: 6].
    #[arg(long)]
    stall_messages: Option<usize>,
    #[arg(long, default_value_t = 2.0)]
    stall_rate: f64,
    /// Channel sizes priced per million messages.
    #[arg(long, value_delimiter = ',', default_value = "10,1000,10000")]
    cost_sizes: Vec<usize>,
    /// Adds a column: the new design with this many posts in flight per
    /// invocation (production: FAN_OUT_CONCURRENCY, 64).
    #[arg(long)]
    posts_in_flight: Option<usize>,
    /// Adds a column: the new design giving throttled posts up after this
    /// many ms instead of THROTTLE_PATIENCE (today's design: 175, about the
    /// 25, 50 and 100 ms retries the adapter made before).
    #[arg(long)]
    throttle_patience_ms: Option<u64>,
    /// API Gateway's request quota a second for the account (0: none).
    #[arg(long, default_value_t = latency::DEFAULT.account_rps)]
    account_rps: f64,
    #[arg(long, default_value_t = latency::DEFAULT.account_burst)]
    account_burst: f64,
    /// PostToConnection round trip p50 and p99, ms.
    #[arg(long, default_value_t = latency::DEFAULT.post.p50_ms)]
    post_p50_ms: f64,
    #[arg(long, default_value_t = latency::DEFAULT.post.p99_ms)]
    post_p99_ms: f64,
    /// The generator's seed (waits are sampled from it).
    #[arg(long, default_value_t = 24)]
    seed: u64,
}

/// The run's sizes, after `--quick` and explicit flags.
#[derive(Debug, Clone)]
struct Plan {
    fan_out: Vec<usize>,
    messages: Option<usize>,
    throughput_subscribers: usize,
    burst: usize,
    connections: usize,
    stall_subscribers: usize,
    stall_messages: usize,
}

impl Plan {
    fn from(args: &ModelArgs) -> Self {
        let q = args.quick;
        Plan {
            fan_out: args.fan_out.clone().unwrap_or_else(|| {
                if q {
                    vec![1000, 10_000]
                } else {
                    vec![1000, 10_000, 50_000]
                }
            }),
            messages: args.messages.or(q.then_some(1)),
            throughput_subscribers: args.throughput_subscribers.unwrap_or(10_000),
            burst: args.burst.unwrap_or(if q { 15 } else { 30 }),
            connections: args.connections.unwrap_or(if q { 60 } else { 200 }),
            stall_subscribers: args.stall_subscribers.unwrap_or(if q { 500 } else { 1000 }),
            stall_messages: args.stall_messages.unwrap_or(if q { 6 } else { 10 }),
        }
    }

    fn messages_for(&self, subscribers: usize) -> usize {
        self.messages
            .unwrap_or(if subscribers > 20_000 { 2 } else { 3 })
            .max(1)
    }
}

/// BatchWriteItems at once while seeding (DynamoDB Local takes writes
/// mostly one at a time).
const SEED_CONCURRENCY: usize = 4;
/// Today's lane size: above any channel, so nothing goes out in lanes.
const NO_LANES: usize = 1 << 40;
/// The functions' memory (template.yaml), for GB-seconds.
const MEMORY_GB: f64 = 0.25;
/// How long the publish function is assumed to run for one message.
const PUBLISH_MS: f64 = 10.0;
/// Today's throttled posts: the adapter's 25, 50 and 100 ms retries, then
/// a missed frame (and a closed connection).
const TODAYS_THROTTLE_PATIENCE: Duration = Duration::from_millis(175);

/// One design under test: an app over the model's ports.
struct Design {
    name: String,
    app: Arc<App>,
    sockets: Arc<ModelSockets>,
    queue: Arc<ModelQueue>,
    event_source: tokio::task::JoinHandle<()>,
    signing_key: Vec<u8>,
}

impl Drop for Design {
    fn drop(&mut self) {
        self.event_source.abort();
    }
}

struct Setup<'a> {
    sdk: &'a aws_config::SdkConfig,
    endpoint: &'a str,
    table: &'a str,
    params: &'a Params,
    seed: u64,
}

impl Design {
    async fn build(
        setup: &Setup<'_>,
        name: &str,
        lane_size: usize,
        greet_from_stream: bool,
        posts_in_flight: usize,
        throttle_patience: Duration,
    ) -> anyhow::Result<Design> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let signing_key = crate::procs::random_bytes(32)?;
        let env = HashMap::from([
            ("SIGNING_KEY_1_METHOD", "HS256".to_owned()),
            ("SIGNING_KEY_1_ENCODED", b64.encode(&signing_key)),
            (
                "CONNECTION_SECRET_KEY",
                b64.encode(crate::procs::random_bytes(32)?),
            ),
            ("TABLE_NAME", setup.table.to_owned()),
            ("DYNAMODB_ENDPOINT", setup.endpoint.to_owned()),
            ("FAN_OUT_LANE_SIZE", lane_size.to_string()),
        ]);
        let config = Config::from_env(|k| env.get(k).cloned())?;
        let requests = Arc::new(RequestCounts::default());
        let dynamo = aws_sdk_dynamodb::config::Builder::from(setup.sdk)
            .interceptor(CountRequests(requests.clone()))
            .endpoint_url(setup.endpoint)
            .build();
        let store = Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::from_conf(dynamo),
            setup.table,
        ));
        // Each design samples its own stream of waits, from the same seed.
        let sampler = Arc::new(Sampler::new(setup.seed));
        let sockets = Arc::new(ModelSockets::new(setup.params.clone(), sampler.clone()));
        let queue = Arc::new(ModelQueue::new(
            setup.params.clone(),
            sampler,
            greet_from_stream,
        ));
        let gateway = Gateway::new(sockets.clone())
            .with_posts_in_flight(posts_in_flight)
            .with_throttle_patience(throttle_patience);
        let mut app = App::with_ports(config, store, gateway, queue.clone());
        app.requests = requests;
        let app = Arc::new(app);
        let account = Arc::new(tokio::sync::Semaphore::new(
            setup.params.account_concurrency,
        ));
        let event_source = tokio::spawn(aws::run_event_source(queue.clone(), app.clone(), account));
        Ok(Design {
            name: name.to_owned(),
            app,
            sockets,
            queue,
            event_source,
            signing_key,
        })
    }

    fn tally(&self) -> Tally {
        self.queue.tally(&self.sockets)
    }

    async fn idle(&self) {
        while !self.queue.is_idle() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Queues an unstored message to `channel` as the publish function does
    /// (eager id, so its frames can be told apart); its id and when the
    /// publish began.
    async fn publish(&self, channel: &str) -> anyhow::Result<(String, Instant)> {
        let id = ulid::Ulid::new().to_string();
        let message = QueuedMessage {
            id: Some(id.clone()),
            channel: channel.to_owned(),
            event: "bench".to_owned(),
            data: serde_json::value::RawValue::from_string(r#"{"n":1}"#.to_owned())?,
            meta: None,
            sender: None,
            echo: false,
            store: 0,
            emit: None,
        };
        let started = Instant::now();
        let cx = Ctx::new(&self.app, Timestamp::now());
        sockhop::ops::deliver::enqueue(cx, &Queued::Message(message), Some(&id), &id)
            .await
            .map_err(|e| anyhow::anyhow!("enqueue: {}", e.message))?;
        Ok((id, started))
    }

    /// Waits until `expected` sockets have message `id`, less those of them
    /// (ids starting with `prefix`) the server closed; when the last did.
    async fn arrived(&self, id: &str, expected: usize, prefix: &str) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            if let Some(a) = self.sockets.arrivals(id) {
                if a.count + self.sockets.closed_with_prefix(prefix) >= expected {
                    return Ok(a.last);
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: message {id} did not reach {expected} sockets",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `p`-th quantile of `values` (nearest rank; 0 when empty).
fn quantile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64) * p).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// Subscriptions of `count` connections `{prefix}{i}` to `channel`.
fn subscriptions(channel: &str, prefix: &str, count: usize) -> Vec<SubscriptionItem> {
    subscriptions_of(channel, prefix, count, false)
}

/// The same, each `recoverable` or not (a subscriber that asked to resume).
fn subscriptions_of(
    channel: &str,
    prefix: &str,
    count: usize,
    recoverable: bool,
) -> Vec<SubscriptionItem> {
    let now = Timestamp::now();
    (0..count)
        .map(|i| SubscriptionItem {
            channel: channel.to_owned(),
            connection_id: format!("{prefix}{i}"),
            uid: None,
            umd: None,
            permissions: "{}".to_owned(),
            alias: None,
            subscribed_at_ms: now.millis(),
            umd_at_ms: now.millis(),
            pending: false,
            recoverable,
            counted: true,
            ttl: now.secs() + 3 * 3600,
        })
        .collect()
}

/// One run's figures per design, printed side by side.
#[derive(Default)]
struct Column {
    greeting: (f64, f64),
    greeting_gone: u64,
    /// (subscribers, median publish -> last subscriber, ms).
    fan_out: Vec<(usize, f64)>,
    messages_per_second: f64,
    burst: usize,
    /// (case, healthy p99 ms).
    stalled: Vec<(&'static str, f64)>,
    /// (subscribers, requests per message, $ per million).
    cost: Vec<(usize, Requests, f64)>,
    /// The same on a channel whose subscribers asked to resume (docs/adr/0006).
    cost_resumable: Vec<(usize, Requests, f64)>,
    most_in_flight: u64,
    /// (subscribers, connections the server closed: frames missed).
    closed: BTreeMap<usize, usize>,
    throttled_answers: u64,
}

pub async fn run(args: ModelArgs) -> anyhow::Result<()> {
    let plan = Plan::from(&args);
    let mut params = latency::DEFAULT;
    params.post = LogNormal::new(args.post_p50_ms, args.post_p99_ms);
    params.account_rps = args.account_rps;
    params.account_burst = args.account_burst;
    let root = crate::repo_root(args.root.as_deref())?;
    println!("Sockhop AWS-latency model (bench aws-model)");
    println!("  machine   {}", crate::procs::machine());
    println!("  plan      {plan:?}, seed {}", args.seed);
    println!("  waits (source):");
    for (name, figure, source) in params.table() {
        println!("    {name:<40} {figure:<28} {source}");
    }

    let mut dynamodb = None;
    let endpoint = match &args.dynamodb_endpoint {
        Some(endpoint) => endpoint.clone(),
        None => {
            let port = crate::procs::free_port()?;
            let log = std::env::temp_dir().join(format!("sockhop-aws-model-{port}.log"));
            dynamodb = Some(crate::start_dynamodb_local(&root, port, None, log).await?);
            format!("http://127.0.0.1:{port}")
        }
    };
    println!("  dynamodb  {endpoint}");
    let sdk = crate::floor::local_sdk_config().await;
    let table = format!(
        "sockhop-model-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    sockhop_local::table::ensure_table(&sdk, &endpoint, &table, &root.join("template.yaml"))
        .await?;
    // The model waits for the stream itself (today's greeting): the table's
    // own stream would only slow DynamoDB Local's writes down (~5x a batch).
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(&endpoint)
            .build(),
    );
    client
        .update_table()
        .table_name(&table)
        .stream_specification(
            aws_sdk_dynamodb::types::StreamSpecification::builder()
                .stream_enabled(false)
                .build()?,
        )
        .send()
        .await
        .context("turning the model table's stream off")?;
    let setup = Setup {
        sdk: &sdk,
        endpoint: &endpoint,
        table: &table,
        params: &params,
        seed: args.seed,
    };
    let lanes = sockhop::app::DEFAULT_FAN_OUT_LANE_SIZE;
    let in_flight = sockhop::gateway::FAN_OUT_CONCURRENCY;
    let patience = sockhop::gateway::THROTTLE_PATIENCE;
    let mut designs = vec![
        Design::build(
            &setup,
            "today",
            NO_LANES,
            true,
            in_flight,
            TODAYS_THROTTLE_PATIENCE,
        )
        .await?,
        Design::build(&setup, "new", lanes, false, in_flight, patience).await?,
    ];
    if let Some(n) = args.posts_in_flight {
        let name = format!("new, {n} in flight");
        designs.push(Design::build(&setup, &name, lanes, false, n, patience).await?);
    }
    if let Some(ms) = args.throttle_patience_ms {
        let name = format!("new, {ms} ms patience");
        let patience = Duration::from_millis(ms);
        designs.push(Design::build(&setup, &name, lanes, false, in_flight, patience).await?);
    }
    let result = measure(&plan, &args, &params, &designs, &setup).await;
    let _ = client.delete_table().table_name(&table).send().await;
    drop(designs);
    drop(dynamodb);
    result
}

async fn measure(
    plan: &Plan,
    args: &ModelArgs,
    params: &Params,
    designs: &[Design],
    setup: &Setup<'_>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let seeder = &designs[0];
    let seed_store = DynamoStore::new(
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(setup.sdk)
                .endpoint_url(setup.endpoint)
                .build(),
        ),
        setup.table,
    );
    let mut columns: Vec<Column> = designs.iter().map(|_| Column::default()).collect();

    // Subscribers, seeded once: the designs take turns on each channel.
    let mut sizes: Vec<usize> = plan.fan_out.clone();
    sizes.push(plan.throughput_subscribers);
    sizes.extend(&args.cost_sizes);
    sizes.sort_unstable();
    sizes.dedup();
    let seeding = Instant::now();
    let mut seeded = 0;
    for &n in &sizes {
        seed_store
            .seed_subscriptions(
                &subscriptions(&fan_channel(n), &subscriber_prefix(n), n),
                false,
                SEED_CONCURRENCY,
            )
            .await?;
        seeded += n;
    }
    // The priced sizes again, every subscriber resumable.
    for &n in &args.cost_sizes {
        seed_store
            .seed_subscriptions(
                &subscriptions_of(&resumable_channel(n), &resumable_prefix(n), n, true),
                false,
                SEED_CONCURRENCY,
            )
            .await?;
        seeded += n;
    }
    let bytes = subscription_bytes(setup, &fan_channel(sizes[0])).await?;
    println!(
        "  seeded    {seeded} subscriptions ({} channels) in {:.1} s; a subscription item is {bytes:.0} bytes",
        sizes.len(),
        seeding.elapsed().as_secs_f64()
    );
    let mut reads = HashMap::new();
    for &n in &sizes {
        // The second read is the one deliveries see (DynamoDB Local warm).
        let mut read_ms = f64::MAX;
        for _ in 0..2 {
            let read = Instant::now();
            let ids = seeder
                .app
                .store
                .channel_audience(&fan_channel(n), Timestamp::now().secs())
                .await?
                .subscribers;
            anyhow::ensure!(ids.len() == n, "channel of {n} reads {}", ids.len());
            read_ms = read_ms.min(ms(read.elapsed()));
        }
        reads.insert(n, read_ms);
        println!(
            "  reading the {n} subscribers from DynamoDB Local takes {read_ms:.0} ms (part of the figures below; not modelled)"
        );
    }

    let mut round_trips = Vec::new();
    for i in 0..20 {
        let asked = Instant::now();
        seeder
            .app
            .store
            .get_connection(&format!("probe-{i}"), Timestamp::now().secs())
            .await?;
        round_trips.push(ms(asked.elapsed()));
    }
    println!(
        "  a GetItem on DynamoDB Local takes {:.1} ms (p50 of 20; the code's reads and writes are real, not modelled)",
        quantile(&mut round_trips, 0.5)
    );

    println!("== 1. greeting");
    for (design, column) in designs.iter().zip(&mut columns) {
        let (p50, p99, gone) =
            greeting(design, plan.connections, args.connect_rate, params).await?;
        column.greeting = (p50, p99);
        column.greeting_gone = gone;
        println!(
            "  {:<22} p50 {p50:.0} ms, p99 {p99:.0} ms ({gone} posts answered Gone)",
            design.name
        );
    }

    println!("== 2. publish -> last subscriber (and 5. requests and cost)");
    let cost_sizes = &args.cost_sizes;
    for &n in sizes.iter() {
        let timed = plan.fan_out.contains(&n);
        let priced = cost_sizes.contains(&n);
        if !timed && !priced {
            continue;
        }
        for (design, column) in designs.iter().zip(&mut columns) {
            reset_lanes(design, &fan_channel(n)).await?;
            let runs = if timed { plan.messages_for(n) } else { 1 };
            let mut times = Vec::new();
            for run in 0..runs {
                design.idle().await;
                let (priced_at, t0, last) =
                    priced_message(design, &fan_channel(n), n, &subscriber_prefix(n), bytes)
                        .await?;
                times.push(ms(last - t0));
                if run == 0 && priced {
                    column.cost.push(priced_at);
                }
            }
            // A resumable channel's steady state: its second message (the
            // first also opens its recovery window).
            if priced && design.name != "today" {
                let channel = resumable_channel(n);
                reset_lanes(design, &channel).await?;
                let prefix = resumable_prefix(n);
                priced_message(design, &channel, n, &prefix, bytes).await?;
                let (priced_at, ..) = priced_message(design, &channel, n, &prefix, bytes).await?;
                println!(
                    "  {:<22} {n:>6} resumable subscribers: {} requests, ${:.2} per million messages",
                    design.name,
                    priced_at.1.total(),
                    priced_at.2
                );
                column.cost_resumable.push(priced_at);
            }
            mend_closures(design, column, &seed_store, n).await?;
            let median = quantile(&mut times, 0.5);
            if timed {
                column.fan_out.push((n, median));
                println!(
                    "  {:<22} {n:>6} subscribers: {median:.0} ms ({:.1} post round trips; {runs} messages)",
                    design.name,
                    median / params.post.p50_ms
                );
            }
        }
    }

    println!(
        "== 3. messages/s at {} subscribers",
        plan.throughput_subscribers
    );
    let n = plan.throughput_subscribers;
    for (design, column) in designs.iter().zip(&mut columns) {
        reset_lanes(design, &fan_channel(n)).await?;
        design.idle().await;
        let burst = if design.name == "today" {
            plan.burst.min(3)
        } else {
            plan.burst
        };
        let t0 = Instant::now();
        let mut ids = Vec::new();
        for _ in 0..burst {
            ids.push(design.publish(&fan_channel(n)).await?.0);
        }
        let mut last = t0;
        for id in &ids {
            last = last.max(design.arrived(id, n, &subscriber_prefix(n)).await?);
        }
        design.idle().await;
        mend_closures(design, column, &seed_store, n).await?;
        column.messages_per_second = burst as f64 / (last - t0).as_secs_f64();
        column.burst = burst;
        println!(
            "  {:<22} {burst} messages in {:.2} s: {:.1} messages/s",
            design.name,
            (last - t0).as_secs_f64(),
            column.messages_per_second
        );
    }

    println!(
        "== 4. healthy p99 with 10% of {} sockets stalled or throttled ({} messages, {}/s)",
        plan.stall_subscribers, plan.stall_messages, args.stall_rate
    );
    for (case, behaviour) in [
        ("none", Behaviour::Healthy),
        ("stalled", Behaviour::Stalled),
        ("throttled", Behaviour::Throttled),
    ] {
        for (d, (design, column)) in designs.iter().zip(&mut columns).enumerate() {
            let p99 = stalled(
                design,
                &seed_store,
                &format!("stall-{case}-{d}"),
                plan,
                args.stall_rate,
                behaviour,
            )
            .await?;
            column.stalled.push((case, p99));
            println!("  {:<22} {case:<9} healthy p99 {p99:.0} ms", design.name);
        }
    }
    for (design, column) in designs.iter().zip(&mut columns) {
        column.most_in_flight = design
            .queue
            .counts
            .most_in_flight
            .load(std::sync::atomic::Ordering::Relaxed);
        column.throttled_answers = design
            .sockets
            .throttled_answers
            .load(std::sync::atomic::Ordering::Relaxed);
    }
    println!("  (measured in {:.0} s)", started.elapsed().as_secs_f64());
    print_summary(plan, params, designs, &columns, &reads);
    Ok(())
}

fn fan_channel(n: usize) -> String {
    format!("fan-{n}")
}

/// The channel of `n` subscribers that all asked to resume, and their ids' start.
fn resumable_channel(n: usize) -> String {
    format!("fan-resumable-{n}")
}

fn resumable_prefix(n: usize) -> String {
    format!("r{n}-")
}

/// Publishes one message to `channel` of `n` subscribers and waits for it to
/// reach them all: what it cost ((n, requests, $ per million messages)),
/// when it was published and when the last socket had it.
async fn priced_message(
    design: &Design,
    channel: &str,
    n: usize,
    prefix: &str,
    bytes: f64,
) -> anyhow::Result<((usize, Requests, f64), Instant, Instant)> {
    design.idle().await;
    let requests_before = design.app.requests.snapshot();
    let tally_before = design.tally();
    let (id, t0) = design.publish(channel).await?;
    let last = design.arrived(&id, n, prefix).await?;
    design.idle().await;
    let requests = Requests::between(
        &requests_before,
        &design.app.requests.snapshot(),
        design.tally().minus(tally_before),
    );
    let dollars = requests
        .usage(n as f64, bytes)
        .dollars(&crate::cost::US_EAST_1);
    Ok(((n, requests, dollars.total() * 1e6), t0, last))
}

/// The connection ids of `fan_channel(n)`'s seeded subscribers start so.
fn subscriber_prefix(n: usize) -> String {
    format!("f{n}-")
}

/// Connections of the channel of `n` the server closed (a frame missed:
/// throttled past the patience) are counted, and their subscriptions,
/// removed by the cleanup, seeded again for the next design.
async fn mend_closures(
    design: &Design,
    column: &mut Column,
    seed_store: &DynamoStore,
    n: usize,
) -> anyhow::Result<()> {
    let prefix = subscriber_prefix(n);
    let closed = design.sockets.closed_with_prefix(&prefix);
    if closed > 0 {
        *column.closed.entry(n).or_default() += closed;
        println!(
            "  {:<22} {n:>6} subscribers: {closed} connections closed (a frame missed)",
            design.name
        );
        design.idle().await;
        seed_store
            .seed_subscriptions(
                &subscriptions(&fan_channel(n), &prefix, n),
                false,
                SEED_CONCURRENCY,
            )
            .await?;
        design.sockets.reopen_prefix(&prefix);
    }
    Ok(())
}

/// Each design starts a channel as its own first message would find it.
async fn reset_lanes(design: &Design, channel: &str) -> anyhow::Result<()> {
    design.app.store.set_fan_out_laned(channel, false).await?;
    Ok(())
}

/// The size of one seeded subscription item as DynamoDB counts it.
async fn subscription_bytes(setup: &Setup<'_>, channel: &str) -> anyhow::Result<f64> {
    let client = crate::floor::client(setup.endpoint).await;
    crate::subscription_item_bytes(&client, setup.table, channel).await
}

/// `connections` new connections at `rate` a second, each timed from its
/// upgrade request to its `hotsock.connected`; p50, p99 and the Gone answers.
async fn greeting(
    design: &Design,
    connections: usize,
    rate: f64,
    params: &Params,
) -> anyhow::Result<(f64, f64, u64)> {
    let sampler = Sampler::new(0x9e37);
    let gone_before = design
        .sockets
        .gone_answers
        .load(std::sync::atomic::Ordering::Relaxed);
    let exp = Timestamp::now().secs() + 3600;
    let prefix = format!("greet-{}-", design.name.replace(' ', ""));
    let gap = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let mut tasks = Vec::new();
    for i in 0..connections {
        let id = format!("{prefix}{i}");
        let token = sockhop::token::sign_hs256(
            &design.signing_key,
            &json!({"scope": "connect", "uid": format!("u{i}"), "exp": exp}),
        );
        let invoke = sampler.wait(&params.connect_invoke);
        let open = sampler.wait(&params.connect_open);
        let app = design.app.clone();
        let sockets = design.sockets.clone();
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            sockets.opening(&id);
            tokio::time::sleep(invoke).await;
            let cx = Ctx::new(&app, Timestamp::now());
            let connected =
                sockhop::ops::connect::connect(cx, &id, Some(&token), Default::default()).await;
            tokio::time::sleep(open).await;
            sockets.opened(&id);
            connected.map(|()| (id, t0))
        }));
        tokio::time::sleep(gap).await;
    }
    let mut started = HashMap::new();
    let mut refused = 0;
    for task in tasks {
        match task.await? {
            Ok((id, t0)) => {
                started.insert(id, t0);
            }
            Err(refusal) => {
                refused += 1;
                tracing_free_warning(&format!("$connect refused: {refusal}"));
            }
        }
    }
    let accepted = started.len();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut greeted: HashMap<String, Instant> = HashMap::new();
    while greeted.len() < accepted && Instant::now() < deadline {
        for frame in design.sockets.take_frames() {
            if frame.greeting && started.contains_key(&frame.connection_id) {
                greeted.insert(frame.connection_id, frame.at);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    design.idle().await;
    if greeted.len() < accepted || refused * 10 > connections {
        bail!(
            "{}: {} of {connections} connections greeted, {refused} refused",
            design.name,
            greeted.len()
        );
    }
    let mut latencies: Vec<f64> = greeted
        .iter()
        .map(|(id, at)| ms(*at - started[id]))
        .collect();
    let gone = design
        .sockets
        .gone_answers
        .load(std::sync::atomic::Ordering::Relaxed)
        - gone_before;
    Ok((
        quantile(&mut latencies, 0.5),
        quantile(&mut latencies, 0.99),
        gone,
    ))
}

/// Says what went wrong without stopping the run (the bench has no logger).
fn tracing_free_warning(message: &str) {
    eprintln!("  warning: {message}");
}

/// A channel of `plan.stall_subscribers` where every tenth socket behaves
/// as `behaviour`: `plan.stall_messages` messages at `rate` a second; the
/// p99 of publish -> frame over the healthy sockets' frames.
async fn stalled(
    design: &Design,
    seed_store: &DynamoStore,
    channel: &str,
    plan: &Plan,
    rate: f64,
    behaviour: Behaviour,
) -> anyhow::Result<f64> {
    let n = plan.stall_subscribers;
    let prefix = format!("{channel}-");
    seed_store
        .seed_subscriptions(&subscriptions(channel, &prefix, n), true, SEED_CONCURRENCY)
        .await?;
    let odd = |i: usize| i.is_multiple_of(10);
    for i in (0..n).filter(|i| odd(*i)) {
        design
            .sockets
            .set_behaviour(&format!("{prefix}{i}"), behaviour);
    }
    let healthy = n - (0..n).filter(|i| odd(*i)).count();
    design.idle().await;
    design.sockets.take_frames();
    let gap = Duration::from_secs_f64(1.0 / rate.max(0.01));
    let mut published = HashMap::new();
    for _ in 0..plan.stall_messages {
        let (id, t0) = design.publish(channel).await?;
        published.insert(id, t0);
        tokio::time::sleep(gap).await;
    }
    // Every healthy socket gets every message (the others may be cleaned up).
    let deadline = Instant::now() + Duration::from_secs(300);
    for id in published.keys() {
        loop {
            let count = design.sockets.arrivals(id).map_or(0, |a| a.count);
            if count >= healthy || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    design.idle().await;
    let is_healthy = |id: &str| {
        id.strip_prefix(&prefix)
            .and_then(|i| i.parse::<usize>().ok())
            .is_some_and(|i| !odd(i))
    };
    let mut latencies: Vec<f64> = design
        .sockets
        .take_frames()
        .into_iter()
        .filter(|f| is_healthy(&f.connection_id))
        .filter_map(|f| {
            let t0 = published.get(f.message_id.as_deref()?)?;
            Some(ms(f.at - *t0))
        })
        .collect();
    anyhow::ensure!(
        latencies.len() == healthy * plan.stall_messages,
        "{}: {} healthy frames of {}",
        design.name,
        latencies.len(),
        healthy * plan.stall_messages
    );
    Ok(quantile(&mut latencies, 0.99))
}

/// What one message asked of AWS.
#[derive(Debug, Clone, Default, PartialEq)]
struct Requests {
    /// DynamoDB operation -> count, as the app counted them.
    dynamodb: BTreeMap<String, OperationCount>,
    sqs_sends: u64,
    /// Deliver invocations: each is a receive and a delete on SQS.
    deliver_invocations: u64,
    stream_invocations: u64,
    posts: u64,
    /// Modelled time of the deliver (and stream) invocations.
    invocation_ms: f64,
}

impl Requests {
    fn between(
        before: &BTreeMap<String, OperationCount>,
        after: &BTreeMap<String, OperationCount>,
        tally: Tally,
    ) -> Self {
        let dynamodb = after
            .iter()
            .filter(|(op, _)| op.starts_with("dynamodb."))
            .filter_map(|(op, a)| {
                let b = before.get(op).copied().unwrap_or_default();
                let d = OperationCount {
                    requests: a.requests - b.requests,
                    write_units: a.write_units - b.write_units,
                    read_units: a.read_units - b.read_units,
                };
                (d.requests > 0).then(|| (op.clone(), d))
            })
            .collect();
        Requests {
            dynamodb,
            sqs_sends: tally.sends,
            deliver_invocations: tally.batches,
            stream_invocations: tally.stream_invocations,
            posts: tally.posts,
            invocation_ms: tally.invocation_us as f64 / 1000.0,
        }
    }

    /// Requests of every service, the publish function's invocation included.
    fn total(&self) -> u64 {
        let dynamodb: u64 = self.dynamodb.values().map(|c| c.requests).sum();
        dynamodb
            + self.sqs_sends
            + 2 * self.deliver_invocations
            + self.posts
            + self.deliver_invocations
            + self.stream_invocations
            + 1
    }

    /// The message's usage, its subscriber reads re-priced for a channel of
    /// `subscribers` items of `bytes` each (DynamoDB Local's counter prices
    /// a Query page as one 4 KB read; DynamoDB sums the items it read).
    fn usage(&self, subscribers: f64, bytes: f64) -> crate::cost::Usage {
        let (mut wru, mut rru) = (0.0, 0.0);
        for (op, count) in &self.dynamodb {
            wru += count.write_units;
            if op == "dynamodb.Query" {
                // One audience read per delivered batch: one message here.
                rru += crate::cost::read_units(subscribers * bytes, true);
            } else {
                rru += count.read_units;
            }
        }
        let invocations = self.deliver_invocations + self.stream_invocations;
        crate::cost::Usage {
            wru,
            rru,
            sqs_requests: self.sqs_sends as f64 + 2.0 * self.deliver_invocations as f64,
            apigw_messages: self.posts as f64,
            lambda_invocations: invocations as f64 + 1.0,
            lambda_gb_seconds: MEMORY_GB * (self.invocation_ms + PUBLISH_MS) / 1000.0,
        }
    }
}

/// `reads`: how long DynamoDB Local took to read each channel's subscribers
/// (once, before the designs ran), shown beside the times that include it.
fn print_summary(
    plan: &Plan,
    params: &Params,
    designs: &[Design],
    columns: &[Column],
    reads: &HashMap<usize, f64>,
) {
    let names: Vec<&str> = designs.iter().map(|d| d.name.as_str()).collect();
    let row = |label: String, cells: Vec<String>| {
        let mut line = format!("  {label:<44}");
        for cell in cells {
            line.push_str(&format!(" {cell:>22}"));
        }
        println!("{line}");
    };
    println!();
    println!(
        "== Summary (modelled AWS; PostToConnection p50 {:.0} ms)",
        params.post.p50_ms
    );
    row(String::new(), names.iter().map(|n| n.to_string()).collect());
    row(
        "1. greeting p50 / p99".into(),
        columns
            .iter()
            .map(|c| format!("{:.0} / {:.0} ms", c.greeting.0, c.greeting.1))
            .collect(),
    );
    for (i, &n) in plan.fan_out.iter().enumerate() {
        row(
            format!("2. publish -> last of {n}"),
            columns
                .iter()
                .map(|c| {
                    let t = c.fan_out[i].1;
                    format!("{t:.0} ms ({:.1} RTT)", t / params.post.p50_ms)
                })
                .collect(),
        );
        let read = reads.get(&n).copied().unwrap_or(0.0);
        row(
            format!("   less DynamoDB Local's {read:.0} ms read"),
            columns
                .iter()
                .map(|c| {
                    let t = c.fan_out[i].1 - read;
                    format!("{t:.0} ms ({:.1} RTT)", t / params.post.p50_ms)
                })
                .collect(),
        );
    }
    row(
        format!("3. messages/s at {}", plan.throughput_subscribers),
        columns
            .iter()
            .map(|c| format!("{:.1} ({} sent)", c.messages_per_second, c.burst))
            .collect(),
    );
    for (i, case) in ["none", "stalled", "throttled"].iter().enumerate() {
        row(
            format!("4. healthy p99, 10% {case}"),
            columns
                .iter()
                .map(|c| {
                    let base = c.stalled[0].1;
                    let p99 = c.stalled[i].1;
                    if i == 0 {
                        format!("{p99:.0} ms")
                    } else {
                        format!("{p99:.0} ms ({:.2}x)", p99 / base)
                    }
                })
                .collect(),
        );
    }
    let cost_sizes: Vec<usize> = columns[0].cost.iter().map(|(n, _, _)| *n).collect();
    for (i, n) in cost_sizes.iter().enumerate() {
        row(
            format!("5. requests, $ per million messages at {n}"),
            columns
                .iter()
                .map(|c| {
                    let (_, requests, dollars) = &c.cost[i];
                    format!("{} req, ${dollars:.0}", requests.total())
                })
                .collect(),
        );
    }
    for (i, n) in cost_sizes.iter().enumerate() {
        row(
            format!("5b. the same, every subscriber resumable, at {n}"),
            columns
                .iter()
                .map(|c| match c.cost_resumable.get(i) {
                    Some((_, requests, dollars)) => {
                        format!("{} req, ${dollars:.2}", requests.total())
                    }
                    None => "-".to_owned(),
                })
                .collect(),
        );
    }
    let mut sizes: Vec<usize> = plan.fan_out.clone();
    sizes.push(plan.throughput_subscribers);
    sizes.sort_unstable();
    sizes.dedup();
    for n in &sizes {
        if columns.iter().all(|c| !c.closed.contains_key(n)) {
            continue;
        }
        row(
            format!("   connections closed (missed a frame) at {n}"),
            columns
                .iter()
                .map(|c| c.closed.get(n).copied().unwrap_or(0).to_string())
                .collect(),
        );
    }
    row(
        "   posts answered 429 (throttled)".into(),
        columns
            .iter()
            .map(|c| c.throttled_answers.to_string())
            .collect(),
    );
    row(
        "   deliver invocations at once (most)".into(),
        columns
            .iter()
            .map(|c| c.most_in_flight.to_string())
            .collect(),
    );
    println!();
    println!("== Targets (new design)");
    let new = &columns[1];
    let today = &columns[0];
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    println!(
        "  greeting p50 <= 60 ms: {:.0} ms, {}",
        new.greeting.0,
        verdict(new.greeting.0 <= 60.0)
    );
    if let Some((_, t)) = new.fan_out.iter().find(|(n, _)| *n == 10_000) {
        let rtt = t / params.post.p50_ms;
        let read = reads.get(&10_000).copied().unwrap_or(0.0);
        let less = (t - read) / params.post.p50_ms;
        println!(
            "  publish -> last of 10,000 within 10 round trips: {rtt:.1} ({less:.1} less DynamoDB Local's read), {}",
            verdict(rtt <= 10.0)
        );
    }
    println!(
        "  10,000-subscriber channel >= 20 messages/s: {:.1}, {}",
        new.messages_per_second,
        verdict(new.messages_per_second >= 20.0)
    );
    for i in 1..3 {
        let ratio = new.stalled[i].1 / new.stalled[0].1;
        println!(
            "  healthy p99 with 10% {} <= 1.2x: {ratio:.2}x, {}",
            new.stalled[i].0,
            verdict(ratio <= 1.2)
        );
    }
    if params.account_rps > 0.0 {
        let n = plan.throughput_subscribers as f64;
        let floor_ms = ((10_000.0 - params.account_burst).max(0.0) / params.account_rps) * 1000.0;
        println!(
            "  (API Gateway's quota, {:.0} requests/s with a burst of {:.0}, bounds any design: at most {:.2} messages/s to {n:.0} subscribers; \
             the last of 10,000 no sooner than {floor_ms:.0} ms ({:.1} RTT) after a full burst)",
            params.account_rps,
            params.account_burst,
            params.account_rps / n,
            floor_ms / params.post.p50_ms
        );
    }
    if let (Some(n), Some(t)) = (new.cost.first(), today.cost.first()) {
        println!(
            "  $ per million at {} subscribers not above today's: ${:.2} vs ${:.2}, {}",
            n.0,
            n.2,
            t.2,
            verdict(n.2 <= t.2 * 1.0001)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.5), 50.0);
        assert_eq!(quantile(&mut v, 0.99), 99.0);
        assert_eq!(quantile(&mut [], 0.5), 0.0);
    }

    #[test]
    fn a_message_is_priced_from_its_requests() {
        let requests = Requests {
            dynamodb: BTreeMap::from([(
                "dynamodb.Query".to_owned(),
                OperationCount {
                    requests: 3,
                    write_units: 0.0,
                    read_units: 3.0,
                },
            )]),
            sqs_sends: 33,
            deliver_invocations: 33,
            stream_invocations: 0,
            posts: 10_000,
            invocation_ms: 3000.0,
        };
        // 33 sends, 33 receives and deletes, 10,000 posts, 33 deliver
        // invocations, 3 queries, the publish invocation.
        assert_eq!(requests.total(), 33 + 66 + 10_000 + 33 + 3 + 1);
        let usage = requests.usage(10_000.0, 200.0);
        // 2 MB of subscriptions read strongly consistent: 489 blocks of 4 KB.
        assert_eq!(usage.rru, 489.0);
        assert_eq!(usage.sqs_requests, 99.0);
        assert_eq!(usage.lambda_invocations, 34.0);
        assert!((usage.lambda_gb_seconds - 0.25 * 3.01).abs() < 1e-9);
        let dollars = usage.dollars(&crate::cost::US_EAST_1);
        assert!((dollars.apigw - 0.01).abs() < 1e-12);
        assert!((dollars.sqs - 99.0 * 0.5e-6).abs() < 1e-12);
    }
}
