//! Reading a Gunicorn config file: evaluated by Python exactly as Gunicorn evaluates it (the file is
//! a program: it may compute `workers` from the CPU count or read the environment), then handed
//! over as JSON. `gunicorn/translate.rs` maps the settings onto gatehouse's keys.

mod translate;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

pub use translate::{split_host_port, translate, Binds, Context as TranslateContext, APP_NAME};

/// The evaluation script; see its docstring.
const SCRIPT: &str = include_str!("gunicorn.py");

/// One setting's value as the config file left it.
#[derive(Debug, Clone, PartialEq)]
pub enum Setting {
    /// Plain data (numbers, strings, lists, dicts, None as `Null`).
    Value(serde_json::Value),
    /// Something JSON cannot hold, such as a server hook: its Python repr.
    Python(String),
}

/// The Gunicorn settings a config file sets, by lower-case name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings(pub BTreeMap<String, Setting>);

#[derive(Deserialize)]
struct Evaluated {
    settings: Vec<(String, String, serde_json::Value)>,
}

/// Runs `python` on the config file at `path` and collects the settings it sets.
///
/// The interpreter runs in the file's directory, as Gunicorn is usually started next to its config,
/// so that a config importing a neighbouring module works.
pub fn evaluate(path: &Path, python: &Path) -> Result<Settings> {
    let path = std::fs::canonicalize(path).with_context(|| format!("{}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let output = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(&path)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {} to read the Gunicorn config", python.display()))?;
    if !output.status.success() {
        bail!(
            "{} could not be evaluated by {} ({}):\n{}",
            path.display(),
            python.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    parse(&output.stdout).with_context(|| {
        format!(
            "unexpected output of {} reading {}",
            python.display(),
            path.display()
        )
    })
}

/// The script's JSON, as [`Settings`].
fn parse(json: &[u8]) -> Result<Settings> {
    let evaluated: Evaluated = serde_json::from_slice(json)?;
    let mut settings = BTreeMap::new();
    for (name, kind, value) in evaluated.settings {
        let setting = match kind.as_str() {
            "value" => Setting::Value(value),
            _ => Setting::Python(value.as_str().unwrap_or_default().to_owned()),
        };
        settings.insert(name, setting);
    }
    Ok(Settings(settings))
}

impl Setting {
    /// How the setting reads in a comment: as it would in the Python file.
    pub fn python(&self) -> String {
        match self {
            Setting::Python(repr) => repr.clone(),
            Setting::Value(value) => python_literal(value),
        }
    }
}

fn python_literal(value: &serde_json::Value) -> String {
    use serde_json::Value as J;
    match value {
        J::Null => "None".to_owned(),
        J::Bool(true) => "True".to_owned(),
        J::Bool(false) => "False".to_owned(),
        J::Number(n) => n.to_string(),
        J::String(s) => serde_json::to_string(s).unwrap_or_default(),
        J::Array(items) => {
            let items: Vec<String> = items.iter().map(python_literal).collect();
            format!("[{}]", items.join(", "))
        }
        J::Object(map) => {
            let pairs: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}: {}",
                        python_literal(&J::from(k.as_str())),
                        python_literal(v)
                    )
                })
                .collect();
            format!("{{{}}}", pairs.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_json_becomes_settings() {
        let json = br#"{"settings": [["workers", "value", 3], ["post_fork", "python", "<function post_fork at 0x1>"], ["bind", "value", ["0.0.0.0:8000"]]]}"#;
        let settings = parse(json).unwrap();
        assert_eq!(settings.0["workers"], Setting::Value(serde_json::json!(3)));
        assert_eq!(
            settings.0["post_fork"].python(),
            "<function post_fork at 0x1>"
        );
        assert_eq!(settings.0["bind"].python(), "[\"0.0.0.0:8000\"]");
    }

    #[test]
    fn python_literals_read_like_python() {
        let value = serde_json::json!({"a": [true, null, 1.5]});
        assert_eq!(python_literal(&value), "{\"a\": [True, None, 1.5]}");
    }
}
