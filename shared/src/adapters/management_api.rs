//! API Gateway's management API (`@connections`): how frames reach sockets in
//! AWS, behind the [`Sockets`] port.

use crate::gateway::{PostError, Sockets};
use aws_sdk_apigatewaymanagement::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_apigatewaymanagement::Client;
use futures::future::BoxFuture;

/// API Gateway's management API (`@connections`), through the AWS SDK.
#[derive(Clone)]
pub struct ManagementApi {
    client: Client,
}

impl ManagementApi {
    pub fn new(client: Client) -> Self {
        ManagementApi { client }
    }

    /// One PostToConnection (the SDK's own retry policy inside it). A
    /// throttled answer is [`PostError::Throttled`]: the gateway, which sees
    /// the whole fan-out, decides when to try again.
    async fn post_frame(&self, connection_id: &str, frame: &str) -> Result<(), PostError> {
        self.client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(frame.as_bytes()))
            .send()
            .await
            .map(drop)
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
    // The SDK maps API Gateway's 410 to the GoneException code, and its
    // 429 to either throttling code.
    match err.as_service_error().and_then(|e| e.code()) {
        Some("GoneException") => PostError::Gone,
        Some("LimitExceededException" | "TooManyRequestsException") => PostError::Throttled,
        _ => PostError::Failed(format!("{err:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_apigatewaymanagement::error::ErrorMetadata;
    use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;

    fn answered(code: &str) -> PostError {
        let metadata = ErrorMetadata::builder().code(code).build();
        post_error(&SdkError::service_error(
            PostToConnectionError::generic(metadata),
            (),
        ))
    }

    #[test]
    fn answers_map_to_what_the_gateway_acts_on() {
        assert_eq!(answered("GoneException"), PostError::Gone);
        assert_eq!(answered("TooManyRequestsException"), PostError::Throttled);
        assert_eq!(answered("LimitExceededException"), PostError::Throttled);
        assert!(matches!(
            answered("ForbiddenException"),
            PostError::Failed(_)
        ));
    }
}
