//! The per-request service: checks a parsed request, routes it, runs the route's action, and
//! hands the metrics and the access log their record. Every answer, including errors, leaves
//! through here, so every response carries `X-Request-Id`.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::Limited;
use hyper::body::Incoming;

use gatehouse_config::model::Cidr;

use crate::access_log::{AccessLog, Record};
use crate::app_pool;
use crate::body::{self, Body};
use crate::conn_io::ConnState;
use crate::error::{error_response, ProxyError};
use crate::forward;
use crate::log_body::{Completion, LoggedBody};
use crate::metrics::MethodLabel;
use crate::route::request_host;
use crate::site::{Backend, Route, RouteAction, Site};
use crate::static_files::Outcome;
use crate::Proxy;

pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the service knows about the connection a request came on.
pub(crate) struct ConnInfo {
    /// `None` for Unix-socket clients.
    pub peer: Option<SocketAddr>,
    pub scheme: &'static str,
    /// The listener's `redirect_https` prefix.
    pub redirect_https: Option<String>,
    /// TLS listeners: the `hsts` value every response carries.
    pub hsts: Option<HeaderValue>,
    pub state: Arc<ConnState>,
}

pub(crate) async fn handle(
    proxy: Arc<Proxy>,
    conn: Arc<ConnInfo>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let in_flight = conn.state.begin_request();
    let started = Instant::now();
    let method = MethodLabel::of(request.method());
    let site = proxy.site();
    let access_log = proxy.access_log();
    let request_id = request_id(request.headers());
    let peer_ip = conn
        .peer
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |peer| peer.ip());
    let peer_trusted = site
        .trusted_proxies
        .iter()
        .any(|cidr| cidr.contains(peer_ip));
    // Once per request: the access log's client and the app's X-Real-IP.
    let client = if peer_trusted {
        client_ip(request.headers(), peer_ip, &site.trusted_proxies)
    } else {
        peer_ip
    };
    let record = access_log
        .is_enabled()
        .then(|| start_record(&request, &access_log, &request_id, client));

    let (mut response, route) = if in_flight.had_length_and_chunked() {
        // hyper dropped the Content-Length; we refuse the ambiguity outright (RFC 9112 6.1).
        let error = ProxyError::BadRequest("both Content-Length and Transfer-Encoding");
        (error.into_response(), None)
    } else {
        let peer = Peer {
            ip: peer_ip,
            trusted: peer_trusted,
            client,
        };
        respond(&site, &conn, request, &request_id, peer).await
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        conn.state.mark_upgraded();
    }
    response
        .headers_mut()
        .insert(X_REQUEST_ID.clone(), request_id);
    if let Some(hsts) = &conn.hsts {
        // An app that sets its own policy keeps it.
        response
            .headers_mut()
            .entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert_with(|| hsts.clone());
    }

    let metrics = match route {
        Some(route) => route.metrics(proxy.metrics()),
        None => proxy.metrics().unrouted(),
    };
    let served = response.extensions().get::<forward::Served>();
    if let Some(served) = served {
        metrics.upstream_time(served.upstream_time);
    }
    let mut completion = Completion {
        metrics: Arc::clone(metrics),
        method,
        status: response.status().as_u16(),
        started,
        log: None,
    };
    if let Some(mut record) = record {
        record.status = completion.status;
        record.route = route.map(|route| route.prefix.clone());
        if let Some(served) = served {
            record.served_by = Some(served.server.clone());
            record.upstream_time = Some(served.upstream_time);
        }
        record.queue_time = response
            .extensions()
            .get::<app_pool::Queued>()
            .map(|queued| queued.wait);
        let (_, wanted_response_headers) = access_log.wanted_headers();
        record.response_headers = capture_headers(response.headers(), wanted_response_headers);
        completion.log = Some((record, access_log));
    }
    Ok(response.map(|body| LoggedBody::wrap(body, completion)))
}

/// Who sent the request: the TCP peer, whether it is a trusted proxy, and the client it speaks
/// for (the peer itself unless trusted).
struct Peer {
    ip: IpAddr,
    trusted: bool,
    client: IpAddr,
}

/// Runs the request through limits, routing and the route's action.
async fn respond<'site>(
    site: &'site Site,
    conn: &ConnInfo,
    request: Request<Incoming>,
    request_id: &HeaderValue,
    peer: Peer,
) -> (Response<Body>, Option<&'site Route>) {
    if let Err(error) = check_request(site, &request) {
        tracing::debug!(%error, "rejected request");
        return (error.into_response(), None);
    }
    if let Some(prefix) = &conn.redirect_https {
        let location = format!(
            "{}{}",
            substitute_host(prefix, &request),
            path_and_query(&request)
        );
        return (redirect(request.method(), &location), None);
    }
    let host = request_host(&request);
    let Some((_, route)) = site.routes.find(host.as_deref(), request.uri().path()) else {
        return (ProxyError::NoRoute.into_response(), None);
    };
    let context = forward::Context {
        client_ip: peer.ip,
        peer_trusted: peer.trusted,
        real_ip: peer.client,
        scheme: conn.scheme,
        request_id: request_id.clone(),
        path_and_query: None,
        websocket_idle_timeout: site.limits.websocket_idle_timeout,
    };
    let response = run_action(site, route, request, context).await;
    (response, Some(route))
}

/// Rejections that need no route: request smuggling shapes and the body size limit.
fn check_request<B>(site: &Site, request: &Request<B>) -> Result<(), ProxyError> {
    let headers = request.headers();
    if request.version() == Version::HTTP_11 && !headers.contains_key(header::HOST) {
        return Err(ProxyError::BadRequest("missing Host header"));
    }
    // hyper bounds HTTP/1 heads by its buffer and count; this also covers HTTP/2 header lists.
    if headers.len() > site.limits.max_header_count {
        return Err(ProxyError::HeadersTooLarge);
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes as u64 > site.limits.max_header_bytes {
        return Err(ProxyError::HeadersTooLarge);
    }
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > site.limits.max_body_size) {
        // Answered before the body is read, so `Expect: 100-continue` never gets a 100 first.
        return Err(ProxyError::BodyTooLarge);
    }
    Ok(())
}

async fn run_action(
    site: &Site,
    route: &Route,
    request: Request<Incoming>,
    mut context: forward::Context,
) -> Response<Body> {
    match &route.action {
        RouteAction::Respond { status, body } => respond_fixed(*status, body.clone()),
        RouteAction::Redirect(template) => {
            let location = template
                .replace("{host}", &request_host(&request).unwrap_or_default())
                .replace("{uri}", path_and_query(&request));
            redirect(request.method(), &location)
        }
        RouteAction::Forward(backend) => {
            if route.strip_prefix {
                context.path_and_query = stripped_path(&route.prefix, &request);
            }
            forward_to(site, backend, request, &context).await
        }
        RouteAction::Static { files, fallback } => {
            let relative = relative_path(&route.prefix, request.uri().path());
            let outcome = files
                .serve(request.method(), request.uri(), request.headers(), relative)
                .await;
            match (outcome, fallback) {
                (Outcome::Served(response), _) => response,
                (Outcome::Missing | Outcome::MethodNotAllowed, Some(backend)) => {
                    forward_to(site, backend, request, &context).await
                }
                (Outcome::Missing, None) => error_response(StatusCode::NOT_FOUND),
                (Outcome::MethodNotAllowed, None) => {
                    let mut response = error_response(StatusCode::METHOD_NOT_ALLOWED);
                    response
                        .headers_mut()
                        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                    response
                }
            }
        }
    }
}

async fn forward_to(
    site: &Site,
    backend: &Backend,
    request: Request<Incoming>,
    context: &forward::Context,
) -> Response<Body> {
    let limit = usize::try_from(site.limits.max_body_size).unwrap_or(usize::MAX);
    let request = request.map(|incoming| body::boxed(Limited::new(incoming, limit)));
    let result = match backend {
        Backend::Upstream(upstream) => upstream.forward(request, context).await,
        Backend::App(pool) => pool.forward(request, context).await,
        Backend::Missing(name) => Err(ProxyError::NoWorker { app: name.clone() }),
    };
    result.unwrap_or_else(|error| {
        if error.is_client_error() {
            tracing::debug!(%error, request_id = ?context.request_id, "request failed");
        } else {
            tracing::warn!(%error, request_id = ?context.request_id, "request failed");
        }
        error.into_response()
    })
}

fn respond_fixed(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(body::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// 301 for GET and HEAD; 308 otherwise so the method and body are kept.
fn redirect(method: &Method, location: &str) -> Response<Body> {
    let status = if method == Method::GET || method == Method::HEAD {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::PERMANENT_REDIRECT
    };
    match HeaderValue::try_from(location) {
        Ok(location) => {
            let mut response = error_response(status);
            response.headers_mut().insert(header::LOCATION, location);
            response
        }
        Err(_) => ProxyError::BadRequest("redirect target is not a valid header").into_response(),
    }
}

fn substitute_host<B>(template: &str, request: &Request<B>) -> String {
    template.replace("{host}", &request_host(request).unwrap_or_default())
}

fn path_and_query<B>(request: &Request<B>) -> &str {
    request
        .uri()
        .path_and_query()
        .map_or("/", |path_and_query| path_and_query.as_str())
}

/// The request path below the route prefix, without leading slashes (static roots are joined to it).
fn relative_path<'a>(prefix: &str, path: &'a str) -> &'a str {
    path.get(prefix.len()..)
        .unwrap_or("")
        .trim_start_matches('/')
}

/// For `strip_prefix = true`: route `/api/` turns `/api/users?x=1` into `/users?x=1`.
fn stripped_path<B>(prefix: &str, request: &Request<B>) -> Option<http::uri::PathAndQuery> {
    let rest = request
        .uri()
        .path()
        .get(prefix.trim_end_matches('/').len()..)
        .unwrap_or("");
    let mut path = String::with_capacity(rest.len() + 1);
    if !rest.starts_with('/') {
        path.push('/');
    }
    path.push_str(rest);
    if let Some(query) = request.uri().query() {
        path.push('?');
        path.push_str(query);
    }
    path.parse().ok()
}

/// Keeps a well-formed incoming X-Request-Id (≤ 128 visible ASCII characters); otherwise makes one.
fn request_id(headers: &http::HeaderMap) -> HeaderValue {
    if let Some(incoming) = headers.get(&X_REQUEST_ID) {
        let bytes = incoming.as_bytes();
        if !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|b| (0x21..0x7f).contains(b))
        {
            return incoming.clone();
        }
    }
    // 128 random bits as 32 hex digits, without the formatting machinery (this is per request).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let random = fastrand::u128(..);
    let mut id = [0u8; 32];
    for (index, digit) in id.iter_mut().enumerate() {
        *digit = HEX[((random >> (124 - 4 * index)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

fn start_record<B>(
    request: &Request<B>,
    access_log: &AccessLog,
    request_id: &HeaderValue,
    client: IpAddr,
) -> Record {
    let headers = request.headers();
    let header_text = |name: HeaderName| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    };
    let (wanted_request_headers, _) = access_log.wanted_headers();
    Record {
        time: SystemTime::now(),
        client_ip: client,
        method: request.method().clone(),
        target: path_and_query(request).to_string(),
        version: request.version(),
        status: 0,
        response_bytes: 0,
        duration: Default::default(),
        request_id: request_id.to_str().unwrap_or("-").to_string(),
        host: request_host(request),
        referer: header_text(header::REFERER),
        user_agent: header_text(header::USER_AGENT),
        route: None,
        served_by: None,
        upstream_time: None,
        queue_time: None,
        request_headers: capture_headers(headers, wanted_request_headers),
        response_headers: Vec::new(),
    }
}

/// The client as logged: the peer, or, behind trusted proxies, the nearest forwarded address that
/// is not itself a trusted proxy (the X-Forwarded-For chain read from the right). An entry that is
/// not an address (`unknown`, garbage) ends the walk at the last trusted hop, as Nginx's real_ip
/// does: what lies left of it was written by someone we do not trust. Entries with a port
/// (`203.0.113.9:5555`, `[2001:db8::1]:443`), which some load balancers write, are addresses.
fn client_ip(headers: &http::HeaderMap, peer_ip: IpAddr, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|cidr| cidr.contains(ip));
    if !is_trusted(peer_ip) {
        return peer_ip;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .collect();
    let mut nearest = peer_ip;
    for entry in entries.iter().rev() {
        let Some(ip) = forwarded_address(entry) else {
            return nearest;
        };
        if !is_trusted(ip) {
            return ip;
        }
        nearest = ip;
    }
    nearest
}

/// An X-Forwarded-For entry as an address: `IP`, `IP:PORT` or `[IPv6]:PORT`.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    entry
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|address| address.ip())
}

fn capture_headers(headers: &http::HeaderMap, names: &[String]) -> Vec<(String, String)> {
    names
        .iter()
        .map(|name| {
            let value = headers
                .get(name.as_str())
                .and_then(|value| value.to_str().ok())
                .unwrap_or("");
            (name.clone(), value.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(relative_path("/static/", "/static/a/b.css"), "a/b.css");
        assert_eq!(relative_path("/static/", "/static"), "");
        assert_eq!(relative_path("/", "//etc/passwd"), "etc/passwd");
        assert_eq!(relative_path("/files", "/files/x"), "x");
    }

    #[test]
    fn strip_prefix_keeps_query() {
        let request = |uri: &str| Request::builder().uri(uri).body(()).unwrap();
        let stripped = |prefix, uri| stripped_path(prefix, &request(uri)).unwrap().to_string();
        assert_eq!(stripped("/api/", "/api/users?x=1"), "/users?x=1");
        assert_eq!(stripped("/api", "/api"), "/");
        assert_eq!(stripped("/api/", "/api/"), "/");
    }

    #[test]
    fn request_id_kept_or_generated() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-request-id", HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&headers), "abc-123");
        headers.insert("x-request-id", HeaderValue::from_static("has space"));
        assert_eq!(request_id(&headers).len(), 32);
        headers.insert(
            "x-request-id",
            HeaderValue::from_str(&"a".repeat(129)).unwrap(),
        );
        assert_eq!(request_id(&headers).len(), 32);
    }

    #[test]
    fn client_ip_behind_trusted_proxy() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 10.0.0.2"),
        );
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let private = Cidr {
            network: "10.0.0.0".parse().unwrap(),
            prefix_len: 8,
        };
        assert_eq!(client_ip(&headers, peer, &[]), peer);
        assert_eq!(
            client_ip(&headers, peer, &[private]),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let chain = |value: &'static str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("x-forwarded-for", HeaderValue::from_static(value));
            client_ip(&headers, peer, &[private])
        };
        // A port on an entry still names the address.
        assert_eq!(chain("6.6.6.6, 203.0.113.9:5555"), ip("203.0.113.9"));
        assert_eq!(chain("[2001:db8::1]:443"), ip("2001:db8::1"));
        // What is not an address ends the walk: the client wrote everything left of it.
        assert_eq!(chain("6.6.6.6, unknown"), peer);
        assert_eq!(chain("6.6.6.6, unknown, 10.0.0.7"), ip("10.0.0.7"));
        // Only trusted hops: the farthest of them.
        assert_eq!(chain("10.0.0.5, 10.0.0.6"), ip("10.0.0.5"));
    }
}
