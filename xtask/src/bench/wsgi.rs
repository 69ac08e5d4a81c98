//! The WSGI scenarios of `cargo xtask bench`: one Flask app (`tests/apps/flask_app.py`, its
//! hello and JSON endpoints) served three ways in the same run, alternating:
//!
//! - gatehouse + its built-in WSGI worker (`bench/gatehouse-wsgi.toml`, 5 workers);
//! - Nginx + Gunicorn, sync, `-w 5` on a Unix socket (`bench/nginx.conf`, as in the baseline);
//! - Granian's WSGI interface, `--workers 5`, on its own port (Granian has no front end).
//!
//! Granian is installed into the bench venv here (not in `tests/requirements.txt`: no test
//! needs it). CPU counts every process of each server's tree (and Nginx's Gunicorn).

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use super::{
    free_port, parse_wrk, render, wrk, Gunicorn, Measurement, Options, Server, FLASK_WORKERS,
};
use crate::{exec, root, target_dir};

/// A request path on the app itself; front ends that mount it under /flask/ prefix it.
struct Scenario {
    name: &'static str,
    path: &'static str,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "wsgi flask hello",
        path: "/",
    },
    Scenario {
        name: "wsgi flask /json",
        path: "/json",
    },
];

const GRANIAN: &str = "granian>=2.5,<3";

/// Whether `--only` selects any WSGI scenario.
pub(super) fn selected(options: &Options) -> bool {
    !scenarios(options).is_empty()
}

fn scenarios(options: &Options) -> Vec<&'static Scenario> {
    SCENARIOS
        .iter()
        .filter(|s| options.selects(s.name))
        .collect()
}

pub(super) fn measure(
    options: &Options,
    dir: &Path,
    gatehouse_bin: &Path,
    venv: &Path,
) -> Result<()> {
    let scenarios = scenarios(options);
    if scenarios.is_empty() {
        return Ok(());
    }
    let clock_ticks: f64 = crate::output(Command::new("getconf").arg("CLK_TCK"))?
        .trim()
        .parse()?;
    let granian_bin = venv.join("bin/granian");
    if !granian_bin.exists() {
        exec(Command::new(venv.join("bin/python")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            GRANIAN,
        ]))?;
    }

    let gunicorn = Gunicorn::start(dir, venv)?;
    super::wait_for(|| dir.join("gunicorn.sock").exists(), "Gunicorn's socket")?;
    let nginx = Server::nginx(dir, "nginx", Some(free_port()?), Some(gunicorn))?;
    let port = free_port()?;
    let conf = render(dir, "gatehouse-wsgi.toml", port, "gatehouse-wsgi.toml")?;
    let gatehouse = Server {
        child: super::spawn_gatehouse(gatehouse_bin, &conf)?,
        port,
        backend: None,
    };
    let granian_port = free_port()?;
    let granian = Server {
        child: Command::new(&granian_bin)
            .args([
                "--interface",
                "wsgi",
                "--workers",
                &FLASK_WORKERS.to_string(),
            ])
            .args(["--host", "127.0.0.1", "--port", &granian_port.to_string()])
            .args(["--no-ws", "--log-level", "warning", "flask_app:app"])
            .current_dir(root().join("tests/apps"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("start granian")?,
        port: granian_port,
        backend: None,
    };
    let servers = [
        ("nginx+gunicorn", &nginx, "/flask"),
        ("gatehouse+builtin", &gatehouse, "/flask"),
        ("granian", &granian, ""),
    ];
    for (_, server, prefix) in servers {
        server.ready(&format!("{prefix}/"))?;
    }
    for (_, server, prefix) in &servers[..2] {
        server.ready_workers(&format!("{prefix}/sleep?ms=300"), FLASK_WORKERS)?;
    }

    println!();
    println!(
        "wsgi: one Flask app, {FLASK_WORKERS} sync workers each: Nginx -> gunicorn -w {FLASK_WORKERS}; gatehouse + built-in worker; granian --interface wsgi --workers {FLASK_WORKERS} (venv: {})",
        target_dir().join("venv").display()
    );
    println!("| scenario | nginx+gunicorn req/s | gatehouse+builtin req/s | granian req/s | vs nginx+gunicorn | vs granian | nginx+gunicorn p99 ms | gatehouse p99 ms | granian p99 ms | CPU µs/req n / g / gr |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for round in 1..=options.rounds {
        for scenario in &scenarios {
            let mut results = Vec::new();
            for (label, server, prefix) in servers {
                let path = format!("{prefix}{}", scenario.path);
                let m = run(server, &path, options, clock_ticks)?;
                if !m.errors.is_empty() {
                    println!(
                        "  ! {label} {}: {} (of {} requests)",
                        scenario.name, m.errors, m.requests
                    );
                }
                results.push(m);
            }
            let [n, g, gr] = &results[..] else {
                continue;
            };
            let name = super::row_name(scenario.name, round, options.rounds);
            println!(
                "| {name} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} / {:.0} / {:.0} |",
                n.requests_per_sec,
                g.requests_per_sec,
                gr.requests_per_sec,
                g.requests_per_sec / n.requests_per_sec,
                g.requests_per_sec / gr.requests_per_sec,
                n.p99_ms,
                g.p99_ms,
                gr.p99_ms,
                n.cpu_us_per_request,
                g.cpu_us_per_request,
                gr.cpu_us_per_request,
            );
        }
    }
    Ok(())
}

/// Warm-up, then the measured run with CPU accounting.
fn run(server: &Server, path: &str, options: &Options, clock_ticks: f64) -> Result<Measurement> {
    let url = format!("http://127.0.0.1:{}{path}", server.port);
    wrk(&url, options.connections, options.warmup)?;
    let before = server.cpu_ticks()?;
    let text = wrk(&url, options.connections, options.duration)?;
    let ticks = server.cpu_ticks()? - before;
    let mut m = parse_wrk(&text).with_context(|| format!("parsing wrk output:\n{text}"))?;
    m.cpu_us_per_request = ticks as f64 / clock_ticks * 1e6 / m.requests.max(1) as f64;
    Ok(m)
}
