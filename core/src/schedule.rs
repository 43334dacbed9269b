//! Scheduled delivery (docs/protocol.md, "Scheduled delivery"): the instant an
//! EventBridge Scheduler one-time expression names, and whether the publisher
//! may ask for it. Pure: the caller passes the time.

use crate::clock::Timestamp;
use crate::error::{ErrorCode, ProtocolError};
use std::sync::LazyLock;

/// EventBridge Scheduler's one-time syntax, to the second.
static AT: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$").expect("valid regex")
});

/// `scheduleExpression` and `scheduleExpressionTimezone` as a publisher sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRequest {
    pub expression: String,
    /// An IANA name; `None` (or empty) is UTC.
    pub timezone: Option<String>,
}

/// A schedule that was checked: what EventBridge Scheduler is given, and the
/// instant it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub expression: String,
    pub timezone: String,
    pub at: Timestamp,
}

/// Who asks: the backend needs no grant; a client needs `scheduleBefore`
/// (a NumericDate) covering the instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Server,
    Client { schedule_before: Option<i64> },
}

/// Resolves `request` at `now` for `grant`, or says why it is refused.
pub fn resolve(
    request: &ScheduleRequest,
    now: Timestamp,
    grant: Grant,
) -> Result<Due, ProtocolError> {
    let refuse = |code, message: String| Err(ProtocolError::new(code, message));
    let Some(local) = AT.captures(&request.expression).map(|c| c[1].to_owned()) else {
        return refuse(
            ErrorCode::InvalidScheduleExpression,
            format!(
                "scheduleExpression must be at(YYYY-MM-DDTHH:MM:SS), not {:?}",
                request.expression
            ),
        );
    };
    let Ok(civil) = local.parse::<jiff::civil::DateTime>() else {
        return refuse(
            ErrorCode::InvalidScheduleExpression,
            format!("{local} is not a date and time"),
        );
    };
    let timezone = match request.timezone.as_deref() {
        None | Some("") => "UTC".to_owned(),
        Some(name) => name.to_owned(),
    };
    let Ok(zone) = jiff::tz::TimeZone::get(&timezone) else {
        return refuse(
            ErrorCode::InvalidScheduleTimezone,
            format!("{timezone:?} is not an IANA timezone"),
        );
    };
    // A wall time skipped by a DST change is read after the gap, a repeated
    // one as its first occurrence (RFC 5545's rule).
    let Ok(zoned) = civil.to_zoned(zone) else {
        return refuse(
            ErrorCode::InvalidScheduleExpression,
            format!("{local} in {timezone} is out of range"),
        );
    };
    let at = Timestamp::from_millis(zoned.timestamp().as_millisecond());
    if at.millis() <= now.millis() {
        return refuse(
            ErrorCode::ScheduleInPast,
            format!("{local} in {timezone} has passed"),
        );
    }
    if let Grant::Client { schedule_before } = grant {
        match schedule_before {
            Some(before) if before > now.secs() => {
                if at.secs() > before {
                    return refuse(
                        ErrorCode::SchedulePermissionDenied,
                        format!("{local} in {timezone} is later than scheduleBefore allows"),
                    );
                }
            }
            _ => {
                return refuse(
                    ErrorCode::SchedulePermissionDenied,
                    "scheduling needs a scheduleBefore grant".to_owned(),
                )
            }
        }
    }
    Ok(Due {
        expression: request.expression.clone(),
        timezone,
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000; // 2026-09-21T14:13:20Z

    fn at(expression: &str, timezone: Option<&str>, grant: Grant) -> Result<Due, ErrorCode> {
        let request = ScheduleRequest {
            expression: expression.into(),
            timezone: timezone.map(Into::into),
        };
        resolve(&request, Timestamp::from_millis(NOW * 1000), grant).map_err(|e| e.code)
    }

    fn secs(due: Result<Due, ErrorCode>) -> i64 {
        due.expect("resolves").at.secs()
    }

    #[test]
    fn utc_is_the_default_and_timezones_shift_the_instant() {
        let utc = secs(at("at(2026-09-21T15:00:00)", None, Grant::Server));
        assert_eq!(utc, NOW + 46 * 60 + 40);
        assert_eq!(
            secs(at("at(2026-09-21T15:00:00)", Some(""), Grant::Server)),
            utc
        );
        // Paris is UTC+2 in September, New York UTC-4.
        let paris = secs(at(
            "at(2026-09-21T17:00:00)",
            Some("Europe/Paris"),
            Grant::Server,
        ));
        assert_eq!(paris, utc);
        let new_york = secs(at(
            "at(2026-09-21T11:00:00)",
            Some("America/New_York"),
            Grant::Server,
        ));
        assert_eq!(new_york, utc);
        // In winter Paris is UTC+1.
        let winter = secs(at(
            "at(2026-12-01T10:00:00)",
            Some("Europe/Paris"),
            Grant::Server,
        ));
        let winter_utc = secs(at("at(2026-12-01T09:00:00)", None, Grant::Server));
        assert_eq!(winter, winter_utc);
    }

    #[test]
    fn malformed_expressions_and_unknown_timezones_are_refused() {
        for bad in [
            "",
            "at(2026-09-21 15:00:00)",
            "at(2026-09-21T15:00)",
            "at(2026-09-21T15:00:00Z)",
            "at(2026-09-21T15:00:00.5)",
            "rate(5 minutes)",
            "cron(0 12 * * ? *)",
            " at(2026-09-21T15:00:00)",
            "at(2026-13-01T15:00:00)",
            "at(2026-02-30T15:00:00)",
            "at(2026-09-21T25:00:00)",
        ] {
            assert_eq!(
                at(bad, None, Grant::Server),
                Err(ErrorCode::InvalidScheduleExpression),
                "{bad}"
            );
        }
        for zone in ["Mars/Olympus", "utc+2", "Europe/"] {
            assert_eq!(
                at("at(2026-09-21T15:00:00)", Some(zone), Grant::Server),
                Err(ErrorCode::InvalidScheduleTimezone),
                "{zone}"
            );
        }
    }

    #[test]
    fn the_past_is_refused_and_the_far_future_is_not() {
        assert_eq!(
            at("at(2026-09-21T14:13:20)", None, Grant::Server),
            Err(ErrorCode::ScheduleInPast)
        );
        assert_eq!(
            at("at(2020-01-01T00:00:00)", None, Grant::Server),
            Err(ErrorCode::ScheduleInPast)
        );
        assert_eq!(
            secs(at("at(2026-09-21T14:13:21)", None, Grant::Server)),
            NOW + 1
        );
        // No limit ahead, as Hotsock documents none and EventBridge Scheduler
        // takes far dates.
        assert!(at("at(2027-09-23T14:13:20)", None, Grant::Server).is_ok());
        assert!(at("at(2199-12-31T23:59:59)", None, Grant::Server).is_ok());
    }

    #[test]
    fn clients_need_schedule_before_covering_the_instant() {
        let ask = |before: Option<i64>| {
            at(
                "at(2026-09-21T15:00:00)",
                None,
                Grant::Client {
                    schedule_before: before,
                },
            )
        };
        let due = NOW + 46 * 60 + 40;
        for refused in [None, Some(0), Some(NOW - 1), Some(NOW), Some(due - 1)] {
            assert_eq!(
                ask(refused),
                Err(ErrorCode::SchedulePermissionDenied),
                "{refused:?}"
            );
        }
        assert_eq!(secs(ask(Some(due))), due);
        assert_eq!(secs(ask(Some(due + 3600))), due);
    }
}
