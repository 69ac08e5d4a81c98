//! App pool tests against real HTTP servers standing in for workers (port 0).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_config::model::{self, Launch};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::{mpsc, Notify};

use super::*;
use crate::body;
use crate::upstream::testing::{
    context, dead_address, eventually, get, serve, tcp, text, TestServer,
};

fn app(concurrency: usize, queue_size: usize, buffering: bool) -> model::App {
    model::App {
        name: "web".into(),
        launch: Launch::Command(vec!["true".into()]),
        directory: PathBuf::from("/"),
        env: BTreeMap::new(),
        workers: 1,
        concurrency,
        timeout: Duration::from_secs(5),
        graceful_timeout: Duration::from_secs(5),
        max_requests: 0,
        max_requests_jitter: 0,
        max_memory: None,
        startup_timeout: Duration::from_secs(5),
        queue_size,
        queue_timeout: Duration::from_secs(5),
        health: None,
        user: None,
        group: None,
        root_path: None,
        buffering,
    }
}

fn pool(app: &model::App) -> (Arc<AppPool>, mpsc::UnboundedReceiver<AppEvent>) {
    let (events, receiver) = mpsc::unbounded_channel();
    (AppPool::new(app, std::env::temp_dir(), events), receiver)
}

fn worker(id: WorkerId, server: &TestServer) -> WorkerEndpoint {
    WorkerEndpoint {
        id,
        pid: 1000 + id as u32,
        endpoint: server.endpoint(),
    }
}

/// A worker that answers `/wait` only once `gate` is notified, and counts requests in flight.
async fn gated_worker(gate: Arc<Notify>, in_flight: Arc<AtomicUsize>) -> TestServer {
    serve(move |request: Request<hyper::body::Incoming>| {
        let gate = gate.clone();
        let in_flight = in_flight.clone();
        async move {
            in_flight.fetch_add(1, Ordering::SeqCst);
            if request.uri().path() == "/wait" {
                gate.notified().await;
            }
            in_flight.fetch_sub(1, Ordering::SeqCst);
            Response::new(body::full("done"))
        }
    })
    .await
}

#[tokio::test]
async fn no_worker_answers_503_at_once() {
    let (pool, _events) = pool(&app(1, 10, false));
    let error = pool.forward(get("/"), &context()).await.unwrap_err();
    assert!(matches!(error, ProxyError::NoWorker { .. }));
    assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn concurrency_one_queues_the_second_request() {
    let gate = Arc::new(Notify::new());
    let in_flight = Arc::new(AtomicUsize::new(0));
    let server = gated_worker(gate.clone(), in_flight.clone()).await;
    let (pool, _events) = pool(&app(1, 10, false));
    pool.set_workers(&[worker(1, &server)]);

    let first = tokio::spawn({
        let pool = pool.clone();
        async move { text(pool.forward(get("/wait"), &context()).await.unwrap()).await }
    });
    eventually("first request at the worker", || {
        in_flight.load(Ordering::SeqCst) == 1
    })
    .await;
    let second = tokio::spawn({
        let pool = pool.clone();
        async move { text(pool.forward(get("/"), &context()).await.unwrap()).await }
    });
    eventually("second request queued", || pool.queue_depth() == 1).await;
    assert_eq!(
        in_flight.load(Ordering::SeqCst),
        1,
        "the worker never sees two at once"
    );
    gate.notify_one();
    assert_eq!(first.await.unwrap(), "done");
    assert_eq!(second.await.unwrap(), "done");
    assert_eq!(pool.queue_depth(), 0);
    assert_eq!(pool.served(1), 2);
}

#[tokio::test]
async fn full_queue_answers_503() {
    let gate = Arc::new(Notify::new());
    let in_flight = Arc::new(AtomicUsize::new(0));
    let server = gated_worker(gate.clone(), in_flight.clone()).await;
    let (pool, _events) = pool(&app(1, 0, false));
    pool.set_workers(&[worker(1, &server)]);
    let first = tokio::spawn({
        let pool = pool.clone();
        async move { pool.forward(get("/wait"), &context()).await.map(|_| ()) }
    });
    eventually("first request at the worker", || {
        in_flight.load(Ordering::SeqCst) == 1
    })
    .await;
    let error = pool.forward(get("/"), &context()).await.unwrap_err();
    assert!(matches!(error, ProxyError::QueueFull { .. }));
    let response = error.into_response();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(http::header::RETRY_AFTER));
    gate.notify_one();
    first.await.unwrap().unwrap();
}

#[tokio::test]
async fn queue_timeout_answers_503() {
    let gate = Arc::new(Notify::new());
    let in_flight = Arc::new(AtomicUsize::new(0));
    let server = gated_worker(gate.clone(), in_flight.clone()).await;
    let mut config = app(1, 10, false);
    config.queue_timeout = Duration::from_millis(100);
    let (pool, _events) = pool(&config);
    pool.set_workers(&[worker(1, &server)]);
    let _first = tokio::spawn({
        let pool = pool.clone();
        async move { pool.forward(get("/wait"), &context()).await.map(|_| ()) }
    });
    eventually("first request at the worker", || {
        in_flight.load(Ordering::SeqCst) == 1
    })
    .await;
    let error = pool.forward(get("/"), &context()).await.unwrap_err();
    assert!(matches!(error, ProxyError::QueueFull { .. }));
    assert_eq!(pool.queue_depth(), 0);
}

#[tokio::test]
async fn least_loaded_worker_wins() {
    let gate = Arc::new(Notify::new());
    let busy = Arc::new(AtomicUsize::new(0));
    let first = gated_worker(gate.clone(), busy.clone()).await;
    let idle = Arc::new(AtomicUsize::new(0));
    let second = gated_worker(gate.clone(), idle.clone()).await;
    let (pool, _events) = pool(&app(4, 10, false));
    pool.set_workers(&[worker(1, &first), worker(2, &second)]);
    let _held = tokio::spawn({
        let pool = pool.clone();
        async move { pool.forward(get("/wait"), &context()).await.map(|_| ()) }
    });
    eventually("one request held", || {
        busy.load(Ordering::SeqCst) + idle.load(Ordering::SeqCst) == 1
    })
    .await;
    let response = pool.forward(get("/"), &context()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(pool.served(1) + pool.served(2), 2);
    assert_eq!(pool.served(1), 1, "each worker got one");
    gate.notify_waiters();
}

#[tokio::test]
async fn unreachable_worker_is_skipped_and_reported() {
    let server = serve(|_request| async { Response::new(body::full("alive")) }).await;
    let (pool, mut events) = pool(&app(1, 10, false));
    let dead = WorkerEndpoint {
        id: 1,
        pid: 1,
        endpoint: tcp(dead_address().await),
    };
    pool.set_workers(&[dead, worker(2, &server)]);
    for _ in 0..3 {
        let response = pool.forward(get("/"), &context()).await.unwrap();
        assert_eq!(text(response).await, "alive");
    }
    assert_eq!(
        events.try_recv().unwrap(),
        AppEvent::Unreachable {
            app: "web".into(),
            worker: 1
        }
    );
    assert!(
        events.try_recv().is_err(),
        "reported once: it left the rotation"
    );
}

#[tokio::test]
async fn deadline_gives_504_and_evicts_the_worker() {
    let gate = Arc::new(Notify::new());
    let in_flight = Arc::new(AtomicUsize::new(0));
    let server = gated_worker(gate.clone(), in_flight.clone()).await;
    let mut config = app(1, 10, true);
    config.timeout = Duration::from_millis(200);
    let (pool, mut events) = pool(&config);
    pool.set_workers(&[worker(7, &server)]);
    let error = pool.forward(get("/wait"), &context()).await.unwrap_err();
    assert_eq!(error.status(), StatusCode::GATEWAY_TIMEOUT);
    match events.try_recv().unwrap() {
        AppEvent::TimedOut {
            worker, request_id, ..
        } => {
            assert_eq!(worker, 7);
            assert_eq!(request_id, "test-request-id");
        }
        other => panic!("unexpected {other:?}"),
    }
    // Out of rotation: the next request finds no worker rather than the stuck one.
    let error = pool.forward(get("/"), &context()).await.unwrap_err();
    assert!(matches!(error, ProxyError::NoWorker { .. }));
    gate.notify_waiters();
}

#[tokio::test]
async fn buffered_request_reaches_the_worker_with_a_content_length() {
    let server = serve(|request: Request<hyper::body::Incoming>| async move {
        let length = request
            .headers()
            .get("content-length")
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let chunked = request.headers().contains_key("transfer-encoding");
        let body = request.into_body().collect().await.unwrap().to_bytes();
        Response::new(body::full(format!("{length} {chunked} {}", body.len())))
    })
    .await;
    let (pool, _events) = pool(&app(1, 10, true));
    pool.set_workers(&[worker(1, &server)]);
    let data = crate::upstream::testing::pattern(3 * 1024 * 1024);
    let request = Request::post("/upload")
        .header("host", "app.test")
        .header("transfer-encoding", "chunked")
        .body(crate::upstream::testing::streaming_body(data))
        .unwrap();
    let response = pool.forward(request, &context()).await.unwrap();
    assert_eq!(response.headers()["content-length"], "21");
    assert_eq!(text(response).await, "3145728 false 3145728");
}

#[tokio::test]
async fn buffered_response_frees_the_slot_before_the_client_reads() {
    let server =
        serve(|_request| async { Response::new(body::full(vec![b'x'; 2 * 1024 * 1024])) }).await;
    let (pool, _events) = pool(&app(1, 0, true));
    pool.set_workers(&[worker(1, &server)]);
    // The client has not read a byte of the first response...
    let unread = pool.forward(get("/"), &context()).await.unwrap();
    // ...yet with one slot and no queue, a second request is served.
    let second = pool.forward(get("/"), &context()).await.unwrap();
    assert_eq!(
        second.into_body().collect().await.unwrap().to_bytes().len(),
        2 * 1024 * 1024
    );
    let first: Bytes = unread.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(first.len(), 2 * 1024 * 1024);
}

#[tokio::test]
async fn event_streams_are_not_buffered() {
    let server = serve(|_request| async {
        let (sender, receiver) =
            mpsc::channel::<Result<http_body::Frame<Bytes>, crate::body::BoxError>>(1);
        tokio::spawn(async move {
            let _ = sender
                .send(Ok(http_body::Frame::data(Bytes::from_static(
                    b"data: 1\n\n",
                ))))
                .await;
            // The stream stays open: a buffering proxy would never answer.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        });
        let mut response = Response::new(body::boxed(http_body_util::StreamBody::new(stream)));
        response.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("text/event-stream"),
        );
        response
    })
    .await;
    let (pool, _events) = pool(&app(1, 10, true));
    pool.set_workers(&[worker(1, &server)]);
    let response = pool.forward(get("/events"), &context()).await.unwrap();
    let mut body = response.into_body();
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(
        frame.into_data().unwrap(),
        Bytes::from_static(b"data: 1\n\n")
    );
}

#[tokio::test]
async fn shrinking_rotation_keeps_slot_count_right() {
    let gate = Arc::new(Notify::new());
    let in_flight = Arc::new(AtomicUsize::new(0));
    let first = gated_worker(gate.clone(), in_flight.clone()).await;
    let second = gated_worker(gate.clone(), in_flight.clone()).await;
    let (pool, _events) = pool(&app(1, 0, false));
    pool.set_workers(&[worker(1, &first), worker(2, &second)]);
    let held = tokio::spawn({
        let pool = pool.clone();
        async move { pool.forward(get("/wait"), &context()).await.map(|_| ()) }
    });
    eventually("one request held", || in_flight.load(Ordering::SeqCst) == 1).await;
    let busy = if pool.served(1) == 1 { 1 } else { 2 };
    let free = 3 - busy;
    // The busy worker leaves the rotation while its request is in flight.
    pool.set_workers(&[worker(free, if free == 1 { &first } else { &second })]);
    assert!(!pool.idle(busy), "still finishing its request");
    gate.notify_waiters();
    held.await.unwrap().unwrap();
    eventually("drained", || pool.idle(busy)).await;
    // One worker, one slot: one request is served, a concurrent second has no queue to wait in.
    let holding = tokio::spawn({
        let pool = pool.clone();
        async move { pool.forward(get("/wait"), &context()).await.map(|_| ()) }
    });
    eventually("one request held again", || {
        in_flight.load(Ordering::SeqCst) == 1
    })
    .await;
    let error = pool.forward(get("/"), &context()).await.unwrap_err();
    assert!(matches!(error, ProxyError::QueueFull { .. }), "{error}");
    gate.notify_waiters();
    holding.await.unwrap().unwrap();
}

#[tokio::test]
async fn retune_changes_concurrency_and_queue_for_new_requests() {
    let gate = Arc::new(Notify::new());
    let in_flight = Arc::new(AtomicUsize::new(0));
    let server = gated_worker(gate.clone(), in_flight.clone()).await;
    let (pool, _events) = pool(&app(1, 0, false));
    pool.set_workers(&[worker(1, &server)]);
    let spawn_wait = || {
        let pool = pool.clone();
        tokio::spawn(async move { pool.forward(get("/wait"), &context()).await.map(|_| ()) })
    };

    let first = spawn_wait();
    eventually("first request at the worker", || {
        in_flight.load(Ordering::SeqCst) == 1
    })
    .await;
    // Concurrency 1, no queue: a second request is turned away.
    let error = pool.forward(get("/"), &context()).await.unwrap_err();
    assert!(matches!(error, ProxyError::QueueFull { .. }));

    // A reload raises both: the worker takes a second request at once, and a third may wait.
    pool.retune(&app(2, 1, false));
    assert_eq!(pool.concurrency(), 2);
    let second = spawn_wait();
    eventually("second request at the worker", || {
        in_flight.load(Ordering::SeqCst) == 2
    })
    .await;
    let third = spawn_wait();
    eventually("third request queued", || pool.queue_depth() == 1).await;

    // Back to 1: the slots in use are forgotten as they come back, so one runs at a time again.
    pool.retune(&app(1, 1, false));
    for _ in 0..3 {
        gate.notify_one();
    }
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    eventually("third request at the worker", || {
        in_flight.load(Ordering::SeqCst) == 1 || pool.served(1) == 3
    })
    .await;
    gate.notify_one();
    third.await.unwrap().unwrap();
    assert_eq!(pool.served(1), 3);
    assert_eq!(pool.slots.available_permits(), 1);
}
