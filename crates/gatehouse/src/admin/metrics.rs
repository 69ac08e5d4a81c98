//! The metrics only the binary can know, next to the proxy's in the same registry: workers by
//! state, restarts by reason and queue depths (read from the supervisors and pools at scrape
//! time), config reloads, build info, and the standard `process_*` metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use gatehouse_proxy::tls::Tls;
use prometheus::process_collector::ProcessCollector;
use prometheus::{Gauge, GaugeVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::{status, AppView};

pub(super) struct Metrics {
    workers: IntGaugeVec,
    restarts: IntCounterVec,
    queue_depth: IntGaugeVec,
    reloads: IntCounterVec,
    last_success: Gauge,
    handshake_errors: IntCounterVec,
    certificate_expiry: GaugeVec,
    /// One refresh at a time (scrapes that overlap would race on the deltas), and what the
    /// last one saw.
    refreshing: Mutex<Seen>,
}

/// What the last refresh saw.
#[derive(Default)]
struct Seen {
    /// The apps, so that the gauges of an app a reload removed are removed too.
    apps: Vec<String>,
    /// Per counter series: which source (a pool's or a listener's TLS end, by address) last
    /// reported, and its total then. A reload that replaces the source (an app removed and added
    /// again, new TLS settings) starts a new total at 0, whose whole value is then new.
    totals: HashMap<Vec<String>, (usize, u64)>,
}

impl Seen {
    /// Adds to `counter` what `source`'s growing `total` gained since the last refresh.
    fn follow(&mut self, counter: &IntCounter, labels: &[&str], source: usize, total: u64) {
        let key: Vec<String> = labels.iter().map(|label| (*label).to_owned()).collect();
        let added = match self.totals.get(&key) {
            Some(&(seen_source, seen_total)) if seen_source == source => {
                total.saturating_sub(seen_total)
            }
            _ => total,
        };
        if added > 0 {
            counter.inc_by(added);
        }
        self.totals.insert(key, (source, total));
    }
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
            refreshing: Mutex::new(Seen::default()),
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
        let mut seen = self
            .refreshing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (listener, tls) in tls {
            let labels = ["handshake_errors", listener.as_str()];
            let counter = self.handshake_errors.with_label_values(&labels[1..]);
            let source = Arc::as_ptr(tls) as usize;
            seen.follow(&counter, &labels, source, tls.handshake_errors());
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
            let source = Arc::as_ptr(&app.pool) as usize;
            for (reason, total) in app.supervisor.restarts() {
                let labels = ["restarts", name, reason.as_str()];
                let counter = self.restarts.with_label_values(&labels[1..]);
                seen.follow(&counter, &labels, source, total);
            }
        }
        for gone in seen
            .apps
            .iter()
            .filter(|name| !apps.iter().any(|app| app.pool.name() == name.as_str()))
        {
            for state in status::STATES {
                let _ = self.workers.remove_label_values(&[gone, state]);
            }
            let _ = self.queue_depth.remove_label_values(&[gone]);
        }
        seen.apps = apps.iter().map(|app| app.pool.name().to_owned()).collect();
    }
}

fn seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_follows_a_source_and_its_replacement() {
        let counter = IntCounter::new("c", "c").unwrap();
        let mut seen = Seen::default();
        seen.follow(&counter, &["a"], 1, 2);
        seen.follow(&counter, &["a"], 1, 3);
        assert_eq!(counter.get(), 3);
        // A new source (the app removed and added again) counts from 0.
        seen.follow(&counter, &["a"], 2, 1);
        assert_eq!(counter.get(), 4);
        seen.follow(&counter, &["a"], 2, 1);
        assert_eq!(counter.get(), 4);
    }
}
