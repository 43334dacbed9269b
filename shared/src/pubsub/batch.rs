//! Backend events in the batches the AWS sinks send (at most [`BATCH`] entries
//! and [`BATCH_BYTES`] a request), and the retry of the entries a request did
//! not accept, a few times, before the loss is reported. The sinks themselves
//! are [`event_sinks`](crate::adapters::event_sinks).

use super::{PubSubEvent, SinkError};
use crate::pacing::Pause;
use std::future::Future;
use std::time::Duration;

/// Entries one PutEvents or PublishBatch request takes.
pub const BATCH: usize = 10;
/// Bytes of events one request carries at most: both services refuse a
/// request over 256 KiB in total, and ten messages of 32 KiB data would be.
/// The margin covers what the JSON does not count: SNS's message attributes
/// (the metadata again, at most a few KiB) and EventBridge's per-entry fields.
pub const BATCH_BYTES: usize = 200 * 1024;

/// The events in batches of at most [`BATCH`] entries and [`BATCH_BYTES`]
/// (by the size of their JSON), in order (pure).
pub fn batches(events: Vec<PubSubEvent>) -> Vec<Vec<PubSubEvent>> {
    let mut out: Vec<Vec<PubSubEvent>> = Vec::new();
    let mut bytes = 0;
    for event in events {
        let size = serde_json::to_string(&event).map_or(0, |t| t.len());
        match out.last_mut() {
            Some(batch) if batch.len() < BATCH && bytes + size <= BATCH_BYTES => {
                bytes += size;
                batch.push(event);
            }
            _ => {
                bytes = size;
                out.push(vec![event]);
            }
        }
    }
    out
}
/// Attempts at an entry before it is reported lost.
pub const ATTEMPTS: u32 = 4;

/// Sends `events` in [`batches`] through `send`, which returns the
/// positions (within the batch it was given) that were not accepted, or an
/// error for the whole batch; those are sent again after a growing pause
/// (through `pause`). Hand-written rather than a retry crate's loop: each try
/// sends only what the previous one had refused.
pub async fn send_batched<F, Fut>(
    pause: &dyn Pause,
    events: Vec<PubSubEvent>,
    mut send: F,
) -> Result<(), SinkError>
where
    F: FnMut(Vec<PubSubEvent>) -> Fut,
    Fut: Future<Output = Result<Vec<usize>, String>>,
{
    let total = events.len();
    let mut lost = 0;
    let mut reason = String::new();
    for batch in batches(events) {
        let mut pending = batch;
        for attempt in 1..=ATTEMPTS {
            let failed = match send(pending.clone()).await {
                Ok(failed) => failed,
                Err(err) => {
                    reason = err;
                    (0..pending.len()).collect()
                }
            };
            if failed.is_empty() {
                pending.clear();
                break;
            }
            pending = failed
                .into_iter()
                .filter_map(|i| pending.get(i).cloned())
                .collect();
            if attempt < ATTEMPTS {
                pause.pause(Duration::from_millis(50 << attempt)).await;
            } else if reason.is_empty() {
                reason = "entries refused".into();
            }
        }
        lost += pending.len();
    }
    if lost == 0 {
        Ok(())
    } else {
        Err(SinkError::Rejected {
            failed: lost,
            total,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacing::InstantPause;
    use crate::pubsub::channel_updated;
    use serde_json::json;
    use std::sync::Mutex;

    fn events(n: usize) -> Vec<PubSubEvent> {
        (0..n).map(|i| channel_updated("c", i as i64)).collect()
    }

    #[tokio::test]
    async fn batches_of_ten_and_only_refused_entries_are_sent_again() {
        let pause = InstantPause::new();
        let sent: Mutex<Vec<Vec<i64>>> = Mutex::new(Vec::new());
        let result = send_batched(&pause, events(23), |batch| {
            let counts: Vec<i64> = batch
                .iter()
                .map(|e| e.data["subscriptionsCount"].as_i64().expect("count"))
                .collect();
            let first_try = !sent
                .lock()
                .expect("lock")
                .iter()
                .flatten()
                .any(|c| counts.contains(c));
            sent.lock().expect("lock").push(counts.clone());
            async move {
                // The first time, the entries at positions 1 and 3 are refused.
                Ok(if first_try && counts.len() >= 4 {
                    vec![1, 3]
                } else {
                    vec![]
                })
            }
        })
        .await;
        assert!(result.is_ok(), "{result:?}");
        let sent = sent.into_inner().expect("lock");
        assert_eq!(
            sent,
            vec![
                (0..10).collect::<Vec<i64>>(),
                vec![1, 3],
                (10..20).collect(),
                vec![11, 13],
                (20..23).collect(),
            ]
        );
    }

    #[test]
    fn batches_stay_under_the_request_size_limit() {
        let big = |i: i64| {
            let mut e = channel_updated("c", i);
            e.data["padding"] = json!("x".repeat(30 * 1024));
            e
        };
        let sizes: Vec<usize> = batches((0..10).map(big).collect())
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, [6, 4]);
        let sizes: Vec<usize> = batches(events(25)).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 5]);
    }

    #[tokio::test]
    async fn entries_refused_every_time_are_reported_lost() {
        let pause = InstantPause::new();
        let calls = Mutex::new(0);
        let result = send_batched(&pause, events(3), |batch| {
            *calls.lock().expect("lock") += 1;
            let n = batch.len();
            async move {
                if n == 3 {
                    Ok(vec![2])
                } else {
                    Err("throttled".to_owned())
                }
            }
        })
        .await;
        assert_eq!(*calls.lock().expect("lock"), ATTEMPTS);
        match result {
            Err(SinkError::Rejected {
                failed,
                total,
                reason,
            }) => {
                assert_eq!((failed, total), (1, 3));
                assert_eq!(reason, "throttled");
            }
            other => panic!("{other:?}"),
        }
        // Growing pauses between the tries, none after the last.
        let ms = Duration::from_millis;
        assert_eq!(pause.waits(), [ms(100), ms(200), ms(400)]);
    }
}
