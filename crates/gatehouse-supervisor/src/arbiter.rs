//! The actor that owns one app's workers (Gunicorn's arbiter).
//!
//! The `Supervisor` handle sends `Command`s, each worker's monitor sends `Event`s, and a tick drives
//! time (backoff, drain and kill deadlines, `max_requests` and `max_memory` checks). After every
//! message the arbiter moves leaving workers along, reconciles (every slot `0..target` of the active
//! generation must have a worker starting or serving, subject to its backoff), and publishes the
//! ready list and the status snapshot.
//!
//! Capacity never drops for a planned replacement: a worker to recycle is only marked `retiring`
//! (it keeps serving), which leaves its slot uncovered so a replacement starts, and it leaves the
//! list in the same update that publishes the ready replacement. A roll does the same for a whole
//! generation (`roll.rs`). Unplanned losses (crash, timeout, failed health) leave at once.
//!
//! Logs from here carry the app in the `supervisor` span.

mod roll;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::health::Checks;
use crate::memory;
use crate::monitor::{self, Event};
use crate::spawn::Launcher;
use crate::worker::{State, Worker};
use crate::{Error, LoadView, ReadyWorker, Reason, WorkerId, WorkerState, WorkerStatus};

use roll::Roll;

/// How often time-driven work is looked at.
const TICK: Duration = Duration::from_millis(100);
/// How often `max_memory` is checked (one pass over /proc per app).
const MEMORY_EVERY: Duration = Duration::from_secs(1);
/// Quick shutdown: SIGTERM, then SIGKILL after this.
const QUICK_GRACE: Duration = Duration::from_secs(1);

/// What the `Supervisor` handle asks for.
pub(crate) enum Command {
    Unreachable(WorkerId),
    TimedOut {
        worker: WorkerId,
        request_id: String,
    },
    Roll {
        /// Boxed: a config is large, and the other commands are small.
        app: Option<Box<gatehouse_config::model::App>>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Scale(i32),
    ScaleTo(usize),
    Shutdown {
        graceful: bool,
        done: oneshot::Sender<()>,
    },
}

/// What `Supervisor::status` and `restarts` read, published after every change.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Snapshot {
    workers: Vec<Entry>,
    pub restarts: [u64; Reason::ALL.len()],
}

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    id: WorkerId,
    pid: u32,
    slot: usize,
    generation: u64,
    state: WorkerState,
    started: Instant,
    restarts: u64,
}

impl Snapshot {
    pub fn status(&self) -> Vec<WorkerStatus> {
        let pids: Vec<u32> = self.workers.iter().map(|entry| entry.pid).collect();
        let rss = memory::rss_by_group(&pids);
        self.workers
            .iter()
            .map(|entry| WorkerStatus {
                id: entry.id,
                pid: entry.pid,
                slot: entry.slot,
                generation: entry.generation,
                state: entry.state,
                age: entry.started.elapsed(),
                restarts: entry.restarts,
                rss_bytes: rss.get(&entry.pid).copied(),
            })
            .collect()
    }
}

/// Unique over the whole process, so that socket names never collide.
fn next_id() -> WorkerId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

struct Shutdown {
    graceful: bool,
    done: Vec<oneshot::Sender<()>>,
}

pub(crate) struct Arbiter {
    /// The config of the active generation.
    launcher: Arc<Launcher>,
    runtime_dir: PathBuf,
    load: Arc<dyn LoadView>,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedReceiver<Event>,
    events_tx: mpsc::UnboundedSender<Event>,
    ready: watch::Sender<Vec<ReadyWorker>>,
    snapshot: watch::Sender<Snapshot>,
    workers: BTreeMap<WorkerId, Worker>,
    /// Backoff and restart count per slot number.
    slots: Vec<Backoff>,
    /// How many workers the active generation should have (`workers`, moved by `scale`).
    target: usize,
    /// The active generation: the one published.
    generation: u64,
    /// The highest generation started so far (a failed roll's number is not reused).
    last_generation: u64,
    roll: Option<Roll>,
    shutdown: Option<Shutdown>,
    restarts: [u64; Reason::ALL.len()],
    next_memory_check: Instant,
}

impl Arbiter {
    pub fn new(
        launcher: Launcher,
        runtime_dir: PathBuf,
        load: Arc<dyn LoadView>,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> (
        Arbiter,
        watch::Receiver<Vec<ReadyWorker>>,
        watch::Receiver<Snapshot>,
    ) {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (ready, ready_rx) = watch::channel(Vec::new());
        let (snapshot, snapshot_rx) = watch::channel(Snapshot::default());
        let target = launcher.app.workers.max(1);
        let arbiter = Arbiter {
            launcher: Arc::new(launcher),
            runtime_dir,
            load,
            commands,
            events,
            events_tx,
            ready,
            snapshot,
            workers: BTreeMap::new(),
            slots: Vec::new(),
            target,
            generation: 1,
            last_generation: 1,
            roll: None,
            shutdown: None,
            restarts: [0; Reason::ALL.len()],
            next_memory_check: Instant::now(),
        };
        (arbiter, ready_rx, snapshot_rx)
    }

    pub async fn run(self) {
        let span = tracing::info_span!("supervisor", app = %self.launcher.app.name);
        self.serve().instrument(span).await;
    }

    async fn serve(mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut handle_alive = true;
        loop {
            tokio::select! {
                command = self.commands.recv(), if handle_alive => match command {
                    Some(command) => self.command(command).await,
                    None => {
                        // The `Supervisor` was dropped without `shutdown`.
                        handle_alive = false;
                        self.begin_shutdown(false, None);
                    }
                },
                Some(event) = self.events.recv() => self.event(event),
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            self.advance(now);
            self.reconcile(now).await;
            self.publish();
            if let Some(shutdown) = &mut self.shutdown {
                if self.workers.is_empty() {
                    tracing::info!("every worker has exited");
                    for done in shutdown.done.drain(..) {
                        let _ = done.send(());
                    }
                    return;
                }
            }
        }
    }

    async fn command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Unreachable(id) => self.unhealthy(id, "a request could not connect", now),
            Command::TimedOut { worker, request_id } => self.timed_out(worker, &request_id, now),
            Command::Roll { app, reply } => self.start_roll(app.map(|app| *app), reply).await,
            Command::Scale(delta) => self.scale(delta),
            Command::ScaleTo(workers) => self.scale_to(workers),
            Command::Shutdown { graceful, done } => self.begin_shutdown(graceful, Some(done)),
        }
    }

    fn event(&mut self, event: Event) {
        let now = Instant::now();
        match event {
            Event::Ready(id) => self.ready(id, now),
            Event::StartFailed { id, why } => self.start_failed(id, &why, now),
            Event::Unhealthy { id, why } => self.unhealthy(id, &why, now),
            Event::Exited { id, status } => self.exited(id, status, now),
        }
    }

    fn ready(&mut self, id: WorkerId, now: Instant) {
        let Some(worker) = self.workers.get_mut(&id) else {
            return;
        };
        if worker.state != State::Starting || worker.leaving {
            return;
        }
        worker.state = State::Ready;
        worker.ready_since = Some(now);
        tracing::info!(
            worker = worker.slot,
            pid = worker.pid,
            generation = worker.generation,
            startup = ?now.saturating_duration_since(worker.started),
            "worker ready"
        );
        let (slot, generation) = (worker.slot, worker.generation);
        if self.roll_generation() == Some(generation) {
            self.finish_roll_if_ready(now);
            return;
        }
        if generation != self.generation {
            // A replacement started for a generation that a roll has since replaced.
            if let Some(worker) = self.workers.get_mut(&id) {
                worker.leave(now);
            }
            return;
        }
        // A replacement is ready: the worker it replaces leaves in this same update.
        for other in self.workers.values_mut() {
            if other.id != id
                && other.generation == generation
                && other.slot == slot
                && other.retiring.is_some()
                && !other.leaving
            {
                tracing::info!(
                    worker = other.slot,
                    pid = other.pid,
                    "replacement ready; draining the old worker"
                );
                other.leave(now);
            }
        }
    }

    fn start_failed(&mut self, id: WorkerId, why: &str, now: Instant) {
        let Some(worker) = self.workers.get_mut(&id) else {
            return;
        };
        if worker.leaving || worker.state != State::Starting {
            return;
        }
        if self
            .roll
            .as_ref()
            .is_some_and(|roll| roll.generation == worker.generation)
        {
            let why = format!("worker {} (pid {}): {why}", worker.slot, worker.pid);
            self.abort_roll(why);
            return;
        }
        tracing::warn!(worker = worker.slot, pid = worker.pid, "{why}; killing it");
        worker.kill();
        let slot = worker.slot;
        self.count(Reason::Health, slot);
        self.slot_failed(slot, None, now);
    }

    /// Failed health checks, or a refused connection: out of the list, replaced.
    fn unhealthy(&mut self, id: WorkerId, why: &str, now: Instant) {
        let Some(worker) = self.workers.get_mut(&id) else {
            return;
        };
        if worker.leaving || worker.state != State::Ready {
            return;
        }
        if self
            .roll
            .as_ref()
            .is_some_and(|roll| roll.generation == worker.generation)
        {
            let why = format!("worker {} (pid {}): {why}", worker.slot, worker.pid);
            self.abort_roll(why);
            return;
        }
        tracing::warn!(
            worker = worker.slot,
            pid = worker.pid,
            "worker unhealthy: {why}; replacing it"
        );
        let counted = worker.retiring.is_none();
        let ready_for = worker.ready_for(now);
        worker.leave(now);
        let slot = worker.slot;
        if counted {
            self.count(Reason::Health, slot);
        }
        self.slot_failed(slot, ready_for, now);
    }

    fn timed_out(&mut self, id: WorkerId, request_id: &str, now: Instant) {
        let Some(worker) = self.workers.get_mut(&id) else {
            tracing::debug!(
                worker_id = id,
                request_id,
                "request timed out on a worker already gone"
            );
            return;
        };
        if worker.aborted || worker.state == State::Killed {
            return;
        }
        tracing::warn!(
            worker = worker.slot,
            pid = worker.pid,
            request_id,
            "request timed out; SIGABRT to the worker's process group (stack dump), SIGKILL in {:?}",
            crate::worker::ABORT_GRACE
        );
        let counted = !worker.leaving && worker.retiring.is_none();
        worker.abort(now);
        let slot = worker.slot;
        if counted {
            self.count(Reason::Timeout, slot);
        }
    }

    fn exited(&mut self, id: WorkerId, status: Option<ExitStatus>, now: Instant) {
        let Some(worker) = self.workers.remove(&id) else {
            return;
        };
        let status_text = status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string());
        if !worker.leaving && self.roll_generation() == Some(worker.generation) {
            let why = format!(
                "worker {} (pid {}) exited ({status_text}) before the generation was ready",
                worker.slot, worker.pid
            );
            self.abort_roll(why);
            return;
        }
        if worker.leaving || self.shutdown.is_some() || worker.generation != self.generation {
            tracing::info!(
                worker = worker.slot,
                pid = worker.pid,
                "worker exited ({status_text})"
            );
            return;
        }
        let reason = match status {
            Some(status) if status.success() => Reason::Exit,
            _ => Reason::Crash,
        };
        tracing::warn!(
            worker = worker.slot,
            pid = worker.pid,
            reason = reason.as_str(),
            "worker exited unexpectedly ({status_text})"
        );
        if worker.retiring.is_none() {
            self.count(reason, worker.slot);
        }
        self.slot_failed(worker.slot, worker.ready_for(now), now);
    }

    fn scale(&mut self, delta: i32) {
        let by = usize::try_from(delta.unsigned_abs()).unwrap_or(usize::MAX);
        let target = if delta >= 0 {
            self.target.saturating_add(by)
        } else {
            self.target.saturating_sub(by)
        };
        self.scale_to(target);
    }

    fn scale_to(&mut self, target: usize) {
        let target = target.max(1);
        if self.shutdown.is_some() {
            return;
        }
        if target != self.target {
            tracing::info!(from = self.target, to = target, "scaling");
            // `reconcile` starts the new slots, or drains the workers above the new target.
            self.target = target;
        }
    }

    fn begin_shutdown(&mut self, graceful: bool, done: Option<oneshot::Sender<()>>) {
        let now = Instant::now();
        if let Some(shutdown) = &mut self.shutdown {
            shutdown.done.extend(done);
            if shutdown.graceful && !graceful {
                shutdown.graceful = false;
                for worker in self.workers.values_mut() {
                    worker.terminate(now, QUICK_GRACE);
                }
            }
            return;
        }
        tracing::info!(graceful, workers = self.workers.len(), "stopping workers");
        self.shutdown = Some(Shutdown {
            graceful,
            done: done.into_iter().collect(),
        });
        self.end_roll(Err(Error::ShuttingDown));
        for worker in self.workers.values_mut() {
            if graceful {
                worker.leave(now);
            } else {
                worker.terminate(now, QUICK_GRACE);
            }
        }
    }

    /// Drives leaving workers, and checks serving ones against `max_requests` and `max_memory`.
    fn advance(&mut self, now: Instant) {
        let load = &self.load;
        for worker in self.workers.values_mut() {
            let id = worker.id;
            worker.advance(now, || load.idle(id));
        }
        if self.shutdown.is_some() {
            return;
        }
        let mut retire = Vec::new();
        for worker in self.recyclable() {
            if worker
                .limit
                .is_some_and(|limit| load.served(worker.id) >= limit)
            {
                retire.push((worker.id, Reason::MaxRequests));
            }
        }
        if let Some(max) = self.launcher.app.max_memory {
            if now >= self.next_memory_check {
                self.next_memory_check = now + MEMORY_EVERY;
                let pids: Vec<u32> = self.recyclable().map(|worker| worker.pid).collect();
                let rss = memory::rss_by_group(&pids);
                for worker in self.recyclable() {
                    if rss.get(&worker.pid).is_some_and(|bytes| *bytes > max)
                        && !retire.iter().any(|(id, _)| *id == worker.id)
                    {
                        retire.push((worker.id, Reason::Memory));
                    }
                }
            }
        }
        for (id, reason) in retire {
            self.retire(id, reason);
        }
    }

    /// Serving workers of the active generation not already marked for replacement.
    fn recyclable(&self) -> impl Iterator<Item = &Worker> {
        self.workers.values().filter(move |worker| {
            worker.generation == self.generation && worker.serving() && worker.retiring.is_none()
        })
    }

    fn retire(&mut self, id: WorkerId, reason: Reason) {
        let Some(worker) = self.workers.get_mut(&id) else {
            return;
        };
        worker.retiring = Some(reason);
        tracing::info!(
            worker = worker.slot,
            pid = worker.pid,
            reason = reason.as_str(),
            "recycling worker; it serves until its replacement is ready"
        );
        let slot = worker.slot;
        self.count(reason, slot);
    }

    /// Starts what the active generation lacks, and removes what it has too much of.
    async fn reconcile(&mut self, now: Instant) {
        if self.shutdown.is_some() {
            return;
        }
        let surplus: Vec<WorkerId> = self
            .workers
            .values()
            .filter(|w| w.generation == self.generation && !w.leaving && w.slot >= self.target)
            .map(|w| w.id)
            .collect();
        for id in surplus {
            if let Some(worker) = self.workers.get_mut(&id) {
                let (slot, counted) = (worker.slot, worker.retiring.is_none());
                tracing::info!(
                    worker = slot,
                    pid = worker.pid,
                    "scaled down; draining the worker"
                );
                worker.leave(now);
                if counted {
                    self.count(Reason::Scale, slot);
                }
            }
        }
        if self.slots.len() < self.target {
            self.slots.resize_with(self.target, Backoff::default);
        }
        for slot in 0..self.target {
            if self.covered(slot) || !self.slots[slot].allows(now) {
                continue;
            }
            let launcher = Arc::clone(&self.launcher);
            if let Err(err) = self.spawn(&launcher, slot, self.generation).await {
                tracing::error!(worker = slot, "cannot start worker: {}", chain(&err));
                self.count(Reason::Crash, slot);
                self.slot_failed(slot, None, now);
            }
        }
    }

    /// Whether `slot` of the active generation has a worker starting, or serving and staying.
    fn covered(&self, slot: usize) -> bool {
        self.workers.values().any(|w| {
            w.generation == self.generation
                && w.slot == slot
                && !w.leaving
                && (w.state == State::Starting || (w.state == State::Ready && w.retiring.is_none()))
        })
    }

    async fn spawn(
        &mut self,
        launcher: &Launcher,
        slot: usize,
        generation: u64,
    ) -> Result<WorkerId, Error> {
        let id = next_id();
        let spawned = launcher.spawn(id, slot).await?;
        let app = &launcher.app;
        let (pid, endpoint) = (spawned.pid, spawned.endpoint.clone());
        let load = Arc::clone(&self.load);
        let concurrency = app.concurrency.max(1);
        let checks = Checks {
            id,
            endpoint: endpoint.clone(),
            health: app.health.clone(),
            startup_timeout: app.startup_timeout,
            busy: Box::new(move || load.in_flight(id) >= concurrency),
        };
        let control = monitor::start(id, spawned, checks, self.events_tx.clone());
        let limit = (app.max_requests > 0)
            .then(|| app.max_requests + fastrand::u64(0..=app.max_requests_jitter));
        tracing::info!(worker = slot, pid, generation, "worker started");
        self.workers.insert(
            id,
            Worker {
                id,
                slot,
                generation,
                pid,
                endpoint,
                started: Instant::now(),
                ready_since: None,
                state: State::Starting,
                published: false,
                limit,
                retiring: None,
                leaving: false,
                aborted: false,
                graceful_timeout: app.graceful_timeout,
                control,
            },
        );
        Ok(id)
    }

    fn count(&mut self, reason: Reason, slot: usize) {
        self.restarts[reason.index()] += 1;
        if self.slots.len() <= slot {
            self.slots.resize_with(slot + 1, Backoff::default);
        }
        self.slots[slot].restarts += 1;
    }

    /// A worker of `slot` ended unplanned; `ready_for` is how long it had been ready.
    fn slot_failed(&mut self, slot: usize, ready_for: Option<Duration>, now: Instant) {
        if self.slots.len() <= slot {
            self.slots.resize_with(slot + 1, Backoff::default);
        }
        let delay = self.slots[slot].ended(ready_for, now);
        if !delay.is_zero() && slot < self.target {
            tracing::warn!(worker = slot, "restarting worker in {delay:?}");
        }
    }

    /// Publishes the ready list and the status snapshot, when they changed.
    fn publish(&mut self) {
        let shutting_down = self.shutdown.is_some();
        let mut ready = Vec::new();
        for worker in self.workers.values_mut() {
            if !shutting_down && worker.generation == self.generation && worker.serving() {
                worker.published = true;
                ready.push(worker.ready_worker());
            }
        }
        ready.sort_by_key(|worker| (worker.slot, worker.id));
        self.ready.send_if_modified(|current| {
            let changed = *current != ready;
            if changed {
                *current = ready;
            }
            changed
        });

        let mut workers: Vec<Entry> = self
            .workers
            .values()
            .map(|worker| Entry {
                id: worker.id,
                pid: worker.pid,
                slot: worker.slot,
                generation: worker.generation,
                state: if worker.leaving {
                    WorkerState::Draining
                } else if worker.published && worker.serving() {
                    WorkerState::Ready
                } else {
                    WorkerState::Starting
                },
                started: worker.started,
                restarts: self.slots.get(worker.slot).map_or(0, |slot| slot.restarts),
            })
            .collect();
        workers.sort_by_key(|entry| (entry.slot, entry.id));
        let snapshot = Snapshot {
            workers,
            restarts: self.restarts,
        };
        self.snapshot.send_if_modified(|current| {
            let changed = *current != snapshot;
            if changed {
                *current = snapshot;
            }
            changed
        });
    }
}

/// An error and its sources, `: `-separated, for one log line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
