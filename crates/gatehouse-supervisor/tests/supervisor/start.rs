//! Spawning: placeholders, environment, directory, sockets, process groups, publication, scaling.

use std::os::unix::fs::PermissionsExt;

use gatehouse_config::model::Endpoint;
use gatehouse_supervisor::{Error, WorkerState};

use crate::harness::{self, eventually, pids, restarts, text, wait_gone, wait_list, wait_ready};

#[tokio::test]
async fn workers_start_and_are_published_once_ready() {
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let mut app = harness::app("hello", &["--socket", "{socket}"]);
    app.workers = 2;
    app.env.insert("GREETING".into(), "hi".into());
    app.directory = run.path().to_path_buf();
    let supervisor = harness::start(app, run.path(), &load);

    let ready = wait_ready(&supervisor, 2).await;
    assert_eq!(ready.iter().map(|w| w.slot).collect::<Vec<_>>(), [0, 1]);
    let app_dir = run.path().join("hello");
    let mode = std::fs::metadata(&app_dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "the socket directory is private");
    for worker in &ready {
        assert_eq!(worker.generation, 1);
        let Endpoint::Unix(socket) = &worker.endpoint else {
            panic!("a Unix socket endpoint: {:?}", worker.endpoint);
        };
        assert_eq!(socket.parent(), Some(app_dir.as_path()));
        let ep = &worker.endpoint;
        assert_eq!(text(ep, "/pid").await, worker.pid.to_string());
        assert_eq!(
            text(ep, "/env?name=GATEHOUSE_WORKER").await,
            worker.slot.to_string()
        );
        assert_eq!(
            text(ep, "/env?name=GATEHOUSE_SOCKET").await,
            socket.display().to_string()
        );
        assert_eq!(text(ep, "/env?name=PORT").await, "");
        assert_eq!(text(ep, "/env?name=GREETING").await, "hi");
        assert_eq!(text(ep, "/env?name=PYTHONFAULTHANDLER").await, "1");
        assert_eq!(text(ep, "/env?name=PYTHONUNBUFFERED").await, "1");
        let whoami = text(ep, "/whoami").await;
        assert!(
            whoami.contains(&format!("\"pgid\": {}", worker.pid)),
            "leads its group: {whoami}"
        );
        let parent = format!("\"ppid\": {}", std::process::id());
        assert!(whoami.contains(&parent), "a direct child: {whoami}");
        let cwd = format!("\"cwd\": \"{}\"", run.path().display());
        assert!(whoami.contains(&cwd), "runs in `directory`: {whoami}");
    }

    let status = supervisor.status();
    assert_eq!(status.len(), 2);
    for (worker, ready) in status.iter().zip(&ready) {
        assert_eq!(
            (worker.id, worker.pid, worker.slot),
            (ready.id, ready.pid, ready.slot)
        );
        assert_eq!(worker.state, WorkerState::Ready);
        assert_eq!(worker.restarts, 0);
        assert!(
            worker.rss_bytes.is_some_and(|rss| rss > 1 << 20),
            "{worker:?}"
        );
    }
    assert!(supervisor.restarts().iter().all(|(_, count)| *count == 0));

    let sockets: Vec<_> = ready.iter().map(|w| w.endpoint.clone()).collect();
    supervisor.shutdown(true).await;
    for pid in pids(&ready) {
        wait_gone(pid).await;
    }
    for endpoint in sockets {
        if let Endpoint::Unix(socket) = endpoint {
            assert!(!socket.exists(), "{} is removed", socket.display());
        }
    }
}

#[tokio::test]
async fn a_command_with_port_gets_a_loopback_port() {
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let supervisor = harness::start(
        harness::app("tcp", &["--port", "{port}"]),
        run.path(),
        &load,
    );
    let ready = wait_ready(&supervisor, 1).await;
    let Endpoint::Tcp(hostport) = &ready[0].endpoint else {
        panic!("a TCP endpoint: {:?}", ready[0].endpoint);
    };
    let port = hostport.strip_prefix("127.0.0.1:").expect("loopback");
    assert_eq!(text(&ready[0].endpoint, "/env?name=PORT").await, port);
    assert_eq!(
        text(&ready[0].endpoint, "/env?name=GATEHOUSE_SOCKET").await,
        ""
    );
    supervisor.shutdown(false).await;
    wait_gone(ready[0].pid).await;
}

#[tokio::test]
async fn stale_sockets_are_removed_at_start() {
    let run = harness::runtime_dir();
    let app_dir = run.path().join("stale");
    std::fs::create_dir_all(&app_dir).unwrap();
    let stale = app_dir.join("w1.sock");
    std::fs::write(&stale, b"").unwrap();
    let load = harness::FakeLoad::new();
    let supervisor = harness::start(harness::app("stale", &[]), run.path(), &load);
    assert!(!stale.exists());
    wait_ready(&supervisor, 1).await;
    supervisor.shutdown(false).await;
}

#[tokio::test]
async fn scale_adds_and_removes_workers_but_keeps_one() {
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let supervisor = harness::start(harness::app("scale", &[]), run.path(), &load);
    let first = wait_ready(&supervisor, 1).await;

    supervisor.scale(1);
    supervisor.scale(1);
    let three = wait_ready(&supervisor, 3).await;
    assert_eq!(three.iter().map(|w| w.slot).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(three[0].pid, first[0].pid, "existing workers stay");

    for _ in 0..3 {
        supervisor.scale(-1);
    }
    let one = wait_ready(&supervisor, 1).await;
    assert_eq!(one[0].pid, first[0].pid, "the highest slots go first");
    wait_gone(three[1].pid).await;
    wait_gone(three[2].pid).await;
    assert_eq!(restarts(&supervisor, "scale"), 2);
    assert_eq!(
        supervisor.ready_workers().borrow().len(),
        1,
        "never below one worker"
    );
    supervisor.shutdown(true).await;
}

#[tokio::test]
async fn a_command_that_cannot_spawn_is_retried_not_fatal() {
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let app = harness::command_app("missing", vec!["/nonexistent/gatehouse-app".into()]);
    let supervisor = harness::start(app, run.path(), &load);
    eventually("two failed spawns", || async {
        (restarts(&supervisor, "crash") >= 2).then_some(())
    })
    .await;
    assert!(supervisor.ready_workers().borrow().is_empty());
    supervisor.shutdown(false).await;
}

#[tokio::test]
async fn what_no_retry_fixes_is_an_error_at_start() {
    let run = harness::runtime_dir();
    let load = harness::FakeLoad::new();
    let load_view: std::sync::Arc<dyn gatehouse_supervisor::LoadView> = load.clone();
    let long = run.path().join("x".repeat(120));
    let err = gatehouse_supervisor::Supervisor::start(harness::app("a", &[]), &long, load_view)
        .err()
        .expect("a socket path too long is refused");
    assert!(matches!(err, Error::SocketPathTooLong { .. }), "{err}");
}

#[tokio::test]
async fn workers_drop_privileges_when_root() {
    if !running_as_root() {
        return;
    }
    let run = harness::runtime_dir();
    // The worker user must reach its directory through the temp dir.
    std::fs::set_permissions(run.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let load = harness::FakeLoad::new();
    // The test venv and the checkout may sit under /root, which `nobody` cannot enter: run a
    // system interpreter on a copy of the worker inside the (world-searchable) runtime dir.
    let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|candidate| std::path::Path::new(candidate).exists())
        .expect("a system python3 that an unprivileged user can run");
    let worker = run.path().join("worker.py");
    std::fs::copy(harness::worker_py(), &worker).unwrap();
    std::fs::set_permissions(&worker, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut app = harness::command_app(
        "nobody",
        vec![python.to_owned(), worker.display().to_string()],
    );
    app.user = Some("nobody".into());
    app.directory = "/".into();
    let supervisor = harness::start(app, run.path(), &load);
    let ready = wait_list(&supervisor, "the worker as nobody", |l| l.len() == 1).await;
    let whoami = text(&ready[0].endpoint, "/whoami").await;
    assert!(!whoami.contains("\"uid\": 0,"), "{whoami}");
    assert!(!whoami.contains("\"gid\": 0,"), "{whoami}");
    supervisor.shutdown(true).await;
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?.to_owned();
            Some(line.split_whitespace().nth(2)? == "0")
        })
        .unwrap_or(false)
}
