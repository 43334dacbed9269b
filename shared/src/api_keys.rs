//! The server API's Bearer keys (`POST /publish`, `/channels/*`): keys given
//! as configuration (`HTTP_API_KEY_1`, `HTTP_API_KEY_2`), and keys the stack
//! generated at deploy into Secrets Manager (`HTTP_API_KEY_SECRET_ARNS`), read
//! through a [`KeySource`] with a cache, so a key rotated in Secrets Manager is
//! taken up by every warm function within [`SECRET_CACHE`] without a redeploy.
//! The Secrets Manager reading itself is
//! [`adapters::secrets_manager`](crate::adapters::secrets_manager).

use futures::future::BoxFuture;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;

/// How long secret values are trusted before they are read again.
pub const SECRET_CACHE: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("the API keys could not be read from Secrets Manager: {0}")]
    Unreadable(String),
}

/// Where the generated keys are kept (Secrets Manager in AWS): `read` returns
/// every value, read afresh.
pub trait KeySource: Send + Sync {
    fn read(&self) -> BoxFuture<'_, Result<Vec<String>, ApiKeyError>>;
}

pub struct ApiKeys {
    configured: Vec<String>,
    secrets: Option<SecretKeys>,
}

struct SecretKeys {
    source: Box<dyn KeySource>,
    cache: Mutex<Option<(Instant, Vec<String>)>>,
}

impl ApiKeys {
    /// Keys given as they are (the local stage, tests, explicit stack
    /// parameters).
    pub fn configured(keys: Vec<String>) -> Self {
        ApiKeys {
            configured: keys,
            secrets: None,
        }
    }

    /// Configured keys and the keys `source` reads, cached for
    /// [`SECRET_CACHE`]. In AWS: [`ApiKeys::with_secrets`], reading Secrets
    /// Manager.
    pub fn with_source(keys: Vec<String>, source: Box<dyn KeySource>) -> Self {
        ApiKeys {
            configured: keys,
            secrets: Some(SecretKeys {
                source,
                cache: Mutex::new(None),
            }),
        }
    }

    /// Whether any key can open the API (none: it stays closed).
    pub fn any(&self) -> bool {
        !self.configured.is_empty() || self.secrets.is_some()
    }

    /// Whether `presented` is one of the keys, compared in constant time. A
    /// failed read of the secrets keeps the last values it read; with none it
    /// is an error (the caller answers 500, not a misleading 401).
    pub async fn accepts(&self, presented: &str) -> Result<bool, ApiKeyError> {
        if matches_any(&self.configured, presented) {
            return Ok(true);
        }
        match &self.secrets {
            Some(secrets) => Ok(matches_any(&secrets.values().await?, presented)),
            None => Ok(false),
        }
    }
}

impl SecretKeys {
    async fn values(&self) -> Result<Vec<String>, ApiKeyError> {
        let mut cache = self.cache.lock().await;
        if let Some((read_at, values)) = cache.as_ref() {
            if read_at.elapsed() < SECRET_CACHE {
                return Ok(values.clone());
            }
        }
        match self.source.read().await {
            Ok(values) => {
                *cache = Some((Instant::now(), values.clone()));
                Ok(values)
            }
            Err(err) => match cache.as_ref() {
                Some((_, stale)) => {
                    tracing::warn!(error = %err, "API key secrets unreadable; the last values stay in use");
                    Ok(stale.clone())
                }
                None => Err(err),
            },
        }
    }
}

/// Whether `given` equals one of `keys`; every key is compared in constant
/// time (`subtle`), so timing tells nothing about which (or how much) matched.
pub fn matches_any(keys: &[String], given: &str) -> bool {
    keys.iter()
        .fold(subtle::Choice::from(0), |found, key| {
            found | key.as_bytes().ct_eq(given.as_bytes())
        })
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn configured_keys_open_the_api_and_nothing_else_does() {
        let keys = ApiKeys::configured(vec!["k1".into(), "key-two".into()]);
        assert!(keys.any());
        assert!(keys.accepts("k1").await.expect("read"));
        assert!(keys.accepts("key-two").await.expect("read"));
        for wrong in ["", "k", "k1 ", "key-tw", "KEY-TWO"] {
            assert!(!keys.accepts(wrong).await.expect("read"), "{wrong:?}");
        }
        assert!(!ApiKeys::configured(Vec::new()).any());
    }
}
