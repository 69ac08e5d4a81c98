//! The supervisor with real worker processes (`tests/apps/worker.py`, the built-in WSGI worker
//! and small commands).
//!
//! Every test runs on a current-thread runtime, so the events of its supervisor (worker output
//! included) are on the test's thread, where `harness::Logs` can capture them.

// A test fails by panicking; the harness's helpers are part of the tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod crashes;
mod health;
mod recycle;
mod roll;
mod shutdown;
mod sigkill;
mod start;
mod wsgi;
