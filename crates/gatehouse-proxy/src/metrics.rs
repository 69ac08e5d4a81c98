//! The proxy's Prometheus metrics: requests by route, method and status, their duration and
//! bytes, open connections, app queue waits and rejections, and upstream response times.
//!
//! The binary owns the `prometheus::Registry` and passes it to [`Metrics::new`]; the one
//! [`Metrics`] lives in the [`crate::Proxy`] for the whole process, so counters stay monotonic
//! across config reloads (a reload compiles a new `Site`, never new series).
//!
//! The request path must stay cheap (it is benchmarked against Nginx), so label lookups are
//! resolved once and kept: per route a [`RouteMetrics`] (shared by every site that has the same
//! route), and within it one counter per method and status, filled in on first use. Labels stay
//! low-cardinality: `route` is the configured route prefix (`none` when no route matched, which
//! no configured path can be), never the request URL; `method` is one of the standard methods or
//! `OTHER`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use http::Method;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::site::{Backend, Route, RouteAction};

/// Latency buckets, in seconds: from a cached static file (1 ms) to a slow app request (30 s).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The `route` label of requests that matched no route (rejected early, or no route for them).
pub const NO_ROUTE: &str = "none";

/// Every metric the proxy records. Create one per process and hand it to [`crate::Proxy::new`].
pub struct Metrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    response_bytes: IntCounterVec,
    connections: IntGaugeVec,
    queue_wait: HistogramVec,
    queue_rejected: IntCounterVec,
    upstream_duration: HistogramVec,
    /// Handles per route, kept across reloads.
    routes: Mutex<HashMap<RouteKey, Arc<RouteMetrics>>>,
    unrouted: Arc<RouteMetrics>,
}

impl Metrics {
    /// Creates the proxy's metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Metrics> {
        let metrics = Metrics::unregistered()?;
        registry.register(Box::new(metrics.requests.clone()))?;
        registry.register(Box::new(metrics.duration.clone()))?;
        registry.register(Box::new(metrics.response_bytes.clone()))?;
        registry.register(Box::new(metrics.connections.clone()))?;
        registry.register(Box::new(metrics.queue_wait.clone()))?;
        registry.register(Box::new(metrics.queue_rejected.clone()))?;
        registry.register(Box::new(metrics.upstream_duration.clone()))?;
        Ok(metrics)
    }

    /// Metrics that no registry exports: for tests and embedders that do not scrape.
    pub fn unregistered() -> prometheus::Result<Metrics> {
        let requests = IntCounterVec::new(
            Opts::new("gatehouse_http_requests_total", "HTTP requests answered."),
            &["route", "method", "code"],
        )?;
        let duration = HistogramVec::new(
            latency(
                "gatehouse_http_request_duration_seconds",
                "Time from the request head to the last byte of the response.",
            ),
            &["route"],
        )?;
        let response_bytes = IntCounterVec::new(
            Opts::new(
                "gatehouse_http_response_bytes_total",
                "Response body bytes sent to clients.",
            ),
            &["route"],
        )?;
        let connections = IntGaugeVec::new(
            Opts::new(
                "gatehouse_connections_active",
                "Client connections open now.",
            ),
            &["listener"],
        )?;
        let queue_wait = HistogramVec::new(
            latency(
                "gatehouse_app_queue_wait_seconds",
                "Time a request waited for a free worker slot.",
            ),
            &["app"],
        )?;
        let queue_rejected = IntCounterVec::new(
            Opts::new(
                "gatehouse_app_queue_rejected_total",
                "Requests answered 503 without reaching a worker (full, timeout, no_worker).",
            ),
            &["app", "reason"],
        )?;
        let upstream_duration = HistogramVec::new(
            latency(
                "gatehouse_upstream_request_duration_seconds",
                "Time from forwarding a request until the response head arrived.",
            ),
            &["target"],
        )?;
        let unrouted = Arc::new(RouteMetrics::new(
            &requests,
            &duration,
            &response_bytes,
            NO_ROUTE,
            None,
        ));
        Ok(Metrics {
            requests,
            duration,
            response_bytes,
            connections,
            queue_wait,
            queue_rejected,
            upstream_duration,
            routes: Mutex::default(),
            unrouted,
        })
    }

    /// The handles an app pool records its queue with (see `AppPool::set_metrics`).
    pub fn app(&self, app: &str) -> AppMetrics {
        let rejected = |reason| self.queue_rejected.with_label_values(&[app, reason]);
        AppMetrics {
            queue_wait: self.queue_wait.with_label_values(&[app]),
            full: rejected("full"),
            timeout: rejected("timeout"),
            no_worker: rejected("no_worker"),
        }
    }

    /// Counts a connection as open on `listener` until the returned guard is dropped.
    pub(crate) fn connection_opened(&self, listener: &str) -> OpenConnection {
        let gauge = self.connections.with_label_values(&[listener]);
        gauge.inc();
        OpenConnection(gauge)
    }

    /// For requests that no route answered.
    pub(crate) fn unrouted(&self) -> &Arc<RouteMetrics> {
        &self.unrouted
    }

    /// The handles of `route`, shared with every earlier site that had the same route.
    pub(crate) fn route(&self, route: &Route) -> Arc<RouteMetrics> {
        let target = route.target().map(str::to_owned);
        let key = (route.prefix.clone(), target);
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let found = routes.entry(key).or_insert_with_key(|(prefix, target)| {
            let upstream = target
                .as_deref()
                .map(|target| self.upstream_duration.with_label_values(&[target]));
            Arc::new(RouteMetrics::new(
                &self.requests,
                &self.duration,
                &self.response_bytes,
                prefix,
                upstream,
            ))
        });
        Arc::clone(found)
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// A route prefix and the upstream or app it forwards to (the labels its handles carry).
type RouteKey = (String, Option<String>);

fn latency(name: &str, help: &str) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec())
}

/// One route's metric handles.
pub(crate) struct RouteMetrics {
    requests: IntCounterVec,
    route: String,
    /// `[method][status - 100]`, each table allocated when its method is first seen.
    by_method: [OnceLock<Box<[OnceLock<IntCounter>]>>; MethodLabel::COUNT],
    duration: Histogram,
    bytes: IntCounter,
    /// `upstream_request_duration_seconds{target}` of the upstream or app the route forwards to.
    upstream: Option<Histogram>,
}

/// Statuses with a cached counter: every status a real response carries.
const CACHED_STATUSES: std::ops::RangeInclusive<u16> = 100..=599;

impl RouteMetrics {
    fn new(
        requests: &IntCounterVec,
        duration: &HistogramVec,
        bytes: &IntCounterVec,
        route: &str,
        upstream: Option<Histogram>,
    ) -> RouteMetrics {
        RouteMetrics {
            requests: requests.clone(),
            route: route.to_owned(),
            by_method: Default::default(),
            duration: duration.with_label_values(&[route]),
            bytes: bytes.with_label_values(&[route]),
            upstream,
        }
    }

    /// A response was sent to its end (or the client left): count it.
    pub(crate) fn finished(&self, method: MethodLabel, status: u16, bytes: u64, took: Duration) {
        self.count(method, status);
        self.duration.observe(took.as_secs_f64());
        if bytes > 0 {
            self.bytes.inc_by(bytes);
        }
    }

    /// The upstream or worker answered after `time` (`forward::Served::upstream_time`).
    pub(crate) fn upstream_time(&self, time: Duration) {
        if let Some(histogram) = &self.upstream {
            histogram.observe(time.as_secs_f64());
        }
    }

    fn count(&self, method: MethodLabel, status: u16) {
        let resolve = || {
            self.requests.with_label_values(&[
                self.route.as_str(),
                method.as_str(),
                status.to_string().as_str(),
            ])
        };
        if !CACHED_STATUSES.contains(&status) {
            resolve().inc();
            return;
        }
        let table = self.by_method[usize::from(method.0)].get_or_init(|| {
            CACHED_STATUSES
                .map(|_| OnceLock::new())
                .collect::<Vec<_>>()
                .into_boxed_slice()
        });
        let index = usize::from(status - CACHED_STATUSES.start());
        table[index].get_or_init(resolve).inc();
    }
}

/// The `method` label: a standard method, or `OTHER` for anything else (a client may send any
/// token as a method; each must not become a series).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MethodLabel(u8);

impl MethodLabel {
    const NAMES: [&'static str; 10] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "OTHER",
    ];
    const COUNT: usize = Self::NAMES.len();

    pub(crate) fn of(method: &Method) -> MethodLabel {
        let index = match *method {
            Method::GET => 0,
            Method::HEAD => 1,
            Method::POST => 2,
            Method::PUT => 3,
            Method::DELETE => 4,
            Method::CONNECT => 5,
            Method::OPTIONS => 6,
            Method::TRACE => 7,
            Method::PATCH => 8,
            _ => 9,
        };
        MethodLabel(index)
    }

    pub(crate) fn as_str(self) -> &'static str {
        Self::NAMES[usize::from(self.0)]
    }
}

/// An app pool's handles, resolved once per pool.
#[derive(Clone, Debug)]
pub struct AppMetrics {
    queue_wait: Histogram,
    full: IntCounter,
    timeout: IntCounter,
    no_worker: IntCounter,
}

/// Why a request never reached a worker: the `reason` label of `app_queue_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// `queue_size` requests were already waiting.
    Full,
    /// No slot came free within `queue_timeout`.
    Timeout,
    /// No worker in rotation (crash loop, still starting).
    NoWorker,
}

impl AppMetrics {
    pub(crate) fn queued(&self, wait: Duration) {
        self.queue_wait.observe(wait.as_secs_f64());
    }

    pub(crate) fn rejected(&self, reason: Rejection) {
        match reason {
            Rejection::Full => self.full.inc(),
            Rejection::Timeout => self.timeout.inc(),
            Rejection::NoWorker => self.no_worker.inc(),
        }
    }
}

/// An open client connection, counted in `connections_active` until dropped.
pub(crate) struct OpenConnection(IntGauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Route {
    /// This route's handles, resolved on the first request it answers.
    pub(crate) fn metrics(&self, metrics: &Metrics) -> &Arc<RouteMetrics> {
        self.metrics.get_or_init(|| metrics.route(self))
    }

    /// The upstream or app this route forwards to, if any: the `target` label.
    fn target(&self) -> Option<&str> {
        match &self.action {
            RouteAction::Forward(backend)
            | RouteAction::Static {
                fallback: Some(backend),
                ..
            } => Some(backend.name()),
            _ => None,
        }
    }
}

impl Backend {
    fn name(&self) -> &str {
        match self {
            Backend::Upstream(upstream) => upstream.name(),
            Backend::App(pool) => pool.name(),
            Backend::Missing(name) => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, TextEncoder};

    fn text(registry: &Registry) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    fn route(prefix: &str) -> Route {
        Route {
            prefix: prefix.to_owned(),
            action: RouteAction::Redirect("https://example.com".into()),
            strip_prefix: false,
            metrics: OnceLock::new(),
        }
    }

    #[test]
    fn methods_are_standard_or_other() {
        assert_eq!(MethodLabel::of(&Method::GET).as_str(), "GET");
        assert_eq!(MethodLabel::of(&Method::PATCH).as_str(), "PATCH");
        let custom = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(MethodLabel::of(&custom).as_str(), "OTHER");
    }

    #[test]
    fn counts_by_route_method_and_code() {
        let registry = Registry::new();
        let metrics = Metrics::new(&registry).unwrap();
        let api = route("/api/");
        let handles = api.metrics(&metrics);
        let get = MethodLabel::of(&Method::GET);
        handles.finished(get, 200, 10, Duration::from_millis(3));
        handles.finished(get, 200, 5, Duration::from_millis(3));
        handles.finished(get, 999, 0, Duration::from_millis(3));
        metrics
            .unrouted()
            .finished(get, 404, 0, Duration::from_millis(1));
        let text = text(&registry);
        for line in [
            r#"gatehouse_http_requests_total{code="200",method="GET",route="/api/"} 2"#,
            r#"gatehouse_http_requests_total{code="999",method="GET",route="/api/"} 1"#,
            r#"gatehouse_http_requests_total{code="404",method="GET",route="none"} 1"#,
            r#"gatehouse_http_response_bytes_total{route="/api/"} 15"#,
            r#"gatehouse_http_request_duration_seconds_count{route="/api/"} 3"#,
            r#"gatehouse_http_request_duration_seconds_bucket{route="/api/",le="0.005"} 3"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn a_reloaded_route_keeps_its_series() {
        let registry = Registry::new();
        let metrics = Metrics::new(&registry).unwrap();
        let get = MethodLabel::of(&Method::GET);
        // Two compilations of the same route, as two sites before and after a reload.
        let before = route("/");
        before
            .metrics(&metrics)
            .finished(get, 200, 1, Duration::ZERO);
        let after = route("/");
        after
            .metrics(&metrics)
            .finished(get, 200, 1, Duration::ZERO);
        assert!(Arc::ptr_eq(
            before.metrics(&metrics),
            after.metrics(&metrics)
        ));
        assert!(text(&registry)
            .contains(r#"gatehouse_http_requests_total{code="200",method="GET",route="/"} 2"#));
    }

    #[test]
    fn app_queue_and_connections() {
        let registry = Registry::new();
        let metrics = Metrics::new(&registry).unwrap();
        let app = metrics.app("web");
        app.queued(Duration::from_millis(20));
        app.rejected(Rejection::Timeout);
        let open = metrics.connection_opened("127.0.0.1:8080");
        let text_open = text(&registry);
        drop(open);
        let text_closed = text(&registry);
        assert!(text_open.contains(r#"gatehouse_connections_active{listener="127.0.0.1:8080"} 1"#));
        assert!(
            text_closed.contains(r#"gatehouse_connections_active{listener="127.0.0.1:8080"} 0"#)
        );
        assert!(text_open
            .contains(r#"gatehouse_app_queue_rejected_total{app="web",reason="timeout"} 1"#));
        assert!(
            text_open.contains(r#"gatehouse_app_queue_rejected_total{app="web",reason="full"} 0"#)
        );
        assert!(text_open.contains(r#"gatehouse_app_queue_wait_seconds_count{app="web"} 1"#));
    }
}
