//! gatehouse's HTTP edge: listeners, connections, routing, static files, forwarding to upstreams,
//! and the access log. Modules read in the order a request meets them (see
//! `docs/request-lifecycle.md`): `listener` → `tls` → `conn_io` → `service` → `route` →
//! `static_files` | `upstream` + `forward` → `log_body` + `access_log` + `metrics`. `site`
//! compiles a config into what requests read; [`Proxy`] holds the live site and access log behind
//! `ArcSwap`s, and the process-long [`Metrics`].

pub mod access_log;
pub mod app_pool;
pub mod body;
mod conn_io;
pub mod error;
pub mod forward;
pub mod listener;
mod log_body;
pub mod metrics;
pub mod route;
mod service;
pub mod site;
mod spool;
pub mod static_files;
pub mod tls;
pub mod upstream;

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;

pub use access_log::AccessLog;
pub use listener::{Listener, ListenerHandle, Settings as ListenerSettings};
pub use metrics::Metrics;
pub use site::Site;

/// State shared by every listener and connection.
pub struct Proxy {
    site: ArcSwap<Site>,
    access_log: ArcSwap<AccessLog>,
    /// One permit per open client connection, across all listeners (`limits.max_connections`).
    connections: Arc<Semaphore>,
    max_connections: usize,
    /// Lives as long as the process, so counters survive reloads.
    metrics: Arc<Metrics>,
}

impl Proxy {
    pub fn new(site: Site, access_log: AccessLog, metrics: Arc<Metrics>) -> Arc<Self> {
        let max_connections = site.limits().max_connections.min(Semaphore::MAX_PERMITS);
        Arc::new(Proxy {
            site: ArcSwap::from_pointee(site),
            access_log: ArcSwap::from_pointee(access_log),
            connections: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            metrics,
        })
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The live site; a request keeps the one it started with.
    pub fn site(&self) -> Arc<Site> {
        self.site.load_full()
    }

    pub fn replace_site(&self, site: Site) {
        self.site.store(Arc::new(site));
    }

    pub fn access_log(&self) -> Arc<AccessLog> {
        self.access_log.load_full()
    }

    pub fn replace_access_log(&self, access_log: AccessLog) {
        self.access_log.store(Arc::new(access_log));
    }

    /// Client connections open right now.
    pub fn open_connections(&self) -> usize {
        self.max_connections
            .saturating_sub(self.connections.available_permits())
    }
}
