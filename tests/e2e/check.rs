//! `gatehouse check`, `run` with a bad config, `--version`, `--help`.

use gatehouse_tests::Sandbox;
use regex::Regex;

const VALID: &str = r#"
[log]
level = "info"
access_log = "off"

[limits]
max_header_bytes = "16KiB"
max_body_size = "10MiB"
header_timeout = "500ms"
keepalive_timeout = 30

[[listener]]
address = "127.0.0.1:0"

[[upstream]]
name = "api"
servers = ["127.0.0.1:9", "unix:/run/api.sock"]
timeout = "60s"

[[route]]
path = "/static/"
static = { root = "{dir}", cache_control = "public, max-age=60" }

[[route]]
host = "*.example.com"
path = "/"
upstream = "api"
"#;

/// Everything the binary printed, stdout then stderr.
fn printed(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The printed line matching `pattern`, or a failure showing everything printed.
fn line_matching(output: &std::process::Output, pattern: &str) -> String {
    let re = Regex::new(pattern).unwrap();
    let text = printed(output);
    text.lines()
        .find(|l| re.is_match(l))
        .unwrap_or_else(|| panic!("no line matches {pattern:?} in:\n{text}"))
        .to_owned()
}

#[test]
fn check_accepts_a_valid_config() {
    let sandbox = Sandbox::new();
    let output = sandbox.check(VALID);
    assert_eq!(output.status.code(), Some(0), "{}", printed(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("configuration OK"),
        "{}",
        printed(&output)
    );
}

#[test]
fn check_reports_every_error_with_file_line_column_and_key() {
    let sandbox = Sandbox::new();
    // Line numbers matter: the errors are on lines 8 and 12.
    let output = sandbox.check(
        r#"[admin]
listen = "off"
[[listener]]
address = "127.0.0.1:0"

[[route]]
path = "/static/"
static = { root = "{dir}/does-not-exist" }

[[route]]
path = "/api/"
upstream = "nowhere"
"#,
    );
    assert_eq!(output.status.code(), Some(2), "{}", printed(&output));
    line_matching(
        &output,
        r"^(.*/)?gatehouse\.toml:8:\d+: route\[\d\]\.static\.root: \S.*$",
    );
    line_matching(
        &output,
        r"^(.*/)?gatehouse\.toml:12:\d+: route\[\d\]\.upstream: \S.*nowhere",
    );
    assert!(!printed(&output).contains("configuration OK"));
}

#[test]
fn check_rejects_unknown_keys_with_their_position() {
    let sandbox = Sandbox::new();
    let output = sandbox.check("[admin]\nlisten = \"off\"\n\n[limits]\nmax_header_bites = 100\n");
    assert_eq!(output.status.code(), Some(2), "{}", printed(&output));
    line_matching(
        &output,
        r"^(.*/)?gatehouse\.toml:5:\d+: limits(\.max_header_bites)?: .*max_header_bites",
    );
}

#[test]
fn check_rejects_bad_durations_and_sizes() {
    for (key, value) in [
        ("max_body_size", "\"ten\""),
        ("header_timeout", "\"soon\""),
        ("max_header_bytes", "-1"),
    ] {
        let sandbox = Sandbox::new();
        let output = sandbox.check(&format!(
            "[admin]\nlisten = \"off\"\n[limits]\n{key} = {value}\n[[listener]]\naddress = \"127.0.0.1:0\"\n"
        ));
        assert_eq!(output.status.code(), Some(2), "{key}: {}", printed(&output));
        line_matching(
            &output,
            &format!(r"^(.*/)?gatehouse\.toml:4:\d+: limits\.{key}: \S"),
        );
    }
}

#[test]
fn check_reports_toml_syntax_errors_with_position() {
    let sandbox = Sandbox::new();
    let output =
        sandbox.check("[admin]\nlisten = \"off\"\n[[listener]\naddress = \"127.0.0.1:0\"\n");
    assert_eq!(output.status.code(), Some(2), "{}", printed(&output));
    line_matching(&output, r"^(.*/)?gatehouse\.toml:3:\d+: ");
}

#[test]
fn run_with_a_bad_config_exits_2_without_serving() {
    let sandbox = Sandbox::new();
    sandbox.config("[[listener]]\naddress = \"127.0.0.1:0\"\n[[route]]\npath = \"/\"\nupstream = \"nowhere\"\n");
    let output = sandbox.command(&["run", "-c", "gatehouse.toml"]);
    assert_eq!(output.status.code(), Some(2), "{}", printed(&output));
    assert!(
        printed(&output).contains("nowhere"),
        "the error is printed: {}",
        printed(&output)
    );
    assert!(!printed(&output).contains("listening on"));
}

#[test]
fn missing_config_file_is_a_config_error() {
    let sandbox = Sandbox::new();
    let output = sandbox.command(&["check", "-c", "absent.toml"]);
    assert_eq!(output.status.code(), Some(2), "{}", printed(&output));
    assert!(
        printed(&output).contains("absent.toml"),
        "{}",
        printed(&output)
    );
}

#[test]
fn version_and_help() {
    let sandbox = Sandbox::new();
    let version = sandbox.command(&["--version"]);
    assert_eq!(version.status.code(), Some(0));
    let text = String::from_utf8_lossy(&version.stdout);
    assert!(
        text.contains("gatehouse") && text.contains(env!("CARGO_PKG_VERSION")),
        "{text}"
    );

    let help = sandbox.command(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("run") && text.contains("check"), "{text}");
}
