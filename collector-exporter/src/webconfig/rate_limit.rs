//! `rate_limit`: a token bucket in front of every endpoint.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::bad;
use super::file::{nonempty, RawRateLimit};
use crate::error::Result;

/// A token bucket: `burst` requests at once, refilled by one each `interval`.
pub struct RateLimiter {
    burst: f64,
    interval: Duration,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub(super) fn from_raw(r: RawRateLimit) -> Result<Option<RateLimiter>> {
        let interval = match nonempty(r.interval) {
            None => return Ok(None),
            Some(text) => crate::value::parse_duration(&text)
                .map_err(|reason| bad("rate_limit.interval", reason))?,
        };
        if interval.is_zero() {
            return Ok(None);
        }
        let burst = r.burst.unwrap_or(0);
        if burst == 0 {
            return Err(bad(
                "rate_limit.burst",
                "must be at least 1 when rate_limit.interval is set (0 refuses every request)",
            ));
        }
        Ok(Some(RateLimiter::new(burst, interval)))
    }

    pub fn new(burst: u32, interval: Duration) -> RateLimiter {
        RateLimiter {
            burst: burst as f64,
            interval,
            state: Mutex::new((burst as f64, Instant::now())),
        }
    }

    /// Takes one token if there is one.
    pub fn allow(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(s.1).as_secs_f64() / self.interval.as_secs_f64();
        s.0 = (s.0 + refill).min(self.burst);
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}
