//! The local stage: the whole installation in one process, with the production
//! handler code unchanged.
//!
//! - `ws://HOST:PORT/v1`: each upgrade becomes the `$connect` / `$default` /
//!   `$disconnect` events API Gateway would send, handled by the function crates.
//! - Frames reach sockets in process (`sockets::LocalSockets`); the management
//!   API is also served on `HOST:PORT/v1/@connections/{id}` for its adapter's test.
//! - `HOST:PORT/`: the http function's router (`/connection/*`), the demo apps
//!   under `/examples/`, and dev-only token minting under `/dev/`.
//! - DynamoDB Local's stream is polled and fed to the stream function.
//! - Publishes go through an in-process FIFO queue to the deliver function.

pub mod dev;
pub mod dynamodb_local;
pub mod events;
pub mod queue;
pub mod scheduler;
pub mod sockets;
pub mod streams;
pub mod table;

use anyhow::Context;
use axum::Router;
use sockhop::app::Config;
use sockhop::App;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const STAGE_NAME: &str = "v1";

#[derive(Debug, Clone)]
pub struct StageOptions {
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    /// Use this DynamoDB instead of starting DynamoDB Local.
    pub dynamodb_endpoint: Option<String>,
    pub table_name: String,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    /// Served under `/examples/`.
    pub examples_dir: Option<PathBuf>,
    /// The repository root: template.yaml and infra/ are found from here.
    pub root: PathBuf,
    /// Signing keys and the rest of [`Config`] come from these variables
    /// (normally the process environment); a dev key is made when none is set.
    pub env: Vec<(String, String)>,
    /// How often the stream is polled.
    pub stream_poll: Duration,
    /// How often the sweeper runs (AWS: every minute).
    pub sweep_interval: Duration,
    /// Where the DynamoDB Local the stage starts keeps its data (None: in
    /// memory). Unused with `dynamodb_endpoint`.
    pub data_dir: Option<PathBuf>,
    /// Each backend event is POSTed here (`--events-url`).
    pub events_url: Option<String>,
}

impl StageOptions {
    pub fn new(root: PathBuf) -> Self {
        StageOptions {
            host: "127.0.0.1".into(),
            port: 4000,
            dynamodb_endpoint: None,
            table_name: "sockhop-local".into(),
            idle_timeout: Duration::from_secs(10 * 60),
            max_lifetime: Duration::from_secs(2 * 60 * 60),
            examples_dir: Some(root.join("examples")),
            root,
            env: std::env::vars().collect(),
            stream_poll: Duration::from_millis(25),
            sweep_interval: Duration::from_secs(60),
            data_dir: None,
            events_url: None,
        }
    }
}

/// A running stage. Dropping it stops everything it started.
pub struct Stage {
    pub addr: SocketAddr,
    pub dynamodb_endpoint: String,
    pub table_name: String,
    pub dev_key: Option<dev::DevKey>,
    /// The generated dev-only API key of `POST /publish`, when none was given.
    pub dev_api_key: Option<String>,
    pub app: &'static App,
    /// What the stage's own SDK clients sign with; the management API over HTTP
    /// answers only requests signed with it.
    pub access_key_id: String,
    /// The in-process delivery queue (SQS FIFO in AWS).
    pub queue: Arc<queue::LocalQueue>,
    /// Backend events (EventBridge / SNS in AWS).
    pub events: Arc<events::LocalEvents>,
    /// The stage's open (and opening) sockets.
    pub registry: Arc<sockets::Registry>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    dynamodb: Option<dynamodb_local::DynamoDbLocal>,
}

impl Stage {
    pub fn websocket_url(&self) -> String {
        format!("ws://{}/{STAGE_NAME}", self.addr)
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        if let Some(dynamodb) = self.dynamodb.take() {
            dynamodb.stop().await;
        }
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn lookup(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .filter(|v| !v.trim().is_empty())
}

pub async fn start(options: StageOptions) -> anyhow::Result<Stage> {
    let listener = TcpListener::bind((options.host.as_str(), options.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", options.host, options.port))?;
    let addr = listener.local_addr()?;

    let (dynamodb, endpoint) = match &options.dynamodb_endpoint {
        Some(endpoint) => (None, endpoint.clone()),
        None => {
            let ddb =
                dynamodb_local::DynamoDbLocal::start(&options.root, options.data_dir.as_deref())
                    .await?;
            let endpoint = ddb.endpoint();
            (Some(ddb), endpoint)
        }
    };

    let mut env = options.env.clone();
    let dev_key = if lookup(&env, "SIGNING_KEY_1_ENCODED").is_none() {
        let key = dev::DevKey::load_or_create(&options.root.join(".local"))?;
        env.retain(|(k, _)| !k.starts_with("SIGNING_KEY_"));
        env.push(("SIGNING_KEY_1_METHOD".into(), "HS256".into()));
        env.push(("SIGNING_KEY_1_ENCODED".into(), key.encoded()));
        Some(key)
    } else {
        None
    };
    let dev_api_key = if lookup(&env, "HTTP_API_KEY_1").is_none() {
        let key = format!(
            "dev-only-{}",
            dev::random_key_base64().replace(['+', '/', '='], "")
        );
        env.push(("HTTP_API_KEY_1".into(), key.clone()));
        Some(key)
    } else {
        None
    };
    if lookup(&env, "CONNECTION_SECRET_KEY").is_none() {
        env.push(("CONNECTION_SECRET_KEY".into(), dev::random_key_base64()));
    }
    env.retain(|(k, _)| {
        !matches!(
            k.as_str(),
            "TABLE_NAME" | "DYNAMODB_ENDPOINT" | "WEBSOCKET_MANAGEMENT_ENDPOINT"
        )
    });
    // The sweeper's keepAlive timing follows this stage's own clockwork.
    env.retain(|(k, _)| k != "SWEEP_INTERVAL_SECONDS" && k != "IDLE_TIMEOUT_SECONDS");
    env.push((
        "SWEEP_INTERVAL_SECONDS".into(),
        options.sweep_interval.as_secs().max(1).to_string(),
    ));
    env.push((
        "IDLE_TIMEOUT_SECONDS".into(),
        options.idle_timeout.as_secs().max(1).to_string(),
    ));
    env.push(("TABLE_NAME".into(), options.table_name.clone()));
    env.push(("DYNAMODB_ENDPOINT".into(), endpoint.clone()));
    env.push((
        "WEBSOCKET_MANAGEMENT_ENDPOINT".into(),
        format!("http://{addr}/{STAGE_NAME}"),
    ));
    let config = Config::from_env(|name| lookup(&env, name)).context("stage configuration")?;
    // Random per run: it is what tells the stage's own management calls apart.
    let access_key_id = format!("LOCAL{:016X}", rand::random::<u64>());
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            access_key_id.clone(),
            "local",
            None,
            None,
            "sockhop-local",
        ))
        .load()
        .await;
    let mut app = App::with_sdk_config(config, &sdk);
    // Publishes go through the in-process FIFO queue instead of SQS, and frames
    // straight to the sockets instead of through HTTP to the management API.
    let queue = queue::LocalQueue::new();
    app.queue = queue.clone();
    // Backend events go to /dev/events and the webhook instead of EventBridge/SNS.
    let events = events::LocalEvents::new(options.events_url.clone());
    app.events = events.clone();
    // Schedules wait in the table instead of EventBridge Scheduler.
    let scheduler = scheduler::LocalScheduler::new(app.store.clone());
    app.scheduler = scheduler.clone();
    let registry = Arc::new(sockets::Registry::new(
        options.idle_timeout,
        options.max_lifetime,
    ));
    app.gateway = sockhop::gateway::Gateway::paced(
        Arc::new(sockets::LocalSockets(registry.clone())),
        app.pacing.clone(),
    );
    let app: &'static App = Box::leak(Box::new(app));

    table::ensure_table(
        &sdk,
        &endpoint,
        &options.table_name,
        &options.root.join("template.yaml"),
    )
    .await?;

    let (shutdown, shutdown_rx) = watch::channel(false);
    // The stage's own pages and demo token endpoints answer any origin, like the
    // http function does: apps are developed on their own dev-server ports.
    let mut pages = dev::router(dev_key.clone())
        .merge(dev::stats_router(app, queue.clone()))
        .merge(events::router(events.clone()))
        .route("/", axum::routing::get(index));
    if let Some(dir) = &options.examples_dir {
        pages = pages.nest_service("/examples", tower_http::services::ServeDir::new(dir));
    }
    let router = Router::new()
        .merge(sockets::router(app, registry.clone(), addr, &access_key_id))
        .merge(sockhop_http::router(app))
        .merge(pages.layer(sockhop_http::any_origin()));

    // Before anything can connect: note where the stream stands, and end the
    // connections an earlier run left in kept data (their sockets died with it;
    // API Gateway would have sent each a $disconnect).
    let poller =
        streams::StreamPoller::new(&sdk, &endpoint, &options.table_name, options.stream_poll);
    let primed = poller.prime().await;
    end_orphaned_connections(app).await?;

    let mut tasks = Vec::new();
    let mut server_shutdown = shutdown_rx.clone();
    tasks.push(tokio::spawn(async move {
        let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = server_shutdown.wait_for(|stop| *stop).await;
        });
        if let Err(err) = serve.await {
            tracing::error!(error = %err, "http server stopped");
        }
    }));
    let mut poll_shutdown = shutdown_rx.clone();
    tasks.push(tokio::spawn(async move {
        tokio::select! {
            _ = poller.run(app, primed) => {}
            _ = poll_shutdown.wait_for(|stop| *stop) => {}
        }
    }));
    tasks.push(tokio::spawn(queue::run(
        queue.clone(),
        app,
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(scheduler::run(
        scheduler,
        app,
        shutdown_rx.clone(),
    )));
    let mut sweep_shutdown = shutdown_rx.clone();
    let sweep_interval = options.sweep_interval;
    tasks.push(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(sweep_interval);
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    // A sweep may keep passing for most of its interval while
                    // heartbeat deadlines are ahead: a stop does not wait for it.
                    tokio::select! {
                        swept = sockhop_sweeper::handle(app, serde_json::Value::Null) => {
                            if let Err(err) = swept {
                                tracing::error!(error = %err, "sweep failed");
                            }
                        }
                        _ = sweep_shutdown.changed() => break,
                    }
                }
                _ = sweep_shutdown.changed() => break,
            }
        }
    }));
    let mut sockets_shutdown = shutdown_rx;
    let closing = registry.clone();
    tasks.push(tokio::spawn(async move {
        let _ = sockets_shutdown.wait_for(|stop| *stop).await;
        closing.close_all();
    }));

    Ok(Stage {
        addr,
        dynamodb_endpoint: endpoint,
        table_name: options.table_name,
        dev_key,
        dev_api_key,
        app,
        access_key_id,
        queue,
        events,
        registry,
        shutdown,
        tasks,
        dynamodb,
    })
}

async fn index() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("index.html"))
}

/// Runs the `$disconnect` cleanup of every connection in the table: at start,
/// no socket of an earlier run can still be open.
async fn end_orphaned_connections(app: &'static App) -> anyhow::Result<()> {
    use futures::StreamExt;
    let now = sockhop::clock::Timestamp::now();
    let orphans = app
        .store
        .scan_connections(now.secs())
        .await
        .context("reading connections left by an earlier run")?;
    if !orphans.is_empty() {
        tracing::info!(
            count = orphans.len(),
            "ending connections left by an earlier run"
        );
    }
    futures::stream::iter(orphans)
        .for_each_concurrent(16, |c| async move {
            sockhop::driver::disconnected(app, now, &c.connection_id).await;
        })
        .await;
    Ok(())
}
