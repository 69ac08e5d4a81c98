//! A [`Site`]: one validated config compiled for serving (route table, static handlers, upstream
//! pools, limits). The live site sits behind an `ArcSwap`; a request holds the `Arc<Site>` it
//! started with, so a reload never changes a request half-way.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use gatehouse_config::model::{Action, Cidr, Config, Limits};
use http::StatusCode;

use crate::app_pool::AppPool;
use crate::metrics::RouteMetrics;
use crate::route::RouteTable;
use crate::static_files::StaticFiles;
use crate::upstream::{HealthChecks, Upstream};

pub struct Site {
    pub(crate) routes: RouteTable<Route>,
    pub(crate) limits: Limits,
    pub(crate) trusted_proxies: Vec<Cidr>,
    /// Upstreams by name, kept so a reload can reuse their connection pools.
    upstreams: HashMap<String, Arc<Upstream>>,
    /// Active health-check tasks; they stop when the site is dropped.
    _health_checks: Vec<HealthChecks>,
}

pub(crate) struct Route {
    /// The configured path prefix: the `route` label of metrics and logs.
    pub prefix: String,
    pub action: RouteAction,
    pub strip_prefix: bool,
    /// Metric handles, resolved on first use (see `metrics.rs`).
    pub metrics: OnceLock<Arc<RouteMetrics>>,
}

pub(crate) enum RouteAction {
    Static {
        files: StaticFiles,
        fallback: Option<Backend>,
    },
    Forward(Backend),
    Redirect(String),
    Respond {
        status: StatusCode,
        body: Bytes,
    },
}

/// Where a forwarded request goes.
#[derive(Clone)]
pub(crate) enum Backend {
    Upstream(Arc<Upstream>),
    /// An app whose workers gatehouse launches.
    App(Arc<AppPool>),
    /// A name with no pool behind it (only if the binary did not start the app).
    Missing(String),
}

impl Site {
    /// Compiles `config`, with the app pools the binary keeps across reloads. Cannot fail: the
    /// config was validated, so every name a route uses is an upstream or one of `apps`.
    pub fn new(config: &Config, apps: &HashMap<String, Arc<AppPool>>) -> Site {
        let upstreams: HashMap<String, Arc<Upstream>> = config
            .upstreams
            .iter()
            .map(|upstream| (upstream.name.clone(), Upstream::new(upstream)))
            .collect();
        let health_checks = upstreams
            .values()
            .filter_map(|upstream| upstream.spawn_health_checks())
            .collect();
        let backend = |name: &str| match (upstreams.get(name), apps.get(name)) {
            (Some(upstream), _) => Backend::Upstream(Arc::clone(upstream)),
            (None, Some(app)) => Backend::App(Arc::clone(app)),
            (None, None) => Backend::Missing(name.to_string()),
        };
        let routes = config.routes.iter().map(|route| {
            let action = match &route.action {
                Action::Static(settings) => RouteAction::Static {
                    files: StaticFiles::new(settings),
                    fallback: settings.fallback.as_deref().map(backend),
                },
                Action::Forward(name) => RouteAction::Forward(backend(name)),
                Action::Redirect(template) => RouteAction::Redirect(template.clone()),
                Action::Respond { status, body } => RouteAction::Respond {
                    status: StatusCode::from_u16(*status).unwrap_or(StatusCode::OK),
                    body: Bytes::from(body.clone()),
                },
            };
            let compiled = Route {
                prefix: route.path.clone(),
                action,
                strip_prefix: route.strip_prefix,
                metrics: OnceLock::new(),
            };
            (route.host.clone(), route.path.clone(), compiled)
        });
        Site {
            routes: RouteTable::new(routes),
            limits: config.limits.clone(),
            trusted_proxies: config.server.trusted_proxies.clone(),
            upstreams,
            _health_checks: health_checks,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn upstream(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.get(name)
    }
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("limits", &self.limits)
            .field("upstreams", &self.upstreams.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
