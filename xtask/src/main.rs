//! `cargo xtask`: the project's scripts, written in Rust so they run wherever cargo does.
//!
//! - `cargo xtask test [-- ARGS]`: prepare what the end-to-end tests need (Python venv, curl,
//!   promtool), build the binary, run every test of the workspace.
//! - `cargo xtask ci`: `cargo fmt --check`, clippy with `-D warnings`, then `test`.
//! - `cargo xtask bench [--duration 8s] [--connections 64] [--rounds 2]`: gatehouse against Nginx,
//!   same run, alternating.
//! - `cargo xtask dist`: a release archive (binary, reference config, examples, deploy/, docs/).
//! - `cargo xtask certs [--dir DIR] [NAME ...]`: a self-signed certificate for trying TLS locally.

mod bench;
mod certs;
mod dist;
mod test;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

const USAGE: &str = "usage: cargo xtask <test [-- CARGO TEST ARGS] | ci | bench [--duration 8s] [--warmup 2s] [--connections 64] [--rounds 2] [--only SUBSTRING] | dist | certs [--dir DIR] [NAME ...]>";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("test") => test::run(rest),
        Some("ci") => ci(),
        Some("bench") => bench::run(rest),
        Some("dist") => dist::run(rest),
        Some("certs") => certs::run(rest),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}

/// What CI runs: formatting, lints, then the tests exactly as `cargo xtask test` runs them.
fn ci() -> Result<()> {
    exec(cargo().args(["fmt", "--all", "--check"]))?;
    exec(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    test::run(&[])
}

/// The workspace root (xtask lives one level below it).
fn root() -> PathBuf {
    // `cargo run` sets CARGO_MANIFEST_DIR for the running xtask too; prefer it to the value baked
    // in at build time, so an xtask binary reused from another checkout (a shared target dir)
    // still works on the checkout it was started from. xtask/ is one level below the root.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest
        .parent()
        .map_or_else(|| manifest.clone(), Path::to_path_buf)
}

/// `$CARGO_TARGET_DIR` when set (relative to the root), else `<root>/target`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// The cargo that runs us, from the workspace root.
fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root());
    command
}

/// Runs a command to completion, echoing it first; fails on a non-zero exit.
fn exec(command: &mut Command) -> Result<()> {
    eprintln!("$ {}", display(command));
    let status = command
        .status()
        .with_context(|| format!("cannot start {}", display(command)))?;
    if !status.success() {
        bail!("{} failed: {status}", display(command));
    }
    Ok(())
}

/// Runs a command and returns its stdout; fails on a non-zero exit.
fn output(command: &mut Command) -> Result<String> {
    let out = command
        .output()
        .with_context(|| format!("cannot start {}", display(command)))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}\n{}",
            display(command),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn display(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

/// Whether `program` is on PATH (or an existing path).
fn have(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Installs Debian packages for the tools that are missing, when we may (root with apt-get);
/// otherwise says what to install.
fn ensure_tools(tools: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(tool, _)| !have(tool))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() || !have("apt-get") {
        bail!(
            "missing tools; install the Debian packages: {}",
            missing.join(" ")
        );
    }
    exec(Command::new("apt-get").args(["update", "-qq"]))?;
    exec(
        Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0")
}
