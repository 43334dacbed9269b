//! Presence channels (`presence.*`): who the members are, and what they are
//! told when that changes.
//!
//! Every member event is decided by the deliver step, in the channel's order:
//! a join, a leave and a umd update each queue a membership change
//! ([`super::membership::queue_change`]); applying one reads the channel's subscriptions and
//! tells the members how the list differs from the one they were last told
//! (kept in the table). So changes that raced are told once each, every
//! member hears them in one order, and the last list anyone receives is the
//! channel's true one.

use super::{internal, Ctx};
use crate::effects::Effects;
use crate::store::SubscriptionItem;
use sockhop_core::error::{ErrorCode, ProtocolError};
use sockhop_core::ids::step_position;
use sockhop_core::names;
use sockhop_core::protocol::{Member, ServerMessage};

/// When a subscription's umd became what it is.
fn umd_since(s: &SubscriptionItem) -> i64 {
    s.umd_at_ms.max(s.subscribed_at_ms)
}

/// One entry per uid, in order of first subscription, each with the umd its
/// user set last (pure).
fn member_list<'a>(subscriptions: impl Iterator<Item = &'a SubscriptionItem>) -> Vec<Member> {
    let mut ordered: Vec<&SubscriptionItem> = subscriptions.filter(|s| s.uid.is_some()).collect();
    ordered.sort_by_key(|s| s.subscribed_at_ms);
    let mut list: Vec<(Member, i64)> = Vec::new();
    for s in ordered {
        let uid = s.uid.clone().unwrap_or_default();
        match list.iter_mut().find(|(m, _)| m.uid == uid) {
            Some((member, since)) if umd_since(s) > *since => {
                member.umd = s.umd_value().unwrap_or_default();
                *since = umd_since(s);
            }
            Some(_) => {}
            None => list.push((Member::new(uid, s.umd_value()), umd_since(s))),
        }
    }
    list.into_iter().map(|(m, _)| m).collect()
}

/// The member list (pure): the welcomed subscriptions (see
/// [`SubscriptionItem::pending`]), one entry per uid with its latest umd.
pub fn members(subscriptions: &[SubscriptionItem]) -> Vec<Member> {
    member_list(subscriptions.iter().filter(|s| !s.pending))
}

/// Refuses a join that would push the member list past its size limit
/// (pure); joins not yet welcomed count, they are on their way in.
pub fn check_capacity(
    existing: &[SubscriptionItem],
    joiner: &SubscriptionItem,
    client_channel: &str,
) -> Result<(), ProtocolError> {
    let list = member_list(existing.iter().chain(Some(joiner)));
    let size = serde_json::to_vec(&list).map_or(usize::MAX, |v| v.len());
    if size > names::MAX_PRESENCE_MEMBERS_BYTES {
        return Err(ProtocolError::new(
            ErrorCode::PresenceChannelCapacityReached,
            "the presence channel's member list is full",
        )
        .with_channel(client_channel));
    }
    Ok(())
}

/// One thing the members are told.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberChange {
    Added(Member),
    Updated(Member),
    Removed(Member),
}

/// How `now` differs from the list the members were last `told` (pure):
/// leaves first, then joins and umd changes in list order.
pub fn changes(told: &[Member], now: &[Member]) -> Vec<MemberChange> {
    let find = |list: &[Member], uid: &str| list.iter().find(|m| m.uid == uid).cloned();
    let mut changes: Vec<MemberChange> = told
        .iter()
        .filter(|m| find(now, &m.uid).is_none())
        .map(|m| MemberChange::Removed(m.clone()))
        .collect();
    for member in now {
        match find(told, &member.uid) {
            None => changes.push(MemberChange::Added(member.clone())),
            Some(before) if before.umd != member.umd => {
                changes.push(MemberChange::Updated(member.clone()))
            }
            Some(_) => {}
        }
    }
    changes
}

/// The member list last told on a channel, and until when it is kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Told {
    pub members: Vec<Member>,
    pub ttl: i64,
}

/// What a run of membership changes tells the members (see [`plan_announcement`]).
#[derive(Debug, Default)]
pub struct Announcement {
    /// The member list now, for the joiners' `hotsock.subscribed`.
    pub members: Vec<Member>,
    /// The list the members were told last, before this run.
    pub told: Vec<Member>,
    pub effects: Effects,
    /// On a channel logged for resumes, each member event as a resumable
    /// subscription gets it (with its position), to log in this order.
    pub logged: Vec<LoggedEvent>,
    /// On such a channel, the position after them: where the run's joiners
    /// start (their `hotsock.subscribed` names it).
    pub mark: Option<String>,
}

/// A member event for the recovery log (docs/adr/0006).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    pub position: String,
    pub frame: String,
    /// The list (JSON) its recipients had before it.
    pub members_before: String,
}

/// What the members hear at this point of the channel's order (pure): each
/// change as its event with the current list, to every welcomed member's
/// connection. Connections welcomed right here (`joiners`) have the list in
/// their `hotsock.subscribed`: of the changes each hears only a
/// `memberUpdated` of its own uid (its join may have made it: it is the updater).
/// With `logged_at` (the run's position, when the channel is logged for
/// resumes) the k-th event is at step k after it and resumable
/// subscriptions get it with that `position` (a joiner, with the mark's).
pub fn plan_announcement(
    channel: &str,
    told: &Told,
    subscriptions: &[SubscriptionItem],
    joiners: &[SubscriptionItem],
    logged_at: Option<&str>,
) -> Announcement {
    let (told, kept_until) = (&told.members[..], told.ttl);
    let now = members(subscriptions);
    let changes = changes(told, &now);
    let mark = logged_at.map(|at| match changes.len() {
        0 => at.to_owned(),
        n => step_position(at, n + 1),
    });
    let welcomed: Vec<&SubscriptionItem> = subscriptions.iter().filter(|s| !s.pending).collect();
    let is_joiner = |id: &str| joiners.iter().any(|j| j.connection_id == id);
    // Every welcomed connection but the joiners; with `own`, the joiners of
    // that uid hear it too (their join made the change).
    let to_all_but_joiners = |own: Option<&str>| -> Vec<&SubscriptionItem> {
        welcomed
            .iter()
            .copied()
            .filter(|s| {
                !joiners.iter().any(|j| {
                    j.connection_id == s.connection_id && (own.is_none() || j.uid.as_deref() != own)
                })
            })
            .collect()
    };
    let as_json = |list: &[Member]| serde_json::to_string(list).unwrap_or_default();
    let ids = |subs: &[&SubscriptionItem]| -> Vec<String> {
        subs.iter().map(|s| s.connection_id.clone()).collect()
    };
    let mut announcement = Announcement {
        told: told.to_vec(),
        mark: mark.clone(),
        ..Default::default()
    };
    let effects = &mut announcement.effects;
    for (step, change) in changes.into_iter().enumerate() {
        let list = now.clone();
        // The backend hears each change once, deduplicated by uid like the frames.
        let (kind, member) = match &change {
            MemberChange::Removed(m) => ("hotsock.memberRemoved", m),
            MemberChange::Added(m) => ("hotsock.memberAdded", m),
            MemberChange::Updated(m) => ("hotsock.memberUpdated", m),
        };
        effects.emit(crate::pubsub::member(kind, channel, member, &list));
        let (to, frame) = match change {
            MemberChange::Removed(m) => (
                to_all_but_joiners(None),
                ServerMessage::member_removed(channel, m, list),
            ),
            MemberChange::Added(m) => (
                to_all_but_joiners(None),
                ServerMessage::member_added(channel, m, list),
            ),
            MemberChange::Updated(m) => {
                let to = to_all_but_joiners(Some(m.uid.as_str()));
                (to, ServerMessage::member_updated(channel, m, list))
            }
        };
        let (Some(at), Some(mark)) = (logged_at, &mark) else {
            effects.send_to(ids(&to), &frame);
            continue;
        };
        let position = step_position(at, step + 1);
        let (resumable, plain): (Vec<_>, Vec<_>) = to.into_iter().partition(|s| s.recoverable);
        let (joining, members): (Vec<_>, Vec<_>) = resumable
            .into_iter()
            .partition(|s| is_joiner(&s.connection_id));
        let positioned = frame.clone().at_position(&position);
        // The first event's recipients had the list told before; a later
        // one's, this run's (every event carries it).
        let before = if step == 0 { told } else { &now[..] };
        announcement.logged.push(LoggedEvent {
            position,
            frame: positioned.to_json(),
            members_before: as_json(before),
        });
        effects.send_to(ids(&members), &positioned);
        effects.send_to(ids(&joining), &frame.clone().at_position(mark));
        effects.send_to(ids(&plain), &frame);
    }
    // Kept as long as the longest-lived subscription: rewritten when the list
    // changed or a newer subscription (a reload) outlives it.
    let ttl = subscriptions.iter().map(|s| s.ttl).max().unwrap_or(0);
    if now.as_slice() != told || (!now.is_empty() && ttl > kept_until) {
        let kept = (!now.is_empty()).then(|| as_json(&now));
        effects.remember_members(channel, kept, ttl);
    }
    announcement.members = now;
    announcement
}

/// Reads what [`plan_announcement`] decides from: the channel's
/// subscriptions and the list its members were told last.
pub async fn read(
    cx: Ctx<'_>,
    channel: &str,
) -> Result<(Vec<SubscriptionItem>, Told), ProtocolError> {
    let store = &cx.app.store;
    let subscriptions = store
        .channel_subscriptions(channel, cx.secs())
        .await
        .map_err(internal)?;
    // An unreadable list was written by nobody but us: read as "told nothing",
    // which tells everyone everything again.
    let told = store
        .announced_members(channel, cx.secs())
        .await
        .map_err(internal)?
        .and_then(|(text, ttl)| {
            Some(Told {
                members: serde_json::from_str(&text).ok()?,
                ttl,
            })
        })
        .unwrap_or_default();
    Ok((subscriptions, told))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn sub(connection: &str, uid: Option<&str>, umd: Option<&str>, at: i64) -> SubscriptionItem {
        SubscriptionItem {
            channel: "presence.room".into(),
            connection_id: connection.into(),
            uid: uid.map(str::to_owned),
            umd: umd.map(str::to_owned),
            permissions: "{}".into(),
            alias: None,
            subscribed_at_ms: at,
            umd_at_ms: at,
            pending: false,
            recoverable: false,
            counted: true,
            ttl: 100 + at,
        }
    }

    fn m(uid: &str, umd: Value) -> Member {
        Member::new(uid, Some(umd))
    }

    /// Told `members`, kept until 1000 (past every test subscription's ttl).
    fn told(members: &[Member]) -> Told {
        Told {
            members: members.to_vec(),
            ttl: 1000,
        }
    }

    fn frames(effects: &Effects, connection: &str) -> Vec<Value> {
        effects
            .frames_to(connection)
            .into_iter()
            .map(|f| serde_json::from_str(f).expect("json"))
            .collect()
    }

    #[test]
    fn members_are_one_per_uid_in_join_order_with_the_latest_umd() {
        let mut updated = sub("c1", Some("jim"), Some(r#"{"n":3}"#), 1);
        updated.umd_at_ms = 50;
        let subs = [
            sub("c3", Some("pam"), None, 3),
            updated,
            sub("c2", Some("jim"), Some(r#"{"n":2}"#), 2),
            sub("c4", None, None, 0),
        ];
        assert_eq!(
            serde_json::to_value(members(&subs)).expect("json"),
            json!([{"uid": "jim", "umd": {"n": 3}}, {"uid": "pam", "umd": null}])
        );
        // A later subscription with another umd is the newer umd.
        let rejoined = [
            sub("c1", Some("jim"), Some("1"), 1),
            sub("c2", Some("jim"), Some("2"), 2),
        ];
        assert_eq!(members(&rejoined), vec![m("jim", json!(2))]);
    }

    #[test]
    fn subscriptions_waiting_for_their_welcome_are_not_members_yet() {
        let mut waiting = sub("c2", Some("pam"), None, 2);
        waiting.pending = true;
        let subs = [sub("c1", Some("jim"), None, 1), waiting];
        assert_eq!(members(&subs), vec![m("jim", Value::Null)]);
    }

    #[test]
    fn changes_are_the_difference_from_what_was_told() {
        let told = [m("jim", json!(1)), m("pam", json!(1)), m("kev", json!(1))];
        let now = [m("jim", json!(1)), m("kev", json!(2)), m("ann", json!(1))];
        assert_eq!(
            changes(&told, &now),
            vec![
                MemberChange::Removed(m("pam", json!(1))),
                MemberChange::Updated(m("kev", json!(2))),
                MemberChange::Added(m("ann", json!(1))),
            ]
        );
        assert!(changes(&now, &now).is_empty());
    }

    #[test]
    fn a_join_is_told_to_the_others_and_the_list_remembered() {
        let jim = sub("c1", Some("jim"), None, 1);
        let pam = sub("c2", Some("pam"), None, 2);
        let Announcement {
            members: list,
            effects,
            ..
        } = plan_announcement(
            "presence.room",
            &told(&[m("jim", Value::Null)]),
            &[jim, pam.clone()],
            std::slice::from_ref(&pam),
            None,
        );
        assert_eq!(list.len(), 2);
        let to_jim = frames(&effects, "c1");
        assert_eq!(to_jim.len(), 1);
        assert_eq!(to_jim[0]["event"], "hotsock.memberAdded");
        assert_eq!(to_jim[0]["data"]["member"]["uid"], "pam");
        assert_eq!(
            to_jim[0]["data"]["members"].as_array().map(Vec::len),
            Some(2)
        );
        assert!(
            frames(&effects, "c2").is_empty(),
            "the joiner is welcomed instead"
        );
        assert!(effects.iter().any(|e| matches!(e,
            crate::effects::Effect::RememberMembers { members: Some(list), ttl: 102, .. }
                if list.contains("pam"))));
    }

    #[test]
    fn on_a_logged_channel_resumable_members_get_each_event_with_its_position() {
        let mut jim = sub("c1", Some("jim"), None, 1);
        jim.recoverable = true;
        let kev = sub("c3", Some("kev"), None, 3);
        // Pam joins, resumable, with a second connection of Jim's that
        // changes his umd: she hears only that update, at her mark.
        let mut pam = sub("c2", Some("pam"), None, 4);
        pam.recoverable = true;
        let jim_again = sub("c4", Some("jim"), Some("7"), 5);
        let joiners = [pam.clone(), jim_again.clone()];
        let was = [m("jim", Value::Null), m("kev", Value::Null)];
        let run = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
        let announcement = plan_announcement(
            "presence.room",
            &told(&was),
            &[jim, pam, kev, jim_again],
            &joiners,
            Some(run),
        );
        let step = |n| step_position(run, n);
        assert_eq!(announcement.mark.as_deref(), Some(step(3).as_str()));
        let positions: Vec<&str> = announcement
            .logged
            .iter()
            .map(|e| e.position.as_str())
            .collect();
        assert_eq!(positions, [step(1), step(2)]);
        let now = serde_json::to_string(&announcement.members).expect("json");
        assert_eq!(
            announcement.logged[0].members_before,
            serde_json::to_string(&was).expect("json"),
            "the first event's recipients had the list told before"
        );
        assert_eq!(announcement.logged[1].members_before, now);
        let effects = &announcement.effects;
        let to_jim = frames(effects, "c1");
        assert_eq!(to_jim.len(), 2);
        assert_eq!(to_jim[0]["position"], step(1));
        assert_eq!(to_jim[1]["position"], step(2));
        let to_kev = frames(effects, "c3");
        assert_eq!(to_kev.len(), 2);
        assert!(
            to_kev.iter().all(|f| f.get("position").is_none()),
            "not resumable: Hotsock's frames"
        );
        let to_pam = frames(effects, "c2");
        assert_eq!(
            to_pam.len(),
            0,
            "an update of another uid: welcomed with the list"
        );
        let to_jim_again = frames(effects, "c4");
        assert_eq!(to_jim_again.len(), 1);
        assert_eq!(to_jim_again[0]["event"], "hotsock.memberUpdated");
        assert!(to_jim_again[0].get("position").is_none());
        // A logged frame is what a resumable member got.
        let logged: Value = serde_json::from_str(&announcement.logged[0].frame).expect("json");
        assert_eq!(logged, to_jim[0]);
        // Unlogged, nobody's frame has a position and there is no mark.
        let plain = plan_announcement(
            "presence.room",
            &told(&was),
            &[sub("c1", Some("jim"), None, 1)],
            &[],
            None,
        );
        assert!(plain.mark.is_none() && plain.logged.is_empty());
    }

    #[test]
    fn a_resumable_joiner_hears_its_own_update_at_its_mark() {
        let jim = sub("c1", Some("jim"), Some("1"), 1);
        let mut again = sub("c2", Some("jim"), Some("2"), 2);
        again.recoverable = true;
        let run = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
        let announcement = plan_announcement(
            "presence.room",
            &told(&[m("jim", json!(1))]),
            &[jim, again.clone()],
            std::slice::from_ref(&again),
            Some(run),
        );
        let got = frames(&announcement.effects, "c2");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["event"], "hotsock.memberUpdated");
        assert_eq!(
            got[0]["position"],
            step_position(run, 2),
            "its welcome's mark"
        );
    }

    #[test]
    fn a_second_connection_with_the_same_umd_is_no_news_and_another_umd_an_update() {
        let first = sub("c1", Some("jim"), Some("1"), 1);
        let pam = sub("c3", Some("pam"), None, 3);
        let told = told(&[m("jim", json!(1)), m("pam", Value::Null)]);
        let same = sub("c2", Some("jim"), Some("1"), 4);
        let Announcement { effects, .. } = plan_announcement(
            "presence.room",
            &told,
            &[first.clone(), pam.clone(), same.clone()],
            std::slice::from_ref(&same),
            None,
        );
        assert!(effects.is_empty(), "{effects:?}");
        let other = sub("c2", Some("jim"), Some("2"), 4);
        let Announcement {
            members: list,
            effects,
            ..
        } = plan_announcement(
            "presence.room",
            &told,
            &[first, pam, other.clone()],
            std::slice::from_ref(&other),
            None,
        );
        assert_eq!(list[0], m("jim", json!(2)));
        for connection in ["c1", "c2", "c3"] {
            let got = frames(&effects, connection);
            assert_eq!(got.len(), 1, "{connection}");
            assert_eq!(got[0]["event"], "hotsock.memberUpdated");
            assert_eq!(got[0]["data"]["member"], json!({"uid": "jim", "umd": 2}));
        }
    }

    #[test]
    fn a_leave_is_told_when_the_uid_is_gone_and_the_last_one_forgets_the_list() {
        let pam = sub("c2", Some("pam"), None, 2);
        let both = [m("jim", Value::Null), m("pam", Value::Null)];
        let Announcement { effects, .. } = plan_announcement(
            "presence.room",
            &told(&both),
            std::slice::from_ref(&pam),
            &[],
            None,
        );
        let got = frames(&effects, "c2");
        assert_eq!(got[0]["event"], "hotsock.memberRemoved");
        assert_eq!(got[0]["data"]["member"]["uid"], "jim");
        assert_eq!(
            got[0]["data"]["members"],
            json!([{"uid": "pam", "umd": null}])
        );
        let Announcement { effects, .. } =
            plan_announcement("presence.room", &told(&both[1..]), &[], &[], None);
        let told_backend: Vec<&str> = effects.events().iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(told_backend, ["hotsock.memberRemoved"]);
        assert_eq!(
            effects
                .iter()
                .filter(|e| !matches!(e, crate::effects::Effect::Emit(_)))
                .collect::<Vec<_>>(),
            vec![&crate::effects::Effect::RememberMembers {
                channel: "presence.room".into(),
                members: None,
                ttl: 0
            }]
        );
    }

    #[test]
    fn joins_applied_together_are_told_to_the_others_once_each() {
        let kev = sub("c0", Some("kev"), None, 0);
        let jim = sub("c1", Some("jim"), None, 1);
        let pam = sub("c2", Some("pam"), None, 2);
        let Announcement {
            members: list,
            effects,
            ..
        } = plan_announcement(
            "presence.room",
            &told(&[m("kev", Value::Null)]),
            &[kev, jim.clone(), pam.clone()],
            &[jim, pam],
            None,
        );
        assert_eq!(list.len(), 3);
        let to_kev = frames(&effects, "c0");
        let added: Vec<&Value> = to_kev.iter().map(|f| &f["data"]["member"]["uid"]).collect();
        assert_eq!(added, [&json!("jim"), &json!("pam")]);
        assert!(frames(&effects, "c1").is_empty() && frames(&effects, "c2").is_empty());
    }

    #[test]
    fn the_told_list_is_kept_as_long_as_the_longest_lived_subscription() {
        // A reload: same members, a newer subscription living longer than the list.
        let old = sub("c1", Some("jim"), None, 1);
        let reloaded = sub("c9", Some("jim"), None, 500);
        let kept = Told {
            members: vec![m("jim", Value::Null)],
            ttl: old.ttl,
        };
        let Announcement { effects, .. } = plan_announcement(
            "presence.room",
            &kept,
            std::slice::from_ref(&reloaded),
            &[],
            None,
        );
        assert_eq!(
            effects.iter().collect::<Vec<_>>(),
            vec![&crate::effects::Effect::RememberMembers {
                channel: "presence.room".into(),
                members: Some(r#"[{"uid":"jim","umd":null}]"#.into()),
                ttl: reloaded.ttl
            }],
            "nothing told, but the list outlives the new subscription"
        );
        let Announcement { effects, .. } =
            plan_announcement("presence.room", &told(&kept.members), &[old], &[], None);
        assert!(effects.is_empty());
    }

    #[test]
    fn capacity_counts_the_member_list_json_including_joins_on_their_way() {
        let big = format!("\"{}\"", "x".repeat(1000));
        let existing: Vec<SubscriptionItem> = (0..97)
            .map(|i| sub(&format!("c{i}"), Some(&format!("user-{i}")), Some(&big), i))
            .collect();
        assert!(check_capacity(
            &existing,
            &sub("new", Some("new"), None, 99),
            "presence.room"
        )
        .is_ok());
        let full: Vec<SubscriptionItem> = (0..100)
            .map(|i| {
                let mut s = sub(&format!("c{i}"), Some(&format!("user-{i}")), Some(&big), i);
                s.pending = i % 2 == 0;
                s
            })
            .collect();
        let err = check_capacity(
            &full,
            &sub("new", Some("new"), Some(&big), 200),
            "presence.room",
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::PresenceChannelCapacityReached);
        assert_eq!(err.channel.as_deref(), Some("presence.room"));
    }
}
