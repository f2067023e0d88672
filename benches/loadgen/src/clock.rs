//! The process-wide monotonic clock that send timestamps are written in, and
//! their wire form.
//!
//! Every RTP payload a publisher sends ends with 8 bytes: the microseconds
//! since this process's epoch (the first call to [`epoch`]), big-endian. The
//! publisher and the subscribers live in the same process, so a subscriber's
//! `now - stamp` is the end-to-end delay through the server (sockets, kaigi,
//! and the two WebRTC stacks), with no clock skew. The SFU forwards payloads
//! untouched; the trailer survives it.

use std::sync::OnceLock;
use std::time::Instant;

/// Length of the send-time trailer at the end of every payload.
pub const STAMP_LEN: usize = 8;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// The instant all stamps count from.
pub fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Microseconds from the epoch to `t` (0 for instants before it).
pub fn micros(t: Instant) -> u64 {
    t.saturating_duration_since(epoch()).as_micros() as u64
}

/// Writes the stamp for `t` into the last [`STAMP_LEN`] bytes of `payload`.
pub fn write_stamp(payload: &mut [u8], t: Instant) {
    let n = payload.len();
    payload[n - STAMP_LEN..].copy_from_slice(&micros(t).to_be_bytes());
}

/// The stamp at the end of `payload`, if it is long enough to carry one.
pub fn read_stamp(payload: &[u8]) -> Option<u64> {
    let n = payload.len();
    let tail = payload.get(n.checked_sub(STAMP_LEN)?..)?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamp_round_trips_at_the_end_of_the_payload() {
        let t = epoch() + Duration::from_micros(1_234_567);
        let mut p = vec![0xaa; 20];
        write_stamp(&mut p, t);
        assert_eq!(read_stamp(&p), Some(1_234_567));
        assert_eq!(&p[..12], &[0xaa; 12]);
    }

    #[test]
    fn short_payloads_carry_no_stamp() {
        assert_eq!(read_stamp(&[1, 2, 3]), None);
        assert_eq!(read_stamp(&[0; 8]), Some(0));
    }
}
