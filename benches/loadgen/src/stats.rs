//! Receive-side accounting: per-stream sequence/loss and RFC 3550 jitter,
//! and the per-thread totals (delay histogram, per-second packet rates,
//! join and first-packet times) that are merged into the report.

use hdrhistogram::Histogram;

/// One received RTP stream (one SSRC on one subscriber).
#[derive(Debug, Clone)]
pub struct StreamStats {
    /// RTP clock rate (48000 audio, 90000 video).
    pub clock_rate: u32,
    /// Packets received (duplicates included).
    pub received: u64,
    first_seq: Option<u64>,
    max_seq: u64,
    cycles: u64,
    last_seq16: u16,
    /// Previous transit time, in RTP units.
    transit: Option<i64>,
    /// RFC 3550 interarrival jitter, in RTP units, scaled by 16.
    jitter16: i64,
}

impl StreamStats {
    /// A stream with this clock rate.
    pub fn new(clock_rate: u32) -> Self {
        StreamStats {
            clock_rate,
            received: 0,
            first_seq: None,
            max_seq: 0,
            cycles: 0,
            last_seq16: 0,
            transit: None,
            jitter16: 0,
        }
    }

    /// A packet with sequence `seq` and RTP timestamp `ts` arrived at
    /// `arrival_us` (microseconds on any monotonic clock).
    pub fn on_packet(&mut self, seq: u16, ts: u32, arrival_us: u64) {
        self.received += 1;
        match self.first_seq {
            None => {
                self.first_seq = Some(u64::from(seq));
                self.max_seq = u64::from(seq);
                self.last_seq16 = seq;
            }
            Some(_) => {
                let delta = seq.wrapping_sub(self.last_seq16);
                if delta < 0x8000 {
                    // In order (or a jump forward).
                    if seq < self.last_seq16 {
                        self.cycles += 1 << 16;
                    }
                    self.last_seq16 = seq;
                    self.max_seq = self.cycles + u64::from(seq);
                }
            }
        }
        let arrival = (arrival_us as u128 * self.clock_rate as u128 / 1_000_000) as i64;
        let transit = arrival - i64::from(ts);
        if let Some(prev) = self.transit {
            // RTP timestamps wrap; transit differences are small.
            let d = (transit - prev).rem_euclid(1 << 32);
            let d = if d > (1 << 31) { (1 << 32) - d } else { d };
            self.jitter16 += d - ((self.jitter16 + 8) >> 4);
        }
        self.transit = Some(transit);
    }

    /// Packets expected from the first to the highest sequence seen.
    pub fn expected(&self) -> u64 {
        self.first_seq.map_or(0, |f| self.max_seq + 1 - f)
    }

    /// Expected minus received, never negative.
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        (self.jitter16 >> 4) as f64 * 1000.0 / self.clock_rate as f64
    }
}

/// A histogram of microseconds, up to an hour.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// What one media thread measured.
pub struct Totals {
    pub packets_sent: u64,
    pub packets_received: u64,
    pub expected: u64,
    pub lost: u64,
    pub keyframes_sent: u64,
    /// VP8 keyframe starts received by subscribers.
    pub keyframes_received: u64,
    pub keyframe_requests: u64,
    /// End-to-end delay, µs.
    pub delay: Histogram<u64>,
    /// End-to-end delay inside the steady window, µs.
    pub delay_steady: Histogram<u64>,
    /// When the steady window starts (all joined, plus a settling time).
    pub steady_from: Option<std::time::Instant>,
    /// Peer connections that went from connected to anything else.
    pub disconnects: u64,
    /// Per-stream jitter at the end, µs.
    pub jitter: Histogram<u64>,
    /// Start → subscribe connection connected, µs.
    pub connect: Histogram<u64>,
    /// Start → first RTP packet received, µs.
    pub first_packet: Histogram<u64>,
    /// Packets received in each second since the run began.
    pub per_second: Vec<u64>,
    /// Packets sent in each second since the run began.
    pub sent_per_second: Vec<u64>,
    pub streams: u64,
}

impl Default for Totals {
    fn default() -> Self {
        Totals {
            packets_sent: 0,
            packets_received: 0,
            expected: 0,
            lost: 0,
            keyframes_sent: 0,
            keyframes_received: 0,
            keyframe_requests: 0,
            delay: histogram(),
            delay_steady: histogram(),
            steady_from: None,
            disconnects: 0,
            jitter: histogram(),
            connect: histogram(),
            first_packet: histogram(),
            per_second: Vec::new(),
            sent_per_second: Vec::new(),
            streams: 0,
        }
    }
}

/// Adds one to slot `i`, growing the vector as needed.
pub fn bump(v: &mut Vec<u64>, i: usize, n: u64) {
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    v[i] += n;
}

impl Totals {
    /// Folds a finished stream in.
    pub fn add_stream(&mut self, s: &StreamStats) {
        self.streams += 1;
        self.expected += s.expected();
        self.lost += s.lost();
        let _ = self.jitter.record(((s.jitter_ms() * 1000.0) as u64).max(1));
    }

    /// Adds another thread's totals.
    pub fn merge(&mut self, o: &Totals) {
        self.packets_sent += o.packets_sent;
        self.packets_received += o.packets_received;
        self.expected += o.expected;
        self.lost += o.lost;
        self.keyframes_sent += o.keyframes_sent;
        self.keyframes_received += o.keyframes_received;
        self.keyframe_requests += o.keyframe_requests;
        self.streams += o.streams;
        self.disconnects += o.disconnects;
        for (a, b) in [
            (&mut self.delay, &o.delay),
            (&mut self.delay_steady, &o.delay_steady),
            (&mut self.jitter, &o.jitter),
            (&mut self.connect, &o.connect),
            (&mut self.first_packet, &o.first_packet),
        ] {
            a.add(b).expect("same bounds");
        }
        for (i, &n) in o.per_second.iter().enumerate() {
            bump(&mut self.per_second, i, n);
        }
        for (i, &n) in o.sent_per_second.iter().enumerate() {
            bump(&mut self.sent_per_second, i, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_gaps_as_loss_across_a_wrap() {
        let mut s = StreamStats::new(90000);
        for (t, seq) in [65530u16, 65531, 65533, 65535, 0, 1, 4]
            .into_iter()
            .enumerate()
        {
            s.on_packet(seq, 0, t as u64);
        }
        assert_eq!(s.expected(), 11);
        assert_eq!(s.received, 7);
        assert_eq!(s.lost(), 4);
    }

    #[test]
    fn reordered_packets_do_not_count_as_loss() {
        let mut s = StreamStats::new(48000);
        for seq in [10u16, 12, 11, 13] {
            s.on_packet(seq, 0, 0);
        }
        assert_eq!((s.expected(), s.lost()), (4, 0));
    }

    #[test]
    fn steady_arrivals_have_no_jitter() {
        let mut s = StreamStats::new(48000);
        for i in 0..100u32 {
            s.on_packet(i as u16, 1000 + i * 960, 5_000 + u64::from(i) * 20_000);
        }
        assert_eq!(s.jitter_ms(), 0.0);
    }

    #[test]
    fn alternating_delay_converges_to_rfc3550_jitter() {
        // Transit alternates by 10 ms: D = 10 ms each packet, J → 10 ms.
        let mut s = StreamStats::new(48000);
        for i in 0..500u32 {
            let extra = if i % 2 == 0 { 0 } else { 10_000 };
            s.on_packet(i as u16, i * 960, u64::from(i) * 20_000 + extra);
        }
        assert!((s.jitter_ms() - 10.0).abs() < 0.3, "{}", s.jitter_ms());
    }

    #[test]
    fn merge_adds_counts_and_rates() {
        let mut a = Totals::default();
        let mut b = Totals::default();
        bump(&mut a.per_second, 1, 5);
        bump(&mut b.per_second, 3, 2);
        b.packets_received = 9;
        b.delay.record(1000).unwrap();
        a.merge(&b);
        assert_eq!(a.per_second, vec![0, 5, 0, 2]);
        assert_eq!(a.packets_received, 9);
        assert_eq!(a.delay.len(), 1);
    }
}
