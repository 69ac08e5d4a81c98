//! SIGKILL of the supervising process: what the kernel guarantees (see `spawn.rs`).
//!
//! The supervising process is this test binary itself, run again with only
//! `supervising_process` (ignored otherwise), which starts a supervisor, prints its worker's pid and
//! that worker's grandchild's pid, and waits to be killed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::harness::{self, alive, eventually, wait_ready};

const ROLE: &str = "GATEHOUSE_TEST_SUPERVISING_PROCESS";

#[tokio::test]
async fn workers_die_when_the_supervising_process_is_killed() {
    let run = harness::runtime_dir();
    let mut process = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill::supervising_process",
            "--ignored",
            "--nocapture",
        ])
        .env(ROLE, run.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(process.stdout.take().unwrap());
    let line = tokio::task::spawn_blocking(move || {
        stdout
            .lines()
            .map_while(Result::ok)
            .find(|line| line.starts_with("PIDS "))
    })
    .await
    .unwrap()
    .expect("the supervising process reports its worker");
    let pids: Vec<u32> = line
        .split_whitespace()
        .skip(1)
        .map(|p| p.parse().unwrap())
        .collect();
    let (worker, grandchild) = (pids[0], pids[1]);
    assert!(alive(worker) && alive(grandchild));

    process.kill().unwrap(); // SIGKILL: no cleanup code of ours runs
    process.wait().unwrap();

    // PR_SET_PDEATHSIG: the kernel kills the direct child.
    eventually("the worker to die with its parent", || async {
        (!alive(worker)).then_some(())
    })
    .await;
    // Not guaranteed, and documented: a grandchild that does not watch its parent (here `sleep`)
    // outlives a SIGKILLed gatehouse, unless a service manager or PID namespace ends it. Clean up.
    if alive(grandchild) {
        harness::kill(grandchild, "KILL");
    }
}

#[tokio::test]
#[ignore = "run by workers_die_when_the_supervising_process_is_killed"]
async fn supervising_process() {
    let Some(run) = std::env::var_os(ROLE) else {
        return;
    };
    let load = harness::FakeLoad::new();
    let supervisor = harness::start(harness::app("sigkill", &[]), run.as_ref(), &load);
    let worker = wait_ready(&supervisor, 1).await.remove(0);
    let grandchild = harness::text(&worker.endpoint, "/spawn").await;
    println!("PIDS {} {grandchild}", worker.pid);
    // Keep supervising until killed.
    let _supervisor = supervisor;
    std::future::pending::<()>().await;
}
