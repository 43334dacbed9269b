//! The one front door: every command — a WebSocket frame, a Client HTTP API
//! operation, a server publish — arrives here already parsed and validated
//! (by [`sockhop_core::protocol`] or [`super::publish::parse_server_request`]) and
//! is dispatched by [`run`].

use super::publish::ServerRequest;
use super::{
    channel_info, history, load_connection, publish, reactions, storage, subscribe, umd,
    Connection, Ctx,
};
use crate::effects::Effects;
use serde_json::{json, Value};
use sockhop_core::error::ProtocolError;
use sockhop_core::protocol::{
    events, parse_client_frame, ClientCommand, ClientFrame, ServerMessage,
};

/// Who asks for what.
pub enum Request<'a> {
    /// A connected client, over its socket or the Client HTTP API.
    Client {
        connection: &'a Connection,
        command: ClientCommand,
    },
    /// The application's backend (publish function or `POST /publish`).
    Server(publish::ServerRequest),
}

/// What a command produced: the reply an HTTP caller gets, and the frames and
/// cleanups for the driver.
#[derive(Debug, Default)]
pub struct Outcome {
    pub reply: Value,
    pub effects: Effects,
}

impl Outcome {
    fn effects(effects: Effects) -> Self {
        Outcome {
            reply: Value::Null,
            effects,
        }
    }

    fn reply(reply: Value) -> Self {
        Outcome {
            reply,
            effects: Effects::new(),
        }
    }
}

/// Runs one command.
pub async fn run(cx: Ctx<'_>, request: Request<'_>) -> Result<Outcome, ProtocolError> {
    let (connection, command) = match request {
        Request::Server(ServerRequest::Publish(publish)) => {
            return publish::publish_from_server(cx, &publish)
                .await
                .map(Outcome::reply)
        }
        Request::Server(ServerRequest::Reaction(r)) => {
            let change = reactions::Reaction {
                channel: &r.channel,
                message_id: &r.message_id,
                reaction: &r.reaction,
                action: r.action,
                uid: r.uid.clone(),
                umd: r.umd.as_ref().map(Value::to_string),
                origin: cx.server_origin(),
                emit: publish::emitting(cx, r.emit_pub_sub_event),
            };
            return Ok(Outcome {
                reply: json!({"channel": r.channel, "event": events::MESSAGE_REACTION}),
                effects: reactions::react_from_server(cx, &change).await?,
            });
        }
        Request::Server(ServerRequest::StorageSet(write)) => {
            let published = storage::set_from_server(cx, &write).await?;
            return Ok(Outcome::reply(
                published.reply(&write.channel, events::CHANNEL_STORAGE_SET),
            ));
        }
        Request::Server(ServerRequest::Scheduled(outgoing)) => {
            return publish::publish_scheduled(cx, *outgoing)
                .await
                .map(Outcome::reply)
        }
        Request::Client {
            connection,
            command,
        } => (connection, command),
    };
    match command {
        ClientCommand::Heartbeat => cx
            .app
            .store
            .touch_connection(connection.id(), cx.secs())
            .await
            .map(|()| Outcome::default())
            .map_err(super::internal),
        ClientCommand::Subscribe {
            channel,
            token,
            resume,
        } => subscribe::subscribe(cx, connection, &channel, token.as_deref(), resume, false)
            .await
            .map(Outcome::effects),
        ClientCommand::Unsubscribe { channel } => subscribe::unsubscribe(cx, connection, &channel)
            .await
            .map(Outcome::effects),
        ClientCommand::Publish {
            channel,
            event,
            data,
            eager_id,
            schedule,
        } => {
            let published = publish::publish_from_client(
                cx,
                connection,
                &channel,
                &event,
                data,
                eager_id,
                schedule.as_ref(),
            )
            .await?;
            Ok(Outcome::reply(published.reply(&channel, &event)))
        }
        ClientCommand::MessageReaction {
            channel,
            message_id,
            reaction,
            action,
        } => {
            let effects =
                reactions::react(cx, connection, &channel, &message_id, &reaction, action).await?;
            Ok(Outcome {
                reply: json!({"channel": channel, "event": events::MESSAGE_REACTION}),
                effects,
            })
        }
        ClientCommand::ListMessages(request) => history::list_messages(cx, connection, &request)
            .await
            .map(Outcome::reply),
        ClientCommand::ListReactions {
            channel,
            message_id,
        } => reactions::list_reactions(cx, connection, &channel, &message_id)
            .await
            .map(Outcome::reply),
        ClientCommand::ChannelStorageSet {
            channel,
            key,
            data,
            schedule,
        } => {
            let published =
                storage::set(cx, connection, &channel, &key, data, schedule.as_ref()).await?;
            Ok(Outcome::reply(
                published.reply(&channel, events::CHANNEL_STORAGE_SET),
            ))
        }
        // Over the socket the answer is a frame to the asker (see `frame`).
        ClientCommand::ChannelStorageGet { channel, key } => {
            storage::get(cx, connection, &channel, &key)
                .await
                .map(|data| {
                    Outcome::reply(serde_json::from_str(&data.to_json()).unwrap_or_default())
                })
        }
        ClientCommand::ChannelStorageList {
            channel,
            keys,
            after,
        } => storage::list(cx, connection, &channel, keys.as_deref(), after.as_deref())
            .await
            .map(Outcome::reply),
        ClientCommand::GetChannelInfo { channel } => {
            channel_info::for_connection(cx, connection, &channel)
                .await
                .map(Outcome::reply)
        }
        ClientCommand::UmdUpdate { channel, token } => {
            umd::update(cx, connection, channel.as_deref(), &token).await?;
            Ok(Outcome::reply(json!({})))
        }
    }
}

/// One WebSocket frame from `connection_id`: what to send back. Every failure
/// becomes a `hotsock.error` to the sender; the connection stays open.
pub async fn frame(cx: Ctx<'_>, connection_id: &str, text: &str) -> Effects {
    match frame_outcome(cx, connection_id, text).await {
        Ok(effects) => effects,
        Err(err) => {
            let mut effects = Effects::new();
            effects.send(connection_id, &ServerMessage::error(err));
            effects
        }
    }
}

async fn frame_outcome(
    cx: Ctx<'_>,
    connection_id: &str,
    text: &str,
) -> Result<Effects, ProtocolError> {
    // A keep-alive is answered without a database read: the cheapest path.
    let command = match parse_client_frame(text)? {
        ClientFrame::Ping => {
            let mut effects = Effects::new();
            effects.send(connection_id, &ServerMessage::pong());
            return Ok(effects);
        }
        ClientFrame::Pong => return Ok(Effects::new()),
        ClientFrame::Command(command) => command,
    };
    // Every failure names the channel the frame named, internal ones included,
    // so a client can settle what it keeps under that name.
    let channel = command.channel().map(str::to_owned);
    let with_channel = |err: ProtocolError| match (&err.channel, &channel) {
        (None, Some(c)) => err.with_channel(c),
        _ => err,
    };
    let connection = load_connection(cx, connection_id)
        .await
        .map_err(with_channel)?;
    // A read over the socket is answered with a frame carrying the reply.
    let answers = matches!(command, ClientCommand::ChannelStorageGet { .. });
    let request = Request::Client {
        connection: &connection,
        command,
    };
    let Outcome { reply, mut effects } = run(cx, request).await.map_err(with_channel)?;
    if answers {
        effects.send_text(vec![connection_id.to_owned()], reply.to_string());
    }
    Ok(effects)
}
