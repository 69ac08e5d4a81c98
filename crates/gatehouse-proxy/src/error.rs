//! Why a request could not be answered normally, and the one place that maps that to a status.
//!
//! Each error knows its side (client, upstream, internal) so logs and metrics can tell a bad
//! request from a sick backend. Bodies are short `text/plain`, as users expect from Nginx.

use http::{header, HeaderValue, Response, StatusCode};

use crate::body::{self, Body};

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    // The client's fault.
    #[error("malformed request: {0}")]
    BadRequest(&'static str),
    #[error("request body larger than the limit")]
    BodyTooLarge,
    #[error("request headers larger than the limit")]
    HeadersTooLarge,
    #[error("no route for this host and path")]
    NoRoute,

    // The upstream's (or app worker's) fault.
    #[error("could not connect to any server of {upstream}")]
    Connect { upstream: String },
    #[error("upstream {target} failed: {source}")]
    Upstream {
        target: String,
        #[source]
        source: hyper::Error,
    },
    #[error("upstream {target} broke the protocol: {reason}")]
    UpstreamProtocol {
        target: String,
        reason: &'static str,
    },
    #[error("upstream {target} failed while sending its response body")]
    UpstreamBody { target: String },
    #[error("upstream {target} did not answer in time")]
    UpstreamTimeout { target: String },
    #[error("no worker of {app} is ready")]
    NoWorker { app: String },
    #[error("queue for {app} is full or the wait timed out")]
    QueueFull { app: String },
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::Connect { .. }
            | ProxyError::Upstream { .. }
            | ProxyError::UpstreamProtocol { .. }
            | ProxyError::UpstreamBody { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::NoWorker { .. } | ProxyError::QueueFull { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// True when the client, not a backend, caused it (for log levels).
    pub fn is_client_error(&self) -> bool {
        self.status().is_client_error()
    }

    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let mut response = error_response(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A short plain-text answer for `status`, e.g. `502 Bad Gateway\n`.
pub fn error_response(status: StatusCode) -> Response<Body> {
    let text = format!(
        "{} {}\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("Error")
    );
    let mut response = Response::new(body::full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
