//! An app's workers as the proxy sees them: which may take requests, at most `concurrency`
//! requests in flight on each, and one bounded FIFO queue of requests waiting for a free slot.
//!
//! The proxy does not know about processes. The binary tells the pool which workers are in
//! rotation ([`AppPool::set_workers`], from the supervisor's published list) and hears back
//! [`AppEvent`]s (a worker refused a connection, a request hit the deadline).
//!
//! Slots are permits of one fair (FIFO) semaphore holding `concurrency` permits per worker in
//! rotation: a request first waits for a permit (bounded by `queue_size` and `queue_timeout`),
//! then takes the least-loaded worker with a free slot. When the rotation shrinks while permits
//! are in use, the excess is forgotten as those permits come back (`debt`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use gatehouse_config::model::{self, Endpoint};
use http::{header, HeaderValue, Request, Response};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::body::{self, Body};
use crate::error::ProxyError;
use crate::forward::{self, Outgoing, Sent};
use crate::metrics::{AppMetrics, Rejection};
use crate::spool::Spooled;
use crate::upstream::server::{Lease, Server};

#[cfg(test)]
mod tests;

pub type WorkerId = u64;

/// Workers are local; one that cannot accept a connection within this is sick.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A worker the supervisor published as ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerEndpoint {
    pub id: WorkerId,
    pub pid: u32,
    pub endpoint: Endpoint,
}

/// What the pool tells the supervisor (through the binary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppEvent {
    /// A connect to this worker failed; the pool already took it out of rotation.
    Unreachable { app: String, worker: WorkerId },
    /// A request passed the app's `timeout`; the client got 504 and the pool took the worker out.
    TimedOut {
        app: String,
        worker: WorkerId,
        pid: u32,
        request_id: String,
    },
}

/// Put into the extensions of every response a worker answered: the time the request waited in
/// the queue for a slot, for the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    pub wait: Duration,
}

/// A worker as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerLoad {
    pub id: WorkerId,
    pub in_flight: usize,
    pub served: u64,
    pub in_rotation: bool,
}

pub struct AppPool {
    name: String,
    /// The settings a reload may change without new workers ([`AppPool::retune`]).
    tuning: ArcSwap<Tuning>,
    /// Where buffered bodies larger than memory allows are spooled.
    spool_dir: PathBuf,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    state: Mutex<State>,
    events: mpsc::UnboundedSender<AppEvent>,
    /// Queue waits and rejections; set once by the binary ([`AppPool::set_metrics`]).
    metrics: OnceLock<AppMetrics>,
}

/// An app's settings that only the pool reads.
struct Tuning {
    queue_size: usize,
    queue_timeout: Duration,
    timeout: Duration,
    buffering: bool,
}

impl Tuning {
    fn of(app: &model::App) -> Tuning {
        Tuning {
            queue_size: app.queue_size,
            queue_timeout: app.queue_timeout,
            timeout: app.timeout,
            buffering: app.buffering,
        }
    }
}

#[derive(Default)]
struct State {
    /// Requests one worker takes at once (at least 1). Under the lock because slots are counted
    /// in it.
    concurrency: usize,
    rotation: Vec<Worker>,
    /// Out of rotation, possibly still finishing requests.
    draining: Vec<Worker>,
    /// Taken out by the pool itself (unreachable, timed out): never put back, even if an older
    /// published list still names them.
    evicted: HashSet<WorkerId>,
    /// Permits to forget as they are released, because the rotation shrank while they were held.
    debt: usize,
}

#[derive(Clone)]
struct Worker {
    id: WorkerId,
    pid: u32,
    server: Arc<Server>,
    served: Arc<AtomicU64>,
}

/// A request's hold on one slot of the app; dropping it frees the slot.
struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    pool: Arc<AppPool>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.pool.lock();
        if state.debt > 0 {
            state.debt -= 1;
            if let Some(permit) = self.permit.take() {
                permit.forget();
            }
        }
    }
}

impl AppPool {
    pub fn new(
        app: &model::App,
        spool_dir: PathBuf,
        events: mpsc::UnboundedSender<AppEvent>,
    ) -> Arc<Self> {
        Arc::new(AppPool {
            name: app.name.clone(),
            tuning: ArcSwap::from_pointee(Tuning::of(app)),
            spool_dir,
            slots: Arc::new(Semaphore::new(0)),
            waiting: AtomicUsize::new(0),
            state: Mutex::new(State {
                concurrency: app.concurrency.max(1),
                ..State::default()
            }),
            events,
            metrics: OnceLock::new(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Records this pool's queue in `metrics` from now on; only the first call counts.
    pub fn set_metrics(&self, metrics: AppMetrics) {
        let _ = self.metrics.set(metrics);
    }

    /// Requests one worker takes at once; a worker with this many in flight is busy.
    pub fn concurrency(&self) -> usize {
        self.lock().concurrency
    }

    /// A reload changed `app`'s queue, timeout, buffering or concurrency: requests that start
    /// from now on use the new values; requests in flight keep theirs.
    pub fn retune(&self, app: &model::App) {
        self.tuning.store(Arc::new(Tuning::of(app)));
        let mut state = self.lock();
        let concurrency = app.concurrency.max(1);
        if concurrency != state.concurrency {
            let workers = state.rotation.len();
            let before = workers * state.concurrency;
            state.concurrency = concurrency;
            self.adjust_slots(&mut state, before, workers * concurrency);
        }
    }

    /// Replaces the rotation. Workers that left it finish what they have in flight.
    pub fn set_workers(&self, workers: &[WorkerEndpoint]) {
        let mut state = self.lock();
        let before = state.rotation.len();
        let (kept, left): (Vec<Worker>, Vec<Worker>) = std::mem::take(&mut state.rotation)
            .into_iter()
            .partition(|worker| workers.iter().any(|published| published.id == worker.id));
        state.draining.extend(left);
        state.rotation = kept;
        for published in workers {
            let known = state
                .rotation
                .iter()
                .any(|worker| worker.id == published.id);
            if !known && !state.evicted.contains(&published.id) {
                state.rotation.push(Worker {
                    id: published.id,
                    pid: published.pid,
                    server: Server::new(published.endpoint.clone()),
                    served: Arc::default(),
                });
            }
        }
        // Forget evictions the supervisor has caught up with.
        state
            .evicted
            .retain(|id| workers.iter().any(|published| published.id == *id));
        let after = state.rotation.len();
        self.resize(&mut state, before, after);
    }

    /// Requests started on `worker` (for `max_requests`).
    pub fn served(&self, worker: WorkerId) -> u64 {
        self.read_worker(worker, |known| known.served.load(Ordering::Relaxed))
    }

    /// Requests on `worker` right now.
    pub fn in_flight(&self, worker: WorkerId) -> usize {
        self.read_worker(worker, |known| known.server.outstanding())
    }

    /// `read` of `worker` in rotation or draining; the default (0) for a worker not known.
    fn read_worker<T: Default>(&self, worker: WorkerId, read: impl Fn(&Worker) -> T) -> T {
        let state = self.lock();
        state
            .rotation
            .iter()
            .chain(&state.draining)
            .find(|known| known.id == worker)
            .map(read)
            .unwrap_or_default()
    }

    /// True when `worker` gets no new requests and has none in flight.
    pub fn idle(&self, worker: WorkerId) -> bool {
        let mut state = self.lock();
        if state.rotation.iter().any(|known| known.id == worker) {
            return false;
        }
        state
            .draining
            .retain(|known| known.server.outstanding() > 0);
        !state.draining.iter().any(|known| known.id == worker)
    }

    /// Requests waiting for a slot right now.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    pub fn workers(&self) -> Vec<WorkerLoad> {
        let state = self.lock();
        let describe = |worker: &Worker, in_rotation| WorkerLoad {
            id: worker.id,
            in_flight: worker.server.outstanding(),
            served: worker.served.load(Ordering::Relaxed),
            in_rotation,
        };
        state
            .rotation
            .iter()
            .map(|worker| describe(worker, true))
            .chain(state.draining.iter().map(|worker| describe(worker, false)))
            .collect()
    }

    /// Sends `request` to a worker with a free slot and returns its response.
    pub async fn forward(
        self: &Arc<Self>,
        request: Request<Body>,
        context: &forward::Context,
    ) -> Result<Response<Body>, ProxyError> {
        let tuning = self.tuning.load_full();
        let buffer = tuning.buffering && !forward::wants_upgrade(&request);
        let request = if buffer {
            self.buffer_request(request).await?
        } else {
            request
        };
        let queued_at = Instant::now();
        let slot = self.acquire_slot(&tuning).await?;
        let queued = Queued {
            wait: queued_at.elapsed(),
        };
        if let Some(metrics) = self.metrics.get() {
            metrics.queued(queued.wait);
        }
        // The deadline starts when a worker is ours: time in the queue is not the app's fault.
        let started = Instant::now();
        let deadline = started + tuning.timeout;
        let mut outgoing = Outgoing::new(request, context)?;
        let mut tried = Vec::new();
        while let Some((worker, mut lease)) = self.pick(&tried) {
            tried.push(worker.id);
            if let Err(error) = lease.connect(CONNECT_TIMEOUT).await {
                tracing::warn!(app = %self.name, pid = worker.pid, %error,
                    "cannot connect to the worker; trying another");
                self.evict(worker.id);
                let _ = self.events.send(AppEvent::Unreachable {
                    app: self.name.clone(),
                    worker: worker.id,
                });
                continue;
            }
            let sent =
                tokio::time::timeout_at(deadline, outgoing.send(lease, tuning.timeout, started))
                    .await;
            let result = match sent {
                Ok(Sent::NotSent(unsent, _lease)) => {
                    // The connection closed before the request went out: safe to go elsewhere.
                    outgoing = unsent;
                    continue;
                }
                Ok(Sent::Answered(result)) => result,
                Err(_elapsed) => Err(ProxyError::UpstreamTimeout {
                    target: worker.server.label().to_owned(),
                }),
            };
            let result = match result {
                Ok(response) => self.finish(response, buffer, slot, deadline).await,
                Err(error) => Err(error),
            };
            if let Err(ProxyError::UpstreamTimeout { .. }) = &result {
                self.timed_out(&worker, context);
            }
            return result.map(|mut response| {
                response.extensions_mut().insert(queued);
                response
            });
        }
        Err(ProxyError::Connect {
            upstream: self.name.clone(),
        })
    }

    /// Reads the whole request body so a slow upload never holds a worker slot. The worker then
    /// sees a plain Content-Length body, even for a chunked upload.
    async fn buffer_request(&self, request: Request<Body>) -> Result<Request<Body>, ProxyError> {
        let (mut parts, body) = request.into_parts();
        let spooled = Spooled::collect(body, &self.spool_dir)
            .await
            .map_err(|error| request_body_error(&error))?;
        parts.headers.remove(header::TRANSFER_ENCODING);
        if spooled.is_empty() && !parts.headers.contains_key(header::CONTENT_LENGTH) {
            // A body-less GET stays body-less.
        } else {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(spooled.len()));
        }
        Ok(Request::from_parts(parts, spooled.into_body()))
    }

    /// Buffers the response (unless it must stream), and ties the slot to what is left to send.
    async fn finish(
        &self,
        response: Response<Body>,
        buffer: bool,
        slot: Slot,
        deadline: Instant,
    ) -> Result<Response<Body>, ProxyError> {
        let (mut parts, incoming) = response.into_parts();
        let streams = !buffer
            || parts.status == http::StatusCode::SWITCHING_PROTOCOLS
            || is_event_stream(&parts.headers)
            || parts
                .headers
                .get("x-accel-buffering")
                .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"no"));
        parts.headers.remove("x-accel-buffering");
        if streams {
            return Ok(Response::from_parts(parts, body::hold(incoming, slot)));
        }
        let target = parts
            .extensions
            .get::<forward::Served>()
            .map(|served| served.server.clone())
            .unwrap_or_default();
        let spooled =
            match tokio::time::timeout_at(deadline, Spooled::collect(incoming, &self.spool_dir))
                .await
            {
                Ok(Ok(spooled)) => spooled,
                Ok(Err(error)) => {
                    tracing::warn!(app = %self.name, %error, "worker response failed mid-body");
                    return Err(ProxyError::UpstreamBody { target });
                }
                Err(_elapsed) => return Err(ProxyError::UpstreamTimeout { target }),
            };
        // The worker is done: its slot goes to the next request while the client downloads.
        drop(slot);
        parts.headers.remove(header::TRANSFER_ENCODING);
        // An empty body keeps the worker's Content-Length: the answer to a HEAD (or a 304)
        // describes the body a GET would get.
        if !spooled.is_empty() {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(spooled.len()));
        }
        Ok(Response::from_parts(parts, spooled.into_body()))
    }

    async fn acquire_slot(self: &Arc<Self>, tuning: &Tuning) -> Result<Slot, ProxyError> {
        if self.lock().rotation.is_empty() {
            // Crash loop or still starting: answer at once rather than hang.
            return Err(self.rejected(Rejection::NoWorker));
        }
        let permit = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::Relaxed) >= tuning.queue_size {
                    self.waiting.fetch_sub(1, Ordering::Relaxed);
                    return Err(self.rejected(Rejection::Full));
                }
                let waited = tokio::time::timeout(
                    tuning.queue_timeout,
                    Arc::clone(&self.slots).acquire_owned(),
                )
                .await;
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                match waited {
                    Ok(Ok(permit)) => permit,
                    _ => return Err(self.rejected(Rejection::Timeout)),
                }
            }
        };
        Ok(Slot {
            permit: Some(permit),
            pool: Arc::clone(self),
        })
    }

    /// Counts a request turned away before reaching a worker, and returns its error.
    fn rejected(&self, reason: Rejection) -> ProxyError {
        if let Some(metrics) = self.metrics.get() {
            metrics.rejected(reason);
        }
        let app = self.name.clone();
        match reason {
            Rejection::NoWorker => ProxyError::NoWorker { app },
            Rejection::Full | Rejection::Timeout => ProxyError::QueueFull { app },
        }
    }

    /// The least-loaded worker in rotation with a free slot, not yet tried by this request.
    fn pick(&self, tried: &[WorkerId]) -> Option<(Worker, Lease)> {
        let state = self.lock();
        let worker = state
            .rotation
            .iter()
            .filter(|worker| !tried.contains(&worker.id))
            .filter(|worker| worker.server.outstanding() < state.concurrency)
            .min_by_key(|worker| worker.server.outstanding())?
            .clone();
        // Taken under the lock so two requests cannot both see the last free slot.
        let lease = Lease::new(&worker.server);
        worker.served.fetch_add(1, Ordering::Relaxed);
        Some((worker, lease))
    }

    fn timed_out(&self, worker: &Worker, context: &forward::Context) {
        let request_id = context.request_id.to_str().unwrap_or("-").to_owned();
        tracing::warn!(app = %self.name, pid = worker.pid, request_id = %request_id,
            timeout = ?self.tuning.load().timeout, "request passed the app's timeout: 504; replacing the worker");
        self.evict(worker.id);
        let _ = self.events.send(AppEvent::TimedOut {
            app: self.name.clone(),
            worker: worker.id,
            pid: worker.pid,
            request_id,
        });
    }

    /// Takes a worker out of rotation at once, before the supervisor hears of it.
    fn evict(&self, worker: WorkerId) {
        let mut state = self.lock();
        let before = state.rotation.len();
        if let Some(index) = state.rotation.iter().position(|known| known.id == worker) {
            let removed = state.rotation.remove(index);
            state.draining.push(removed);
        }
        state.evicted.insert(worker);
        let after = state.rotation.len();
        self.resize(&mut state, before, after);
    }

    /// Grows or shrinks the slot count from `before` to `after` workers in rotation.
    fn resize(&self, state: &mut State, before: usize, after: usize) {
        let concurrency = state.concurrency;
        self.adjust_slots(state, before * concurrency, after * concurrency);
    }

    /// Grows or shrinks the slot count from `before` to `after` slots. Slots in use when it
    /// shrinks are forgotten as they come back (`debt`).
    fn adjust_slots(&self, state: &mut State, before: usize, after: usize) {
        if after > before {
            let mut added = after - before;
            let repaid = added.min(state.debt);
            state.debt -= repaid;
            added -= repaid;
            self.slots.add_permits(added);
        } else if before > after {
            let removed = before - after;
            let forgotten = self.slots.forget_permits(removed);
            state.debt += removed - forgotten;
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Lists of handles and counters stay consistent even if a holder panicked.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn is_event_stream(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("text/event-stream"))
}

/// A failed upload read: over the size limit (413) or the client went away (400).
fn request_body_error(error: &crate::body::BoxError) -> ProxyError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error.as_ref());
    while let Some(current) = cause {
        if current.is::<http_body_util::LengthLimitError>() {
            return ProxyError::BodyTooLarge;
        }
        cause = current.source();
    }
    ProxyError::BadRequest("the request body could not be read")
}
