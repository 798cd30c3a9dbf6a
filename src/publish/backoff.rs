//! How long a failed target waits before it tries again. Pure: the caller says how long the
//! attempt lasted and how it ended.

use std::time::Duration;

/// First wait after a failure; it doubles with each failure in a row.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest wait while the engine is merely unreachable: it should be back within seconds of
/// returning.
pub const MAX_RETRY: Duration = Duration::from_secs(8);
/// A refusal (bad token, wrong URL) does not mend itself: wait longer, up to this.
pub const FIRST_RETRY_REFUSED: Duration = Duration::from_secs(5);
pub const MAX_RETRY_REFUSED: Duration = Duration::from_secs(60);
/// An attempt that streamed this long was a success: the next failure starts over.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The engine could not be reached or went away.
    Lost,
    /// The engine answered no.
    Refused,
}

#[derive(Debug, Default, Clone)]
pub struct Backoff {
    failures_in_a_row: u32,
}

impl Backoff {
    /// The wait before the next attempt, after one that lasted `ran_for` and ended so.
    pub fn after(&mut self, ran_for: Duration, ending: Ending) -> Duration {
        if ran_for >= HEALTHY_AFTER {
            self.failures_in_a_row = 0;
        }
        let (first, max) = match ending {
            Ending::Lost => (FIRST_RETRY, MAX_RETRY),
            Ending::Refused => (FIRST_RETRY_REFUSED, MAX_RETRY_REFUSED),
        };
        let doubled = first.saturating_mul(1 << self.failures_in_a_row.min(16));
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        doubled.min(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BRIEF: Duration = Duration::from_millis(100);

    #[test]
    fn waits_double_up_to_the_ceiling() {
        let mut backoff = Backoff::default();
        let waits: Vec<u64> = (0..6)
            .map(|_| backoff.after(BRIEF, Ending::Lost).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 8, 8]);
    }

    #[test]
    fn refusals_wait_longer() {
        let mut backoff = Backoff::default();
        let waits: Vec<u64> = (0..6)
            .map(|_| backoff.after(BRIEF, Ending::Refused).as_secs())
            .collect();
        assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
    }

    #[test]
    fn a_long_healthy_run_starts_the_waits_over() {
        let mut backoff = Backoff::default();
        for _ in 0..4 {
            backoff.after(BRIEF, Ending::Lost);
        }
        assert_eq!(backoff.after(HEALTHY_AFTER, Ending::Lost), FIRST_RETRY);
    }
}
