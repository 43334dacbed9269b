//! How many requests one fan-out (one invocation's `post_many` or
//! `post_chains`, never shared by lanes) lets into API Gateway at once,
//! adapted to its answers (additive increase, multiplicative decrease, as TCP does):
//! when at least a quarter of the answers of a round (and two) are throttled the limit
//! halves and a new round begins; every `limit` delivered answers in a row
//! raise it by one, up to the gateway's posts in flight. Requests throttled
//! together (issued before the halving) halve it once, not each. So lanes that
//! together outrun the account's quota each slow down instead of all retrying
//! at full speed, while a few sockets refused on their own (a slow reader's
//! full buffer is answered 429 too) leave the rest of the fan-out alone.

use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio::sync::{Semaphore, SemaphorePermit};

#[derive(Debug)]
struct State {
    limit: usize,
    max: usize,
    /// Bumped by each halving; a request remembers the round it began in.
    round: u64,
    delivered_in_a_row: usize,
    /// Answers to requests begun in this round, and how many were throttled.
    answers: usize,
    throttled: usize,
    /// Permits to forget as they come back (the limit shrank under them).
    owed: usize,
}

#[derive(Debug)]
pub struct AdaptiveLimit {
    permits: Semaphore,
    state: Mutex<State>,
}

/// A request let in: its permit and the round it began in.
pub struct Admitted<'a> {
    permit: SemaphorePermit<'a>,
    round: u64,
}

impl AdaptiveLimit {
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        AdaptiveLimit {
            permits: Semaphore::new(max),
            state: Mutex::new(State {
                limit: max,
                max,
                round: 0,
                delivered_in_a_row: 0,
                answers: 0,
                throttled: 0,
                owed: 0,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The limit now.
    #[cfg(test)]
    pub fn limit(&self) -> usize {
        self.state().limit
    }

    /// Waits until the limit lets one more request in.
    pub async fn admit(&self) -> Admitted<'_> {
        let permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let round = self.state().round;
        Admitted { permit, round }
    }

    /// The request let in as `admitted` was answered: throttled or not.
    pub fn answered(&self, admitted: Admitted<'_>, throttled: bool) {
        let mut state = self.state();
        if admitted.round == state.round {
            state.answers += 1;
            state.throttled += usize::from(throttled);
        }
        if throttled {
            state.delivered_in_a_row = 0;
            let widespread = state.throttled >= 2 && state.throttled * 4 >= state.answers;
            if admitted.round == state.round && widespread && state.limit > 1 {
                let halved = (state.limit / 2).max(1);
                state.owed += state.limit - halved;
                state.limit = halved;
                state.round += 1;
                state.answers = 0;
                state.throttled = 0;
                // Permits not in use go at once; the rest as they come back.
                let gone = self.permits.forget_permits(state.owed);
                state.owed -= gone;
            }
        } else {
            state.delivered_in_a_row += 1;
            if state.delivered_in_a_row >= state.limit && state.limit < state.max {
                state.delivered_in_a_row = 0;
                state.limit += 1;
                if state.owed > 0 {
                    state.owed -= 1;
                } else {
                    self.permits.add_permits(1);
                }
            }
        }
        if state.owed > 0 {
            state.owed -= 1;
            admitted.permit.forget();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn throttling_halves_once_per_round_and_delivery_grows_it_back() {
        let limit = AdaptiveLimit::new(8);
        // Four requests in flight are all throttled: one halving, not four.
        let mut flight = Vec::new();
        for _ in 0..4 {
            flight.push(limit.admit().await);
        }
        for admitted in flight {
            limit.answered(admitted, true);
        }
        assert_eq!(limit.limit(), 4);
        // Only four get in now.
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(limit.admit().await);
        }
        assert!(limit.permits.try_acquire().is_err(), "a fifth waits");
        // Two requests of the new round throttled halve it again.
        let (first, second) = (held.pop().expect("one"), held.pop().expect("two"));
        limit.answered(first, true);
        assert_eq!(
            limit.limit(),
            4,
            "one throttled answer is not yet a pattern"
        );
        limit.answered(second, true);
        assert_eq!(limit.limit(), 2);
        for admitted in held {
            limit.answered(admitted, false);
        }
        // Deliveries grow it by one per `limit` in a row, up to the maximum.
        for _ in 0..100 {
            let admitted = limit.admit().await;
            limit.answered(admitted, false);
        }
        assert_eq!(limit.limit(), 8);
        let mut all = Vec::new();
        for _ in 0..8 {
            all.push(limit.admit().await);
        }
        assert!(
            limit.permits.try_acquire().is_err(),
            "never above the maximum"
        );
    }

    #[tokio::test]
    async fn a_few_sockets_refused_among_many_delivered_leave_the_limit_alone() {
        let limit = AdaptiveLimit::new(64);
        // One socket in ten answers 429 every time (a slow reader).
        for i in 0..1000 {
            let admitted = limit.admit().await;
            limit.answered(admitted, i % 10 == 0);
        }
        assert_eq!(limit.limit(), 64);
    }

    #[tokio::test]
    async fn the_limit_never_falls_below_one() {
        let limit = AdaptiveLimit::new(2);
        for _ in 0..10 {
            let admitted = limit.admit().await;
            limit.answered(admitted, true);
        }
        assert_eq!(limit.limit(), 1);
        let admitted = limit.admit().await;
        limit.answered(admitted, false);
    }
}
