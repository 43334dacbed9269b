//! `hotsock.subscribe` / `hotsock.unsubscribe`.

use super::deliver::{Farewell, MembershipChange};
use super::membership::{self, subscription_meta};
use super::{internal, named_channel, single_use, Connection, Ctx};
use crate::effects::Effects;
use crate::store::{SubscribeOutcome, SubscriptionItem};
use serde_json::Value;
use sockhop_core::claims::{ChannelPermissions, Claims, Scope};
use sockhop_core::clock::Timestamp;
use sockhop_core::error::{ErrorCode, ProtocolError};
use sockhop_core::names;
use sockhop_core::protocol::{Resume, ServerMessage};

/// What a subscribe request resolved to, before anything is written.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionPlan {
    /// The real channel name: what every frame about the channel carries.
    pub channel: String,
    /// The alias the tokens give the channel (the subscribe token's first),
    /// whichever name the client used; sent as `meta.channelAlias`.
    pub alias: Option<String>,
    pub permissions: ChannelPermissions,
    pub uid: Option<String>,
    pub umd: Option<Value>,
    pub counted: bool,
}

/// The real channel behind a requested name and the alias the subscription
/// will carry. A real name the tokens let the connection subscribe to takes
/// priority over an alias of the same name (as Hotsock documents); otherwise
/// the subscribe token is consulted before the connect token, for the name
/// and for the alias.
pub fn resolve_channel(
    requested: &str,
    connect: &Claims,
    token: Option<&Claims>,
) -> (String, Option<String>) {
    let as_real_name = ChannelPermissions::layered(
        connect.channels.grant_for(requested),
        token.map(|t| t.channels.grant_for(requested)),
    );
    let channel = if as_real_name.may_subscribe() {
        requested
    } else {
        token
            .and_then(|t| t.channels.resolve_alias(requested))
            .or_else(|| connect.channels.resolve_alias(requested))
            .unwrap_or(requested)
    }
    .to_owned();
    let alias = token
        .and_then(|t| t.channels.alias_of(&channel))
        .or_else(|| connect.channels.alias_of(&channel))
        .map(str::to_owned);
    (channel, alias)
}

/// A token for an existing connection (subscribe or umd) must have `scope` and
/// name this connection, by `connectionId` or by the connection's `uid`.
pub fn check_token_binding(
    connection: &Connection,
    token: &Claims,
    scope: Scope,
) -> Result<(), &'static str> {
    if !token.has_scope(scope) {
        return Err(match scope {
            Scope::Umd => "the token does not have the umd scope",
            _ => "the token does not have the subscribe scope",
        });
    }
    match (&token.connection_id, &token.uid) {
        (Some(id), _) if id != connection.id() => Err("the token is for another connection"),
        (Some(_), _) => Ok(()),
        // An empty uid matches nobody, not a connection without one.
        (None, Some(uid))
            if !uid.is_empty() && connection.item.uid.as_deref() == Some(uid.as_str()) =>
        {
            Ok(())
        }
        (None, _) => Err("the token must name this connectionId or this connection's uid"),
    }
}

/// Decides a subscribe request (pure): channel, permissions, identity. An
/// auto-subscription needs no `subscribe` grant: `autoSubscribe` is one.
pub fn plan_subscription(
    connection: &Connection,
    requested: &str,
    token: Option<&Claims>,
    auto_subscribed: bool,
) -> Result<SubscriptionPlan, ProtocolError> {
    let (channel, alias) = resolve_channel(requested, &connection.claims, token);
    let permissions = ChannelPermissions::layered(
        connection.claims.channels.grant_for(&channel),
        token.map(|t| t.channels.grant_for(&channel)),
    );
    if !auto_subscribed && !permissions.may_subscribe() {
        return Err(ProtocolError::new(
            ErrorCode::SubscribePermissionDenied,
            format!("not allowed to subscribe to {requested:?}"),
        )
        .with_channel(requested));
    }
    let (uid, umd) = match token {
        Some(t) if t.uid.is_some() || t.umd.is_some() => (
            t.uid.clone().or_else(|| connection.item.uid.clone()),
            t.umd.clone().or_else(|| connection.item.umd_value()),
        ),
        _ => (connection.item.uid.clone(), connection.item.umd_value()),
    };
    // An empty uid is no uid: it names no member.
    let uid = uid.filter(|u| !u.is_empty());
    if names::is_presence_channel(&channel) && uid.is_none() {
        return Err(ProtocolError::new(
            ErrorCode::PresenceChannelUserIdRequired,
            "presence channels need a uid in the token",
        )
        .with_channel(requested));
    }
    Ok(SubscriptionPlan {
        counted: !permissions.omit_from_sub_count(),
        channel,
        alias,
        permissions,
        uid,
        umd,
    })
}

/// The subscription item a plan writes (pure): it lives as long as the
/// connection.
pub fn subscription_item(
    plan: &SubscriptionPlan,
    connection: &Connection,
    now: Timestamp,
) -> SubscriptionItem {
    SubscriptionItem {
        channel: plan.channel.clone(),
        connection_id: connection.id().to_owned(),
        uid: plan.uid.clone(),
        umd: plan.umd.as_ref().map(Value::to_string),
        // Serializing permissions cannot fail: every map key is a string.
        permissions: serde_json::to_string(&plan.permissions).unwrap_or_default(),
        alias: plan.alias.clone(),
        subscribed_at_ms: now.millis(),
        umd_at_ms: now.millis(),
        pending: welcomed_in_order(&plan.channel, &plan.permissions),
        recoverable: false,
        counted: plan.counted,
        ttl: connection.item.ttl,
    }
}

/// Whether the subscription is welcomed by the deliver step, in the channel's
/// order, rather than at once (pure): on a presence channel (its member list
/// must fall in line with the member events) and where it observes storage
/// (its catch-up must fall in line with the writes).
pub fn welcomed_in_order(channel: &str, permissions: &ChannelPermissions) -> bool {
    names::is_presence_channel(channel) || permissions.may_observe_storage()
}

fn already_subscribed(requested: &str) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::AlreadySubscribed,
        format!("already subscribed to {requested:?}"),
    )
    .with_channel(requested)
}

fn invalid_token(requested: &str, message: impl Into<String>) -> ProtocolError {
    ProtocolError::new(ErrorCode::InvalidSubscribeToken, message).with_channel(requested)
}

/// Verifies a subscribe token (spending a single-use one is left for when
/// the subscribe is allowed).
async fn subscribe_token_claims(
    cx: Ctx<'_>,
    connection: &Connection,
    requested: &str,
    token: &str,
) -> Result<Claims, ProtocolError> {
    let payload = cx
        .app
        .config
        .verifier
        .verify(token, cx.secs())
        .map_err(|e| invalid_token(requested, e.to_string()))?;
    let claims = Claims::parse(&payload).map_err(|e| invalid_token(requested, e.to_string()))?;
    check_token_binding(connection, &claims, Scope::Subscribe)
        .map_err(|m| invalid_token(requested, m))?;
    Ok(claims)
}

/// `hotsock.subscribe` (and each auto-subscription at connect): writes the
/// subscription and answers `hotsock.subscribed` now, or, for one welcomed in
/// order ([`welcomed_in_order`]) or resumable (`resume`, where the tokens
/// grant `recover`; docs/adr/0006), queues its welcome
/// ([`membership::apply`]). A resume the tokens do not grant is answered
/// as a plain subscribe, with `recovered: false` when it named a position.
pub async fn subscribe(
    cx: Ctx<'_>,
    connection: &Connection,
    requested: &str,
    token: Option<&str>,
    resume: Option<Resume>,
    auto_subscribed: bool,
) -> Result<Effects, ProtocolError> {
    let token_claims = match token {
        Some(t) => Some(subscribe_token_claims(cx, connection, requested, t).await?),
        None => None,
    };
    let plan = plan_subscription(
        connection,
        requested,
        token_claims.as_ref(),
        auto_subscribed,
    )?;
    let recoverable = resume.is_some() && plan.permissions.may_recover();
    if let (Some(Resume::After(since)), true) = (&resume, recoverable) {
        super::resume::check_position(cx, &plan.channel, requested, &since.position).await?;
    }
    let mut item = subscription_item(&plan, connection, cx.now);
    item.recoverable = recoverable;
    item.pending |= item.recoverable;
    if names::is_presence_channel(&plan.channel) {
        let existing = cx
            .app
            .store
            .channel_subscriptions(&plan.channel, cx.secs())
            .await
            .map_err(internal)?;
        super::presence::check_capacity(&existing, &item, requested)?;
    }
    // Allowed: only now is a single-use token spent (after one more read, so
    // a second subscribe does not burn it either; without such a token the
    // write's own condition answers ALREADY_SUBSCRIBED).
    if let Some(claims) = token_claims.as_ref().filter(|c| c.single_use) {
        if cx
            .app
            .store
            .get_subscription(&plan.channel, connection.id(), cx.secs())
            .await
            .map_err(internal)?
            .is_some()
        {
            return Err(already_subscribed(requested));
        }
        if !single_use::spend(cx, claims).await? {
            return Err(invalid_token(requested, single_use::ALREADY_USED));
        }
    }
    let outcome = cx.app.store.subscribe(&item, cx.secs()).await;
    match outcome {
        Ok(SubscribeOutcome::Subscribed) => {
            cx.app
                .activity
                .add(crate::metrics::Measure::Subscribes, 1.0);
        }
        Ok(SubscribeOutcome::AlreadySubscribed) => {
            single_use::give_back(cx, token_claims.as_ref()).await;
            return Err(already_subscribed(requested));
        }
        // Disconnected meanwhile: nobody is left to tell.
        Ok(SubscribeOutcome::ConnectionGone) => return Ok(Effects::new()),
        Err(err) => {
            single_use::give_back(cx, token_claims.as_ref()).await;
            return Err(internal(err));
        }
    }
    let mut effects = Effects::new();
    if item.pending {
        let welcome = MembershipChange {
            welcome: Some(connection.id().to_owned()),
            subscribed_at_ms: item.subscribed_at_ms,
            auto_subscribed,
            resume,
            farewell: None,
        };
        // A subscription whose welcome cannot be queued would never be
        // confirmed: it is taken back and the client told.
        if let Err(err) = membership::queue_change(cx, &plan.channel, welcome).await {
            take_back(cx, &plan.channel, connection.id()).await;
            single_use::give_back(cx, token_claims.as_ref()).await;
            return Err(err.with_channel(requested));
        }
        return Ok(effects);
    }
    let subscribed = ServerMessage::subscribed(
        &plan.channel,
        subscription_meta(&item),
        None,
        auto_subscribed,
    );
    let subscribed = match resume {
        Some(Resume::After(_)) => subscribed.with_resume(None, Some(false)),
        _ => subscribed,
    };
    effects.send(connection.id(), &subscribed);
    Ok(effects)
}

async fn take_back(cx: Ctx<'_>, channel: &str, connection_id: &str) {
    if let Err(err) = cx
        .app
        .store
        .unsubscribe(channel, connection_id, cx.secs(), None)
        .await
    {
        tracing::error!(error = %err, %channel, "could not take back a subscription that cannot be welcomed");
    }
}

/// `hotsock.unsubscribe`: removes the subscription named by its channel or by
/// the alias it was made with.
pub async fn unsubscribe(
    cx: Ctx<'_>,
    connection: &Connection,
    requested: &str,
) -> Result<Effects, ProtocolError> {
    let channel = named_channel(cx, connection, requested).await?.channel;
    let owed = membership::owe_until(cx, &channel);
    let removed = cx
        .app
        .store
        .unsubscribe(&channel, connection.id(), cx.secs(), owed)
        .await
        .map_err(internal)?;
    let Some(removed) = removed else {
        return Err(ProtocolError::new(
            ErrorCode::NotSubscribed,
            format!("not subscribed to {requested:?}"),
        )
        .with_channel(requested));
    };
    let farewell = ServerMessage::unsubscribed(&removed.channel, subscription_meta(&removed));
    let mut effects = Effects::new();
    // Welcomed in order: the answer takes the same path, behind the welcome
    // (which it may have overtaken otherwise), and tells the members.
    let in_order = removed.permissions().map_or_else(
        |_| names::is_presence_channel(&removed.channel),
        |p| welcomed_in_order(&removed.channel, &p),
    );
    if in_order {
        let change = MembershipChange {
            farewell: Some(Farewell {
                connection_id: connection.id().to_owned(),
                frame: farewell.to_json(),
                unwelcomed: removed.pending.then(|| subscription_meta(&removed)),
            }),
            ..MembershipChange::default()
        };
        match membership::queue_change(cx, &removed.channel, change).await {
            Ok(()) => {
                if let Some(owed_at) = owed {
                    let owed = crate::store::OwedChange::for_removal(&removed, owed_at);
                    membership::settle(cx, &owed).await;
                }
                return Ok(effects);
            }
            // Answered now rather than never; the members hear of the leave
            // from the sweeper, which queues the change it filed.
            Err(err) => {
                tracing::error!(channel = %removed.channel, code = err.code.as_str(), "farewell not queued; answered directly")
            }
        }
    }
    effects.send(connection.id(), &farewell);
    Ok(effects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ConnectionItem;
    use serde_json::json;
    use std::sync::Arc;

    fn claims(value: Value) -> Claims {
        let mut map = value.as_object().expect("object").clone();
        map.entry("exp").or_insert(json!(4_000_000_000i64));
        Claims::parse(&map).expect("claims")
    }

    fn connection(value: Value) -> Connection {
        let claims = claims(
            json!({"scope": "connect"})
                .as_object()
                .map(|base| {
                    let mut merged = base.clone();
                    merged.extend(value.as_object().expect("object").clone());
                    Value::Object(merged)
                })
                .expect("merged"),
        );
        Connection {
            item: ConnectionItem {
                source_ip: None,
                user_agent: None,
                connection_id: "c1".into(),
                secret_nonce: "n".into(),
                secret_hash: "h".into(),
                uid: claims.uid.clone(),
                umd: claims.umd.as_ref().map(Value::to_string),
                claims: "{}".into(),
                connected_at_ms: 0,
                expires_at: 7_200,
                keep_alive: false,
                heartbeat_timeout: None,
                last_seen: 0,
                sweep_at: 0,
                ttl: 7_500,
            },
            claims: Arc::new(claims),
        }
    }

    fn code(r: Result<SubscriptionPlan, ProtocolError>) -> ErrorCode {
        r.expect_err("refused").code
    }

    #[test]
    fn connect_token_grants_decide_without_a_subscribe_token() {
        let c = connection(json!({"uid": "jim", "umd": {"n": 1},
            "channels": {"chat-*": {"subscribe": true}, "chat-secret": {"subscribe": false}}}));
        let plan = plan_subscription(&c, "chat-1", None, false).expect("allowed");
        assert_eq!(plan.channel, "chat-1");
        assert_eq!(plan.alias, None);
        assert_eq!(plan.uid.as_deref(), Some("jim"));
        assert_eq!(plan.umd, Some(json!({"n": 1})));
        assert!(plan.counted);
        assert_eq!(
            code(plan_subscription(&c, "chat-secret", None, false)),
            ErrorCode::SubscribePermissionDenied
        );
        let err = plan_subscription(&c, "other", None, false).expect_err("no grant");
        assert_eq!(err.channel.as_deref(), Some("other"));
    }

    #[test]
    fn aliases_resolve_to_the_real_channel_and_travel_with_it() {
        let c = connection(json!({"channels": {"room-42": {"subscribe": true, "alias": "room"}}}));
        let plan = plan_subscription(&c, "room", None, false).expect("allowed");
        assert_eq!(plan.channel, "room-42");
        assert_eq!(plan.alias.as_deref(), Some("room"));
        // By its real name the subscription still carries the alias.
        let direct = plan_subscription(&c, "room-42", None, false).expect("allowed");
        assert_eq!(direct.alias.as_deref(), Some("room"));
        // A subscribe token's alias is consulted first, for the name and the alias.
        let token = claims(json!({"scope": "subscribe", "connectionId": "c1",
            "channels": {"room-7": {"subscribe": true, "alias": "room"},
                         "room-42": {"subscribe": true, "alias": "lobby"}}}));
        assert_eq!(
            resolve_channel("room", &c.claims, Some(&token)),
            ("room-7".to_owned(), Some("room".to_owned()))
        );
        assert_eq!(
            resolve_channel("room-42", &c.claims, Some(&token))
                .1
                .as_deref(),
            Some("lobby")
        );
    }

    #[test]
    fn auto_subscriptions_need_no_subscribe_grant_and_empty_uids_are_none() {
        let c = connection(json!({"uid": "",
            "channels": {"presence.x": {"autoSubscribe": true}, "news": {"autoSubscribe": true}}}));
        assert_eq!(
            code(plan_subscription(&c, "news", None, false)),
            ErrorCode::SubscribePermissionDenied
        );
        let auto = plan_subscription(&c, "news", None, true).expect("auto");
        assert_eq!(auto.uid, None, "an empty uid is no uid");
        assert_eq!(
            code(plan_subscription(&c, "presence.x", None, true)),
            ErrorCode::PresenceChannelUserIdRequired
        );
        let ok = |v: Value| check_token_binding(&c, &claims(v), Scope::Subscribe);
        assert!(ok(json!({"scope": "subscribe", "uid": ""})).is_err());
    }

    #[test]
    fn presence_needs_a_uid_and_subscribe_tokens_layer_over_connect_grants() {
        let anonymous = connection(json!({"channels": {"presence.lobby": {"subscribe": true}}}));
        assert_eq!(
            code(plan_subscription(&anonymous, "presence.lobby", None, false)),
            ErrorCode::PresenceChannelUserIdRequired
        );
        let token = claims(
            json!({"scope": "subscribe", "connectionId": "c1", "uid": "pam",
            "umd": "p", "channels": {"presence.lobby": {"omitFromSubCount": true}}}),
        );
        let plan =
            plan_subscription(&anonymous, "presence.lobby", Some(&token), false).expect("allowed");
        assert_eq!(plan.uid.as_deref(), Some("pam"));
        assert_eq!(plan.umd, Some(json!("p")));
        assert!(!plan.counted);
        let revoking = claims(json!({"scope": "subscribe", "connectionId": "c1",
            "channels": {"presence.lobby": {"subscribe": false}}}));
        assert_eq!(
            code(plan_subscription(
                &anonymous,
                "presence.lobby",
                Some(&revoking),
                false
            )),
            ErrorCode::SubscribePermissionDenied
        );
    }

    #[test]
    fn subscribe_tokens_must_name_this_connection_or_its_uid() {
        let c = connection(json!({"uid": "jim"}));
        let ok = |v: Value| check_token_binding(&c, &claims(v), Scope::Subscribe);
        assert!(ok(json!({"scope": "subscribe", "connectionId": "c1"})).is_ok());
        assert!(ok(json!({"scope": "subscribe", "uid": "jim"})).is_ok());
        assert!(ok(json!({"scope": "subscribe", "connectionId": "c2", "uid": "jim"})).is_err());
        assert!(ok(json!({"scope": "subscribe", "uid": "pam"})).is_err());
        assert!(ok(json!({"scope": "subscribe"})).is_err());
        assert!(ok(json!({"scope": "connect", "connectionId": "c1"})).is_err());
    }

    #[test]
    fn the_item_lives_as_long_as_the_connection() {
        let c = connection(json!({"uid": "jim", "channels": {"chat": {"subscribe": true}}}));
        let plan = plan_subscription(&c, "chat", None, false).expect("allowed");
        let item = subscription_item(&plan, &c, Timestamp::from_millis(1_234));
        assert_eq!(item.ttl, c.item.ttl);
        assert_eq!(item.subscribed_at_ms, 1_234);
        assert_eq!(item.connection_id, "c1");
        assert!(item.permissions().expect("permissions").may_subscribe());
    }
}
