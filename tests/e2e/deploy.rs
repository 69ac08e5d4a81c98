//! `deploy/`: the systemd unit, the container file and the Kubernetes manifests are checked as
//! data against what the binary does; the process-level contracts behind them (sd_notify, socket
//! activation, reaping as PID 1) run the real binary the way systemd and a container runtime do.

mod container;
mod kubernetes;
mod pid1;
mod systemd;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::Instant;

use gatehouse_tests::output::Lines;
use gatehouse_tests::wait::DEADLINE;

/// `deploy/` in the repository.
fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read(rel: &str) -> String {
    let path = deploy_dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A child process started by hand (with an environment or descriptors the harness does not
/// give), its stderr captured; killed on drop.
struct Spawned {
    child: Child,
    stderr: Lines,
}

impl Spawned {
    fn start(mut command: Command) -> Spawned {
        let mut child = command
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let stderr = Lines::capture(child.stderr.take().expect("piped stderr"));
        Spawned { child, stderr }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, name: &str) {
        signal(self.pid(), name);
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "did not exit; stderr:\n{}",
                self.stderr.text()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- stderr ---\n{}", self.stderr.text());
        }
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid}");
}
