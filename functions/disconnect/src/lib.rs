//! `$disconnect`: remove the connection, its subscriptions and their counts.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use sockhop::clock::Timestamp;
use sockhop::driver;
use sockhop::lambda::{connection_id, websocket_response, Failure};
use sockhop::App;

pub async fn handle(
    app: &App,
    event: ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse, Failure> {
    driver::disconnected(app, Timestamp::now(), connection_id(&event)).await;
    Ok(websocket_response(200, None))
}
