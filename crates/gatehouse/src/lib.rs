//! The gatehouse binary's library: the command line, logging, signals, and the wiring of the
//! config, proxy and supervisor crates. This is the only crate that reads the environment or the
//! command line, installs the tracing subscriber, handles OS signals, or decides the exit code.

mod activation;
mod admin;
mod apps;
mod check;
mod cli;
mod import;
mod listeners;
mod logging;
mod notify;
mod reaper;
mod reload;
mod run;
mod serve;
mod status;
mod watch;

use std::process::ExitCode;

use clap::Parser;

pub use cli::{Cli, Command};

/// Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.
pub const EXIT_RUNTIME_FAILURE: u8 = 1;
pub const EXIT_CONFIG_ERROR: u8 = 2;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check::check(&config),
        Command::Run { config } => run::run(&config),
        Command::Reload { config } => reload::signal(&config),
        Command::Serve(args) => serve::serve(args),
        Command::Import(args) => import::import(args),
        Command::Status { config } => status::status(&config),
        Command::Health { config } => status::health(&config),
    }
}
