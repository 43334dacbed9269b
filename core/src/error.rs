//! Stable protocol error codes and the error type every client-facing failure becomes.
//!
//! The wire strings are part of the public contract (hotsock-js switches on four of
//! them), so they never change once shipped; add new codes instead of renaming.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A stable error code, sent as `error.code` in `hotsock.error` frames and in HTTP
/// error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The tokens do not allow subscribing to the channel (hotsock-js marks it failed).
    SubscribePermissionDenied,
    /// The subscribe token is malformed, badly signed, expired or for another connection.
    InvalidSubscribeToken,
    /// The connection is already subscribed (hotsock-js treats it as confirmed).
    AlreadySubscribed,
    /// The operation needs a subscription the connection does not have.
    NotSubscribed,
    /// Presence channels need a `uid`.
    PresenceChannelUserIdRequired,
    /// The presence member list would exceed its size limit.
    PresenceChannelCapacityReached,
    /// Not JSON, not an object, or a field has the wrong type.
    InvalidMessage,
    /// A `hotsock.*` event that is not a client command.
    UnknownCommand,
    /// Missing or malformed channel name.
    InvalidChannel,
    /// Missing or malformed event name.
    InvalidEvent,
    /// Missing or malformed channel storage key.
    InvalidStorageKey,
    /// Blank, too long or otherwise malformed reaction.
    InvalidReaction,
    /// `data` (or the whole frame) exceeds its size limit.
    MessageTooLarge,
    /// `umd` exceeds 1 KiB.
    UmdTooLarge,
    /// The tokens do not allow publishing this event on this channel.
    PublishPermissionDenied,
    /// Reactions are not allowed on this message's event, or not this reaction.
    ReactionNotAllowed,
    /// No stored, unexpired message with that id on the channel.
    MessageNotFound,
    /// Reactions need a `uid`.
    ReactionUserIdRequired,
    /// The tokens do not allow this storage get/set.
    StoragePermissionDenied,
    /// The umd token is malformed, badly signed, expired or lacks the `umd` scope.
    InvalidUmdToken,
    /// The umd token does not allow this umd update.
    UmdUpdateNotAllowed,
    /// The tokens do not allow `getChannelInfo` on the channel.
    GetInfoPermissionDenied,
    /// `scheduleExpression` is not `at(YYYY-MM-DDTHH:MM:SS)` naming a real time.
    InvalidScheduleExpression,
    /// `scheduleExpressionTimezone` is not an IANA timezone.
    InvalidScheduleTimezone,
    /// The scheduled time has passed.
    ScheduleInPast,
    /// The scheduled time is further ahead than a schedule may be.
    /// A client's tokens grant no `scheduleBefore` covering the scheduled time.
    SchedulePermissionDenied,
    /// Missing or invalid credentials (HTTP API key, connection id/secret, connect token).
    Unauthorized,
    /// Valid credentials that are not allowed to do this.
    Forbidden,
    /// Unknown HTTP route or operation.
    NotFound,
    /// A malformed HTTP request (bad query, body or field) not covered by a finer code.
    InvalidRequest,
    /// `data.resume` on subscribe is neither `true` nor `{"position": <message id>}`.
    InvalidResumePosition,
    /// The resume position is later than anything the channel can have sent.
    ResumePositionAhead,
    /// The resume position is recent but none of this channel's (another channel's, or made up).
    ResumePositionUnknown,
    /// A server-side failure; the message never leaks internals.
    InternalError,
}

impl ErrorCode {
    /// Every code, for docs and exhaustive tests.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::SubscribePermissionDenied,
        ErrorCode::InvalidSubscribeToken,
        ErrorCode::AlreadySubscribed,
        ErrorCode::NotSubscribed,
        ErrorCode::PresenceChannelUserIdRequired,
        ErrorCode::PresenceChannelCapacityReached,
        ErrorCode::InvalidMessage,
        ErrorCode::UnknownCommand,
        ErrorCode::InvalidChannel,
        ErrorCode::InvalidEvent,
        ErrorCode::InvalidStorageKey,
        ErrorCode::InvalidReaction,
        ErrorCode::MessageTooLarge,
        ErrorCode::UmdTooLarge,
        ErrorCode::PublishPermissionDenied,
        ErrorCode::ReactionNotAllowed,
        ErrorCode::MessageNotFound,
        ErrorCode::ReactionUserIdRequired,
        ErrorCode::StoragePermissionDenied,
        ErrorCode::InvalidUmdToken,
        ErrorCode::UmdUpdateNotAllowed,
        ErrorCode::GetInfoPermissionDenied,
        ErrorCode::InvalidScheduleExpression,
        ErrorCode::InvalidScheduleTimezone,
        ErrorCode::ScheduleInPast,
        ErrorCode::SchedulePermissionDenied,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidResumePosition,
        ErrorCode::ResumePositionAhead,
        ErrorCode::ResumePositionUnknown,
        ErrorCode::InternalError,
    ];

    /// The wire string (same as the serde form), usable without serde.
    pub const fn as_str(&self) -> &'static str {
        match self {
            ErrorCode::SubscribePermissionDenied => "SUBSCRIBE_PERMISSION_DENIED",
            ErrorCode::InvalidSubscribeToken => "INVALID_SUBSCRIBE_TOKEN",
            ErrorCode::AlreadySubscribed => "ALREADY_SUBSCRIBED",
            ErrorCode::NotSubscribed => "NOT_SUBSCRIBED",
            ErrorCode::PresenceChannelUserIdRequired => "PRESENCE_CHANNEL_USER_ID_REQUIRED",
            ErrorCode::PresenceChannelCapacityReached => "PRESENCE_CHANNEL_CAPACITY_REACHED",
            ErrorCode::InvalidMessage => "INVALID_MESSAGE",
            ErrorCode::UnknownCommand => "UNKNOWN_COMMAND",
            ErrorCode::InvalidChannel => "INVALID_CHANNEL",
            ErrorCode::InvalidEvent => "INVALID_EVENT",
            ErrorCode::InvalidStorageKey => "INVALID_STORAGE_KEY",
            ErrorCode::InvalidReaction => "INVALID_REACTION",
            ErrorCode::MessageTooLarge => "MESSAGE_TOO_LARGE",
            ErrorCode::UmdTooLarge => "UMD_TOO_LARGE",
            ErrorCode::PublishPermissionDenied => "PUBLISH_PERMISSION_DENIED",
            ErrorCode::ReactionNotAllowed => "REACTION_NOT_ALLOWED",
            ErrorCode::MessageNotFound => "MESSAGE_NOT_FOUND",
            ErrorCode::ReactionUserIdRequired => "REACTION_USER_ID_REQUIRED",
            ErrorCode::StoragePermissionDenied => "STORAGE_PERMISSION_DENIED",
            ErrorCode::InvalidUmdToken => "INVALID_UMD_TOKEN",
            ErrorCode::UmdUpdateNotAllowed => "UMD_UPDATE_NOT_ALLOWED",
            ErrorCode::GetInfoPermissionDenied => "GET_INFO_PERMISSION_DENIED",
            ErrorCode::InvalidScheduleExpression => "INVALID_SCHEDULE_EXPRESSION",
            ErrorCode::InvalidScheduleTimezone => "INVALID_SCHEDULE_TIMEZONE",
            ErrorCode::ScheduleInPast => "SCHEDULE_IN_PAST",
            ErrorCode::SchedulePermissionDenied => "SCHEDULE_PERMISSION_DENIED",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::InvalidResumePosition => "INVALID_RESUME_POSITION",
            ErrorCode::ResumePositionAhead => "RESUME_POSITION_AHEAD",
            ErrorCode::ResumePositionUnknown => "RESUME_POSITION_UNKNOWN",
            ErrorCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// The HTTP status the Client HTTP API and server API answer with for this code.
    pub const fn http_status(&self) -> u16 {
        match self {
            ErrorCode::InvalidMessage
            | ErrorCode::UnknownCommand
            | ErrorCode::InvalidChannel
            | ErrorCode::InvalidEvent
            | ErrorCode::InvalidStorageKey
            | ErrorCode::InvalidReaction
            | ErrorCode::InvalidScheduleExpression
            | ErrorCode::InvalidScheduleTimezone
            | ErrorCode::ScheduleInPast
            | ErrorCode::InvalidResumePosition
            | ErrorCode::ResumePositionAhead
            | ErrorCode::ResumePositionUnknown
            | ErrorCode::InvalidRequest => 400,
            ErrorCode::Unauthorized
            | ErrorCode::InvalidSubscribeToken
            | ErrorCode::InvalidUmdToken => 401,
            ErrorCode::SubscribePermissionDenied
            | ErrorCode::NotSubscribed
            | ErrorCode::PresenceChannelUserIdRequired
            | ErrorCode::PublishPermissionDenied
            | ErrorCode::ReactionNotAllowed
            | ErrorCode::ReactionUserIdRequired
            | ErrorCode::StoragePermissionDenied
            | ErrorCode::UmdUpdateNotAllowed
            | ErrorCode::GetInfoPermissionDenied
            | ErrorCode::SchedulePermissionDenied
            | ErrorCode::Forbidden => 403,
            ErrorCode::MessageNotFound | ErrorCode::NotFound => 404,
            ErrorCode::AlreadySubscribed | ErrorCode::PresenceChannelCapacityReached => 409,
            ErrorCode::MessageTooLarge | ErrorCode::UmdTooLarge => 413,
            ErrorCode::InternalError => 500,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client-facing failure: a stable code, a human message, and the channel it is
/// about (hotsock-js needs the channel to settle its subscription state).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
    pub channel: Option<String>,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProtocolError {
            code,
            message: message.into(),
            channel: None,
        }
    }

    /// Attaches the channel the error is about.
    pub fn with_channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = Some(channel.into());
        self
    }

    /// Shorthand for `self.code.http_status()`.
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }

    /// `INTERNAL_ERROR` with a fixed message, so internals never reach a client.
    pub fn internal() -> Self {
        ProtocolError::new(ErrorCode::InternalError, "internal error")
    }
}
