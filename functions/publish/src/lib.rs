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

pub async fn handle(app: &App, payload: Value) -> Result<Value, Failure> {
    let request = parse_publish_invocation(payload)?;
    let origin = Origin::new(TRIGGER_SERVER_LAMBDA, Some(ulid::Ulid::new().to_string()));
    Ok(driver::command_from(app, Timestamp::now(), Request::Server(request), &origin).await?)
}
