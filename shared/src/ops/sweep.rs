//! The sweeper's pass: keepAlive frames, heartbeat timeouts and connections past
//! their lifetime. Run on a schedule (every minute in AWS).

use super::{internal, Ctx};
use crate::effects::Effects;
use crate::error::ProtocolError;
use crate::protocol::ServerMessage;
use crate::store::ConnectionItem;

/// `hotsock.keepAlive` about every 9.5 minutes, inside API Gateway's 10-minute
/// idle timeout.
pub const KEEP_ALIVE_SECONDS: i64 = 570;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepAction {
    Nothing,
    KeepAlive,
    /// Missed its heartbeat or outlived its lifetime: close and clean up.
    Close,
}

/// What one connection needs on a sweep at `now`, when the previous sweep ran
/// `interval` seconds ago (pure). keepAlive is due each time the connection's
/// age crosses a multiple of [`KEEP_ALIVE_SECONDS`], so no state is kept.
pub fn sweep_action(connection: &ConnectionItem, now: i64, interval: i64) -> SweepAction {
    if now >= connection.expires_at {
        return SweepAction::Close;
    }
    if let Some(timeout) = connection.heartbeat_timeout {
        if now - connection.last_seen > i64::from(timeout) {
            return SweepAction::Close;
        }
    }
    if connection.keep_alive {
        let age = now - connection.connected_at_ms / 1000;
        let before = (age - interval).max(0);
        if age / KEEP_ALIVE_SECONDS > before / KEEP_ALIVE_SECONDS {
            return SweepAction::KeepAlive;
        }
    }
    SweepAction::Nothing
}

/// One pass over every connection: keepAlive frames to send, connections to
/// close (the driver closes them, then cleans up).
pub async fn sweep(cx: Ctx<'_>, interval: i64) -> Result<Effects, ProtocolError> {
    let now = cx.secs();
    let mut effects = Effects::new();
    for connection in cx.app.store.scan_connections(now).await.map_err(internal)? {
        match sweep_action(&connection, now, interval) {
            SweepAction::Nothing => {}
            SweepAction::KeepAlive => {
                effects.send(&connection.connection_id, &ServerMessage::keep_alive());
            }
            SweepAction::Close => effects.close(&connection.connection_id),
        }
    }
    Ok(effects)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(
        connected_at: i64,
        keep_alive: bool,
        heartbeat: Option<u32>,
        last_seen: i64,
    ) -> ConnectionItem {
        ConnectionItem {
            connection_id: "c".into(),
            secret_nonce: "n".into(),
            secret_hash: "h".into(),
            uid: None,
            umd: None,
            claims: "{}".into(),
            connected_at_ms: connected_at * 1000,
            expires_at: connected_at + 7200,
            keep_alive,
            heartbeat_timeout: heartbeat,
            last_seen,
            ttl: connected_at + 7500,
        }
    }

    #[test]
    fn keep_alive_fires_once_per_period() {
        let c = connection(1_000, true, None, 1_000);
        let fired: Vec<i64> = (1..=40)
            .map(|minute| 1_000 + minute * 60)
            .filter(|now| sweep_action(&c, *now, 60) == SweepAction::KeepAlive)
            .collect();
        // Ages 600 (crosses 570), 1140, 1740 (crosses 1710), 2280, ...: one per 570 s.
        assert_eq!(fired.len(), 4, "{fired:?}");
        assert_eq!(fired[0], 1_000 + 600);
        let without = connection(1_000, false, None, 1_000);
        assert!(
            (1..=40).all(|m| sweep_action(&without, 1_000 + m * 60, 60) == SweepAction::Nothing)
        );
    }

    #[test]
    fn missed_heartbeats_close() {
        let c = connection(1_000, false, Some(30), 1_100);
        assert_eq!(sweep_action(&c, 1_130, 60), SweepAction::Nothing);
        assert_eq!(sweep_action(&c, 1_131, 60), SweepAction::Close);
        let no_heartbeat = connection(1_000, false, None, 1_000);
        assert_eq!(sweep_action(&no_heartbeat, 5_000, 60), SweepAction::Nothing);
    }

    #[test]
    fn connections_past_their_lifetime_close() {
        let c = connection(1_000, true, None, 1_000);
        assert_eq!(sweep_action(&c, 8_199, 60), SweepAction::Nothing);
        assert_eq!(sweep_action(&c, 8_200, 60), SweepAction::Close);
    }
}
