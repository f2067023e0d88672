//! Probe clusters: what was sent and received for the cluster in flight,
//! the verdict on it, and the backoff after failures. Starting a cluster
//! and applying its result to the controllers are the estimator's.

use std::time::{Duration, Instant};

/// Received probe packets needed for a probe result.
const PROBE_MIN_PACKETS: u32 = 5;
/// A probe cluster is judged this long after its last packet was sent, whatever feedback came.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// A probe succeeded when the link delivered at least this share of its send rate.
const PROBE_DELIVERED_RATIO: f64 = 0.9;
/// Probe send or arrival spans beyond this are not a probe's (the caller kept tagging).
const PROBE_MAX_SPAN_US: i64 = 1_000_000;
/// Waiting time after the first failed probe; doubles with each further failure.
const PROBE_BACKOFF_INITIAL: Duration = Duration::from_secs(2);
/// The longest waiting time between failed probes.
const PROBE_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// One side of a probe cluster: its packets' first and last times, and bytes.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Span {
    packets: u32,
    first_us: i64,
    pub(super) first_size: u64,
    last_us: i64,
    last_size: u64,
    bytes: u64,
}

impl Span {
    pub(super) fn add(&mut self, at_us: i64, size: u32) {
        let size = u64::from(size);
        if self.packets == 0 {
            *self = Self {
                packets: 1,
                first_us: at_us,
                first_size: size,
                last_us: at_us,
                last_size: size,
                bytes: size,
            };
            return;
        }
        self.packets += 1;
        self.bytes += size;
        if at_us < self.first_us {
            self.first_us = at_us;
            self.first_size = size;
        }
        if at_us >= self.last_us {
            self.last_us = at_us;
            self.last_size = size;
        }
    }

    /// Bits per second over the span, less the edge packet it does not cover.
    pub(super) fn rate_bps(&self, edge_size: u64) -> Option<f64> {
        let duration = self.last_us - self.first_us;
        (self.packets >= 2 && (1..=PROBE_MAX_SPAN_US).contains(&duration))
            .then(|| (self.bytes - edge_size) as f64 * 8e6 / duration as f64)
    }
}

/// The rate a probe cluster showed the link carries, if it succeeded.
///
/// Each rate leaves out one packet: the last sent left after the send span
/// ended, the first received arrived before the arrival span began. The send
/// rate counts every packet sent, so a cluster that lost packets delivered
/// less than it sent, like one that filled a queue: either way the link was
/// full at that rate and the probe shows only that.
pub(super) fn probe_result_bps(sent: &Span, received: &Span) -> Option<f64> {
    if received.packets < PROBE_MIN_PACKETS {
        return None;
    }
    let send_bps = sent.rate_bps(sent.last_size)?;
    let recv_bps = received.rate_bps(received.first_size)?;
    (recv_bps >= PROBE_DELIVERED_RATIO * send_bps).then(|| send_bps.min(recv_bps))
}

/// The probe cluster in flight.
pub(super) struct Cluster {
    pub(super) id: u32,
    pub(super) started: Instant,
    pub(super) last_sent: Option<Instant>,
    pub(super) last_seq: Option<i64>,
    pub(super) reported: u32,
    pub(super) last_reported: bool,
    /// Every packet sent in the cluster, by send time.
    pub(super) sent: Span,
    /// The packets reported received, by arrival time.
    pub(super) received: Span,
}

impl Cluster {
    fn deadline(&self) -> Instant {
        self.last_sent.unwrap_or(self.started) + PROBE_TIMEOUT
    }

    pub(super) fn complete(&self, now: Instant) -> bool {
        (self.reported >= PROBE_MIN_PACKETS && self.last_reported) || now >= self.deadline()
    }
}

/// Probe clusters: the one in flight and the backoff after failures.
pub(super) struct Prober {
    pub(super) next_id: u32,
    pub(super) active: Option<Cluster>,
    pub(super) failures: u32,
    pub(super) not_before: Option<Instant>,
    /// What the link delivered during the last failed probe, if measured.
    pub(super) ceiling_bps: Option<f64>,
}

impl Prober {
    pub(super) fn blocked(&self, now: Instant) -> bool {
        self.active.is_some() || self.not_before.is_some_and(|t| now < t)
    }

    pub(super) fn fail(&mut self, now: Instant, delivered_bps: Option<f64>) {
        self.ceiling_bps = delivered_bps;
        self.failures = self.failures.saturating_add(1);
        let backoff = PROBE_BACKOFF_INITIAL
            .saturating_mul(1 << (self.failures - 1).min(16))
            .min(PROBE_BACKOFF_MAX);
        self.not_before = Some(now + backoff);
    }

    pub(super) fn succeed(&mut self) {
        self.failures = 0;
        self.not_before = None;
        self.ceiling_bps = None;
    }
}
