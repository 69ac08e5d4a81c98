//! The bundled demo (`config/demo.toml`): a stdlib WSGI app under the built-in worker and static
//! files, run as the README says, with nothing but `python3` from PATH.

use std::path::{Path, PathBuf};

use gatehouse_tests::workers::{client, get, wait_ready};
use gatehouse_tests::Sandbox;

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "__pycache__" {
                copy_tree(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_its_wsgi_app_and_static_files() {
    let sandbox = Sandbox::new();
    copy_tree(&config_dir().join("demo"), &sandbox.join("demo"));
    let demo = std::fs::read_to_string(config_dir().join("demo.toml")).unwrap();
    assert!(
        demo.contains("wsgi = \"app:app\""),
        "the demo uses the built-in worker"
    );
    // Port 0, no admin port, and sockets of its own: tests run in parallel.
    let toml = format!("[server]\nruntime_dir = \"{{dir}}/run\"\n\n{demo}")
        .replace("127.0.0.1:8000", "127.0.0.1:0")
        .replace("listen = \"127.0.0.1:9180\"", "listen = \"off\"");
    let gh = sandbox.start(&toml);
    wait_ready(&gh, "demo", 2).await;
    let client = client();

    let page = get(&client, &gh.url(0, "/")).await.unwrap();
    assert_eq!(page.status, 200);
    assert!(page.body.contains("built-in worker"), "{}", page.body);
    let api = get(&client, &gh.url(0, "/api?x=1")).await.unwrap();
    let api: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(api["client"], "127.0.0.1");
    assert_eq!(api["query"], "x=1");
    let posted = client
        .post(gh.url(0, "/form"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=Ada+%3Cb%3E")
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    assert!(posted
        .text()
        .await
        .unwrap()
        .contains("Hello, Ada &lt;b&gt;!"));

    let css = get(&client, &gh.url(0, "/static/style.css")).await.unwrap();
    let expected = std::fs::read_to_string(config_dir().join("demo/static/style.css")).unwrap();
    assert_eq!((css.status, css.body), (200, expected));
    let fixed = get(&client, &gh.url(0, "/gatehouse")).await.unwrap();
    assert_eq!(fixed.body, "hello from gatehouse\n");
}
