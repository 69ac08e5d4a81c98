//! gatehouse as PID 1 (a container's entry point), in a new PID namespace: it reaps orphaned
//! processes that are reparented to it, and TERM still drains and exits 0.

use std::process::Command;

use gatehouse_tests::gatehouse::binary;
use gatehouse_tests::python::{apps_dir, python};
use gatehouse_tests::wait::wait_until;
use gatehouse_tests::workers::{children, one_app};
use gatehouse_tests::Sandbox;

use super::Spawned;

/// `unshare --pid --fork --mount-proc` runs gatehouse as PID 1 of a new namespace with its own
/// /proc, as in a container (the reaper reads /proc for pids it can wait for); returns the
/// launcher and gatehouse's pid as seen from here.
fn as_pid_1(sandbox: &Sandbox, worker: Vec<String>) -> (Spawned, u32) {
    let config = sandbox.config(&one_app("w", &worker, "workers = 1"));
    let mut command = Command::new("unshare");
    command
        .args(["--pid", "--fork", "--kill-child", "--mount-proc"])
        .arg(binary())
        .args(["run", "-c"])
        .arg(&config)
        .current_dir(sandbox.path());
    let launcher = Spawned::start(command);
    let mut gatehouse = None;
    wait_until("gatehouse under unshare", || {
        gatehouse = children(launcher.pid()).into_iter().next();
        gatehouse.is_some()
    });
    let gatehouse = gatehouse.unwrap();
    launcher.stderr.wait_for("worker ready");
    (launcher, gatehouse)
}

/// `(comm, state)` of a process from /proc.
fn comm_and_state(pid: u32) -> Option<(String, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let state = text[close + 2..].chars().next()?;
    Some((text[open + 1..close].to_owned(), state))
}

/// Every child of `pid`, zombies included (the harness's `children` leaves zombies out).
fn children_and_zombies(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|text| {
                    let (_, rest) = text.rsplit_once(") ")?;
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// The stdlib worker, after leaving behind an orphan (`sleep`, whose parent exits at once, so it
/// is reparented to PID 1).
fn worker_leaving_an_orphan() -> Vec<String> {
    let script = format!(
        "sh -c 'sleep 1 &'; exec {} -u {}",
        python().display(),
        apps_dir().join("worker.py").display()
    );
    vec!["sh".to_owned(), "-c".to_owned(), script]
}

#[test]
fn as_pid_1_it_reaps_orphans_and_keeps_its_own_workers() {
    let sandbox = Sandbox::new();
    let (mut launcher, gatehouse) = as_pid_1(&sandbox, worker_leaving_an_orphan());
    let orphans = || -> Vec<(u32, char)> {
        children_and_zombies(gatehouse)
            .into_iter()
            .filter_map(|pid| {
                let (comm, state) = comm_and_state(pid)?;
                (comm == "sleep").then_some((pid, state))
            })
            .collect()
    };
    wait_until("the orphan reparented to gatehouse", || {
        !orphans().is_empty()
    });
    // It lives for a second, then exits: unreaped it would stay, a zombie (state Z).
    // Once the orphan exits it must not stay a zombie of gatehouse.
    wait_until("the orphan reaped", || orphans().is_empty());
    assert!(
        !launcher.stderr.text().contains("worker exited"),
        "reaping never takes a worker's exit from the supervisor"
    );

    super::signal(gatehouse, "TERM");
    assert_eq!(
        launcher.wait_exit().code(),
        Some(0),
        "{}",
        launcher.stderr.text()
    );
}

#[test]
fn as_pid_1_term_still_drains_and_exits_0() {
    let sandbox = Sandbox::new();
    let worker = vec![
        python().display().to_string(),
        "-u".to_owned(),
        apps_dir().join("worker.py").display().to_string(),
    ];
    let (mut launcher, gatehouse) = as_pid_1(&sandbox, worker);
    super::signal(gatehouse, "TERM");
    assert_eq!(
        launcher.wait_exit().code(),
        Some(0),
        "{}",
        launcher.stderr.text()
    );
    assert!(launcher.stderr.text().contains("draining"));
}
