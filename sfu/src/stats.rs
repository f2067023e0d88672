//! Counters a worker keeps on the packet path: relaxed atomics in a struct
//! owned by one worker, read by the metrics exporter. No labels per
//! participant; drops are counted by reason.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Every place a packet can be dropped, named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A datagram that is neither STUN, DTLS nor RTP/RTCP.
    Garbage,
    /// From an address (or ufrag) no peer owns.
    UnknownSource,
    /// The WebRTC stack rejected it (bad SRTP, replay, parse error).
    Rejected,
    /// The subscriber's connection is not up (or its answer not applied) yet.
    SubscriberNotReady,
    /// A channel between threads was full.
    QueueFull,
    /// Waited in a worker's queue too long: the worker is overloaded, and
    /// late media is shed rather than delivered seconds late.
    Overload,
    /// The socket refused to send it.
    SendFailed,
}

impl DropReason {
    /// All reasons, for exporting.
    pub const ALL: [DropReason; 7] = [
        DropReason::Garbage,
        DropReason::UnknownSource,
        DropReason::Rejected,
        DropReason::SubscriberNotReady,
        DropReason::QueueFull,
        DropReason::Overload,
        DropReason::SendFailed,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Garbage => "garbage",
            DropReason::UnknownSource => "unknown_source",
            DropReason::Rejected => "rejected",
            DropReason::SubscriberNotReady => "subscriber_not_ready",
            DropReason::QueueFull => "queue_full",
            DropReason::Overload => "overload",
            DropReason::SendFailed => "send_failed",
        }
    }
}

/// Counters of one worker (or of the network threads).
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Datagrams received.
    pub packets_in: AtomicU64,
    /// Bytes received.
    pub bytes_in: AtomicU64,
    /// Datagrams sent.
    pub packets_out: AtomicU64,
    /// Bytes sent.
    pub bytes_out: AtomicU64,
    /// RTP packets forwarded to a subscriber.
    pub rtp_forwarded: AtomicU64,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests: AtomicU64,
    /// Video packets not forwarded to a subscriber that does not show them.
    pub rtp_paused: AtomicU64,
    /// Simulcast layer switches (on a keyframe of the chosen layer).
    pub layer_switches: AtomicU64,
    /// Videos paused for a subscriber whose link cannot carry even their lowest layer.
    pub video_paused_for_bandwidth: AtomicU64,
    /// Receive → handed to the kernel, per incoming media packet.
    pub forward_delay: DelayHistogram,
    /// Round-trip times to subscribers, from their receiver reports.
    pub rtt: Histogram<RttBuckets>,
    /// Fraction of packets lost on the way to subscribers, from their receiver reports.
    pub loss: Histogram<LossBuckets>,
    /// Each subscriber's downlink estimate, sampled once a second.
    pub estimate: Histogram<EstimateBuckets>,
    /// From a subscribe connection's creation (the join) to its first media packet.
    pub first_media: Histogram<FirstMediaBuckets>,
    drops: [AtomicU64; 7],
}

impl WorkerStats {
    /// Counts one dropped packet.
    pub fn dropped(&self, reason: DropReason) {
        self.drops[reason as usize].fetch_add(1, Relaxed);
    }

    /// Dropped packets so far for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].load(Relaxed)
    }

    /// Adds to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}

/// Upper bounds, in seconds, of the forwarding-delay buckets: fine below
/// 2 ms, where a healthy worker sits, coarse above, where shedding starts.
pub const FORWARD_DELAY_BOUNDS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.000_75, 0.001, 0.001_5, 0.002, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25,
];

/// A fixed-bucket histogram of durations, written by one worker with relaxed
/// atomics and read at scrape time.
#[derive(Debug, Default)]
pub struct DelayHistogram {
    /// Per-bucket counts (not cumulative); the last is the overflow (+Inf).
    buckets: [AtomicU64; FORWARD_DELAY_BOUNDS.len() + 1],
    sum_ns: AtomicU64,
}

/// A copy of a [`DelayHistogram`], in Prometheus's cumulative form.
#[derive(Debug, Clone, PartialEq)]
pub struct DelaySnapshot {
    /// Cumulative counts, one per bound in [`FORWARD_DELAY_BOUNDS`].
    pub cumulative: Vec<u64>,
    /// All observations (the +Inf bucket).
    pub count: u64,
    /// Sum of the observations, seconds.
    pub sum_seconds: f64,
}

impl DelayHistogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = FORWARD_DELAY_BOUNDS
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(FORWARD_DELAY_BOUNDS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_ns
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    /// Reads the histogram.
    pub fn snapshot(&self) -> DelaySnapshot {
        let mut cumulative = Vec::with_capacity(FORWARD_DELAY_BOUNDS.len());
        let mut acc = 0;
        for b in &self.buckets[..FORWARD_DELAY_BOUNDS.len()] {
            acc += b.load(Relaxed);
            cumulative.push(acc);
        }
        let count = acc + self.buckets[FORWARD_DELAY_BOUNDS.len()].load(Relaxed);
        DelaySnapshot {
            cumulative,
            count,
            sum_seconds: self.sum_ns.load(Relaxed) as f64 / 1e9,
        }
    }
}

/// The upper bounds of one kind of [`Histogram`].
pub trait Buckets {
    /// Upper bounds, ascending; at most [`MAX_BUCKETS`] - 1.
    const BOUNDS: &'static [f64];
}

/// The most buckets (with +Inf) a [`Histogram`] holds.
pub const MAX_BUCKETS: usize = 16;

/// Round-trip time, seconds: LAN to a congested WAN link.
#[derive(Debug, Default)]
pub struct RttBuckets;
impl Buckets for RttBuckets {
    const BOUNDS: &'static [f64] = &[
        0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.2,
    ];
}

/// Loss ratio (0–1) per receiver report.
#[derive(Debug, Default)]
pub struct LossBuckets;
impl Buckets for LossBuckets {
    const BOUNDS: &'static [f64] = &[0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5];
}

/// Downlink estimate, bytes per second (Prometheus's base unit): 50 kbit/s to 50 Mbit/s.
#[derive(Debug, Default)]
pub struct EstimateBuckets;
impl Buckets for EstimateBuckets {
    const BOUNDS: &'static [f64] = &[
        6_250.0,
        12_500.0,
        31_250.0,
        62_500.0,
        125_000.0,
        250_000.0,
        500_000.0,
        1_000_000.0,
        2_000_000.0,
        6_250_000.0,
    ];
}

/// Join to first media, seconds.
#[derive(Debug, Default)]
pub struct FirstMediaBuckets;
impl Buckets for FirstMediaBuckets {
    const BOUNDS: &'static [f64] = &[0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0];
}

/// A fixed-bucket histogram of values (not on the forwarding path: a few
/// observations per subscriber a second), read at scrape time.
#[derive(Debug, Default)]
pub struct Histogram<B: Buckets> {
    buckets: [AtomicU64; MAX_BUCKETS],
    /// The sum, as f64 bits.
    sum: AtomicU64,
    _bounds: std::marker::PhantomData<B>,
}

impl<B: Buckets> Histogram<B> {
    /// The bucket bounds.
    pub fn bounds(&self) -> &'static [f64] {
        B::BOUNDS
    }

    /// Records one value; NaN is ignored.
    pub fn observe(&self, v: f64) {
        if v.is_nan() {
            return;
        }
        let i = B::BOUNDS
            .iter()
            .position(|&b| v <= b)
            .unwrap_or(B::BOUNDS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        let _ = self.sum.fetch_update(Relaxed, Relaxed, |bits| {
            Some((f64::from_bits(bits) + v).to_bits())
        });
    }

    /// Reads the histogram (`sum_seconds` holds the sum, whatever the unit).
    pub fn snapshot(&self) -> DelaySnapshot {
        let n = B::BOUNDS.len();
        let mut cumulative = Vec::with_capacity(n);
        let mut acc = 0;
        for b in &self.buckets[..n] {
            acc += b.load(Relaxed);
            cumulative.push(acc);
        }
        DelaySnapshot {
            cumulative,
            count: acc + self.buckets[n].load(Relaxed),
            sum_seconds: f64::from_bits(self.sum.load(Relaxed)),
        }
    }
}

impl DelaySnapshot {
    /// An empty snapshot with `n` buckets, to merge into.
    pub fn empty(n: usize) -> Self {
        DelaySnapshot {
            cumulative: vec![0; n],
            count: 0,
            sum_seconds: 0.0,
        }
    }

    /// Adds another snapshot (of another worker) to this one.
    pub fn merge(&mut self, o: &DelaySnapshot) {
        for (a, b) in self.cumulative.iter_mut().zip(&o.cumulative) {
            *a += b;
        }
        self.count += o.count;
        self.sum_seconds += o.sum_seconds;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_histograms_bucket_and_sum() {
        let h = Histogram::<LossBuckets>::default();
        h.observe(0.0);
        h.observe(0.03);
        h.observe(0.9);
        h.observe(f64::NAN);
        let s = h.snapshot();
        assert_eq!(s.cumulative, vec![1, 1, 1, 1, 2, 2, 2, 2]);
        assert_eq!(s.count, 3);
        assert!((s.sum_seconds - 0.93).abs() < 1e-9);
        for bounds in [
            RttBuckets::BOUNDS,
            LossBuckets::BOUNDS,
            EstimateBuckets::BOUNDS,
            FirstMediaBuckets::BOUNDS,
        ] {
            assert!(bounds.len() < MAX_BUCKETS);
            assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn buckets_are_cumulative_and_overflow_counts() {
        let h = DelayHistogram::default();
        h.observe(Duration::from_micros(40));
        h.observe(Duration::from_micros(900));
        h.observe(Duration::from_millis(2));
        h.observe(Duration::from_secs(3));
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.cumulative[0], 1, "40 µs is in the first bucket");
        let at = |bound: f64| {
            let i = FORWARD_DELAY_BOUNDS
                .iter()
                .position(|&b| b == bound)
                .unwrap();
            s.cumulative[i]
        };
        assert_eq!(at(0.000_75), 1);
        assert_eq!(at(0.001), 2);
        assert_eq!(at(0.002), 3, "the bound itself belongs to its bucket");
        assert_eq!(at(0.25), 3, "3 s only shows in the count");
        assert!((s.sum_seconds - 3.002_94).abs() < 1e-9);
        let mut m = s.clone();
        m.merge(&s);
        assert_eq!(m.count, 8);
        assert_eq!(m.cumulative[0], 2);
    }
}
