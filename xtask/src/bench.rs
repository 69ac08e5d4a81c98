//! `cargo xtask bench`: gatehouse against Nginx configured the same way (bench/*.conf, *.toml),
//! in the same run, alternating, with wrk. A report, not a test.
//! Flags: `--duration 8s --warmup 2s --connections 64 --rounds 2 --only SUBSTRING`.
//!
//! Static and proxy scenarios: both servers proxy to one shared origin (a tiny Nginx on a Unix
//! socket), so the origin's cost does not bias the ratio.
//! Flask scenarios: the same app (`tests/apps/flask_app.py`) under Gunicorn's sync worker, as
//! Nginx + Gunicorn (`gunicorn -w 5` on a Unix socket behind Nginx, as in the baseline) against
//! gatehouse supervising five `gunicorn -w 1` workers. Flask and Gunicorn come from
//! `tests/requirements.txt`, installed into `<target>/venv` as `cargo xtask test` does.
//!
//! WSGI scenarios (`bench/wsgi.rs`): the same Flask app under gatehouse's built-in worker, under
//! Nginx + Gunicorn and under Granian, in the same run.
//!
//! Server CPU per request comes from /proc/PID/stat (utime + stime), summed over each server's
//! whole process tree, plus the Gunicorn that Nginx proxies to.
//! TLS scenarios (full handshakes per second, HTTPS over HTTP/1.1 and HTTP/2) run last, with
//! their own servers: see `bench/tls.rs`.

mod tls;
mod wsgi;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{cargo, ensure_tools, exec, output, root, target_dir};

/// One thing to measure: a request path both servers answer the same way.
/// Later scenarios (TLS, HTTP/2) add fields here, e.g. the scheme or the load tool.
struct Scenario {
    name: &'static str,
    path: &'static str,
    /// What answers behind the front ends.
    backend: Backend,
    /// wrk's connections when the scenario fixes them; otherwise `--connections`.
    connections: Option<u32>,
}

/// What answers a scenario's requests behind Nginx and gatehouse.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// The front end itself (static files) or the shared origin.
    Origin,
    /// `flask_app.py` under Gunicorn (sync): `-w 5` behind Nginx, 5 × `-w 1` under gatehouse.
    Flask,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "static 1 KiB",
        path: "/static/1k.bin",
        backend: Backend::Origin,
        connections: None,
    },
    Scenario {
        name: "proxy hello",
        path: "/hello",
        backend: Backend::Origin,
        connections: None,
    },
    Scenario {
        name: "flask hello",
        path: "/flask/",
        backend: Backend::Flask,
        connections: None,
    },
    Scenario {
        name: "flask /json",
        path: "/flask/json",
        backend: Backend::Flask,
        connections: None,
    },
    // Five sync workers and 64 clients: the queue decides the latency.
    Scenario {
        name: "flask /sleep 50 ms",
        path: "/flask/sleep?ms=50",
        backend: Backend::Flask,
        connections: Some(64),
    },
];

/// Gunicorn workers on each side: (2 × cores) + 1 on the baseline's 2-core machine.
const FLASK_WORKERS: usize = 5;

struct Options {
    duration: Duration,
    warmup: Duration,
    connections: u32,
    /// Each round measures every scenario on both servers; rounds show the run-to-run noise.
    rounds: u32,
    /// Only the scenarios whose name contains this.
    only: Option<String>,
}

impl Options {
    /// Whether `--only` lets the scenario called `name` run.
    fn selects(&self, name: &str) -> bool {
        self.only.as_deref().is_none_or(|only| name.contains(only))
    }
}

/// What wrk reported for one server on one scenario, plus its CPU.
struct Measurement {
    requests_per_sec: f64,
    p99_ms: f64,
    requests: u64,
    errors: String,
    cpu_us_per_request: f64,
}

pub fn run(args: &[String]) -> Result<()> {
    let options = parse(args)?;
    ensure_tools(&[("/usr/sbin/nginx", "nginx-light"), ("wrk", "wrk")])?;
    let scenarios: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|s| options.selects(s.name))
        .collect();
    if scenarios.is_empty() && !tls::selected(&options) && !wsgi::selected(&options) {
        bail!("no scenario name contains {:?}", options.only);
    }
    // Both configs run the Flask app, whichever scenarios are measured: the test venv has it.
    let python = crate::test::venv()?;
    let venv = python
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| target_dir().join("venv"));
    exec(cargo().args(["build", "--release", "-p", "gatehouse"]))?;
    let gatehouse_bin = target_dir().join("release/gatehouse");

    let dir = std::env::temp_dir().join(format!("gatehouse-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("www"))?;
    std::fs::create_dir_all(dir.join("tmp"))?;
    std::fs::write(dir.join("www/1k.bin"), vec![b'a'; 1024])?;
    let result = if scenarios.is_empty() {
        Ok(())
    } else {
        measure(&options, &scenarios, &dir, &gatehouse_bin, &venv)
    };
    let result = result
        .and_then(|()| wsgi::measure(&options, &dir, &gatehouse_bin, &venv))
        .and_then(|()| tls::measure(&options, &dir, &gatehouse_bin));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(
    options: &Options,
    scenarios: &[&Scenario],
    dir: &Path,
    gatehouse_bin: &Path,
    venv: &Path,
) -> Result<()> {
    let clock_ticks: f64 = output(Command::new("getconf").arg("CLK_TCK"))?
        .trim()
        .parse()?;
    let _origin = Server::nginx(dir, "origin", None, None)?;
    wait_for(|| dir.join("origin.sock").exists(), "the origin's socket")?;
    // Nginx's Gunicorn, started before Nginx so that Nginx never answers 502 while it boots.
    let gunicorn = Gunicorn::start(dir, venv)?;
    wait_for(|| dir.join("gunicorn.sock").exists(), "Gunicorn's socket")?;
    let nginx = Server::nginx(dir, "nginx", Some(free_port()?), Some(gunicorn))?;
    let gatehouse = Server::gatehouse(dir, gatehouse_bin, free_port()?)?;
    for server in [&nginx, &gatehouse] {
        for scenario in scenarios {
            server.ready(scenario.path)?;
        }
        // Every worker up, not just the first: gatehouse starts its five one by one.
        server.ready_workers("/flask/sleep?ms=300", FLASK_WORKERS)?;
    }

    println!(
        "wrk -t1 -c{} -d{}s --latency after a {}s warm-up; nginx 2 workers; CPU = server utime+stime",
        options.connections,
        options.duration.as_secs(),
        options.warmup.as_secs()
    );
    if scenarios.iter().any(|s| s.backend == Backend::Flask) {
        println!(
            "flask: nginx = Nginx -> gunicorn -w {FLASK_WORKERS} (sync, Unix socket); gatehouse = {FLASK_WORKERS} workers of gunicorn -w 1; CPU includes Gunicorn"
        );
    }
    println!("| scenario | nginx req/s | gatehouse req/s | ratio | nginx p99 ms | gatehouse p99 ms | nginx CPU µs/req | gatehouse CPU µs/req |");
    println!("|---|---|---|---|---|---|---|---|");
    for round in 1..=options.rounds {
        for scenario in scenarios {
            let n = server_run(&nginx, scenario, options, clock_ticks)?;
            let g = server_run(&gatehouse, scenario, options, clock_ticks)?;
            let name = row_name(scenario.name, round, options.rounds);
            println!(
                "| {name} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} |",
                n.requests_per_sec,
                g.requests_per_sec,
                g.requests_per_sec / n.requests_per_sec,
                n.p99_ms,
                g.p99_ms,
                n.cpu_us_per_request,
                g.cpu_us_per_request
            );
            for (server, m) in [("nginx", &n), ("gatehouse", &g)] {
                if !m.errors.is_empty() {
                    println!(
                        "  ! {server} {name}: {} (of {} requests)",
                        m.errors, m.requests
                    );
                }
            }
        }
    }
    Ok(())
}

/// Warm-up, then the measured run with CPU accounting.
fn server_run(
    server: &Server,
    scenario: &Scenario,
    options: &Options,
    clock_ticks: f64,
) -> Result<Measurement> {
    let url = format!("http://127.0.0.1:{}{}", server.port, scenario.path);
    let connections = scenario.connections.unwrap_or(options.connections);
    wrk(&url, connections, options.warmup)?;
    let before = server.cpu_ticks()?;
    let text = wrk(&url, connections, options.duration)?;
    let ticks = server.cpu_ticks()? - before;
    let mut m = parse_wrk(&text).with_context(|| format!("parsing wrk output:\n{text}"))?;
    m.cpu_us_per_request = ticks as f64 / clock_ticks * 1e6 / m.requests.max(1) as f64;
    Ok(m)
}

fn wrk(url: &str, connections: u32, duration: Duration) -> Result<String> {
    output(Command::new("wrk").args([
        "-t1".to_owned(),
        format!("-c{connections}"),
        format!("-d{}s", duration.as_secs()),
        "--latency".to_owned(),
        url.to_owned(),
    ]))
}

/// Requests/sec, the 99th percentile, the request count, and any error lines.
fn parse_wrk(text: &str) -> Result<Measurement> {
    let mut m = Measurement {
        requests_per_sec: 0.0,
        p99_ms: 0.0,
        requests: 0,
        errors: String::new(),
        cpu_us_per_request: 0.0,
    };
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", value] => m.requests_per_sec = value.parse()?,
            ["99%", value] => m.p99_ms = millis(value)?,
            [count, "requests", "in", ..] => m.requests = count.parse()?,
            _ if line.starts_with("Non-2xx") || line.starts_with("Socket errors") => {
                m.errors.push_str(line);
                m.errors.push(' ');
            }
            _ => {}
        }
    }
    if m.requests == 0 {
        bail!("no requests completed");
    }
    Ok(m)
}

/// wrk's `850.00us`, `4.56ms`, `1.02s` in milliseconds.
fn millis(value: &str) -> Result<f64> {
    let (number, scale) = if let Some(n) = value.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = value.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1000.0)
    } else {
        bail!("unknown latency unit in {value:?}")
    };
    Ok(number.parse::<f64>()? * scale)
}

/// A server process under test; dropping it stops it.
struct Server {
    child: Child,
    port: u16,
    /// The Gunicorn that Nginx proxies the Flask scenarios to: its CPU counts as Nginx's.
    backend: Option<Gunicorn>,
}

impl Server {
    /// Nginx on `bench/{name}.conf` (`nginx-origin.conf` for the origin).
    fn nginx(
        dir: &Path,
        name: &str,
        port: Option<u16>,
        backend: Option<Gunicorn>,
    ) -> Result<Server> {
        let template = if name == "origin" {
            "nginx-origin.conf"
        } else {
            "nginx.conf"
        };
        let conf = render(dir, template, port.unwrap_or(0), &format!("{name}.conf"))?;
        let child = Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join(format!("{name}-error.log")))
            .arg("-c")
            .arg(conf)
            .stdin(Stdio::null())
            .spawn()
            .context("start nginx")?;
        Ok(Server {
            child,
            port: port.unwrap_or(0),
            backend,
        })
    }

    fn gatehouse(dir: &Path, bin: &Path, port: u16) -> Result<Server> {
        let conf = render(dir, "gatehouse.toml", port, "gatehouse.toml")?;
        let child = spawn_gatehouse(bin, &conf)?;
        Ok(Server {
            child,
            port,
            backend: None,
        })
    }

    /// Waits until `path` answers 200.
    fn ready(&self, path: &str) -> Result<()> {
        wait_for(
            || get_ok(self.port, path),
            &format!("port {} to answer {path}", self.port),
        )
    }

    /// Waits until `count` requests to `path` at once are answered by `count` different
    /// processes (their `X-Worker-Pid`): every sync worker is up.
    fn ready_workers(&self, path: &str, count: usize) -> Result<()> {
        let port = self.port;
        wait_for(
            || {
                let requests: Vec<_> = (0..count)
                    .map(|_| {
                        let path = path.to_owned();
                        std::thread::spawn(move || worker_pid(port, &path))
                    })
                    .collect();
                let pids: std::collections::BTreeSet<u32> = requests
                    .into_iter()
                    .filter_map(|request| request.join().ok().flatten())
                    .collect();
                pids.len() >= count
            },
            &format!("{count} workers behind port {port}"),
        )
    }

    /// utime + stime of the server's whole process tree (Nginx's workers, gatehouse's Gunicorns
    /// and their workers) and of Nginx's Gunicorn, in clock ticks.
    fn cpu_ticks(&self) -> Result<u64> {
        let mut roots = vec![self.child.id()];
        roots.extend(self.backend.as_ref().map(|gunicorn| gunicorn.child.id()));
        let processes = processes()?;
        let mut total = 0;
        let mut frontier = roots;
        while let Some(pid) = frontier.pop() {
            for process in &processes {
                if process.pid == pid {
                    total += process.ticks;
                }
                if process.ppid == pid {
                    frontier.push(process.pid);
                }
            }
        }
        Ok(total)
    }
}

/// One line of /proc/PID/stat, as far as the CPU accounting needs it.
struct Process {
    pid: u32,
    ppid: u32,
    /// utime + stime.
    ticks: u64,
}

fn processes() -> Result<Vec<Process>> {
    let mut processes = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(stat) = std::fs::read_to_string(entry?.path().join("stat")) else {
            continue;
        };
        // Fields after the `(comm)`: state ppid ... utime(14) stime(15), 1-based over the whole line.
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let Ok(pid) = head.split_whitespace().next().unwrap_or("").parse() else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let number = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        processes.push(Process {
            pid,
            ppid: u32::try_from(number(1)).unwrap_or(0),
            ticks: number(11) + number(12),
        });
    }
    Ok(processes)
}

/// `gunicorn -w 5` serving `flask_app:app` on `{dir}/gunicorn.sock`: what Nginx proxies to.
struct Gunicorn {
    child: Child,
}

impl Gunicorn {
    fn start(dir: &Path, venv: &Path) -> Result<Gunicorn> {
        let log = std::fs::File::create(dir.join("gunicorn-error.log"))?;
        let child = Command::new(venv.join("bin/gunicorn"))
            .args(["-w", &FLASK_WORKERS.to_string(), "--bind"])
            .arg(format!("unix:{}", dir.join("gunicorn.sock").display()))
            // Gunicorn 27's control socket is one path per user; gatehouse's five would share it.
            .args(["--no-control-socket", "flask_app:app"])
            .current_dir(root().join("tests/apps"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("start gunicorn")?;
        Ok(Gunicorn { child })
    }
}

impl Drop for Gunicorn {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// SIGTERM, then SIGKILL if it is still there after 10 s.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Fills `bench/{template}`'s `{dir}`, `{port}`, `{venv}` and `{apps}` (`tests/apps`) and writes
/// it into `dir` as `name`.
fn render(dir: &Path, template: &str, port: u16, name: &str) -> Result<PathBuf> {
    let text = std::fs::read_to_string(root().join("bench").join(template))?;
    let path = dir.join(name);
    std::fs::write(
        &path,
        text.replace("{dir}", &dir.display().to_string())
            .replace("{port}", &port.to_string())
            .replace("{venv}", &target_dir().join("venv").display().to_string())
            .replace("{apps}", &root().join("tests/apps").display().to_string()),
    )?;
    Ok(path)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// GET `path`; the `X-Worker-Pid` of a 200.
fn worker_pid(port: u16, path: &str) -> Option<u32> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    if !response.starts_with("HTTP/1.1 200") {
        return None;
    }
    response
        .lines()
        .take_while(|line| !line.is_empty())
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("x-worker-pid")
                .then(|| value.trim().parse().ok())
                .flatten()
        })
}

fn get_ok(port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut response).is_ok()
        && response.starts_with("HTTP/1.1 200")
}

fn wait_for(mut condition: impl FnMut() -> bool, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// `gatehouse run -c conf`, quiet on stdout (the access log), its log on stderr.
pub(crate) fn spawn_gatehouse(bin: &Path, conf: &Path) -> Result<std::process::Child> {
    Command::new(bin)
        .args(["run", "-c"])
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("start gatehouse")
}

/// A table row's name: the scenario, and which round when there are several.
pub(crate) fn row_name(scenario: &str, round: u32, rounds: u32) -> String {
    if rounds > 1 {
        format!("{scenario} (run {round})")
    } else {
        scenario.to_owned()
    }
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        duration: Duration::from_secs(8),
        warmup: Duration::from_secs(2),
        connections: 64,
        rounds: 2,
        only: None,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--duration" => options.duration = seconds(value)?,
            "--warmup" => options.warmup = seconds(value)?,
            "--connections" => options.connections = value.parse()?,
            "--rounds" => options.rounds = value.parse()?,
            "--only" => options.only = Some(value.clone()),
            _ => bail!(
                "unknown flag {flag}; flags: --duration 8s --warmup 2s --connections 64 --rounds 2 --only SUBSTRING"
            ),
        }
    }
    Ok(options)
}

/// `8`, `8s` → 8 seconds.
fn seconds(value: &str) -> Result<Duration> {
    Ok(Duration::from_secs(
        value
            .trim_end_matches('s')
            .parse()
            .with_context(|| format!("bad duration {value:?}"))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_output() {
        let text = "Running 8s test @ http://127.0.0.1:8080/\n  1 threads and 64 connections\n  Latency Distribution\n     50%  830.00us\n     75%    1.02ms\n     90%    1.50ms\n     99%    4.56ms\n  512345 requests in 8.00s, 100.00MB read\n  Non-2xx or 3xx responses: 12\nRequests/sec:  64043.12\nTransfer/sec:     12.50MB\n";
        let m = parse_wrk(text).unwrap();
        assert_eq!(m.requests, 512_345);
        assert!((m.requests_per_sec - 64043.12).abs() < 1e-6);
        assert!((m.p99_ms - 4.56).abs() < 1e-9);
        assert!(m.errors.contains("Non-2xx"));
        assert!((millis("850.00us").unwrap() - 0.85).abs() < 1e-9);
        assert!((millis("1.02s").unwrap() - 1020.0).abs() < 1e-9);
    }
}
