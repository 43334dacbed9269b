//! API Gateway's management API (`@connections`): how frames reach sockets in
//! AWS, behind the [`Sockets`] port.

use crate::gateway::{PostError, Sockets};
use crate::pacing::{self, Pause, TokioPause};
use aws_sdk_apigatewaymanagement::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_apigatewaymanagement::Client;
use backon::{ExponentialBuilder, Retryable};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

/// API Gateway's management API (`@connections`), through the AWS SDK.
#[derive(Clone)]
pub struct ManagementApi {
    client: Client,
    /// How a throttled post waits before it is tried again.
    pause: Arc<dyn Pause>,
}

impl ManagementApi {
    pub fn new(client: Client) -> Self {
        ManagementApi {
            client,
            pause: Arc::new(TokioPause),
        }
    }

    /// The same API, waiting through `pause`.
    pub fn paced(self, pause: Arc<dyn Pause>) -> Self {
        ManagementApi { pause, ..self }
    }

    /// Throttling is retried three times, 25, 50 and 100 ms later, before
    /// giving up; any other answer is final.
    async fn post_frame(&self, connection_id: &str, frame: &str) -> Result<(), PostError> {
        let post = || async {
            self.client
                .post_to_connection()
                .connection_id(connection_id)
                .data(Blob::new(frame.as_bytes()))
                .send()
                .await
        };
        post.retry(throttle_backoff())
            .sleep(pacing::sleeper(&self.pause))
            .when(is_throttle)
            .notify(|reason, _| tracing::warn!(connection_id, ?reason, "post throttled, retrying"))
            .await
            .map(|_| ())
            .map_err(|e| post_error(&e))
    }
}

impl std::fmt::Debug for ManagementApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagementApi")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl Sockets for ManagementApi {
    fn post<'a>(
        &'a self,
        connection_id: &'a str,
        frame: &'a str,
    ) -> BoxFuture<'a, Result<(), PostError>> {
        Box::pin(self.post_frame(connection_id, frame))
    }

    fn close<'a>(&'a self, connection_id: &'a str) -> BoxFuture<'a, Result<(), PostError>> {
        Box::pin(async move {
            self.client
                .delete_connection()
                .connection_id(connection_id)
                .send()
                .await
                .map(drop)
                .map_err(|e| post_error(&e))
        })
    }

    fn is_open<'a>(&'a self, connection_id: &'a str) -> BoxFuture<'a, Result<bool, PostError>> {
        Box::pin(async move {
            match self
                .client
                .get_connection()
                .connection_id(connection_id)
                .send()
                .await
            {
                Ok(_) => Ok(true),
                Err(e) => match post_error(&e) {
                    PostError::Gone => Ok(false),
                    other => Err(other),
                },
            }
        })
    }
}

fn post_error<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    err: &SdkError<E, R>,
) -> PostError {
    // The SDK maps API Gateway's 410 to the GoneException code.
    if err.as_service_error().and_then(|e| e.code()) == Some("GoneException") {
        PostError::Gone
    } else {
        PostError::Failed(format!("{err:?}"))
    }
}

/// The pauses before each retry of a throttled post: 25, 50, 100 ms.
fn throttle_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(25))
        .with_max_times(3)
}

fn is_throttle<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|c| c == "LimitExceededException" || c == "TooManyRequestsException")
}

#[cfg(test)]
mod tests {
    use super::*;
    use backon::BackoffBuilder;

    #[test]
    fn a_throttled_post_is_tried_four_times_at_doubling_pauses() {
        // (backon doubles in floating point: a nanosecond over, at most.)
        let pauses: Vec<u128> = throttle_backoff().build().map(|d| d.as_millis()).collect();
        assert_eq!(pauses, [25, 50, 100]);
    }
}
