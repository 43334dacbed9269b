//! The membership protocol's ordered path: a subscription's welcome, an
//! unsubscribe's farewell and every presence change travel the channel's
//! ordered path as membership changes (`deliver::MembershipChange`, one kind
//! of queue record); this module queues them, files and settles the change a
//! removal owes a presence channel, and applies a run of them in the deliver
//! step. What the members are told is decided by `presence`.

use super::deliver::{enqueue, MembershipChange, Queued};
use super::{internal, Ctx};
use crate::effects::Effects;
use crate::store::{OwedChange, SubscriptionItem};
use sockhop_core::error::ProtocolError;
use sockhop_core::names;
use sockhop_core::protocol::{Meta, Resume, ServerMessage};

/// Queues a membership change on the channel's ordered path.
pub async fn queue_change(
    cx: Ctx<'_>,
    channel: &str,
    change: MembershipChange,
) -> Result<(), ProtocolError> {
    let unique = cx.app.ids.next_id(cx.now);
    let queued = Queued::Membership {
        channel: channel.to_owned(),
        change,
    };
    enqueue(cx, &queued, None, &unique).await
}

/// How long a removal's owed change waits for the removal itself to queue
/// it before the sweeper would (the sweeper runs every minute).
const OWED_CHANGE_GRACE_SECONDS: i64 = 60;

/// When a removal of a subscription to `channel` should file the change it
/// owes the members ([`crate::store::OwedChange`]): presence channels only.
pub fn owe_until(cx: Ctx<'_>, channel: &str) -> Option<i64> {
    names::is_presence_channel(channel).then(|| cx.secs() + OWED_CHANGE_GRACE_SECONDS)
}

/// After a subscription to a presence channel ended (unsubscribe or
/// cleanup) with its owed change filed (`owed_at`, from [`owe_until`]):
/// queues the change that tells the others, then settles the owed change.
/// If queueing fails, the owed change stays for the sweeper, which queues it
/// ([`tell_owed`]); nothing is lost, only late.
pub async fn left(cx: Ctx<'_>, leaver: &SubscriptionItem, owed_at: Option<i64>) {
    let Some(owed_at) = owed_at else {
        return;
    };
    let owed = OwedChange::for_removal(leaver, owed_at);
    match queue_change(cx, &leaver.channel, MembershipChange::default()).await {
        Ok(()) => settle(cx, &owed).await,
        Err(err) => {
            cx.app
                .activity
                .add(crate::metrics::Measure::OwedPresenceChanges, 1.0);
            tracing::warn!(
                channel = %leaver.channel,
                code = err.code.as_str(),
                "presence change not queued; the sweeper queues it"
            )
        }
    }
}

/// The owed change was queued: its item goes. Should that fail, the sweeper
/// queues it once more, which tells nobody anything twice (every change is
/// told as a difference).
pub async fn settle(cx: Ctx<'_>, owed: &OwedChange) {
    if let Err(err) = cx.app.store.settle_owed_change(owed).await {
        tracing::warn!(channel = %owed.channel, error = %err, "owed presence change not settled");
    }
}

/// The sweeper's part: queues one change per channel for the owed changes
/// found due, settling them; those that still cannot be queued are looked at
/// again `retry_in` seconds later. Returns how many channels are still owed.
pub async fn tell_owed(cx: Ctx<'_>, owed: &[OwedChange], retry_in: i64) -> usize {
    let mut by_channel: std::collections::BTreeMap<&str, Vec<&OwedChange>> = Default::default();
    for o in owed {
        by_channel.entry(o.channel.as_str()).or_default().push(o);
    }
    let mut still_owed = 0;
    for (channel, owed) in by_channel {
        match queue_change(cx, channel, MembershipChange::default()).await {
            Ok(()) => {
                for o in owed {
                    settle(cx, o).await;
                }
            }
            Err(err) => {
                still_owed += 1;
                tracing::error!(
                    channel,
                    code = err.code.as_str(),
                    "owed presence change not queued; retried at the next sweep"
                );
                for o in owed {
                    if let Err(err) = cx
                        .app
                        .store
                        .defer_owed_change(o, cx.secs() + retry_in)
                        .await
                    {
                        tracing::error!(channel, error = %err, "owed presence change not deferred");
                    }
                }
            }
        }
    }
    still_owed
}

/// A run of membership changes in the channel's order, each with its
/// position on it, applied together by the deliver step: each joiner still
/// subscribed gets `hotsock.subscribed` with the member list as of here, a
/// resumed one the list as of where it left off and then what it missed
/// (`resume`), and one `hotsock.channelStorageUpdated` per entry it
/// observes; each farewell is sent; then, on a presence channel, the members
/// (a resumed one among them) hear what changed, once for the whole run. On
/// a channel logged for resumes the member events are logged, then the
/// joiners' starting mark after them. Safe to run again after a failure:
/// nothing was sent yet, and the log forgets what the failed try logged.
pub async fn apply(
    cx: Ctx<'_>,
    channel: &str,
    changes: &[(&MembershipChange, &str)],
) -> Result<Effects, ProtocolError> {
    let mut joiners = Vec::new();
    for (change, _) in changes {
        if let Some(connection_id) = &change.welcome {
            let welcomed = cx
                .app
                .store
                .welcome_subscription(channel, connection_id, change.subscribed_at_ms)
                .await
                .map_err(internal)?;
            if let Some(joiner) = welcomed {
                joiners.push((joiner, *change));
            }
        }
    }
    // The run's place: its last change's.
    let run_at = changes.last().map(|(_, p)| *p).unwrap_or_default();
    let first_at = changes.first().map(|(_, p)| *p).unwrap_or_default();
    let presence = if names::is_presence_channel(channel) {
        Some(super::presence::read(cx, channel).await?)
    } else {
        None
    };
    let resumable_joiner = joiners.iter().any(|(j, _)| j.recoverable);
    let members_change = presence.as_ref().is_some_and(|(subscriptions, told)| {
        let now = super::presence::members(subscriptions);
        !super::presence::changes(&told.members, &now).is_empty()
    });
    // Where the log stands matters to a resumable joiner, and to member
    // events that a resumable subscriber, or one gone within the window, is owed.
    let mut log = None;
    if members_change || resumable_joiner {
        let recoverable = resumable_joiner
            || presence
                .as_ref()
                .is_some_and(|(subs, _)| subs.iter().any(|s| s.recoverable));
        log = Some(super::resume::LogState {
            recoverable,
            recover_until: cx
                .app
                .store
                .recover_until(channel)
                .await
                .map_err(internal)?,
            last: None,
        });
    }
    let logging = log.as_ref().is_some_and(|l| l.logging(cx.secs()));
    if logging {
        // What a failed try of this step logged goes: this try decides anew
        // (subscriptions may have changed since), and a resume replays none of it.
        cx.app
            .store
            .unlog_from(channel, first_at)
            .await
            .map_err(internal)?;
    }
    // Resumes answered first: a recovered one hears this run's member events
    // as any member does, after what it missed.
    let mut recovered = Vec::new();
    for (joiner, change) in &joiners {
        let replay = match (&change.resume, &log) {
            (Some(Resume::After(since)), Some(state)) if joiner.recoverable => {
                super::resume::recover(cx, joiner, state, since).await?
            }
            _ => None,
        };
        recovered.push(replay);
    }
    let welcoming: Vec<SubscriptionItem> = joiners
        .iter()
        .zip(&recovered)
        .filter(|(_, replay)| replay.is_none())
        .map(|((j, _), _)| j.clone())
        .collect();
    let logged_at = logging.then_some(run_at);
    let announcement = presence.map(|(subscriptions, told)| {
        super::presence::plan_announcement(channel, &told, &subscriptions, &welcoming, logged_at)
    });
    let members = announcement.as_ref().map(|a| a.members.clone());
    let mut effects = Effects::new();
    for farewell in changes.iter().filter_map(|(c, _)| c.farewell.as_ref()) {
        if let Some(meta) = &farewell.unwelcomed {
            let welcome = ServerMessage::subscribed(channel, meta.clone(), members.clone(), false);
            effects.send(&farewell.connection_id, &welcome);
        }
        effects.send_text(vec![farewell.connection_id.clone()], farewell.frame.clone());
    }
    let mark = announcement
        .as_ref()
        .and_then(|a| a.mark.clone())
        .unwrap_or_else(|| run_at.to_owned());
    if let Some(state) = log.as_mut().filter(|_| logging) {
        for event in announcement.iter().flat_map(|a| &a.logged) {
            let logged = super::resume::Logged {
                frame: Some(event.frame.clone()),
                members_before: Some(event.members_before.clone()),
                ..Default::default()
            };
            super::resume::log(cx, channel, state, &event.position, logged).await?;
        }
        // The mark the joiners' next resume can name, before anything after it.
        if resumable_joiner {
            let mark_entry = super::resume::Logged::default();
            super::resume::log(cx, channel, state, &mark, mark_entry).await?;
        }
    }
    for ((joiner, change), replay) in joiners.iter().zip(recovered) {
        let welcome = welcome(
            channel,
            joiner,
            change,
            replay.as_ref(),
            announcement.as_ref(),
            &mark,
        )?;
        effects.send(&joiner.connection_id, &welcome);
        match replay {
            Some(replay) => {
                // The storage updates it missed are among the frames: the
                // entries' values again would be frames twice.
                for frame in replay.frames {
                    effects.send_text(vec![joiner.connection_id.clone()], frame);
                }
            }
            None => effects.append(super::storage::catch_up(cx, joiner).await?),
        }
    }
    if let Some(announcement) = announcement {
        effects.append(announcement.effects);
    }
    Ok(effects)
}

/// A joiner's `hotsock.subscribed` (pure): the member list as of now, or,
/// resumed, as of where it left off; with `recover`, where it stands (`mark`,
/// or the position it named while frames follow) and, for a resume, whether
/// it recovered.
fn welcome(
    channel: &str,
    joiner: &SubscriptionItem,
    change: &MembershipChange,
    replay: Option<&super::resume::Replay>,
    announcement: Option<&super::presence::Announcement>,
    mark: &str,
) -> Result<ServerMessage, ProtocolError> {
    let listed = match (replay, announcement) {
        (Some(replay), Some(a)) => Some(match &replay.members_before {
            Some(text) => serde_json::from_str(text).map_err(|_| ProtocolError::internal())?,
            None => a.told.clone(),
        }),
        (_, a) => a.map(|a| a.members.clone()),
    };
    let welcome = ServerMessage::subscribed(
        channel,
        subscription_meta(joiner),
        listed,
        change.auto_subscribed,
    );
    let asked = match &change.resume {
        Some(Resume::After(since)) => Some(since),
        _ => None,
    };
    if !joiner.recoverable {
        // Asked, but the tokens do not grant `recover`.
        return Ok(match asked {
            Some(_) => welcome.with_resume(None, Some(false)),
            None => welcome,
        });
    }
    // Frames to follow: what it missed, or this run's member events, which it
    // hears as a member; each moves it on.
    let follow = replay.is_some_and(|r| !r.frames.is_empty())
        || announcement.is_some_and(|a| !a.logged.is_empty());
    let stands = match (asked, replay) {
        (Some(since), Some(_)) if follow => since.position.as_str(),
        _ => mark,
    };
    Ok(welcome.with_resume(Some(stands), asked.map(|_| replay.is_some())))
}

/// `uid`, `umd` and the alias of a subscription, as its frames carry them.
pub fn subscription_meta(item: &SubscriptionItem) -> Meta {
    let meta = Meta::new(item.uid.clone(), item.umd_value());
    match &item.alias {
        Some(alias) => meta.with_alias(alias.as_str()),
        None => meta,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::presence::{Announcement, LoggedEvent};
    use crate::ops::resume::Replay;
    use serde_json::{json, Value};
    use sockhop_core::protocol::{Member, Since};

    fn joiner(recoverable: bool) -> SubscriptionItem {
        SubscriptionItem {
            channel: "presence.room".into(),
            connection_id: "c2".into(),
            uid: Some("ada".into()),
            umd: None,
            permissions: "{}".into(),
            alias: None,
            subscribed_at_ms: 1,
            umd_at_ms: 1,
            pending: false,
            recoverable,
            counted: true,
            ttl: 100,
        }
    }

    fn resuming(position: &str) -> MembershipChange {
        MembershipChange {
            welcome: Some("c2".into()),
            resume: Some(Resume::After(Since::position(position))),
            ..MembershipChange::default()
        }
    }

    fn announced(events: usize) -> Announcement {
        Announcement {
            members: vec![Member::new("bob", None), Member::new("ada", None)],
            told: vec![Member::new("bob", None)],
            logged: (0..events)
                .map(|i| LoggedEvent {
                    position: format!("R.00000{}", i + 1),
                    frame: "{}".into(),
                    members_before: "[]".into(),
                })
                .collect(),
            ..Announcement::default()
        }
    }

    fn data(frame: ServerMessage) -> Value {
        serde_json::from_str::<Value>(&frame.to_json()).expect("json")["data"].clone()
    }

    fn uids(data: &Value) -> Vec<&str> {
        data["members"]
            .as_array()
            .expect("members")
            .iter()
            .map(|m| m["uid"].as_str().expect("uid"))
            .collect()
    }

    #[test]
    fn a_recovered_welcome_stands_where_it_named_while_frames_follow() {
        let (j, change) = (joiner(true), resuming("P"));
        let replay = |frames: &[&str], before: Option<&str>| Replay {
            frames: frames.iter().map(|f| f.to_string()).collect(),
            members_before: before.map(str::to_owned),
        };
        let missed = replay(&["f"], Some(r#"[{"uid":"ada"},{"uid":"cat"}]"#));
        let got = data(
            welcome(
                "presence.room",
                &j,
                &change,
                Some(&missed),
                Some(&announced(0)),
                "M",
            )
            .expect("welcome"),
        );
        assert_eq!(
            (got["position"].clone(), got["recovered"].clone()),
            (json!("P"), json!(true))
        );
        assert_eq!(
            uids(&got),
            ["ada", "cat"],
            "the list as of where it left off"
        );
        let quiet = replay(&[], None);
        let got = data(
            welcome(
                "presence.room",
                &j,
                &change,
                Some(&quiet),
                Some(&announced(0)),
                "M",
            )
            .expect("welcome"),
        );
        assert_eq!(got["position"], "M", "nothing follows: at its mark");
        assert_eq!(uids(&got), ["bob"], "nothing changed: the list told last");
        let got = data(
            welcome(
                "presence.room",
                &j,
                &change,
                Some(&quiet),
                Some(&announced(1)),
                "M",
            )
            .expect("welcome"),
        );
        assert_eq!(got["position"], "P", "its run's member events follow");
    }

    #[test]
    fn a_welcome_not_recovered_or_not_granted_says_so() {
        let change = resuming("P");
        let got = data(
            welcome(
                "presence.room",
                &joiner(true),
                &change,
                None,
                Some(&announced(1)),
                "M",
            )
            .expect("welcome"),
        );
        assert_eq!(
            (got["position"].clone(), got["recovered"].clone()),
            (json!("M"), json!(false))
        );
        assert_eq!(uids(&got), ["bob", "ada"], "the list now");
        let got = data(welcome("feed", &joiner(false), &change, None, None, "M").expect("welcome"));
        assert_eq!(got, json!({"recovered": false}), "asked without a grant");
        let plain = MembershipChange::default();
        let got = data(welcome("feed", &joiner(true), &plain, None, None, "M").expect("welcome"));
        assert_eq!(
            got,
            json!({"position": "M"}),
            "a start: its mark, nothing recovered"
        );
    }
}
