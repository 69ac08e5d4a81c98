//! The core worker scenarios with real Gunicorn as the worker command: each gatehouse worker is a
//! Gunicorn master (`-w 1`, sync) with one Gunicorn worker of its own, serving `flask_app:app`.
//!
//! So a worker here is a process group of two: gatehouse supervises the master (its direct child),
//! requests are served by the master's worker (the pid in `X-Worker-Pid`), and signals go to the
//! whole group.

use std::collections::BTreeSet;

use gatehouse_tests::workers::{
    apps_directory, children, client, concurrent_pids, descendants, get, gunicorn_command, kill,
    log_line, one_app, parent, pid_field, supervisor_lines, wait_gone, wait_ready, Load,
};
use gatehouse_tests::Gatehouse;

use super::{assert_error, sleeper, spawn_get};

/// Gatehouse with `workers` Gunicorn masters as app `flask` at `/`, plus `keys` for the app.
fn start(workers: usize, keys: &str) -> Gatehouse {
    Gatehouse::start(&one_app(
        "flask",
        &gunicorn_command(),
        &format!(
            "{}\nworkers = {workers}\n{HEALTH}\n{keys}",
            apps_directory()
        ),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gunicorn_workers_serve_flask() {
    let gh = start(2, "");
    let masters: BTreeSet<u32> = wait_ready(&gh, "flask", 2).await.into_iter().collect();
    assert_eq!(children(gh.pid()), masters);

    let json = get(&client(), &gh.url(0, "/json")).await.unwrap();
    assert_eq!(json.status, 200);
    let value: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(value["message"], "Hello, World!");

    // Two requests at once go to both masters' workers.
    let served = concurrent_pids(&gh.url(0, "/sleep?ms=300"), 2).await;
    assert_eq!(served.len(), 2);
    let parents: BTreeSet<u32> = served.iter().filter_map(|pid| parent(*pid)).collect();
    assert_eq!(
        parents, masters,
        "each request is served by a master's own worker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gunicorn_kill_9_mid_request_is_502_then_a_new_master_serves() {
    let gh = start(2, "");
    let masters = wait_ready(&gh, "flask", 2).await;

    let doomed = spawn_get(&gh, "/sleep?ms=5000");
    // Worker output is tagged with the pid gatehouse knows: the master's.
    let victim = sleeper(&gh, 5000).await;
    assert!(masters.contains(&victim));
    let group = descendants(victim);
    let other = *masters.iter().find(|pid| **pid != victim).unwrap();
    let bystander = spawn_get(&gh, "/sleep?ms=1500");
    assert_eq!(sleeper(&gh, 1500).await, other);

    kill(victim, "KILL");
    assert_error(&doomed.await.unwrap().unwrap(), 502);
    let bystander = bystander.await.unwrap().unwrap();
    assert_eq!(bystander.status, 200, "{bystander:?}");

    // The dead master's own worker went with its group; a new master takes the slot.
    wait_gone(&group);
    let replacement = wait_ready(&gh, "flask", 3).await[2];
    assert!(!masters.contains(&replacement));
    let served = concurrent_pids(&gh.url(0, "/sleep?ms=300"), 2).await;
    let parents: BTreeSet<u32> = served.iter().filter_map(|pid| parent(*pid)).collect();
    assert_eq!(parents, BTreeSet::from([other, replacement]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gunicorn_request_past_timeout_is_504_and_the_worker_replaced() {
    let gh = start(1, "timeout = \"1s\"");
    let master = wait_ready(&gh, "flask", 1).await[0];
    let before = get(&client(), &gh.url(0, "/pid")).await.unwrap();
    let group = descendants(master);

    let hung = get(&client(), &gh.url(0, "/hang")).await.unwrap();
    assert_error(&hung, 504);
    wait_gone(&group);
    let replacement = wait_ready(&gh, "flask", 2).await[1];
    assert_ne!(replacement, master);
    let after = get(&client(), &gh.url(0, "/pid")).await.unwrap();
    assert_eq!(after.status, 200);
    assert_ne!(after.body, before.body, "a new Gunicorn worker serves");
    assert_eq!(parent(after.pid.unwrap()), Some(replacement));
}

/// Gunicorn's worker answers SIGABRT by raising SystemExit in the stuck frame, and Gunicorn logs
/// that traceback; its master does not handle SIGABRT and dies at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gunicorn_request_past_timeout_logs_the_stack_of_the_stuck_request() {
    let gh = start(1, "timeout = \"1s\"");
    let master = wait_ready(&gh, "flask", 1).await[0];
    let hung = get(&client(), &gh.url(0, "/hang")).await.unwrap();
    assert_error(&hung, 504);
    let frame = log_line(&gh, "a traceback line in hang_forever", |line| {
        line.contains("File \"") && line.contains("in hang_forever")
    })
    .await;
    assert_eq!(pid_field(&frame), Some(master), "{frame}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gunicorn_hup_under_load_replaces_every_worker_without_a_failed_request() {
    let gh = start(2, "");
    wait_ready(&gh, "flask", 2).await;
    let old = descendants(gh.pid());

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
        "{} failed: {:?}",
        report.failures.len(),
        report.failures
    );
    let now = descendants(gh.pid());
    assert_eq!(now.len(), 4, "two masters with a worker each: {now:?}");
    assert!(now.is_disjoint(&old));
    let last: BTreeSet<u32> = report.pids.iter().rev().take(40).copied().collect();
    assert!(last.is_subset(&now), "{last:?} served by {now:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gunicorn_hup_when_the_app_no_longer_imports_keeps_the_old_workers_serving() {
    hup_into_an_app_that_no_longer_imports(HEALTH).await;
}

/// The same without a health path: readiness is then a successful connect, which a Gunicorn
/// master allows as soon as it has bound its socket, before its worker imports the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gunicorn_hup_without_a_health_path_when_the_app_no_longer_imports_keeps_the_old_workers() {
    hup_into_an_app_that_no_longer_imports("").await;
}

const HEALTH: &str = "health = { path = \"/health\", interval = \"1s\" }";

/// HUP after the config's app module was renamed to one that does not exist (`health`: the
/// app's health key, in both the old and the new config).
async fn hup_into_an_app_that_no_longer_imports(health: &str) {
    let keys = |command: &[String]| {
        one_app(
            "flask",
            command,
            &format!("{}\nworkers = 2\n{health}", apps_directory()),
        )
    };
    let gh = Gatehouse::start(&keys(&gunicorn_command()));
    let masters: BTreeSet<u32> = wait_ready(&gh, "flask", 2).await.into_iter().collect();
    let old = descendants(gh.pid());
    let load = Load::start(&gh.url(0, "/sleep?ms=20"), 4);
    load.wait_for_more(20).await;

    let broken: Vec<String> = gunicorn_command()
        .into_iter()
        .map(|arg| {
            if arg == "flask_app:app" {
                "no_such_module:app".to_owned()
            } else {
                arg
            }
        })
        .collect();
    gh.sandbox().config(&keys(&broken));
    gh.signal("HUP");
    log_line(&gh, "the failed roll", |line| {
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
        gh.logs().contains("No module named 'no_such_module'"),
        "Gunicorn's import error is logged"
    );
    assert_eq!(children(gh.pid()), masters);
    assert_eq!(descendants(gh.pid()), old, "the old workers are untouched");
    let last: BTreeSet<u32> = report.pids.iter().rev().take(20).copied().collect();
    assert!(last.is_subset(&old), "{last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gunicorn_term_finishes_the_request_in_flight_then_exits_0_leaving_no_process() {
    let mut gh = start(2, "");
    wait_ready(&gh, "flask", 2).await;
    let in_flight = spawn_get(&gh, "/sleep?ms=2000");
    sleeper(&gh, 2000).await;
    let processes = descendants(gh.pid());
    assert_eq!(processes.len(), 4);

    gh.terminate();
    let answer = in_flight.await.unwrap().unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, "slept\n"));
    assert_eq!(gh.wait_exit().code(), Some(0), "{}", gh.logs());
    wait_gone(&processes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gunicorn_sigkill_of_gatehouse_leaves_no_process() {
    let mut gh = start(2, "");
    wait_ready(&gh, "flask", 2).await;
    let processes = descendants(gh.pid());
    assert_eq!(processes.len(), 4);
    assert!(supervisor_lines(&gh.logs(), "flask", "worker exited").is_empty());

    gh.signal("KILL");
    gh.wait_exit();
    // The masters get SIGKILL from the kernel (parent-death signal); their workers notice that
    // their master is gone and exit.
    wait_gone(&processes);
}
