//! The effect driver: the one place that performs what operations decided —
//! posts to sockets, closes them, and cleans up connections found gone — and
//! the entry points handlers call (run an operation, then perform its effects).
//!
//! Cleanup never runs inside a delivery: sends report the connections they
//! found gone, and a worklist cleans those up after the sends are done, each
//! once, so many sockets dying at once cost one cleanup each. What a cleanup
//! means for presence members is queued on the channel's ordered path.

use crate::adapters::dynamodb::{classify_stream_record, partition_of};
use crate::effects::{Effect, Effects};
use crate::gateway::{Delivery, FanOut, PostError};
use crate::metrics::Measure;
use crate::ops::deliver::{LaneDelivery, MembershipChange, Queued};
use crate::ops::dispatch::{self, Outcome, Request};
use crate::ops::internal;
use crate::ops::{self, Ctx};
use crate::pubsub::{Origin, PubSubEvent};
use crate::runtime::app::App;
use crate::store::StoreError;
use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::stream::{self, StreamExt};
use sockhop_core::clock::Timestamp;
use sockhop_core::error::ProtocolError;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

/// Stream partitions handled at once within one batch.
const PARTITION_CONCURRENCY: usize = 16;
/// Connections cleaned up at once after a batch.
const CLEANUP_CONCURRENCY: usize = 16;
/// How long a greeting waits for a socket that is not open yet: the stream
/// record can arrive before API Gateway accepts posts to it.
const GREETING_PATIENCE: Duration = Duration::from_secs(3);

/// What performing a set of effects did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Frames that reached a socket.
    pub delivered: usize,
    /// Frames that did not reach a socket still open: each such connection is
    /// closed, so its client reconnects and catches up from history instead of
    /// silently missing a message.
    pub failed: usize,
    /// Connections cleaned up, in order.
    pub cleaned: Vec<String>,
    /// Backend events the sinks did not accept after their retries.
    pub events_lost: usize,
    /// Time spent posting frames to sockets.
    pub sending: Duration,
}

impl Report {
    /// Adds a later pass's report to this one.
    pub fn absorb(&mut self, other: Report) {
        self.delivered += other.delivered;
        self.failed += other.failed;
        self.cleaned.extend(other.cleaned);
        self.events_lost += other.events_lost;
        self.sending += other.sending;
    }
}

/// Performs effects as they come, and keeps what they found — connections
/// gone or to be closed — for [`Performer::finish`], so cleanup never runs on
/// the delivery path.
pub struct Performer<'a> {
    app: &'a App,
    now: Timestamp,
    report: Report,
    /// Connections that missed a frame, closed at the finish.
    to_close: Vec<String>,
    worklist: VecDeque<String>,
    /// Every connection queued for cleanup: later sends skip it.
    known_gone: BTreeSet<String>,
    /// Backend events of effects performed in full, published at the finish.
    events: Vec<PubSubEvent>,
}

impl<'a> Performer<'a> {
    pub fn new(app: &'a App, now: Timestamp) -> Self {
        Performer {
            app,
            now,
            report: Report::default(),
            to_close: Vec::new(),
            worklist: VecDeque::new(),
            known_gone: BTreeSet::new(),
            events: Vec::new(),
        }
    }

    /// Performs `effects` in order: each frame is sent before the next effect.
    /// Fails only when a member list could not be remembered (the queued change
    /// that told it must then run again, or a later change would tell too little).
    pub async fn effects(&mut self, effects: Effects) -> Result<(), StoreError> {
        let app = self.app;
        // Kept only if every effect before them was performed: a record that
        // fails runs again and makes them again.
        let mut events = Vec::new();
        for effect in effects {
            match effect {
                Effect::Send { mut to, frame } => {
                    to.retain(|id| !self.known_gone.contains(id));
                    if to.is_empty() {
                        continue;
                    }
                    let started = std::time::Instant::now();
                    let fan_out = app.gateway.post_many(&to, &frame).await;
                    self.sent(fan_out, started);
                }
                Effect::Pipeline { sends } => {
                    let mut chains: Vec<(String, Vec<&str>)> = Vec::new();
                    let mut place: HashMap<&str, usize> = HashMap::new();
                    for (to, frame) in &sends {
                        for id in to.iter().filter(|id| !self.known_gone.contains(*id)) {
                            let at = *place.entry(id.as_str()).or_insert_with(|| {
                                chains.push((id.clone(), Vec::new()));
                                chains.len() - 1
                            });
                            chains[at].1.push(frame.as_str());
                        }
                    }
                    let started = std::time::Instant::now();
                    let fan_out = app.gateway.post_chains(chains).await;
                    self.sent(fan_out, started);
                }
                Effect::Greet { to, frame } => {
                    match app.gateway.greet(&to, &frame, GREETING_PATIENCE).await {
                        Delivery::Delivered => self.report.delivered += 1,
                        Delivery::Gone => self.found_gone(to),
                        Delivery::Failed(reason) => self.missed_a_frame(to, &reason),
                    }
                }
                Effect::Close { connection_id } => {
                    self.to_close.push(connection_id.clone());
                    self.found_gone(connection_id);
                }
                Effect::Cleanup { connection_id } => self.found_gone(connection_id),
                Effect::RememberMembers {
                    channel,
                    members,
                    ttl,
                } => {
                    app.store
                        .remember_members(&channel, members.as_deref(), ttl)
                        .await?
                }
                Effect::Emit(event) => events.push(*event),
            }
        }
        self.events.append(&mut events);
        Ok(())
    }

    /// Closes what must be closed, then cleans up every connection found gone
    /// (and every one an effect asked to clean up), in the order found.
    pub async fn finish(mut self) -> Report {
        let cx = Ctx::new(self.app, self.now);
        for connection_id in std::mem::take(&mut self.to_close) {
            if let Err(PostError::Failed(reason)) = self.app.gateway.close(&connection_id).await {
                tracing::warn!(connection_id, %reason, "closing the socket failed");
            }
        }
        // Each id enters the worklist once (`found_gone` checks `known_gone`);
        // cleanups of different connections run side by side (a burst of gone
        // sockets holds up its channel's queue group until they are done).
        let worklist: Vec<String> = self.worklist.drain(..).collect();
        let cleaned: Vec<String> = stream::iter(worklist)
            .map(|connection_id| async move {
                ops::disconnect::cleanup(cx, &connection_id).await;
                connection_id
            })
            .buffered(CLEANUP_CONCURRENCY)
            .collect()
            .await;
        self.report.cleaned.extend(cleaned);
        // Last: events never hold up a frame.
        let (app, events) = (self.app, std::mem::take(&mut self.events));
        self.report.events_lost += publish_events(app, events).await;
        record_activity(app, &self.report);
        self.report
    }

    /// [`Performer::finish`], handing back the backend events instead of
    /// publishing them (the stream path publishes a batch's events at once).
    async fn finish_keeping_events(mut self) -> (Report, Vec<PubSubEvent>) {
        let events = std::mem::take(&mut self.events);
        (self.finish().await, events)
    }

    /// What a fan-out begun at `started` did: counted, and the connections
    /// it found gone or that missed a frame queued for cleanup.
    fn sent(&mut self, fan_out: FanOut, started: std::time::Instant) {
        self.report.sending += started.elapsed();
        self.report.delivered += fan_out.delivered;
        for id in fan_out.gone {
            self.found_gone(id);
        }
        for (id, reason) in fan_out.failed {
            self.missed_a_frame(id, &reason);
        }
    }

    /// Queues a connection for cleanup once; later sends skip it.
    fn found_gone(&mut self, id: String) {
        if self.known_gone.insert(id.clone()) {
            self.worklist.push_back(id);
        }
    }

    /// A frame did not arrive at a socket that may be open: reported, and the
    /// connection closed and cleaned up rather than left with a gap.
    fn missed_a_frame(&mut self, id: String, reason: &str) {
        self.report.failed += 1;
        tracing::error!(connection_id = %id, %reason, "frame not delivered; closing the connection");
        if !self.known_gone.contains(&id) {
            self.to_close.push(id.clone());
            self.found_gone(id);
        }
    }
}

/// How long publishing backend events may take at most: a slow sink delays
/// the end of an invocation by this much, never into its timeout (which would
/// hand the whole batch out again).
const EVENTS_BUDGET: Duration = Duration::from_secs(3);

/// Publishes backend events; how many were lost (reported in the log).
async fn publish_events(app: &App, events: Vec<PubSubEvent>) -> usize {
    if events.is_empty() {
        return 0;
    }
    let total = events.len();
    match tokio::time::timeout(EVENTS_BUDGET, app.events.publish(events)).await {
        Ok(Ok(())) => 0,
        Ok(Err(err)) => {
            tracing::error!(error = %err, "backend events lost");
            err.lost()
        }
        Err(_) => {
            tracing::error!(
                total,
                "backend events lost: the sinks took longer than {EVENTS_BUDGET:?}"
            );
            total
        }
    }
}

/// Adds what a performer did to the process's metrics.
fn record_activity(app: &App, report: &Report) {
    let activity = &app.activity;
    activity.add(Measure::FramesDelivered, report.delivered as f64);
    activity.add(Measure::FramesFailed, report.failed as f64);
    activity.add(Measure::GoneCleanups, report.cleaned.len() as f64);
    activity.add(Measure::EventsLost, report.events_lost as f64);
    activity.add(
        Measure::FanOutMilliseconds,
        report.sending.as_secs_f64() * 1000.0,
    );
}

/// Performs `effects`, then the cleanups they called for.
pub async fn perform(app: &App, now: Timestamp, effects: Effects) -> Report {
    let mut performer = Performer::new(app, now);
    if let Err(err) = performer.effects(effects).await {
        tracing::error!(error = %err, "an effect could not be performed");
    }
    performer.finish().await
}

/// `$default`: one client frame, answered over the socket; `origin` names the
/// frame's request for backend events.
pub async fn client_frame(
    app: &App,
    now: Timestamp,
    connection_id: &str,
    text: &str,
    origin: &Origin,
) -> Report {
    let cx = Ctx::new(app, now).with_origin(origin);
    let effects = dispatch::frame(cx, connection_id, text).await;
    perform(app, now, effects).await
}

/// A command with a reply (Client HTTP API, server publish): runs it, performs
/// its effects, returns the reply. Its backend events name no request.
pub async fn command(
    app: &App,
    now: Timestamp,
    request: Request<'_>,
) -> Result<serde_json::Value, ProtocolError> {
    let Outcome { reply, effects } = dispatch::run(Ctx::new(app, now), request).await?;
    perform(app, now, effects).await;
    Ok(reply)
}

/// [`command`], for the request `origin` describes.
pub async fn command_from(
    app: &App,
    now: Timestamp,
    request: Request<'_>,
    origin: &Origin,
) -> Result<serde_json::Value, ProtocolError> {
    let cx = Ctx::new(app, now).with_origin(origin);
    let Outcome { reply, effects } = dispatch::run(cx, request).await?;
    perform(app, now, effects).await;
    Ok(reply)
}

/// `$disconnect`: the connection and everything it contributed go.
pub async fn disconnected(app: &App, now: Timestamp, connection_id: &str) -> Report {
    let mut effects = Effects::new();
    effects.cleanup(connection_id);
    perform(app, now, effects).await
}

/// The sweeper's pass: keepAlive frames, closes and their cleanups.
pub async fn sweep(app: &App, now: Timestamp) -> Result<Report, ProtocolError> {
    let schedule = ops::sweep::SweepSchedule::of(&app.config);
    let effects = ops::sweep::sweep(Ctx::new(app, now), schedule).await?;
    Ok(perform(app, now, effects).await)
}

/// One sweeper invocation (every minute in AWS): a pass now, then, while a
/// connection with a `heartbeatTimeout` falls due before `until`, another pass
/// every `tick`. So a missed heartbeat is acted on within a tick of its
/// deadline rather than up to a whole interval late, and an installation
/// without heartbeat deadlines pays for one pass a minute as before. Each pass
/// reads the time through `clock`.
pub async fn sweep_within(
    app: &App,
    until: Timestamp,
    tick: Duration,
    clock: impl Fn() -> Timestamp,
) -> Result<Report, ProtocolError> {
    let mut report = sweep(app, clock()).await?;
    loop {
        let now = clock();
        let tick_ms = i64::try_from(tick.as_millis()).unwrap_or(i64::MAX);
        if now.millis().saturating_add(tick_ms) >= until.millis()
            || !ops::sweep::heartbeats_ahead(Ctx::new(app, now), until.secs()).await?
        {
            return Ok(report);
        }
        app.pacing.pause.pause(tick).await;
        report.absorb(sweep(app, clock()).await?);
    }
}

/// A batch of the table's stream. Records of one partition run in stream
/// order, each record's frames sent before the next record runs; partitions
/// run concurrently. A record that fails stops its partition and is reported
/// as a batch item failure, so Lambda (or the local poller) retries from it.
pub async fn stream_batch(app: &App, now: Timestamp, event: Event) -> DynamoDbEventResponse {
    let mut partitions: Vec<(String, Vec<EventRecord>)> = Vec::new();
    for record in event.records {
        let partition = partition_of(&record);
        match partitions.iter_mut().find(|(p, _)| *p == partition) {
            Some((_, records)) => records.push(record),
            None => partitions.push((partition, vec![record])),
        }
    }
    let events = tokio::sync::Mutex::new(Vec::new());
    let work = partitions
        .into_iter()
        .map(|(_, records)| stream_partition(app, now, records, &events));
    let failed: Vec<Option<String>> = stream::iter(work)
        .buffer_unordered(PARTITION_CONCURRENCY)
        .collect()
        .await;
    publish_events(app, events.into_inner()).await;
    let mut response = DynamoDbEventResponse::default();
    for sequence_number in failed.into_iter().flatten() {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(sequence_number);
        response.batch_item_failures.push(failure);
    }
    response
}

/// Runs one partition's records in order; the sequence number of the first
/// that failed, if any.
async fn stream_partition(
    app: &App,
    now: Timestamp,
    records: Vec<EventRecord>,
    events: &tokio::sync::Mutex<Vec<PubSubEvent>>,
) -> Option<String> {
    let cx = Ctx::new(app, now);
    // Records run one after another; their backend events wait for the batch.
    let perform_keeping = |effects: Effects| async move {
        let mut performer = Performer::new(app, now);
        if let Err(err) = performer.effects(effects).await {
            tracing::error!(error = %err, "an effect could not be performed");
        }
        let (_, told) = performer.finish_keeping_events().await;
        events.lock().await.extend(told);
    };
    for record in records {
        let change = classify_stream_record(&record);
        match ops::stream::apply(cx, &change).await {
            Ok(effects) => {
                perform_keeping(effects).await;
            }
            Err(err) => {
                tracing::error!(
                    code = err.code.as_str(),
                    message = %err.message,
                    sequence_number = ?record.change.sequence_number,
                    "stream record failed; reported for retry"
                );
                return Some(record.change.sequence_number.clone().unwrap_or_default());
            }
        }
    }
    None
}

/// A batch from the delivery queue (SQS FIFO, or the local stage's queue).
/// Each channel (message group) runs in queue order, each message's frames sent
/// before the next; channels run concurrently. When a message fails, it and
/// every later message of its channel in this batch are reported as batch item
/// failures, so the queue hands them out again in the same order.
pub async fn queue_batch(app: &App, now: Timestamp, event: SqsEvent) -> SqsBatchResponse {
    let mut groups: Vec<(String, Vec<SqsMessage>)> = Vec::new();
    for record in event.records {
        let group = record
            .attributes
            .get("MessageGroupId")
            .cloned()
            .unwrap_or_default();
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, records)) => records.push(record),
            None => groups.push((group, vec![record])),
        }
    }
    let work = groups
        .into_iter()
        .map(|(_group, records)| queue_group(app, now, records));
    let failed: Vec<Vec<String>> = stream::iter(work)
        .buffer_unordered(PARTITION_CONCURRENCY)
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    for message_id in failed.into_iter().flatten() {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = message_id;
        response.batch_item_failures.push(failure);
    }
    response
}

/// One channel's queued messages in order, with its subscribers read once;
/// the ids of the messages to hand out again (the first failure and the rest).
/// The channel is the records' own (the group id may be its digest:
/// `queue::message_group`).
async fn queue_group(app: &App, now: Timestamp, records: Vec<SqsMessage>) -> Vec<String> {
    let cx = Ctx::new(app, now);
    let ids = |from: &[SqsMessage]| -> Vec<String> {
        from.iter()
            .map(|r| r.message_id.clone().unwrap_or_default())
            .collect()
    };
    let parsed: Vec<_> = records.iter().map(queued_message).collect();
    // A record's place on the channel's ordered path (a message's id, unless
    // it was given one before it was queued).
    let positions: Vec<String> = records
        .iter()
        .zip(&parsed)
        .map(|(record, p)| match (queue_position(record), p) {
            (Ok(position), _) => position,
            (Err(_), Ok((_, id))) => id.clone(),
            (Err(_), Err(_)) => String::new(),
        })
        .collect();
    let channel = parsed
        .iter()
        .find_map(|p| p.as_ref().ok().map(|(q, _)| q.channel().to_owned()))
        .unwrap_or_default();
    // Messages share one read of the subscriber ids; a storage write or a
    // membership change reads the channel itself, after writing. Both need
    // where the channel's recovery log stands, which that read also gives.
    let needs_audience = |p: &Result<(Queued, String), ProtocolError>| {
        matches!(p, Ok((Queued::Message(_) | Queued::StorageWrite(_), _)))
    };
    let mut audience = if parsed.iter().any(needs_audience) {
        match ops::deliver::audience(cx, &channel).await {
            Ok(audience) => audience,
            Err(err) => {
                tracing::error!(code = err.code.as_str(), %channel, "subscribers unreadable; batch retried");
                return ids(&records);
            }
        }
    } else {
        ops::deliver::Audience::default()
    };
    // Cleanups of connections found gone wait until the channel's messages are out.
    let mut performer = Performer::new(app, now);
    let mut retry = Vec::new();
    fn change<'a>(
        (p, position): (&'a Result<(Queued, String), ProtocolError>, &'a String),
    ) -> Option<(&'a MembershipChange, &'a str)> {
        match p {
            Ok((Queued::Membership { change, .. }, _)) => Some((change, position.as_str())),
            _ => None,
        }
    }
    fn lane(p: &Result<(Queued, String), ProtocolError>) -> Option<&LaneDelivery> {
        match p {
            Ok((Queued::Lane(lane), _)) => Some(lane),
            _ => None,
        }
    }
    let mut i = 0;
    while i < records.len() {
        // A run of membership changes is applied together: one read of the
        // channel and one announcement for a burst of joins and leaves.
        let changes: Vec<(&MembershipChange, &str)> = parsed[i..]
            .iter()
            .zip(&positions[i..])
            .map_while(change)
            .collect();
        // A run of a lane's records is posted together, each connection's
        // frames in order, no connection waiting for another's.
        let lanes: Vec<&LaneDelivery> = parsed[i..].iter().map_while(lane).collect();
        let run = changes.len().max(lanes.len()).max(1);
        let delivered = match &parsed[i] {
            Ok((Queued::Membership { .. }, _)) => {
                ops::membership::apply(cx, &channel, &changes).await
            }
            Ok((Queued::StorageWrite(write), id)) => {
                ops::storage::apply(cx, write, id, &mut audience.log).await
            }
            Ok((Queued::Message(message), id)) => {
                ops::deliver::deliver(cx, &mut audience, message, id.clone(), &positions[i]).await
            }
            Ok((Queued::Lane(_), _)) => Ok(ops::deliver::deliver_lanes(&lanes)),
            // The greeting is posted before the auto-subscriptions are made,
            // so their answers come after it.
            Ok((Queued::Greeting { connection_id }, _)) => {
                match ops::connect::greet(cx, connection_id).await {
                    Ok(greeting) => match performer.effects(greeting).await {
                        Ok(()) => ops::connect::auto_subscribe(cx, connection_id).await,
                        Err(err) => Err(internal(err)),
                    },
                    Err(err) => Err(err),
                }
            }
            Err(err) => Err(err.clone()),
        };
        // A member list not remembered fails the change that told it: run
        // again, it tells the same difference (a repeat, never a loss).
        let performed = match delivered {
            Ok(effects) => performer.effects(effects).await.map_err(internal),
            Err(err) => Err(err),
        };
        // A welcome changes who the later messages go to (a resumed
        // subscription gets nothing live before it) and where the log stands.
        if performed.is_ok() && !changes.is_empty() && parsed[i + run..].iter().any(needs_audience)
        {
            match ops::deliver::audience(cx, &channel).await {
                Ok(read) => audience = read,
                Err(err) => {
                    tracing::error!(code = err.code.as_str(), %channel, "subscribers unreadable; the rest of the batch is retried");
                    retry = ids(&records[i + run..]);
                    break;
                }
            }
        }
        if let Err(err) = performed {
            tracing::error!(
                code = err.code.as_str(),
                message = %err.message,
                message_id = ?records[i].message_id,
                %channel,
                "queued message failed; it and the rest of its channel are retried"
            );
            retry = ids(&records[i..]);
            break;
        }
        i += run;
    }
    performer.finish().await;
    retry
}

/// The message a queue record carries and the id it gets: the publisher's when
/// it was eager, else the one its queue position gives.
fn queued_message(record: &SqsMessage) -> Result<(Queued, String), ProtocolError> {
    let body = record.body.as_deref().unwrap_or_default();
    let queued: Queued = serde_json::from_str(body).map_err(ops::deliver::unreadable)?;
    if let Some(id) = queued.preset_id() {
        let id = id.to_owned();
        return Ok((queued, id));
    }
    Ok((queued, queue_position(record)?))
}

/// The id a record's place in the queue gives it: its position on the
/// channel's ordered path ([`sockhop_core::ids::queued_id`]).
fn queue_position(record: &SqsMessage) -> Result<String, ProtocolError> {
    let attribute = |name: &str| {
        record
            .attributes
            .get(name)
            .ok_or_else(|| ops::deliver::unreadable(format!("no {name} attribute")))
    };
    let first_received: u64 = attribute("ApproximateFirstReceiveTimestamp")?
        .parse()
        .map_err(ops::deliver::unreadable)?;
    let sequence: u128 = attribute("SequenceNumber")?
        .parse()
        .map_err(ops::deliver::unreadable)?;
    Ok(sockhop_core::ids::queued_id(first_received, sequence))
}
