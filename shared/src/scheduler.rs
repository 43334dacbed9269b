//! Where scheduled publishes wait until they fall due (docs/architecture.md,
//! "Scheduled delivery"). In AWS each is an EventBridge Scheduler one-time
//! schedule that invokes the publish function with the decided message and
//! deletes itself after running; the local stage keeps them in the table and
//! fires them itself, behind the same trait.

use crate::schedule::Due;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, Target,
};
use futures::future::BoxFuture;

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

/// How long EventBridge Scheduler keeps retrying an invocation that failed
/// (its maxima): a due message is retried, not dropped.
const RETRY_FOR_SECONDS: i32 = 24 * 60 * 60;
const RETRY_ATTEMPTS: i32 = 185;

pub struct EventBridgeScheduler {
    client: aws_sdk_scheduler::Client,
    target: SchedulerTarget,
}

impl EventBridgeScheduler {
    pub fn new(client: aws_sdk_scheduler::Client, target: SchedulerTarget) -> Self {
        EventBridgeScheduler { client, target }
    }
}

impl Scheduler for EventBridgeScheduler {
    fn create(&self, schedule: NewSchedule) -> BoxFuture<'_, Result<String, SchedulerError>> {
        Box::pin(async move {
            let failed = |e: String| SchedulerError::Create(e);
            let window = FlexibleTimeWindow::builder()
                .mode(FlexibleTimeWindowMode::Off)
                .build()
                .map_err(|e| failed(e.to_string()))?;
            let retry = RetryPolicy::builder()
                .maximum_event_age_in_seconds(RETRY_FOR_SECONDS)
                .maximum_retry_attempts(RETRY_ATTEMPTS)
                .build();
            let target = Target::builder()
                .arn(&self.target.function_arn)
                .role_arn(&self.target.role_arn)
                .input(schedule.payload)
                .retry_policy(retry)
                .build()
                .map_err(|e| failed(e.to_string()))?;
            let created = self
                .client
                .create_schedule()
                .name(&schedule.name)
                .group_name(&self.target.group)
                .schedule_expression(&schedule.due.expression)
                .schedule_expression_timezone(&schedule.due.timezone)
                .flexible_time_window(window)
                .target(target)
                .action_after_completion(ActionAfterCompletion::Delete)
                .client_token(&schedule.name)
                .send()
                .await
                .map_err(|e| {
                    failed(aws_sdk_scheduler::error::DisplayErrorContext(e).to_string())
                })?;
            Ok(created.schedule_arn)
        })
    }
}

/// Stands in when no scheduler is configured: a scheduled publish is refused
/// with a clear error instead of being lost.
pub struct NoScheduler;

impl Scheduler for NoScheduler {
    fn create(&self, _: NewSchedule) -> BoxFuture<'_, Result<String, SchedulerError>> {
        Box::pin(async { Err(SchedulerError::NotConfigured) })
    }
}
