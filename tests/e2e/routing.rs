//! Routing: host (exact, wildcard), longest path prefix, 404, redirects, fixed responses,
//! strip_prefix, and the redirect_https listener.

use gatehouse_tests::{Gatehouse, PythonApp};
use reqwest::header;

use crate::client;

fn start(upstream: &PythonApp) -> Gatehouse {
    Gatehouse::start(&format!(
        r#"
[[listener]]
address = "127.0.0.1:0"

[[listener]]
address = "127.0.0.1:0"
redirect_https = "https://{{host}}:8443"

[[upstream]]
name = "up"
servers = ["{up}"]

[[route]]
host = "example.com"
path = "/"
respond = {{ status = 200, body = "exact host" }}

[[route]]
host = "*.example.com"
path = "/"
respond = {{ status = 200, body = "wildcard host" }}

[[route]]
host = "example.com"
path = "/deep/"
respond = {{ status = 200, body = "exact host, deeper path" }}

[[route]]
path = "/api/"
respond = {{ status = 200, body = "api" }}

[[route]]
path = "/api/v2/"
respond = {{ status = 203, body = "api v2" }}

[[route]]
path = "/plain"
respond = {{ status = 200, body = "plain" }}

[[route]]
path = "/old/"
redirect = "https://{{host}}/new{{uri}}"

[[route]]
path = "/strip/"
upstream = "up"
strip_prefix = true

[[route]]
path = "/keep/"
upstream = "up"
"#,
        up = upstream.address()
    ))
}

async fn get(gh: &Gatehouse, host: &str, path: &str) -> reqwest::Response {
    client()
        .get(gh.url(0, path))
        .header(header::HOST, host)
        .send()
        .await
        .unwrap()
}

async fn body(gh: &Gatehouse, host: &str, path: &str) -> (u16, String) {
    let response = get(gh, host, path).await;
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn hosts_match_exactly_or_by_wildcard() {
    let upstream = PythonApp::upstream();
    let gh = start(&upstream);
    assert_eq!(
        body(&gh, "example.com", "/").await,
        (200, "exact host".into())
    );
    assert_eq!(
        body(&gh, "EXAMPLE.com:8080", "/x").await,
        (200, "exact host".into()),
        "case and port ignored"
    );
    assert_eq!(
        body(&gh, "www.example.com", "/").await,
        (200, "wildcard host".into())
    );
    assert_eq!(
        body(&gh, "a.b.example.com", "/").await,
        (200, "wildcard host".into())
    );
    assert_eq!(
        body(&gh, "example.com", "/deep/x").await,
        (200, "exact host, deeper path".into())
    );
    assert_eq!(
        body(&gh, "notexample.com", "/").await.0,
        404,
        "a wildcard needs the dot"
    );
}

#[tokio::test]
async fn the_longest_prefix_wins_and_no_match_is_404() {
    let upstream = PythonApp::upstream();
    let gh = start(&upstream);
    assert_eq!(
        body(&gh, "other.test", "/api/users").await,
        (200, "api".into())
    );
    assert_eq!(
        body(&gh, "other.test", "/api/v2/users").await,
        (203, "api v2".into())
    );
    // A trailing slash is optional at the end ("/api/v2" is the /api/v2/ route's to answer or
    // redirect); without a trailing slash, a route matches on segment boundaries only.
    assert_eq!(
        body(&gh, "other.test", "/api/v2").await,
        (203, "api v2".into())
    );
    assert_eq!(
        body(&gh, "other.test", "/plain").await,
        (200, "plain".into())
    );
    assert_eq!(
        body(&gh, "other.test", "/plain/x").await,
        (200, "plain".into())
    );
    assert_eq!(body(&gh, "other.test", "/plainly").await.0, 404);

    let response = get(&gh, "other.test", "/apiary").await;
    crate::assert_error(response, 404).await;
    let response = get(&gh, "other.test", "/").await;
    crate::assert_error(response, 404).await;
}

#[tokio::test]
async fn respond_answers_text() {
    let upstream = PythonApp::upstream();
    let gh = start(&upstream);
    let response = get(&gh, "other.test", "/api/v2/").await;
    assert_eq!(response.status(), 203);
    assert!(response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(response.text().await.unwrap(), "api v2");
}

#[tokio::test]
async fn redirects_substitute_host_and_uri_with_301_or_308() {
    let upstream = PythonApp::upstream();
    let gh = start(&upstream);
    let url = gh.url(0, "/old/page?a=1&b=2");
    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        let response = client()
            .request(method.clone(), &url)
            .header(header::HOST, "site.test:8080")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 301, "{method}");
        assert_eq!(
            response.headers()[header::LOCATION],
            "https://site.test/new/old/page?a=1&b=2"
        );
    }
    for method in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let response = client()
            .request(method.clone(), &url)
            .header(header::HOST, "site.test")
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 308, "{method}");
        assert_eq!(
            response.headers()[header::LOCATION],
            "https://site.test/new/old/page?a=1&b=2"
        );
    }
}

#[tokio::test]
async fn strip_prefix_removes_the_route_path_only_when_asked() {
    let upstream = PythonApp::upstream();
    let gh = start(&upstream);
    let stripped: serde_json::Value =
        serde_json::from_str(&body(&gh, "other.test", "/strip/echo?x=1").await.1).unwrap();
    assert_eq!(stripped["path"], "/echo");
    assert_eq!(stripped["query"], "x=1");

    let kept: serde_json::Value =
        serde_json::from_str(&body(&gh, "other.test", "/keep/echo?y=2").await.1).unwrap();
    assert_eq!(kept["path"], "/keep/echo");
    assert_eq!(kept["query"], "y=2");

    assert_eq!(
        body(&gh, "other.test", "/strip/").await,
        (200, "upstream /\n".into())
    );
}

#[tokio::test]
async fn a_redirect_https_listener_redirects_everything() {
    let upstream = PythonApp::upstream();
    let gh = start(&upstream);
    let response = client()
        .get(gh.url(1, "/api/v2/users?page=3"))
        .header(header::HOST, "shop.test:8080")
        .send()
        .await
        .unwrap();
    assert!(
        [301, 308].contains(&response.status().as_u16()),
        "status {}",
        response.status()
    );
    assert_eq!(
        response.headers()[header::LOCATION],
        "https://shop.test:8443/api/v2/users?page=3"
    );
    assert!(upstream.requests().is_empty());
}
