//! The built-in WSGI worker (`[[app]] wsgi = "module:callable"`): a stdlib-only Python program
//! embedded in the binary (`wsgi/worker.py`; its docstring is its manual), written into the app's
//! private runtime directory when the app's workers are prepared, and the command line that runs it.
//!
//! The program is written on every start and roll (atomically, by rename), so a worker always
//! runs the program of the gatehouse that spawned it, and nothing has to be installed next to
//! the app but Python itself.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use gatehouse_config::model::App;

/// The worker program, as built into this binary.
pub(crate) const PROGRAM: &str = include_str!("wsgi/worker.py");

/// Its file name inside the app's runtime directory (next to the worker sockets).
const FILE_NAME: &str = "wsgi-worker.py";

/// Writes the program into `dir` and returns the argv that runs it for `app`, with `{socket}`
/// left for the spawn to substitute.
pub(crate) fn prepare(
    app: &App,
    target: &str,
    python: &Path,
    dir: &Path,
) -> io::Result<Vec<String>> {
    let program = write_program(dir)?;
    Ok(argv(app, target, python, &program))
}

/// `python worker.py --socket {socket} --threads N --workers N [--root-path P] -- target`.
fn argv(app: &App, target: &str, python: &Path, program: &Path) -> Vec<String> {
    let mut argv = vec![
        python.to_string_lossy().into_owned(),
        program.to_string_lossy().into_owned(),
        "--socket".to_owned(),
        "{socket}".to_owned(),
        // `concurrency` is what the proxy sends one worker at once: one thread per request.
        "--threads".to_owned(),
        app.concurrency.to_string(),
        "--workers".to_owned(),
        app.workers.to_string(),
    ];
    if let Some(root) = &app.root_path {
        argv.push("--root-path".to_owned());
        argv.push(root.clone());
    }
    argv.push("--".to_owned());
    argv.push(target.to_owned());
    argv
}

/// Writes the program as `dir/wsgi-worker.py` (mode 0644: a worker user that owns `dir` reads
/// it), through a temporary file and a rename, so that a worker starting meanwhile never reads
/// half a program.
fn write_program(dir: &Path) -> io::Result<PathBuf> {
    let path = dir.join(FILE_NAME);
    if std::fs::read(&path).is_ok_and(|current| current == PROGRAM.as_bytes()) {
        return Ok(path);
    }
    let temporary = dir.join(format!(".{FILE_NAME}.{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&temporary)
        .and_then(|mut file| file.write_all(PROGRAM.as_bytes()))
        .and_then(|()| std::fs::rename(&temporary, &path));
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use gatehouse_config::model::Launch;

    use super::*;

    fn app() -> App {
        App {
            name: "web".into(),
            launch: Launch::Wsgi {
                target: "site.wsgi:application".into(),
                python: "python3".into(),
            },
            directory: "/srv/app".into(),
            env: BTreeMap::new(),
            workers: 3,
            concurrency: 4,
            timeout: Duration::from_secs(30),
            graceful_timeout: Duration::from_secs(30),
            max_requests: 0,
            max_requests_jitter: 0,
            max_memory: None,
            startup_timeout: Duration::from_secs(60),
            queue_size: 16,
            queue_timeout: Duration::from_secs(5),
            health: None,
            user: None,
            group: None,
            root_path: Some("/app".into()),
            buffering: true,
        }
    }

    #[test]
    fn argv_names_the_program_the_socket_placeholder_and_the_settings() {
        let argv = argv(
            &app(),
            "site.wsgi:application",
            Path::new("/venv/bin/python"),
            Path::new("/run/g/web/wsgi-worker.py"),
        );
        assert_eq!(
            argv,
            [
                "/venv/bin/python",
                "/run/g/web/wsgi-worker.py",
                "--socket",
                "{socket}",
                "--threads",
                "4",
                "--workers",
                "3",
                "--root-path",
                "/app",
                "--",
                "site.wsgi:application"
            ]
        );
    }

    #[test]
    fn the_program_is_written_whole_and_rewritten_when_it_differs() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_program(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), PROGRAM);
        std::fs::write(&path, "stale").unwrap();
        assert_eq!(write_program(dir.path()).unwrap(), path);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), PROGRAM);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE_NAME], "no temporary file is left");
    }
}
