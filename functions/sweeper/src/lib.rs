//! The sweeper, on an EventBridge schedule: keepAlive frames, heartbeat
//! timeouts, connections past their lifetime.

use serde_json::Value;
use sockhop::clock::Timestamp;
use sockhop::driver;
use sockhop::lambda::Failure;
use sockhop::App;

/// Runs one pass; the scheduled event's payload carries nothing we need.
pub async fn handle(app: &App, _scheduled: Value) -> Result<(), Failure> {
    let report = driver::sweep(app, Timestamp::now()).await?;
    tracing::info!(closed = report.cleaned.len(), "sweep done");
    Ok(())
}
