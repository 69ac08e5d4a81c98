//! `gatehouse serve MODULE:APP`: the built-in worker and static files without a config file,
//! with Gunicorn's flag names.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use gatehouse_tests::gatehouse::binary;
use gatehouse_tests::output::Lines;
use gatehouse_tests::python::{apps_dir, python};
use gatehouse_tests::workers::{client, get, wait_gone, Answer};
use gatehouse_tests::Sandbox;

/// A running `gatehouse serve`; dropping it kills the process.
struct Serve {
    child: Child,
    stderr: Lines,
    addr: SocketAddr,
}

impl Serve {
    fn start(sandbox: &Sandbox, args: &[&str]) -> Serve {
        let mut child = Command::new(binary())
            .arg("serve")
            .args(args)
            .current_dir(sandbox.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gatehouse serve");
        let stderr = Lines::capture(child.stderr.take().expect("piped stderr"));
        let line = stderr.wait_for_match("a `listening on` line", |line| {
            line.contains("listening on ") && !line.contains("admin")
        });
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("an address in {line:?}"));
        Serve {
            child,
            stderr,
            addr,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn get(&self, path: &str) -> Answer {
        get(&client(), &self.url(path)).await.unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- gatehouse serve stderr ---\n{}", self.stderr.text());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_a_wsgi_app_and_static_files_without_a_config_file() {
    let sandbox = Sandbox::new();
    sandbox.write("www/hello.txt", "static hello\n");
    let apps = apps_dir().display().to_string();
    let python = python().display().to_string();
    let serve = Serve::start(
        &sandbox,
        &[
            "wsgi_app:app",
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--threads",
            "2",
            "--timeout",
            "1",
            "--max-requests",
            "1000",
            "--static",
            "/static/=www",
            "--chdir",
            &apps,
            "--python",
            &python,
            "-e",
            "SERVE_TEST=from-env",
        ],
    );
    gatehouse_tests::wait_until("two ready workers", || {
        serve.stderr.text().matches("worker ready").count() >= 2
    });

    let hello = serve.get("/").await;
    assert_eq!(hello.status, 200);
    assert!(hello.body.starts_with("hello from "), "{hello:?}");
    let file = serve.get("/static/hello.txt").await;
    assert_eq!((file.status, file.body.as_str()), (200, "static hello\n"));
    let environ: serde_json::Value =
        serde_json::from_str(&serve.get("/environ").await.body).unwrap();
    assert_eq!(environ["wsgi.multithread"], true, "--threads 2");
    assert_eq!(environ["wsgi.multiprocess"], true, "--workers 2");
    let timed_out = serve.get("/hang").await;
    assert_eq!(timed_out.status, 504, "--timeout 1: {timed_out:?}");
    serve
        .stderr
        .wait_for_match("the stack of the stuck worker", |line| {
            line.contains("in hang_forever")
        });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stops_on_term_and_removes_its_directory() {
    let sandbox = Sandbox::new();
    let apps = apps_dir().display().to_string();
    let python = python().display().to_string();
    let mut serve = Serve::start(
        &sandbox,
        &[
            "wsgi_app:app",
            "-b",
            "127.0.0.1:0",
            "--chdir",
            &apps,
            "--python",
            &python,
        ],
    );
    serve
        .stderr
        .wait_for_match("a ready worker", |line| line.contains("worker ready"));
    assert_eq!(serve.get("/").await.status, 200);
    let home = std::env::temp_dir().join(format!("gatehouse-serve-{}", serve.child.id()));
    assert!(home.join("gatehouse.toml").is_file(), "{}", home.display());
    let workers: std::collections::BTreeSet<u32> =
        gatehouse_tests::workers::children(serve.child.id());

    let status = Command::new("kill")
        .args(["-TERM", &serve.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = serve.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    wait_gone(&workers);
    assert!(!home.exists(), "{} is removed", home.display());
}

#[test]
fn print_config_shows_the_toml_the_flags_make() {
    let sandbox = Sandbox::new();
    let output = sandbox.command(&[
        "serve",
        "site.wsgi:application",
        "-w",
        "3",
        "--threads",
        "8",
        "--print-config",
    ]);
    assert!(output.status.success(), "{output:?}");
    let toml = String::from_utf8(output.stdout).unwrap();
    for line in [
        "wsgi = \"site.wsgi:application\"",
        "workers = 3",
        "concurrency = 8",
        "address = \"127.0.0.1:8000\"",
    ] {
        assert!(toml.contains(line), "{line} in:\n{toml}");
    }
    let bad = sandbox.command(&["serve", "app:app", "--static", "nodir"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("PREFIX=DIR"));
}
