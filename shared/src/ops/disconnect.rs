//! Removing a connection and everything it contributed: on `$disconnect`, on a
//! 410 Gone from a post, and when the connection item's TTL expires.

use crate::app::App;

/// Removes every subscription of the connection (with its count contribution)
/// and the connection item. Safe to run twice at once: each removal is
/// conditional, so counts drop once. Failures are logged, not returned: the
/// caller has nobody to report them to, and TTL removes what is left.
pub async fn cleanup(app: &App, connection_id: &str) {
    let now = app.now();
    // Time 0: expired index items are listed too, so they are removed as well.
    match app.store.connection_channels(connection_id, 0).await {
        Ok(channels) => {
            for channel in channels {
                match app.store.unsubscribe(&channel, connection_id, now).await {
                    Ok(Some(removed)) => super::presence::left(app, &removed).await,
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
    if let Err(err) = app.store.delete_connection(connection_id).await {
        tracing::error!(connection_id, error = %err, "deleting connection failed");
    }
}
