//! Message ids: ULIDs from one monotonic source per process, stamped with the
//! time the caller passes in.

use crate::clock::Timestamp;
use std::sync::{Mutex, PoisonError};
use ulid::{Generator, Ulid};

/// Ids from one generator sort in creation order even within a millisecond,
/// which `listMessages` order relies on.
pub struct IdGenerator {
    state: Mutex<IdState>,
}

struct IdState {
    generator: Generator,
    last: Ulid,
}

impl IdState {
    fn next_at(&mut self, now: Timestamp) -> Ulid {
        let id = match self.generator.generate_from_datetime(now.as_system_time()) {
            Ok(id) => id,
            // The random part ran out within one millisecond: borrow the next
            // millisecond so order still holds.
            Err(_) => {
                let next = Timestamp::from_millis(self.last.timestamp_ms() as i64 + 1);
                self.generator
                    .generate_from_datetime(next.as_system_time())
                    .unwrap_or_else(|_| self.last.increment().unwrap_or(self.last))
            }
        };
        self.last = id;
        id
    }
}

impl IdGenerator {
    pub const fn new() -> Self {
        IdGenerator {
            state: Mutex::new(IdState {
                generator: Generator::new(),
                last: Ulid::nil(),
            }),
        }
    }

    /// The next id, as a 26-character ULID string, for a message made at `now`.
    pub fn next_id(&self, now: Timestamp) -> String {
        // A poisoned lock still holds a valid state: ids stay monotonic.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.next_at(now).to_string()
    }
}

impl Default for IdGenerator {
    fn default() -> Self {
        IdGenerator::new()
    }
}

/// An id stamped `at`, outside the monotonic source (which a future time would
/// push ahead of every later id): for a message given its id when scheduled.
pub fn id_at(at: Timestamp) -> String {
    Ulid::from_datetime(at.as_system_time()).to_string()
}

/// The id a queued message gets from its place in the delivery queue: the
/// time the queue first handed it out, then the queue's sequence number within
/// that millisecond. Both are fixed when the message is first received, so a
/// retried delivery gets the same id; and a FIFO group hands out message N+1
/// no earlier than message N, with a higher sequence number, so per channel the
/// ids increase in queue order.
pub fn queued_id(first_received_ms: u64, sequence_number: u128) -> String {
    const RANDOM_BITS: u32 = 80;
    let random = sequence_number & ((1u128 << RANDOM_BITS) - 1);
    Ulid::from_parts(first_received_ms, random).to_string()
}

/// The `step`-th frame one queue record produced after its own position
/// (a run of membership changes tells its members several things): sorts
/// after `position` and before any later record's (`.` sorts below every
/// ULID character; fixed width keeps the steps in order).
pub fn step_position(position: &str, step: usize) -> String {
    format!("{position}.{step:06}")
}

/// The time (Unix ms) a position names, or `None` when it is not one: a
/// ULID, or a ULID and a step ([`step_position`]).
pub fn position_time_ms(position: &str) -> Option<u64> {
    let (ulid, step) = match position.split_once('.') {
        Some((ulid, step)) => (ulid, Some(step)),
        None => (position, None),
    };
    if step.is_some_and(|s| s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    Ulid::from_string(ulid).ok().map(|u| u.timestamp_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_sort_after_their_position_and_before_the_next() {
        let (a, b) = (queued_id(1_000, 1), queued_id(1_000, 2));
        let (a1, a2) = (step_position(&a, 1), step_position(&a, 2));
        assert!(a < a1 && a1 < a2 && a2 < b, "{a} {a1} {a2} {b}");
        assert!(step_position(&a, 9) < step_position(&a, 10));
        assert_eq!(position_time_ms(&a), Some(1_000));
        assert_eq!(position_time_ms(&a2), Some(1_000));
        for bad in [
            "nope",
            "",
            &format!("{a}."),
            &format!("{a}.1"),
            &format!("{a}.00000x"),
        ] {
            assert_eq!(position_time_ms(bad), None, "{bad}");
        }
    }

    /// An RNG that always yields all-ones, to drive the generator to overflow.
    struct MaxRng;

    impl rand::RngCore for MaxRng {
        fn next_u32(&mut self) -> u32 {
            u32::MAX
        }
        fn next_u64(&mut self) -> u64 {
            u64::MAX
        }
        fn fill_bytes(&mut self, dst: &mut [u8]) {
            dst.fill(0xff);
        }
    }

    #[test]
    fn overflow_moves_to_next_millisecond() {
        let now = Timestamp::from_millis(1_700_000_000_000);
        let mut generator = Generator::new();
        let last = generator
            .generate_from_datetime_with_source(now.as_system_time(), &mut MaxRng)
            .unwrap();
        assert_eq!(last.random(), (1u128 << 80) - 1);
        let mut state = IdState { generator, last };
        let next = state.next_at(now);
        assert!(next > last);
        assert_eq!(next.timestamp_ms(), last.timestamp_ms() + 1);
        let after = state.next_at(now);
        assert!(after > next);
    }

    #[test]
    fn a_clock_going_back_keeps_ids_increasing() {
        let ids = IdGenerator::new();
        let later = ids.next_id(Timestamp::from_millis(2_000_000));
        let earlier = ids.next_id(Timestamp::from_millis(1_000_000));
        assert!(earlier > later, "{earlier} !> {later}");
    }

    #[test]
    fn queued_ids_follow_receive_time_then_sequence() {
        let a = queued_id(1_700_000_000_000, 18_849_496_460_467_696_128);
        let b = queued_id(1_700_000_000_000, 18_849_496_460_467_696_129);
        let c = queued_id(1_700_000_000_001, 5);
        assert!(a < b && b < c, "{a} {b} {c}");
        assert_eq!(a, queued_id(1_700_000_000_000, 18_849_496_460_467_696_128));
        assert_eq!(
            Ulid::from_string(&a).expect("ulid").timestamp_ms(),
            1_700_000_000_000
        );
    }
}
