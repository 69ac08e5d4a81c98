//! The reverse proxy in front of the Python upstream: forwarded headers, hop-by-hop stripping,
//! h2c to HTTP/1.1, streamed bodies, errors (502, 504), Unix sockets, balancing, WebSocket.

use futures_util::{SinkExt, StreamExt};
use gatehouse_tests::raw::{self, Conn};
use gatehouse_tests::{Gatehouse, PythonApp, Sandbox};
use reqwest::header;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::Message;

use crate::{assert_error, client, closed_port, echoed};

/// Gatehouse with one upstream named `up` over `servers`, at `/`, on an h1 + h2c listener.
fn proxy(servers: &[&str], upstream_extra: &str) -> Gatehouse {
    proxy_in(Sandbox::new(), servers, upstream_extra)
}

fn proxy_in(sandbox: Sandbox, servers: &[&str], upstream_extra: &str) -> Gatehouse {
    let servers: Vec<String> = servers.iter().map(|s| format!("{s:?}")).collect();
    sandbox.start(&format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
http2 = true

[[upstream]]
name = "up"
servers = [{}]
{upstream_extra}

[[route]]
path = "/"
upstream = "up"
"#,
        servers.join(", ")
    ))
}

fn json(response: &raw::Response) -> Value {
    assert_eq!(response.status, 200, "{}", response.text());
    serde_json::from_slice(&response.body).unwrap_or_else(|e| panic!("{e}: {}", response.text()))
}

fn one(echo: &Value, name: &str) -> String {
    let values = echoed(echo, name);
    assert_eq!(values.len(), 1, "exactly one {name}: {values:?} in {echo}");
    values[0].clone()
}

#[tokio::test]
async fn forwarding_headers_are_set_and_hop_by_hop_headers_stripped() {
    let upstream = PythonApp::upstream();
    let gh = proxy(&[upstream.address()], "");
    let response = raw::exchange(
        gh.addr(0),
        b"GET /echo?x=1&y=%20z HTTP/1.1\r\n\
          Host: shop.example:8080\r\n\
          X-Forwarded-For: 203.0.113.9\r\n\
          X-Forwarded-Proto: https\r\n\
          X-Forwarded-Host: evil.example\r\n\
          Connection: close, X-Hop\r\n\
          X-Hop: secret\r\n\
          Keep-Alive: timeout=5\r\n\
          Proxy-Connection: keep-alive\r\n\
          X-Custom: kept\r\n\
          \r\n",
    );
    let echo = json(&response);
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/echo");
    assert_eq!(echo["query"], "x=1&y=%20z");
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(one(&echo, "host"), "shop.example:8080", "Host is preserved");
    assert_eq!(
        one(&echo, "x-forwarded-for"),
        "127.0.0.1",
        "an untrusted peer's XFF is replaced"
    );
    assert_eq!(one(&echo, "x-forwarded-proto"), "http");
    let forwarded_host = one(&echo, "x-forwarded-host");
    assert!(
        ["shop.example:8080", "shop.example"].contains(&forwarded_host.as_str()),
        "{forwarded_host}"
    );
    assert_eq!(one(&echo, "x-custom"), "kept");
    for hop in ["x-hop", "keep-alive", "proxy-connection"] {
        assert!(echoed(&echo, hop).is_empty(), "{hop} was forwarded: {echo}");
    }
    for connection in echoed(&echo, "connection") {
        assert!(
            !connection.to_ascii_lowercase().contains("x-hop"),
            "Connection: {connection}"
        );
    }
    let request_id = one(&echo, "x-request-id");
    assert!(!request_id.is_empty());
    assert_eq!(
        response.header("x-request-id"),
        Some(request_id.as_str()),
        "the client gets the same id"
    );
}

#[tokio::test]
async fn an_incoming_request_id_is_kept_and_a_bad_one_replaced() {
    let upstream = PythonApp::upstream();
    let gh = proxy(&[upstream.address()], "");
    let response = client()
        .get(gh.url(0, "/echo"))
        .header("x-request-id", "client-id-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "client-id-42");
    let echo: Value = response.json_value().await;
    assert_eq!(one(&echo, "x-request-id"), "client-id-42");

    let too_long = "a".repeat(129);
    let response = client()
        .get(gh.url(0, "/echo"))
        .header("x-request-id", &too_long)
        .send()
        .await
        .unwrap();
    let returned = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let echo: Value = response.json_value().await;
    let seen = one(&echo, "x-request-id");
    assert_ne!(seen, too_long);
    assert!(!seen.is_empty());
    assert_eq!(returned, seen);
}

#[tokio::test]
async fn two_requests_get_different_generated_ids() {
    let upstream = PythonApp::upstream();
    let gh = proxy(&[upstream.address()], "");
    let a = client().get(gh.url(0, "/health")).send().await.unwrap();
    let b = client().get(gh.url(0, "/health")).send().await.unwrap();
    assert_ne!(a.headers()["x-request-id"], b.headers()["x-request-id"]);
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_stripped() {
    let upstream = PythonApp::upstream();
    let gh = proxy(&[upstream.address()], "");
    let response = raw::get(gh.addr(0), "/hop");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-up-kept"), Some("yes"));
    assert_eq!(
        response.header("x-up-hop"),
        None,
        "named in the upstream's Connection"
    );
    assert_eq!(response.header("keep-alive"), None);
    assert_eq!(response.text(), "hop\n");
}

#[tokio::test]
async fn h2c_prior_knowledge_reaches_an_http1_upstream_with_cookies_joined() {
    let upstream = PythonApp::upstream();
    let gh = proxy(&[upstream.address()], "");
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = h2
        .post(gh.url(0, "/echo?h2=1"))
        .header(header::COOKIE, "a=1")
        .header("x-custom", "h2")
        .header(header::COOKIE, "b=2") // reqwest appends: two cookie fields
        .body("hello over h2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    let echo: Value = response.json_value().await;
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["query"], "h2=1");
    assert_eq!(echo["body_len"], 13);
    assert_eq!(one(&echo, "cookie"), "a=1; b=2");
    assert_eq!(
        one(&echo, "host"),
        gh.addr(0).to_string(),
        ":authority becomes Host"
    );
    assert_eq!(one(&echo, "x-custom"), "h2");
    assert_eq!(one(&echo, "x-forwarded-proto"), "http");
}

/// 5 MiB of bytes that are not all alike, so a reordered or truncated body is noticed.
fn payload() -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    (0..5 * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn five_mib_request_bodies_stream_through() {
    let upstream = PythonApp::upstream();
    let gh = proxy(&[upstream.address()], "");
    let body = payload();
    let expected = sha256_hex(&body);

    let sized = client()
        .post(gh.url(0, "/echo"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let echo: Value = sized.json_value().await;
    assert_eq!(echo["body_len"], body.len());
    assert_eq!(echo["body_sha256"], expected.as_str());

    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let chunked = client()
        .post(gh.url(0, "/echo"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            pieces,
        )))
        .send()
        .await
        .unwrap();
    let echo: Value = chunked.json_value().await;
    assert_eq!(echo["body_len"], body.len());
    assert_eq!(echo["body_sha256"], expected.as_str());
}

#[tokio::test]
async fn five_mib_response_bodies_stream_through() {
    let upstream = PythonApp::upstream();
    let gh = proxy(&[upstream.address()], "");
    let size = 5 * 1024 * 1024;
    for query in ["", "&chunked=1"] {
        let response = client()
            .get(gh.url(0, &format!("/big?bytes={size}{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut stream = response.bytes_stream();
        let mut received = 0;
        while let Some(piece) = stream.next().await {
            let piece = piece.unwrap();
            assert!(piece.iter().all(|&b| b == b'x'));
            received += piece.len();
        }
        assert_eq!(received, size, "{query}");
    }
}

#[tokio::test]
async fn upstream_down_is_502() {
    let gh = proxy(&[&closed_port().to_string()], "");
    let response = client().get(gh.url(0, "/echo")).send().await.unwrap();
    assert_error(response, 502).await;
}

#[tokio::test]
async fn a_refused_connect_moves_on_to_the_next_server() {
    let upstream = PythonApp::upstream();
    let down = closed_port().to_string();
    let gh = proxy(&[&down, upstream.address()], "");
    for _ in 0..6 {
        let response = client().get(gh.url(0, "/health")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test]
async fn a_slow_upstream_is_504() {
    let upstream = PythonApp::upstream();
    let gh = proxy(&[upstream.address()], "timeout = \"1s\"");
    let response = client()
        .get(gh.url(0, "/sleep?ms=20000"))
        .send()
        .await
        .unwrap();
    assert_error(response, 504).await;
    let response = client().get(gh.url(0, "/sleep?ms=1")).send().await.unwrap();
    assert_eq!(response.status(), 200, "a quick answer still passes");
}

#[tokio::test]
async fn a_malformed_upstream_response_is_502_and_its_connection_not_reused() {
    let upstream = PythonApp::upstream();
    let gh = proxy(&[upstream.address()], "");
    let response = client().get(gh.url(0, "/malformed")).send().await.unwrap();
    assert_error(response, 502).await;
    for _ in 0..3 {
        let response = client().get(gh.url(0, "/echo")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let upstream = PythonApp::upstream();
    let gh = proxy(&[upstream.address()], "");
    let mut peers = Vec::new();
    for _ in 0..5 {
        let echo: Value = client()
            .get(gh.url(0, "/echo"))
            .send()
            .await
            .unwrap()
            .json_value()
            .await;
        peers.push(echo["peer"].as_str().unwrap().to_owned());
    }
    // A connection goes back to the pool asynchronously, so not every request must reuse one;
    // but without pooling every request would come from a new port.
    let mut distinct = peers.clone();
    distinct.sort();
    distinct.dedup();
    assert!(
        distinct.len() < peers.len(),
        "no connection was reused: {peers:?}"
    );
}

#[tokio::test]
async fn upstream_status_codes_pass_through() {
    let upstream = PythonApp::upstream();
    let gh = proxy(&[upstream.address()], "");
    for status in [201, 404, 418, 500, 503] {
        let response = client()
            .get(gh.url(0, &format!("/status/{status}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.text().await.unwrap(), "status\n");
    }
}

#[tokio::test]
async fn a_unix_socket_upstream_is_served() {
    let sandbox = Sandbox::new();
    let upstream = PythonApp::upstream_unix(&sandbox.join("up.sock"));
    let gh = proxy_in(sandbox, &[upstream.address()], "");
    let echo: Value = client()
        .get(gh.url(0, "/echo?via=unix"))
        .send()
        .await
        .unwrap()
        .json_value()
        .await;
    assert_eq!(echo["query"], "via=unix");
    assert_eq!(one(&echo, "x-forwarded-for"), "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_spread_over_servers() {
    let a = PythonApp::upstream();
    let b = PythonApp::upstream();
    let gh = proxy(&[a.address(), b.address()], "");
    let requests = (0..4).map(|_| client().get(gh.url(0, "/sleep?ms=300")).send());
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.unwrap().status(), 200);
    }
    assert!(
        !a.requests().is_empty() && !b.requests().is_empty(),
        "a: {:?} b: {:?}",
        a.requests(),
        b.requests()
    );
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let upstream = PythonApp::upstream();
    let gh = proxy(&[upstream.address()], "");
    let (mut ws, response) = tokio_tungstenite::connect_async(format!("ws://{}/ws", gh.addr(0)))
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    for text in ["hello gatehouse", "second message"] {
        ws.send(Message::text(text)).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
    }
    let big = vec![7u8; 200_000];
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(big));
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn a_websocket_quiet_past_the_idle_timeout_is_closed() {
    let upstream = PythonApp::upstream();
    // `[limits]` after the upstream's keys: a table of its own.
    let gh = proxy(
        &[upstream.address()],
        "\n[limits]\nwebsocket_idle_timeout = \"1s\"\n",
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", gh.addr(0)))
        .await
        .unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    // Then nothing either way: gatehouse closes both connections.
    let end = tokio::time::timeout(gatehouse_tests::wait::DEADLINE, ws.next())
        .await
        .expect("the quiet tunnel is closed within the deadline");
    assert!(
        !matches!(end, Some(Ok(Message::Text(_) | Message::Binary(_)))),
        "{end:?}"
    );
}

#[tokio::test]
async fn a_refused_upgrade_is_not_tunnelled() {
    let upstream = PythonApp::upstream();
    let gh = proxy(&[upstream.address()], "");
    // The upstream answers 400 (no Sec-WebSocket-Key): the connection stays HTTP.
    let mut conn = Conn::open(gh.addr(0));
    conn.send(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .unwrap();
    assert_eq!(conn.response(false).status, 400);
    conn.send(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(conn.response(false).status, 200);
}

/// `response.json()` without reqwest's `json` feature.
trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        let status = self.status();
        let bytes = self.bytes().await.unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)))
    }
}
