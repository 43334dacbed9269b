//! One client frame on the `$default` route: parse, run, answer errors.

use super::{load_connection, publish, reactions, send, send_error, subscribe};
use crate::app::App;
use crate::error::{ErrorCode, ProtocolError};
use crate::protocol::{parse_client_frame, ClientCommand, ServerMessage};

/// Handles one frame. Every failure becomes a `hotsock.error` to the sender;
/// the connection stays open.
pub async fn handle_frame(app: &App, connection_id: &str, text: &str) {
    if let Err(err) = run(app, connection_id, text).await {
        send_error(app, connection_id, err).await;
    }
}

async fn run(app: &App, connection_id: &str, text: &str) -> Result<(), ProtocolError> {
    let command = parse_client_frame(text)?;
    // Answered without a database read: the cheapest keep-alive path.
    if let ClientCommand::Ping = command {
        send(app, connection_id, &ServerMessage::pong()).await;
        return Ok(());
    }
    if let ClientCommand::Pong = command {
        return Ok(());
    }
    let connection = load_connection(app, connection_id).await?;
    match command {
        ClientCommand::Ping | ClientCommand::Pong => Ok(()),
        ClientCommand::Heartbeat => app
            .store
            .touch_connection(connection_id, app.now())
            .await
            .map_err(super::internal),
        ClientCommand::Subscribe { channel, token } => {
            subscribe::subscribe(app, &connection, &channel, token.as_deref(), false).await
        }
        ClientCommand::Unsubscribe { channel } => {
            subscribe::unsubscribe(app, &connection, &channel).await
        }
        ClientCommand::Publish {
            channel,
            event,
            data,
        } => publish::publish_from_client(app, &connection, &channel, &event, data)
            .await
            .map(drop),
        ClientCommand::MessageReaction {
            channel,
            message_id,
            reaction,
            action,
        } => reactions::react(app, &connection, &channel, &message_id, &reaction, action).await,
        ClientCommand::ChannelStorageSet { channel, .. }
        | ClientCommand::ChannelStorageGet { channel, .. } => Err(not_yet(Some(channel))),
        ClientCommand::UmdUpdate { channel, .. } => Err(not_yet(channel)),
    }
}

fn not_yet(channel: Option<String>) -> ProtocolError {
    let err = ProtocolError::new(
        ErrorCode::UnknownCommand,
        "this command is not supported by this stage yet",
    );
    match channel {
        Some(c) => err.with_channel(c),
        None => err,
    }
}
