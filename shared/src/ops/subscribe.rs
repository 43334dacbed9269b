//! `hotsock.subscribe` / `hotsock.unsubscribe`.

use super::{internal, send, Connection};
use crate::app::App;
use crate::claims::{ChannelPermissions, Claims, Scope};
use crate::error::{ErrorCode, ProtocolError};
use crate::names;
use crate::protocol::{Meta, ServerMessage};
use crate::store::{keys, SubscribeOutcome, SubscriptionItem};
use serde_json::Value;

/// What a subscribe request resolved to, before anything is written.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionPlan {
    /// The real channel name.
    pub channel: String,
    /// The alias the client used, which it keeps seeing as `channel`.
    pub alias_used: Option<String>,
    pub permissions: ChannelPermissions,
    pub uid: Option<String>,
    pub umd: Option<Value>,
    pub counted: bool,
}

impl SubscriptionPlan {
    /// The name this client knows the channel by.
    pub fn client_channel(&self) -> &str {
        self.alias_used.as_deref().unwrap_or(&self.channel)
    }
}

/// The real channel behind a requested name: the subscribe token's aliases are
/// consulted before the connect token's; a real name beats an alias.
pub fn resolve_channel(
    requested: &str,
    connect: &Claims,
    token: Option<&Claims>,
) -> (String, Option<String>) {
    let alias_target = token
        .and_then(|t| t.channels.resolve_alias(requested))
        .or_else(|| connect.channels.resolve_alias(requested));
    match alias_target {
        Some(real) => (real.to_owned(), Some(requested.to_owned())),
        None => (requested.to_owned(), None),
    }
}

/// A subscribe token must have the `subscribe` scope and name this connection,
/// by `connectionId` or by the connection's `uid`.
pub fn check_subscribe_token(connection: &Connection, token: &Claims) -> Result<(), &'static str> {
    if !token.has_scope(Scope::Subscribe) {
        return Err("the token does not have the subscribe scope");
    }
    match (&token.connection_id, &token.uid) {
        (Some(id), _) if id != connection.id() => Err("the token is for another connection"),
        (Some(_), _) => Ok(()),
        (None, Some(uid)) if connection.item.uid.as_deref() == Some(uid.as_str()) => Ok(()),
        (None, _) => Err("the token must name this connectionId or this connection's uid"),
    }
}

/// Decides a subscribe request (pure): channel, permissions, identity.
pub fn plan_subscription(
    connection: &Connection,
    requested: &str,
    token: Option<&Claims>,
) -> Result<SubscriptionPlan, ProtocolError> {
    let (channel, alias_used) = resolve_channel(requested, &connection.claims, token);
    let permissions = ChannelPermissions::layered(
        connection.claims.channels.grant_for(&channel),
        token.map(|t| t.channels.grant_for(&channel)),
    );
    if !permissions.may_subscribe() {
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
        alias_used,
        permissions,
        uid,
        umd,
    })
}

fn invalid_token(requested: &str, message: impl Into<String>) -> ProtocolError {
    ProtocolError::new(ErrorCode::InvalidSubscribeToken, message).with_channel(requested)
}

/// Verifies a subscribe token and spends it when it is single-use.
async fn subscribe_token_claims(
    app: &App,
    connection: &Connection,
    requested: &str,
    token: &str,
) -> Result<Claims, ProtocolError> {
    let now = app.now();
    let payload = app
        .config
        .verifier
        .verify(token, now)
        .map_err(|e| invalid_token(requested, e.to_string()))?;
    let claims = Claims::parse(&payload).map_err(|e| invalid_token(requested, e.to_string()))?;
    check_subscribe_token(connection, &claims).map_err(|m| invalid_token(requested, m))?;
    if claims.single_use {
        let jti = claims.jti.as_deref().unwrap_or_default();
        if !app
            .store
            .consume_jti(jti, claims.exp, now)
            .await
            .map_err(internal)?
        {
            return Err(invalid_token(
                requested,
                "this single-use token was already used",
            ));
        }
    }
    Ok(claims)
}

pub async fn subscribe(
    app: &App,
    connection: &Connection,
    requested: &str,
    token: Option<&str>,
    auto_subscribed: bool,
) -> Result<(), ProtocolError> {
    let token_claims = match token {
        Some(t) => Some(subscribe_token_claims(app, connection, requested, t).await?),
        None => None,
    };
    let plan = plan_subscription(connection, requested, token_claims.as_ref())?;
    let permissions = serde_json::to_string(&plan.permissions)
        .map_err(|e| ProtocolError::new(ErrorCode::InternalError, e.to_string()))?;
    let item = SubscriptionItem {
        pk: keys::channel_pk(&plan.channel),
        sk: keys::subscription_sk(connection.id()),
        channel: plan.channel.clone(),
        connection_id: connection.id().to_owned(),
        uid: plan.uid.clone(),
        umd: plan.umd.as_ref().map(Value::to_string),
        permissions,
        alias: plan.alias_used.clone(),
        subscribed_at_ms: app.now_ms(),
        counted: plan.counted,
        ttl: connection.item.ttl,
    };
    let presence = names::is_presence_channel(&plan.channel);
    let existing = if presence {
        let existing = super::presence::current(app, &plan.channel).await?;
        super::presence::check_capacity(&existing, &item, requested)?;
        existing
    } else {
        Vec::new()
    };
    match app
        .store
        .subscribe(&item, app.now())
        .await
        .map_err(internal)?
    {
        SubscribeOutcome::Subscribed => {}
        SubscribeOutcome::AlreadySubscribed => {
            return Err(ProtocolError::new(
                ErrorCode::AlreadySubscribed,
                format!("already subscribed to {requested:?}"),
            )
            .with_channel(requested))
        }
        // Disconnected meanwhile: nobody is left to tell.
        SubscribeOutcome::ConnectionGone => return Ok(()),
    }
    let mut meta = Meta::new(plan.uid.clone(), plan.umd.clone());
    if let Some(alias) = &plan.alias_used {
        meta = meta.with_alias(alias.as_str());
    }
    let members = if presence {
        Some(super::presence::joined(app, &existing, &item).await)
    } else {
        None
    };
    let frame = ServerMessage::subscribed(plan.client_channel(), meta, members, auto_subscribed);
    send(app, connection.id(), &frame).await;
    Ok(())
}

pub async fn unsubscribe(
    app: &App,
    connection: &Connection,
    requested: &str,
) -> Result<(), ProtocolError> {
    let now = app.now();
    let (real, _) = resolve_channel(requested, &connection.claims, None);
    let mut removed = app
        .store
        .unsubscribe(&real, connection.id(), now)
        .await
        .map_err(internal)?;
    if removed.is_none() {
        // Subscribed under a subscribe token's alias the connect token lacks.
        for channel in app
            .store
            .connection_channels(connection.id(), now)
            .await
            .map_err(internal)?
        {
            let sub = app
                .store
                .get_subscription(&channel, connection.id(), now)
                .await
                .map_err(internal)?;
            if sub.is_some_and(|s| s.alias.as_deref() == Some(requested)) {
                removed = app
                    .store
                    .unsubscribe(&channel, connection.id(), now)
                    .await
                    .map_err(internal)?;
                break;
            }
        }
    }
    let Some(removed) = removed else {
        return Err(ProtocolError::new(
            ErrorCode::NotSubscribed,
            format!("not subscribed to {requested:?}"),
        )
        .with_channel(requested));
    };
    let meta = Meta::new(removed.uid.clone(), removed.umd_value());
    send(
        app,
        connection.id(),
        &ServerMessage::unsubscribed(requested, meta),
    )
    .await;
    super::presence::left(app, &removed).await;
    Ok(())
}
