//! The sweeper's pass: keepAlive frames, heartbeat timeouts and connections past
//! their lifetime. Run on a schedule (every minute in AWS).

use super::{internal, Ctx};
use crate::effects::Effects;
use crate::store::ConnectionItem;
use futures::StreamExt;
use sockhop_core::error::ProtocolError;
use sockhop_core::protocol::ServerMessage;

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
    pub fn of(config: &crate::runtime::app::Config) -> Self {
        SweepSchedule {
            interval: config.sweep_interval_seconds,
            idle_timeout: config.idle_timeout_seconds,
        }
    }

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

/// The first keepAlive instant of `connection` after `after`: every period
/// from the connect (pure).
fn next_keep_alive(connection: &ConnectionItem, after: i64, schedule: SweepSchedule) -> i64 {
    let period = schedule.keep_alive_period();
    let start = connection.connected_at_ms.div_euclid(1000);
    start + ((after - start).div_euclid(period) + 1) * period
}

/// When the sweeper must next look at `connection`, looking after `after`
/// (pure): its next keepAlive, its heartbeat deadline or its end of life,
/// whichever comes first, and never before `after + 1`.
pub fn next_sweep(connection: &ConnectionItem, after: i64, schedule: SweepSchedule) -> i64 {
    let mut due = connection.expires_at;
    if let Some(timeout) = connection.heartbeat_timeout {
        due = due.min(connection.last_seen + i64::from(timeout) + 1);
    }
    if connection.keep_alive {
        due = due.min(next_keep_alive(connection, after, schedule));
    }
    due.max(after + 1)
}

/// What one connection found due by the sweep at `now` needs (pure). A
/// keepAlive is due when one of its instants lies between the time it was
/// filed under (`sweep_at`) and now.
pub fn sweep_action(connection: &ConnectionItem, now: i64, schedule: SweepSchedule) -> SweepAction {
    if now >= connection.expires_at {
        return SweepAction::Close;
    }
    if let Some(timeout) = connection.heartbeat_timeout {
        if now - connection.last_seen > i64::from(timeout) {
            return SweepAction::Close;
        }
    }
    if connection.keep_alive
        && next_keep_alive(connection, connection.sweep_at - 1, schedule) <= now
    {
        return SweepAction::KeepAlive;
    }
    SweepAction::Nothing
}

/// Whether a connection with a `heartbeatTimeout` falls due after now and by
/// `until` (Unix seconds): while one does, the sweeper keeps passing.
pub async fn heartbeats_ahead(cx: Ctx<'_>, until: i64) -> Result<bool, ProtocolError> {
    cx.app
        .store
        .heartbeat_due_within(cx.secs(), until)
        .await
        .map_err(internal)
}

/// Reschedules written at once.
const RESCHEDULE_CONCURRENCY: usize = 16;

/// How far back a sweeper that has never run (or was stopped) looks: longer
/// than any connection lives (API Gateway: 2 hours).
const SWEEP_LOOKBACK_SECONDS: i64 = 3 * 3600;

/// One pass over what is due by now, found by the sweep index: presence
/// changes a removal could not queue (queued now), keepAlive frames to send,
/// connections to close (the driver closes them, then cleans up); every other
/// connection filed under its next due time.
pub async fn sweep(cx: Ctx<'_>, schedule: SweepSchedule) -> Result<Effects, ProtocolError> {
    let now = cx.secs();
    let store = &cx.app.store;
    let mut effects = Effects::new();
    let due = store
        .due_for_sweep(now, SWEEP_LOOKBACK_SECONDS)
        .await
        .map_err(internal)?;
    if !due.owed.is_empty() {
        let still_owed = super::membership::tell_owed(cx, &due.owed, schedule.interval).await;
        tracing::info!(
            owed = due.owed.len(),
            still_owed,
            "owed presence changes swept"
        );
    }
    let mut reschedules = Vec::new();
    for connection in due.connections {
        match sweep_action(&connection, now, schedule) {
            SweepAction::Close => {
                effects.close(&connection.connection_id);
                continue;
            }
            SweepAction::KeepAlive => {
                effects.send(&connection.connection_id, &ServerMessage::keep_alive());
            }
            SweepAction::Nothing => {}
        }
        let next = next_sweep(&connection, now, schedule);
        reschedules.push(async move {
            store
                .reschedule_sweep(&connection.connection_id, next)
                .await
        });
    }
    // Independent writes, so a sweep with many due connections stays short.
    let written: Vec<Result<(), _>> = futures::stream::iter(reschedules)
        .buffer_unordered(RESCHEDULE_CONCURRENCY)
        .collect()
        .await;
    written
        .into_iter()
        .collect::<Result<(), _>>()
        .map_err(internal)?;
    store.advance_sweep_cursor(now).await.map_err(internal)?;
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
            source_ip: None,
            user_agent: None,
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
            sweep_at: 0,
            ttl: connected_at + 7500,
        }
    }

    const AWS: SweepSchedule = SweepSchedule {
        interval: 60,
        idle_timeout: 600,
    };

    /// The sweeps at which `c` gets a keepAlive, for sweeps `interval` apart
    /// starting `phase` seconds after some minute, up to its lifetime: each
    /// sweep looks at `c` only when it is due, as the sweep index does, and
    /// files it under its next due time.
    fn keep_alive_times(c: &ConnectionItem, schedule: SweepSchedule, phase: i64) -> Vec<i64> {
        let mut c = c.clone();
        let connected = c.connected_at_ms / 1000;
        c.sweep_at = next_sweep(&c, connected, schedule);
        let mut times = Vec::new();
        for now in (0..=7200 / schedule.interval).map(|k| phase + k * schedule.interval) {
            if now < connected || c.sweep_at > now {
                continue;
            }
            match sweep_action(&c, now, schedule) {
                SweepAction::Close => break,
                SweepAction::KeepAlive => times.push(now),
                SweepAction::Nothing => {}
            }
            c.sweep_at = next_sweep(&c, now, schedule);
        }
        times
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
    fn a_connection_is_due_at_its_first_need() {
        let keep_alive = connection(1_000, true, None, 1_000);
        assert_eq!(next_sweep(&keep_alive, 1_000, AWS), 1_480);
        assert_eq!(next_sweep(&keep_alive, 1_480, AWS), 1_960);
        let heartbeat = connection(1_000, true, Some(30), 1_100);
        assert_eq!(next_sweep(&heartbeat, 1_100, AWS), 1_131);
        let plain = connection(1_000, false, None, 1_000);
        assert_eq!(next_sweep(&plain, 1_000, AWS), 8_200, "its end of life");
        assert_eq!(next_sweep(&plain, 9_000, AWS), 9_001, "never in the past");
        // Filed under a heartbeat deadline that has since moved: looked at, nothing done.
        let mut moved = heartbeat.clone();
        moved.sweep_at = 1_131;
        moved.last_seen = 1_125;
        assert_eq!(sweep_action(&moved, 1_140, AWS), SweepAction::Nothing);
        assert_eq!(next_sweep(&moved, 1_140, AWS), 1_156);
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
        let mut c = connection(1_000, true, None, 1_000);
        c.sweep_at = 8_199;
        assert_eq!(sweep_action(&c, 8_199, AWS), SweepAction::Nothing);
        assert_eq!(sweep_action(&c, 8_200, AWS), SweepAction::Close);
    }
}
