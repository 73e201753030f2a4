//! Per-object exponential backoff with jitter for transient failures.
//!
//! kube-runtime's controller retries exactly when `error_policy` says; it has
//! no backoff of its own. Each stack gets its own failure count, so one stack
//! failing (say, a quota rejecting its Deployment) neither slows down nor
//! speeds up the others, and jitter keeps many failing stacks from retrying
//! in lock-step against a recovering API server.

use std::{collections::HashMap, sync::Mutex, time::Duration};

/// Failure counts by `namespace/name`.
#[derive(Debug)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
    base: Duration,
    max: Duration,
}

impl Backoff {
    /// A backoff starting at `base`, doubling per consecutive failure, capped at `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            failures: Mutex::new(HashMap::new()),
            base,
            max,
        }
    }

    /// Records a failure of `key` and returns how long to wait before retrying.
    pub fn next_delay(&self, key: &str) -> Duration {
        let attempt = {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            let count = failures.entry(key.to_owned()).or_insert(0);
            *count = count.saturating_add(1);
            *count
        };
        let exponential = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(20)));
        let capped = exponential.min(self.max);
        capped.mul_f64(jitter_factor())
    }

    /// Forgets `key`'s failures after a success.
    pub fn reset(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// A factor in [0.5, 1.5): "equal jitter" around the nominal delay.
fn jitter_factor() -> f64 {
    // A failed random read only loses the jitter, never the retry.
    let random = getrandom::u32().unwrap_or(u32::MAX / 2);
    0.5 + f64::from(random) / (f64::from(u32::MAX) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_per_object_and_resets() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let first = backoff.next_delay("ns/a");
        assert!(first >= Duration::from_millis(500) && first < Duration::from_millis(1500));
        for _ in 0..3 {
            backoff.next_delay("ns/a");
        }
        let fifth = backoff.next_delay("ns/a");
        assert!(
            fifth >= Duration::from_secs(8) && fifth < Duration::from_secs(24),
            "{fifth:?}"
        );
        // Another object starts from the beginning.
        assert!(backoff.next_delay("ns/b") < Duration::from_millis(1500));
        backoff.reset("ns/a");
        assert!(backoff.next_delay("ns/a") < Duration::from_millis(1500));
    }

    #[test]
    fn is_capped() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        for _ in 0..40 {
            backoff.next_delay("ns/a");
        }
        assert!(backoff.next_delay("ns/a") < Duration::from_secs(15));
    }
}
