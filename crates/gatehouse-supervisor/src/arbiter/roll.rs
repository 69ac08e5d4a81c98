//! Rolling a whole new generation (HUP), as Gunicorn does on reload.
//!
//! The new generation (`workers` of the new config, every slot) starts next to the old one, which
//! keeps serving. When every new worker is ready, the new generation becomes the active one: it is
//! published and the old workers drain in the same update (reason `reload`). If any new worker fails
//! to spawn, exits, or is not ready within `startup_timeout`, every new worker is killed, the old
//! config stays, and the caller gets the error. All or nothing: a half-rolled app would run two
//! versions of the code side by side for as long as the new one keeps failing.

use std::sync::Arc;

use gatehouse_config::model::App;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{chain, Arbiter};
use crate::spawn::Launcher;
use crate::{Error, Reason, WorkerId};

/// A generation starting, not yet published.
pub(super) struct Roll {
    pub generation: u64,
    launcher: Arc<Launcher>,
    workers: Vec<WorkerId>,
    reply: oneshot::Sender<Result<(), Error>>,
}

impl Arbiter {
    pub(super) fn roll_generation(&self) -> Option<u64> {
        self.roll.as_ref().map(|roll| roll.generation)
    }

    /// Starts a generation from `app` (or the current config).
    pub(super) async fn start_roll(
        &mut self,
        app: Option<App>,
        reply: oneshot::Sender<Result<(), Error>>,
    ) {
        if self.shutdown.is_some() {
            let _ = reply.send(Err(Error::ShuttingDown));
            return;
        }
        let name = self.launcher.app.name.clone();
        self.end_roll(Err(Error::RollSuperseded { app: name }));
        let launcher = match app {
            None => Arc::clone(&self.launcher),
            Some(app) => match Launcher::new(app, &self.runtime_dir) {
                Ok(launcher) => Arc::new(launcher),
                Err(err) => {
                    tracing::error!("roll refused: {}", chain(&err));
                    let _ = reply.send(Err(err));
                    return;
                }
            },
        };
        self.last_generation += 1;
        let generation = self.last_generation;
        let count = launcher.app.workers.max(1);
        tracing::info!(
            generation,
            workers = count,
            "rolling: starting a new generation"
        );
        self.roll = Some(Roll {
            generation,
            launcher: Arc::clone(&launcher),
            workers: Vec::with_capacity(count),
            reply,
        });
        // Events are handled only after this returns, so no worker of the roll can be seen ready
        // (and the roll complete) before all of them are in `roll.workers`.
        for slot in 0..count {
            match self.spawn(&launcher, slot, generation).await {
                Ok(id) => {
                    if let Some(roll) = &mut self.roll {
                        roll.workers.push(id);
                    }
                }
                Err(err) => {
                    self.abort_roll(chain(&err));
                    return;
                }
            }
        }
    }

    /// Makes the rolling generation the active one if every one of its workers is ready.
    pub(super) fn finish_roll_if_ready(&mut self, now: Instant) {
        let complete = self.roll.as_ref().is_some_and(|roll| {
            roll.workers
                .iter()
                .all(|id| self.workers.get(id).is_some_and(|worker| worker.serving()))
        });
        if !complete {
            return;
        }
        let Some(roll) = self.roll.take() else {
            return;
        };
        self.generation = roll.generation;
        self.launcher = roll.launcher;
        // As Gunicorn's reload: back to the configured count, whatever TTIN/TTOU did.
        self.target = self.launcher.app.workers.max(1);
        for slot in &mut self.slots {
            slot.reset();
        }
        let mut replaced = Vec::new();
        for worker in self.workers.values_mut() {
            if worker.generation != self.generation && !worker.leaving {
                let counted = worker.serving() && worker.retiring.is_none();
                worker.leave(now);
                if counted {
                    replaced.push(worker.slot);
                }
            }
        }
        for slot in replaced {
            self.count(Reason::Reload, slot);
        }
        tracing::info!(
            generation = self.generation,
            "roll complete: the new generation serves, the old one drains"
        );
        let _ = roll.reply.send(Ok(()));
    }

    /// The rolling generation failed: kill it, keep the old one.
    pub(super) fn abort_roll(&mut self, why: String) {
        let Some(roll) = &self.roll else {
            return;
        };
        tracing::error!(
            generation = roll.generation,
            "roll failed, the old workers keep serving: {why}"
        );
        let app = self.launcher.app.name.clone();
        self.end_roll(Err(Error::RollFailed { app, reason: why }));
    }

    /// Ends the rolling generation, if any: kills its workers and answers its caller.
    pub(super) fn end_roll(&mut self, result: Result<(), Error>) {
        let Some(roll) = self.roll.take() else {
            return;
        };
        for id in &roll.workers {
            if let Some(worker) = self.workers.get_mut(id) {
                worker.kill();
            }
        }
        let _ = roll.reply.send(result);
    }
}
