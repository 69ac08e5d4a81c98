//! A response body that counts the bytes it yields and, when the body ends (or the client goes
//! away), records the request once: in the metrics always, in the access log when it is on. So
//! the counted size and duration are the real ones, and both see the same numbers.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::access_log::{AccessLog, Record};
use crate::body::{Body, BoxError};
use crate::metrics::{MethodLabel, RouteMetrics};

/// What to record when the response is done.
pub(crate) struct Completion {
    pub metrics: Arc<RouteMetrics>,
    pub method: MethodLabel,
    pub status: u16,
    pub started: Instant,
    /// The record and its log, only when the access log is on (building a record costs).
    pub log: Option<(Record, Arc<AccessLog>)>,
}

pub(crate) struct LoggedBody {
    inner: Body,
    bytes: u64,
    completion: Option<Completion>,
}

impl LoggedBody {
    pub(crate) fn wrap(inner: Body, completion: Completion) -> Body {
        let body = LoggedBody {
            inner,
            bytes: 0,
            completion: Some(completion),
        };
        http_body_util::BodyExt::boxed_unsync(body)
    }

    fn finish(&mut self) {
        let Some(completion) = self.completion.take() else {
            return;
        };
        let took = completion.started.elapsed();
        completion
            .metrics
            .finished(completion.method, completion.status, self.bytes, took);
        if let Some((mut record, log)) = completion.log {
            record.response_bytes = self.bytes;
            record.duration = took;
            log.log(record);
        }
    }
}

impl HttpBody for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish();
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.finish(),
            Poll::Pending => {}
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

impl Drop for LoggedBody {
    fn drop(&mut self) {
        // HEAD responses and empty bodies may never be polled; a client may leave mid-body.
        self.finish();
    }
}
