//! The built-in WSGI worker as the supervisor runs it: the app is imported before the worker is
//! ready, an app that cannot be imported fails with its traceback, TERM finishes the request in
//! flight (and says `Connection: close` on it), ABRT dumps every thread's stack; and the bytes a
//! kept-alive connection carries stay in step (HEAD, a HEAD's 500).
//!
//! What requests see (PEP 3333 through gatehouse) is in `tests/e2e/wsgi.rs`.

use std::path::PathBuf;

use gatehouse_config::model::{App, Endpoint, Launch};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::harness::{self, eventually, kill, restarts, wait_gone, wait_ready, Logs};

fn apps_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/apps")
}

/// An app served by the built-in worker from `tests/apps`.
fn wsgi_app(name: &str, target: &str) -> App {
    let mut app = harness::command_app(name, Vec::new());
    app.launch = Launch::Wsgi {
        target: target.to_owned(),
        python: harness::python().into(),
    };
    app.directory = apps_dir();
    app
}

#[tokio::test]
async fn the_app_is_imported_before_the_worker_is_ready() {
    let (logs, _capturing) = Logs::capture();
    let run = harness::runtime_dir();
    let gate = run.path().join("gate");
    let load = harness::FakeLoad::new();
    let mut app = wsgi_app("gated", "wsgi_gate:app");
    app.env
        .insert("WSGI_GATE".into(), gate.display().to_string());
    let supervisor = harness::start(app, run.path(), &load);

    logs.wait_for("the import waiting", |line| {
        line.contains("wsgi_gate: importing")
    })
    .await;
    assert!(
        supervisor.ready_workers().borrow().is_empty(),
        "not ready while the app is being imported"
    );
    let program = run.path().join("gated/wsgi-worker.py");
    assert!(
        program.is_file(),
        "the worker program is written next to the sockets"
    );

    std::fs::write(&gate, b"").unwrap();
    let ready = wait_ready(&supervisor, 1).await;
    assert_eq!(harness::text(&ready[0].endpoint, "/").await, "ready\n");
    logs.wait_for("the worker's start line", |line| {
        line.contains("gatehouse wsgi worker: serving wsgi_gate:app (1 thread)")
    })
    .await;
    supervisor.shutdown(true).await;
    wait_gone(ready[0].pid).await;
}

#[tokio::test]
async fn an_app_that_cannot_be_imported_exits_4_with_its_traceback_in_the_log() {
    let (logs, _capturing) = Logs::capture();
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let supervisor = harness::start(wsgi_app("broken", "wsgi_broken:app"), run.path(), &load);

    logs.wait_for("the app's exception", |line| {
        line.contains("ImportError: wsgi_broken cannot be imported, as intended")
    })
    .await;
    assert!(logs
        .find(|line| line.contains("Traceback (most recent call last)"))
        .is_some());
    assert!(logs
        .find(|line| line.contains("cannot load the WSGI app wsgi_broken:app"))
        .is_some());
    let exited = logs
        .wait_for("the worker's exit", |line| {
            line.contains("worker exited unexpectedly")
        })
        .await;
    assert!(exited.contains("exit status: 4"), "{exited}");
    eventually("a second attempt", || async {
        (restarts(&supervisor, "crash") >= 2).then_some(())
    })
    .await;
    assert!(supervisor.ready_workers().borrow().is_empty());
    supervisor.shutdown(false).await;
}

#[tokio::test]
async fn term_finishes_the_request_in_flight_then_exits_0() {
    let (logs, _capturing) = Logs::capture();
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let supervisor = harness::start(wsgi_app("term", "wsgi_app:app"), run.path(), &load);
    let ready = wait_ready(&supervisor, 1).await;
    let endpoint = ready[0].endpoint.clone();
    let in_flight = tokio::spawn(async move { harness::get(&endpoint, "/sleep?ms=1500").await });
    logs.wait_for("the request in the app", |line| {
        line.contains("sleeping 1500 ms")
    })
    .await;

    kill(ready[0].pid, "TERM");
    let answer = in_flight.await.unwrap().unwrap();
    assert_eq!(answer, (200, "slept\n".to_owned()));
    wait_gone(ready[0].pid).await;
    eventually("the exit counted as a clean exit", || async {
        (restarts(&supervisor, "exit") == 1).then_some(())
    })
    .await;
    assert_eq!(restarts(&supervisor, "crash"), 0);
    supervisor.shutdown(false).await;
}

#[tokio::test]
async fn abrt_dumps_the_stack_of_every_thread() {
    let (logs, _capturing) = Logs::capture();
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let mut app = wsgi_app("abrt", "wsgi_app:app");
    app.concurrency = 3;
    let supervisor = harness::start(app, run.path(), &load);
    let ready = wait_ready(&supervisor, 1).await;
    let hang = {
        let endpoint = ready[0].endpoint.clone();
        tokio::spawn(async move { harness::get(&endpoint, "/hang").await })
    };
    let sleep = {
        let endpoint = ready[0].endpoint.clone();
        tokio::spawn(async move { harness::get(&endpoint, "/sleep?ms=20000").await })
    };
    logs.wait_for("the hanging request", |line| {
        line.contains("hang_forever: entered")
    })
    .await;
    logs.wait_for("the sleeping request", |line| {
        line.contains("sleeping 20000 ms")
    })
    .await;

    kill(ready[0].pid, "ABRT");
    logs.wait_for("the hanging thread's frame", |line| {
        line.contains("File \"") && line.contains("in hang_forever")
    })
    .await;
    logs.wait_for("the sleeping thread's frame", |line| {
        line.contains("File \"") && line.contains("in raw")
    })
    .await;
    let threads = eventually("every thread's header", || async {
        let headers =
            logs.times(|line| line.contains("Thread 0x") || line.contains("Current thread 0x"));
        // The main thread (waiting for connections) and the three of the pool.
        (headers.len() >= 4).then_some(headers.len())
    })
    .await;
    assert!(threads >= 4);
    assert!(
        hang.await.unwrap().is_err(),
        "the aborted worker answers nothing"
    );
    assert!(sleep.await.unwrap().is_err());
    wait_gone(ready[0].pid).await;
    supervisor.shutdown(false).await;
}

/// A kept-alive connection to a worker, read response by response.
struct Raw {
    stream: UnixStream,
    buf: Vec<u8>,
}

/// One response as it came: the head's lines (status line first) and the body.
#[derive(Debug)]
struct RawResponse {
    head: Vec<String>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.head[1..].iter().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

impl Raw {
    async fn open(endpoint: &Endpoint) -> Raw {
        let Endpoint::Unix(socket) = endpoint else {
            panic!("the built-in worker listens on a Unix socket: {endpoint}");
        };
        Raw {
            stream: UnixStream::connect(socket).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, method: &str, path: &str) {
        let request = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        self.stream.write_all(request.as_bytes()).await.unwrap();
    }

    /// Reads more into `buf`; false at EOF.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(harness::DEADLINE, self.stream.read(&mut chunk))
            .await
            .expect("a response within the deadline")
            .unwrap();
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// The next response (`head_only`: to a HEAD, so no body follows, whatever the head says).
    async fn response(&mut self, head_only: bool) -> RawResponse {
        let end = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            assert!(
                self.fill().await,
                "EOF before a response head: {:?}",
                self.buf
            );
        };
        let head: Vec<String> = String::from_utf8_lossy(&self.buf[..end])
            .split("\r\n")
            .map(str::to_owned)
            .collect();
        self.buf.drain(..end + 4);
        let mut response = RawResponse {
            head,
            body: Vec::new(),
        };
        let length: usize = match response.header("content-length") {
            Some(length) if !head_only => length.parse().unwrap(),
            _ => 0,
        };
        while self.buf.len() < length {
            assert!(self.fill().await, "EOF in a body: {response:?}");
        }
        response.body = self.buf.drain(..length).collect();
        response
    }

    /// Nothing more comes: the worker closed the connection, with no stray bytes before.
    async fn assert_closed(&mut self) {
        assert!(!self.fill().await, "unexpected bytes: {:?}", self.buf);
        assert!(self.buf.is_empty(), "stray bytes: {:?}", self.buf);
    }
}

#[tokio::test]
async fn a_kept_alive_connection_stays_in_step_and_term_says_close() {
    let (logs, _capturing) = Logs::capture();
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let supervisor = harness::start(wsgi_app("instep", "wsgi_app:raw"), run.path(), &load);
    let ready = wait_ready(&supervisor, 1).await;
    let mut conn = Raw::open(&ready[0].endpoint).await;

    // HEAD of an empty body: GET's length is unknown, so no `Content-Length: 0` (RFC 9110 8.6).
    conn.send("HEAD", "/empty").await;
    let head = conn.response(true).await;
    assert_eq!(head.head[0], "HTTP/1.1 200 OK");
    assert_eq!(head.header("content-length"), None, "{head:?}");
    // The app's own Content-Length stays, HEAD or not.
    conn.send("HEAD", "/redirect").await;
    let head = conn.response(true).await;
    assert_eq!(head.header("content-length"), Some("0"), "{head:?}");
    // A HEAD's 500 is a head alone: the next response on the connection is the next request's.
    conn.send("HEAD", "/error").await;
    let error = conn.response(true).await;
    assert_eq!(error.head[0], "HTTP/1.1 500 Internal Server Error");
    conn.send("GET", "/").await;
    let hello = conn.response(false).await;
    assert_eq!(hello.head[0], "HTTP/1.1 200 OK", "{hello:?}");
    assert_eq!(
        hello.body,
        format!("hello from {}\n", ready[0].pid).as_bytes()
    );
    assert_eq!(hello.header("connection"), None);

    // TERM while a request is in the app: its response is the connection's last, and says so.
    conn.send("GET", "/sleep?ms=1500").await;
    logs.wait_for("the request in the app", |line| {
        line.contains("sleeping 1500 ms")
    })
    .await;
    kill(ready[0].pid, "TERM");
    let last = conn.response(false).await;
    assert_eq!(last.body, b"slept\n");
    assert_eq!(last.header("connection"), Some("close"), "{last:?}");
    conn.assert_closed().await;
    wait_gone(ready[0].pid).await;
    supervisor.shutdown(false).await;
}
