//! The task that owns one worker process: it reaps it, signals its group, and runs its checks.
//!
//! Signals reach a worker only through its monitor, which owns the `Child`: a signal is sent only
//! while the leader has not been reaped, so its pid cannot have been given to another process.
//! When the leader exits, the monitor SIGKILLs what is left of its group (grandchildren that did not
//! exit with it), removes its socket, and reports `Exited`. If the arbiter goes away (the supervisor
//! was dropped) or the monitor itself is dropped (the runtime shut down), the group is killed.

use std::path::PathBuf;
use std::process::ExitStatus;

use tokio::process::Child;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::health::{self, Checks};
use crate::spawn::Spawned;
use crate::sys::{self, Signal};
use crate::WorkerId;

/// What a monitor tells the arbiter.
#[derive(Debug)]
pub(crate) enum Event {
    /// The worker passed its readiness check.
    Ready(WorkerId),
    /// The worker was not ready within `startup_timeout`.
    StartFailed { id: WorkerId, why: String },
    /// The worker failed `health.failures` consecutive checks.
    Unhealthy { id: WorkerId, why: String },
    /// The worker's process exited and was reaped (`None`: waiting for it failed).
    Exited {
        id: WorkerId,
        status: Option<ExitStatus>,
    },
}

/// Sends signals to one worker's process group, through its monitor.
#[derive(Debug)]
pub(crate) struct Control {
    signals: mpsc::UnboundedSender<Signal>,
}

impl Control {
    pub fn signal(&self, signal: Signal) {
        // Fails only once the process has been reaped, when there is nobody left to signal.
        let _ = self.signals.send(signal);
    }
}

/// Starts monitoring a freshly spawned worker.
pub(crate) fn start(
    id: WorkerId,
    spawned: Spawned,
    checks: Checks,
    events: mpsc::UnboundedSender<Event>,
) -> Control {
    let (signals, signals_rx) = mpsc::unbounded_channel();
    let group = Group {
        pgid: spawned.pid,
        socket: spawned.socket,
        reaped: false,
    };
    // In the supervisor's span, so that its logs name the app.
    let task = run(id, spawned.child, group, checks, events, signals_rx);
    tokio::spawn(task.in_current_span());
    Control { signals }
}

async fn run(
    id: WorkerId,
    mut child: Child,
    mut group: Group,
    checks: Checks,
    events: mpsc::UnboundedSender<Event>,
    mut signals: mpsc::UnboundedReceiver<Signal>,
) {
    let checks = health::run(checks, events.clone());
    let mut checks = std::pin::pin!(checks);
    let mut arbiter_alive = true;
    let mut aborted_at = None;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.ok(),
            signal = signals.recv(), if arbiter_alive => match signal {
                Some(signal) => {
                    if signal == Signal::Abort {
                        aborted_at = Some(tokio::time::Instant::now());
                    }
                    group.signal(signal);
                }
                None => {
                    arbiter_alive = false;
                    group.signal(Signal::Kill);
                }
            },
            never = &mut checks => match never {},
        }
    };
    let _ = events.send(Event::Exited { id, status });
    if let Some(aborted_at) = aborted_at {
        // A leader that does not handle SIGABRT (a Gunicorn master) dies at once, while its
        // worker is still printing the stuck request's stack: give the group its grace first.
        tokio::time::sleep_until(aborted_at + crate::worker::ABORT_GRACE).await;
    }
    group.leader_reaped();
}

/// A worker's process group and socket, cleaned up when the leader is gone.
struct Group {
    pgid: u32,
    socket: Option<PathBuf>,
    reaped: bool,
}

impl Group {
    fn signal(&self, signal: Signal) {
        if let Err(err) = sys::signal_group(self.pgid, signal) {
            // ESRCH: the whole group is gone already, the exit is on its way.
            tracing::debug!(pgid = self.pgid, %signal, error = %err, "signalling a worker group");
        }
    }

    /// Kills the rest of the group. Right after the reap, the leader's pid is still unused: the
    /// kernel hands pids out in a cycle, and while members remain the group keeps the number taken.
    fn leader_reaped(&mut self) {
        self.reaped = true;
        let _ = sys::signal_group(self.pgid, Signal::Kill);
        if let Some(socket) = self.socket.take() {
            let _ = std::fs::remove_file(socket);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.reaped {
            // The monitor was dropped with the worker still running (runtime shutdown): kill the
            // group; tokio's `kill_on_drop` reaps the leader.
            self.leader_reaped();
        }
    }
}
