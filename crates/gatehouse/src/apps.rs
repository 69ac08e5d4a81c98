//! The apps: for each `[[app]]`, the proxy's `AppPool` and the `Supervisor` of its worker
//! processes, wired together here because neither crate knows the other.
//!
//! - supervisor → pool: the published list of ready workers becomes the pool's rotation;
//! - pool → supervisor: [`AppEvent`]s (a worker refused a connection, a request timed out);
//! - the supervisor reads each worker's load through [`PoolLoad`] (for `max_requests` and drains).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context as _;
use gatehouse_config::model;
use gatehouse_proxy::app_pool::{AppEvent, AppPool, WorkerEndpoint};
use gatehouse_supervisor::{LoadView, ReadyWorker, Supervisor, WorkerId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The running apps, by name. A reload adds and removes apps ([`Apps::insert`], [`Apps::remove`]).
pub struct Apps {
    apps: Vec<Arc<App>>,
    /// Apps a reload removed, while their workers drain (the stopping task holds them): their
    /// pools' events (a request past its deadline) still reach their supervisors.
    removed: Vec<Weak<App>>,
    starter: Starter,
}

/// One app: the proxy's pool and the supervisor of its workers.
pub struct App {
    pool: Arc<AppPool>,
    supervisor: Supervisor,
    /// Copies the supervisor's ready list into the pool; ends with the supervisor.
    feeder: JoinHandle<()>,
}

/// Starts apps: what every app's wiring shares. Cloned into a reload in progress, which starts
/// the apps it adds before the reload is applied.
#[derive(Clone)]
pub struct Starter {
    runtime_dir: PathBuf,
    spool_dir: PathBuf,
    events: mpsc::UnboundedSender<AppEvent>,
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

impl Starter {
    /// Starts `app`'s workers. Requests to it get 503 until its first worker is ready.
    pub fn start(&self, app: &model::App) -> anyhow::Result<Arc<App>> {
        let pool = AppPool::new(app, self.spool_dir.clone(), self.events.clone());
        let load = Arc::new(PoolLoad(Arc::clone(&pool)));
        let supervisor = Supervisor::start(app.clone(), &self.runtime_dir, load)
            .with_context(|| format!("cannot start app {}", app.name))?;
        let feeder = tokio::spawn(feed(supervisor.ready_workers(), Arc::clone(&pool)));
        Ok(Arc::new(App {
            pool,
            supervisor,
            feeder,
        }))
    }
}

impl App {
    pub fn name(&self) -> &str {
        self.pool.name()
    }

    pub fn pool(&self) -> &Arc<AppPool> {
        &self.pool
    }

    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// Waits until the app has a worker in rotation; false if none is ready within `timeout`.
    pub async fn ready_within(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.ready()).await.is_ok()
    }

    /// Returns once the app has a worker in rotation (never, if its supervisor stops first).
    pub async fn ready(&self) {
        let mut ready = self.supervisor.ready_workers();
        if ready.wait_for(|workers| !workers.is_empty()).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Rolls to `app`'s settings in the background (HUP, or a reload that changed the command,
    /// environment, ...). A failed roll leaves the old workers serving.
    pub fn roll(self: &Arc<Self>, app: model::App) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let name = this.name();
            match this.supervisor.roll_with(app).await {
                Ok(()) => tracing::info!(app = name, "new workers ready; old ones draining"),
                Err(error) => tracing::error!(app = name, %error,
                    "new workers did not become ready; the old ones keep serving"),
            }
        });
    }

    /// Stops the workers (the app was removed, or gatehouse stops) and returns when all are
    /// reaped.
    pub async fn stop(&self, graceful: bool) {
        self.supervisor.stop(graceful).await;
        self.feeder.abort();
    }
}

impl Apps {
    /// No apps yet; [`Apps::starter`] starts them. The receiver yields the pools' events, to be
    /// passed to [`Apps::handle`].
    pub fn new(
        runtime_dir: PathBuf,
        spool_dir: PathBuf,
    ) -> (Apps, mpsc::UnboundedReceiver<AppEvent>) {
        let (events, receiver) = mpsc::unbounded_channel();
        let starter = Starter {
            runtime_dir,
            spool_dir,
            events,
        };
        (
            Apps {
                apps: Vec::new(),
                removed: Vec::new(),
                starter,
            },
            receiver,
        )
    }

    pub fn starter(&self) -> &Starter {
        &self.starter
    }

    pub fn insert(&mut self, app: Arc<App>) {
        self.apps.push(app);
    }

    /// Takes the app out of the set; the caller stops it.
    pub fn remove(&mut self, name: &str) -> Option<Arc<App>> {
        let index = self.apps.iter().position(|app| app.name() == name)?;
        let app = self.apps.remove(index);
        self.removed.retain(|gone| gone.strong_count() > 0);
        self.removed.push(Arc::downgrade(&app));
        Some(app)
    }

    pub fn all(&self) -> Vec<Arc<App>> {
        self.apps.clone()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<App>> {
        self.apps.iter().find(|app| app.name() == name)
    }

    /// The pools by app name, for routing.
    pub fn pools(&self) -> HashMap<String, Arc<AppPool>> {
        self.apps
            .iter()
            .map(|app| (app.name().to_owned(), Arc::clone(&app.pool)))
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

    /// Passes a pool's event to the app's supervisor: the running app of that name, and a removed
    /// one still draining (worker ids are unique, so the one that does not know the worker
    /// ignores it).
    pub fn handle(&self, event: AppEvent) {
        let name = match &event {
            AppEvent::Unreachable { app, .. } | AppEvent::TimedOut { app, .. } => app.as_str(),
        };
        let removed = self.removed.iter().filter_map(Weak::upgrade);
        for app in self.get(name).cloned().into_iter().chain(removed) {
            if app.name() != name {
                continue;
            }
            match &event {
                AppEvent::Unreachable { worker, .. } => app.supervisor.worker_unreachable(*worker),
                AppEvent::TimedOut {
                    worker, request_id, ..
                } => app.supervisor.request_timed_out(*worker, request_id),
            }
        }
    }

    /// TTIN (+1) / TTOU (-1) for every app.
    pub fn scale(&self, delta: i32) {
        for app in &self.apps {
            app.supervisor.scale(delta);
        }
    }

    /// Stops every app's workers and returns when all are reaped.
    pub async fn shutdown(self, graceful: bool) {
        let stops = self.apps.iter().map(|app| app.stop(graceful));
        futures_util::future::join_all(stops).await;
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
