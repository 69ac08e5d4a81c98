//! `gatehouse reload`: send HUP to the running instance named by `[server] pid_file`.

use std::path::Path;
use std::process::ExitCode;

pub fn signal(path: &Path) -> ExitCode {
    eprintln!("gatehouse reload {}: not implemented yet", path.display());
    ExitCode::from(crate::EXIT_CONFIG_ERROR)
}
