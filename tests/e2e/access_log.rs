//! The access log: combined, JSON and Gunicorn-style formats, on stdout or in a file.

use gatehouse_tests::{wait_until, Gatehouse};
use regex::Regex;
use serde_json::Value;

use crate::client;

fn start(target: &str, format: &str) -> Gatehouse {
    Gatehouse::start(&format!(
        r#"
[log]
access_log = "{target}"
access_format = '{format}'

[[listener]]
address = "127.0.0.1:0"

[[route]]
path = "/hello"
respond = {{ status = 200, body = "hello\n" }}
"#
    ))
}

/// Sends the request every test logs: `GET /hello?x=1` with a referer and a user agent.
async fn send(gh: &Gatehouse) {
    let response = client()
        .get(gh.url(0, "/hello?x=1"))
        .header("referer", "http://ref.example/page")
        .header("user-agent", "ua-test/1.0")
        .header("x-request-id", "rid-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// Combined: `127.0.0.1 - - [26/Nov/2026:21:49:00 +0000] "GET /hello?x=1 HTTP/1.1" 200 6 "referer" "ua"`.
const COMBINED: &str = r#"^127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "GET /hello\?x=1 HTTP/1\.1" 200 6 "http://ref\.example/page" "ua-test/1\.0"$"#;

fn assert_matches(line: &str, pattern: &str) {
    assert!(
        Regex::new(pattern).unwrap().is_match(line),
        "{line:?} does not match {pattern}"
    );
}

#[tokio::test]
async fn combined_format_on_stdout() {
    let gh = start("-", "combined");
    send(&gh).await;
    let line = gh.stdout().wait_for("/hello?x=1");
    assert_matches(&line, COMBINED);
    assert!(
        !gh.logs().contains("ua-test/1.0"),
        "the access log stays out of the diagnostic log"
    );
}

#[tokio::test]
async fn json_format_is_one_object_per_line() {
    let gh = start("-", "json");
    send(&gh).await;
    let line = gh.stdout().wait_for("/hello");
    let entry: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let fields = entry.as_object().expect("a JSON object");
    let values: Vec<String> = fields
        .values()
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        .collect();
    for expected in [
        "GET",
        "200",
        "127.0.0.1",
        "ua-test/1.0",
        "http://ref.example/page",
        "rid-123",
    ] {
        assert!(
            values.iter().any(|v| v == expected),
            "no field is {expected:?}: {line}"
        );
    }
    assert!(
        values.iter().any(|v| v.contains("/hello")),
        "the path: {line}"
    );
}

#[tokio::test]
async fn gunicorn_style_format_renders_like_gunicorn() {
    let gh = start(
        "-",
        r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#,
    );
    send(&gh).await;
    let line = gh.stdout().wait_for("/hello?x=1");
    assert_matches(&line, COMBINED);
}

#[tokio::test]
async fn gunicorn_style_atoms_for_parts_duration_and_request_id() {
    let gh = start(
        "-",
        "%(m)s %(U)s %(q)s %(H)s %(s)s %(B)s %(D)s %({x-request-id}i)s end",
    );
    send(&gh).await;
    let line = gh.stdout().wait_for(" end");
    assert_matches(&line, r"^GET /hello x=1 HTTP/1\.1 200 6 \d+ rid-123 end$");
}

#[tokio::test]
async fn access_log_to_a_file() {
    let gh = start("{dir}/access.log", "combined");
    send(&gh).await;
    let path = gh.sandbox().join("access.log");
    let mut line = String::new();
    wait_until("the access log file to have the request", || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        match text.lines().find(|l| l.contains("/hello?x=1")) {
            Some(l) => {
                line = l.to_owned();
                true
            }
            None => false,
        }
    });
    assert_matches(&line, COMBINED);
    assert!(
        !gh.stdout().text().contains("/hello?x=1"),
        "not on stdout too"
    );
}
