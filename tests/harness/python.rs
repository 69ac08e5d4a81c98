//! Python apps from `tests/apps/` as child processes (the upstreams gatehouse proxies to).
//!
//! An app binds port 0 (or a Unix socket it is given) and prints `LISTENING ADDR`; the upstream
//! app then prints `REQ METHOD TARGET` per request, which tests use to see what was forwarded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::output::Lines;

/// A running Python app. Dropping it kills the process.
pub struct PythonApp {
    child: Child,
    stdout: Lines,
    stderr: Lines,
    address: String,
}

impl PythonApp {
    /// Runs `tests/apps/{script}` with `args` and waits for its `LISTENING` line.
    pub fn start(script: &str, args: &[&str]) -> PythonApp {
        let path = apps_dir().join(script);
        let mut child = Command::new(python())
            .arg("-u")
            .arg(&path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} {}: {e}", python().display(), path.display()));
        let stdout = Lines::capture(child.stdout.take().expect("piped stdout"));
        let stderr = Lines::capture(child.stderr.take().expect("piped stderr"));
        let mut app = PythonApp {
            child,
            stdout,
            stderr,
            address: String::new(),
        };
        let found = app
            .stdout
            .wait_while_open(|lines| lines.iter().any(|l| l.starts_with("LISTENING ")));
        assert!(
            found,
            "{script} did not start; stderr:\n{}",
            app.stderr.text()
        );
        let line = app.stdout.wait_for("LISTENING ");
        app.address = line["LISTENING ".len()..].trim().to_owned();
        app
    }

    /// `upstream.py` on a loopback port.
    pub fn upstream() -> PythonApp {
        PythonApp::start("upstream.py", &["--port", "0"])
    }

    /// `upstream.py` on a Unix socket at `path`.
    pub fn upstream_unix(path: &Path) -> PythonApp {
        PythonApp::start(
            "upstream.py",
            &["--unix", path.to_str().expect("utf-8 socket path")],
        )
    }

    /// Where it listens, as a gatehouse upstream server: `127.0.0.1:PORT` or `unix:/path`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The `METHOD TARGET` of every request it has received so far.
    pub fn requests(&self) -> Vec<String> {
        self.stdout
            .all()
            .iter()
            .filter_map(|l| l.strip_prefix("REQ ").map(str::to_owned))
            .collect()
    }

    /// Waits until it has received a request whose `METHOD TARGET` contains `needle`.
    pub fn wait_for_request(&self, needle: &str) -> String {
        self.stdout
            .wait_for_match(needle, |l| l.starts_with("REQ ") && l.contains(needle))
    }

    pub fn stderr(&self) -> &Lines {
        &self.stderr
    }
}

impl Drop for PythonApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- python app {} stderr ---\n{}",
                self.address,
                self.stderr.text()
            );
        }
    }
}

/// The interpreter: `$GATEHOUSE_PYTHON` (the venv `cargo xtask test` prepares), else `python3`.
pub fn python() -> PathBuf {
    std::env::var_os("GATEHOUSE_PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from)
}

/// `tests/apps/`.
pub fn apps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("apps")
}
