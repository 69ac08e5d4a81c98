//! Servers, pools and balancing against real upstreams on 127.0.0.1 and a Unix socket.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gatehouse_config::model::{Endpoint, Health};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::testing::{
    config, context, dead_address, eventually, get, pattern, read_head, serve, serve_unix,
    served_by, streaming_body, tcp, text, TestServer,
};
use super::Upstream;
use crate::body;
use crate::error::ProxyError;

/// A server that answers every request with its own name.
async fn named(name: &'static str) -> TestServer {
    serve(move |_request| async move { Response::new(body::full(name)) }).await
}

#[tokio::test]
async fn sequential_requests_share_one_connection() {
    let server = named("a").await;
    let upstream = Upstream::new(&config(vec![server.endpoint()]));
    for _ in 0..20 {
        let response = upstream.forward(get("/"), &context()).await.unwrap();
        assert_eq!(text(response).await, "a");
    }
    assert_eq!(server.connections(), 1);
    assert_eq!(upstream.servers[0].outstanding(), 0);
}

#[tokio::test]
async fn a_body_dropped_unread_closes_its_connection() {
    let server =
        serve(|_request| async { Response::new(streaming_body(pattern(1024 * 1024))) }).await;
    let upstream = Upstream::new(&config(vec![server.endpoint()]));

    let response = upstream.forward(get("/big"), &context()).await.unwrap();
    let mut body = response.into_body();
    body.frame().await.unwrap().unwrap();
    drop(body);
    assert_eq!(upstream.servers[0].outstanding(), 0);

    let response = upstream.forward(get("/big"), &context()).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(bytes.len(), 1024 * 1024);
    assert_eq!(
        server.connections(),
        2,
        "a half-read connection must not be reused"
    );
}

/// A raw upstream: its first connection answers garbage, later ones answer properly.
async fn garbage_first() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let index = counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                while read_head(&mut stream).await.is_some() {
                    let answer: &[u8] = if index == 0 {
                        b"garbage that is no HTTP\r\n\r\n"
                    } else {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                    };
                    if stream.get_mut().write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, connections)
}

#[tokio::test]
async fn malformed_response_is_a_502_and_its_connection_is_not_reused() {
    let (addr, connections) = garbage_first().await;
    let upstream = Upstream::new(&config(vec![tcp(addr)]));

    let error = upstream.forward(get("/"), &context()).await.unwrap_err();
    assert!(matches!(error, ProxyError::Upstream { .. }), "{error:?}");
    assert_eq!(error.status(), StatusCode::BAD_GATEWAY);

    let response = upstream.forward(get("/"), &context()).await.unwrap();
    assert_eq!(text(response).await, "ok");
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connections_the_upstream_closed_are_replaced_transparently() {
    // Answers one request per connection, then closes without saying so.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let mut stream = BufReader::new(stream);
            if read_head(&mut stream).await.is_some() {
                let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                let _ = stream.get_mut().write_all(ok).await;
            }
        }
    });
    let upstream = Upstream::new(&config(vec![tcp(addr)]));
    for _ in 0..5 {
        let response = upstream.forward(get("/"), &context()).await.unwrap();
        assert_eq!(text(response).await, "ok");
    }
}

#[tokio::test]
async fn a_refused_connect_moves_on_to_the_next_server() {
    let dead = dead_address().await;
    let live = named("live").await;
    let upstream = Upstream::new(&config(vec![tcp(dead), live.endpoint()]));
    for _ in 0..4 {
        let response = upstream.forward(get("/"), &context()).await.unwrap();
        assert_eq!(served_by(&response), live.addr.to_string());
        assert_eq!(text(response).await, "live");
    }
    let status = upstream.servers();
    assert!(
        !status[0].in_rotation,
        "the refusing server goes to the back"
    );
    assert!(status[1].in_rotation);
}

#[tokio::test]
async fn every_server_refusing_is_a_502() {
    let upstream = Upstream::new(&config(vec![
        tcp(dead_address().await),
        tcp(dead_address().await),
    ]));
    for _ in 0..2 {
        let error = upstream.forward(get("/"), &context()).await.unwrap_err();
        assert!(matches!(error, ProxyError::Connect { .. }), "{error:?}");
        assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
    }
}

#[tokio::test]
async fn servers_marked_down_are_still_tried_when_all_are_down() {
    let server = named("a").await;
    let upstream = Upstream::new(&config(vec![server.endpoint()]));
    upstream.servers[0].mark_unreachable();
    assert!(!upstream.servers()[0].in_rotation);
    let response = upstream.forward(get("/"), &context()).await.unwrap();
    assert_eq!(text(response).await, "a");
}

/// A server that holds `/slow` until released and reports its arrival; anything else answers
/// with its name at once.
async fn holding(
    name: &'static str,
    arrived: mpsc::UnboundedSender<&'static str>,
    release: watch::Receiver<bool>,
) -> TestServer {
    serve(move |request: Request<Incoming>| {
        let (arrived, mut release) = (arrived.clone(), release.clone());
        async move {
            if request.uri().path() == "/slow" {
                let _ = arrived.send(name);
                let _ = release.wait_for(|released| *released).await;
            }
            Response::new(body::full(name))
        }
    })
    .await
}

#[tokio::test]
async fn least_outstanding_prefers_the_idle_server() {
    let (arrived, mut arrivals) = mpsc::unbounded_channel();
    let (release, released) = watch::channel(false);
    let a = holding("a", arrived.clone(), released.clone()).await;
    let b = holding("b", arrived, released).await;
    let upstream = Upstream::new(&config(vec![a.endpoint(), b.endpoint()]));

    let slow = tokio::spawn({
        let upstream = upstream.clone();
        async move { text(upstream.forward(get("/slow"), &context()).await.unwrap()).await }
    });
    let busy = arrivals.recv().await.unwrap();
    let idle = if busy == "a" { "b" } else { "a" };
    for _ in 0..6 {
        let response = upstream.forward(get("/fast"), &context()).await.unwrap();
        assert_eq!(text(response).await, idle);
    }

    release.send(true).unwrap();
    assert_eq!(slow.await.unwrap(), busy);
}

#[tokio::test]
async fn unix_socket_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upstream.sock");
    let _server = serve_unix(&path, |request: Request<Incoming>| async move {
        let host = request.headers()["host"].to_str().unwrap().to_owned();
        Response::new(body::full(format!("unix saw host {host}")))
    });
    let upstream = Upstream::new(&config(vec![Endpoint::Unix(path.clone())]));

    let response = upstream.forward(get("/"), &context()).await.unwrap();
    assert_eq!(served_by(&response), format!("unix:{}", path.display()));
    assert_eq!(text(response).await, "unix saw host app.test");
}

#[tokio::test]
async fn health_checks_take_a_failing_server_out_and_bring_it_back() {
    let failing = Arc::new(AtomicBool::new(true));
    let sick = serve({
        let failing = failing.clone();
        move |request: Request<Incoming>| {
            let failing = failing.load(Ordering::SeqCst);
            async move {
                let status = if request.uri().path() == "/health" && failing {
                    503
                } else {
                    200
                };
                let mut response = Response::new(body::full("sick"));
                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                response
            }
        }
    })
    .await;
    let well = named("well").await;
    let mut config = config(vec![sick.endpoint(), well.endpoint()]);
    config.health = Some(Health {
        path: Some("/health".to_owned()),
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(500),
        failures: 2,
    });
    let upstream = Upstream::new(&config);
    let _checks = upstream.spawn_health_checks().unwrap();

    eventually("the failing server to leave rotation", || {
        !upstream.servers()[0].in_rotation
    })
    .await;
    for _ in 0..6 {
        let response = upstream.forward(get("/"), &context()).await.unwrap();
        assert_eq!(text(response).await, "well");
    }

    failing.store(false, Ordering::SeqCst);
    eventually("the server to come back", || {
        upstream.servers()[0].in_rotation
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = upstream.forward(get("/"), &context()).await.unwrap();
        if text(response).await == "sick" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server never got traffic again"
        );
    }
}

#[tokio::test]
async fn no_health_config_no_checks() {
    let upstream = Upstream::new(&config(vec![tcp(dead_address().await)]));
    assert!(upstream.spawn_health_checks().is_none());
}
