//! Server publish by direct Lambda invoke: the payload is the message
//! (PROTOCOL.md §7); the reply is `{"channel","event"}` (+`id` when eager).

use serde_json::Value;
use sockhop::ops::publish::{publish_from_server, ServerPublish};
use sockhop::App;

pub async fn handle(app: &App, payload: Value) -> Result<Value, lambda_runtime::Error> {
    let request: ServerPublish =
        serde_json::from_value(payload).map_err(|e| format!("INVALID_REQUEST: {e}"))?;
    publish_from_server(app, &request)
        .await
        .map_err(|e| format!("{}: {}", e.code, e.message).into())
}
