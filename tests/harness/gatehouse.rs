//! The gatehouse binary under test: a [`Sandbox`] directory holding its config and files, and a
//! running [`Gatehouse`] child whose logs are captured.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Instant;

use crate::output::Lines;
use crate::wait::DEADLINE;

/// A temporary directory for one test: the config file, static roots, sockets, canaries.
///
/// In config text, `{dir}` stands for this directory's path.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("gh-")
            .tempdir()
            .expect("create a tempdir");
        Sandbox { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `rel` inside the sandbox.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.path().join(rel)
    }

    /// Writes a file (creating its parent directories) and returns its path.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent directories");
        }
        std::fs::write(&path, contents).expect("write a sandbox file");
        path
    }

    /// Replaces `{dir}` with the sandbox path.
    pub fn expand(&self, text: &str) -> String {
        text.replace("{dir}", &self.path().display().to_string())
    }

    /// Writes `toml` (expanded) as `gatehouse.toml` and returns its path.
    ///
    /// Unless the config has an `[admin]` table, the admin listener is turned off, so that tests
    /// running in parallel do not compete for its default port.
    pub fn config(&self, toml: &str) -> PathBuf {
        let mut text = self.expand(toml);
        if !text.lines().any(|l| l.trim() == "[admin]") {
            text.push_str("\n[admin]\nlisten = \"off\"\n");
        }
        self.write("gatehouse.toml", text)
    }

    /// Runs `gatehouse check -c gatehouse.toml` from the sandbox and returns its output.
    pub fn check(&self, toml: &str) -> Output {
        self.config(toml);
        self.command(&["check", "-c", "gatehouse.toml"])
    }

    /// Runs the binary with `args` from the sandbox to completion (up to the deadline).
    pub fn command(&self, args: &[&str]) -> Output {
        let child = Command::new(binary())
            .args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gatehouse");
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(DEADLINE) {
            Ok(output) => output.expect("wait for gatehouse"),
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                panic!(
                    "`gatehouse {}` did not exit within {DEADLINE:?}",
                    args.join(" ")
                );
            }
        }
    }

    /// Writes the config and starts `gatehouse run` on it; see [`Gatehouse::start`].
    pub fn start(self, toml: &str) -> Gatehouse {
        let config = self.config(toml);
        self.start_file(&config)
    }

    /// Starts `gatehouse run -c config` on a config file already written (a symlink, say) and
    /// waits until every listener is bound; see [`Gatehouse::start`].
    pub fn start_file(self, config: &Path) -> Gatehouse {
        let expected = std::fs::read_to_string(config)
            .expect("read the config back")
            .lines()
            .filter(|l| l.trim() == "[[listener]]")
            .count();
        let mut child = Command::new(binary())
            .args(["run", "-c"])
            .arg(config)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gatehouse");
        let stdout = Lines::capture(child.stdout.take().expect("piped stdout"));
        let stderr = Lines::capture(child.stderr.take().expect("piped stderr"));
        let mut gatehouse = Gatehouse {
            child,
            sandbox: self,
            stdout,
            stderr,
            listeners: Vec::new(),
            exit: None,
        };
        gatehouse.await_listeners(expected);
        gatehouse
    }
}

/// Where a listener ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// A running `gatehouse run`. Dropping it kills the process.
pub struct Gatehouse {
    child: Child,
    sandbox: Sandbox,
    stdout: Lines,
    stderr: Lines,
    listeners: Vec<Listen>,
    exit: Option<ExitStatus>,
}

impl Gatehouse {
    /// Starts gatehouse on `toml` in a fresh [`Sandbox`] and waits until every listener is bound.
    pub fn start(toml: &str) -> Gatehouse {
        Sandbox::new().start(toml)
    }

    fn await_listeners(&mut self, expected: usize) {
        let found = self
            .stderr
            .wait_while_open(|lines| listeners(lines).len() >= expected);
        if !found {
            // Stderr closes as the process exits: give the exit a moment to be seen.
            let deadline = Instant::now() + std::time::Duration::from_secs(5);
            let mut status = self.child.try_wait().ok().flatten();
            while status.is_none() && Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
                status = self.child.try_wait().ok().flatten();
            }
            panic!(
                "gatehouse did not report {expected} `listening on` lines (exit: {status:?}); stderr:\n{}",
                self.stderr.text()
            );
        }
        self.listeners = listeners(&self.stderr.all());
    }

    /// The `i`th listener (config order).
    pub fn listen(&self, i: usize) -> &Listen {
        &self.listeners[i]
    }

    /// The `i`th listener's TCP address.
    pub fn addr(&self, i: usize) -> SocketAddr {
        match self.listen(i) {
            Listen::Tcp(addr) => *addr,
            other => panic!("listener {i} is not TCP: {other:?}"),
        }
    }

    /// `http://ADDR{path}` for the `i`th listener.
    pub fn url(&self, i: usize, path: &str) -> String {
        format!("http://{}{path}", self.addr(i))
    }

    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The diagnostic log (stderr) so far.
    pub fn logs(&self) -> String {
        self.stderr.text()
    }

    /// Waits for a diagnostic log line containing `needle` and returns it.
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.stderr.wait_for(needle)
    }

    /// Stdout: the access log when `access_log = "-"`.
    pub fn stdout(&self) -> &Lines {
        &self.stdout
    }

    /// SIGTERM: graceful stop.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// SIGINT: quick stop.
    pub fn interrupt(&self) {
        self.signal("INT");
    }

    /// Sends a signal by name (`TERM`, `INT`, `HUP`...) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit (up to the deadline) and returns its status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "gatehouse did not exit within {DEADLINE:?}; stderr:\n{}",
                self.logs()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        self.exit = Some(status);
        status
    }
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- gatehouse stderr ---\n{}\n--- gatehouse stdout ---\n{}",
                self.logs(),
                self.stdout.text()
            );
        }
    }
}

/// The binary under test: `$GATEHOUSE_BIN`, else `gatehouse` in the target directory this test
/// executable was built into (`target/debug/deps/e2e-…` → `target/debug/gatehouse`).
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("GATEHOUSE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable in target/<profile>/deps");
    let bin = profile_dir.join("gatehouse");
    assert!(
        bin.exists(),
        "{} does not exist: build it first (`cargo build -p gatehouse`, or run `cargo xtask test`), or set GATEHOUSE_BIN",
        bin.display()
    );
    bin
}

/// The listeners announced so far: lines with `listening on ADDR`, admin excluded, in order.
fn listeners(lines: &[String]) -> Vec<Listen> {
    lines
        .iter()
        .filter(|line| !line.contains("admin"))
        .filter_map(|line| {
            let rest = &line[line.find("listening on ")? + "listening on ".len()..];
            let token = rest
                .split_whitespace()
                .next()?
                .trim_matches(|c| matches!(c, '"' | '\'' | ',' | '`' | '}'));
            match token.strip_prefix("unix:") {
                Some(path) => Some(Listen::Unix(PathBuf::from(path))),
                None => token.parse().ok().map(Listen::Tcp),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listening_lines() {
        let lines = [
            "2026-11-26T21:00:00Z  INFO gatehouse: listening on 127.0.0.1:4321".to_owned(),
            "INFO admin listening on 127.0.0.1:9180".to_owned(),
            "INFO gatehouse_proxy::listener: listening on unix:/tmp/x.sock listener=1".to_owned(),
            "INFO listening on \"[::1]:80\"".to_owned(),
        ];
        assert_eq!(
            listeners(&lines),
            vec![
                Listen::Tcp("127.0.0.1:4321".parse().unwrap()),
                Listen::Unix("/tmp/x.sock".into()),
                Listen::Tcp("[::1]:80".parse().unwrap()),
            ]
        );
    }
}
