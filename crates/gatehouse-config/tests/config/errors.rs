//! How errors are reported: syntax errors, unknown keys and wrong types (serde, first error
//! only), bad units, and every semantic problem of a file collected in one run.

use std::path::Path;

use gatehouse_config::Error;

use crate::{error, errors, parse, LISTENER};

#[test]
fn syntax_error() {
    assert_eq!(
        error("[[listener]\naddress = \"127.0.0.1:80\"\n"),
        "gatehouse.toml:1:11: invalid table header; expected `.`, `]]`"
    );
    assert_eq!(
        error("[server]\nwatch_config = true\nwatch_config = false\n"),
        "gatehouse.toml:3:1: duplicate key `watch_config` in table `server`"
    );
}

#[test]
fn unknown_key_at_top_level() {
    assert_eq!(
        error(&format!("listen = \"0.0.0.0:80\"\n{LISTENER}")),
        "gatehouse.toml:1:1: listen: unknown field `listen`, expected one of `server`, `admin`, `log`, `limits`, `listener`, `app`, `upstream`, `route`"
    );
}

#[test]
fn unknown_key_in_a_section() {
    assert_eq!(
        error("[server]\ngraceful_timeout = \"5s\"\nworkers = 3\n"),
        "gatehouse.toml:3:1: server.workers: unknown field `workers`, expected one of `pid_file`, `runtime_dir`, `graceful_timeout`, `watch_config`, `trusted_proxies`"
    );
}

#[test]
fn unknown_key_in_an_array_element_and_inline_table() {
    let text = format!(
        "{LISTENER}[[route]]\npath = \"/\"\nstatic = {{ root = \"src\", autoindex = true }}\n"
    );
    assert_eq!(
        error(&text),
        "gatehouse.toml:5:26: route[0].static.autoindex: unknown field `autoindex`, expected one of `root`, `index`, `cache_control`, `precompressed`, `dotfiles`, `fallback`"
    );
    let text = format!(
        "{LISTENER}[[listener]]\naddress = \"127.0.0.1:8443\"\n[listener.tls]\ncert = \"a.pem\"\n"
    );
    assert_eq!(
        error(&text),
        "gatehouse.toml:6:1: listener[1].tls.cert: unknown field `cert`, expected one of `certificates`, `min_version`, `hsts`, `client_ca`"
    );
}

#[test]
fn wrong_type_points_at_the_key() {
    let text = format!("{LISTENER}http2 = \"yes\"\n");
    assert_eq!(
        error(&text),
        "gatehouse.toml:3:1: listener[0].http2: invalid type: string \"yes\", expected a boolean"
    );
    let text = format!("{LISTENER}[[app]]\nname = \"web\"\nworkers = true\n");
    assert_eq!(
        error(&text),
        "gatehouse.toml:5:1: app[0].workers: invalid type: boolean `true`, expected a number of workers or \"auto\""
    );
    let text = format!("{LISTENER}[[upstream]]\nname = \"api\"\nservers = [\"a:1\", 2]\n");
    assert_eq!(
        error(&text),
        "gatehouse.toml:5:19: upstream[0].servers[1]: invalid type: integer `2`, expected a string"
    );
}

#[test]
fn bad_durations_and_sizes() {
    let text = format!(
        "{LISTENER}[limits]\nheader_timeout = \"10 parsecs\"\nkeepalive_timeout = -5\nmax_body_size = \"10 MiBs\"\nmax_header_bytes = -1\n[server]\ngraceful_timeout = \"400d\"\n"
    );
    assert_eq!(
        errors(&text),
        [
            "gatehouse.toml:4:1: limits.header_timeout: invalid duration \"10 parsecs\": unknown unit \"parsecs\" (write e.g. \"30s\", \"500ms\", \"1m 30s\")",
            "gatehouse.toml:5:1: limits.keepalive_timeout: duration must not be negative",
            "gatehouse.toml:6:1: limits.max_body_size: invalid size \"10 MiBs\" (write e.g. \"10MiB\", \"16KiB\", \"1GB\" or an integer number of bytes)",
            "gatehouse.toml:7:1: limits.max_header_bytes: size must not be negative",
            "gatehouse.toml:9:1: server.graceful_timeout: duration is too large (at most 365 days)",
        ]
    );
    let text = format!("{LISTENER}[limits]\nheader_timeout = 1.5\n");
    assert_eq!(
        error(&text),
        "gatehouse.toml:4:1: limits.header_timeout: invalid type: floating point `1.5`, expected a duration like \"30s\" or an integer number of seconds"
    );
}

#[test]
fn units_accept_every_documented_form() {
    let text = format!(
        "{LISTENER}[limits]\nheader_timeout = \"1m 30s\"\nkeepalive_timeout = 20\nmax_body_size = \"1GB\"\nmax_header_bytes = 8192\n[server]\ngraceful_timeout = \"500ms\"\n"
    );
    let config = crate::ok(&text);
    assert_eq!(config.limits.header_timeout.as_secs(), 90);
    assert_eq!(config.limits.keepalive_timeout.as_secs(), 20);
    let never = crate::ok(&format!("{LISTENER}[limits]\nwebsocket_idle_timeout = 0\n"));
    assert_eq!(never.limits.websocket_idle_timeout, None, "0 = never");
    assert_eq!(config.limits.max_body_size, 1_000_000_000);
    assert_eq!(config.limits.max_header_bytes, 8192);
    assert_eq!(config.server.graceful_timeout.as_millis(), 500);
}

#[test]
fn every_semantic_error_is_reported_in_file_order() {
    let text = r#"[log]
format = "xml"

[[listener]]
address = "localhost:80"

[[app]]
name = "web"
workers = 0

[[route]]
path = "/"
app = "wbe"

[[route]]
path = "static/"
static = { root = "no/such/dir" }
"#;
    assert_eq!(
        errors(text),
        [
            "gatehouse.toml:2:1: log.format: unknown log format \"xml\" (expected \"text\" or \"json\")",
            "gatehouse.toml:5:1: listener[0].address: invalid address \"localhost:80\": host names are not allowed, use an IP address (e.g. 127.0.0.1:8080 or [::]:443); also accepted: unix:/path.sock, fd:N",
            "gatehouse.toml:7:1: app[0]: no way to start workers: set command = [...] or wsgi = \"module:app\"",
            "gatehouse.toml:9:1: app[0].workers: must be at least 1, or \"auto\"",
            "gatehouse.toml:13:1: route[0].app: no app named \"wbe\"",
            "gatehouse.toml:16:1: route[1].path: must start with '/'",
            "gatehouse.toml:17:12: route[1].static.root: directory does not exist",
        ]
    );
}

#[test]
fn errors_print_one_per_line_and_name_the_file_as_given() {
    let err = gatehouse_config::parse(Path::new("conf/site.toml"), "[[route]]\npath = \"/\"\n")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "conf/site.toml:1:1: listener: at least one [[listener]] is required\n\
         conf/site.toml:1:1: route[0]: no action: set one of static, app, upstream, redirect, respond"
    );
}

#[test]
fn diagnostics_carry_their_parts() {
    let Err(Error::Invalid(diagnostics)) =
        parse(&format!("{LISTENER}[admin]\nlisten = \"nope\"\n"))
    else {
        panic!("expected diagnostics");
    };
    let d = &diagnostics.0[0];
    assert_eq!(
        (d.file.to_str(), d.line, d.column),
        (Some("gatehouse.toml"), 4, 1)
    );
    assert_eq!(d.key, "admin.listen");
    assert!(d.message.starts_with("invalid address \"nope\""));
}

#[test]
fn unreadable_file() {
    let err = gatehouse_config::load(Path::new("/nonexistent/gatehouse.toml")).unwrap_err();
    assert!(matches!(err, Error::Read { .. }));
    assert_eq!(err.to_string(), "cannot read /nonexistent/gatehouse.toml");
    assert!(std::error::Error::source(&err).is_some());
}
