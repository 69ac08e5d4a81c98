//! Stopping: graceful waits for idle workers; every process of every group is gone at the end.

use std::time::{Duration, Instant};

use crate::harness::{self, alive, group_members, text, wait_gone, wait_ready};

#[tokio::test]
async fn graceful_shutdown_waits_until_the_proxy_is_done_with_a_worker() {
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let supervisor = harness::start(harness::app("graceful", &[]), run.path(), &load);
    let worker = wait_ready(&supervisor, 1).await.remove(0);
    let grandchild: u32 = text(&worker.endpoint, "/spawn").await.parse().unwrap();
    assert!(group_members(worker.pid).contains(&grandchild));

    load.set_idle(false);
    let ready = supervisor.ready_workers();
    let stopping = tokio::spawn(supervisor.shutdown(true));
    let mut ready_rx = ready.clone();
    tokio::time::timeout(harness::DEADLINE, ready_rx.wait_for(|list| list.is_empty()))
        .await
        .expect("the list empties at once")
        .ok();
    // Busy: nothing is signalled. (A bounded look, not a synchronisation.)
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!stopping.is_finished());
    assert!(alive(worker.pid) && alive(grandchild));

    load.set_idle(true);
    tokio::time::timeout(harness::DEADLINE, stopping)
        .await
        .expect("shutdown returns once idle")
        .unwrap();
    assert!(!alive(worker.pid), "reaped before shutdown returned");
    wait_gone(worker.pid).await;
    assert!(!alive(grandchild), "the grandchild died with its group");
}

#[tokio::test]
async fn a_request_in_flight_finishes_after_sigterm() {
    let (logs, _guard) = harness::Logs::capture();
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let supervisor = harness::start(harness::app("inflight", &[]), run.path(), &load);
    let worker = wait_ready(&supervisor, 1).await.remove(0);

    let endpoint = worker.endpoint.clone();
    let request = tokio::spawn(async move { harness::get(&endpoint, "/sleep?ms=700").await });
    logs.wait_for("the request in flight", |l| l.contains("sleeping 700 ms"))
        .await;
    // The proxy reports idle (FakeLoad), so SIGTERM comes at once, in the middle of the request.
    supervisor.shutdown(true).await;
    let (status, body) = request.await.unwrap().expect("an answer");
    assert_eq!((status, body.as_str()), (200, "slept\n"));
    let exit = logs
        .find(|l| l.contains("worker exited"))
        .unwrap_or_default();
    assert!(
        exit.contains("exit status: 0"),
        "a clean exit after the request: {exit}"
    );
    wait_gone(worker.pid).await;
}

#[tokio::test]
async fn quick_shutdown_kills_a_worker_that_does_not_stop() {
    let (logs, _guard) = harness::Logs::capture();
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let supervisor = harness::start(harness::app("quick", &[]), run.path(), &load);
    let worker = wait_ready(&supervisor, 1).await.remove(0);
    let endpoint = worker.endpoint.clone();
    let request = tokio::spawn(async move { harness::get(&endpoint, "/hang").await });
    // Busy in a request, worker.py ignores SIGTERM until it is done: only SIGKILL stops it.
    logs.wait_for("the worker hanging", |l| {
        l.contains("hang_forever: entered")
    })
    .await;
    let started = Instant::now();
    supervisor.shutdown(false).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(!alive(worker.pid));
    let _ = request.await;
}

#[tokio::test]
async fn dropping_the_supervisor_stops_its_workers() {
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let supervisor = harness::start(harness::app("dropped", &[]), run.path(), &load);
    let worker = wait_ready(&supervisor, 1).await.remove(0);
    drop(supervisor);
    wait_gone(worker.pid).await;
}
