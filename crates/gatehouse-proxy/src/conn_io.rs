//! The connection's byte stream as hyper sees it, with gatehouse's two read deadlines.
//!
//! - **Header timeout** (`limits.header_timeout`): once the first byte of a request head arrives,
//!   the whole head must arrive in time, or the client gets `408 Request Timeout` and the
//!   connection closes (slowloris defence). A fresh connection that sends nothing at all within
//!   the same time is closed silently, as Nginx does.
//! - **Keep-alive timeout** (`limits.keepalive_timeout`): a connection with no request in flight and
//!   no traffic for that long is closed.
//!
//! hyper's own `header_read_timeout` cannot do this: it closes without a 408 and its clock also
//! runs while a keep-alive connection sits idle, so the two limits could not differ. The wrapper
//! learns where requests begin and end from [`ConnState`], which the service updates.

mod head_scan;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pub use head_scan::MAX_REQUEST_LINE;
use head_scan::{HeadScanner, Scan};

const URI_TOO_LONG_RESPONSE: &[u8] = b"HTTP/1.1 414 URI Too Long\r\n\
content-type: text/plain; charset=utf-8\r\ncontent-length: 17\r\nconnection: close\r\n\r\n\
414 URI Too Long\n";

const REQUEST_TIMEOUT_RESPONSE: &[u8] = b"HTTP/1.1 408 Request Timeout\r\n\
content-type: text/plain; charset=utf-8\r\ncontent-length: 20\r\nconnection: close\r\n\r\n\
408 Request Timeout\n";

/// What the service tells the connection: requests started and finished, and the protocol.
#[derive(Debug, Default)]
pub struct ConnState {
    started: AtomicU64,
    finished: AtomicU64,
    http2: AtomicBool,
    /// The connection switched protocols (WebSocket): its bytes are no longer HTTP.
    upgraded: AtomicBool,
    /// The number of the request whose head carried both Content-Length and Transfer-Encoding.
    flagged_request: AtomicU64,
}

impl ConnState {
    pub fn new(http2: bool) -> Arc<Self> {
        Arc::new(ConnState {
            http2: AtomicBool::new(http2),
            ..ConnState::default()
        })
    }

    /// Marks a request as in flight until the returned guard is dropped (response head ready,
    /// or the request abandoned).
    pub fn begin_request(self: &Arc<Self>) -> RequestGuard {
        let number = self.started.fetch_add(1, Ordering::Relaxed) + 1;
        RequestGuard {
            state: Arc::clone(self),
            number,
        }
    }

    /// After a 101: stop treating the bytes as HTTP (no deadlines, no head checks).
    pub fn mark_upgraded(&self) {
        self.upgraded.store(true, Ordering::Relaxed);
    }

    fn in_flight(&self) -> bool {
        self.started.load(Ordering::Relaxed) != self.finished.load(Ordering::Relaxed)
    }
}

pub struct RequestGuard {
    state: Arc<ConnState>,
    /// 1 for the connection's first request.
    number: u64,
}

impl RequestGuard {
    /// The request's head carried both Content-Length and Transfer-Encoding (hyper keeps only
    /// the latter, so the header map cannot tell).
    pub fn had_length_and_chunked(&self) -> bool {
        self.state.flagged_request.load(Ordering::Relaxed) == self.number
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.state.finished.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    /// Nothing pending: a request is in flight.
    None,
    /// Close silently at this instant.
    Idle(Instant),
    /// Answer 408 and close at this instant.
    Head(Instant),
}

/// Wraps the plaintext stream of one client connection (above TLS, below hyper).
pub struct ConnIo<S> {
    inner: S,
    state: Arc<ConnState>,
    header_timeout: Duration,
    keepalive_timeout: Duration,
    accepted_at: Instant,
    last_activity: Instant,
    /// When the head being read now began to arrive.
    head_started: Option<Instant>,
    /// `started` count at the time we last saw bytes: a change means hyper dispatched a request.
    seen_started: u64,
    any_bytes: bool,
    /// Watches the head being read, if it began at a read boundary between requests.
    scanner: Option<HeadScanner>,
    /// The number the scanned head's request will get when hyper dispatches it.
    scanned_request: u64,
    /// The request line was too long: answer 414 on the next read.
    reject_uri: bool,
    armed: Deadline,
    sleep: Pin<Box<Sleep>>,
    /// When `sleep` fires; it may be earlier than `armed` (see `poll_read`).
    sleep_at: Instant,
}

impl<S> ConnIo<S> {
    pub fn new(
        inner: S,
        state: Arc<ConnState>,
        header_timeout: Duration,
        keepalive_timeout: Duration,
    ) -> Self {
        let now = Instant::now();
        ConnIo {
            inner,
            state,
            header_timeout,
            keepalive_timeout,
            accepted_at: now,
            last_activity: now,
            head_started: None,
            seen_started: 0,
            any_bytes: false,
            scanner: None,
            scanned_request: 0,
            reject_uri: false,
            armed: Deadline::None,
            sleep: Box::pin(tokio::time::sleep_until(now + header_timeout)),
            sleep_at: now + header_timeout,
        }
    }

    fn on_bytes_read(&mut self, bytes: &[u8]) {
        let now = Instant::now();
        if !self.any_bytes && bytes.starts_with(b"PRI * HTTP/2.0") {
            self.state.http2.store(true, Ordering::Relaxed);
        }
        self.any_bytes = true;
        self.last_activity = now;
        let started = self.state.started.load(Ordering::Relaxed);
        if started != self.seen_started {
            // hyper dispatched a request since: whatever head was pending is complete.
            self.seen_started = started;
            self.head_started = None;
        }
        let between_requests = !self.state.in_flight();
        if between_requests
            && self.head_started.is_none()
            && !self.state.http2.load(Ordering::Relaxed)
        {
            self.head_started = Some(now);
            self.scanner = Some(HeadScanner::new());
            self.scanned_request = started + 1;
        }
        if let Some(scanner) = &mut self.scanner {
            match scanner.feed(bytes) {
                Scan::More => {}
                Scan::RequestLineTooLong => {
                    self.reject_uri = true;
                    self.scanner = None;
                }
                Scan::Done(facts) => {
                    if facts.length_and_chunked {
                        self.state
                            .flagged_request
                            .store(self.scanned_request, Ordering::Relaxed);
                    }
                    self.scanner = None;
                }
            }
        }
    }

    fn desired_deadline(&self) -> Deadline {
        if self.state.in_flight() {
            return Deadline::None;
        }
        if self.state.started.load(Ordering::Relaxed) != self.seen_started {
            // A request came and went since the last read; any head we timed is complete.
            return Deadline::Idle(self.last_activity + self.keepalive_timeout);
        }
        match self.head_started {
            Some(started) => Deadline::Head(started + self.header_timeout),
            None if !self.any_bytes => Deadline::Idle(self.accepted_at + self.header_timeout),
            None => Deadline::Idle(self.last_activity + self.keepalive_timeout),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ConnIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.state.upgraded.load(Ordering::Relaxed) {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if this.reject_uri {
            let _ = Pin::new(&mut this.inner).poll_write(cx, URI_TOO_LONG_RESPONSE);
            let _ = Pin::new(&mut this.inner).poll_flush(cx);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let filled = buf.filled();
                if filled.len() > before {
                    this.on_bytes_read(&filled[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => {
                this.armed = this.desired_deadline();
                let (Deadline::Idle(at) | Deadline::Head(at)) = this.armed else {
                    return Poll::Pending;
                };
                // The timer moves only when the deadline comes closer; a later deadline (the
                // usual case: each request pushes the idle limit out) is checked when the
                // earlier timer fires, which saves a timer-wheel update per request.
                if at < this.sleep_at {
                    this.sleep.as_mut().reset(at);
                    this.sleep_at = at;
                }
                loop {
                    if this.sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    if Instant::now() >= at {
                        break;
                    }
                    this.sleep.as_mut().reset(at);
                    this.sleep_at = at;
                }
                if let Deadline::Head(_) = this.armed {
                    // Best effort: the socket buffer is empty while we wait for a head, so this
                    // small write normally completes at once; if not, closing is the answer.
                    let _ = Pin::new(&mut this.inner).poll_write(cx, REQUEST_TIMEOUT_RESPONSE);
                    let _ = Pin::new(&mut this.inner).poll_flush(cx);
                    tracing::debug!("request head not complete in time: 408");
                }
                // End of stream: hyper closes the connection.
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ConnIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(written)) = result {
            if written > 0 {
                this.last_activity = Instant::now();
            }
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(written)) = result {
            if written > 0 {
                this.last_activity = Instant::now();
            }
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn read_all(io: &mut ConnIo<tokio::io::DuplexStream>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            let n = io.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn partial_head_gets_408() {
        let (server, mut client) = tokio::io::duplex(1024);
        let state = ConnState::new(false);
        let mut io = ConnIo::new(
            server,
            state,
            Duration::from_secs(10),
            Duration::from_secs(75),
        );
        client.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
        let read = read_all(&mut io).await;
        assert_eq!(read, b"GET / HTTP/1.1\r\nHo");
        drop(io);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 408"));
    }

    #[tokio::test(start_paused = true)]
    async fn overlong_request_line_gets_414() {
        let (server, mut client) = tokio::io::duplex(64 * 1024);
        let mut io = ConnIo::new(
            server,
            ConnState::new(false),
            Duration::from_secs(10),
            Duration::from_secs(75),
        );
        let line = format!("GET /{} HTTP/1.1", "a".repeat(MAX_REQUEST_LINE));
        client.write_all(line.as_bytes()).await.unwrap();
        let _ = read_all(&mut io).await;
        drop(io);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 414"));
    }

    #[tokio::test(start_paused = true)]
    async fn silent_connection_closes_without_answer() {
        let (server, mut client) = tokio::io::duplex(1024);
        let mut io = ConnIo::new(
            server,
            ConnState::new(false),
            Duration::from_secs(10),
            Duration::from_secs(75),
        );
        assert!(read_all(&mut io).await.is_empty());
        drop(io);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert!(answer.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn no_deadline_while_a_request_is_in_flight() {
        let (server, mut client) = tokio::io::duplex(1024);
        let state = ConnState::new(false);
        let mut io = ConnIo::new(
            server,
            state.clone(),
            Duration::from_secs(1),
            Duration::from_secs(2),
        );
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert!(io.read(&mut buf).await.unwrap() > 0);
        let guard = state.begin_request();
        let pending = tokio::time::timeout(Duration::from_secs(3600), io.read(&mut buf)).await;
        assert!(
            pending.is_err(),
            "no deadline may fire while a request is in flight"
        );
        drop(guard);
        // Now idle: the keep-alive timeout closes it.
        assert_eq!(io.read(&mut buf).await.unwrap(), 0);
    }
}
