//! Validation of `[server]`, `[admin]`, `[log]`, `[limits]` and `[[listener]]`, and relative paths.

use gatehouse_config::model::{AccessFormat, AccessLogTarget, ListenAddress, LogFormat};

use crate::{error, errors, ok, LISTENER};

#[test]
fn at_least_one_listener() {
    assert_eq!(
        error("[server]\nwatch_config = false\n"),
        "gatehouse.toml:1:1: listener: at least one [[listener]] is required"
    );
}

#[test]
fn listener_addresses() {
    let text = r#"[[listener]]
address = "0.0.0.0:80"
[[listener]]
address = "[::]:443"
[[listener]]
address = "unix:/run/gatehouse.sock"
[[listener]]
address = "fd:3"
"#;
    let addresses: Vec<String> = ok(text)
        .listeners
        .iter()
        .map(|l| l.address.to_string())
        .collect();
    assert_eq!(
        addresses,
        ["0.0.0.0:80", "[::]:443", "unix:/run/gatehouse.sock", "fd:3"]
    );
}

#[test]
fn bad_listener_addresses() {
    let text = r#"[[listener]]
address = "localhost:8080"
[[listener]]
address = "8080"
[[listener]]
address = "fd:2"
[[listener]]
http2 = false
"#;
    assert_eq!(
        errors(text),
        [
            "gatehouse.toml:2:1: listener[0].address: invalid address \"localhost:8080\": host names are not allowed, use an IP address (e.g. 127.0.0.1:8080 or [::]:443); also accepted: unix:/path.sock, fd:N",
            "gatehouse.toml:4:1: listener[1].address: invalid address \"8080\" (expected IP:PORT, e.g. 127.0.0.1:8080 or [::]:443); also accepted: unix:/path.sock, fd:N",
            "gatehouse.toml:6:1: listener[2].address: invalid descriptor \"fd:2\" (expected fd:N with N >= 3)",
            "gatehouse.toml:7:1: listener[3].address: required key is missing",
        ]
    );
}

#[test]
fn duplicate_listener_addresses() {
    let text = format!("{LISTENER}[[listener]]\naddress = \"127.0.0.1:8080\"\n");
    assert_eq!(
        error(&text),
        "gatehouse.toml:4:1: listener[1].address: duplicate listener address 127.0.0.1:8080 (also listener[0])"
    );
}

#[test]
fn port_zero_listeners_are_not_duplicates() {
    let text = "[[listener]]\naddress = \"127.0.0.1:0\"\n[[listener]]\naddress = \"127.0.0.1:0\"\n";
    assert_eq!(ok(text).listeners.len(), 2);
}

#[test]
fn redirect_https() {
    let config = ok(&format!(
        "{LISTENER}redirect_https = \"https://{{host}}:8443\"\n"
    ));
    assert_eq!(
        config.listeners[0].redirect_https.as_deref(),
        Some("https://{host}:8443")
    );
    let bad = |value: &str| error(&format!("{LISTENER}redirect_https = \"{value}\"\n"));
    assert_eq!(
        bad("example.com"),
        "gatehouse.toml:3:1: listener[0].redirect_https: invalid redirect \"example.com\" (expected a URL prefix like \"https://{host}:8443\")"
    );
    assert_eq!(
        bad("https://example.com/"),
        "gatehouse.toml:3:1: listener[0].redirect_https: must not end with '/': the request path, which starts with '/', is appended"
    );
    assert_eq!(
        bad("https://{hostname}"),
        "gatehouse.toml:3:1: listener[0].redirect_https: unknown placeholder {hostname} (known: {host})"
    );
}

#[test]
fn trusted_proxies() {
    let text =
        format!("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\", \"1.2.3.4\"]\n{LISTENER}");
    let proxies: Vec<String> = ok(&text)
        .server
        .trusted_proxies
        .iter()
        .map(|c| format!("{}/{}", c.network, c.prefix_len))
        .collect();
    assert_eq!(proxies, ["10.0.0.0/8", "::1/128", "1.2.3.4/32"]);
    let text = format!("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/40\"]\n{LISTENER}");
    assert_eq!(
        error(&text),
        "gatehouse.toml:2:34: server.trusted_proxies[1]: invalid network \"10.0.0.0/40\" (expected e.g. 10.0.0.0/8, ::1/128 or an IP address)"
    );
}

#[test]
fn admin_listen() {
    assert_eq!(
        ok(&format!("{LISTENER}[admin]\nlisten = \"off\"\n"))
            .admin
            .listen,
        None
    );
    assert_eq!(
        ok(&format!("{LISTENER}[admin]\nlisten = \"[::1]:9000\"\n"))
            .admin
            .listen,
        Some("[::1]:9000".parse().unwrap())
    );
    assert_eq!(
        error(&format!("{LISTENER}[admin]\nlisten = \"localhost:9180\"\n")),
        "gatehouse.toml:4:1: admin.listen: invalid address \"localhost:9180\": host names are not allowed, use an IP address (e.g. 127.0.0.1:8080 or [::]:443), or \"off\""
    );
}

#[test]
fn log_settings() {
    let config = ok(&format!(
        "{LISTENER}[log]\nlevel = \"warn,gatehouse=debug\"\nformat = \"json\"\naccess_log = \"off\"\naccess_format = \"json\"\n"
    ));
    assert_eq!(config.log.level, "warn,gatehouse=debug");
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.log.access_log, AccessLogTarget::Off);
    assert_eq!(config.log.access_format, AccessFormat::Json);

    let gunicorn = r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;
    let config = ok(&format!("{LISTENER}[log]\naccess_format = '{gunicorn}'\n"));
    assert_eq!(
        config.log.access_format,
        AccessFormat::Gunicorn(gunicorn.into())
    );

    let text = format!(
        "{LISTENER}[log]\nlevel = \"verbose\"\nformat = \"xml\"\naccess_log = \"\"\naccess_format = \"common\"\n"
    );
    assert_eq!(
        errors(&text),
        [
            "gatehouse.toml:4:1: log.level: invalid log level \"verbose\" (expected trace, debug, info, warn, error or off, or target=level directives)",
            "gatehouse.toml:5:1: log.format: unknown log format \"xml\" (expected \"text\" or \"json\")",
            "gatehouse.toml:6:1: log.access_log: must not be empty (use \"-\" for stdout or \"off\")",
            "gatehouse.toml:7:1: log.access_format: unknown access log format \"common\" (expected \"combined\", \"json\" or a Gunicorn-style format with %(...)s fields)",
        ]
    );
}

#[test]
fn limits_must_be_positive() {
    let text = format!(
        "{LISTENER}[limits]\nmax_header_bytes = 0\nmax_header_count = 0\nmax_body_size = \"0KiB\"\nheader_timeout = \"0s\"\nkeepalive_timeout = 0\nmax_connections = -1\n"
    );
    assert_eq!(
        errors(&text),
        [
            "gatehouse.toml:4:1: limits.max_header_bytes: must be greater than zero",
            "gatehouse.toml:5:1: limits.max_header_count: must be at least 1",
            "gatehouse.toml:6:1: limits.max_body_size: must be greater than zero",
            "gatehouse.toml:7:1: limits.header_timeout: must be greater than zero",
            "gatehouse.toml:9:1: limits.max_connections: must be at least 1",
        ],
        "keepalive_timeout = 0 is allowed: it turns keep-alive off"
    );
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("static")).unwrap();
    std::fs::create_dir(dir.path().join("app")).unwrap();
    let text = r#"
[server]
pid_file = "run/gatehouse.pid"
runtime_dir = "run"
[log]
access_log = "logs/access.log"
[[listener]]
address = "unix:run/gatehouse.sock"
[[app]]
name = "web"
directory = "app"
command = ["bin/serve", "{socket}"]
[[upstream]]
name = "api"
servers = ["unix:api.sock"]
[[route]]
path = "/"
static = { root = "static" }
"#;
    let path = dir.path().join("gatehouse.toml");
    let config = gatehouse_config::parse_on(&path, text, &crate::machine()).unwrap();
    let base = dir.path();
    assert_eq!(config.server.pid_file, Some(base.join("run/gatehouse.pid")));
    assert_eq!(config.server.runtime_dir, base.join("run"));
    assert_eq!(
        config.log.access_log,
        AccessLogTarget::File(base.join("logs/access.log"))
    );
    assert_eq!(
        config.listeners[0].address,
        ListenAddress::Unix(base.join("run/gatehouse.sock"))
    );
    assert_eq!(config.apps[0].directory, base.join("app"));
    let program = base.join("app/bin/serve").to_string_lossy().into_owned();
    assert_eq!(
        config.apps[0].launch,
        gatehouse_config::model::Launch::Command(vec![program, "{socket}".into()])
    );
    assert_eq!(
        config.upstreams[0].servers[0].to_string(),
        format!("unix:{}", base.join("api.sock").display())
    );
    let gatehouse_config::model::Action::Static(stat) = &config.routes[0].action else {
        panic!("static route expected");
    };
    assert_eq!(
        stat.root,
        std::fs::canonicalize(base.join("static")).unwrap()
    );
}
