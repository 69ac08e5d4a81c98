//! Checking `[[route]]`: host and path, exactly one action, the names it forwards to, static roots.

use std::collections::HashMap;

use super::app::directory_problem;
use super::{check_placeholders, net, Kind, Validator};
use crate::defaults;
use crate::file;
use crate::location::KeyPath;
use crate::model::{Action, HostPattern, Route, Static};

/// A route's action as written, before its target is checked.
enum Wanted {
    Static(file::Static),
    App(String),
    Upstream(String),
    Redirect(String),
    Respond(file::Respond),
}

impl Validator<'_> {
    pub(super) fn routes(
        &mut self,
        path: &KeyPath,
        routes: Vec<file::Route>,
        names: &HashMap<String, Kind>,
    ) -> Vec<Route> {
        let mut seen: HashMap<(Option<HostPattern>, String), usize> = HashMap::new();
        let mut out = Vec::new();
        for (i, route) in routes.into_iter().enumerate() {
            let path = path.index(i);
            let Some(route) = self.route(&path, route, names) else {
                continue;
            };
            let key = (route.host.clone(), route.path.clone());
            if let Some(first) = seen.get(&key) {
                self.problem(
                    &path.key("path"),
                    format!("duplicate route: route[{first}] has the same host and path"),
                );
                continue;
            }
            seen.insert(key, i);
            out.push(route);
        }
        out
    }

    /// One route, or `None` when it is too broken to compare with the others.
    fn route(
        &mut self,
        path: &KeyPath,
        route: file::Route,
        names: &HashMap<String, Kind>,
    ) -> Option<Route> {
        let file::Route {
            host,
            path: prefix,
            strip_prefix,
            static_,
            app,
            upstream,
            redirect,
            respond,
        } = route;
        // `Some(None)`: a host was given but is invalid (the route is then left out of the
        // duplicate check, where it would look like a route for any host).
        let host = host.as_deref().map(|text| {
            net::host_pattern(text)
                .map_err(|message| self.problem(&path.key("host"), message))
                .ok()
        });
        let prefix_path = path.key("path");
        let prefix = self.required(&prefix_path, prefix).filter(|prefix| {
            let ok = prefix.starts_with('/');
            if !ok {
                self.problem(&prefix_path, "must start with '/'");
            }
            ok
        });

        let mut wanted: Vec<(&str, Wanted)> = [
            static_.map(|s| ("static", Wanted::Static(s))),
            app.map(|name| ("app", Wanted::App(name))),
            upstream.map(|name| ("upstream", Wanted::Upstream(name))),
            redirect.map(|url| ("redirect", Wanted::Redirect(url))),
            respond.map(|r| ("respond", Wanted::Respond(r))),
        ]
        .into_iter()
        .flatten()
        .collect();
        let action = match wanted.len() {
            0 => {
                self.problem(
                    path,
                    "no action: set one of static, app, upstream, redirect, respond",
                );
                None
            }
            1 => wanted
                .pop()
                .and_then(|(_, wanted)| self.action(path, wanted, names)),
            _ => {
                let first = wanted[0].0;
                for (other, _) in &wanted[1..] {
                    self.problem(
                        &path.key(other),
                        format!("a route has exactly one action, and this one already has {first}"),
                    );
                }
                None
            }
        };

        let strip_prefix = strip_prefix.unwrap_or(false);
        if strip_prefix && !matches!(action, Some(Action::Forward(_)) | None) {
            self.problem(
                &path.key("strip_prefix"),
                "applies only to app and upstream routes (static routes always strip their prefix)",
            );
        }
        let host = match host {
            None => None,
            Some(Some(pattern)) => Some(pattern),
            Some(None) => return None,
        };
        Some(Route {
            host,
            path: prefix?,
            action: action?,
            strip_prefix,
        })
    }

    fn action(
        &mut self,
        path: &KeyPath,
        wanted: Wanted,
        names: &HashMap<String, Kind>,
    ) -> Option<Action> {
        match wanted {
            Wanted::Static(static_) => self
                .static_(&path.key("static"), static_, names)
                .map(Action::Static),
            Wanted::App(name) => self.forward(&path.key("app"), name, Kind::App, names),
            Wanted::Upstream(name) => {
                self.forward(&path.key("upstream"), name, Kind::Upstream, names)
            }
            Wanted::Redirect(url) => {
                let key = path.key("redirect");
                if url.trim().is_empty() {
                    self.problem(&key, "must not be empty");
                    return None;
                }
                if let Err(message) = check_placeholders(&url, &["host", "uri"]) {
                    self.problem(&key, message);
                    return None;
                }
                Some(Action::Redirect(url))
            }
            Wanted::Respond(respond) => {
                let status_path = path.key("respond").key("status");
                let status = match respond.status.map(u16::try_from) {
                    None => {
                        self.problem(&status_path, "required key is missing");
                        return None;
                    }
                    Some(Ok(status)) if (100..=599).contains(&status) => status,
                    Some(_) => {
                        self.problem(&status_path, "must be an HTTP status between 100 and 599");
                        return None;
                    }
                };
                Some(Action::Respond {
                    status,
                    body: respond.body.unwrap_or_default(),
                })
            }
        }
    }

    /// `app = "x"` / `upstream = "x"`: the name must exist and be of that kind.
    fn forward(
        &mut self,
        path: &KeyPath,
        name: String,
        kind: Kind,
        names: &HashMap<String, Kind>,
    ) -> Option<Action> {
        let (this, other) = match kind {
            Kind::App => ("app", "upstream"),
            Kind::Upstream => ("upstream", "app"),
        };
        match names.get(&name) {
            Some(found) if *found == kind => Some(Action::Forward(name)),
            Some(_) => {
                self.problem(
                    path,
                    format!("{name:?} is an {other}, not an {this} (write {other} = {name:?})"),
                );
                None
            }
            None => {
                self.problem(path, format!("no {this} named {name:?}"));
                None
            }
        }
    }

    fn static_(
        &mut self,
        path: &KeyPath,
        static_: file::Static,
        names: &HashMap<String, Kind>,
    ) -> Option<Static> {
        let root_path = path.key("root");
        let root = match &static_.root {
            None => {
                self.problem(&root_path, "required key is missing");
                None
            }
            Some(root) => {
                let root = self.resolve(root);
                match std::fs::canonicalize(&root) {
                    Ok(canonical) if canonical.is_dir() => Some(canonical),
                    Ok(_) => {
                        self.problem(&root_path, "not a directory");
                        None
                    }
                    Err(_) => {
                        self.problem(&root_path, directory_problem(&root));
                        None
                    }
                }
            }
        };
        let index_path = path.key("index");
        let index = match static_.index {
            None => vec![defaults::STATIC_INDEX.to_owned()],
            Some(index) => {
                for (i, name) in index.iter().enumerate() {
                    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                        self.problem(
                            &index_path.index(i),
                            "must be a file name (not empty, no '/')",
                        );
                    }
                }
                index
            }
        };
        let fallback = static_.fallback.filter(|name| {
            let known = names.contains_key(name);
            if !known {
                self.problem(
                    &path.key("fallback"),
                    format!("no app or upstream named {name:?}"),
                );
            }
            known
        });
        Some(Static {
            root: root?,
            index,
            cache_control: static_.cache_control,
            precompressed: static_
                .precompressed
                .unwrap_or(defaults::STATIC_PRECOMPRESSED),
            dotfiles: static_.dotfiles.unwrap_or(defaults::STATIC_DOTFILES),
            fallback,
        })
    }
}
