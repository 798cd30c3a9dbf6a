//! Admission for new viewers: a per-address join rate, a ceiling on viewers, and a ceiling on
//! viewers still negotiating or connecting (each one costs sockets and a DTLS handshake).

use crate::config::Limits;
use crate::http::error::ApiError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub struct Admission {
    limits: Limits,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    negotiating: Arc<AtomicUsize>,
    /// Viewers sent to the overflow URL.
    redirected: AtomicU64,
}

/// Counts a join as negotiating until dropped.
pub struct Negotiating(Arc<AtomicUsize>);

impl Drop for Negotiating {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    pub fn new(limits: Limits) -> Self {
        let per_minute = NonZeroU32::new(limits.joins_per_minute_per_ip).unwrap_or(NonZeroU32::MIN);
        Self {
            per_address: RateLimiter::keyed(Quota::per_minute(per_minute)),
            limits,
            negotiating: Arc::new(AtomicUsize::new(0)),
            redirected: AtomicU64::new(0),
        }
    }

    /// 429 with Retry-After when this address has joined too often in the last minute.
    pub fn rate(&self, address: IpAddr) -> Result<(), ApiError> {
        if address.is_loopback() {
            return Ok(());
        }
        // Forget addresses that have not been seen lately, so the table stays small.
        if self.per_address.len() > 10_000 {
            self.per_address.retain_recent();
        }
        self.per_address.check_key(&address).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::too_many_requests(
                format!(
                    "more than {} joins a minute from {address}",
                    self.limits.joins_per_minute_per_ip
                ),
                wait.as_secs().max(1) as u32,
            )
        })
    }

    /// Why the device cannot take `viewers` viewers beside `targets` publish targets, each
    /// receiving the stream at `stream_kbps`: the viewer ceiling, or the uplink budget.
    pub fn full(&self, viewers: usize, targets: usize, stream_kbps: f64) -> Option<String> {
        if viewers > self.limits.max_viewers {
            return Some(format!(
                "the stream is full ({} viewers)",
                self.limits.max_viewers
            ));
        }
        let budget_kbps = self
            .limits
            .uplink_mbps
            .map(|mbps| f64::from(mbps) * 1000.0)?;
        let needed_kbps = (viewers + targets) as f64 * stream_kbps;
        (needed_kbps > budget_kbps).then(|| {
            format!(
                "the uplink is full ({} Mbit/s for {} streams of {:.1} Mbit/s)",
                budget_kbps / 1000.0,
                viewers + targets,
                stream_kbps / 1000.0
            )
        })
    }

    /// Where a new viewer goes instead when the device is full: the overflow WHEP URL, if
    /// one is configured.
    pub fn overflow(&self, viewers: usize, targets: usize, stream_kbps: f64) -> Option<&str> {
        let url = self.limits.overflow_url.as_deref()?;
        let negotiating = self.negotiating.load(Ordering::Acquire);
        self.full(viewers + negotiating + 1, targets, stream_kbps)?;
        self.redirected.fetch_add(1, Ordering::Relaxed);
        Some(url)
    }

    /// Viewers sent to the overflow URL so far.
    pub fn redirected(&self) -> u64 {
        self.redirected.load(Ordering::Relaxed)
    }

    /// 503 when the stream is full or too many viewers are still connecting.
    /// `viewers` are the sessions open now, `connecting` those not yet connected; `targets`
    /// and `stream_kbps` count against the uplink budget.
    pub fn begin(
        &self,
        viewers: usize,
        connecting: usize,
        targets: usize,
        stream_kbps: f64,
    ) -> Result<Negotiating, ApiError> {
        let negotiating = self.negotiating.fetch_add(1, Ordering::AcqRel) + 1;
        let guard = Negotiating(Arc::clone(&self.negotiating));
        if let Some(why) = self.full(viewers + negotiating, targets, stream_kbps) {
            return Err(ApiError {
                alternate: self.limits.overflow_page.clone(),
                ..ApiError::unavailable(why, 30)
            });
        }
        if connecting + negotiating > self.limits.max_pending_joins {
            return Err(ApiError::unavailable(
                "too many viewers are joining at once; try again in a moment",
                2,
            ));
        }
        Ok(guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn limits(max_viewers: usize, per_minute: u32, pending: usize) -> Admission {
        Admission::new(Limits {
            max_viewers,
            joins_per_minute_per_ip: per_minute,
            max_pending_joins: pending,
            ..Limits::default()
        })
    }

    #[test]
    fn join_rate_is_per_address() {
        let admission = limits(100, 2, 100);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(admission.rate(a).is_ok());
        assert!(admission.rate(a).is_ok());
        let third = admission.rate(a).unwrap_err();
        assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(third.retry_after_s.unwrap() >= 1);
        assert!(admission.rate(b).is_ok(), "another address is not affected");
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..5 {
            assert!(admission.rate(local).is_ok(), "loopback is exempt");
        }
    }

    #[test]
    fn a_full_device_sends_viewers_to_the_overflow_url() {
        let mut admission = limits(2, 100, 100);
        assert_eq!(admission.overflow(1, 0, 2000.0), None, "no overflow URL");
        admission.limits.overflow_url = Some("https://sfu.example/whep".into());
        assert_eq!(admission.overflow(1, 0, 2000.0), None, "a seat is left");
        assert_eq!(
            admission.overflow(2, 0, 2000.0),
            Some("https://sfu.example/whep")
        );
        assert_eq!(admission.redirected(), 1);
    }

    #[test]
    fn a_full_device_names_its_overflow_page() {
        let mut admission = limits(1, 100, 100);
        admission.limits.overflow_page = Some("https://youtube.example/live".into());
        let full = admission.begin(1, 0, 0, 2000.0).err().unwrap();
        assert_eq!(
            full.alternate.as_deref(),
            Some("https://youtube.example/live")
        );
    }

    #[test]
    fn the_uplink_budget_counts_viewers_and_publish_targets() {
        let mut admission = limits(100, 100, 100);
        admission.limits.uplink_mbps = Some(10);
        assert!(admission.full(4, 0, 2000.0).is_none(), "8 of 10 Mbit/s");
        assert!(admission.full(4, 1, 2000.0).is_none(), "10 of 10 Mbit/s");
        let full = admission.full(5, 1, 2000.0).expect("12 of 10 Mbit/s");
        assert!(full.contains("uplink"), "{full}");
        let refused = admission.begin(4, 0, 1, 2000.0).err().unwrap();
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn full_stream_and_crowded_handshakes_are_503() {
        let admission = limits(3, 100, 2);
        let full = admission.begin(3, 0, 0, 2000.0).err().unwrap();
        assert_eq!(
            (full.status, full.retry_after_s),
            (StatusCode::SERVICE_UNAVAILABLE, Some(30))
        );
        let first = admission.begin(0, 1, 0, 2000.0).unwrap();
        let crowded = admission.begin(0, 1, 0, 2000.0).err().unwrap();
        assert_eq!(crowded.retry_after_s, Some(2));
        drop(first);
        assert!(
            admission.begin(0, 1, 0, 2000.0).is_ok(),
            "a finished negotiation frees its place"
        );
    }
}
