//! Validation of `[[route]]`: host, path, exactly one action, names, static roots, duplicates.

use gatehouse_config::model::{Action, HostPattern};

use crate::{error, errors, ok, LISTENER};

/// An app "web" and an upstream "api" (lines 1-8); routes start on line 9.
fn with_targets(routes: &str) -> String {
    format!(
        "{LISTENER}[[app]]\nname = \"web\"\ncommand = [\"x\"]\n[[upstream]]\nname = \"api\"\nservers = [\"a:1\"]\n{routes}"
    )
}

#[test]
fn every_action() {
    let config = ok(&with_targets(
        r#"[[route]]
host = "Example.COM"
path = "/"
app = "web"
[[route]]
host = "*.Example.com"
path = "/api/"
upstream = "api"
strip_prefix = true
[[route]]
path = "/old/"
redirect = "https://{host}/new{uri}"
[[route]]
path = "/ok"
respond = { status = 200, body = "OK" }
[[route]]
path = "/static/"
static = { root = "src", index = ["index.htm", "default.html"], cache_control = "no-cache", precompressed = true, dotfiles = true, fallback = "api" }
"#,
    ));
    let routes = &config.routes;
    assert_eq!(
        routes[0].host,
        Some(HostPattern::Exact("example.com".into()))
    );
    assert_eq!(routes[0].action, Action::Forward("web".into()));
    assert!(!routes[0].strip_prefix);
    assert_eq!(
        routes[1].host,
        Some(HostPattern::Suffix(".example.com".into()))
    );
    assert_eq!(routes[1].action, Action::Forward("api".into()));
    assert!(routes[1].strip_prefix);
    assert_eq!(
        routes[2].action,
        Action::Redirect("https://{host}/new{uri}".into())
    );
    assert_eq!(
        routes[3].action,
        Action::Respond {
            status: 200,
            body: "OK".into()
        }
    );
    let Action::Static(stat) = &routes[4].action else {
        panic!("static route expected");
    };
    assert!(stat.root.is_absolute() && stat.root.ends_with("src"));
    assert_eq!(stat.index, ["index.htm", "default.html"]);
    assert_eq!(stat.cache_control.as_deref(), Some("no-cache"));
    assert!(stat.precompressed && stat.dotfiles);
    assert_eq!(stat.fallback.as_deref(), Some("api"));
}

#[test]
fn path_must_be_present_and_absolute() {
    assert_eq!(
        errors(&with_targets(
            "[[route]]\napp = \"web\"\n[[route]]\npath = \"api/\"\napp = \"web\"\n"
        )),
        [
            "gatehouse.toml:9:1: route[0].path: required key is missing",
            "gatehouse.toml:12:1: route[1].path: must start with '/'",
        ]
    );
}

#[test]
fn exactly_one_action() {
    assert_eq!(
        error(&with_targets("[[route]]\npath = \"/\"\n")),
        "gatehouse.toml:9:1: route[0]: no action: set one of static, app, upstream, redirect, respond"
    );
    assert_eq!(
        errors(&with_targets(
            "[[route]]\npath = \"/\"\napp = \"web\"\nupstream = \"api\"\nrespond = { status = 200 }\n"
        )),
        [
            "gatehouse.toml:12:1: route[0].upstream: a route has exactly one action, and this one already has app",
            "gatehouse.toml:13:1: route[0].respond: a route has exactly one action, and this one already has app",
        ]
    );
}

#[test]
fn forward_targets_must_exist_as_the_right_kind() {
    let text = with_targets(
        "[[route]]\npath = \"/a\"\napp = \"nope\"\n[[route]]\npath = \"/b\"\napp = \"api\"\n[[route]]\npath = \"/c\"\nupstream = \"web\"\n[[route]]\npath = \"/d\"\nupstream = \"nope\"\n",
    );
    assert_eq!(
        errors(&text),
        [
            "gatehouse.toml:11:1: route[0].app: no app named \"nope\"",
            "gatehouse.toml:14:1: route[1].app: \"api\" is an upstream, not an app (write upstream = \"api\")",
            "gatehouse.toml:17:1: route[2].upstream: \"web\" is an app, not an upstream (write app = \"web\")",
            "gatehouse.toml:20:1: route[3].upstream: no upstream named \"nope\"",
        ]
    );
}

#[test]
fn static_roots() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file.txt");
    std::fs::write(&file, "x").unwrap();
    let missing = dir.path().join("missing");
    let text = with_targets(&format!(
        "[[route]]\npath = \"/a/\"\nstatic = {{ root = '{}' }}\n[[route]]\npath = \"/b/\"\nstatic = {{ root = '{}' }}\n[[route]]\npath = \"/c/\"\n[route.static]\nindex = [\"\", \"a/b\"]\nfallback = \"nope\"\n",
        missing.display(),
        file.display()
    ));
    assert_eq!(
        errors(&text),
        [
            "gatehouse.toml:11:12: route[0].static.root: directory does not exist",
            "gatehouse.toml:14:12: route[1].static.root: not a directory",
            "gatehouse.toml:17:8: route[2].static.root: required key is missing",
            "gatehouse.toml:18:10: route[2].static.index[0]: must be a file name (not empty, no '/')",
            "gatehouse.toml:18:14: route[2].static.index[1]: must be a file name (not empty, no '/')",
            "gatehouse.toml:19:1: route[2].static.fallback: no app or upstream named \"nope\"",
        ]
    );
}

#[test]
fn static_root_is_canonical() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("real")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
    let text = format!(
        "{LISTENER}[[route]]\npath = \"/\"\nstatic = {{ root = '{}/./link' }}\n",
        dir.path().display()
    );
    let Action::Static(stat) = &ok(&text).routes[0].action else {
        panic!("static route expected");
    };
    assert_eq!(
        stat.root,
        std::fs::canonicalize(dir.path().join("real")).unwrap()
    );
}

#[test]
fn hosts() {
    let text = format!(
        "{LISTENER}[[route]]\nhost = \"example.com:8080\"\npath = \"/\"\nrespond = {{ status = 200 }}\n[[route]]\nhost = \"a.*.com\"\npath = \"/\"\nrespond = {{ status = 200 }}\n[[route]]\nhost = \"bad host\"\npath = \"/\"\nrespond = {{ status = 200 }}\n"
    );
    assert_eq!(
        errors(&text),
        [
            "gatehouse.toml:4:1: route[0].host: invalid host \"example.com:8080\": routes match the host without its port",
            "gatehouse.toml:8:1: route[1].host: invalid host \"a.*.com\": a wildcard is only allowed as a leading \"*.\"",
            "gatehouse.toml:12:1: route[2].host: invalid host \"bad host\" (expected a name like example.com or *.example.com)",
        ]
    );
}

#[test]
fn respond_and_redirect() {
    let text = format!(
        "{LISTENER}[[route]]\npath = \"/a\"\nrespond = {{ status = 99 }}\n[[route]]\npath = \"/b\"\nrespond = {{ status = 600, body = \"x\" }}\n[[route]]\npath = \"/c\"\nrespond = {{ body = \"x\" }}\n[[route]]\npath = \"/d\"\nredirect = \"\"\n[[route]]\npath = \"/e\"\nredirect = \"https://{{server}}{{uri}}\"\n"
    );
    assert_eq!(
        errors(&text),
        [
            "gatehouse.toml:5:13: route[0].respond.status: must be an HTTP status between 100 and 599",
            "gatehouse.toml:8:13: route[1].respond.status: must be an HTTP status between 100 and 599",
            "gatehouse.toml:11:1: route[2].respond.status: required key is missing",
            "gatehouse.toml:14:1: route[3].redirect: must not be empty",
            "gatehouse.toml:17:1: route[4].redirect: unknown placeholder {server} (known: {host}, {uri})",
        ]
    );
}

#[test]
fn duplicate_host_and_path() {
    let text = format!(
        "{LISTENER}[[route]]\npath = \"/\"\nrespond = {{ status = 200 }}\n[[route]]\nhost = \"a.com\"\npath = \"/\"\nrespond = {{ status = 200 }}\n[[route]]\nhost = \"A.com\"\npath = \"/\"\nrespond = {{ status = 404 }}\n[[route]]\npath = \"/\"\nredirect = \"https://b.com\"\n"
    );
    assert_eq!(
        errors(&text),
        [
            "gatehouse.toml:12:1: route[2].path: duplicate route: route[1] has the same host and path",
            "gatehouse.toml:15:1: route[3].path: duplicate route: route[0] has the same host and path",
        ]
    );
}

#[test]
fn strip_prefix_only_when_forwarding() {
    let text = format!(
        "{LISTENER}[[route]]\npath = \"/\"\nrespond = {{ status = 200 }}\nstrip_prefix = true\n"
    );
    assert_eq!(
        error(&text),
        "gatehouse.toml:6:1: route[0].strip_prefix: applies only to app and upstream routes (static routes always strip their prefix)"
    );
}
