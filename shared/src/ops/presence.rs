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

use super::deliver::recipients;
use super::{internal, Ctx};
use crate::effects::Effects;
use crate::store::SubscriptionItem;
use sockhop_core::error::{ErrorCode, ProtocolError};
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

/// What the members hear at this point of the channel's order (pure): each
/// change as its event with the current list, to every welcomed member's
/// connection. Connections welcomed right here (`joiners`) have the list in
/// their `hotsock.subscribed`: of the changes each hears only a
/// `memberUpdated` of its own uid (its join may have made it: it is the updater).
pub fn plan_announcement(
    channel: &str,
    told: &Told,
    subscriptions: &[SubscriptionItem],
    joiners: &[SubscriptionItem],
) -> (Vec<Member>, Effects) {
    let (told, kept_until) = (&told.members[..], told.ttl);
    let now = members(subscriptions);
    let welcomed: Vec<&str> = subscriptions
        .iter()
        .filter(|s| !s.pending)
        .map(|s| s.connection_id.as_str())
        .collect();
    // Every welcomed connection but the joiners; with `own`, the joiners of
    // that uid hear it too (their join made the change).
    let to_all_but_joiners = |own: Option<&str>| {
        recipients(
            welcomed.iter().copied().filter(|id| {
                !joiners
                    .iter()
                    .any(|j| j.connection_id == *id && (own.is_none() || j.uid.as_deref() != own))
            }),
            None,
            false,
        )
    };
    let mut effects = Effects::new();
    for change in changes(told, &now) {
        let list = now.clone();
        // The backend hears each change once, deduplicated by uid like the frames.
        let (kind, member) = match &change {
            MemberChange::Removed(m) => ("hotsock.memberRemoved", m),
            MemberChange::Added(m) => ("hotsock.memberAdded", m),
            MemberChange::Updated(m) => ("hotsock.memberUpdated", m),
        };
        effects.emit(crate::pubsub::member(kind, channel, member, &list));
        match change {
            MemberChange::Removed(m) => effects.send_to(
                to_all_but_joiners(None),
                &ServerMessage::member_removed(channel, m, list),
            ),
            MemberChange::Added(m) => effects.send_to(
                to_all_but_joiners(None),
                &ServerMessage::member_added(channel, m, list),
            ),
            MemberChange::Updated(m) => {
                let to = to_all_but_joiners(Some(m.uid.as_str()));
                effects.send_to(to, &ServerMessage::member_updated(channel, m, list));
            }
        }
    }
    // Kept as long as the longest-lived subscription: rewritten when the list
    // changed or a newer subscription (a reload) outlives it.
    let ttl = subscriptions.iter().map(|s| s.ttl).max().unwrap_or(0);
    if now.as_slice() != told || (!now.is_empty() && ttl > kept_until) {
        let kept = (!now.is_empty()).then(|| serde_json::to_string(&now).unwrap_or_default());
        effects.remember_members(channel, kept, ttl);
    }
    (now, effects)
}

/// Reads the channel and plans what its members hear now (see
/// [`plan_announcement`]); the current list comes back for the joiners.
pub async fn announce(
    cx: Ctx<'_>,
    channel: &str,
    joiners: &[SubscriptionItem],
) -> Result<(Vec<Member>, Effects), ProtocolError> {
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
    Ok(plan_announcement(channel, &told, &subscriptions, joiners))
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
        let (list, effects) = plan_announcement(
            "presence.room",
            &told(&[m("jim", Value::Null)]),
            &[jim, pam.clone()],
            std::slice::from_ref(&pam),
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
    fn a_second_connection_with_the_same_umd_is_no_news_and_another_umd_an_update() {
        let first = sub("c1", Some("jim"), Some("1"), 1);
        let pam = sub("c3", Some("pam"), None, 3);
        let told = told(&[m("jim", json!(1)), m("pam", Value::Null)]);
        let same = sub("c2", Some("jim"), Some("1"), 4);
        let (_, effects) = plan_announcement(
            "presence.room",
            &told,
            &[first.clone(), pam.clone(), same.clone()],
            std::slice::from_ref(&same),
        );
        assert!(effects.is_empty(), "{effects:?}");
        let other = sub("c2", Some("jim"), Some("2"), 4);
        let (list, effects) = plan_announcement(
            "presence.room",
            &told,
            &[first, pam, other.clone()],
            std::slice::from_ref(&other),
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
        let (_, effects) = plan_announcement(
            "presence.room",
            &told(&both),
            std::slice::from_ref(&pam),
            &[],
        );
        let got = frames(&effects, "c2");
        assert_eq!(got[0]["event"], "hotsock.memberRemoved");
        assert_eq!(got[0]["data"]["member"]["uid"], "jim");
        assert_eq!(
            got[0]["data"]["members"],
            json!([{"uid": "pam", "umd": null}])
        );
        let (_, effects) = plan_announcement("presence.room", &told(&both[1..]), &[], &[]);
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
        let (list, effects) = plan_announcement(
            "presence.room",
            &told(&[m("kev", Value::Null)]),
            &[kev, jim.clone(), pam.clone()],
            &[jim, pam],
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
        let (_, effects) =
            plan_announcement("presence.room", &kept, std::slice::from_ref(&reloaded), &[]);
        assert_eq!(
            effects.iter().collect::<Vec<_>>(),
            vec![&crate::effects::Effect::RememberMembers {
                channel: "presence.room".into(),
                members: Some(r#"[{"uid":"jim","umd":null}]"#.into()),
                ttl: reloaded.ttl
            }],
            "nothing told, but the list outlives the new subscription"
        );
        let (_, effects) = plan_announcement("presence.room", &told(&kept.members), &[old], &[]);
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
