//! The metrics only the binary can know, next to the proxy's in the same registry: workers by
//! state, restarts by reason and queue depths (read from the supervisors and pools at scrape
//! time), config reloads, build info, and the standard `process_*` metrics.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use gatehouse_proxy::tls::Tls;
use prometheus::process_collector::ProcessCollector;
use prometheus::{Gauge, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::{status, AppView};

pub(super) struct Metrics {
    workers: IntGaugeVec,
    restarts: IntCounterVec,
    queue_depth: IntGaugeVec,
    reloads: IntCounterVec,
    last_success: Gauge,
    handshake_errors: IntCounterVec,
    certificate_expiry: GaugeVec,
    /// Scrapes that overlap would race on the restart deltas.
    /// One refresh at a time; holds the apps the last refresh saw, so that the gauges of an app
    /// a reload removed are removed too.
    refreshing: Mutex<Vec<String>>,
}

impl Metrics {
    pub(super) fn new(registry: &Registry) -> prometheus::Result<Metrics> {
        let workers = IntGaugeVec::new(
            Opts::new(
                "gatehouse_app_workers",
                "Worker processes by state (starting, ready, busy, draining).",
            ),
            &["app", "state"],
        )?;
        let restarts = IntCounterVec::new(
            Opts::new(
                "gatehouse_app_worker_restarts_total",
                "Workers replaced, by reason.",
            ),
            &["app", "reason"],
        )?;
        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "gatehouse_app_queue_depth",
                "Requests waiting for a worker slot.",
            ),
            &["app"],
        )?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "gatehouse_config_reloads_total",
                "Config reloads, by result (success, failure).",
            ),
            &["result"],
        )?;
        let last_success = Gauge::new(
            "gatehouse_config_last_reload_success_timestamp_seconds",
            "When the config in effect was loaded (the start, or the last successful reload).",
        )?;
        let handshake_errors = IntCounterVec::new(
            Opts::new(
                "gatehouse_tls_handshake_errors_total",
                "TLS handshakes that failed, by listener.",
            ),
            &["listener"],
        )?;
        let certificate_expiry = GaugeVec::new(
            Opts::new(
                "gatehouse_tls_certificate_expiry_timestamp_seconds",
                "When each served certificate expires (its notAfter), as a Unix time.",
            ),
            &["name"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "gatehouse_build_info",
                "Always 1; the labels describe the build.",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for result in ["success", "failure"] {
            reloads.with_label_values(&[result]);
        }
        registry.register(Box::new(workers.clone()))?;
        registry.register(Box::new(restarts.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(last_success.clone()))?;
        registry.register(Box::new(handshake_errors.clone()))?;
        registry.register(Box::new(certificate_expiry.clone()))?;
        registry.register(Box::new(build_info))?;
        registry.register(Box::new(ProcessCollector::for_self()))?;
        Ok(Metrics {
            workers,
            restarts,
            queue_depth,
            reloads,
            last_success,
            handshake_errors,
            certificate_expiry,
            refreshing: Mutex::new(Vec::new()),
        })
    }

    /// The config was loaded at start.
    pub(super) fn loaded(&self, at: SystemTime) {
        self.last_success.set(seconds(at));
    }

    /// A reload was tried.
    pub(super) fn reloaded(&self, success: bool, at: SystemTime) {
        let result = if success { "success" } else { "failure" };
        self.reloads.with_label_values(&[result]).inc();
        if success {
            self.last_success.set(seconds(at));
        }
    }

    /// Reads the apps' current state into the gauges and counters, before a scrape.
    pub(super) fn refresh(&self, apps: &[AppView], tls: &[(String, Arc<Tls>)]) {
        let mut seen_apps = self
            .refreshing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (listener, tls) in tls {
            // The listener's own count only grows; add what is new so the counter follows.
            let counter = self
                .handshake_errors
                .with_label_values(&[listener.as_str()]);
            let total = tls.handshake_errors();
            let seen = counter.get();
            if total > seen {
                counter.inc_by(total - seen);
            }
            for certificate in tls.certificates() {
                self.certificate_expiry
                    .with_label_values(&[certificate.name.as_str()])
                    .set(seconds(certificate.not_after));
            }
        }
        for app in apps {
            let name = app.pool.name();
            let workers = status::workers(app);
            for state in status::STATES {
                let count = workers
                    .iter()
                    .filter(|worker| worker.state == state)
                    .count();
                self.workers
                    .with_label_values(&[name, state])
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
            let depth = i64::try_from(app.pool.queue_depth()).unwrap_or(i64::MAX);
            self.queue_depth.with_label_values(&[name]).set(depth);
            for (reason, total) in app.supervisor.restarts() {
                // The supervisor's totals only grow; add what is new so the counter follows.
                let counter = self.restarts.with_label_values(&[name, reason.as_str()]);
                let seen = counter.get();
                if total > seen {
                    counter.inc_by(total - seen);
                }
            }
        }
        for gone in seen_apps
            .iter()
            .filter(|name| !apps.iter().any(|app| app.pool.name() == name.as_str()))
        {
            for state in status::STATES {
                let _ = self.workers.remove_label_values(&[gone, state]);
            }
            let _ = self.queue_depth.remove_label_values(&[gone]);
        }
        *seen_apps = apps.iter().map(|app| app.pool.name().to_owned()).collect();
    }
}

fn seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}
