//! `gatehouse import`: translate a Gunicorn config (and an Nginx site) into a gatehouse.toml.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The Gunicorn config file (gunicorn.conf.py).
    #[arg(long)]
    pub gunicorn: PathBuf,
}

pub fn import(args: ImportArgs) -> ExitCode {
    eprintln!("gatehouse import {}: not implemented yet", args.gunicorn.display());
    ExitCode::from(crate::EXIT_CONFIG_ERROR)
}
