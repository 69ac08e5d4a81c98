//! Test support for forwarding: real upstream servers on 127.0.0.1 port 0 (or a Unix socket),
//! a front server that forwards through an [`Upstream`], and small helpers.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_config::model::{self, Endpoint};
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;

use super::Upstream;
use crate::body::{self, Body};
use crate::forward::{Context, Served};

pub(crate) fn config(servers: Vec<Endpoint>) -> model::Upstream {
    model::Upstream {
        name: "api".to_owned(),
        servers,
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(10),
        health: None,
    }
}

pub(crate) fn tcp(addr: SocketAddr) -> Endpoint {
    Endpoint::Tcp(addr.to_string())
}

pub(crate) fn context() -> Context {
    Context {
        client_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
        peer_trusted: false,
        real_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
        scheme: "http",
        request_id: HeaderValue::from_static("test-request-id"),
        path_and_query: None,
        websocket_idle_timeout: None,
    }
}

pub(crate) fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", "app.test")
        .body(body::empty())
        .unwrap()
}

pub(crate) async fn text(response: Response<Body>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Which server answered, from the access-log extension.
pub(crate) fn served_by(response: &Response<Body>) -> String {
    response
        .extensions()
        .get::<Served>()
        .unwrap()
        .server
        .clone()
}

/// A port nothing listens on (bound, then released).
pub(crate) async fn dead_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// Wait until `condition` holds, failing the test after a generous deadline.
pub(crate) async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A hyper HTTP/1.1 server; counts the connections it accepted. Stops when dropped.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TestServer {
    pub(crate) fn endpoint(&self) -> Endpoint {
        tcp(self.addr)
    }

    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) async fn serve<H, F>(handler: H) -> TestServer
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            serve_connection(stream, handler.clone());
        }
    });
    TestServer {
        addr,
        connections,
        task,
    }
}

/// Like [`serve`], on a Unix socket at `path`.
pub(crate) fn serve_unix<H, F>(path: &Path, handler: H) -> JoinHandle<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            serve_connection(stream, handler.clone());
        }
    })
}

fn serve_connection<S, H, F>(stream: S, handler: H)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    tokio::spawn(async move {
        let service = service_fn(move |request| {
            let response = handler(request);
            async move { Ok::<_, std::convert::Infallible>(response.await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
            .await;
    });
}

/// A client-facing server that forwards every request through `upstream`, as the real service
/// will: needed where a real client connection matters (upgrades).
pub(crate) async fn front(upstream: Arc<Upstream>) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let upstream = upstream.clone();
            serve_connection(stream, move |request: Request<Incoming>| {
                let upstream = upstream.clone();
                async move {
                    let mut context = context();
                    context.client_ip = peer.ip();
                    let request = request.map(body::boxed);
                    match upstream.forward(request, &context).await {
                        Ok(response) => response,
                        Err(error) => error.into_response(),
                    }
                }
            });
        }
    });
    (addr, task)
}

/// Read one request or response head (up to the blank line) from a raw stream.
pub(crate) async fn read_head<S: AsyncRead + Unpin>(reader: &mut BufReader<S>) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            return Some(head);
        }
    }
}

/// A body of `len` bytes in 64 KiB chunks with a recognisable pattern.
pub(crate) fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

pub(crate) fn streaming_body(data: Vec<u8>) -> Body {
    let chunks: Vec<Result<http_body::Frame<Bytes>, crate::body::BoxError>> = data
        .chunks(64 * 1024)
        .map(|chunk| Ok(http_body::Frame::data(Bytes::copy_from_slice(chunk))))
        .collect();
    body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
        chunks,
    )))
}
