//! `$disconnect`: remove the connection, its subscriptions and their counts.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use sockhop::lambda::{connection_id, websocket_response};
use sockhop::ops::disconnect;
use sockhop::App;

pub async fn handle(
    app: &App,
    event: ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse, lambda_runtime::Error> {
    disconnect::cleanup(app, connection_id(&event)).await;
    Ok(websocket_response(200, None))
}
