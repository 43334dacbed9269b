//! Connection items and the per-connection reverse index of subscriptions.

use super::{keyed, keys, n, s, Store, StoreError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionItem {
    pub connection_id: String,
    /// Random input to the connection secret's derivation (never the secret).
    pub secret_nonce: String,
    /// SHA-256 of the connection secret, hex.
    pub secret_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// JSON text of the user metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umd: Option<String>,
    /// JSON text of the connect token's verified payload, re-read for permissions.
    pub claims: String,
    pub connected_at_ms: i64,
    /// Unix seconds at which the gateway closes the connection.
    pub expires_at: i64,
    pub keep_alive: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_timeout: Option<u32>,
    /// Unix seconds of the last heartbeat (or connect).
    pub last_seen: i64,
    pub ttl: i64,
}

impl ConnectionItem {
    pub fn umd_value(&self) -> Option<serde_json::Value> {
        self.umd
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
    }
}

/// The reverse index under a connection: lets disconnect find every subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConnectionSubscriptionItem {
    pub channel: String,
    /// The subscription's alias, so a name the client sends can be resolved
    /// from this partition alone (items written before aliases were kept here
    /// have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    pub ttl: i64,
}

impl Store {
    pub async fn put_connection(&self, item: &ConnectionItem) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(keyed(
                item,
                keys::connection_pk(&item.connection_id),
                keys::CONNECTION_SK,
            )?))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("PutItem", e))?;
        Ok(())
    }

    pub async fn get_connection(
        &self,
        connection_id: &str,
        now: i64,
    ) -> Result<Option<ConnectionItem>, StoreError> {
        let item = self
            .get(
                keys::connection_pk(connection_id),
                keys::CONNECTION_SK.into(),
                now,
            )
            .await?;
        Ok(item.map(serde_dynamo::from_item).transpose()?)
    }

    /// Records liveness for heartbeat timeouts; a no-op for a connection that is
    /// already gone, so a late heartbeat cannot resurrect it.
    pub async fn touch_connection(&self, connection_id: &str, now: i64) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::connection_pk(connection_id)))
            .key("sk", s(keys::CONNECTION_SK))
            .update_expression("SET lastSeen = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if super::is_condition_failure(&e) => Ok(()),
            Err(e) => Err(StoreError::dynamo("UpdateItem", e)),
        }
    }

    /// Channels this connection is subscribed to, from the reverse index.
    /// The channel this connection subscribed to under `alias`, if any.
    pub async fn channel_with_alias(
        &self,
        connection_id: &str,
        alias: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .connection_subscriptions(connection_id, now)
            .await?
            .into_iter()
            .find(|s| s.alias.as_deref() == Some(alias))
            .map(|s| s.channel))
    }

    pub async fn connection_channels(
        &self,
        connection_id: &str,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self
            .connection_subscriptions(connection_id, now)
            .await?
            .into_iter()
            .map(|s| s.channel)
            .collect())
    }

    async fn connection_subscriptions(
        &self,
        connection_id: &str,
        now: i64,
    ) -> Result<Vec<ConnectionSubscriptionItem>, StoreError> {
        let items = self
            .query_partition(
                &keys::connection_pk(connection_id),
                Some(keys::SUB_PREFIX),
                now,
            )
            .await?;
        items
            .into_iter()
            .map(|i| serde_dynamo::from_item(i).map_err(StoreError::from))
            .collect()
    }

    /// Deletes the connection item; true when this call removed it (so only one
    /// of two racing cleanups reports the disconnect).
    pub async fn delete_connection(&self, connection_id: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(keys::connection_pk(connection_id)))
            .key("sk", s(keys::CONNECTION_SK))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if super::is_condition_failure(&e) => Ok(false),
            Err(e) => Err(StoreError::dynamo("DeleteItem", e)),
        }
    }
}
