//! The services around the real delivery code, with AWS's waits: sockets
//! that only count and timestamp frames ([`ModelSockets`], the `Sockets`
//! port), and SQS FIFO with Lambda's event source ([`ModelQueue`], the
//! `DeliveryQueue` port, run by [`run_event_source`] through the deliver
//! function's own `driver::queue_batch`).

use super::latency::{Params, Sampler};
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use futures::future::BoxFuture;
use sockhop::clock::Timestamp;
use sockhop::gateway::{PostError, Sockets};
use sockhop::queue::{DeliveryQueue, Enqueue, QueueError};
use sockhop::App;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How a socket answers posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Healthy,
    /// Each post takes [`Params::stalled_post`], then arrives.
    Stalled,
    /// Every post is answered 429, however the account's quota stands.
    Throttled,
}

/// A frame that reached a socket.
#[derive(Debug, Clone)]
pub struct Frame {
    pub connection_id: String,
    /// The message id of a message frame.
    pub message_id: Option<String>,
    pub greeting: bool,
    pub at: Instant,
}

/// Arrivals of one message: how many sockets have it, and when the last did.
#[derive(Debug, Clone, Copy)]
pub struct Arrivals {
    pub count: usize,
    pub last: Instant,
}

#[derive(Default)]
struct SocketState {
    /// `$connect` has not returned: posts answer Gone.
    opening: HashSet<String>,
    closed: HashSet<String>,
    behaviour: HashMap<String, Behaviour>,
    frames: Vec<Frame>,
    arrivals: HashMap<String, Arrivals>,
}

/// API Gateway's account-wide request quota: a token bucket.
struct AccountQuota {
    per_second: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
}

impl AccountQuota {
    fn new(params: &Params) -> Option<Mutex<Self>> {
        (params.account_rps > 0.0).then(|| {
            Mutex::new(AccountQuota {
                per_second: params.account_rps,
                burst: params.account_burst.max(1.0),
                tokens: params.account_burst.max(1.0),
                refilled: Instant::now(),
            })
        })
    }

    /// Whether a request now is within the quota (and spends its token).
    fn admit(&mut self) -> bool {
        let now = Instant::now();
        let refill = (now - self.refilled).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The `Sockets` port with a sampled PostToConnection round trip and no
/// socket behind it.
pub struct ModelSockets {
    params: Params,
    sampler: Arc<Sampler>,
    state: Mutex<SocketState>,
    quota: Option<Mutex<AccountQuota>>,
    /// PostToConnection requests, each retry of a throttled one included.
    pub posts: AtomicU64,
    pub gone_answers: AtomicU64,
    /// Posts answered 429.
    pub throttled_answers: AtomicU64,
}

/// The message id of a message frame: its first field (`message_frame`).
fn message_id_of(frame: &str) -> Option<String> {
    let rest = frame.strip_prefix("{\"id\":\"")?;
    rest.split('"').next().map(str::to_owned)
}

impl ModelSockets {
    pub fn new(params: Params, sampler: Arc<Sampler>) -> Self {
        ModelSockets {
            quota: AccountQuota::new(&params),
            params,
            sampler,
            state: Mutex::default(),
            posts: AtomicU64::new(0),
            gone_answers: AtomicU64::new(0),
            throttled_answers: AtomicU64::new(0),
        }
    }

    /// API Gateway has the upgrade; `$connect` runs.
    pub fn opening(&self, connection_id: &str) {
        lock(&self.state).opening.insert(connection_id.to_owned());
    }

    /// `$connect` returned (and API Gateway accepts posts).
    pub fn opened(&self, connection_id: &str) {
        lock(&self.state).opening.remove(connection_id);
    }

    pub fn set_behaviour(&self, connection_id: &str, behaviour: Behaviour) {
        lock(&self.state)
            .behaviour
            .insert(connection_id.to_owned(), behaviour);
    }

    pub fn arrivals(&self, message_id: &str) -> Option<Arrivals> {
        lock(&self.state).arrivals.get(message_id).copied()
    }

    /// Connections closed by the server whose ids start with `prefix`.
    pub fn closed_with_prefix(&self, prefix: &str) -> usize {
        lock(&self.state)
            .closed
            .iter()
            .filter(|id| id.starts_with(prefix))
            .count()
    }

    /// Forgets closures of connections starting with `prefix` (their
    /// subscriptions were seeded again).
    pub fn reopen_prefix(&self, prefix: &str) {
        lock(&self.state)
            .closed
            .retain(|id| !id.starts_with(prefix));
    }

    /// Every frame so far, and forgets them.
    pub fn take_frames(&self) -> Vec<Frame> {
        std::mem::take(&mut lock(&self.state).frames)
    }
}

impl Sockets for ModelSockets {
    fn post<'a>(
        &'a self,
        connection_id: &'a str,
        frame: &'a str,
    ) -> BoxFuture<'a, Result<(), PostError>> {
        Box::pin(async move {
            let (opening, closed, behaviour) = {
                let state = lock(&self.state);
                (
                    state.opening.contains(connection_id),
                    state.closed.contains(connection_id),
                    state
                        .behaviour
                        .get(connection_id)
                        .copied()
                        .unwrap_or(Behaviour::Healthy),
                )
            };
            let round_trip = self.sampler.wait(&self.params.post);
            self.posts.fetch_add(1, Ordering::Relaxed);
            let admitted = self.quota.as_ref().is_none_or(|q| lock(q).admit());
            if !admitted || behaviour == Behaviour::Throttled {
                self.throttled_answers.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(round_trip).await;
                return Err(PostError::Throttled);
            }
            if opening || closed {
                self.gone_answers.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(round_trip).await;
                return Err(PostError::Gone);
            }
            match behaviour {
                Behaviour::Stalled => {
                    tokio::time::sleep(self.sampler.wait(&self.params.stalled_post)).await;
                }
                _ => tokio::time::sleep(round_trip).await,
            }
            let at = Instant::now();
            let message_id = message_id_of(frame);
            let greeting = message_id.is_none() && frame.contains("\"hotsock.connected\"");
            let mut state = lock(&self.state);
            if let Some(id) = &message_id {
                let arrivals = state
                    .arrivals
                    .entry(id.clone())
                    .or_insert(Arrivals { count: 0, last: at });
                arrivals.count += 1;
                arrivals.last = arrivals.last.max(at);
            }
            state.frames.push(Frame {
                connection_id: connection_id.to_owned(),
                message_id,
                greeting,
                at,
            });
            Ok(())
        })
    }

    fn close<'a>(&'a self, connection_id: &'a str) -> BoxFuture<'a, Result<(), PostError>> {
        Box::pin(async move {
            self.posts.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(self.sampler.wait(&self.params.post)).await;
            lock(&self.state).closed.insert(connection_id.to_owned());
            Ok(())
        })
    }

    fn is_open<'a>(&'a self, connection_id: &'a str) -> BoxFuture<'a, Result<bool, PostError>> {
        Box::pin(async move {
            self.posts.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(self.sampler.wait(&self.params.post)).await;
            Ok(!lock(&self.state).closed.contains(connection_id))
        })
    }
}

struct Pending {
    message_id: String,
    body: String,
    sequence: u128,
    /// When the event source can hand it to an invocation.
    visible_at: Instant,
    first_received_ms: Option<u64>,
}

#[derive(Default)]
struct Group {
    messages: VecDeque<Pending>,
    busy: bool,
    retry_at: Option<Instant>,
}

#[derive(Default)]
struct QueueState {
    groups: HashMap<String, Group>,
    seen: HashSet<(String, String)>,
    sequence: u128,
}

/// What the queue and its invocations did, for the cost figures.
#[derive(Debug, Default)]
pub struct QueueCounts {
    pub sends: AtomicU64,
    /// Deliver invocations (each a receive and a delete on SQS).
    pub batches: AtomicU64,
    /// Stream invocations (today's greeting).
    pub stream_invocations: AtomicU64,
    /// Every invocation's time, in microseconds.
    pub invocation_us: AtomicU64,
    pub in_flight: AtomicU64,
    pub most_in_flight: AtomicU64,
}

/// A snapshot of [`QueueCounts`] (and the posts), to subtract.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Tally {
    pub sends: u64,
    pub batches: u64,
    pub stream_invocations: u64,
    pub invocation_us: u64,
    pub posts: u64,
}

impl Tally {
    pub fn minus(self, before: Tally) -> Tally {
        Tally {
            sends: self.sends - before.sends,
            batches: self.batches - before.batches,
            stream_invocations: self.stream_invocations - before.stream_invocations,
            invocation_us: self.invocation_us - before.invocation_us,
            posts: self.posts - before.posts,
        }
    }
}

/// SQS FIFO as Lambda's event source sees it: a group is handed to one
/// invocation at a time, in order, up to a batch of `batch_size` messages
/// that have become receivable; groups go to invocations concurrently.
/// Today's design greets from the table's stream: with `greet_from_stream`,
/// a greeting record costs no SendMessage and waits for the stream instead.
pub struct ModelQueue {
    params: Params,
    sampler: Arc<Sampler>,
    greet_from_stream: bool,
    state: Mutex<QueueState>,
    wake: Notify,
    pub counts: QueueCounts,
}

const GREETING_GROUP_PREFIX: &str = "#greet#";
/// The pause before a failed message is handed out again (SQS's visibility
/// timeout, shortened: failures are not what the model measures).
const REDELIVERY_PAUSE: Duration = Duration::from_secs(1);

impl ModelQueue {
    pub fn new(params: Params, sampler: Arc<Sampler>, greet_from_stream: bool) -> Self {
        ModelQueue {
            params,
            sampler,
            greet_from_stream,
            state: Mutex::default(),
            wake: Notify::new(),
            counts: QueueCounts::default(),
        }
    }

    fn push(&self, message: Enqueue, visible_at: Instant) {
        let mut state = lock(&self.state);
        let key = (message.group.clone(), message.deduplication_id);
        if !state.seen.insert(key) {
            return;
        }
        state.sequence += 1;
        let sequence = state.sequence;
        let group = state.groups.entry(message.group).or_default();
        // FIFO: nothing is receivable before the message ahead of it.
        let visible_at = group
            .messages
            .back()
            .map_or(visible_at, |last| last.visible_at.max(visible_at));
        group.messages.push_back(Pending {
            message_id: format!("model-{sequence}"),
            body: message.body,
            sequence,
            visible_at,
            first_received_ms: None,
        });
        drop(state);
        self.wake.notify_one();
    }

    /// Hands out every idle group whose first message is receivable at
    /// `now`: marks it busy and returns its batch.
    pub fn take_ready(&self, now: Instant, wall_ms: u64) -> Vec<(String, SqsEvent)> {
        let batch_size = self.params.batch_size;
        let mut state = lock(&self.state);
        let mut batches = Vec::new();
        for (name, group) in state.groups.iter_mut() {
            let ready = group.messages.front().is_some_and(|m| m.visible_at <= now);
            if group.busy || !ready || group.retry_at.is_some_and(|t| t > now) {
                continue;
            }
            group.busy = true;
            group.retry_at = None;
            let records = group
                .messages
                .iter_mut()
                .take_while(|m| m.visible_at <= now)
                .take(batch_size)
                .map(|m| record(name, m, wall_ms))
                .collect();
            let mut event = SqsEvent::default();
            event.records = records;
            batches.push((name.clone(), event));
        }
        batches
    }

    /// When the next idle group's first message becomes receivable.
    fn next_ready(&self) -> Option<Instant> {
        lock(&self.state)
            .groups
            .values()
            .filter(|g| !g.busy)
            .filter_map(|g| {
                let head = g.messages.front()?.visible_at;
                Some(g.retry_at.map_or(head, |t| t.max(head)))
            })
            .min()
    }

    /// Settles a handed-out batch: what succeeded leaves; the first failure
    /// and what follows stay, in order.
    pub fn settle(&self, group_name: &str, handed_out: usize, failed: &HashSet<String>) {
        let mut state = lock(&self.state);
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
            if group
                .messages
                .front()
                .is_some_and(|m| failed.contains(&m.message_id))
            {
                group.retry_at = Some(Instant::now() + REDELIVERY_PAUSE);
            }
            if group.messages.is_empty() {
                state.groups.remove(group_name);
            }
        }
        drop(state);
        self.wake.notify_one();
    }

    /// Nothing waiting, nothing being delivered.
    pub fn is_idle(&self) -> bool {
        lock(&self.state).groups.is_empty() && self.counts.in_flight.load(Ordering::Relaxed) == 0
    }

    pub fn tally(&self, sockets: &ModelSockets) -> Tally {
        let c = &self.counts;
        Tally {
            sends: c.sends.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            stream_invocations: c.stream_invocations.load(Ordering::Relaxed),
            invocation_us: c.invocation_us.load(Ordering::Relaxed),
            // Throttled requests are not billed (AWS's answers on re:Post),
            // so a 429 is left out of the priced posts.
            posts: sockets.posts.load(Ordering::Relaxed)
                - sockets.throttled_answers.load(Ordering::Relaxed),
        }
    }
}

fn record(group: &str, message: &mut Pending, wall_ms: u64) -> SqsMessage {
    let first = *message.first_received_ms.get_or_insert(wall_ms);
    sockhop_local::queue::fifo_record(
        group,
        &message.message_id,
        &message.body,
        message.sequence,
        first,
    )
}

impl DeliveryQueue for ModelQueue {
    fn send(&self, message: Enqueue) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            let p = &self.params;
            if self.greet_from_stream && message.group.starts_with(GREETING_GROUP_PREFIX) {
                // Today: the connection item's stream record, read at the
                // shard's next poll, then the stream function's invoke.
                let wait = self.sampler.wait(&p.stream_record)
                    + self.sampler.uniform(p.stream_poll_ms)
                    + self.sampler.wait(&p.stream_invoke);
                self.push(message, Instant::now() + wait);
                return Ok(());
            }
            self.counts.sends.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(self.sampler.wait(&p.sqs_send)).await;
            let pickup = self.sampler.wait(&p.sqs_to_lambda);
            self.push(message, Instant::now() + pickup);
            Ok(())
        })
    }
}

/// Lambda's event source for the queue: each ready batch becomes an
/// invocation of the deliver function's code, within the account's
/// concurrency. Runs until the task is aborted.
pub async fn run_event_source(queue: Arc<ModelQueue>, app: Arc<App>, account: Arc<Semaphore>) {
    loop {
        let wall_ms = Timestamp::now().millis().max(0) as u64;
        for (group, event) in queue.take_ready(Instant::now(), wall_ms) {
            let (queue, app, account) = (queue.clone(), app.clone(), account.clone());
            let counts = &queue.counts;
            let now = counts.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            counts.most_in_flight.fetch_max(now, Ordering::Relaxed);
            tokio::spawn(async move {
                let handed_out = event.records.len();
                let Ok(_permit) = account.acquire().await else {
                    return;
                };
                let started = Instant::now();
                let response = sockhop::driver::queue_batch(&app, Timestamp::now(), event).await;
                let counts = &queue.counts;
                let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                counts.invocation_us.fetch_add(us, Ordering::Relaxed);
                if queue.greet_from_stream && group.starts_with(GREETING_GROUP_PREFIX) {
                    counts.stream_invocations.fetch_add(1, Ordering::Relaxed);
                } else {
                    counts.batches.fetch_add(1, Ordering::Relaxed);
                }
                let failed: HashSet<String> = response
                    .batch_item_failures
                    .into_iter()
                    .map(|f| f.item_identifier)
                    .collect();
                queue.settle(&group, handed_out, &failed);
                counts.in_flight.fetch_sub(1, Ordering::Relaxed);
            });
        }
        let next = queue
            .next_ready()
            .unwrap_or_else(|| Instant::now() + Duration::from_millis(200));
        tokio::select! {
            _ = queue.wake.notified() => {}
            _ = tokio::time::sleep_until(next.into()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::latency::DEFAULT;

    fn queue() -> ModelQueue {
        ModelQueue::new(DEFAULT, Arc::new(Sampler::new(1)), false)
    }

    fn message(group: &str, n: usize) -> Enqueue {
        Enqueue {
            group: group.to_owned(),
            deduplication_id: format!("{group}-{n}"),
            body: n.to_string(),
        }
    }

    fn bodies(event: &SqsEvent) -> Vec<String> {
        event
            .records
            .iter()
            .map(|r| r.body.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn a_group_is_handed_out_in_order_one_batch_at_a_time() {
        let queue = queue();
        let start = Instant::now();
        // Later messages sampled sooner still wait for the ones ahead.
        for n in 0..12 {
            let at = start + Duration::from_millis(if n == 0 { 50 } else { 10 });
            queue.push(message("a", n), at);
        }
        queue.push(message("a", 0), start); // a duplicate: dropped
        queue.push(message("b", 0), start);
        assert!(queue.take_ready(start, 0).iter().all(|(g, _)| g == "b"));
        let later = start + Duration::from_millis(60);
        let mut batches = queue.take_ready(later, 0);
        assert_eq!(batches.len(), 1, "b is busy");
        let (group, first) = batches.remove(0);
        assert_eq!(group, "a");
        let expected: Vec<String> = (0..10).map(|n| n.to_string()).collect();
        assert_eq!(bodies(&first), expected, "in order, at most 10");
        assert!(queue.take_ready(later, 0).is_empty(), "a is busy");
        queue.settle("a", 10, &HashSet::new());
        let rest = queue.take_ready(later, 0);
        assert_eq!(bodies(&rest[0].1), ["10", "11"]);
    }

    #[test]
    fn a_failed_message_and_those_behind_it_stay_in_order() {
        let queue = queue();
        let start = Instant::now();
        for n in 0..3 {
            queue.push(message("a", n), start);
        }
        let (_, event) = queue.take_ready(start, 0).remove(0);
        let second = event.records[1].message_id.clone().unwrap_or_default();
        queue.settle("a", 3, &HashSet::from([second]));
        let retry = start + REDELIVERY_PAUSE * 2;
        assert_eq!(bodies(&queue.take_ready(retry, 0)[0].1), ["1", "2"]);
    }

    #[test]
    fn message_frames_are_known_by_their_id() {
        assert_eq!(
            message_id_of(r#"{"id":"01ABC","event":"e","channel":"c","data":null}"#),
            Some("01ABC".into())
        );
        assert_eq!(message_id_of(r#"{"event":"hotsock.connected"}"#), None);
    }
}
