//! Nginx site config → gatehouse listeners, routes, upstreams and limits.
//!
//! Servers become routes: the default server of the first listen answers any Host in Nginx, so its
//! routes get no `host`; every other server's routes get its `server_name`s. Each `listen` becomes
//! one listener (TLS with the `ssl_certificate`s of the servers on it). A `proxy_pass` to the
//! address Gunicorn was bound to becomes a route to the app; other targets become upstreams.
//! `location.rs` translates one location; everything not translated is left as a comment.

mod location;
mod syntax;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, Result};

use super::gunicorn::{split_host_port, Binds};
use super::render::{Document, Entry, Table, Value};
use syntax::Directive;

/// What the translation needs besides the file.
pub struct Context<'a> {
    /// How to call the file in comments (its name).
    pub file: &'a str,
    /// Where Gunicorn listened: a proxy_pass there means the app.
    pub binds: &'a Binds,
    /// The app's name in the output.
    pub app: &'a str,
}

/// Parses and translates an Nginx config into `doc`.
pub fn translate(text: &str, cx: &Context, doc: &mut Document) -> Result<()> {
    let directives = syntax::parse(text).with_context(|| cx.file.to_owned())?;
    let mut site = Site::default();
    collect(&directives, cx, &mut site);
    Translation {
        cx,
        site: &site,
        doc,
        upstream_names: BTreeMap::new(),
        referenced: BTreeSet::new(),
        app_used: false,
    }
    .run();
    Ok(())
}

/// The parts of the file the translation reads, gathered from `http` or top level.
#[derive(Default)]
struct Site<'d> {
    servers: Vec<&'d Directive>,
    upstreams: Vec<&'d Directive>,
    /// http-level directives that servers inherit.
    http: Vec<&'d Directive>,
    notes: Vec<String>,
}

fn collect<'d>(directives: &'d [Directive], cx: &Context, site: &mut Site<'d>) {
    for d in directives {
        match (d.name.as_str(), &d.block) {
            ("http", Some(inner)) => collect(inner, cx, site),
            ("server", Some(_)) => site.servers.push(d),
            ("upstream", Some(_)) => site.upstreams.push(d),
            ("events", Some(_))
            | ("user" | "worker_processes" | "pid" | "worker_rlimit_nofile", None) => {
                site.notes.push(note(
                    cx,
                    d,
                    "an Nginx process setting; gatehouse needs none",
                ))
            }
            (
                "client_max_body_size"
                | "keepalive_timeout"
                | "ssl_certificate"
                | "ssl_certificate_key"
                | "ssl_protocols",
                None,
            ) => site.http.push(d),
            ("include", None) => site.notes.push(note(cx, d, INCLUDE_NOTE)),
            _ => site.notes.push(note(cx, d, "not translated")),
        }
    }
}

/// What an `include` gets, wherever it is.
const INCLUDE_NOTE: &str =
    "not followed: run gatehouse import on the included file's server blocks too";

/// `nginx: DIRECTIVE (FILE:LINE): what happened`.
fn note(cx: &Context, d: &Directive, what: &str) -> String {
    format!("nginx `{}` ({}:{}): {what}", d.text(), cx.file, d.line)
}

struct Translation<'a, 'd> {
    cx: &'a Context<'a>,
    site: &'a Site<'d>,
    doc: &'a mut Document,
    /// Nginx upstream name (or proxy_pass address) → gatehouse upstream name.
    upstream_names: BTreeMap<String, String>,
    /// Nginx upstream blocks some proxy_pass named.
    referenced: BTreeSet<String>,
    app_used: bool,
}

/// One `listen` of a server.
struct Listen {
    address: String,
    ssl: bool,
    default: bool,
}

impl Translation<'_, '_> {
    fn run(mut self) {
        self.doc.trailer.extend(self.site.notes.iter().cloned());
        self.limits();
        let listens: Vec<Vec<Listen>> = self
            .site
            .servers
            .iter()
            .map(|server| self.listens(server))
            .collect();
        let addresses = self.listeners(&listens);
        let default = self.default_server(&listens, &addresses);
        let mut served: Vec<Vec<&str>> = Vec::new();
        for (i, server) in self.site.servers.iter().enumerate() {
            let redirected = self
                .doc
                .listeners
                .iter()
                .any(|l| l.value("redirect_https").is_some())
                && listens[i].iter().all(|l| {
                    self.doc.listeners.iter().any(|t| {
                        t.value("address") == Some(&Value::str(&l.address))
                            && t.value("redirect_https").is_some()
                    })
                });
            if redirected {
                continue;
            }
            let mut on: Vec<&str> = listens[i].iter().map(|l| l.address.as_str()).collect();
            on.sort_unstable();
            on.dedup();
            served.push(on);
            location::server_routes(&mut self, server, Some(i) == default);
        }
        if served.windows(2).any(|w| w[0] != w[1]) {
            let mut all: Vec<&str> = served.iter().flatten().copied().collect();
            all.sort_unstable();
            all.dedup();
            let comment = format!(
                "Nginx servers on different listeners ({}) are merged here: gatehouse routes are \
                 not tied to\n\
                 listeners, so every listener serves every route below.",
                all.join(", ")
            );
            match self.doc.routes.first_mut() {
                Some(route) => route.entries.insert(0, Entry::Comment(comment)),
                None => self.doc.trailer.push(comment),
            }
        }
        for block in &self.site.upstreams {
            let name = block.args.first().map(String::as_str).unwrap_or_default();
            if !self.referenced.contains(name) {
                self.doc.trailer.push(note(
                    self.cx,
                    block,
                    "not translated: no proxy_pass uses this upstream",
                ));
            }
        }
        if !self.app_used {
            self.doc.trailer.push(format!(
                "No Nginx location proxied to Gunicorn's bind {:?}: add a [[route]] with app = \"{}\".",
                self.cx.binds.0, self.cx.app
            ));
        }
    }

    /// `[limits]` from client_max_body_size (the largest, Nginx's 1m by default) and
    /// keepalive_timeout.
    fn limits(&mut self) {
        let mut all: Vec<&Directive> = self.site.http.clone();
        for server in &self.site.servers {
            walk(server, &mut |d| all.push(d));
        }
        let mut largest: Option<u64> = None;
        let mut unlimited = false;
        for d in all.iter().filter(|d| d.name == "client_max_body_size") {
            match d.args.first().and_then(|a| size(a)) {
                Some(0) => unlimited = true,
                Some(n) => largest = Some(largest.map_or(n, |l| l.max(n))),
                None => {
                    self.doc
                        .trailer
                        .push(note(self.cx, d, "not translated: size not understood"))
                }
            }
        }
        if unlimited {
            self.doc.limits.comment(
                "client_max_body_size 0 (no limit) has no equivalent: gatehouse's default is 10MiB.",
            );
        } else if let Some(bytes) = largest {
            self.doc.limits.comment(
                "From Nginx's client_max_body_size (the largest, as gatehouse has one limit).",
            );
            self.doc.limits.key("max_body_size", size_value(bytes));
        } else {
            self.doc
                .limits
                .comment("Nginx's default client_max_body_size.");
            self.doc.limits.key("max_body_size", Value::str("1MiB"));
        }
        if let Some(d) = all.iter().find(|d| d.name == "keepalive_timeout") {
            match d.args.first().and_then(|a| seconds(a)) {
                Some(secs) => self
                    .doc
                    .limits
                    .set("keepalive_timeout", Value::Str(format!("{secs}s"))),
                None => self.doc.trailer.push(note(self.cx, d, "not translated")),
            }
        }
    }

    fn listens(&mut self, server: &Directive) -> Vec<Listen> {
        let mut listens = Vec::new();
        for d in children(server).filter(|d| d.name == "listen") {
            let Some(first) = d.args.first() else {
                continue;
            };
            let mut listen = Listen {
                address: listen_address(first),
                ssl: false,
                default: false,
            };
            for param in &d.args[1..] {
                match param.as_str() {
                    "ssl" => listen.ssl = true,
                    "default_server" | "default" => listen.default = true,
                    "http2" => {}
                    other => self.doc.trailer.push(note(
                        self.cx,
                        d,
                        &format!("listen parameter {other:?} not translated"),
                    )),
                }
            }
            listens.push(listen);
        }
        if listens.is_empty() {
            // Nginx's default when a server has no listen (as root).
            listens.push(Listen {
                address: "0.0.0.0:80".to_owned(),
                ssl: false,
                default: false,
            });
        }
        listens
    }

    /// One `[[listener]]` per distinct address; returns the addresses in order.
    fn listeners(&mut self, listens: &[Vec<Listen>]) -> Vec<String> {
        let mut addresses: Vec<String> = Vec::new();
        for server_listens in listens {
            for l in server_listens {
                if !addresses.contains(&l.address) {
                    addresses.push(l.address.clone());
                }
            }
        }
        for address in &addresses {
            let mut table = Table::default();
            table.key("address", Value::str(address));
            let on_it: Vec<usize> = (0..listens.len())
                .filter(|i| listens[*i].iter().any(|l| &l.address == address))
                .collect();
            let ssl = on_it
                .iter()
                .any(|i| listens[*i].iter().any(|l| &l.address == address && l.ssl));
            if ssl {
                self.tls(&on_it, &mut table);
            } else if let Some(target) = self.https_redirect(&on_it) {
                table.comment("Every server on this port only redirected to HTTPS.");
                table.key("redirect_https", Value::Str(target));
            }
            self.doc.listeners.push(table);
        }
        addresses
    }

    /// `[listener.tls]` from the certificates of the servers on one TLS listener.
    fn tls(&mut self, servers: &[usize], table: &mut Table) {
        let mut certificates = Vec::new();
        let mut hsts = None;
        // The lowest TLS version any server on the listener accepts: 2 (1.2) or 3 (1.3).
        let mut min_version: Option<u8> = None;
        let mut comments = Vec::new();
        for i in servers {
            let server = self.site.servers[*i];
            let cert = self.inherited(server, "ssl_certificate");
            let key = self.inherited(server, "ssl_certificate_key");
            if let (Some(cert), Some(key)) = (cert, key) {
                certificates.push(Value::Inline(vec![
                    ("cert".to_owned(), Value::str(cert)),
                    ("key".to_owned(), Value::str(key)),
                ]));
            } else {
                comments.push(note(
                    self.cx,
                    server,
                    "listens with ssl but has no ssl_certificate and ssl_certificate_key: add its \
                     { cert, key } to certificates below",
                ));
            }
            for d in children(server) {
                if d.name == "add_header"
                    && d.args
                        .first()
                        .is_some_and(|h| h.eq_ignore_ascii_case("strict-transport-security"))
                {
                    hsts = d.args.get(1).cloned();
                }
            }
            let protocols = self
                .inherited_args(server, "ssl_protocols")
                .unwrap_or_default();
            let lowest = if protocols.iter().any(|p| p == "TLSv1.2") {
                Some(2)
            } else if protocols.iter().any(|p| p == "TLSv1.3") {
                Some(3)
            } else {
                None
            };
            if let Some(lowest) = lowest {
                min_version = Some(min_version.map_or(lowest, |v: u8| v.min(lowest)));
            }
            let old: Vec<&str> = protocols
                .iter()
                .map(String::as_str)
                .filter(|p| !matches!(*p, "TLSv1.2" | "TLSv1.3"))
                .collect();
            if !old.is_empty() {
                comments.push(format!(
                    "ssl_protocols {} (server at {}:{}): not translated: {}; gatehouse accepts \
                     TLS 1.2 and 1.3 only.",
                    protocols.join(" "),
                    self.cx.file,
                    server.line,
                    old.join(", ")
                ));
            }
        }
        let mut tls = vec![("certificates".to_owned(), Value::Array(certificates))];
        if let Some(version) = min_version {
            tls.push((
                "min_version".to_owned(),
                Value::str(if version == 2 { "1.2" } else { "1.3" }),
            ));
        }
        if let Some(hsts) = hsts {
            tls.push(("hsts".to_owned(), Value::Str(hsts)));
        }
        table.comment(
            "From ssl_certificate / ssl_certificate_key (SNI picks by the certificates' names).",
        );
        for comment in comments {
            table.comment(comment);
        }
        table.key("tls", Value::Inline(tls));
    }

    /// `Some("https://{host}[:port]")` (or a literal host) when every server on a plain listener
    /// is only a `return 301 https://$host$request_uri` (or `https://HOST$request_uri`).
    fn https_redirect(&self, servers: &[usize]) -> Option<String> {
        let mut target = None;
        for i in servers {
            let server = self.site.servers[*i];
            let ret = children(server).find(|d| d.name == "return")?;
            let only = children(server).all(|d| {
                matches!(
                    d.name.as_str(),
                    "listen" | "server_name" | "return" | "access_log"
                )
            });
            if !only || !matches!(ret.args.first().map(String::as_str), Some("301" | "308")) {
                return None;
            }
            let this = redirect_target(ret.args.get(1)?)?;
            if target.as_ref().is_some_and(|t| t != &this) {
                return None;
            }
            target = Some(this);
        }
        target
    }

    /// The server answering unknown hosts: the `default_server` of the first address, else the
    /// first server listening on it.
    fn default_server(&self, listens: &[Vec<Listen>], addresses: &[String]) -> Option<usize> {
        let first = addresses.first()?;
        let on_first: Vec<usize> = (0..listens.len())
            .filter(|i| listens[*i].iter().any(|l| &l.address == first))
            .collect();
        on_first
            .iter()
            .copied()
            .find(|i| listens[*i].iter().any(|l| &l.address == first && l.default))
            .or_else(|| on_first.first().copied())
    }

    /// The first argument of `name` in the server, else at http level.
    fn inherited(&self, server: &Directive, name: &str) -> Option<String> {
        self.inherited_args(server, name)?.first().cloned()
    }

    fn inherited_args(&self, server: &Directive, name: &str) -> Option<Vec<String>> {
        children(server)
            .find(|d| d.name == name)
            .or_else(|| self.site.http.iter().copied().find(|d| d.name == name))
            .map(|d| d.args.clone())
    }

    /// Comments on an upstream block's directives other than `server`.
    fn block_notes(&self, block: &Directive) -> Vec<String> {
        children(block)
            .filter(|d| d.name != "server")
            .map(|d| {
                let what = match d.name.as_str() {
                    "keepalive" | "keepalive_timeout" | "keepalive_requests" => {
                        "gatehouse keeps its own pool of idle connections to each server (and \
                         one socket per app worker)"
                    }
                    "least_conn" => {
                        "gatehouse already sends each request to the server (or app worker) with \
                         the fewest outstanding"
                    }
                    "ip_hash" | "hash" | "sticky" => {
                        "not translated: gatehouse has no sticky balancing; requests go to the \
                         least loaded server"
                    }
                    _ => "not translated",
                };
                note(self.cx, d, what)
            })
            .collect()
    }

    /// The gatehouse upstream for an Nginx upstream block or a proxy_pass address, created on
    /// first use; `None` when it is Gunicorn (the app).
    fn upstream(&mut self, target: &str) -> Option<String> {
        let block = self
            .site
            .upstreams
            .iter()
            .find(|u| u.args.first().map(String::as_str) == Some(target))
            .copied();
        // The block's own directives are noted once, where it went (the app or an upstream).
        let block_notes = match block {
            Some(block) if self.referenced.insert(target.to_owned()) => self.block_notes(block),
            _ => Vec::new(),
        };
        let servers: Vec<(String, Vec<String>, usize)> = match block {
            Some(block) => children(block)
                .filter(|d| d.name == "server")
                .filter_map(|d| Some((d.args.first()?.clone(), d.args[1..].to_vec(), d.line)))
                .collect(),
            None => vec![(target.to_owned(), Vec::new(), 0)],
        };
        let is_app = !servers.is_empty()
            && servers.iter().all(|(server, _, _)| {
                self.cx
                    .binds
                    .0
                    .iter()
                    .any(|bind| same_endpoint(bind, server))
            });
        if is_app {
            self.app_used = true;
            match self.doc.apps.first_mut() {
                Some(app) => block_notes.into_iter().for_each(|n| app.comment(n)),
                None => self.doc.trailer.extend(block_notes),
            }
            return None;
        }
        if let Some(name) = self.upstream_names.get(target) {
            return Some(name.clone());
        }
        let mut name: String = target
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .take(64)
            .collect();
        if name == self.cx.app || name.is_empty() {
            name.push_str("-upstream");
        }
        let mut table = Table::default();
        for note in block_notes {
            table.comment(note);
        }
        table.key("name", Value::str(&name));
        let mut addresses = Vec::new();
        for (server, params, line) in &servers {
            addresses.push(Value::Str(upstream_server(server)));
            for param in params {
                let what = if param == "backup" {
                    "not translated: gatehouse has no backup servers, so this one takes its share \
                     of requests like the others"
                } else if param == "down" {
                    "not translated: this server is in the rotation here; remove it while it is down"
                } else if param.starts_with("weight=") {
                    "not translated: gatehouse sends each request to the server with the fewest \
                     outstanding, without weights"
                } else {
                    "not translated (health = { ... } takes servers out of the rotation)"
                };
                table.comment(format!(
                    "nginx `server {server} {param}` ({}:{line}): {what}",
                    self.cx.file
                ));
            }
        }
        table.key("servers", Value::Array(addresses));
        self.doc.upstreams.push(table);
        self.upstream_names.insert(target.to_owned(), name.clone());
        Some(name)
    }
}

/// `https://$host[:port]$request_uri` → `https://{host}[:port]`; `https://HOST[:port]$request_uri`
/// → itself without `$request_uri`; else `None`.
fn redirect_target(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let after = rest.strip_suffix("$request_uri")?;
    if let Some(port) = after
        .strip_prefix("$host")
        .or_else(|| after.strip_prefix("$server_name"))
    {
        return (port.is_empty() || port.starts_with(':') && !port.contains('$'))
            .then(|| format!("https://{{host}}{port}"));
    }
    let literal = !after.is_empty()
        && after
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    literal.then(|| format!("https://{after}"))
}

/// The directives in a block.
fn children(d: &Directive) -> impl Iterator<Item = &Directive> {
    d.block.iter().flatten()
}

/// Every directive inside `d`, at any depth.
fn walk<'d>(d: &'d Directive, f: &mut impl FnMut(&'d Directive)) {
    for child in children(d) {
        f(child);
        walk(child, f);
    }
}

/// Nginx's listen address as a gatehouse listener address.
fn listen_address(arg: &str) -> String {
    if arg.starts_with("unix:") {
        return arg.to_owned();
    }
    if arg.bytes().all(|b| b.is_ascii_digit()) {
        return format!("0.0.0.0:{arg}");
    }
    if arg.starts_with('[') {
        return if arg.contains("]:") {
            arg.to_owned()
        } else {
            format!("{arg}:80")
        };
    }
    let (host, port) = match arg.rsplit_once(':') {
        Some((host, port)) => (host, port),
        None => (arg, "80"),
    };
    let host = match host {
        "*" | "" => "0.0.0.0",
        "localhost" => "127.0.0.1",
        other => other,
    };
    format!("{host}:{port}")
}

/// An Nginx upstream server as a gatehouse upstream server (`host:port`, port 80 by default).
fn upstream_server(server: &str) -> String {
    if server.starts_with("unix:")
        || server
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        server.to_owned()
    } else {
        format!("{server}:80")
    }
}

/// Whether Gunicorn's `bind` and an Nginx server address are the same endpoint: the same socket
/// path, or the same port on an address the bind covers (a wildcard bind covers loopback).
fn same_endpoint(bind: &str, server: &str) -> bool {
    if let Some(path) = bind.strip_prefix("unix:") {
        return server.strip_prefix("unix:") == Some(path);
    }
    if server.starts_with("unix:") {
        return false;
    }
    let (bind_host, bind_port) = split_host_port(bind);
    let (host, port) = match server.rsplit_once(':') {
        Some((h, p)) => (
            h.trim_matches(['[', ']']).to_owned(),
            p.parse().unwrap_or(80),
        ),
        None => (server.to_owned(), 80),
    };
    let loopback = |h: &str| matches!(h, "127.0.0.1" | "localhost" | "::1");
    bind_port == port
        && (matches!(bind_host.as_str(), "0.0.0.0" | "::" | "")
            || bind_host == host
            || (loopback(&bind_host) && loopback(&host)))
}

/// Nginx sizes: bytes, or k/m/g (powers of 1024).
fn size(text: &str) -> Option<u64> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits.parse().ok()?;
    let factor = match unit.to_ascii_lowercase().as_str() {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor)
}

fn size_value(bytes: u64) -> Value {
    for (unit, factor) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes.is_multiple_of(factor) {
            return Value::Str(format!("{}{unit}", bytes / factor));
        }
    }
    Value::Int(i64::try_from(bytes).unwrap_or(i64::MAX))
}

/// Nginx times in whole seconds: `75`, `75s`, `2m`, `1h`, `1d`.
fn seconds(text: &str) -> Option<u64> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits.parse().ok()?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => return None,
    };
    n.checked_mul(factor)
}

#[cfg(test)]
mod tests;
