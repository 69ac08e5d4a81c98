//! App workers under gatehouse: `[[app]]` configs for the apps in `tests/apps/` (the stdlib
//! `worker.py`, Flask under Gunicorn, an ASGI app under Uvicorn), worker processes as /proc shows
//! them, the supervisor's log lines, and a client [`Load`] that keeps requests going while a test
//! kills, reloads or recycles workers.
//!
//! Gunicorn and Uvicorn come from the venv that `cargo xtask test` prepares from
//! `tests/requirements.txt`: they are looked up next to `$GATEHOUSE_PYTHON`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::python::{apps_dir, python};
use crate::wait::{eventually, wait_until, DEADLINE};
use crate::Gatehouse;

/// A gatehouse config with one loopback listener, the given `[[app]]` tables and `routes`.
///
/// Worker sockets go to the sandbox (`{dir}/run`), so tests running in parallel never share a
/// socket directory. `watch_config = false`: in these tests a HUP is the only reload trigger,
/// even when a test rewrites the file.
pub fn config(apps: &[String], routes: &str) -> String {
    format!(
        r#"
[server]
runtime_dir = "{{dir}}/run"
watch_config = false

[[listener]]
address = "127.0.0.1:0"

{}
{routes}
"#,
        apps.join("\n")
    )
}

/// A config with one app, `name`, serving every path.
pub fn one_app(name: &str, command: &[String], keys: &str) -> String {
    config(
        &[app(name, command, keys)],
        &format!("[[route]]\npath = \"/\"\napp = \"{name}\"\n"),
    )
}

/// An `[[app]]` table: `command`, then `keys` (TOML lines such as `workers = 2`).
pub fn app(name: &str, command: &[String], keys: &str) -> String {
    format!(
        "[[app]]\nname = \"{name}\"\ncommand = {}\n{keys}\n",
        toml_list(command)
    )
}

/// `tests/apps/worker.py` with `args`; it binds `$GATEHOUSE_SOCKET`.
pub fn worker_command(args: &[&str]) -> Vec<String> {
    let mut argv = vec![
        python().display().to_string(),
        "-u".to_owned(),
        apps_dir().join("worker.py").display().to_string(),
    ];
    argv.extend(args.iter().map(|arg| (*arg).to_owned()));
    argv
}

/// Gunicorn (sync, one worker) serving `flask_app:app`; pair it with [`apps_directory`].
///
/// `--timeout 10`: Gunicorn's own worker timeout, above every gatehouse `timeout` used in the
/// tests; its worker also checks that its master is alive every half of it.
/// `--no-control-socket`: Gunicorn 27's control socket is one path per user, which parallel
/// tests would fight over.
pub fn gunicorn_command() -> Vec<String> {
    [
        venv_program("gunicorn").display().to_string().as_str(),
        "-w",
        "1",
        "--bind",
        "unix:{socket}",
        "--timeout",
        "10",
        "--no-control-socket",
        "flask_app:app",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Uvicorn (one process, asyncio) serving `asgi_app:app`; pair it with [`apps_directory`].
pub fn uvicorn_command() -> Vec<String> {
    [
        venv_program("uvicorn").display().to_string().as_str(),
        "--uds",
        "{socket}",
        "--no-access-log",
        "asgi_app:app",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `directory = "…/tests/apps"`, where `flask_app.py` and `asgi_app.py` are imported from.
pub fn apps_directory() -> String {
    format!(
        "directory = {}",
        toml_string(&apps_dir().display().to_string())
    )
}

/// A program installed in the venv next to `$GATEHOUSE_PYTHON` (`<venv>/bin/gunicorn`).
pub fn venv_program(name: &str) -> PathBuf {
    let interpreter = python();
    let path = interpreter
        .parent()
        .map_or_else(|| PathBuf::from(name), |bin| bin.join(name));
    assert!(
        path.is_file(),
        "{} does not exist: run the tests with `cargo xtask test`, which installs \
         tests/requirements.txt into a venv and sets GATEHOUSE_PYTHON to its python \
         (GATEHOUSE_PYTHON is {interpreter:?})",
        path.display()
    );
    path
}

/// A TOML array of strings.
pub fn toml_list<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|item| toml_string(item.as_ref()))
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// A TOML basic string (JSON's escapes are a subset of TOML's).
fn toml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

// ---------------------------------------------------------------------------------------------
// Processes

/// Whether `pid` exists and is not a zombie (a zombie has ended; only its exit status is left).
pub fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|stat| stat.state != 'Z')
}

/// The live direct children of `pid`: gatehouse's workers (a Gunicorn master, not its worker).
pub fn children(pid: u32) -> BTreeSet<u32> {
    processes()
        .into_iter()
        .filter(|p| p.ppid == pid && p.state != 'Z')
        .map(|p| p.pid)
        .collect()
}

/// The parent of `pid`, while it exists.
pub fn parent(pid: u32) -> Option<u32> {
    stat(pid).map(|stat| stat.ppid)
}

/// Every live process below `pid`: workers and their own children.
pub fn descendants(pid: u32) -> BTreeSet<u32> {
    let all = processes();
    let mut found = BTreeSet::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for p in all.iter().filter(|p| p.ppid == parent && p.state != 'Z') {
            if found.insert(p.pid) {
                frontier.push(p.pid);
            }
        }
    }
    found
}

/// Sends signal `name` (`KILL`, `TERM`...) to `pid` with kill(1).
pub fn kill(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Waits until none of `pids` is alive.
pub fn wait_gone(pids: &BTreeSet<u32>) {
    wait_until(&format!("processes {pids:?} to end"), || {
        !pids.iter().any(|pid| alive(*pid))
    });
}

/// Panics naming the processes of `pids` still alive, with their command lines.
pub fn assert_gone(pids: &BTreeSet<u32>) {
    let left: Vec<String> = pids
        .iter()
        .filter(|pid| alive(**pid))
        .map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            format!(
                "{pid}: {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            )
        })
        .collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

struct Stat {
    pid: u32,
    ppid: u32,
    state: char,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses, so split at the last ')'.
    let (_, rest) = text.rsplit_once(") ")?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some(Stat { pid, ppid, state })
}

fn processes() -> Vec<Stat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter_map(stat)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Logs

/// The supervisor's log lines for `app` that contain `message`, in order.
pub fn supervisor_lines(logs: &str, app: &str, message: &str) -> Vec<String> {
    let span = format!("supervisor{{app={app}}}");
    logs.lines()
        .filter(|line| line.contains(&span) && line.contains(message))
        .map(str::to_owned)
        .collect()
}

/// The pids of `app`'s workers that became ready, in order.
pub fn ready_pids(logs: &str, app: &str) -> Vec<u32> {
    supervisor_lines(logs, app, "worker ready")
        .iter()
        .filter_map(|line| pid_field(line))
        .collect()
}

/// Waits until `count` workers of `app` have become ready (replacements count too) and returns
/// the pids of every worker that has.
pub async fn wait_ready(gatehouse: &Gatehouse, app: &str, count: usize) -> Vec<u32> {
    eventually(&format!("{count} ready workers of {app}"), || async {
        ready_pids(&gatehouse.logs(), app).len() >= count
    })
    .await;
    ready_pids(&gatehouse.logs(), app)
}

/// Waits for a line of gatehouse's log that satisfies `pred` and returns it. Unlike
/// [`Gatehouse::wait_for_log`] it does not block the thread, so a [`Load`] keeps going meanwhile.
pub async fn log_line(gatehouse: &Gatehouse, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let find = || {
        gatehouse
            .logs()
            .lines()
            .find(|line| pred(line))
            .map(str::to_owned)
    };
    eventually(&format!("a log line with {what}"), || async {
        find().is_some()
    })
    .await;
    find().expect("the line is still there")
}

/// The value of ` name=` in a log line (`pid=42`, `app="w"`), without quotes.
pub fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=");
    let start = line.find(&key)? + key.len();
    let value = line[start..].split_whitespace().next()?;
    Some(value.trim_matches('"'))
}

/// The `pid=` field of a log line.
pub fn pid_field(line: &str) -> Option<u32> {
    field(line, "pid")?.parse().ok()
}

/// The time at the start of a log line (`2026-11-26T22:41:24.248380Z`), in seconds since the epoch.
pub fn timestamp(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut ymd = date.split('-').map(str::parse::<i64>);
    let (year, month, day) = (ymd.next()?.ok()?, ymd.next()?.ok()?, ymd.next()?.ok()?);
    let mut hms = time.split(':');
    let hours: f64 = hms.next()?.parse().ok()?;
    let minutes: f64 = hms.next()?.parse().ok()?;
    let seconds: f64 = hms.next()?.parse().ok()?;
    let days = days_from_civil(year, month, day) as f64;
    Some(days * 86_400.0 + hours * 3600.0 + minutes * 60.0 + seconds)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

// ---------------------------------------------------------------------------------------------
// Clients

/// One answer as the tests look at it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// `X-Worker-Pid`: the process that served it (every test app sets it).
    pub pid: Option<u32>,
    pub retry_after: Option<String>,
    pub body: String,
}

/// A client for the worker tests: no redirects, no proxy, one pool per call site.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(DEADLINE)
        .build()
        .expect("build a reqwest client")
}

/// GET `url`; a transport error (reset, timeout) is returned as text.
pub async fn get(client: &reqwest::Client, url: &str) -> Result<Answer, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e:?}"))?;
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let pid = header("x-worker-pid").and_then(|pid| pid.parse().ok());
    let retry_after = header("retry-after");
    let body = response
        .text()
        .await
        .map_err(|e| format!("{url}: body: {e:?}"))?;
    Ok(Answer {
        status,
        pid,
        retry_after,
        body,
    })
}

/// `count` requests to `url` at once; panics unless each is a 200. Returns the pids that served.
pub async fn concurrent_pids(url: &str, count: usize) -> BTreeSet<u32> {
    let client = client();
    let requests = (0..count).map(|_| get(&client, url));
    let mut pids = BTreeSet::new();
    for answer in futures_util::future::join_all(requests).await {
        let answer = answer.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(answer.status, 200, "{url}: {}", answer.body);
        pids.insert(answer.pid.expect("X-Worker-Pid"));
    }
    pids
}

/// Waits until `url` answers 200 (the app's first worker is ready).
pub async fn wait_serving(url: &str) {
    let client = client();
    eventually(&format!("{url} to answer 200"), || async {
        get(&client, url).await.is_ok_and(|a| a.status == 200)
    })
    .await;
}

/// `clients` tasks sending GET `url` one after another until stopped, recording every outcome.
pub struct Load {
    stop: Arc<AtomicBool>,
    shared: Arc<Tally>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    /// Pids of the 200s, in the order they were answered.
    pids: Mutex<Vec<u32>>,
    failures: Mutex<Vec<String>>,
}

/// What a [`Load`] saw.
#[derive(Debug)]
pub struct LoadReport {
    pub ok: usize,
    pub pids: Vec<u32>,
    /// Every answer that was not a 200, and every transport error.
    pub failures: Vec<String>,
}

impl Load {
    /// Starts the clients (on the current tokio runtime).
    pub fn start(url: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Tally::default());
        let tasks = (0..clients)
            .map(|_| {
                let (url, stop, shared) = (url.to_owned(), Arc::clone(&stop), Arc::clone(&shared));
                tokio::spawn(async move {
                    let client = client();
                    while !stop.load(Ordering::Relaxed) {
                        match get(&client, &url).await {
                            Ok(answer) if answer.status == 200 => {
                                shared.ok.fetch_add(1, Ordering::Relaxed);
                                lock(&shared.pids).push(answer.pid.unwrap_or(0));
                            }
                            Ok(answer) => lock(&shared.failures).push(format!(
                                "status {}: {}",
                                answer.status,
                                answer.body.trim()
                            )),
                            Err(error) => lock(&shared.failures).push(error),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            shared,
            tasks,
        }
    }

    /// 200s so far.
    pub fn ok(&self) -> usize {
        self.shared.ok.load(Ordering::Relaxed)
    }

    /// Distinct pids that have answered so far.
    pub fn pids(&self) -> BTreeSet<u32> {
        lock(&self.shared.pids).iter().copied().collect()
    }

    /// Waits until `more` further requests have been answered 200.
    pub async fn wait_for_more(&self, more: usize) {
        let target = self.ok() + more;
        eventually(&format!("{target} answered requests"), || async {
            self.ok() >= target
        })
        .await;
    }

    /// Stops the clients (each finishes its request in flight) and reports.
    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("a load client panicked");
        }
        LoadReport {
            ok: self.shared.ok.load(Ordering::Relaxed),
            pids: lock(&self.shared.pids).clone(),
            failures: lock(&self.shared.failures).clone(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_timestamps_of_log_lines() {
        let line = "2026-11-26T22:41:24.248380Z  INFO supervisor{app=f}: gatehouse_supervisor::arbiter: worker started worker=0 pid=1729 generation=1";
        assert_eq!(pid_field(line), Some(1729));
        assert_eq!(field(line, "generation"), Some("1"));
        let output = "2026-11-26T22:41:24.245290Z  INFO gatehouse_supervisor::output: x app=\"f\" worker=0 pid=1680 stream=\"stderr\"";
        assert_eq!(field(output, "app"), Some("f"));
        assert_eq!(field(output, "stream"), Some("stderr"));
        let at = timestamp(line).unwrap();
        let before = timestamp("2026-11-26T22:41:23.248380Z INFO").unwrap();
        assert!((at - before - 1.0).abs() < 1e-6);
        let next_day = timestamp("2026-11-27T00:00:00.000000Z INFO").unwrap();
        let midnight = timestamp("2026-11-26T23:59:59.500000Z INFO").unwrap();
        assert!((next_day - midnight - 0.5).abs() < 1e-6);
        assert_eq!(timestamp("1970-01-02T00:00:00Z x"), Some(86_400.0));
        assert_eq!(
            supervisor_lines(line, "f", "worker started"),
            vec![line.to_owned()]
        );
        assert!(supervisor_lines(line, "g", "worker started").is_empty());
    }

    #[test]
    fn quotes_toml_lists() {
        assert_eq!(
            toml_list(&["a b", "unix:{socket}", "q\"uote"]),
            r#"["a b", "unix:{socket}", "q\"uote"]"#
        );
    }

    #[test]
    fn sees_its_own_process_tree() {
        let me = std::process::id();
        assert!(alive(me));
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(children(me).contains(&pid));
        assert!(descendants(me).contains(&pid));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!alive(pid));
    }
}
