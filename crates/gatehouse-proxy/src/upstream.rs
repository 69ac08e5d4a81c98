//! A named set of upstream servers: which server a request goes to, and over which connection.
//!
//! Each server keeps its own pool of idle HTTP/1.1 connections (`pool`), built directly on
//! `hyper::client::conn::http1` so that a connection exists *before* the request is given away:
//! a server that cannot be reached costs nothing but time, and the request moves on to the next
//! one with its body intact. Requests go to the server with the fewest outstanding requests
//! (`balance`); a failed connect or failing health checks (`health`) move a server to the back.
//! What is sent over the connection is [`crate::forward`]'s business.

mod balance;
pub(crate) mod body;
mod connect;
mod health;
mod pool;
pub(crate) mod server;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gatehouse_config::model;
use http::{Request, Response};
use tokio::time::Instant;

use crate::body::Body;
use crate::error::ProxyError;
use crate::forward::{self, Outgoing, Sent};
use server::{Lease, Server};

pub use health::HealthChecks;

/// One `[[upstream]]`: its servers, their pools and their health.
pub struct Upstream {
    name: String,
    servers: Vec<Arc<Server>>,
    connect_timeout: Duration,
    /// Waiting for the response head (and between body chunks) → 504.
    timeout: Duration,
    health: Option<model::Health>,
    /// Where the next request starts looking, so that ties rotate.
    rotation: AtomicUsize,
}

/// A server as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    pub address: String,
    /// Neither failing its health checks nor recently refusing connections.
    pub in_rotation: bool,
    pub outstanding: usize,
}

impl Upstream {
    pub fn new(config: &model::Upstream) -> Arc<Self> {
        Arc::new(Upstream {
            name: config.name.clone(),
            servers: config.servers.iter().cloned().map(Server::new).collect(),
            connect_timeout: config.connect_timeout,
            timeout: config.timeout,
            health: config.health.clone(),
            rotation: AtomicUsize::new(0),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Spawn active health checks if configured; the task stops when the guard is dropped (or
    /// when the upstream itself is).
    pub fn spawn_health_checks(self: &Arc<Self>) -> Option<HealthChecks> {
        let health = self.health.clone()?;
        Some(HealthChecks::spawn(Arc::downgrade(self), health))
    }

    pub fn servers(&self) -> Vec<ServerStatus> {
        let now = Instant::now();
        self.servers
            .iter()
            .map(|server| ServerStatus {
                address: server.label().to_owned(),
                in_rotation: !server.is_down(now),
                outstanding: server.outstanding(),
            })
            .collect()
    }

    /// Forward `request` to one of the servers and return its response, whose body streams.
    ///
    /// Servers are tried in balance order until one accepts a connection; the request is sent
    /// to exactly one server. A [`forward::Served`] in the response's extensions names it.
    pub async fn forward(
        &self,
        request: Request<Body>,
        context: &forward::Context,
    ) -> Result<Response<Body>, ProxyError> {
        let started = Instant::now();
        let mut outgoing = Outgoing::new(request, context)?;
        for server in self.order() {
            let mut lease = Lease::new(&server);
            loop {
                if let Err(error) = lease.connect(self.connect_timeout).await {
                    tracing::warn!(upstream = %self.name, server = server.label(), %error,
                        "cannot connect; trying the next server");
                    server.mark_unreachable();
                    break;
                }
                let reused = lease.reused();
                match outgoing.send(lease, self.timeout, started).await {
                    Sent::Answered(result) => return result,
                    Sent::NotSent(unsent, returned) => {
                        (outgoing, lease) = (unsent, returned);
                        if !reused {
                            // A brand-new connection closed before taking the request.
                            tracing::warn!(upstream = %self.name, server = server.label(),
                                "connection closed at once; trying the next server");
                            server.mark_unreachable();
                            break;
                        }
                        // An idle connection went stale: try another one to the same server.
                    }
                }
            }
        }
        Err(ProxyError::Connect {
            upstream: self.name.clone(),
        })
    }

    /// Every server, best first: least outstanding, ties rotating, down ones last.
    fn order(&self) -> Vec<Arc<Server>> {
        let now = Instant::now();
        let loads: Vec<balance::Load> = self
            .servers
            .iter()
            .map(|server| balance::Load {
                down: server.is_down(now),
                outstanding: server.outstanding(),
            })
            .collect();
        let start = self.rotation.fetch_add(1, Ordering::Relaxed);
        balance::order(&loads, start)
            .into_iter()
            .filter_map(|index| self.servers.get(index).cloned())
            .collect()
    }
}
