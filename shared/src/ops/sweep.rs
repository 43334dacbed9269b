//! The sweeper's pass: keepAlive frames, heartbeat timeouts and connections past
//! their lifetime. Run on a schedule (every minute in AWS).

use super::{internal, Ctx};
use crate::effects::Effects;
use crate::error::ProtocolError;
use crate::protocol::ServerMessage;
use crate::store::ConnectionItem;

/// When sweeps run and how long a socket may stay silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepSchedule {
    /// Seconds between sweeps (the sweeper's schedule).
    pub interval: i64,
    /// Seconds of silence after which the gateway closes a socket (API
    /// Gateway: 600).
    pub idle_timeout: i64,
}

impl SweepSchedule {
    /// Seconds between `hotsock.keepAlive` frames. A frame goes out at the
    /// first sweep after each period ends, up to one interval late, and the
    /// sweep itself may start late by up to another interval: two intervals
    /// short of the idle timeout keeps every gap inside it (480 s with AWS's
    /// 600 s and a sweep a minute; Hotsock says "9.5 minutes or so").
    pub fn keep_alive_period(&self) -> i64 {
        (self.idle_timeout - 2 * self.interval)
            .max(self.interval)
            .max(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepAction {
    Nothing,
    KeepAlive,
    /// Missed its heartbeat or outlived its lifetime: close and clean up.
    Close,
}

/// What one connection needs on a sweep at `now` (pure). keepAlive is due each
/// time the connection's age crosses a multiple of the keep-alive period since
/// the previous sweep, so no state is kept.
pub fn sweep_action(connection: &ConnectionItem, now: i64, schedule: SweepSchedule) -> SweepAction {
    if now >= connection.expires_at {
        return SweepAction::Close;
    }
    if let Some(timeout) = connection.heartbeat_timeout {
        if now - connection.last_seen > i64::from(timeout) {
            return SweepAction::Close;
        }
    }
    if connection.keep_alive {
        let period = schedule.keep_alive_period();
        let age = now - connection.connected_at_ms / 1000;
        let before = (age - schedule.interval).max(0);
        if age / period > before / period {
            return SweepAction::KeepAlive;
        }
    }
    SweepAction::Nothing
}

/// One pass over every connection: keepAlive frames to send, connections to
/// close (the driver closes them, then cleans up).
pub async fn sweep(cx: Ctx<'_>, schedule: SweepSchedule) -> Result<Effects, ProtocolError> {
    let now = cx.secs();
    let mut effects = Effects::new();
    for connection in cx.app.store.scan_connections(now).await.map_err(internal)? {
        match sweep_action(&connection, now, schedule) {
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

    const AWS: SweepSchedule = SweepSchedule {
        interval: 60,
        idle_timeout: 600,
    };

    /// The sweeps at which `c` gets a keepAlive, for sweeps `interval` apart
    /// starting `phase` seconds after some minute, up to `until`.
    fn keep_alive_times(c: &ConnectionItem, schedule: SweepSchedule, phase: i64) -> Vec<i64> {
        (0..=7200 / schedule.interval)
            .map(|k| phase + k * schedule.interval)
            .filter(|now| sweep_action(c, *now, schedule) == SweepAction::KeepAlive)
            .collect()
    }

    #[test]
    fn keep_alive_gaps_never_reach_the_idle_timeout() {
        // Every connect moment against every sweep phase: the silence before
        // the first keepAlive and between two never reaches 600 s, with room for
        // one sweep running a whole interval late.
        for connected_at in 0..60 {
            let c = connection(connected_at, true, None, connected_at);
            for phase in 0..60 {
                let times = keep_alive_times(&c, AWS, phase);
                assert!(times.len() >= 14, "about one per 8 minutes: {times:?}");
                let mut previous = connected_at;
                for t in times {
                    assert!(
                        t - previous + AWS.interval < AWS.idle_timeout,
                        "gap {} at {t} (connected {connected_at}, phase {phase})",
                        t - previous
                    );
                    previous = t;
                }
            }
        }
        let without = connection(1_000, false, None, 1_000);
        assert!(keep_alive_times(&without, AWS, 0).is_empty());
    }

    #[test]
    fn keep_alive_period_follows_the_schedule() {
        assert_eq!(AWS.keep_alive_period(), 480);
        let quick = SweepSchedule {
            interval: 1,
            idle_timeout: 6,
        };
        assert_eq!(quick.keep_alive_period(), 4);
        let coarse = SweepSchedule {
            interval: 300,
            idle_timeout: 600,
        };
        assert_eq!(coarse.keep_alive_period(), 300);
    }

    #[test]
    fn missed_heartbeats_close() {
        let c = connection(1_000, false, Some(30), 1_100);
        assert_eq!(sweep_action(&c, 1_130, AWS), SweepAction::Nothing);
        assert_eq!(sweep_action(&c, 1_131, AWS), SweepAction::Close);
        let no_heartbeat = connection(1_000, false, None, 1_000);
        assert_eq!(
            sweep_action(&no_heartbeat, 5_000, AWS),
            SweepAction::Nothing
        );
    }

    #[test]
    fn connections_past_their_lifetime_close() {
        let c = connection(1_000, true, None, 1_000);
        assert_eq!(sweep_action(&c, 8_199, AWS), SweepAction::Nothing);
        assert_eq!(sweep_action(&c, 8_200, AWS), SweepAction::Close);
    }
}
