//! What crosses the wire: requests as the upstream receives them, bodies both ways, deadlines,
//! and upgrades, all against real servers on 127.0.0.1.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{request, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::body::{self, Body};
use crate::error::ProxyError;
use crate::forward::Served;
use crate::upstream::testing::{
    config, context, front, get, pattern, read_head, serve, streaming_body, tcp, text, TestServer,
};
use crate::upstream::Upstream;

/// An upstream that reports every request head it receives.
async fn recording() -> (TestServer, mpsc::UnboundedReceiver<request::Parts>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let server = serve(move |request: Request<Incoming>| {
        let sender = sender.clone();
        async move {
            let (parts, _) = request.into_parts();
            let _ = sender.send(parts);
            Response::new(body::full("ok"))
        }
    })
    .await;
    (server, receiver)
}

fn header<'a>(parts: &'a request::Parts, name: &str) -> Vec<&'a str> {
    parts
        .headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

#[tokio::test]
async fn upstream_receives_rewritten_headers() {
    let (server, mut received) = recording().await;
    let upstream = Upstream::new(&config(vec![server.endpoint()]));
    let request = Request::get("/path?q=1")
        .header("host", "shop.example")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("proxy-authorization", "Basic eA==")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-request-id", "from-client")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("x-end-to-end", "kept")
        .body(body::empty())
        .unwrap();

    let response = upstream.forward(request, &context()).await.unwrap();
    assert_eq!(text(response).await, "ok");
    let parts = received.recv().await.unwrap();

    assert_eq!(parts.uri, "/path?q=1");
    assert_eq!(parts.version, http::Version::HTTP_11);
    for gone in ["x-hop", "keep-alive", "te", "proxy-authorization"] {
        assert!(
            !parts.headers.contains_key(gone),
            "{gone} reached the upstream"
        );
    }
    // hyper's client may add its own `connection`, never the client's tokens.
    assert!(!header(&parts, "connection")
        .iter()
        .any(|v| v.contains("x-hop")));
    assert_eq!(header(&parts, "host"), ["shop.example"]);
    assert_eq!(
        header(&parts, "x-forwarded-for"),
        ["192.0.2.10"],
        "untrusted peer: replaced"
    );
    assert_eq!(header(&parts, "x-forwarded-proto"), ["http"]);
    assert_eq!(header(&parts, "x-forwarded-host"), ["shop.example"]);
    assert_eq!(header(&parts, "x-request-id"), ["test-request-id"]);
    assert_eq!(header(&parts, "cookie"), ["a=1; b=2"]);
    assert_eq!(header(&parts, "x-end-to-end"), ["kept"]);
}

#[tokio::test]
async fn trusted_peer_is_appended_to_forwarded_for_and_prefix_is_stripped() {
    let (server, mut received) = recording().await;
    let upstream = Upstream::new(&config(vec![server.endpoint()]));
    let mut context = context();
    context.peer_trusted = true;
    context.scheme = "https";
    context.path_and_query = Some("/inner?x=1".parse().unwrap());
    let request = Request::get("/api/inner?x=1")
        .header("host", "shop.example")
        .header("x-forwarded-for", "198.51.100.1")
        .body(body::empty())
        .unwrap();

    upstream.forward(request, &context).await.unwrap();
    let parts = received.recv().await.unwrap();
    assert_eq!(
        header(&parts, "x-forwarded-for"),
        ["198.51.100.1, 192.0.2.10"]
    );
    assert_eq!(header(&parts, "x-forwarded-proto"), ["https"]);
    assert_eq!(parts.uri, "/inner?x=1");
}

#[tokio::test]
async fn response_loses_hop_by_hop_headers_and_names_its_server() {
    let server = serve(|_request| async {
        Response::builder()
            .header("connection", "x-internal")
            .header("x-internal", "1")
            .header("keep-alive", "timeout=2")
            .header("set-cookie", "s=1")
            .body(body::full("hello"))
            .unwrap()
    })
    .await;
    let upstream = Upstream::new(&config(vec![server.endpoint()]));

    let response = upstream.forward(get("/"), &context()).await.unwrap();
    assert!(!response.headers().contains_key("x-internal"));
    assert!(!response.headers().contains_key("keep-alive"));
    assert_eq!(response.headers()["set-cookie"], "s=1");
    let served = response.extensions().get::<Served>().unwrap();
    assert_eq!(served.server, server.addr.to_string());
    assert_eq!(text(response).await, "hello");
}

#[tokio::test]
async fn five_mebibytes_stream_both_ways() {
    // The upstream echoes the body as it arrives, so both directions stream at once.
    let server = serve(|request: Request<Incoming>| async move {
        Response::new(body::boxed(request.into_body()))
    })
    .await;
    let upstream = Upstream::new(&config(vec![server.endpoint()]));
    let data = pattern(5 * 1024 * 1024);
    let request = Request::post("/echo")
        .header("host", "app.test")
        .body(streaming_body(data.clone()))
        .unwrap();

    let response = upstream.forward(request, &context()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let echoed = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(echoed.len(), data.len());
    assert!(echoed == data, "echoed body differs");
}

#[tokio::test]
async fn slow_upstream_is_a_504() {
    let server = serve(|_request| async {
        std::future::pending::<()>().await;
        Response::new(body::empty())
    })
    .await;
    let mut config = config(vec![server.endpoint()]);
    config.timeout = Duration::from_millis(200);
    let upstream = Upstream::new(&config);

    let error = upstream
        .forward(get("/slow"), &context())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProxyError::UpstreamTimeout { .. }),
        "{error:?}"
    );
    assert_eq!(error.status(), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn a_slow_client_body_is_not_the_upstreams_timeout() {
    let server = serve(|request: Request<Incoming>| async move {
        let body = request.into_body().collect().await.unwrap().to_bytes();
        Response::new(body::full(body))
    })
    .await;
    let mut config = config(vec![server.endpoint()]);
    config.timeout = Duration::from_millis(250);
    let upstream = Upstream::new(&config);
    // The client pauses longer than the upstream timeout between its chunks.
    let chunks = futures_util::stream::iter([&b"slow "[..], b"client"]).then(|chunk| async move {
        tokio::time::sleep(Duration::from_millis(750)).await;
        Ok::<_, crate::body::BoxError>(http_body::Frame::data(Bytes::from_static(chunk)))
    });
    let request = Request::post("/upload")
        .header("host", "app.test")
        .body(body::boxed(http_body_util::StreamBody::new(chunks)))
        .unwrap();

    let response = upstream.forward(request, &context()).await.unwrap();
    assert_eq!(text(response).await, "slow client");
}

#[tokio::test]
async fn an_upstream_that_stops_reading_the_body_is_a_504() {
    let server = serve(|_request| async {
        std::future::pending::<()>().await;
        Response::new(body::empty())
    })
    .await;
    let mut config = config(vec![server.endpoint()]);
    config.timeout = Duration::from_millis(200);
    let upstream = Upstream::new(&config);
    // Far more than the socket buffers hold, so the upload itself stalls.
    let request = Request::post("/upload")
        .header("host", "app.test")
        .body(streaming_body(pattern(32 * 1024 * 1024)))
        .unwrap();

    let error = upstream.forward(request, &context()).await.unwrap_err();
    assert!(
        matches!(error, ProxyError::UpstreamTimeout { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_early_answer_during_an_upload_does_not_pool_the_busy_connection() {
    // A raw upstream that answers at once and keeps every connection open, reading whatever
    // else arrives, as an app server that rejects an upload early may do.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                read_head(&mut stream).await.unwrap();
                let early = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly";
                stream.get_mut().write_all(early).await.unwrap();
                let _ = stream.read_to_end(&mut Vec::new()).await;
            });
        }
    });
    let mut config = config(vec![tcp(addr)]);
    // Waiting for the busy connection would take this long; the test times out first.
    config.connect_timeout = Duration::from_secs(60);
    let upstream = Upstream::new(&config);
    let stalled = futures_util::stream::iter([Ok::<_, crate::body::BoxError>(
        http_body::Frame::data(Bytes::from_static(b"part")),
    )])
    .chain(futures_util::stream::pending());
    let upload = Request::post("/upload")
        .header("host", "app.test")
        .body(body::boxed(http_body_util::StreamBody::new(stalled)))
        .unwrap();

    let response = upstream.forward(upload, &context()).await.unwrap();
    assert_eq!(text(response).await, "early");
    let context = context();
    let next = upstream.forward(get("/"), &context);
    let next = tokio::time::timeout(Duration::from_secs(10), next).await;
    assert_eq!(text(next.unwrap().unwrap()).await, "early");
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn request_body_over_the_limit_is_a_413() {
    // The upstream reads the whole body before answering, so the limit trips first.
    let server = serve(|request: Request<Incoming>| async move {
        let _ = request.into_body().collect().await;
        Response::new(body::empty())
    })
    .await;
    let upstream = Upstream::new(&config(vec![server.endpoint()]));
    let limited = Limited::new(streaming_body(pattern(256 * 1024)), 1000);
    let request = Request::post("/upload")
        .header("host", "app.test")
        .body(body::boxed(limited))
        .unwrap();

    let error = upstream.forward(request, &context()).await.unwrap_err();
    assert!(matches!(error, ProxyError::BodyTooLarge), "{error:?}");
    assert_eq!(error.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn unasked_101_is_a_502() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut stream = BufReader::new(stream);
        read_head(&mut stream).await.unwrap();
        let switch =
            b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: x\r\n\r\n";
        stream.get_mut().write_all(switch).await.unwrap();
        let _ = stream.read_to_end(&mut Vec::new()).await;
    });
    let upstream = Upstream::new(&config(vec![tcp(addr)]));

    let error = upstream.forward(get("/"), &context()).await.unwrap_err();
    assert_eq!(error.status(), StatusCode::BAD_GATEWAY, "{error:?}");
}

/// A raw WebSocket-style upstream: answers 101 and echoes every byte after it.
async fn echo_after_101() -> (std::net::SocketAddr, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (heads, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut stream = BufReader::new(stream);
        let head = read_head(&mut stream).await.unwrap();
        let _ = heads.send(head);
        let switch = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: x\r\n\r\n";
        stream.get_mut().write_all(switch).await.unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => stream.get_mut().write_all(&buf[..n]).await.unwrap(),
            }
        }
    });
    (addr, received)
}

#[tokio::test]
async fn websocket_upgrade_tunnels_bytes_both_ways() {
    let (addr, mut heads) = echo_after_101().await;
    let upstream = Upstream::new(&config(vec![tcp(addr)]));
    let (front, _front_task) = front(upstream).await;

    let mut client = BufReader::new(TcpStream::connect(front).await.unwrap());
    let request = "GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n";
    client
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .unwrap();
    let answer = read_head(&mut client).await.unwrap().to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 101"), "{answer}");
    assert!(answer.contains("upgrade: websocket"), "{answer}");
    assert!(answer.contains("sec-websocket-accept: x"), "{answer}");

    let head = heads.recv().await.unwrap().to_ascii_lowercase();
    assert!(head.contains("connection: upgrade\r\n"), "{head}");
    assert!(head.contains("upgrade: websocket\r\n"), "{head}");
    assert!(head.contains("sec-websocket-key: k\r\n"), "{head}");

    for message in [&b"ping"[..], b"second frame"] {
        client.get_mut().write_all(message).await.unwrap();
        let mut echoed = vec![0u8; message.len()];
        client.read_exact(&mut echoed).await.unwrap();
        assert_eq!(echoed, message);
    }
}

#[tokio::test]
async fn refused_upgrade_tunnels_nothing() {
    // The upstream refuses with a 200 and closes; it reports every byte it ever received.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (report, mut received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut stream = BufReader::new(stream);
        let mut seen = read_head(&mut stream).await.unwrap().into_bytes();
        let refuse = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno";
        stream.get_mut().write_all(refuse).await.unwrap();
        // Everything else until the proxy closes the connection.
        let _ = stream.read_to_end(&mut seen).await;
        let _ = report.send(String::from_utf8_lossy(&seen).into_owned());
    });
    let upstream = Upstream::new(&config(vec![tcp(addr)]));
    let (front, _front_task) = front(upstream).await;

    let mut client = BufReader::new(TcpStream::connect(front).await.unwrap());
    let request = "GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x00\x01RAW-TUNNEL-BYTES";
    client
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .unwrap();
    let answer = read_head(&mut client).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut body = [0u8; 2];
    client.read_exact(&mut body).await.unwrap();
    assert_eq!(&body, b"no");

    let seen = received.recv().await.unwrap();
    assert!(seen.starts_with("GET /ws HTTP/1.1"), "{seen}");
    assert!(
        !seen.contains("RAW-TUNNEL-BYTES"),
        "client bytes reached the upstream: {seen}"
    );
}

#[tokio::test]
async fn head_and_empty_responses_free_the_connection_at_once() {
    let server = serve(|request: Request<Incoming>| async move {
        let status = if request.method() == http::Method::HEAD {
            200
        } else {
            204
        };
        Response::builder()
            .status(status)
            .header("content-length", if status == 200 { "5" } else { "0" })
            .body(body::empty())
            .unwrap()
    })
    .await;
    let upstream = Upstream::new(&config(vec![server.endpoint()]));
    for _ in 0..3 {
        let head = Request::head("/")
            .header("host", "a")
            .body(body::empty())
            .unwrap();
        // Bodies dropped unpolled, as a server does for HEAD.
        drop(upstream.forward(head, &context()).await.unwrap());
        drop(upstream.forward(get("/"), &context()).await.unwrap());
    }
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn upstream_stalling_mid_body_ends_the_body_with_an_error() {
    let server = serve(|_request| async {
        let first = http_body::Frame::data(Bytes::from_static(b"first"));
        let stalls = futures_util::stream::iter([Ok::<_, crate::body::BoxError>(first)])
            .chain(futures_util::stream::pending());
        Response::new(body::boxed(http_body_util::StreamBody::new(stalls)))
    })
    .await;
    let mut config = config(vec![server.endpoint()]);
    config.timeout = Duration::from_millis(500);
    let upstream = Upstream::new(&config);

    let response = upstream.forward(get("/"), &context()).await.unwrap();
    let mut body: Body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "first");
    let error = body.frame().await.unwrap().unwrap_err();
    assert!(error.is::<super::IdleTimeout>(), "{error}");
}
