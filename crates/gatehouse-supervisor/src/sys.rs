//! Every system call that needs `unsafe`, each in a small function with its safety argument.
//!
//! Nothing else in the crate uses `unsafe`. What these calls guarantee about the lifetime of worker
//! processes is written down in `spawn.rs`.

use std::io;

/// The signals gatehouse sends to a worker's process group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    /// Finish what you are doing and exit (drain, shutdown).
    Term,
    /// A request passed its deadline: Python's faulthandler prints every thread's stack, then dies.
    Abort,
    Kill,
}

impl Signal {
    fn number(self) -> libc::c_int {
        match self {
            Signal::Term => libc::SIGTERM,
            Signal::Abort => libc::SIGABRT,
            Signal::Kill => libc::SIGKILL,
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signal::Term => "SIGTERM",
            Signal::Abort => "SIGABRT",
            Signal::Kill => "SIGKILL",
        })
    }
}

/// Arms `PR_SET_PDEATHSIG(SIGKILL)` in the child, between fork and exec: the child is killed when the
/// thread that forked it ends (which is why workers are forked on one long-lived thread, see `spawn`).
///
/// The kernel clears the setting when the credentials change, so it must run after `setuid`; std
/// runs `pre_exec` hooks after applying `Command::uid`/`gid`, which is that order.
#[allow(unsafe_code)]
pub(crate) fn kill_with_parent(command: &mut tokio::process::Command) {
    let parent = std::process::id();
    // SAFETY: the hook runs in the forked child, where only async-signal-safe work is allowed. It makes
    // two system calls (prctl, getppid), takes no lock and allocates nothing: an `io::Error` built
    // from an errno is a plain integer.
    unsafe {
        command.pre_exec(move || {
            let armed = libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            );
            if armed == -1 {
                return Err(io::Error::last_os_error());
            }
            // If gatehouse died between fork and prctl, the signal will never come: give up now.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Sends `signal` to every process in the group `pgid`.
///
/// Callers pass the pgid of a worker whose leader has not been reaped yet (until it is, the kernel
/// cannot give that number to another process or group), or was reaped a moment ago (see
/// `monitor::Group::leader_reaped`).
#[allow(unsafe_code)]
pub(crate) fn signal_group(pgid: u32, signal: Signal) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .ok()
        .filter(|pgid| *pgid > 1)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: kill(2) has no memory-safety preconditions. `pgid > 1`, so `-pgid` names exactly one
    // process group: never 0 (our own group) nor -1 (every process we may signal).
    if unsafe { libc::kill(-pgid, signal.number()) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// True when gatehouse runs as root (effective uid 0), the only case where `user`/`group` apply.
#[allow(unsafe_code)]
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() == 0 }
}

/// The size of a memory page, for the page counts in /proc.
#[allow(unsafe_code)]
pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf(3) reads a constant; it touches no memory of ours.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_signals_everyone() {
        for pgid in [0, 1] {
            let err = signal_group(pgid, Signal::Kill).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn page_size_is_sane() {
        assert!(page_size() >= 4096);
    }
}
