//! Every configuration file shipped in `config/` parses.

use std::path::{Path, PathBuf};

use gatehouse_config::model::{Action, ListenAddress};

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

fn load(path: &Path) -> gatehouse_config::Config {
    match gatehouse_config::load(path) {
        Ok(config) => config,
        Err(err) => panic!("{} does not parse:\n{err}", path.display()),
    }
}

#[test]
fn reference_parses_and_sets_every_section() {
    let config = load(&config_dir().join("reference.toml"));
    assert_eq!(config.listeners.len(), 2);
    assert_eq!(config.apps.len(), 1);
    assert_eq!(config.upstreams.len(), 1);
    assert!(config.apps[0].max_memory.is_some());
    assert!(config.apps[0].health.is_some());
    let actions: Vec<&str> = config
        .routes
        .iter()
        .map(|route| match route.action {
            Action::Static(_) => "static",
            Action::Forward(_) => "forward",
            Action::Redirect(_) => "redirect",
            Action::Respond { .. } => "respond",
        })
        .collect();
    assert_eq!(
        actions,
        ["static", "forward", "forward", "redirect", "respond"]
    );
}

#[test]
fn demo_parses() {
    let config = load(&config_dir().join("demo.toml"));
    assert_eq!(
        config.listeners[0].address,
        ListenAddress::Tcp("127.0.0.1:8000".parse().unwrap())
    );
    assert_eq!(config.admin.listen, Some("127.0.0.1:9180".parse().unwrap()));
    let Action::Static(stat) = &config.routes[0].action else {
        panic!("/static/ is a static route");
    };
    assert!(stat.root.join("index.html").is_file());
    assert!(stat.root.join("style.css").is_file());
    assert!(stat.root.join("hello.txt").is_file());
    assert_eq!(
        config.routes[1].action,
        Action::Respond {
            status: 200,
            body: "hello from gatehouse\n".into()
        }
    );
}

#[test]
fn every_example_parses() {
    let mut count = 0;
    for entry in std::fs::read_dir(config_dir().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            load(&path);
            count += 1;
        }
    }
    assert!(count >= 3, "expected the examples, found {count}");
}
