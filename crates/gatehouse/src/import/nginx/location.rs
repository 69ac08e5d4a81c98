//! One Nginx `server`'s locations → gatehouse routes: `proxy_pass` (app or upstream), `alias` and
//! `root` (static files), `return` (redirect or fixed response). A server's routes are repeated for
//! each of its names, or written once without a host for the default server.

use super::syntax::Directive;
use super::{children, note, Translation, INCLUDE_NOTE};
use crate::import::render::{Entry, Table, Value};

/// A route before its host is known: `path`, then the action and comments.
struct Route {
    path: String,
    entries: Vec<Entry>,
}

pub(super) fn server_routes(t: &mut Translation, server: &Directive, default: bool) {
    let names: Vec<&str> = children(server)
        .filter(|d| d.name == "server_name")
        .flat_map(|d| d.args.iter().map(String::as_str))
        .filter(|n| !n.is_empty() && *n != "_")
        .collect();
    let mut host_comments = Vec::new();
    let hosts: Vec<Option<String>> = if default || names.is_empty() {
        if default && !names.is_empty() {
            host_comments.push(format!(
                "server_name {}: Nginx's default server answers any Host, so no host here.",
                names.join(" ")
            ));
        }
        vec![None]
    } else {
        let mut hosts = Vec::new();
        for name in &names {
            match host_patterns(name) {
                Some(patterns) => hosts.extend(patterns.into_iter().map(Some)),
                None => host_comments.push(format!(
                    "not translated: server_name {name} (only exact names and *.suffix)"
                )),
            }
        }
        if hosts.is_empty() {
            return;
        }
        hosts
    };

    let root = children(server)
        .find(|d| d.name == "root")
        .and_then(|d| d.args.first().cloned());
    let first_name = names.first().map(|n| (*n).to_owned());
    // Named locations that a `try_files ... @name` uses: translated as that route's fallback.
    let fallbacks: Vec<&str> = children(server)
        .filter(|d| d.name == "location")
        .flat_map(children)
        .filter(|d| d.name == "try_files")
        .filter_map(|d| d.args.last().map(String::as_str))
        .filter(|last| last.starts_with('@'))
        .collect();
    let mut routes = Vec::new();
    let mut notes = Vec::new();
    if let Some(ret) = children(server).find(|d| d.name == "return") {
        let mut route = Route {
            path: "/".to_owned(),
            entries: Vec::new(),
        };
        match return_action(ret, first_name.as_deref()) {
            Ok((key, value)) => route.entries.push(Entry::Key(key, value)),
            Err(why) => notes.push(note(t.cx, ret, &why)),
        }
        if route.entries.iter().any(|e| matches!(e, Entry::Key(..))) {
            routes.push(route);
        }
    } else {
        for d in children(server) {
            match d.name.as_str() {
                "location" if d.args.len() == 1 && fallbacks.contains(&d.args[0].as_str()) => {}
                "location" => {
                    let site = ServerSide {
                        server,
                        root: root.as_deref(),
                        name: first_name.as_deref(),
                    };
                    match location(t, d, &site) {
                        Ok(route) => routes.push(route),
                        Err(why) => notes.push(note(t.cx, d, &why)),
                    }
                }
                "include" => notes.push(note(t.cx, d, INCLUDE_NOTE)),
                "listen"
                | "server_name"
                | "root"
                | "ssl_certificate"
                | "ssl_certificate_key"
                | "ssl_protocols"
                | "client_max_body_size"
                | "keepalive_timeout"
                | "http2" => {}
                "add_header"
                    if d.args
                        .first()
                        .is_some_and(|h| h.eq_ignore_ascii_case("strict-transport-security")) => {}
                _ => notes.push(other(t, d)),
            }
        }
        if let Some(root) = &root {
            if !routes.iter().any(|r| r.path == "/") {
                routes.push(Route {
                    path: "/".to_owned(),
                    entries: vec![Entry::Key(
                        "static".to_owned(),
                        Value::Inline(vec![("root".to_owned(), Value::str(root))]),
                    )],
                });
            }
        }
    }

    let mut first = true;
    for host in &hosts {
        for route in &routes {
            let mut table = Table::default();
            if first {
                for comment in host_comments.iter().chain(&notes) {
                    table.comment(comment.clone());
                }
                first = false;
            }
            if let Some(host) = host {
                table.key("host", Value::str(host));
            }
            table.key("path", Value::str(&route.path));
            table.entries.extend(route.entries.iter().cloned());
            t.doc.routes.push(table);
        }
    }
    if first {
        t.doc.trailer.extend(host_comments.into_iter().chain(notes));
    }
}

/// `example.com` → itself; `*.example.com` → itself; `.example.com` → both; else `None`.
fn host_patterns(name: &str) -> Option<Vec<String>> {
    if name.starts_with('~') || name.ends_with(".*") {
        return None;
    }
    if let Some(base) = name.strip_prefix('.') {
        return Some(vec![base.to_owned(), format!("*.{base}")]);
    }
    if name.contains('*') && !name.starts_with("*.") {
        return None;
    }
    Some(vec![name.to_ascii_lowercase()])
}

/// What a location inherits from its server.
struct ServerSide<'s> {
    server: &'s Directive,
    root: Option<&'s str>,
    name: Option<&'s str>,
}

/// One location as a route, or why it cannot be one.
fn location(t: &mut Translation, d: &Directive, site: &ServerSide) -> Result<Route, String> {
    let server_root = site.root;
    let server_name = site.name;
    let (modifier, path) = match d.args.as_slice() {
        [path] => ("", path.as_str()),
        [modifier, path] => (modifier.as_str(), path.as_str()),
        _ => return Err("not translated: unexpected arguments".to_owned()),
    };
    let mut entries = Vec::new();
    let exact = modifier == "=";
    match modifier {
        "" | "^~" => {}
        "=" if path == "/" => {
            return Err(
                "not translated: exact location = / would match every path (gatehouse routes are \
                 path prefixes)"
                    .to_owned(),
            )
        }
        "=" => entries.push(Entry::Comment(
            "Nginx matched this path exactly; gatehouse matches it as a prefix (on a segment boundary)."
                .to_owned(),
        )),
        _ => return Err("not translated: regular-expression and named locations have no equivalent (routes are path prefixes)".to_owned()),
    }
    if !path.starts_with('/') {
        return Err("not translated: the path does not start with '/'".to_owned());
    }
    let mut action: Option<(String, Value)> = None;
    let mut files: Vec<(String, Value)> = Vec::new();
    let mut root: Option<String> = None;
    let mut timeouts: Vec<(&str, u64)> = Vec::new();
    let mut strip = false;
    let mut try_files: Option<&Directive> = None;
    for inner in children(d) {
        let args = &inner.args;
        match (inner.name.as_str(), args.first().map(String::as_str)) {
            ("proxy_pass", Some(url)) => match proxy(t, url, path) {
                Ok((key, value, strip_prefix)) => {
                    action = Some((key, value));
                    strip = strip_prefix;
                }
                Err(why) => entries.push(Entry::Comment(note(t.cx, inner, &why))),
            },
            ("alias", Some(dir)) => root = Some(dir.to_owned()),
            // Nginx appends the whole URI to `root`; gatehouse strips the route prefix.
            ("root", Some(dir)) => root = Some(format!("{}{path}", dir.trim_end_matches('/'))),
            ("index", Some(_)) => files.push((
                "index".to_owned(),
                Value::Array(args.iter().map(Value::str).collect()),
            )),
            ("expires", Some(time)) => match super::seconds(time) {
                Some(secs) => files.push((
                    "cache_control".to_owned(),
                    Value::Str(format!("max-age={secs}")),
                )),
                None => entries.push(Entry::Comment(note(t.cx, inner, "not translated"))),
            },
            ("add_header", Some(name)) if name.eq_ignore_ascii_case("cache-control") => {
                if let Some(value) = args.get(1) {
                    files.push(("cache_control".to_owned(), Value::str(value)));
                }
            }
            ("gzip_static", Some("on")) => {
                files.push(("precompressed".to_owned(), Value::Bool(true)))
            }
            ("return", Some(_)) => match return_action(inner, server_name) {
                Ok(found) => action = Some(found),
                Err(why) => entries.push(Entry::Comment(note(t.cx, inner, &why))),
            },
            ("proxy_read_timeout", Some(time)) | ("proxy_connect_timeout", Some(time)) => {
                match super::seconds(time) {
                    Some(secs) => timeouts.push((
                        if inner.name == "proxy_read_timeout" {
                            "timeout"
                        } else {
                            "connect_timeout"
                        },
                        secs,
                    )),
                    None => entries.push(Entry::Comment(note(t.cx, inner, "not translated"))),
                }
            }
            ("try_files", Some(_)) => try_files = Some(inner),
            ("client_max_body_size", _) => entries.push(Entry::Comment(note(
                t.cx,
                inner,
                "gatehouse has one body limit: see [limits] max_body_size",
            ))),
            _ => entries.push(Entry::Comment(other(t, inner))),
        }
    }
    if action.is_none() {
        if let Some(dir) =
            root.or_else(|| server_root.map(|r| format!("{}{path}", r.trim_end_matches('/'))))
        {
            if exact {
                return Err(format!(
                    "not translated: an exact location serving one file ({dir}); gatehouse's \
                     static roots are directories: serve it from a static route for its \
                     directory or from the app"
                ));
            }
            let mut table = vec![("root".to_owned(), Value::Str(dir))];
            table.append(&mut files);
            if let Some(inner) = try_files.take() {
                match fallback(t, inner, site.server, path) {
                    Ok(Some((name, mut notes))) => {
                        table.push(("fallback".to_owned(), Value::Str(name)));
                        entries.append(&mut notes);
                    }
                    Ok(None) => {}
                    Err(why) => entries.push(Entry::Comment(note(t.cx, inner, &why))),
                }
            }
            action = Some(("static".to_owned(), Value::Inline(table)));
        } else if let Some(inner) = try_files.take() {
            return Err(format!(
                "not translated: `{}` without a root (Nginx's default root has no equivalent)",
                inner.text()
            ));
        }
    }
    if let Some(inner) = try_files {
        entries.push(Entry::Comment(note(
            t.cx,
            inner,
            "not translated: try_files only becomes a static route's fallback",
        )));
    }
    for (key, _) in &files {
        entries.push(Entry::Comment(format!(
            "not translated: {key} only applies to static files"
        )));
    }
    let Some((key, value)) = action else {
        return Err("not translated: no proxy_pass, alias, root or return".to_owned());
    };
    if let Value::Str(upstream) = &value {
        if key == "upstream" {
            for (name, secs) in &timeouts {
                if let Some(table) = t
                    .doc
                    .upstreams
                    .iter_mut()
                    .find(|u| u.value("name") == Some(&Value::str(upstream)))
                {
                    table.set(name, Value::Str(format!("{secs}s")));
                }
            }
        } else if !timeouts.is_empty() {
            entries.push(Entry::Comment(
                "proxy timeouts to Gunicorn: the app's `timeout` is its request deadline."
                    .to_owned(),
            ));
        }
    }
    // The action first, then what the location held that it does not say.
    let mut keys = vec![Entry::Key(key, value)];
    if strip {
        keys.push(Entry::Key("strip_prefix".to_owned(), Value::Bool(true)));
    }
    keys.extend(entries);
    Ok(Route {
        path: path.to_owned(),
        entries: keys,
    })
}

/// `try_files $uri [$uri/] @name|=404` → the app or upstream that `location @name` proxies to
/// (gatehouse's static `fallback`, with comments on the named location's other directives), or
/// `None` for `=404` (a static route's own answer); else why not.
fn fallback(
    t: &mut Translation,
    d: &Directive,
    server: &Directive,
    path: &str,
) -> Result<Option<(String, Vec<Entry>)>, String> {
    let Some((last, tried)) = d.args.split_last() else {
        return Err("not translated".to_owned());
    };
    if let Some(other) = tried
        .iter()
        .find(|a| !matches!(a.as_str(), "$uri" | "$uri/"))
    {
        return Err(format!(
            "not translated: gatehouse's static route tries the file and the directory's index \
             only ($uri, $uri/), not {other}"
        ));
    }
    if last == "=404" {
        return Ok(None);
    }
    if !last.starts_with('@') {
        return Err(format!(
            "not translated: the fallback {last} (only a named location that proxies, or =404)"
        ));
    }
    let Some(named) =
        children(server).find(|l| l.name == "location" && l.args.len() == 1 && &l.args[0] == last)
    else {
        return Err(format!("not translated: no location {last} in this server"));
    };
    let Some(url) = children(named)
        .find(|i| i.name == "proxy_pass")
        .and_then(|i| i.args.first())
    else {
        return Err(format!(
            "not translated: location {last} does not proxy_pass to the app or an upstream"
        ));
    };
    match proxy(t, url, path) {
        Ok((_, Value::Str(name), false)) => {
            let mut notes = vec![Entry::Comment(format!(
                "{}: fallback = {name:?} answers when no file exists, as `location {last}` did.",
                d.text()
            ))];
            for inner in children(named).filter(|i| i.name != "proxy_pass") {
                notes.push(Entry::Comment(other(t, inner)));
            }
            Ok(Some((name, notes)))
        }
        Ok(_) => Err(format!(
            "not translated: location {last} changes the path it proxies"
        )),
        Err(why) => Err(format!("location {last}: {why}")),
    }
}

/// `proxy_pass URL` → (`app` | `upstream`, name, strip_prefix).
fn proxy(t: &mut Translation, url: &str, path: &str) -> Result<(String, Value, bool), String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err("not translated: gatehouse forwards over plain HTTP only".to_owned());
    };
    if rest.contains('$') {
        return Err("not translated: variables in proxy_pass".to_owned());
    }
    let (target, uri) = if let Some(socket) = rest.strip_prefix("unix:") {
        match socket.split_once(':') {
            Some((p, uri)) => (format!("unix:{p}"), Some(uri)),
            None => (format!("unix:{socket}"), None),
        }
    } else {
        match rest.find('/') {
            Some(at) => (rest[..at].to_owned(), Some(&rest[at..])),
            None => (rest.to_owned(), None),
        }
    };
    let strip = match uri {
        None => false,
        Some(uri) if uri == path => false,
        Some("/") if path.ends_with('/') => true,
        Some(uri) => {
            return Err(format!(
                "not translated: proxy_pass replaces {path} with {uri}; gatehouse can keep the path or strip the route prefix"
            ))
        }
    };
    Ok(match t.upstream(&target) {
        None => ("app".to_owned(), Value::str(t.cx.app), strip),
        Some(name) => ("upstream".to_owned(), Value::Str(name), strip),
    })
}

/// `return CODE [URL|TEXT]` → `redirect` or `respond`.
fn return_action(d: &Directive, server_name: Option<&str>) -> Result<(String, Value), String> {
    let code: Option<u16> = d.args.first().and_then(|c| c.parse().ok());
    match (code, d.args.get(1)) {
        (Some(301 | 308), Some(url)) => {
            let mut out = url
                .replace("$request_uri", "{uri}")
                .replace("$host", "{host}");
            if let Some(name) = server_name {
                out = out.replace("$server_name", name);
            }
            if out.contains('$') {
                return Err(
                    "not translated: variables other than $host, $request_uri, $server_name"
                        .to_owned(),
                );
            }
            Ok(("redirect".to_owned(), Value::Str(out)))
        }
        (Some(code @ (300..=399)), _) => Err(format!(
            "not translated: gatehouse redirects are permanent (301/308), this is {code}"
        )),
        (Some(code @ 100..=599), body) => {
            let mut table = vec![("status".to_owned(), Value::Int(i64::from(code)))];
            if let Some(body) = body {
                if body.contains('$') {
                    return Err("not translated: variables in the response body".to_owned());
                }
                table.push(("body".to_owned(), Value::str(body)));
            }
            Ok(("respond".to_owned(), Value::Inline(table)))
        }
        _ => Err("not translated".to_owned()),
    }
}

/// What to say about any other directive.
fn other(t: &Translation, d: &Directive) -> String {
    let header = d.args.first().map(|h| h.to_ascii_lowercase());
    let what = match (d.name.as_str(), header.as_deref()) {
        ("proxy_set_header", Some("host")) => "gatehouse forwards the client's Host",
        ("proxy_set_header", Some("x-forwarded-for")) => {
            "gatehouse sets it itself ([server] trusted_proxies decides whose X-Forwarded-For is extended)"
        }
        ("proxy_set_header", Some("x-forwarded-proto" | "x-forwarded-host" | "x-request-id")) => {
            "gatehouse sets it itself"
        }
        ("proxy_set_header", Some("x-real-ip")) => {
            "gatehouse sets it itself (the client address, after [server] trusted_proxies)"
        }
        ("proxy_http_version", _) => "gatehouse speaks HTTP/1.1 to apps and upstreams",
        ("proxy_redirect", Some("off")) => "gatehouse does not rewrite Location headers either",
        ("proxy_buffering", _) | ("proxy_request_buffering", _) => {
            "not translated: see `buffering` on [[app]] (on by default for sync workers)"
        }
        ("access_log" | "error_log", _) => "not translated: gatehouse has one access log ([log] access_log)",
        ("gzip", _) => "not translated: gatehouse does not compress; it serves precompressed files (precompressed = true)",
        ("location", _) => "not translated: nested location",
        ("include", _) => INCLUDE_NOTE,
        _ => "not translated",
    };
    note(t.cx, d, what)
}
