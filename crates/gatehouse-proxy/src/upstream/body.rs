//! A response body as it streams from a server.
//!
//! It holds the request's [`Lease`] so the server counts the request as outstanding until the
//! body is done, and gives the connection back to the pool only when the body was read to its
//! end: reusing a connection with unread bytes would hand them to the next request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::server::Lease;
use crate::body::BoxError;
use crate::forward::{IdleTimeout, Progress};

pub(crate) struct UpstreamBody {
    inner: Incoming,
    /// `None` once the body ended (or failed) and the connection was released or dropped.
    lease: Option<Lease>,
    /// The response allows another request on this connection.
    reusable: bool,
    /// The request's side: the connection is free only once its body is sent too.
    request: Arc<Progress>,
    /// Longest wait for the next chunk, like Nginx's `proxy_read_timeout`.
    idle: Duration,
    /// Armed while waiting for a chunk; `None` between chunks (allocated on first wait).
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

impl UpstreamBody {
    pub(crate) fn new(
        inner: Incoming,
        lease: Lease,
        reusable: bool,
        idle: Duration,
        request: Arc<Progress>,
    ) -> Self {
        let mut body = UpstreamBody {
            inner,
            lease: Some(lease),
            reusable,
            request,
            idle,
            timer: None,
            waiting: false,
        };
        if body.inner.is_end_stream() {
            // No body at all (HEAD, 204, 304): the connection is free now, even if nobody polls.
            body.finish(true);
        }
        body
    }

    fn finish(&mut self, cleanly: bool) {
        if let Some(lease) = self.lease.take() {
            if cleanly && self.reusable && self.request.body_sent() {
                lease.release();
            }
        }
    }

    /// Poll the idle timer; `true` when the upstream has been silent too long.
    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = Instant::now() + self.idle;
        if !self.waiting {
            self.waiting = true;
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        self.timer
            .as_mut()
            .is_some_and(|timer| timer.as_mut().poll(cx).is_ready())
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.waiting = false;
                if this.inner.is_end_stream() {
                    this.finish(true);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.finish(false);
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Ready(None) => {
                this.finish(true);
                Poll::Ready(None)
            }
            Poll::Pending if this.timed_out(cx) => {
                this.finish(false);
                Poll::Ready(Some(Err(IdleTimeout(this.idle).into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // Read to the end but the final `None` never polled (a consumer may stop at
        // `is_end_stream`): still clean. Anything else left unread closes the connection.
        let ended = self.inner.is_end_stream();
        self.finish(ended);
    }
}
