//! One server of an upstream: where it is, how busy it is, whether it is up, and its idle
//! connections. A [`Lease`] is one request's hold on it.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gatehouse_config::model::Endpoint;
use http::HeaderValue;
use hyper::client::conn::http1::SendRequest;
use tokio::time::Instant;

use super::{connect, pool::Pool};
use crate::body::Body;

/// How long a server that refused a connection stays at the back of the line, unless a health
/// check passes first. Short: a restarting app server is back within seconds.
const UNREACHABLE_FOR: Duration = Duration::from_secs(2);

pub(crate) struct Server {
    endpoint: Endpoint,
    /// The endpoint as configured, for logs, errors and the access log.
    label: String,
    /// Requests holding a [`Lease`]: connecting, waiting, streaming a body, or tunnelling.
    outstanding: AtomicUsize,
    unreachable_until: Mutex<Option<Instant>>,
    /// Consecutive failed health checks.
    failed_checks: AtomicU32,
    /// Enough checks failed in a row; one success clears it.
    failing_checks: AtomicBool,
    pool: Pool,
}

impl Server {
    pub(crate) fn new(endpoint: Endpoint) -> Arc<Self> {
        Arc::new(Server {
            label: endpoint.to_string(),
            endpoint,
            outstanding: AtomicUsize::new(0),
            unreachable_until: Mutex::new(None),
            failed_checks: AtomicU32::new(0),
            failing_checks: AtomicBool::new(false),
            pool: Pool::default(),
        })
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The Host to send when the client gave none.
    pub(crate) fn host_header(&self) -> HeaderValue {
        match &self.endpoint {
            Endpoint::Tcp(host_port) => {
                HeaderValue::from_str(host_port).unwrap_or(HeaderValue::from_static("localhost"))
            }
            Endpoint::Unix(_) => HeaderValue::from_static("localhost"),
        }
    }

    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    pub(crate) fn is_down(&self, now: Instant) -> bool {
        let unreachable = self.unreachable_until().is_some_and(|until| now < until);
        unreachable || self.failing_checks.load(Ordering::Relaxed)
    }

    /// Passive health: a refused or timed-out connect sends the server to the back for a while.
    pub(crate) fn mark_unreachable(&self) {
        *self.lock_unreachable() = Some(Instant::now() + UNREACHABLE_FOR);
    }

    /// Record an active health check; returns `Some(in_rotation)` when that changed.
    pub(crate) fn record_check(&self, passed: bool, failures_to_fail: u32) -> Option<bool> {
        if passed {
            self.failed_checks.store(0, Ordering::Relaxed);
            *self.lock_unreachable() = None;
            let was_failing = self.failing_checks.swap(false, Ordering::Relaxed);
            return was_failing.then_some(true);
        }
        let failed = self
            .failed_checks
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if failed >= failures_to_fail.max(1) && !self.failing_checks.swap(true, Ordering::Relaxed) {
            return Some(false);
        }
        None
    }

    fn unreachable_until(&self) -> Option<Instant> {
        *self.lock_unreachable()
    }

    fn lock_unreachable(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // The value is a plain timestamp, valid even if a holder panicked.
        self.unreachable_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One request's hold on a server: counts as outstanding until dropped, and owns the connection
/// the request uses. Dropping a lease with a connection closes that connection; only
/// [`Lease::release`] returns it to the pool.
pub(crate) struct Lease {
    server: Arc<Server>,
    sender: Option<SendRequest<Body>>,
    reused: bool,
}

impl Lease {
    pub(crate) fn new(server: &Arc<Server>) -> Self {
        server.outstanding.fetch_add(1, Ordering::Relaxed);
        Lease {
            server: server.clone(),
            sender: None,
            reused: false,
        }
    }

    pub(crate) fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// Take an idle connection that is ready for a request, or open a new one.
    pub(crate) async fn connect(&mut self, timeout: Duration) -> io::Result<()> {
        self.sender = None;
        while let Some(mut sender) = self.server.pool.take() {
            // Idle connections become ready as soon as their last response is processed.
            if let Ok(Ok(())) = tokio::time::timeout(timeout, sender.ready()).await {
                self.sender = Some(sender);
                self.reused = true;
                return Ok(());
            }
        }
        self.sender = Some(connect::open(&self.server.endpoint, timeout).await?);
        self.reused = false;
        Ok(())
    }

    /// Whether the current connection came from the pool (and so may have gone stale).
    pub(crate) fn reused(&self) -> bool {
        self.reused
    }

    pub(crate) fn sender(&mut self) -> Option<&mut SendRequest<Body>> {
        self.sender.as_mut()
    }

    /// The exchange ended cleanly: the connection may carry the next request.
    pub(crate) fn release(mut self) {
        if let Some(sender) = self.sender.take() {
            self.server.pool.put(sender);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.server.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}
