//! The local stage's scheduler: EventBridge Scheduler's part, in process. A
//! schedule is an item in the table (so a stage restarted on kept data still
//! fires it); when it falls due, the publish function's handler is invoked with
//! its payload, as EventBridge Scheduler would invoke the function, and the
//! item goes once that succeeded.

use futures::future::BoxFuture;
use sockhop::clock::Timestamp;
use sockhop::scheduler::{NewSchedule, Scheduler, SchedulerError};
use sockhop::store::{ScheduleItem, Store};
use sockhop::App;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Schedules read per look at the table.
const BATCH: i32 = 25;
/// How long a schedule whose invocation keeps failing is retried (EventBridge
/// Scheduler's retry policy in template.yaml); then it is dropped, loudly.
const RETRY_FOR_MS: i64 = 24 * 60 * 60 * 1000;
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(30);
/// With nothing scheduled, the table is looked at this often anyway.
const IDLE_LOOK: Duration = Duration::from_secs(60);

pub const LOCAL_SCHEDULE_GROUP: &str = "sockhop-local";

pub struct LocalScheduler {
    store: Arc<dyn Store>,
    wake: Notify,
}

impl LocalScheduler {
    pub fn new(store: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(LocalScheduler {
            store,
            wake: Notify::new(),
        })
    }
}

/// The ARN a local schedule is known by (EventBridge Scheduler's form).
pub fn local_arn(name: &str) -> String {
    format!("arn:aws:scheduler:us-east-1:000000000000:schedule/{LOCAL_SCHEDULE_GROUP}/{name}")
}

impl Scheduler for LocalScheduler {
    fn create(&self, schedule: NewSchedule) -> BoxFuture<'_, Result<String, SchedulerError>> {
        Box::pin(async move {
            let item = ScheduleItem {
                name: schedule.name,
                due_ms: schedule.due.at.millis(),
                payload: schedule.payload,
            };
            self.store
                .put_schedule(&item)
                .await
                .map_err(|e| SchedulerError::Create(e.to_string()))?;
            self.wake.notify_one();
            Ok(local_arn(&item.name))
        })
    }
}

/// Fires schedules as they fall due until `shutdown`.
pub async fn run(
    scheduler: Arc<LocalScheduler>,
    app: &'static App,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failures: u32 = 0;
    loop {
        let pause = match fire_due(scheduler.store.as_ref(), app).await {
            Ok(Next::Again) => {
                failures = 0;
                continue;
            }
            Ok(Next::At(due_ms)) => {
                failures = 0;
                let wait = due_ms - Timestamp::now().millis();
                Duration::from_millis(wait.max(0) as u64).min(IDLE_LOOK)
            }
            Ok(Next::Idle) => IDLE_LOOK,
            Err(()) => {
                failures += 1;
                (Duration::from_millis(250) * 2u32.pow(failures.min(7))).min(MAX_RETRY_PAUSE)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = scheduler.wake.notified() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

enum Next {
    /// Some fired: look again at once.
    Again,
    /// The earliest waiting schedule falls due then.
    At(i64),
    Idle,
}

/// Fires what is due now; `Err` when the table or an invocation failed.
async fn fire_due(store: &dyn Store, app: &'static App) -> Result<Next, ()> {
    let schedules = store.earliest_schedules(BATCH).await.map_err(|err| {
        tracing::error!(error = %err, "schedules unreadable; retried");
    })?;
    let now = Timestamp::now().millis();
    let Some(first) = schedules.first() else {
        return Ok(Next::Idle);
    };
    if first.due_ms > now {
        return Ok(Next::At(first.due_ms));
    }
    let mut failed = false;
    for schedule in schedules.iter().take_while(|s| s.due_ms <= now) {
        if fire(app, schedule).await || now - schedule.due_ms > RETRY_FOR_MS {
            if let Err(err) = store.delete_schedule(schedule.due_ms, &schedule.name).await {
                // It fires again; the queue's deduplication drops the repeat.
                tracing::error!(error = %err, name = %schedule.name, "a schedule that ran was not deleted");
                failed = true;
            }
        } else {
            failed = true;
        }
    }
    if failed {
        Err(())
    } else {
        Ok(Next::Again)
    }
}

/// Invokes the publish function's handler with the schedule's payload; `true`
/// when it succeeded.
async fn fire(app: &'static App, schedule: &ScheduleItem) -> bool {
    let payload = match serde_json::from_str(&schedule.payload) {
        Ok(payload) => payload,
        Err(err) => {
            tracing::error!(error = %err, name = %schedule.name, "a schedule's payload is not JSON; dropped");
            return true;
        }
    };
    match sockhop_publish::handle(app, payload).await {
        Ok(_) => true,
        Err(err) => {
            tracing::error!(error = %err, name = %schedule.name, "a scheduled publish failed; retried");
            false
        }
    }
}
