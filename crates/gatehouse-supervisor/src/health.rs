//! Readiness and health checks of one worker.
//!
//! A probe is an HTTP/1.1 `GET health.path` over the worker's socket (or port) with
//! `Host: localhost`, passing on any 2xx. With no `health.path`, readiness waits for any HTTP
//! answer at all to `OPTIONS *` (the server-level ping of RFC 9110): a bare connect would pass as
//! soon as a Gunicorn master has bound its socket, before its worker has imported the app, so a
//! deploy that cannot import would replace working workers.
//!
//! A new worker is probed every `READY_POLL` until it passes (it may then be published) or
//! `startup_timeout` passes (it failed to start). A ready worker is probed every `health.interval`
//! with `health.timeout`; `health.failures` consecutive failures make it unhealthy. A failure
//! while every slot of the worker is busy does not count (a sync worker serving a long request
//! cannot answer it; a hung request is the request deadline's business), and a pass clears the
//! count: only consecutive failures matter, so one slow answer does not flap a worker.
//! Without `health`, a ready worker is not probed: it is healthy while it accepts connections, and
//! the proxy reports a refused connection (`Supervisor::worker_unreachable`).

use std::convert::Infallible;
use std::future::pending;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_config::model::{Endpoint, Health};
use http_body_util::{BodyExt, Empty};
use hyper::header::{CONNECTION, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout, Instant};

use crate::monitor::Event;
use crate::WorkerId;

/// How often a starting worker is probed.
const READY_POLL: Duration = Duration::from_millis(50);
/// The timeout of one readiness probe when no `health.timeout` is configured.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What to check, and how often.
pub(crate) struct Checks {
    pub id: WorkerId,
    pub endpoint: Endpoint,
    pub health: Option<Health>,
    pub startup_timeout: Duration,
    /// True while every slot of the worker is busy (see the module header).
    pub busy: Box<dyn Fn() -> bool + Send>,
}

/// Runs the checks of one worker for as long as it lives, reporting `Ready`, `StartFailed` and
/// `Unhealthy` on `events`. Never returns: the monitor drops it when the process exits.
pub(crate) async fn run(checks: Checks, events: mpsc::UnboundedSender<Event>) -> Infallible {
    let id = checks.id;
    let path = checks.health.as_ref().and_then(|h| h.path.clone());
    let path = path.as_deref();
    let readiness = path.map_or(Probe::Answer, Probe::Path);
    let probe_timeout = checks
        .health
        .as_ref()
        .map_or(CONNECT_TIMEOUT, |h| h.timeout);

    let deadline = Instant::now() + checks.startup_timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match probe(&checks.endpoint, readiness, probe_timeout.min(left)).await {
            Ok(()) => {
                let _ = events.send(Event::Ready(id));
                break;
            }
            Err(failure) if Instant::now() + READY_POLL >= deadline => {
                let _ = events.send(Event::StartFailed {
                    id,
                    why: format!(
                        "not ready within startup_timeout ({:?}): {failure}",
                        checks.startup_timeout
                    ),
                });
                return pending().await;
            }
            Err(_) => sleep(READY_POLL).await,
        }
    }

    let Some(health) = &checks.health else {
        return pending().await;
    };
    let periodic = path.map_or(Probe::Connect, Probe::Path);
    let mut failures = 0;
    loop {
        sleep(health.interval).await;
        match probe(&checks.endpoint, periodic, health.timeout).await {
            Ok(()) => failures = 0,
            Err(_) if (checks.busy)() => {}
            Err(failure) => {
                failures += 1;
                tracing::debug!(worker = id, %failure, failures, "health check failed");
                if failures >= health.failures.max(1) {
                    let _ = events.send(Event::Unhealthy {
                        id,
                        why: format!(
                            "{failures} consecutive health checks failed, the last: {failure}"
                        ),
                    });
                    return pending().await;
                }
            }
        }
    }
}

/// Why a probe failed (for the log).
#[derive(Debug)]
pub(crate) enum Failure {
    Connect(std::io::Error),
    Http(hyper::Error),
    Status(u16),
    Timeout(Duration),
    /// `health.path` does not make a request target.
    Path(hyper::http::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(err) => write!(f, "connect: {err}"),
            Failure::Http(err) => write!(f, "http: {err}"),
            Failure::Status(status) => write!(f, "status {status}"),
            Failure::Timeout(after) => write!(f, "no answer within {after:?}"),
            Failure::Path(err) => write!(f, "health.path: {err}"),
        }
    }
}

/// What one probe asks of a worker.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Probe<'a> {
    /// Accept a connection.
    Connect,
    /// Answer `OPTIONS *` with any status: the app is loaded and serving.
    Answer,
    /// Answer `GET path` with a 2xx.
    Path(&'a str),
}

/// One probe within `within`.
pub(crate) async fn probe(
    endpoint: &Endpoint,
    kind: Probe<'_>,
    within: Duration,
) -> Result<(), Failure> {
    let attempt = async {
        match endpoint {
            Endpoint::Unix(socket) => {
                let stream = UnixStream::connect(socket)
                    .await
                    .map_err(Failure::Connect)?;
                ask(stream, kind).await
            }
            Endpoint::Tcp(hostport) => {
                let stream = TcpStream::connect(hostport.as_str())
                    .await
                    .map_err(Failure::Connect)?;
                ask(stream, kind).await
            }
        }
    };
    timeout(within, attempt)
        .await
        .unwrap_or(Err(Failure::Timeout(within)))
}

async fn ask<S>(stream: S, kind: Probe<'_>) -> Result<(), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (method, target, any_status) = match kind {
        Probe::Connect => return Ok(()),
        Probe::Answer => (hyper::Method::OPTIONS, "*", true),
        Probe::Path(path) => (hyper::Method::GET, path, false),
    };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(Failure::Http)?;
    let request = hyper::Request::builder()
        .method(method)
        .uri(target)
        .header(HOST, "localhost")
        .header(USER_AGENT, "gatehouse-health")
        .header(CONNECTION, "close")
        .body(Empty::new())
        // An invalid path fails every probe; config validation keeps it from getting here.
        .map_err(Failure::Path)?;
    // The connection runs on its own until the worker closes it (we asked for `close`).
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender.send_request(request).await.map_err(Failure::Http)?;
    let status = response.status();
    // Read the short answer to its end: a worker whose reply is cut off mid-write logs a broken
    // pipe for every probe (Python's http.server prints a whole traceback).
    response
        .into_body()
        .collect()
        .await
        .map_err(Failure::Http)?;
    if status.is_success() || any_status {
        Ok(())
    } else {
        Err(Failure::Status(status.as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixListener;

    /// A one-shot server answering every connection with `response`; returns its socket.
    fn serve(response: &'static [u8]) -> (tempfile::TempDir, Endpoint) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    if !response.is_empty() {
                        let _ = conn.write_all(response).await;
                    }
                    // An empty response: hold the connection open without answering.
                    pending::<()>().await;
                });
            }
        });
        (dir, Endpoint::Unix(path))
    }

    const OK: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";
    const FAIL: &[u8] = b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n";
    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn passes_on_2xx_only() {
        let (_dir, ok) = serve(OK);
        probe(&ok, Probe::Path("/health"), SECOND).await.unwrap();
        let (_dir, fail) = serve(FAIL);
        let err = probe(&fail, Probe::Path("/health"), SECOND)
            .await
            .unwrap_err();
        assert!(matches!(err, Failure::Status(500)), "{err}");
    }

    #[tokio::test]
    async fn a_connect_suffices_for_periodic_checks_without_a_path() {
        let (_dir, silent) = serve(b"");
        probe(&silent, Probe::Connect, SECOND).await.unwrap();
        let missing = Endpoint::Unix("/nonexistent/gatehouse.sock".into());
        let err = probe(&missing, Probe::Connect, SECOND).await.unwrap_err();
        assert!(matches!(err, Failure::Connect(_)), "{err}");
    }

    #[tokio::test]
    async fn readiness_without_a_path_needs_an_answer_of_any_status() {
        let (_dir, fail) = serve(FAIL);
        probe(&fail, Probe::Answer, SECOND).await.unwrap();
        // Accepting the connection is not enough (a Gunicorn master still importing the app).
        let (_dir, silent) = serve(b"");
        let err = probe(&silent, Probe::Answer, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, Failure::Timeout(_)), "{err}");
    }

    #[tokio::test]
    async fn a_silent_worker_times_out() {
        let (_dir, silent) = serve(b"");
        let err = probe(&silent, Probe::Path("/health"), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, Failure::Timeout(_)), "{err}");
    }
}
