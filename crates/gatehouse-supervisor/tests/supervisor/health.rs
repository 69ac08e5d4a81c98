//! Readiness and health checks: a worker is published only once healthy, and replaced when not.

use std::time::Duration;

use crate::harness::{self, eventually, restarts, text, wait_gone, wait_list, wait_ready};

#[tokio::test]
async fn a_worker_failing_its_health_checks_is_replaced() {
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let mut app = harness::app("unhealthy", &[]);
    app.health = Some(harness::health(2));
    let supervisor = harness::start(app, run.path(), &load);
    let before = wait_ready(&supervisor, 1).await;

    text(&before[0].endpoint, "/fail-health").await;
    let after = wait_list(&supervisor, "a healthy replacement", |list| {
        list.len() == 1 && list[0].pid != before[0].pid
    })
    .await;
    assert_eq!(text(&after[0].endpoint, "/health").await, "ok\n");
    assert_eq!(restarts(&supervisor, "health"), 1);
    wait_gone(before[0].pid).await;
    supervisor.shutdown(true).await;
}

#[tokio::test]
async fn a_worker_whose_health_check_fails_from_the_start_is_never_published() {
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let mut app = harness::app("neverhealthy", &["--fail-health"]);
    app.health = Some(harness::health(1));
    app.startup_timeout = Duration::from_millis(500);
    let supervisor = harness::start(app, run.path(), &load);
    eventually("a failed start", || async {
        (restarts(&supervisor, "health") >= 1).then_some(())
    })
    .await;
    assert!(supervisor.ready_workers().borrow().is_empty());
    supervisor.shutdown(false).await;
}

#[tokio::test]
async fn failed_checks_of_a_busy_worker_do_not_count() {
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let mut app = harness::app("busy", &[]);
    app.health = Some(harness::health(2));
    let supervisor = harness::start(app, run.path(), &load);
    let ready = wait_ready(&supervisor, 1).await;
    let worker = ready[0].clone();

    // The sync worker serves one long request; the proxy says its only slot is taken.
    load.set_in_flight(worker.id, 1);
    let (status, _) = harness::get(&worker.endpoint, "/sleep?ms=1500")
        .await
        .unwrap();
    assert_eq!(status, 200);
    load.set_in_flight(worker.id, 0);

    // Checks during those 1.5 s timed out (500 ms each), but none counted.
    assert_eq!(restarts(&supervisor, "health"), 0);
    assert_eq!(supervisor.ready_workers().borrow()[0].pid, worker.pid);
    supervisor.shutdown(true).await;
}

#[tokio::test]
async fn an_unreachable_worker_leaves_and_is_replaced() {
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let supervisor = harness::start(harness::app("unreachable", &[]), run.path(), &load);
    let before = wait_ready(&supervisor, 1).await;

    supervisor.worker_unreachable(before[0].id);
    wait_list(&supervisor, "a replacement", |list| {
        list.len() == 1 && list[0].pid != before[0].pid
    })
    .await;
    assert_eq!(restarts(&supervisor, "health"), 1);
    wait_gone(before[0].pid).await;
    supervisor.shutdown(true).await;
}
