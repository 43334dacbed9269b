//! How frames reach sockets: the fan-out over the [`Sockets`] port, which the
//! API Gateway management API implements in AWS
//! ([`ManagementApi`](crate::adapters::management_api::ManagementApi)).

use crate::pacing::{Pause, TokioPause};
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
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
    /// throttling beyond the retries, a slow consumer's full queue): the
    /// connection has missed a frame.
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
    /// How the greeting waits between its tries.
    pause: Arc<dyn Pause>,
    posts_in_flight: usize,
}

impl Gateway {
    pub fn new(sockets: Arc<dyn Sockets>) -> Self {
        Gateway::paced(sockets, Arc::new(TokioPause))
    }

    /// A gateway that waits through `pause` (unit tests: instantly).
    pub fn paced(sockets: Arc<dyn Sockets>, pause: Arc<dyn Pause>) -> Self {
        Gateway {
            sockets,
            pause,
            posts_in_flight: FAN_OUT_CONCURRENCY,
        }
    }

    /// A fan-out with `posts_in_flight` posts at once instead of
    /// [`FAN_OUT_CONCURRENCY`]: the knob the bench's AWS-latency model turns
    /// to show what another figure would do (production uses [`Gateway::new`]).
    pub fn with_posts_in_flight(sockets: Arc<dyn Sockets>, posts_in_flight: usize) -> Self {
        Gateway {
            posts_in_flight: posts_in_flight.max(1),
            ..Gateway::new(sockets)
        }
    }

    pub async fn post(&self, connection_id: &str, frame: &str) -> Result<(), PostError> {
        self.sockets.post(connection_id, frame).await
    }

    /// Sends one frame to one connection. A Gone answer is confirmed before it
    /// is believed; a connection still open gets the frame once more.
    pub async fn deliver(&self, connection_id: &str, frame: &str) -> Delivery {
        let failed = |e: PostError| Delivery::Failed(e.to_string());
        match self.sockets.post(connection_id, frame).await {
            Ok(()) => Delivery::Delivered,
            Err(PostError::Failed(reason)) => Delivery::Failed(reason),
            Err(PostError::Gone) => match self.sockets.is_open(connection_id).await {
                Ok(false) => Delivery::Gone,
                Ok(true) => {
                    tracing::warn!(connection_id, "Gone for an open connection; sent again");
                    match self.sockets.post(connection_id, frame).await {
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
        let mut delay = Duration::from_millis(50).min(patience);
        let mut waited = Duration::ZERO;
        loop {
            match self.sockets.post(connection_id, frame).await {
                Ok(()) => return Delivery::Delivered,
                Err(PostError::Failed(reason)) => return Delivery::Failed(reason),
                Err(PostError::Gone) if waited < patience => {
                    self.pause.pause(delay).await;
                    waited += delay;
                    delay *= 2;
                }
                Err(PostError::Gone) => {
                    return match self.sockets.is_open(connection_id).await {
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
        let posts: Vec<_> = connection_ids
            .iter()
            .map(|id| async move { (id, self.deliver(id, frame).await) })
            .collect();
        let results: Vec<(&String, Delivery)> = stream::iter(posts)
            .buffer_unordered(self.posts_in_flight)
            .collect()
            .await;
        let mut fan_out = FanOut::default();
        for (id, delivery) in results {
            match delivery {
                Delivery::Delivered => fan_out.delivered += 1,
                Delivery::Gone => fan_out.gone.push(id.clone()),
                Delivery::Failed(reason) => fan_out.failed.push((id.clone(), reason)),
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
        let pause = Arc::new(crate::pacing::InstantPause::new());
        let gateway = Gateway::paced(Arc::new(sockets), pause.clone());
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
