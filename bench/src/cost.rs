//! What a published message costs in AWS, from the requests the stage
//! counted, next to the same model for a scan-all fan-out (the design of AWS's
//! simple-websockets-chat-app: every message Scans a table of all connections
//! and posts to each).
//!
//! Prices are us-east-1 on-demand list prices (no free tier, no volume
//! tiers); the README cites where each comes from.

use crate::stats::Counts;

#[derive(Debug, Clone, Copy)]
pub struct Prices {
    /// $ per DynamoDB write request unit (on-demand).
    pub dynamodb_wru: f64,
    /// $ per DynamoDB read request unit (on-demand).
    pub dynamodb_rru: f64,
    /// $ per SQS FIFO request (per 64 KB chunk).
    pub sqs_fifo_request: f64,
    /// $ per API Gateway WebSocket message (per 32 KB, in or out).
    pub apigw_message: f64,
    /// $ per Lambda invocation.
    pub lambda_request: f64,
    /// $ per Lambda GB-second on arm64.
    pub lambda_gb_second: f64,
}

pub const US_EAST_1: Prices = Prices {
    dynamodb_wru: 0.625e-6,
    dynamodb_rru: 0.125e-6,
    sqs_fifo_request: 0.50e-6,
    apigw_message: 1.00e-6,
    lambda_request: 0.20e-6,
    lambda_gb_second: 0.000_013_333_4,
};

/// How long the functions are assumed to run (Lambda duration is not
/// measured here): `base_ms` per invocation plus `round_ms` per round of
/// `posts_in_flight` concurrent PostToConnection calls, at `memory_gb`.
#[derive(Debug, Clone, Copy)]
pub struct Durations {
    pub memory_gb: f64,
    pub base_ms: f64,
    pub round_ms: f64,
    pub posts_in_flight: f64,
}

/// The template's 256 MB; Sockhop's driver keeps 64 posts in flight.
pub const DURATIONS: Durations = Durations {
    memory_gb: 0.25,
    base_ms: 10.0,
    round_ms: 10.0,
    posts_in_flight: 64.0,
};

impl Durations {
    /// GB-seconds of one invocation that posts to `posts` connections.
    pub fn gb_seconds(&self, posts: f64) -> f64 {
        let rounds = (posts / self.posts_in_flight).ceil();
        self.memory_gb * (self.base_ms + rounds * self.round_ms) / 1000.0
    }
}

/// What one published message uses, per service.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub wru: f64,
    pub rru: f64,
    pub sqs_requests: f64,
    pub apigw_messages: f64,
    pub lambda_invocations: f64,
    pub lambda_gb_seconds: f64,
}

/// Dollars per message, per service.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Dollars {
    pub dynamodb: f64,
    pub sqs: f64,
    pub apigw: f64,
    pub lambda: f64,
}

impl Dollars {
    pub fn total(&self) -> f64 {
        self.dynamodb + self.sqs + self.apigw + self.lambda
    }
}

impl Usage {
    pub fn dollars(&self, prices: &Prices) -> Dollars {
        Dollars {
            dynamodb: self.wru * prices.dynamodb_wru + self.rru * prices.dynamodb_rru,
            sqs: self.sqs_requests * prices.sqs_fifo_request,
            apigw: self.apigw_messages * prices.apigw_message,
            lambda: self.lambda_invocations * prices.lambda_request
                + self.lambda_gb_seconds * prices.lambda_gb_second,
        }
    }
}

/// Read units of one Query or Scan page returning `bytes` of items: DynamoDB
/// sums the item sizes of the page and rounds up to 4 KB; an eventually
/// consistent read costs half.
pub fn read_units(bytes: f64, consistent: bool) -> f64 {
    let blocks = (bytes / 4096.0).ceil().max(1.0);
    if consistent {
        blocks
    } else {
        blocks / 2.0
    }
}

/// How a Sockhop message reaches the stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// `POST /publish` on the function URL (the http function).
    Server,
    /// A WebSocket frame (`$default`): one inbound API Gateway message.
    Client,
}

/// Sockhop, one message to `subscribers` connections, from the DynamoDB work
/// the stage counted for one publish to a single subscriber: the subscriber
/// Query is re-priced for a partition of `subscribers` items of
/// `subscription_bytes` each (the stage's counter prices every Query page as
/// one 4 KB read). The queue: one SendMessage, and a receive and a delete per
/// batch of `batch` messages; one deliver invocation per batch. A stored
/// message also reaches the stream function (its INSERT is a stream record).
pub fn sockhop(
    counted: &Counts,
    door: Door,
    subscribers: f64,
    subscription_bytes: f64,
    batch: f64,
    stored: bool,
    durations: &Durations,
) -> Usage {
    let dynamodb = counted.iter().filter(|(op, _)| op.starts_with("dynamodb."));
    let (mut wru, mut rru) = (0.0, 0.0);
    for (op, count) in dynamodb {
        wru += count.write_units;
        if op == "dynamodb.Query" {
            let page = read_units(subscribers * subscription_bytes, true);
            // Subscriber queries are read once per delivered batch.
            rru += count.requests as f64 * page / batch;
        } else {
            rru += count.read_units;
        }
    }
    let front = match door {
        Door::Server => 0.0,
        Door::Client => 1.0,
    };
    let stream = if stored { 1.0 } else { 0.0 };
    let lanes = occupied_lanes(subscribers);
    // The channel's step; in lanes it posts nothing and sends a record per
    // lane, each received, deleted and delivered by an invocation of its own.
    let (lane_sqs, lane_invocations, posts_per_invocation) = if lanes > 0.0 {
        (
            lanes * (1.0 + 2.0 / batch),
            lanes / batch,
            subscribers / lanes,
        )
    } else {
        (0.0, 0.0, subscribers)
    };
    Usage {
        wru,
        rru,
        sqs_requests: 1.0 + 2.0 / batch + lane_sqs,
        apigw_messages: front + subscribers,
        lambda_invocations: 1.0 + 1.0 / batch + stream + lane_invocations,
        lambda_gb_seconds: durations.gb_seconds(0.0) * (1.0 + stream)
            + durations.gb_seconds(if lanes > 0.0 { 0.0 } else { subscribers } * batch) / batch
            + lane_invocations * durations.gb_seconds(posts_per_invocation * batch),
    }
}

/// How many of the 32 lanes a channel of `subscribers` uses when it is fanned
/// out in lanes (above the default lane size; docs/adr/0004), 0 when it is
/// not: lanes are picked by a digest of the connection id, so the expected
/// number of lanes hit by `n` connections is `L (1 - (1 - 1/L)^n)`.
pub fn occupied_lanes(subscribers: f64) -> f64 {
    let lane_size = sockhop::app::DEFAULT_FAN_OUT_LANE_SIZE as f64;
    if subscribers <= lane_size {
        return 0.0;
    }
    let lanes = f64::from(sockhop::ops::deliver::LANES);
    lanes * (1.0 - (1.0 - 1.0 / lanes).powf(subscribers))
}

/// The scan-all design: the message arrives over the WebSocket, one function
/// Scans every connection item (`connection_bytes` each, eventually
/// consistent, 1 MB pages) and posts to each.
pub fn scan_all(connections: f64, connection_bytes: f64, durations: &Durations) -> Usage {
    let bytes = connections * connection_bytes;
    let full_pages = (bytes / 1_048_576.0).floor();
    let rest = bytes - full_pages * 1_048_576.0;
    Usage {
        wru: 0.0,
        rru: full_pages * read_units(1_048_576.0, false) + read_units(rest, false),
        sqs_requests: 0.0,
        apigw_messages: 1.0 + connections,
        lambda_invocations: 1.0,
        lambda_gb_seconds: durations.gb_seconds(connections),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::OpCount;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn reads_round_up_to_4_kb_and_halve_when_eventual() {
        assert_eq!(read_units(100.0, true), 1.0);
        assert_eq!(read_units(4096.0, true), 1.0);
        assert_eq!(read_units(4097.0, true), 2.0);
        assert_eq!(read_units(28_000.0, false), 3.5);
    }

    #[test]
    fn scan_all_costs_a_post_per_connection_and_a_scan() {
        let usage = scan_all(1000.0, 28.0, &DURATIONS);
        assert_eq!(usage.rru, 3.5);
        assert_eq!(usage.apigw_messages, 1001.0);
        let dollars = usage.dollars(&US_EAST_1);
        assert!(close(dollars.apigw, 1001.0 * 1e-6));
        assert!(close(dollars.dynamodb, 3.5 * 0.125e-6));
        // 16 rounds of 64 posts: 0.25 GB x 170 ms.
        assert!(close(usage.lambda_gb_seconds, 0.25 * 0.170));
        // Per million messages: about $1001 of API Gateway dominates.
        let per_million = dollars.total() * 1e6;
        assert!(
            per_million > 1001.0 && per_million < 1003.0,
            "{per_million}"
        );
    }

    #[test]
    fn sockhop_reprices_the_subscriber_query_by_partition_size() {
        let counted = Counts::from([
            (
                "dynamodb.Query".to_owned(),
                OpCount {
                    requests: 1,
                    write_units: 0.0,
                    read_units: 1.0,
                },
            ),
            (
                "dynamodb.PutItem".to_owned(),
                OpCount {
                    requests: 1,
                    write_units: 1.0,
                    read_units: 0.0,
                },
            ),
        ]);
        let usage = sockhop(&counted, Door::Server, 200.0, 410.0, 1.0, true, &DURATIONS);
        // 82 KB of subscriptions: 21 blocks of 4 KB, strongly consistent.
        assert_eq!(usage.rru, 21.0);
        assert_eq!(usage.wru, 1.0);
        assert_eq!(usage.sqs_requests, 3.0);
        assert_eq!(usage.apigw_messages, 200.0);
        assert_eq!(usage.lambda_invocations, 3.0);
        // Above the lane size the message goes through lanes: nearly all 32
        // are hit by 1,000 connections, each a send, a receive and a delete,
        // and an invocation.
        let laned = sockhop(&counted, Door::Server, 1000.0, 410.0, 1.0, true, &DURATIONS);
        assert_eq!(laned.rru, 101.0);
        let lanes = occupied_lanes(1000.0);
        assert!(lanes > 31.9 && lanes < 32.0, "{lanes}");
        assert!(close(laned.sqs_requests, 3.0 + 3.0 * lanes));
        assert!(close(laned.lambda_invocations, 3.0 + lanes));
        assert_eq!(occupied_lanes(250.0), 0.0);
        let batched = sockhop(&counted, Door::Client, 10.0, 400.0, 10.0, false, &DURATIONS);
        assert!(close(batched.rru, 0.1));
        assert!(close(batched.sqs_requests, 1.2));
        assert_eq!(batched.apigw_messages, 11.0);
    }
}
