//! Hot reload: edits of the config file take effect while gatehouse serves, without a failed
//! request; invalid edits are rejected and the running config keeps serving; editor rename-saves
//! and Kubernetes-style symlink swaps are seen; `gatehouse reload` (HUP) rolls every app.
//!
//! Apps are `tests/apps/worker.py` (answers with its pid in X-Worker-Pid) and
//! `tests/apps/upstream.py` (WebSocket echo at /ws), both launched as `[[app]]`s.

use std::collections::BTreeSet;
use std::net::TcpListener;

use futures_util::{SinkExt as _, StreamExt as _};
use gatehouse_tests::admin::Admin;
use gatehouse_tests::python::{apps_dir, python};
use gatehouse_tests::workers::{alive, client, get, toml_list, worker_command, Load};
use gatehouse_tests::{eventually, Gatehouse, Sandbox};
use tokio_tungstenite::tungstenite::Message;

/// Two apps (`web`, 2 workers, and `other`, 1), a static route, the admin endpoint on, and a
/// pid file. `{extra}` is replaced by further tables, `{root}` by the static root's name.
const BASE: &str = r#"
[server]
runtime_dir = "{dir}/run"
pid_file = "{dir}/gatehouse.pid"

[admin]
listen = "127.0.0.1:0"

[log]
access_log = "off"

[[listener]]
address = "127.0.0.1:0"

[[app]]
name = "web"
command = {worker}
workers = {web_workers}
env = { GREETING = "{greeting}" }

[[app]]
name = "other"
command = {worker}
workers = 1

[[route]]
path = "/static/"
static = { root = "{dir}/{root}" }

[[route]]
path = "/"
app = "web"

[[route]]
path = "/other/"
app = "other"
{extra}
"#;

/// The knobs the tests turn in [`BASE`].
#[derive(Clone)]
struct Knobs {
    web_workers: usize,
    greeting: &'static str,
    root: &'static str,
    extra: String,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            web_workers: 2,
            greeting: "hello",
            root: "www1",
            extra: String::new(),
        }
    }
}

impl Knobs {
    fn render(&self) -> String {
        BASE.replace("{worker}", &toml_list(&worker_command(&[])))
            .replace("{web_workers}", &self.web_workers.to_string())
            .replace("{greeting}", self.greeting)
            .replace("{root}", self.root)
            .replace("{extra}", &self.extra)
    }
}

fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write("www1/a.txt", "one\n");
    sandbox.write("www2/a.txt", "two\n");
    sandbox
}

fn start(knobs: &Knobs) -> Gatehouse {
    sandbox().start(&knobs.render())
}

/// Saves the config as editors do: write a temporary file, then rename it over the old one.
fn save(gh: &Gatehouse, knobs: &Knobs) {
    let sandbox = gh.sandbox();
    let text = sandbox.expand(&knobs.render());
    let temporary = sandbox.write(".gatehouse.toml.swp", text);
    std::fs::rename(temporary, sandbox.join("gatehouse.toml")).unwrap();
}

fn count(gh: &Gatehouse, needle: &str) -> usize {
    gh.logs()
        .lines()
        .filter(|line| line.contains(needle))
        .count()
}

/// Waits for the next `reload applied` (or `reload rejected`) line after `before` of them and
/// returns it.
async fn next_reload(gh: &Gatehouse, outcome: &str, before: usize) -> String {
    eventually(&format!("a `{outcome}` line"), || async {
        count(gh, outcome) > before
    })
    .await;
    let logs = gh.logs();
    let mut lines = logs.lines().filter(|line| line.contains(outcome));
    lines.nth(before).unwrap_or_default().to_owned()
}

/// Saves `knobs` and waits for the reload it causes to be applied; returns its summary line.
async fn reload(gh: &Gatehouse, knobs: &Knobs) -> String {
    let before = count(gh, "reload applied");
    save(gh, knobs);
    next_reload(gh, "reload applied", before).await
}

/// The pids of `app`'s workers in `/status` that are `ready` or `busy`.
async fn serving_pids(admin: &Admin, app: &str) -> BTreeSet<u64> {
    let status = admin.status().await;
    status["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["name"] == app)
        .flat_map(|entry| entry["workers"].as_array().cloned().unwrap_or_default())
        .filter(|worker| worker["state"] == "ready" || worker["state"] == "busy")
        .filter_map(|worker| worker["pid"].as_u64())
        .collect()
}

async fn wait_serving_count(admin: &Admin, app: &str, count: usize) -> BTreeSet<u64> {
    eventually(&format!("{count} serving workers of {app}"), || async {
        serving_pids(admin, app).await.len() == count
    })
    .await;
    serving_pids(admin, app).await
}

async fn body(url: &str) -> Result<(u16, String), String> {
    get(&client(), url)
        .await
        .map(|answer| (answer.status, answer.body))
}

async fn wait_body(url: &str, expected: &str) {
    eventually(&format!("{url} to answer {expected:?}"), || async {
        body(url)
            .await
            .is_ok_and(|(status, text)| status == 200 && text == expected)
    })
    .await;
}

/// A TCP port that was free a moment ago.
fn free_port() -> u16 {
    let socket = TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

fn listener_table(port: u16) -> String {
    format!("\n[[listener]]\naddress = \"127.0.0.1:{port}\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_under_load_take_effect_without_a_failed_request() {
    let removed_port = free_port();
    let mut knobs = Knobs {
        extra: listener_table(removed_port),
        ..Knobs::default()
    };
    let gh = start(&knobs);
    let admin = Admin::of(&gh);
    let web = wait_serving_count(&admin, "web", 2).await;
    let other = wait_serving_count(&admin, "other", 1).await;
    let app_load = Load::start(&gh.url(0, "/"), 4);
    let static_load = Load::start(&gh.url(0, "/static/a.txt"), 4);
    let other_load = Load::start(&gh.url(0, "/other/"), 2);
    app_load.wait_for_more(50).await;
    static_load.wait_for_more(50).await;

    // A route.
    knobs.extra = format!(
        "{}\n[[route]]\npath = \"/added\"\nrespond = {{ status = 200, body = \"added\" }}\n",
        listener_table(removed_port)
    );
    let summary = reload(&gh, &knobs).await;
    assert!(summary.contains("route /added added"), "{summary}");
    wait_body(&gh.url(0, "/added"), "added").await;

    // A static root.
    knobs.root = "www2";
    let summary = reload(&gh, &knobs).await;
    assert!(summary.contains("route /static/ changed"), "{summary}");
    wait_body(&gh.url(0, "/static/a.txt"), "two\n").await;

    // A listener added and another removed.
    let added_port = free_port();
    knobs.extra = knobs
        .extra
        .replace(&removed_port.to_string(), &added_port.to_string());
    let summary = reload(&gh, &knobs).await;
    assert!(
        summary.contains(&format!("listener 127.0.0.1:{added_port} added"))
            && summary.contains(&format!("listener 127.0.0.1:{removed_port} removed")),
        "{summary}"
    );
    wait_body(&format!("http://127.0.0.1:{added_port}/added"), "added").await;
    eventually("the removed listener to refuse connections", || async {
        std::net::TcpStream::connect(("127.0.0.1", removed_port)).is_err()
    })
    .await;

    // Scale up, then down: the workers that stay are not replaced.
    knobs.web_workers = 4;
    let summary = reload(&gh, &knobs).await;
    assert!(summary.contains("app web scaled 2 -> 4"), "{summary}");
    let four = wait_serving_count(&admin, "web", 4).await;
    assert!(web.is_subset(&four), "{web:?} kept in {four:?}");
    knobs.web_workers = 1;
    let summary = reload(&gh, &knobs).await;
    assert!(summary.contains("app web scaled 4 -> 1"), "{summary}");
    let one = wait_serving_count(&admin, "web", 1).await;
    assert!(one.is_subset(&four), "{one:?} is one of {four:?}");

    // The environment: web's workers are replaced, other's are not touched.
    knobs.greeting = "bonjour";
    let summary = reload(&gh, &knobs).await;
    assert!(
        summary.contains("app web restarted (env changed)"),
        "{summary}"
    );
    wait_body(&gh.url(0, "/env?name=GREETING"), "bonjour").await;
    let new_web = wait_serving_count(&admin, "web", 1).await;
    assert!(new_web.is_disjoint(&four), "{new_web:?} are new");
    assert_eq!(
        serving_pids(&admin, "other").await,
        other,
        "other untouched"
    );

    app_load.wait_for_more(50).await;
    let reports = [
        ("app", app_load.stop().await),
        ("static", static_load.stop().await),
        ("other app", other_load.stop().await),
    ];
    for (name, report) in reports {
        assert!(
            report.failures.is_empty(),
            "{name}: {} of {} failed: {:?}",
            report.failures.len(),
            report.ok + report.failures.len(),
            report.failures
        );
    }
    let metrics = admin.metrics().await;
    assert_eq!(
        metrics.sum("gatehouse_config_reloads_total", &[("result", "success")]),
        6.0
    );
    assert_eq!(
        metrics.sum("gatehouse_config_reloads_total", &[("result", "failure")]),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_added_and_removed_start_ready_and_stop() {
    let mut knobs = Knobs::default();
    let gh = start(&knobs);
    let admin = Admin::of(&gh);
    let other = wait_serving_count(&admin, "other", 1).await;

    knobs.extra = format!(
        "\n[[app]]\nname = \"third\"\ncommand = {}\n\n[[route]]\npath = \"/third/\"\napp = \"third\"\n",
        toml_list(&worker_command(&[]))
    );
    let summary = reload(&gh, &knobs).await;
    assert!(summary.contains("app third added"), "{summary}");
    // Applied only once its worker was ready: the first request after the reload is served.
    let (status, _) = body(&gh.url(0, "/third/")).await.unwrap();
    assert_eq!(status, 200);

    // Remove `other` (its route goes with it).
    let text = knobs
        .render()
        .replace("[[route]]\npath = \"/other/\"\napp = \"other\"\n", "");
    let without_other = text.replace(
        &format!(
            "[[app]]\nname = \"other\"\ncommand = {}\nworkers = 1\n",
            toml_list(&worker_command(&[]))
        ),
        "",
    );
    assert!(!without_other.contains("\"other\""), "{without_other}");
    let before = count(&gh, "reload applied");
    let temporary = gh
        .sandbox()
        .write(".swp", gh.sandbox().expand(&without_other));
    std::fs::rename(temporary, gh.sandbox().join("gatehouse.toml")).unwrap();
    let summary = next_reload(&gh, "reload applied", before).await;
    assert!(summary.contains("app other removed"), "{summary}");
    eventually("the removed app's worker to exit", || async {
        other
            .iter()
            .all(|pid| u32::try_from(*pid).is_ok_and(|pid| !alive(pid)))
    })
    .await;
    eventually("the removed app to leave /status", || async {
        let status = admin.status().await;
        !status.to_string().contains("\"other\"")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_on_an_unchanged_route_survives_a_reload() {
    let mut knobs = Knobs {
        extra: format!(
            "\n[[app]]\nname = \"echo\"\ncommand = {}\n\n[[route]]\npath = \"/ws\"\napp = \"echo\"\n",
            toml_list(&[
                python().display().to_string(),
                apps_dir().join("upstream.py").display().to_string(),
                "--unix".to_owned(),
                "{socket}".to_owned(),
            ])
        ),
        ..Knobs::default()
    };
    let gh = start(&knobs);
    let admin = Admin::of(&gh);
    wait_serving_count(&admin, "echo", 1).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", gh.addr(0)))
        .await
        .unwrap();
    ws.send(Message::text("before")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("before"));

    knobs.root = "www2";
    knobs.greeting = "changed";
    let summary = reload(&gh, &knobs).await;
    assert!(summary.contains("app web restarted"), "{summary}");
    wait_body(&gh.url(0, "/static/a.txt"), "two\n").await;

    ws.send(Message::text("after")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("after"));
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_edits_are_rejected_and_the_running_config_keeps_serving() {
    let knobs = Knobs::default();
    let gh = start(&knobs);
    let admin = Admin::of(&gh);
    wait_serving_count(&admin, "web", 2).await;
    let load = Load::start(&gh.url(0, "/static/a.txt"), 2);
    load.wait_for_more(20).await;
    let config = gh.sandbox().join("gatehouse.toml");
    let valid = std::fs::read_to_string(&config).unwrap();

    let rejected = |text: String| {
        let gh = &gh;
        async move {
            let before = count(gh, "reload rejected");
            let temporary = gh.sandbox().write(".swp", gh.sandbox().expand(&text));
            std::fs::rename(temporary, gh.sandbox().join("gatehouse.toml")).unwrap();
            next_reload(gh, "reload rejected", before).await;
            let logs = gh.logs();
            let after = logs
                .split("reload rejected")
                .nth(before + 1)
                .unwrap_or_default();
            after.lines().take(3).collect::<Vec<_>>().join("\n")
        }
    };

    // Invalid TOML.
    let reason = rejected(format!("{valid}\nbroken = \n")).await;
    assert!(reason.contains("gatehouse.toml:"), "{reason}");
    // A certificate that does not exist.
    let reason = rejected(format!(
        "{valid}\n[[listener]]\naddress = \"127.0.0.1:0\"\n[listener.tls]\ncertificates = [{{ cert = \"missing.pem\", key = \"missing.key\" }}]\n"
    ))
    .await;
    assert!(
        reason.contains("listener[1].tls.certificates[0].cert"),
        "{reason}"
    );
    // A port someone else holds.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let reason = rejected(format!("{valid}{}", listener_table(port))).await;
    assert!(
        reason.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{reason}"
    );
    // A setting read only at start.
    let reason = rejected(valid.replace("/run\"", "/elsewhere\"")).await;
    assert!(
        reason
            .contains("gatehouse.toml:3:1: server.runtime_dir: cannot change while gatehouse runs"),
        "{reason}"
    );

    // Nothing changed meanwhile, and a valid edit still applies.
    let (status, text) = body(&gh.url(0, "/static/a.txt")).await.unwrap();
    assert_eq!((status, text.as_str()), (200, "one\n"));
    let before = count(&gh, "reload applied");
    let temporary = gh.sandbox().write(".swp", valid.replace("www1", "www2"));
    std::fs::rename(temporary, &config).unwrap();
    next_reload(&gh, "reload applied", before).await;
    wait_body(&gh.url(0, "/static/a.txt"), "two\n").await;

    let report = load.stop().await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let metrics = admin.metrics().await;
    assert_eq!(
        metrics.sum("gatehouse_config_reloads_total", &[("result", "failure")]),
        4.0
    );
    let status = admin.status().await;
    assert_eq!(status["config"]["last_reload"]["result"], "success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_symlink_swap_is_seen() {
    // The layout Kubernetes gives a mounted ConfigMap:
    // gatehouse.toml -> ..data/gatehouse.toml, ..data -> ..2026_v1, swapped by renaming a new link.
    let sandbox = sandbox();
    let mut knobs = Knobs::default();
    sandbox.write(
        "config/..v1/gatehouse.toml",
        sandbox.expand(&knobs.render()),
    );
    let dir = sandbox.join("config");
    std::os::unix::fs::symlink("..v1", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/gatehouse.toml", dir.join("gatehouse.toml")).unwrap();
    let gh = sandbox.start_file(&dir.join("gatehouse.toml"));

    knobs.root = "www2";
    let before = count(&gh, "reload applied");
    let v2 = knobs.render().replace(
        "access_log = \"off\"",
        "access_log = \"off\"\nlevel = \"debug\"",
    );
    gh.sandbox()
        .write("config/..v2/gatehouse.toml", gh.sandbox().expand(&v2));
    std::os::unix::fs::symlink("..v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    let summary = next_reload(&gh, "reload applied", before).await;
    assert!(
        summary.contains("route /static/ changed; log.level changed"),
        "{summary}"
    );
    wait_body(&gh.url(0, "/static/a.txt"), "two\n").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_file_keeps_the_running_config_and_hup_rolls_every_app() {
    let knobs = Knobs::default();
    let gh = start(&knobs);
    let admin = Admin::of(&gh);
    let web = wait_serving_count(&admin, "web", 2).await;
    let other = wait_serving_count(&admin, "other", 1).await;
    let config = gh.sandbox().join("gatehouse.toml");
    let text = std::fs::read_to_string(&config).unwrap();

    std::fs::remove_file(&config).unwrap();
    gh.wait_for_log("was removed; the running config stays");
    let (status, _) = body(&gh.url(0, "/static/a.txt")).await.unwrap();
    assert_eq!(status, 200);

    // Put back unchanged: nothing to reload. Then `gatehouse reload`: HUP, every app rolls.
    let temporary = gh.sandbox().write(".swp", &text);
    std::fs::rename(temporary, &config).unwrap();
    let before = count(&gh, "reload applied");
    let output = gh.sandbox().command(&["reload", "-c", "gatehouse.toml"]);
    assert!(output.status.success(), "{output:?}");
    let summary = next_reload(&gh, "reload applied", before).await;
    assert!(
        summary.contains("no changes; rolling every app's workers"),
        "{summary}"
    );
    eventually("every worker replaced", || async {
        let new_web = serving_pids(&admin, "web").await;
        let new_other = serving_pids(&admin, "other").await;
        new_web.len() == 2
            && new_web.is_disjoint(&web)
            && new_other.len() == 1
            && new_other.is_disjoint(&other)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_listener_added_then_removed_leaves_no_socket_file() {
    let mut knobs = Knobs::default();
    let gh = start(&knobs);
    let socket = gh.sandbox().join("extra.sock");

    knobs.extra = "\n[[listener]]\naddress = \"unix:{dir}/extra.sock\"\n".to_owned();
    let summary = reload(&gh, &knobs).await;
    assert!(summary.contains("extra.sock added"), "{summary}");
    let mut conn = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    std::io::Write::write_all(
        &mut conn,
        b"GET /static/a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut conn, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    knobs.extra = String::new();
    let summary = reload(&gh, &knobs).await;
    assert!(summary.contains("extra.sock removed"), "{summary}");
    eventually("the socket file removed", || async { !socket.exists() }).await;
}
