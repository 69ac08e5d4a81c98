//! gatehouse's app worker processes, supervised as Gunicorn's arbiter supervises its workers.
//!
//! One [`Supervisor`] per `[[app]]`: a handle to an actor task (`arbiter`) that owns the app's worker
//! processes. It spawns them (`spawn`), waits for each to pass its readiness check and keeps checking
//! it (`health`), publishes the workers that may receive requests on a `watch` channel, replaces
//! workers that crash (with backoff), time out, fail their health checks, serve `max_requests` or grow
//! past `max_memory`, rolls a whole new generation on HUP, and drains workers before stopping them.
//!
//! This crate does not know the proxy. Dispatch (slots, queue, buffering) lives in `gatehouse-proxy`;
//! the binary wires the two: it reads [`Supervisor::ready_workers`] into the proxy's app pool and
//! implements [`LoadView`] over that pool, so that the supervisor can tell how many requests a worker
//! has served and whether a draining worker is idle.
//!
//! `start` must be called within a tokio runtime with its IO, time and process drivers enabled
//! (`enable_all`): the actor and each worker's monitor are tasks on it.

mod arbiter;
mod backoff;
mod error;
mod health;
mod memory;
mod monitor;
mod output;
mod spawn;
mod sys;
mod worker;
mod wsgi;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_config::model;
use tokio::sync::{mpsc, oneshot, watch};

pub use error::Error;

use arbiter::{Arbiter, Command, Snapshot};

/// Identifies one spawned worker process; unique within the gatehouse process, never reused.
pub type WorkerId = u64;

/// What the proxy knows about each worker's load; implemented by the binary over the proxy's app pool.
pub trait LoadView: Send + Sync + 'static {
    /// Requests this worker has finished (for `max_requests`).
    fn served(&self, worker: WorkerId) -> u64;
    /// True when the proxy no longer sends this worker new requests (it left the published list)
    /// AND nothing is in flight on it. Only then may a draining worker get TERM.
    fn idle(&self, worker: WorkerId) -> bool;
    /// Requests in flight on this worker now. A failed health check of a worker whose every slot is
    /// busy does not count: a sync worker cannot answer its check while it serves a long request,
    /// and a hung request is the request deadline's business, not the health check's.
    fn in_flight(&self, _worker: WorkerId) -> usize {
        0
    }
}

/// A worker that may receive requests.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadyWorker {
    pub id: WorkerId,
    /// The worker number (`{worker}`, `$GATEHOUSE_WORKER`): 0..workers.
    pub slot: usize,
    pub pid: u32,
    /// Incremented by every successful roll (HUP); the first generation is 1.
    pub generation: u64,
    /// `Endpoint::Unix(socket)`, or `Endpoint::Tcp("127.0.0.1:PORT")` when the command uses `{port}`.
    pub endpoint: model::Endpoint,
}

/// One worker as `/status` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerStatus {
    pub id: WorkerId,
    pub pid: u32,
    pub slot: usize,
    pub generation: u64,
    pub state: WorkerState,
    /// Since the process was spawned.
    pub age: Duration,
    /// Workers of this slot replaced so far, for any reason.
    pub restarts: u64,
    /// The resident memory of the worker's whole process group; `None` when /proc could not be read.
    pub rss_bytes: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerState {
    /// Spawned, not receiving requests yet (not ready, or part of a roll that is not complete).
    Starting,
    /// In the published list.
    Ready,
    /// Leaving: out of the list, finishing its requests, or stopping.
    Draining,
}

impl WorkerState {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Starting => "starting",
            WorkerState::Ready => "ready",
            WorkerState::Draining => "draining",
        }
    }
}

/// Why a worker was replaced: the `reason` label of `gatehouse_app_worker_restarts_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// It exited with status 0 without being asked to.
    Exit,
    /// It exited with a non-zero status or died of a signal gatehouse did not send.
    Crash,
    /// A request passed the app's `timeout`.
    Timeout,
    MaxRequests,
    Memory,
    /// It failed its health checks, was not ready within `startup_timeout`, or refused a connection.
    Health,
    /// A roll (HUP) replaced it.
    Reload,
    /// TTOU removed it.
    Scale,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::Exit,
        Reason::Crash,
        Reason::Timeout,
        Reason::MaxRequests,
        Reason::Memory,
        Reason::Health,
        Reason::Reload,
        Reason::Scale,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Exit => "exit",
            Reason::Crash => "crash",
            Reason::Timeout => "timeout",
            Reason::MaxRequests => "max_requests",
            Reason::Memory => "memory",
            Reason::Health => "health",
            Reason::Reload => "reload",
            Reason::Scale => "scale",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The supervisor of one app: a handle to the actor task that owns its workers.
///
/// Dropping it stops the workers quickly (as [`Supervisor::shutdown`] with `graceful = false`, without
/// waiting); call `shutdown` to wait for them.
pub struct Supervisor {
    name: String,
    commands: mpsc::UnboundedSender<Command>,
    ready: watch::Receiver<Vec<ReadyWorker>>,
    snapshot: watch::Receiver<Snapshot>,
}

impl Supervisor {
    /// Starts `app`'s workers, with their sockets under `runtime_dir/<app name>/`.
    ///
    /// Fails only on what no retry can fix: an unsupported launch (`wsgi`, for now), an unknown
    /// `user`/`group`, a runtime directory that cannot be created, or no tokio runtime. A command that
    /// cannot be spawned or crashes is retried with backoff, and is visible in the log and `restarts`.
    pub fn start(
        app: model::App,
        runtime_dir: &Path,
        load: Arc<dyn LoadView>,
    ) -> Result<Supervisor, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let name = app.name.clone();
        let launcher = spawn::Launcher::new(app, runtime_dir)?;
        launcher.remove_stale_sockets();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (arbiter, ready, snapshot) =
            Arbiter::new(launcher, runtime_dir.to_path_buf(), load, commands_rx);
        runtime.spawn(arbiter.run());
        Ok(Supervisor {
            name,
            commands,
            ready,
            snapshot,
        })
    }

    /// The app's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Workers that may receive requests now (ready, healthy, not draining), updated on every change.
    pub fn ready_workers(&self) -> watch::Receiver<Vec<ReadyWorker>> {
        self.ready.clone()
    }

    /// A request could not connect to this worker: it leaves the list, drains and is replaced.
    pub fn worker_unreachable(&self, worker: WorkerId) {
        self.send(Command::Unreachable(worker));
    }

    /// A request on this worker passed the app's `timeout`: its group gets SIGABRT (Python prints the
    /// stuck stack with faulthandler), SIGKILL after a short grace, and it is replaced.
    pub fn request_timed_out(&self, worker: WorkerId, request_id: &str) {
        self.send(Command::TimedOut {
            worker,
            request_id: request_id.to_owned(),
        });
    }

    /// HUP: starts a whole new generation (`workers` of the current config); when every new worker is
    /// ready, publishes them and drains the old ones. If any new worker fails to start or is not
    /// ready within `startup_timeout`, the new ones are killed, the old ones keep serving, and this
    /// returns the error. A newer roll supersedes one in progress (which then returns an error).
    pub async fn roll(&self) -> Result<(), Error> {
        self.roll_to(None).await
    }

    /// [`Supervisor::roll`] to a changed `[[app]]` (same name): the new generation runs the new
    /// command, environment and limits; the old config stays if the roll fails.
    pub async fn roll_with(&self, app: model::App) -> Result<(), Error> {
        if app.name != self.name {
            return Err(Error::Renamed {
                from: self.name.clone(),
                to: app.name,
            });
        }
        self.roll_to(Some(Box::new(app))).await
    }

    async fn roll_to(&self, app: Option<Box<model::App>>) -> Result<(), Error> {
        let (reply, done) = oneshot::channel();
        self.send(Command::Roll { app, reply });
        done.await.unwrap_or(Err(Error::Stopped))
    }

    /// TTIN (+1) / TTOU (-1): one more or one fewer worker (never fewer than one). A removed worker
    /// drains first (reason `scale`). The next roll goes back to the configured `workers`, as
    /// Gunicorn's reload does.
    pub fn scale(&self, delta: i32) {
        self.send(Command::Scale(delta));
    }

    /// A reload changed `workers` and nothing else that needs new workers: start or drain workers
    /// until `workers` run (at least one); the ones that stay are untouched.
    pub fn scale_to(&self, workers: usize) {
        self.send(Command::ScaleTo(workers));
    }

    /// Stops every worker and returns when each one has been reaped.
    ///
    /// `graceful`: stop publishing, wait for each worker to be idle (at most `graceful_timeout`),
    /// TERM its group, KILL it after `graceful_timeout`. Quick: TERM now, KILL a second later.
    pub async fn shutdown(self, graceful: bool) {
        self.stop(graceful).await;
    }

    /// [`Supervisor::shutdown`] through a shared handle (an app a reload removed, whose handle
    /// may still be held by a roll in progress). Later commands through it do nothing.
    pub async fn stop(&self, graceful: bool) {
        let (done, finished) = oneshot::channel();
        self.send(Command::Shutdown { graceful, done });
        let _ = finished.await;
    }

    /// Every worker process, in slot order.
    pub fn status(&self) -> Vec<WorkerStatus> {
        self.observer().status()
    }

    /// Workers replaced so far, by reason (every reason, zeros included).
    pub fn restarts(&self) -> Vec<(String, u64)> {
        self.observer().restarts()
    }

    /// A read-only view of [`Supervisor::status`] and [`Supervisor::restarts`] that can be kept
    /// by tasks of their own (the admin endpoint), and outlives the handle's shutdown.
    pub fn observer(&self) -> Observer {
        Observer {
            snapshot: self.snapshot.clone(),
        }
    }

    fn send(&self, command: Command) {
        // The actor ends only after a shutdown, which consumes the handle; a send can fail only
        // while the runtime itself goes away, when there is nothing left to do.
        let _ = self.commands.send(command);
    }
}

/// See [`Supervisor::observer`]. After the supervisor stops it shows the last state it published.
#[derive(Clone)]
pub struct Observer {
    snapshot: watch::Receiver<Snapshot>,
}

impl Observer {
    /// Every worker process, in slot order.
    pub fn status(&self) -> Vec<WorkerStatus> {
        let snapshot = self.snapshot.borrow().clone();
        snapshot.status()
    }

    /// Workers replaced so far, by reason (every reason, zeros included).
    pub fn restarts(&self) -> Vec<(String, u64)> {
        let snapshot = self.snapshot.borrow();
        Reason::ALL
            .iter()
            .map(|reason| {
                (
                    reason.as_str().to_owned(),
                    snapshot.restarts[reason.index()],
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_can_be_shared_across_tasks() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Supervisor>();
        shareable::<Observer>();
        shareable::<ReadyWorker>();
        shareable::<Error>();
    }

    #[test]
    fn reasons_are_the_metric_labels_in_order() {
        let labels: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            labels,
            [
                "exit",
                "crash",
                "timeout",
                "max_requests",
                "memory",
                "health",
                "reload",
                "scale"
            ]
        );
        for (i, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
        }
    }
}
