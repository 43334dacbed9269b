//! The local stage's delivery queue: SQS FIFO's semantics, in process, feeding
//! the production deliver handler. One message group (channel) is handed out
//! at a time and in order, different groups concurrently, in batches of up to
//! 10; a deduplication id is remembered for five minutes per group; messages a
//! batch reports as failed are handed out again, in order, after a growing
//! pause, and after [`MAX_RECEIVES`] they are set aside as dead letters (the
//! template's dead-letter queue, `maxReceiveCount`).

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use futures::future::BoxFuture;
use sockhop::queue::{DeliveryQueue, Enqueue, QueueError};
use sockhop::App;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// Lambda's largest batch for a FIFO queue.
pub const BATCH_SIZE: usize = 10;
/// Receives before a message goes to the dead letters (template: maxReceiveCount).
pub const MAX_RECEIVES: u32 = 5;
const DEDUPLICATION_WINDOW: Duration = Duration::from_secs(5 * 60);
/// The pause before a failed message's first retry, doubled for each later one
/// and capped at [`MAX_REDELIVERY_PAUSE`]: SQS's visibility timeout, shortened
/// for a laptop. The pauses before the dead letters add up to 15 s, so a
/// database restart on the local stage delays messages but never loses them.
const FIRST_REDELIVERY_PAUSE: Duration = Duration::from_secs(1);
const MAX_REDELIVERY_PAUSE: Duration = Duration::from_secs(8);

/// How long a message that failed its `receives`-th delivery waits (pure).
fn redelivery_pause(receives: u32) -> Duration {
    let doublings = receives.saturating_sub(1).min(16);
    (FIRST_REDELIVERY_PAUSE * 2u32.pow(doublings)).min(MAX_REDELIVERY_PAUSE)
}

struct Pending {
    message_id: String,
    body: String,
    sequence: u128,
    /// Fixed at the first hand-out, like SQS's ApproximateFirstReceiveTimestamp.
    first_received_ms: Option<u64>,
    receives: u32,
}

#[derive(Default)]
struct Group {
    messages: VecDeque<Pending>,
    busy: bool,
    retry_at: Option<Instant>,
}

#[derive(Default)]
struct State {
    groups: HashMap<String, Group>,
    /// (group, deduplication id) → when first seen.
    seen: HashMap<(String, String), Instant>,
    sequence: u128,
    dead_letters: u64,
}

#[derive(Default)]
pub struct LocalQueue {
    state: Mutex<State>,
    wake: Notify,
}

/// What the queue holds, for the stage's stats.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueStats {
    pub waiting: usize,
    pub dead_letters: u64,
}

impl LocalQueue {
    pub fn new() -> Arc<Self> {
        Arc::new(LocalQueue::default())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Nothing waiting and nothing being delivered.
    pub fn is_idle(&self) -> bool {
        self.state().groups.is_empty()
    }

    pub fn stats(&self) -> QueueStats {
        let state = self.state();
        QueueStats {
            waiting: state.groups.values().map(|g| g.messages.len()).sum(),
            dead_letters: state.dead_letters,
        }
    }

    /// Hands out every group that is idle, has messages and is not pausing:
    /// marks it busy and returns its batch. (Public so tests can pump the
    /// queue by hand, deterministically.)
    pub fn take_ready(&self, now: Instant, wall_ms: u64) -> Vec<(String, SqsEvent)> {
        let mut state = self.state();
        let mut batches = Vec::new();
        for (name, group) in state.groups.iter_mut() {
            if group.busy || group.messages.is_empty() || group.retry_at.is_some_and(|t| t > now) {
                continue;
            }
            group.busy = true;
            group.retry_at = None;
            let records = group
                .messages
                .iter_mut()
                .take(BATCH_SIZE)
                .map(|m| {
                    m.receives += 1;
                    let first = *m.first_received_ms.get_or_insert(wall_ms);
                    record(name, m, first)
                })
                .collect();
            let mut event = SqsEvent::default();
            event.records = records;
            batches.push((name.clone(), event));
        }
        batches
    }

    /// Settles a handed-out batch: what succeeded leaves the queue; the first
    /// failure and what follows stay, in order, for a later hand-out.
    pub fn settle(&self, group_name: &str, handed_out: usize, failed: &HashSet<String>) {
        let mut state = self.state();
        let mut dead = 0;
        if let Some(group) = state.groups.get_mut(group_name) {
            group.busy = false;
            for _ in 0..handed_out {
                match group.messages.front() {
                    Some(m) if !failed.contains(&m.message_id) => {
                        group.messages.pop_front();
                    }
                    _ => break,
                }
            }
            if let Some(first) = group.messages.front() {
                if failed.contains(&first.message_id) {
                    if first.receives >= MAX_RECEIVES {
                        tracing::error!(
                            group = group_name,
                            message_id = %first.message_id,
                            "message failed {MAX_RECEIVES} times; moved to the dead letters"
                        );
                        group.messages.pop_front();
                        dead += 1;
                    } else {
                        group.retry_at = Some(Instant::now() + redelivery_pause(first.receives));
                    }
                }
            }
            if group.messages.is_empty() && !group.busy {
                state.groups.remove(group_name);
            }
        }
        state.dead_letters += dead;
        drop(state);
        self.wake.notify_one();
    }

    fn next_retry(&self) -> Option<Instant> {
        self.state()
            .groups
            .values()
            .filter(|g| !g.busy)
            .filter_map(|g| g.retry_at)
            .min()
    }
}

fn record(group: &str, message: &Pending, first_received_ms: u64) -> SqsMessage {
    let mut record = fifo_record(
        group,
        &message.message_id,
        &message.body,
        message.sequence,
        first_received_ms,
    );
    record.attributes.insert(
        "ApproximateReceiveCount".to_owned(),
        message.receives.to_string(),
    );
    record
}

/// A FIFO record as Lambda's SQS event source hands it to the deliver
/// function: id, body, and the attributes the driver reads (group, sequence
/// number, first receive time). Also the AWS-latency model's (bench).
pub fn fifo_record(
    group: &str,
    message_id: &str,
    body: &str,
    sequence: u128,
    first_received_ms: u64,
) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = Some(message_id.to_owned());
    record.body = Some(body.to_owned());
    record.attributes = HashMap::from([
        ("MessageGroupId".to_owned(), group.to_owned()),
        ("SequenceNumber".to_owned(), sequence.to_string()),
        (
            "ApproximateFirstReceiveTimestamp".to_owned(),
            first_received_ms.to_string(),
        ),
    ]);
    record.event_source = Some("aws:sqs".to_owned());
    record
}

impl DeliveryQueue for LocalQueue {
    fn send(&self, message: Enqueue) -> BoxFuture<'_, Result<(), QueueError>> {
        let mut state = self.state();
        let now = Instant::now();
        state
            .seen
            .retain(|_, at| now.duration_since(*at) < DEDUPLICATION_WINDOW);
        let key = (message.group.clone(), message.deduplication_id);
        if let std::collections::hash_map::Entry::Vacant(first) = state.seen.entry(key) {
            first.insert(now);
            state.sequence += 1;
            let sequence = state.sequence;
            state
                .groups
                .entry(message.group)
                .or_default()
                .messages
                .push_back(Pending {
                    message_id: format!("local-{sequence}"),
                    body: message.body,
                    sequence,
                    first_received_ms: None,
                    receives: 0,
                });
            drop(state);
            self.wake.notify_one();
        }
        Box::pin(async { Ok(()) })
    }
}

/// Feeds the queue to the deliver handler until `shutdown`.
pub async fn run(queue: Arc<LocalQueue>, app: &'static App, mut shutdown: watch::Receiver<bool>) {
    loop {
        let wall_ms = sockhop::clock::Timestamp::now().millis().max(0) as u64;
        for (group, event) in queue.take_ready(Instant::now(), wall_ms) {
            let queue = queue.clone();
            tokio::spawn(async move {
                let handed_out: HashSet<String> = event
                    .records
                    .iter()
                    .filter_map(|r| r.message_id.clone())
                    .collect();
                let count = handed_out.len();
                let failed = match sockhop_deliver::handle(app, event).await {
                    Ok(response) => response
                        .batch_item_failures
                        .into_iter()
                        .map(|f| f.item_identifier)
                        .collect(),
                    // The handler never fails as a whole; if it did, all of it
                    // is handed out again.
                    Err(_) => handed_out,
                };
                queue.settle(&group, count, &failed);
            });
        }
        let retry = queue.next_retry();
        tokio::select! {
            _ = queue.wake.notified() => {}
            _ = async {
                match retry {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            } => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enqueue(queue: &LocalQueue, group: &str, dedup: &str, body: &str) {
        futures::executor::block_on(queue.send(Enqueue {
            group: group.into(),
            deduplication_id: dedup.into(),
            body: body.into(),
        }))
        .expect("queued");
    }

    fn bodies(event: &SqsEvent) -> Vec<&str> {
        event
            .records
            .iter()
            .map(|r| r.body.as_deref().unwrap_or_default())
            .collect()
    }

    #[test]
    fn one_batch_per_group_at_a_time_in_order_deduplicated() {
        let queue = LocalQueue::default();
        for i in 0..12 {
            enqueue(&queue, "a", &format!("a{i}"), &format!("a{i}"));
        }
        enqueue(&queue, "a", "a3", "duplicate");
        enqueue(&queue, "b", "b0", "b0");
        // The same id on another channel is another message (per-group scope).
        enqueue(&queue, "b", "a0", "b1");
        let now = Instant::now();
        let mut batches = queue.take_ready(now, 1_000);
        batches.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(batches.len(), 2);
        let (_, a) = &batches[0];
        assert_eq!(
            bodies(a),
            (0..10).map(|i| format!("a{i}")).collect::<Vec<_>>()
        );
        assert_eq!(bodies(&batches[1].1), ["b0", "b1"]);
        // Busy groups are not handed out again.
        assert!(queue.take_ready(now, 1_000).is_empty());
        let seq: Vec<u128> = a
            .records
            .iter()
            .map(|r| r.attributes["SequenceNumber"].parse().expect("number"))
            .collect();
        assert!(seq.windows(2).all(|w| w[0] < w[1]), "{seq:?}");
        queue.settle("a", 10, &HashSet::new());
        let rest = queue.take_ready(now, 2_000);
        assert_eq!(bodies(&rest[0].1), ["a10", "a11"]);
        assert_eq!(
            rest[0].1.records[0].attributes["ApproximateFirstReceiveTimestamp"],
            "2000"
        );
    }

    #[test]
    fn redelivery_pauses_double_and_outlast_a_database_restart() {
        let pauses: Vec<u64> = (1..=6)
            .map(|r| redelivery_pause(r).as_millis() as u64)
            .collect();
        assert_eq!(pauses, [1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
        let before_dead: Duration = (1..MAX_RECEIVES).map(redelivery_pause).sum();
        assert!(before_dead >= Duration::from_secs(15), "{before_dead:?}");
    }

    #[test]
    fn failures_come_back_in_order_with_their_first_receive_time_then_die() {
        let queue = LocalQueue::default();
        for i in 0..3 {
            enqueue(&queue, "a", &format!("{i}"), &format!("m{i}"));
        }
        let start = Instant::now();
        let first = queue.take_ready(start, 1_000).remove(0).1;
        let ids: Vec<String> = first
            .records
            .iter()
            .filter_map(|r| r.message_id.clone())
            .collect();
        // m0 delivered; m1 failed, so m1 and m2 come back.
        queue.settle("a", 3, &ids[1..].iter().cloned().collect());
        assert!(queue.next_retry().is_some(), "a pause before the retry");
        assert!(queue.take_ready(start, 1_500).is_empty());
        let mut later = start + Duration::from_secs(60);
        for _ in 1..MAX_RECEIVES {
            let (_, again) = queue
                .take_ready(later, 5_000)
                .pop()
                .expect("handed out again");
            assert_eq!(bodies(&again), ["m1", "m2"]);
            assert_eq!(
                again.records[0].attributes["ApproximateFirstReceiveTimestamp"], "1000",
                "fixed at the first receive, so the id stays the same"
            );
            queue.settle("a", 2, &ids[1..].iter().cloned().collect());
            later += Duration::from_secs(60);
        }
        assert_eq!(queue.stats().dead_letters, 1, "m1 set aside");
        let (_, last) = queue.take_ready(later, 9_000).pop().expect("m2 goes on");
        assert_eq!(bodies(&last), ["m2"]);
    }
}
