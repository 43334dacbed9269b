//! The sweeper, on an EventBridge schedule: keepAlive frames, heartbeat
//! timeouts, connections past their lifetime.

use serde_json::Value;
use sockhop::clock::Timestamp;
use sockhop::driver;
use sockhop::lambda::Failure;
use sockhop::App;

/// Runs a pass, and keeps passing while heartbeat deadlines are coming up,
/// until shortly before the next scheduled invocation
/// ([`driver::sweep_within`]); the scheduled event's payload carries nothing
/// we need.
pub async fn handle(app: &App, _scheduled: Value) -> Result<(), Failure> {
    let start = Timestamp::now();
    let until = Timestamp::from_millis(start.millis() + app.config.sweep_watch_millis());
    let tick = std::time::Duration::from_millis(app.config.sweep_tick_millis);
    let report = driver::sweep_within(app, until, tick, Timestamp::now).await?;
    tracing::info!(closed = report.cleaned.len(), "sweep done");
    Ok(())
}
