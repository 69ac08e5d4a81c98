//! `gatehouse import`: the deployment guide's own gunicorn-cfg.py and Nginx snippet
//! (`tests/fixtures/import/`) become a config that `gatehouse check` accepts and that serves the
//! guide's app, `run:app`, with its static files.

use std::path::{Path, PathBuf};
use std::process::Output;

use gatehouse_tests::python::python;
use gatehouse_tests::workers::{client, get, venv_program, wait_ready};
use gatehouse_tests::Sandbox;

/// `tests/fixtures/import/`.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/import")
}

/// A sandbox holding the guide's files, the Nginx snippet's static directory pointing into it
/// (the one line that must change: the guide's `/path/to/static/` does not exist here).
fn guide_sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    for name in ["gunicorn-cfg.py", "run.py", "static/site.css"] {
        let text = std::fs::read(fixtures().join(name)).unwrap();
        sandbox.write(name, text);
    }
    let nginx = std::fs::read_to_string(fixtures().join("site.conf")).unwrap();
    let static_dir = format!("{}/", sandbox.join("static").display());
    sandbox.write("site.conf", nginx.replace("/path/to/static/", &static_dir));
    sandbox
}

fn import(sandbox: &Sandbox, args: &[&str]) -> Output {
    let interpreter = python().display().to_string();
    let mut argv = vec!["import", "--python", interpreter.as_str()];
    argv.extend_from_slice(args);
    sandbox.command(&argv)
}

fn stdout(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn assert_lines(toml: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            toml.lines().any(|l| l == *line),
            "no line {line:?} in:\n{toml}"
        );
    }
}

/// `gatehouse check -c FILE` on `toml` written as `FILE` in the sandbox.
fn check(sandbox: &Sandbox, file: &str, toml: &str) {
    sandbox.write(file, toml);
    let output = sandbox.command(&["check", "-c", file]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "check of\n{toml}\nsaid: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_gunicorn_and_nginx_files_become_a_config_that_serves_the_same_app() {
    let sandbox = guide_sandbox();
    let toml = stdout(&import(
        &sandbox,
        &[
            "--gunicorn",
            "gunicorn-cfg.py",
            "--nginx",
            "site.conf",
            "run:app",
        ],
    ));
    assert_lines(
        &toml,
        &[
            "address = \"0.0.0.0:80\"",
            r#"command = ["gunicorn", "--workers", "1", "--worker-class", "gevent", "--worker-connections", "1000", "--bind", "unix:{socket}", "run:app"]"#,
            "workers = 3",
            "concurrency = 1000",
            "timeout = \"30s\"",
            "max_requests = 1000",
            "max_requests_jitter = 100",
            "level = \"info\"",
            "access_log = \"-\"",
            "max_body_size = \"1MiB\"",
            "app = \"web\"",
            "path = \"/static/\"",
        ],
    );
    assert!(
        toml.contains("# not translated: preload_app = False"),
        "{toml}"
    );
    assert!(
        toml.contains("X-Real-IP $remote_addr` (site.conf:12): gatehouse sets it itself"),
        "{toml}"
    );
    check(&sandbox, "imported.toml", &toml);

    // Serve it: port 0 instead of 80, and the venv's Gunicorn instead of the one on PATH.
    let gunicorn = venv_program("gunicorn").display().to_string();
    let serving = toml
        .replace("\"0.0.0.0:80\"", "\"127.0.0.1:0\"")
        .replace(
            "[\"gunicorn\",",
            &format!("[{},", serde_json::to_string(&gunicorn).unwrap()),
        )
        .replacen(
            "\n[log]",
            "\n[server]\nruntime_dir = \"{dir}/run\"\nwatch_config = false\n\n[log]",
            1,
        );
    let gh = sandbox.start(&serving);
    wait_ready(&gh, "web", 3).await;

    let hello = get(&client(), &gh.url(0, "/")).await.unwrap();
    assert_eq!(hello.status, 200, "{hello:?}");
    assert!(hello.body.starts_with("Hello from run:app"), "{hello:?}");
    let health = get(&client(), &gh.url(0, "/health")).await.unwrap();
    assert_eq!((health.status, health.body.as_str()), (200, "OK"));
    let css = get(&client(), &gh.url(0, "/static/site.css"))
        .await
        .unwrap();
    assert_eq!(css.status, 200);
    assert_eq!(
        css.body,
        std::fs::read_to_string(fixtures().join("static/site.css")).unwrap()
    );
}

#[test]
fn gunicorn_alone_listens_where_gunicorn_was_bound() {
    let sandbox = guide_sandbox();
    let toml = stdout(&import(
        &sandbox,
        &["--gunicorn", "gunicorn-cfg.py", "run:app"],
    ));
    assert_lines(
        &toml,
        &[
            "address = \"0.0.0.0:8000\"",
            "keepalive_timeout = \"2s\"",
            "path = \"/\"",
            "app = \"web\"",
        ],
    );
    check(&sandbox, "imported.toml", &toml);
}

#[test]
fn settings_without_an_equivalent_become_comments() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "gunicorn.conf.py",
        r#"
import multiprocessing

bind = ["127.0.0.1:9000", "unix:/run/app.sock"]
workers = multiprocessing.cpu_count() * 0 + 2
threads = 4
daemon = True
raw_env = ["DJANGO_SETTINGS_MODULE=site.settings"]
wsgi_app = "site.wsgi:application"
helper = "not a Gunicorn setting"

def post_fork(server, worker):
    pass
"#,
    );
    let toml = stdout(&import(&sandbox, &["--gunicorn", "gunicorn.conf.py"]));
    assert_lines(
        &toml,
        &[
            "address = \"127.0.0.1:9000\"",
            "address = \"unix:/run/app.sock\"",
            "workers = 2",
            "concurrency = 4",
            r#"env = { DJANGO_SETTINGS_MODULE = "site.settings" }"#,
            r#"command = ["gunicorn", "--workers", "1", "--threads", "4", "--bind", "unix:{socket}", "site.wsgi:application"]"#,
        ],
    );
    assert!(
        toml.contains("# not translated: daemon = True (gatehouse runs in the foreground"),
        "{toml}"
    );
    assert!(
        toml.contains("# not translated: post_fork = <function post_fork"),
        "{toml}"
    );
    assert!(!toml.contains("helper"), "only Gunicorn's settings: {toml}");
}

#[test]
fn a_config_python_cannot_evaluate_is_an_error_naming_the_file() {
    let sandbox = Sandbox::new();
    sandbox.write("gunicorn.conf.py", "workers = \n");
    let output = import(&sandbox, &["--gunicorn", "gunicorn.conf.py"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("gunicorn.conf.py") && stderr.contains("SyntaxError"),
        "{stderr}"
    );
}

/// Gunicorn's own deployment layout: `try_files $uri @proxy_to_app` keeps the app as the static
/// route's fallback, `location = /` does not swallow the site, a literal `https://HOST` redirect
/// becomes the port-80 listener's redirect_https; the config's print() goes to stderr, `WORKERS`
/// is ignored as Gunicorn ignores it, and 2 x CPUs + 1 becomes "auto".
#[test]
fn gunicorns_deployment_layout_becomes_a_config_that_checks() {
    let sandbox = Sandbox::new();
    let dir = fixtures().join("gunicorn-docs");
    sandbox.write(
        "gunicorn.conf.py",
        std::fs::read(dir.join("gunicorn.conf.py")).unwrap(),
    );
    let public = sandbox.join("public");
    std::fs::create_dir_all(&public).unwrap();
    let nginx = std::fs::read_to_string(dir.join("nginx.conf")).unwrap();
    sandbox.write(
        "nginx.conf",
        nginx.replace("PUBLIC", &public.display().to_string()),
    );
    let certified = rcgen::generate_simple_self_signed(vec!["example.com".to_owned()]).unwrap();
    sandbox.write("certs/example.pem", certified.cert.pem());
    sandbox.write("certs/example.key", certified.signing_key.serialize_pem());

    let output = import(
        &sandbox,
        &[
            "--gunicorn",
            "gunicorn.conf.py",
            "--nginx",
            "nginx.conf",
            "run:app",
        ],
    );
    let toml = stdout(&output);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("loading gunicorn.conf.py"),
        "the config's print() goes to stderr"
    );
    let root = format!("{}/", public.display());
    assert_lines(
        &toml,
        &[
            "redirect_https = \"https://example.com\"",
            "workers = \"auto\"",
            "user = \"1000\"",
            "group = \"1000\"",
            "path = \"/\"",
            &format!(
                "static = {{ root = {}, fallback = \"web\" }}",
                serde_json::to_string(&root).unwrap()
            ),
        ],
    );
    for comment in [
        "not translated: exact location = / would match every path",
        "location = /favicon.ico` (nginx.conf:28): not translated: an exact location serving one file",
        "ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3 (server at nginx.conf:13): not translated: TLSv1, TLSv1.1",
        "min_version = \"1.2\"",
    ] {
        assert!(toml.contains(comment), "{comment} in\n{toml}");
    }
    assert!(!toml.contains("workers = 8"), "{toml}");
    assert!(!toml.contains("No Nginx location proxied"), "{toml}");
    // The HTTPS server's two names; nothing else became a route.
    assert_eq!(toml.matches("[[route]]").count(), 2, "{toml}");
    check(&sandbox, "imported.toml", &toml);
}

/// What a failing config printed (to stdout or stderr) is in the error.
#[test]
fn a_failing_config_shows_what_it_printed() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "gunicorn.conf.py",
        "import sys\nprint('to stderr')\nsys.exit(3)\n",
    );
    let output = import(&sandbox, &["--gunicorn", "gunicorn.conf.py"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("could not be evaluated") && stderr.contains("to stderr"),
        "{stderr}"
    );
}
