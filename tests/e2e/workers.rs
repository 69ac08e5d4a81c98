//! The worker supervisor with the stdlib `tests/apps/worker.py`: workers start and serve, a
//! killed worker costs only its own request, deadlines (504 and a stack dump), recycling
//! (`max_requests`, `max_memory`), request buffering for sync workers, the queue (503 with
//! Retry-After), and a crash-looping app that answers 503 at once while everything else serves.
//!
//! The same scenarios with real Gunicorn and Uvicorn are in `workers/`; signals (HUP, TERM, INT,
//! KILL, TTIN/TTOU) in `signals.rs`.

mod gunicorn;
mod uvicorn;

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gatehouse_tests::raw::Conn;
use gatehouse_tests::workers::{
    children, client, concurrent_pids, config, field, get, kill, log_line, one_app, pid_field,
    supervisor_lines, timestamp, wait_gone, wait_ready, wait_serving, worker_command, Answer, Load,
};
use gatehouse_tests::{eventually, Gatehouse, Sandbox};
use sha2::{Digest, Sha256};

/// Gatehouse with `worker.py` (run with `args`) as app `w` at `/`, plus `keys` for the app.
fn start(args: &[&str], keys: &str) -> Gatehouse {
    Gatehouse::start(&one_app("w", &worker_command(args), keys))
}

/// GET `path` on a spawned task (so that it stays in flight while the test goes on).
pub(crate) fn spawn_get(
    gh: &Gatehouse,
    path: &str,
) -> tokio::task::JoinHandle<Result<Answer, String>> {
    let url = gh.url(0, path);
    tokio::spawn(async move { get(&client(), &url).await })
}

/// The pid of the worker that logged `sleeping {ms} ms` (worker output is tagged with its pid).
pub(crate) async fn sleeper(gh: &Gatehouse, ms: u64) -> u32 {
    let needle = format!("sleeping {ms} ms");
    let line = log_line(gh, &needle, |line| line.contains(&needle)).await;
    pid_field(&line).expect("worker output carries pid=")
}

/// Asserts a gatehouse error answer: `status`, and a short text body (not an app's page).
pub(crate) fn assert_error(answer: &Answer, status: u16) {
    assert_eq!(answer.status, status, "body: {}", answer.body);
    assert!(answer.pid.is_none(), "answered by gatehouse, not a worker");
    assert!(answer.body.len() < 512, "short body: {}", answer.body);
}

/// Asserts a 503 for "no worker free": with a Retry-After in seconds.
fn assert_unavailable(answer: &Answer) {
    assert_error(answer, 503);
    let retry_after = answer.retry_after.as_deref().expect("a Retry-After header");
    assert!(
        retry_after.parse::<u64>().is_ok(),
        "Retry-After is a number of seconds: {retry_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_start_and_serve_from_distinct_pids() {
    let gh = start(&[], "workers = 2");
    let ready: BTreeSet<u32> = wait_ready(&gh, "w", 2).await.into_iter().collect();
    assert_eq!(ready.len(), 2);
    assert_eq!(
        children(gh.pid()),
        ready,
        "each worker is a direct child of gatehouse"
    );

    // Two sync workers (concurrency 1): two requests at once must go to both.
    let served = concurrent_pids(&gh.url(0, "/sleep?ms=300"), 2).await;
    assert_eq!(served, ready);

    let hello = get(&client(), &gh.url(0, "/")).await.unwrap();
    assert_eq!(hello.status, 200);
    let pid = hello.pid.unwrap();
    assert_eq!(hello.body, format!("hello from {pid}\n"));
    let slot = get(&client(), &gh.url(0, "/env?name=GATEHOUSE_WORKER"))
        .await
        .unwrap();
    assert!(["0", "1"].contains(&slot.body.as_str()), "{slot:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_worker_mid_request_is_502_for_that_request_only() {
    let gh = start(&[], "workers = 2");
    let ready = wait_ready(&gh, "w", 2).await;

    let doomed = spawn_get(&gh, "/sleep?ms=5000");
    let victim = sleeper(&gh, 5000).await;
    let other = *ready.iter().find(|pid| **pid != victim).unwrap();
    // A request in flight on the other worker while the first one dies.
    let bystander = spawn_get(&gh, "/sleep?ms=1500");
    assert_eq!(sleeper(&gh, 1500).await, other);

    kill(victim, "KILL");
    assert_error(&doomed.await.unwrap().unwrap(), 502);
    let bystander = bystander.await.unwrap().unwrap();
    assert_eq!(bystander.status, 200, "{bystander:?}");
    assert_eq!(bystander.pid, Some(other));

    // The replacement starts and serves; the survivor was never touched.
    let pids = wait_ready(&gh, "w", 3).await;
    let replacement = pids[2];
    assert!(!ready.contains(&replacement));
    wait_gone(&BTreeSet::from([victim]));
    assert_eq!(
        concurrent_pids(&gh.url(0, "/sleep?ms=300"), 2).await,
        BTreeSet::from([other, replacement])
    );
    let exited = supervisor_lines(&gh.logs(), "w", "worker exited unexpectedly");
    assert!(
        exited
            .iter()
            .any(|line| pid_field(line) == Some(victim) && line.contains("SIGKILL")),
        "{exited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_timeout_is_504_with_the_stack_in_the_log_and_the_worker_replaced() {
    let gh = start(&[], "workers = 1\ntimeout = \"1s\"");
    let first = wait_ready(&gh, "w", 1).await[0];

    let response = client().get(gh.url(0, "/hang")).send().await.unwrap();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    crate::assert_error(response, 504).await;

    // PYTHONFAULTHANDLER: the ABRT makes Python print the stuck stack, which gatehouse logs
    // line by line, tagged with the worker's pid.
    let frame = log_line(&gh, "a stack frame in hang_forever", |line| {
        line.contains("File \"") && line.contains("in hang_forever")
    })
    .await;
    assert_eq!(pid_field(&frame), Some(first), "{frame}");
    assert_eq!(field(&frame, "stream"), Some("stderr"), "{frame}");
    let timed_out = supervisor_lines(&gh.logs(), "w", "request timed out");
    assert!(
        timed_out.iter().any(|line| pid_field(line) == Some(first)
            && field(line, "request_id") == Some(request_id.as_str())),
        "a line with the pid and the request id: {timed_out:?}"
    );

    wait_gone(&BTreeSet::from([first]));
    let second = wait_ready(&gh, "w", 2).await[1];
    assert_ne!(second, first);
    let answer = get(&client(), &gh.url(0, "/pid")).await.unwrap();
    assert_eq!(answer.body, second.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_requests_recycles_workers_under_load_without_a_failed_request() {
    let gh = start(
        &[],
        "workers = 2\nmax_requests = 20\nmax_requests_jitter = 5",
    );
    let first: BTreeSet<u32> = wait_ready(&gh, "w", 2).await.into_iter().collect();

    let load = Load::start(&gh.url(0, "/"), 4);
    // Two workers of 20 to 25 requests each: 5 pids means at least three recycles.
    eventually("responses from 5 different workers", || async {
        load.pids().len() >= 5
    })
    .await;
    let report = load.stop().await;
    assert!(
        report.failures.is_empty(),
        "{} failed of {}: {:?}",
        report.failures.len(),
        report.ok + report.failures.len(),
        report.failures
    );
    let later: BTreeSet<u32> = report.pids.iter().rev().take(10).copied().collect();
    assert!(later.is_disjoint(&first), "the first workers were recycled");
    let recycled = supervisor_lines(&gh.logs(), "w", "recycling worker");
    assert!(recycled.len() >= 3, "{recycled:?}");
    assert!(recycled
        .iter()
        .all(|line| field(line, "reason") == Some("max_requests")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_memory_recycles_a_leaking_worker() {
    let gh = start(&[], "workers = 1\nmax_memory = \"80MiB\"");
    let first = wait_ready(&gh, "w", 1).await[0];
    let leaked = get(&client(), &gh.url(0, "/leak?mb=100")).await.unwrap();
    assert_eq!(leaked.status, 200);
    assert_eq!(leaked.pid, Some(first));

    let line = log_line(&gh, "a memory recycle", |line| {
        line.contains("recycling worker") && field(line, "reason") == Some("memory")
    })
    .await;
    assert_eq!(pid_field(&line), Some(first));
    // The replacement is ready before the leaky worker leaves, so requests never fail.
    let client = client();
    eventually("a new worker serving", || async {
        let answer = get(&client, &gh.url(0, "/pid")).await.unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.pid != Some(first)
    })
    .await;
    wait_gone(&BTreeSet::from([first]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upload_does_not_hold_the_only_sync_worker() {
    // One sync worker: buffering is on by default for concurrency 1.
    let gh = start(&[], "workers = 1\nconcurrency = 1");
    wait_ready(&gh, "w", 1).await;

    const SIZE: usize = 1024 * 1024;
    const PIECE: usize = 10 * 1024;
    let body: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let expected: String = Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let sent_all = Arc::new(AtomicBool::new(false));
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let addr = gh.addr(0);
    let uploader = {
        let sent_all = Arc::clone(&sent_all);
        std::thread::spawn(move || {
            let mut conn = Conn::open(addr);
            let head = format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {SIZE}\r\nConnection: close\r\n\r\n"
            );
            conn.send(head.as_bytes()).unwrap();
            let mut started_tx = Some(started_tx);
            // About 100 KiB/s: 10 KiB every 100 ms (the pace of the client, not a synchronisation).
            for piece in body.chunks(PIECE) {
                let mut stream = conn.stream();
                stream.write_all(piece).unwrap();
                if let Some(tx) = started_tx.take() {
                    let _ = tx.send(());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            sent_all.store(true, Ordering::SeqCst);
            conn.response(false)
        })
    };

    started.await.unwrap();
    let answer = get(&client(), &gh.url(0, "/pid")).await.unwrap();
    assert_eq!(answer.status, 200);
    assert!(
        !sent_all.load(Ordering::SeqCst),
        "the second request was answered only after the whole upload was sent"
    );

    let response = tokio::task::spawn_blocking(move || uploader.join().unwrap())
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let echo: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(echo["length"], SIZE);
    assert_eq!(echo["sha256"], expected.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_503_with_retry_after() {
    let gh = start(&[], "workers = 1\nqueue_size = 1\nqueue_timeout = \"20s\"");
    wait_ready(&gh, "w", 1).await;
    let held = spawn_get(&gh, "/sleep?ms=3000");
    sleeper(&gh, 3000).await;

    // One more fits in the queue; of the two sent now, the one that arrives second does not.
    let mut second = spawn_get(&gh, "/sleep?ms=1");
    let mut third = spawn_get(&gh, "/sleep?ms=1");
    let (first_done, other) = tokio::select! {
        done = &mut second => (done, third),
        done = &mut third => (done, second),
    };
    assert_unavailable(&first_done.unwrap().unwrap());
    assert!(
        !held.is_finished(),
        "the 503 came while both slots were still taken"
    );
    let queued = other.await.unwrap().unwrap();
    assert_eq!(
        queued.status, 200,
        "the queued request is served: {queued:?}"
    );
    assert_eq!(held.await.unwrap().unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waiting_past_queue_timeout_is_503_with_retry_after() {
    let gh = start(&[], "workers = 1\nqueue_timeout = \"500ms\"");
    wait_ready(&gh, "w", 1).await;
    let held = spawn_get(&gh, "/sleep?ms=4000");
    sleeper(&gh, 4000).await;

    assert_unavailable(&get(&client(), &gh.url(0, "/pid")).await.unwrap());
    assert!(!held.is_finished());
    assert_eq!(held.await.unwrap().unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_app_answers_503_at_once_and_restarts_with_growing_gaps() {
    let gh = start(&["--crash-on-start"], "workers = 1");
    let client = client();
    for _ in 0..3 {
        // "At once": a generous bound, only there to tell a fast 503 from a hang.
        let answer = tokio::time::timeout(Duration::from_secs(5), get(&client, &gh.url(0, "/")))
            .await
            .expect("a crash-looping app answers without waiting for a worker")
            .unwrap();
        assert_unavailable(&answer);
    }

    // Gaps from each crash to the next start (the backoff), from the log's timestamps.
    eventually("five crashes", || async {
        supervisor_lines(&gh.logs(), "w", "worker exited unexpectedly").len() >= 5
    })
    .await;
    let logs = gh.logs();
    let exits = supervisor_lines(&logs, "w", "worker exited unexpectedly");
    let starts = supervisor_lines(&logs, "w", "worker started");
    let exit_times: Vec<f64> = exits.iter().filter_map(|l| timestamp(l)).collect();
    let start_times: Vec<f64> = starts.iter().filter_map(|l| timestamp(l)).collect();
    assert_eq!(exit_times.len(), exits.len(), "timestamps: {exits:?}");
    let gaps: Vec<f64> = exit_times
        .iter()
        .filter_map(|exit| {
            let next = start_times.iter().find(|start| *start >= exit)?;
            Some(next - exit)
        })
        .collect();
    assert!(
        gaps.len() >= 4,
        "restarts after the crashes: {gaps:?}\n{logs}"
    );
    // The first two gaps may be within one tick of the supervisor (100 ms) of each other, so
    // they are compared with the last one; from the second on, each is at least the one before.
    assert!(gaps[gaps.len() - 1] > gaps[0], "{gaps:?}");
    for pair in gaps[1..].windows(2) {
        assert!(
            pair[1] >= pair[0],
            "each gap at least the one before: {gaps:?}"
        );
    }
    assert!(
        logs.contains("crashing on start, as asked"),
        "the worker's stderr is logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_and_other_apps_keep_serving_while_one_app_crash_loops() {
    let sandbox = Sandbox::new();
    sandbox.write("www/hello.txt", "static hello\n");
    let routes = r#"
[[route]]
path = "/static/"
static = { root = "{dir}/www" }

[[route]]
path = "/bad/"
app = "bad"

[[route]]
path = "/"
app = "good"
"#;
    let apps = [
        gatehouse_tests::workers::app("bad", &worker_command(&["--crash-on-start"]), ""),
        gatehouse_tests::workers::app("good", &worker_command(&[]), "workers = 1"),
    ];
    let gh = sandbox.start(&config(&apps, routes));
    wait_serving(&gh.url(0, "/pid")).await;
    eventually("the bad app to crash three times", || async {
        supervisor_lines(&gh.logs(), "bad", "worker exited unexpectedly").len() >= 3
    })
    .await;

    let client = client();
    for _ in 0..3 {
        assert_unavailable(&get(&client, &gh.url(0, "/bad/x")).await.unwrap());
        let good = get(&client, &gh.url(0, "/pid")).await.unwrap();
        assert_eq!(good.status, 200, "{good:?}");
        let file = get(&client, &gh.url(0, "/static/hello.txt")).await.unwrap();
        assert_eq!((file.status, file.body.as_str()), (200, "static hello\n"));
    }
    assert!(
        supervisor_lines(&gh.logs(), "good", "worker exited").is_empty(),
        "the good app's worker was not touched"
    );
}
