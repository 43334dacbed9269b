//! The model's waits: log-normal distributions given by a p50 and a p99,
//! sampled from a seeded generator so a run can be repeated, and the table
//! of every wait with where its figure comes from (printed with each run).

use std::sync::Mutex;
use std::time::Duration;

/// z of the 99th percentile of the standard normal distribution.
const Z_99: f64 = 2.326_347_874;

/// A log-normal wait: half the samples below `p50`, 1% above `p99`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogNormal {
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl LogNormal {
    pub const fn new(p50_ms: f64, p99_ms: f64) -> Self {
        LogNormal { p50_ms, p99_ms }
    }

    /// The wait for a standard normal sample `z`.
    fn at(&self, z: f64) -> f64 {
        let sigma = (self.p99_ms / self.p50_ms).ln() / Z_99;
        self.p50_ms * (sigma * z).exp()
    }
}

/// SplitMix64: small, seeded, good enough for sampling waits (no crate).
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal sample (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// One generator shared by every part of the model.
#[derive(Debug)]
pub struct Sampler(Mutex<Rng>);

impl Sampler {
    pub fn new(seed: u64) -> Self {
        Sampler(Mutex::new(Rng::new(seed)))
    }

    fn rng(&self) -> std::sync::MutexGuard<'_, Rng> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn wait(&self, distribution: &LogNormal) -> Duration {
        let z = self.rng().normal();
        Duration::from_secs_f64(distribution.at(z) / 1000.0)
    }

    /// Uniform in [0, `max_ms`).
    pub fn uniform(&self, max_ms: f64) -> Duration {
        Duration::from_secs_f64(self.rng().unit() * max_ms / 1000.0)
    }
}

/// Every wait the model puts between services, in milliseconds.
#[derive(Debug, Clone)]
pub struct Params {
    /// One PostToConnection round trip from a Lambda in the same region.
    pub post: LogNormal,
    /// API Gateway hands `$connect` to the connect function (invoke, warm).
    pub connect_invoke: LogNormal,
    /// After `$connect` returned, until API Gateway accepts posts to the socket.
    pub connect_open: LogNormal,
    /// One SQS FIFO SendMessage round trip.
    pub sqs_send: LogNormal,
    /// A sent message until the deliver function runs with it: the event
    /// source's long poll receive and the synchronous invoke.
    pub sqs_to_lambda: LogNormal,
    /// A table write until its stream record can be read from the shard.
    pub stream_record: LogNormal,
    /// The event source polls each shard this often (4 times a second).
    pub stream_poll_ms: f64,
    /// The stream function's invoke once records were read.
    pub stream_invoke: LogNormal,
    /// A post to a stalled socket (it takes this long, then succeeds).
    pub stalled_post: LogNormal,
    /// API Gateway's request rate per account and region, shared by every
    /// API and `@connections` call: a token bucket refilled at this many a
    /// second, holding at most `account_burst`. A post without a token is
    /// answered 429 (`0.0` turns the quota off).
    pub account_rps: f64,
    pub account_burst: f64,
    /// The account's concurrent executions (all functions).
    pub account_concurrency: usize,
    /// Messages per FIFO batch (Lambda's largest for FIFO).
    pub batch_size: usize,
}

pub const DEFAULT: Params = Params {
    post: LogNormal::new(20.0, 80.0),
    connect_invoke: LogNormal::new(10.0, 40.0),
    connect_open: LogNormal::new(5.0, 20.0),
    sqs_send: LogNormal::new(8.0, 30.0),
    sqs_to_lambda: LogNormal::new(20.0, 100.0),
    stream_record: LogNormal::new(60.0, 250.0),
    stream_poll_ms: 250.0,
    stream_invoke: LogNormal::new(10.0, 40.0),
    stalled_post: LogNormal::new(1000.0, 3000.0),
    account_rps: 10_000.0,
    account_burst: 5_000.0,
    account_concurrency: 1000,
    batch_size: 10,
};

impl Params {
    /// The table printed with each run: name, figure, source.
    pub fn table(&self) -> Vec<(&'static str, String, &'static str)> {
        let ln = |d: &LogNormal| format!("p50 {:.0} ms, p99 {:.0} ms", d.p50_ms, d.p99_ms);
        vec![
            (
                "PostToConnection round trip",
                ln(&self.post),
                "issue 24 (~20 ms a post); API Gateway management API reports: tens of ms in-region",
            ),
            (
                "API Gateway -> $connect invoke",
                ln(&self.connect_invoke),
                "assumed: a warm synchronous Lambda invoke",
            ),
            (
                "$connect returned -> posts accepted",
                ln(&self.connect_open),
                "assumed; posts before it answer Gone (GoneException), as Gateway::greet expects",
            ),
            (
                "SQS FIFO SendMessage",
                ln(&self.sqs_send),
                "assumed: an in-region SQS request",
            ),
            (
                "SQS FIFO -> deliver invoke",
                ln(&self.sqs_to_lambda),
                "assumed: Lambda's long-polling SQS event source, FIFO in group order",
            ),
            (
                "table write -> stream record readable",
                ln(&self.stream_record),
                "assumed; with the poll and invoke it gives Hotsock's 300-600 ms before v1.3.0",
            ),
            (
                "stream poll interval",
                format!("{:.0} ms (uniform wait)", self.stream_poll_ms),
                "AWS Lambda docs: a DynamoDB stream shard is polled 4 times a second",
            ),
            (
                "stream records -> stream invoke",
                ln(&self.stream_invoke),
                "assumed: a warm synchronous Lambda invoke",
            ),
            (
                "post to a stalled socket",
                ln(&self.stalled_post),
                "assumed: a slow reader holds its post this long",
            ),
            (
                "API Gateway request quota",
                if self.account_rps > 0.0 {
                    format!(
                        "{:.0}/s, burst {:.0}",
                        self.account_rps, self.account_burst
                    )
                } else {
                    "off".to_owned()
                },
                "API Gateway quotas: per account and Region across WebSocket and callback APIs",
            ),
            (
                "throttled socket",
                "every post answered 429".to_owned(),
                "assumed; the gateway retries it (THROTTLE_PATIENCE) like any 429",
            ),
            (
                "account concurrency",
                self.account_concurrency.to_string(),
                "AWS default (Lambda quotas; Hotsock docs, Limits & Scaling)",
            ),
            (
                "FIFO batch size",
                self.batch_size.to_string(),
                "Lambda's largest batch for a FIFO queue",
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn percentile(sorted: &[f64], p: f64) -> f64 {
        sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
    }

    #[test]
    fn samples_have_the_stated_percentiles() {
        let sampler = Sampler::new(7);
        let post = LogNormal::new(20.0, 80.0);
        let mut ms: Vec<f64> = (0..200_000)
            .map(|_| sampler.wait(&post).as_secs_f64() * 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        let (p50, p99) = (percentile(&ms, 0.5), percentile(&ms, 0.99));
        assert!((p50 - 20.0).abs() < 0.5, "p50 {p50}");
        assert!((p99 - 80.0).abs() < 3.0, "p99 {p99}");
        assert!(ms[0] > 0.0);
    }

    #[test]
    fn a_seed_repeats_its_samples() {
        let a = Sampler::new(42);
        let b = Sampler::new(42);
        let d = LogNormal::new(10.0, 40.0);
        for _ in 0..100 {
            assert_eq!(a.wait(&d), b.wait(&d));
        }
        let uniform: Vec<Duration> = (0..1000).map(|_| a.uniform(250.0)).collect();
        assert!(uniform.iter().all(|d| *d < Duration::from_millis(250)));
    }
}
