//! The admin listener (`[admin] listen`, loopback by default): `GET /metrics` (Prometheus text),
//! `/livez` (the process runs), `/readyz` (listeners bound, every app has a ready worker, not
//! draining) and `/status` (apps, workers, config; JSON). Every other path is 404.
//!
//! [`Admin`] owns the metrics registry: the proxy's metrics (`gatehouse_proxy::Metrics`) are
//! registered in it, next to the ones only the binary can know (`metrics.rs`: workers by state,
//! restarts, queue depths, config reloads, build info, process). Scrape-time values are read from
//! the apps' pools and supervisors when `/metrics` or `/status` is asked for, never on the request
//! path. The listener stays up while gatehouse drains, so probes see `/readyz` turn 503.

mod metrics;
mod server;
pub mod status;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use anyhow::Context as _;
use arc_swap::{ArcSwap, ArcSwapOption};
use gatehouse_config::Config;
use gatehouse_proxy::app_pool::AppPool;
use gatehouse_proxy::tls::Tls;
use gatehouse_supervisor::Observer;
use prometheus::Registry;
use tokio::task::JoinHandle;

/// One app as the admin endpoints see it.
pub struct AppView {
    pub pool: Arc<AppPool>,
    pub supervisor: Observer,
}

/// The admin listener and the state its endpoints read.
pub struct Admin {
    shared: Arc<Shared>,
    /// Bound at start (so a taken port fails the start), served once the apps exist.
    socket: Option<std::net::TcpListener>,
    task: Option<JoinHandle<()>>,
}

/// What the endpoints read, shared with the server task.
struct Shared {
    registry: Registry,
    proxy_metrics: Arc<gatehouse_proxy::Metrics>,
    metrics: metrics::Metrics,
    /// Set when gatehouse starts serving (listeners bound, apps started), replaced by reloads;
    /// `None` while starting.
    apps: ArcSwapOption<Vec<AppView>>,
    /// TLS listeners by their address, for the handshake and certificate metrics.
    tls: ArcSwap<Vec<(String, Arc<Tls>)>>,
    draining: AtomicBool,
    config: Mutex<status::Config>,
}

impl Admin {
    /// Creates the metrics and binds `[admin] listen` (nothing when it is "off"), logging
    /// `admin listening on ADDR` with the real address. `config` is the one gatehouse starts with.
    pub fn bind(config: &Config) -> anyhow::Result<Admin> {
        let registry = Registry::new();
        let proxy_metrics = gatehouse_proxy::Metrics::new(&registry)
            .context("cannot register the proxy's metrics")?;
        let metrics =
            metrics::Metrics::new(&registry).context("cannot register gatehouse's metrics")?;
        let now = SystemTime::now();
        metrics.loaded(now);
        let shared = Arc::new(Shared {
            registry,
            proxy_metrics: Arc::new(proxy_metrics),
            metrics,
            apps: ArcSwapOption::empty(),
            tls: ArcSwap::default(),
            draining: AtomicBool::new(false),
            config: Mutex::new(status::Config::loaded(config, now)),
        });
        let socket = config.admin.listen.map(bind).transpose()?;
        Ok(Admin {
            shared,
            socket,
            task: None,
        })
    }

    /// The proxy's metrics, registered in the admin registry; pass them to `Proxy::new`.
    pub fn proxy_metrics(&self) -> Arc<gatehouse_proxy::Metrics> {
        Arc::clone(&self.shared.proxy_metrics)
    }

    /// Starts answering, once every listener is bound and the apps are started. Each app's pool
    /// records its queue in the proxy's metrics from now on.
    pub fn serve(
        &mut self,
        apps: Vec<AppView>,
        tls: Vec<(String, Arc<Tls>)>,
    ) -> anyhow::Result<()> {
        self.set_apps(apps);
        self.set_tls(tls);
        let Some(socket) = self.socket.take() else {
            return Ok(());
        };
        let listener =
            tokio::net::TcpListener::from_std(socket).context("cannot serve the admin listener")?;
        let shared = Arc::clone(&self.shared);
        self.task = Some(tokio::spawn(server::serve(listener, shared)));
        Ok(())
    }

    /// The apps now running (a reload added or removed some). Each app's pool records its queue
    /// in the proxy's metrics from now on.
    pub fn set_apps(&self, apps: Vec<AppView>) {
        for app in &apps {
            let metrics = self.shared.proxy_metrics.app(app.pool.name());
            app.pool.set_metrics(metrics);
        }
        self.shared.apps.store(Some(Arc::new(apps)));
    }

    /// The TLS listeners now serving, by address.
    pub fn set_tls(&self, tls: Vec<(String, Arc<Tls>)>) {
        self.shared.tls.store(Arc::new(tls));
    }

    /// Whether a pid is a worker of the apps shown now, for the PID-1 reaper (which must not
    /// reap the supervisor's own children).
    pub fn worker_pids(&self) -> impl Fn(u32) -> bool + Send + 'static {
        let shared = Arc::clone(&self.shared);
        move |pid| {
            shared.apps().iter().any(|app| {
                app.supervisor
                    .status()
                    .iter()
                    .any(|worker| worker.pid == pid)
            })
        }
    }

    /// Graceful stop began: `/readyz` answers 503 from now on (the listener keeps answering).
    pub fn draining(&self) {
        self.shared.draining.store(true, Ordering::SeqCst);
    }

    /// A reload was applied (`Ok`, with the new config) or rejected (`Err`, the reason).
    pub fn reloaded(&self, result: Result<&Config, &str>) {
        let now = SystemTime::now();
        self.shared.metrics.reloaded(result.is_ok(), now);
        let mut config = self
            .shared
            .config
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        config.reloaded(result, now);
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Shared {
    fn apps(&self) -> Arc<Vec<AppView>> {
        self.apps.load_full().unwrap_or_default()
    }

    fn tls(&self) -> Arc<Vec<(String, Arc<Tls>)>> {
        self.tls.load_full()
    }

    /// `None` when ready; otherwise why not, for the 503's body.
    fn unready(&self) -> Option<String> {
        if self.draining.load(Ordering::SeqCst) {
            return Some("draining".to_owned());
        }
        let Some(apps) = self.apps.load_full() else {
            return Some("starting".to_owned());
        };
        apps.iter()
            .find(|app| !app.pool.workers().iter().any(|worker| worker.in_rotation))
            .map(|app| format!("app {} has no ready worker", app.pool.name()))
    }
}

fn bind(address: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let socket = std::net::TcpListener::bind(address)
        .with_context(|| format!("cannot listen on {address} (admin)"))?;
    socket.set_nonblocking(true)?;
    let local = socket.local_addr()?;
    tracing::info!("admin listening on {local}");
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Endpoint state with no apps and no listener.
    pub(super) fn shared() -> Shared {
        let registry = Registry::new();
        let proxy_metrics = gatehouse_proxy::Metrics::new(&registry).unwrap();
        let metrics = metrics::Metrics::new(&registry).unwrap();
        Shared {
            registry,
            proxy_metrics: Arc::new(proxy_metrics),
            metrics,
            apps: ArcSwapOption::empty(),
            tls: ArcSwap::default(),
            draining: AtomicBool::new(false),
            config: Mutex::new(status::Config {
                path: "/etc/gatehouse.toml".into(),
                hash: None,
                last_reload: status::Reload {
                    result: "success".into(),
                    at: "1970-01-01T00:00:00Z".into(),
                    error: None,
                },
            }),
        }
    }
}
