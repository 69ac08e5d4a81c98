//! The TLS part of `cargo xtask bench`: gatehouse against Nginx, both terminating TLS with the
//! same certificate (ECDSA P-256, made here with openssl), 2 Nginx workers, in the same run,
//! alternating (`bench/nginx-tls.conf`, `bench/gatehouse-tls.toml`).
//!
//! - `tls handshakes`: full handshakes per second: parallel `openssl s_time -new` clients, each
//!   connecting again and again without resuming a session (TLS 1.3, X25519).
//! - `https static 1 KiB h1`: wrk over HTTP/1.1 keep-alive.
//! - `https static 1 KiB h2`: h2load over HTTP/2 (ALPN), `-m 10` streams per connection.
//!
//! Server CPU per operation is the server's process tree's utime + stime, as in the main bench.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{free_port, processes, stop, wait_for, Options};
use crate::{ensure_tools, output, root};

/// `openssl s_time` processes at once: enough to keep a 2-core server busy.
const HANDSHAKE_CLIENTS: usize = 4;
/// HTTP/2 streams in flight per h2load connection.
const H2_STREAMS: u32 = 10;

const SCENARIOS: &[&str] = &[
    "tls handshakes",
    "https static 1 KiB h1",
    "https static 1 KiB h2",
];

/// Whether any TLS scenario is selected by `--only`.
pub fn selected(options: &Options) -> bool {
    !scenarios(options).is_empty()
}

fn scenarios(options: &Options) -> Vec<&'static str> {
    SCENARIOS
        .iter()
        .copied()
        .filter(|name| options.selects(name))
        .collect()
}

/// Runs the TLS scenarios. `dir` holds `www/1k.bin`; `gatehouse_bin` is the release build.
pub fn measure(options: &Options, dir: &Path, gatehouse_bin: &Path) -> Result<()> {
    let scenarios = scenarios(options);
    if scenarios.is_empty() {
        return Ok(());
    }
    ensure_tools(&[
        ("openssl", "openssl"),
        ("curl", "curl"),
        ("h2load", "nghttp2-client"),
    ])?;
    let clock_ticks: f64 = output(Command::new("getconf").arg("CLK_TCK"))?
        .trim()
        .parse()?;
    certificate(dir)?;
    let nginx = Front::start(dir, "nginx-tls.conf", None)?;
    let gatehouse = Front::start(dir, "gatehouse-tls.toml", Some(gatehouse_bin))?;
    for front in [&nginx, &gatehouse] {
        front.ready()?;
    }

    println!();
    println!(
        "TLS (same ECDSA P-256 certificate; nginx 2 workers): handshakes = {HANDSHAKE_CLIENTS} × `openssl s_time -new` (full handshakes, TLS 1.3); h1 = wrk -t1 -c{c} keep-alive; h2 = h2load -t1 -c{c} -m{H2_STREAMS}; {d}s each after a {w}s warm-up",
        c = options.connections,
        d = options.duration.as_secs(),
        w = options.warmup.as_secs(),
    );
    println!(
        "| scenario | nginx /s | gatehouse /s | ratio | nginx CPU µs/op | gatehouse CPU µs/op |"
    );
    println!("|---|---|---|---|---|---|");
    for round in 1..=options.rounds {
        for scenario in &scenarios {
            let n = nginx.run(scenario, options, clock_ticks)?;
            let g = gatehouse.run(scenario, options, clock_ticks)?;
            let name = super::row_name(scenario, round, options.rounds);
            println!(
                "| {name} | {:.0} | {:.0} | {:.2} | {:.1} | {:.1} |",
                n.per_sec,
                g.per_sec,
                g.per_sec / n.per_sec,
                n.cpu_us_per_op,
                g.cpu_us_per_op
            );
            for (server, m) in [("nginx", &n), ("gatehouse", &g)] {
                if !m.errors.is_empty() {
                    println!("  ! {server} {name}: {}", m.errors);
                }
            }
        }
    }
    Ok(())
}

/// Operations per second, and the server CPU they cost.
struct Rate {
    per_sec: f64,
    cpu_us_per_op: f64,
    errors: String,
}

/// `dir/tls/cert.pem` + `key.pem`: a self-signed ECDSA P-256 certificate for `bench.test`, the
/// key type certbot issues by default.
fn certificate(dir: &Path) -> Result<()> {
    crate::certs::self_signed(&dir.join("tls"), "bench.test", &[])?;
    Ok(())
}

/// A TLS front end under test; dropping it stops it.
struct Front {
    child: Child,
    port: u16,
}

impl Front {
    /// Nginx on `bench/{template}`, or gatehouse when `gatehouse_bin` is given.
    fn start(dir: &Path, template: &str, gatehouse_bin: Option<&Path>) -> Result<Front> {
        let port = free_port()?;
        let conf = render(dir, template, port)?;
        let child = match gatehouse_bin {
            Some(bin) => super::spawn_gatehouse(bin, &conf)?,
            None => Command::new("/usr/sbin/nginx")
                .arg("-p")
                .arg(dir)
                .arg("-e")
                .arg(dir.join("nginx-tls-error.log"))
                .arg("-c")
                .arg(conf)
                .stdin(Stdio::null())
                .spawn()
                .context("start nginx")?,
        };
        Ok(Front { child, port })
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/static/1k.bin", self.port)
    }

    fn ready(&self) -> Result<()> {
        let url = self.url();
        wait_for(
            || {
                Command::new("curl")
                    .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", &url])
                    .output()
                    .is_ok_and(|out| out.stdout == b"200")
            },
            &format!("{url} to answer"),
        )
    }

    /// Warm-up, then the measured run with CPU accounting.
    fn run(&self, scenario: &str, options: &Options, clock_ticks: f64) -> Result<Rate> {
        let load = |duration: Duration| -> Result<(u64, f64, String)> {
            match scenario {
                "tls handshakes" => handshakes(self.port, duration),
                "https static 1 KiB h1" => wrk(&self.url(), options.connections, duration),
                _ => h2load(&self.url(), options.connections, duration),
            }
        };
        load(options.warmup)?;
        let before = self.cpu_ticks()?;
        let (operations, seconds, errors) = load(options.duration)?;
        let ticks = self.cpu_ticks()? - before;
        if operations == 0 {
            bail!("{scenario}: nothing completed against port {}", self.port);
        }
        Ok(Rate {
            per_sec: operations as f64 / seconds,
            cpu_us_per_op: ticks as f64 / clock_ticks * 1e6 / operations as f64,
            errors,
        })
    }

    /// utime + stime of the server and its children, in clock ticks.
    fn cpu_ticks(&self) -> Result<u64> {
        let pid = self.child.id();
        Ok(processes()?
            .iter()
            .filter(|p| p.pid == pid || p.ppid == pid)
            .map(|p| p.ticks)
            .sum())
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Parallel `openssl s_time -new` for `duration`: (handshakes, seconds, errors).
fn handshakes(port: u16, duration: Duration) -> Result<(u64, f64, String)> {
    let started = Instant::now();
    let clients: Vec<Child> = (0..HANDSHAKE_CLIENTS)
        .map(|_| {
            Command::new("openssl")
                .args(["s_time", "-connect", &format!("127.0.0.1:{port}"), "-new"])
                .args(["-time", &duration.as_secs().max(1).to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .context("start openssl s_time")
        })
        .collect::<Result<_>>()?;
    let mut total = 0;
    for client in clients {
        let out = client.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        total += parse_s_time(&text).with_context(|| format!("parsing s_time output:\n{text}"))?;
    }
    Ok((total, started.elapsed().as_secs_f64(), String::new()))
}

/// The connection count of `N connections in T real seconds, ...`.
fn parse_s_time(text: &str) -> Result<u64> {
    text.lines()
        .find(|line| line.contains("connections in") && line.contains("real seconds"))
        .and_then(|line| line.split_whitespace().next())
        .context("no `connections in ... real seconds` line")?
        .parse()
        .context("connection count")
}

/// wrk over HTTPS keep-alive: (requests, seconds, error lines).
fn wrk(url: &str, connections: u32, duration: Duration) -> Result<(u64, f64, String)> {
    let text = output(Command::new("wrk").args([
        "-t1".to_owned(),
        format!("-c{connections}"),
        format!("-d{}s", duration.as_secs().max(1)),
        url.to_owned(),
    ]))?;
    let mut requests = 0;
    let mut seconds = duration.as_secs_f64();
    let mut errors = String::new();
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [count, "requests", "in", time, ..] = words.as_slice() {
            requests = count.parse()?;
            seconds = time.trim_end_matches(',').trim_end_matches('s').parse()?;
        }
        if line.starts_with("Non-2xx") || line.starts_with("Socket errors") {
            errors.push_str(line);
            errors.push(' ');
        }
    }
    Ok((requests, seconds, errors))
}

/// h2load over HTTP/2: (succeeded requests, seconds, failures).
fn h2load(url: &str, connections: u32, duration: Duration) -> Result<(u64, f64, String)> {
    let text = output(Command::new("h2load").args([
        "-t1".to_owned(),
        format!("-c{connections}"),
        format!("-m{H2_STREAMS}"),
        format!("-D{}", duration.as_secs().max(1)),
        url.to_owned(),
    ]))?;
    parse_h2load(&text).with_context(|| format!("parsing h2load output:\n{text}"))
}

fn parse_h2load(text: &str) -> Result<(u64, f64, String)> {
    let mut seconds = None;
    let mut succeeded = None;
    let mut errors = String::new();
    for line in text.lines().map(str::trim) {
        // finished in 8.00s, 41234.50 req/s, 45.12MB/s
        if let Some(rest) = line.strip_prefix("finished in ") {
            let time = rest.split(',').next().unwrap_or("").trim_end_matches('s');
            seconds = Some(time.parse::<f64>()?);
        }
        // requests: 100 total, 100 started, 100 done, 98 succeeded, 2 failed, 0 errored, 0 timeout
        if let Some(rest) = line.strip_prefix("requests: ") {
            for part in rest.split(',').map(str::trim) {
                if let Some(count) = part.strip_suffix(" succeeded") {
                    succeeded = Some(count.parse::<u64>()?);
                }
                let failed = ["failed", "errored", "timeout"]
                    .iter()
                    .any(|kind| part.ends_with(kind) && !part.starts_with("0 "));
                if failed {
                    errors.push_str(part);
                    errors.push(' ');
                }
            }
        }
    }
    match (succeeded, seconds) {
        (Some(succeeded), Some(seconds)) => Ok((succeeded, seconds, errors)),
        _ => bail!("no `finished in` or `requests:` line"),
    }
}

/// Fills `bench/{template}`'s `{dir}` and `{port}` and writes it into `dir`.
fn render(dir: &Path, template: &str, port: u16) -> Result<PathBuf> {
    let text = std::fs::read_to_string(root().join("bench").join(template))?;
    let path = dir.join(template);
    std::fs::write(
        &path,
        text.replace("{dir}", &dir.display().to_string())
            .replace("{port}", &port.to_string()),
    )?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s_time_and_h2load_output() {
        let s_time = "Collecting connection statistics for 8 seconds\n\
            tttttttttt\n\n1234 connections in 5.01s; 246.31 connections/user sec, bytes read 0\n\
            1234 connections in 9 real seconds, 0 bytes read per connection\n";
        assert_eq!(parse_s_time(s_time).unwrap(), 1234);

        let h2 = "finished in 8.00s, 41234.50 req/s, 45.12MB/s\n\
            requests: 329876 total, 329876 started, 329876 done, 329870 succeeded, 6 failed, 0 errored, 0 timeout\n";
        let (succeeded, seconds, errors) = parse_h2load(h2).unwrap();
        assert_eq!(succeeded, 329_870);
        assert!((seconds - 8.0).abs() < 1e-9);
        assert_eq!(errors.trim(), "6 failed");
    }
}
