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

/// A fresh id that sorts after `last` (the channel's latest committed id), so a
/// publisher that lost an ordering race can retry above the winner.
pub fn id_after(fresh: String, last: Option<&str>) -> String {
    let Some(last) = last.and_then(|l| Ulid::from_string(l).ok()) else {
        return fresh;
    };
    match Ulid::from_string(&fresh) {
        Ok(f) if f > last => fresh,
        _ => last.increment().map(|u| u.to_string()).unwrap_or(fresh),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn id_after_keeps_fresh_ids_that_sort_later() {
        let last = Ulid::from_parts(1_000, 5).to_string();
        let later = Ulid::from_parts(2_000, 0).to_string();
        assert_eq!(id_after(later.clone(), Some(&last)), later);
        assert_eq!(id_after(later.clone(), None), later);
        assert_eq!(id_after(later.clone(), Some("not a ulid")), later);
    }

    #[test]
    fn id_after_steps_past_a_later_committed_id() {
        let last = Ulid::from_parts(5_000, 5);
        let earlier = Ulid::from_parts(4_000, 9).to_string();
        let next = id_after(earlier, Some(&last.to_string()));
        assert_eq!(next, Ulid::from_parts(5_000, 6).to_string());
        assert!(next > last.to_string());
        let same = id_after(last.to_string(), Some(&last.to_string()));
        assert!(same > last.to_string());
    }
}
