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

impl DelaySnapshot {
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
