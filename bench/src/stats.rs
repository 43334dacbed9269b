//! The stage's request counts (`GET /dev/stats`) and their deltas.

use anyhow::Context;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Requests and DynamoDB capacity of one service operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpCount {
    pub requests: u64,
    #[serde(default)]
    pub write_units: f64,
    #[serde(default)]
    pub read_units: f64,
}

/// Service operation (`dynamodb.PutItem`, ...) → its count.
pub type Counts = BTreeMap<String, OpCount>;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueStats {
    #[serde(default)]
    pub waiting: u64,
    #[serde(default)]
    pub dead_letters: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Stats {
    pub requests: Counts,
    #[serde(default)]
    pub queue: QueueStats,
}

/// What happened between two snapshots (operations that did not change are
/// left out).
pub fn delta(after: &Counts, before: &Counts) -> Counts {
    after
        .iter()
        .filter_map(|(op, a)| {
            let b = before.get(op).copied().unwrap_or_default();
            let d = OpCount {
                requests: a.requests.saturating_sub(b.requests),
                write_units: round(a.write_units - b.write_units),
                read_units: round(a.read_units - b.read_units),
            };
            (d != OpCount::default()).then(|| (op.clone(), d))
        })
        .collect()
}

fn round(units: f64) -> f64 {
    (units * 1000.0).round() / 1000.0
}

pub fn is_dynamodb_write(op: &str) -> bool {
    matches!(
        op,
        "dynamodb.PutItem"
            | "dynamodb.UpdateItem"
            | "dynamodb.DeleteItem"
            | "dynamodb.TransactWriteItems"
            | "dynamodb.BatchWriteItem"
    )
}

/// Sums over the DynamoDB operations: (requests, write requests, WRU, RRU).
pub fn dynamodb_totals(counts: &Counts) -> (u64, u64, f64, f64) {
    let mut totals = (0, 0, 0.0, 0.0);
    for (op, c) in counts.iter().filter(|(op, _)| op.starts_with("dynamodb.")) {
        totals.0 += c.requests;
        if is_dynamodb_write(op) {
            totals.1 += c.requests;
        }
        totals.2 += c.write_units;
        totals.3 += c.read_units;
    }
    totals
}

pub struct StatsClient {
    http: reqwest::Client,
    url: String,
}

impl StatsClient {
    pub fn new(base_url: &str) -> Self {
        StatsClient {
            http: reqwest::Client::new(),
            url: format!("{base_url}/dev/stats"),
        }
    }

    pub async fn get(&self) -> anyhow::Result<Stats> {
        let response = self
            .http
            .get(&self.url)
            .send()
            .await
            .context("GET /dev/stats")?;
        let status = response.status();
        let text = response.text().await?;
        anyhow::ensure!(status.is_success(), "GET /dev/stats: {status} {text}");
        serde_json::from_str(&text).with_context(|| format!("GET /dev/stats answered {text}"))
    }

    /// Waits until the stage is quiet: nothing queued and no new request for
    /// `quiet` (the stream poller, the queue and cleanups have caught up).
    pub async fn settle(&self, quiet: Duration, timeout: Duration) -> anyhow::Result<Stats> {
        let started = Instant::now();
        let mut last = self.get().await?;
        let mut unchanged_since = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = self.get().await?;
            if now != last {
                last = now;
                unchanged_since = Instant::now();
            } else if last.queue.waiting == 0 && unchanged_since.elapsed() >= quiet {
                return Ok(last);
            }
            if started.elapsed() > timeout {
                return Ok(last);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_keep_what_changed() {
        let count = |requests, write_units, read_units| OpCount {
            requests,
            write_units,
            read_units,
        };
        let before = Counts::from([
            ("dynamodb.GetItem".into(), count(3, 0.0, 3.0)),
            ("dynamodb.PutItem".into(), count(1, 1.0, 0.0)),
        ]);
        let after = Counts::from([
            ("dynamodb.GetItem".into(), count(4, 0.0, 4.0)),
            ("dynamodb.PutItem".into(), count(1, 1.0, 0.0)),
            ("apigateway.PostToConnection".into(), count(2, 0.0, 0.0)),
        ]);
        let d = delta(&after, &before);
        assert_eq!(d.len(), 2);
        assert_eq!(d["dynamodb.GetItem"], count(1, 0.0, 1.0));
        assert_eq!(dynamodb_totals(&d), (1, 0, 0.0, 1.0));
    }
}
