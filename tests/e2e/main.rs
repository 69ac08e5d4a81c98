//! End-to-end suites: the real `gatehouse` binary on port 0, real Python upstreams, real clients.
//!
//! Build the binary first (`cargo xtask test` does everything), or point `GATEHOUSE_BIN` at one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access_log;
mod apps;
mod check;
mod deploy;
mod import;
mod lifecycle;
mod limits;
mod observability;
mod proxy;
mod reload;
mod routing;
mod signals;
mod static_files;
mod tls;
mod workers;
mod wsgi;

use std::net::{SocketAddr, TcpListener};

/// A reqwest client that neither follows redirects nor pools across tests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("build a reqwest client")
}

/// A loopback address nothing listens on (bound, then released), for "upstream down".
pub fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local_addr")
}

/// Asserts an error answer: `status`, `text/plain`, and a short body.
pub async fn assert_error(response: reqwest::Response, status: u16) {
    assert_eq!(
        response.status().as_u16(),
        status,
        "status of {}",
        response.url()
    );
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(
        content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("text/plain")),
        "error content-type: {content_type:?}"
    );
    let body = response.bytes().await.unwrap();
    assert!(
        body.len() < 512,
        "error body is short: {} bytes",
        body.len()
    );
}

/// Asserts a raw error answer the same way.
pub fn assert_raw_error(response: &gatehouse_tests::raw::Response, status: u16) {
    let body: String = response.text().chars().take(300).collect();
    assert_eq!(response.status, status, "body: {body}");
    let content_type = response.header("content-type");
    assert!(
        content_type.is_some_and(|t| t.starts_with("text/plain")),
        "error content-type: {content_type:?}"
    );
    assert!(
        response.body.len() < 512,
        "error body is short: {} bytes",
        response.body.len()
    );
}

/// The headers an upstream's `/echo` saw, as `(lower-case name, value)`.
pub fn echoed_headers(echo: &serde_json::Value) -> Vec<(String, String)> {
    echo["headers"]
        .as_array()
        .expect("headers array")
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_ascii_lowercase(),
                pair[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Every value of header `name` an upstream's `/echo` saw.
pub fn echoed(echo: &serde_json::Value, name: &str) -> Vec<String> {
    echoed_headers(echo)
        .into_iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v)
        .collect()
}
