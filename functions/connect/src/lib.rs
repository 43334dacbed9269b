//! `$connect`: verify the token in `?token=` and store the connection, or
//! refuse the upgrade with 401/403 and a JSON reason.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use sockhop::clock::Timestamp;
use sockhop::lambda::{connection_id, websocket_response, Failure};
use sockhop::ops::{connect, Ctx};
use sockhop::App;

pub async fn handle(
    app: &App,
    event: ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse, Failure> {
    let cx = Ctx::new(app, Timestamp::now());
    let token = event.query_string_parameters.first("token");
    let peer = connect::Peer {
        source_ip: event.request_context.identity.source_ip.clone(),
        user_agent: event
            .headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            // Kept for backend events' metadata; a huge header is cut short.
            .map(|ua| ua.chars().take(512).collect()),
    };
    Ok(
        match connect::connect(cx, connection_id(&event), token, peer).await {
            Ok(()) => websocket_response(200, None),
            Err(refusal) => {
                tracing::info!(code = refusal.code, message = %refusal.message, "connect refused");
                let body = serde_json::json!({"error": {"code": refusal.code, "message": refusal.message}});
                websocket_response(refusal.status, Some(body.to_string()))
            }
        },
    )
}
