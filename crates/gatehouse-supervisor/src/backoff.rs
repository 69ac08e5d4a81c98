//! Restart backoff of one worker slot.
//!
//! A slot fails when its worker does not become ready, or dies (or turns unhealthy) less than
//! `STABLE_AFTER` after it became ready. Consecutive failures delay the next start by 100 ms,
//! doubling up to 30 s, so a crash-looping app costs little CPU while the proxy answers 503. A worker
//! that stayed up `STABLE_AFTER` clears the count: its replacement starts at once.

use std::time::Duration;

use tokio::time::Instant;

pub(crate) const FIRST_DELAY: Duration = Duration::from_millis(100);
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(30);
pub(crate) const STABLE_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: u32,
    not_before: Option<Instant>,
    /// Workers of this slot replaced so far (for `/status`).
    pub restarts: u64,
}

impl Backoff {
    /// Whether a worker may be started in this slot now.
    pub fn allows(&self, now: Instant) -> bool {
        match self.not_before {
            Some(at) => at <= now,
            None => true,
        }
    }

    /// A worker of this slot ended. `ready_for` is how long it had been ready (`None`: never).
    /// Returns the delay before the next start.
    pub fn ended(&mut self, ready_for: Option<Duration>, now: Instant) -> Duration {
        match ready_for {
            Some(up) if up >= STABLE_AFTER => {
                self.failures = 0;
                self.not_before = None;
                Duration::ZERO
            }
            _ => {
                self.failures = self.failures.saturating_add(1);
                let delay = delay(self.failures);
                self.not_before = Some(now + delay);
                delay
            }
        }
    }

    /// Forgets failures (a new generation starts clean).
    pub fn reset(&mut self) {
        self.failures = 0;
        self.not_before = None;
    }
}

/// The delay after `failures` consecutive failures (at least 1).
fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_100ms_up_to_30s() {
        let delays: Vec<u64> = (1..=12).map(|n| delay(n).as_millis() as u64).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000]
        );
        assert_eq!(delay(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn a_stable_worker_clears_the_count() {
        let now = Instant::now();
        let mut slot = Backoff::default();
        assert!(slot.allows(now));
        assert_eq!(slot.ended(None, now), FIRST_DELAY);
        assert!(!slot.allows(now));
        assert!(slot.allows(now + FIRST_DELAY));
        assert_eq!(
            slot.ended(Some(Duration::from_secs(1)), now),
            FIRST_DELAY * 2
        );
        assert_eq!(slot.ended(Some(STABLE_AFTER), now), Duration::ZERO);
        assert!(slot.allows(now));
        assert_eq!(slot.ended(None, now), FIRST_DELAY);
    }
}
