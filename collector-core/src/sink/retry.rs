//! Exponential back-off with equal jitter (half the delay fixed, half random), and `Retry-After`.

use std::time::Duration;

/// Doubles from `base` up to `max`; each wait is drawn uniformly between half the current
/// ceiling and the ceiling, so many exporters that lost the same server do not come back in
/// step, and none comes back at once.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
    seed: u64,
}

impl Backoff {
    /// Starts at `base`; the seed of the jitter comes from the clock and process id.
    pub fn new(base: Duration, max: Duration) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15)
            ^ u64::from(std::process::id());
        Backoff {
            base,
            max,
            attempt: 0,
            seed: seed | 1,
        }
    }

    /// Starts over from `base`, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next wait; at least `floor` (a server's Retry-After).
    pub fn next(&mut self, floor: Option<Duration>) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        // xorshift: jitter needs no cryptographic quality.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let frac = (self.seed >> 11) as f64 / (1u64 << 53) as f64;
        let wait = ceiling.mul_f64(0.5 + frac / 2.0);
        match floor {
            Some(f) => wait.max(f.min(self.max)),
            None => wait,
        }
    }
}

/// `Retry-After` as seconds (the HTTP-date form is rare from metrics servers; ignored).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_honours_floor() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let first = b.next(None);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..10 {
            assert!(b.next(None) <= Duration::from_secs(2));
        }
        assert!(b.next(Some(Duration::from_secs(1))) >= Duration::from_secs(1));
        // A Retry-After beyond the cap is capped: no sink waits longer than max.
        assert!(b.next(Some(Duration::from_secs(100))) <= Duration::from_secs(2));
        b.reset();
        assert!(b.next(None) <= Duration::from_millis(100));
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
