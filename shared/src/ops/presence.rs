//! Presence channels (`presence.*`): the member list on subscribe, and
//! `hotsock.memberAdded` / `hotsock.memberRemoved` as users come and go.

use super::deliver::recipients;
use super::{internal, Ctx};
use crate::effects::Effects;
use crate::error::{ErrorCode, ProtocolError};
use crate::names;
use crate::protocol::{Member, ServerMessage};
use crate::store::SubscriptionItem;

/// The member list (pure): one entry per uid, in order of first subscription,
/// with that subscription's umd.
pub fn members(subscriptions: &[SubscriptionItem]) -> Vec<Member> {
    let mut ordered: Vec<&SubscriptionItem> =
        subscriptions.iter().filter(|s| s.uid.is_some()).collect();
    ordered.sort_by_key(|s| s.subscribed_at_ms);
    let mut seen = std::collections::BTreeSet::new();
    ordered
        .into_iter()
        .filter_map(|s| {
            let uid = s.uid.clone()?;
            seen.insert(uid.clone())
                .then(|| Member::new(uid, s.umd_value()))
        })
        .collect()
}

/// Refuses a join that would push the member list past its size limit (pure).
pub fn check_capacity(
    existing: &[SubscriptionItem],
    joiner: &SubscriptionItem,
    client_channel: &str,
) -> Result<(), ProtocolError> {
    let mut all: Vec<SubscriptionItem> = existing.to_vec();
    all.push(joiner.clone());
    let size = serde_json::to_vec(&members(&all)).map_or(usize::MAX, |v| v.len());
    if size > names::MAX_PRESENCE_MEMBERS_BYTES {
        return Err(ProtocolError::new(
            ErrorCode::PresenceChannelCapacityReached,
            "the presence channel's member list is full",
        )
        .with_channel(client_channel));
    }
    Ok(())
}

/// Whether a join is news to the others (pure): not when the uid is already a
/// member with the same umd.
pub fn announces_join(existing: &[SubscriptionItem], joiner: &SubscriptionItem) -> bool {
    !existing
        .iter()
        .any(|s| s.uid == joiner.uid && s.umd_value() == joiner.umd_value())
}

/// Whether a leave ends the uid's membership (pure): its last subscription went.
pub fn announces_leave(remaining: &[SubscriptionItem], leaver: &SubscriptionItem) -> bool {
    leaver.uid.is_some() && !remaining.iter().any(|s| s.uid == leaver.uid)
}

/// Subscriptions already on a presence channel, read before a join.
pub async fn current(cx: Ctx<'_>, channel: &str) -> Result<Vec<SubscriptionItem>, ProtocolError> {
    cx.app
        .store
        .channel_subscriptions(channel, cx.secs())
        .await
        .map_err(internal)
}

/// The member list for a joiner and whom to tell (pure): the list is the
/// others as read after the join plus the joiner; the others hear of it
/// unless the join is no news (decided on `before`, read before the write, so
/// two connections of one user joining at once both announce rather than
/// neither).
pub fn plan_join(
    before: &[SubscriptionItem],
    after: &[SubscriptionItem],
    joiner: &SubscriptionItem,
) -> (Vec<Member>, Effects) {
    let others = |items: &[SubscriptionItem]| -> Vec<SubscriptionItem> {
        items
            .iter()
            .filter(|s| s.connection_id != joiner.connection_id)
            .cloned()
            .collect()
    };
    let others_after = others(after);
    let mut all = others_after.clone();
    all.push(joiner.clone());
    let list = members(&all);
    let mut effects = Effects::new();
    if announces_join(&others(before), joiner) {
        let member = Member::new(joiner.uid.clone().unwrap_or_default(), joiner.umd_value());
        effects.send_to(
            recipients(ids(&others_after), None, false),
            &ServerMessage::member_added(&joiner.channel, member, list.clone()),
        );
    }
    (list, effects)
}

/// After a join was written: the list for the joiner's `hotsock.subscribed`
/// and the frames telling the others. The list and its recipients come from a
/// strongly consistent read after the write, so two users joining at once
/// each appear in the later one's list.
pub async fn joined(
    cx: Ctx<'_>,
    before: &[SubscriptionItem],
    joiner: &SubscriptionItem,
) -> (Vec<Member>, Effects) {
    let after = match current(cx, &joiner.channel).await {
        Ok(after) => after,
        Err(e) => {
            tracing::error!(code = e.code.as_str(), "presence read failed");
            before.to_vec()
        }
    };
    plan_join(before, &after, joiner)
}

fn ids(subscriptions: &[SubscriptionItem]) -> impl Iterator<Item = &str> {
    subscriptions.iter().map(|s| s.connection_id.as_str())
}

/// The frames to send when a subscription was removed (pure):
/// `hotsock.memberRemoved` to those left when it was the uid's last one.
pub fn plan_leave(remaining: &[SubscriptionItem], leaver: &SubscriptionItem) -> Effects {
    let mut effects = Effects::new();
    if names::is_presence_channel(&leaver.channel) && announces_leave(remaining, leaver) {
        let member = Member::new(leaver.uid.clone().unwrap_or_default(), leaver.umd_value());
        let list = members(remaining);
        effects.send_to(
            recipients(ids(remaining), None, false),
            &ServerMessage::member_removed(&leaver.channel, member, list),
        );
    }
    effects
}

/// After a subscription was removed: what the remaining members must hear.
pub async fn left(cx: Ctx<'_>, leaver: &SubscriptionItem) -> Effects {
    if !names::is_presence_channel(&leaver.channel) {
        return Effects::new();
    }
    match current(cx, &leaver.channel).await {
        Ok(remaining) => plan_leave(&remaining, leaver),
        Err(e) => {
            tracing::error!(code = e.code.as_str(), "presence read failed");
            Effects::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sub(connection: &str, uid: Option<&str>, umd: Option<&str>, at: i64) -> SubscriptionItem {
        SubscriptionItem {
            channel: "presence.room".into(),
            connection_id: connection.into(),
            uid: uid.map(str::to_owned),
            umd: umd.map(str::to_owned),
            permissions: "{}".into(),
            alias: None,
            subscribed_at_ms: at,
            counted: true,
            ttl: 0,
        }
    }

    #[test]
    fn members_are_deduplicated_by_uid_in_join_order() {
        let subs = [
            sub("c3", Some("pam"), None, 3),
            sub("c1", Some("jim"), Some(r#"{"n":1}"#), 1),
            sub("c2", Some("jim"), Some(r#"{"n":2}"#), 2),
            sub("c4", None, None, 0),
        ];
        let list = members(&subs);
        assert_eq!(
            serde_json::to_value(&list).expect("json"),
            json!([{"uid": "jim", "umd": {"n": 1}}, {"uid": "pam", "umd": null}])
        );
    }

    #[test]
    fn joins_are_announced_unless_same_uid_and_umd() {
        let existing = [sub("c1", Some("jim"), Some("1"), 1)];
        assert!(!announces_join(
            &existing,
            &sub("c2", Some("jim"), Some("1"), 2)
        ));
        assert!(announces_join(
            &existing,
            &sub("c2", Some("jim"), Some("2"), 2)
        ));
        assert!(announces_join(&existing, &sub("c2", Some("pam"), None, 2)));
        assert!(announces_join(&[], &sub("c2", Some("pam"), None, 2)));
    }

    #[test]
    fn leaves_are_announced_when_the_last_subscription_of_a_uid_goes() {
        let leaver = sub("c1", Some("jim"), None, 1);
        assert!(announces_leave(&[sub("c2", Some("pam"), None, 2)], &leaver));
        assert!(!announces_leave(
            &[sub("c3", Some("jim"), None, 3)],
            &leaver
        ));
        assert!(!announces_leave(&[], &sub("c9", None, None, 0)));
    }

    #[test]
    fn capacity_counts_the_member_list_json() {
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
            .map(|i| sub(&format!("c{i}"), Some(&format!("user-{i}")), Some(&big), i))
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

    #[test]
    fn a_join_tells_the_others_with_the_list_read_after_it() {
        let jim = sub("c1", Some("jim"), None, 1);
        let pam = sub("c2", Some("pam"), None, 2);
        let joiner = sub("c3", Some("dwight"), None, 3);
        // Pam joined between the read before and the write.
        let (list, effects) = plan_join(
            std::slice::from_ref(&jim),
            &[jim.clone(), pam, joiner.clone()],
            &joiner,
        );
        let uids: Vec<&str> = list.iter().map(|m| m.uid.as_str()).collect();
        assert_eq!(uids, ["jim", "pam", "dwight"]);
        assert_eq!(effects.frames_to("c1").len(), 1);
        assert_eq!(effects.frames_to("c2").len(), 1);
        assert!(
            effects.frames_to("c3").is_empty(),
            "the joiner gets subscribed instead"
        );
        let frame: serde_json::Value =
            serde_json::from_str(effects.frames_to("c2")[0]).expect("json");
        assert_eq!(frame["event"], "hotsock.memberAdded");
        assert_eq!(frame["data"]["member"]["uid"], "dwight");
        assert_eq!(frame["data"]["members"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn a_second_connection_of_a_member_is_no_news() {
        let first = sub("c1", Some("jim"), Some("1"), 1);
        let second = sub("c2", Some("jim"), Some("1"), 2);
        let (list, effects) = plan_join(
            std::slice::from_ref(&first),
            &[first.clone(), second.clone()],
            &second,
        );
        assert_eq!(list.len(), 1);
        assert!(effects.is_empty());
    }

    #[test]
    fn a_leave_is_told_only_when_the_uid_is_gone() {
        let leaver = sub("c1", Some("jim"), None, 1);
        let pam = sub("c2", Some("pam"), None, 2);
        let effects = plan_leave(std::slice::from_ref(&pam), &leaver);
        let frame: serde_json::Value =
            serde_json::from_str(effects.frames_to("c2")[0]).expect("json");
        assert_eq!(frame["event"], "hotsock.memberRemoved");
        assert_eq!(
            frame["data"]["members"],
            json!([{"uid": "pam", "umd": null}])
        );
        let still_there = sub("c3", Some("jim"), None, 3);
        assert!(plan_leave(&[pam.clone(), still_there], &leaver).is_empty());
        let mut standard = leaver.clone();
        standard.channel = "room".into();
        assert!(plan_leave(&[pam], &standard).is_empty());
    }
}
