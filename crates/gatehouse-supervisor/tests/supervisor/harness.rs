//! What the supervisor tests share: the test app (`tests/apps/worker.py`) as a `model::App`, a fake
//! proxy (`FakeLoad`), a raw HTTP client over a worker's endpoint, /proc checks, captured logs,
//! and waiting for a condition with a deadline.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse_config::model::{App, Endpoint, Health, Launch};
use gatehouse_supervisor::{LoadView, ReadyWorker, Supervisor, WorkerId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// How long any wait lasts before the test fails; a passing test never waits it out.
pub const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);

/// `python3` from PATH, or `$GATEHOUSE_PYTHON`.
pub fn python() -> String {
    std::env::var("GATEHOUSE_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

pub fn worker_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/apps/worker.py")
}

/// An app running `worker.py` with `args` (`{socket}` and friends are substituted by the supervisor),
/// one worker, short timeouts.
pub fn app(name: &str, args: &[&str]) -> App {
    let mut argv = vec![python(), worker_py().display().to_string()];
    argv.extend(args.iter().map(|arg| arg.to_string()));
    command_app(name, argv)
}

/// An app running an arbitrary command.
pub fn command_app(name: &str, argv: Vec<String>) -> App {
    App {
        name: name.to_owned(),
        launch: Launch::Command(argv),
        directory: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        env: BTreeMap::new(),
        workers: 1,
        concurrency: 1,
        timeout: Duration::from_secs(30),
        graceful_timeout: Duration::from_secs(5),
        max_requests: 0,
        max_requests_jitter: 0,
        max_memory: None,
        startup_timeout: Duration::from_secs(10),
        queue_size: 16,
        queue_timeout: Duration::from_secs(5),
        health: None,
        user: None,
        group: None,
        root_path: None,
        buffering: true,
    }
}

/// Fast health checks on `/health`.
pub fn health(failures: u32) -> Health {
    Health {
        path: Some("/health".to_owned()),
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(500),
        failures,
    }
}

/// A runtime directory for one test.
pub fn runtime_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

pub fn start(app: App, runtime_dir: &Path, load: &Arc<FakeLoad>) -> Supervisor {
    install_subscriber();
    let load: Arc<dyn LoadView> = load.clone();
    Supervisor::start(app, runtime_dir, load).expect("supervisor starts")
}

/// The proxy's side, controlled by the test.
#[derive(Default)]
pub struct FakeLoad {
    served: Mutex<HashMap<WorkerId, u64>>,
    in_flight: Mutex<HashMap<WorkerId, usize>>,
    /// While false, no worker is ever idle (draining workers wait).
    idle: AtomicBool,
}

impl FakeLoad {
    pub fn new() -> Arc<FakeLoad> {
        let load = FakeLoad::default();
        load.idle.store(true, Ordering::SeqCst);
        Arc::new(load)
    }

    pub fn set_served(&self, worker: WorkerId, served: u64) {
        self.served.lock().unwrap().insert(worker, served);
    }

    pub fn set_in_flight(&self, worker: WorkerId, in_flight: usize) {
        self.in_flight.lock().unwrap().insert(worker, in_flight);
    }

    pub fn set_idle(&self, idle: bool) {
        self.idle.store(idle, Ordering::SeqCst);
    }
}

impl LoadView for FakeLoad {
    fn served(&self, worker: WorkerId) -> u64 {
        self.served
            .lock()
            .unwrap()
            .get(&worker)
            .copied()
            .unwrap_or(0)
    }

    fn idle(&self, _worker: WorkerId) -> bool {
        self.idle.load(Ordering::SeqCst)
    }

    fn in_flight(&self, worker: WorkerId) -> usize {
        self.in_flight
            .lock()
            .unwrap()
            .get(&worker)
            .copied()
            .unwrap_or(0)
    }
}

/// Polls `condition` until it returns `Some`; panics naming `what` after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the published list satisfies `condition`, and returns it.
pub async fn wait_list(
    supervisor: &Supervisor,
    what: &str,
    condition: impl Fn(&[ReadyWorker]) -> bool,
) -> Vec<ReadyWorker> {
    let mut ready = supervisor.ready_workers();
    let waiting = async {
        loop {
            {
                let list = ready.borrow_and_update();
                if condition(&list) {
                    return list.clone();
                }
            }
            ready.changed().await.expect("the supervisor is running");
        }
    };
    tokio::time::timeout(DEADLINE, waiting)
        .await
        .unwrap_or_else(|_| panic!("timed out after {DEADLINE:?} waiting for {what}"))
}

/// Waits until exactly `n` workers are published.
pub async fn wait_ready(supervisor: &Supervisor, n: usize) -> Vec<ReadyWorker> {
    wait_list(supervisor, &format!("{n} ready workers"), |list| {
        list.len() == n
    })
    .await
}

pub fn pids(list: &[ReadyWorker]) -> Vec<u32> {
    list.iter().map(|worker| worker.pid).collect()
}

pub fn restarts(supervisor: &Supervisor, reason: &str) -> u64 {
    supervisor
        .restarts()
        .into_iter()
        .find(|(name, _)| name == reason)
        .map_or(0, |(_, count)| count)
}

/// A GET over a worker's endpoint, `Connection: close`: the status and body.
pub async fn get(endpoint: &Endpoint, path: &str) -> std::io::Result<(u16, String)> {
    match endpoint {
        Endpoint::Unix(socket) => exchange(UnixStream::connect(socket).await?, path).await,
        Endpoint::Tcp(hostport) => {
            exchange(TcpStream::connect(hostport.as_str()).await?, path).await
        }
    }
}

/// The body of a GET that must answer 200.
pub async fn text(endpoint: &Endpoint, path: &str) -> String {
    let (status, body) = get(endpoint, path)
        .await
        .unwrap_or_else(|err| panic!("GET {path} on {endpoint}: {err}"));
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    path: &str,
) -> std::io::Result<(u16, String)> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no response head in {response:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    Ok((status, body.to_owned()))
}

/// `pid` is a live process (a zombie waiting for its parent counts as gone).
pub fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// Live processes in the process group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if stat(pid).is_some_and(|(state, pgrp)| state != 'Z' && pgrp == pgid) {
            members.push(pid);
        }
    }
    members
}

/// State and process group of `pid` from /proc.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let pgrp = fields.nth(1)?.parse().ok()?;
    Some((state, pgrp))
}

/// Waits until `pid` and every process of its group are gone.
pub async fn wait_gone(pid: u32) {
    eventually(
        &format!("process {pid} and its group to be gone"),
        || async { (!alive(pid) && group_members(pid).is_empty()).then_some(()) },
    )
    .await
}

pub fn kill(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// The log events of this test, one line each: `LEVEL message key=value ...`.
///
/// One global subscriber (installed by `start` or `Logs::capture`) prints every event, so that a
/// failing test shows its log, and hands it to the `Logs` of the thread it happened on: each test
/// runs its supervisor on its own current-thread runtime. (Per-thread default subscribers would
/// be simpler, but tracing's per-callsite interest cache makes them drop events when tests run
/// in parallel.)
#[derive(Clone, Default)]
pub struct Logs {
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

thread_local! {
    static SINK: std::cell::RefCell<Option<Logs>> = const { std::cell::RefCell::new(None) };
}

/// Stops the capture of the current thread when dropped.
pub struct Capturing;

impl Drop for Capturing {
    fn drop(&mut self) {
        SINK.with(|sink| sink.borrow_mut().take());
    }
}

impl Logs {
    /// Captures the events of the current thread until the guard drops.
    pub fn capture() -> (Logs, Capturing) {
        install_subscriber();
        let logs = Logs::default();
        SINK.with(|sink| *sink.borrow_mut() = Some(logs.clone()));
        (logs, Capturing)
    }

    pub fn find(&self, pattern: impl Fn(&str) -> bool) -> Option<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .find(|(_, line)| pattern(line))
            .map(|(_, line)| line.clone())
    }

    /// When each matching line was logged, in order.
    pub fn times(&self, pattern: impl Fn(&str) -> bool) -> Vec<Instant> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, line)| pattern(line))
            .map(|(at, _)| *at)
            .collect()
    }

    pub async fn wait_for(&self, what: &str, pattern: impl Fn(&str) -> bool) -> String {
        eventually(&format!("a log line with {what}"), || async {
            self.find(&pattern)
        })
        .await
    }
}

pub fn install_subscriber() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let _ = tracing::subscriber::set_global_default(Capture);
    });
}

struct Capture;

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = Line(format!("{} ", event.metadata().level()));
        event.record(&mut line);
        eprintln!("{}", line.0);
        SINK.with(|sink| {
            if let Some(logs) = &*sink.borrow() {
                logs.lines.lock().unwrap().push((Instant::now(), line.0));
            }
        });
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

struct Line(String);

impl tracing::field::Visit for Line {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        let _ = write!(self.0, "{}={value} ", field.name());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?} ");
        } else {
            let _ = write!(self.0, "{}={value:?} ", field.name());
        }
    }
}
