//! Request limits and malformed input: 431, 413, 414, 408, 400, request smuggling, and the
//! connection limit.

use gatehouse_tests::raw::{self, Conn};
use gatehouse_tests::{Gatehouse, PythonApp};

use crate::{assert_raw_error, client};

fn start(upstream: &PythonApp) -> Gatehouse {
    Gatehouse::start(&format!(
        r#"
[limits]
max_header_bytes = "4KiB"
max_header_count = 20
max_body_size = "64KiB"
header_timeout = "1s"

[[listener]]
address = "127.0.0.1:0"

[[upstream]]
name = "up"
servers = ["{}"]

[[route]]
path = "/"
upstream = "up"
"#,
        upstream.address()
    ))
}

#[tokio::test]
async fn an_oversized_header_is_431() {
    let upstream = PythonApp::upstream();
    let gh = start(&upstream);
    let big = "a".repeat(8 * 1024);
    let response = raw::exchange(
        gh.addr(0),
        format!("GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    );
    assert_raw_error(&response, 431);

    let fits = "a".repeat(1024);
    let response = raw::exchange(
        gh.addr(0),
        format!("GET /echo HTTP/1.1\r\nHost: x\r\nX-Fits: {fits}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(response.status, 200);
}

#[tokio::test]
async fn too_many_headers_is_431() {
    let upstream = PythonApp::upstream();
    let gh = start(&upstream);
    let headers: String = (0..40).map(|i| format!("X-H-{i}: {i}\r\n")).collect();
    let response = raw::exchange(
        gh.addr(0),
        format!("GET /echo HTTP/1.1\r\nHost: x\r\n{headers}\r\n").as_bytes(),
    );
    assert_raw_error(&response, 431);

    let headers: String = (0..10).map(|i| format!("X-H-{i}: {i}\r\n")).collect();
    let response = raw::exchange(
        gh.addr(0),
        format!("GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n").as_bytes(),
    );
    assert_eq!(response.status, 200);
}

#[tokio::test]
async fn a_long_request_line_is_414() {
    let upstream = PythonApp::upstream();
    let gh = start(&upstream);
    let path = "a".repeat(8 * 1024);
    let response = raw::exchange(
        gh.addr(0),
        format!("GET /{path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    assert_raw_error(&response, 414);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let upstream = PythonApp::upstream();
    let gh = start(&upstream);
    let response = client()
        .post(gh.url(0, "/echo"))
        .body(vec![b'x'; 100 * 1024])
        .send()
        .await
        .unwrap();
    crate::assert_error(response, 413).await;

    let response = client()
        .post(gh.url(0, "/echo"))
        .body(vec![b'x'; 60 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "under the limit");
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413() {
    let upstream = PythonApp::upstream();
    let gh = start(&upstream);
    let mut conn = Conn::open(gh.addr(0));
    let mut request =
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let chunk = vec![b'x'; 8 * 1024];
    for _ in 0..16 {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and close before reading it all; a failed write is fine.
    let _ = conn.send(&request);
    assert_raw_error(&conn.response(false), 413);
}

#[tokio::test]
async fn expect_100_continue_over_the_limit_is_413_at_once() {
    let upstream = PythonApp::upstream();
    let gh = start(&upstream);
    let mut conn = Conn::open(gh.addr(0));
    conn.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\nExpect: 100-continue\r\n\r\n").unwrap();
    // The body is never sent: the answer must come without it, and must not be 100 first.
    let response = conn.response(false);
    assert_raw_error(&response, 413);
    assert!(
        upstream.requests().is_empty(),
        "forwarded: {:?}",
        upstream.requests()
    );
}

#[tokio::test]
async fn slow_headers_get_408() {
    let upstream = PythonApp::upstream();
    let gh = start(&upstream);
    let mut conn = Conn::open(gh.addr(0));
    conn.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n").unwrap();
    // header_timeout is 1s; the harness read deadline is far longer.
    let response = conn.try_response(false);
    let response = response.unwrap_or_else(|e| panic!("expected a 408 before the close, got {e}"));
    assert_eq!(response.status, 408);
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_400_and_nothing_is_forwarded() {
    let upstream = PythonApp::upstream();
    let gh = start(&upstream);
    let smuggled = "POST /echo?smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n\
                    0\r\n\r\nGET /echo?smuggled-inner HTTP/1.1\r\nHost: x\r\n\r\n";
    let response = raw::exchange(gh.addr(0), smuggled.as_bytes());
    assert_raw_error(&response, 400);

    // A marker request afterwards: once the upstream has seen it, it would have seen the others.
    let marker = client()
        .get(gh.url(0, "/echo?marker"))
        .send()
        .await
        .unwrap();
    assert_eq!(marker.status(), 200);
    upstream.wait_for_request("/echo?marker");
    let seen = upstream.requests();
    assert!(
        !seen.iter().any(|r| r.contains("smuggle")),
        "forwarded: {seen:?}"
    );
}

#[tokio::test]
async fn malformed_requests_are_400() {
    let upstream = PythonApp::upstream();
    let gh = start(&upstream);
    for request in [
        "NOT A REQUEST\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
        "GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
    ] {
        let response = raw::exchange(gh.addr(0), request.as_bytes());
        assert!(
            [400, 505].contains(&response.status),
            "{request:?}: status {} body {}",
            response.status,
            response.text()
        );
    }
    assert!(
        upstream.requests().is_empty(),
        "forwarded: {:?}",
        upstream.requests()
    );
}

#[tokio::test]
async fn connections_over_the_limit_wait_for_a_free_slot() {
    let gh = Gatehouse::start(
        r#"
[limits]
max_connections = 2

[[listener]]
address = "127.0.0.1:0"

[[route]]
path = "/"
respond = { status = 200, body = "ok" }
"#,
    );
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut first = Conn::open(gh.addr(0));
    let mut second = Conn::open(gh.addr(0));
    for conn in [&mut first, &mut second] {
        conn.send(request).unwrap();
        assert_eq!(conn.response(false).status, 200);
    }

    // Two kept-alive connections hold both slots: a third is not served while they stay open.
    let mut third = Conn::open(gh.addr(0));
    third
        .send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    third
        .stream()
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let early = third.try_response(false);
    match early {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("a third connection must wait while two are open, got {other:?}"),
    }

    // Closing one frees a slot: the waiting connection is then served.
    drop(first);
    third
        .stream()
        .set_read_timeout(Some(gatehouse_tests::wait::DEADLINE))
        .unwrap();
    assert_eq!(third.response(false).status, 200);
    second.send(request).unwrap();
    assert_eq!(
        second.response(false).status,
        200,
        "kept connections keep working"
    );
}
