//! How a request's and a response's head change as they cross the proxy.
//!
//! Pure functions over `http` types, so every rule is unit-tested without sockets. Requests always
//! leave as HTTP/1.1 in origin form; hop-by-hop headers stop here in both directions (RFC 9110
//! §7.6.1); the forwarding headers are ours, never the client's.
//!
//! X-Real-IP is the one client address an app can use as it is (the built-in WSGI worker's
//! REMOTE_ADDR): the peer, or behind trusted proxies the nearest X-Forwarded-For address that is
//! not one of them (the access log's client). It is always set, so a client cannot choose it.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{request, Method, Request, Uri, Version};

use super::Context;

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Headers that describe one connection, never the message.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Naming these in `Connection` must not remove them: they carry framing and routing, and a
/// client could otherwise make the upstream see a different message than we parsed.
const NEVER_HOP_BY_HOP: [HeaderName; 2] = [header::HOST, header::CONTENT_LENGTH];

/// Headers we set; an incoming spelling with `_` would reach a WSGI app as the same variable
/// (Gunicorn maps `-` and `_` alike), so those spellings are dropped.
const OURS: [&str; 6] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
    "x-real-ip",
    "forwarded",
];

/// An HTTP/1.1 `GET` asking to switch to WebSocket: the only upgrade we pass on. Other protocols
/// (h2c above all) would let a client tunnel past the proxy's parsing, so their headers are
/// stripped like any hop-by-hop header.
pub(crate) fn wants_websocket<B>(request: &Request<B>) -> bool {
    request.version() == Version::HTTP_11
        && request.method() == Method::GET
        && has_token(request.headers(), &header::CONNECTION, "upgrade")
        && has_token(request.headers(), &header::UPGRADE, "websocket")
}

/// Rewrite a client's request head for the upstream; `websocket` keeps the upgrade headers.
pub(crate) fn rewrite_request(parts: &mut request::Parts, context: &Context, websocket: bool) {
    let host = incoming_host(parts);
    let headers = &mut parts.headers;
    strip_hop_by_hop(headers);
    strip_meant_for_proxies(headers);
    join_cookies(headers);
    set_forwarding(headers, context, host.as_ref());
    if let Some(host) = host {
        headers.insert(header::HOST, host);
    }
    if websocket {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }
    let path_and_query = context
        .path_and_query
        .as_ref()
        .or(parts.uri.path_and_query());
    parts.uri = match path_and_query {
        Some(path_and_query) => Uri::from(path_and_query.clone()),
        None => Uri::from_static("/"),
    };
    parts.version = Version::HTTP_11;
}

/// Rewrite an upstream's response head for the client; `upgraded` keeps the 101's headers.
pub(crate) fn rewrite_response(headers: &mut HeaderMap, upgraded: bool) {
    let protocol = headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(headers);
    if upgraded {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        let protocol = protocol.unwrap_or(HeaderValue::from_static("websocket"));
        headers.insert(header::UPGRADE, protocol);
    }
}

/// Whether the upstream connection may carry another request after this response.
pub(crate) fn allows_reuse(version: Version, headers: &HeaderMap) -> bool {
    if has_token(headers, &header::CONNECTION, "close") {
        false
    } else if version == Version::HTTP_10 {
        has_token(headers, &header::CONNECTION, "keep-alive")
    } else {
        true
    }
}

/// The Host the client meant: the URI's authority wins (h2 `:authority`, HTTP/1.1 absolute
/// form, RFC 9112 §3.2.2), else the Host header. Userinfo is never part of it.
fn incoming_host(parts: &request::Parts) -> Option<HeaderValue> {
    match parts.uri.authority() {
        Some(authority) => {
            let host = authority.as_str().rsplit('@').next().unwrap_or_default();
            HeaderValue::from_str(host).ok()
        }
        None => parts.headers.get(header::HOST).cloned(),
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = tokens(headers, &header::CONNECTION)
        .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
        .filter(|name| !NEVER_HOP_BY_HOP.contains(name))
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// `Proxy-Authorization` and friends are for a proxy, not the app; a bare `Proxy` header would
/// become `HTTP_PROXY` in CGI-style environments (httpoxy). Also drops `_` spellings of ours.
fn strip_meant_for_proxies(headers: &mut HeaderMap) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            let lookalike = name.contains('_') && OURS.contains(&name.replace('_', "-").as_str());
            name == "proxy" || name.starts_with("proxy-") || lookalike
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// h2 clients may send one `cookie` field per cookie; HTTP/1.1 allows one line (RFC 9113 §8.2.3).
fn join_cookies(headers: &mut HeaderMap) {
    if headers.get_all(header::COOKIE).iter().count() < 2 {
        return;
    }
    let mut joined = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(value.as_bytes());
    }
    // Every part was already a valid value, so the join is too; keep the fields if not.
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, value);
    }
}

fn set_forwarding(headers: &mut HeaderMap, context: &Context, host: Option<&HeaderValue>) {
    let client = context.client_ip.to_string();
    let chain = if context.peer_trusted {
        let prior: Vec<&str> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .collect();
        prior
            .into_iter()
            .chain([client.as_str()])
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        // Only a trusted proxy may speak for the client's address.
        headers.remove(&FORWARDED);
        client.clone()
    };
    let chain = HeaderValue::from_str(&chain).or_else(|_| HeaderValue::from_str(&client));
    match chain {
        Ok(chain) => headers.insert(&X_FORWARDED_FOR, chain),
        Err(_) => headers.remove(&X_FORWARDED_FOR),
    };
    let proto = if context.scheme == "https" {
        "https"
    } else {
        "http"
    };
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    // An IP address always makes a valid header value.
    if let Ok(real_ip) = HeaderValue::from_str(&context.real_ip.to_string()) {
        headers.insert(&X_REAL_IP, real_ip);
    }
    match host {
        Some(host) => headers.insert(&X_FORWARDED_HOST, host.clone()),
        None => headers.remove(&X_FORWARDED_HOST),
    };
    headers.insert(&X_REQUEST_ID, context.request_id.clone());
}

/// Whether a comma-separated header contains `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

fn tokens<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use http::uri::PathAndQuery;

    use super::*;

    fn context(trusted: bool) -> Context {
        Context {
            client_ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
            // As the service computes it from trusted_proxies (see `service::client_ip`).
            real_ip: if trusted {
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))
            } else {
                IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))
            },
            peer_trusted: trusted,
            scheme: "https",
            request_id: HeaderValue::from_static("req-1"),
            path_and_query: None,
            websocket_idle_timeout: None,
        }
    }

    fn rewrite(request: Request<()>, context: &Context) -> request::Parts {
        let websocket = wants_websocket(&request);
        let (mut parts, ()) = request.into_parts();
        rewrite_request(&mut parts, context, websocket);
        parts
    }

    fn values(parts: &request::Parts, name: &str) -> Vec<String> {
        parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_removed() {
        let request = Request::get("/a")
            .header("host", "example.com")
            .header("connection", "keep-alive, X-Secret , content-length")
            .header("keep-alive", "timeout=5")
            .header("proxy-connection", "keep-alive")
            .header("proxy-authorization", "Basic eA==")
            .header("proxy", "http://evil/")
            .header("te", "trailers")
            .header("trailer", "x-checksum")
            .header("upgrade", "h2c")
            .header("x-secret", "1")
            .header("content-length", "0")
            .header("x-kept", "yes")
            .body(())
            .unwrap();
        let parts = rewrite(request, &context(false));
        for gone in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authorization",
            "proxy",
            "te",
            "trailer",
            "upgrade",
            "x-secret",
        ] {
            assert!(!parts.headers.contains_key(gone), "{gone} was forwarded");
        }
        assert_eq!(values(&parts, "x-kept"), ["yes"]);
        assert_eq!(
            values(&parts, "content-length"),
            ["0"],
            "framing header survives Connection"
        );
    }

    #[test]
    fn requests_leave_as_http11_in_origin_form() {
        let request = Request::get("https://example.com:8443/p?q=1")
            .version(Version::HTTP_2)
            .body(())
            .unwrap();
        let parts = rewrite(request, &context(false));
        assert_eq!(parts.version, Version::HTTP_11);
        assert_eq!(parts.uri, "/p?q=1");
        assert_eq!(
            values(&parts, "host"),
            ["example.com:8443"],
            "h2 authority becomes Host"
        );
        assert_eq!(values(&parts, "x-forwarded-host"), ["example.com:8443"]);
    }

    #[test]
    fn authority_wins_over_host_and_drops_userinfo() {
        let request = Request::get("http://user:pw@real.example/x")
            .header("host", "other.example")
            .body(())
            .unwrap();
        let parts = rewrite(request, &context(false));
        assert_eq!(values(&parts, "host"), ["real.example"]);
    }

    #[test]
    fn strip_prefix_path_replaces_the_requests_own() {
        let mut context = context(false);
        context.path_and_query = Some(PathAndQuery::from_static("/rest?x=1"));
        let parts = rewrite(Request::get("/api/rest?x=1").body(()).unwrap(), &context);
        assert_eq!(parts.uri, "/rest?x=1");
    }

    #[test]
    fn forwarded_for_is_replaced_for_untrusted_and_appended_for_trusted_peers() {
        let request = || {
            Request::get("/")
                .header("host", "h")
                .header("x-forwarded-for", "10.0.0.1")
                .header("x-forwarded-for", "10.0.0.2")
                .header("forwarded", "for=10.0.0.1")
                .header("x-forwarded-proto", "http")
                .header("x-request-id", "client-chosen")
                .body(())
                .unwrap()
        };
        let untrusted = rewrite(request(), &context(false));
        assert_eq!(values(&untrusted, "x-forwarded-for"), ["203.0.113.7"]);
        assert_eq!(values(&untrusted, "x-real-ip"), ["203.0.113.7"]);
        assert!(!untrusted.headers.contains_key("forwarded"));
        assert_eq!(values(&untrusted, "x-forwarded-proto"), ["https"]);
        assert_eq!(values(&untrusted, "x-request-id"), ["req-1"]);

        let trusted = rewrite(request(), &context(true));
        assert_eq!(
            values(&trusted, "x-forwarded-for"),
            ["10.0.0.1, 10.0.0.2, 203.0.113.7"]
        );
        assert_eq!(values(&trusted, "forwarded"), ["for=10.0.0.1"]);
        assert_eq!(
            values(&trusted, "x-real-ip"),
            ["10.0.0.2"],
            "the address the trusted proxy saw"
        );
    }

    #[test]
    fn real_ip_is_always_ours() {
        let request = || {
            Request::get("/")
                .header("x-real-ip", "6.6.6.6")
                .header("x_real_ip", "6.6.6.6")
                .header("x-forwarded-for", "not an address")
                .body(())
                .unwrap()
        };
        let untrusted = rewrite(request(), &context(false));
        assert_eq!(values(&untrusted, "x-real-ip"), ["203.0.113.7"]);
        assert!(!untrusted.headers.contains_key("x_real_ip"));
        let trusted = rewrite(request(), &context(true));
        assert_eq!(values(&trusted, "x-real-ip"), ["10.0.0.2"]);
    }

    #[test]
    fn underscore_spellings_of_our_headers_are_dropped() {
        let request = Request::get("/")
            .header("x_forwarded_for", "1.2.3.4")
            .header("x_request_id", "spoof")
            .header("x_custom_thing", "kept")
            .body(())
            .unwrap();
        let parts = rewrite(request, &context(false));
        assert!(!parts.headers.contains_key("x_forwarded_for"));
        assert!(!parts.headers.contains_key("x_request_id"));
        assert_eq!(values(&parts, "x_custom_thing"), ["kept"]);
    }

    #[test]
    fn cookies_are_joined_into_one_field() {
        let request = Request::get("/")
            .version(Version::HTTP_2)
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .header("cookie", "c=3")
            .body(())
            .unwrap();
        let parts = rewrite(request, &context(false));
        assert_eq!(values(&parts, "cookie"), ["a=1; b=2; c=3"]);
    }

    #[test]
    fn only_http11_get_websocket_upgrades_are_kept() {
        let websocket = Request::get("/ws")
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "WebSocket")
            .body(())
            .unwrap();
        assert!(wants_websocket(&websocket));
        let parts = rewrite(websocket, &context(false));
        assert_eq!(values(&parts, "connection"), ["upgrade"]);
        assert_eq!(values(&parts, "upgrade"), ["websocket"]);

        let h2c = Request::get("/")
            .header("connection", "upgrade")
            .header("upgrade", "h2c")
            .body(())
            .unwrap();
        assert!(!wants_websocket(&h2c));
        let post = Request::post("/ws")
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(())
            .unwrap();
        assert!(!wants_websocket(&post));
        let http10 = Request::get("/ws")
            .version(Version::HTTP_10)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(())
            .unwrap();
        assert!(!wants_websocket(&http10));
    }

    #[test]
    fn responses_lose_hop_by_hop_headers_except_a_101s_upgrade() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", HeaderValue::from_static("close, x-internal"));
        headers.insert("x-internal", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=2"));
        headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        headers.insert("set-cookie", HeaderValue::from_static("s=1"));
        rewrite_response(&mut headers, false);
        let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["set-cookie"]);

        let mut switching = HeaderMap::new();
        switching.insert("connection", HeaderValue::from_static("Upgrade"));
        switching.insert("upgrade", HeaderValue::from_static("websocket"));
        switching.insert("sec-websocket-accept", HeaderValue::from_static("abc"));
        rewrite_response(&mut switching, true);
        assert_eq!(switching["connection"], "upgrade");
        assert_eq!(switching["upgrade"], "websocket");
        assert_eq!(switching["sec-websocket-accept"], "abc");
    }

    #[test]
    fn reuse_follows_connection_close_and_http10_keep_alive() {
        let mut headers = HeaderMap::new();
        assert!(allows_reuse(Version::HTTP_11, &headers));
        assert!(!allows_reuse(Version::HTTP_10, &headers));
        headers.insert("connection", HeaderValue::from_static("Keep-Alive"));
        assert!(allows_reuse(Version::HTTP_10, &headers));
        headers.insert("connection", HeaderValue::from_static("close"));
        assert!(!allows_reuse(Version::HTTP_11, &headers));
    }
}
