//! Removing a connection and everything it contributed: on `$disconnect`, for a
//! socket a post found gone, for one the sweeper closed, and when the
//! connection item's TTL expires. Run by the driver's cleanup worklist, after
//! deliveries, never inside one.

use super::Ctx;

/// Removes every subscription of the connection (with its count contribution)
/// and the connection item; presence channels queue what their remaining
/// members must hear (`ops::membership::left`; a removal files that change in
/// its own transaction, so the sweeper tells it should queueing fail). Safe
/// to run twice at once: each removal is conditional, so counts drop once.
/// Failures are logged, not returned: there is nobody to report them to, and
/// TTL removes what is left.
pub async fn cleanup(cx: Ctx<'_>, connection_id: &str) {
    let store = &cx.app.store;
    // Time 0: expired index items are listed too, so they are removed as well.
    match store.connection_channels(connection_id, 0).await {
        Ok(channels) => {
            for channel in channels {
                let owed = super::membership::owe_until(cx, &channel);
                match store
                    .unsubscribe(&channel, connection_id, cx.secs(), owed)
                    .await
                {
                    Ok(Some(removed)) => {
                        if removed.recoverable {
                            super::resume::left(cx, &removed.channel).await;
                        }
                        super::membership::left(cx, &removed, owed).await
                    }
                    Ok(None) => {}
                    Err(err) => tracing::error!(
                        connection_id,
                        channel,
                        error = %err,
                        "unsubscribe during cleanup failed"
                    ),
                }
            }
        }
        Err(err) => tracing::error!(connection_id, error = %err, "listing subscriptions failed"),
    }
    if let Err(err) = store.delete_connection(connection_id).await {
        tracing::error!(connection_id, error = %err, "deleting connection failed");
    }
    cx.app.claims.forget(connection_id);
}
