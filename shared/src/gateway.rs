//! How frames reach sockets: the fan-out, and the API Gateway management API
//! that carries each frame in AWS.

use aws_sdk_apigatewaymanagement::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_apigatewaymanagement::Client;
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use std::sync::Arc;
use std::time::Duration;

/// Posts in flight at once during a fan-out: enough to keep a Lambda busy,
/// few enough to stay under API Gateway's per-account rate.
pub const FAN_OUT_CONCURRENCY: usize = 64;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PostError {
    /// 410: the socket is closed; the caller must clean the connection up.
    #[error("connection is gone")]
    Gone,
    #[error("post failed: {0}")]
    Failed(String),
}

/// Where frames go: API Gateway's management API in AWS ([`ManagementApi`]); the
/// local stage hands frames to its own sockets in process.
pub trait Sockets: Send + Sync {
    /// Sends one frame (one JSON object per frame, as hotsock-js expects).
    fn post<'a>(
        &'a self,
        connection_id: &'a str,
        frame: &'a str,
    ) -> BoxFuture<'a, Result<(), PostError>>;

    /// Closes a socket from the server side (heartbeat timeout, lifetime).
    fn close<'a>(&'a self, connection_id: &'a str) -> BoxFuture<'a, Result<(), PostError>>;
}

/// The fan-out over whichever [`Sockets`] the app has.
#[derive(Clone)]
pub struct Gateway {
    sockets: Arc<dyn Sockets>,
}

impl Gateway {
    pub fn new(sockets: Arc<dyn Sockets>) -> Self {
        Gateway { sockets }
    }

    pub async fn post(&self, connection_id: &str, frame: &str) -> Result<(), PostError> {
        self.sockets.post(connection_id, frame).await
    }

    /// Sends `frame` to every connection, at most [`FAN_OUT_CONCURRENCY`] at a
    /// time, and returns the connections found gone.
    pub async fn post_many(&self, connection_ids: &[String], frame: &str) -> Vec<String> {
        let posts: Vec<_> = connection_ids
            .iter()
            .map(|id| async move { (id, self.post(id, frame).await) })
            .collect();
        let results: Vec<(&String, Result<(), PostError>)> = stream::iter(posts)
            .buffer_unordered(FAN_OUT_CONCURRENCY)
            .collect()
            .await;
        let mut gone = Vec::new();
        for (id, result) in results {
            match result {
                Ok(()) => {}
                Err(PostError::Gone) => gone.push(id.clone()),
                Err(PostError::Failed(reason)) => {
                    tracing::warn!(connection_id = %id, %reason, "delivery failed");
                }
            }
        }
        gone
    }

    pub async fn close(&self, connection_id: &str) -> Result<(), PostError> {
        self.sockets.close(connection_id).await
    }
}

/// API Gateway's management API (`@connections`), through the AWS SDK.
#[derive(Clone, Debug)]
pub struct ManagementApi {
    client: Client,
}

impl ManagementApi {
    pub fn new(client: Client) -> Self {
        ManagementApi { client }
    }

    /// Throttling is retried a few times before giving up.
    async fn post_frame(&self, connection_id: &str, frame: &str) -> Result<(), PostError> {
        let mut delay = Duration::from_millis(25);
        for attempt in 0..4 {
            let result = self
                .client
                .post_to_connection()
                .connection_id(connection_id)
                .data(Blob::new(frame.as_bytes()))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(e) => match post_error(&e) {
                    PostError::Failed(reason) if attempt < 3 && is_throttle(&e) => {
                        tracing::warn!(connection_id, %reason, "post throttled, retrying");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                    other => return Err(other),
                },
            }
        }
        Err(PostError::Failed("throttled".into()))
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

fn is_throttle<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|c| c == "LimitExceededException" || c == "TooManyRequestsException")
}
