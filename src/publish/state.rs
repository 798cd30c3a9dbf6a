//! What one target is doing, shared between its task (which writes) and status and metrics
//! (which read).

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Reaching the engine (resolving, HTTP, ICE/DTLS, the RTMP handshake).
    Connecting,
    /// Media is flowing to the engine.
    Live,
    /// The last attempt failed; the next one is due after a backoff.
    Retrying,
    /// The daemon is stopping.
    Stopped,
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    since: SystemTime,
    last_error: Option<String>,
    retry_at: Option<SystemTime>,
    /// Frames this target lost for falling behind, over every attempt.
    dropped_before: u64,
    dropped_now: Option<Arc<AtomicU64>>,
}

/// Counters and state of one target.
#[derive(Debug)]
pub struct TargetState {
    inner: Mutex<Inner>,
    pub bytes_sent: AtomicU64,
    pub packets_sent: AtomicU64,
    pub frames_sent: AtomicU64,
    /// Attempts made, the first included.
    pub attempts: AtomicU64,
    /// Times the target was live again after having been live before.
    pub reconnects: AtomicU64,
    /// Picture-loss reports (PLI/FIR) from the engine, passed on as keyframe requests.
    pub keyframe_requests: AtomicU64,
    /// Frames the target dropped itself (its engine not keeping up), beside the hub's drops.
    pub dropped_here: AtomicU64,
    was_live: std::sync::atomic::AtomicBool,
}

impl Default for TargetState {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                phase: Phase::Connecting,
                since: SystemTime::now(),
                last_error: None,
                retry_at: None,
                dropped_before: 0,
                dropped_now: None,
            }),
            bytes_sent: AtomicU64::new(0),
            packets_sent: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            keyframe_requests: AtomicU64::new(0),
            dropped_here: AtomicU64::new(0),
            was_live: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// One target as `/api/admin/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    pub name: String,
    pub kind: &'static str,
    /// Without stream keys or query strings.
    pub url: String,
    pub state: Phase,
    pub since_unix_ms: u128,
    pub bytes_sent: u64,
    pub packets_sent: u64,
    pub frames_sent: u64,
    pub frames_dropped: u64,
    pub attempts: u64,
    pub reconnects: u64,
    pub keyframe_requests: u64,
    pub last_error: Option<String>,
    pub retry_in_ms: Option<u128>,
}

fn unix_ms(at: SystemTime) -> u128 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

impl TargetState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_phase(inner: &mut Inner, phase: Phase) {
        if inner.phase != phase {
            inner.phase = phase;
            inner.since = SystemTime::now();
        }
    }

    /// A new attempt begins.
    pub fn connecting(&self) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        inner.retry_at = None;
        Self::set_phase(&mut inner, Phase::Connecting);
    }

    /// The attempt took its place on the hub; `dropped` counts the frames its queue loses.
    pub fn count_drops(&self, dropped: Arc<AtomicU64>) {
        let mut inner = self.lock();
        if let Some(previous) = inner.dropped_now.take() {
            inner.dropped_before += previous.load(Ordering::Relaxed);
        }
        inner.dropped_now = Some(dropped);
    }

    /// Media flows; true the first time of this attempt.
    pub fn live(&self) -> bool {
        let mut inner = self.lock();
        if inner.phase == Phase::Live {
            return false;
        }
        Self::set_phase(&mut inner, Phase::Live);
        if self.was_live.swap(true, Ordering::Relaxed) {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    pub fn failed(&self, error: String, retry_at: SystemTime) {
        let mut inner = self.lock();
        inner.last_error = Some(error);
        inner.retry_at = Some(retry_at);
        Self::set_phase(&mut inner, Phase::Retrying);
    }

    pub fn stopped(&self) {
        let mut inner = self.lock();
        inner.retry_at = None;
        Self::set_phase(&mut inner, Phase::Stopped);
    }

    pub fn sent(&self, packets: u64, bytes: u64) {
        self.packets_sent.fetch_add(packets, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn status(&self, name: &str, kind: &'static str, url: String) -> TargetStatus {
        let inner = self.lock();
        let dropped = inner.dropped_before
            + self.dropped_here.load(Ordering::Relaxed)
            + inner
                .dropped_now
                .as_ref()
                .map_or(0, |d| d.load(Ordering::Relaxed));
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        TargetStatus {
            name: name.to_owned(),
            kind,
            url,
            state: inner.phase,
            since_unix_ms: unix_ms(inner.since),
            bytes_sent: load(&self.bytes_sent),
            packets_sent: load(&self.packets_sent),
            frames_sent: load(&self.frames_sent),
            frames_dropped: dropped,
            attempts: load(&self.attempts),
            reconnects: load(&self.reconnects),
            keyframe_requests: load(&self.keyframe_requests),
            last_error: inner.last_error.clone(),
            retry_in_ms: inner.retry_at.map(|at| {
                at.duration_since(SystemTime::now())
                    .map_or(0, |d| d.as_millis())
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_time_live_counts_as_a_reconnect() {
        let state = TargetState::default();
        state.connecting();
        assert!(state.live());
        assert!(!state.live(), "already live");
        state.failed("gone".into(), SystemTime::now());
        state.connecting();
        assert!(state.live());
        let status = state.status("t", "rtp", "rtp://h:1".into());
        assert_eq!((status.attempts, status.reconnects), (2, 1));
        assert_eq!(status.last_error.as_deref(), Some("gone"));
        assert_eq!(status.state, Phase::Live);
    }

    #[test]
    fn drops_add_up_over_attempts() {
        let state = TargetState::default();
        state.count_drops(Arc::new(AtomicU64::new(3)));
        state.count_drops(Arc::new(AtomicU64::new(2)));
        assert_eq!(state.status("t", "rtp", String::new()).frames_dropped, 5);
    }
}
