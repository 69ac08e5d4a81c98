//! `deploy/container/Containerfile`: a multi-stage build, a non-root user, unbuffered Python and a
//! HEALTHCHECK running `gatehouse health`, which exits 0 while /livez answers and 1 when nothing
//! does. (Building the image needs a registry; this checks the file and the command it runs.)

use gatehouse_tests::admin::Admin;
use gatehouse_tests::{Gatehouse, Sandbox};

use super::read;

/// The instructions (continuation lines joined, comments left out).
fn instructions() -> Vec<String> {
    let text = read("container/Containerfile");
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

#[test]
fn the_containerfile_builds_in_stages_and_runs_gatehouse_as_a_non_root_user() {
    let all = instructions();
    let with =
        |keyword: &str| -> Vec<&String> { all.iter().filter(|i| i.starts_with(keyword)).collect() };
    assert!(with("FROM ").len() >= 2, "multi-stage: {all:?}");
    let user = with("USER ");
    let last_user = user.last().expect("a USER instruction");
    assert!(
        !matches!(
            last_user.trim_start_matches("USER ").split(':').next(),
            Some("root" | "0")
        ),
        "{last_user}"
    );
    assert!(
        with("ENV ")
            .iter()
            .any(|e| e.contains("PYTHONUNBUFFERED=1")),
        "PYTHONUNBUFFERED=1"
    );
    let health = with("HEALTHCHECK ");
    assert!(
        health
            .iter()
            .any(|h| h.contains("\"gatehouse\", \"health\"")),
        "{health:?}"
    );
    assert!(
        with("CMD ")
            .iter()
            .any(|c| c.contains("\"gatehouse\", \"run\"")),
        "gatehouse is the container's process"
    );
}

#[test]
fn gatehouse_health_exits_0_while_livez_answers_and_1_when_it_does_not() {
    let gh = Gatehouse::start(
        "[admin]\nlisten = \"127.0.0.1:0\"\n\n[[listener]]\naddress = \"127.0.0.1:0\"\n\n[[route]]\npath = \"/\"\nrespond = { status = 200 }\n",
    );
    let admin = Admin::of(&gh);
    let sandbox = Sandbox::new();
    let alive = format!(
        "[admin]\nlisten = \"{}\"\n\n[[listener]]\naddress = \"127.0.0.1:0\"\n\n[[route]]\npath = \"/\"\nrespond = {{ status = 200 }}\n",
        admin.addr()
    );
    sandbox.config(&alive);
    let output = sandbox.command(&["health", "-c", "gatehouse.toml"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");

    drop(gh);
    let output = sandbox.command(&["health", "-c", "gatehouse.toml"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
}
