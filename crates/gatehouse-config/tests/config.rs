//! Tests of the public API: `parse`/`load` on small TOML texts, checked against exact diagnostic
//! lines (`FILE:LINE:COL: KEY.PATH: message`), and every shipped file under `config/`.

mod config {
    mod defaults;
    mod diff;
    mod errors;
    mod files;
    mod rules_app;
    mod rules_route;
    mod rules_server;
    mod rules_tls;
}

use std::path::Path;

use gatehouse_config::{Config, Error, Machine};

/// A fixed machine, so that defaults that depend on it are predictable.
pub fn machine() -> Machine {
    Machine {
        xdg_runtime_dir: Some("/run/user/1000".into()),
        uid: Some(1000),
        cores: 4,
        now: std::time::SystemTime::now(),
    }
}

/// Parse as if the text came from `gatehouse.toml` (relative paths resolve to the crate directory).
pub fn parse(text: &str) -> Result<Config, Error> {
    gatehouse_config::parse_on(Path::new("gatehouse.toml"), text, &machine())
}

pub fn ok(text: &str) -> Config {
    match parse(text) {
        Ok(config) => config,
        Err(err) => panic!("expected a valid config, got:\n{err}"),
    }
}

/// The diagnostics, one printed line each.
pub fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("expected errors, the config is valid"),
        Err(Error::Invalid(diagnostics)) => diagnostics.0.iter().map(|d| d.to_string()).collect(),
        Err(other) => panic!("expected diagnostics, got {other}"),
    }
}

/// The only diagnostic.
pub fn error(text: &str) -> String {
    let mut all = errors(text);
    assert_eq!(all.len(), 1, "expected one error, got {all:#?}");
    all.remove(0)
}

/// The first two lines of most test files.
pub const LISTENER: &str = "[[listener]]\naddress = \"127.0.0.1:8080\"\n";
