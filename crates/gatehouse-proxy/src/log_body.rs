//! A response body that counts the bytes it yields and writes the access-log record when the body
//! ends (or the client goes away), so the logged size and duration are the real ones.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::access_log::{AccessLog, Record};
use crate::body::{Body, BoxError};

pub(crate) struct LoggedBody {
    inner: Body,
    bytes: u64,
    started: Instant,
    record: Option<Record>,
    log: Arc<AccessLog>,
}

impl LoggedBody {
    pub(crate) fn wrap(inner: Body, record: Record, started: Instant, log: Arc<AccessLog>) -> Body {
        let body = LoggedBody {
            inner,
            bytes: 0,
            started,
            record: Some(record),
            log,
        };
        http_body_util::BodyExt::boxed_unsync(body)
    }

    fn finish(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.response_bytes = self.bytes;
            record.duration = self.started.elapsed();
            self.log.log(record);
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
