//! Keyframe request aggregation: many subscribers asking for a keyframe of
//! the same track within a short interval cause one request to the
//! publisher, not one each.

use std::time::{Duration, Instant};

/// The shortest interval between two keyframe requests sent to a publisher
/// for one track.
pub const MIN_INTERVAL: Duration = Duration::from_millis(500);

/// The throttle of one published track.
#[derive(Debug, Clone, Default)]
pub struct KeyframeThrottle {
    last_sent: Option<Instant>,
    pending: bool,
}

impl KeyframeThrottle {
    /// Records a request at `now`; true when one must be sent to the publisher now.
    pub fn request(&mut self, now: Instant) -> bool {
        match self.last_sent {
            Some(t) if now.saturating_duration_since(t) < MIN_INTERVAL => {
                self.pending = true;
                false
            }
            _ => {
                self.last_sent = Some(now);
                self.pending = false;
                true
            }
        }
    }

    /// When a held-back request falls due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.pending, self.last_sent) {
            (true, Some(t)) => Some(t + MIN_INTERVAL),
            _ => None,
        }
    }

    /// True when a held-back request is due at `now` (and marks it sent).
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        match self.poll_timeout() {
            Some(due) if due <= now => {
                self.last_sent = Some(now);
                self.pending = false;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_requests_in_one_interval_send_two_at_most() {
        let t0 = Instant::now();
        let mut k = KeyframeThrottle::default();
        let mut sent = 0;
        for i in 0..100 {
            if k.request(t0 + Duration::from_millis(i)) {
                sent += 1;
            }
        }
        assert_eq!(sent, 1);
        assert_eq!(k.poll_timeout(), Some(t0 + MIN_INTERVAL));
        assert!(!k.handle_timeout(t0 + Duration::from_millis(499)));
        assert!(k.handle_timeout(t0 + MIN_INTERVAL));
        assert_eq!(k.poll_timeout(), None);
    }

    #[test]
    fn spaced_requests_all_go_through() {
        let t0 = Instant::now();
        let mut k = KeyframeThrottle::default();
        for i in 0..5 {
            assert!(k.request(t0 + MIN_INTERVAL * i));
        }
    }
}
