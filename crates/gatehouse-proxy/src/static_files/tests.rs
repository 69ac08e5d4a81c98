//! `StaticFiles::serve` called directly, without sockets, against temp directories. The route
//! prefix is `/static/`; a canary file sits just outside the root.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use http_body_util::BodyExt;

use super::{Outcome, StaticFiles};
use crate::body::Body;

const CANARY: &str = "canary: this must never be served";
const PREFIX: &str = "/static/";

struct Site {
    _dir: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
}

impl Site {
    /// `<base>/secret.txt` (the canary) and `<base>/root/` with a few files.
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(dir.path()).unwrap();
        fs::write(base.join("secret.txt"), CANARY).unwrap();
        let root = base.join("root");
        fs::create_dir_all(root.join("docs")).unwrap();
        fs::create_dir_all(root.join("empty")).unwrap();
        fs::write(root.join("hello.txt"), "hello world").unwrap();
        fs::write(root.join("docs/index.html"), "<h1>docs</h1>").unwrap();
        fs::write(root.join(".env"), "SECRET=1").unwrap();
        Site {
            _dir: dir,
            base,
            root,
        }
    }

    fn write(&self, name: &str, content: impl AsRef<[u8]>) {
        fs::write(self.root.join(name), content).unwrap();
    }

    fn files(&self) -> StaticFiles {
        self.files_with(|_| {})
    }

    fn files_with(&self, tweak: impl FnOnce(&mut gatehouse_config::model::Static)) -> StaticFiles {
        let mut config = gatehouse_config::model::Static {
            root: self.root.clone(),
            index: vec!["index.html".into()],
            cache_control: None,
            precompressed: false,
            dotfiles: false,
            fallback: None,
        };
        tweak(&mut config);
        StaticFiles::new(&config)
    }
}

/// Serves `target` (path and query as sent, under `/static`) with `headers`.
async fn serve(
    files: &StaticFiles,
    method: Method,
    target: &str,
    headers: &[(header::HeaderName, &str)],
) -> Outcome {
    let uri: Uri = target.parse().unwrap();
    let relative = uri.path().strip_prefix(PREFIX).unwrap_or("");
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(name.clone(), HeaderValue::from_str(value).unwrap());
    }
    files.serve(&method, &uri, &map, relative).await
}

async fn get(
    files: &StaticFiles,
    target: &str,
    headers: &[(header::HeaderName, &str)],
) -> Response<Body> {
    match serve(files, Method::GET, target, headers).await {
        Outcome::Served(response) => response,
        other => panic!("{target}: {other:?}"),
    }
}

async fn text(response: Response<Body>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn header(response: &Response<Body>, name: header::HeaderName) -> &str {
    response
        .headers()
        .get(&name)
        .map(|value| value.to_str().unwrap())
        .unwrap_or_else(|| panic!("no {name}"))
}

#[tokio::test]
async fn serves_a_file_with_its_validators() {
    let site = Site::new();
    let response = get(&site.files(), "/static/hello.txt", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, header::CONTENT_TYPE),
        "text/plain; charset=utf-8"
    );
    assert_eq!(header(&response, header::CONTENT_LENGTH), "11");
    assert_eq!(header(&response, header::ACCEPT_RANGES), "bytes");
    assert!(header(&response, header::ETAG).starts_with('"'));
    assert!(header(&response, header::LAST_MODIFIED).ends_with(" GMT"));
    assert!(!response.headers().contains_key(header::CACHE_CONTROL));
    assert!(!response.headers().contains_key(header::VARY));
    assert_eq!(text(response).await, "hello world");
}

#[tokio::test]
async fn content_types_follow_the_extension() {
    let site = Site::new();
    for (name, expected) in [
        ("a.css", "text/css; charset=utf-8"),
        ("a.html", "text/html; charset=utf-8"),
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.json", "application/json; charset=utf-8"),
        ("a.svg", "image/svg+xml; charset=utf-8"),
        ("a.png", "image/png"),
        ("a.woff2", "font/woff2"),
        ("a.unknownext", "application/octet-stream"),
        ("noextension", "application/octet-stream"),
    ] {
        site.write(name, "x");
        let response = get(&site.files(), &format!("/static/{name}"), &[]).await;
        assert_eq!(header(&response, header::CONTENT_TYPE), expected, "{name}");
    }
}

#[tokio::test]
async fn cache_control_comes_from_the_config() {
    let site = Site::new();
    let files = site.files_with(|c| c.cache_control = Some("public, max-age=3600".into()));
    let response = get(&files, "/static/hello.txt", &[]).await;
    assert_eq!(
        header(&response, header::CACHE_CONTROL),
        "public, max-age=3600"
    );
    let etag = header(&response, header::ETAG).to_owned();
    let response = get(
        &files,
        "/static/hello.txt",
        &[(header::IF_NONE_MATCH, &etag)],
    )
    .await;
    assert_eq!(
        header(&response, header::CACHE_CONTROL),
        "public, max-age=3600"
    );
}

#[tokio::test]
async fn not_modified_by_etag_and_by_date() {
    let site = Site::new();
    let files = site.files();
    let first = get(&files, "/static/hello.txt", &[]).await;
    let etag = header(&first, header::ETAG).to_owned();
    let date = header(&first, header::LAST_MODIFIED).to_owned();

    let response = get(
        &files,
        "/static/hello.txt",
        &[(header::IF_NONE_MATCH, &etag)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&response, header::ETAG), etag);
    assert_eq!(text(response).await, "");

    let response = get(
        &files,
        "/static/hello.txt",
        &[(header::IF_MODIFIED_SINCE, &date)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);

    // If-None-Match wins over a matching date.
    let stale = [
        (header::IF_NONE_MATCH, "\"stale\""),
        (header::IF_MODIFIED_SINCE, date.as_str()),
    ];
    let response = get(&files, "/static/hello.txt", &stale).await;
    assert_eq!(response.status(), StatusCode::OK);

    let response = get(
        &files,
        "/static/hello.txt",
        &[(header::IF_MATCH, "\"stale\"")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn ranges_answer_206_and_416() {
    let site = Site::new();
    let files = site.files();
    let response = get(&files, "/static/hello.txt", &[(header::RANGE, "bytes=6-")]).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&response, header::CONTENT_RANGE), "bytes 6-10/11");
    assert_eq!(header(&response, header::CONTENT_LENGTH), "5");
    assert_eq!(text(response).await, "world");

    let response = get(&files, "/static/hello.txt", &[(header::RANGE, "bytes=-5")]).await;
    assert_eq!(text(response).await, "world");

    let response = get(&files, "/static/hello.txt", &[(header::RANGE, "bytes=11-")]).await;
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&response, header::CONTENT_RANGE), "bytes */11");

    // Several ranges: the whole file (documented choice).
    let response = get(
        &files,
        "/static/hello.txt",
        &[(header::RANGE, "bytes=0-1,3-4")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "hello world");
}

#[tokio::test]
async fn if_range_with_a_stale_validator_sends_the_whole_file() {
    let site = Site::new();
    let files = site.files();
    let etag = header(&get(&files, "/static/hello.txt", &[]).await, header::ETAG).to_owned();
    let current = [
        (header::RANGE, "bytes=0-4"),
        (header::IF_RANGE, etag.as_str()),
    ];
    let response = get(&files, "/static/hello.txt", &current).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(text(response).await, "hello");
    let stale = [
        (header::RANGE, "bytes=0-4"),
        (header::IF_RANGE, "\"stale\""),
    ];
    let response = get(&files, "/static/hello.txt", &stale).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "hello world");
}

#[tokio::test]
async fn head_has_the_get_headers_and_no_body() {
    let site = Site::new();
    site.write("big.bin", vec![7u8; 300_000]);
    let files = site.files();
    // Twice: once from disk, once after a GET put the small file in memory.
    for _ in 0..2 {
        for (name, len) in [("hello.txt", "11"), ("big.bin", "300000")] {
            let Outcome::Served(response) =
                serve(&files, Method::HEAD, &format!("/static/{name}"), &[]).await
            else {
                panic!("HEAD {name}");
            };
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(header(&response, header::CONTENT_LENGTH), len);
            assert_eq!(text(response).await, "");
        }
        get(&files, "/static/hello.txt", &[]).await;
    }
}

#[tokio::test]
async fn large_files_stream_in_chunks_with_ranges() {
    let site = Site::new();
    let content: Vec<u8> = (0..300_000u32).map(|n| (n % 251) as u8).collect();
    site.write("big.bin", &content);
    let files = site.files();
    let response = get(&files, "/static/big.bin", &[]).await;
    assert_eq!(header(&response, header::CONTENT_LENGTH), "300000");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(body == content[..], "whole body differs");

    let response = get(
        &files,
        "/static/big.bin",
        &[(header::RANGE, "bytes=65530-200000")],
    )
    .await;
    assert_eq!(
        header(&response, header::CONTENT_RANGE),
        "bytes 65530-200000/300000"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(body == content[65530..=200000], "range body differs");
}

#[tokio::test]
async fn a_changed_file_is_served_fresh() {
    let site = Site::new();
    let files = site.files();
    let before = get(&files, "/static/hello.txt", &[]).await;
    let etag = header(&before, header::ETAG).to_owned();
    site.write("hello.txt", "changed, and longer");
    let after = get(
        &files,
        "/static/hello.txt",
        &[(header::IF_NONE_MATCH, &etag)],
    )
    .await;
    assert_eq!(after.status(), StatusCode::OK);
    assert_eq!(text(after).await, "changed, and longer");
}

#[tokio::test]
async fn precompressed_siblings_follow_accept_encoding() {
    let site = Site::new();
    site.write("app.js", "plain");
    site.write("app.js.br", "brotli");
    site.write("app.js.gz", "gzip");
    let files = site.files_with(|c| c.precompressed = true);
    let cases = [
        ("gzip, deflate, br", Some("br"), "brotli"),
        ("gzip", Some("gzip"), "gzip"),
        ("br;q=0, gzip", Some("gzip"), "gzip"),
        ("br;q=0.5, gzip", Some("gzip"), "gzip"),
        ("identity", None, "plain"),
        ("", None, "plain"),
    ];
    let mut etags = Vec::new();
    for (accept, encoding, body) in cases {
        let response = get(
            &files,
            "/static/app.js",
            &[(header::ACCEPT_ENCODING, accept)],
        )
        .await;
        assert_eq!(
            header(&response, header::VARY),
            "accept-encoding",
            "{accept}"
        );
        assert_eq!(
            header(&response, header::CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
        let sent = response
            .headers()
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap());
        assert_eq!(sent, encoding, "{accept}");
        assert_eq!(
            header(&response, header::CONTENT_LENGTH),
            body.len().to_string()
        );
        etags.push(header(&response, header::ETAG).to_owned());
        assert_eq!(text(response).await, body, "{accept}");
    }
    assert!(etags[0] != etags[1] && etags[1] != etags[4] && etags[0] != etags[4]);

    // Only gzip on disk: a brotli client gets gzip, and a sibling that is a FIFO is skipped.
    site.write("only.css", "plain");
    site.write("only.css.gz", "gzip");
    assert!(std::process::Command::new("mkfifo")
        .arg(site.root.join("only.css.br"))
        .status()
        .unwrap()
        .success());
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        get(
            &files,
            "/static/only.css",
            &[(header::ACCEPT_ENCODING, "br, gzip")],
        ),
    )
    .await
    .expect("a FIFO sibling must not block");
    assert_eq!(header(&response, header::CONTENT_ENCODING), "gzip");
}

#[tokio::test]
async fn precompressed_off_ignores_siblings_and_sends_no_vary() {
    let site = Site::new();
    site.write("app.js", "plain");
    site.write("app.js.br", "brotli");
    let response = get(
        &site.files(),
        "/static/app.js",
        &[(header::ACCEPT_ENCODING, "br")],
    )
    .await;
    assert!(!response.headers().contains_key(header::VARY));
    assert!(!response.headers().contains_key(header::CONTENT_ENCODING));
    assert_eq!(text(response).await, "plain");
}

#[tokio::test]
async fn directories_redirect_then_serve_their_index() {
    let site = Site::new();
    let files = site.files();
    let response = get(&files, "/static/docs?page=2", &[]).await;
    assert_eq!(response.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(header(&response, header::LOCATION), "/static/docs/?page=2");

    let response = get(&files, "/static/docs/", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    assert_eq!(text(response).await, "<h1>docs</h1>");

    assert!(matches!(
        serve(&files, Method::GET, "/static/empty/", &[]).await,
        Outcome::Missing
    ));
    // The route's own directory: `/static` → `/static/`.
    let response = get(&files, "/static", &[]).await;
    assert_eq!(header(&response, header::LOCATION), "/static/");
}

#[tokio::test]
async fn the_redirect_never_points_off_site() {
    let site = Site::new();
    let files = site.files();
    let uri: Uri = "//evil.example/docs".parse().unwrap();
    let Outcome::Served(response) = files
        .serve(&Method::GET, &uri, &HeaderMap::new(), "docs")
        .await
    else {
        panic!("not served");
    };
    assert_eq!(header(&response, header::LOCATION), "/evil.example/docs/");
}

#[tokio::test]
async fn methods_other_than_get_and_head() {
    let site = Site::new();
    let files = site.files();
    for target in ["/static/hello.txt", "/static/docs/", "/static/docs"] {
        assert!(
            matches!(
                serve(&files, Method::POST, target, &[]).await,
                Outcome::MethodNotAllowed
            ),
            "{target}"
        );
    }
    for target in [
        "/static/missing.txt",
        "/static/empty/",
        "/static/../secret.txt",
    ] {
        assert!(
            matches!(
                serve(&files, Method::DELETE, target, &[]).await,
                Outcome::Missing
            ),
            "{target}"
        );
    }
}

#[tokio::test]
async fn a_file_with_a_trailing_slash_is_missing() {
    let site = Site::new();
    assert!(matches!(
        serve(&site.files(), Method::GET, "/static/hello.txt/", &[]).await,
        Outcome::Missing
    ));
}

#[tokio::test]
async fn dotfiles_follow_the_setting() {
    let site = Site::new();
    assert!(matches!(
        serve(&site.files(), Method::GET, "/static/.env", &[]).await,
        Outcome::Missing
    ));
    let files = site.files_with(|c| c.dotfiles = true);
    assert_eq!(
        text(get(&files, "/static/.env", &[]).await).await,
        "SECRET=1"
    );
}

#[tokio::test]
async fn unicode_names() {
    let site = Site::new();
    site.write("naïve café.txt", "unicode");
    let response = get(&site.files(), "/static/na%C3%AFve%20caf%C3%A9.txt", &[]).await;
    assert_eq!(text(response).await, "unicode");
}

#[tokio::test]
async fn symlinks_out_of_the_root_are_missing() {
    let site = Site::new();
    std::os::unix::fs::symlink(site.base.join("secret.txt"), site.root.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(&site.base, site.root.join("up")).unwrap();
    std::os::unix::fs::symlink(site.root.join("hello.txt"), site.root.join("alias.txt")).unwrap();
    let files = site.files_with(|c| c.dotfiles = true);
    assert!(matches!(
        serve(&files, Method::GET, "/static/leak.txt", &[]).await,
        Outcome::Missing
    ));
    assert!(matches!(
        serve(&files, Method::GET, "/static/up/secret.txt", &[]).await,
        Outcome::Missing
    ));
    assert_eq!(
        text(get(&files, "/static/alias.txt", &[]).await).await,
        "hello world"
    );
}

#[tokio::test]
async fn fifos_are_never_opened() {
    let site = Site::new();
    let made = std::process::Command::new("mkfifo")
        .arg(site.root.join("pipe"))
        .status()
        .unwrap();
    assert!(made.success());
    let files = site.files();
    for method in [Method::GET, Method::HEAD] {
        let outcome = tokio::time::timeout(
            Duration::from_secs(5),
            serve(&files, method, "/static/pipe", &[]),
        )
        .await
        .expect("serving a FIFO must not block");
        assert!(matches!(outcome, Outcome::Missing));
    }
}

/// Every attack string, with dotfiles on and off and through every kind of lookup, must miss
/// the canary next to the root.
#[tokio::test]
async fn traversal_never_reaches_the_canary() {
    let site = Site::new();
    std::os::unix::fs::symlink(site.base.join("secret.txt"), site.root.join("link")).unwrap();
    let attacks = [
        "../secret.txt",
        "..//secret.txt",
        "docs/../../secret.txt",
        "%2e%2e/secret.txt",
        "%2E%2E/secret.txt",
        ".%2e/secret.txt",
        "..%2fsecret.txt",
        "%2e%2e%2fsecret.txt",
        "%2e%2e%2Fsecret.txt",
        "..%5csecret.txt",
        "..\\secret.txt",
        "....//secret.txt",
        "..;/secret.txt",
        "%252e%252e/secret.txt",
        "%252e%252e%252fsecret.txt",
        "%c0%ae%c0%ae/secret.txt",
        "..%00/secret.txt",
        "secret.txt%00.html",
        "/../secret.txt",
        "docs/%2e%2e/%2e%2e/secret.txt",
        "link",
        "link/",
        "./../secret.txt",
        "..",
        "%2e%2e",
        "%2e%2e/",
    ];
    for dotfiles in [false, true] {
        let files = site.files_with(|c| {
            c.dotfiles = dotfiles;
            c.precompressed = true;
        });
        for attack in attacks {
            let uri: Uri = "/static/x".parse().unwrap();
            let mut headers = HeaderMap::new();
            headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("br, gzip"),
            );
            for method in [Method::GET, Method::HEAD] {
                match files.serve(&method, &uri, &headers, attack).await {
                    Outcome::Served(response) => {
                        let status = response.status();
                        let body = text(response).await;
                        assert!(!body.contains("canary"), "{attack} leaked the canary");
                        assert_ne!(status, StatusCode::OK, "{attack} served something");
                    }
                    Outcome::Missing => {}
                    Outcome::MethodNotAllowed => panic!("{attack}: 405 means it resolved"),
                }
            }
        }
    }
}
