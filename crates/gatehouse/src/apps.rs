//! The apps: for each `[[app]]`, the proxy's `AppPool` and the `Supervisor` of its worker
//! processes, wired together here because neither crate knows the other.
//!
//! - supervisor → pool: the published list of ready workers becomes the pool's rotation;
//! - pool → supervisor: [`AppEvent`]s (a worker refused a connection, a request timed out);
//! - the supervisor reads each worker's load through [`PoolLoad`] (for `max_requests` and drains).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use gatehouse_config::{model, Config};
use gatehouse_proxy::app_pool::{AppEvent, AppPool, WorkerEndpoint};
use gatehouse_supervisor::{LoadView, ReadyWorker, Supervisor, WorkerId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub struct Apps {
    apps: Vec<App>,
}

struct App {
    pool: Arc<AppPool>,
    supervisor: Supervisor,
    /// Copies the supervisor's ready list into the pool; ends with the supervisor.
    feeder: JoinHandle<()>,
}

/// The supervisor's view of a worker's load, read from the proxy's pool.
struct PoolLoad(Arc<AppPool>);

impl LoadView for PoolLoad {
    fn served(&self, worker: WorkerId) -> u64 {
        self.0.served(worker)
    }

    fn idle(&self, worker: WorkerId) -> bool {
        self.0.idle(worker)
    }

    fn in_flight(&self, worker: WorkerId) -> usize {
        self.0.in_flight(worker)
    }
}

impl Apps {
    /// Starts every app's workers. Requests to an app get 503 until its first worker is ready.
    /// The receiver yields the pools' events, to be passed to [`Apps::handle`].
    pub fn start(
        config: &Config,
        spool_dir: PathBuf,
    ) -> anyhow::Result<(Apps, mpsc::UnboundedReceiver<AppEvent>)> {
        let (sender, events) = mpsc::unbounded_channel();
        let mut apps = Vec::with_capacity(config.apps.len());
        for app in &config.apps {
            let pool = AppPool::new(app, spool_dir.clone(), sender.clone());
            let load = Arc::new(PoolLoad(Arc::clone(&pool)));
            let supervisor = Supervisor::start(app.clone(), &config.server.runtime_dir, load)
                .with_context(|| format!("cannot start app {}", app.name))?;
            let feeder = tokio::spawn(feed(supervisor.ready_workers(), Arc::clone(&pool)));
            apps.push(App {
                pool,
                supervisor,
                feeder,
            });
        }
        Ok((Apps { apps }, events))
    }

    /// The pools by app name, for routing.
    pub fn pools(&self) -> HashMap<String, Arc<AppPool>> {
        self.apps
            .iter()
            .map(|app| (app.pool.name().to_owned(), Arc::clone(&app.pool)))
            .collect()
    }

    /// Each app's pool and a view of its supervisor, for the admin endpoints.
    pub fn views(&self) -> Vec<crate::admin::AppView> {
        self.apps
            .iter()
            .map(|app| crate::admin::AppView {
                pool: Arc::clone(&app.pool),
                supervisor: app.supervisor.observer(),
            })
            .collect()
    }

    /// Passes a pool's event to the app's supervisor.
    pub fn handle(&self, event: AppEvent) {
        match event {
            AppEvent::Unreachable { app, worker } => {
                if let Some(app) = self.find(&app) {
                    app.supervisor.worker_unreachable(worker);
                }
            }
            AppEvent::TimedOut {
                app,
                worker,
                request_id,
                ..
            } => {
                if let Some(app) = self.find(&app) {
                    app.supervisor.request_timed_out(worker, &request_id);
                }
            }
        }
    }

    /// HUP: every app rolls to a new generation, with its settings from `config` when it is
    /// still there. A failed roll leaves that app's old workers serving.
    pub async fn roll(&self, config: &Config) {
        let rolls = self.apps.iter().map(|app| async move {
            let name = app.pool.name();
            let updated = config.apps.iter().find(|candidate| candidate.name == name);
            let result = match updated {
                Some(updated) => app.supervisor.roll_with(updated.clone()).await,
                None => app.supervisor.roll().await,
            };
            match result {
                Ok(()) => tracing::info!(app = name, "new workers ready; old ones draining"),
                Err(error) => tracing::error!(app = name, %error,
                    "new workers did not become ready; the old ones keep serving"),
            }
        });
        futures_util::future::join_all(rolls).await;
    }

    /// TTIN (+1) / TTOU (-1) for every app.
    pub fn scale(&self, delta: i32) {
        for app in &self.apps {
            app.supervisor.scale(delta);
        }
    }

    /// Stops every app's workers and returns when all are reaped.
    pub async fn shutdown(self, graceful: bool) {
        let stops = self.apps.into_iter().map(|app| async move {
            app.supervisor.shutdown(graceful).await;
            app.feeder.abort();
        });
        futures_util::future::join_all(stops).await;
    }

    /// The app configs this set was started with are not kept; names are enough here.
    pub fn names(&self) -> Vec<String> {
        self.apps
            .iter()
            .map(|app| app.pool.name().to_owned())
            .collect()
    }

    fn find(&self, name: &str) -> Option<&App> {
        self.apps.iter().find(|app| app.pool.name() == name)
    }
}

/// Copies each published list of ready workers into the pool's rotation.
async fn feed(mut ready: tokio::sync::watch::Receiver<Vec<ReadyWorker>>, pool: Arc<AppPool>) {
    loop {
        let workers: Vec<WorkerEndpoint> = ready
            .borrow_and_update()
            .iter()
            .map(|worker| WorkerEndpoint {
                id: worker.id,
                pid: worker.pid,
                endpoint: worker.endpoint.clone(),
            })
            .collect();
        pool.set_workers(&workers);
        if ready.changed().await.is_err() {
            return;
        }
    }
}

/// Apps in `config` that this set does not run (added since start; hot reload starts them).
pub fn missing<'a>(apps: &Apps, config: &'a Config) -> Vec<&'a model::App> {
    let running = apps.names();
    config
        .apps
        .iter()
        .filter(|app| !running.contains(&app.name))
        .collect()
}
