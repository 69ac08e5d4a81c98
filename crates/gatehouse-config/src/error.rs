//! The crate's one error type and the diagnostics it carries.
//!
//! A diagnostic prints as `FILE:LINE:COL: KEY.PATH: message` (pinned in DESIGN.md): FILE as the user
//! gave it, LINE and COL 1-based and pointing at the offending key, array indices 0-based.
//! A TOML syntax error has no key path and prints as `FILE:LINE:COL: message`.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// Every problem found in the file, one per line.
    #[error("{0}")]
    Invalid(Diagnostics),
    #[error("cannot watch {} for changes", path.display())]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
}

/// All problems found in one file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

/// One problem, located at a key of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// e.g. `route[2].static.root`; empty for syntax errors.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_one_diagnostic_per_line() {
        let diagnostic = |line, key: &str, message: &str| Diagnostic {
            file: PathBuf::from("gatehouse.toml"),
            line,
            column: 9,
            key: key.to_owned(),
            message: message.to_owned(),
        };
        let error = Error::Invalid(Diagnostics(vec![
            diagnostic(12, "route[2].static.root", "directory does not exist"),
            diagnostic(14, "", "invalid key"),
        ]));
        assert_eq!(
            error.to_string(),
            "gatehouse.toml:12:9: route[2].static.root: directory does not exist\n\
             gatehouse.toml:14:9: invalid key"
        );
    }
}
