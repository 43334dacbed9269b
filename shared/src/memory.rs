//! In-memory implementations of the ports, for deterministic unit tests of
//! the operations and the ordered path: [`MemoryStore`] (the store's rules in
//! a map), [`MemorySockets`] (sockets that keep what they were sent),
//! [`InstantPause`] (waits that return at once and are remembered) and
//! [`SeededChance`] (the same draws for the same seed). The
//! local stage's queue (`sockhop_local::queue::LocalQueue`) is the delivery
//! queue such tests pump by hand. Never a stand-in for DynamoDB in the
//! storage tests, which run against DynamoDB Local.

pub use crate::pacing::{InstantPause, SeededChance};
pub use crate::store::memory::MemoryStore;

use crate::gateway::{PostError, Sockets};
use futures::future::BoxFuture;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Sockets that are open until closed or marked gone, and keep every frame
/// posted to them, per connection, in order.
#[derive(Default)]
pub struct MemorySockets {
    state: Mutex<SocketsState>,
}

#[derive(Default)]
struct SocketsState {
    frames: BTreeMap<String, Vec<String>>,
    gone: BTreeSet<String>,
    closed: BTreeSet<String>,
    /// Posts still to be refused with Gone while the socket is open, as API
    /// Gateway refuses them before the connection's `$connect` has returned.
    opening: BTreeMap<String, usize>,
}

impl MemorySockets {
    pub fn new() -> Self {
        MemorySockets::default()
    }

    fn state(&self) -> MutexGuard<'_, SocketsState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The socket is still being opened: its next `refusals` posts answer
    /// Gone although it is open.
    pub fn opening(&self, connection_id: &str, refusals: usize) {
        self.state()
            .opening
            .insert(connection_id.to_owned(), refusals);
    }

    /// The frames `connection_id` received, in order.
    pub fn frames(&self, connection_id: &str) -> Vec<String> {
        self.state()
            .frames
            .get(connection_id)
            .cloned()
            .unwrap_or_default()
    }

    /// The socket went away: posts to it answer Gone from now on.
    pub fn hang_up(&self, connection_id: &str) {
        self.state().gone.insert(connection_id.to_owned());
    }

    /// Whether the server closed it.
    pub fn was_closed(&self, connection_id: &str) -> bool {
        self.state().closed.contains(connection_id)
    }
}

impl Sockets for MemorySockets {
    fn post<'a>(
        &'a self,
        connection_id: &'a str,
        frame: &'a str,
    ) -> BoxFuture<'a, Result<(), PostError>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            let mut state = self.state();
            if state.gone.contains(connection_id) || state.closed.contains(connection_id) {
                return Err(PostError::Gone);
            }
            if let Some(refusals) = state.opening.get_mut(connection_id) {
                if *refusals > 0 {
                    *refusals -= 1;
                    return Err(PostError::Gone);
                }
            }
            state
                .frames
                .entry(connection_id.to_owned())
                .or_default()
                .push(frame.to_owned());
            Ok(())
        })
    }

    fn close<'a>(&'a self, connection_id: &'a str) -> BoxFuture<'a, Result<(), PostError>> {
        Box::pin(async move {
            self.state().closed.insert(connection_id.to_owned());
            Ok(())
        })
    }

    fn is_open<'a>(&'a self, connection_id: &'a str) -> BoxFuture<'a, Result<bool, PostError>> {
        Box::pin(async move {
            let state = self.state();
            Ok(!state.gone.contains(connection_id) && !state.closed.contains(connection_id))
        })
    }
}
