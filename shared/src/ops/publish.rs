//! Publishing: a client's message over WebSocket or the Client HTTP API, and the
//! server's. Publishing writes the message; the stream function delivers it
//! (docs/adr/0001-ordered-delivery.md).

use super::deliver::{enqueue, Queued, QueuedMessage, StorageWrite};
use super::{named_channel, Connection, Ctx, NamedChannel};
use crate::pubsub::Origin;
use crate::scheduler::NewSchedule;
use serde_json::json;
use serde_json::Value;
use sockhop_core::claims::{ChannelPermissions, MessagePermissions, STORE_FOREVER};
use sockhop_core::error::{ErrorCode, ProtocolError};
use sockhop_core::names;
use sockhop_core::protocol::{events, parse_request_frame, ClientCommand, Meta, ReactionAction};
use sockhop_core::schedule::{Grant, ScheduleRequest};

/// A message to publish, decided: where, what, as whom, kept how long. A
/// scheduled one waits in this form (see [`Scheduled`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outgoing {
    pub channel: String,
    pub event: String,
    pub data: Value,
    pub meta: Option<Meta>,
    pub sender: Option<String>,
    pub echo: bool,
    /// Seconds: 0 not stored, -1 forever.
    pub store: i64,
    /// `eagerIdGeneration`: the id is assigned now and returned.
    pub eager_id: bool,
    /// The id an eager scheduled message was given when it was scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset_id: Option<String>,
    /// Set when it raises a backend event (`emitPubSubEvent`, and events are
    /// on): who published it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emit: Option<Origin>,
    /// The publisher's `deduplicationId`.
    pub deduplication_id: Option<String>,
    /// A storage write of this key (`event` is `hotsock.channelStorageSet`)
    /// rather than a message.
    pub storage_key: Option<String>,
}

/// Queues a message for delivery (docs/adr/0002-delivery-queue.md). Returns
/// once the queue has it, with its id when the publisher asked for it now;
/// otherwise the message's place in the queue gives it its id. Its `data` was
/// validated where the command was parsed.
pub async fn publish(cx: Ctx<'_>, outgoing: Outgoing) -> Result<Option<String>, ProtocolError> {
    let unique = cx.app.ids.next_id(cx.now);
    let id = (outgoing.preset_id.clone()).or_else(|| outgoing.eager_id.then(|| unique.clone()));
    let data = serde_json::value::to_raw_value(&outgoing.data)
        .map_err(|e| ProtocolError::new(ErrorCode::InvalidMessage, format!("data: {e}")))?;
    let queued = match outgoing.storage_key {
        // A write's id is its place in the queue, never the publisher's.
        Some(key) => Queued::StorageWrite(StorageWrite {
            channel: outgoing.channel,
            key,
            data,
            meta: outgoing.meta,
            store: outgoing.store,
            emit: outgoing.emit,
        }),
        None => Queued::Message(QueuedMessage {
            id,
            data,
            channel: outgoing.channel,
            event: outgoing.event,
            meta: outgoing.meta,
            sender: outgoing.sender,
            echo: outgoing.echo,
            store: outgoing.store,
            emit: outgoing.emit,
        }),
    };
    enqueue(cx, &queued, outgoing.deduplication_id.as_deref(), &unique).await?;
    cx.app
        .activity
        .add(crate::metrics::Measure::MessagesPublished, 1.0);
    Ok(queued.preset_id().map(str::to_owned))
}

/// What a publish answered: the eager id, and the schedule's ARN when it was
/// scheduled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Published {
    pub id: Option<String>,
    pub schedule_arn: Option<String>,
}

impl Published {
    /// Adds `id` and `scheduleArn` to a `{"channel","event"}` reply.
    pub fn reply(self, channel: &str, event: &str) -> Value {
        let mut reply = json!({"channel": channel, "event": event});
        if let Some(id) = self.id {
            reply["id"] = Value::String(id);
        }
        if let Some(arn) = self.schedule_arn {
            reply["scheduleArn"] = Value::String(arn);
        }
        reply
    }
}

/// The publish function's payload when a schedule falls due: the message as
/// it was decided when scheduled (permissions, names and size were checked
/// then), published as if it had just arrived.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scheduled {
    pub sockhop_scheduled: Outgoing,
}

/// Publishes now, or at `schedule` for `grant` (checked first): a schedule
/// holds the decided message and publishes it through [`publish`] when due.
pub async fn publish_or_schedule(
    cx: Ctx<'_>,
    mut outgoing: Outgoing,
    schedule: Option<&ScheduleRequest>,
    grant: Grant,
) -> Result<Published, ProtocolError> {
    let Some(request) = schedule else {
        let id = publish(cx, outgoing).await?;
        return Ok(Published {
            id,
            schedule_arn: None,
        });
    };
    let due = sockhop_core::schedule::resolve(request, cx.now, grant)?;
    let name = cx.app.ids.next_id(cx.now);
    // The id is stamped with the due time, where the message will sit in
    // history; a schedule that fires twice publishes once.
    if outgoing.eager_id {
        outgoing.preset_id = Some(sockhop_core::ids::id_at(due.at));
    }
    outgoing
        .deduplication_id
        .get_or_insert_with(|| name.clone());
    let payload = serde_json::to_string(&Scheduled {
        sockhop_scheduled: outgoing.clone(),
    })
    .map_err(|_| ProtocolError::internal())?;
    let arn = cx
        .app
        .scheduler
        .create(NewSchedule { name, due, payload })
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "scheduling failed");
            ProtocolError::new(ErrorCode::InternalError, "temporary failure, try again")
        })?;
    Ok(Published {
        id: outgoing.preset_id,
        schedule_arn: Some(arn),
    })
}

/// Whether an `emitPubSubEvent` asked for counts: only when events are on.
pub fn emitting(cx: Ctx<'_>, asked: bool) -> bool {
    asked && cx.app.events.enabled()
}

/// Decides whether a client may send `event` on a channel (pure).
pub fn check_client_publish(
    permissions: &ChannelPermissions,
    subscribed: bool,
    client_channel: &str,
    event: &str,
) -> Result<MessagePermissions, ProtocolError> {
    let allowed = permissions.message(event);
    if allowed.may_send(subscribed) {
        Ok(allowed)
    } else {
        Err(ProtocolError::new(
            ErrorCode::PublishPermissionDenied,
            format!("not allowed to publish {event:?} on {client_channel:?}"),
        )
        .with_channel(client_channel))
    }
}

/// A client's publish: permissions from its subscription when it has one,
/// else from its connect token (`broadcast`).
pub async fn publish_from_client(
    cx: Ctx<'_>,
    connection: &Connection,
    requested: &str,
    event: &str,
    data: Value,
    eager_id: bool,
    schedule: Option<&ScheduleRequest>,
) -> Result<Published, ProtocolError> {
    let named = named_channel(cx, connection, requested).await?;
    let (permissions, meta) = named.acting(connection)?;
    let subscribed = named.subscription.is_some();
    let allowed = check_client_publish(&permissions, subscribed, requested, event)?;
    let NamedChannel { channel, .. } = named;
    let outgoing = Outgoing {
        channel,
        event: event.to_owned(),
        data,
        meta: Some(meta),
        sender: Some(connection.id().to_owned()),
        echo: allowed.echo,
        store: allowed.store,
        eager_id,
        preset_id: None,
        deduplication_id: None,
        storage_key: None,
        emit: emitting(cx, allowed.emit_pub_sub_event).then(|| cx.origin_of(connection)),
    };
    let grant = Grant::Client {
        schedule_before: allowed.schedule_before,
    };
    publish_or_schedule(cx, outgoing, schedule, grant)
        .await
        .map_err(|e| e.with_channel(requested))
}

/// A server publish, by Lambda invoke or `POST /publish` (docs/protocol.md,
/// "Server API").
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerPublish {
    pub channel: String,
    pub event: String,
    #[serde(default)]
    pub data: Value,
    /// Seconds: 0 (default) not stored, -1 forever.
    #[serde(default)]
    pub store: i64,
    #[serde(default)]
    pub deduplication_id: Option<String>,
    #[serde(default)]
    pub eager_id_generation: bool,
    #[serde(default)]
    pub emit_pub_sub_event: bool,
    #[serde(default)]
    pub schedule_expression: Option<String>,
    #[serde(default)]
    pub schedule_expression_timezone: Option<String>,
}

/// What the application's backend asks through the publish API.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerRequest {
    Publish(ServerPublish),
    /// A schedule fell due (only from the publish function's invocation).
    Scheduled(Box<Outgoing>),
    /// `"event": "hotsock.messageReaction"`: a reaction on behalf of `uid`.
    Reaction(ServerReaction),
    /// `"event": "hotsock.channelStorageSet"`: a storage write without
    /// permission checks.
    StorageSet(ServerStorageSet),
}

/// A server-side storage write: `channel`, `key`, `data` (`null` or `{}`
/// clears), `store` seconds (-1, forever, by default).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerStorageSet {
    pub channel: String,
    pub key: String,
    pub data: Value,
    pub store: i64,
    pub schedule: Option<ScheduleRequest>,
    /// `emitPubSubEvent`: the change raises `hotsock.channelStorageUpdated`.
    pub emit_pub_sub_event: bool,
}

/// A server-side reaction: the client command's `channel` and `data`
/// (`messageId`, `reaction`, `action`), plus the `uid` (and optional `umd`) it
/// is made as.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerReaction {
    /// `emitPubSubEvent`: the reaction raises a backend event.
    pub emit_pub_sub_event: bool,
    pub channel: String,
    pub message_id: String,
    pub reaction: String,
    pub action: ReactionAction,
    pub uid: String,
    pub umd: Option<Value>,
}

impl ServerPublish {
    pub fn schedule(&self) -> Option<ScheduleRequest> {
        self.schedule_expression
            .as_ref()
            .map(|expression| ScheduleRequest {
                expression: expression.clone(),
                timezone: self.schedule_expression_timezone.clone(),
            })
    }
}

/// The publish function's payload: a server request, or a schedule that fell
/// due (`{"sockhopScheduled": …}`, what the scheduler invokes it with).
pub fn parse_publish_invocation(payload: Value) -> Result<ServerRequest, ProtocolError> {
    if payload.get("sockhopScheduled").is_some() {
        // The error names the bad field's path (`sockhopScheduled.store: …`).
        let scheduled: Scheduled = serde_path_to_error::deserialize(payload).map_err(|e| {
            ProtocolError::new(
                ErrorCode::InvalidRequest,
                format!("invalid scheduled publish: {e}"),
            )
        })?;
        return Ok(ServerRequest::Scheduled(Box::new(
            scheduled.sockhop_scheduled,
        )));
    }
    parse_server_request(payload)
}

/// Parses and validates a server request (the publish function's payload or
/// `POST /publish`'s body).
pub fn parse_server_request(payload: Value) -> Result<ServerRequest, ProtocolError> {
    match payload.get("event").and_then(Value::as_str) {
        Some(events::MESSAGE_REACTION) => {
            return parse_server_reaction(payload).map(ServerRequest::Reaction)
        }
        Some(events::CHANNEL_STORAGE_SET) => {
            return parse_server_storage_set(payload).map(ServerRequest::StorageSet)
        }
        _ => {}
    }
    let mut request: ServerPublish = serde_path_to_error::deserialize(payload).map_err(|e| {
        ProtocolError::new(
            ErrorCode::InvalidRequest,
            format!("invalid publish request: {e}"),
        )
    })?;
    // An empty deduplicationId is no deduplicationId (Hotsock: "non-empty").
    if request.deduplication_id.as_deref() == Some("") {
        request.deduplication_id = None;
    }
    check_server_publish(&request)?;
    Ok(ServerRequest::Publish(request))
}

/// `emitPubSubEvent` of a server storage write or reaction: absent is `false`.
fn emit_flag(payload: &Value) -> Result<bool, ProtocolError> {
    match payload.get("emitPubSubEvent") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ProtocolError::new(
            ErrorCode::InvalidRequest,
            "emitPubSubEvent must be a boolean",
        )),
    }
}

/// The storage fields are validated exactly as a client's frame is; `store`
/// is -1 or 1 to the largest number of seconds.
fn parse_server_storage_set(payload: Value) -> Result<ServerStorageSet, ProtocolError> {
    let store = match payload.get("store") {
        None | Some(Value::Null) => STORE_FOREVER,
        Some(v) => match v.as_i64() {
            Some(s) if sockhop_core::claims::valid_storage_store(s) => s,
            _ => {
                return Err(ProtocolError::new(
                    ErrorCode::InvalidRequest,
                    "store must be -1 or a number of seconds from 1 to 3155695200",
                ))
            }
        },
    };
    let frame = json!({
        "event": events::CHANNEL_STORAGE_SET,
        "channel": payload.get("channel"),
        "key": payload.get("key"),
        "data": payload.get("data"),
        "scheduleExpression": payload.get("scheduleExpression"),
        "scheduleExpressionTimezone": payload.get("scheduleExpressionTimezone"),
    });
    let command = parse_request_frame(&frame)?;
    let ClientCommand::ChannelStorageSet {
        channel,
        key,
        data,
        schedule,
    } = command
    else {
        return Err(ProtocolError::new(
            ErrorCode::InvalidRequest,
            "not a storage write",
        ));
    };
    let emit_pub_sub_event = emit_flag(&payload)?;
    Ok(ServerStorageSet {
        channel,
        key,
        data,
        store,
        schedule,
        emit_pub_sub_event,
    })
}

/// The reaction fields are validated exactly as a client's frame is; `uid` and
/// `umd` as a token's are.
fn parse_server_reaction(payload: Value) -> Result<ServerReaction, ProtocolError> {
    let invalid = |message: &str| ProtocolError::new(ErrorCode::InvalidRequest, message);
    let frame = json!({
        "event": events::MESSAGE_REACTION,
        "channel": payload.get("channel"),
        "data": payload.get("data"),
    });
    let ClientCommand::MessageReaction {
        channel,
        message_id,
        reaction,
        action,
    } = parse_request_frame(&frame)?
    else {
        return Err(invalid("not a reaction"));
    };
    let uid = match payload.get("uid") {
        Some(Value::String(uid))
            if !uid.is_empty() && uid.chars().count() <= names::MAX_UID_CHARS =>
        {
            uid.clone()
        }
        _ => {
            return Err(
                invalid("a server reaction needs uid: a string of 1 to 128 characters")
                    .with_channel(&channel),
            )
        }
    };
    let umd = payload.get("umd").filter(|u| !u.is_null()).cloned();
    if let Some(umd) = &umd {
        names::validate_umd_size(umd).map_err(|e| e.with_channel(&channel))?;
    }
    let emit_pub_sub_event = emit_flag(&payload).map_err(|e| e.with_channel(&channel))?;
    Ok(ServerReaction {
        emit_pub_sub_event,
        channel,
        message_id,
        reaction,
        action,
        uid,
        umd,
    })
}

/// Validates a server publish (pure): names, size, store range, and what this
/// stage does not support yet.
pub fn check_server_publish(request: &ServerPublish) -> Result<(), ProtocolError> {
    names::validate_channel(&request.channel)?;
    names::validate_client_event(&request.event).map_err(|e| e.with_channel(&request.channel))?;
    names::validate_data_size(&request.data).map_err(|e| e.with_channel(&request.channel))?;
    if !(STORE_FOREVER..=sockhop_core::claims::MAX_STORE_SECONDS).contains(&request.store) {
        return Err(ProtocolError::new(
            ErrorCode::InvalidRequest,
            "store must be -1, 0 or a number of seconds up to 3155695200",
        ));
    }
    if let Some(id) = &request.deduplication_id {
        if id.len() > 128 {
            return Err(ProtocolError::new(
                ErrorCode::InvalidRequest,
                "deduplicationId must be at most 128 characters",
            ));
        }
    }
    Ok(())
}

/// Publishes for the application's backend (validated by
/// [`check_server_publish`] when parsed): no client permission checks, no
/// sender, no meta. Returns the reply `{"channel","event"}` (+`id` when eager).
pub async fn publish_from_server(
    cx: Ctx<'_>,
    request: &ServerPublish,
) -> Result<Value, ProtocolError> {
    let outgoing = Outgoing {
        channel: request.channel.clone(),
        event: request.event.clone(),
        data: request.data.clone(),
        meta: None,
        sender: None,
        echo: false,
        store: request.store,
        eager_id: request.eager_id_generation,
        preset_id: None,
        deduplication_id: request.deduplication_id.clone(),
        storage_key: None,
        emit: emitting(cx, request.emit_pub_sub_event).then(|| cx.server_origin()),
    };
    let schedule = request.schedule();
    let published = publish_or_schedule(cx, outgoing, schedule.as_ref(), Grant::Server).await?;
    Ok(published.reply(&request.channel, &request.event))
}

/// A schedule fell due: its message is published now, as decided then.
/// Replies `{"channel","event"}`.
pub async fn publish_scheduled(cx: Ctx<'_>, outgoing: Outgoing) -> Result<Value, ProtocolError> {
    let reply = json!({"channel": outgoing.channel, "event": outgoing.event});
    publish(cx, outgoing).await?;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sockhop_core::claims::Claims;

    fn perms(channels: Value) -> ChannelPermissions {
        let claims = Claims::parse(
            json!({"exp": 1, "scope": "connect", "channels": channels})
                .as_object()
                .expect("object"),
        )
        .expect("claims");
        ChannelPermissions::single(claims.channels.grant_for("chat"))
    }

    /// A bad field's error names its path, nested ones included; the code
    /// stays `INVALID_REQUEST`.
    #[test]
    fn body_errors_name_the_path_of_the_bad_field() {
        let err = parse_server_request(json!({"channel": "c", "event": "e", "store": "x"}))
            .expect_err("a string store");
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(
            err.message
                .starts_with("invalid publish request: store: invalid type: string"),
            "{}",
            err.message
        );
        let err = parse_publish_invocation(json!({"sockhopScheduled": {
            "channel": "c", "event": "e", "data": null, "echo": false, "store": 0,
            "eagerId": false, "emit": {"trigger": 5}}}))
        .expect_err("a number for a trigger");
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(
            err.message.starts_with(
                "invalid scheduled publish: sockhopScheduled.emit.trigger: invalid type: integer `5`"
            ),
            "{}",
            err.message
        );
        // An error of the whole body has no path to name.
        let err = parse_server_request(json!({"event": "e"})).expect_err("no channel");
        assert_eq!(
            err.message,
            "invalid publish request: missing field `channel`"
        );
    }

    fn server(channel: &str, event: &str) -> ServerPublish {
        serde_json::from_value(json!({"channel": channel, "event": event})).expect("request")
    }

    #[test]
    fn server_publish_validation() {
        assert!(check_server_publish(&server("chat", "msg")).is_ok());
        let code = |r: ServerPublish| check_server_publish(&r).unwrap_err().code;
        assert_eq!(code(server("bad name", "msg")), ErrorCode::InvalidChannel);
        assert_eq!(code(server("chat", "hotsock.x")), ErrorCode::InvalidEvent);
        let mut big = server("chat", "msg");
        big.data = json!("x".repeat(40_000));
        assert_eq!(code(big), ErrorCode::MessageTooLarge);
        let mut bad_store = server("chat", "msg");
        bad_store.store = -2;
        assert_eq!(code(bad_store), ErrorCode::InvalidRequest);
        // A schedule is checked when the time is known (schedule::resolve).
        let mut scheduled = server("chat", "msg");
        scheduled.schedule_expression = Some("at(2030-01-01T00:00:00)".into());
        scheduled.schedule_expression_timezone = Some("Asia/Tokyo".into());
        assert_eq!(check_server_publish(&scheduled), Ok(()));
        assert_eq!(
            scheduled.schedule(),
            Some(ScheduleRequest {
                expression: "at(2030-01-01T00:00:00)".into(),
                timezone: Some("Asia/Tokyo".into())
            })
        );
        let mut dedup = server("chat", "msg");
        dedup.deduplication_id = Some("d".repeat(129));
        assert_eq!(code(dedup), ErrorCode::InvalidRequest);
        // An empty deduplicationId is no deduplicationId.
        let parsed =
            parse_server_request(json!({"channel": "c", "event": "e", "deduplicationId": ""}))
                .expect("accepted");
        assert!(matches!(parsed, ServerRequest::Publish(p) if p.deduplication_id.is_none()));
        let parsed: ServerPublish = serde_json::from_value(json!({"channel": "c", "event": "e",
            "store": -1, "deduplicationId": "d", "eagerIdGeneration": true}))
        .expect("parse");
        assert_eq!(parsed.store, -1);
        assert!(parsed.eager_id_generation);
    }

    #[test]
    fn client_publish_needs_publish_or_broadcast() {
        let p = perms(
            json!({"chat": {"messages": {"msg": {"publish": true, "echo": true, "store": 60}}}}),
        );
        let ok = check_client_publish(&p, true, "chat", "msg").expect("allowed");
        assert!(ok.echo);
        assert_eq!(ok.store, 60);
        let err = check_client_publish(&p, false, "chat", "msg").unwrap_err();
        assert_eq!(err.code, ErrorCode::PublishPermissionDenied);
        assert_eq!(err.channel.as_deref(), Some("chat"));
        let err = check_client_publish(&p, true, "alias", "other").unwrap_err();
        assert_eq!(err.channel.as_deref(), Some("alias"));
        let b = perms(json!({"chat": {"messages": {"*": {"broadcast": true}}}}));
        assert!(check_client_publish(&b, false, "chat", "any").is_ok());
    }

    #[test]
    fn a_schedule_payload_is_the_decided_message_and_only_the_publish_function_takes_it() {
        let outgoing = Outgoing {
            channel: "room".into(),
            event: "m".into(),
            data: json!({"a": [1]}),
            meta: Some(Meta::new(Some("jim".into()), Some(json!({"n": 1})))),
            sender: Some("conn-1".into()),
            echo: true,
            store: 600,
            eager_id: true,
            preset_id: Some("01JA3S0TNEC2QBYMZRBMCEXGNW".into()),
            deduplication_id: Some("01JA3S0TNEC2QBYMZRBMCEXGNX".into()),
            storage_key: None,
            emit: None,
        };
        let payload = serde_json::to_value(Scheduled {
            sockhop_scheduled: outgoing.clone(),
        })
        .expect("serializes");
        assert_eq!(
            payload["sockhopScheduled"]["presetId"],
            "01JA3S0TNEC2QBYMZRBMCEXGNW"
        );
        match parse_publish_invocation(payload.clone()) {
            Ok(ServerRequest::Scheduled(back)) => assert_eq!(*back, outgoing),
            other => panic!("{other:?}"),
        }
        // POST /publish parses server requests only.
        assert_eq!(
            parse_server_request(payload).map_err(|e| e.code),
            Err(ErrorCode::InvalidRequest)
        );
        let mut extra = serde_json::to_value(Scheduled {
            sockhop_scheduled: outgoing,
        })
        .expect("serializes");
        extra["channel"] = json!("elsewhere");
        assert_eq!(
            parse_publish_invocation(extra).map_err(|e| e.code),
            Err(ErrorCode::InvalidRequest)
        );
    }
}
