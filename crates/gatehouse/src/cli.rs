//! Command-line interface (clap). Usage errors exit with code 2, as clap does by default.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// One binary in place of Nginx + Gunicorn: TLS, static files, reverse proxy and app workers.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run in the foreground.
    Run {
        /// The configuration file.
        #[arg(short, long, default_value = "gatehouse.toml")]
        config: PathBuf,
    },
    /// Validate the configuration like `nginx -t`: print "configuration OK" or every error.
    Check {
        /// The configuration file.
        #[arg(short, long, default_value = "gatehouse.toml")]
        config: PathBuf,
    },
    /// Ask the running instance to reload its config and roll its apps' workers (sends HUP to the
    /// pid in `[server] pid_file`).
    Reload {
        /// The configuration file (its `[server] pid_file` names the process).
        #[arg(short, long, default_value = "gatehouse.toml")]
        config: PathBuf,
    },
    /// Print a table of apps and workers, read from the admin endpoint's /status.
    Status {
        /// The configuration file (its `[admin] listen` is where to ask).
        #[arg(short, long, default_value = "gatehouse.toml")]
        config: PathBuf,
    },
    /// Exit 0 if the admin endpoint's /livez answers 200, else 1 (a container HEALTHCHECK).
    Health {
        /// The configuration file (its `[admin] listen` is where to ask).
        #[arg(short, long, default_value = "gatehouse.toml")]
        config: PathBuf,
    },
    /// Run a WSGI app with the built-in worker, without a config file (Gunicorn's flag names).
    Serve(crate::serve::ServeArgs),
    /// Print an equivalent gatehouse.toml for a Gunicorn config (and an Nginx site) on stdout.
    Import(crate::import::ImportArgs),
}
