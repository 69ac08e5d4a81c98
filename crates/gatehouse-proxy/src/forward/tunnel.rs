//! A WebSocket connection after the upstream answered 101: bytes copied both ways until either
//! side closes, or until no byte has moved either way for `limits.websocket_idle_timeout`
//! (a peer that vanished without a FIN would otherwise hold the tunnel, its worker slot and two
//! sockets forever).
//!
//! The tunnel exists only after a 101, so bytes a client sends after a refused upgrade request
//! are never tunnelled (Pingora CVE-2026-2833).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::upstream::server::Lease;

/// Join the client's and the upstream's upgraded connections in a task of their own. The lease
/// keeps the tunnel counted as outstanding on its server while it lasts.
pub(crate) fn spawn(
    client: OnUpgrade,
    upstream: OnUpgrade,
    lease: Lease,
    idle_timeout: Option<Duration>,
) {
    tokio::spawn(async move {
        let server = lease.server().label().to_owned();
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(error) => {
                tracing::debug!(%server, %error, "upgrade did not complete");
                return;
            }
        };
        match join(TokioIo::new(client), TokioIo::new(upstream), idle_timeout).await {
            Ok(Ended::Closed(sent, received)) => {
                tracing::debug!(%server, sent, received, "tunnel closed")
            }
            Ok(Ended::Idle) => tracing::debug!(%server, "tunnel idle too long; closed"),
            Err(error) => tracing::debug!(%server, %error, "tunnel broke"),
        }
        drop(lease);
    });
}

/// How a tunnel ended without an error.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// Both sides closed; bytes sent to the upstream and received from it.
    Closed(u64, u64),
    /// Nothing moved for the idle timeout; both connections are dropped.
    Idle,
}

/// Copies both ways until both sides close, or until nothing has moved for `idle_timeout`.
async fn join<C, U>(client: C, upstream: U, idle_timeout: Option<Duration>) -> io::Result<Ended>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let moved = Arc::new(AtomicU64::new(0));
    let mut client = Counted::new(client, Arc::clone(&moved));
    let mut upstream = Counted::new(upstream, Arc::clone(&moved));
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    let Some(idle_timeout) = idle_timeout else {
        let (sent, received) = copy.await?;
        return Ok(Ended::Closed(sent, received));
    };
    tokio::pin!(copy);
    // Look a few times per timeout: a tunnel is closed between 1 and 1.25 timeouts of silence.
    let mut looks = tokio::time::interval((idle_timeout / 4).max(Duration::from_millis(10)));
    let mut seen = 0;
    let mut quiet_since = Instant::now();
    loop {
        tokio::select! {
            copied = &mut copy => {
                let (sent, received) = copied?;
                return Ok(Ended::Closed(sent, received));
            }
            _ = looks.tick() => {
                let now = moved.load(Ordering::Relaxed);
                if now != seen {
                    seen = now;
                    quiet_since = Instant::now();
                } else if quiet_since.elapsed() >= idle_timeout {
                    return Ok(Ended::Idle);
                }
            }
        }
    }
}

pin_project! {
    /// A stream that adds the bytes read from it to a shared count.
    struct Counted<T> {
        #[pin]
        inner: T,
        moved: Arc<AtomicU64>,
    }
}

impl<T> Counted<T> {
    fn new(inner: T, moved: Arc<AtomicU64>) -> Self {
        Counted { inner, moved }
    }
}

impl<T: AsyncRead> AsyncRead for Counted<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        if read > 0 {
            this.moved.fetch_add(read as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite> AsyncWrite for Counted<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_quiet_tunnel_is_closed_after_the_idle_timeout_and_traffic_keeps_it_open() {
        let (client, mut client_end) = tokio::io::duplex(64);
        let (upstream, mut upstream_end) = tokio::io::duplex(64);
        let started = Instant::now();
        let tunnel = tokio::spawn(join(client, upstream, Some(Duration::from_secs(60))));

        // A message each way every 50 s: never 60 s of silence.
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_secs(50)).await;
            client_end.write_all(b"ping").await.unwrap();
            let mut four = [0; 4];
            upstream_end.read_exact(&mut four).await.unwrap();
            upstream_end.write_all(b"pong").await.unwrap();
            client_end.read_exact(&mut four).await.unwrap();
        }
        assert!(!tunnel.is_finished(), "traffic keeps the tunnel open");

        // Then silence: closed once 60 s have passed with nothing moving.
        assert_eq!(tunnel.await.unwrap().unwrap(), Ended::Idle);
        let quiet = started.elapsed() - Duration::from_secs(200);
        assert!(quiet >= Duration::from_secs(60), "{quiet:?}");
        assert!(quiet <= Duration::from_secs(80), "{quiet:?}");
        // Both ends see the close.
        let mut rest = Vec::new();
        assert_eq!(client_end.read_to_end(&mut rest).await.unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_timeout_the_tunnel_ends_when_both_sides_close() {
        let (client, mut client_end) = tokio::io::duplex(64);
        let (upstream, mut upstream_end) = tokio::io::duplex(64);
        let tunnel = tokio::spawn(join(client, upstream, None));
        tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
        client_end.write_all(b"hello").await.unwrap();
        client_end.shutdown().await.unwrap();
        let mut got = Vec::new();
        upstream_end.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello");
        upstream_end.shutdown().await.unwrap();
        assert_eq!(tunnel.await.unwrap().unwrap(), Ended::Closed(5, 0));
    }
}
