//! What every Lambda function shares: the bootstrap ([`run`]), the error a
//! handler returns ([`Failure`]), and the API Gateway WebSocket shapes.

use crate::runtime::app::{App, ConfigError};
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use http::HeaderMap;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sockhop_core::error::ProtocolError;
use std::future::Future;
use std::pin::Pin;

/// Why an invocation failed, as the Lambda runtime reports it: the stable
/// error code becomes the `errorType` a caller (or a retry policy) sees.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{}: {}", .0.code, .0.message)]
    Protocol(ProtocolError),
}

impl From<ProtocolError> for Failure {
    fn from(e: ProtocolError) -> Self {
        Failure::Protocol(e)
    }
}

impl From<Failure> for Diagnostic {
    fn from(failure: Failure) -> Diagnostic {
        match failure {
            Failure::Protocol(e) => Diagnostic {
                error_type: e.code.as_str().to_owned(),
                error_message: e.message,
            },
        }
    }
}

/// The process's [`App`], built once from the environment, with tracing set
/// up for CloudWatch.
pub async fn app() -> Result<&'static App, ConfigError> {
    lambda_runtime::tracing::init_default_subscriber();
    Ok(Box::leak(Box::new(App::from_env().await?)))
}

/// Runs a Lambda function whose handler takes the process's [`App`] and the
/// event payload.
pub async fn run<E, R, F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    E: DeserializeOwned,
    R: Serialize,
    F: Fn(&'static App, E) -> Fut,
    Fut: Future<Output = Result<R, Failure>> + Send + 'static,
{
    run_with_request_id(|app, payload, _request_id| handler(app, payload)).await
}

/// [`run`], for a handler that also names the invocation (its Lambda request
/// id: the `requestId` of the backend events it raises, as Hotsock's).
pub async fn run_with_request_id<E, R, F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    E: DeserializeOwned,
    R: Serialize,
    F: Fn(&'static App, E, String) -> Fut,
    Fut: Future<Output = Result<R, Failure>> + Send + 'static,
{
    let app = app().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<E>| {
        let request_id = event.context.request_id;
        let handled = handler(app, event.payload, request_id.clone());
        // Boxed: the handler's future is deep (driver, cleanup, presence), too
        // deep for the runtime's generic layers to lay out inline.
        let invocation: Pin<Box<dyn Future<Output = Result<R, Failure>> + Send>> =
            Box::pin(async move {
                let before = Invocation::start(app, request_id);
                let result = handled.await;
                before.log_end(app);
                result
            });
        invocation
    }))
    .await
}

/// What an invocation is measured against: the process's totals when it
/// began.
pub struct Invocation {
    request_id: String,
    requests: std::collections::BTreeMap<String, crate::metrics::OperationCount>,
    activity: std::collections::BTreeMap<crate::metrics::Measure, f64>,
}

impl Invocation {
    pub fn start(app: &App, request_id: String) -> Self {
        Invocation {
            request_id,
            requests: app.requests.snapshot(),
            activity: app.activity.snapshot(),
        }
    }

    /// Prints the invocation's Embedded Metric Format line to stdout (its
    /// metrics; the AWS requests it made and the IAM actions its process
    /// needed, for the deployed roles' check). Printed as it is, not through
    /// the log formatter, so CloudWatch reads it as EMF.
    pub fn log_end(self, app: &App) {
        let requests = crate::metrics::requests_between(&self.requests, &app.requests.snapshot());
        let activity = crate::metrics::activity_between(&self.activity, &app.activity.snapshot());
        let stack = std::env::var("SOCKHOP_STACK_NAME").unwrap_or_default();
        let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
        let now = sockhop_core::clock::Timestamp::now().millis();
        if let Some(line) = crate::metrics::emf_line(
            &stack,
            &function,
            &self.request_id,
            now,
            &activity,
            &requests,
            &app.requests.actions(),
        ) {
            println!("{line}");
        }
    }
}

/// The connection id API Gateway assigned to the socket.
pub fn connection_id(event: &ApiGatewayWebsocketProxyRequest) -> &str {
    event
        .request_context
        .connection_id
        .as_deref()
        .unwrap_or_default()
}

/// A WebSocket route answer; on `$connect` a non-200 refuses the upgrade.
pub fn websocket_response(status: u16, body: Option<String>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status);
    let mut headers = HeaderMap::new();
    if body.is_some() {
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
    }
    response.headers = headers;
    response.body = body.map(Body::Text);
    response
}
