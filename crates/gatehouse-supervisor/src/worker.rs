//! The arbiter's record of one worker process, and the states it goes through.
//!
//! ```text
//! Starting ─ready─▶ Ready ─leave─▶ Draining ─idle or timeout─▶ Stopping ─deadline─▶ Killed
//!    │                │                                           ▲
//!    └────────────────┴── leave, never published (nothing in flight) ┘
//! ```
//!
//! `Stopping` is entered with SIGTERM (deadline `graceful_timeout`), or with SIGABRT after a request
//! deadline (deadline `ABORT_GRACE`); `Killed` with SIGKILL. Whatever the state, the record is
//! removed when the monitor reports that the process exited.

use std::time::Duration;

use gatehouse_config::model::Endpoint;
use tokio::time::Instant;

use crate::monitor::Control;
use crate::sys::Signal;
use crate::{ReadyWorker, Reason, WorkerId};

/// How long a worker has to print its stack and die after SIGABRT before SIGKILL.
pub(crate) const ABORT_GRACE: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Spawned; its readiness probe has not passed yet.
    Starting,
    /// Passed readiness. Published while its generation is the active one and it is not leaving.
    Ready,
    /// Out of the list; the proxy finishes its requests. SIGTERM when idle or at `deadline`.
    Draining { deadline: Instant },
    /// SIGTERM or SIGABRT sent; SIGKILL at `deadline`.
    Stopping { deadline: Instant },
    /// SIGKILL sent; waiting for the reap.
    Killed,
}

pub(crate) struct Worker {
    pub id: WorkerId,
    pub slot: usize,
    pub generation: u64,
    pub pid: u32,
    pub endpoint: Endpoint,
    pub started: Instant,
    /// When it passed readiness: a worker that dies soon after is a failure of its slot (backoff).
    pub ready_since: Option<Instant>,
    pub state: State,
    /// It was in a published list, so requests may be in flight: it must drain before SIGTERM.
    pub published: bool,
    /// Recycle after this many requests (`max_requests` + its own jitter); `None`: never.
    pub limit: Option<u64>,
    /// Still serving, but to be replaced: it leaves once a new worker of its slot is ready.
    pub retiring: Option<Reason>,
    /// We decided to end it (its restart was counted then), so its exit is not a crash.
    pub leaving: bool,
    /// SIGABRT was sent (once is enough).
    pub aborted: bool,
    /// Of the config it was started with.
    pub graceful_timeout: Duration,
    pub control: Control,
}

impl Worker {
    /// Ready and not leaving: it is (or, in a pending roll, will be) in the published list.
    pub fn serving(&self) -> bool {
        self.state == State::Ready && !self.leaving
    }

    pub fn ready_worker(&self) -> ReadyWorker {
        ReadyWorker {
            id: self.id,
            slot: self.slot,
            pid: self.pid,
            generation: self.generation,
            endpoint: self.endpoint.clone(),
        }
    }

    /// How long it has been ready, if it ever was.
    pub fn ready_for(&self, now: Instant) -> Option<Duration> {
        self.ready_since
            .map(|since| now.saturating_duration_since(since))
    }

    /// Starts its way out: drain if it was published, otherwise SIGTERM at once.
    pub fn leave(&mut self, now: Instant) {
        self.leaving = true;
        match self.state {
            State::Ready if self.published => {
                self.state = State::Draining {
                    deadline: now + self.graceful_timeout,
                };
            }
            State::Starting | State::Ready => self.terminate(now, self.graceful_timeout),
            State::Draining { .. } | State::Stopping { .. } | State::Killed => {}
        }
    }

    /// A request on it passed its deadline: SIGABRT (stack dump), SIGKILL after `ABORT_GRACE`.
    pub fn abort(&mut self, now: Instant) {
        self.leaving = true;
        if self.aborted || self.state == State::Killed {
            return;
        }
        self.aborted = true;
        self.control.signal(Signal::Abort);
        self.state = State::Stopping {
            deadline: now + ABORT_GRACE,
        };
    }

    /// SIGTERM now, SIGKILL after `grace` (or earlier, if it was due earlier).
    pub fn terminate(&mut self, now: Instant, grace: Duration) {
        self.leaving = true;
        let deadline = now + grace;
        match self.state {
            State::Killed => {}
            State::Stopping { deadline: due } => {
                self.state = State::Stopping {
                    deadline: due.min(deadline),
                };
            }
            State::Starting | State::Ready | State::Draining { .. } => {
                self.control.signal(Signal::Term);
                self.state = State::Stopping { deadline };
            }
        }
    }

    pub fn kill(&mut self) {
        self.leaving = true;
        if self.state != State::Killed {
            self.control.signal(Signal::Kill);
            self.state = State::Killed;
        }
    }

    /// Moves a leaving worker along when its time has come; `idle` asks the proxy.
    pub fn advance(&mut self, now: Instant, idle: impl FnOnce() -> bool) {
        match self.state {
            State::Draining { deadline } => {
                let overdue = now >= deadline;
                if overdue || idle() {
                    if overdue {
                        tracing::warn!(
                            worker = self.slot,
                            pid = self.pid,
                            "worker still busy after graceful_timeout; SIGTERM anyway"
                        );
                    }
                    self.terminate(now, self.graceful_timeout);
                }
            }
            State::Stopping { deadline } if now >= deadline => {
                tracing::warn!(
                    worker = self.slot,
                    pid = self.pid,
                    "worker did not exit in time; SIGKILL"
                );
                self.kill();
            }
            _ => {}
        }
    }
}
