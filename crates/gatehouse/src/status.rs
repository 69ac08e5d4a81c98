//! `gatehouse status` and `gatehouse health`: clients of the running instance's admin endpoint,
//! found at `[admin] listen` in the config file.
//!
//! `status` prints the apps and their workers from `/status` as a table (exit 0; 1 when the
//! instance cannot be asked; 2 for a bad config). `health` exits 0 when `/livez` answers 200 and
//! 1 otherwise, whatever went wrong, since a container HEALTHCHECK knows only those two (Docker
//! reserves 2).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use crate::admin::status::Status;
use crate::{check, EXIT_CONFIG_ERROR, EXIT_RUNTIME_FAILURE};

/// A health check or a status that takes longer than this has its answer.
const TIMEOUT: Duration = Duration::from_secs(5);

pub fn status(path: &Path) -> ExitCode {
    let address = match admin_address(path) {
        Ok(address) => address,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(EXIT_CONFIG_ERROR);
        }
    };
    let asked = ask(address, "/status").and_then(|(code, body)| {
        if code != StatusCode::OK {
            bail!("{address}/status answered {code}");
        }
        serde_json::from_slice::<Status>(&body).context("the /status answer is not valid")
    });
    match asked {
        Ok(status) => {
            print!("{}", render(&status));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("cannot read the status: {error:#}");
            ExitCode::from(EXIT_RUNTIME_FAILURE)
        }
    }
}

pub fn health(path: &Path) -> ExitCode {
    let address = match admin_address(path) {
        Ok(address) => address,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(EXIT_RUNTIME_FAILURE);
        }
    };
    match ask(address, "/livez") {
        Ok((StatusCode::OK, _)) => {
            println!("alive");
            ExitCode::SUCCESS
        }
        Ok((code, _)) => {
            eprintln!("{address}/livez answered {code}");
            ExitCode::from(EXIT_RUNTIME_FAILURE)
        }
        Err(error) => {
            eprintln!("not alive: {error:#}");
            ExitCode::from(EXIT_RUNTIME_FAILURE)
        }
    }
}

/// Where to connect: `[admin] listen`, with a wildcard address replaced by loopback.
fn admin_address(path: &Path) -> Result<SocketAddr, String> {
    let config = gatehouse_config::load(path).map_err(|error| check::describe(&error))?;
    let Some(mut address) = config.admin.listen else {
        return Err(format!(
            "{}: admin.listen is \"off\": there is no admin endpoint to ask",
            path.display()
        ));
    };
    if address.port() == 0 {
        return Err(format!(
            "{}: admin.listen has port 0: the running instance's port cannot be known from the file",
            path.display()
        ));
    }
    if address.ip().is_unspecified() {
        let loopback = match address.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        };
        address.set_ip(loopback);
    }
    Ok(address)
}

/// GET `path` from `address` over one HTTP/1.1 connection, within [`TIMEOUT`].
fn ask(address: SocketAddr, path: &str) -> anyhow::Result<(StatusCode, Bytes)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        tokio::time::timeout(TIMEOUT, get(address, path))
            .await
            .with_context(|| format!("{address} did not answer within {TIMEOUT:?}"))?
    })
}

async fn get(address: SocketAddr, path: &str) -> anyhow::Result<(StatusCode, Bytes)> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .with_context(|| format!("cannot connect to the admin endpoint at {address}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::get(path)
        .header(header::HOST, address.to_string())
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let code = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((code, body))
}

/// The table `gatehouse status` prints: one row per worker, then each app's queue and the config.
fn render(status: &Status) -> String {
    let mut rows = vec![[
        "APP",
        "PID",
        "STATE",
        "GEN",
        "REQUESTS",
        "IN FLIGHT",
        "RSS",
        "AGE",
        "RESTARTS",
    ]
    .map(str::to_owned)];
    for app in &status.apps {
        for worker in &app.workers {
            rows.push([
                app.name.clone(),
                worker.pid.to_string(),
                worker.state.clone(),
                worker.generation.to_string(),
                worker.requests.to_string(),
                worker.in_flight.to_string(),
                worker.rss_bytes.map_or_else(|| "-".to_owned(), mebibytes),
                age(worker.age_seconds),
                worker.restarts.to_string(),
            ]);
        }
    }
    let mut widths = [0usize; 9];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push('\n');
    for app in &status.apps {
        let _ = writeln!(
            out,
            "{}: {} workers, {} queued",
            app.name,
            app.workers.len(),
            app.queue_depth
        );
    }
    let config = &status.config;
    let reload = &config.last_reload;
    let _ = write!(
        out,
        "config: {} (sha256 {}); last load: {} at {}",
        config.path,
        config
            .hash
            .as_deref()
            .map_or("unknown", |hash| hash.get(..12).unwrap_or(hash)),
        reload.result,
        reload.at
    );
    if let Some(error) = &reload.error {
        let _ = write!(out, ": {}", error.lines().next().unwrap_or(""));
    }
    out.push('\n');
    out
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.1}MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn age(seconds: u64) -> String {
    match seconds {
        0..=59 => format!("{seconds}s"),
        60..=3599 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        3600..=86_399 => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{}d{:02}h", seconds / 86_400, seconds % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::status::{App, Config, Reload, Worker};

    #[test]
    fn renders_a_table() {
        let worker = |pid, state: &str| Worker {
            pid,
            state: state.into(),
            generation: 2,
            requests: 1234,
            in_flight: 1,
            rss_bytes: Some(10 * 1024 * 1024),
            age_seconds: 125,
            restarts: 3,
        };
        let status = Status {
            apps: vec![App {
                name: "web".into(),
                queue_depth: 4,
                workers: vec![worker(41, "busy"), worker(4242, "ready")],
            }],
            config: Config {
                path: "/etc/gatehouse.toml".into(),
                hash: Some("0123456789abcdef".into()),
                last_reload: Reload {
                    result: "failure".into(),
                    at: "2026-01-01T00:00:00Z".into(),
                    error: Some("gatehouse.toml:3:1: bad\nmore".into()),
                },
            },
        };
        let text = render(&status);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "APP  PID   STATE  GEN  REQUESTS  IN FLIGHT  RSS      AGE    RESTARTS"
        );
        assert_eq!(
            lines[1],
            "web  41    busy   2    1234      1          10.0MiB  2m05s  3"
        );
        assert!(lines[2].starts_with("web  4242  ready"));
        assert_eq!(lines[4], "web: 2 workers, 4 queued");
        assert_eq!(
            lines[5],
            "config: /etc/gatehouse.toml (sha256 0123456789ab); last load: failure at 2026-01-01T00:00:00Z: gatehouse.toml:3:1: bad"
        );
    }

    #[test]
    fn ages_read_short() {
        assert_eq!(age(59), "59s");
        assert_eq!(age(3600), "1h00m");
        assert_eq!(age(90_000), "1d01h");
    }
}
