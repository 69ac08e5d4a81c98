//! Uvicorn serving a stdlib ASGI app: one worker process takes `concurrency` requests at once.

use std::collections::BTreeSet;

use gatehouse_tests::workers::{
    apps_directory, client, concurrent_pids, descendants, get, one_app, uvicorn_command, wait_gone,
    wait_ready, wait_serving,
};
use gatehouse_tests::Gatehouse;

use super::spawn_get;

fn start(keys: &str) -> Gatehouse {
    Gatehouse::start(&one_app(
        "asgi",
        &uvicorn_command(),
        &format!("{}\n{keys}", apps_directory()),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uvicorn_serves_32_requests_at_once_on_one_worker() {
    let gh = start("workers = 1\nconcurrency = 32\nhealth = { path = \"/health\" }");
    let worker = wait_ready(&gh, "asgi", 1).await[0];
    wait_serving(&gh.url(0, "/health")).await;

    let served = concurrent_pids(&gh.url(0, "/sleep?ms=200"), 32).await;
    assert_eq!(served, BTreeSet::from([worker]), "one worker served all 32");

    // Overlap as the worker saw it (not wall time): sequentially this would be 1.
    // At least half at once: concurrency 32 is honoured, not some smaller limit.
    let stats = get(&client(), &gh.url(0, "/stats")).await.unwrap();
    let stats: serde_json::Value = serde_json::from_str(&stats.body).unwrap();
    let overlap = stats["max_in_flight"].as_u64().unwrap();
    assert!(
        (16..=32).contains(&overlap),
        "the worker had at most {overlap} requests in flight at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uvicorn_term_finishes_the_requests_in_flight_then_exits_0() {
    let mut gh = start("workers = 1\nconcurrency = 8");
    wait_ready(&gh, "asgi", 1).await;
    wait_serving(&gh.url(0, "/health")).await;
    let in_flight: Vec<_> = (0..4).map(|_| spawn_get(&gh, "/sleep?ms=1500")).collect();
    let client = client();
    gatehouse_tests::eventually("four requests in the worker", || async {
        let stats = get(&client, &gh.url(0, "/stats")).await.unwrap();
        let stats: serde_json::Value = serde_json::from_str(&stats.body).unwrap();
        stats["in_flight"] == 4
    })
    .await;
    let processes = descendants(gh.pid());

    gh.terminate();
    for request in in_flight {
        let answer = request.await.unwrap().unwrap();
        assert_eq!((answer.status, answer.body.as_str()), (200, "slept\n"));
    }
    assert_eq!(gh.wait_exit().code(), Some(0), "{}", gh.logs());
    wait_gone(&processes);
}
