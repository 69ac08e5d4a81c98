//! Static files: content, types, conditionals, ranges, HEAD, precompressed variants, index,
//! Cache-Control, dotfiles, path safety, and the fallback to an upstream.

use gatehouse_tests::raw::{self, Conn};
use gatehouse_tests::{Gatehouse, PythonApp, Sandbox};
use reqwest::header;

use crate::client;

const HELLO: &str = "hello static\n";
const CANARY: &str = "CANARY-OUTSIDE-THE-ROOT";

/// A sandbox with `www/` as the root and a canary next to it (outside the root).
fn site() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write("canary.txt", CANARY);
    sandbox.write("www-canary.txt", CANARY); // `www` + suffix: catches prefix checks without a separator
    sandbox.write("www/hello.txt", HELLO);
    sandbox.write("www/style.css", "body { color: red }\n");
    sandbox.write("www/app.js", "console.log('identity');\n");
    sandbox.write("www/app.js.br", "BROTLI-BYTES");
    sandbox.write("www/app.js.gz", "GZIP-BYTES");
    sandbox.write("www/docs/index.html", "<h1>docs</h1>\n");
    sandbox.write("www/.secret", "dotfile\n");
    sandbox.write("www/.hidden/inside.txt", "in a dot directory\n");
    std::os::unix::fs::symlink(sandbox.join("canary.txt"), sandbox.join("www/escape.txt")).unwrap();
    std::os::unix::fs::symlink("hello.txt", sandbox.join("www/alias.txt")).unwrap();
    sandbox
}

const CONFIG: &str = r#"
[[listener]]
address = "127.0.0.1:0"

[[route]]
path = "/"
static = { root = "{dir}/www", cache_control = "public, max-age=60", precompressed = true }
"#;

fn start() -> Gatehouse {
    site().start(CONFIG)
}

#[tokio::test]
async fn serves_files_with_content_type_and_cache_control() {
    let gh = start();
    let response = client().get(gh.url(0, "/hello.txt")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(
        response.headers()[header::CACHE_CONTROL],
        "public, max-age=60"
    );
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(response.text().await.unwrap(), HELLO);

    let css = client().get(gh.url(0, "/style.css")).send().await.unwrap();
    assert_eq!(css.status(), 200);
    assert!(css.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/css"));

    let symlink_inside = client().get(gh.url(0, "/alias.txt")).send().await.unwrap();
    assert_eq!(
        symlink_inside.status(),
        200,
        "a symlink that stays inside the root is followed"
    );
    assert_eq!(symlink_inside.text().await.unwrap(), HELLO);
}

#[tokio::test]
async fn conditional_requests_get_304() {
    let gh = start();
    let url = gh.url(0, "/hello.txt");
    let first = client().get(&url).send().await.unwrap();
    let etag = first.headers()[header::ETAG].clone();
    let last_modified = first.headers()[header::LAST_MODIFIED].clone();

    let by_etag = client()
        .get(&url)
        .header(header::IF_NONE_MATCH, etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(by_etag.status(), 304);
    assert_eq!(by_etag.headers()[header::ETAG], etag);
    assert!(by_etag.bytes().await.unwrap().is_empty());

    let by_date = client()
        .get(&url)
        .header(header::IF_MODIFIED_SINCE, last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(by_date.status(), 304);

    let other = client()
        .get(&url)
        .header(header::IF_NONE_MATCH, "\"not-the-etag\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    assert_eq!(other.text().await.unwrap(), HELLO);
}

#[tokio::test]
async fn range_requests_get_206_or_416() {
    let gh = start();
    let url = gh.url(0, "/hello.txt");
    let partial = client()
        .get(&url)
        .header(header::RANGE, "bytes=0-4")
        .send()
        .await
        .unwrap();
    assert_eq!(partial.status(), 206);
    assert_eq!(
        partial.headers()[header::CONTENT_RANGE],
        format!("bytes 0-4/{}", HELLO.len()).as_str()
    );
    assert_eq!(partial.text().await.unwrap(), "hello");

    let suffix = client()
        .get(&url)
        .header(header::RANGE, "bytes=-7")
        .send()
        .await
        .unwrap();
    assert_eq!(suffix.status(), 206);
    assert_eq!(suffix.text().await.unwrap(), "static\n");

    let unsatisfiable = client()
        .get(&url)
        .header(header::RANGE, "bytes=100-200")
        .send()
        .await
        .unwrap();
    assert_eq!(unsatisfiable.status(), 416);
    assert_eq!(
        unsatisfiable.headers()[header::CONTENT_RANGE],
        format!("bytes */{}", HELLO.len()).as_str()
    );
}

#[tokio::test]
async fn head_has_the_headers_and_no_body() {
    let gh = start();
    let response = raw::exchange(
        gh.addr(0),
        b"HEAD /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-length"),
        Some(HELLO.len().to_string().as_str())
    );
    assert!(response.header("etag").is_some());
    // Nothing may follow the head: the next bytes on the connection would be a bogus body.
    let mut conn = Conn::open(gh.addr(0));
    conn.send(b"HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(conn.response(true).status, 200);
    let second = conn.response(false);
    assert_eq!(second.status, 200);
    assert_eq!(second.text(), HELLO);
}

#[tokio::test]
async fn precompressed_variants_are_negotiated_with_vary() {
    let gh = start();
    let url = gh.url(0, "/app.js");
    for (accept, encoding, body) in [
        ("br", Some("br"), "BROTLI-BYTES"),
        ("gzip", Some("gzip"), "GZIP-BYTES"),
    ] {
        let response = client()
            .get(&url)
            .header(header::ACCEPT_ENCODING, accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_ENCODING)
                .map(|v| v.to_str().unwrap()),
            encoding
        );
        let vary = response
            .headers()
            .get(header::VARY)
            .map(|v| v.to_str().unwrap().to_ascii_lowercase());
        assert!(
            vary.as_ref().is_some_and(|v| v.contains("accept-encoding")),
            "Vary: {vary:?}"
        );
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.contains("javascript"),
            "the original's type, not the encoding's: {content_type}"
        );
        assert_eq!(response.text().await.unwrap(), body);
    }
    let both = client()
        .get(&url)
        .header(header::ACCEPT_ENCODING, "gzip, br")
        .send()
        .await
        .unwrap();
    assert!(both.headers().contains_key(header::CONTENT_ENCODING));

    let identity = client().get(&url).send().await.unwrap();
    assert!(!identity.headers().contains_key(header::CONTENT_ENCODING));
    assert_eq!(identity.text().await.unwrap(), "console.log('identity');\n");
}

#[tokio::test]
async fn directories_serve_their_index() {
    let gh = start();
    let response = client().get(gh.url(0, "/docs/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(response.text().await.unwrap(), "<h1>docs</h1>\n");
}

#[tokio::test]
async fn dotfiles_are_denied_unless_enabled() {
    let gh = start();
    for path in ["/.secret", "/.hidden/inside.txt", "/%2esecret"] {
        let response = client().get(gh.url(0, path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    let open = site().start(
        r#"
[[listener]]
address = "127.0.0.1:0"
[[route]]
path = "/"
static = { root = "{dir}/www", dotfiles = true }
"#,
    );
    let response = client().get(open.url(0, "/.secret")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn missing_files_are_404() {
    let gh = start();
    let response = client().get(gh.url(0, "/nope.txt")).send().await.unwrap();
    crate::assert_error(response, 404).await;
}

/// Paths sent byte for byte (no client normalisation) that try to leave the root.
const TRAVERSALS: &[&str] = &[
    "/../canary.txt",
    "/../../canary.txt",
    "/docs/../../canary.txt",
    "/./../canary.txt",
    "//../canary.txt",
    "/%2e%2e/canary.txt",
    "/%2E%2E/canary.txt",
    "/.%2e/canary.txt",
    "/%2e./canary.txt",
    "/..%2fcanary.txt",
    "/..%2Fcanary.txt",
    "/%2e%2e%2fcanary.txt",
    "/docs/..%2f..%2fcanary.txt",
    "/..%5ccanary.txt",
    "/..\\canary.txt",
    "/%252e%252e/canary.txt",
    "/%c0%ae%c0%ae/canary.txt",
    "/..;/canary.txt",
    "/....//canary.txt",
    "/../www-canary.txt",
    "/%2e%2e/www-canary.txt",
    "/escape.txt",
    "/hello.txt%00.css",
    "/%00../canary.txt",
    "/%2fetc%2fpasswd",
    "/../../../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
];

#[tokio::test]
async fn traversal_attempts_never_return_a_file_outside_the_root() {
    let gh = start();
    for target in TRAVERSALS {
        let response = raw::get(gh.addr(0), target);
        let body = response.text();
        assert!(!body.contains(CANARY), "{target} leaked the canary");
        assert!(!body.contains("root:"), "{target} leaked /etc/passwd");
        assert!(
            [400, 404].contains(&response.status),
            "{target}: status {} body {body:?}",
            response.status
        );
    }
}

#[tokio::test]
async fn traversal_attempts_under_a_prefix_route_stay_inside() {
    let sandbox = site();
    let gh = sandbox.start(
        r#"
[[listener]]
address = "127.0.0.1:0"
[[route]]
path = "/static/"
static = { root = "{dir}/www" }
"#,
    );
    assert_eq!(raw::get(gh.addr(0), "/static/hello.txt").text(), HELLO);
    for target in [
        "/static/../canary.txt",
        "/static/%2e%2e/canary.txt",
        "/static/..%2fcanary.txt",
        "/static%2f..%2fcanary.txt",
    ] {
        let response = raw::get(gh.addr(0), target);
        assert!(
            !response.text().contains(CANARY),
            "{target} leaked the canary"
        );
        assert!(
            [400, 404].contains(&response.status),
            "{target}: status {}",
            response.status
        );
    }
}

#[tokio::test]
async fn a_fifo_is_never_opened() {
    let sandbox = site();
    let status = std::process::Command::new("mkfifo")
        .arg(sandbox.join("www/pipe"))
        .status()
        .unwrap();
    assert!(status.success());
    let gh = sandbox.start(CONFIG);
    // Opening a FIFO for reading would block until a writer comes: the read deadline catches that.
    let response = raw::get(gh.addr(0), "/pipe");
    assert!(
        [403, 404].contains(&response.status),
        "status {}",
        response.status
    );
    assert_eq!(
        raw::get(gh.addr(0), "/hello.txt").text(),
        HELLO,
        "still serving"
    );
}

#[tokio::test]
async fn missing_files_fall_back_to_an_upstream() {
    let upstream = PythonApp::upstream();
    let gh = site().start(&format!(
        r#"
[[listener]]
address = "127.0.0.1:0"

[[upstream]]
name = "app"
servers = ["{}"]

[[route]]
path = "/"
static = {{ root = "{{dir}}/www", fallback = "app" }}
"#,
        upstream.address()
    ));
    let from_disk = client().get(gh.url(0, "/hello.txt")).send().await.unwrap();
    assert_eq!(from_disk.text().await.unwrap(), HELLO);

    let from_app = client()
        .get(gh.url(0, "/articles/42?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(from_app.status(), 200);
    assert_eq!(from_app.text().await.unwrap(), "upstream /articles/42\n");

    let requests = upstream.requests();
    assert_eq!(
        requests,
        vec!["GET /articles/42?x=1"],
        "only the missing file reached the upstream"
    );
}
