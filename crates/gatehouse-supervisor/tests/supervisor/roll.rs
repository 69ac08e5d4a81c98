//! Rolling a new generation (HUP): all or nothing.

use gatehouse_supervisor::Error;

use crate::harness::{self, alive, pids, restarts, text, wait_gone, wait_ready};

#[tokio::test]
async fn a_roll_replaces_every_worker() {
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let mut app = harness::app("roll", &[]);
    app.workers = 2;
    let supervisor = harness::start(app, run.path(), &load);
    let before = wait_ready(&supervisor, 2).await;

    supervisor.roll().await.expect("the roll succeeds");
    let after = supervisor.ready_workers().borrow().clone();
    assert_eq!(after.len(), 2, "published as a whole generation: {after:?}");
    for worker in &after {
        assert_eq!(worker.generation, 2);
        assert!(!pids(&before).contains(&worker.pid), "every pid changed");
        assert_eq!(text(&worker.endpoint, "/pid").await, worker.pid.to_string());
    }
    for pid in pids(&before) {
        wait_gone(pid).await;
    }
    assert_eq!(restarts(&supervisor, "reload"), 2);
    supervisor.shutdown(true).await;
}

#[tokio::test]
async fn a_roll_whose_workers_fail_keeps_the_old_ones() {
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let mut app = harness::app("badroll", &[]);
    app.workers = 2;
    let supervisor = harness::start(app.clone(), run.path(), &load);
    let before = wait_ready(&supervisor, 2).await;

    // The new code no longer imports.
    let mut broken = app.clone();
    broken
        .env
        .insert("WORKER_CRASH_ON_START".into(), "1".into());
    let err = supervisor
        .roll_with(broken)
        .await
        .expect_err("the roll fails");
    assert!(matches!(err, Error::RollFailed { .. }), "{err}");
    assert_eq!(
        *supervisor.ready_workers().borrow(),
        before,
        "the old workers still serve"
    );
    for worker in &before {
        assert!(alive(worker.pid));
        assert_eq!(text(&worker.endpoint, "/pid").await, worker.pid.to_string());
    }
    assert_eq!(restarts(&supervisor, "reload"), 0);

    // The old config stayed: a plain roll now succeeds.
    supervisor.roll().await.expect("a roll of the kept config");
    let after = supervisor.ready_workers().borrow().clone();
    assert!(after.iter().all(|w| !pids(&before).contains(&w.pid)));
    assert_eq!(
        text(&after[0].endpoint, "/env?name=WORKER_CRASH_ON_START").await,
        ""
    );
    supervisor.shutdown(true).await;
}

#[tokio::test]
async fn a_roll_goes_back_to_the_configured_worker_count() {
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let supervisor = harness::start(harness::app("rollscale", &[]), run.path(), &load);
    wait_ready(&supervisor, 1).await;
    supervisor.scale(1);
    wait_ready(&supervisor, 2).await;
    supervisor.roll().await.unwrap();
    assert_eq!(supervisor.ready_workers().borrow().len(), 1);
    supervisor.shutdown(true).await;
}
