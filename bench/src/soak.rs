//! `bench soak`: steady traffic on the local stage while its DynamoDB Local is
//! killed (SIGKILL, a crash) and restarted on the same port with its data kept,
//! a few times. Counts, per message and per subscriber, what was acknowledged,
//! delivered, lost, duplicated and reordered; then everyone disconnects and the
//! stage's table must return to its baseline (no connection or subscription
//! item, every subscription count 0). See the README's "Soak".
//!
//! A check, not a measurement: it fails (non-zero exit) when a message is
//! missing or duplicated, or the table keeps leftovers.

use crate::client::{self, Client, Event, Hub, Publisher};
use crate::procs::{self, Process};
use crate::report::{number, p50_p99};
use crate::stats::StatsClient;
use crate::{connect_many, start_dynamodb_local, start_stage, token, Secrets};
use anyhow::{bail, ensure, Context};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone)]
pub struct SoakArgs {
    /// WebSocket connections, each subscribed to one channel (round-robin).
    #[arg(long, default_value_t = 3000)]
    connections: usize,
    /// Channels the connections are spread over.
    #[arg(long, default_value_t = 10)]
    channels: usize,
    /// Minutes of publishing.
    #[arg(long, conflicts_with = "seconds")]
    minutes: Option<u64>,
    /// Seconds of publishing [default: 120].
    #[arg(long)]
    seconds: Option<u64>,
    /// Server publishes per second, over all channels (half stored, half not).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// DynamoDB Local crashes, spread evenly over the publishing.
    #[arg(long, default_value_t = 5)]
    outages: usize,
    /// How long DynamoDB Local stays down each time (its restart comes on top).
    #[arg(long, default_value_t = 3.0)]
    outage_seconds: f64,
    /// Percent of the connections (every n-th of each channel) that may resume
    /// (`recover`), drop their socket before the first outage and come back
    /// on a new one, resuming where they left off (0: no such phase).
    #[arg(long, default_value_t = 10.0)]
    resume_drop_percent: f64,
    /// How long the dropped connections stay away.
    #[arg(long, default_value_t = 3.0)]
    away_seconds: f64,
    /// The longest wait for late deliveries once publishing stops (the stage
    /// retries a failed delivery after 1, 2, 4 and 8 s).
    #[arg(long, default_value_t = 30.0)]
    drain_seconds: f64,
    /// The longest wait for the table to return to its baseline once every
    /// client has disconnected.
    #[arg(long, default_value_t = 30.0)]
    cleanup_seconds: f64,
    /// Connections opened at once while connecting.
    #[arg(long, default_value_t = 100)]
    connect_concurrency: usize,
    /// The stage binary (default: sockhop-local next to this binary).
    #[arg(long)]
    stage: Option<PathBuf>,
    /// The repository root (infra/dynamodb-local/start.sh is found from here).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Where the children's output goes [default: $TMPDIR/sockhop-soak-PID].
    #[arg(long)]
    logs: Option<PathBuf>,
}

/// `run` of every soak message's `data.bench`.
const RUN: u64 = 1;
/// `store` of the stored half of the messages (seconds).
const STORED_SECONDS: i64 = 60;
/// No receipt for this long, with the stage's queue empty: nothing more is on
/// its way.
const QUIET: Duration = Duration::from_secs(3);

struct Plan {
    connections: usize,
    channels: usize,
    duration: Duration,
    rate: f64,
    outages: usize,
    outage: Duration,
    drain: Duration,
    cleanup: Duration,
    connect_concurrency: usize,
    /// Every `resume_every`-th connection of each channel drops and resumes
    /// (0: none).
    resume_every: usize,
    away: Duration,
}

impl Plan {
    fn from(args: &SoakArgs) -> anyhow::Result<Self> {
        let seconds = match (args.minutes, args.seconds) {
            (Some(minutes), _) => minutes * 60,
            (None, Some(seconds)) => seconds,
            (None, None) => 120,
        };
        let plan = Plan {
            connections: args.connections,
            channels: args.channels,
            duration: Duration::from_secs(seconds),
            rate: args.rate,
            outages: args.outages,
            outage: Duration::from_secs_f64(args.outage_seconds.max(0.0)),
            drain: Duration::from_secs_f64(args.drain_seconds.max(0.0)),
            cleanup: Duration::from_secs_f64(args.cleanup_seconds.max(0.0)),
            connect_concurrency: args.connect_concurrency.max(1),
            resume_every: if args.resume_drop_percent > 0.0 {
                (100.0 / args.resume_drop_percent.min(100.0))
                    .round()
                    .max(1.0) as usize
            } else {
                0
            },
            away: Duration::from_secs_f64(args.away_seconds.max(0.0)),
        };
        ensure!(plan.channels > 0, "--channels must be at least 1");
        ensure!(
            plan.connections >= plan.channels,
            "--connections must be at least --channels (every channel needs a subscriber)"
        );
        ensure!(
            plan.rate > 0.0 && plan.rate.is_finite(),
            "--rate must be positive"
        );
        ensure!(!plan.duration.is_zero(), "the soak needs some seconds");
        if let Some(last) = plan.outage_starts().last() {
            ensure!(
                *last + plan.outage < plan.duration,
                "{} outages of {:?} do not fit in {:?} of publishing",
                plan.outages,
                plan.outage,
                plan.duration
            );
        }
        if plan.resume_every > 0 {
            let first_outage = plan.outage_starts().first().copied();
            let back = plan.drop_at() + plan.away;
            ensure!(
                back < first_outage.unwrap_or(plan.duration),
                "the resume phase (dropped at {:?}, back {:?} later) does not fit before the first outage",
                plan.drop_at(),
                plan.away
            );
        }
        Ok(plan)
    }

    /// Whether connection `i` is one that drops and resumes.
    fn resumes(&self, i: usize) -> bool {
        self.resume_every > 0 && (i / self.channels).is_multiple_of(self.resume_every)
    }

    /// When the resuming connections drop, after publishing started: halfway
    /// to the first outage (or the end), so they come back before it.
    fn drop_at(&self) -> Duration {
        let until = self
            .outage_starts()
            .first()
            .copied()
            .unwrap_or(self.duration);
        until / 2 - self.away.min(until / 2) / 2
    }

    /// When each outage begins, after publishing started: evenly spread, none
    /// at either end.
    fn outage_starts(&self) -> Vec<Duration> {
        (1..=self.outages)
            .map(|k| self.duration.mul_f64(k as f64 / (self.outages + 1) as f64))
            .collect()
    }

    fn channel(c: usize) -> String {
        format!("soak-{c}")
    }
}

/// Removes a folder when dropped (also on an error or a signal).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// DynamoDB Local with its data on disk, so it can crash and come back with
/// what it had, on the same port (the stage keeps its endpoint).
struct Dynamo {
    root: PathBuf,
    port: u16,
    data: PathBuf,
    logs: PathBuf,
    starts: usize,
    process: Option<Process>,
}

impl Dynamo {
    /// Starts it. Called from the soak's main task only (procs::Process::spawn).
    async fn start(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        let log = self
            .logs
            .join(format!("dynamodb-local-{}.log", self.starts));
        let process = start_dynamodb_local(&self.root, self.port, Some(&self.data), log).await?;
        self.process = Some(process);
        Ok(())
    }

    /// SIGKILL to the JVM (start.sh execs java, so the child is the JVM).
    async fn crash(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill().await;
        }
    }

    async fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            process.stop().await;
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    let plan = Plan::from(&args)?;
    procs::raise_open_files();
    client::now_us();
    let root = crate::repo_root(args.root.as_deref())?;
    let stage_bin = crate::stage_binary(args.stage.as_deref())?;
    let logs = args.logs.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("sockhop-soak-{}", std::process::id()))
    });
    std::fs::create_dir_all(&logs)?;
    // Declared before DynamoDB Local, so dropped after it.
    let data = TempDir(logs.join("dynamodb-data"));

    println!("Sockhop soak");
    println!("  machine   {}", procs::machine());
    println!(
        "  load      {} (1/5/15 min, before the run)",
        procs::load_average()
    );
    println!("  stage     {}", stage_bin.display());
    println!(
        "  plan      {} connections on {} channels, {}/s server publishes for {} s (half stored for {STORED_SECONDS} s, half unstored), {} DynamoDB Local crashes of {} s",
        plan.connections,
        plan.channels,
        number(plan.rate, ""),
        plan.duration.as_secs(),
        plan.outages,
        number(plan.outage.as_secs_f64(), "")
    );
    println!("  logs      {}", logs.display());

    let mut dynamo = Dynamo {
        root,
        port: procs::free_port()?,
        data: data.0.clone(),
        logs: logs.clone(),
        starts: 0,
        process: None,
    };
    dynamo.start().await?;
    let endpoint = dynamo.endpoint();
    println!("  dynamodb  {endpoint} (data in {})", data.0.display());

    let secrets = Secrets::new()?;
    let table = format!(
        "sockhop-soak-{}",
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
    println!("  table     {table}");

    let result = soak(
        &plan,
        &secrets,
        &stage_http,
        &table,
        &mut dynamo,
        &mut stage,
    )
    .await;

    stage.stop().await;
    dynamo.stop().await;
    drop(data);
    let failures = result?;
    if !failures.is_empty() {
        bail!("soak failed: {}", failures.join(", "));
    }
    Ok(())
}

/// What one publish got.
struct Published {
    seq: u64,
    channel: usize,
    stored: bool,
    /// Since publishing started.
    at: Duration,
    /// The status, or why no answer came.
    answer: Result<u16, String>,
}

impl Published {
    fn acknowledged(&self) -> bool {
        self.answer == Ok(202)
    }
}

/// The sequence numbers one connection received.
#[derive(Default)]
struct Seen(Vec<u64>);

impl Seen {
    /// Whether `seq` is new.
    fn insert(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        let new = self.0[word] & bit == 0;
        self.0[word] |= bit;
        new
    }

    fn contains(&self, seq: u64) -> bool {
        self.0
            .get((seq / 64) as usize)
            .is_some_and(|word| word & (1u64 << (seq % 64)) != 0)
    }

    fn len(&self) -> u64 {
        self.0.iter().map(|word| u64::from(word.count_ones())).sum()
    }
}

#[derive(Default)]
struct ConnTally {
    seen: Seen,
    /// The highest sequence number received so far.
    last: Option<u64>,
    duplicates: u64,
    out_of_order: u64,
    /// A resumable connection's position: its subscription's, then the id
    /// of each message it received.
    position: Option<String>,
}

/// What the clients received, as it arrives.
struct Tally {
    conns: Vec<ConnTally>,
    /// (connection, seq, publish → socket in ms) of every first receipt;
    /// u32s and f32 because there are millions of them.
    latencies: Vec<(u32, u32, f32)>,
    receipts: u64,
    /// Answers to resumes: recovered, and not.
    recovered: u64,
    not_recovered: u64,
}

impl Tally {
    fn record(&mut self, event: Event) {
        if let Event::Subscribed {
            conn,
            position,
            recovered,
            ..
        } = event
        {
            match recovered {
                Some(true) => self.recovered += 1,
                Some(false) => self.not_recovered += 1,
                None => {}
            }
            if let (Some(tally), Some(position)) = (self.conns.get_mut(conn), position) {
                tally.position = Some(position);
            }
            return;
        }
        let Event::Bench {
            conn,
            run: RUN,
            seq,
            sent_us,
            at_us,
            id,
        } = event
        else {
            return;
        };
        self.receipts += 1;
        let Some(tally) = self.conns.get_mut(conn) else {
            return;
        };
        if !tally.seen.insert(seq) {
            tally.duplicates += 1;
            return;
        }
        if let (Some(id), true) = (id, tally.position.is_some()) {
            tally.position = Some(id);
        }
        // One publisher per channel, one request at a time, so a channel's
        // sequence numbers reach the stage in increasing order.
        match tally.last {
            Some(last) if seq < last => tally.out_of_order += 1,
            _ => tally.last = Some(seq),
        }
        self.latencies.push((
            conn as u32,
            seq as u32,
            at_us.saturating_sub(sent_us) as f32 / 1000.0,
        ));
    }
}

fn lock(tally: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    tally.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Items of the stage's table the soak checks.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct TableCounts {
    /// `pk` begins with `CONN#`: connections and their subscription index.
    connection_items: u64,
    /// `sk` begins with `SUB#`: subscriptions and their reverse index.
    subscription_items: u64,
    /// The sum of `subscriptionsCount` of the channels' `META` items.
    subscriptions_count: i64,
}

impl std::fmt::Display for TableCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} CONN# items, {} SUB# items, subscription counts sum {}",
            self.connection_items, self.subscription_items, self.subscriptions_count
        )
    }
}

async fn table_counts(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> anyhow::Result<TableCounts> {
    let text = |item: &std::collections::HashMap<String, AttributeValue>, name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let mut counts = TableCounts::default();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .projection_expression("#pk, #sk, #count")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_names("#count", "subscriptionsCount")
            .set_exclusive_start_key(start)
            .send()
            .await
            .context("Scan of the stage's table")?;
        for item in page.items() {
            let (pk, sk) = (text(item, "pk"), text(item, "sk"));
            if pk.starts_with("CONN#") {
                counts.connection_items += 1;
            }
            if sk.starts_with("SUB#") {
                counts.subscription_items += 1;
            }
            if pk.starts_with("CHAN#") && sk == "META" {
                counts.subscriptions_count += item
                    .get("subscriptionsCount")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse::<i64>().ok())
                    .unwrap_or(0);
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(counts);
        }
    }
}

/// One outage, since publishing started.
struct Outage {
    down: Duration,
    up: Duration,
}

/// Runs the soak; returns the checks that failed (none: it passed).
async fn soak(
    plan: &Plan,
    secrets: &Secrets,
    stage_http: &str,
    table: &str,
    dynamo: &mut Dynamo,
    stage: &mut Process,
) -> anyhow::Result<Vec<String>> {
    let dynamodb = crate::floor::client(&dynamo.endpoint()).await;
    let stats = StatsClient::new(stage_http);
    let baseline = table_counts(&dynamodb, table).await?;

    // Peak RSS: sampled through the whole run.
    let stage_pid = stage.pid();
    let rss_start = procs::rss_kib(stage_pid)?;
    let rss_peak = Arc::new(AtomicU64::new(rss_start));
    let sampler = {
        let peak = rss_peak.clone();
        tokio::spawn(async move {
            while let Ok(rss) = procs::rss_kib(stage_pid) {
                peak.fetch_max(rss, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    // Everyone connects and subscribes before the first publish.
    println!();
    println!(
        "== Connecting {} clients and subscribing ...",
        plan.connections
    );
    let mut hub = Hub::new();
    let stage_ws = stage_http.replacen("http://", "ws://", 1);
    let started = Instant::now();
    // A resuming connection's token grants `recover` (Sockhop's resume).
    let url = |i: usize| {
        let channels = json!({"soak-*": {"subscribe": true, "recover": plan.resumes(i)}});
        format!(
            "{stage_ws}/v1?token={}",
            token(secrets, &format!("soak-{i}"), channels)
        )
    };
    let (mut clients, _) =
        connect_many(&url, plan.connections, plan.connect_concurrency, &hub.tx).await?;
    let positions = subscribe_round_robin(&clients, plan, &mut hub).await?;
    let rss_connected = procs::rss_kib(stage_pid)?;
    let connected = table_counts(&dynamodb, table).await?;
    println!(
        "  {} connected and subscribed in {} s; table: {connected}",
        clients.len(),
        number(started.elapsed().as_secs_f64(), "")
    );

    // Receipts are tallied as they come, by one task.
    let tally = Arc::new(Mutex::new(Tally {
        conns: positions
            .into_iter()
            .map(|position| ConnTally {
                position,
                ..ConnTally::default()
            })
            .collect(),
        latencies: Vec::new(),
        receipts: 0,
        recovered: 0,
        not_recovered: 0,
    }));
    let events = hub.tx.clone();
    let (stop_collecting, mut stop) = tokio::sync::oneshot::channel::<()>();
    let collector = {
        let tally = tally.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    event = hub.next(Instant::now() + Duration::from_secs(3600)) => {
                        if let Some(event) = event {
                            lock(&tally).record(event);
                        }
                    }
                }
            }
            hub
        })
    };

    // Publishers (one per channel, one request at a time), while the main
    // task crashes and restarts DynamoDB Local (children are spawned from the
    // main task only: procs::Process::spawn).
    println!(
        "== Publishing for {} s with {} DynamoDB Local crashes ...",
        plan.duration.as_secs(),
        plan.outages
    );
    let start = Instant::now();
    let end = start + plan.duration;
    let next_seq = Arc::new(AtomicU64::new(0));
    let mut publishers = Vec::new();
    for c in 0..plan.channels {
        let publisher = Publisher::new(stage_http, &secrets.api_key)?;
        let next_seq = next_seq.clone();
        let period = Duration::from_secs_f64(plan.channels as f64 / plan.rate);
        let first = start + period.mul_f64(c as f64 / plan.channels as f64);
        publishers.push(tokio::spawn(async move {
            let channel = Plan::channel(c);
            let mut ticks = tokio::time::interval_at(first.into(), period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut published = Vec::new();
            loop {
                ticks.tick().await;
                if Instant::now() >= end {
                    break;
                }
                let seq = next_seq.fetch_add(1, Ordering::Relaxed);
                let stored = published.len() % 2 == 0;
                let store = if stored { STORED_SECONDS } else { 0 };
                let at = start.elapsed();
                let answer = match publisher.post(&channel, RUN, seq, store).await {
                    Ok((status, _)) => Ok(status.as_u16()),
                    Err(err) => Err(format!("{err:#}")),
                };
                published.push(Published {
                    seq,
                    channel: c,
                    stored,
                    at,
                    answer,
                });
            }
            published
        }));
    }
    // The resume phase, before the first outage: the resuming connections
    // drop, stay away while publishing goes on, and come back.
    let mut resumed = None;
    if plan.resume_every > 0 {
        tokio::time::sleep_until((start + plan.drop_at()).into()).await;
        let dropped_at = start.elapsed();
        let dropped = drop_resuming(&clients, plan);
        tokio::time::sleep(plan.away).await;
        rejoin_resuming(&mut clients, plan, &url, &tally, &events).await?;
        let back = start.elapsed();
        println!(
            "  {dropped} resumable connections dropped at {} s, back on new sockets at {} s",
            number(dropped_at.as_secs_f64(), ""),
            number(back.as_secs_f64(), "")
        );
        resumed = Some((dropped, dropped_at, back));
    }
    let mut outages = Vec::new();
    for (k, at) in plan.outage_starts().into_iter().enumerate() {
        tokio::time::sleep_until((start + at).into()).await;
        let down = start.elapsed();
        dynamo.crash().await;
        tokio::time::sleep(plan.outage).await;
        dynamo.start().await?;
        let up = start.elapsed();
        println!(
            "  outage {}: DynamoDB Local killed at {} s, listening again at {} s",
            k + 1,
            number(down.as_secs_f64(), ""),
            number(up.as_secs_f64(), "")
        );
        outages.push(Outage { down, up });
        stage.check_running()?;
    }
    let mut published = Vec::new();
    for publisher in publishers {
        published.extend(publisher.await.context("a publisher failed")?);
    }
    published.sort_by_key(|p| p.seq);
    let took = start.elapsed();
    let acknowledged = published.iter().filter(|p| p.acknowledged()).count();
    println!(
        "  {} published in {} s ({}/s), {acknowledged} acknowledged",
        published.len(),
        number(took.as_secs_f64(), ""),
        number(published.len() as f64 / took.as_secs_f64(), "")
    );

    // Late deliveries: until nothing is missing and the stage is quiet, or
    // the drain's end (a failed delivery is retried after 1, 2, 4 and 8 s).
    println!(
        "== Draining (up to {} s) ...",
        number(plan.drain.as_secs_f64(), "")
    );
    let drain_started = Instant::now();
    let mut receipts = lock(&tally).receipts;
    let mut quiet_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = lock(&tally).receipts;
        if now != receipts {
            receipts = now;
            quiet_since = Instant::now();
        }
        if drain_started.elapsed() >= plan.drain {
            break;
        }
        if quiet_since.elapsed() >= QUIET
            && stats.get().await?.queue.waiting == 0
            && figures(plan, &published, &lock(&tally)).missing == 0
        {
            break;
        }
    }
    let _ = stop_collecting.send(());
    let hub = collector.await.context("the collector failed")?;
    let tally = Arc::try_unwrap(tally)
        .map_err(|_| anyhow::anyhow!("the tally is still shared"))?
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let drained = drain_started.elapsed();
    let queue = stats.get().await?.queue;
    stage.check_running()?;

    // Everyone leaves; the table must return to its baseline.
    let closed_by_stage = clients.iter().filter(|c| c.is_closed()).count();
    println!("== Disconnecting everyone ...");
    for client in &clients {
        client.close();
    }
    let closing = Instant::now();
    while clients.iter().any(|c| !c.is_closed()) && closing.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let still_open = clients.iter().filter(|c| !c.is_closed()).count();
    drop(clients);
    let error_frames = hub.errors;
    drop(hub);
    let cleanup_started = Instant::now();
    let leftovers = loop {
        let counts = table_counts(&dynamodb, table).await?;
        if counts == baseline || cleanup_started.elapsed() >= plan.cleanup {
            break counts;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let cleaned_in = cleanup_started.elapsed();
    stage.check_running()?;
    let rss_end = procs::rss_kib(stage_pid)?;
    sampler.abort();

    let f = figures(plan, &published, &tally);
    let (p50, p99) = p50_p99(&f.latencies_ms);
    let max = f.latencies_ms.iter().copied().fold(0.0, f64::max);
    let (steady_p50, steady_p99) = p50_p99(&f.steady_ms);
    let stored = published.iter().filter(|p| p.stored).count();

    println!();
    println!(
        "== Soak summary ({} connections on {} channels, {} s at {}/s, {} DynamoDB Local crashes of {} s)",
        plan.connections,
        plan.channels,
        plan.duration.as_secs(),
        number(plan.rate, ""),
        plan.outages,
        number(plan.outage.as_secs_f64(), "")
    );
    let line = |name: &str, value: String| println!("  {name:<16}{value}");
    line(
        "outages",
        if outages.is_empty() {
            "none".into()
        } else {
            outages
                .iter()
                .map(|o| {
                    format!(
                        "{}-{} s",
                        number(o.down.as_secs_f64(), ""),
                        number(o.up.as_secs_f64(), "")
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
                + " (killed - listening again, since publishing started)"
        },
    );
    line(
        "published",
        format!(
            "{} ({stored} stored, {} unstored)",
            published.len(),
            published.len() - stored
        ),
    );
    line("acknowledged", format!("{acknowledged} (HTTP 202)"));
    let refused = published.len() - acknowledged;
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    for p in published.iter().filter(|p| !p.acknowledged()) {
        let reason = match &p.answer {
            Ok(status) => format!("HTTP {status}"),
            Err(err) => format!("no answer ({err})"),
        };
        *refusals.entry(reason).or_default() += 1;
    }
    line(
        "refused",
        if refused == 0 {
            "0".into()
        } else {
            format!(
                "{refused}: {}",
                refusals
                    .iter()
                    .map(|(reason, n)| format!("{n} x {reason}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    );
    line(
        "delivered",
        format!(
            "{} of {} expected (acknowledged x subscribers of the channel)",
            f.delivered, f.expected
        ),
    );
    if let Some((dropped, at, back)) = resumed {
        line(
            "resumed",
            format!(
                "{dropped} sockets dropped at {} s and back at {} s: {} recovered, {} not (their deliveries are counted above)",
                number(at.as_secs_f64(), ""),
                number(back.as_secs_f64(), ""),
                tally.recovered,
                tally.not_recovered
            ),
        );
    }
    line("missing", missing_text(&f, &published));
    line("duplicates", f.duplicates.to_string());
    line(
        "out of order",
        format!("{} (per connection, its channel's order)", f.out_of_order),
    );
    if f.refused_delivered > 0 {
        line(
            "also delivered",
            format!(
                "{} deliveries of messages that were not acknowledged",
                f.refused_delivered
            ),
        );
    }
    if f.stray > 0 {
        line(
            "stray",
            format!(
                "{} deliveries to a connection not subscribed to their channel",
                f.stray
            ),
        );
    }
    line(
        "publish->socket",
        format!(
            "p50 {} ms, p99 {} ms, max {} ms (first deliveries of acknowledged messages); before the first outage p50 {} ms, p99 {} ms",
            number(p50, ""),
            number(p99, ""),
            number(max, ""),
            number(steady_p50, ""),
            number(steady_p99, "")
        ),
    );
    line(
        "stage RSS",
        format!(
            "start {rss_start} KiB, connected {rss_connected} KiB, peak {} KiB, end {rss_end} KiB (after everyone disconnected)",
            rss_peak.load(Ordering::Relaxed).max(rss_end)
        ),
    );
    line(
        "leftovers",
        format!(
            "{leftovers} after {} s (baseline: {baseline}; connected: {connected})",
            number(cleaned_in.as_secs_f64(), "")
        ),
    );
    line(
        "drain",
        format!(
            "{} s after publishing stopped; stage queue then: {} waiting, {} dead letters",
            number(drained.as_secs_f64(), ""),
            queue.waiting,
            queue.dead_letters
        ),
    );
    line(
        "connections",
        format!(
            "{closed_by_stage} closed by the stage during the run, {still_open} not closed 10 s after the client's close"
        ),
    );
    line(
        "error frames",
        format!("{error_frames} hotsock.error frames received"),
    );

    let mut failures = Vec::new();
    if f.missing > 0 {
        failures.push(format!("{} missing", f.missing));
    }
    if f.duplicates > 0 {
        failures.push(format!("{} duplicates", f.duplicates));
    }
    if f.stray > 0 {
        failures.push(format!("{} stray deliveries", f.stray));
    }
    if leftovers != baseline {
        failures.push(format!("leftovers: {leftovers}"));
    }
    if let Some((dropped, ..)) = resumed {
        if tally.recovered != dropped as u64 {
            failures.push(format!(
                "{} of {dropped} resumes recovered",
                tally.recovered
            ));
        }
    }
    if acknowledged == 0 {
        failures.push("nothing was acknowledged".into());
    }
    line(
        "verdict",
        if failures.is_empty() {
            "PASS".into()
        } else {
            format!("FAIL ({})", failures.join(", "))
        },
    );
    Ok(failures)
}

/// Subscribes connection `i` to channel `i % channels`, all at once (a
/// resuming one asks for a position), and waits for every confirmation.
/// Returns each connection's position (resuming ones only).
async fn subscribe_round_robin(
    clients: &[Client],
    plan: &Plan,
    hub: &mut Hub,
) -> anyhow::Result<Vec<Option<String>>> {
    for client in clients {
        let channel = Plan::channel(client.index % plan.channels);
        match plan.resumes(client.index) {
            true => client.send(&json!({"event": "hotsock.subscribe", "channel": channel,
                "data": {"resume": true}}))?,
            false => client.subscribe(&channel)?,
        }
    }
    let timeout = Duration::from_secs(120) + Duration::from_millis(20 * clients.len() as u64);
    let deadline = Instant::now() + timeout;
    let mut confirmed = 0;
    let mut positions = vec![None; clients.len()];
    while confirmed < clients.len() {
        match hub.next(deadline).await {
            Some(Event::Subscribed { conn, position, .. }) => {
                confirmed += 1;
                if let Some(slot) = positions.get_mut(conn) {
                    *slot = position;
                }
            }
            Some(_) => {}
            None => bail!(
                "{confirmed} of {} subscriptions confirmed within {timeout:?}",
                clients.len()
            ),
        }
    }
    let resuming = (0..clients.len()).filter(|&i| plan.resumes(i)).count();
    let told = positions.iter().filter(|p| p.is_some()).count();
    ensure!(
        told == resuming,
        "{told} of {resuming} resumable subscriptions were told a position"
    );
    Ok(positions)
}

/// Drops the resuming connections' sockets.
fn drop_resuming(clients: &[Client], plan: &Plan) -> usize {
    let mut dropped = 0;
    for client in clients.iter().filter(|c| plan.resumes(c.index)) {
        client.close();
        dropped += 1;
    }
    dropped
}

/// Brings the dropped connections back, each on a new socket under its old
/// index, subscribing with `data.resume` at the last position it saw.
async fn rejoin_resuming(
    clients: &mut [Client],
    plan: &Plan,
    url: impl Fn(usize) -> String,
    tally: &Mutex<Tally>,
    events: &tokio::sync::mpsc::UnboundedSender<Event>,
) -> anyhow::Result<()> {
    for slot in clients.iter_mut().filter(|c| plan.resumes(c.index)) {
        let i = slot.index;
        let position = lock(tally).conns[i].position.clone();
        let client = client::connect(&url(i), i, events.clone(), Duration::from_secs(30))
            .await
            .with_context(|| format!("connection {i} back"))?;
        let resume = match position {
            Some(position) => json!({"position": position}),
            None => json!(true),
        };
        client.send(&json!({"event": "hotsock.subscribe",
            "channel": Plan::channel(i % plan.channels), "data": {"resume": resume}}))?;
        *slot = client;
    }
    Ok(())
}

/// The counts, from what was published and what arrived.
struct Figures {
    expected: u64,
    delivered: u64,
    missing: u64,
    /// seq → subscribers that never got it (acknowledged messages only).
    missed_by: BTreeMap<u64, u64>,
    duplicates: u64,
    out_of_order: u64,
    refused_delivered: u64,
    stray: u64,
    /// Publish → socket of every delivery counted as delivered (ms).
    latencies_ms: Vec<f64>,
    /// The same, of the messages published before the first outage: the
    /// steady state the outages are compared with.
    steady_ms: Vec<f64>,
}

fn figures(plan: &Plan, published: &[Published], tally: &Tally) -> Figures {
    let mut by_channel: Vec<Vec<&Published>> = vec![Vec::new(); plan.channels];
    for p in published {
        by_channel[p.channel].push(p);
    }
    let mut f = Figures {
        expected: 0,
        delivered: 0,
        missing: 0,
        missed_by: BTreeMap::new(),
        duplicates: 0,
        out_of_order: 0,
        refused_delivered: 0,
        stray: 0,
        latencies_ms: Vec::new(),
        steady_ms: Vec::new(),
    };
    for (i, conn) in tally.conns.iter().enumerate() {
        let mut of_channel = 0;
        for p in &by_channel[i % plan.channels] {
            let got = conn.seen.contains(p.seq);
            of_channel += u64::from(got);
            if !p.acknowledged() {
                f.refused_delivered += u64::from(got);
                continue;
            }
            f.expected += 1;
            if got {
                f.delivered += 1;
            } else {
                f.missing += 1;
                *f.missed_by.entry(p.seq).or_default() += 1;
            }
        }
        f.stray += conn.seen.len() - of_channel;
        f.duplicates += conn.duplicates;
        f.out_of_order += conn.out_of_order;
    }
    // The latencies of what counts as delivered: acknowledged, on the
    // connection's own channel.
    let acknowledged: std::collections::HashMap<u32, &Published> = published
        .iter()
        .filter(|p| p.acknowledged())
        .map(|p| (p.seq as u32, p))
        .collect();
    let first_outage = plan.outage_starts().first().copied();
    for &(conn, seq, ms) in &tally.latencies {
        let Some(p) = acknowledged.get(&seq) else {
            continue;
        };
        if p.channel != conn as usize % plan.channels {
            continue;
        }
        f.latencies_ms.push(f64::from(ms));
        if first_outage.is_none_or(|at| p.at < at) {
            f.steady_ms.push(f64::from(ms));
        }
    }
    f
}

/// "0", or how many deliveries of which messages, with a few examples (when
/// each was published tells whether an outage was on).
fn missing_text(f: &Figures, published: &[Published]) -> String {
    if f.missing == 0 {
        return "0".into();
    }
    let find = |seq: u64| published.iter().find(|p| p.seq == seq);
    let stored_missing: u64 = f
        .missed_by
        .iter()
        .filter(|(seq, _)| find(**seq).is_some_and(|p| p.stored))
        .map(|(_, n)| n)
        .sum();
    let examples: Vec<String> = f
        .missed_by
        .iter()
        .take(8)
        .filter_map(|(seq, n)| {
            let p = find(*seq)?;
            Some(format!(
                "#{seq} ({}, {}, published at {} s) by {n}",
                Plan::channel(p.channel),
                if p.stored { "stored" } else { "unstored" },
                number(p.at.as_secs_f64(), "")
            ))
        })
        .collect();
    format!(
        "{} deliveries of {} messages ({stored_missing} of stored messages); e.g. {}",
        f.missing,
        f.missed_by.len(),
        examples.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(channels: usize, seconds: u64, outages: usize) -> Plan {
        Plan {
            connections: 4,
            channels,
            duration: Duration::from_secs(seconds),
            rate: 10.0,
            outages,
            outage: Duration::from_secs(3),
            drain: Duration::ZERO,
            cleanup: Duration::ZERO,
            connect_concurrency: 1,
            resume_every: 0,
            away: Duration::ZERO,
        }
    }

    fn receipt(conn: usize, seq: u64) -> Event {
        Event::Bench {
            conn,
            run: RUN,
            seq,
            sent_us: 1_000,
            at_us: 3_000,
            id: None,
        }
    }

    fn published(seq: u64, channel: usize, status: u16) -> Published {
        Published {
            seq,
            channel,
            stored: seq.is_multiple_of(2),
            at: Duration::ZERO,
            answer: Ok(status),
        }
    }

    #[test]
    fn outages_are_spread_evenly_inside_the_run() {
        let starts = plan(1, 40, 3).outage_starts();
        assert_eq!(starts, [10, 20, 30].map(Duration::from_secs));
        assert!(plan(1, 40, 0).outage_starts().is_empty());
    }

    #[test]
    fn every_tenth_connection_of_each_channel_resumes_before_the_first_outage() {
        let mut plan = plan(2, 40, 3);
        plan.connections = 40;
        plan.resume_every = 10;
        plan.away = Duration::from_secs(3);
        let resuming: Vec<usize> = (0..40).filter(|&i| plan.resumes(i)).collect();
        assert_eq!(resuming, [0, 1, 20, 21], "both channels have some");
        assert!(plan.drop_at() + plan.away < plan.outage_starts()[0]);
        plan.resume_every = 0;
        assert!(!plan.resumes(0));
    }

    #[test]
    fn a_resumable_connection_follows_its_position_and_counts_its_answers() {
        let mut tally = Tally {
            conns: (0..2).map(|_| ConnTally::default()).collect(),
            latencies: Vec::new(),
            receipts: 0,
            recovered: 0,
            not_recovered: 0,
        };
        let subscribed = |conn, position: Option<&str>, recovered| Event::Subscribed {
            conn,
            channel: "soak-0".into(),
            position: position.map(str::to_owned),
            recovered,
        };
        tally.record(subscribed(0, Some("P0"), None));
        let with_id = |conn, seq, id: &str| Event::Bench {
            conn,
            run: RUN,
            seq,
            sent_us: 0,
            at_us: 1,
            id: Some(id.into()),
        };
        tally.record(with_id(0, 1, "M1"));
        tally.record(with_id(1, 1, "M1"));
        assert_eq!(tally.conns[0].position.as_deref(), Some("M1"));
        assert_eq!(tally.conns[1].position, None, "not resumable: no position");
        tally.record(subscribed(0, Some("P1"), Some(true)));
        tally.record(subscribed(1, None, Some(false)));
        assert_eq!((tally.recovered, tally.not_recovered), (1, 1));
    }

    #[test]
    fn seen_sets_remember_sequence_numbers() {
        let mut seen = Seen::default();
        assert!(seen.insert(130));
        assert!(!seen.insert(130));
        assert!(seen.insert(0));
        assert!(seen.contains(130) && seen.contains(0) && !seen.contains(64));
        assert!(!seen.contains(10_000));
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn the_tally_counts_duplicates_gaps_and_reordering_per_connection() {
        // Two channels: connections 0 and 2 on channel 0, 1 and 3 on channel 1.
        let plan = plan(2, 10, 0);
        let mut tally = Tally {
            conns: (0..4).map(|_| ConnTally::default()).collect(),
            latencies: Vec::new(),
            receipts: 0,
            recovered: 0,
            not_recovered: 0,
        };
        let sent = [
            published(0, 0, 202),
            published(1, 1, 202),
            published(2, 0, 202),
            published(3, 1, 503),
        ];
        for event in [
            receipt(0, 0),
            receipt(0, 2),
            receipt(0, 2), // a duplicate
            receipt(2, 2),
            receipt(2, 0), // late: out of order
            receipt(1, 1),
            receipt(1, 3), // refused, delivered anyway
            receipt(3, 0), // another channel's message
        ] {
            tally.record(event);
        }
        let f = figures(&plan, &sent, &tally);
        assert_eq!(
            f.expected, 6,
            "three acknowledged messages, two subscribers each"
        );
        assert_eq!(f.delivered, 5);
        assert_eq!(f.missing, 1, "connection 3 never got message 1");
        assert_eq!(f.missed_by, BTreeMap::from([(1, 1)]));
        assert_eq!(f.duplicates, 1);
        assert_eq!(f.out_of_order, 1);
        assert_eq!(f.refused_delivered, 1);
        assert_eq!(f.stray, 1);
        assert_eq!(f.latencies_ms.len(), 5, "acknowledged first receipts only");
        assert_eq!(f.steady_ms, f.latencies_ms, "no outage");
        assert!(f.latencies_ms.iter().all(|&ms| ms == 2.0));
    }
}
