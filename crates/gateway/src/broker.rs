//! The consumer-group queues and the leases handed to readers.
//!
//! One `Broker` owns every `ConsumerGroupQueue`, the waiting reader long-polls
//! and the outstanding leases, behind one `std::sync::Mutex`. Every operation
//! is a few pointer moves and never awaits while holding the lock, so a mutex
//! costs less per request than an actor (no channel hop, no extra task wake-up
//! on both enqueue and lease) and keeps enqueue/lease/redeliver atomic across
//! groups, which the oldest-first lease over several groups needs. See
//! docs/protocol.md for the semantics.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use flightdeck_protocol::gateway_config::{GatewayConfig, QueueSettings};
use tokio::sync::{mpsc, oneshot};

use crate::error::GatewayError;
use crate::metrics::Metrics;
use flightdeck_protocol::pull::{Head, Heads, UploadHead};

/// How long a reader has to start uploading after a lease was handed out
/// before the request goes back to its queue (covers a lease response lost
/// on a connection that broke while it was being written).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Retry-After for a full queue: queues drain at engine speed, a second is
/// the scale at which that changes.
const RETRY_AFTER_SECONDS: u64 = 1;
/// A reader counts as connected for this long after its last pull.
const READER_SEEN_WINDOW: Duration = Duration::from_secs(60);

/// What the client's handler hears about its request.
#[derive(Debug)]
pub enum ClientEvent {
    /// The engine answered: status and content type. First event of an answer.
    Head(UploadHead),
    /// A piece of the engine's body, as it came.
    Chunk(Bytes),
    /// The body is complete.
    End,
    /// The request failed; after a `Head` this ends a started stream.
    Failed(GatewayError),
}

/// A client request waiting in a queue or leased to a reader.
#[derive(Debug)]
pub struct Job {
    pub id: u64,
    pub group: Arc<str>,
    /// The engine path (`/v1/chat/completions`, ...).
    pub path: &'static str,
    /// The client's body, relayed unchanged.
    pub body: Bytes,
    pub enqueued_at: Instant,
    /// How often the job went back to its queue because its reader vanished.
    pub redeliveries: u32,
    pub events: mpsc::Sender<ClientEvent>,
    in_flight: Option<InFlight>,
}

/// Keeps the in-flight gauge right however a leased job ends (finished,
/// redelivered, dropped with a cancelled client).
#[derive(Debug)]
struct InFlight(prometheus::IntGauge);

impl InFlight {
    fn new(gauge: prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What a reader's long-poll receives: everything it needs to call the engine.
#[derive(Debug, Clone)]
pub struct LeaseGrant {
    pub lease_id: u64,
    pub group: Arc<str>,
    pub path: &'static str,
    pub body: Bytes,
}

/// Answer of [`Broker::lease_or_wait`].
pub enum LeaseOutcome {
    Granted(LeaseGrant),
    /// Nothing queued; the caller awaits `receiver` and then calls
    /// [`Broker::cancel_wait`] with `waiter_id` if it gave up.
    Wait {
        waiter_id: u64,
        receiver: oneshot::Receiver<LeaseGrant>,
    },
    Empty,
}

#[derive(Debug, Default)]
struct ConsumerGroupQueue {
    jobs: VecDeque<Job>,
    /// Long-polls waiting for this group, oldest first (ids into `waiters`).
    waiters: VecDeque<u64>,
    /// Removed from the configuration: takes no new work, drains what it has.
    retired: bool,
}

struct Waiter {
    reader: Arc<str>,
    groups: Vec<Arc<str>>,
    sender: oneshot::Sender<LeaseGrant>,
}

struct Leased {
    job: Job,
    ack_deadline: Instant,
}

struct ReaderSeen {
    groups: Vec<Arc<str>>,
    last_seen: Instant,
}

struct State {
    groups: HashMap<Arc<str>, ConsumerGroupQueue>,
    waiters: HashMap<u64, Waiter>,
    leases: HashMap<u64, Leased>,
    readers: HashMap<Arc<str>, ReaderSeen>,
    settings: QueueSettings,
    next_id: u64,
}

pub struct Broker {
    state: Mutex<State>,
    metrics: Arc<Metrics>,
}

impl Broker {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            state: Mutex::new(State {
                groups: HashMap::new(),
                waiters: HashMap::new(),
                leases: HashMap::new(),
                readers: HashMap::new(),
                settings: QueueSettings::default(),
                next_id: 1,
            }),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the whole data path down with it:
        // the state stays consistent because no operation panics midway.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Creates queues for new groups, retires removed ones (they drain) and
    /// takes the new queue settings. Queued and leased work is untouched.
    pub fn apply_config(&self, config: &GatewayConfig) {
        let mut state = self.lock();
        state.settings = config.queue.clone();
        let wanted = config.consumer_groups();
        for queue in state.groups.values_mut() {
            queue.retired = true;
        }
        for group in wanted {
            let queue = state.groups.entry(Arc::from(group.as_str())).or_default();
            queue.retired = false;
        }
        drop_drained_groups(&mut state, &self.metrics);
    }

    pub fn settings(&self) -> QueueSettings {
        self.lock().settings.clone()
    }

    /// Requests waiting in `group` (`None` if the group has no queue).
    pub fn depth(&self, group: &str) -> Option<usize> {
        self.lock().groups.get(group).map(|queue| queue.jobs.len())
    }

    /// Of `groups`, the one with the shortest queue (first on ties).
    pub fn shortest<'a>(&self, groups: &'a [Arc<str>]) -> Option<&'a Arc<str>> {
        let state = self.lock();
        groups
            .iter()
            .filter_map(|group| {
                let queue = state.groups.get(group.as_ref())?;
                (!queue.retired).then_some((group, queue.jobs.len()))
            })
            .min_by_key(|(_, depth)| *depth)
            .map(|(group, _)| group)
    }

    /// Queues a client request, or hands it straight to a waiting reader.
    /// Returns the job id (for [`Broker::abandon`]).
    pub fn enqueue(
        &self,
        group: &Arc<str>,
        path: &'static str,
        body: Bytes,
        events: mpsc::Sender<ClientEvent>,
    ) -> Result<u64, GatewayError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let max_depth = state.settings.max_depth as usize;
        let Some(queue) = state
            .groups
            .get_mut(group.as_ref())
            .filter(|queue| !queue.retired)
        else {
            return Err(GatewayError::NotConfigured);
        };
        if queue.jobs.len() >= max_depth {
            self.metrics
                .queue_full
                .with_label_values(&[group.as_ref()])
                .inc();
            return Err(GatewayError::QueueFull {
                group: group.to_string(),
                depth: queue.jobs.len(),
                retry_after_seconds: RETRY_AFTER_SECONDS,
            });
        }
        let id = state.next_id;
        state.next_id += 1;
        let job = Job {
            id,
            group: group.clone(),
            path,
            body,
            enqueued_at: Instant::now(),
            redeliveries: 0,
            events,
            in_flight: None,
        };
        if let Some(job) = self.hand_to_waiter(state, job) {
            if let Some(queue) = state.groups.get_mut(group.as_ref()) {
                queue.jobs.push_back(job);
            }
        }
        Ok(id)
    }

    /// Removes a job whose client went away while it was still queued.
    pub fn abandon(&self, group: &str, job_id: u64) {
        let mut state = self.lock();
        if let Some(queue) = state.groups.get_mut(group) {
            let before = queue.jobs.len();
            queue.jobs.retain(|job| job.id != job_id);
            if queue.jobs.len() != before {
                self.metrics.abandoned.with_label_values(&[group]).inc();
            }
        }
    }

    /// Leases the oldest job among `groups`; if none is queued and `wait` is
    /// set, registers a waiter that the next enqueue or redelivery fills.
    pub fn lease_or_wait(&self, reader: &str, groups: &[Arc<str>], wait: bool) -> LeaseOutcome {
        let mut guard = self.lock();
        let state = &mut *guard;
        let now = Instant::now();
        match state.readers.get_mut(reader) {
            Some(seen) => seen.last_seen = now,
            None => {
                state.readers.insert(
                    Arc::from(reader),
                    ReaderSeen {
                        groups: groups.to_vec(),
                        last_seen: now,
                    },
                );
            }
        }
        loop {
            let oldest = groups
                .iter()
                .filter_map(|group| {
                    let job = state.groups.get(group.as_ref())?.jobs.front()?;
                    Some((group, job.enqueued_at))
                })
                .min_by_key(|(_, enqueued_at)| *enqueued_at)
                .map(|(group, _)| group.clone());
            let Some(group) = oldest else { break };
            let Some(job) = state
                .groups
                .get_mut(group.as_ref())
                .and_then(|q| q.jobs.pop_front())
            else {
                break;
            };
            if job.events.is_closed() {
                self.metrics
                    .abandoned
                    .with_label_values(&[group.as_ref()])
                    .inc();
                continue;
            }
            return LeaseOutcome::Granted(self.lease(state, job));
        }
        if !wait {
            return LeaseOutcome::Empty;
        }
        let waiter_id = state.next_id;
        state.next_id += 1;
        let (sender, receiver) = oneshot::channel();
        for group in groups {
            if let Some(queue) = state.groups.get_mut(group.as_ref()) {
                queue.waiters.push_back(waiter_id);
            }
        }
        state.waiters.insert(
            waiter_id,
            Waiter {
                reader: Arc::from(reader),
                groups: groups.to_vec(),
                sender,
            },
        );
        LeaseOutcome::Wait {
            waiter_id,
            receiver,
        }
    }

    /// Forgets a waiter whose long-poll ended without work.
    pub fn cancel_wait(&self, waiter_id: u64) {
        let mut state = self.lock();
        remove_waiter(&mut state, waiter_id);
    }

    /// Ends every waiting long-poll of `reader` (it is shutting down).
    pub fn leave(&self, reader: &str) {
        let mut state = self.lock();
        let ids: Vec<u64> = state
            .waiters
            .iter()
            .filter(|(_, waiter)| waiter.reader.as_ref() == reader)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            remove_waiter(&mut state, id);
        }
    }

    /// Ends every waiting long-poll (the gateway is shutting down).
    pub fn wake_all_waiters(&self) {
        let mut state = self.lock();
        let ids: Vec<u64> = state.waiters.keys().copied().collect();
        for id in ids {
            remove_waiter(&mut state, id);
        }
    }

    /// The reader started uploading its answer: the job leaves the lease
    /// table and belongs to the upload from now on.
    pub fn start_upload(&self, lease_id: u64, reader: &str) -> Option<Job> {
        let mut state = self.lock();
        if let Some(seen) = state.readers.get_mut(reader) {
            seen.last_seen = Instant::now();
        }
        state.leases.remove(&lease_id).map(|leased| leased.job)
    }

    /// The reader holding `job` went away before the first byte: back to the
    /// head of its queue, or 503 once `maxRedeliveries` is used up.
    pub fn redeliver(&self, mut job: Job) {
        let mut guard = self.lock();
        let state = &mut *guard;
        job.in_flight = None;
        if job.events.is_closed() {
            self.metrics
                .abandoned
                .with_label_values(&[job.group.as_ref()])
                .inc();
            return;
        }
        job.redeliveries += 1;
        self.metrics
            .redeliveries
            .with_label_values(&[job.group.as_ref()])
            .inc();
        if job.redeliveries > state.settings.max_redeliveries {
            let attempts = job.redeliveries;
            // The client waits on this channel; if it is full or gone the
            // client has its answer already or no longer listens.
            let _ = job
                .events
                .try_send(ClientEvent::Failed(GatewayError::RedeliveriesExhausted {
                    attempts,
                }));
            return;
        }
        let group = job.group.clone();
        if let Some(job) = self.hand_to_waiter(state, job) {
            let queue = state.groups.entry(group).or_default();
            queue.jobs.push_front(job);
        }
    }

    /// Redelivers leases whose reader never started its upload.
    pub fn expire_leases(&self, now: Instant) {
        let expired: Vec<Job> = {
            let mut state = self.lock();
            let ids: Vec<u64> = state
                .leases
                .iter()
                .filter(|(_, leased)| leased.ack_deadline <= now)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| state.leases.remove(&id))
                .map(|l| l.job)
                .collect()
        };
        for job in expired {
            tracing::warn!(job = job.id, group = %job.group, "lease not acknowledged in time; redelivering");
            self.redeliver(job);
        }
    }

    /// Current heads of `groups`, for the reader's cross-gateway choice.
    pub fn heads(&self, groups: &[Arc<str>]) -> Heads {
        let state = self.lock();
        let now = Instant::now();
        Heads(
            groups
                .iter()
                .map(|group| {
                    let queue = state.groups.get(group.as_ref());
                    let depth = queue.map_or(0, |q| q.jobs.len());
                    let oldest_age_ms = queue.and_then(|q| q.jobs.front()).map_or(0, |job| {
                        now.duration_since(job.enqueued_at).as_millis() as u64
                    });
                    Head {
                        group: group.to_string(),
                        depth: depth as u32,
                        oldest_age_ms,
                    }
                })
                .collect(),
        )
    }

    /// Refreshes the gauges that are cheaper to compute at scrape time.
    pub fn refresh_gauges(&self) {
        let mut state = self.lock();
        let now = Instant::now();
        state
            .readers
            .retain(|_, seen| now.duration_since(seen.last_seen) < READER_SEEN_WINDOW);
        let mut readers_per_group: HashMap<&str, i64> = HashMap::new();
        for seen in state.readers.values() {
            for group in &seen.groups {
                *readers_per_group.entry(group.as_ref()).or_default() += 1;
            }
        }
        for (group, queue) in &state.groups {
            self.metrics
                .queue_depth
                .with_label_values(&[group.as_ref()])
                .set(queue.jobs.len() as i64);
            self.metrics
                .connected_readers
                .with_label_values(&[group.as_ref()])
                .set(readers_per_group.get(group.as_ref()).copied().unwrap_or(0));
        }
        drop_drained_groups(&mut state, &self.metrics);
    }

    /// Total requests queued plus leased (for shutdown and tests).
    pub fn outstanding(&self) -> usize {
        let state = self.lock();
        state.leases.len() + state.groups.values().map(|q| q.jobs.len()).sum::<usize>()
    }

    /// Hands `job` to the oldest live waiter of its group, or gives it back.
    fn hand_to_waiter(&self, state: &mut State, mut job: Job) -> Option<Job> {
        loop {
            let next = state
                .groups
                .get_mut(job.group.as_ref())
                .and_then(|queue| queue.waiters.pop_front());
            let Some(waiter_id) = next else {
                return Some(job);
            };
            let Some(waiter) = state.waiters.remove(&waiter_id) else {
                continue;
            };
            for group in &waiter.groups {
                if let Some(queue) = state.groups.get_mut(group.as_ref()) {
                    queue.waiters.retain(|id| *id != waiter_id);
                }
            }
            if waiter.sender.is_closed() {
                continue;
            }
            let grant = self.lease(state, job);
            match waiter.sender.send(grant) {
                Ok(()) => return None,
                // The long-poll ended between the check and the send: take the
                // job back out of the lease table and try the next waiter.
                Err(grant) => match state.leases.remove(&grant.lease_id) {
                    Some(leased) => {
                        job = leased.job;
                        job.in_flight = None;
                    }
                    None => return None,
                },
            }
        }
    }

    /// Moves `job` into the lease table and describes it for the reader.
    fn lease(&self, state: &mut State, mut job: Job) -> LeaseGrant {
        let lease_id = state.next_id;
        state.next_id += 1;
        if job.redeliveries == 0 {
            self.metrics
                .queue_wait
                .with_label_values(&[job.group.as_ref()])
                .observe(job.enqueued_at.elapsed().as_secs_f64());
        }
        job.in_flight = Some(InFlight::new(
            self.metrics
                .in_flight
                .with_label_values(&[job.group.as_ref()]),
        ));
        let grant = LeaseGrant {
            lease_id,
            group: job.group.clone(),
            path: job.path,
            body: job.body.clone(),
        };
        state.leases.insert(
            lease_id,
            Leased {
                job,
                ack_deadline: Instant::now() + ACK_TIMEOUT,
            },
        );
        grant
    }
}

fn remove_waiter(state: &mut State, waiter_id: u64) {
    if let Some(waiter) = state.waiters.remove(&waiter_id) {
        for group in &waiter.groups {
            if let Some(queue) = state.groups.get_mut(group.as_ref()) {
                queue.waiters.retain(|id| *id != waiter_id);
            }
        }
    }
}

/// Retired groups disappear once nothing waits in them.
fn drop_drained_groups(state: &mut State, metrics: &Metrics) {
    state.groups.retain(|group, queue| {
        let keep = !queue.retired || !queue.jobs.is_empty();
        if !keep {
            let _ = metrics.queue_depth.remove_label_values(&[group.as_ref()]);
            let _ = metrics
                .connected_readers
                .remove_label_values(&[group.as_ref()]);
        }
        keep
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use flightdeck_protocol::gateway_config::ModelRoute;

    fn config(groups: &[&str], max_depth: u32, max_redeliveries: u32) -> GatewayConfig {
        let mut config = GatewayConfig::default();
        config.queue.max_depth = max_depth;
        config.queue.max_redeliveries = max_redeliveries;
        for group in groups {
            config.models.insert(
                format!("model-{group}"),
                ModelRoute {
                    consumer_groups: vec![group.to_string()],
                    engine: None,
                    ..Default::default()
                },
            );
        }
        config
    }

    fn broker(groups: &[&str], max_depth: u32, max_redeliveries: u32) -> Broker {
        let broker = Broker::new(Arc::new(Metrics::new().expect("metrics")));
        broker.apply_config(&config(groups, max_depth, max_redeliveries));
        broker
    }

    fn enqueue(
        broker: &Broker,
        group: &str,
        body: &'static str,
    ) -> (u64, mpsc::Receiver<ClientEvent>) {
        let (events, receiver) = mpsc::channel(8);
        let id = broker
            .enqueue(
                &Arc::from(group),
                "/v1/chat/completions",
                Bytes::from_static(body.as_bytes()),
                events,
            )
            .expect("enqueue");
        (id, receiver)
    }

    fn groups(names: &[&str]) -> Vec<Arc<str>> {
        names.iter().map(|g| Arc::from(*g)).collect()
    }

    fn granted(outcome: LeaseOutcome) -> LeaseGrant {
        match outcome {
            LeaseOutcome::Granted(grant) => grant,
            _ => panic!("expected a lease"),
        }
    }

    #[test]
    fn full_queue_refuses_at_once() {
        let broker = broker(&["a"], 2, 3);
        let _first = enqueue(&broker, "a", "1");
        let _second = enqueue(&broker, "a", "2");
        let (events, _receiver) = mpsc::channel(1);
        let err = broker
            .enqueue(&Arc::from("a"), "/v1/completions", Bytes::new(), events)
            .expect_err("full");
        assert!(matches!(err, GatewayError::QueueFull { depth: 2, .. }));
    }

    #[test]
    fn lease_takes_the_oldest_across_groups() {
        let broker = broker(&["a", "b"], 8, 3);
        let _b = enqueue(&broker, "b", "first");
        std::thread::sleep(Duration::from_millis(2));
        let _a = enqueue(&broker, "a", "second");
        let grant = granted(broker.lease_or_wait("r1", &groups(&["a", "b"]), false));
        assert_eq!(grant.body, Bytes::from_static(b"first"));
        assert_eq!(grant.group.as_ref(), "b");
        let grant = granted(broker.lease_or_wait("r1", &groups(&["a", "b"]), false));
        assert_eq!(grant.body, Bytes::from_static(b"second"));
        assert!(matches!(
            broker.lease_or_wait("r1", &groups(&["a", "b"]), false),
            LeaseOutcome::Empty
        ));
    }

    #[test]
    fn readers_only_see_their_groups() {
        let broker = broker(&["a", "b"], 8, 3);
        let _a = enqueue(&broker, "a", "x");
        assert!(matches!(
            broker.lease_or_wait("r1", &groups(&["b"]), false),
            LeaseOutcome::Empty
        ));
        assert_eq!(broker.depth("a"), Some(1));
    }

    #[test]
    fn waiting_reader_gets_the_next_request_directly() {
        let broker = broker(&["a"], 8, 3);
        let LeaseOutcome::Wait { mut receiver, .. } =
            broker.lease_or_wait("r1", &groups(&["a"]), true)
        else {
            panic!("expected to wait")
        };
        let _job = enqueue(&broker, "a", "hello");
        let grant = receiver.try_recv().expect("handed over");
        assert_eq!(grant.body, Bytes::from_static(b"hello"));
        assert_eq!(broker.depth("a"), Some(0), "never queued");
    }

    #[test]
    fn a_gone_waiter_does_not_swallow_work() {
        let broker = broker(&["a"], 8, 3);
        let LeaseOutcome::Wait { receiver, .. } = broker.lease_or_wait("r1", &groups(&["a"]), true)
        else {
            panic!("expected to wait")
        };
        drop(receiver);
        let _job = enqueue(&broker, "a", "hello");
        assert_eq!(broker.depth("a"), Some(1));
    }

    #[test]
    fn redelivery_goes_to_the_head_and_is_bounded() {
        let broker = broker(&["a"], 8, 1);
        let (_id, mut client) = enqueue(&broker, "a", "first");
        let _second = enqueue(&broker, "a", "second");
        let grant = granted(broker.lease_or_wait("r1", &groups(&["a"]), false));
        let job = broker.start_upload(grant.lease_id, "r1").expect("leased");
        broker.redeliver(job);
        let again = granted(broker.lease_or_wait("r2", &groups(&["a"]), false));
        assert_eq!(again.body, Bytes::from_static(b"first"), "back at the head");
        let job = broker.start_upload(again.lease_id, "r2").expect("leased");
        broker.redeliver(job);
        match client.try_recv() {
            Ok(ClientEvent::Failed(GatewayError::RedeliveriesExhausted { attempts: 2 })) => {}
            other => panic!("expected 503 after the retries, got {other:?}"),
        }
        let next = granted(broker.lease_or_wait("r2", &groups(&["a"]), false));
        assert_eq!(next.body, Bytes::from_static(b"second"));
    }

    #[test]
    fn unacknowledged_leases_expire_back_to_the_queue() {
        let broker = broker(&["a"], 8, 3);
        let (_id, _client) = enqueue(&broker, "a", "x");
        let grant = granted(broker.lease_or_wait("r1", &groups(&["a"]), false));
        broker.expire_leases(Instant::now());
        assert_eq!(broker.depth("a"), Some(0), "not expired yet");
        broker.expire_leases(Instant::now() + ACK_TIMEOUT + Duration::from_millis(1));
        assert_eq!(broker.depth("a"), Some(1));
        assert!(
            broker.start_upload(grant.lease_id, "r1").is_none(),
            "the old lease is void"
        );
    }

    #[test]
    fn abandoned_requests_leave_the_queue() {
        let broker = broker(&["a"], 8, 3);
        let (id, client) = enqueue(&broker, "a", "x");
        broker.abandon("a", id);
        assert_eq!(broker.depth("a"), Some(0));
        // A client that vanished without abandoning is skipped at lease time.
        let (_, client2) = enqueue(&broker, "a", "y");
        drop(client2);
        drop(client);
        assert!(matches!(
            broker.lease_or_wait("r1", &groups(&["a"]), false),
            LeaseOutcome::Empty
        ));
    }

    #[test]
    fn reload_keeps_queued_work_and_drains_removed_groups() {
        let broker = broker(&["a", "b"], 8, 3);
        let _job = enqueue(&broker, "a", "x");
        broker.apply_config(&config(&["b", "c"], 8, 3));
        assert_eq!(broker.depth("a"), Some(1), "removed group drains");
        assert_eq!(broker.depth("c"), Some(0), "new group appears");
        let (events, _receiver) = mpsc::channel(1);
        assert!(broker
            .enqueue(&Arc::from("a"), "/v1/completions", Bytes::new(), events)
            .is_err());
        let grant = granted(broker.lease_or_wait("r1", &groups(&["a"]), false));
        assert_eq!(grant.body, Bytes::from_static(b"x"));
        broker.refresh_gauges();
        assert_eq!(broker.depth("a"), None, "drained group is gone");
    }

    #[test]
    fn leave_wakes_only_that_readers_polls() {
        let broker = broker(&["a"], 8, 3);
        let LeaseOutcome::Wait {
            receiver: mut mine, ..
        } = broker.lease_or_wait("r1", &groups(&["a"]), true)
        else {
            panic!("wait")
        };
        let LeaseOutcome::Wait {
            receiver: mut other,
            ..
        } = broker.lease_or_wait("r2", &groups(&["a"]), true)
        else {
            panic!("wait")
        };
        broker.leave("r1");
        assert!(matches!(
            mine.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        assert!(matches!(
            other.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        ));
        let _job = enqueue(&broker, "a", "x");
        assert!(other.try_recv().is_ok());
    }

    #[test]
    fn heads_report_depth_and_age() {
        let broker = broker(&["a", "b"], 8, 3);
        let _job = enqueue(&broker, "a", "x");
        std::thread::sleep(Duration::from_millis(5));
        let heads = broker.heads(&groups(&["a", "b"]));
        assert_eq!(heads.0[0].depth, 1);
        assert!(heads.0[0].oldest_age_ms >= 5);
        assert_eq!(heads.0[1].depth, 0);
    }
}
