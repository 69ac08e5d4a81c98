//! `gatehouse serve MODULE:APP`: run a WSGI app with the built-in worker and no config file.

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The WSGI app, as `module:callable`.
    pub app: String,
}

pub fn serve(args: ServeArgs) -> ExitCode {
    eprintln!("gatehouse serve {}: not implemented yet", args.app);
    ExitCode::from(crate::EXIT_CONFIG_ERROR)
}
