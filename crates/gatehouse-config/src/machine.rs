//! Facts about the machine that some defaults and checks depend on: the runtime directory, the core
//! count, and the clock (a certificate that is not valid yet is an error).
//!
//! They are gathered in one value so that validation itself stays a pure function of its inputs
//! (tests pass a fixed [`Machine`]) and so that the one place that looks at the process
//! environment is easy to find.

use std::path::PathBuf;
use std::time::SystemTime;

/// What defaults may depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// `$XDG_RUNTIME_DIR`, when set to an absolute path.
    pub xdg_runtime_dir: Option<PathBuf>,
    /// Our user id, when it can be found (Linux: the owner of `/proc/self`).
    pub uid: Option<u32>,
    /// Cores available to this process (`workers = "auto"` uses it).
    pub cores: usize,
    /// Now, for certificate validity.
    pub now: SystemTime,
}

impl Machine {
    /// The machine this process runs on.
    pub fn current() -> Machine {
        let xdg_runtime_dir = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|dir| dir.is_absolute());
        let uid = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self").ok().map(|meta| meta.uid())
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Machine {
            xdg_runtime_dir,
            uid,
            cores,
            now: SystemTime::now(),
        }
    }

    /// `$XDG_RUNTIME_DIR/gatehouse`, else `/tmp/gatehouse-<uid>` (a per-user name, because /tmp is shared).
    pub fn default_runtime_dir(&self) -> PathBuf {
        match (&self.xdg_runtime_dir, self.uid) {
            (Some(dir), _) => dir.join("gatehouse"),
            (None, Some(uid)) => PathBuf::from(format!("/tmp/gatehouse-{uid}")),
            (None, None) => PathBuf::from("/tmp/gatehouse"),
        }
    }
}
