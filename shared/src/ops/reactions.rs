//! `hotsock.messageReaction`: one reaction per (message, value, uid), only on
//! stored, unexpired messages, by subscribers with a uid and the `react` grant.

use super::deliver::recipients;
use super::publish::emitting;
use super::{internal, require_subscription, window_start, Connection, Ctx};
use crate::effects::Effects;
use crate::pubsub::Origin;
use crate::store::{MessageItem, ReactionChange, ReactionItem};
use serde_json::{json, Value};
use sockhop_core::claims::ChannelPermissions;
use sockhop_core::error::{ErrorCode, ProtocolError};
use sockhop_core::protocol::{Meta, ReactionAction, ServerMessage};

/// Decides whether `uid` may react with `reaction` on `message` (pure).
pub fn check_reaction(
    permissions: &ChannelPermissions,
    uid: Option<&str>,
    message: Option<&MessageItem>,
    reaction: &str,
    client_channel: &str,
) -> Result<(), ProtocolError> {
    let fail =
        |code, text: String| Err(ProtocolError::new(code, text).with_channel(client_channel));
    if uid.is_none() {
        return fail(
            ErrorCode::ReactionUserIdRequired,
            "reacting needs a uid in the token".into(),
        );
    }
    let Some(message) = message.filter(|m| m.stored) else {
        return fail(
            ErrorCode::MessageNotFound,
            "no stored message with that id on this channel".into(),
        );
    };
    if !permissions.message(&message.event).may_react(reaction) {
        return fail(
            ErrorCode::ReactionNotAllowed,
            format!(
                "reaction {reaction:?} is not allowed on {:?} messages",
                message.event
            ),
        );
    }
    Ok(())
}

/// One reaction change, decided: by a subscriber or by the server.
pub struct Reaction<'a> {
    pub channel: &'a str,
    pub message_id: &'a str,
    pub reaction: &'a str,
    pub action: ReactionAction,
    pub uid: String,
    /// JSON text, as items keep it.
    pub umd: Option<String>,
    /// Who made it: kept with an added reaction, for backend events.
    pub origin: Origin,
    /// Whether the change raises a backend event (`emitPubSubEvent`).
    pub emit: bool,
}

/// `hotsock.messageReaction` from a subscriber: checks its grant, then records
/// the change.
pub async fn react(
    cx: Ctx<'_>,
    connection: &Connection,
    requested: &str,
    message_id: &str,
    reaction: &str,
    action: ReactionAction,
) -> Result<Effects, ProtocolError> {
    let subscription = require_subscription(cx, connection, requested).await?;
    let permissions = subscription.permissions().map_err(internal)?;
    let message = cx
        .app
        .store
        .get_message(&subscription.channel, message_id, cx.secs())
        .await
        .map_err(internal)?;
    check_reaction(
        &permissions,
        subscription.uid.as_deref(),
        message.as_ref(),
        reaction,
        requested,
    )?;
    let Some(uid) = subscription.uid.clone() else {
        return Err(ProtocolError::internal());
    };
    // The reacted-to message's event decides, as for publishing it.
    let asked = message
        .as_ref()
        .is_some_and(|m| permissions.message(&m.event).emit_pub_sub_event);
    let change = Reaction {
        channel: &subscription.channel,
        message_id,
        reaction,
        action,
        uid,
        umd: subscription.umd.clone(),
        origin: cx.origin_of(connection),
        emit: emitting(cx, asked),
    };
    record_reaction(cx, &change, message.and_then(|m| m.ttl))
        .await
        .map_err(|e| e.with_channel(requested))
}

/// A reaction through the server publish API: trusted, so no grant is checked;
/// the message must still be stored.
pub async fn react_from_server(
    cx: Ctx<'_>,
    change: &Reaction<'_>,
) -> Result<Effects, ProtocolError> {
    let message = cx
        .app
        .store
        .get_message(change.channel, change.message_id, cx.secs())
        .await
        .map_err(internal)?
        .filter(|m| m.stored)
        .ok_or_else(|| {
            ProtocolError::new(
                ErrorCode::MessageNotFound,
                "no stored message with that id on this channel",
            )
            .with_channel(change.channel)
        })?;
    record_reaction(cx, change, message.ttl).await
}

/// Records the change and tells every subscriber of the channel, the reactor
/// included (a repeated add or remove changes nothing and tells no one). An
/// added reaction keeps its id, creation time and origin, so its removal's
/// backend event tells the same, as Hotsock's does.
async fn record_reaction(
    cx: Ctx<'_>,
    change: &Reaction<'_>,
    message_ttl: Option<i64>,
) -> Result<Effects, ProtocolError> {
    let store = &cx.app.store;
    let added = change.action.is_add();
    let frame_id = cx.app.ids.next_id(cx.now);
    let item = if added {
        ReactionItem {
            reaction: change.reaction.to_owned(),
            uid: change.uid.clone(),
            umd: change.umd.clone(),
            ttl: message_ttl,
            id: Some(frame_id.clone()),
            created_at_ms: Some(cx.now.millis()),
            origin: serde_json::to_string(&change.origin).ok(),
        }
    } else {
        // Removing what is not there changes nothing (the read also gives
        // the removal's event the reaction as it was added).
        match store
            .get_reaction(
                change.channel,
                change.message_id,
                change.reaction,
                &change.uid,
                cx.secs(),
            )
            .await
            .map_err(internal)?
        {
            Some(existing) => existing,
            None => return Ok(Effects::new()),
        }
    };
    match store
        .change_reaction(change.channel, change.message_id, &item, added, cx.secs())
        .await
        .map_err(internal)?
    {
        ReactionChange::Changed => {}
        ReactionChange::Unchanged => return Ok(Effects::new()),
        ReactionChange::MessageGone => {
            return Err(
                ProtocolError::new(ErrorCode::MessageNotFound, "the message has expired")
                    .with_channel(change.channel),
            )
        }
    }
    let subscribers = store
        .channel_subscriber_ids(change.channel, cx.secs())
        .await
        .map_err(internal)?;
    let frame = ServerMessage::reaction(
        &frame_id,
        added,
        change.channel,
        change.message_id,
        change.reaction,
        Meta::new(Some(change.uid.clone()), item.umd_value()),
    );
    let mut effects = Effects::new();
    effects.send_to(
        recipients(subscribers.iter().map(String::as_str), None, true),
        &frame,
    );
    if change.emit {
        effects.emit(reaction_event(cx, change, &item, added, message_ttl));
    }
    Ok(effects)
}

/// The backend event of a reaction change: for a removal, the reaction as
/// it was added (its id, creation time and the request that added it), where
/// the item kept them; otherwise, the removal's own.
fn reaction_event(
    cx: Ctx<'_>,
    change: &Reaction<'_>,
    item: &ReactionItem,
    added: bool,
    message_ttl: Option<i64>,
) -> crate::pubsub::PubSubEvent {
    let id = item
        .id
        .clone()
        .unwrap_or_else(|| cx.app.ids.next_id(cx.now));
    let origin = item
        .origin
        .as_deref()
        .and_then(|o| serde_json::from_str::<Origin>(o).ok())
        .unwrap_or_else(|| change.origin.clone());
    let facts = crate::pubsub::ReactionFacts {
        channel: change.channel,
        message_id: change.message_id,
        id: &id,
        reaction: change.reaction,
        uid: &change.uid,
        umd: item.umd_value(),
        created_at_ms: item.created_at_ms.unwrap_or(cx.now.millis()),
        expires_at: message_ttl,
    };
    crate::pubsub::reaction(added, &facts, &origin)
}

/// `reactions` for a listed message: `{R: {count}}`, and with `expand` the
/// reacting users as `items` (pure over what was read).
pub fn reactions_json(message: &MessageItem, expanded: Option<&[ReactionItem]>) -> Value {
    let mut out = serde_json::Map::new();
    for (reaction, count) in &message.reactions {
        let mut entry = json!({ "count": count });
        if let Some(items) = expanded {
            let users: Vec<Value> = items
                .iter()
                .filter(|i| &i.reaction == reaction)
                .map(|i| match i.umd_value() {
                    Some(umd) => json!({"uid": i.uid, "umd": umd}),
                    None => json!({"uid": i.uid}),
                })
                .collect();
            entry["items"] = Value::Array(users);
        }
        out.insert(reaction.clone(), entry);
    }
    Value::Object(out)
}

/// `connection/listReactions`: every reaction on one message.
pub async fn list_reactions(
    cx: Ctx<'_>,
    connection: &Connection,
    requested: &str,
    message_id: &str,
) -> Result<Value, ProtocolError> {
    let subscription = require_subscription(cx, connection, requested).await?;
    let channel = subscription.channel.as_str();
    // A message before the subscription's history window is not visible to
    // it, and neither are its reactions.
    let permissions = subscription.permissions().map_err(internal)?;
    if message_id
        < window_start(permissions.history_start(), subscription.subscribed_at_ms).as_str()
    {
        return Err(ProtocolError::new(
            ErrorCode::MessageNotFound,
            "that message is before this subscription's history window",
        )
        .with_channel(requested));
    }
    let items = cx
        .app
        .store
        .message_reactions(channel, message_id, cx.secs())
        .await
        .map_err(internal)?;
    let reactions: Vec<Value> = items
        .iter()
        .map(|i| {
            let mut v = json!({"reaction": i.reaction, "uid": i.uid});
            if let Some(umd) = i.umd_value() {
                v["umd"] = umd;
            }
            v
        })
        .collect();
    Ok(json!({ "reactions": reactions }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockhop_core::claims::Claims;

    fn perms() -> ChannelPermissions {
        let claims = Claims::parse(
            json!({"exp": 1, "scope": "connect", "channels": {"chat": {
                "messages": {"chat": {"react": ["👍", "❤️"]}, "plain": {"publish": true}}
            }}})
            .as_object()
            .expect("object"),
        )
        .expect("claims");
        ChannelPermissions::single(claims.channels.grant_for("chat"))
    }

    fn message(event: &str, stored: bool) -> MessageItem {
        MessageItem {
            id: "01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
            channel: "chat".into(),
            event: event.into(),
            data: "null".into(),
            meta: None,
            stored,
            sender: None,
            echo: false,
            ttl: None,
            reactions: [("👍".to_owned(), 2), ("❤️".to_owned(), 1)].into(),
        }
    }

    fn code(r: Result<(), ProtocolError>) -> Option<ErrorCode> {
        r.err().map(|e| e.code)
    }

    #[test]
    fn reactions_need_uid_stored_message_and_grant() {
        let p = perms();
        let m = message("chat", true);
        assert_eq!(
            code(check_reaction(&p, Some("u"), Some(&m), "👍", "chat")),
            None
        );
        assert_eq!(
            code(check_reaction(&p, None, Some(&m), "👍", "chat")),
            Some(ErrorCode::ReactionUserIdRequired)
        );
        assert_eq!(
            code(check_reaction(&p, Some("u"), None, "👍", "chat")),
            Some(ErrorCode::MessageNotFound)
        );
        assert_eq!(
            code(check_reaction(
                &p,
                Some("u"),
                Some(&message("chat", false)),
                "👍",
                "chat"
            )),
            Some(ErrorCode::MessageNotFound)
        );
        assert_eq!(
            code(check_reaction(&p, Some("u"), Some(&m), "😂", "chat")),
            Some(ErrorCode::ReactionNotAllowed)
        );
        assert_eq!(
            code(check_reaction(
                &p,
                Some("u"),
                Some(&message("plain", true)),
                "👍",
                "chat"
            )),
            Some(ErrorCode::ReactionNotAllowed)
        );
        let err = check_reaction(&p, None, Some(&m), "👍", "alias").unwrap_err();
        assert_eq!(err.channel.as_deref(), Some("alias"));
    }

    #[test]
    fn reaction_counts_and_expanded_items() {
        let m = message("chat", true);
        assert_eq!(
            reactions_json(&m, None),
            json!({"👍": {"count": 2}, "❤️": {"count": 1}})
        );
        let items = vec![
            ReactionItem {
                reaction: "👍".into(),
                uid: "a".into(),
                umd: Some(r#"{"n":1}"#.into()),
                ttl: None,
                id: None,
                created_at_ms: None,
                origin: None,
            },
            ReactionItem {
                reaction: "👍".into(),
                uid: "b".into(),
                umd: None,
                ttl: None,
                id: None,
                created_at_ms: None,
                origin: None,
            },
        ];
        let expanded = reactions_json(&m, Some(&items));
        assert_eq!(
            expanded["👍"],
            json!({"count": 2, "items": [{"uid": "a", "umd": {"n": 1}}, {"uid": "b"}]})
        );
        assert_eq!(expanded["❤️"], json!({"count": 1, "items": []}));
    }
}
