//! `$default`: every client frame. Answers go out through the management API,
//! so the route response is always an empty 200.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use sockhop::clock::Timestamp;
use sockhop::driver;
use sockhop::lambda::{connection_id, websocket_response, Failure};
use sockhop::pubsub::{Origin, TRIGGER_CLIENT_WEBSOCKET};
use sockhop::App;

/// One frame, its invocation named by the Lambda request id (the `requestId`
/// of the backend events it raises, as Hotsock's).
pub async fn handle_invocation(
    app: &App,
    event: ApiGatewayWebsocketProxyRequest,
    request_id: String,
) -> Result<ApiGatewayProxyResponse, Failure> {
    let body = event.body.as_deref().unwrap_or_default();
    let origin = Origin::new(TRIGGER_CLIENT_WEBSOCKET, Some(request_id));
    driver::client_frame(app, Timestamp::now(), connection_id(&event), body, &origin).await;
    Ok(websocket_response(200, None))
}

/// [`handle_invocation`] where no Lambda names it (the local stage): the
/// request id API Gateway gave the frame.
pub async fn handle(
    app: &App,
    event: ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse, Failure> {
    let request_id = event
        .request_context
        .request_id
        .clone()
        .unwrap_or_else(|| app.ids.next_id(Timestamp::now()));
    handle_invocation(app, event, request_id).await
}
