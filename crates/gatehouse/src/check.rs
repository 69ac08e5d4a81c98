//! `gatehouse check`: validate a config file and say so, or print every error with its location.
//! Warnings (an expired certificate) are printed too but do not fail the check.

use std::path::Path;
use std::process::ExitCode;

use crate::EXIT_CONFIG_ERROR;

pub fn check(path: &Path) -> ExitCode {
    match gatehouse_config::load(path) {
        Ok(config) => {
            for warning in &config.warnings {
                eprintln!("warning: {warning}");
            }
            println!("configuration OK");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{}", describe(&error));
            ExitCode::from(EXIT_CONFIG_ERROR)
        }
    }
}

/// Logs the config's warnings, loudly: each is something that works now but will hurt.
pub fn log_warnings(config: &gatehouse_config::Config) {
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
}

/// The error with its cause chain (a read error keeps the OS reason in `source()`).
pub fn describe(error: &gatehouse_config::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
