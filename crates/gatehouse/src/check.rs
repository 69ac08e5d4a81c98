//! `gatehouse check`: validate a config file and say so, or print every error with its location.

use std::path::Path;
use std::process::ExitCode;

use crate::EXIT_CONFIG_ERROR;

pub fn check(path: &Path) -> ExitCode {
    match gatehouse_config::load(path) {
        Ok(_) => {
            println!("configuration OK");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{}", describe(&error));
            ExitCode::from(EXIT_CONFIG_ERROR)
        }
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
