//! Every default, from a file that sets only what is required.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use gatehouse_config::model::{
    AccessFormat, AccessLogTarget, Action, Launch, ListenAddress, LogFormat, Static,
};
use gatehouse_config::Machine;

use crate::{machine, ok};

const MINIMAL: &str = r#"
[[listener]]
address = "127.0.0.1:8080"

[[app]]
name = "web"
command = ["gunicorn", "run:app"]

[[upstream]]
name = "api"
servers = ["127.0.0.1:9000"]
health = {}

[[route]]
path = "/static/"
static = { root = "src" }

[[route]]
path = "/"
app = "web"

[[route]]
path = "/ok"
respond = { status = 204 }
"#;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn global_sections() {
    let config = ok(MINIMAL);
    assert!(config.path.is_absolute());
    assert!(config.path.ends_with("gatehouse.toml"));

    assert_eq!(config.server.pid_file, None);
    assert_eq!(
        config.server.runtime_dir,
        PathBuf::from("/run/user/1000/gatehouse")
    );
    assert_eq!(config.server.graceful_timeout, secs(30));
    assert!(config.server.watch_config);
    assert_eq!(config.server.trusted_proxies, vec![]);

    let admin: SocketAddr = "127.0.0.1:9180".parse().unwrap();
    assert_eq!(config.admin.listen, Some(admin));

    assert_eq!(config.log.level, "info");
    assert_eq!(config.log.format, LogFormat::Text);
    assert_eq!(config.log.access_log, AccessLogTarget::Stdout);
    assert_eq!(config.log.access_format, AccessFormat::Combined);

    assert_eq!(config.limits.max_header_bytes, 16 * 1024);
    assert_eq!(config.limits.max_header_count, 100);
    assert_eq!(config.limits.max_body_size, 10 * 1024 * 1024);
    assert_eq!(config.limits.header_timeout, secs(10));
    assert_eq!(config.limits.keepalive_timeout, secs(75));
    assert_eq!(config.limits.websocket_idle_timeout, Some(secs(3600)));
    assert_eq!(config.limits.max_connections, 10_000);

    let listener = &config.listeners[0];
    assert_eq!(
        listener.address,
        ListenAddress::Tcp("127.0.0.1:8080".parse().unwrap())
    );
    assert!(listener.http2);
    assert_eq!(listener.redirect_https, None);
}

#[test]
fn upstream_and_health() {
    let config = ok(MINIMAL);
    let upstream = &config.upstreams[0];
    assert_eq!(upstream.connect_timeout, secs(5));
    assert_eq!(upstream.timeout, secs(60));
    let health = upstream.health.as_ref().unwrap();
    assert_eq!(health.path, None);
    assert_eq!(health.interval, secs(5));
    assert_eq!(health.timeout, secs(2));
    assert_eq!(health.failures, 3);
}

#[test]
fn app() {
    let config = ok(MINIMAL);
    let app = &config.apps[0];
    assert_eq!(app.name, "web");
    assert_eq!(
        app.launch,
        Launch::Command(vec!["gunicorn".into(), "run:app".into()])
    );
    assert_eq!(app.directory, config.path.parent().unwrap());
    assert_eq!(app.env, BTreeMap::new());
    assert_eq!(app.workers, 1);
    assert_eq!(app.concurrency, 1);
    assert_eq!(app.timeout, secs(30));
    assert_eq!(app.graceful_timeout, secs(30));
    assert_eq!(app.max_requests, 0);
    assert_eq!(app.max_requests_jitter, 0);
    assert_eq!(app.max_memory, None);
    assert_eq!(app.startup_timeout, secs(60));
    assert_eq!(app.queue_size, 1024);
    assert_eq!(app.queue_timeout, secs(30));
    assert_eq!(app.health, None);
    assert_eq!(app.user, None);
    assert_eq!(app.group, None);
    assert_eq!(app.root_path, None);
    assert!(app.buffering, "sync workers are buffered");
}

#[test]
fn routes() {
    let config = ok(MINIMAL);
    let [stat, app, respond] = &config.routes[..] else {
        panic!("three routes expected");
    };
    assert_eq!(stat.host, None);
    assert!(!stat.strip_prefix);
    let root = std::fs::canonicalize(env!("CARGO_MANIFEST_DIR"))
        .unwrap()
        .join("src");
    assert_eq!(
        stat.action,
        Action::Static(Static {
            root,
            index: vec!["index.html".into()],
            cache_control: None,
            precompressed: false,
            dotfiles: false,
            fallback: None,
        })
    );
    assert_eq!(app.action, Action::Forward("web".into()));
    assert_eq!(
        respond.action,
        Action::Respond {
            status: 204,
            body: String::new()
        }
    );
}

#[test]
fn buffering_follows_concurrency() {
    let text = MINIMAL.replace("name = \"web\"", "name = \"web\"\nconcurrency = 8");
    let config = ok(&text);
    assert_eq!(config.apps[0].concurrency, 8);
    assert!(
        !config.apps[0].buffering,
        "threaded or async workers stream"
    );
    let text = MINIMAL.replace(
        "name = \"web\"",
        "name = \"web\"\nconcurrency = 8\nbuffering = true",
    );
    assert!(ok(&text).apps[0].buffering);
}

#[test]
fn auto_workers_are_twice_the_cores_plus_one() {
    let text = MINIMAL.replace("name = \"web\"", "name = \"web\"\nworkers = \"auto\"");
    assert_eq!(ok(&text).apps[0].workers, 9, "4 cores");
}

#[test]
fn wsgi_defaults_to_python3_from_path() {
    let text = MINIMAL.replace(
        r#"command = ["gunicorn", "run:app"]"#,
        r#"wsgi = "run:app""#,
    );
    assert_eq!(
        ok(&text).apps[0].launch,
        Launch::Wsgi {
            target: "run:app".into(),
            python: "python3".into()
        }
    );
}

#[test]
fn runtime_dir_without_xdg_runtime_dir() {
    let machine = |uid| Machine {
        xdg_runtime_dir: None,
        uid,
        ..machine()
    };
    assert_eq!(
        machine(Some(1000)).default_runtime_dir(),
        PathBuf::from("/tmp/gatehouse-1000")
    );
    assert_eq!(
        machine(None).default_runtime_dir(),
        PathBuf::from("/tmp/gatehouse")
    );
}

#[test]
fn current_machine_is_sane() {
    let machine = Machine::current();
    assert!(machine.cores >= 1);
    assert!(machine.default_runtime_dir().is_absolute());
}
