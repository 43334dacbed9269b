//! `sockhop-local`: run the whole installation on this machine.

use clap::Parser;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use tokio::signal::unix::{signal, Signal, SignalKind};

#[derive(Parser)]
#[command(
    version,
    about = "Sockhop's local stage: WebSocket + HTTP endpoints against DynamoDB Local"
)]
struct Args {
    /// The one port everything listens on.
    #[arg(long, default_value_t = 4000)]
    port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Use this DynamoDB endpoint instead of starting DynamoDB Local.
    #[arg(long)]
    dynamodb_endpoint: Option<String>,
    #[arg(long, default_value = "sockhop-local")]
    table: String,
    /// Close connections idle this many seconds (API Gateway: 600).
    #[arg(long, default_value_t = 600)]
    idle_timeout: u64,
    /// Close connections after this many seconds (API Gateway: 7200).
    #[arg(long, default_value_t = 7200)]
    max_lifetime: u64,
    /// Where the DynamoDB Local the stage starts keeps its data, across restarts
    /// (default: .local/dynamodb in the repository).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep nothing: DynamoDB Local in memory.
    #[arg(long, conflicts_with = "data_dir")]
    in_memory: bool,
    /// Start from empty: delete the kept data first.
    #[arg(long)]
    fresh: bool,
    /// POST every backend event (JSON) to this URL, e.g. your backend in
    /// development; they are also at GET /dev/events.
    #[arg(long)]
    events_url: Option<String>,
}

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Colours only for a terminal: redirected logs stay plain text.
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,aws_config=warn,aws_smithy_runtime=warn".into()),
        )
        .init();
    let args = Args::parse();
    let mut signals = StopSignals::install()?;
    let root = repository_root().canonicalize()?;
    let mut options = sockhop_local::StageOptions::new(root);
    options.port = args.port;
    options.host = args.host;
    options.dynamodb_endpoint = args.dynamodb_endpoint;
    options.table_name = args.table;
    options.idle_timeout = Duration::from_secs(args.idle_timeout);
    options.max_lifetime = Duration::from_secs(args.max_lifetime);
    options.events_url = args.events_url;
    if !args.in_memory && options.dynamodb_endpoint.is_none() {
        let dir = args
            .data_dir
            .unwrap_or_else(|| options.root.join(".local/dynamodb"));
        if args.fresh && dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        println!("Data kept in {} (--fresh to start empty)", dir.display());
        options.data_dir = Some(dir);
    }
    println!("Starting Sockhop local stage (DynamoDB Local is installed on first run)...");
    let stage = tokio::select! {
        stage = sockhop_local::start(options) => stage?,
        // Dropping the half-started stage kills what it had started.
        signal = signals.received() => {
            println!("Stopped ({signal}) while starting.");
            return Ok(());
        }
    };
    let http = stage.http_url();
    println!();
    println!("  WebSocket URL    {}", stage.websocket_url());
    println!("  HTTP API URL     {http}");
    println!("  Web console      {http}/console");
    println!(
        "  DynamoDB         {} (table {})",
        stage.dynamodb_endpoint, stage.table_name
    );
    println!("  To-do example    {http}/examples/collaborative-todo/");
    println!("  Chat example     {http}/examples/real-time-chat/");
    println!("  Game lobby       {http}/examples/game-lobby/");
    println!("  Backend events   curl -N {http}/dev/events");
    if stage.dev_key.is_some() {
        println!();
        println!("  Dev token (DEV ONLY key in .local/dev-signing-key):");
        println!(
            "    curl -s -X POST {http}/dev/token -d '{{\"uid\":\"jim\",\"channels\":{{\"*\":{{\"subscribe\":true,\"messages\":{{\"*\":{{\"publish\":true,\"echo\":true}}}}}}}}}}'"
        );
    }
    if let Some(key) = &stage.dev_api_key {
        println!();
        println!("  Server publish (DEV ONLY API key, new each run):");
        println!(
            "    curl -s -X POST {http}/publish -H 'Authorization: Bearer {key}' -d '{{\"channel\":\"chat\",\"event\":\"msg\",\"data\":\"hi\"}}'"
        );
    }
    println!();
    println!("Press Ctrl-C to stop.");
    let signal = signals.received().await;
    // Whoever reads our output may be gone by now (a closed pipe must not panic).
    let _ = writeln!(std::io::stdout(), "Stopping ({signal})...");
    stage.stop().await;
    Ok(())
}

/// Any of the signals a terminal, a process manager or `kill` sends: each one
/// stops the stage and everything it started. Installed before anything starts,
/// so no signal finds the default handler (which would orphan DynamoDB Local).
struct StopSignals(Vec<(Signal, &'static str)>);

impl StopSignals {
    fn install() -> std::io::Result<Self> {
        [
            (SignalKind::interrupt(), "SIGINT"),
            (SignalKind::terminate(), "SIGTERM"),
            (SignalKind::hangup(), "SIGHUP"),
            (SignalKind::quit(), "SIGQUIT"),
        ]
        .into_iter()
        .map(|(kind, name)| Ok((signal(kind)?, name)))
        .collect::<std::io::Result<_>>()
        .map(StopSignals)
    }

    /// The name of the first signal received.
    async fn received(&mut self) -> &'static str {
        let waits = self.0.iter_mut().map(|(signal, name)| {
            Box::pin(async move {
                signal.recv().await;
                *name
            })
        });
        futures::future::select_all(waits).await.0
    }
}
