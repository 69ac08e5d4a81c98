//! A child's stdout or stderr, drained line by line in a background thread and kept for asserts.
//!
//! Draining matters: a child that writes to a full pipe blocks, and a blocked gatehouse fails
//! tests in confusing ways.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::wait::DEADLINE;

/// The lines a stream has produced so far (ANSI colour codes removed).
#[derive(Clone, Default)]
pub struct Lines {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    lines: Vec<String>,
    closed: bool,
}

impl Lines {
    /// Starts a thread that reads `stream` to its end.
    pub fn capture(stream: impl Read + Send + 'static) -> Lines {
        let lines = Lines::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => sink.push(strip_ansi(&String::from_utf8_lossy(&buf))),
                }
            }
            let mut state = sink.lock();
            state.closed = true;
            sink.shared.changed.notify_all();
        });
        lines
    }

    /// The state, even if a panicking test poisoned the lock (its Drop still prints the logs).
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, line: String) {
        let mut state = self.lock();
        state
            .lines
            .push(line.trim_end_matches(['\r', '\n']).to_owned());
        self.shared.changed.notify_all();
    }

    /// Every line so far.
    pub fn all(&self) -> Vec<String> {
        self.lock().lines.clone()
    }

    /// Every line so far, joined with newlines.
    pub fn text(&self) -> String {
        self.all().join("\n")
    }

    /// The first line containing `needle`, waiting for it up to the deadline.
    /// Panics with everything captured if it never comes or the stream ends first.
    pub fn wait_for(&self, needle: &str) -> String {
        self.wait_for_match(needle, |line| line.contains(needle))
    }

    /// The first line satisfying `pred`, waiting for it up to the deadline.
    pub fn wait_for_match(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        let mut state = self.lock();
        loop {
            if let Some(line) = state.lines.iter().find(|l| pred(l)) {
                return line.clone();
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                let why = if state.closed {
                    "the stream closed"
                } else {
                    "timed out"
                };
                let got = state.lines.join("\n");
                drop(state);
                panic!("{why} waiting for a line with {what:?}; got:\n{got}");
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Waits until `done` holds for the lines so far, up to the deadline; a stream that closes
    /// first (its process exited) ends the wait early. Returns whether it held.
    pub(crate) fn wait_while_open(&self, mut done: impl FnMut(&[String]) -> bool) -> bool {
        let deadline = Instant::now() + DEADLINE;
        let mut state = self.lock();
        loop {
            if done(&state.lines) {
                return true;
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                return false;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

/// Removes ANSI escape sequences (`ESC [ ... letter`), in case the logger colours its output.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn strips_colours() {
        assert_eq!(
            super::strip_ansi("\u{1b}[2m12:00\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m x"),
            "12:00  INFO x"
        );
    }
}
