//! Resuming a subscription after a drop (Sockhop's extension; docs/adr/0006).
//!
//! A subscription that asks (`data.resume`, granted by the token's `recover`)
//! makes the channel log every message frame and storage update it delivers, at its position on
//! the channel's ordered path, while a recoverable subscription is on the
//! channel and for the recovery window after the last one left. Each entry
//! names the entry before it (`prev`), so a resume can prove that nothing is
//! missing between the position it names and now: an expired entry, or a time
//! the channel was not logged (which starts a new chain), breaks the links and
//! the answer is `recovered: false`.

use super::{internal, Ctx};
use crate::store::{LogAfter, LoggedFrame, SubscriptionItem};
use sockhop_core::error::{ErrorCode, ProtocolError};
use sockhop_core::protocol::Since;

/// The most frames one resume replays; a longer gap answers `recovered: false`
/// (the app reads history instead).
pub const REPLAY_LIMIT: usize = 1000;

/// How far past the clock a position may lie (clocks of two invocations differ).
const AHEAD_TOLERANCE_MS: u64 = 5_000;

/// Where a channel's log stands within one deliver step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogState {
    /// A recoverable subscription is on the channel.
    pub recoverable: bool,
    /// Until when the channel is logged without one (`recoverUntil`).
    pub recover_until: Option<i64>,
    /// The position this step logged last (saves reading it back).
    pub last: Option<String>,
}

impl LogState {
    /// Whether a frame delivered at `now` is logged (pure).
    pub fn logging(&self, now: i64) -> bool {
        self.recoverable || self.kept(now)
    }

    /// Whether the channel has been logged without a break up to `now`: the
    /// window after the last recoverable subscription left has not passed.
    fn kept(&self, now: i64) -> bool {
        self.recover_until.is_some_and(|until| until >= now)
    }
}

/// What one log entry holds besides its place.
#[derive(Debug, Clone, Default)]
pub struct Logged<'a> {
    /// A message's id (kept when it is not the position).
    pub message_id: Option<&'a str>,
    /// The frame; `None` for a subscription's starting mark.
    pub frame: Option<String>,
    /// A storage update's key.
    pub storage_key: Option<&'a str>,
    /// A message sent without echo: its sender's connection.
    pub unechoed_by: Option<&'a str>,
    /// A member event: the member list (JSON) its recipients had before it.
    pub members_before: Option<String>,
}

/// Logs one entry at `position`. It links to the entry before it, unless the
/// channel's logging lapsed meanwhile, and keeps the channel logged for at
/// least half a window more.
pub async fn log(
    cx: Ctx<'_>,
    channel: &str,
    state: &mut LogState,
    position: &str,
    logged: Logged<'_>,
) -> Result<(), ProtocolError> {
    let now = cx.secs();
    let window = cx.app.config.recovery_window_seconds;
    let prev = if !state.kept(now) {
        None
    } else if let Some(last) = state.last.clone().filter(|l| l.as_str() < position) {
        Some(last)
    } else {
        cx.app
            .store
            .logged_before(channel, position)
            .await
            .map_err(internal)?
    };
    let entry = LoggedFrame {
        channel: channel.to_owned(),
        position: position.to_owned(),
        prev,
        message_id: logged
            .message_id
            .filter(|id| *id != position)
            .map(str::to_owned),
        frame: logged.frame,
        storage_key: logged.storage_key.map(str::to_owned),
        unechoed_by: logged.unechoed_by.map(str::to_owned),
        members_before: logged.members_before,
        // Twice the window: an entry stays readable for a resume that comes
        // up to a window after the subscriber left, however early it was logged.
        ttl: now + 2 * window,
    };
    cx.app.store.log_frame(&entry).await.map_err(internal)?;
    state.last = Some(position.to_owned());
    if state
        .recover_until
        .is_none_or(|until| until < now + window / 2)
    {
        cx.app
            .store
            .extend_recovery(channel, now + window, false)
            .await
            .map_err(internal)?;
        state.recover_until = Some(now + window);
    }
    Ok(())
}

/// A recoverable subscription ended (its connection went): the channel stays
/// logged a window longer, and its last entry with it, so the subscriber can
/// come back and resume from it.
pub async fn left(cx: Ctx<'_>, channel: &str) {
    let until = cx.secs() + cx.app.config.recovery_window_seconds;
    if let Err(err) = cx.app.store.extend_recovery(channel, until, true).await {
        tracing::error!(%channel, error = %err, "recovery window not extended for a subscriber that left");
    }
}

/// Checks a position a subscribe names, before anything is written: not
/// later than now, and, when recent enough that this channel's log would
/// still hold it, one this channel logged.
pub async fn check_position(
    cx: Ctx<'_>,
    channel: &str,
    requested: &str,
    position: &str,
) -> Result<(), ProtocolError> {
    let refused = |code, message: &str| {
        Err(ProtocolError::new(code, message.to_owned()).with_channel(requested))
    };
    let Some(at) = sockhop_core::ids::position_time_ms(position) else {
        return refused(
            ErrorCode::InvalidResumePosition,
            "resume position is not a position",
        );
    };
    let now_ms = u64::try_from(cx.now.millis()).unwrap_or(0);
    if at > now_ms + AHEAD_TOLERANCE_MS {
        return refused(
            ErrorCode::ResumePositionAhead,
            "resume position is later than anything sent on the channel",
        );
    }
    let window_ms = u64::try_from(cx.app.config.recovery_window_seconds * 1000).unwrap_or(0);
    // A member event's step may be gone for good, and rightly: a failed try of
    // its step logged it and the retry decided otherwise (the walk answers then).
    let step = position.contains('.');
    if !step && at + window_ms > now_ms {
        let read = cx
            .app
            .store
            .logged_after(channel, position, cx.secs(), 0)
            .await
            .map_err(internal)?;
        if !read.found {
            return refused(
                ErrorCode::ResumePositionUnknown,
                "resume position is not one of this channel's",
            );
        }
    }
    Ok(())
}

/// What a recovered resume is sent after its `hotsock.subscribed`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replay {
    /// The frames it missed, in the channel's order.
    pub frames: Vec<String>,
    /// On a presence channel whose members changed meanwhile, the list (JSON)
    /// as of the position named, for its `hotsock.subscribed`: the replayed
    /// member events then bring it up to now. `None`: nothing changed.
    pub members_before: Option<String>,
}

/// The frames to replay after the position a resume named, or `None` when
/// they cannot all be given (pure): the channel's logging lapsed before now,
/// an entry in between is gone (the links break), or there are more than
/// `limit`. A storage update goes only to a subscriber that `observes` its
/// key; a message sent without echo by one of the resumer's own earlier
/// `connections` does not go at all (they never had it).
pub fn replay(
    read: &LogAfter,
    kept: bool,
    limit: usize,
    observes: impl Fn(&str) -> bool,
    connections: &[String],
) -> Option<Replay> {
    if !kept || read.after.len() > limit {
        return None;
    }
    let mut prev = read.position.as_str();
    let mut replay = Replay::default();
    for entry in &read.after {
        if entry.prev.as_deref() != Some(prev) {
            return None;
        }
        prev = &entry.position;
        if replay.members_before.is_none() {
            replay.members_before.clone_from(&entry.members_before);
        }
        let own = entry
            .unechoed_by
            .as_ref()
            .is_some_and(|by| connections.contains(by));
        if !own && entry.storage_key.as_deref().is_none_or(&observes) {
            replay.frames.extend(entry.frame.clone());
        }
    }
    Some(replay)
}

/// The answer to `joiner`'s resume at its welcome (`None`: `recovered: false`).
pub async fn recover(
    cx: Ctx<'_>,
    joiner: &SubscriptionItem,
    state: &LogState,
    since: &Since,
) -> Result<Option<Replay>, ProtocolError> {
    let permissions = joiner.permissions().map_err(internal)?;
    let read = cx
        .app
        .store
        .logged_after(&joiner.channel, &since.position, cx.secs(), REPLAY_LIMIT)
        .await
        .map_err(internal)?;
    let observes = |key: &str| permissions.storage(key).observe;
    let kept = state.kept(cx.secs());
    // Its own connection too: it may have published before its welcome.
    let mut own = since.connections.clone();
    own.push(joiner.connection_id.clone());
    Ok(replay(&read, kept, REPLAY_LIMIT, observes, &own))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(position: &str, prev: Option<&str>, frame: Option<&str>) -> LoggedFrame {
        LoggedFrame {
            channel: "c".into(),
            position: position.into(),
            prev: prev.map(str::to_owned),
            message_id: None,
            frame: frame.map(str::to_owned),
            storage_key: None,
            unechoed_by: None,
            members_before: None,
            ttl: 100,
        }
    }

    /// The frames of a replay.
    fn frames(replay: Option<Replay>) -> Option<Vec<String>> {
        replay.map(|r| r.frames)
    }

    fn after(position: &str, after: Vec<LoggedFrame>) -> LogAfter {
        LogAfter {
            position: position.into(),
            found: true,
            after,
        }
    }

    #[test]
    fn a_linked_log_replays_its_frames_in_order_skipping_marks() {
        let read = after(
            "A",
            vec![
                entry("B", Some("A"), Some("b")),
                entry("C", Some("B"), None),
                entry("D", Some("C"), Some("d")),
            ],
        );
        assert_eq!(
            frames(replay(&read, true, 10, |_| true, &[])),
            Some(vec!["b".to_owned(), "d".to_owned()])
        );
        assert_eq!(
            frames(replay(&after("A", vec![]), true, 10, |_| true, &[])),
            Some(vec![])
        );
    }

    #[test]
    fn a_broken_link_a_lapse_or_too_many_frames_recover_nothing() {
        let gone = after(
            "A",
            vec![
                entry("B", Some("A"), Some("b")),
                entry("D", Some("C"), Some("d")),
            ],
        );
        assert_eq!(
            frames(replay(&gone, true, 10, |_| true, &[])),
            None,
            "C expired: D names it"
        );
        let restarted = after("A", vec![entry("B", None, Some("b"))]);
        assert_eq!(
            frames(replay(&restarted, true, 10, |_| true, &[])),
            None,
            "a new chain"
        );
        let linked = after("A", vec![entry("B", Some("A"), Some("b"))]);
        assert_eq!(
            frames(replay(&linked, false, 10, |_| true, &[])),
            None,
            "logging lapsed"
        );
        assert_eq!(
            frames(replay(&linked, true, 0, |_| true, &[])),
            None,
            "over the limit"
        );
    }

    #[test]
    fn a_storage_update_is_replayed_only_to_an_observer_of_its_key() {
        let mut update = entry("C", Some("B"), Some("settings=1"));
        update.storage_key = Some("settings".into());
        let read = after("A", vec![entry("B", Some("A"), Some("m")), update]);
        assert_eq!(
            frames(replay(&read, true, 10, |key| key == "settings", &[])),
            Some(vec!["m".to_owned(), "settings=1".to_owned()])
        );
        assert_eq!(
            frames(replay(&read, true, 10, |_| false, &[])),
            Some(vec!["m".to_owned()]),
            "still linked through the update it does not get"
        );
    }

    #[test]
    fn the_resumers_own_unechoed_messages_are_not_replayed_to_it() {
        let mut own = entry("B", Some("A"), Some("mine"));
        own.unechoed_by = Some("c1".into());
        let read = after("A", vec![own, entry("C", Some("B"), Some("theirs"))]);
        let mine = ["c0".to_owned(), "c1".to_owned()];
        assert_eq!(
            frames(replay(&read, true, 10, |_| true, &mine)),
            Some(vec!["theirs".to_owned()])
        );
        assert_eq!(
            frames(replay(&read, true, 10, |_| true, &["c2".to_owned()])),
            Some(vec!["mine".to_owned(), "theirs".to_owned()]),
            "another connection's"
        );
    }

    #[test]
    fn a_replay_starts_from_the_member_list_before_its_first_member_event() {
        let mut joined = entry("C", Some("B"), Some("added"));
        joined.members_before = Some("[1]".into());
        let mut left = entry("D", Some("C"), Some("removed"));
        left.members_before = Some("[1,2]".into());
        let read = after("A", vec![entry("B", Some("A"), Some("m")), joined, left]);
        let replayed = replay(&read, true, 10, |_| true, &[]).expect("linked");
        assert_eq!(replayed.members_before.as_deref(), Some("[1]"));
        assert_eq!(replayed.frames, ["m", "added", "removed"]);
        let quiet = after("A", vec![entry("B", Some("A"), Some("m"))]);
        assert_eq!(
            replay(&quiet, true, 10, |_| true, &[])
                .expect("linked")
                .members_before,
            None
        );
    }

    #[test]
    fn logging_runs_while_recoverable_or_within_the_window() {
        let mut state = LogState::default();
        assert!(!state.logging(10));
        state.recover_until = Some(10);
        assert!(state.logging(10));
        assert!(!state.logging(11));
        state.recoverable = true;
        assert!(state.logging(11));
    }
}
