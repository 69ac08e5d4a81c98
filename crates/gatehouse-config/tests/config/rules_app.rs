//! Validation of `[[app]]`, `[[upstream]]`, their health checks and their shared namespace.

use std::collections::BTreeMap;

use gatehouse_config::model::Launch;

use crate::{error, errors, ok, LISTENER};

/// A valid app after the listener (lines 3-5); tests append keys from line 6 on.
fn app(extra: &str) -> String {
    format!("{LISTENER}[[app]]\nname = \"web\"\ncommand = [\"gunicorn\", \"run:app\"]\n{extra}")
}

#[test]
fn every_app_key() {
    let config = ok(&app(r#"directory = "src"
env = { A = "x", PYTHONUNBUFFERED = 1, DEBUG = false }
workers = 5
concurrency = 100
timeout = "1m"
graceful_timeout = "10s"
max_requests = 1000
max_requests_jitter = 100
max_memory = "512MiB"
startup_timeout = "2m"
queue_size = 0
queue_timeout = "5s"
health = { path = "/health", interval = "1s", timeout = "500ms", failures = 2 }
user = "www-data"
group = "www-data"
root_path = "/app"
buffering = true
"#));
    let app = &config.apps[0];
    assert!(app.directory.ends_with("src"));
    let env: BTreeMap<String, String> = [("A", "x"), ("DEBUG", "false"), ("PYTHONUNBUFFERED", "1")]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    assert_eq!(app.env, env);
    assert_eq!((app.workers, app.concurrency), (5, 100));
    assert_eq!(app.timeout.as_secs(), 60);
    assert_eq!(app.graceful_timeout.as_secs(), 10);
    assert_eq!((app.max_requests, app.max_requests_jitter), (1000, 100));
    assert_eq!(app.max_memory, Some(512 * 1024 * 1024));
    assert_eq!(app.startup_timeout.as_secs(), 120);
    assert_eq!(app.queue_size, 0);
    assert_eq!(app.queue_timeout.as_secs(), 5);
    let health = app.health.as_ref().unwrap();
    assert_eq!(health.path.as_deref(), Some("/health"));
    assert_eq!(
        (health.interval.as_millis(), health.timeout.as_millis()),
        (1000, 500)
    );
    assert_eq!(health.failures, 2);
    assert_eq!(app.user.as_deref(), Some("www-data"));
    assert_eq!(app.group.as_deref(), Some("www-data"));
    assert_eq!(app.root_path.as_deref(), Some("/app"));
    assert!(app.buffering);
}

#[test]
fn wsgi_with_a_relative_python() {
    let text = format!(
        "{LISTENER}[[app]]\nname = \"web\"\nwsgi = \"run:app\"\npython = \".venv/bin/python\"\ndirectory = \"src\"\n"
    );
    let config = ok(&text);
    let Launch::Wsgi { target, python } = &config.apps[0].launch else {
        panic!("wsgi app expected");
    };
    assert_eq!(target, "run:app");
    assert_eq!(*python, config.apps[0].directory.join(".venv/bin/python"));
}

#[test]
fn command_xor_wsgi() {
    assert_eq!(
        error(&app("wsgi = \"run:app\"\n")),
        "gatehouse.toml:6:1: app[0].wsgi: command and wsgi are mutually exclusive; set one"
    );
    assert_eq!(
        error(&format!("{LISTENER}[[app]]\nname = \"web\"\n")),
        "gatehouse.toml:3:1: app[0]: no way to start workers: set command = [...] or wsgi = \"module:app\""
    );
    assert_eq!(
        error(&format!(
            "{LISTENER}[[app]]\nname = \"web\"\ncommand = []\n"
        )),
        "gatehouse.toml:5:1: app[0].command: must start with a program, e.g. [\"gunicorn\", ...]"
    );
    assert_eq!(
        error(&app("python = \"python3.12\"\n")),
        "gatehouse.toml:6:1: app[0].python: python applies only to the built-in WSGI worker (wsgi = \"module:app\")"
    );
    assert_eq!(
        error(&format!("{LISTENER}[[app]]\nname = \"web\"\nwsgi = \"run:app:x\"\n")),
        "gatehouse.toml:5:1: app[0].wsgi: invalid WSGI target \"run:app:x\" (expected \"module:callable\", e.g. \"run:app\")"
    );
}

#[test]
fn numbers_in_range() {
    let text = app(
        "workers = \"many\"\nconcurrency = 0\nmax_requests = -1\nqueue_size = -1\ntimeout = 0\nqueue_timeout = \"0s\"\nstartup_timeout = 0\nmax_memory = 0\n",
    );
    assert_eq!(
        errors(&text),
        [
            "gatehouse.toml:6:1: app[0].workers: must be at least 1, or \"auto\"",
            "gatehouse.toml:7:1: app[0].concurrency: must be at least 1",
            "gatehouse.toml:8:1: app[0].max_requests: must not be negative",
            "gatehouse.toml:9:1: app[0].queue_size: must not be negative",
            "gatehouse.toml:10:1: app[0].timeout: must be greater than zero",
            "gatehouse.toml:11:1: app[0].queue_timeout: must be greater than zero",
            "gatehouse.toml:12:1: app[0].startup_timeout: must be greater than zero",
            "gatehouse.toml:13:1: app[0].max_memory: must be greater than zero",
        ]
    );
}

#[test]
fn max_requests_jitter() {
    assert_eq!(
        error(&app("max_requests_jitter = 10\n")),
        "gatehouse.toml:6:1: app[0].max_requests_jitter: needs max_requests to be set"
    );
    assert_eq!(
        error(&app("max_requests = 10\nmax_requests_jitter = 11\n")),
        "gatehouse.toml:7:1: app[0].max_requests_jitter: must not exceed max_requests (10)"
    );
}

#[test]
fn directory_root_path_user_env() {
    let text = app(
        "directory = \"no/such/dir\"\nroot_path = \"app/\"\nuser = \"\"\nenv = { \"A=B\" = \"x\" }\n",
    );
    assert_eq!(
        errors(&text),
        [
            "gatehouse.toml:6:1: app[0].directory: directory does not exist",
            "gatehouse.toml:7:1: app[0].root_path: must start with '/' and not end with '/' (e.g. \"/app\")",
            "gatehouse.toml:8:1: app[0].user: must not be empty",
            "gatehouse.toml:9:9: app[0].env.\"A=B\": invalid variable name (empty, or contains '=' or NUL)",
        ]
    );
    assert_eq!(
        error(&app("directory = \"Cargo.toml\"\n")),
        "gatehouse.toml:6:1: app[0].directory: not a directory"
    );
}

#[test]
fn names_are_required_plain_and_unique_across_apps_and_upstreams() {
    let text = format!(
        r#"{LISTENER}[[app]]
name = "web"
command = ["x"]
[[app]]
command = ["x"]
[[app]]
name = "my app"
command = ["x"]
[[upstream]]
name = "web"
servers = ["a:1"]
[[upstream]]
name = ""
servers = ["a:1"]
"#
    );
    assert_eq!(
        errors(&text),
        [
            "gatehouse.toml:6:1: app[1].name: required key is missing",
            "gatehouse.toml:9:1: app[2].name: invalid name \"my app\" (up to 64 letters, digits, '-', '_' or '.', not starting with '.')",
            "gatehouse.toml:12:1: upstream[0].name: name \"web\" is already used by app[0] (apps and upstreams share one namespace)",
            "gatehouse.toml:15:1: upstream[1].name: must not be empty",
        ]
    );
}

#[test]
fn upstream_servers() {
    let config = ok(&format!(
        "{LISTENER}[[upstream]]\nname = \"api\"\nservers = [\"10.0.0.5:8000\", \"api.internal:80\", \"[::1]:8000\", \"unix:/run/api.sock\"]\nconnect_timeout = \"1s\"\ntimeout = \"2m\"\n"
    ));
    let upstream = &config.upstreams[0];
    let servers: Vec<String> = upstream.servers.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        servers,
        [
            "10.0.0.5:8000",
            "api.internal:80",
            "[::1]:8000",
            "unix:/run/api.sock"
        ]
    );
    assert_eq!(upstream.connect_timeout.as_secs(), 1);
    assert_eq!(upstream.timeout.as_secs(), 120);

    let text = format!(
        "{LISTENER}[[upstream]]\nname = \"a\"\nservers = []\n[[upstream]]\nname = \"b\"\nservers = [\"http://x:80\", \"x\"]\n[[upstream]]\nname = \"c\"\n"
    );
    assert_eq!(
        errors(&text),
        [
            "gatehouse.toml:5:1: upstream[0].servers: must list at least one server",
            "gatehouse.toml:8:12: upstream[1].servers[0]: invalid server \"http://x:80\": no scheme, write host:port or unix:/path.sock",
            "gatehouse.toml:8:27: upstream[1].servers[1]: invalid server \"x\" (expected host:port or unix:/path.sock)",
            "gatehouse.toml:9:1: upstream[2].servers: required key is missing",
        ]
    );
}

#[test]
fn health_checks() {
    let text = format!(
        "{LISTENER}[[upstream]]\nname = \"api\"\nservers = [\"a:1\"]\nhealth = {{ path = \"health\", interval = 0, timeout = \"-1s\", failures = 0 }}\n"
    );
    assert_eq!(
        errors(&text),
        [
            "gatehouse.toml:6:12: upstream[0].health.path: must start with '/'",
            "gatehouse.toml:6:29: upstream[0].health.interval: must be greater than zero",
            "gatehouse.toml:6:43: upstream[0].health.timeout: duration must not be negative",
            "gatehouse.toml:6:60: upstream[0].health.failures: must be at least 1",
        ]
    );
}
