//! Server publish by direct Lambda invoke: the payload is the message
//! (docs/protocol.md, "Server API"); the reply is `{"channel","event"}` (+`id`
//! when eager). A refusal fails the invocation with the error code as its
//! `errorType`.

use serde_json::Value;
use sockhop::clock::Timestamp;
use sockhop::driver;
use sockhop::lambda::Failure;
use sockhop::ops::dispatch::Request;
use sockhop::ops::publish::parse_publish_invocation;
use sockhop::pubsub::{Origin, TRIGGER_SERVER_LAMBDA};
use sockhop::App;

/// One invocation, named by its Lambda request id (the `requestId` of the
/// backend events it raises).
pub async fn handle_invocation(
    app: &App,
    payload: Value,
    request_id: String,
) -> Result<Value, Failure> {
    let request = parse_publish_invocation(payload)?;
    let origin = Origin::new(TRIGGER_SERVER_LAMBDA, Some(request_id));
    Ok(driver::command_from(app, Timestamp::now(), Request::Server(request), &origin).await?)
}

/// [`handle_invocation`] where no Lambda names it (the local stage's
/// scheduler, tests): a request id of its own.
pub async fn handle(app: &App, payload: Value) -> Result<Value, Failure> {
    handle_invocation(app, payload, ulid::Ulid::new().to_string()).await
}
