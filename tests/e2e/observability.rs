//! Observability: the admin endpoint's `/metrics` (valid for promtool, counters that move by
//! exactly what was sent, no series per URL, app queue and restart metrics in the supervisor's
//! scenarios), `/livez` and `/readyz` (503 while draining and while an app has no ready worker),
//! `/status` (the live workers), `gatehouse status` and `gatehouse health`, and the access log's
//! queue time.
//!
//! The app is the stdlib `tests/apps/worker.py`; the admin listener binds port 0 and is found
//! from its `admin listening on` log line.

use std::collections::BTreeSet;

use gatehouse_tests::admin::{promtool_check, Admin, Metrics, ADMIN_ON};
use gatehouse_tests::wait::wait_until;
use gatehouse_tests::workers::{
    client, concurrent_pids, get, kill, log_line, one_app, pid_field, wait_ready, worker_command,
    Answer,
};
use gatehouse_tests::{eventually, Gatehouse, Sandbox};
use sha2::{Digest, Sha256};

const REQUESTS: &str = "gatehouse_http_requests_total";
const RESTARTS: &str = "gatehouse_app_worker_restarts_total";
const REJECTED: &str = "gatehouse_app_queue_rejected_total";

/// Gatehouse with `worker.py` (run with `args`) as app `w` at `/`, `keys` for the app, `extra`
/// config, and the admin listener on.
fn start_app(args: &[&str], keys: &str, extra: &str) -> (Gatehouse, Admin) {
    let config = format!(
        "{}{extra}{ADMIN_ON}",
        one_app("w", &worker_command(args), keys)
    );
    let gh = Gatehouse::start(&config);
    let admin = Admin::of(&gh);
    (gh, admin)
}

/// Gatehouse with fixed-response routes only (no app), and the admin listener on.
fn start_routes(routes: &str) -> (Gatehouse, Admin) {
    let config = format!("[[listener]]\naddress = \"127.0.0.1:0\"\n{routes}{ADMIN_ON}");
    let gh = Gatehouse::start(&config);
    let admin = Admin::of(&gh);
    (gh, admin)
}

/// GET `path` on a spawned task, so that it stays in flight while the test goes on.
fn spawn_get(gh: &Gatehouse, path: &str) -> tokio::task::JoinHandle<Result<Answer, String>> {
    let url = gh.url(0, path);
    tokio::spawn(async move { get(&client(), &url).await })
}

/// Waits until the worker running `/sleep?ms={ms}` said so: the request holds its slot.
async fn sleeping(gh: &Gatehouse, ms: u64) -> u32 {
    let needle = format!("sleeping {ms} ms");
    let line = log_line(gh, &needle, |line| line.contains(&needle)).await;
    pid_field(&line).expect("worker output carries pid=")
}

/// Waits until a scrape satisfies `condition`, and returns that scrape.
async fn scrape_until(admin: &Admin, what: &str, condition: impl Fn(&Metrics) -> bool) -> Metrics {
    eventually(what, || async { condition(&admin.metrics().await) }).await;
    admin.metrics().await
}

fn restarts(metrics: &Metrics, reason: &str) -> f64 {
    metrics.sum(RESTARTS, &[("app", "w"), ("reason", reason)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_have_every_family_with_its_type() {
    let (gh, admin) = start_app(&[], "workers = 1", "");
    wait_ready(&gh, "w", 1).await;
    let answer = get(&client(), &gh.url(0, "/pid")).await.unwrap();
    assert_eq!(answer.status, 200);

    let metrics = admin.metrics().await;
    promtool_check(metrics.text());
    for (family, kind) in [
        ("gatehouse_http_requests_total", "counter"),
        ("gatehouse_http_request_duration_seconds", "histogram"),
        ("gatehouse_http_response_bytes_total", "counter"),
        ("gatehouse_connections_active", "gauge"),
        ("gatehouse_app_workers", "gauge"),
        ("gatehouse_app_worker_restarts_total", "counter"),
        ("gatehouse_app_queue_depth", "gauge"),
        ("gatehouse_app_queue_wait_seconds", "histogram"),
        ("gatehouse_app_queue_rejected_total", "counter"),
        ("gatehouse_upstream_request_duration_seconds", "histogram"),
        ("gatehouse_config_reloads_total", "counter"),
        (
            "gatehouse_config_last_reload_success_timestamp_seconds",
            "gauge",
        ),
        ("gatehouse_build_info", "gauge"),
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
    ] {
        let declared = format!("# TYPE {family} {kind}\n");
        assert!(
            metrics.text().contains(&declared),
            "missing `{}`:\n{}",
            declared.trim(),
            metrics.text()
        );
    }
    let version = env!("CARGO_PKG_VERSION");
    assert!(metrics.has("gatehouse_build_info", &[("version", version)]));
    assert_eq!(
        metrics.sum(
            REQUESTS,
            &[("route", "/"), ("method", "GET"), ("code", "200")]
        ),
        1.0
    );
    assert_eq!(
        metrics.sum(
            "gatehouse_upstream_request_duration_seconds_count",
            &[("target", "w")]
        ),
        1.0
    );
    for state in ["starting", "ready", "busy", "draining"] {
        assert!(metrics.has("gatehouse_app_workers", &[("app", "w"), ("state", state)]));
    }
    assert_eq!(
        metrics.sum("gatehouse_app_workers", &[("state", "ready")]),
        1.0
    );
    assert!(
        metrics.sum(
            "gatehouse_config_last_reload_success_timestamp_seconds",
            &[]
        ) > 0.0,
        "set at start"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_counters_move_by_exactly_what_was_sent() {
    let (gh, admin) = start_routes(
        r#"
[[route]]
path = "/ok"
respond = { status = 200, body = "fine" }

[[route]]
path = "/made"
respond = { status = 201, body = "made!" }
"#,
    );
    let before = admin.metrics().await;
    let client = client();
    let purge = reqwest::Method::from_bytes(b"PURGE").unwrap();
    let mut sent = Vec::new();
    for _ in 0..5 {
        sent.push(client.get(gh.url(0, "/ok")).send());
    }
    for _ in 0..3 {
        sent.push(client.post(gh.url(0, "/made")).body("x").send());
    }
    for i in 0..2 {
        sent.push(client.get(gh.url(0, &format!("/missing/{i}"))).send());
    }
    for _ in 0..2 {
        sent.push(client.request(purge.clone(), gh.url(0, "/ok")).send());
    }
    for response in futures_util::future::join_all(sent).await {
        // Reading the body to its end: the request is counted when its response is complete.
        response.unwrap().bytes().await.unwrap();
    }
    let after = admin.metrics().await;

    let delta =
        |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    let requests = |route, method, code| {
        delta(
            REQUESTS,
            &[("route", route), ("method", method), ("code", code)],
        )
    };
    assert_eq!(requests("/ok", "GET", "200"), 5.0);
    assert_eq!(requests("/made", "POST", "201"), 3.0);
    assert_eq!(requests("none", "GET", "404"), 2.0, "no route matched");
    assert_eq!(requests("/ok", "OTHER", "200"), 2.0, "PURGE is not a label");
    assert_eq!(delta(REQUESTS, &[]), 12.0, "nothing else was counted");
    assert_eq!(
        delta("gatehouse_http_response_bytes_total", &[("route", "/ok")]),
        7.0 * 4.0
    );
    assert_eq!(
        delta("gatehouse_http_response_bytes_total", &[("route", "/made")]),
        3.0 * 5.0
    );
    assert_eq!(
        delta(
            "gatehouse_http_request_duration_seconds_count",
            &[("route", "/ok")]
        ),
        7.0
    );
    assert_eq!(
        delta(
            "gatehouse_http_request_duration_seconds_bucket",
            &[("route", "/made"), ("le", "+Inf")]
        ),
        3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_random_404_paths_add_no_series() {
    let sandbox = Sandbox::new();
    sandbox.write("static/index.html", "<h1>hi</h1>");
    let config = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n\n[[route]]\npath = \"/static/\"\nstatic = {{ root = \"{{dir}}/static\" }}\n{ADMIN_ON}"
    );
    let gh = sandbox.start(&config);
    let admin = Admin::of(&gh);
    let client = client();
    // One of each kind first, so that their series exist before the snapshot.
    for path in ["/static/warm-up", "/warm-up"] {
        let response = client.get(gh.url(0, path)).send().await.unwrap();
        assert_eq!(response.status(), 404);
        response.bytes().await.unwrap();
    }
    let before = admin.metrics().await;

    let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(std::process::id());
    let mut paths = Vec::new();
    for i in 0..1000 {
        // xorshift: distinct, unpredictable-looking paths without a dependency.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let prefix = if i % 2 == 0 { "/static/" } else { "/" };
        paths.push(format!("{prefix}{seed:016x}/{i}?q={seed}"));
    }
    for chunk in paths.chunks(50) {
        let sent = chunk.iter().map(|path| {
            let request = client.get(gh.url(0, path)).send();
            async move {
                let response = request.await.unwrap();
                assert_eq!(response.status(), 404, "{path}");
                response.bytes().await.unwrap();
            }
        });
        futures_util::future::join_all(sent).await;
    }
    let after = admin.metrics().await;

    let series = |metrics: &Metrics| -> BTreeSet<String> {
        metrics
            .series()
            .into_iter()
            .map(|(name, labels)| format!("{name}{labels:?}"))
            .collect()
    };
    let added: Vec<String> = series(&after)
        .difference(&series(&before))
        .cloned()
        .collect();
    assert!(added.is_empty(), "new series: {added:?}");
    let not_found = |metrics: &Metrics| metrics.sum(REQUESTS, &[("code", "404")]);
    assert_eq!(not_found(&after) - not_found(&before), 1000.0);
    assert_eq!(
        after.sum(REQUESTS, &[("route", "/static/"), ("code", "404")]),
        501.0
    );
    assert_eq!(
        after.sum(REQUESTS, &[("route", "none"), ("code", "404")]),
        501.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_depth_wait_busy_state_and_queue_time_in_the_access_log() {
    let (gh, admin) = start_app(
        &[],
        "workers = 1\nconcurrency = 1",
        "\n[log]\naccess_log = \"-\"\naccess_format = \"json\"\n",
    );
    wait_ready(&gh, "w", 1).await;
    let before = admin.metrics().await;

    let held = spawn_get(&gh, "/sleep?ms=3000");
    sleeping(&gh, 3000).await;
    let queued = [spawn_get(&gh, "/pid"), spawn_get(&gh, "/pid")];
    let during = scrape_until(&admin, "two requests queued", |metrics| {
        metrics.sum("gatehouse_app_queue_depth", &[("app", "w")]) == 2.0
    })
    .await;
    assert_eq!(
        during.sum("gatehouse_app_workers", &[("app", "w"), ("state", "busy")]),
        1.0,
        "the only worker has its one slot taken"
    );
    let status = admin.status().await;
    assert_eq!(status["apps"][0]["queue_depth"], 2);
    assert_eq!(status["apps"][0]["workers"][0]["state"], "busy");
    assert_eq!(status["apps"][0]["workers"][0]["in_flight"], 1);
    assert!(!held.is_finished(), "the slot was held throughout");

    assert_eq!(held.await.unwrap().unwrap().status, 200);
    for request in queued {
        assert_eq!(request.await.unwrap().unwrap().status, 200);
    }
    let after = admin.metrics().await;
    let wait = |metrics: &Metrics, series: &str| {
        metrics.sum(
            &format!("gatehouse_app_queue_wait_seconds_{series}"),
            &[("app", "w")],
        )
    };
    assert_eq!(wait(&after, "count") - wait(&before, "count"), 3.0);
    assert!(wait(&after, "sum") > wait(&before, "sum"));
    assert_eq!(after.sum("gatehouse_app_queue_depth", &[("app", "w")]), 0.0);

    // The access log says who answered, how long it took, and how long each request queued.
    wait_until("three access log lines", || {
        gh.stdout()
            .all()
            .iter()
            .filter(|line| line.contains("\"/pid\"") || line.contains("/sleep"))
            .count()
            >= 3
    });
    for line in gh.stdout().all().iter().filter(|l| l.contains("\"/pid\"")) {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(record["queue_ms"].as_f64().is_some(), "{line}");
        assert!(record["upstream_ms"].as_f64().is_some(), "{line}");
        assert!(
            record["upstream"]
                .as_str()
                .is_some_and(|u| u.starts_with("unix:")),
            "{line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_rejections_count_full_and_timeout() {
    let (gh, admin) = start_app(
        &[],
        "workers = 1\nqueue_size = 1\nqueue_timeout = \"2s\"",
        "",
    );
    wait_ready(&gh, "w", 1).await;
    let held = spawn_get(&gh, "/sleep?ms=8000");
    sleeping(&gh, 8000).await;
    // The one queue place is taken by a request that will wait out queue_timeout...
    let timing_out = spawn_get(&gh, "/pid");
    scrape_until(&admin, "one request queued", |metrics| {
        metrics.sum("gatehouse_app_queue_depth", &[("app", "w")]) == 1.0
    })
    .await;
    // ...so the next finds the queue full.
    let full = get(&client(), &gh.url(0, "/pid")).await.unwrap();
    assert_eq!(full.status, 503);
    assert_eq!(timing_out.await.unwrap().unwrap().status, 503);
    assert!(!held.is_finished());

    let metrics = admin.metrics().await;
    let rejected = |reason| metrics.sum(REJECTED, &[("app", "w"), ("reason", reason)]);
    assert_eq!(rejected("full"), 1.0);
    assert_eq!(rejected("timeout"), 1.0);
    assert_eq!(rejected("no_worker"), 0.0);
    assert_eq!(
        metrics.sum(
            REQUESTS,
            &[("route", "/"), ("method", "GET"), ("code", "503")]
        ),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_from_outside_counts_as_a_crash() {
    let (gh, admin) = start_app(&[], "workers = 1", "");
    let first = wait_ready(&gh, "w", 1).await[0];
    assert_eq!(restarts(&admin.metrics().await, "crash"), 0.0);

    kill(first, "KILL");
    let metrics = scrape_until(&admin, "a crash restart", |metrics| {
        restarts(metrics, "crash") == 1.0
    })
    .await;
    assert_eq!(restarts(&metrics, "timeout"), 0.0);
    let second = wait_ready(&gh, "w", 2).await[1];
    assert_ne!(second, first);
    eventually("the replacement in /status", || async {
        let status = admin.status().await;
        let worker = &status["apps"][0]["workers"][0];
        worker["pid"] == second && worker["restarts"] == 1 && worker["state"] == "ready"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_timeout_counts_a_timeout_restart() {
    let (gh, admin) = start_app(&[], "workers = 1\ntimeout = \"1s\"", "");
    wait_ready(&gh, "w", 1).await;
    let answer = get(&client(), &gh.url(0, "/hang")).await.unwrap();
    assert_eq!(answer.status, 504);
    let metrics = scrape_until(&admin, "a timeout restart", |metrics| {
        restarts(metrics, "timeout") == 1.0
    })
    .await;
    assert_eq!(restarts(&metrics, "crash"), 0.0, "gatehouse killed it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recycling_counts_max_requests_restarts() {
    let (gh, admin) = start_app(
        &[],
        "workers = 1\nmax_requests = 3\nmax_requests_jitter = 0",
        "",
    );
    wait_ready(&gh, "w", 1).await;
    let client = client();
    eventually("a max_requests restart", || async {
        // Keep the app busy: each answer brings the worker closer to its recycle.
        let answer = get(&client, &gh.url(0, "/pid")).await.unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
        restarts(&admin.metrics().await, "max_requests") >= 1.0
    })
    .await;
    let metrics = admin.metrics().await;
    assert_eq!(restarts(&metrics, "crash"), 0.0);
    promtool_check(metrics.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_503_on_sigterm_while_livez_stays_200() {
    let (mut gh, admin) = start_app(&[], "workers = 1", "");
    wait_ready(&gh, "w", 1).await;
    eventually("/readyz 200", || async {
        admin.status_of("/readyz").await == 200
    })
    .await;
    assert_eq!(admin.status_of("/livez").await, 200);

    let held = spawn_get(&gh, "/sleep?ms=5000");
    sleeping(&gh, 5000).await;
    gh.terminate();
    eventually("/readyz 503 after SIGTERM", || async {
        admin.status_of("/readyz").await == 503
    })
    .await;
    let (_, reason) = admin.get("/readyz").await;
    assert!(reason.contains("draining"), "{reason}");
    assert_eq!(
        admin.status_of("/livez").await,
        200,
        "the admin listener stays up"
    );
    assert!(
        !held.is_finished(),
        "checked while a request was still in flight"
    );
    assert_eq!(held.await.unwrap().unwrap().status, 200);
    assert!(gh.wait_exit().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_an_app_has_no_ready_worker() {
    let (gh, admin) = start_app(&["--crash-on-start"], "workers = 1", "");
    let metrics = scrape_until(&admin, "a crash of the starting worker", |metrics| {
        restarts(metrics, "crash") >= 1.0
    })
    .await;
    assert_eq!(
        metrics.sum("gatehouse_app_workers", &[("app", "w"), ("state", "ready")]),
        0.0
    );
    let (status, reason) = admin.get("/readyz").await;
    assert_eq!(status, 503);
    assert!(reason.contains("app w has no ready worker"), "{reason}");
    assert_eq!(admin.status_of("/livez").await, 200);

    let answer = get(&client(), &gh.url(0, "/")).await.unwrap();
    assert_eq!(answer.status, 503);
    let metrics = admin.metrics().await;
    assert_eq!(
        metrics.sum(REJECTED, &[("app", "w"), ("reason", "no_worker")]),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_the_live_workers_and_the_cli_prints_them() {
    let (gh, admin) = start_app(&[], "workers = 2", "");
    wait_ready(&gh, "w", 2).await;
    eventually("/readyz 200", || async {
        admin.status_of("/readyz").await == 200
    })
    .await;
    // Two requests at once on two sync workers: each worker answers one.
    let pids = concurrent_pids(&gh.url(0, "/sleep?ms=300"), 2).await;
    assert_eq!(pids.len(), 2);
    for pid in &pids {
        let answer = get(&client(), &gh.url(0, "/pid")).await.unwrap();
        assert!(
            pids.contains(&answer.body.parse().unwrap()),
            "{answer:?} {pid}"
        );
    }

    let status = admin.status().await;
    let app = &status["apps"][0];
    assert_eq!(app["name"], "w");
    assert_eq!(app["queue_depth"], 0);
    let workers = app["workers"].as_array().unwrap();
    let listed: BTreeSet<u32> = workers
        .iter()
        .map(|worker| worker["pid"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(listed, pids);
    let served: u64 = workers
        .iter()
        .map(|worker| worker["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(served, 4);
    for worker in workers {
        assert_eq!(worker["state"], "ready", "{worker}");
        assert_eq!(worker["generation"], 1);
        assert_eq!(worker["in_flight"], 0);
        assert_eq!(worker["restarts"], 0);
        assert!(
            worker["rss_bytes"].as_u64().is_some_and(|rss| rss > 0),
            "{worker}"
        );
        assert!(worker["age_seconds"].is_u64(), "{worker}");
    }
    let config_path = gh.sandbox().join("gatehouse.toml");
    let expected_hash: String = Sha256::digest(std::fs::read(&config_path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let config = &status["config"];
    assert_eq!(config["path"], config_path.display().to_string());
    assert_eq!(config["hash"], expected_hash);
    assert_eq!(config["last_reload"]["result"], "success");
    assert!(config["last_reload"]["error"].is_null());

    // The CLI reads the admin address from a config file: one naming the real port.
    let cli_config = format!(
        "[admin]\nlisten = \"{}\"\n\n[[listener]]\naddress = \"127.0.0.1:0\"\n",
        admin.addr()
    );
    gh.sandbox().write("cli.toml", cli_config);
    let output = gh.sandbox().command(&["status", "-c", "cli.toml"]);
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    let header = table.lines().next().unwrap_or_default();
    for column in [
        "APP",
        "PID",
        "STATE",
        "GEN",
        "REQUESTS",
        "IN FLIGHT",
        "RSS",
        "AGE",
        "RESTARTS",
    ] {
        assert!(header.contains(column), "{header}");
    }
    for pid in &pids {
        assert!(
            table
                .lines()
                .any(|line| line.split_whitespace().nth(1) == Some(pid.to_string().as_str())),
            "pid {pid} in\n{table}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_exits_0_while_alive_and_1_otherwise() {
    let (gh, admin) =
        start_routes("[[route]]\npath = \"/\"\nrespond = { status = 200, body = \"ok\" }\n");
    let sandbox = gh.sandbox();
    let cli_config = |address: &str| {
        format!("[admin]\nlisten = \"{address}\"\n\n[[listener]]\naddress = \"127.0.0.1:0\"\n")
    };
    sandbox.write("alive.toml", cli_config(&admin.addr().to_string()));
    let alive = sandbox.command(&["health", "-c", "alive.toml"]);
    assert_eq!(alive.status.code(), Some(0), "{alive:?}");

    sandbox.write("closed.toml", cli_config(&crate::closed_port().to_string()));
    let closed = sandbox.command(&["health", "-c", "closed.toml"]);
    assert_eq!(closed.status.code(), Some(1), "{closed:?}");

    // A config with the admin listener off, or no config at all: unhealthy, never exit 2.
    sandbox.write(
        "off.toml",
        "[admin]\nlisten = \"off\"\n\n[[listener]]\naddress = \"127.0.0.1:0\"\n",
    );
    let off = sandbox.command(&["health", "-c", "off.toml"]);
    assert_eq!(off.status.code(), Some(1), "{off:?}");
    let missing = sandbox.command(&["health", "-c", "missing.toml"]);
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");

    let status_closed = sandbox.command(&["status", "-c", "closed.toml"]);
    assert_eq!(status_closed.status.code(), Some(1), "{status_closed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_are_counted_and_shown_in_status() {
    let routes = "[[route]]\npath = \"/\"\nrespond = { status = 200, body = \"one\" }\n";
    let (gh, admin) = start_routes(routes);
    let config_path = gh.sandbox().join("gatehouse.toml");
    let reloads = |metrics: &Metrics, result| {
        metrics.sum("gatehouse_config_reloads_total", &[("result", result)])
    };
    let before = admin.metrics().await;
    assert_eq!(reloads(&before, "success"), 0.0);
    assert_eq!(reloads(&before, "failure"), 0.0);
    let started_at = before.sum(
        "gatehouse_config_last_reload_success_timestamp_seconds",
        &[],
    );

    let text = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(&config_path, text.replace("\"one\"", "\"two\"")).unwrap();
    gh.signal("HUP");
    let after = scrape_until(&admin, "a successful reload", |metrics| {
        reloads(metrics, "success") == 1.0
    })
    .await;
    assert!(
        after.sum(
            "gatehouse_config_last_reload_success_timestamp_seconds",
            &[]
        ) >= started_at
    );
    let status = admin.status().await;
    assert_eq!(status["config"]["last_reload"]["result"], "success");

    std::fs::write(&config_path, "this is not toml [").unwrap();
    gh.signal("HUP");
    scrape_until(&admin, "a failed reload", |metrics| {
        reloads(metrics, "failure") == 1.0
    })
    .await;
    let status = admin.status().await;
    let last = &status["config"]["last_reload"];
    assert_eq!(last["result"], "failure");
    assert!(
        last["error"]
            .as_str()
            .is_some_and(|e| e.contains("gatehouse.toml")),
        "{last}"
    );
    // The hash is still the one of the config in effect.
    let text_two = text.replace("\"one\"", "\"two\"");
    let expected: String = Sha256::digest(text_two.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(status["config"]["hash"], expected);
    let answer = get(&client(), &gh.url(0, "/")).await.unwrap();
    assert_eq!(answer.body, "two", "the old config keeps serving");
}
