//! Coalesces keyframe requests (new viewers, PLI/FIR) into at most one encoder request per
//! interval, however many viewers ask. Pure: the caller passes the time in.

use std::time::{Duration, Instant};

/// Shortest spacing between two forced keyframes; an IDR costs several P-frames of bitrate.
pub const DEFAULT_MIN_KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyframeDecision {
    /// Ask the encoder now.
    SendNow,
    /// Asked too recently; the request is remembered and due at this time.
    DueAt(Instant),
}

#[derive(Debug)]
pub struct KeyframeGate {
    min_interval: Duration,
    last_keyframe: Option<Instant>,
    pending: bool,
}

impl KeyframeGate {
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            last_keyframe: None,
            pending: false,
        }
    }

    /// Someone needs a keyframe.
    pub fn request(&mut self, now: Instant) -> KeyframeDecision {
        match self.last_keyframe {
            Some(last) if now.duration_since(last) < self.min_interval => {
                self.pending = true;
                KeyframeDecision::DueAt(last + self.min_interval)
            }
            _ => {
                self.sent(now);
                KeyframeDecision::SendNow
            }
        }
    }

    /// A keyframe left the encoder, asked for or not: it answers every pending request.
    pub fn keyframe_seen(&mut self, now: Instant) {
        self.pending = false;
        self.last_keyframe = Some(self.last_keyframe.map_or(now, |last| last.max(now)));
    }

    /// When a deferred request falls due, if one is waiting.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending
            .then(|| self.last_keyframe.map(|last| last + self.min_interval))
            .flatten()
    }

    /// Call at or after `deadline()`: true when the deferred request should be sent now.
    pub fn poll(&mut self, now: Instant) -> bool {
        match self.deadline() {
            Some(due) if now >= due => {
                self.sent(now);
                true
            }
            _ => false,
        }
    }

    fn sent(&mut self, now: Instant) {
        self.pending = false;
        self.last_keyframe = Some(now);
    }
}

impl Default for KeyframeGate {
    fn default() -> Self {
        Self::new(DEFAULT_MIN_KEYFRAME_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn first_request_is_sent_at_once() {
        let mut gate = KeyframeGate::default();
        assert_eq!(gate.request(Instant::now()), KeyframeDecision::SendNow);
    }

    #[test]
    fn many_requests_in_one_interval_become_one_more() {
        let t0 = Instant::now();
        let mut gate = KeyframeGate::default();
        assert_eq!(gate.request(t0), KeyframeDecision::SendNow);
        for i in 1..50 {
            assert_eq!(
                gate.request(t0 + i * MS),
                KeyframeDecision::DueAt(t0 + 500 * MS)
            );
        }
        assert!(!gate.poll(t0 + 499 * MS));
        assert!(gate.poll(t0 + 500 * MS));
        assert!(!gate.poll(t0 + 501 * MS), "a deferred request fires once");
        assert_eq!(gate.deadline(), None);
    }

    #[test]
    fn natural_keyframe_answers_pending_request() {
        let t0 = Instant::now();
        let mut gate = KeyframeGate::default();
        gate.request(t0);
        gate.request(t0 + 100 * MS);
        gate.keyframe_seen(t0 + 200 * MS);
        assert_eq!(gate.deadline(), None);
        assert!(!gate.poll(t0 + 900 * MS));
    }

    #[test]
    fn recent_natural_keyframe_delays_a_new_request() {
        let t0 = Instant::now();
        let mut gate = KeyframeGate::default();
        gate.keyframe_seen(t0);
        assert_eq!(
            gate.request(t0 + 100 * MS),
            KeyframeDecision::DueAt(t0 + 500 * MS)
        );
        assert_eq!(gate.request(t0 + 600 * MS), KeyframeDecision::SendNow);
    }
}
