//! `sockhop-local`: run the whole installation on this machine.

use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

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
}

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,aws_config=warn,aws_smithy_runtime=warn".into()),
        )
        .init();
    let args = Args::parse();
    let root = repository_root().canonicalize()?;
    let mut options = sockhop_local::StageOptions::new(root);
    options.port = args.port;
    options.host = args.host;
    options.dynamodb_endpoint = args.dynamodb_endpoint;
    options.table_name = args.table;
    options.idle_timeout = Duration::from_secs(args.idle_timeout);
    options.max_lifetime = Duration::from_secs(args.max_lifetime);
    println!("Starting Sockhop local stage (DynamoDB Local is installed on first run)...");
    let stage = sockhop_local::start(options).await?;
    let http = stage.http_url();
    println!();
    println!("  WebSocket URL    {}", stage.websocket_url());
    println!("  HTTP API URL     {http}");
    println!(
        "  DynamoDB         {} (table {})",
        stage.dynamodb_endpoint, stage.table_name
    );
    println!("  To-do example    {http}/examples/collaborative-todo/");
    println!("  Chat example     {http}/examples/real-time-chat/");
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
    tokio::signal::ctrl_c().await?;
    println!("Stopping...");
    stage.stop().await;
    Ok(())
}
