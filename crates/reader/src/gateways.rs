//! The gateways this reader pulls from, and which one a free slot asks next.
//!
//! Each gateway entry remembers the queue heads it last reported for our
//! groups. A free slot goes to the gateway with the oldest waiting request
//! (its reported age plus the time since the report), so no gateway's queue
//! starves while another is served; with no known work it long-polls the
//! gateway with the fewest idle slots of ours on it. When this reader has
//! fewer idle slots than gateways, long-polls are short so slots rotate and
//! every gateway is visited (docs/protocol.md, "Several gateways").

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use flightdeck_protocol::pull::Heads;

/// Long-poll used when other gateways would be left unwatched.
pub const SHORT_POLL_MS: u64 = 1_000;
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Entry {
    base: Arc<str>,
    depth: u32,
    oldest_age_ms: u64,
    observed: Instant,
    idle_pollers: u32,
    failures: u32,
    retry_at: Instant,
    connected: bool,
    /// No longer listed by discovery. A gateway leaves the headless
    /// Service's addresses when its pod starts terminating, while it still
    /// drains queued requests; it is pulled from until a pull fails (it
    /// exited), so nothing queued there is stranded.
    retiring: bool,
}

impl Entry {
    fn new(base: Arc<str>) -> Self {
        let now = Instant::now();
        Self {
            base,
            depth: 0,
            oldest_age_ms: 0,
            observed: now,
            idle_pollers: 0,
            failures: 0,
            retry_at: now,
            connected: false,
            retiring: false,
        }
    }

    fn estimated_age(&self, now: Instant) -> u128 {
        u128::from(self.oldest_age_ms) + now.duration_since(self.observed).as_millis()
    }
}

/// Where a free slot should ask for work next.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice {
    /// Lease from `base`, waiting up to `wait_ms` when it has nothing.
    Poll { base: Arc<str>, wait_ms: u64 },
    /// Every gateway is backing off (or none is known yet): sleep this long.
    Sleep(Duration),
}

/// What [`Gateways::record_failure`] made of a failed pull.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// A new failure: the gateway is skipped for this long.
    BackOff(Duration),
    /// A call that started before the current backoff failed too.
    Repeated,
    /// The gateway had left discovery and is now dropped.
    Forgotten,
}

#[derive(Default)]
pub struct Gateways {
    entries: Mutex<Vec<Entry>>,
}

impl Gateways {
    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the set of gateways (discovery); known ones keep their
    /// state. A known gateway missing from `bases` retires: it is still
    /// pulled from until a pull to it fails (see `Entry::retiring`).
    pub fn set(&self, bases: &[String]) {
        let mut entries = self.lock();
        for entry in entries.iter_mut() {
            let listed = bases
                .iter()
                .any(|base| base.as_str() == entry.base.as_ref());
            if !listed && !entry.retiring {
                tracing::info!(gateway = %entry.base, "gateway no longer listed; pulling from it until it goes away");
            }
            entry.retiring = !listed;
        }
        for base in bases {
            if !entries
                .iter()
                .any(|entry| entry.base.as_ref() == base.as_str())
            {
                tracing::info!(gateway = %base, "gateway discovered");
                entries.push(Entry::new(Arc::from(base.as_str())));
            }
        }
    }

    pub fn bases(&self) -> Vec<Arc<str>> {
        self.lock().iter().map(|entry| entry.base.clone()).collect()
    }

    pub fn any_connected(&self) -> bool {
        self.lock().iter().any(|entry| entry.connected)
    }

    /// Picks the gateway for one free slot; a `Poll` that waits counts as an
    /// idle poller until [`Gateways::poll_done`].
    pub fn choose(&self, long_poll_ms: u64) -> Choice {
        let mut entries = self.lock();
        let now = Instant::now();
        let available: Vec<usize> = (0..entries.len())
            .filter(|&i| entries[i].retry_at <= now)
            .collect();
        if available.is_empty() {
            let next = entries.iter().map(|entry| entry.retry_at).min();
            return Choice::Sleep(next.map_or(Duration::from_millis(200), |at| {
                at.saturating_duration_since(now)
            }));
        }
        let oldest = available
            .iter()
            .copied()
            .filter(|&i| entries[i].depth > 0)
            .max_by_key(|&i| entries[i].estimated_age(now));
        if let Some(i) = oldest {
            // Known work: take it or learn at once that it is gone.
            return Choice::Poll {
                base: entries[i].base.clone(),
                wait_ms: 0,
            };
        }
        // Spread idle slots; rotate among equals so all gateways get visits.
        let offset = random_u64() as usize;
        let pick = (0..available.len())
            .map(|k| available[(k + offset) % available.len()])
            .min_by_key(|&i| entries[i].idle_pollers)
            .unwrap_or(available[0]);
        let uncovered = available
            .iter()
            .filter(|&&i| entries[i].idle_pollers == 0 && i != pick)
            .count();
        // A gateway not heard from yet gets an immediate poll: its answer
        // (even "no work") proves the connection, so /readyz turns ready in
        // one round trip instead of one long-poll.
        let wait_ms = if !entries[pick].connected {
            0
        } else if uncovered == 0 {
            long_poll_ms
        } else {
            SHORT_POLL_MS.min(long_poll_ms)
        };
        entries[pick].idle_pollers += 1;
        Choice::Poll {
            base: entries[pick].base.clone(),
            wait_ms,
        }
    }

    /// The poll chosen by [`Gateways::choose`] returned.
    pub fn poll_done(&self, base: &str, wait_ms: u64) {
        if wait_ms == 0 {
            return;
        }
        if let Some(entry) = self
            .lock()
            .iter_mut()
            .find(|entry| entry.base.as_ref() == base)
        {
            entry.idle_pollers = entry.idle_pollers.saturating_sub(1);
        }
    }

    /// A pull answered: remember its heads, clear any backoff.
    pub fn record_success(&self, base: &str, heads: Option<&Heads>) -> bool {
        let mut entries = self.lock();
        let Some(entry) = entries.iter_mut().find(|entry| entry.base.as_ref() == base) else {
            return false;
        };
        let was_connected = entry.connected;
        entry.connected = true;
        entry.failures = 0;
        if let Some(heads) = heads {
            let (depth, oldest_age_ms) = heads.summary();
            entry.depth = depth;
            entry.oldest_age_ms = oldest_age_ms;
            entry.observed = Instant::now();
        }
        !was_connected
    }

    /// A pull failed: back off with jitter so readers do not reconnect in
    /// step. Failures of calls that were already under way when an earlier
    /// one set the backoff (every slot polling a gateway that just went
    /// away fails at once) do not grow it: one outage is one step. A
    /// retiring gateway that fails is gone and is forgotten.
    pub fn record_failure(&self, base: &str) -> Failure {
        let mut entries = self.lock();
        let Some(index) = entries.iter().position(|entry| entry.base.as_ref() == base) else {
            return Failure::Forgotten;
        };
        if entries[index].retiring {
            tracing::info!(gateway = %base, "retired gateway went away");
            entries.remove(index);
            return Failure::Forgotten;
        }
        let entry = &mut entries[index];
        let now = Instant::now();
        entry.connected = false;
        entry.depth = 0;
        if entry.retry_at > now {
            return Failure::Repeated;
        }
        entry.failures = entry.failures.saturating_add(1);
        let delay = backoff(entry.failures);
        entry.retry_at = now + delay;
        Failure::BackOff(delay)
    }

    #[cfg(test)]
    fn set_heads(&self, base: &str, depth: u32, oldest_age_ms: u64) {
        let heads = Heads(vec![flightdeck_protocol::pull::Head {
            group: "g".into(),
            depth,
            oldest_age_ms,
        }]);
        self.record_success(base, Some(&heads));
    }
}

/// Exponential backoff capped at 5 s, with +-50% jitter.
pub fn backoff(failures: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << failures.saturating_sub(1).min(10));
    let capped = exp.min(BACKOFF_MAX);
    let jitter = 0.5 + (random_u64() % 1000) as f64 / 1000.0;
    capped.mul_f64(jitter)
}

/// A random number without a dependency: std's hasher keys are random per
/// `RandomState`, which is plenty for jitter and tie-breaking.
pub fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateways(bases: &[&str]) -> Gateways {
        let gateways = Gateways::default();
        gateways.set(&bases.iter().map(|b| b.to_string()).collect::<Vec<_>>());
        gateways
    }

    #[test]
    fn oldest_head_wins_across_gateways() {
        let g = gateways(&["a", "b", "c"]);
        g.set_heads("a", 5, 100);
        g.set_heads("b", 1, 900);
        g.set_heads("c", 0, 0);
        assert_eq!(
            g.choose(20_000),
            Choice::Poll {
                base: Arc::from("b"),
                wait_ms: 0
            }
        );
    }

    #[test]
    fn a_gateway_not_heard_from_yet_is_polled_without_waiting() {
        let g = gateways(&["a"]);
        let Choice::Poll { wait_ms, .. } = g.choose(20_000) else {
            panic!("expected a poll")
        };
        assert_eq!(wait_ms, 0, "readiness must not wait a whole long-poll");
        g.record_success("a", None);
        let Choice::Poll { wait_ms, .. } = g.choose(20_000) else {
            panic!("expected a poll")
        };
        assert_eq!(wait_ms, 20_000, "once connected, idle slots long-poll");
    }

    #[test]
    fn idle_slots_spread_and_wait_long_only_when_every_gateway_is_watched() {
        let g = gateways(&["a", "b"]);
        g.record_success("a", None);
        g.record_success("b", None);
        let Choice::Poll {
            base: first,
            wait_ms,
        } = g.choose(20_000)
        else {
            panic!("expected a poll")
        };
        assert_eq!(
            wait_ms, SHORT_POLL_MS,
            "the other gateway is not watched yet"
        );
        let Choice::Poll {
            base: second,
            wait_ms,
        } = g.choose(20_000)
        else {
            panic!("expected a poll")
        };
        assert_ne!(
            first, second,
            "the second idle slot goes to the other gateway"
        );
        assert_eq!(wait_ms, 20_000);
        g.poll_done(&first, SHORT_POLL_MS);
        g.poll_done(&second, 20_000);
    }

    #[test]
    fn one_outage_is_one_backoff_step_whatever_the_number_of_slots() {
        let g = gateways(&["a"]);
        assert!(matches!(g.record_failure("a"), Failure::BackOff(_)));
        for _ in 0..7 {
            assert_eq!(g.record_failure("a"), Failure::Repeated);
        }
        let Choice::Sleep(delay) = g.choose(20_000) else {
            panic!("the gateway is backing off")
        };
        assert!(
            delay <= Duration::from_millis(150),
            "still the first step (100 ms +-50%), not the eighth: {delay:?}"
        );
    }

    #[test]
    fn a_gateway_gone_from_discovery_is_pulled_until_it_fails() {
        let g = gateways(&["a", "b"]);
        g.set(&["b".to_string()]);
        assert_eq!(
            g.bases().iter().map(|b| b.to_string()).collect::<Vec<_>>(),
            vec!["a", "b"],
            "a draining gateway still has queued work"
        );
        g.set_heads("a", 1, 500);
        assert_eq!(
            g.choose(20_000),
            Choice::Poll {
                base: Arc::from("a"),
                wait_ms: 0
            }
        );
        assert_eq!(g.record_failure("a"), Failure::Forgotten);
        assert_eq!(
            g.bases().iter().map(|b| b.to_string()).collect::<Vec<_>>(),
            vec!["b"]
        );
        // Listed again before it failed: an ordinary gateway again.
        g.set(&["b".to_string()]);
        g.set(&["a".to_string(), "b".to_string()]);
        assert!(matches!(g.record_failure("a"), Failure::BackOff(_)));
    }

    #[test]
    fn failing_gateways_back_off_and_are_skipped() {
        let g = gateways(&["a", "b"]);
        g.record_failure("a");
        for _ in 0..10 {
            let Choice::Poll { base, wait_ms } = g.choose(20_000) else {
                panic!("expected a poll")
            };
            assert_eq!(base.as_ref(), "b");
            g.poll_done(&base, wait_ms);
        }
        g.record_failure("b");
        assert!(matches!(g.choose(20_000), Choice::Sleep(_)));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_millis(150));
        assert!(backoff(20) <= Duration::from_millis(7_500));
        assert!(backoff(20) >= Duration::from_millis(2_500));
    }

    #[test]
    fn discovery_keeps_known_state() {
        let g = gateways(&["a", "b"]);
        g.set_heads("a", 2, 50);
        g.set(&["a".to_string(), "c".to_string()]);
        assert_eq!(
            g.bases().iter().map(|b| b.to_string()).collect::<Vec<_>>(),
            vec!["a", "b", "c"],
            "b retires and stays until a pull to it fails"
        );
        assert_eq!(
            g.choose(20_000),
            Choice::Poll {
                base: Arc::from("a"),
                wait_ms: 0
            }
        );
    }
}
