//! Waiting and chance, behind ports: retries pause through [`Pause`] and draw
//! their jitter and nonces from [`Chance`], so a unit test runs them at once
//! and the same way every time ([`InstantPause`], [`SeededChance`], also
//! found in [`crate::memory`] with the other in-memory ports). Production
//! uses tokio's timer and the thread's random generator ([`Pacing::real`]).

use futures::future::BoxFuture;
use rand::{Rng, SeedableRng};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits. The future is `'static` so a retry loop (backon's `Sleeper`) can
/// hold it without borrowing the port.
pub trait Pause: Send + Sync {
    fn pause(&self, wait: Duration) -> BoxFuture<'static, ()>;
}

/// Draws numbers no caller may predict: jitter and nonces.
pub trait Chance: Send + Sync {
    /// Uniform in `0..bound`; `0` when `bound` is `0`.
    fn below(&self, bound: u64) -> u64;
    /// Sixteen fresh bytes (a connection secret's nonce).
    fn nonce(&self) -> [u8; 16];
}

/// Both ports, cloned into whatever retries or draws.
#[derive(Clone)]
pub struct Pacing {
    pub pause: Arc<dyn Pause>,
    pub chance: Arc<dyn Chance>,
}

impl Pacing {
    /// Tokio's timer and the thread-local random generator.
    pub fn real() -> Self {
        Pacing {
            pause: Arc::new(TokioPause),
            chance: Arc::new(ThreadChance),
        }
    }

    /// A `'static` sleep function over [`Pause`], for backon's `.sleep(..)`.
    pub fn sleeper(&self) -> impl Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync + 'static {
        sleeper(&self.pause)
    }
}

/// A `'static` sleep function over one [`Pause`], for backon's `.sleep(..)`.
pub fn sleeper(
    pause: &Arc<dyn Pause>,
) -> impl Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync + 'static {
    let pause = pause.clone();
    move |wait| pause.pause(wait)
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing::real()
    }
}

impl std::fmt::Debug for Pacing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pacing")
    }
}

/// tokio's timer.
pub struct TokioPause;

impl Pause for TokioPause {
    fn pause(&self, wait: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(wait))
    }
}

/// `rand`'s thread-local generator (seeded from the OS).
pub struct ThreadChance;

impl Chance for ThreadChance {
    fn below(&self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        rand::random::<u64>() % bound
    }

    fn nonce(&self) -> [u8; 16] {
        rand::random()
    }
}

/// Waits that return at once; each wait asked for is kept, in order. No clock
/// moves: a loop that waits for the time to pass (the sweeper's
/// `sweep_within`) must be given a clock the test advances.
#[derive(Default)]
pub struct InstantPause {
    waits: Mutex<Vec<Duration>>,
}

impl InstantPause {
    pub fn new() -> Self {
        InstantPause::default()
    }

    /// Every wait asked for so far.
    pub fn waits(&self) -> Vec<Duration> {
        locked(&self.waits).clone()
    }
}

impl Pause for InstantPause {
    fn pause(&self, wait: Duration) -> BoxFuture<'static, ()> {
        locked(&self.waits).push(wait);
        // Still a yield, so other tasks run where a real wait would let them.
        Box::pin(tokio::task::yield_now())
    }
}

/// Draws from a generator seeded by the test: the same seed, the same draws.
pub struct SeededChance {
    rng: Mutex<rand::rngs::StdRng>,
}

impl SeededChance {
    pub fn new(seed: u64) -> Self {
        SeededChance {
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
        }
    }
}

impl Chance for SeededChance {
    fn below(&self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        locked(&self.rng).random_range(0..bound)
    }

    fn nonce(&self) -> [u8; 16] {
        locked(&self.rng).random()
    }
}
