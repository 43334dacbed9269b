//! Requests per operation: each operation alone on a quiet stage, with the
//! stage's counts read before and after it (`GET /dev/stats`, once nothing
//! has moved for a while), on one connection subscribed to its own channel.

use crate::client::{self, bench_data, Hub, Publisher};
use crate::stats::{self, Counts, StatsClient};
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::time::Duration;

pub const OPERATIONS: [&str; 8] = [
    "connect (with greeting)",
    "subscribe",
    "publish, server, unstored",
    "publish, server, stored",
    "publish, client, unstored",
    "listMessages page",
    "react",
    "disconnect",
];

pub struct Measured {
    pub operation: &'static str,
    /// The delta most repetitions agreed on.
    pub counts: Counts,
    /// Every repetition's delta.
    pub all: Vec<Counts>,
}

impl Measured {
    pub fn repetitions_agree(&self) -> bool {
        self.all.iter().all(|c| *c == self.all[0])
    }
}

pub struct Counter<'a> {
    pub stats: &'a StatsClient,
    pub publisher: &'a Publisher,
    pub http_url: String,
    /// Token for connection `i` of the counting runs.
    pub url: Box<dyn Fn(usize) -> String + 'a>,
}

const QUIET: Duration = Duration::from_millis(400);
const SETTLE: Duration = Duration::from_secs(20);
const WAIT: Duration = Duration::from_secs(10);

impl Counter<'_> {
    async fn step(&self, before: &mut Counts) -> anyhow::Result<Counts> {
        let after = self.stats.settle(QUIET, SETTLE).await?.requests;
        let delta = stats::delta(&after, before);
        *before = after;
        Ok(delta)
    }

    /// One pass over every operation; the deltas in [`OPERATIONS`] order.
    pub async fn pass(&self, hub: &mut Hub, rep: usize, run: u64) -> anyhow::Result<Vec<Counts>> {
        let channel = format!("count-{rep}");
        let conn = 1_000_000 + rep;
        let mut before = self.stats.settle(QUIET, SETTLE).await?.requests;
        hub.drain();
        let mut deltas = Vec::new();

        let socket = client::connect(&(self.url)(conn), conn, hub.tx.clone(), WAIT).await?;
        deltas.push(self.step(&mut before).await?);

        socket.subscribe(&channel)?;
        hub.subscribed(&channel, 1, WAIT).await?;
        deltas.push(self.step(&mut before).await?);

        self.publisher.publish(&channel, run, 0, 0).await?;
        hub.receipts(run, Some(0), 1, WAIT).await?;
        deltas.push(self.step(&mut before).await?);

        self.publisher.publish(&channel, run, 1, 3600).await?;
        let stored = hub.receipts(run, Some(1), 1, WAIT).await?;
        let message_id = stored[0]
            .id
            .clone()
            .context("a stored message without id")?;
        deltas.push(self.step(&mut before).await?);

        socket.send(&json!({"channel": channel, "event": "bench", "data": bench_data(run, 2)}))?;
        hub.receipts(run, Some(2), 1, WAIT).await?;
        deltas.push(self.step(&mut before).await?);

        let url = format!(
            "{}/connection/listMessages?connectionId={}&connectionSecret={}",
            self.http_url,
            percent_encode(&socket.connection_id),
            percent_encode(&socket.connection_secret)
        );
        let response = reqwest::Client::new()
            .post(url)
            .json(&json!({"channel": channel}))
            .send()
            .await?;
        let status = response.status();
        let page: Value = response.json().await.unwrap_or_default();
        if !status.is_success() || page["messages"].as_array().is_none_or(Vec::is_empty) {
            bail!("listMessages answered {status} {page}");
        }
        deltas.push(self.step(&mut before).await?);

        socket.send(&json!({
            "event": "hotsock.messageReaction",
            "channel": channel,
            "data": {"messageId": message_id, "reaction": "👍", "action": "add"}
        }))?;
        hub.frame(conn, "hotsock.messageReactionAdded", WAIT)
            .await?;
        deltas.push(self.step(&mut before).await?);

        socket.close();
        let closing = tokio::time::Instant::now();
        while !socket.is_closed() && closing.elapsed() < WAIT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(socket);
        deltas.push(self.step(&mut before).await?);
        Ok(deltas)
    }
}

/// Picks, per operation, the delta most repetitions saw, leaving out any
/// repetition the sweeper ran into (its Scan of the table shows in the delta).
pub fn agree(passes: &[Vec<Counts>]) -> Vec<Measured> {
    OPERATIONS
        .iter()
        .enumerate()
        .map(|(i, operation)| {
            let all: Vec<Counts> = passes.iter().map(|p| p[i].clone()).collect();
            let clean: Vec<&Counts> = all
                .iter()
                .filter(|c| !c.contains_key("dynamodb.Scan"))
                .collect();
            let candidates = if clean.is_empty() {
                all.iter().collect()
            } else {
                clean
            };
            let counts = candidates
                .iter()
                .max_by_key(|c| candidates.iter().filter(|o| o == c).count())
                .map(|c| (*c).clone())
                .unwrap_or_default();
            Measured {
                operation,
                counts,
                all,
            }
        })
        .collect()
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::OpCount;

    #[test]
    fn the_majority_wins_and_sweeps_are_left_out() {
        let get = |n| {
            Counts::from([(
                "dynamodb.GetItem".to_owned(),
                OpCount {
                    requests: n,
                    write_units: 0.0,
                    read_units: n as f64,
                },
            )])
        };
        let mut swept = get(1);
        swept.insert("dynamodb.Scan".into(), OpCount::default());
        let passes: Vec<Vec<Counts>> = vec![
            vec![swept.clone(); OPERATIONS.len()],
            vec![get(2); OPERATIONS.len()],
            vec![get(2); OPERATIONS.len()],
        ];
        let measured = agree(&passes);
        assert_eq!(measured[0].counts, get(2));
        assert!(!measured[0].repetitions_agree());
        assert_eq!(percent_encode("a+b/c=="), "a%2Bb%2Fc%3D%3D");
    }
}
