//! Reaping orphans when gatehouse is PID 1 (a container's entry point): processes whose parent
//! died are reparented to PID 1, and their exit leaves a zombie until PID 1 waits for it.
//!
//! The supervisor's workers are gatehouse's direct children too, and tokio waits for each of them
//! by pid: reaping one here would steal its exit status. So this module never uses
//! `waitpid(-1)`: it lists the zombie children (`/proc/self/task/*/children`, then each one's
//! state), and reaps by pid only those that are not workers and were already zombies on an
//! earlier sweep at least [`GRACE`] ago. The grace covers a worker that exits before the
//! supervisor has recorded its pid, and a worker's zombie that tokio is about to reap.
//!
//! API:
//! - [`needed`]: whether this process should reap (it is PID 1). gatehouse does not make itself a
//!   child subreaper elsewhere (see the supervisor's `spawn.rs`), so outside a PID namespace
//!   orphans go to the system's init as before.
//! - [`spawn`]`(is_worker)`: the reaping task, on SIGCHLD and every [`GRACE`]; `is_worker(pid)`
//!   tells whether a pid is one of the supervisor's workers (from the supervisors' observers).
//!   Abort the returned task to stop.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long an unknown zombie is left alone before it is reaped.
pub const GRACE: Duration = Duration::from_secs(1);

/// Whether this process is PID 1 of its namespace, which the kernel makes reap every orphan.
pub fn needed() -> bool {
    std::process::id() == 1
}

/// Spawns the reaping task on the current tokio runtime.
pub fn spawn(is_worker: impl Fn(u32) -> bool + Send + 'static) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut sigchld = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())
        {
            Ok(signal) => Some(signal),
            Err(err) => {
                tracing::warn!(%err, "cannot watch SIGCHLD; reaping orphans every second");
                None
            }
        };
        let mut ticks = tokio::time::interval(GRACE);
        let mut sweep = Sweep::default();
        loop {
            match &mut sigchld {
                Some(signal) => {
                    tokio::select! {
                        _ = signal.recv() => {}
                        _ = ticks.tick() => {}
                    }
                }
                None => {
                    ticks.tick().await;
                }
            }
            for pid in sweep.due(&zombie_children(), &is_worker, Instant::now()) {
                if let Some(status) = reap(pid) {
                    tracing::debug!(pid, status, "reaped an orphaned process");
                }
            }
        }
    })
}

/// The zombies seen on earlier sweeps that are not workers, and since when.
#[derive(Debug, Default)]
struct Sweep {
    suspects: HashMap<u32, Instant>,
}

impl Sweep {
    /// The pids to reap now, given the zombie children seen at `now`.
    fn due(&mut self, zombies: &[u32], is_worker: &dyn Fn(u32) -> bool, now: Instant) -> Vec<u32> {
        self.suspects.retain(|pid, _| zombies.contains(pid));
        let mut due = Vec::new();
        for &pid in zombies {
            if is_worker(pid) {
                self.suspects.remove(&pid);
                continue;
            }
            let since = *self.suspects.entry(pid).or_insert(now);
            if now.duration_since(since) >= GRACE {
                due.push(pid);
                self.suspects.remove(&pid);
            }
        }
        due
    }
}

/// This process's children that are zombies. Children are listed per thread (the one that forked
/// them, or that they were reparented to), so every thread's list is read.
fn zombie_children() -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut zombies = Vec::new();
    for task in tasks.flatten() {
        let Ok(list) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        for pid in list
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            if state(pid) == Some('Z') && !zombies.contains(&pid) {
                zombies.push(pid);
            }
        }
    }
    zombies
}

/// The state letter of `/proc/PID/stat` (after the command name, which may hold spaces).
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.chars().next()
}

/// Waits for `pid` without blocking; its wait status, if it was reaped.
#[allow(unsafe_code)]
fn reap(pid: u32) -> Option<i32> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid for one pid, writing its status to a live c_int; WNOHANG never blocks.
    let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    (rc == pid).then_some(status)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn unknown_zombies_are_reaped_after_the_grace_and_workers_never() {
        let mut sweep = Sweep::default();
        let t0 = Instant::now();
        let is_worker = |pid: u32| pid == 10;
        assert!(
            sweep.due(&[10, 20], &is_worker, t0).is_empty(),
            "first sighting"
        );
        assert!(sweep.due(&[10, 20], &is_worker, t0 + GRACE / 2).is_empty());
        assert_eq!(sweep.due(&[10, 20], &is_worker, t0 + GRACE), vec![20]);
        assert!(sweep.due(&[10], &is_worker, t0 + GRACE * 5).is_empty());
    }

    #[test]
    fn a_zombie_that_becomes_known_or_goes_away_is_forgotten() {
        let mut sweep = Sweep::default();
        let t0 = Instant::now();
        let known = std::cell::Cell::new(false);
        let is_worker = |_pid: u32| known.get();
        assert!(sweep.due(&[30], &is_worker, t0).is_empty());
        known.set(true);
        assert!(sweep.due(&[30], &is_worker, t0 + GRACE).is_empty());
        known.set(false);
        assert!(
            sweep.due(&[30], &is_worker, t0 + GRACE * 2).is_empty(),
            "a new sighting"
        );
        assert!(sweep.due(&[], &is_worker, t0 + GRACE * 3).is_empty());
        assert!(sweep.suspects.is_empty());
    }

    #[test]
    fn a_zombie_child_is_listed_and_reaped_by_pid() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !zombie_children().contains(&pid) {
            assert!(Instant::now() < deadline, "{pid} never became a zombie");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(reap(pid), Some(0));
        assert_eq!(state(pid), None, "gone once reaped");
        // std's Child learns that someone else reaped it.
        assert!(child.wait().is_err());
    }
}
