//! The built-in WSGI worker as the supervisor runs it: the app is imported before the worker is
//! ready, an app that cannot be imported fails with its traceback, TERM finishes the request in
//! flight, ABRT dumps every thread's stack.
//!
//! What requests see (PEP 3333 through gatehouse) is in `tests/e2e/wsgi.rs`.

use std::path::PathBuf;

use gatehouse_config::model::{App, Launch};

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
