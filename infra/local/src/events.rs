//! Backend events on the local stage: instead of EventBridge and SNS, every
//! event goes to `GET /dev/events` (Server-Sent Events, one message per event,
//! `event:` its type) and, with `--events-url`, is POSTed to the developer's
//! webhook. Same bodies as in AWS. Neither can hold up delivery or grow
//! memory: a live reader that falls 1024 events behind skips what it missed
//! (and is told so), and the webhook's queue holds 1024 events, then drops.

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Router;
use futures::future::BoxFuture;
use futures::Stream;
use sockhop::pubsub::{EventSink, PubSubEvent, SinkError};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Events a live reader may fall behind, and the webhook's queue.
pub const BACKLOG: usize = 1024;
/// How long the webhook has to answer one event.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// One event, serialized once: its type and its JSON body.
#[derive(Debug, Clone)]
pub struct Told {
    pub kind: String,
    pub body: Arc<str>,
}

pub struct LocalEvents {
    live: broadcast::Sender<Told>,
    webhook: Option<mpsc::Sender<Told>>,
    dropped: AtomicU64,
}

impl LocalEvents {
    /// With `webhook`, a task POSTs each event to it in order.
    pub fn new(webhook: Option<String>) -> Arc<Self> {
        let (live, _) = broadcast::channel(BACKLOG);
        let webhook = webhook.map(|url| {
            let (tx, rx) = mpsc::channel(BACKLOG);
            tokio::spawn(post_each(url, rx));
            tx
        });
        Arc::new(LocalEvents {
            live,
            webhook,
            dropped: AtomicU64::new(0),
        })
    }

    /// Events the webhook's full queue did not take.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Told> {
        self.live.subscribe()
    }
}

impl EventSink for LocalEvents {
    /// The local stage always tells: a developer can watch at any time.
    fn enabled(&self) -> bool {
        true
    }

    fn publish(&self, events: Vec<PubSubEvent>) -> BoxFuture<'_, Result<(), SinkError>> {
        for event in events {
            let told = Told {
                kind: event.kind.clone(),
                body: serde_json::to_string(&event).unwrap_or_default().into(),
            };
            if let Some(webhook) = &self.webhook {
                if webhook.try_send(told.clone()).is_err() {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(event = %told.kind, "the events webhook is {BACKLOG} events behind; event dropped");
                }
            }
            // Nobody watching is fine.
            let _ = self.live.send(told);
        }
        Box::pin(async { Ok(()) })
    }
}

/// POSTs each event to `url` as JSON, one at a time, in order.
async fn post_each(url: String, mut events: mpsc::Receiver<Told>) {
    let client = reqwest::Client::builder()
        .timeout(WEBHOOK_TIMEOUT)
        .build()
        .expect("an HTTP client");
    while let Some(told) = events.recv().await {
        let sent = client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-sockhop-event", &told.kind)
            .body(told.body.to_string())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => {
                tracing::warn!(status = %response.status(), event = %told.kind, "the events webhook refused an event")
            }
            Err(err) => {
                tracing::warn!(error = %err, event = %told.kind, "the events webhook is unreachable")
            }
        }
    }
}

pub fn router(events: Arc<LocalEvents>) -> Router {
    Router::new()
        .route("/dev/events", axum::routing::get(live))
        .with_state(events)
}

/// `GET /dev/events`: every event from now on, as Server-Sent Events.
async fn live(
    State(events): State<Arc<LocalEvents>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures::stream::unfold(events.subscribe(), |mut rx| async move {
        let next = match rx.recv().await {
            Ok(told) => Event::default().event(told.kind).data(told.body.as_ref()),
            Err(broadcast::error::RecvError::Lagged(missed)) => Event::default()
                .comment(format!("{missed} events skipped: this reader fell behind")),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(next), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
