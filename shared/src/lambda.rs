//! Shapes shared by the Lambda handlers: API Gateway WebSocket events in, proxy
//! responses out.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use http::HeaderMap;

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
