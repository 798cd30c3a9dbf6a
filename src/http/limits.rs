//! Admission for new viewers: a per-address join rate, a ceiling on viewers, and a ceiling on
//! viewers still negotiating or connecting (each one costs sockets and a DTLS handshake).

use crate::config::Limits;
use crate::http::error::ApiError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Admission {
    limits: Limits,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    negotiating: Arc<AtomicUsize>,
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

    /// 503 when the stream is full or too many viewers are still connecting.
    /// `viewers` are the sessions open now, `connecting` those not yet connected.
    pub fn begin(&self, viewers: usize, connecting: usize) -> Result<Negotiating, ApiError> {
        let negotiating = self.negotiating.fetch_add(1, Ordering::AcqRel) + 1;
        let guard = Negotiating(Arc::clone(&self.negotiating));
        if viewers + negotiating > self.limits.max_viewers {
            return Err(ApiError::unavailable(
                format!("the stream is full ({} viewers)", self.limits.max_viewers),
                30,
            ));
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
    fn full_stream_and_crowded_handshakes_are_503() {
        let admission = limits(3, 100, 2);
        let full = admission.begin(3, 0).err().unwrap();
        assert_eq!(
            (full.status, full.retry_after_s),
            (StatusCode::SERVICE_UNAVAILABLE, Some(30))
        );
        let first = admission.begin(0, 1).unwrap();
        let crowded = admission.begin(0, 1).err().unwrap();
        assert_eq!(crowded.retry_after_s, Some(2));
        drop(first);
        assert!(
            admission.begin(0, 1).is_ok(),
            "a finished negotiation frees its place"
        );
    }
}
