//! Send-side bandwidth estimation for one subscriber's downlink, in the
//! manner of Google Congestion Control (draft-ietf-rmcat-gcc-02) driven by
//! transport-wide feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01).
//!
//! The caller reports every packet it hands to the network (its
//! transport-wide sequence number, size and probe cluster) and every feedback
//! message; this module answers with a bitrate for the link. Three signals
//! feed it: queueing delay trends (the delay-based AIMD controller), loss (the
//! loss-based controller) and probes (short padding bursts that show whether
//! the link carries more than is being sent). It owns no socket, clock or
//! timer and does not decode RTCP (`peer::twcc` does), pace packets or decide
//! how the rate is shared between tracks.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use sfu::bwe::{BweConfig, Feedback, SendSideBwe};
//!
//! let start = Instant::now();
//! let mut bwe = SendSideBwe::new(BweConfig::default(), start);
//! // Every packet sent carries the next transport-wide sequence number.
//! for seq in 0..100u16 {
//!     let sent = start + Duration::from_millis(u64::from(seq) * 5);
//!     bwe.on_packet_sent(sent, seq, 1_200, None);
//! }
//! // The receiver's report (`peer::twcc` decodes the RTCP into this): each
//! // packet arrived 20 ms after it was sent.
//! let feedback = Feedback {
//!     base_seq: 0,
//!     reference_us: 0,
//!     arrivals: (0..100).map(|i| Some(20_000 + i * 5_000)).collect(),
//! };
//! let now = start + Duration::from_millis(550);
//! bwe.on_feedback(now, &feedback);
//! assert_eq!(bwe.acked_bps(), Some(1_920_000));
//! // Wanting more than the estimate, the sender probes.
//! if bwe.can_probe(now) {
//!     let cluster = bwe.start_probe(now, 2 * bwe.estimate_bps());
//!     // Send at that rate for 100 ms, every packet tagged with `cluster`.
//! }
//! ```

use std::time::{Duration, Instant};

mod delay;
mod probe;
mod rate;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

use delay::{InterArrival, OveruseDetector, Signal, Trendline};
use probe::{Cluster, Prober, Span, probe_result_bps};
use rate::{AckedBitrate, Aimd, LOSS_DECREASE_INTERVAL, LinkCapacity, LossControl};

/// Packets remembered for matching feedback; a power of two so that the slot
/// is the low bits. Browsers send feedback every 50–250 ms: 512 covers a
/// subscriber receiving ~2000 packets/s, at 12 KiB per subscriber.
const HISTORY: usize = 512;
/// Delay variation beyond this is a clock or time-base jump, not queueing.
const MAX_VARIATION_MS: f64 = 3_000.0;
/// RTT assumed until the caller reports one.
const DEFAULT_RTT: Duration = Duration::from_millis(100);
/// Longer RTTs are taken as this: beyond it the controllers would freeze.
const MAX_RTT: Duration = Duration::from_secs(2);
/// Receiver reports are ignored while transport-wide feedback arrived within this.
const TWCC_FRESH: Duration = Duration::from_secs(2);
/// The estimate is set a little under a successful probe's result.
const PROBE_RESULT_FACTOR: f64 = 0.95;
/// Packets sent this long after a probe's last one still queue behind it.
const PROBE_GUARD_US: i64 = 100_000;
/// Acknowledged traffic this much above what a failed probe got through ends the backoff.
const PROBE_CEILING_MARGIN: f64 = 1.2;
/// No probing this soon after overuse or heavy loss: the link was full.
const PROBE_QUIET_AFTER_OVERUSE: Duration = Duration::from_secs(2);
/// Period of the 24-bit RTCP reference time (64 ms units), µs.
const REFERENCE_PERIOD_US: i64 = (1 << 24) * 64_000;
/// A reference time this far behind the previous one is a new time base, not reordering.
const REFERENCE_BACKWARDS_US: i64 = 1_000_000;
/// No datagram is bigger; a larger size is a caller's bug and must not swamp the rates.
const MAX_PACKET_BYTES: u32 = 65_535;
/// Arrival offsets beyond this (±~12 days) are garbage; clamping keeps arithmetic in range.
const MAX_OFFSET_US: i64 = 1 << 40;

/// Limits and starting point of the estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BweConfig {
    /// The estimate before feedback says anything, bits per second.
    pub initial_bps: u64,
    /// The estimate never goes below this, bits per second.
    pub min_bps: u64,
    /// The estimate never goes above this, bits per second.
    pub max_bps: u64,
}

impl Default for BweConfig {
    fn default() -> Self {
        Self {
            initial_bps: 1_000_000,
            min_bps: 50_000,
            max_bps: 20_000_000,
        }
    }
}

/// One transport-wide feedback message, decoded: which packets arrived, and when.
///
/// Times are microseconds on the receiver's clock. The arrival time of packet
/// `base_seq + i` is `reference_us + arrivals[i]`; `reference_us` is the RTCP
/// reference time as sent (24 bits of 64 ms, so it wraps every ~12 days and
/// the estimator unwraps it), which makes the arrivals of successive messages
/// comparable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Feedback {
    /// Transport-wide sequence number of `arrivals[0]`.
    pub base_seq: u16,
    /// The message's reference time in µs: the 24-bit RTCP field × 64 000.
    pub reference_us: i64,
    /// Per packet from `base_seq`: arrival in µs after `reference_us`, or `None` if not received.
    pub arrivals: Vec<Option<i64>>,
}

/// Whether a sent packet has been reported by feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Report {
    Pending,
    Lost,
    Received,
}

/// A packet handed to the network, kept until feedback reports it.
#[derive(Debug, Clone, Copy)]
struct Sent {
    send_us: i64,
    /// Unwrapped sequence number (its low 32 bits: thousands of histories
    /// apart); a slot holding another number is someone else's.
    seq: u32,
    size: u32,
    /// The probe cluster, 0 for none (kept in 4 bytes: 24 per entry).
    probe: u32,
    report: Report,
}

impl Sent {
    fn probe(&self) -> Option<u32> {
        (self.probe != 0).then_some(self.probe)
    }
}

/// The last [`HISTORY`] packets sent, indexed by unwrapped sequence number.
struct SendHistory {
    slots: Box<[Sent]>,
    /// The last sequence number handed in, unwrapped: the reference for unwrapping the next.
    last: Option<i64>,
    /// The highest sequence number sent: feedback is about packets at or below it.
    highest: Option<i64>,
}

impl SendHistory {
    fn new() -> Self {
        // Allocated on the first packet: a subscriber without transport-wide
        // feedback never needs it.
        Self {
            slots: Box::default(),
            last: None,
            highest: None,
        }
    }

    fn insert(&mut self, seq: u16, send_us: i64, size: u32, probe: Option<u32>) -> i64 {
        let seq = self
            .last
            .map_or(i64::from(seq), |last| unwrap_near(last, seq));
        self.last = Some(seq);
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        if self.slots.is_empty() {
            let empty = Sent {
                send_us: 0,
                seq: u32::MAX,
                size: 0,
                probe: 0,
                // Already reported: feedback naming an empty slot changes nothing.
                report: Report::Received,
            };
            self.slots = vec![empty; HISTORY].into_boxed_slice();
        }
        self.slots[slot(seq)] = Sent {
            send_us,
            seq: seq as u32,
            size,
            probe: probe.unwrap_or(0),
            report: Report::Pending,
        };
        seq
    }

    fn get_mut(&mut self, seq: i64) -> Option<&mut Sent> {
        let s = self.slots.get_mut(slot(seq))?;
        (s.seq == seq as u32).then_some(s)
    }
}

fn slot(seq: i64) -> usize {
    seq.rem_euclid(HISTORY as i64) as usize
}

/// The value congruent to `seq` modulo 2^16 nearest to `reference`.
fn unwrap_near(reference: i64, seq: u16) -> i64 {
    let delta = seq.wrapping_sub(reference as u16) as i16;
    reference + i64::from(delta)
}

/// Send-side bandwidth estimator for one downlink (one transport-wide sequence space).
pub struct SendSideBwe {
    cfg: BweConfig,
    origin: Instant,
    rtt: Duration,
    history: SendHistory,
    reference_us: Option<i64>,
    inter_arrival: InterArrival,
    trendline: Trendline,
    detector: OveruseDetector,
    acked: AckedBitrate,
    acked_bps: Option<f64>,
    aimd: Aimd,
    loss: LossControl,
    prober: Prober,
    last_overuse: Option<Instant>,
    /// Groups sent up to this (µs) may be queued behind probe packets.
    probe_guard_us: i64,
    /// Whether the current overuse was confirmed by such a group.
    overuse_from_probe: bool,
    last_feedback: Option<Instant>,
    estimate: u64,
}

impl SendSideBwe {
    /// A new estimator at `cfg.initial_bps` (`max_bps` below `min_bps` is raised to it).
    pub fn new(cfg: BweConfig, now: Instant) -> Self {
        let max_bps = cfg.max_bps.max(cfg.min_bps);
        let cfg = BweConfig {
            initial_bps: cfg.initial_bps.clamp(cfg.min_bps, max_bps),
            min_bps: cfg.min_bps,
            max_bps,
        };
        let initial = cfg.initial_bps as f64;
        Self {
            cfg,
            origin: now,
            rtt: DEFAULT_RTT,
            history: SendHistory::new(),
            reference_us: None,
            inter_arrival: InterArrival::default(),
            trendline: Trendline::new(),
            detector: OveruseDetector::new(),
            acked: AckedBitrate::new(),
            acked_bps: None,
            aimd: Aimd::new(initial),
            loss: LossControl::new(initial),
            prober: Prober {
                next_id: 1,
                active: None,
                failures: 0,
                not_before: None,
                ceiling_bps: None,
            },
            last_overuse: None,
            probe_guard_us: i64::MIN,
            overuse_from_probe: false,
            last_feedback: None,
            estimate: cfg.initial_bps,
        }
    }

    /// Records a packet handed to the network.
    ///
    /// `seq` is the transport-wide sequence number written into it (16 bits,
    /// unwrapped here); `probe` is the cluster it was sent for, if any.
    pub fn on_packet_sent(
        &mut self,
        now: Instant,
        seq: u16,
        size_bytes: usize,
        probe: Option<u32>,
    ) {
        let send_us = self.micros(now);
        let size = u32::try_from(size_bytes).map_or(MAX_PACKET_BYTES, |s| s.min(MAX_PACKET_BYTES));
        let seq = self.history.insert(seq, send_us, size, probe);
        self.finish_probe(now);
        if let Some(c) = self.prober.active.as_mut()
            && probe == Some(c.id)
        {
            c.last_sent = Some(now);
            c.last_seq = Some(seq);
            c.last_reported = false;
            c.sent.add(send_us, size);
            self.probe_guard_us = send_us.saturating_add(PROBE_GUARD_US);
        }
    }

    /// Applies one transport-wide feedback message (see [`Feedback`] for its time base).
    pub fn on_feedback(&mut self, now: Instant, fb: &Feedback) {
        if self.last_feedback.replace(now).is_none() {
            // Receiver reports may have moved the estimate: the delay-based
            // controller starts from there.
            self.aimd.bps = self.loss.bps;
        }
        let (mut lost, mut received, mut recovered) = (0u32, 0u32, 0u32);
        let mut overused = self.detector.signal == Signal::Overuse;
        if let (Some(highest), false) = (self.history.highest, fb.arrivals.is_empty()) {
            let previous = self.reference_us;
            let reference = self.unwrap_reference(fb.reference_us);
            if previous.is_some_and(|p| reference < p - REFERENCE_BACKWARDS_US) {
                // The receiver's time base changed (a restart, or garbage):
                // arrivals before and after it cannot be compared.
                self.acked = AckedBitrate::new();
                self.inter_arrival = InterArrival::default();
            }
            let base = unwrap_near(highest, fb.base_seq);
            for (seq, arrival) in (base..).zip(&fb.arrivals) {
                let Some(sent) = self.history.get_mut(seq) else {
                    continue;
                };
                let Some(offset) = *arrival else {
                    if sent.report == Report::Pending {
                        sent.report = Report::Lost;
                        lost += 1;
                        let probe = sent.probe();
                        self.probe_reported(seq, probe);
                    }
                    continue;
                };
                match sent.report {
                    Report::Received => continue,
                    Report::Lost => recovered += 1,
                    Report::Pending => received += 1,
                }
                let was_pending = sent.report == Report::Pending;
                sent.report = Report::Received;
                let sent = *sent;
                let arrival_us = reference + offset.clamp(-MAX_OFFSET_US, MAX_OFFSET_US);
                self.on_received(&sent, arrival_us);
                overused |= self.detector.signal == Signal::Overuse;
                if let Some(c) = self.prober.active.as_mut()
                    && sent.probe() == Some(c.id)
                {
                    c.received.add(arrival_us, sent.size);
                }
                if was_pending {
                    self.probe_reported(seq, sent.probe());
                }
            }
        }
        if self.detector.signal != Signal::Overuse {
            self.overuse_from_probe = false;
        }
        if overused {
            self.last_overuse = Some(now);
        }
        self.acked_bps = self.acked.bps();
        if let (Some(acked), Some(ceiling)) = (self.acked_bps, self.prober.ceiling_bps)
            && acked > PROBE_CEILING_MARGIN * ceiling
        {
            // The link now delivers clearly more than when the last probe
            // filled it: the failures describe a link that is gone.
            self.prober.succeed();
        }
        // A probe's own queue is the probe's verdict (failure, backoff), not
        // a reason to cut the rate: hold until overuse is confirmed by
        // packets sent after the probe.
        let signal = match self.detector.signal {
            Signal::Overuse if self.overuse_from_probe => Signal::Underuse,
            s => s,
        };
        self.aimd.update(now, signal, self.acked_bps, self.rtt);
        self.clamp_controllers();
        let estimate = self.combined();
        self.loss
            .count(now, lost, received, recovered, estimate, self.acked_bps);
        self.finish_probe(now);
        self.refresh();
    }

    /// Applies a loss fraction (0..=1) from receiver reports, for peers without transport-wide feedback.
    ///
    /// Ignored while transport-wide feedback is arriving: that counts the same
    /// losses per packet, and twice would be too many.
    pub fn on_loss_report(&mut self, now: Instant, fraction_lost: f64) {
        let twcc_fresh = self
            .last_feedback
            .is_some_and(|t| now.saturating_duration_since(t) < TWCC_FRESH);
        self.finish_probe(now);
        if twcc_fresh || !fraction_lost.is_finite() {
            return;
        }
        let estimate = self.combined();
        self.loss
            .apply(now, fraction_lost.clamp(0.0, 1.0), estimate, self.acked_bps);
        self.clamp_controllers();
        self.refresh();
    }

    /// Sets the round-trip time that paces the controllers' increases and decreases (100 ms until set).
    pub fn set_rtt(&mut self, rtt: Duration) {
        self.rtt = rtt.min(MAX_RTT);
        self.loss.decrease_interval = LOSS_DECREASE_INTERVAL + self.rtt;
    }

    /// The current estimate, bits per second, within [min_bps, max_bps].
    pub fn estimate_bps(&self) -> u64 {
        self.estimate
    }

    /// The acknowledged (received) bitrate over the last 500 ms of arrivals, once 150 ms are known.
    pub fn acked_bps(&self) -> Option<u64> {
        self.acked_bps.map(|b| b as u64)
    }

    /// Whether the delay-based detector currently sees overuse (the link is full).
    pub fn is_overusing(&self) -> bool {
        self.detector.signal == Signal::Overuse
    }

    /// Starts a probe cluster at `bps`; returns the id to tag its packets with.
    ///
    /// The caller then sends at `bps` in all for about 100 ms, padding on top
    /// of media, and tags every packet sent meanwhile, media included: the
    /// cluster is judged on all of them, once feedback reports its last
    /// packet (or a second after it was sent). A cluster that got through at
    /// close to its send rate raises the estimate to 95 % of that rate; one
    /// that did not (it filled a queue or lost packets) changes nothing but
    /// the backoff. `None` while a cluster is in flight or after a failure:
    /// 2 s, doubling up to 5 s, until a success, or until the link delivers
    /// clearly more than the failed probe got through.
    pub fn start_probe(&mut self, now: Instant, bps: u64) -> Option<u32> {
        self.finish_probe(now);
        if bps == 0 || self.prober.blocked(now) {
            return None;
        }
        let id = self.prober.next_id;
        // 0 means "no cluster" in the history.
        self.prober.next_id = id.wrapping_add(1).max(1);
        self.prober.active = Some(Cluster {
            id,
            started: now,
            last_sent: None,
            last_seq: None,
            reported: 0,
            last_reported: false,
            sent: Span::default(),
            received: Span::default(),
        });
        Some(id)
    }

    /// Whether probing makes sense now: no overuse or loss over 10 % in the last 2 s, no cluster in flight, no backoff.
    pub fn can_probe(&self, now: Instant) -> bool {
        let quiet = self
            .last_overuse
            .is_none_or(|t| now.saturating_duration_since(t) >= PROBE_QUIET_AFTER_OVERUSE);
        // With heavy loss the loss-based controller holds the estimate down
        // whatever a probe finds, and a few lucky packets would mislead it.
        let clean = self
            .loss
            .last_heavy
            .is_none_or(|t| now.saturating_duration_since(t) >= PROBE_QUIET_AFTER_OVERUSE);
        quiet && clean && !self.prober.blocked(now)
    }

    fn micros(&self, now: Instant) -> i64 {
        i64::try_from(now.saturating_duration_since(self.origin).as_micros()).unwrap_or(i64::MAX)
    }

    fn unwrap_reference(&mut self, raw_us: i64) -> i64 {
        let raw = raw_us.rem_euclid(REFERENCE_PERIOD_US);
        let unwrapped = match self.reference_us {
            None => raw,
            Some(last) => {
                let mut delta = raw - last.rem_euclid(REFERENCE_PERIOD_US);
                if delta > REFERENCE_PERIOD_US / 2 {
                    delta -= REFERENCE_PERIOD_US;
                } else if delta < -REFERENCE_PERIOD_US / 2 {
                    delta += REFERENCE_PERIOD_US;
                }
                last + delta
            }
        };
        self.reference_us = Some(unwrapped);
        unwrapped
    }

    /// Feeds a packet newly reported received to the rate and delay estimators.
    fn on_received(&mut self, sent: &Sent, arrival_us: i64) {
        self.acked.push(arrival_us, sent.size);
        let Some(delta) = self.inter_arrival.push(sent.send_us, arrival_us) else {
            return;
        };
        if delta.arrival_ms < 0.0 {
            // Groups arrived in the opposite order: reordering, no queue information.
            return;
        }
        let variation = delta.arrival_ms - delta.send_ms;
        if variation.abs() > MAX_VARIATION_MS {
            // The receiver's clock or time base jumped: start over.
            self.inter_arrival = InterArrival::default();
            self.trendline = Trendline::new();
            self.detector = OveruseDetector::new();
            return;
        }
        self.trendline.update(variation, delta.at_ms);
        if self
            .detector
            .detect(&self.trendline, delta.send_ms, delta.at_ms)
        {
            self.overuse_from_probe = delta.sent_us <= self.probe_guard_us;
        }
    }

    fn probe_reported(&mut self, seq: i64, probe: Option<u32>) {
        if let Some(c) = self.prober.active.as_mut()
            && probe == Some(c.id)
        {
            c.reported += 1;
            c.last_reported |= c.last_seq == Some(seq);
        }
    }

    /// Judges the cluster in flight if its feedback is complete or overdue.
    fn finish_probe(&mut self, now: Instant) {
        if !self.prober.active.as_ref().is_some_and(|c| c.complete(now)) {
            return;
        }
        let Some(cluster) = self.prober.active.take() else {
            return;
        };
        let estimate = self.combined();
        let raised = probe_result_bps(&cluster.sent, &cluster.received)
            .map(|r| (r * PROBE_RESULT_FACTOR).min(self.cfg.max_bps as f64))
            .filter(|&r| r > estimate);
        match raised {
            Some(r) => {
                self.aimd.bps = self.aimd.bps.max(r);
                self.loss.bps = self.loss.bps.max(r);
                // The old congestion points describe a link smaller than the one just measured.
                self.aimd.capacity = LinkCapacity::default();
                self.prober.succeed();
                self.refresh();
            }
            None => {
                let delivered = cluster.received.rate_bps(cluster.received.first_size);
                self.prober.fail(now, delivered);
            }
        }
    }

    fn clamp_controllers(&mut self) {
        let (min, max) = (self.cfg.min_bps as f64, self.cfg.max_bps as f64);
        self.aimd.bps = self.aimd.bps.clamp(min, max);
        self.loss.bps = self.loss.bps.clamp(min, max);
    }

    /// Delay-based and loss-based combined; only loss-based until transport-wide feedback is heard.
    fn combined(&self) -> f64 {
        if self.last_feedback.is_some() {
            self.aimd.bps.min(self.loss.bps)
        } else {
            self.loss.bps
        }
    }

    fn refresh(&mut self) {
        self.clamp_controllers();
        self.estimate = (self.combined() as u64).clamp(self.cfg.min_bps, self.cfg.max_bps);
    }
}
