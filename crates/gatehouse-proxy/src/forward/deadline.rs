//! The upstream `timeout`: how long the upstream may keep us waiting.
//!
//! It bounds the wait for the response head once the request has been handed over, and also the
//! wait for an upstream that stops accepting the request body. Time spent waiting for a slow
//! *client* to send its body is not the upstream's fault and does not count: the request body is
//! wrapped so we can tell whose turn it is (and whether it has been sent completely, which the
//! connection pool needs to know).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use tokio::time::Instant;

use crate::body::{self, Body, BoxError};

/// Shared between the request body (which the connection task polls) and the waiting request.
pub(crate) struct Progress {
    start: Instant,
    /// Milliseconds after `start` of the last sign of life from the upstream side.
    last: AtomicU64,
    /// The body's last poll was `Pending`: we are waiting for the client, not the upstream.
    client_turn: AtomicBool,
    /// The connection has taken the whole body.
    sent: AtomicBool,
}

impl Progress {
    /// Restart the clock: the upstream just did something (took a chunk, got the request).
    pub(crate) fn touch(&self) {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(elapsed, Ordering::Relaxed);
    }

    /// Until the request body is sent, its connection is busy even if the response has ended
    /// (an upstream may answer early, e.g. 413, while the upload goes on).
    pub(crate) fn body_sent(&self) -> bool {
        self.sent.load(Ordering::Relaxed)
    }

    fn deadline(&self, timeout: Duration) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed)) + timeout
    }
}

/// Wrap a request body so its progress can be observed.
pub(crate) fn track(inner: Body) -> (Body, Arc<Progress>) {
    let progress = Arc::new(Progress {
        start: Instant::now(),
        last: AtomicU64::new(0),
        client_turn: AtomicBool::new(false),
        sent: AtomicBool::new(inner.is_end_stream()),
    });
    let tracked = Tracked {
        inner,
        progress: progress.clone(),
    };
    (body::boxed(tracked), progress)
}

/// Wait for `response`; `None` when the upstream kept us waiting `timeout` without progress.
pub(crate) async fn head<F: Future>(
    response: F,
    timeout: Duration,
    progress: &Progress,
) -> Option<F::Output> {
    tokio::pin!(response);
    let mut deadline = progress.deadline(timeout);
    loop {
        match tokio::time::timeout_at(deadline, &mut response).await {
            Ok(output) => return Some(output),
            Err(_elapsed) if progress.client_turn.load(Ordering::Relaxed) => {
                // The client is slow to send its body; its own limits apply, not ours.
                deadline = Instant::now() + timeout;
            }
            Err(_elapsed) => {
                let moved = progress.deadline(timeout);
                if moved <= Instant::now() {
                    return None;
                }
                deadline = moved;
            }
        }
    }
}

/// A response body's next chunk did not come within the upstream `timeout`.
#[derive(Debug, thiserror::Error)]
#[error("upstream sent nothing for {0:?} in the middle of a response body")]
pub(crate) struct IdleTimeout(pub(crate) Duration);

struct Tracked {
    inner: Body,
    progress: Arc<Progress>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let pending = polled.is_pending();
        self.progress.client_turn.store(pending, Ordering::Relaxed);
        if !pending {
            // The connection asked for more, so it took what came before.
            self.progress.touch();
        }
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.progress.sent.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
