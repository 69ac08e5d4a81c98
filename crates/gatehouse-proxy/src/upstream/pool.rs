//! A server's idle connections, most recently used first.
//!
//! LIFO keeps the few warm connections busy and lets the rest reach the server's keep-alive
//! timeout and close, so the pool shrinks by itself after a burst. A connection is put back only
//! after its response body was read to the end (see [`super::body`]); one whose exchange failed
//! never comes back.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hyper::client::conn::http1::SendRequest;
use tokio::time::Instant;

use crate::body::Body;

/// Idle connections kept per server; more than enough for one worker's slots, and a bound on
/// the sockets a burst can leave behind.
const MAX_IDLE: usize = 128;

/// An idle connection older than this is closed instead of used: the server has probably
/// forgotten it, and a request sent just as it closes is a wasted round trip.
const MAX_IDLE_TIME: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<VecDeque<Idle>>,
}

struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

impl Idle {
    fn usable(&self, now: Instant) -> bool {
        !self.sender.is_closed() && now.duration_since(self.since) < MAX_IDLE_TIME
    }
}

impl Pool {
    /// The most recently returned connection that is still open and not too old.
    pub(crate) fn take(&self) -> Option<SendRequest<Body>> {
        let now = Instant::now();
        let mut idle = self.lock();
        while let Some(entry) = idle.pop_back() {
            if entry.usable(now) {
                return Some(entry.sender);
            }
        }
        None
    }

    pub(crate) fn put(&self, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.lock();
        // The oldest entries sit at the front; LIFO never reaches them, so prune them here.
        while idle.front().is_some_and(|oldest| !oldest.usable(now)) {
            idle.pop_front();
        }
        if idle.len() >= MAX_IDLE {
            idle.pop_front();
        }
        idle.push_back(Idle { sender, since: now });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle>> {
        // A queue of handles stays consistent even if a holder panicked.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
