//! One request suite, two servers: a Flask app (`tests/apps/flask_site.py`) and a minimal Django
//! project (`tests/apps/django_site/`) under the built-in worker and under Gunicorn (sync), each
//! behind its own gatehouse. Every answer must be the same: status, body, and every header but
//! the few that name the server or the moment (Date, Server, X-Request-Id).
//!
//! Forms, JSON, a multipart upload (small, and past Django's in-memory limit), a streamed
//! response, redirects (relative, and absolute from Host and scheme), cookies both ways, query
//! strings and percent-encoded UTF-8 paths, HEAD, 404 and the framework's own 500 page.

use gatehouse_tests::workers::{client, config, toml_list, venv_program, wait_ready};
use gatehouse_tests::Gatehouse;

use super::wsgi_app;

/// The headers that differ between servers by nature, not by behaviour.
const IGNORED: [&str; 3] = ["date", "server", "x-request-id"];

/// One request of the suite.
struct Probe {
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Probe {
    fn get(path: &str) -> Probe {
        Probe::new("GET", path, Vec::new())
    }

    fn new(method: &'static str, path: &str, body: Vec<u8>) -> Probe {
        Probe {
            method,
            path: path.to_owned(),
            // Both servers see the same Host, so URLs built from it compare equal.
            headers: vec![("host", "example.test".to_owned())],
            body,
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Probe {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// What a client saw: status, headers (minus [`IGNORED`]) by name, body.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

async fn send(client: &reqwest::Client, gh: &Gatehouse, probe: &Probe) -> Seen {
    let method = reqwest::Method::from_bytes(probe.method.as_bytes()).unwrap();
    let mut request = client
        .request(method, gh.url(0, &probe.path))
        .body(probe.body.clone());
    for (name, value) in &probe.headers {
        request = request.header(*name, value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{} {}: {e}", probe.method, probe.path));
    let status = response.status().as_u16();
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| !IGNORED.contains(&name.as_str()))
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), without_expiry_date(&value))
        })
        .collect();
    // The order of different fields means nothing (RFC 9110 5.3); that of one field's values
    // (Set-Cookie) does, and a stable sort keeps it.
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let body = response.text().await.unwrap();
    Seen {
        status,
        headers,
        body,
    }
}

/// A Set-Cookie with `Max-Age` carries an `Expires` computed from the clock when it was answered:
/// the two servers' answers may straddle a second. The date is replaced; `Max-Age` is compared.
fn without_expiry_date(value: &str) -> String {
    value
        .split("; ")
        .map(|attribute| {
            if attribute.to_ascii_lowercase().starts_with("expires=") {
                "Expires=<date>"
            } else {
                attribute
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A multipart/form-data body with one file and one field.
fn multipart(file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "gatehouse-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhéllo\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"data.bin\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The requests both apps answer the same way (their endpoints share names and meaning).
fn suite() -> Vec<Probe> {
    let small: Vec<u8> = (0..1000u32).map(|i| (i % 256) as u8).collect();
    let large: Vec<u8> = (0..300 * 1024u32).map(|i| (i * 7 % 256) as u8).collect();
    let (small_type, small_body) = multipart(&small);
    let (large_type, large_body) = multipart(&large);
    vec![
        Probe::get("/"),
        Probe::get("/json"),
        Probe::new("HEAD", "/", Vec::new()),
        Probe::new("HEAD", "/json", Vec::new()),
        Probe::new(
            "POST",
            "/form",
            b"name=Ada&lang=en&lang=fr&empty=&sym=%26%3D%2B".to_vec(),
        )
        .header("content-type", "application/x-www-form-urlencoded"),
        Probe::new(
            "POST",
            "/json-echo",
            br#"{"a": [1, 2, {"b": null}], "text": "\u00e9t\u00e9"}"#.to_vec(),
        )
        .header("content-type", "application/json"),
        Probe::new("POST", "/upload", small_body).header("content-type", &small_type),
        Probe::new("POST", "/upload", large_body).header("content-type", &large_type),
        Probe::get("/stream"),
        Probe::get("/redirect"),
        Probe::get("/redirect-external"),
        Probe::get("/redirect-external").header("x-forwarded-proto", "https"),
        Probe::get("/cookies/set"),
        Probe::get("/cookies").header("cookie", "flavour=\"oatmeal raisin\"; theme=dark"),
        Probe::get("/request?a=1&a=2&b=%C3%A9t%C3%A9&c=x+y&d=%20"),
        Probe::get("/request")
            .header("x-custom", "one")
            .header("accept", "application/json"),
        Probe::new("PUT", "/request", b"put body".to_vec()).header("content-type", "text/plain"),
        Probe::new("DELETE", "/request", Vec::new()),
        Probe::get("/path/%C3%A9t%C3%A9/a%20b/c"),
        Probe::get("/missing"),
        Probe::get("/no-such-endpoint"),
        Probe::get("/error"),
    ]
}

/// Gunicorn (sync, one worker) serving `target` from `tests/apps`.
fn gunicorn_app(name: &str, target: &str, keys: &str) -> String {
    let command = [
        venv_program("gunicorn").display().to_string(),
        "-w".to_owned(),
        "1".to_owned(),
        "--bind".to_owned(),
        "unix:{socket}".to_owned(),
        "--timeout".to_owned(),
        "10".to_owned(),
        "--no-control-socket".to_owned(),
        target.to_owned(),
    ];
    let directory =
        serde_json::to_string(&gatehouse_tests::python::apps_dir().display().to_string()).unwrap();
    format!(
        "[[app]]\nname = \"{name}\"\ncommand = {}\ndirectory = {directory}\n{keys}\n",
        toml_list(&command)
    )
}

/// Runs the suite against `target` under both servers and compares every answer.
async fn compare(target: &str, keys: &str) {
    let route = "[[route]]\npath = \"/\"\napp = \"w\"\n";
    let builtin = Gatehouse::start(&config(&[wsgi_app("w", target, keys)], route));
    let gunicorn = Gatehouse::start(&config(&[gunicorn_app("w", target, keys)], route));
    wait_ready(&builtin, "w", 1).await;
    wait_ready(&gunicorn, "w", 1).await;
    let client = client();
    let mut compared = 0;
    for probe in suite() {
        let ours = send(&client, &builtin, &probe).await;
        let theirs = send(&client, &gunicorn, &probe).await;
        assert_eq!(
            ours, theirs,
            "{} {}: built-in worker (left) and Gunicorn (right) differ",
            probe.method, probe.path
        );
        compared += 1;
    }
    assert!(compared >= 20, "{compared} requests compared");
    // The suite is not vacuous: the apps answered, with what each endpoint is for.
    let hello = send(&client, &builtin, &Probe::get("/")).await;
    assert_eq!((hello.status, hello.body.as_str()), (200, "Hello, World!"));
    let error = send(&client, &builtin, &Probe::get("/error")).await;
    assert_eq!(error.status, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flask_answers_the_same_under_the_builtin_worker_and_gunicorn() {
    compare("flask_site:app", "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_answers_the_same_under_the_builtin_worker_and_gunicorn() {
    compare(
        "django_site.wsgi:application",
        "env = { DJANGO_SETTINGS_MODULE = \"django_site.settings\" }",
    )
    .await;
}
