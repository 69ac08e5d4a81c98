//! Routing: which configured route answers a request, by host then longest path prefix.
//!
//! Hosts are tried from the most specific to the least: an exact name, then wildcard suffixes
//! (longest first), then routes without a host. Within a host group the longest matching path
//! prefix wins; if nothing in the group matches the path, the next, less specific group is tried,
//! so a host-specific `/api/` route does not hide a catch-all `/` route of the default site.
//!
//! A route path ending in `/` is a plain prefix (`/static/` matches `/static/a.css`), and also
//! matches the same path without its slash (`/static`) so the handler can redirect it. A route path
//! without a trailing slash matches on a segment boundary only (`/api` matches `/api` and
//! `/api/x`, never `/apis`).

use gatehouse_config::model::HostPattern;

/// Routes compiled for lookup; `T` is whatever the caller attaches to each route.
#[derive(Debug)]
pub struct RouteTable<T> {
    /// Host groups in lookup order; each group's routes sorted by path length, longest first.
    groups: Vec<HostGroup<T>>,
}

#[derive(Debug)]
struct HostGroup<T> {
    host: Option<HostPattern>,
    routes: Vec<(String, T)>,
}

impl<T> RouteTable<T> {
    /// `routes` yields (host, path prefix, value) in config order.
    pub fn new(routes: impl IntoIterator<Item = (Option<HostPattern>, String, T)>) -> Self {
        let mut groups: Vec<HostGroup<T>> = Vec::new();
        for (host, path, value) in routes {
            match groups.iter_mut().find(|group| group.host == host) {
                Some(group) => group.routes.push((path, value)),
                None => groups.push(HostGroup {
                    host,
                    routes: vec![(path, value)],
                }),
            }
        }
        for group in &mut groups {
            // Stable sort keeps config order among equal lengths (validation forbids duplicates).
            group
                .routes
                .sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
        }
        groups.sort_by_key(|group| std::cmp::Reverse(host_specificity(&group.host)));
        RouteTable { groups }
    }

    /// The route for `host` (lower-case, no port; `None` when the request has none) and `path`.
    /// Returns the matched route prefix and its value.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<(&str, &T)> {
        self.groups
            .iter()
            .filter(|group| host_matches(group.host.as_ref(), host))
            .find_map(|group| {
                group
                    .routes
                    .iter()
                    .find(|(prefix, _)| path_matches(prefix, path))
                    .map(|(prefix, value)| (prefix.as_str(), value))
            })
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// Higher is more specific: exact names, then longer wildcard suffixes, then "any host".
fn host_specificity(host: &Option<HostPattern>) -> usize {
    match host {
        Some(HostPattern::Exact(_)) => usize::MAX,
        Some(HostPattern::Suffix(suffix)) => suffix.len(),
        None => 0,
    }
}

fn host_matches(pattern: Option<&HostPattern>, host: Option<&str>) -> bool {
    match (pattern, host) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(HostPattern::Exact(name)), Some(host)) => name == host,
        (Some(HostPattern::Suffix(suffix)), Some(host)) => {
            host.len() > suffix.len() && host.ends_with(suffix.as_str())
        }
    }
}

/// Whether route prefix `prefix` covers request path `path` (see the module docs).
pub fn path_matches(prefix: &str, path: &str) -> bool {
    if let Some(without_slash) = prefix.strip_suffix('/') {
        path.starts_with(prefix) || path == without_slash
    } else {
        path == prefix
            || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
    }
}

/// The host a request is for: the Host header (or the h2 authority), lower-case, without port.
pub fn request_host<B>(request: &http::Request<B>) -> Option<String> {
    let raw = request
        .headers()
        .get(http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| request.uri().host())?;
    let without_port = if raw.starts_with('[') {
        // An IPv6 literal keeps its brackets; drop only a trailing port.
        raw.find(']').map_or(raw, |end| &raw[..=end])
    } else {
        raw.rsplit_once(':').map_or(raw, |(host, _port)| host)
    };
    Some(without_port.trim_end_matches('.').to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable<&'static str> {
        RouteTable::new([
            (None, "/".to_string(), "default-root"),
            (None, "/static/".to_string(), "default-static"),
            (None, "/api".to_string(), "default-api"),
            (
                Some(HostPattern::Exact("example.com".into())),
                "/".to_string(),
                "example-root",
            ),
            (
                Some(HostPattern::Suffix(".example.com".into())),
                "/".to_string(),
                "wildcard-root",
            ),
            (
                Some(HostPattern::Exact("api.example.com".into())),
                "/v1/".to_string(),
                "api-v1",
            ),
        ])
    }

    fn find(host: Option<&str>, path: &str) -> Option<&'static str> {
        table().find(host, path).map(|(_, value)| *value)
    }

    #[test]
    fn longest_prefix_wins() {
        assert_eq!(find(None, "/static/a.css"), Some("default-static"));
        assert_eq!(find(None, "/static"), Some("default-static"));
        assert_eq!(find(None, "/other"), Some("default-root"));
    }

    #[test]
    fn prefix_without_slash_respects_segments() {
        assert_eq!(find(None, "/api"), Some("default-api"));
        assert_eq!(find(None, "/api/users"), Some("default-api"));
        assert_eq!(find(None, "/apis"), Some("default-root"));
    }

    #[test]
    fn exact_host_beats_wildcard_beats_any() {
        assert_eq!(find(Some("example.com"), "/x"), Some("example-root"));
        assert_eq!(find(Some("www.example.com"), "/x"), Some("wildcard-root"));
        assert_eq!(find(Some("other.org"), "/x"), Some("default-root"));
    }

    #[test]
    fn wildcard_does_not_match_the_bare_domain() {
        let table = RouteTable::new([(
            Some(HostPattern::Suffix(".example.com".into())),
            "/".to_string(),
            1,
        )]);
        assert!(table.find(Some("example.com"), "/").is_none());
        assert!(table.find(Some("a.b.example.com"), "/").is_some());
    }

    #[test]
    fn host_group_falls_through_to_less_specific_groups() {
        assert_eq!(find(Some("api.example.com"), "/v1/x"), Some("api-v1"));
        assert_eq!(
            find(Some("api.example.com"), "/other"),
            Some("wildcard-root")
        );
    }

    #[test]
    fn no_match_without_catch_all() {
        let table = RouteTable::new([(None, "/only/".to_string(), 1)]);
        assert!(table.find(None, "/elsewhere").is_none());
    }

    #[test]
    fn request_host_strips_port_and_case() {
        let request = |host: &str| {
            http::Request::builder()
                .uri("/")
                .header("host", host)
                .body(())
                .unwrap_or_default()
        };
        assert_eq!(
            request_host(&request("Example.COM:8080")),
            Some("example.com".into())
        );
        assert_eq!(request_host(&request("[::1]:80")), Some("[::1]".into()));
        assert_eq!(
            request_host(&request("example.com.")),
            Some("example.com".into())
        );
    }
}
