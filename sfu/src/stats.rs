//! Counters a worker keeps on the packet path: relaxed atomics in a struct
//! owned by one worker, read by the metrics exporter. No labels per
//! participant; drops are counted by reason.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
