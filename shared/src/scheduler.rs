//! Where scheduled publishes wait until they fall due (docs/architecture.md,
//! "Scheduled delivery"). In AWS each is an EventBridge Scheduler one-time
//! schedule that invokes the publish function with the decided message and
//! deletes itself after running ([`EventBridgeScheduler`](crate::adapters::eventbridge_scheduler::EventBridgeScheduler)); the local
//! stage keeps them in the table and fires them itself, behind the same trait.

use futures::future::BoxFuture;
use sockhop_core::schedule::Due;

/// One schedule to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSchedule {
    /// Unique (a ULID): EventBridge Scheduler's schedule name.
    pub name: String,
    pub due: Due,
    /// What the publish function is invoked with when it falls due.
    pub payload: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(
        "no scheduler is configured (SCHEDULE_GROUP_NAME, SCHEDULE_TARGET_ARN, SCHEDULE_ROLE_ARN)"
    )]
    NotConfigured,
    #[error("the scheduler refused the schedule: {0}")]
    Create(String),
}

pub trait Scheduler: Send + Sync {
    /// Creates the schedule; its ARN once it is durably kept.
    fn create(&self, schedule: NewSchedule) -> BoxFuture<'_, Result<String, SchedulerError>>;
}

/// Where EventBridge Scheduler puts schedules and what they invoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerTarget {
    pub group: String,
    /// The publish function's ARN.
    pub function_arn: String,
    /// The role EventBridge Scheduler assumes to invoke it.
    pub role_arn: String,
}

/// Stands in when no scheduler is configured: a scheduled publish is refused
/// with a clear error instead of being lost.
pub struct NoScheduler;

impl Scheduler for NoScheduler {
    fn create(&self, _: NewSchedule) -> BoxFuture<'_, Result<String, SchedulerError>> {
        Box::pin(async { Err(SchedulerError::NotConfigured) })
    }
}
