//! The built-in WSGI worker (`[[app]] wsgi = "module:callable"`) behind the real binary.
//!
//! `tests/apps/wsgi_app.py` is wrapped in `wsgiref.validate.validator`, which raises on any
//! breach of PEP 3333 by the app or by the server: the suites here drive it through GET, POST
//! (every way of reading wsgi.input), HEAD, streaming, write(), exc_info, file_wrapper and errors,
//! and then find no AssertionError or warning in the log. The environ's gatehouse-specific parts
//! (REMOTE_ADDR, url_scheme, SCRIPT_NAME), threads, deadlines and a broken app follow.
//!
//! `wsgi/demo.rs` runs the bundled demo, `wsgi/serve.rs` `gatehouse serve`. `wsgi/compare.rs` runs one request suite against a Flask app and a Django project under this
//! worker and under Gunicorn, and wants identical answers.

mod compare;
mod demo;
mod serve;

use std::collections::BTreeSet;

use gatehouse_tests::python::{apps_dir, python};
use gatehouse_tests::raw;
use gatehouse_tests::workers::{
    client, config, field, get, log_line, pid_field, supervisor_lines, wait_gone, wait_ready,
    Answer,
};
use gatehouse_tests::{eventually, Gatehouse};
use sha2::{Digest, Sha256};

/// An `[[app]]` table for the built-in worker serving `target` from `tests/apps`, plus `keys`.
pub(crate) fn wsgi_app(name: &str, target: &str, keys: &str) -> String {
    // A JSON string is a TOML basic string.
    let quoted = |path: std::path::PathBuf| serde_json::to_string(&path.display().to_string());
    format!(
        "[[app]]\nname = \"{name}\"\nwsgi = \"{target}\"\npython = {}\ndirectory = {}\n{keys}\n",
        quoted(python()).unwrap(),
        quoted(apps_dir()).unwrap(),
    )
}

/// Gatehouse with the built-in worker serving `target` as app `w` at `/`.
fn start(target: &str, keys: &str) -> Gatehouse {
    Gatehouse::start(&config(
        &[wsgi_app("w", target, keys)],
        "[[route]]\npath = \"/\"\napp = \"w\"\n",
    ))
}

/// The JSON body of a 200 answer.
fn json(answer: &Answer) -> serde_json::Value {
    assert_eq!(answer.status, 200, "{answer:?}");
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {}", answer.body))
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A raw request (for HEAD and chunked uploads, which reqwest hides), off the async threads.
async fn raw_exchange(gh: &Gatehouse, request: Vec<u8>, head_only: bool) -> raw::Response {
    let addr = gh.addr(0);
    tokio::task::spawn_blocking(move || {
        let mut conn = raw::Conn::open(addr);
        conn.send(&request).unwrap();
        conn.response(head_only)
    })
    .await
    .unwrap()
}

/// Asserts that the validator found nothing wrong, and that the only tracebacks in the log are
/// the `expected` exceptions the test provoked.
fn assert_validated(gh: &Gatehouse, expected: &[&str]) {
    let logs = gh.logs();
    for breach in [
        "AssertionError",
        "WSGIWarning",
        "Warning:",
        "Exception ignored",
    ] {
        let found: Vec<&str> = logs.lines().filter(|l| l.contains(breach)).collect();
        assert!(found.is_empty(), "{breach} in the log: {found:#?}\n{logs}");
    }
    let tracebacks = logs.matches("Traceback (most recent call last)").count();
    assert_eq!(tracebacks, expected.len(), "{logs}");
    for exception in expected {
        assert!(logs.contains(exception), "{exception} in the log:\n{logs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validated_app_sees_a_conforming_server_on_every_path() {
    let gh = start("wsgi_app:app", "workers = 1");
    let pid = wait_ready(&gh, "w", 1).await[0];
    let client = client();
    let url = |path: &str| gh.url(0, path);

    let hello = get(&client, &url("/")).await.unwrap();
    assert_eq!((hello.status, hello.pid), (200, Some(pid)));
    assert_eq!(hello.body, format!("hello from {pid}\n"));

    let environ = json(&get(&client, &url("/environ?a=1&b=%20")).await.unwrap());
    let port = gh.addr(0).port().to_string();
    assert_eq!(environ["REQUEST_METHOD"], "GET");
    assert_eq!(environ["SCRIPT_NAME"], "");
    assert_eq!(environ["PATH_INFO"], "/environ");
    assert_eq!(environ["QUERY_STRING"], "a=1&b=%20");
    assert_eq!(environ["SERVER_NAME"], "127.0.0.1");
    assert_eq!(environ["SERVER_PORT"], port.as_str());
    assert_eq!(environ["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(environ["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(environ["wsgi.url_scheme"], "http");
    assert_eq!(environ["wsgi.version"], serde_json::json!([1, 0]));
    assert_eq!(environ["wsgi.multithread"], false);
    assert_eq!(environ["wsgi.run_once"], false);
    assert_eq!(environ["wsgi.input_terminated"], true);
    assert!(environ.get("CONTENT_LENGTH").is_none(), "{environ}");

    // Small bodies arrive with the head; 3 MiB ones are spooled by gatehouse and read by the
    // worker from the socket as the app asks.
    let small = b"a=1&b=two\nthird line\n".to_vec();
    let large: Vec<u8> = (0..3 * 1024 * 1024)
        .map(|i| if i % 97 == 0 { b'\n' } else { (i % 251) as u8 })
        .collect();
    for body in [&small, &large] {
        for mode in ["read", "chunks", "readline", "readlines", "iter"] {
            let response = client
                .post(url(&format!("/echo?mode={mode}")))
                .header("content-type", "application/octet-stream")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{mode}");
            let echo: serde_json::Value =
                serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
            assert_eq!(echo["length"], body.len(), "{mode}");
            assert_eq!(echo["sha256"], sha256_hex(body).as_str(), "{mode}");
            assert_eq!(echo["content_type"], "application/octet-stream");
        }
    }

    // A chunked upload reaches the app with CONTENT_LENGTH (gatehouse buffers it).
    let chunked = b"POST /echo?mode=read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
        Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        .to_vec();
    let response = raw_exchange(&gh, chunked, false).await;
    let echo: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(echo["length"], 11);
    assert_eq!(echo["content_length"], "11");
    assert_eq!(echo["sha256"], sha256_hex(b"hello world").as_str());

    let head = raw_exchange(
        &gh,
        b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        true,
    )
    .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let whole = raw_exchange(
        &gh,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        false,
    )
    .await;
    assert_eq!(
        head.header("content-length"),
        Some(whole.body.len().to_string().as_str()),
        "HEAD announces the length a GET gets"
    );
    for path in ["/stream?n=3", "/write", "/closing", "/redirect"] {
        let request = format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let head = raw_exchange(&gh, request.into_bytes(), true).await;
        assert!(head.body.is_empty(), "HEAD {path}");
        assert!(
            [200, 302].contains(&head.status),
            "HEAD {path}: {}",
            head.status
        );
    }

    let stream = get(&client, &url("/stream?n=4")).await.unwrap();
    assert_eq!(stream.body, "chunk 0\nchunk 1\nchunk 2\nchunk 3\n");
    let streamed = get(&client, &url("/stream?n=300&nobuffer=1"))
        .await
        .unwrap();
    let expected: String = (0..300).map(|i| format!("chunk {i}\n")).collect();
    assert_eq!(streamed.body, expected);
    let write = get(&client, &url("/write")).await.unwrap();
    assert_eq!(write.body, "written then returned\n");
    let replaced = get(&client, &url("/exc-info")).await.unwrap();
    assert_eq!(
        (replaced.status, replaced.body.as_str()),
        (500, "replaced by exc_info\n")
    );
    let file = get(&client, &url("/file")).await.unwrap();
    let source = std::fs::read_to_string(apps_dir().join("wsgi_app.py")).unwrap();
    assert_eq!(file.body, source);
    let closing = get(&client, &url("/closing")).await.unwrap();
    assert_eq!(closing.body, "closing iterable\n");
    log_line(&gh, "close() of the iterable", |l| {
        l.contains("iterable closed")
    })
    .await;
    for code in [204, 304] {
        let answer = get(&client, &url(&format!("/status?code={code}")))
            .await
            .unwrap();
        assert_eq!((answer.status, answer.body.as_str()), (code, ""));
    }
    let missing = get(&client, &url("/status?code=404")).await.unwrap();
    assert_eq!(
        (missing.status, missing.body.as_str()),
        (404, "status 404\n")
    );
    let redirect = client.get(url("/redirect")).send().await.unwrap();
    assert_eq!(redirect.status(), 302);
    assert_eq!(redirect.headers()["location"], "/environ");

    // The errors: a 500 before the head, a cut body after it; the worker serves on.
    let error = get(&client, &url("/error")).await.unwrap();
    assert_eq!(
        (error.status, error.body.as_str()),
        (500, "Internal Server Error\n")
    );
    let cut = get(&client, &url("/error-mid-body")).await;
    assert!(
        cut.as_ref().map_or(true, |a| !a.body.contains("complete")),
        "{cut:?}"
    );
    let after = get(&client, &url("/")).await.unwrap();
    assert_eq!((after.status, after.pid), (200, Some(pid)));

    assert_validated(
        &gh,
        &[
            "RuntimeError: boom from the app, as asked",
            "RuntimeError: boom in the middle of the body, as asked",
        ],
    );
    assert!(supervisor_lines(&gh.logs(), "w", "worker exited").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exception_is_a_500_with_its_traceback_and_the_worker_keeps_serving() {
    let gh = start("wsgi_app:app", "workers = 1");
    let pid = wait_ready(&gh, "w", 1).await[0];
    let client = client();
    for _ in 0..3 {
        let answer = get(&client, &gh.url(0, "/error")).await.unwrap();
        assert_eq!(answer.status, 500, "{answer:?}");
        let hello = get(&client, &gh.url(0, "/")).await.unwrap();
        assert_eq!((hello.status, hello.pid), (200, Some(pid)));
    }
    let line = log_line(&gh, "the app's exception", |line| {
        line.contains("RuntimeError: boom from the app, as asked")
    })
    .await;
    assert_eq!(
        pid_field(&line),
        Some(pid),
        "tagged with the worker: {line}"
    );
    assert_eq!(field(&line, "stream"), Some("stderr"));
    let logs = gh.logs();
    assert!(logs.contains("Error handling request GET /error"), "{logs}");
    assert!(logs.contains("in raw"), "the app's frame: {logs}");
    assert_eq!(
        logs.matches("Traceback (most recent call last)").count(),
        3,
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unvalidated_file_wrapper_goes_out_whole() {
    let gh = start("wsgi_app:raw", "workers = 1");
    wait_ready(&gh, "w", 1).await;
    let source = std::fs::read(apps_dir().join("wsgi_app.py")).unwrap();
    let response = client().get(gh.url(0, "/file")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-length"],
        source.len().to_string().as_str()
    );
    assert_eq!(response.bytes().await.unwrap(), source);
    let head = raw_exchange(
        &gh,
        b"HEAD /file HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        true,
    )
    .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    // The connection is still in step after a HEAD and a sendfile.
    let hello = get(&client(), &gh.url(0, "/")).await.unwrap();
    assert_eq!(hello.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_addr_and_scheme_come_from_gatehouse_never_from_the_client() {
    let gh = start("wsgi_app:app", "workers = 1");
    wait_ready(&gh, "w", 1).await;
    let spoofed = client()
        .get(gh.url(0, "/environ"))
        .header("x-real-ip", "6.6.6.6")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-custom", "kept")
        .send()
        .await
        .unwrap();
    let environ: serde_json::Value =
        serde_json::from_slice(&spoofed.bytes().await.unwrap()).unwrap();
    assert_eq!(environ["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(environ["HTTP_X_REAL_IP"], "127.0.0.1");
    assert_eq!(environ["HTTP_X_FORWARDED_FOR"], "127.0.0.1");
    assert_eq!(environ["wsgi.url_scheme"], "http");
    assert_eq!(environ["HTTP_X_CUSTOM"], "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_remote_addr_is_the_client_it_saw() {
    let toml = config(
        &[wsgi_app("w", "wsgi_app:app", "workers = 1")],
        "[[route]]\npath = \"/\"\napp = \"w\"\n",
    )
    .replace(
        "watch_config = false",
        "watch_config = false\ntrusted_proxies = [\"127.0.0.0/8\"]",
    );
    let gh = Gatehouse::start(&toml);
    wait_ready(&gh, "w", 1).await;
    let response = client()
        .get(gh.url(0, "/environ"))
        .header("x-forwarded-for", "203.0.113.9, 198.51.100.7")
        .send()
        .await
        .unwrap();
    let environ: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(environ["REMOTE_ADDR"], "198.51.100.7");
    assert_eq!(
        environ["HTTP_X_FORWARDED_FOR"],
        "203.0.113.9, 198.51.100.7, 127.0.0.1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_path_is_script_name_and_the_rest_is_path_info() {
    let routes = r#"
[[route]]
path = "/app"
app = "w"

[[route]]
path = "/stripped"
app = "w"
strip_prefix = true
"#;
    let gh = Gatehouse::start(&config(
        &[wsgi_app("w", "wsgi_app:app", "root_path = \"/app\"")],
        routes,
    ));
    wait_ready(&gh, "w", 1).await;
    let client = client();
    for (path, path_info) in [
        ("/app/environ", "/environ"),
        ("/app/a%20b/c", "/a b/c"),
        ("/app", ""),
        ("/stripped/environ", "/environ"),
    ] {
        let answer = get(&client, &gh.url(0, path)).await.unwrap();
        if path_info == "/environ" {
            let environ = json(&answer);
            assert_eq!(environ["SCRIPT_NAME"], "/app", "{path}");
            assert_eq!(environ["PATH_INFO"], path_info, "{path}");
        } else {
            // Not an endpoint of the app: its 404 shows which PATH_INFO it got.
            assert_eq!(answer.status, 404, "{path}: {answer:?}");
        }
    }
    assert_validated(&gh, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_runs_a_thread_pool_in_one_process() {
    let gh = start("wsgi_app:app", "workers = 1\nconcurrency = 4");
    let pid = wait_ready(&gh, "w", 1).await[0];
    let client = client();
    let environ = json(&get(&client, &gh.url(0, "/environ")).await.unwrap());
    assert_eq!(environ["wsgi.multithread"], true);

    // Four requests inside the app at once: each waits until all four are there.
    let url = gh.url(0, "/barrier?n=4");
    let requests = (0..4).map(|_| get(&client, &url));
    let pids: BTreeSet<u32> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(|answer| {
            let answer = answer.unwrap();
            assert_eq!((answer.status, answer.body.as_str()), (200, "together\n"));
            answer.pid.unwrap()
        })
        .collect();
    assert_eq!(pids, BTreeSet::from([pid]));
    log_line(&gh, "the startup line", |l| {
        l.contains("serving wsgi_app:app (4 threads)")
    })
    .await;
    assert_validated(&gh, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_timeout_is_504_with_every_stack_in_the_log() {
    let gh = start(
        "wsgi_app:app",
        "workers = 1\nconcurrency = 2\ntimeout = \"1s\"",
    );
    let first = wait_ready(&gh, "w", 1).await[0];
    let answer = get(&client(), &gh.url(0, "/hang")).await.unwrap();
    assert_eq!(answer.status, 504, "{answer:?}");
    let frame = log_line(&gh, "a stack frame in hang_forever", |line| {
        line.contains("File \"") && line.contains("in hang_forever")
    })
    .await;
    assert_eq!(pid_field(&frame), Some(first), "{frame}");
    // faulthandler names every thread: the main loop and the pool's two.
    eventually("three thread headers", || async {
        gh.logs()
            .lines()
            .filter(|l| l.contains("Thread 0x") || l.contains("Current thread 0x"))
            .count()
            >= 3
    })
    .await;
    wait_gone(&BTreeSet::from([first]));
    let second = wait_ready(&gh, "w", 2).await[1];
    let hello = get(&client(), &gh.url(0, "/")).await.unwrap();
    assert_eq!((hello.status, hello.pid), (200, Some(second)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_cannot_be_imported_is_503_with_its_traceback_in_the_log() {
    let gh = start("wsgi_broken:app", "workers = 1");
    log_line(&gh, "the import error", |line| {
        line.contains("ImportError: wsgi_broken cannot be imported, as intended")
    })
    .await;
    let answer = get(&client(), &gh.url(0, "/")).await.unwrap();
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.retry_after.is_some());
    let exited = log_line(&gh, "the worker's exit", |line| {
        line.contains("worker exited unexpectedly")
    })
    .await;
    assert!(exited.contains("exit status: 4"), "{exited}");
}

/// Every `what` of `/invalid` in `tests/apps/wsgi_app.py`: a status or header gatehouse could not
/// forward (or, with a CR or LF, one that would smuggle headers of its own).
const INVALID: [&str; 15] = [
    "status-crlf",
    "status-lf",
    "status-nul",
    "status-1xx",
    "status-100",
    "name-space",
    "name-tab",
    "name-colon",
    "name-empty",
    "name-crlf",
    "value-crlf",
    "value-nul",
    "length-negative",
    "length-text",
    "length-plus",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_status_or_header_is_the_apps_500_with_a_traceback() {
    let gh = start("wsgi_app:raw", "workers = 1");
    let pid = wait_ready(&gh, "w", 1).await[0];
    let client = client();
    for what in INVALID {
        let response = client
            .get(gh.url(0, &format!("/invalid?what={what}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 500, "{what}");
        assert!(response.headers().get("x-injected").is_none(), "{what}");
        assert!(response.headers().get("x-worker-pid").is_none(), "{what}");
        assert_eq!(
            response.text().await.unwrap(),
            "Internal Server Error\n",
            "{what}"
        );
    }
    // A ConnectionResetError of the app's own (its database, say) is its error, not a sign that
    // gatehouse went away.
    let reset = get(&client, &gh.url(0, "/app-reset")).await.unwrap();
    assert_eq!(
        (reset.status, reset.body.as_str()),
        (500, "Internal Server Error\n")
    );
    let hello = get(&client, &gh.url(0, "/")).await.unwrap();
    assert_eq!((hello.status, hello.pid), (200, Some(pid)));

    let logs = gh.logs();
    assert_eq!(
        logs.matches("Traceback (most recent call last)").count(),
        INVALID.len() + 1,
        "{logs}"
    );
    for what in INVALID {
        assert!(
            logs.contains(&format!("Error handling request GET /invalid?what={what}")),
            "{what}: {logs}"
        );
    }
    assert!(
        logs.contains("ValueError: a 1xx status is not a response"),
        "{logs}"
    );
    assert!(
        logs.contains("ValueError: invalid Content-Length '-1'"),
        "{logs}"
    );
    assert!(
        logs.contains("ConnectionResetError: the app's own peer reset, as asked"),
        "{logs}"
    );
    assert!(supervisor_lines(&logs, "w", "worker exited").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_request_keeps_the_worker_connection_in_step() {
    // One worker, one thread: every request goes over the same kept-alive worker connection, so
    // a stray body after a HEAD's 500 would be read as the next response.
    let gh = start("wsgi_app:raw", "workers = 1");
    let pid = wait_ready(&gh, "w", 1).await[0];
    let client = client();
    for _ in 0..3 {
        let head = raw_exchange(
            &gh,
            b"HEAD /error HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            true,
        )
        .await;
        assert_eq!(head.status, 500);
        let hello = get(&client, &gh.url(0, "/")).await.unwrap();
        assert_eq!(
            (hello.status, hello.pid, hello.body),
            (200, Some(pid), format!("hello from {pid}\n"))
        );
    }
    // An empty body for HEAD says nothing about GET's length: no `Content-Length: 0`.
    let head = raw_exchange(
        &gh,
        b"HEAD /empty HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        true,
    )
    .await;
    assert_eq!(head.status, 200);
    assert_ne!(head.header("content-length"), Some("0"), "{head:?}");
    let hello = get(&client, &gh.url(0, "/")).await.unwrap();
    assert_eq!((hello.status, hello.pid), (200, Some(pid)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_exit_in_a_pool_thread_is_logged_and_the_worker_replaced() {
    let gh = start("wsgi_app:app", "workers = 1\nconcurrency = 2");
    let mut ready = wait_ready(&gh, "w", 1).await;
    let client = client();
    // More exits than threads: each one ends its worker, which a fresh one replaces (a thread
    // that ended quietly would leave the worker wedged after two).
    for round in 1..=3 {
        let exited = get(&client, &gh.url(0, "/exit")).await;
        assert!(
            exited.as_ref().map_or(true, |answer| answer.status >= 500),
            "{exited:?}"
        );
        wait_gone(&BTreeSet::from([*ready.last().unwrap()]));
        ready = wait_ready(&gh, "w", round + 1).await;
        let hello = get(&client, &gh.url(0, "/")).await.unwrap();
        assert_eq!((hello.status, hello.pid), (200, ready.last().copied()));
    }
    let logs = gh.logs();
    assert_eq!(
        logs.matches("SystemExit: sys.exit() from the app, as asked")
            .count(),
        3,
        "{logs}"
    );
    assert_eq!(
        logs.matches("the app raised SystemExit; exiting").count(),
        3,
        "{logs}"
    );
    assert_eq!(
        supervisor_lines(&logs, "w", "worker exited unexpectedly").len(),
        3,
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_shrinks_under_sendfile_closes_the_worker_connection() {
    let gh = start("wsgi_app:raw", "workers = 1");
    let pid = wait_ready(&gh, "w", 1).await[0];
    let client = client();
    // The head promised 64 KiB, sendfile found 32: the worker closes the connection rather than
    // leave gatehouse waiting for the rest (or reading the next response as it).
    // (Once gatehouse waited for the rest until the request's timeout: a 504.)
    let shrunk = get(&client, &gh.url(0, "/shrinking-file")).await.unwrap();
    assert_eq!(shrunk.status, 502, "{shrunk:?}");
    let hello = get(&client, &gh.url(0, "/")).await.unwrap();
    assert_eq!(
        (hello.status, hello.pid, hello.body),
        (200, Some(pid), format!("hello from {pid}\n"))
    );
}
