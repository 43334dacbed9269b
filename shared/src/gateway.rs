//! How frames reach sockets: the fan-out over the [`Sockets`] port, which the
//! API Gateway management API implements in AWS
//! ([`ManagementApi`](crate::adapters::management_api::ManagementApi)).

mod limit;

use crate::pacing::{Chance, Pacing};
use backon::Retryable;
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use limit::AdaptiveLimit;
use std::sync::Arc;
use std::time::Duration;

/// Posts in flight at once during a fan-out: enough to keep a Lambda busy,
/// few enough to stay under API Gateway's per-account rate.
pub const FAN_OUT_CONCURRENCY: usize = 64;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PostError {
    /// 410: the socket is closed; the caller must clean the connection up.
    #[error("connection is gone")]
    Gone,
    /// 429: the account's request rate is spent for now (API Gateway's
    /// quota is shared by every API and `@connections` call in the region);
    /// the same post is tried again later.
    #[error("throttled")]
    Throttled,
    #[error("post failed: {0}")]
    Failed(String),
}

/// Where frames go: API Gateway's management API in AWS
/// ([`ManagementApi`](crate::adapters::management_api::ManagementApi)); the
/// local stage hands frames to its own sockets in process.
pub trait Sockets: Send + Sync {
    /// Sends one frame (one JSON object per frame, as hotsock-js expects).
    fn post<'a>(
        &'a self,
        connection_id: &'a str,
        frame: &'a str,
    ) -> BoxFuture<'a, Result<(), PostError>>;

    /// Closes a socket from the server side (heartbeat timeout, lifetime).
    fn close<'a>(&'a self, connection_id: &'a str) -> BoxFuture<'a, Result<(), PostError>>;

    /// Whether the socket is still open (API Gateway's GetConnection): asked
    /// before a connection that answered Gone is torn down, because API
    /// Gateway occasionally answers Gone for a live one.
    fn is_open<'a>(&'a self, connection_id: &'a str) -> BoxFuture<'a, Result<bool, PostError>>;
}

/// What became of one frame for one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// The socket is closed: Gone, confirmed by [`Sockets::is_open`].
    Gone,
    /// The frame did not arrive and the socket may still be open (errors,
    /// throttling beyond [`THROTTLE_PATIENCE`], a slow consumer's full
    /// queue): the connection has missed a frame.
    Failed(String),
}

/// The outcome of a fan-out: connections that did not get the frame.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FanOut {
    pub delivered: usize,
    pub gone: Vec<String>,
    pub failed: Vec<(String, String)>,
}

/// The fan-out over whichever [`Sockets`] the app has.
#[derive(Clone)]
pub struct Gateway {
    sockets: Arc<dyn Sockets>,
    /// How the greeting and throttled posts wait between their tries, and
    /// the throttled posts' jitter.
    pacing: Pacing,
    posts_in_flight: usize,
    throttle_patience: Duration,
}

/// How long a throttled post keeps being tried before the frame counts as
/// missed (and its connection is closed). Throttling is the account's rate,
/// not the socket's fault: a big fan-out that outruns API Gateway's quota
/// (10,000 requests a second by default, a burst of 5,000) waits for it
/// rather than closing healthy connections. Kept well inside the deliver
/// function's timeout, which would hand the whole batch out again.
pub const THROTTLE_PATIENCE: Duration = Duration::from_secs(2);

/// One request, let in by a fan-out's adaptive limit and reported to it:
/// the limit is the fan-out's own (one invocation's), never shared by lanes.
fn limited<'a, T: Send + 'a>(
    limit: &'a AdaptiveLimit,
    request: BoxFuture<'a, Result<T, PostError>>,
) -> BoxFuture<'a, Result<T, PostError>> {
    Box::pin(async move {
        let admitted = limit.admit().await;
        let answer = request.await;
        limit.answered(admitted, matches!(answer, Err(PostError::Throttled)));
        answer
    })
}

/// The pause before retry `attempt` (1-based) of a throttled post: doubling
/// from 25 ms up to 400 ms, the upper half of it drawn at random so posts
/// throttled together do not all come back together.
pub fn throttle_pause(chance: &dyn Chance, attempt: u32) -> Duration {
    let full = 25u64 << attempt.clamp(1, 5).saturating_sub(1);
    Duration::from_millis(full / 2 + chance.below(full / 2 + 1))
}

impl Gateway {
    pub fn new(sockets: Arc<dyn Sockets>) -> Self {
        Gateway::paced(sockets, Pacing::real())
    }

    /// A gateway that waits and draws jitter through `pacing` (unit tests:
    /// instantly, from a seed).
    pub fn paced(sockets: Arc<dyn Sockets>, pacing: Pacing) -> Self {
        Gateway {
            sockets,
            pacing,
            posts_in_flight: FAN_OUT_CONCURRENCY,
            throttle_patience: THROTTLE_PATIENCE,
        }
    }

    /// A fan-out with `posts_in_flight` posts at once instead of
    /// [`FAN_OUT_CONCURRENCY`]: the knob the bench's AWS-latency model turns
    /// to show what another figure would do (production uses [`Gateway::new`]).
    pub fn with_posts_in_flight(self, posts_in_flight: usize) -> Self {
        let posts_in_flight = posts_in_flight.max(1);
        Gateway {
            posts_in_flight,
            ..self
        }
    }

    /// Throttled posts given up after `patience` instead of
    /// [`THROTTLE_PATIENCE`] (the model compares the two).
    pub fn with_throttle_patience(self, patience: Duration) -> Self {
        Gateway {
            throttle_patience: patience,
            ..self
        }
    }

    /// One post within a fan-out's adaptive limit, a throttled one tried
    /// again at [`throttle_pause`]s until the patience is spent; then it fails
    /// (the frame is missed).
    async fn post_within(
        &self,
        limit: &AdaptiveLimit,
        connection_id: &str,
        frame: &str,
    ) -> Result<(), PostError> {
        self.patiently(|| limited(limit, self.sockets.post(connection_id, frame)))
            .await
    }

    /// Whether the connection is open (GetConnection), throttling waited out
    /// as for a post.
    async fn is_open_within(
        &self,
        limit: &AdaptiveLimit,
        connection_id: &str,
    ) -> Result<bool, PostError> {
        self.patiently(|| limited(limit, self.sockets.is_open(connection_id)))
            .await
    }

    async fn patiently<'a, T>(
        &'a self,
        call: impl FnMut() -> BoxFuture<'a, Result<T, PostError>>,
    ) -> Result<T, PostError> {
        let chance = self.pacing.chance.clone();
        let patience = self.throttle_patience;
        // Pauses until the next would start past the patience.
        let pauses = (1..)
            .map(move |attempt| throttle_pause(&*chance, attempt))
            .scan(Duration::ZERO, move |waited, pause| {
                (*waited < patience).then(|| {
                    *waited += pause;
                    pause
                })
            });
        call.retry(pauses)
            .sleep(self.pacing.sleeper())
            .when(|e| *e == PostError::Throttled)
            .await
            .map_err(|e| match e {
                PostError::Throttled => PostError::Failed(format!("throttled for {patience:?}")),
                other => other,
            })
    }

    /// Sends one frame to one connection. A Gone answer is confirmed before it
    /// is believed; a connection still open gets the frame once more.
    pub async fn deliver(&self, connection_id: &str, frame: &str) -> Delivery {
        self.deliver_within(&AdaptiveLimit::new(1), connection_id, frame)
            .await
    }

    /// [`Gateway::deliver`] within a fan-out's adaptive limit.
    async fn deliver_within(
        &self,
        limit: &AdaptiveLimit,
        connection_id: &str,
        frame: &str,
    ) -> Delivery {
        let failed = |e: PostError| Delivery::Failed(e.to_string());
        match self.post_within(limit, connection_id, frame).await {
            Ok(()) => Delivery::Delivered,
            Err(PostError::Failed(reason)) => Delivery::Failed(reason),
            Err(e @ PostError::Throttled) => failed(e),
            Err(PostError::Gone) => match self.is_open_within(limit, connection_id).await {
                Ok(false) => Delivery::Gone,
                Ok(true) => {
                    tracing::warn!(connection_id, "Gone for an open connection; sent again");
                    match self.post_within(limit, connection_id, frame).await {
                        Ok(()) => Delivery::Delivered,
                        Err(e) => failed(e),
                    }
                }
                Err(e) => failed(e),
            },
        }
    }

    /// Sends a connection its greeting, which may come before API Gateway
    /// accepts posts to it (its `$connect` has not returned yet): Gone is
    /// retried with growing pauses for up to `patience`, then confirmed like
    /// any other Gone. A socket still open that kept refusing has missed its
    /// greeting ([`Delivery::Failed`]), and is closed rather than left
    /// without its items.
    pub async fn greet(&self, connection_id: &str, frame: &str, patience: Duration) -> Delivery {
        let limit = AdaptiveLimit::new(1);
        let mut delay = Duration::from_millis(50).min(patience);
        let mut waited = Duration::ZERO;
        loop {
            match self.post_within(&limit, connection_id, frame).await {
                Ok(()) => return Delivery::Delivered,
                Err(PostError::Failed(reason)) => return Delivery::Failed(reason),
                Err(e @ PostError::Throttled) => return Delivery::Failed(e.to_string()),
                Err(PostError::Gone) if waited < patience => {
                    self.pacing.pause.pause(delay).await;
                    waited += delay;
                    delay *= 2;
                }
                Err(PostError::Gone) => {
                    return match self.is_open_within(&limit, connection_id).await {
                        Ok(false) => Delivery::Gone,
                        Ok(true) => {
                            Delivery::Failed(format!("answered Gone for {patience:?} while open"))
                        }
                        Err(e) => Delivery::Failed(e.to_string()),
                    }
                }
            }
        }
    }

    /// Sends `frame` to every connection, at most [`FAN_OUT_CONCURRENCY`] (or
    /// the gateway's own figure) at a time: a slow or failing connection holds one slot, never the others.
    pub async fn post_many(&self, connection_ids: &[String], frame: &str) -> FanOut {
        // A chain of one frame per connection.
        let chains = connection_ids
            .iter()
            .map(|id| (id.clone(), vec![frame]))
            .collect();
        self.post_chains(chains).await
    }

    /// Sends each connection its frames in order, stopping at the first
    /// that does not arrive (the connection is gone or closed). Connections
    /// do not wait for each other: at most the gateway's posts in flight
    /// chains run at once, each posting its next frame as soon as the
    /// previous one arrived.
    pub async fn post_chains(&self, chains: Vec<(String, Vec<&str>)>) -> FanOut {
        let limit = AdaptiveLimit::new(self.posts_in_flight);
        let limit = &limit;
        let runs: Vec<_> = chains
            .into_iter()
            .map(|(id, frames)| async move {
                let mut delivered = 0;
                for frame in frames {
                    match self.deliver_within(limit, &id, frame).await {
                        Delivery::Delivered => delivered += 1,
                        other => return (id, delivered, other),
                    }
                }
                (id, delivered, Delivery::Delivered)
            })
            .collect();
        let results: Vec<(String, usize, Delivery)> = stream::iter(runs)
            .buffer_unordered(self.posts_in_flight)
            .collect()
            .await;
        let mut fan_out = FanOut::default();
        for (id, delivered, last) in results {
            fan_out.delivered += delivered;
            match last {
                Delivery::Delivered => {}
                Delivery::Gone => fan_out.gone.push(id),
                Delivery::Failed(reason) => fan_out.failed.push((id, reason)),
            }
        }
        fan_out
    }

    pub async fn close(&self, connection_id: &str) -> Result<(), PostError> {
        self.sockets.close(connection_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Sockets whose answers are scripted per connection: the posts' answers
    /// in order (then Ok), and what GetConnection says.
    #[derive(Default)]
    struct Scripted {
        posts: Mutex<HashMap<String, Vec<Result<(), PostError>>>>,
        open: HashMap<String, bool>,
        sent: Mutex<Vec<String>>,
    }

    impl Sockets for Scripted {
        fn post<'a>(&'a self, id: &'a str, _: &'a str) -> BoxFuture<'a, Result<(), PostError>> {
            let mut posts = self.posts.lock().expect("lock");
            let answer = match posts.get_mut(id) {
                Some(answers) if !answers.is_empty() => answers.remove(0),
                _ => Ok(()),
            };
            if answer.is_ok() {
                self.sent.lock().expect("lock").push(id.to_owned());
            }
            Box::pin(async move { answer })
        }
        fn close<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), PostError>> {
            Box::pin(async { Ok(()) })
        }
        fn is_open<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, PostError>> {
            let open = self.open.get(id).copied().unwrap_or(false);
            Box::pin(async move { Ok(open) })
        }
    }

    /// A gateway over `sockets` whose waits return at once (and are kept).
    fn instant(sockets: Scripted) -> (Gateway, Arc<crate::pacing::InstantPause>) {
        let pause = Arc::new(crate::pacing::InstantPause::new());
        let pacing = Pacing {
            pause: pause.clone(),
            chance: Arc::new(crate::pacing::SeededChance::new(9)),
        };
        (Gateway::paced(Arc::new(sockets), pacing), pause)
    }

    #[test]
    fn throttled_pauses_double_to_a_cap_with_their_upper_half_jittered() {
        let chance = crate::pacing::SeededChance::new(3);
        for (attempt, full) in [(1, 25), (2, 50), (3, 100), (4, 200), (5, 400), (9, 400)] {
            for _ in 0..50 {
                let ms = throttle_pause(&chance, attempt).as_millis() as u64;
                assert!(
                    (full / 2..=full).contains(&ms),
                    "attempt {attempt}: {ms} ms"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_throttled_post_waits_for_the_rate_then_delivers() {
        // Throttled nine times (the old adapter gave up after four tries).
        let sockets = Scripted {
            posts: Mutex::new(HashMap::from([
                ("busy".to_owned(), vec![Err(PostError::Throttled); 9]),
                ("never".to_owned(), vec![Err(PostError::Throttled); 1000]),
            ])),
            ..Scripted::default()
        };
        let (gateway, pause) = instant(sockets);
        assert_eq!(gateway.deliver("busy", "{}").await, Delivery::Delivered);
        let waits = pause.waits();
        assert_eq!(waits.len(), 9, "one pause per throttled answer");
        assert!(waits.iter().sum::<Duration>() < THROTTLE_PATIENCE);
        // Throttled past the patience: a missed frame, reported as such.
        match gateway.deliver("never", "{}").await {
            Delivery::Failed(reason) => assert!(reason.contains("throttled"), "{reason}"),
            other => panic!("{other:?}"),
        }
        let spent: Duration = pause.waits()[9..].iter().sum();
        assert!(spent >= THROTTLE_PATIENCE, "{spent:?}");
        assert!(
            spent < THROTTLE_PATIENCE + Duration::from_millis(400),
            "{spent:?}"
        );
        // A shorter patience gives up sooner.
        let (short, pause) = instant(Scripted {
            posts: Mutex::new(HashMap::from([(
                "never".to_owned(),
                vec![Err(PostError::Throttled); 1000],
            )])),
            ..Scripted::default()
        });
        let short = short.with_throttle_patience(Duration::from_millis(100));
        assert!(matches!(
            short.deliver("never", "{}").await,
            Delivery::Failed(_)
        ));
        assert!(pause.waits().len() <= 4, "{:?}", pause.waits());
    }

    #[tokio::test]
    async fn a_greeting_waits_out_throttling_too() {
        let sockets = Scripted {
            posts: Mutex::new(HashMap::from([(
                "new".to_owned(),
                vec![
                    Err(PostError::Throttled),
                    Err(PostError::Gone),
                    Err(PostError::Throttled),
                ],
            )])),
            ..Scripted::default()
        };
        let (gateway, _) = instant(sockets);
        let greeted = gateway.greet("new", "{}", Duration::from_secs(1)).await;
        assert_eq!(greeted, Delivery::Delivered);
    }

    /// Sockets whose posts to "slow" wait until released; every frame that
    /// arrived is kept by connection.
    #[derive(Default)]
    struct Held {
        release: tokio::sync::Notify,
        released: std::sync::atomic::AtomicBool,
        arrived: Mutex<HashMap<String, Vec<String>>>,
    }

    impl Sockets for Held {
        fn post<'a>(&'a self, id: &'a str, frame: &'a str) -> BoxFuture<'a, Result<(), PostError>> {
            Box::pin(async move {
                if id == "gone" {
                    return Err(PostError::Gone);
                }
                while id == "slow" && !self.released.load(std::sync::atomic::Ordering::SeqCst) {
                    self.release.notified().await;
                }
                let mut arrived = self.arrived.lock().expect("lock");
                arrived
                    .entry(id.to_owned())
                    .or_default()
                    .push(frame.to_owned());
                Ok(())
            })
        }
        fn close<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), PostError>> {
            Box::pin(async { Ok(()) })
        }
        fn is_open<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<bool, PostError>> {
            Box::pin(async { Ok(false) })
        }
    }

    #[tokio::test]
    async fn chained_frames_keep_each_connections_order_and_wait_for_nobody_else() {
        let sockets = Arc::new(Held::default());
        let gateway = Gateway::new(sockets.clone());
        let frames = ["m1", "m2", "m3"];
        let chains: Vec<(String, Vec<&str>)> = ["slow", "fast", "gone"]
            .iter()
            .map(|id| (id.to_string(), frames.to_vec()))
            .collect();
        let arrived = |id: &str| {
            sockets
                .arrived
                .lock()
                .expect("lock")
                .get(id)
                .cloned()
                .unwrap_or_default()
        };
        let fan_out = gateway.post_chains(chains);
        tokio::pin!(fan_out);
        // "fast" gets all three while "slow" still holds its first post.
        while arrived("fast").len() < 3 {
            tokio::select! {
                _ = &mut fan_out => panic!("finished before slow was released"),
                _ = tokio::task::yield_now() => {}
            }
        }
        assert!(arrived("slow").is_empty());
        sockets
            .released
            .store(true, std::sync::atomic::Ordering::SeqCst);
        sockets.release.notify_waiters();
        let fan_out = fan_out.await;
        assert_eq!(arrived("fast"), frames);
        assert_eq!(arrived("slow"), frames);
        // A chain stops at a connection found gone: nothing more is tried.
        assert_eq!(fan_out.gone, ["gone"]);
        assert_eq!(fan_out.delivered, 6);
        assert!(fan_out.failed.is_empty());
    }

    #[tokio::test]
    async fn a_greeting_waits_out_gone_then_confirms_it() {
        let gone = || vec![Err(PostError::Gone); 20];
        let sockets = Scripted {
            posts: Mutex::new(HashMap::from([
                (
                    "opening".to_owned(),
                    vec![Err(PostError::Gone), Err(PostError::Gone)],
                ),
                ("left".to_owned(), gone()),
                ("stuck".to_owned(), gone()),
            ])),
            open: HashMap::from([("stuck".to_owned(), true)]),
            sent: Mutex::default(),
        };
        let (gateway, pause) = instant(sockets);
        let patience = Duration::from_millis(120);
        let ms = Duration::from_millis;
        assert_eq!(
            gateway.greet("opening", "{}", patience).await,
            Delivery::Delivered
        );
        // One growing pause per refusal, nothing after the post that worked.
        assert_eq!(pause.waits(), [ms(50), ms(100)]);
        assert_eq!(gateway.greet("left", "{}", patience).await, Delivery::Gone);
        // Pauses until the patience is spent (50 + 100 >= 120), then GetConnection.
        assert_eq!(pause.waits(), [ms(50), ms(100), ms(50), ms(100)]);
        // Gone all along while GetConnection says open: a missed greeting,
        // not a connection to tear down under a live socket.
        assert!(matches!(
            gateway.greet("stuck", "{}", patience).await,
            Delivery::Failed(_)
        ));
    }

    #[tokio::test]
    async fn gone_is_confirmed_before_it_is_believed() {
        let sockets = Scripted {
            posts: Mutex::new(HashMap::from([
                ("live".to_owned(), vec![Err(PostError::Gone)]),
                ("dead".to_owned(), vec![Err(PostError::Gone)]),
                (
                    "flaky".to_owned(),
                    vec![Err(PostError::Failed("500".into()))],
                ),
                (
                    "stubborn".to_owned(),
                    vec![Err(PostError::Gone), Err(PostError::Gone)],
                ),
            ])),
            open: HashMap::from([("live".to_owned(), true), ("stubborn".to_owned(), true)]),
            sent: Mutex::default(),
        };
        let gateway = Gateway::new(Arc::new(sockets));
        let ids: Vec<String> = ["ok", "live", "dead", "flaky", "stubborn"]
            .map(str::to_owned)
            .to_vec();
        let mut fan_out = gateway.post_many(&ids, "{}").await;
        fan_out.failed.sort();
        assert_eq!(fan_out.delivered, 2, "ok, and live on the second try");
        assert_eq!(fan_out.gone, ["dead"]);
        let failed: Vec<&str> = fan_out.failed.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(failed, ["flaky", "stubborn"]);
    }
}
