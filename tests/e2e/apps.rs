//! The Python upstream app on its own, without gatehouse: when a proxy test fails, these say
//! whether the app or the proxy is at fault.

use std::io::{Read, Write};

use futures_util::{SinkExt, StreamExt};
use gatehouse_tests::raw::{self, Conn};
use gatehouse_tests::{PythonApp, Sandbox};
use tokio_tungstenite::tungstenite::Message;

use crate::echoed;

#[test]
fn upstream_echoes_requests_and_reports_them() {
    let app = PythonApp::upstream();
    let addr = app.address().parse().unwrap();
    let response = raw::exchange(
        addr,
        b"POST /echo?q=1 HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nCookie: b=2\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    assert_eq!(response.status, 200);
    let echo: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(echo["query"], "q=1");
    assert_eq!(echo["body_len"], 5);
    assert_eq!(echoed(&echo, "cookie"), vec!["a=1", "b=2"]);
    assert_eq!(app.wait_for_request("/echo"), "REQ POST /echo?q=1");

    let mut conn = Conn::open(addr);
    conn.send(b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        .unwrap();
    let echo: serde_json::Value = serde_json::from_slice(&conn.response(false).body).unwrap();
    assert_eq!(echo["body_len"], 3);
    conn.send(b"GET /big?bytes=100000&chunked=1 HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    assert_eq!(conn.response(false).body.len(), 100_000);
    conn.send(b"GET /status/418 HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    assert_eq!(conn.response(false).status, 418);
}

#[test]
fn upstream_listens_on_a_unix_socket() {
    let sandbox = Sandbox::new();
    let path = sandbox.join("up.sock");
    let app = PythonApp::upstream_unix(&path);
    assert_eq!(app.address(), format!("unix:{}", path.display()));
    let mut stream = std::os::unix::net::UnixStream::connect(&path).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test]
async fn upstream_websocket_echoes() {
    let app = PythonApp::upstream();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", app.address()))
        .await
        .unwrap();
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hi"));
    let big = vec![1u8; 200_000];
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(big));
    ws.close(None).await.unwrap();
}
