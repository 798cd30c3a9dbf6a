//! Frame rate and bitrate of the encoded stream, measured over the last frames. Pure.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back the measurement looks.
pub const RATE_WINDOW: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub struct RateMeter {
    frames: VecDeque<(Instant, usize)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Rates {
    pub fps: f64,
    pub bitrate_kbps: f64,
}

impl RateMeter {
    pub fn record(&mut self, at: Instant, bytes: usize) {
        self.frames.push_back((at, bytes));
        while let Some(&(oldest, _)) = self.frames.front() {
            if at.duration_since(oldest) > RATE_WINDOW {
                self.frames.pop_front();
            } else {
                break;
            }
        }
    }

    /// Rates over the window ending at `now`; zero once frames stop for a whole window.
    pub fn rates(&self, now: Instant) -> Rates {
        let (Some(&(first, _)), Some(&(last, _))) = (self.frames.front(), self.frames.back())
        else {
            return Rates::default();
        };
        let span = last.duration_since(first).as_secs_f64();
        if now.duration_since(last) > RATE_WINDOW || span <= 0.0 {
            return Rates::default();
        }
        // Bytes of every frame but the last, over the time between the first and the last.
        let bytes: usize = self.frames.iter().rev().skip(1).map(|&(_, b)| b).sum();
        Rates {
            fps: (self.frames.len() - 1) as f64 / span,
            bitrate_kbps: bytes as f64 * 8.0 / span / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_stream_reads_its_rate() {
        let t0 = Instant::now();
        let mut meter = RateMeter::default();
        for i in 0..60u32 {
            meter.record(t0 + Duration::from_millis(i as u64 * 1000 / 30), 1000);
        }
        let rates = meter.rates(t0 + Duration::from_secs(2));
        assert!((rates.fps - 30.0).abs() < 1.0, "{rates:?}");
        assert!((rates.bitrate_kbps - 240.0).abs() < 10.0, "{rates:?}");
    }

    #[test]
    fn stalled_stream_reads_zero() {
        let t0 = Instant::now();
        let mut meter = RateMeter::default();
        meter.record(t0, 10);
        meter.record(t0 + Duration::from_millis(33), 10);
        assert_eq!(meter.rates(t0 + Duration::from_secs(5)), Rates::default());
    }
}
