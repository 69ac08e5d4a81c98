//! Workers that die on their own: replaced, counted, and backed off when they keep dying.

use std::time::Duration;

use crate::harness::{self, eventually, kill, restarts, wait_gone, wait_list, wait_ready};

#[tokio::test]
async fn a_killed_worker_is_replaced_and_counted_as_a_crash() {
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let mut app = harness::app("killed", &[]);
    app.workers = 2;
    let supervisor = harness::start(app, run.path(), &load);
    let before = wait_ready(&supervisor, 2).await;

    kill(before[0].pid, "KILL");
    let after = wait_list(&supervisor, "a replacement in slot 0", |list| {
        list.len() == 2 && list[0].pid != before[0].pid
    })
    .await;
    assert_eq!(after[0].slot, 0);
    assert_eq!(after[1].pid, before[1].pid, "the other worker is untouched");
    assert_eq!(restarts(&supervisor, "crash"), 1);
    assert_eq!(supervisor.status()[0].restarts, 1, "counted for its slot");
    supervisor.shutdown(true).await;
}

#[tokio::test]
async fn a_worker_crashing_mid_request_is_replaced() {
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let supervisor = harness::start(harness::app("midrequest", &[]), run.path(), &load);
    let before = wait_ready(&supervisor, 1).await;
    let answer = harness::get(&before[0].endpoint, "/crash").await;
    assert!(
        answer.is_err(),
        "the worker died without answering: {answer:?}"
    );
    let after = wait_list(&supervisor, "a replacement", |list| {
        list.len() == 1 && list[0].pid != before[0].pid
    })
    .await;
    assert_eq!(
        harness::text(&after[0].endpoint, "/pid").await,
        after[0].pid.to_string()
    );
    assert_eq!(restarts(&supervisor, "crash"), 1);
    supervisor.shutdown(true).await;
}

#[tokio::test]
async fn a_crash_looping_app_backs_off_and_never_publishes() {
    let (logs, _capturing) = harness::Logs::capture();
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let mut app = harness::app("crashloop", &[]);
    // Like an app that cannot import: exit 3 before binding.
    app.env.insert("WORKER_CRASH_ON_START".into(), "1".into());
    let supervisor = harness::start(app, run.path(), &load);

    eventually("five attempts", || async {
        let ready = supervisor.ready_workers().borrow().clone();
        assert!(ready.is_empty(), "a crashing app is never published");
        (logs.times(|l| l.contains("worker started")).len() >= 5).then_some(())
    })
    .await;
    // From each exit to the next start: the backoff (process start-up time is not in it).
    let exits = logs.times(|l| l.contains("worker exited unexpectedly"));
    let starts = logs.times(|l| l.contains("worker started"));
    let gaps: Vec<f64> = (0..4)
        .map(|i| (starts[i + 1] - exits[i]).as_secs_f64())
        .collect();
    for (i, gap) in gaps.iter().enumerate() {
        let backoff = 0.1 * f64::from(1u32 << i);
        assert!(*gap >= backoff, "gap {i} is at least {backoff} s: {gaps:?}");
        assert!(
            *gap < backoff + 1.0,
            "gap {i} is about {backoff} s: {gaps:?}"
        );
    }
    assert!(gaps[3] > gaps[0], "the gaps grow: {gaps:?}");
    assert!(restarts(&supervisor, "crash") >= 4);
    assert_eq!(restarts(&supervisor, "exit"), 0);
    supervisor.shutdown(false).await;
}

#[tokio::test]
async fn a_clean_exit_nobody_asked_for_counts_as_exit() {
    let run = harness::runtime_dir();
    let argv = vec![harness::python(), "-c".into(), "pass".into()];
    let load = harness::FakeLoad::new();
    let supervisor = harness::start(harness::command_app("quits", argv), run.path(), &load);
    eventually("an exit", || async {
        (restarts(&supervisor, "exit") >= 1).then_some(())
    })
    .await;
    assert_eq!(restarts(&supervisor, "crash"), 0);
    supervisor.shutdown(false).await;
}

#[tokio::test]
async fn a_worker_not_ready_within_startup_timeout_is_killed_and_retried() {
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let mut app = harness::app("slow", &["--slow-start-ms", "3000"]);
    app.startup_timeout = Duration::from_millis(300);
    let supervisor = harness::start(app, run.path(), &load);
    let first = eventually("a starting worker", || async {
        supervisor.status().first().map(|worker| worker.pid)
    })
    .await;
    wait_gone(first).await;
    assert!(
        restarts(&supervisor, "health") >= 1,
        "{:?}",
        supervisor.restarts()
    );
    assert!(supervisor.ready_workers().borrow().is_empty());
    eventually("a second attempt", || async {
        supervisor
            .status()
            .iter()
            .any(|w| w.pid != first)
            .then_some(())
    })
    .await;
    supervisor.shutdown(false).await;
}
