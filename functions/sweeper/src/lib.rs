//! The sweeper, on an EventBridge schedule: keepAlive frames, heartbeat
//! timeouts, connections past their lifetime.

use sockhop::ops::sweep;
use sockhop::App;

/// The schedule in template.yaml (`rate(1 minute)`).
pub const SWEEP_INTERVAL_SECONDS: i64 = 60;

pub async fn handle(app: &App) -> Result<(), lambda_runtime::Error> {
    let closed = sweep::sweep(app, SWEEP_INTERVAL_SECONDS)
        .await
        .map_err(|e| format!("{}: {}", e.code, e.message))?;
    tracing::info!(closed, "sweep done");
    Ok(())
}
