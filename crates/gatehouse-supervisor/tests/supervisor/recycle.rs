//! Planned replacements (max_requests, max_memory) keep capacity; a request deadline aborts.

use std::sync::{Arc, Mutex};

use gatehouse_supervisor::{ReadyWorker, Supervisor, WorkerState};

use crate::harness::{self, alive, restarts, text, wait_gone, wait_list, wait_ready};

/// Records every list the supervisor publishes from now on (as the proxy would see them).
fn record(supervisor: &Supervisor) -> Arc<Mutex<Vec<Vec<ReadyWorker>>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut ready = supervisor.ready_workers();
    let sink = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            sink.lock().unwrap().push(ready.borrow_and_update().clone());
            if ready.changed().await.is_err() {
                return;
            }
        }
    });
    seen
}

#[tokio::test]
async fn max_requests_recycles_with_the_replacement_published_first() {
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let mut app = harness::app("maxreq", &[]);
    app.workers = 2;
    app.max_requests = 5;
    let supervisor = harness::start(app, run.path(), &load);
    let before = wait_ready(&supervisor, 2).await;
    let seen = record(&supervisor);
    let old = before[0].clone();

    // The proxy keeps the old worker busy: it must stay alive, draining, until idle.
    load.set_idle(false);
    load.set_served(old.id, 4);
    load.set_served(old.id, 5);
    let after = wait_list(&supervisor, "the replacement of slot 0", |list| {
        list.iter().any(|w| w.slot == 0 && w.pid != old.pid)
    })
    .await;
    assert!(
        after.iter().all(|w| w.pid != old.pid),
        "the old worker left the list"
    );
    assert!(alive(old.pid), "it drains while busy");
    let draining = supervisor
        .status()
        .into_iter()
        .find(|w| w.pid == old.pid)
        .unwrap();
    assert_eq!(draining.state, WorkerState::Draining);

    load.set_idle(true);
    wait_gone(old.pid).await;
    assert_eq!(restarts(&supervisor, "max_requests"), 1);
    for list in seen.lock().unwrap().iter() {
        assert_eq!(list.len(), 2, "capacity never dropped: {list:?}");
    }
    supervisor.shutdown(true).await;
}

#[tokio::test]
async fn a_worker_over_max_memory_is_recycled() {
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let mut app = harness::app("memory", &[]);
    app.max_memory = Some(96 << 20);
    let supervisor = harness::start(app, run.path(), &load);
    let before = wait_ready(&supervisor, 1).await;
    let seen = record(&supervisor);

    text(&before[0].endpoint, "/leak?mb=128").await;
    wait_list(&supervisor, "a replacement", |list| {
        list.len() == 1 && list[0].pid != before[0].pid
    })
    .await;
    wait_gone(before[0].pid).await;
    assert_eq!(restarts(&supervisor, "memory"), 1);
    assert!(seen.lock().unwrap().iter().all(|list| list.len() == 1));
    supervisor.shutdown(true).await;
}

#[tokio::test]
async fn a_request_timeout_dumps_the_stack_and_replaces_the_worker() {
    let (logs, _guard) = harness::Logs::capture();
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let supervisor = harness::start(harness::app("hang", &[]), run.path(), &load);
    let before = wait_ready(&supervisor, 1).await;
    let hung = before[0].clone();

    let endpoint = hung.endpoint.clone();
    let request = tokio::spawn(async move { harness::get(&endpoint, "/hang").await });
    logs.wait_for("the worker hanging", |l| {
        l.contains("hang_forever: entered")
    })
    .await;

    supervisor.request_timed_out(hung.id, "req-42");
    let logged = logs
        .wait_for("the timeout", |l| l.contains("request_id=req-42"))
        .await;
    assert!(logged.contains(&format!("pid={}", hung.pid)), "{logged}");
    // Python's faulthandler names the function the request is stuck in.
    let frame = logs
        .wait_for("the stack dump", |l| {
            l.contains("in hang_forever") && l.contains("stream=stderr")
        })
        .await;
    assert!(frame.contains(&format!("pid={}", hung.pid)), "{frame}");

    wait_list(&supervisor, "a replacement", |list| {
        list.len() == 1 && list[0].pid != hung.pid
    })
    .await;
    wait_gone(hung.pid).await;
    assert!(
        request.await.unwrap().is_err(),
        "the hung request got no answer"
    );
    assert_eq!(restarts(&supervisor, "timeout"), 1);
    assert_eq!(restarts(&supervisor, "crash"), 0, "SIGABRT was ours");
    supervisor.shutdown(true).await;
}
