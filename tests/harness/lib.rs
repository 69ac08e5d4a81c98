//! The end-to-end harness: the real `gatehouse` binary and real Python apps as child processes,
//! plus the small clients and waits the suites in `tests/e2e` share.
//!
//! Nothing here uses a fixed port or a fixed sleep: servers bind port 0 and announce their
//! address, and every wait is a condition polled up to a deadline ([`wait::DEADLINE`]).

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod admin;
pub mod gatehouse;
pub mod output;
pub mod python;
pub mod raw;
pub mod wait;
pub mod workers;

pub use gatehouse::{Gatehouse, Listen, Sandbox};
pub use python::PythonApp;
pub use wait::{eventually, wait_until};
