//! Signals to gatehouse with app workers running (`tests/apps/worker.py`): HUP rolls every worker
//! without failing a request (or keeps the old ones when the new ones cannot start), TERM drains,
//! INT stops quickly, SIGKILL leaves no worker behind, TTIN/TTOU add and remove a worker.
//! The Gunicorn variants are in `workers/gunicorn.rs`.

use std::collections::BTreeSet;

use gatehouse_tests::workers::{
    assert_gone, children, client, concurrent_pids, descendants, get, log_line, one_app,
    supervisor_lines, wait_gone, wait_ready, worker_command, Load,
};
use gatehouse_tests::{eventually, Gatehouse};

use crate::workers::{sleeper, spawn_get};

const KEYS: &str = "workers = 2\nhealth = { path = \"/health\", interval = \"1s\" }";

fn start(args: &[&str]) -> Gatehouse {
    Gatehouse::start(&one_app("w", &worker_command(args), KEYS))
}

async fn wait_children(gh: &Gatehouse, count: usize) -> BTreeSet<u32> {
    eventually(&format!("{count} workers"), || async {
        children(gh.pid()).len() == count
    })
    .await;
    children(gh.pid())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hup_under_load_replaces_every_worker_without_a_failed_request() {
    let gh = start(&[]);
    let old: BTreeSet<u32> = wait_ready(&gh, "w", 2).await.into_iter().collect();

    // 8 clients on two sync workers for a few seconds: there is always a request in flight
    // and several waiting when the roll happens.
    let load = Load::start(&gh.url(0, "/sleep?ms=20"), 8);
    load.wait_for_more(100).await;
    gh.signal("HUP");
    log_line(&gh, "the roll completing", |line| {
        line.contains("roll complete")
    })
    .await;
    wait_gone(&old);
    load.wait_for_more(200).await;
    let report = load.stop().await;

    assert!(
        report.failures.is_empty(),
        "{} failed of {}: {:?}",
        report.failures.len(),
        report.ok + report.failures.len(),
        report.failures
    );
    let new = children(gh.pid());
    assert_eq!(new.len(), 2);
    assert!(
        new.is_disjoint(&old),
        "every worker pid changed: {old:?} -> {new:?}"
    );
    let last: BTreeSet<u32> = report.pids.iter().rev().take(40).copied().collect();
    assert!(last.is_subset(&new), "{last:?} served by {new:?}");
    let drained = supervisor_lines(&gh.logs(), "w", "worker exited");
    assert!(
        old.iter().all(|pid| drained
            .iter()
            .any(|line| line.contains(&format!("pid={pid}")) && line.contains("exit status: 0"))),
        "the old workers drained and exited 0: {drained:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hup_with_an_app_that_no_longer_starts_keeps_the_old_workers_serving() {
    let gh = start(&[]);
    let old: BTreeSet<u32> = wait_ready(&gh, "w", 2).await.into_iter().collect();
    let load = Load::start(&gh.url(0, "/sleep?ms=20"), 4);
    load.wait_for_more(20).await;

    // The new code fails at import, as a syntax error would.
    gh.sandbox()
        .config(&one_app("w", &worker_command(&["--crash-on-start"]), KEYS));
    gh.signal("HUP");
    let failure = log_line(&gh, "the failed roll", |line| {
        line.contains("ERROR") && line.contains("keep serving")
    })
    .await;
    load.wait_for_more(40).await;
    let report = load.stop().await;

    assert!(
        report.failures.is_empty(),
        "{} failed: {:?}",
        report.failures.len(),
        report.failures
    );
    assert!(
        gh.logs().contains("crashing on start, as asked"),
        "the new generation was tried: {failure}"
    );
    assert_eq!(children(gh.pid()), old, "the old workers are still there");
    let last: BTreeSet<u32> = report.pids.iter().rev().take(20).copied().collect();
    assert!(last.is_subset(&old), "{last:?}");
    assert!(concurrent_pids(&gh.url(0, "/sleep?ms=200"), 2)
        .await
        .is_subset(&old));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn term_finishes_the_request_in_flight_then_exits_0_leaving_no_worker() {
    let mut gh = start(&[]);
    wait_ready(&gh, "w", 2).await;
    let in_flight = spawn_get(&gh, "/sleep?ms=2000");
    sleeper(&gh, 2000).await;
    let workers = descendants(gh.pid());
    assert_eq!(workers.len(), 2);

    gh.terminate();
    let answer = in_flight.await.unwrap().unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, "slept\n"));
    assert_eq!(gh.wait_exit().code(), Some(0), "{}", gh.logs());
    // Workers are gatehouse's children, reaped before it exits.
    assert_gone(&workers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn term_past_the_graceful_timeout_stops_the_busy_workers_at_once() {
    // [server] graceful_timeout 1s; the app's own graceful_timeout (120s) is far past the
    // harness deadline: once the server's budget is spent, busy workers are not waited for again.
    let config = one_app(
        "w",
        &worker_command(&[]),
        &format!("{KEYS}\ngraceful_timeout = \"120s\""),
    )
    .replace(
        "watch_config = false",
        "watch_config = false\ngraceful_timeout = \"1s\"",
    );
    let mut gh = Gatehouse::start(&config);
    wait_ready(&gh, "w", 2).await;
    let in_flight = spawn_get(&gh, "/sleep?ms=120000");
    sleeper(&gh, 120_000).await;
    let workers = descendants(gh.pid());

    gh.terminate();
    assert_eq!(gh.wait_exit().code(), Some(0), "{}", gh.logs());
    assert!(
        gh.logs().contains("stopping the workers now"),
        "{}",
        gh.logs()
    );
    assert_gone(&workers);
    in_flight.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn int_stops_quickly_leaving_no_worker() {
    let mut gh = start(&[]);
    wait_ready(&gh, "w", 2).await;
    // Far longer than the harness deadline: a graceful stop would wait for it.
    let in_flight = spawn_get(&gh, "/sleep?ms=120000");
    sleeper(&gh, 120_000).await;
    let workers = descendants(gh.pid());

    gh.interrupt();
    let status = gh.wait_exit();
    assert!(status.code().is_some(), "exits by itself: {status:?}");
    assert_gone(&workers);
    in_flight.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_gatehouse_leaves_no_worker() {
    let mut gh = start(&[]);
    wait_ready(&gh, "w", 2).await;
    let workers = descendants(gh.pid());
    assert_eq!(workers.len(), 2);

    gh.signal("KILL");
    gh.wait_exit();
    wait_gone(&workers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttin_and_ttou_add_and_remove_a_worker() {
    let gh = start(&[]);
    let two: BTreeSet<u32> = wait_ready(&gh, "w", 2).await.into_iter().collect();

    gh.signal("TTIN");
    let three = wait_children(&gh, 3).await;
    assert!(two.is_subset(&three));
    wait_ready(&gh, "w", 3).await;
    assert_eq!(
        concurrent_pids(&gh.url(0, "/sleep?ms=400"), 3).await,
        three,
        "three workers serve"
    );

    gh.signal("TTOU");
    let after_one = wait_children(&gh, 2).await;
    assert!(after_one.is_subset(&three));
    gh.signal("TTOU");
    let last = wait_children(&gh, 1).await;
    let removed: BTreeSet<u32> = three.difference(&last).copied().collect();
    wait_gone(&removed);
    let client = client();
    for _ in 0..3 {
        let answer = get(&client, &gh.url(0, "/pid")).await.unwrap();
        assert_eq!(answer.status, 200);
        assert!(last.contains(&answer.pid.unwrap()));
    }
}
