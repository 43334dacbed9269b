//! `$default`: every client frame. Answers go out through the management API,
//! so the route response is always an empty 200.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use sockhop::clock::Timestamp;
use sockhop::driver;
use sockhop::lambda::{connection_id, websocket_response, Failure};
use sockhop::pubsub::{Origin, TRIGGER_CLIENT_WEBSOCKET};
use sockhop::App;

pub async fn handle(
    app: &App,
    event: ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse, Failure> {
    let body = event.body.as_deref().unwrap_or_default();
    let origin = Origin::new(
        TRIGGER_CLIENT_WEBSOCKET,
        event.request_context.request_id.clone(),
    );
    driver::client_frame(app, Timestamp::now(), connection_id(&event), body, &origin).await;
    Ok(websocket_response(200, None))
}
