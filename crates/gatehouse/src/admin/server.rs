//! The admin endpoints over HTTP/1.1: a small accept loop, and one function from request to
//! answer. Answers are built in full (they are small); nothing here is on the proxy's path.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{Encoder, TextEncoder};
use tokio::net::TcpListener;

use super::{status, Shared};

/// A probe or scraper that has not sent its request head by then is gone.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

type Answer = Response<Full<Bytes>>;

pub(super) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors and the like: wait instead of spinning; the listener lives.
                tracing::warn!(%error, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let answer = answer(&shared, &request);
                async move { Ok::<_, Infallible>(answer) }
            });
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                tracing::debug!(%error, "admin connection ended with an error");
            }
        });
    }
}

fn answer<B>(shared: &Shared, request: &Request<B>) -> Answer {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut answer = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        answer
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return answer;
    }
    match request.uri().path() {
        "/metrics" => metrics(shared),
        "/livez" => text(StatusCode::OK, "ok\n"),
        "/readyz" => match shared.unready() {
            None => text(StatusCode::OK, "ready\n"),
            Some(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
        },
        "/status" => status(shared),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn metrics(shared: &Shared) -> Answer {
    shared.metrics.refresh(&shared.apps(), &shared.tls());
    let mut body = Vec::with_capacity(16 * 1024);
    let encoder = TextEncoder::new();
    if let Err(error) = encoder.encode(&shared.registry.gather(), &mut body) {
        tracing::warn!(%error, "cannot encode the metrics");
        return text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n");
    }
    with_type(StatusCode::OK, body, encoder.format_type())
}

fn status(shared: &Shared) -> Answer {
    let config = shared
        .config
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let report = status::Status {
        apps: shared.apps().iter().map(status::App::of).collect(),
        config,
    };
    match serde_json::to_vec_pretty(&report) {
        Ok(body) => with_type(StatusCode::OK, body, "application/json"),
        Err(error) => {
            tracing::warn!(%error, "cannot encode the status");
            text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode status\n")
        }
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Answer {
    with_type(status, body, "text/plain; charset=utf-8")
}

fn with_type(status: StatusCode, body: impl Into<Bytes>, content_type: &str) -> Answer {
    let mut answer = Response::new(Full::new(body.into()));
    *answer.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(content_type) {
        answer.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    fn get(shared: &Shared, path: &str) -> Answer {
        answer(shared, &Request::get(path).body(()).unwrap())
    }

    #[test]
    fn endpoints_and_readiness() {
        let shared = super::super::tests::shared();
        assert_eq!(get(&shared, "/livez").status(), StatusCode::OK);
        assert_eq!(get(&shared, "/nope").status(), StatusCode::NOT_FOUND);
        assert_eq!(get(&shared, "/metrics/").status(), StatusCode::NOT_FOUND);
        // Not serving yet: not ready.
        assert_eq!(
            get(&shared, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        shared.apps.store(Some(std::sync::Arc::new(Vec::new())));
        assert_eq!(get(&shared, "/readyz").status(), StatusCode::OK);
        shared.draining.store(true, Ordering::SeqCst);
        assert_eq!(
            get(&shared, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(get(&shared, "/livez").status(), StatusCode::OK);
        let post = answer(&shared, &Request::post("/livez").body(()).unwrap());
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn metrics_are_prometheus_text() {
        let shared = super::super::tests::shared();
        let answer = get(&shared, "/metrics");
        assert_eq!(answer.status(), StatusCode::OK);
        assert!(answer.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
    }
}
