//! A [`Site`]: one validated config compiled for serving (route table, static handlers, upstream
//! pools, limits). The live site sits behind an `ArcSwap`; a request holds the `Arc<Site>` it
//! started with, so a reload never changes a request half-way.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use gatehouse_config::model::{self, Action, Cidr, Config, Limits};
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
    /// Upstreams by name, kept so a reload can reuse those it did not change (connection pools,
    /// health state and health-check task included).
    upstreams: HashMap<String, KeptUpstream>,
}

/// An upstream with the config it was made from and its health checks, which run while any
/// site that holds them is alive.
#[derive(Clone)]
struct KeptUpstream {
    config: model::Upstream,
    upstream: Arc<Upstream>,
    _health_checks: Option<Arc<HealthChecks>>,
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
        Site::compile(config, apps, None)
    }

    /// [`Site::new`] for a reload: upstreams whose config did not change are taken over from
    /// this site as they are (keep-alive connections, health state, health-check task).
    pub fn next(&self, config: &Config, apps: &HashMap<String, Arc<AppPool>>) -> Site {
        Site::compile(config, apps, Some(self))
    }

    fn compile(
        config: &Config,
        apps: &HashMap<String, Arc<AppPool>>,
        previous: Option<&Site>,
    ) -> Site {
        let upstreams: HashMap<String, KeptUpstream> = config
            .upstreams
            .iter()
            .map(|upstream| {
                let kept = previous
                    .and_then(|site| site.upstreams.get(&upstream.name))
                    .filter(|kept| kept.config == *upstream)
                    .cloned()
                    .unwrap_or_else(|| {
                        let made = Upstream::new(upstream);
                        KeptUpstream {
                            config: upstream.clone(),
                            _health_checks: made.spawn_health_checks().map(Arc::new),
                            upstream: made,
                        }
                    });
                (upstream.name.clone(), kept)
            })
            .collect();
        let backend = |name: &str| match (upstreams.get(name), apps.get(name)) {
            (Some(kept), _) => Backend::Upstream(Arc::clone(&kept.upstream)),
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
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn upstream(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.get(name).map(|kept| &kept.upstream)
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(servers: &str) -> Config {
        let text = format!(
            "[[listener]]\naddress = \"127.0.0.1:0\"\n\n[[upstream]]\nname = \"api\"\nservers = [{servers}]\n\n[[route]]\npath = \"/\"\nupstream = \"api\"\n"
        );
        gatehouse_config::parse(Path::new("gatehouse.toml"), &text).unwrap()
    }

    #[tokio::test]
    async fn a_reload_keeps_the_upstreams_it_did_not_change() {
        let apps = HashMap::new();
        let first = Site::new(&config("\"127.0.0.1:9001\""), &apps);
        let same = first.next(&config("\"127.0.0.1:9001\""), &apps);
        assert!(Arc::ptr_eq(
            first.upstream("api").unwrap(),
            same.upstream("api").unwrap()
        ));
        let changed = same.next(&config("\"127.0.0.1:9002\""), &apps);
        assert!(!Arc::ptr_eq(
            same.upstream("api").unwrap(),
            changed.upstream("api").unwrap()
        ));
    }
}
