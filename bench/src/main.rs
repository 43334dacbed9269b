//! `bench`: the Sockhop local stage (release build, a child process) measured
//! against its floors in one run — a bare tokio-tungstenite broadcast server
//! (the network floor) and DynamoDB Local's own cost of the database work a
//! message and a subscribe need (the database floors) — plus the AWS requests
//! each operation makes and what they cost. See the README's "Benchmark".
//!
//!   bench [--quick] [--stage PATH] [--dynamodb-endpoint URL] ...
//!   bench bare-server --port N        (the network floor; the bench starts it)
//!   bench soak [--connections N] [--seconds N] [--outages N] ...   (README, "Soak")
//!   bench aws-model [--quick] [--dynamodb-endpoint URL] ...  (README, "AWS-latency model")

mod bare;
mod client;
mod cost;
mod counts;
mod floor;
mod model;
mod procs;
mod report;
mod soak;
mod stats;

use anyhow::{bail, Context};
use base64::Engine;
use clap::{Parser, Subcommand};
use client::{Client, Hub, Publisher, Receipt};
use futures::StreamExt;
use procs::Process;
use report::{number, p50_p99, Row};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::process::Command;

#[derive(Parser)]
#[command(
    about = "Sockhop's local stage against a bare broadcast server and DynamoDB Local's floors",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Sub {
    /// Run the bare broadcast server (the network floor) on 127.0.0.1.
    BareServer {
        #[arg(long)]
        port: u16,
    },
    /// Steady traffic while DynamoDB Local is killed and restarted: counts lost,
    /// duplicated and reordered deliveries and what the table keeps afterwards.
    Soak(soak::SoakArgs),
    /// The real delivery code with AWS's waits (PostToConnection, SQS, Lambda,
    /// the stream's poll): today's design and the new one side by side.
    AwsModel(model::ModelArgs),
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// A smaller, faster run (250 connections, fewer messages).
    #[arg(long)]
    quick: bool,
    /// The stage binary (default: sockhop-local next to this binary).
    #[arg(long)]
    stage: Option<PathBuf>,
    /// Use this DynamoDB instead of starting DynamoDB Local.
    #[arg(long)]
    dynamodb_endpoint: Option<String>,
    /// The repository root (infra/dynamodb-local/start.sh is found from here).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Connections in the big fan-out [default: 1000; quick: 250].
    #[arg(long)]
    connections: Option<usize>,
    /// Subscribers of the small fan-out [default: 100; quick: 50].
    #[arg(long)]
    small: Option<usize>,
    /// Measured messages per fan-out size [default: 40; quick: 15].
    #[arg(long)]
    messages: Option<usize>,
    /// Messages in the sustained burst [default: 20; quick: 10].
    #[arg(long)]
    burst: Option<usize>,
    /// Connections opened at once while connecting.
    #[arg(long, default_value_t = 100)]
    connect_concurrency: usize,
    /// Passes over the counted operations [default: 3; quick: 2].
    #[arg(long)]
    count_passes: Option<usize>,
    /// Where the children's output goes [default: $TMPDIR/sockhop-bench-PID].
    #[arg(long)]
    logs: Option<PathBuf>,
    /// Printed with the results (scripts/bench.sh says which cargo profile).
    #[arg(long, default_value = "")]
    build: String,
}

/// The run's sizes, after `--quick` and explicit flags.
#[derive(Debug, Clone)]
struct Plan {
    connections: usize,
    small: usize,
    messages: usize,
    warmup_messages: usize,
    burst: usize,
    connect_concurrency: usize,
    count_passes: usize,
    warmup_connections: usize,
}

impl Plan {
    fn from(args: &RunArgs) -> anyhow::Result<Self> {
        let pick = |given: Option<usize>, full, quick| {
            given.unwrap_or(if args.quick { quick } else { full })
        };
        let plan = Plan {
            connections: pick(args.connections, 1000, 250),
            small: pick(args.small, 100, 50),
            messages: pick(args.messages, 40, 15),
            warmup_messages: 5,
            burst: pick(args.burst, 20, 10),
            connect_concurrency: args.connect_concurrency.max(1),
            count_passes: pick(args.count_passes, 3, 2).max(1),
            warmup_connections: 50,
        };
        if plan.small == 0 || plan.small > plan.connections {
            bail!("--small must be between 1 and --connections");
        }
        Ok(plan)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Some(Sub::BareServer { port }) => runtime.block_on(bare::serve(port)),
        Some(Sub::Soak(args)) => runtime.block_on(until_signal(soak::run(args))),
        Some(Sub::AwsModel(args)) => runtime.block_on(until_signal(model::run(args))),
        None => runtime.block_on(until_signal(run(cli.run))),
    }
}

/// Runs `work` until it ends or a signal comes. Dropping the work (on a
/// signal) drops every child, which kills it.
async fn until_signal(
    work: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => bail!("interrupted; everything started was stopped"),
        _ = terminate.recv() => bail!("terminated; everything started was stopped"),
        _ = hangup.recv() => bail!("hung up; everything started was stopped"),
    }
}

/// The stage's configuration, made up for this run.
struct Secrets {
    signing_key: Vec<u8>,
    api_key: String,
}

impl Secrets {
    fn new() -> anyhow::Result<Self> {
        Ok(Secrets {
            signing_key: procs::random_bytes(32)?,
            api_key: format!("bench-{}", ulid::Ulid::new()),
        })
    }
}

fn token(secrets: &Secrets, uid: &str, channels: serde_json::Value) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    sockhop::token::sign_hs256(
        &secrets.signing_key,
        &json!({"scope": "connect", "uid": uid, "exp": exp, "channels": channels}),
    )
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let plan = Plan::from(&args)?;
    procs::raise_open_files();
    client::now_us();
    let root = repo_root(args.root.as_deref())?;
    let stage_bin = stage_binary(args.stage.as_deref())?;
    let logs = args.logs.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("sockhop-bench-{}", std::process::id()))
    });
    std::fs::create_dir_all(&logs)?;

    println!("Sockhop benchmark");
    println!("  machine   {}", procs::machine());
    println!(
        "  load      {} (1/5/15 min, before the run)",
        procs::load_average()
    );
    if !args.build.is_empty() {
        println!("  build     {}", args.build);
    }
    println!("  stage     {}", stage_bin.display());
    println!(
        "  plan      {} connections ({} in flight while connecting), fan-outs to {} and {}, {} messages each after {} warm-up, bursts of {}",
        plan.connections, plan.connect_concurrency, plan.small, plan.connections, plan.messages,
        plan.warmup_messages, plan.burst
    );
    println!("  logs      {}", logs.display());

    // DynamoDB Local (unless given), the stage, the bare server.
    let mut dynamodb: Option<Process> = None;
    let endpoint = match &args.dynamodb_endpoint {
        Some(endpoint) => endpoint.clone(),
        None => {
            let port = procs::free_port()?;
            let log = logs.join("dynamodb-local.log");
            dynamodb = Some(start_dynamodb_local(&root, port, None, log).await?);
            format!("http://127.0.0.1:{port}")
        }
    };
    println!("  dynamodb  {endpoint}");

    let secrets = Secrets::new()?;
    let table = format!(
        "sockhop-bench-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let (mut stage, stage_http) = start_stage(
        &stage_bin,
        &endpoint,
        &table,
        &secrets,
        logs.join("stage.log"),
    )
    .await?;

    let bare_port = procs::free_port()?;
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["bare-server", "--port", &bare_port.to_string()]);
    let mut bare = Process::spawn("the bare server", command, logs.join("bare-server.log"))?;
    bare.wait_for_port(bare_port, Duration::from_secs(20))
        .await?;
    let bare_http = format!("http://127.0.0.1:{bare_port}");

    let result = measure(
        &plan,
        &secrets,
        &stage_http,
        &bare_http,
        &endpoint,
        &table,
        &mut stage,
        &bare,
    )
    .await;

    bare.stop().await;
    stage.stop().await;
    match dynamodb {
        Some(dynamodb) => dynamodb.stop().await,
        // A DynamoDB of the caller's keeps nothing of the run.
        None => {
            let _ = floor::client(&endpoint)
                .await
                .delete_table()
                .table_name(&table)
                .send()
                .await;
        }
    }
    result
}

/// The repository root: `given`, or the one this bench was built from.
fn repo_root(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    match given {
        Some(root) => root.to_owned(),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
    }
    .canonicalize()
    .context("the repository root")
}

/// The stage binary: `given`, or sockhop-local next to this binary (the same
/// cargo profile).
fn stage_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let stage_bin = match given {
        Some(path) => path.to_owned(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory of the bench binary")?
            .join("sockhop-local"),
    };
    if !stage_bin.is_file() {
        bail!(
            "no stage binary at {} (build it in the bench's profile: scripts/bench.sh does)",
            stage_bin.display()
        );
    }
    Ok(stage_bin)
}

/// DynamoDB Local on `port` (infra/dynamodb-local/start.sh, which execs java:
/// the child's pid is the JVM's), in memory or keeping its data in `data_dir`;
/// returns once the port accepts connections.
async fn start_dynamodb_local(
    root: &Path,
    port: u16,
    data_dir: Option<&Path>,
    log: PathBuf,
) -> anyhow::Result<Process> {
    let mut command = Command::new("bash");
    command
        .arg(root.join("infra/dynamodb-local/start.sh"))
        .env("PORT", port.to_string())
        .env_remove("DATA_DIR");
    if let Some(dir) = data_dir {
        command.env("DATA_DIR", dir);
    }
    let mut process = Process::spawn("DynamoDB Local", command, log)?;
    process
        .wait_for_port(port, Duration::from_secs(300))
        .await?;
    Ok(process)
}

/// The stage as a child on a free port, on `endpoint`'s table `table`;
/// returns it with its base URL once it is ready.
async fn start_stage(
    stage_bin: &Path,
    endpoint: &str,
    table: &str,
    secrets: &Secrets,
    log: PathBuf,
) -> anyhow::Result<(Process, String)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let stage_port = procs::free_port()?;
    let mut command = Command::new(stage_bin);
    command
        .args(["--port", &stage_port.to_string(), "--host", "127.0.0.1"])
        .args(["--dynamodb-endpoint", endpoint, "--table", table])
        .env("SIGNING_KEY_1_METHOD", "HS256")
        .env("SIGNING_KEY_1_ENCODED", b64.encode(&secrets.signing_key))
        .env(
            "CONNECTION_SECRET_KEY",
            b64.encode(procs::random_bytes(32)?),
        )
        .env("HTTP_API_KEY_1", &secrets.api_key)
        .env("RUST_LOG", "warn")
        .env_remove("SIGNING_KEY_2_METHOD")
        .env_remove("SIGNING_KEY_2_ENCODED")
        .env_remove("TOKEN_AUDIENCE")
        .env_remove("TOKEN_ISSUER");
    let mut stage = Process::spawn("the stage", command, log)?;
    stage
        .wait_for_output("Press Ctrl-C to stop.", Duration::from_secs(120))
        .await?;
    Ok((stage, format!("http://127.0.0.1:{stage_port}")))
}

/// The WebSocket URL (with its token) of connection `<prefix><i>`.
type UrlFor<'a> = Box<dyn Fn(&str, usize) -> String + 'a>;

/// A server under test: the stage or the bare server.
struct Target<'a> {
    name: &'static str,
    pid: u32,
    url: UrlFor<'a>,
    publisher: Publisher,
    stats: Option<stats::StatsClient>,
}

struct Latency {
    /// Publish → receipt, every delivery (ms).
    deliveries: Vec<f64>,
    /// Publish → the last subscriber's receipt, per message (ms).
    last: Vec<f64>,
    /// The POST's own round trip (ms).
    post: Vec<f64>,
}

struct Figures {
    connects_per_s: f64,
    connect_ms: Vec<f64>,
    subscribes_per_s: f64,
    rss_before_kib: u64,
    rss_connected_kib: u64,
    small: Latency,
    large: Latency,
    deliveries_per_s: f64,
    burst_latency_ms: Vec<f64>,
}

struct Runs(u64);

impl Runs {
    fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    plan: &Plan,
    secrets: &Secrets,
    stage_http: &str,
    bare_http: &str,
    endpoint: &str,
    table: &str,
    stage: &mut Process,
    bare: &Process,
) -> anyhow::Result<()> {
    let mut hub = Hub::new();
    let mut runs = Runs(0);
    let stage_ws = stage_http.replacen("http://", "ws://", 1);
    let bare_ws = bare_http.replacen("http://", "ws://", 1);
    let stats_client = stats::StatsClient::new(stage_http);
    let stage_publisher = Publisher::new(stage_http, &secrets.api_key)?;

    // 1. Requests per operation, on the quiet stage.
    println!();
    println!(
        "== Counting requests per operation ({} passes) ...",
        plan.count_passes
    );
    let counter = counts::Counter {
        stats: &stats_client,
        publisher: &stage_publisher,
        http_url: stage_http.to_owned(),
        url: Box::new(|i| {
            let channels = json!({"count-*": {"subscribe": true, "historyStart": 0,
                "messages": {"*": {"publish": true, "echo": true, "react": true}}}});
            format!(
                "{stage_ws}/v1?token={}",
                token(secrets, &format!("counter-{i}"), channels)
            )
        }),
    };
    let mut passes = Vec::new();
    for rep in 0..plan.count_passes {
        passes.push(counter.pass(&mut hub, rep, runs.next()).await?);
    }
    let measured = counts::agree(&passes);
    stage.check_running()?;

    // 2. Database floors, on the same DynamoDB Local.
    println!("== Database floors on DynamoDB Local ...");
    let dynamo = floor::client(endpoint).await;
    let floor_table = format!(
        "sockhop-bench-floor-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let db = floor::Floor::create(dynamo.clone(), floor_table).await?;
    let db_floors = database_floors(&db, plan).await;
    db.delete().await;
    let db_floors = db_floors?;

    // 3. The bare server, then the stage.
    let bare_target = Target {
        name: "bare server",
        pid: bare.pid(),
        url: Box::new(|_, _| format!("{bare_ws}/v1")),
        publisher: Publisher::new(bare_http, "none")?,
        stats: None,
    };
    println!("== Bare broadcast server ...");
    let bare_figures = fan_out(&bare_target, plan, &mut hub, &mut runs).await?;
    let stage_target = Target {
        name: "stage",
        pid: stage.pid(),
        url: Box::new(|prefix, i| {
            let channels = json!({"bench-*": {"subscribe": true}, "warm-*": {"subscribe": true}});
            format!(
                "{stage_ws}/v1?token={}",
                token(secrets, &format!("{prefix}{i}"), channels)
            )
        }),
        publisher: stage_publisher.clone(),
        stats: Some(stats::StatsClient::new(stage_http)),
    };
    println!("== Sockhop local stage ...");
    let (stage_figures, subscription_bytes) = {
        let (figures, clients) = fan_out_keep(&stage_target, plan, &mut hub, &mut runs).await?;
        let bytes =
            subscription_item_bytes(&dynamo, table, &format!("bench-{}", plan.connections)).await;
        for client in &clients {
            client.close();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(clients);
        (figures, bytes?)
    };
    stage.check_running()?;
    if hub.errors > 0 {
        println!(
            "  ({} hotsock.error frames were received during the run)",
            hub.errors
        );
    }
    let queue = stats_client.get().await?.queue;

    println!("  load average after the run: {}", procs::load_average());
    print_results(
        plan,
        &bare_figures,
        &stage_figures,
        &db_floors,
        &measured,
        subscription_bytes,
        queue,
    );
    Ok(())
}

struct DatabaseFloors {
    /// PutItem + Query per message (ms), for the small and the large partition.
    small: Vec<f64>,
    large: Vec<f64>,
    /// (concurrency, subscribes per second, conflict retries).
    transactions: Vec<(usize, f64, u64)>,
}

impl DatabaseFloors {
    fn best_subscribes_per_s(&self) -> f64 {
        self.transactions.iter().map(|t| t.1).fold(0.0, f64::max)
    }
}

async fn database_floors(db: &floor::Floor, plan: &Plan) -> anyhow::Result<DatabaseFloors> {
    let data = json!({"bench": {"run": 0, "seq": 0, "sentUs": 0}}).to_string();
    let mut per_size = Vec::new();
    for (channel, n) in [("small", plan.small), ("large", plan.connections)] {
        db.seed_subscribers(channel, n).await?;
        let mut samples = Vec::new();
        for k in 0..plan.warmup_messages + plan.messages {
            let (took, read) = db.message(channel, &data).await?;
            anyhow::ensure!(
                read == n,
                "the floor's query read {read} of {n} subscribers"
            );
            if k >= plan.warmup_messages {
                samples.push(ms(took));
            }
        }
        per_size.push(samples);
    }
    db.seed_connections(plan.connections).await?;
    let warm = plan.warmup_connections.min(plan.connections);
    db.subscribes("warm-up", warm, 16).await?;
    let mut transactions = Vec::new();
    for (i, concurrency) in [plan.connections, 100, 10].into_iter().enumerate() {
        let (took, retries) = db
            .subscribes(&format!("tx-{i}"), plan.connections, concurrency)
            .await?;
        transactions.push((
            concurrency,
            plan.connections as f64 / took.as_secs_f64(),
            retries,
        ));
    }
    let large = per_size.pop().unwrap_or_default();
    let small = per_size.pop().unwrap_or_default();
    Ok(DatabaseFloors {
        small,
        large,
        transactions,
    })
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Connects `count` clients (client `i` at `url(i)`), `concurrency` at a
/// time, each reporting to `events`; returns them in index order with each
/// one's connect time (ms).
async fn connect_many(
    url: impl Fn(usize) -> String,
    count: usize,
    concurrency: usize,
    events: &tokio::sync::mpsc::UnboundedSender<client::Event>,
) -> anyhow::Result<(Vec<Client>, Vec<f64>)> {
    // Tokens are signed before the clock starts.
    let urls: Vec<(usize, String)> = (0..count).map(|i| (i, url(i))).collect();
    let results: Vec<anyhow::Result<(Client, f64)>> = futures::stream::iter(urls)
        .map(|(i, url)| {
            let events = events.clone();
            async move {
                let started = Instant::now();
                let client = client::connect(&url, i, events, Duration::from_secs(30))
                    .await
                    .with_context(|| format!("connection {i}"))?;
                Ok((client, ms(started.elapsed())))
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut clients = Vec::with_capacity(count);
    let mut times = Vec::with_capacity(count);
    for result in results {
        let (client, took) = result?;
        clients.push(client);
        times.push(took);
    }
    clients.sort_by_key(|c| c.index);
    Ok((clients, times))
}

async fn subscribe_all(
    clients: &[Client],
    channel: &str,
    hub: &mut Hub,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for client in clients {
        client.subscribe(channel)?;
    }
    hub.subscribed(channel, clients.len(), Duration::from_secs(120))
        .await?;
    Ok(started.elapsed())
}

/// Waits until the target has caught up (the stage: nothing queued and no
/// request for a while; the bare server has nothing to catch up on).
async fn settle(target: &Target<'_>) -> anyhow::Result<()> {
    match &target.stats {
        Some(stats) => {
            stats
                .settle(Duration::from_millis(500), Duration::from_secs(60))
                .await?;
        }
        None => tokio::time::sleep(Duration::from_millis(300)).await,
    }
    Ok(())
}

async fn latency(
    target: &Target<'_>,
    channel: &str,
    subscribers: usize,
    plan: &Plan,
    hub: &mut Hub,
    runs: &mut Runs,
) -> anyhow::Result<Latency> {
    let run = runs.next();
    let mut figures = Latency {
        deliveries: Vec::new(),
        last: Vec::new(),
        post: Vec::new(),
    };
    for seq in 0..(plan.warmup_messages + plan.messages) as u64 {
        let started = Instant::now();
        target.publisher.publish(channel, run, seq, 0).await?;
        let post = ms(started.elapsed());
        let receipts = hub
            .receipts(run, Some(seq), subscribers, Duration::from_secs(60))
            .await
            .with_context(|| format!("{}: fan-out to {subscribers}", target.name))?;
        if seq >= plan.warmup_messages as u64 {
            let us: Vec<f64> = receipts
                .iter()
                .map(|r| r.latency_us() as f64 / 1000.0)
                .collect();
            figures.last.push(us.iter().copied().fold(0.0, f64::max));
            figures.deliveries.extend(us);
            figures.post.push(post);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(figures)
}

async fn fan_out(
    target: &Target<'_>,
    plan: &Plan,
    hub: &mut Hub,
    runs: &mut Runs,
) -> anyhow::Result<Figures> {
    let (figures, clients) = fan_out_keep(target, plan, hub, runs).await?;
    for client in &clients {
        client.close();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(clients);
    Ok(figures)
}

/// Every fan-out measurement on one target; returns the clients still open.
async fn fan_out_keep(
    target: &Target<'_>,
    plan: &Plan,
    hub: &mut Hub,
    runs: &mut Runs,
) -> anyhow::Result<(Figures, Vec<Client>)> {
    // Warm-up: connections, a subscribe each, a few messages, then gone.
    let (warm, _) = connect_many(
        |i| (target.url)("warm-", i),
        plan.warmup_connections,
        25,
        &hub.tx,
    )
    .await?;
    subscribe_all(&warm, "warm-up", hub).await?;
    let run = runs.next();
    for seq in 0..plan.warmup_messages as u64 {
        target.publisher.publish("warm-up", run, seq, 0).await?;
        hub.receipts(run, Some(seq), warm.len(), Duration::from_secs(30))
            .await?;
    }
    for client in &warm {
        client.close();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(warm);
    settle(target).await?;
    hub.drain();

    let rss_before_kib = procs::rss_kib(target.pid)?;
    let started = Instant::now();
    let (clients, connect_ms) = connect_many(
        |i| (target.url)("u", i),
        plan.connections,
        plan.connect_concurrency,
        &hub.tx,
    )
    .await?;
    let connects_per_s = plan.connections as f64 / started.elapsed().as_secs_f64();
    settle(target).await?;
    let rss_connected_kib = procs::rss_kib(target.pid)?;
    println!(
        "  {}: {} connected at {}/s; RSS {} -> {} KiB",
        target.name,
        clients.len(),
        number(connects_per_s, ""),
        rss_before_kib,
        rss_connected_kib
    );

    let large = format!("bench-{}", plan.connections);
    let small = format!("bench-{}", plan.small);
    let took = subscribe_all(&clients, &large, hub).await?;
    let subscribes_per_s = plan.connections as f64 / took.as_secs_f64();
    subscribe_all(&clients[..plan.small], &small, hub).await?;
    settle(target).await?;
    println!(
        "  {}: {} subscribed at {}/s",
        target.name,
        clients.len(),
        number(subscribes_per_s, "")
    );

    let small_latency = latency(target, &small, plan.small, plan, hub, runs).await?;
    settle(target).await?;
    let large_latency = latency(target, &large, plan.connections, plan, hub, runs).await?;
    settle(target).await?;
    println!(
        "  {}: p99 publish->receive {} ms at {}, {} ms at {}",
        target.name,
        number(p50_p99(&small_latency.deliveries).1, ""),
        plan.small,
        number(p50_p99(&large_latency.deliveries).1, ""),
        plan.connections
    );

    let run = runs.next();
    let started = client::now_us();
    for seq in 0..plan.burst as u64 {
        target.publisher.publish(&large, run, seq, 0).await?;
    }
    let receipts: Vec<Receipt> = hub
        .receipts(
            run,
            None,
            plan.burst * plan.connections,
            Duration::from_secs(300),
        )
        .await
        .with_context(|| format!("{}: burst", target.name))?;
    let end = receipts.iter().map(|r| r.at_us).max().unwrap_or(started);
    let seconds = (end.saturating_sub(started) as f64 / 1e6).max(1e-6);
    let deliveries_per_s = receipts.len() as f64 / seconds;
    let burst_latency_ms = receipts
        .iter()
        .map(|r| r.latency_us() as f64 / 1000.0)
        .collect();
    settle(target).await?;
    println!(
        "  {}: burst of {} x {} delivered at {}/s",
        target.name,
        plan.burst,
        plan.connections,
        number(deliveries_per_s, "")
    );
    Ok((
        Figures {
            connects_per_s,
            connect_ms,
            subscribes_per_s,
            rss_before_kib,
            rss_connected_kib,
            small: small_latency,
            large: large_latency,
            deliveries_per_s,
            burst_latency_ms,
        },
        clients,
    ))
}

/// Mean DynamoDB size (AWS's rules) of the stage's subscription items of
/// `channel`: what a subscriber Query reads per subscriber.
async fn subscription_item_bytes(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    channel: &str,
) -> anyhow::Result<f64> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let mut sizes = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .filter_expression("#c = :c AND attribute_exists(#s)")
            .expression_attribute_names("#c", "channel")
            .expression_attribute_names("#s", "subscribedAtMs")
            .expression_attribute_values(":c", AttributeValue::S(channel.to_owned()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .context("Scan of the stage's table")?;
        sizes.extend(page.items().iter().map(floor::item_size));
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    anyhow::ensure!(
        !sizes.is_empty(),
        "no subscription items of {channel} in {table}"
    );
    Ok(sizes.iter().sum::<usize>() as f64 / sizes.len() as f64)
}

fn print_results(
    plan: &Plan,
    bare: &Figures,
    stage: &Figures,
    db: &DatabaseFloors,
    measured: &[counts::Measured],
    subscription_bytes: f64,
    queue: stats::QueueStats,
) {
    let (n, s) = (plan.connections, plan.small);
    let mut rows = Vec::new();
    let mut row = |metric: String, sockhop: f64, floor: f64, unit, higher_is_better, floor_name| {
        rows.push(Row {
            metric,
            sockhop,
            floor,
            unit,
            higher_is_better,
            floor_name,
        })
    };
    row(
        format!("connects/s ({n}, {} at once)", plan.connect_concurrency),
        stage.connects_per_s,
        bare.connects_per_s,
        "/s",
        true,
        "bare server",
    );
    let (stage_c50, stage_c99) = p50_p99(&stage.connect_ms);
    let (bare_c50, bare_c99) = p50_p99(&bare.connect_ms);
    row(
        "connect time p50".into(),
        stage_c50,
        bare_c50,
        " ms",
        false,
        "bare server",
    );
    row(
        "connect time p99".into(),
        stage_c99,
        bare_c99,
        " ms",
        false,
        "bare server",
    );
    row(
        format!("subscribes/s ({n} at once)"),
        stage.subscribes_per_s,
        db.best_subscribes_per_s(),
        "/s",
        true,
        "DynamoDB Local transactions",
    );
    row(
        format!("subscribes/s ({n} at once) vs bare"),
        stage.subscribes_per_s,
        bare.subscribes_per_s,
        "/s",
        true,
        "bare server",
    );
    for (subscribers, stage_l, bare_l) in [
        (s, &stage.small, &bare.small),
        (n, &stage.large, &bare.large),
    ] {
        let (sp50, sp99) = p50_p99(&stage_l.deliveries);
        let (bp50, bp99) = p50_p99(&bare_l.deliveries);
        row(
            format!("publish->receive p50, {subscribers} subs"),
            sp50,
            bp50,
            " ms",
            false,
            "bare server",
        );
        row(
            format!("publish->receive p99, {subscribers} subs"),
            sp99,
            bp99,
            " ms",
            false,
            "bare server",
        );
    }
    for (subscribers, stage_l, floor_samples) in
        [(s, &stage.small, &db.small), (n, &stage.large, &db.large)]
    {
        let (sp50, sp99) = p50_p99(&stage_l.last);
        let (fp50, fp99) = p50_p99(floor_samples);
        row(
            format!("publish->last delivery p50, {subscribers} subs"),
            sp50,
            fp50,
            " ms",
            false,
            "DynamoDB Local PutItem+Query",
        );
        row(
            format!("publish->last delivery p99, {subscribers} subs"),
            sp99,
            fp99,
            " ms",
            false,
            "DynamoDB Local PutItem+Query",
        );
    }
    row(
        format!("deliveries/s ({} x {n})", plan.burst),
        stage.deliveries_per_s,
        bare.deliveries_per_s,
        "/s",
        true,
        "bare server",
    );
    let per_conn =
        |f: &Figures| (f.rss_connected_kib as f64 - f.rss_before_kib as f64).max(0.0) / n as f64;
    row(
        format!("RSS per connection ({n})"),
        per_conn(stage),
        per_conn(bare),
        " KiB",
        false,
        "bare server",
    );

    println!();
    println!("== Results (ratio = Sockhop's time or memory / the floor's; 1.00 = at the floor)");
    report::print_rows(&rows);
    let (bp50, bp99) = p50_p99(&bare.burst_latency_ms);
    let (sp50, sp99) = p50_p99(&stage.burst_latency_ms);
    println!(
        "  (burst publish->receive: stage p50 {} / p99 {} ms, bare p50 {} / p99 {} ms; POST /publish round trip p50 {} ms)",
        number(sp50, ""),
        number(sp99, ""),
        number(bp50, ""),
        number(bp99, ""),
        number(p50_p99(&stage.large.post).0, "")
    );
    println!(
        "  (RSS: stage {} -> {} KiB, bare {} -> {} KiB; transaction floor per concurrency: {})",
        stage.rss_before_kib,
        stage.rss_connected_kib,
        bare.rss_before_kib,
        bare.rss_connected_kib,
        db.transactions
            .iter()
            .map(|(c, rate, retries)| format!(
                "{c} in flight {}/s ({retries} conflict retries)",
                number(*rate, "")
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // Targets.
    let p99_ratio =
        p50_p99(&stage.large.deliveries).1 / p50_p99(&bare.large.deliveries).1.max(1e-9);
    let subscribe_ratio = db.best_subscribes_per_s() / stage.subscribes_per_s.max(1e-9);
    let writes = |name: &str| {
        measured
            .iter()
            .find(|m| m.operation == name)
            .map_or(0, |m| stats::dynamodb_totals(&m.counts).1)
    };
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!();
    println!("== Targets");
    println!(
        "  p99 fan-out to {n} within 3x the bare server: {:.2}x -> {}",
        p99_ratio,
        verdict(p99_ratio <= 3.0)
    );
    println!(
        "  {n} subscribes within 2x DynamoDB Local's transaction floor: {:.2}x -> {}",
        subscribe_ratio,
        verdict(subscribe_ratio <= 2.0)
    );
    let unstored = writes("publish, server, unstored");
    println!(
        "  zero DynamoDB writes for an unstored message: {unstored} -> {}",
        verdict(unstored == 0)
    );
    let stored = writes("publish, server, stored");
    println!(
        "  one DynamoDB write for a stored message: {stored} -> {}",
        verdict(stored == 1)
    );

    // Requests per operation.
    println!();
    println!(
        "== Requests per operation (stage's /dev/stats deltas; one connection, one subscriber)"
    );
    let mut header = vec!["operation".to_owned()];
    let mut columns: Vec<String> = measured
        .iter()
        .flat_map(|m| m.counts.keys().cloned())
        .collect();
    columns.sort();
    columns.dedup();
    header.extend(columns.iter().map(|c| short_operation(c)));
    header.extend(["WRU", "RRU"].map(String::from));
    let table: Vec<Vec<String>> = measured
        .iter()
        .map(|m| {
            let mut cells = vec![format!(
                "{}{}",
                m.operation,
                if m.repetitions_agree() { "" } else { " *" }
            )];
            for column in &columns {
                cells.push(
                    m.counts
                        .get(column)
                        .map_or("-".into(), |c| c.requests.to_string()),
                );
            }
            let (_, _, wru, rru) = stats::dynamodb_totals(&m.counts);
            cells.push(format!("{wru}"));
            cells.push(format!("{rru}"));
            cells
        })
        .collect();
    report::print_table(
        &header.iter().map(String::as_str).collect::<Vec<_>>(),
        &table,
    );
    if measured.iter().any(|m| !m.repetitions_agree()) {
        println!("  * passes differed; the most common delta is shown. All passes:");
        for m in measured.iter().filter(|m| !m.repetitions_agree()) {
            for (i, counts) in m.all.iter().enumerate() {
                let text: Vec<String> = counts
                    .iter()
                    .map(|(op, c)| format!("{}={}", short_operation(op), c.requests))
                    .collect();
                println!("    {} pass {}: {}", m.operation, i + 1, text.join(" "));
            }
        }
    }
    if !columns.iter().any(|c| c.starts_with("sqs.")) {
        println!("  (no sqs.* requests are counted: the local stage's queue is in-process; the cost model adds SQS's requests)");
    }
    println!(
        "  (queue at the end: {} waiting, {} dead letters)",
        queue.waiting, queue.dead_letters
    );

    // Cost per million messages.
    let find = |name: &str| {
        measured
            .iter()
            .find(|m| m.operation == name)
            .map(|m| m.counts.clone())
            .unwrap_or_default()
    };
    let durations = cost::DURATIONS;
    let prices = cost::US_EAST_1;
    let connection_bytes = 28.0;
    let mut rows = Vec::new();
    for subscribers in [10.0, 1000.0] {
        let lines = [
            (
                "Sockhop, server publish, unstored",
                cost::sockhop(
                    &find("publish, server, unstored"),
                    cost::Door::Server,
                    subscribers,
                    subscription_bytes,
                    1.0,
                    false,
                    &durations,
                ),
            ),
            (
                "Sockhop, server publish, stored",
                cost::sockhop(
                    &find("publish, server, stored"),
                    cost::Door::Server,
                    subscribers,
                    subscription_bytes,
                    1.0,
                    true,
                    &durations,
                ),
            ),
            (
                "Sockhop, client publish, unstored",
                cost::sockhop(
                    &find("publish, client, unstored"),
                    cost::Door::Client,
                    subscribers,
                    subscription_bytes,
                    1.0,
                    false,
                    &durations,
                ),
            ),
            (
                "scan-all fan-out (simple-websockets-chat-app)",
                cost::scan_all(subscribers, connection_bytes, &durations),
            ),
        ];
        for (design, usage) in lines {
            let d = usage.dollars(&prices);
            let m = |x: f64| format!("${:.2}", x * 1e6);
            rows.push(vec![
                design.to_owned(),
                format!("{subscribers}"),
                format!("{}/{}", fmt_units(usage.wru), fmt_units(usage.rru)),
                fmt_units(usage.sqs_requests),
                fmt_units(usage.apigw_messages),
                fmt_units(usage.lambda_invocations),
                m(d.dynamodb),
                m(d.sqs),
                m(d.apigw),
                m(d.lambda),
                m(d.total()),
            ]);
        }
    }
    println!();
    println!("== AWS cost per million messages (us-east-1 on-demand list prices, no free tier)");
    println!(
        "  prices: DynamoDB $0.625/M WRU, $0.125/M RRU; SQS FIFO $0.50/M requests; API Gateway WebSocket $1.00/M messages; Lambda $0.20/M requests + $0.0000133334/GB-s (arm64)"
    );
    println!(
        "  model: per message, unbatched (a queue batch of 1); subscriber Query re-priced at {:.0} bytes per subscription item (measured), strongly consistent; scan-all items {connection_bytes:.0} bytes (connectionId only), eventually consistent Scan; Lambda {:.0} MB, {:.0} ms + {:.0} ms per {:.0} posts (assumed)",
        subscription_bytes, durations.memory_gb * 1024.0, durations.base_ms, durations.round_ms, durations.posts_in_flight
    );
    report::print_table(
        &[
            "design",
            "subs",
            "WRU/RRU",
            "SQS req",
            "APIGW msg",
            "Lambda inv",
            "DynamoDB",
            "SQS",
            "API GW",
            "Lambda",
            "total",
        ],
        &rows,
    );
}

fn fmt_units(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// `dynamodb.TransactWriteItems` → `TransactWriteItems`, `apigateway.PostToConnection` → `Post`.
fn short_operation(op: &str) -> String {
    let name = op.split_once('.').map_or(op, |(_, name)| name);
    match name {
        "PostToConnection" => "Post".into(),
        "DeleteConnection" => "DeleteConn".into(),
        "TransactWriteItems" => "TransactWrite".into(),
        other => other.to_owned(),
    }
}
