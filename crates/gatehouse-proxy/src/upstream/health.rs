//! Active health checks: every `interval`, each server is probed on a fresh connection (a GET of
//! `health.path`, or just a connect when no path is set).
//!
//! `failures` failed probes in a row take a server out of rotation; one passing probe brings it
//! back (and clears a passive "unreachable" mark too). A probe passes on a 2xx or 3xx answer
//! within `timeout`, as HAProxy's `httpchk` does.

use std::sync::Weak;

use futures_util::future::join_all;
use gatehouse_config::model;
use http::{header, HeaderValue, Request, Uri};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::server::Server;
use super::{connect, Upstream};
use crate::body;

/// The running checks of one upstream; dropping it stops them.
#[derive(Debug)]
pub struct HealthChecks {
    task: JoinHandle<()>,
}

impl HealthChecks {
    /// The task holds the upstream weakly, so a reload that drops the upstream ends it too.
    pub(crate) fn spawn(upstream: Weak<Upstream>, health: model::Health) -> Self {
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(health.interval);
            // A slow round of probes delays the next one instead of causing a burst.
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(upstream) = upstream.upgrade() else {
                    return;
                };
                let probes = upstream
                    .servers
                    .iter()
                    .map(|server| check(&upstream, server, &health));
                join_all(probes).await;
            }
        });
        HealthChecks { task }
    }
}

impl Drop for HealthChecks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn check(upstream: &Upstream, server: &Server, health: &model::Health) {
    let passed = matches!(
        tokio::time::timeout(health.timeout, probe(server, health)).await,
        Ok(Ok(true))
    );
    match server.record_check(passed, health.failures) {
        Some(true) => tracing::info!(upstream = %upstream.name, server = server.label(),
            "health check passed; server is back in rotation"),
        Some(false) => tracing::warn!(upstream = %upstream.name, server = server.label(),
            failures = health.failures, "health checks failed; server taken out of rotation"),
        None => {}
    }
}

/// `Ok(true)` when the server looks healthy. The timeout is applied by the caller.
async fn probe(
    server: &Server,
    health: &model::Health,
) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    let mut sender = connect::open(server.endpoint(), health.timeout).await?;
    let Some(path) = &health.path else {
        return Ok(true);
    };
    let request = Request::get(Uri::try_from(path.as_str())?)
        .header(header::HOST, server.host_header())
        .header(
            header::USER_AGENT,
            HeaderValue::from_static("gatehouse-health-check"),
        )
        // A fresh connection per probe: it tests that the server still accepts connections.
        .header(header::CONNECTION, HeaderValue::from_static("close"))
        .body(body::empty())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    Ok(status.is_success() || status.is_redirection())
}
