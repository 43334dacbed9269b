//! Wire frames (docs/protocol.md): parsing what clients send and building exactly
//! the shapes hotsock-js expects back.
//!
//! Parsing checks shape and names only; permissions are the handlers' job.

use crate::error::{ErrorCode, ProtocolError};
use crate::names;
use crate::schedule::ScheduleRequest;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use ulid::Ulid;

/// Largest client frame accepted, in bytes. Checked before JSON parsing so a huge
/// frame costs nothing; the real limit on content is `names::MAX_DATA_BYTES`.
pub const MAX_FRAME_BYTES: usize = 128 * 1024;

/// Event names of the protocol's own frames.
pub mod events {
    pub const CONNECTED: &str = "hotsock.connected";
    pub const SUBSCRIBE: &str = "hotsock.subscribe";
    pub const SUBSCRIBED: &str = "hotsock.subscribed";
    pub const UNSUBSCRIBE: &str = "hotsock.unsubscribe";
    pub const UNSUBSCRIBED: &str = "hotsock.unsubscribed";
    pub const PING: &str = "hotsock.ping";
    pub const PONG: &str = "hotsock.pong";
    pub const HEARTBEAT: &str = "hotsock.heartbeat";
    pub const KEEP_ALIVE: &str = "hotsock.keepAlive";
    pub const ERROR: &str = "hotsock.error";
    pub const MEMBER_ADDED: &str = "hotsock.memberAdded";
    pub const MEMBER_UPDATED: &str = "hotsock.memberUpdated";
    pub const MEMBER_REMOVED: &str = "hotsock.memberRemoved";
    pub const MESSAGE_REACTION: &str = "hotsock.messageReaction";
    pub const MESSAGE_REACTION_ADDED: &str = "hotsock.messageReactionAdded";
    pub const MESSAGE_REACTION_REMOVED: &str = "hotsock.messageReactionRemoved";
    pub const CHANNEL_STORAGE_SET: &str = "hotsock.channelStorageSet";
    pub const CHANNEL_STORAGE_GET: &str = "hotsock.channelStorageGet";
    pub const CHANNEL_STORAGE_UPDATED: &str = "hotsock.channelStorageUpdated";
    pub const CHANNEL_STORAGE_DATA: &str = "hotsock.channelStorageData";
    pub const UMD_UPDATE: &str = "hotsock.umdUpdate";
}

// ---------------------------------------------------------------------------------
// Client -> server
// ---------------------------------------------------------------------------------

/// Whether a reaction is being added or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReactionAction {
    Add,
    Remove,
}

impl ReactionAction {
    /// The wire string: `add` or `remove`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            ReactionAction::Add => "add",
            ReactionAction::Remove => "remove",
        }
    }

    pub const fn is_add(&self) -> bool {
        matches!(self, ReactionAction::Add)
    }
}

/// One well-formed client text frame: a keep-alive, answered on the socket
/// with no read, or a command for the dispatcher.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// `hotsock.ping`: answered with `hotsock.pong`.
    Ping,
    /// `hotsock.pong`: nothing to do.
    Pong,
    Command(ClientCommand),
}

/// A well-formed client command (a frame's or a Client HTTP API body's).
/// Names are validated; permissions are not.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientCommand {
    /// `token` is a subscribe-scoped JWT, never empty; `resume` is Sockhop's
    /// extension (`data.resume`, docs/protocol.md "Resume").
    Subscribe {
        channel: String,
        token: Option<String>,
        resume: Option<Resume>,
    },
    Unsubscribe {
        channel: String,
    },
    /// `hotsock.heartbeat`: the connection's sign of life (it touches the
    /// connection, so unlike a ping it is a command).
    Heartbeat,
    /// `data` is `null` when the frame had none; its size is already checked.
    /// `eager_id` (`eagerIdGeneration`): the id is assigned at once and replied.
    Publish {
        channel: String,
        event: String,
        data: Value,
        eager_id: bool,
        /// `scheduleExpression`: delivered then instead of now.
        schedule: Option<ScheduleRequest>,
    },
    /// `message_id` is a canonical (uppercase) ULID.
    MessageReaction {
        channel: String,
        message_id: String,
        reaction: String,
        action: ReactionAction,
    },
    /// `data` of `null` (or `{}`) clears the key.
    ChannelStorageSet {
        channel: String,
        key: String,
        data: Value,
        /// `scheduleExpression`: written then instead of now.
        schedule: Option<ScheduleRequest>,
    },
    ChannelStorageGet {
        channel: String,
        key: String,
    },
    /// Client HTTP API only: the entries the connection may `get`, in key
    /// order, only `keys` when given, after the key `after`.
    ChannelStorageList {
        channel: String,
        keys: Option<Vec<String>>,
        after: Option<String>,
    },
    /// `token` is a umd-scoped JWT, never empty.
    UmdUpdate {
        channel: Option<String>,
        token: String,
    },
    /// `connection/listMessages` (Client HTTP API only).
    ListMessages(ListMessages),
    /// `connection/listReactions` (Client HTTP API only); `message_id` canonical.
    ListReactions {
        channel: String,
        message_id: String,
    },
    /// `connection/getChannelInfo` (Client HTTP API only).
    GetChannelInfo {
        channel: String,
    },
}

/// A `listMessages` request; cursors are canonical (uppercase) ULIDs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListMessages {
    pub channel: String,
    /// Oldest first: messages newer than this id (`before` is ignored).
    pub after: Option<String>,
    /// Newest first (`reverse`): messages older than this id (`after` is ignored).
    pub before: Option<String>,
    pub reverse: bool,
    pub limit: usize,
    pub expand_reactions: bool,
}

/// What a subscribe asks of the channel's recovery log (`data.resume`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Resume {
    /// `true`: track positions from this subscription on (the answer names one).
    Start,
    /// `{"position": P}`: everything after P, the last position this client saw
    /// (a message id, another frame's `position`, or the `position` of its
    /// earlier `hotsock.subscribed`).
    After(Since),
}

/// Where a resume picks up: the last position seen, and the connections it
/// had since (`connectionIds`), whose own messages sent without echo it
/// never received and is not sent now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "SinceRecord")]
pub struct Since {
    pub position: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<String>,
}

impl Since {
    pub fn position(position: impl Into<String>) -> Self {
        Since {
            position: position.into(),
            connections: Vec::new(),
        }
    }
}

/// A queued [`Since`] as written before it named connections (a bare position).
#[derive(Deserialize)]
#[serde(untagged)]
enum SinceRecord {
    Position(String),
    #[serde(rename_all = "camelCase")]
    Full {
        position: String,
        #[serde(default)]
        connections: Vec<String>,
    },
}

impl From<SinceRecord> for Since {
    fn from(record: SinceRecord) -> Self {
        match record {
            SinceRecord::Position(position) => Since::position(position),
            SinceRecord::Full {
                position,
                connections,
            } => Since {
                position,
                connections,
            },
        }
    }
}

/// The most connections a resume may name (`connectionIds`).
pub const MAX_RESUME_CONNECTIONS: usize = 10;

/// `listMessages` page size when `limit` is absent (Hotsock's default).
pub const DEFAULT_LIST_LIMIT: usize = 100;
/// The largest `limit` accepted (Hotsock's docs set none; a page also stops at 1 MB).
pub const MAX_LIST_LIMIT: usize = 1000;

impl ClientCommand {
    /// The channel the command is about, if any (as the client named it: may be an
    /// alias).
    pub fn channel(&self) -> Option<&str> {
        match self {
            ClientCommand::Subscribe { channel, .. }
            | ClientCommand::Unsubscribe { channel }
            | ClientCommand::Publish { channel, .. }
            | ClientCommand::MessageReaction { channel, .. }
            | ClientCommand::ChannelStorageSet { channel, .. }
            | ClientCommand::ChannelStorageGet { channel, .. }
            | ClientCommand::ChannelStorageList { channel, .. }
            | ClientCommand::ListReactions { channel, .. }
            | ClientCommand::GetChannelInfo { channel }
            | ClientCommand::ListMessages(ListMessages { channel, .. }) => Some(channel),
            ClientCommand::UmdUpdate { channel, .. } => channel.as_deref(),
            ClientCommand::Heartbeat => None,
        }
    }
}

/// Parses one client text frame. Never panics; every failure is a [`ProtocolError`]
/// that carries the frame's `channel` whenever the frame had a string one.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, ProtocolError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(ProtocolError::new(
            ErrorCode::MessageTooLarge,
            format!(
                "frame is {} bytes; the limit is {MAX_FRAME_BYTES}",
                text.len()
            ),
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        ProtocolError::new(
            ErrorCode::InvalidMessage,
            format!("frame is not valid JSON: {e}"),
        )
    })?;
    parse_client_value(value)
}

/// Parses an already-decoded frame (also usable for HTTP bodies shaped like frames).
pub fn parse_client_value(value: Value) -> Result<ClientFrame, ProtocolError> {
    let Value::Object(map) = value else {
        return Err(ProtocolError::new(
            ErrorCode::InvalidMessage,
            "frame must be a JSON object",
        ));
    };
    Frame::new(map).parse()
}

/// Keys one `channelStorageList` (or admin storage read) may name.
pub const MAX_STORAGE_LIST_KEYS: usize = 100;

/// The admin storage read's channel and query (`keys` comma-separated, `after`
/// a key), validated like `channelStorageList`'s body.
pub fn parse_storage_read(
    channel: &str,
    keys: Option<&str>,
    after: Option<&str>,
) -> Result<(Option<Vec<String>>, Option<String>), ProtocolError> {
    let mut body = serde_json::json!({"channel": channel});
    if let Some(keys) = keys.filter(|k| !k.is_empty()) {
        body["keys"] = serde_json::json!(keys.split(',').collect::<Vec<_>>());
    }
    if let Some(after) = after {
        body["after"] = serde_json::json!(after);
    }
    match HttpOperation::ChannelStorageList.parse(body)? {
        ClientCommand::ChannelStorageList { keys, after, .. } => Ok((keys, after)),
        _ => Err(ProtocolError::internal()),
    }
}

/// The Client HTTP API's operations (`POST /connection/<name>`), declared once:
/// the HTTP function routes by [`HttpOperation::from_name`] and answers with
/// [`HttpOperation::accepted_later`]'s status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpOperation {
    PublishMessage,
    ListMessages,
    ListReactions,
    ChannelStorageGet,
    ChannelStorageSet,
    ChannelStorageList,
    GetChannelInfo,
    UmdUpdate,
}

impl HttpOperation {
    pub const ALL: [HttpOperation; 8] = [
        HttpOperation::PublishMessage,
        HttpOperation::ListMessages,
        HttpOperation::ListReactions,
        HttpOperation::ChannelStorageGet,
        HttpOperation::ChannelStorageSet,
        HttpOperation::ChannelStorageList,
        HttpOperation::GetChannelInfo,
        HttpOperation::UmdUpdate,
    ];

    /// The name in the path, as Hotsock spells it.
    pub const fn name(self) -> &'static str {
        match self {
            HttpOperation::PublishMessage => "publishMessage",
            HttpOperation::ListMessages => "listMessages",
            HttpOperation::ListReactions => "listReactions",
            HttpOperation::ChannelStorageGet => "channelStorageGet",
            HttpOperation::ChannelStorageSet => "channelStorageSet",
            HttpOperation::ChannelStorageList => "channelStorageList",
            HttpOperation::GetChannelInfo => "getChannelInfo",
            HttpOperation::UmdUpdate => "umdUpdate",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.name() == name)
    }

    /// Queued on the channel's ordered path and answered 202, not done before
    /// the answer (200).
    pub const fn accepted_later(self) -> bool {
        matches!(
            self,
            HttpOperation::PublishMessage | HttpOperation::ChannelStorageSet
        )
    }

    /// Parses the operation's body into the same command set as frames, with
    /// the same validation; shape errors answer `INVALID_REQUEST` (the HTTP
    /// counterpart of `INVALID_MESSAGE`).
    pub fn parse(self, body: Value) -> Result<ClientCommand, ProtocolError> {
        let Value::Object(map) = body else {
            return Err(ProtocolError::new(
                ErrorCode::InvalidRequest,
                "the body must be a JSON object",
            ));
        };
        let frame = Frame::new(map);
        let parsed = match self {
            HttpOperation::PublishMessage => frame.publish_message(),
            HttpOperation::ListMessages => frame.list_messages(),
            HttpOperation::ListReactions => frame.list_reactions(),
            HttpOperation::ChannelStorageGet => frame.storage_get(),
            HttpOperation::ChannelStorageSet => frame.storage_set(),
            HttpOperation::ChannelStorageList => frame.storage_list(),
            HttpOperation::GetChannelInfo => frame
                .required_channel()
                .map(|channel| ClientCommand::GetChannelInfo { channel }),
            HttpOperation::UmdUpdate => frame.umd_update_request(),
        };
        parsed.map_err(as_request_error)
    }
}

/// The error an operation name none of [`HttpOperation`] has answers.
pub fn unknown_http_operation(name: &str) -> ProtocolError {
    ProtocolError::new(ErrorCode::NotFound, format!("unknown operation {name:?}"))
}

/// Parses the body of the Client HTTP API operation named `operation`
/// ([`HttpOperation::parse`]); an unknown operation is `NOT_FOUND`.
pub fn parse_http_command(operation: &str, body: Value) -> Result<ClientCommand, ProtocolError> {
    HttpOperation::from_name(operation)
        .ok_or_else(|| unknown_http_operation(operation))?
        .parse(body)
}

/// Parses a request body's fields shaped as a client frame (the server
/// reaction and storage write reuse the frame validator): shape errors are
/// `INVALID_REQUEST`, as for every HTTP body.
pub fn parse_request_frame(frame: &Value) -> Result<ClientCommand, ProtocolError> {
    match parse_client_frame(&frame.to_string()).map_err(as_request_error)? {
        ClientFrame::Command(command) => Ok(command),
        ClientFrame::Ping | ClientFrame::Pong => Err(ProtocolError::new(
            ErrorCode::InvalidRequest,
            "a keep-alive is not a request",
        )),
    }
}

/// `INVALID_MESSAGE` (a frame's shape error) as `INVALID_REQUEST`, its
/// counterpart for request bodies; other codes unchanged.
fn as_request_error(mut e: ProtocolError) -> ProtocolError {
    if e.code == ErrorCode::InvalidMessage {
        e.code = ErrorCode::InvalidRequest;
    }
    e
}

/// A decoded frame object plus the channel to put on its errors.
struct Frame {
    map: Map<String, Value>,
    error_channel: Option<String>,
}

impl Frame {
    fn new(map: Map<String, Value>) -> Self {
        let error_channel = map
            .get("channel")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Frame { map, error_channel }
    }

    fn fail<T>(&self, code: ErrorCode, message: impl Into<String>) -> Result<T, ProtocolError> {
        Err(self.attach(ProtocolError::new(code, message)))
    }

    fn attach(&self, mut err: ProtocolError) -> ProtocolError {
        if err.channel.is_none() {
            err.channel.clone_from(&self.error_channel);
        }
        err
    }

    fn parse(self) -> Result<ClientFrame, ProtocolError> {
        let event = self.event()?;
        match event.as_str() {
            events::PING => Ok(ClientFrame::Ping),
            events::PONG => Ok(ClientFrame::Pong),
            _ => self.command(event).map(ClientFrame::Command),
        }
    }

    /// The frame's `event`, required.
    fn event(&self) -> Result<String, ProtocolError> {
        match self.map.get("event") {
            None | Some(Value::Null) => self.fail(ErrorCode::InvalidEvent, "event is required"),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => self.fail(ErrorCode::InvalidMessage, "event must be a string"),
        }
    }

    /// A frame's command, by its `event` (not a keep-alive).
    fn command(mut self, event: String) -> Result<ClientCommand, ProtocolError> {
        match event.as_str() {
            events::SUBSCRIBE => {
                let channel = self.required_channel()?;
                let token = self.subscribe_token()?;
                let resume = self.resume()?;
                Ok(ClientCommand::Subscribe {
                    channel,
                    token,
                    resume,
                })
            }
            events::UNSUBSCRIBE => Ok(ClientCommand::Unsubscribe {
                channel: self.required_channel()?,
            }),
            events::HEARTBEAT => Ok(ClientCommand::Heartbeat),
            events::MESSAGE_REACTION => self.message_reaction(),
            events::CHANNEL_STORAGE_SET => self.storage_set(),
            events::CHANNEL_STORAGE_GET => self.storage_get(),
            events::UMD_UPDATE => {
                let channel = self.optional_channel()?;
                let token = self.umd_token()?;
                Ok(ClientCommand::UmdUpdate { channel, token })
            }
            e if e.starts_with(names::RESERVED_EVENT_PREFIX) => self.fail(
                ErrorCode::UnknownCommand,
                format!("{e:?} is not a client command"),
            ),
            _ => {
                let channel = self.required_channel()?;
                names::validate_client_event(&event).map_err(|e| self.attach(e))?;
                let data = self.data()?;
                Ok(ClientCommand::Publish {
                    channel,
                    event,
                    data,
                    eager_id: self.flag("eagerIdGeneration")?,
                    schedule: self.schedule()?,
                })
            }
        }
    }

    /// `publishMessage`: a message or a reaction, as over WebSocket; any other
    /// `hotsock.*` event is not something a client publishes.
    fn publish_message(self) -> Result<ClientCommand, ProtocolError> {
        match self.map.get("event").and_then(Value::as_str) {
            Some(events::MESSAGE_REACTION) => self.message_reaction(),
            Some(e) if e.starts_with(names::RESERVED_EVENT_PREFIX) => {
                self.fail(ErrorCode::InvalidEvent, format!("{e:?} is reserved"))
            }
            // Not `hotsock.*`, so never a keep-alive.
            _ => {
                let event = self.event()?;
                self.command(event)
            }
        }
    }

    fn list_messages(&self) -> Result<ClientCommand, ProtocolError> {
        let channel = self.required_channel()?;
        let reverse = self.flag("reverse")?;
        // Each direction reads only its own cursor; the other is ignored, unread.
        let (after, before) = if reverse {
            (None, self.cursor("before")?)
        } else {
            (self.cursor("after")?, None)
        };
        Ok(ClientCommand::ListMessages(ListMessages {
            channel,
            after,
            before,
            reverse,
            limit: self.limit()?,
            expand_reactions: self.flag("expandReactions")?,
        }))
    }

    fn storage_set(mut self) -> Result<ClientCommand, ProtocolError> {
        let channel = self.required_channel()?;
        let key = self.storage_key()?;
        let schedule = self.schedule()?;
        let data = self.data()?;
        Ok(ClientCommand::ChannelStorageSet {
            channel,
            key,
            data,
            schedule,
        })
    }

    fn storage_get(self) -> Result<ClientCommand, ProtocolError> {
        let channel = self.required_channel()?;
        let key = self.storage_key()?;
        Ok(ClientCommand::ChannelStorageGet { channel, key })
    }

    fn storage_list(self) -> Result<ClientCommand, ProtocolError> {
        let channel = self.required_channel()?;
        let keys = match self.map.get("keys") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => {
                if items.len() > MAX_STORAGE_LIST_KEYS {
                    return self.fail(
                        ErrorCode::InvalidRequest,
                        format!("keys lists at most {MAX_STORAGE_LIST_KEYS} storage keys"),
                    );
                }
                let mut keys = Vec::with_capacity(items.len());
                for item in items {
                    let Value::String(key) = item else {
                        return self.fail(ErrorCode::InvalidStorageKey, "keys must be strings");
                    };
                    names::validate_storage_key(key).map_err(|e| self.attach(e))?;
                    keys.push(key.clone());
                }
                Some(keys)
            }
            Some(_) => return self.fail(ErrorCode::InvalidRequest, "keys must be an array"),
        };
        let after = match self.map.get("after") {
            None | Some(Value::Null) => None,
            Some(Value::String(key)) => Some(key.clone()),
            Some(_) => return self.fail(ErrorCode::InvalidRequest, "after must be a storage key"),
        };
        Ok(ClientCommand::ChannelStorageList {
            channel,
            keys,
            after,
        })
    }

    fn list_reactions(&self) -> Result<ClientCommand, ProtocolError> {
        let channel = self.required_channel()?;
        let message_id = self.message_id(self.map.get("messageId"), "messageId")?;
        Ok(ClientCommand::ListReactions {
            channel,
            message_id,
        })
    }

    /// An optional message-id cursor, canonicalised.
    fn cursor(&self, name: &str) -> Result<Option<String>, ProtocolError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(id)) => match parse_ulid(id) {
                Some(ulid) => Ok(Some(ulid.to_string())),
                None => self.fail(
                    ErrorCode::InvalidRequest,
                    format!("{name} must be a message id"),
                ),
            },
            Some(_) => self.fail(
                ErrorCode::InvalidRequest,
                format!("{name} must be a string"),
            ),
        }
    }

    fn limit(&self) -> Result<usize, ProtocolError> {
        match self.map.get("limit") {
            None | Some(Value::Null) => Ok(DEFAULT_LIST_LIMIT),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(limit @ 1..) if limit as usize <= MAX_LIST_LIMIT => Ok(limit as usize),
                _ => self.fail(
                    ErrorCode::InvalidRequest,
                    format!("limit must be a whole number from 1 to {MAX_LIST_LIMIT}"),
                ),
            },
            Some(_) => self.fail(ErrorCode::InvalidRequest, "limit must be a number"),
        }
    }

    /// `scheduleExpression` and `scheduleExpressionTimezone`, as strings; what
    /// they name is checked when the time is known (`schedule::resolve`).
    fn schedule(&self) -> Result<Option<ScheduleRequest>, ProtocolError> {
        let text = |name: &str| match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => self.fail(
                ErrorCode::InvalidRequest,
                format!("{name} must be a string"),
            ),
        };
        let timezone = text("scheduleExpressionTimezone")?;
        Ok(
            text("scheduleExpression")?.map(|expression| ScheduleRequest {
                expression,
                timezone,
            }),
        )
    }

    fn flag(&self, name: &str) -> Result<bool, ProtocolError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => self.fail(
                ErrorCode::InvalidRequest,
                format!("{name} must be a boolean"),
            ),
        }
    }

    /// A required message id (`field` names it in errors), canonicalised; one
    /// that is not a ULID names no message.
    fn message_id(&self, value: Option<&Value>, field: &str) -> Result<String, ProtocolError> {
        match value {
            Some(Value::String(id)) => match parse_ulid(id) {
                Some(ulid) => Ok(ulid.to_string()),
                None => self.fail(
                    ErrorCode::MessageNotFound,
                    "messageId is not a message id (ULID)",
                ),
            },
            None | Some(Value::Null) => {
                self.fail(ErrorCode::InvalidMessage, format!("{field} is required"))
            }
            Some(_) => self.fail(
                ErrorCode::InvalidMessage,
                format!("{field} must be a string"),
            ),
        }
    }

    fn optional_channel(&self) -> Result<Option<String>, ProtocolError> {
        match self.map.get("channel") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(c)) => {
                names::validate_channel(c).map_err(|e| self.attach(e))?;
                Ok(Some(c.clone()))
            }
            Some(_) => self.fail(ErrorCode::InvalidMessage, "channel must be a string"),
        }
    }

    fn required_channel(&self) -> Result<String, ProtocolError> {
        match self.optional_channel()? {
            Some(c) => Ok(c),
            None => self.fail(ErrorCode::InvalidChannel, "channel is required"),
        }
    }

    fn storage_key(&self) -> Result<String, ProtocolError> {
        match self.map.get("key") {
            None | Some(Value::Null) => {
                self.fail(ErrorCode::InvalidStorageKey, "storage key is required")
            }
            Some(Value::String(k)) => {
                names::validate_storage_key(k).map_err(|e| self.attach(e))?;
                Ok(k.clone())
            }
            Some(_) => self.fail(ErrorCode::InvalidMessage, "key must be a string"),
        }
    }

    /// Takes `data` (absent means `null`) after checking its size.
    fn data(&mut self) -> Result<Value, ProtocolError> {
        let data = self.map.remove("data").unwrap_or(Value::Null);
        names::validate_data_size(&data).map_err(|e| self.attach(e))?;
        Ok(data)
    }

    /// `data` as an object, or `None` when absent or `null`.
    fn data_object(&self) -> Result<Option<&Map<String, Value>>, ProtocolError> {
        match self.map.get("data") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(d)) => Ok(Some(d)),
            Some(_) => self.fail(ErrorCode::InvalidMessage, "data must be an object"),
        }
    }

    /// `data.token`; token problems use the command's token code so hotsock-js marks
    /// the subscription failed instead of leaving it pending.
    fn subscribe_token(&self) -> Result<Option<String>, ProtocolError> {
        let Some(data) = self.data_object()? else {
            return Ok(None);
        };
        match data.get("token") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(t)) if !t.is_empty() => Ok(Some(t.clone())),
            Some(Value::String(_)) => self.fail(
                ErrorCode::InvalidSubscribeToken,
                "subscribe token must not be empty",
            ),
            Some(_) => self.fail(
                ErrorCode::InvalidSubscribeToken,
                "subscribe token must be a string",
            ),
        }
    }

    /// `data.resume`: absent or `null` (no resume), `true`, or
    /// `{"position": <ULID>}`; anything else is `INVALID_RESUME_POSITION`.
    fn resume(&self) -> Result<Option<Resume>, ProtocolError> {
        let Some(data) = self.data_object()? else {
            return Ok(None);
        };
        let bad = |why: &str| {
            self.fail(
                ErrorCode::InvalidResumePosition,
                format!("resume {why}: give true or {{\"position\": <message id>}}"),
            )
        };
        match data.get("resume") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(None),
            Some(Value::Bool(true)) => Ok(Some(Resume::Start)),
            Some(Value::Object(resume)) => {
                let position = match resume.get("position") {
                    Some(Value::String(p)) if crate::ids::position_time_ms(p).is_some() => {
                        p.to_ascii_uppercase()
                    }
                    Some(Value::String(_)) => return bad("position is not a position"),
                    Some(_) => return bad("position must be a string"),
                    None => return bad("needs a position"),
                };
                let connections = match resume.get("connectionIds") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(ids))
                        if ids.len() <= MAX_RESUME_CONNECTIONS
                            && ids.iter().all(|id| {
                                id.as_str()
                                    .is_some_and(|id| !id.is_empty() && id.len() <= 128)
                            }) =>
                    {
                        ids.iter()
                            .filter_map(|id| id.as_str().map(str::to_owned))
                            .collect()
                    }
                    Some(_) => {
                        return bad("connectionIds must be at most 10 connection ids");
                    }
                };
                Ok(Some(Resume::After(Since {
                    position,
                    connections,
                })))
            }
            Some(_) => bad("must be true or an object"),
        }
    }

    /// `connection/umdUpdate`: `token` and `channel` at the top of the body.
    fn umd_update_request(&self) -> Result<ClientCommand, ProtocolError> {
        let channel = self.optional_channel()?;
        let token = self.umd_token_in(self.map.get("token"))?;
        Ok(ClientCommand::UmdUpdate { channel, token })
    }

    fn umd_token(&self) -> Result<String, ProtocolError> {
        self.umd_token_in(self.data_object()?.and_then(|d| d.get("token")))
    }

    fn umd_token_in(&self, token: Option<&Value>) -> Result<String, ProtocolError> {
        match token {
            Some(Value::String(t)) if !t.is_empty() => Ok(t.clone()),
            None | Some(Value::Null) => {
                self.fail(ErrorCode::InvalidUmdToken, "a umd token is required")
            }
            Some(Value::String(_)) => {
                self.fail(ErrorCode::InvalidUmdToken, "umd token must not be empty")
            }
            Some(_) => self.fail(ErrorCode::InvalidUmdToken, "umd token must be a string"),
        }
    }

    fn message_reaction(&self) -> Result<ClientCommand, ProtocolError> {
        let channel = self.required_channel()?;
        let Some(data) = self.data_object()? else {
            return self.fail(
                ErrorCode::InvalidMessage,
                "data with messageId, reaction and action is required",
            );
        };
        let message_id = self.message_id(data.get("messageId"), "data.messageId")?;
        let reaction = match data.get("reaction") {
            Some(Value::String(r)) => {
                names::validate_reaction(r).map_err(|e| self.attach(e))?;
                r.clone()
            }
            None | Some(Value::Null) => {
                return self.fail(ErrorCode::InvalidReaction, "data.reaction is required")
            }
            Some(_) => {
                return self.fail(ErrorCode::InvalidMessage, "data.reaction must be a string")
            }
        };
        let action = match data.get("action").and_then(Value::as_str) {
            Some("add") => ReactionAction::Add,
            Some("remove") => ReactionAction::Remove,
            _ => {
                return self.fail(
                    ErrorCode::InvalidMessage,
                    "data.action must be \"add\" or \"remove\"",
                )
            }
        };
        Ok(ClientCommand::MessageReaction {
            channel,
            message_id,
            reaction,
            action,
        })
    }
}

// ---------------------------------------------------------------------------------
// Server -> client
// ---------------------------------------------------------------------------------

/// `meta` of a frame: who published it. `uid` and `umd` are always serialized
/// (`null` when absent) because hotsock-js reads `meta.uid` without a guard.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub uid: Option<String>,
    pub umd: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_alias: Option<String>,
}

impl Meta {
    /// `umd` of JSON `null` is stored as `None`, so equal metas compare equal.
    pub fn new(uid: Option<String>, umd: Option<Value>) -> Self {
        Meta {
            uid,
            umd: umd.filter(|v| !v.is_null()),
            channel_alias: None,
        }
    }

    pub fn with_alias(mut self, alias: impl Into<String>) -> Self {
        self.channel_alias = Some(alias.into());
        self
    }
}

/// A presence member as listed in `data.member` / `data.members`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Member {
    pub uid: String,
    /// `null` when the member has no umd.
    #[serde(default)]
    pub umd: Value,
}

impl Member {
    pub fn new(uid: impl Into<String>, umd: Option<Value>) -> Self {
        Member {
            uid: uid.into(),
            umd: umd.unwrap_or(Value::Null),
        }
    }

    fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("uid".into(), Value::String(self.uid.clone()));
        m.insert("umd".into(), self.umd.clone());
        Value::Object(m)
    }
}

/// `error` of a `hotsock.error` frame.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
}

impl From<&ProtocolError> for WireError {
    fn from(e: &ProtocolError) -> Self {
        WireError {
            code: e.code,
            message: e.message.clone(),
        }
    }
}

/// One server -> client frame. Build it with the constructors, which produce exactly
/// the shapes docs/protocol.md describes.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ServerMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default)]
    pub data: Value,
    /// Outer `None`: no `meta` field. `Some(None)`: `"meta":null` (an unset storage
    /// entry). `Some(Some(m))`: a meta object.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub meta: Option<Option<Meta>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
    /// Sockhop's extension: the place on the channel's ordered path of a
    /// frame with no `id` (a storage update, a member event), sent only to
    /// resumable subscriptions (docs/protocol.md "Resume").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
}

/// Distinguishes a present `null` from an absent field.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

fn object<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

fn members_value(members: Vec<Member>) -> Value {
    Value::Array(members.iter().map(Member::to_value).collect())
}

impl ServerMessage {
    fn bare(event: &str, data: Value) -> Self {
        ServerMessage {
            id: None,
            event: event.to_owned(),
            channel: None,
            key: None,
            data,
            meta: None,
            error: None,
            position: None,
        }
    }

    /// The frame as a resumable subscription gets it: with its `position`.
    pub fn at_position(mut self, position: impl Into<String>) -> Self {
        self.position = Some(position.into());
        self
    }

    fn on(mut self, channel: impl Into<String>) -> Self {
        self.channel = Some(channel.into());
        self
    }

    fn with_id(mut self, id: &str) -> Self {
        self.id = Some(id.to_owned());
        self
    }

    fn with_meta(mut self, meta: Meta) -> Self {
        self.meta = Some(Some(meta));
        self
    }

    /// First frame of a connection. `expires_at` is RFC 3339 UTC (see
    /// [`format_rfc3339_utc`]).
    pub fn connected(connection_id: &str, expires_at: &str, secret: &str, meta: Meta) -> Self {
        ServerMessage::bare(
            events::CONNECTED,
            object([
                ("connectionId", Value::String(connection_id.to_owned())),
                ("connectionExpiresAt", Value::String(expires_at.to_owned())),
                ("connectionSecret", Value::String(secret.to_owned())),
            ]),
        )
        .with_meta(meta)
    }

    /// `members` only for presence channels; `auto_subscribed` for subscriptions made
    /// on connect.
    pub fn subscribed(
        channel: &str,
        meta: Meta,
        members: Option<Vec<Member>>,
        auto_subscribed: bool,
    ) -> Self {
        let mut data = Map::new();
        if let Some(members) = members {
            data.insert("members".into(), members_value(members));
        }
        if auto_subscribed {
            data.insert("autoSubscribed".into(), Value::Bool(true));
        }
        ServerMessage::bare(events::SUBSCRIBED, Value::Object(data))
            .on(channel)
            .with_meta(meta)
    }

    /// A resumable subscription's `hotsock.subscribed`: `data.position`, the
    /// channel's position at the welcome, and for a resume `data.recovered`.
    pub fn with_resume(mut self, position: Option<&str>, recovered: Option<bool>) -> Self {
        if let Value::Object(data) = &mut self.data {
            if let Some(position) = position {
                data.insert("position".into(), Value::String(position.to_owned()));
            }
            if let Some(recovered) = recovered {
                data.insert("recovered".into(), Value::Bool(recovered));
            }
        }
        self
    }

    pub fn unsubscribed(channel: &str, meta: Meta) -> Self {
        ServerMessage::bare(events::UNSUBSCRIBED, empty_object())
            .on(channel)
            .with_meta(meta)
    }

    /// Hotsock's keep-alive page shows the pong's `data` as the string `"{}"`.
    pub fn pong() -> Self {
        ServerMessage::bare(events::PONG, Value::String("{}".into()))
    }

    pub fn keep_alive() -> Self {
        ServerMessage::bare(events::KEEP_ALIVE, empty_object())
    }

    /// Server-initiated ping; hotsock-js answers `hotsock.pong`.
    pub fn ping() -> Self {
        ServerMessage::bare(events::PING, empty_object())
    }

    /// `hotsock.error`, carrying the error's channel when it has one.
    pub fn error(err: ProtocolError) -> Self {
        let wire = WireError::from(&err);
        let mut msg = ServerMessage::bare(events::ERROR, empty_object());
        msg.channel = err.channel;
        msg.error = Some(wire);
        msg
    }

    /// A published message. `meta` is `None` for server publishes without a uid.
    pub fn message(id: &str, event: &str, channel: &str, data: Value, meta: Option<Meta>) -> Self {
        let mut msg = ServerMessage::bare(event, data).on(channel);
        msg.id = Some(id.to_owned());
        msg.meta = meta.map(Some);
        msg
    }

    fn member_event(event: &str, channel: &str, member: Member, members: Vec<Member>) -> Self {
        ServerMessage::bare(
            event,
            object([
                ("member", member.to_value()),
                ("members", members_value(members)),
            ]),
        )
        .on(channel)
    }

    pub fn member_added(channel: &str, member: Member, members: Vec<Member>) -> Self {
        ServerMessage::member_event(events::MEMBER_ADDED, channel, member, members)
    }

    pub fn member_updated(channel: &str, member: Member, members: Vec<Member>) -> Self {
        ServerMessage::member_event(events::MEMBER_UPDATED, channel, member, members)
    }

    pub fn member_removed(channel: &str, member: Member, members: Vec<Member>) -> Self {
        ServerMessage::member_event(events::MEMBER_REMOVED, channel, member, members)
    }

    /// `hotsock.messageReactionAdded` (`added`) or `hotsock.messageReactionRemoved`.
    pub fn reaction(
        id: &str,
        added: bool,
        channel: &str,
        message_id: &str,
        reaction: &str,
        meta: Meta,
    ) -> Self {
        let (event, action) = if added {
            (events::MESSAGE_REACTION_ADDED, ReactionAction::Add)
        } else {
            (events::MESSAGE_REACTION_REMOVED, ReactionAction::Remove)
        };
        ServerMessage::bare(
            event,
            object([
                ("messageId", Value::String(message_id.to_owned())),
                ("reaction", Value::String(reaction.to_owned())),
                ("action", Value::String(action.as_str().to_owned())),
            ]),
        )
        .on(channel)
        .with_meta(meta)
        .with_id(id)
    }

    pub fn storage_updated(channel: &str, key: &str, data: Value, meta: Meta) -> Self {
        let mut msg = ServerMessage::bare(events::CHANNEL_STORAGE_UPDATED, data)
            .on(channel)
            .with_meta(meta);
        msg.key = Some(key.to_owned());
        msg
    }

    /// Answer to a storage get; `data` and `meta` are `null` when the key is unset.
    pub fn storage_data(channel: &str, key: &str, data: Option<Value>, meta: Option<Meta>) -> Self {
        let mut msg =
            ServerMessage::bare(events::CHANNEL_STORAGE_DATA, data.unwrap_or(Value::Null))
                .on(channel);
        msg.key = Some(key.to_owned());
        msg.meta = Some(meta);
        msg
    }

    /// The `meta` object, if the frame has one.
    pub fn meta(&self) -> Option<&Meta> {
        self.meta.as_ref().and_then(Option::as_ref)
    }

    /// One JSON text frame.
    pub fn to_json(&self) -> String {
        // Serializing this type cannot fail: every map key is a string.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"event":"hotsock.error","data":{},"error":{"code":"INTERNAL_ERROR","message":"internal error"}}"#
                .to_owned()
        })
    }
}

/// Formats Unix seconds as RFC 3339 UTC without fractions (`2026-11-22T20:09:23Z`),
/// the `connectionExpiresAt` shape. `None` if out of range: RFC 3339 has
/// four-digit years, so before year 0 or after 9999.
pub fn format_rfc3339_utc(unix_seconds: i64) -> Option<String> {
    // Civil time in UTC rather than a `jiff::Timestamp`, whose range stops a
    // day short of 9999-12-31 (so that every offset fits).
    let epoch = jiff::civil::date(1970, 1, 1).at(0, 0, 0, 0);
    let at = epoch
        .checked_add(jiff::SignedDuration::from_secs(unix_seconds))
        .ok()?;
    (0..=9999)
        .contains(&at.year())
        .then(|| format!("{}Z", at.strftime("%Y-%m-%dT%H:%M:%S")))
}

/// Parses a ULID strictly: 26 Crockford base32 chars (any case) that encode 128
/// bits. `Ulid::from_string` alone silently wraps a first char above `7`.
pub fn parse_ulid(id: &str) -> Option<Ulid> {
    let ulid = Ulid::from_string(id).ok()?;
    ulid.to_string().eq_ignore_ascii_case(id).then_some(ulid)
}

/// Creation time (Unix ms) encoded in a ULID string; `None` if it is not a ULID.
pub fn ulid_timestamp_ms(id: &str) -> Option<u64> {
    parse_ulid(id).map(|u| u.timestamp_ms())
}
