//! What goes over the wire when one request is forwarded on one upstream connection.
//!
//! [`crate::upstream`] decides *which* server and connection; this module rewrites the request for
//! the upstream (`headers`), sends it, waits for the response head within the deadline
//! (`deadline`), maps failures to [`ProxyError`], and hands a WebSocket upgrade over to a tunnel
//! (`tunnel`). The response body streams back through `upstream::body`, which returns the
//! connection to the pool once the body has been read to its end.

mod deadline;
mod headers;
mod tunnel;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::uri::PathAndQuery;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use tokio::time::Instant;

use crate::body::{self, Body};
use crate::error::ProxyError;
use crate::upstream::body::UpstreamBody;
use crate::upstream::server::Lease;

pub(crate) use deadline::{IdleTimeout, Progress};
pub(crate) use headers::wants_websocket as wants_upgrade;

/// What the caller knows about the client that the upstream should learn from headers.
#[derive(Debug, Clone)]
pub struct Context {
    /// The TCP peer (127.0.0.1 for Unix-socket clients).
    pub client_ip: IpAddr,
    /// The peer is in `trusted_proxies`: append it to X-Forwarded-For instead of replacing.
    pub peer_trusted: bool,
    /// The client after `trusted_proxies` (the access log's client), sent as X-Real-IP.
    pub real_ip: IpAddr,
    /// `"http"` or `"https"`, sent as X-Forwarded-Proto.
    pub scheme: &'static str,
    /// Already chosen by the caller (a valid incoming one is kept); sent as X-Request-Id.
    pub request_id: HeaderValue,
    /// Forward this instead of the request's own path and query (`strip_prefix`).
    pub path_and_query: Option<PathAndQuery>,
    /// `limits.websocket_idle_timeout`: a tunnel quiet this long is closed; `None`: never.
    pub websocket_idle_timeout: Option<Duration>,
}

/// Put into the extensions of every response that came from an upstream, for the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The server that answered, as configured (`10.0.0.5:8000`, `unix:/run/api.sock`).
    pub server: String,
    /// From the start of forwarding (connects included) until the response head arrived.
    pub upstream_time: Duration,
}

/// A request rewritten for the upstream, ready to go over any connection of any server.
pub(crate) struct Outgoing {
    request: Request<Body>,
    /// The client's side of a WebSocket upgrade; used only if the upstream answers 101.
    client_upgrade: Option<OnUpgrade>,
    /// For the tunnel, if there is one.
    idle_timeout: Option<Duration>,
    progress: Arc<deadline::Progress>,
}

/// How [`Outgoing::send`] ended.
pub(crate) enum Sent {
    Answered(Result<Response<Body>, ProxyError>),
    /// The connection closed before a byte of the request was written, so the request may go
    /// to another connection or server unchanged.
    NotSent(Outgoing, Lease),
}

impl Outgoing {
    pub(crate) fn new(mut request: Request<Body>, context: &Context) -> Result<Self, ProxyError> {
        if request.method() == Method::CONNECT {
            // A reverse proxy has no business opening tunnels to arbitrary authorities.
            return Err(ProxyError::BadRequest("CONNECT is not forwarded"));
        }
        // Take the client's upgrade handle now: once the request is sent it is gone, and only a
        // 101 from the upstream may ever use it.
        let client_upgrade = if headers::wants_websocket(&request) {
            request.extensions_mut().remove::<OnUpgrade>()
        } else {
            None
        };
        let (mut parts, body) = request.into_parts();
        headers::rewrite_request(&mut parts, context, client_upgrade.is_some());
        // The server side's extensions (its upgrade handle, h2 details) mean nothing upstream.
        parts.extensions = http::Extensions::new();
        let (body, progress) = deadline::track(body);
        Ok(Outgoing {
            request: Request::from_parts(parts, body),
            client_upgrade,
            idle_timeout: context.websocket_idle_timeout,
            progress,
        })
    }

    /// Send over `lease`'s connection and wait at most `timeout` for the response head.
    pub(crate) async fn send(
        mut self,
        mut lease: Lease,
        timeout: Duration,
        started: Instant,
    ) -> Sent {
        if !self.request.headers().contains_key(header::HOST) {
            // HTTP/1.0 clients may omit Host; HTTP/1.1 upstreams require one.
            let host = lease.server().host_header();
            self.request.headers_mut().insert(header::HOST, host);
        }
        let Outgoing {
            request,
            client_upgrade,
            idle_timeout,
            progress,
        } = self;
        let Some(sender) = lease.sender() else {
            let outgoing = Outgoing {
                request,
                client_upgrade,
                idle_timeout,
                progress,
            };
            return Sent::NotSent(outgoing, lease);
        };
        progress.touch();
        let pending = sender.try_send_request(request);
        let target = lease.server().label().to_owned();
        let response = match deadline::head(pending, timeout, &progress).await {
            None => return Sent::Answered(Err(ProxyError::UpstreamTimeout { target })),
            Some(Ok(response)) => response,
            Some(Err(mut error)) => {
                return match error.take_message() {
                    Some(request) => {
                        let outgoing = Outgoing {
                            request,
                            client_upgrade,
                            idle_timeout,
                            progress,
                        };
                        Sent::NotSent(outgoing, lease)
                    }
                    None => Sent::Answered(Err(upstream_error(target, error.into_error()))),
                };
            }
        };
        let served = Served {
            server: target,
            upstream_time: started.elapsed(),
        };
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let tunnel = Tunnel {
                client: client_upgrade,
                idle_timeout,
            };
            return Sent::Answered(switch(response, tunnel, lease, served));
        }
        // Dropping `client_upgrade` here is what keeps a refused upgrade from tunnelling.
        drop(client_upgrade);
        let (mut parts, incoming) = response.into_parts();
        let reusable = headers::allows_reuse(parts.version, &parts.headers);
        headers::rewrite_response(&mut parts.headers, false);
        parts.extensions.insert(served);
        let body = body::boxed(UpstreamBody::new(
            incoming, lease, reusable, timeout, progress,
        ));
        Sent::Answered(Ok(Response::from_parts(parts, body)))
    }
}

/// The client's side of an upgrade, and how long the tunnel may be quiet.
struct Tunnel {
    client: Option<OnUpgrade>,
    idle_timeout: Option<Duration>,
}

/// The upstream agreed to switch protocols: answer the client with the 101 and join both sides.
fn switch(
    mut response: Response<Incoming>,
    tunnel: Tunnel,
    lease: Lease,
    served: Served,
) -> Result<Response<Body>, ProxyError> {
    let Some(client_upgrade) = tunnel.client else {
        return Err(ProxyError::UpstreamProtocol {
            target: served.server,
            reason: "101 Switching Protocols to a request that asked for no upgrade",
        });
    };
    let upstream_upgrade = hyper::upgrade::on(&mut response);
    tunnel::spawn(client_upgrade, upstream_upgrade, lease, tunnel.idle_timeout);
    let (mut parts, _empty) = response.into_parts();
    headers::rewrite_response(&mut parts.headers, true);
    parts.extensions.insert(served);
    Ok(Response::from_parts(parts, body::empty()))
}

/// A failed exchange is the upstream's fault, except when the client's body hit the size limit
/// (the caller wraps bodies in `http_body_util::Limited`).
fn upstream_error(target: String, source: hyper::Error) -> ProxyError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&source);
    while let Some(error) = cause {
        if error.is::<http_body_util::LengthLimitError>() {
            return ProxyError::BodyTooLarge;
        }
        cause = error.source();
    }
    ProxyError::Upstream { target, source }
}
