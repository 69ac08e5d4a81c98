//! Process lifecycle: graceful SIGTERM with a request in flight, SIGINT, idle connections on
//! shutdown, and a Unix-socket listener.

use std::process::Command;

use gatehouse_tests::raw::Conn;
use gatehouse_tests::{Gatehouse, Listen, PythonApp, Sandbox};

use crate::client;

fn proxy(upstream: &PythonApp) -> Gatehouse {
    Gatehouse::start(&format!(
        r#"
[server]
graceful_timeout = "60s"

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_0() {
    let upstream = PythonApp::upstream();
    let mut gh = proxy(&upstream);
    let in_flight = tokio::spawn(client().get(gh.url(0, "/sleep?ms=1500")).send());
    upstream.wait_for_request("/sleep");

    gh.terminate();
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "slept\n");

    let status = gh.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", gh.logs());
}

#[tokio::test]
async fn sigterm_does_not_wait_for_idle_keepalive_connections() {
    let upstream = PythonApp::upstream();
    let mut gh = proxy(&upstream);
    // An idle kept-alive client must not hold the drain for graceful_timeout (60s, past the deadline).
    let mut idle = Conn::open(gh.addr(0));
    idle.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(idle.response(false).status, 200);

    gh.terminate();
    assert_eq!(gh.wait_exit().code(), Some(0), "{}", gh.logs());
}

#[tokio::test]
async fn sigint_stops_quickly() {
    let upstream = PythonApp::upstream();
    let mut gh = proxy(&upstream);
    let response = client().get(gh.url(0, "/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    gh.interrupt();
    let status = gh.wait_exit();
    assert!(
        status.code().is_some(),
        "exits rather than dying from the signal: {status:?}"
    );
}

#[test]
fn a_unix_socket_listener_serves_curl() {
    let sandbox = Sandbox::new();
    let socket = sandbox.join("gatehouse.sock");
    let gh = sandbox.start(
        r#"
[[listener]]
address = "unix:{dir}/gatehouse.sock"

[[route]]
path = "/ping"
respond = { status = 200, body = "pong" }
"#,
    );
    assert_eq!(gh.listen(0), &Listen::Unix(socket.clone()));
    let output = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "20", "--unix-socket"])
        .arg(&socket)
        .arg("http://localhost/ping")
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("x-request-id:"),
        "{text}"
    );
    assert!(text.ends_with("pong"), "{text}");
}
