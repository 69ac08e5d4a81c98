//! gatehouse's configuration: the TOML file model, the validated model, and errors that name
//! `FILE:LINE:COL: KEY.PATH: message`. This is the only crate that parses TOML; it does no network IO.
//!
//! Loading goes in three steps, each of which can fail with located diagnostics:
//! TOML syntax (`toml_edit`, which also keeps every key's position for the later steps),
//! the file model (`file`, serde; stops at the first type error or unknown key),
//! and validation (`validate`; reports every problem in one run).

pub mod certs;
pub mod defaults;
mod diff;
mod error;
mod file;
mod location;
mod machine;
pub mod model;
mod units;
mod validate;
mod watch;

use std::path::Path;

pub use diff::{listener_keys, AppChange, Changes, ListenerKey};
pub use error::{Diagnostic, Diagnostics, Error};
pub use machine::Machine;
pub use model::Config;
pub use watch::{ConfigWatch, DirWatch};

use location::KeyPath;

/// Read and validate the config file at `path`.
pub fn load(path: &Path) -> Result<Config, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Validate `text` as if read from `path`. Relative paths in the file are resolved against the
/// directory of `path`; diagnostics name `path` as given.
pub fn parse(path: &Path, text: &str) -> Result<Config, Error> {
    parse_on(path, text, &Machine::current())
}

/// [`parse`] with the machine facts that some defaults depend on given explicitly
/// (the runtime directory and `workers = "auto"`), for tests and for reproducible checks.
pub fn parse_on(path: &Path, text: &str, machine: &Machine) -> Result<Config, Error> {
    let at = |offset: usize, key: String, message: String| {
        let (line, column) = location::line_col(text, offset);
        Diagnostic {
            file: path.to_path_buf(),
            line,
            column,
            key,
            message,
        }
    };
    let invalid = |diagnostics: Vec<Diagnostic>| Error::Invalid(Diagnostics(diagnostics));

    let doc = toml_edit::ImDocument::parse(text).map_err(|err| {
        let offset = err.span().map_or(0, |span| span.start);
        invalid(vec![at(offset, String::new(), syntax_message(&err))])
    })?;

    let file: file::File = serde_path_to_error::deserialize(toml::Deserializer::new(text))
        .map_err(|err| {
            let key = KeyPath::from_serde(err.path());
            // Our own key lookup honours "point at the key"; serde's span is the value's.
            let offset = if key.is_root() {
                err.inner().span().map_or(0, |span| span.start)
            } else {
                location::locate(&doc, &key)
            };
            invalid(vec![at(
                offset,
                key.to_string(),
                err.inner().message().to_owned(),
            )])
        })?;

    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let located = |problems: Vec<validate::Problem>| {
        let mut diagnostics: Vec<Diagnostic> = problems
            .into_iter()
            .map(|problem| {
                let offset = location::locate(&doc, &problem.path);
                at(offset, problem.path.to_string(), problem.message)
            })
            .collect();
        // File order reads best; the sort is stable, so one key's problems keep their order.
        diagnostics.sort_by_key(|d| (d.line, d.column));
        diagnostics
    };
    match validate::validate(file, &absolute, machine) {
        Ok((mut config, warnings)) => {
            config.warnings = located(warnings);
            Ok(config)
        }
        Err(problems) => Err(invalid(located(problems))),
    }
}

/// A diagnostic for the dotted `key` (no array indices) of the file `text` read from `path`,
/// pointing at the key's line, or at its table's when the key is absent (a reload rejected for a
/// key that cannot change at runtime names it this way).
pub fn locate_key(path: &Path, text: &str, key: &str, message: String) -> Diagnostic {
    let offset = toml_edit::ImDocument::parse(text).map_or(0, |doc| {
        let key_path = key
            .split('.')
            .fold(KeyPath::root(), |path, segment| path.key(segment));
        location::locate(&doc, &key_path)
    });
    let (line, column) = location::line_col(text, offset);
    Diagnostic {
        file: path.to_path_buf(),
        line,
        column,
        key: key.to_owned(),
        message,
    }
}

/// `toml_edit` messages span several lines (with a source excerpt); we print one line each.
fn syntax_message(err: &toml_edit::TomlError) -> String {
    let message = err.message().trim();
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
