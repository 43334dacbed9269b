//! Presence channels (`presence.*`): the member list on subscribe, and
//! `hotsock.memberAdded` / `hotsock.memberRemoved` as users come and go.

use super::deliver::{fan_out, recipients};
use super::internal;
use crate::app::App;
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
pub async fn current(app: &App, channel: &str) -> Result<Vec<SubscriptionItem>, ProtocolError> {
    app.store
        .channel_subscriptions(channel, app.now())
        .await
        .map_err(internal)
}

/// After a join was written: tells the other members, returns the list for the
/// joiner's `hotsock.subscribed`.
///
/// Whether the join is news is decided on `before` (read before the write), so two
/// connections of one user joining at once both announce rather than neither. The
/// list and its recipients come from a read after the write, so two users joining
/// at once each appear in the later one's list.
pub async fn joined(
    app: &App,
    before: &[SubscriptionItem],
    joiner: &SubscriptionItem,
) -> Vec<Member> {
    let after = match current(app, &joiner.channel).await {
        Ok(after) => after,
        Err(e) => {
            tracing::error!(code = e.code.as_str(), "presence read failed");
            before.to_vec()
        }
    };
    let others = |items: &[SubscriptionItem]| -> Vec<SubscriptionItem> {
        items
            .iter()
            .filter(|s| s.connection_id != joiner.connection_id)
            .cloned()
            .collect()
    };
    let others_after = others(&after);
    let mut all = others_after.clone();
    all.push(joiner.clone());
    let list = members(&all);
    if announces_join(&others(before), joiner) {
        let member = Member::new(joiner.uid.clone().unwrap_or_default(), joiner.umd_value());
        fan_out(app, recipients(&others_after, None, false), |name| {
            ServerMessage::member_added(name, member.clone(), list.clone())
        })
        .await;
    }
    list
}

/// After a subscription was removed: `hotsock.memberRemoved` to those left
/// when it was the uid's last one.
pub async fn left(app: &App, leaver: &SubscriptionItem) {
    if !names::is_presence_channel(&leaver.channel) {
        return;
    }
    let remaining = match current(app, &leaver.channel).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(code = e.code.as_str(), "presence read failed");
            return;
        }
    };
    if !announces_leave(&remaining, leaver) {
        return;
    }
    let member = Member::new(leaver.uid.clone().unwrap_or_default(), leaver.umd_value());
    let list = members(&remaining);
    fan_out(app, recipients(&remaining, None, false), |name| {
        ServerMessage::member_removed(name, member.clone(), list.clone())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sub(connection: &str, uid: Option<&str>, umd: Option<&str>, at: i64) -> SubscriptionItem {
        SubscriptionItem {
            pk: "CHAN#presence.room".into(),
            sk: format!("SUB#{connection}"),
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
}
