//! Reading a Gunicorn config file: evaluated by Python exactly as Gunicorn evaluates it (the file is
//! a program: it may compute `workers` from the CPU count or read the environment), then handed
//! over as JSON. `gunicorn/translate.rs` maps the settings onto gatehouse's keys.

mod translate;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

/// The Gunicorn settings a config file sets, by name (Gunicorn's names are lower-case and matched
/// exactly), and what the importing machine's CPU count was.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub values: BTreeMap<String, Setting>,
    /// `os.cpu_count()` where the config was evaluated.
    pub cpus: Option<i64>,
    /// The file mentions the CPU count (`multiprocessing.cpu_count()`, ...): `workers` may be
    /// computed from it.
    pub cpu_dependent: bool,
}

#[derive(Deserialize)]
struct Evaluated {
    settings: Vec<(String, String, serde_json::Value)>,
    #[serde(default)]
    cpus: Option<i64>,
    #[serde(default)]
    cpu_dependent: bool,
}

/// How long the config may take to evaluate: a config that never finishes is an error, not a hang.
const EVALUATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `python` on the config file at `path` and collects the settings it sets.
///
/// The interpreter runs in the file's directory, as Gunicorn is usually started next to its config,
/// so that a config importing a neighbouring module works.
pub fn evaluate(path: &Path, python: &Path) -> Result<Settings> {
    evaluate_within(path, python, EVALUATION_TIMEOUT)
}

fn evaluate_within(path: &Path, python: &Path, limit: Duration) -> Result<Settings> {
    let path = std::fs::canonicalize(path).with_context(|| format!("{}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut child = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(&path)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {} to read the Gunicorn config", python.display()))?;
    // Read both pipes while waiting, so a config that prints a lot cannot block on a full pipe.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let Some(status) = wait_within(&mut child, limit)? else {
        let _ = child.kill();
        let _ = child.wait();
        bail!(
            "{} did not finish evaluating within {}s (does it loop forever or wait for input?); \
             {} was stopped",
            path.display(),
            limit.as_secs(),
            python.display()
        );
    };
    let stdout = joined(stdout);
    let stderr = joined(stderr);
    if !status.success() {
        bail!(
            "{} could not be evaluated by {} ({}):\n{}",
            path.display(),
            python.display(),
            status,
            String::from_utf8_lossy(&stderr).trim_end()
        );
    }
    // What the config printed (its own stdout included) is passed on, as Gunicorn showed it.
    if !stderr.is_empty() {
        use std::io::Write as _;
        let _ = std::io::stderr().write_all(&stderr);
    }
    parse(&stdout).with_context(|| {
        format!(
            "unexpected output of {} reading {}",
            python.display(),
            path.display()
        )
    })
}

/// Reads a child's pipe to its end on a thread of its own.
fn drain(pipe: Option<impl Read + Send + 'static>) -> Option<JoinHandle<Vec<u8>>> {
    let mut pipe = pipe?;
    Some(std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    }))
}

fn joined(reader: Option<JoinHandle<Vec<u8>>>) -> Vec<u8> {
    reader
        .and_then(|handle| handle.join().ok())
        .unwrap_or_default()
}

/// The child's exit status, or `None` if it is still running after `limit`.
fn wait_within(child: &mut Child, limit: Duration) -> Result<Option<std::process::ExitStatus>> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if start.elapsed() >= limit {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The script's JSON, as [`Settings`].
fn parse(json: &[u8]) -> Result<Settings> {
    let evaluated: Evaluated = serde_json::from_slice(json)?;
    let mut values = BTreeMap::new();
    for (name, kind, value) in evaluated.settings {
        let setting = match kind.as_str() {
            "value" => Setting::Value(value),
            _ => Setting::Python(value.as_str().unwrap_or_default().to_owned()),
        };
        values.insert(name, setting);
    }
    Ok(Settings {
        values,
        cpus: evaluated.cpus,
        cpu_dependent: evaluated.cpu_dependent,
    })
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
        let json = br#"{"settings": [["workers", "value", 3], ["post_fork", "python", "<function post_fork at 0x1>"], ["bind", "value", ["0.0.0.0:8000"]]], "cpus": 4, "cpu_dependent": true}"#;
        let settings = parse(json).unwrap();
        assert_eq!(
            settings.values["workers"],
            Setting::Value(serde_json::json!(3))
        );
        assert_eq!(
            settings.values["post_fork"].python(),
            "<function post_fork at 0x1>"
        );
        assert_eq!(settings.values["bind"].python(), "[\"0.0.0.0:8000\"]");
        assert_eq!((settings.cpus, settings.cpu_dependent), (Some(4), true));
    }

    /// The interpreter the e2e tests use, else python3 from PATH.
    fn python() -> std::path::PathBuf {
        std::env::var_os("GATEHOUSE_PYTHON")
            .map(Into::into)
            .unwrap_or_else(|| "python3".into())
    }

    /// A directory of its own holding `gunicorn.conf.py`, removed when dropped.
    struct Dir(std::path::PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn config(text: &str) -> (Dir, std::path::PathBuf) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "gatehouse-import-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gunicorn.conf.py");
        std::fs::write(&path, text).unwrap();
        (Dir(dir), path)
    }

    #[test]
    fn names_are_matched_exactly_as_gunicorn_does() {
        let (_dir, path) = config("WORKERS = 8\nTimeout = 5\nthreads = 2\n");
        let settings = evaluate(&path, &python()).unwrap();
        assert_eq!(
            settings.values.keys().collect::<Vec<_>>(),
            ["threads"],
            "{settings:?}"
        );
    }

    #[test]
    fn what_the_config_prints_does_not_spoil_the_json() {
        let (_dir, path) = config(
            "import os, sys\nprint('starting with', 3, 'workers')\nos.write(1, b'raw\\n')\n\
             sys.stdout.write('more')\nworkers = 3\n",
        );
        let settings = evaluate(&path, &python()).unwrap();
        assert_eq!(
            settings.values["workers"],
            Setting::Value(serde_json::json!(3))
        );
    }

    #[test]
    fn the_cpu_count_is_reported_with_whether_the_file_uses_it() {
        let (_dir, path) =
            config("import multiprocessing\nworkers = multiprocessing.cpu_count() * 2 + 1\n");
        let settings = evaluate(&path, &python()).unwrap();
        let cpus = settings.cpus.unwrap();
        assert!(settings.cpu_dependent);
        assert_eq!(
            settings.values["workers"],
            Setting::Value(serde_json::json!(cpus * 2 + 1))
        );
        let (_dir, path) = config("workers = 3\n");
        assert!(!evaluate(&path, &python()).unwrap().cpu_dependent);
    }

    #[test]
    fn a_config_that_never_finishes_is_stopped_with_an_error() {
        let (_dir, path) = config("while True:\n    pass\n");
        let started = Instant::now();
        let err = evaluate_within(&path, &python(), Duration::from_millis(500)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        let message = format!("{err:#}");
        assert!(
            message.contains("did not finish evaluating within"),
            "{message}"
        );
    }

    #[test]
    fn python_literals_read_like_python() {
        let value = serde_json::json!({"a": [true, null, 1.5]});
        assert_eq!(python_literal(&value), "{\"a\": [True, None, 1.5]}");
    }
}
