//! The server API's generated keys in AWS: Secrets Manager secrets, named by
//! ARN (`HTTP_API_KEY_SECRET_ARNS`), behind the [`KeySource`] port; the cache
//! that keeps the last values through a failed read is [`ApiKeys`]'.

use crate::api_keys::{ApiKeyError, ApiKeys, KeySource};
use futures::future::BoxFuture;

/// The secrets `arns` names, read with `client`.
pub struct SecretsManagerKeys {
    client: aws_sdk_secretsmanager::Client,
    arns: Vec<String>,
}

impl SecretsManagerKeys {
    pub fn new(client: aws_sdk_secretsmanager::Client, arns: Vec<String>) -> Self {
        SecretsManagerKeys { client, arns }
    }

    async fn read_all(&self) -> Result<Vec<String>, ApiKeyError> {
        let mut values = Vec::with_capacity(self.arns.len());
        for arn in &self.arns {
            let out = self
                .client
                .get_secret_value()
                .secret_id(arn)
                .send()
                .await
                .map_err(|e| {
                    let detail = aws_sdk_secretsmanager::error::DisplayErrorContext(&e);
                    ApiKeyError::Unreadable(format!("{arn}: {detail}"))
                })?;
            if let Some(value) = out.secret_string().filter(|v| !v.is_empty()) {
                values.push(value.to_owned());
            }
        }
        Ok(values)
    }
}

impl KeySource for SecretsManagerKeys {
    fn read(&self) -> BoxFuture<'_, Result<Vec<String>, ApiKeyError>> {
        Box::pin(self.read_all())
    }
}

impl ApiKeys {
    /// Configured keys and the secrets `arns` names, read with `client` (no
    /// ARNs: the configured keys alone).
    pub fn with_secrets(
        keys: Vec<String>,
        client: aws_sdk_secretsmanager::Client,
        arns: Vec<String>,
    ) -> Self {
        if arns.is_empty() {
            return ApiKeys::configured(keys);
        }
        ApiKeys::with_source(keys, Box::new(SecretsManagerKeys::new(client, arns)))
    }
}
