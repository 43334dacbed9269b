//! Single-use tokens (`singleUse` with a `jti`), spent and given back here only.
//!
//! A token is spent once everything else about its request was allowed, so a
//! refused attempt does not burn it; a write refused after the spend (already
//! subscribed meanwhile, a welcome not queued) gives it back.

use super::{internal, Ctx};
use sockhop_core::claims::Claims;
use sockhop_core::error::ProtocolError;

/// What a second use of a single-use token is told, whichever door it came by.
pub const ALREADY_USED: &str = "this single-use token was already used";

/// Spends `claims`' token when it is single-use: false when it was spent before
/// (a token that is not single-use is never spent and always true).
pub async fn spend(cx: Ctx<'_>, claims: &Claims) -> Result<bool, ProtocolError> {
    if !claims.single_use {
        return Ok(true);
    }
    let jti = claims.jti.as_deref().unwrap_or_default();
    cx.app
        .store
        .consume_jti(jti, claims.exp, cx.secs())
        .await
        .map_err(internal)
}

/// Gives a spent single-use token back after the write it was spent for was
/// refused. A failure leaves it spent (the user asks for a new token) and is
/// logged: the request itself already failed with its own error.
pub async fn give_back(cx: Ctx<'_>, claims: Option<&Claims>) {
    let Some(jti) = claims
        .filter(|c| c.single_use)
        .and_then(|c| c.jti.as_deref())
    else {
        return;
    };
    if let Err(err) = cx.app.store.release_jti(jti).await {
        tracing::warn!(error = %err, "a single-use token stays spent after a refused write");
    }
}

/// Whether `claims`' single-use token was spent already (a read, spending
/// nothing: what the console's explainer tells). False for any other token.
pub async fn is_spent(cx: Ctx<'_>, claims: &Claims) -> Result<bool, ProtocolError> {
    match claims.jti.as_deref().filter(|_| claims.single_use) {
        Some(jti) => cx
            .app
            .store
            .jti_used(jti, cx.secs())
            .await
            .map_err(internal),
        None => Ok(false),
    }
}
