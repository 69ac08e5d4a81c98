//! `cargo xtask bench`: gatehouse against Nginx configured the same way (bench/*.conf, *.toml),
//! in the same run, alternating, with wrk. A report, not a test.
//! Flags: `--duration 8s --warmup 2s --connections 64 --rounds 2`.
//!
//! Both servers proxy to one shared origin (a tiny Nginx on a Unix socket), so the origin's cost
//! does not bias the ratio. Server CPU per request comes from /proc/PID/stat (utime + stime),
//! summed over Nginx's master and workers.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{cargo, ensure_tools, exec, output, root, target_dir};

/// One thing to measure: a request path both servers answer the same way.
/// Later scenarios (TLS, HTTP/2, apps) add fields here, e.g. the scheme or the load tool.
struct Scenario {
    name: &'static str,
    path: &'static str,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "static 1 KiB",
        path: "/static/1k.bin",
    },
    Scenario {
        name: "proxy hello",
        path: "/hello",
    },
];

struct Options {
    duration: Duration,
    warmup: Duration,
    connections: u32,
    /// Each round measures every scenario on both servers; rounds show the run-to-run noise.
    rounds: u32,
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
    exec(cargo().args(["build", "--release", "-p", "gatehouse"]))?;
    let gatehouse_bin = target_dir().join("release/gatehouse");

    let dir = std::env::temp_dir().join(format!("gatehouse-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("www"))?;
    std::fs::create_dir_all(dir.join("tmp"))?;
    std::fs::write(dir.join("www/1k.bin"), vec![b'a'; 1024])?;
    let result = measure(&options, &dir, &gatehouse_bin);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(options: &Options, dir: &Path, gatehouse_bin: &Path) -> Result<()> {
    let clock_ticks: f64 = output(Command::new("getconf").arg("CLK_TCK"))?
        .trim()
        .parse()?;
    let _origin = Server::nginx(dir, "origin", None)?;
    wait_for(|| dir.join("origin.sock").exists(), "the origin's socket")?;
    let nginx = Server::nginx(dir, "nginx", Some(free_port()?))?;
    let gatehouse = Server::gatehouse(dir, gatehouse_bin, free_port()?)?;
    for server in [&nginx, &gatehouse] {
        for scenario in SCENARIOS {
            server.ready(scenario.path)?;
        }
    }

    println!(
        "wrk -t1 -c{} -d{}s --latency after a {}s warm-up; nginx 2 workers; CPU = server utime+stime",
        options.connections,
        options.duration.as_secs(),
        options.warmup.as_secs()
    );
    println!("| scenario | nginx req/s | gatehouse req/s | ratio | nginx p99 ms | gatehouse p99 ms | nginx CPU µs/req | gatehouse CPU µs/req |");
    println!("|---|---|---|---|---|---|---|---|");
    for round in 1..=options.rounds {
        for scenario in SCENARIOS {
            let n = server_run(&nginx, scenario, options, clock_ticks)?;
            let g = server_run(&gatehouse, scenario, options, clock_ticks)?;
            let name = if options.rounds > 1 {
                format!("{} (run {round})", scenario.name)
            } else {
                scenario.name.to_owned()
            };
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
    wrk(&url, options.connections, options.warmup)?;
    let before = server.cpu_ticks()?;
    let text = wrk(&url, options.connections, options.duration)?;
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
}

impl Server {
    /// Nginx on `bench/{name}.conf` (`nginx-origin.conf` for the origin).
    fn nginx(dir: &Path, name: &str, port: Option<u16>) -> Result<Server> {
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
        })
    }

    fn gatehouse(dir: &Path, bin: &Path, port: u16) -> Result<Server> {
        let conf = render(dir, "gatehouse.toml", port, "gatehouse.toml")?;
        let child = Command::new(bin)
            .args(["run", "-c"])
            .arg(conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("start gatehouse")?;
        Ok(Server { child, port })
    }

    /// Waits until `path` answers 200.
    fn ready(&self, path: &str) -> Result<()> {
        wait_for(
            || get_ok(self.port, path),
            &format!("port {} to answer {path}", self.port),
        )
    }

    /// utime + stime of the process and its children (Nginx's workers), in clock ticks.
    fn cpu_ticks(&self) -> Result<u64> {
        let pid = self.child.id();
        let mut total = 0;
        for entry in std::fs::read_dir("/proc")? {
            let Ok(stat) = std::fs::read_to_string(entry?.path().join("stat")) else {
                continue;
            };
            // Fields after the `(comm)`: state ppid ... utime(14) stime(15), 1-based over the whole line.
            let Some((head, rest)) = stat.rsplit_once(") ") else {
                continue;
            };
            let own_pid: u32 = head
                .split_whitespace()
                .next()
                .unwrap_or("")
                .parse()
                .unwrap_or(0);
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ppid: u32 = fields.get(1).and_then(|f| f.parse().ok()).unwrap_or(0);
            if own_pid == pid || ppid == pid {
                let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
                let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
                total += utime + stime;
            }
        }
        Ok(total)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fills `bench/{template}`'s `{dir}` and `{port}` and writes it into `dir` as `name`.
fn render(dir: &Path, template: &str, port: u16, name: &str) -> Result<PathBuf> {
    let text = std::fs::read_to_string(root().join("bench").join(template))?;
    let path = dir.join(name);
    std::fs::write(
        &path,
        text.replace("{dir}", &dir.display().to_string())
            .replace("{port}", &port.to_string()),
    )?;
    Ok(path)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
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

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        duration: Duration::from_secs(8),
        warmup: Duration::from_secs(2),
        connections: 64,
        rounds: 2,
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
            _ => bail!(
                "unknown flag {flag}; flags: --duration 8s --warmup 2s --connections 64 --rounds 2"
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
