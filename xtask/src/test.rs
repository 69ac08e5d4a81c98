//! `cargo xtask test`: everything the tests need, then every test.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Result};

use crate::{cargo, ensure_tools, exec, have, root, target_dir};

/// Prepares the Python venv and tools, builds the binary, runs `cargo test --workspace`.
/// `args` go to cargo test (e.g. `-- proxy::` to filter).
pub fn run(args: &[String]) -> Result<()> {
    // promtool validates the /metrics text in tests/e2e/observability.rs; openssl s_client checks
    // which certificate each SNI name gets in tests/e2e/tls.rs.
    ensure_tools(&[
        ("curl", "curl"),
        ("mkfifo", "coreutils"),
        ("openssl", "openssl"),
        ("promtool", "prometheus"),
    ])?;
    let python = venv()?;
    exec(cargo().args(["build", "-p", "gatehouse"]))?;
    exec(
        cargo()
            .args(["test", "--workspace"])
            .args(args)
            .env("GATEHOUSE_PYTHON", python),
    )
}

/// `<target>/venv` with `tests/requirements.txt` installed; pip runs only when they change.
/// Returns the venv's interpreter, which the harness takes from `$GATEHOUSE_PYTHON`.
pub(crate) fn venv() -> Result<PathBuf> {
    if !have("python3") {
        bail!("python3 is needed by the end-to-end tests (Python 3.8 or later with venv)");
    }
    let venv = target_dir().join("venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        exec(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    let requirements = root().join("tests/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)?;
    let stamp = venv.join("requirements.installed");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        exec(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements),
        )?;
        std::fs::write(&stamp, wanted)?;
    }
    Ok(python)
}
