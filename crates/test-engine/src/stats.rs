//! Request counters behind GET /stats, so a test can see what reached the
//! engine: how many requests ran at once, and whether a client that went away
//! had its request cancelled here rather than generated to the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::OwnedSemaphorePermit;

#[derive(Debug, Default)]
pub struct Stats {
    started: AtomicU64,
    completed: AtomicU64,
    cancelled: AtomicU64,
    failed: AtomicU64,
    rejected: AtomicU64,
    unavailable: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

/// What GET /stats returns.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Generation requests accepted (chat, completions, embeddings).
    pub started: u64,
    /// Answered to the end.
    pub completed: u64,
    /// Dropped before the end because the caller went away.
    pub cancelled: u64,
    /// Cut off by `--fail-after-tokens`.
    pub failed: u64,
    /// Refused with 429 by `--max-concurrency`.
    pub rejected: u64,
    /// Refused with 503 while `--load-seconds` lasted.
    pub unavailable: u64,
    /// Running now.
    pub in_flight: u64,
    /// Most requests that ran at once since start (or the last reset).
    pub max_in_flight: u64,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            started: self.started.load(Ordering::SeqCst),
            completed: self.completed.load(Ordering::SeqCst),
            cancelled: self.cancelled.load(Ordering::SeqCst),
            failed: self.failed.load(Ordering::SeqCst),
            rejected: self.rejected.load(Ordering::SeqCst),
            unavailable: self.unavailable.load(Ordering::SeqCst),
            in_flight: self.in_flight.load(Ordering::SeqCst),
            max_in_flight: self.max_in_flight.load(Ordering::SeqCst),
        }
    }

    /// Zeroes the totals; requests running now stay counted as in flight.
    pub fn reset(&self) {
        for counter in [
            &self.started,
            &self.completed,
            &self.cancelled,
            &self.failed,
            &self.rejected,
            &self.unavailable,
        ] {
            counter.store(0, Ordering::SeqCst);
        }
        self.max_in_flight
            .store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    pub fn record_unavailable(&self) {
        self.unavailable.fetch_add(1, Ordering::SeqCst);
    }

    pub fn record_rejected(&self) {
        self.rejected.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts a request as running until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>, permit: Option<OwnedSemaphorePermit>) -> RequestGuard {
        self.started.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        RequestGuard {
            stats: Arc::clone(self),
            outcome: None,
            _permit: permit,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Completed,
    Failed,
}

/// One running request. Dropped without an outcome means the caller went
/// away (the response future or body stream was dropped): a cancellation.
#[derive(Debug)]
pub struct RequestGuard {
    stats: Arc<Stats>,
    outcome: Option<Outcome>,
    /// The `--max-concurrency` slot, held as long as the answer streams.
    _permit: Option<OwnedSemaphorePermit>,
}

impl RequestGuard {
    pub fn completed(&mut self) {
        self.outcome = Some(Outcome::Completed);
    }

    pub fn failed(&mut self) {
        self.outcome = Some(Outcome::Failed);
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let counter = match self.outcome {
            Some(Outcome::Completed) => &self.stats.completed,
            Some(Outcome::Failed) => &self.stats.failed,
            None => &self.stats.cancelled,
        };
        counter.fetch_add(1, Ordering::SeqCst);
        self.stats.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_dropped_without_outcome_counts_as_cancelled() {
        let stats = Arc::new(Stats::default());
        let mut done = stats.begin(None);
        let gone = stats.begin(None);
        assert_eq!(stats.snapshot().in_flight, 2);
        done.completed();
        drop(done);
        drop(gone);
        let snap = stats.snapshot();
        assert_eq!(
            (
                snap.started,
                snap.completed,
                snap.cancelled,
                snap.in_flight,
                snap.max_in_flight
            ),
            (2, 1, 1, 0, 2)
        );
        stats.reset();
        assert_eq!(stats.snapshot().max_in_flight, 0);
    }
}
