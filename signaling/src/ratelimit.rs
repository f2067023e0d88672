//! Per-address request rates: a token bucket for each client IP address,
//! so that one misbehaving machine (or script) cannot flood the WebSocket
//! endpoint or WHIP/WHEP with new sessions. Behind a NAT or a proxy many
//! people share an address: the defaults are generous, see
//! `deploy/kaigi.example.toml`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses remembered at most; beyond, idle ones are forgotten first.
const MAX_ADDRESSES: usize = 10_000;

/// Rate limits for one kind of request.
#[derive(Debug)]
pub struct RateLimiter {
    /// Tokens added per second; 0: no limit.
    per_second: f64,
    /// Bucket size: how many may come at once.
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `per_minute` requests a minute per address, up to half a minute's
    /// worth at once; 0 turns the limit off.
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_second: f64::from(per_minute) / 60.0,
            burst: (f64::from(per_minute) / 2.0).max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` has used up its requests, without taking one: for
    /// limits on failures, counted with [`Self::check`] only when one happens.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        if self.per_second <= 0.0 {
            return None;
        }
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let b = buckets.get(&ip)?;
        let tokens = (b.tokens
            + now.saturating_duration_since(b.at).as_secs_f64() * self.per_second)
            .min(self.burst);
        (tokens < 1.0)
            .then(|| Duration::from_secs_f64(((1.0 - tokens) / self.per_second).max(0.001)))
    }

    /// Takes one request from `ip` at `now`; `Err` says when to try again.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_ADDRESSES && !buckets.contains_key(&ip) {
            // Forget addresses whose bucket has refilled: they are idle.
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
        }
        let b = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                ((1.0 - b.tokens) / self.per_second).max(0.001),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_peeks_without_taking() {
        let l = RateLimiter::new(4); // burst 2
        let t = Instant::now();
        assert_eq!(l.blocked(ip(1), t), None);
        assert_eq!(l.blocked(ip(1), t), None);
        l.check(ip(1), t).unwrap();
        l.check(ip(1), t).unwrap();
        let wait = l.blocked(ip(1), t).unwrap();
        assert!(wait > Duration::from_secs(10) && wait <= Duration::from_secs(15));
        assert_eq!(l.blocked(ip(2), t), None);
        assert_eq!(l.blocked(ip(1), t + Duration::from_secs(15)), None);
        assert_eq!(RateLimiter::new(0).blocked(ip(1), t), None);
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn a_burst_then_the_rate() {
        let l = RateLimiter::new(60); // 1/s, 30 at once
        let t0 = Instant::now();
        for _ in 0..30 {
            assert!(l.check(ip(1), t0).is_ok());
        }
        let wait = l.check(ip(1), t0).unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        // Another address is not affected.
        assert!(l.check(ip(2), t0).is_ok());
        // One more a second.
        assert!(l.check(ip(1), t0 + Duration::from_millis(1000)).is_ok());
        assert!(l.check(ip(1), t0 + Duration::from_millis(1100)).is_err());
    }

    #[test]
    fn zero_means_no_limit() {
        let l = RateLimiter::new(0);
        let t0 = Instant::now();
        assert!((0..10_000).all(|_| l.check(ip(1), t0).is_ok()));
    }

    #[test]
    fn memory_is_bounded_by_forgetting_idle_addresses() {
        let l = RateLimiter::new(60);
        let t0 = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 500) {
            let a = IpAddr::from(i.to_be_bytes());
            let _ = l.check(a, t0 + Duration::from_secs(u64::from(i / 100)));
        }
        assert!(l.buckets.lock().unwrap().len() <= MAX_ADDRESSES + 1);
    }
}
