//! The member list a presence channel's members were last told
//! (`CHAN#<channel>` / `MEMBERS`): each presence change is told as the
//! difference from it, so changes that raced are told once, in one order.

use super::{keys, n, s, Store, StoreError};

impl Store {
    /// The JSON text of the last announced member list and until when it is
    /// kept (`None`: nobody was told of anyone yet, or everyone left).
    pub async fn announced_members(
        &self,
        channel: &str,
        now: i64,
    ) -> Result<Option<(String, i64)>, StoreError> {
        let Some(mut item) = self
            .get(keys::channel_pk(channel), keys::MEMBERS_SK.into(), now)
            .await?
        else {
            return Ok(None);
        };
        let members = item.remove("members").and_then(|v| v.as_s().ok().cloned());
        let ttl = item
            .get("ttl")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Ok(members.map(|m| (m, ttl)))
    }

    /// Remembers the member list just announced until `ttl` (when the last
    /// member's subscription would expire); `None`: the channel is empty, so
    /// the item goes.
    pub async fn remember_members(
        &self,
        channel: &str,
        members: Option<&str>,
        ttl: i64,
    ) -> Result<(), StoreError> {
        let (pk, sk) = (s(keys::channel_pk(channel)), s(keys::MEMBERS_SK));
        match members {
            Some(members) => self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", pk)
                .item("sk", sk)
                .item("members", s(members))
                .item("ttl", n(ttl))
                .send()
                .await
                .map(drop)
                .map_err(|e| StoreError::dynamo("PutItem", e)),
            None => self
                .client
                .delete_item()
                .table_name(&self.table)
                .key("pk", pk)
                .key("sk", sk)
                .send()
                .await
                .map(drop)
                .map_err(|e| StoreError::dynamo("DeleteItem", e)),
        }
    }
}
