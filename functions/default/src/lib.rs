//! `$default`: every client frame. Answers go out through the management API,
//! so the route response is always an empty 200.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use sockhop::lambda::{connection_id, websocket_response};
use sockhop::ops::frame;
use sockhop::App;

pub async fn handle(
    app: &App,
    event: ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse, lambda_runtime::Error> {
    let body = event.body.as_deref().unwrap_or_default();
    frame::handle_frame(app, connection_id(&event), body).await;
    Ok(websocket_response(200, None))
}
