//! Gunicorn settings → gatehouse keys: the `[[app]]` (its worker command, count, concurrency,
//! timeouts, recycling), `[log]`, some `[limits]`, and, when no Nginx config is given, the
//! listeners from `bind`.
//!
//! Each gatehouse worker is a Gunicorn master with one worker of its own on the socket gatehouse
//! gives it, so the settings that shape one Gunicorn worker (worker class, threads, request-line
//! limits) stay on its command line, and the ones the arbiter applied become gatehouse keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Setting, Settings};
use crate::import::render::{Document, Table, Value};

/// The app's name in the output.
pub const APP_NAME: &str = "web";

/// What the translation needs to know besides the settings.
pub struct Context<'a> {
    /// The Gunicorn config file's directory, the app's directory unless `chdir` says otherwise.
    pub config_dir: &'a Path,
    /// The app argument from the command line (`run:app`), if given.
    pub app: Option<&'a str>,
    /// An Nginx config is translated too: it decides the listeners, and Gunicorn's `bind` is
    /// where Nginx proxied to.
    pub nginx: bool,
}

/// Gunicorn's `bind` addresses, for recognising the Nginx upstream that pointed at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binds(pub Vec<String>);

/// Gunicorn's defaults that the translation needs.
const DEFAULT_BIND: &str = "127.0.0.1:8000";
const DEFAULT_WORKER_CONNECTIONS: i64 = 1000;

/// Fills `doc` from `settings`; returns the bind addresses.
pub fn translate(settings: &Settings, cx: &Context, doc: &mut Document) -> Binds {
    let mut rest = settings.values.clone();
    let mut app = Table::default();
    app.key("name", Value::str(APP_NAME));

    let binds = take_binds(&mut rest);
    let (command, app_known) = command(&mut rest, cx, &mut app);
    app.comment(
        "Each worker is a Gunicorn master with one worker of its own, bound to the socket gatehouse\n\
         gives it; gatehouse does what Gunicorn's arbiter did (worker count, timeouts, recycling,\n\
         HUP). `gunicorn` is found on PATH: write its full path if it lives in a virtualenv.\n\
         Without Gunicorn, gatehouse's built-in WSGI worker can run a WSGI app instead of `command`:\n\
         wsgi = \"MODULE:APP\" (plus python = \"/path/to/venv/bin/python\"); not for async worker classes.",
    );
    if !app_known {
        app.comment(
            "The app argument was not given (gatehouse import --gunicorn FILE MODULE:APP) and the\n\
             config sets no wsgi_app: replace MODULE:APP below.",
        );
    }
    app.key(
        "command",
        Value::Array(command.into_iter().map(Value::Str).collect()),
    );

    let directory = match rest.remove("chdir") {
        Some(Setting::Value(serde_json::Value::String(dir))) => PathBuf::from(dir),
        _ => cx.config_dir.to_path_buf(),
    };
    app.comment("Gunicorn ran in its working directory; this is the config file's (or chdir).");
    app.key("directory", Value::str(directory.display().to_string()));

    if let Some(Setting::Value(value)) = rest.remove("raw_env") {
        env(&value, &mut app);
    }
    if let Some(n) = int(&mut rest, "workers") {
        workers(n.max(1), settings, &mut app);
    }
    app.key("concurrency", Value::Int(concurrency(settings)));
    rest.remove("worker_connections");
    rest.remove("threads");
    let class = worker_class(&rest);
    rest.remove("worker_class");
    if is_async(&class) {
        app.comment(format!(
            "worker_class = {class:?}: Gunicorn's timeout only restarted a worker that stopped\n\
             answering its arbiter; gatehouse's `timeout` is a deadline for each request (its \
             response head,\n\
             and the whole body when the response is buffered). Streamed responses and WebSockets \
             (after\n\
             the 101) are not cut by it; [limits] websocket_idle_timeout closes quiet WebSockets."
        ));
    }

    if let Some(secs) = seconds(&mut rest, "timeout") {
        if secs > 0.0 {
            app.key("timeout", duration(secs));
        } else {
            app.comment(
                "not translated: timeout = 0 (no deadline); gatehouse's request deadline is 30s by default.",
            );
        }
    }
    if let Some(secs) = seconds(&mut rest, "graceful_timeout") {
        app.key("graceful_timeout", duration(secs));
        doc.server.key("graceful_timeout", duration(secs));
    }
    recycling(&mut rest, &mut app);
    for name in ["user", "group"] {
        // A name or a numeric id; gatehouse takes either as a string.
        match rest.remove(name) {
            Some(Setting::Value(serde_json::Value::String(id))) => app.key(name, Value::Str(id)),
            Some(Setting::Value(serde_json::Value::Number(id))) if id.as_u64().is_some() => {
                app.key(name, Value::Str(id.to_string()))
            }
            Some(Setting::Value(serde_json::Value::Null)) | None => {}
            Some(setting) => app.comment(format!(
                "not translated: {name} = {} (gatehouse takes a name or a numeric id)",
                setting.python()
            )),
        }
    }
    if let Some(setting) = rest.remove("preload_app") {
        app.comment(format!(
            "not translated: preload_app = {}: each Gunicorn master has one worker, so there is no \
             fork to share the app's memory with.",
            setting.python()
        ));
    }
    if let Some(Setting::Value(serde_json::Value::String(path))) = rest.remove("pidfile") {
        doc.server
            .comment("From Gunicorn's pidfile: `gatehouse reload` signals this pid.");
        doc.server.key("pid_file", Value::str(path));
    }

    logging(&mut rest, cx, doc);
    limits(&mut rest, doc, &mut app);
    listeners(&binds, &mut rest, cx, doc, &mut app);

    for (name, setting) in rest {
        app.comment(format!(
            "not translated: {name} = {} ({})",
            setting.python(),
            reason(&name, &setting)
        ));
    }
    doc.apps.push(app);
    Binds(binds)
}

/// The worker command line, and whether the app argument is known.
fn command(
    rest: &mut BTreeMap<String, Setting>,
    cx: &Context,
    app: &mut Table,
) -> (Vec<String>, bool) {
    let mut argv: Vec<String> = ["gunicorn", "--workers", "1"].map(str::to_owned).to_vec();
    let class = worker_class(rest);
    if class != "sync" {
        argv.extend(["--worker-class".to_owned(), class.clone()]);
    }
    if let Some(threads) = peek_int(rest, "threads").filter(|n| *n > 1) {
        argv.extend(["--threads".to_owned(), threads.to_string()]);
    }
    if is_async(&class) {
        if let Some(n) = peek_int(rest, "worker_connections") {
            argv.extend(["--worker-connections".to_owned(), n.to_string()]);
        }
    }
    // The worker keeps enforcing Gunicorn's own request limits, as it did behind Nginx.
    for (name, flag) in [
        ("limit_request_line", "--limit-request-line"),
        ("limit_request_field_size", "--limit-request-field_size"),
        ("limit_request_fields", "--limit-request-fields"),
    ] {
        if let Some(n) = peek_int(rest, name) {
            argv.extend([flag.to_owned(), n.to_string()]);
        }
    }
    if let Some(Setting::Value(serde_json::Value::String(path))) = rest.remove("pythonpath") {
        argv.extend(["--pythonpath".to_owned(), path]);
    }
    argv.extend(["--bind".to_owned(), "unix:{socket}".to_owned()]);
    let wsgi_app = match rest.remove("wsgi_app") {
        Some(Setting::Value(serde_json::Value::String(name))) => Some(name),
        _ => None,
    };
    let known = match cx.app.map(str::to_owned).or(wsgi_app) {
        Some(name) => {
            argv.push(name);
            true
        }
        None => {
            argv.push("MODULE:APP".to_owned());
            false
        }
    };
    if is_async(&class) && !KNOWN_ASYNC.contains(&class.as_str()) {
        app.comment(format!(
            "worker_class = {class:?} is not one of Gunicorn's own: concurrency assumes an async \
             worker class\n\
             (worker_connections requests at once per worker); lower it if one worker serves fewer."
        ));
    }
    (argv, known)
}

/// Gunicorn's own async worker classes, short and dotted names.
const KNOWN_ASYNC: &[&str] = &[
    "eventlet",
    "gevent",
    "gevent_wsgi",
    "gevent_pywsgi",
    "tornado",
    "gunicorn.workers.geventlet.EventletWorker",
    "gunicorn.workers.ggevent.GeventWorker",
    "gunicorn.workers.ggevent.GeventPyWSGIWorker",
    "gunicorn.workers.gtornado.TornadoWorker",
];

/// `[[app]] workers`: "auto" when the config computed Gunicorn's rule (2 x CPUs + 1) on this
/// machine, else the number, with a comment when it came from this machine's CPU count.
fn workers(n: i64, settings: &Settings, app: &mut Table) {
    match settings.cpus.filter(|_| settings.cpu_dependent) {
        Some(cpus) if n == 2 * cpus + 1 => {
            app.comment(format!(
                "workers = {n} was computed from the CPU count when imported (2 x {cpus} CPUs + 1): \
                 \"auto\" is\n\
                 the same rule, computed by gatehouse on the machine it runs on."
            ));
            app.key("workers", Value::str("auto"));
        }
        Some(cpus) => {
            app.comment(format!(
                "workers = {n} was computed when imported, on a machine with {cpus} CPUs; the config \
                 reads\n\
                 the CPU count, so check it for the machine gatehouse runs on (\"auto\" = 2 x CPUs + 1)."
            ));
            app.key("workers", Value::Int(n));
        }
        None => app.key("workers", Value::Int(n)),
    }
}

/// Gunicorn's worker class, short names kept as Gunicorn spells them.
fn worker_class(rest: &BTreeMap<String, Setting>) -> String {
    match rest.get("worker_class") {
        Some(Setting::Value(serde_json::Value::String(class))) => class.clone(),
        _ => "sync".to_owned(),
    }
}

fn is_async(class: &str) -> bool {
    !matches!(
        class,
        "sync"
            | "gthread"
            | "gunicorn.workers.sync.SyncWorker"
            | "gunicorn.workers.gthread.ThreadWorker"
    )
}

/// Requests one worker serves at once: 1 for sync, `threads` for threaded workers (Gunicorn
/// switches sync to gthread when threads > 1), `worker_connections` for async ones.
fn concurrency(settings: &Settings) -> i64 {
    let mut copy = settings.values.clone();
    let class = worker_class(&copy);
    let threads = int(&mut copy, "threads").unwrap_or(1).max(1);
    if is_async(&class) {
        int(&mut copy, "worker_connections")
            .unwrap_or(DEFAULT_WORKER_CONNECTIONS)
            .max(1)
    } else {
        threads
    }
}

fn recycling(rest: &mut BTreeMap<String, Setting>, app: &mut Table) {
    let max_requests = int(rest, "max_requests").unwrap_or(0).max(0);
    if max_requests > 0 {
        app.key("max_requests", Value::Int(max_requests));
    }
    if let Some(jitter) = int(rest, "max_requests_jitter").filter(|j| *j > 0) {
        if max_requests == 0 {
            app.comment(format!(
                "not translated: max_requests_jitter = {jitter} without max_requests (Gunicorn ignores it too)."
            ));
        } else {
            app.key("max_requests_jitter", Value::Int(jitter.min(max_requests)));
        }
    }
}

/// `[log]` from loglevel, accesslog, access_log_format and errorlog.
fn logging(rest: &mut BTreeMap<String, Setting>, cx: &Context, doc: &mut Document) {
    if let Some(Setting::Value(serde_json::Value::String(level))) = rest.remove("loglevel") {
        let level = match level.to_ascii_lowercase().as_str() {
            "warning" => "warn".to_owned(),
            "critical" => "error".to_owned(),
            other => other.to_owned(),
        };
        doc.log.key("level", Value::Str(level));
    }
    match rest.remove("accesslog") {
        Some(Setting::Value(serde_json::Value::String(target))) => {
            doc.log.key("access_log", Value::Str(target));
        }
        Some(Setting::Value(serde_json::Value::Null)) | None if !cx.nginx => {
            doc.log.comment("Gunicorn's default: no access log.");
            doc.log.key("access_log", Value::str("off"));
        }
        _ => {}
    }
    if let Some(Setting::Value(serde_json::Value::String(format))) =
        rest.remove("access_log_format")
    {
        doc.log.key("access_format", Value::Str(format));
    }
    match rest.remove("errorlog") {
        Some(Setting::Value(serde_json::Value::String(target))) if target == "-" => {
            doc.log.comment(
                "errorlog = \"-\": gatehouse's own log and the workers' output go to stderr.",
            );
        }
        Some(setting) => doc.log.comment(format!(
            "not translated: errorlog = {}: gatehouse logs to stderr (the journal under systemd); \
             redirect stderr to keep a file.",
            setting.python()
        )),
        None => {}
    }
}

/// `[limits]` from limit_request_fields (also kept on the worker command line).
fn limits(rest: &mut BTreeMap<String, Setting>, doc: &mut Document, app: &mut Table) {
    if let Some(n) = int(rest, "limit_request_fields") {
        if n > 0 {
            doc.limits.key("max_header_count", Value::Int(n));
        }
    }
    let line = int(rest, "limit_request_line");
    let field = int(rest, "limit_request_field_size");
    if line.is_some() || field.is_some() {
        app.comment(
            "limit_request_line / limit_request_field_size stay on the worker's command line;\n\
             gatehouse limits the whole request head itself ([limits] max_header_bytes, 16KiB).",
        );
    }
}

/// Listeners from `bind` when Gunicorn faced clients itself; otherwise a note.
fn listeners(
    binds: &[String],
    rest: &mut BTreeMap<String, Setting>,
    cx: &Context,
    doc: &mut Document,
    app: &mut Table,
) {
    let keepalive = seconds(rest, "keepalive");
    let cert = string(rest, "certfile");
    let key = string(rest, "keyfile");
    if cx.nginx {
        app.comment(format!(
            "bind = {:?} was where Nginx proxied to; gatehouse gives each worker its own socket.",
            binds
        ));
        if keepalive.is_some() {
            app.comment(
                "keepalive applied between Nginx and Gunicorn; gatehouse manages that connection.",
            );
        }
        return;
    }
    if let Some(secs) = keepalive {
        doc.limits.key("keepalive_timeout", duration(secs));
    }
    for bind in binds {
        let mut listener = Table::default();
        let (address, note) = listen_address(bind);
        if let Some(note) = note {
            listener.comment(note);
        }
        listener.key("address", Value::Str(address.clone()));
        if let (Some(cert), Some(key), false) = (&cert, &key, address.starts_with("unix:")) {
            listener.comment("From Gunicorn's certfile and keyfile.");
            listener.key(
                "tls",
                Value::Inline(vec![(
                    "certificates".to_owned(),
                    Value::Array(vec![Value::Inline(vec![
                        ("cert".to_owned(), Value::str(cert)),
                        ("key".to_owned(), Value::str(key)),
                    ])]),
                )]),
            );
        }
        doc.listeners.push(listener);
    }
    let mut route = Table::default();
    route.key("path", Value::str("/"));
    route.key("app", Value::str(APP_NAME));
    doc.routes.push(route);
}

/// A Gunicorn bind address as a gatehouse listener address, and a note when it changed.
pub fn listen_address(bind: &str) -> (String, Option<String>) {
    if let Some(path) = bind.strip_prefix("unix:") {
        return (format!("unix:{path}"), None);
    }
    if let Some(fd) = bind.strip_prefix("fd://") {
        return (format!("fd:{fd}"), None);
    }
    let (host, port) = split_host_port(bind);
    let ip = match host.as_str() {
        "" => "0.0.0.0".to_owned(),
        "localhost" => "127.0.0.1".to_owned(),
        h if h.parse::<std::net::IpAddr>().is_ok() => h.to_owned(),
        other => {
            return (
                format!("0.0.0.0:{port}"),
                Some(format!(
                    "bind {bind:?}: listeners take IP addresses; {other:?} became 0.0.0.0."
                )),
            )
        }
    };
    if ip.contains(':') {
        (format!("[{ip}]:{port}"), None)
    } else {
        (format!("{ip}:{port}"), None)
    }
}

/// `host:port`, `[v6]:port`, `host` (Gunicorn's default port 8000).
pub fn split_host_port(address: &str) -> (String, u16) {
    if let Some(rest) = address.strip_prefix('[') {
        if let Some((host, tail)) = rest.split_once(']') {
            let port = tail
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .unwrap_or(8000);
            return (host.to_owned(), port);
        }
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            (host.to_owned(), port.parse().unwrap_or(8000))
        }
        _ => (address.to_owned(), 8000),
    }
}

fn take_binds(rest: &mut BTreeMap<String, Setting>) -> Vec<String> {
    match rest.remove("bind") {
        Some(Setting::Value(serde_json::Value::String(one))) => vec![one],
        Some(Setting::Value(serde_json::Value::Array(many))) => many
            .iter()
            .filter_map(|b| b.as_str().map(str::to_owned))
            .collect(),
        _ => vec![DEFAULT_BIND.to_owned()],
    }
}

/// raw_env = ["KEY=VALUE", ...] → env = { KEY = "VALUE" }.
fn env(value: &serde_json::Value, app: &mut Table) {
    let pairs: Vec<(String, Value)> = match value {
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|item| item.as_str()?.split_once('='))
            .map(|(k, v)| (k.to_owned(), Value::str(v)))
            .collect(),
        serde_json::Value::String(one) => one
            .split_once('=')
            .map(|(k, v)| vec![(k.to_owned(), Value::str(v))])
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    if !pairs.is_empty() {
        app.key("env", Value::Inline(pairs));
    }
}

/// Why a setting has no translation.
fn reason(name: &str, setting: &Setting) -> &'static str {
    if matches!(setting, Setting::Python(_)) {
        return "Python code: gatehouse cannot run it";
    }
    match name {
        "daemon" => "gatehouse runs in the foreground; let systemd or the container runtime keep it",
        "reload" | "reload_engine" | "reload_extra_files" => {
            "gatehouse does not watch code; `gatehouse reload` (HUP) rolls the workers"
        }
        "proc_name" | "default_proc_name" => "workers appear in logs and /status by app name and slot",
        "statsd_host" | "statsd_prefix" | "dogstatsd_tags" => {
            "gatehouse exposes Prometheus metrics on the admin listener's /metrics"
        }
        "forwarded_allow_ips" | "proxy_allow_ips" | "secure_scheme_headers" => {
            "gatehouse sets X-Forwarded-* itself; trust upstream proxies with [server] trusted_proxies"
        }
        "backlog" | "reuse_port" => "gatehouse's listeners use the system's defaults",
        "worker_tmp_dir" | "umask" | "tmp_upload_dir" => "add it to the worker command if needed",
        "capture_output" | "enable_stdio_inheritance" => {
            "gatehouse always captures the workers' stdout and stderr into its log"
        }
        _ => "no gatehouse equivalent",
    }
}

fn peek_int(rest: &BTreeMap<String, Setting>, name: &str) -> Option<i64> {
    match rest.get(name)? {
        Setting::Value(serde_json::Value::Number(n)) => {
            n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))
        }
        Setting::Value(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Takes an integer setting (Gunicorn also accepts numeric strings).
fn int(rest: &mut BTreeMap<String, Setting>, name: &str) -> Option<i64> {
    let value = peek_int(rest, name);
    if value.is_some() {
        rest.remove(name);
    }
    value
}

/// Takes a number of seconds.
fn seconds(rest: &mut BTreeMap<String, Setting>, name: &str) -> Option<f64> {
    let value = match rest.get(name)? {
        Setting::Value(serde_json::Value::Number(n)) => n.as_f64(),
        Setting::Value(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    if value.is_some() {
        rest.remove(name);
    }
    value.filter(|v| v.is_finite() && *v >= 0.0)
}

fn string(rest: &mut BTreeMap<String, Setting>, name: &str) -> Option<String> {
    match rest.remove(name)? {
        Setting::Value(serde_json::Value::String(s)) => Some(s),
        _ => None,
    }
}

/// Seconds as a gatehouse duration: "30s", or "1500ms" for fractions.
fn duration(secs: f64) -> Value {
    if secs.fract() == 0.0 {
        Value::Str(format!("{}s", secs as u64))
    } else {
        Value::Str(format!("{}ms", (secs * 1000.0).round() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(pairs: &[(&str, serde_json::Value)]) -> Settings {
        Settings {
            values: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Setting::Value(v.clone())))
                .collect(),
            cpus: Some(4),
            cpu_dependent: false,
        }
    }

    fn run(s: &Settings, nginx: bool) -> String {
        let mut doc = Document::default();
        let cx = Context {
            config_dir: Path::new("/srv/app"),
            app: Some("run:app"),
            nginx,
        };
        translate(s, &cx, &mut doc);
        doc.render()
    }

    #[test]
    fn the_guides_config_maps_onto_an_app() {
        let s = settings(&[
            ("bind", json!("0.0.0.0:8000")),
            ("workers", json!(3)),
            ("worker_class", json!("gevent")),
            ("worker_connections", json!(1000)),
            ("timeout", json!(30)),
            ("keepalive", json!(2)),
            ("max_requests", json!(1000)),
            ("max_requests_jitter", json!(100)),
            ("loglevel", json!("info")),
            ("accesslog", json!("-")),
            ("errorlog", json!("-")),
            ("preload_app", json!(false)),
        ]);
        let out = run(&s, false);
        for line in [
            r#"command = ["gunicorn", "--workers", "1", "--worker-class", "gevent", "--worker-connections", "1000", "--bind", "unix:{socket}", "run:app"]"#,
            "workers = 3",
            "concurrency = 1000",
            "timeout = \"30s\"",
            "max_requests = 1000",
            "max_requests_jitter = 100",
            "level = \"info\"",
            "access_log = \"-\"",
            "keepalive_timeout = \"2s\"",
            "address = \"0.0.0.0:8000\"",
            "directory = \"/srv/app\"",
            "# not translated: preload_app = False",
        ] {
            assert!(out.contains(line), "{line} in\n{out}");
        }
    }

    #[test]
    fn threads_set_concurrency_and_hooks_are_noted() {
        let mut s = settings(&[("threads", json!(4)), ("timeout", json!(0.5))]);
        s.values.insert(
            "post_fork".into(),
            Setting::Python("<function post_fork>".into()),
        );
        let out = run(&s, true);
        assert!(out.contains("\"--threads\", \"4\""), "{out}");
        assert!(out.contains("concurrency = 4"), "{out}");
        assert!(out.contains("timeout = \"500ms\""), "{out}");
        assert!(
            out.contains("# not translated: post_fork = <function post_fork> (Python code"),
            "{out}"
        );
        assert!(
            !out.contains("[[listener]]"),
            "Nginx decides the listeners: {out}"
        );
    }

    #[test]
    fn bind_addresses_become_listener_addresses() {
        assert_eq!(listen_address("unix:/run/g.sock").0, "unix:/run/g.sock");
        assert_eq!(listen_address("fd://3").0, "fd:3");
        assert_eq!(listen_address("localhost:8000").0, "127.0.0.1:8000");
        assert_eq!(listen_address("[::1]:9000").0, "[::1]:9000");
        assert_eq!(listen_address("10.0.0.1").0, "10.0.0.1:8000");
        assert!(listen_address("example.com:80").1.is_some());
    }

    #[test]
    fn workers_computed_by_gunicorns_rule_become_auto() {
        let mut s = settings(&[("workers", json!(9))]);
        s.cpu_dependent = true;
        let out = run(&s, true);
        assert!(out.contains("workers = \"auto\""), "{out}");
        assert!(out.contains("(2 x 4 CPUs + 1)"), "{out}");

        let mut s = settings(&[("workers", json!(4))]);
        s.cpu_dependent = true;
        let out = run(&s, true);
        assert!(out.contains("workers = 4\n"), "{out}");
        assert!(out.contains("computed when imported"), "{out}");

        // A literal that happens to equal the rule stays a number.
        let out = run(&settings(&[("workers", json!(9))]), true);
        assert!(out.contains("workers = 9\n"), "{out}");
        assert!(!out.contains("computed"), "{out}");
    }

    #[test]
    fn numeric_user_and_group_become_strings() {
        let out = run(
            &settings(&[("user", json!(1000)), ("group", json!(33))]),
            true,
        );
        assert!(out.contains("user = \"1000\"\ngroup = \"33\""), "{out}");
        let out = run(
            &settings(&[("user", json!("www-data")), ("group", json!(-1))]),
            true,
        );
        assert!(out.contains("user = \"www-data\""), "{out}");
        assert!(out.contains("# not translated: group = -1"), "{out}");
    }

    #[test]
    fn unknown_worker_classes_get_the_concurrency_comment() {
        let out = run(
            &settings(&[("worker_class", json!("uvicorn.workers.UvicornWorker"))]),
            true,
        );
        assert!(
            out.contains("worker_class = \"uvicorn.workers.UvicornWorker\" is not one of Gunicorn's own: concurrency assumes an async worker class"),
            "{out}"
        );
        assert!(out.contains("concurrency = 1000"), "{out}");
        for known in [
            "gevent",
            "sync",
            "gthread",
            "gunicorn.workers.sync.SyncWorker",
            "gunicorn.workers.ggevent.GeventWorker",
        ] {
            let out = run(&settings(&[("worker_class", json!(known))]), true);
            assert!(!out.contains("not one of Gunicorn's own"), "{known}: {out}");
        }
    }

    #[test]
    fn async_worker_classes_explain_the_request_deadline() {
        let out = run(
            &settings(&[("worker_class", json!("gevent")), ("timeout", json!(30))]),
            true,
        );
        assert!(
            out.contains("gatehouse's `timeout` is a deadline for each request"),
            "{out}"
        );
        assert!(out.contains("websocket_idle_timeout"), "{out}");
        let out = run(&settings(&[("timeout", json!(30))]), true);
        assert!(!out.contains("deadline for each request"), "{out}");
    }
}
