//! `Changes::between`: what a reload must do, and the one-line summary it logs.

use gatehouse_config::{AppChange, Changes};

use crate::ok;

const BASE: &str = r#"
[[listener]]
address = "127.0.0.1:8080"

[[app]]
name = "web"
command = ["app", "{socket}"]
workers = 3

[[app]]
name = "api"
command = ["api", "{socket}"]

[[route]]
path = "/"
app = "web"
"#;

fn changes(edit: impl Fn(&str) -> String) -> Changes {
    Changes::between(&ok(BASE), &ok(&edit(BASE)))
}

#[test]
fn the_same_file_changes_nothing() {
    let changes = changes(str::to_owned);
    assert!(changes.is_empty());
    assert_eq!(changes.summary(), "no changes");
}

#[test]
fn routes_listeners_and_scaling_in_one_line() {
    let changes = changes(|text| {
        text.replace("workers = 3", "workers = 5").replace(
            "[[route]]",
            "[[listener]]\naddress = \"0.0.0.0:8081\"\n\n[[route]]\npath = \"/api\"\napp = \"api\"\n\n[[route]]",
        )
    });
    assert_eq!(
        changes.summary(),
        "route /api added; listener 0.0.0.0:8081 added; app web scaled 3 -> 5"
    );
    assert_eq!(changes.listeners_added.len(), 1);
    assert!(changes.fixed.is_empty());
}

#[test]
fn an_app_change_says_whether_it_needs_new_workers() {
    let changes = changes(|text| {
        text.replace(
            "command = [\"app\", \"{socket}\"]",
            "command = [\"app\", \"{socket}\"]\nenv = { A = \"1\" }\nqueue_size = 7",
        )
    });
    let [AppChange::Changed {
        app,
        workers,
        restart,
        retune,
    }] = changes.apps.as_slice()
    else {
        panic!("{:?}", changes.apps);
    };
    assert_eq!(app.name, "web");
    assert_eq!(*workers, None);
    assert_eq!(restart, &["env"]);
    assert_eq!(retune, &["queue_size"]);
    assert_eq!(
        changes.summary(),
        "app web restarted (env changed); app web queue_size changed"
    );
}

#[test]
fn apps_and_listeners_added_and_removed() {
    let changes = changes(|text| {
        text.replace(
            "name = \"api\"\ncommand = [\"api\"",
            "name = \"jobs\"\ncommand = [\"jobs\"",
        )
        .replace("127.0.0.1:8080", "unix:/tmp/gh.sock")
    });
    assert_eq!(
        changes.summary(),
        "listener unix:/tmp/gh.sock added; listener 127.0.0.1:8080 removed; app jobs added; app api removed"
    );
}

#[test]
fn keys_read_only_at_start_are_named() {
    let changes = changes(|text| {
        format!("[server]\nruntime_dir = \"/tmp/elsewhere\"\n[log]\nlevel = \"debug\"\n{text}")
    });
    assert_eq!(changes.fixed, ["server.runtime_dir"]);
    assert!(changes.log_level, "the log level changes at runtime");
}

#[test]
fn listeners_at_the_same_port_0_address_are_told_apart_by_order() {
    let one = "[[listener]]\naddress = \"127.0.0.1:0\"\n";
    let two = format!(
        "{one}[[listener]]\naddress = \"127.0.0.1:0\"\nredirect_https = \"https://{{host}}\"\n"
    );
    let added = Changes::between(&ok(one), &ok(&two));
    assert_eq!(added.summary(), "listener 127.0.0.1:0 (#2) added");
    assert!(added.listeners_changed.is_empty());
    let removed = Changes::between(&ok(&two), &ok(one));
    assert_eq!(removed.summary(), "listener 127.0.0.1:0 (#2) removed");
}
