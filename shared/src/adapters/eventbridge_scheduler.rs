//! Scheduled publishes in AWS: one EventBridge Scheduler one-time schedule
//! each, in the stack's group, invoking the publish function as its role and
//! deleting itself after running (docs/architecture.md, "Scheduled delivery").

use crate::scheduler::{NewSchedule, Scheduler, SchedulerError, SchedulerTarget};
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, Target,
};
use futures::future::BoxFuture;

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
