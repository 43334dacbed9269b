//! Time as a value. Handlers read the clock once per invocation
//! ([`Timestamp::now`]) and pass it down; everything below takes it as an
//! argument, so decisions are repeatable in tests.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A moment, in Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// Reads the system clock: only entry points (handlers, the local stage's
    /// loops) call this.
    pub fn now() -> Self {
        Timestamp(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        )
    }

    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    pub const fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1000))
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Whole Unix seconds (what token expiry and the table's `ttl` use).
    pub const fn secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    pub fn as_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_down() {
        assert_eq!(Timestamp::from_millis(1_999).secs(), 1);
        assert_eq!(Timestamp::from_secs(7).millis(), 7_000);
        assert_eq!(Timestamp::from_millis(-1).secs(), -1);
    }
}
