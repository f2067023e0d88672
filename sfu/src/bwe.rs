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

/// Packets remembered for matching feedback; a power of two so that the slot
/// is the low bits. Browsers send feedback every 50–250 ms: 512 covers a
/// subscriber receiving ~2000 packets/s, at 12 KiB per subscriber.
const HISTORY: usize = 512;
/// Packets sent within this of a group's first packet are one group (one frame or burst).
const BURST_US: i64 = 5_000;
/// A packet arriving this soon after its group, and faster than it was sent, queued behind it.
const BURST_ARRIVAL_US: i64 = 5_000;
/// A burst never spans more than this on arrival, so a long queue drain is not one group.
const BURST_MAX_US: i64 = 100_000;
/// Delay variation beyond this is a clock or time-base jump, not queueing.
const MAX_VARIATION_MS: f64 = 3_000.0;
/// Groups in the trendline's regression.
const TREND_WINDOW: usize = 20;
/// Weight of the past in the smoothed accumulated delay.
const TREND_SMOOTHING: f64 = 0.9;
/// Gain turning the slope into something comparable with the threshold.
const TREND_GAIN: f64 = 4.0;
/// The slope is scaled by the number of deltas seen, up to this.
const TREND_MAX_DELTAS: u32 = 60;
/// Starting overuse threshold.
const THRESHOLD_INITIAL: f64 = 12.5;
/// Threshold adaptation speed when the trend is above it.
const THRESHOLD_K_UP: f64 = 0.0087;
/// Threshold adaptation speed when the trend is below it.
const THRESHOLD_K_DOWN: f64 = 0.039;
/// Bounds of the adaptive threshold.
const THRESHOLD_RANGE: (f64, f64) = (6.0, 600.0);
/// Trend spikes this far above the threshold do not move it (they are outliers).
const THRESHOLD_MAX_STEP: f64 = 15.0;
/// The longest time step the threshold adapts over, so a pause does not snap it.
const THRESHOLD_MAX_DT_MS: f64 = 100.0;
/// How long the trend must stay above the threshold to call overuse.
const OVERUSE_TIME_MS: f64 = 10.0;
/// Width of one bucket of the acknowledged-bitrate window.
const ACK_BUCKET_US: i64 = 10_000;
/// Buckets in the acknowledged-bitrate window (500 ms).
const ACK_BUCKETS: usize = 50;
/// Arrivals spanning less than this give no acknowledged bitrate yet.
const ACK_MIN_SPAN_US: i64 = 150_000;
/// An arrival this far behind the newest one means the receiver's time base changed.
const ACK_RESET_US: i64 = 10_000_000;
/// Multiplicative decrease applied to the acknowledged bitrate on overuse.
const DECREASE_FACTOR: f64 = 0.85;
/// Multiplicative increase per second while far from the last congestion point.
const INCREASE_PER_SECOND: f64 = 1.08;
/// Assumed media frame rate, to size the additive increase as about one packet.
const FRAME_RATE: f64 = 30.0;
/// Typical full packet, bits.
const PACKET_BITS: f64 = 1200.0 * 8.0;
/// The additive increase never goes slower than this, bps per second.
const MIN_ADDITIVE_BPS: f64 = 4_000.0;
/// Added to the RTT to get the time the link needs to show the effect of a change.
const RESPONSE_EXTRA: Duration = Duration::from_millis(100);
/// RTT assumed until the caller reports one.
const DEFAULT_RTT: Duration = Duration::from_millis(100);
/// Longer RTTs are taken as this: beyond it the controllers would freeze.
const MAX_RTT: Duration = Duration::from_secs(2);
/// An increase never goes past this many times the acknowledged bitrate (plus the slack).
const ACKED_CAP_FACTOR: f64 = 1.5;
/// Slack above the acknowledged-bitrate cap, so a very low rate can still grow.
const ACKED_CAP_SLACK_BPS: f64 = 10_000.0;
/// Smoothing of the link-capacity average taken at overuse points.
const CAPACITY_ALPHA: f64 = 0.05;
/// Bounds of the normalised variance of the link-capacity estimate.
const CAPACITY_VAR_RANGE: (f64, f64) = (0.4, 2.5);
/// Loss below this lets the loss-based rate grow.
const LOSS_LOW: f64 = 0.02;
/// Loss above this makes the loss-based rate shrink.
const LOSS_HIGH: f64 = 0.10;
/// Loss-based growth per second while loss is low.
const LOSS_INCREASE_PER_SECOND: f64 = 0.05;
/// Packets needed before a loss fraction is trusted.
const LOSS_MIN_PACKETS: u32 = 20;
/// A loss window closes after this even with few packets, so a slow link still reacts.
const LOSS_MAX_WINDOW: Duration = Duration::from_secs(1);
/// Loss-based decreases are spaced by this plus the RTT: losses reported
/// after a decrease were mostly sent before it.
const LOSS_DECREASE_INTERVAL: Duration = Duration::from_millis(300);
/// Receiver reports are ignored while transport-wide feedback arrived within this.
const TWCC_FRESH: Duration = Duration::from_secs(2);
/// Received probe packets needed for a probe result.
const PROBE_MIN_PACKETS: u32 = 5;
/// A probe cluster is judged this long after its last packet was sent, whatever feedback came.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// A probe succeeded when the link delivered at least this share of its send rate.
const PROBE_DELIVERED_RATIO: f64 = 0.9;
/// The estimate is set a little under a successful probe's result.
const PROBE_RESULT_FACTOR: f64 = 0.95;
/// Probe send or arrival spans beyond this are not a probe's (the caller kept tagging).
const PROBE_MAX_SPAN_US: i64 = 1_000_000;
/// Packets sent this long after a probe's last one still queue behind it.
const PROBE_GUARD_US: i64 = 100_000;
/// Acknowledged traffic this much above what a failed probe got through ends the backoff.
const PROBE_CEILING_MARGIN: f64 = 1.2;
/// Waiting time after the first failed probe; doubles with each further failure.
const PROBE_BACKOFF_INITIAL: Duration = Duration::from_secs(2);
/// The longest waiting time between failed probes.
const PROBE_BACKOFF_MAX: Duration = Duration::from_secs(5);
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

/// What the delay-based detector concludes from the latest packet group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Normal,
    Overuse,
    Underuse,
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

/// A group of packets sent together (a frame, a burst of padding).
#[derive(Debug, Clone, Copy)]
struct Group {
    first_send_us: i64,
    last_send_us: i64,
    first_arrival_us: i64,
    last_arrival_us: i64,
}

impl Group {
    fn new(send_us: i64, arrival_us: i64) -> Self {
        Self {
            first_send_us: send_us,
            last_send_us: send_us,
            first_arrival_us: arrival_us,
            last_arrival_us: arrival_us,
        }
    }

    /// Whether a packet sent at `send_us` and arriving at `arrival_us` belongs here.
    fn takes(&self, send_us: i64, arrival_us: i64) -> bool {
        if send_us - self.first_send_us <= BURST_US {
            return true;
        }
        // A packet that caught up with the group was queued behind it: the
        // spacing it was sent with says nothing about the link.
        let arrival_delta = arrival_us - self.last_arrival_us;
        let send_delta = send_us - self.last_send_us;
        arrival_delta < send_delta
            && arrival_delta <= BURST_ARRIVAL_US
            && arrival_us - self.first_arrival_us < BURST_MAX_US
    }
}

/// How two consecutive groups were spaced at the sender and at the receiver.
#[derive(Debug, Clone, Copy)]
struct GroupDelta {
    send_ms: f64,
    arrival_ms: f64,
    /// Arrival of the later group, ms on the receiver's clock.
    at_ms: f64,
    /// Send time of the later group's last packet, µs.
    sent_us: i64,
}

/// Packet grouping: turns received packets, in send order, into group deltas.
#[derive(Default)]
struct InterArrival {
    current: Option<Group>,
    previous: Option<Group>,
}

impl InterArrival {
    fn push(&mut self, send_us: i64, arrival_us: i64) -> Option<GroupDelta> {
        let Some(current) = self.current.as_mut() else {
            self.current = Some(Group::new(send_us, arrival_us));
            return None;
        };
        if send_us < current.first_send_us {
            // Reported out of send order (a late duplicate or a recovered
            // loss): its group is already closed.
            return None;
        }
        if current.takes(send_us, arrival_us) {
            current.last_send_us = current.last_send_us.max(send_us);
            current.last_arrival_us = current.last_arrival_us.max(arrival_us);
            return None;
        }
        let done = *current;
        self.current = Some(Group::new(send_us, arrival_us));
        let delta = self.previous.map(|prev| GroupDelta {
            send_ms: (done.last_send_us - prev.last_send_us) as f64 / 1000.0,
            arrival_ms: (done.last_arrival_us - prev.last_arrival_us) as f64 / 1000.0,
            at_ms: done.last_arrival_us as f64 / 1000.0,
            sent_us: done.last_send_us,
        });
        self.previous = Some(done);
        delta
    }
}

/// Trendline filter: the slope of the smoothed accumulated queueing delay.
struct Trendline {
    deltas: u32,
    first_at_ms: Option<f64>,
    accumulated_ms: f64,
    smoothed_ms: f64,
    /// (arrival ms since the first group, smoothed delay ms); a ring, order is irrelevant to the fit.
    window: [(f64, f64); TREND_WINDOW],
    len: usize,
    next: usize,
    slope: f64,
}

impl Trendline {
    fn new() -> Self {
        Self {
            deltas: 0,
            first_at_ms: None,
            accumulated_ms: 0.0,
            smoothed_ms: 0.0,
            window: [(0.0, 0.0); TREND_WINDOW],
            len: 0,
            next: 0,
            slope: 0.0,
        }
    }

    fn update(&mut self, variation_ms: f64, at_ms: f64) {
        self.deltas = self.deltas.saturating_add(1);
        let first = *self.first_at_ms.get_or_insert(at_ms);
        self.accumulated_ms += variation_ms;
        self.smoothed_ms =
            TREND_SMOOTHING * self.smoothed_ms + (1.0 - TREND_SMOOTHING) * self.accumulated_ms;
        self.window[self.next] = (at_ms - first, self.smoothed_ms);
        self.next = (self.next + 1) % TREND_WINDOW;
        self.len = (self.len + 1).min(TREND_WINDOW);
        if self.len == TREND_WINDOW
            && let Some(slope) = fit_slope(&self.window)
        {
            self.slope = slope;
        }
    }

    /// The slope scaled to the threshold's units; small while few deltas are known.
    fn modified(&self) -> f64 {
        self.slope * f64::from(self.deltas.min(TREND_MAX_DELTAS)) * TREND_GAIN
    }
}

/// Least-squares slope of y over x; `None` when all x are equal.
fn fit_slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), &(x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), &(x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    (den > 0.0).then(|| num / den).filter(|s| s.is_finite())
}

/// Overuse detector: compares the trend with a threshold that adapts to it,
/// so that competing loss-based flows do not starve this one.
struct OveruseDetector {
    threshold: f64,
    last_update_ms: Option<f64>,
    /// How long the trend has been above the threshold; `None` when it is not.
    over_ms: Option<f64>,
    over_count: u32,
    prev_slope: f64,
    signal: Signal,
}

impl OveruseDetector {
    fn new() -> Self {
        Self {
            threshold: THRESHOLD_INITIAL,
            last_update_ms: None,
            over_ms: None,
            over_count: 0,
            prev_slope: 0.0,
            signal: Signal::Normal,
        }
    }

    /// Updates the signal with one group delta; true when this group confirmed overuse.
    fn detect(&mut self, trend: &Trendline, send_delta_ms: f64, at_ms: f64) -> bool {
        if trend.deltas < 2 {
            return false;
        }
        let mut confirmed = false;
        let modified = trend.modified();
        if modified > self.threshold {
            let over = self
                .over_ms
                .map_or(send_delta_ms / 2.0, |t| t + send_delta_ms);
            self.over_ms = Some(over);
            self.over_count += 1;
            // A trend that is already falling means the queue is draining:
            // the sender has reacted and a second decrease would overshoot.
            if over > OVERUSE_TIME_MS && self.over_count > 1 && trend.slope >= self.prev_slope {
                self.over_ms = Some(0.0);
                self.over_count = 0;
                self.signal = Signal::Overuse;
                confirmed = true;
            }
        } else {
            self.over_ms = None;
            self.over_count = 0;
            self.signal = if modified < -self.threshold {
                Signal::Underuse
            } else {
                Signal::Normal
            };
        }
        self.prev_slope = trend.slope;
        self.adapt(modified, at_ms);
        confirmed
    }

    fn adapt(&mut self, modified: f64, at_ms: f64) {
        let Some(last) = self.last_update_ms.replace(at_ms) else {
            return;
        };
        let magnitude = modified.abs();
        if magnitude > self.threshold + THRESHOLD_MAX_STEP {
            return;
        }
        let k = if magnitude < self.threshold {
            THRESHOLD_K_DOWN
        } else {
            THRESHOLD_K_UP
        };
        let dt = (at_ms - last).clamp(0.0, THRESHOLD_MAX_DT_MS);
        self.threshold = (self.threshold + k * (magnitude - self.threshold) * dt)
            .clamp(THRESHOLD_RANGE.0, THRESHOLD_RANGE.1);
    }
}

/// One bucket of the acknowledged-bitrate window.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    id: i64,
    bytes: u64,
}

/// Bytes the receiver got over the last 500 ms of arrival time, in fixed buckets.
struct AckedBitrate {
    buckets: [Bucket; ACK_BUCKETS],
    first_id: Option<i64>,
    latest_id: i64,
}

impl AckedBitrate {
    fn new() -> Self {
        Self {
            buckets: [Bucket {
                id: i64::MIN,
                bytes: 0,
            }; ACK_BUCKETS],
            first_id: None,
            latest_id: 0,
        }
    }

    fn push(&mut self, arrival_us: i64, size: u32) {
        let id = arrival_us.div_euclid(ACK_BUCKET_US);
        if self.first_id.is_none() || id < self.latest_id - ACK_RESET_US / ACK_BUCKET_US {
            *self = Self::new();
            self.first_id = Some(id);
            self.latest_id = id;
        }
        if id <= self.latest_id - ACK_BUCKETS as i64 {
            return;
        }
        self.latest_id = self.latest_id.max(id);
        let b = &mut self.buckets[id.rem_euclid(ACK_BUCKETS as i64) as usize];
        if b.id != id {
            *b = Bucket { id, bytes: 0 };
        }
        b.bytes += u64::from(size);
    }

    fn bps(&self) -> Option<f64> {
        let first = self.first_id?;
        let span = (self.latest_id - first + 1).min(ACK_BUCKETS as i64) * ACK_BUCKET_US;
        if span < ACK_MIN_SPAN_US {
            return None;
        }
        let oldest = self.latest_id - ACK_BUCKETS as i64;
        let bytes: u64 = self
            .buckets
            .iter()
            .filter(|b| b.id > oldest && b.id <= self.latest_id)
            .map(|b| b.bytes)
            .sum();
        Some(bytes as f64 * 8.0 * 1e6 / span as f64)
    }
}

/// The acknowledged bitrate at past overuse points: where the link filled up.
#[derive(Default)]
struct LinkCapacity {
    mean_kbps: Option<f64>,
    /// Variance normalised by the mean, so its bounds suit any rate.
    var: f64,
}

impl LinkCapacity {
    fn deviation_kbps(&self, mean: f64) -> f64 {
        (self.var * mean).sqrt()
    }

    fn upper_bps(&self) -> Option<f64> {
        self.mean_kbps
            .map(|m| (m + 3.0 * self.deviation_kbps(m)) * 1000.0)
    }

    fn lower_bps(&self) -> Option<f64> {
        self.mean_kbps
            .map(|m| (m - 3.0 * self.deviation_kbps(m)) * 1000.0)
    }

    fn update(&mut self, acked_bps: f64) {
        let x = acked_bps / 1000.0;
        let mean = match self.mean_kbps {
            None => {
                self.var = CAPACITY_VAR_RANGE.0;
                x
            }
            Some(m) => (1.0 - CAPACITY_ALPHA) * m + CAPACITY_ALPHA * x,
        };
        let norm = mean.max(1.0);
        self.var = ((1.0 - CAPACITY_ALPHA) * self.var + CAPACITY_ALPHA * (mean - x).powi(2) / norm)
            .clamp(CAPACITY_VAR_RANGE.0, CAPACITY_VAR_RANGE.1);
        self.mean_kbps = Some(mean);
    }
}

/// What the AIMD controller is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RateState {
    Hold,
    Increase,
    Decrease,
}

/// Delay-based AIMD rate controller.
struct Aimd {
    bps: f64,
    state: RateState,
    last_update: Option<Instant>,
    last_decrease: Option<Instant>,
    capacity: LinkCapacity,
}

impl Aimd {
    fn new(bps: f64) -> Self {
        Self {
            bps,
            state: RateState::Hold,
            last_update: None,
            last_decrease: None,
            capacity: LinkCapacity::default(),
        }
    }

    fn update(&mut self, now: Instant, signal: Signal, acked: Option<f64>, rtt: Duration) {
        let elapsed = self.last_update.map_or(0.0, |t| {
            now.saturating_duration_since(t).as_secs_f64().min(1.0)
        });
        self.last_update = Some(now);
        self.state = match (signal, self.state) {
            (Signal::Overuse, _) => RateState::Decrease,
            (Signal::Underuse, _) => RateState::Hold,
            (Signal::Normal, RateState::Decrease) => RateState::Hold,
            (Signal::Normal, _) => RateState::Increase,
        };
        let response = rtt + RESPONSE_EXTRA;
        match self.state {
            RateState::Hold => {}
            RateState::Increase => self.increase(elapsed, acked, response),
            RateState::Decrease => {
                // The link needs a response time to show the last decrease;
                // cutting again before that would count the same queue twice.
                let settled = self
                    .last_decrease
                    .is_none_or(|t| now.saturating_duration_since(t) >= response);
                if settled {
                    self.decrease(acked);
                    self.last_decrease = Some(now);
                }
                self.state = RateState::Hold;
            }
        }
    }

    fn increase(&mut self, elapsed: f64, acked: Option<f64>, response: Duration) {
        if let (Some(a), Some(upper)) = (acked, self.capacity.upper_bps())
            && a > upper
        {
            // The link carries more than at the last congestion points: they
            // no longer describe it.
            self.capacity = LinkCapacity::default();
        }
        let step = if self.capacity.mean_kbps.is_some() {
            let frame_bits = self.bps / FRAME_RATE;
            let packet_bits = frame_bits / (frame_bits / PACKET_BITS).ceil().max(1.0);
            (packet_bits / response.as_secs_f64()).max(MIN_ADDITIVE_BPS) * elapsed
        } else {
            (self.bps * (INCREASE_PER_SECOND.powf(elapsed) - 1.0)).max(1_000.0 * elapsed)
        };
        // Without traffic to confirm it, a higher rate is a guess: probes are
        // the way up from an idle or app-limited link.
        let Some(acked) = acked else {
            return;
        };
        let cap = ACKED_CAP_FACTOR * acked + ACKED_CAP_SLACK_BPS;
        let next = self.bps + step;
        self.bps = if next > cap { self.bps.max(cap) } else { next };
    }

    fn decrease(&mut self, acked: Option<f64>) {
        let Some(a) = acked else {
            self.bps *= DECREASE_FACTOR;
            return;
        };
        if self.capacity.lower_bps().is_some_and(|lower| a < lower) {
            self.capacity = LinkCapacity::default();
        }
        self.capacity.update(a);
        self.bps = self.bps.min(DECREASE_FACTOR * a);
    }
}

/// Loss-based controller: a ceiling that shrinks with heavy loss.
struct LossControl {
    bps: f64,
    lost: u32,
    expected: u32,
    window_start: Option<Instant>,
    last_eval: Option<Instant>,
    last_decrease: Option<Instant>,
    decrease_interval: Duration,
    /// When loss last went above [`LOSS_HIGH`].
    last_heavy: Option<Instant>,
}

impl LossControl {
    fn new(bps: f64) -> Self {
        Self {
            bps,
            decrease_interval: LOSS_DECREASE_INTERVAL + DEFAULT_RTT,
            lost: 0,
            expected: 0,
            window_start: None,
            last_eval: None,
            last_decrease: None,
            last_heavy: None,
        }
    }

    /// Counts packets from transport-wide feedback; a loss later reported received is taken back.
    fn count(&mut self, now: Instant, lost: u32, received: u32, recovered: u32, estimate: f64) {
        if lost + received + recovered == 0 {
            return;
        }
        let start = *self.window_start.get_or_insert(now);
        self.lost = (self.lost + lost).saturating_sub(recovered);
        self.expected += lost + received;
        if self.expected >= LOSS_MIN_PACKETS
            || now.saturating_duration_since(start) >= LOSS_MAX_WINDOW
        {
            let fraction = f64::from(self.lost) / f64::from(self.expected.max(1));
            self.lost = 0;
            self.expected = 0;
            self.window_start = None;
            self.apply(now, fraction, estimate);
        }
    }

    fn apply(&mut self, now: Instant, fraction: f64, estimate: f64) {
        let elapsed = self.last_eval.map_or(0.0, |t| {
            now.saturating_duration_since(t).as_secs_f64().min(1.0)
        });
        self.last_eval = Some(now);
        if fraction < LOSS_LOW {
            self.bps *= 1.0 + LOSS_INCREASE_PER_SECOND * elapsed;
        } else if fraction <= LOSS_HIGH {
            self.bps = self.bps.min(estimate);
        } else {
            self.last_heavy = Some(now);
            let due = self
                .last_decrease
                .is_none_or(|t| now.saturating_duration_since(t) >= self.decrease_interval);
            self.bps = self.bps.min(estimate);
            if due {
                self.bps *= 1.0 - 0.5 * fraction;
                self.last_decrease = Some(now);
            }
        }
    }
}

/// One side of a probe cluster: its packets' first and last times, and bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    packets: u32,
    first_us: i64,
    first_size: u64,
    last_us: i64,
    last_size: u64,
    bytes: u64,
}

impl Span {
    fn add(&mut self, at_us: i64, size: u32) {
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
    fn rate_bps(&self, edge_size: u64) -> Option<f64> {
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
fn probe_result_bps(sent: &Span, received: &Span) -> Option<f64> {
    if received.packets < PROBE_MIN_PACKETS {
        return None;
    }
    let send_bps = sent.rate_bps(sent.last_size)?;
    let recv_bps = received.rate_bps(received.first_size)?;
    (recv_bps >= PROBE_DELIVERED_RATIO * send_bps).then(|| send_bps.min(recv_bps))
}

/// The probe cluster in flight.
struct Cluster {
    id: u32,
    started: Instant,
    last_sent: Option<Instant>,
    last_seq: Option<i64>,
    reported: u32,
    last_reported: bool,
    /// Every packet sent in the cluster, by send time.
    sent: Span,
    /// The packets reported received, by arrival time.
    received: Span,
}

impl Cluster {
    fn deadline(&self) -> Instant {
        self.last_sent.unwrap_or(self.started) + PROBE_TIMEOUT
    }

    fn complete(&self, now: Instant) -> bool {
        (self.reported >= PROBE_MIN_PACKETS && self.last_reported) || now >= self.deadline()
    }
}

/// Probe clusters: the one in flight and the backoff after failures.
struct Prober {
    next_id: u32,
    active: Option<Cluster>,
    failures: u32,
    not_before: Option<Instant>,
    /// What the link delivered during the last failed probe, if measured.
    ceiling_bps: Option<f64>,
}

impl Prober {
    fn blocked(&self, now: Instant) -> bool {
        self.active.is_some() || self.not_before.is_some_and(|t| now < t)
    }

    fn fail(&mut self, now: Instant, delivered_bps: Option<f64>) {
        self.ceiling_bps = delivered_bps;
        self.failures = self.failures.saturating_add(1);
        let backoff = PROBE_BACKOFF_INITIAL
            .saturating_mul(1 << (self.failures - 1).min(16))
            .min(PROBE_BACKOFF_MAX);
        self.not_before = Some(now + backoff);
    }

    fn succeed(&mut self) {
        self.failures = 0;
        self.not_before = None;
        self.ceiling_bps = None;
    }
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
        self.loss.count(now, lost, received, recovered, estimate);
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
            .apply(now, fraction_lost.clamp(0.0, 1.0), estimate);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    const MS: i64 = 1_000;
    const SEC: i64 = 1_000_000;
    const MEDIA_PACKET: usize = 1_200;
    const PADDING_PACKET: usize = 300;
    const FEEDBACK_INTERVAL_US: i64 = 50 * MS;
    const ONE_WAY_US: i64 = 20 * MS;
    /// A receiver clock 3.264 s before the 24-bit reference time wraps; a
    /// multiple of 64 ms and of 10 ms, so that only the wrap differs from 0.
    const WRAPS_SOON_US: i64 = REFERENCE_PERIOD_US - 51 * 64 * MS;

    /// xorshift64*: a seeded, dependency-free source of loss.
    struct Rng(u64);

    impl Rng {
        fn unit(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// What a simulated run looks like.
    struct Scenario {
        /// (from second, capacity bps), in order.
        capacity: Vec<(f64, f64)>,
        demand_bps: f64,
        initial_bps: u64,
        random_loss: f64,
        max_queue_us: i64,
        seconds: f64,
        probing: bool,
        first_seq: u16,
        /// Receiver clock at the start, µs: near the 24-bit reference wrap to exercise it.
        receiver_clock_us: i64,
    }

    impl Default for Scenario {
        fn default() -> Self {
            Self {
                capacity: vec![(0.0, 2e6)],
                demand_bps: 3e6,
                initial_bps: 1_000_000,
                random_loss: 0.0,
                max_queue_us: 300 * MS,
                seconds: 30.0,
                probing: true,
                first_seq: 65_000,
                receiver_clock_us: WRAPS_SOON_US,
            }
        }
    }

    /// What happened: samples every 100 ms.
    struct Trace {
        /// (second, estimate bps)
        estimate: Vec<(f64, u64)>,
        /// (second sent, queueing delay ms) per packet that entered the queue.
        queue_ms: Vec<(f64, f64)>,
        probes: u32,
        dropped: u32,
    }

    impl Trace {
        fn at(&self, second: f64) -> u64 {
            self.estimate
                .iter()
                .rev()
                .find(|(t, _)| *t <= second)
                .map_or(0, |e| e.1)
        }

        fn range(&self, from: f64, to: f64) -> (u64, u64) {
            let xs = self
                .estimate
                .iter()
                .filter(|(t, _)| (from..=to).contains(t))
                .map(|e| e.1);
            (xs.clone().min().unwrap_or(0), xs.max().unwrap_or(0))
        }

        /// First time from which the estimate stays within `band` until `until`.
        fn settles(&self, band: (u64, u64), until: f64) -> Option<f64> {
            let mut since = None;
            for &(t, e) in self.estimate.iter().filter(|(t, _)| *t <= until) {
                if (band.0..=band.1).contains(&e) {
                    since.get_or_insert(t);
                } else {
                    since = None;
                }
            }
            since
        }

        fn first_reaching(&self, from: f64, pred: impl Fn(u64) -> bool) -> Option<f64> {
            self.estimate
                .iter()
                .find(|(t, e)| *t >= from && pred(*e))
                .map(|e| e.0)
        }

        fn queue_percentile(&self, from: f64, p: f64) -> f64 {
            let mut q: Vec<f64> = self
                .queue_ms
                .iter()
                .filter(|(t, _)| *t >= from)
                .map(|e| e.1)
                .collect();
            q.sort_by(f64::total_cmp);
            q.get(((q.len() as f64 - 1.0) * p) as usize)
                .copied()
                .unwrap_or(0.0)
        }

        /// The worst one-second mean queueing delay from `from` on.
        fn worst_second_queue_ms(&self, from: f64) -> f64 {
            let mut worst: f64 = 0.0;
            let mut t = from;
            while t < self.estimate.last().map_or(0.0, |e| e.0) {
                let q: Vec<f64> = self
                    .queue_ms
                    .iter()
                    .filter(|(s, _)| (t..t + 1.0).contains(s))
                    .map(|e| e.1)
                    .collect();
                if !q.is_empty() {
                    worst = worst.max(q.iter().sum::<f64>() / q.len() as f64);
                }
                t += 0.5;
            }
            worst
        }
    }

    /// A probe the simulated sender is running.
    struct ActiveProbe {
        id: u32,
        bps: f64,
        end_us: i64,
        credit_bits: f64,
    }

    /// A sender, a drop-tail bottleneck with a fixed one-way delay, and a
    /// receiver sending feedback every 50 ms; time advances in 1 ms steps.
    struct Sim<'a> {
        s: &'a Scenario,
        t0: Instant,
        bwe: SendSideBwe,
        rng: Rng,
        seq: u16,
        /// When the bottleneck finishes sending what is queued, µs.
        busy_until: i64,
        /// (seq, arrival µs), in arrival order (the link is FIFO).
        in_flight: VecDeque<(u16, i64)>,
        /// Arrived since the last feedback.
        arrived: Vec<(u16, i64)>,
        next_report: Option<u16>,
        /// (delivery µs, message) on the way back.
        feedback: VecDeque<(i64, Feedback)>,
        media_credit_bits: f64,
        probe: Option<ActiveProbe>,
        trace: Trace,
    }

    impl Sim<'_> {
        fn at(&self, us: i64) -> Instant {
            self.t0 + Duration::from_micros(us as u64)
        }

        fn capacity(&self, now: i64) -> f64 {
            let c = &self.s.capacity;
            c.iter()
                .rev()
                .find(|(from, _)| now as f64 >= from * 1e6)
                .map_or(c[0].1, |c| c.1)
        }

        fn send(&mut self, now: i64, size: usize) {
            let tag = self.probe.as_ref().map(|p| p.id);
            self.bwe.on_packet_sent(self.at(now), self.seq, size, tag);
            let start = self.busy_until.max(now);
            let queued = start - now;
            if queued > self.s.max_queue_us {
                self.trace.dropped += 1;
            } else {
                self.trace
                    .queue_ms
                    .push((now as f64 / 1e6, queued as f64 / 1e3));
                self.busy_until = start + (size as f64 * 8e6 / self.capacity(now)) as i64;
                if self.rng.unit() >= self.s.random_loss {
                    self.in_flight
                        .push_back((self.seq, self.busy_until + ONE_WAY_US));
                }
            }
            self.seq = self.seq.wrapping_add(1);
        }

        /// Reports what arrived since the last report, as a browser does.
        fn report(&mut self, now: i64) {
            let (Some(&(first_seq, first_at)), Some(&(last, _))) =
                (self.arrived.first(), self.arrived.last())
            else {
                return;
            };
            let base = self.next_report.unwrap_or(first_seq);
            let clock = |us: i64| us + self.s.receiver_clock_us;
            let reference = clock(first_at).div_euclid(64 * MS);
            let mut arrivals = vec![None; usize::from(last.wrapping_sub(base)) + 1];
            for &(seq, at) in &self.arrived {
                // The wire carries 250 µs steps.
                let offset = (clock(at) - reference * 64 * MS) / 250 * 250;
                arrivals[usize::from(seq.wrapping_sub(base))] = Some(offset);
            }
            let fb = Feedback {
                base_seq: base,
                reference_us: reference.rem_euclid(1 << 24) * 64 * MS,
                arrivals,
            };
            self.feedback.push_back((now + ONE_WAY_US, fb));
            self.next_report = Some(last.wrapping_add(1));
            self.arrived.clear();
        }

        fn step(&mut self, now: i64) {
            while self.in_flight.front().is_some_and(|p| p.1 <= now) {
                self.arrived.extend(self.in_flight.pop_front());
            }
            if now % FEEDBACK_INTERVAL_US == 0 {
                self.report(now);
            }
            while self.feedback.front().is_some_and(|f| f.0 <= now) {
                if let Some((_, fb)) = self.feedback.pop_front() {
                    self.bwe.on_feedback(self.at(now), &fb);
                }
            }
            let estimate = self.bwe.estimate_bps() as f64;
            let rate = estimate.min(self.s.demand_bps);
            if self.probe.as_ref().is_some_and(|p| now >= p.end_us) {
                self.probe = None;
            }
            if self.s.probing
                && self.probe.is_none()
                && estimate < self.s.demand_bps
                && self.bwe.can_probe(self.at(now))
            {
                let bps = (2.0 * estimate).min(self.s.demand_bps);
                if let Some(id) = self.bwe.start_probe(self.at(now), bps as u64) {
                    self.trace.probes += 1;
                    self.probe = Some(ActiveProbe {
                        id,
                        bps,
                        end_us: now + 100 * MS,
                        credit_bits: 0.0,
                    });
                }
            }
            let media_bits = (MEDIA_PACKET * 8) as f64;
            self.media_credit_bits = (self.media_credit_bits + rate / 1e3).min(2.0 * media_bits);
            while self.media_credit_bits >= media_bits {
                self.media_credit_bits -= media_bits;
                self.send(now, MEDIA_PACKET);
            }
            // During a probe, padding tops the media up to the probe's rate.
            let padding_bits = (PADDING_PACKET * 8) as f64;
            if let Some(p) = self.probe.as_mut() {
                p.credit_bits += (p.bps - rate).max(0.0) / 1e3;
            }
            while self
                .probe
                .as_ref()
                .is_some_and(|p| p.credit_bits >= padding_bits)
            {
                if let Some(p) = self.probe.as_mut() {
                    p.credit_bits -= padding_bits;
                }
                self.send(now, PADDING_PACKET);
            }
            if now % (100 * MS) == 0 {
                self.trace
                    .estimate
                    .push((now as f64 / 1e6, self.bwe.estimate_bps()));
            }
        }
    }

    fn simulate(s: &Scenario) -> Trace {
        let t0 = Instant::now();
        let cfg = BweConfig {
            initial_bps: s.initial_bps,
            ..BweConfig::default()
        };
        let mut sim = Sim {
            s,
            t0,
            bwe: SendSideBwe::new(cfg, t0),
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            seq: s.first_seq,
            busy_until: 0,
            in_flight: VecDeque::new(),
            arrived: Vec::new(),
            next_report: None,
            feedback: VecDeque::new(),
            media_credit_bits: 0.0,
            probe: None,
            trace: Trace {
                estimate: Vec::new(),
                queue_ms: Vec::new(),
                probes: 0,
                dropped: 0,
            },
        };
        for now in (0..=(s.seconds * 1e6) as i64).step_by(MS as usize) {
            sim.step(now);
        }
        sim.trace
    }

    fn mbps(bps: u64) -> f64 {
        bps as f64 / 1e6
    }

    #[test]
    fn converges_to_a_2_mbps_bottleneck_without_a_standing_queue() {
        let trace = simulate(&Scenario {
            max_queue_us: 1_000 * MS,
            ..Scenario::default()
        });
        let band = (1_500_000, 2_300_000);
        let settled = trace.settles(band, 30.0);
        let (lo, hi) = trace.range(10.0, 30.0);
        let p95 = trace.queue_percentile(5.0, 0.95);
        let worst = trace.worst_second_queue_ms(5.0);
        println!(
            "2 Mbps: settled at {settled:?} s, 10-30 s range {:.2}-{:.2} Mbps, queue p95 {p95:.0} ms, worst 1 s mean {worst:.0} ms, {} probes",
            mbps(lo),
            mbps(hi),
            trace.probes
        );
        assert!(settled.is_some_and(|t| t <= 10.0), "settled at {settled:?}");
        assert!(lo >= band.0 && hi <= band.1, "{lo}..{hi}");
        assert!(p95 < 150.0, "queue p95 {p95} ms");
        assert!(worst < 300.0, "worst one-second queue {worst} ms");
        assert_eq!(trace.dropped, 0);
    }

    #[test]
    fn follows_a_capacity_drop_within_two_seconds() {
        let trace = simulate(&Scenario {
            capacity: vec![(0.0, 2.5e6), (10.0, 0.5e6)],
            seconds: 20.0,
            ..Scenario::default()
        });
        let before = trace.at(10.0);
        let reached = trace.first_reaching(10.0, |e| e <= 600_000);
        let (lo, hi) = trace.range(12.0, 20.0);
        println!(
            "drop 2.5 -> 0.5 Mbps: {:.2} Mbps before, <= 0.6 Mbps {:.1} s after, 12-20 s range {:.2}-{:.2} Mbps",
            mbps(before),
            reached.map_or(f64::NAN, |t| t - 10.0),
            mbps(lo),
            mbps(hi)
        );
        assert!(before >= 1_800_000, "before the drop: {before}");
        assert!(reached.is_some_and(|t| t <= 12.0), "reached at {reached:?}");
        assert!(hi <= 600_000, "after: {lo}..{hi}");
        assert!(lo >= 200_000, "after: {lo}..{hi}");
    }

    #[test]
    fn probes_find_a_capacity_rise_that_the_acked_cap_hides() {
        let scenario = Scenario {
            capacity: vec![(0.0, 0.3e6), (10.0, 3e6)],
            demand_bps: 2.5e6,
            seconds: 20.0,
            ..Scenario::default()
        };
        let trace = simulate(&scenario);
        let before = trace.range(5.0, 10.0);
        let reached = trace.first_reaching(10.0, |e| e >= 1_500_000);
        let without = simulate(&Scenario {
            probing: false,
            ..scenario
        });
        println!(
            "rise 0.3 -> 3 Mbps: {:.2}-{:.2} Mbps before, >= 1.5 Mbps {:.1} s after, {:.2} Mbps at 18 s ({:.2} without probes), {} probes",
            mbps(before.0),
            mbps(before.1),
            reached.map_or(f64::NAN, |t| t - 10.0),
            mbps(trace.at(18.0)),
            mbps(without.at(18.0)),
            trace.probes
        );
        assert!(before.1 <= 450_000, "before the rise: {before:?}");
        assert!(reached.is_some_and(|t| t <= 18.0), "reached at {reached:?}");
        assert!(trace.at(18.0) >= 1_500_000);
        assert!(
            without.at(18.0) < 1_000_000,
            "without probes: {}",
            without.at(18.0)
        );
    }

    #[test]
    fn random_loss_lowers_the_estimate_and_a_clean_path_raises_it() {
        let lossy = simulate(&Scenario {
            capacity: vec![(0.0, 100e6)],
            demand_bps: 5e6,
            initial_bps: 2_000_000,
            random_loss: 0.2,
            seconds: 10.0,
            ..Scenario::default()
        });
        let clean = simulate(&Scenario {
            capacity: vec![(0.0, 100e6)],
            demand_bps: 5e6,
            initial_bps: 1_000_000,
            seconds: 10.0,
            probing: false,
            ..Scenario::default()
        });
        println!(
            "20% loss: 2.00 -> {:.2} Mbps after 5 s, {:.2} after 10 s; clean: 1.00 -> {:.2} Mbps after 10 s",
            mbps(lossy.at(5.0)),
            mbps(lossy.at(10.0)),
            mbps(clean.at(10.0)),
        );
        assert!(lossy.at(5.0) < 1_000_000);
        assert!(lossy.at(10.0) <= lossy.at(5.0));
        assert!(lossy.range(0.0, 10.0).1 <= 2_000_000, "a probe raised it");
        assert!(clean.at(10.0) >= 1_400_000, "clean: {}", clean.at(10.0));
    }

    #[test]
    fn an_app_limited_sender_does_not_inflate_the_estimate() {
        let trace = simulate(&Scenario {
            capacity: vec![(0.0, 10e6)],
            demand_bps: 200e3,
            seconds: 20.0,
            ..Scenario::default()
        });
        let (lo, hi) = trace.range(0.0, 20.0);
        println!("app-limited at 0.2 Mbps on 10 Mbps: estimate {lo}..{hi}");
        assert_eq!(
            hi, 1_000_000,
            "grew past the initial estimate without traffic to show for it"
        );
        assert_eq!(lo, 1_000_000);
    }

    #[test]
    fn sequence_and_reference_wrap_change_nothing() {
        let wrapped = simulate(&Scenario {
            capacity: vec![(0.0, 2.5e6), (6.0, 1e6)],
            seconds: 12.0,
            first_seq: 65_000,
            receiver_clock_us: WRAPS_SOON_US,
            ..Scenario::default()
        });
        let plain = simulate(&Scenario {
            capacity: vec![(0.0, 2.5e6), (6.0, 1e6)],
            seconds: 12.0,
            first_seq: 1_000,
            receiver_clock_us: 0,
            ..Scenario::default()
        });
        assert_eq!(wrapped.estimate, plain.estimate);
        assert!(plain.at(5.0) > 1_800_000 && plain.at(12.0) < 1_100_000);
    }

    /// Sends `n` packets from `seq`, `gap_us` apart from `start_us`.
    fn send_run(
        bwe: &mut SendSideBwe,
        t0: Instant,
        start_us: i64,
        seq: u16,
        n: u16,
        gap_us: i64,
        probe: Option<u32>,
    ) {
        for i in 0..n {
            let at = t0 + Duration::from_micros((start_us + i64::from(i) * gap_us) as u64);
            bwe.on_packet_sent(at, seq.wrapping_add(i), 1_000, probe);
        }
    }

    /// Feedback saying packets `seq..seq+n` arrived `gap_us` apart from `first_us`.
    fn arrivals(seq: u16, n: u16, first_us: i64, gap_us: i64) -> Feedback {
        Feedback {
            base_seq: seq,
            reference_us: 0,
            arrivals: (0..i64::from(n))
                .map(|i| Some(first_us + i * gap_us))
                .collect(),
        }
    }

    #[test]
    fn feedback_across_the_sequence_wrap_matches_each_packet() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut one = SendSideBwe::new(BweConfig::default(), t0);
        let mut split = SendSideBwe::new(BweConfig::default(), t0);
        for bwe in [&mut one, &mut split] {
            // 65436..=65535 then 0..=99: 200 packets, 1 ms apart.
            send_run(bwe, t0, 0, 65_436, 200, MS, None);
        }
        one.on_feedback(ms(250), &arrivals(65_436, 200, 20 * MS, MS));
        split.on_feedback(ms(150), &arrivals(65_436, 100, 20 * MS, MS));
        split.on_feedback(ms(250), &arrivals(0, 100, 120 * MS, MS));
        // 200 packets of 8 000 bits over 200 ms.
        let expected = 8_000_000u64;
        for bwe in [&one, &split] {
            let acked = bwe.acked_bps().expect("acked");
            assert!(acked.abs_diff(expected) <= expected / 50, "{acked}");
        }
        assert_eq!(one.acked_bps(), split.acked_bps());
    }

    #[test]
    fn probe_success_raises_and_failures_back_off() {
        let t0 = Instant::now();
        let at = |us: i64| t0 + Duration::from_micros(us as u64);
        let mut bwe = SendSideBwe::new(BweConfig::default(), t0);
        let id = bwe.start_probe(t0, 2_000_000).expect("first probe");
        assert_eq!(
            bwe.start_probe(t0, 2_000_000),
            None,
            "one cluster at a time"
        );
        assert!(!bwe.can_probe(t0));
        // 20 packets of 8 000 bits every 4 ms: 2 Mbps out, 2 Mbps in.
        send_run(&mut bwe, t0, 0, 0, 20, 4 * MS, Some(id));
        bwe.on_feedback(at(130 * MS), &arrivals(0, 20, 20 * MS, 4 * MS));
        assert_eq!(bwe.estimate_bps(), 1_900_000);
        assert!(bwe.can_probe(at(130 * MS)), "a success leaves no backoff");

        // 4 Mbps out, 2 Mbps in: the link was full. Twice.
        let mut now = 200 * MS;
        let mut seq = 20;
        for backoff in [2, 4] {
            let id = bwe.start_probe(at(now), 4_000_000).expect("probe allowed");
            send_run(&mut bwe, t0, now, seq, 20, 2 * MS, Some(id));
            let judged = now + 150 * MS;
            bwe.on_feedback(at(judged), &arrivals(seq, 20, now + 20 * MS, 4 * MS));
            assert_eq!(
                bwe.estimate_bps(),
                1_900_000,
                "a failed probe costs nothing"
            );
            assert!(!bwe.can_probe(at(judged + backoff * SEC - MS)));
            assert_eq!(bwe.start_probe(at(judged + backoff * SEC - MS), 1), None);
            now = judged + backoff * SEC;
            assert!(bwe.can_probe(at(now)));
            seq += 20;
        }

        // A cluster whose feedback never comes fails after a second: 5 s
        // next (8 s, capped).
        let id = bwe.start_probe(at(now), 4_000_000).expect("probe allowed");
        send_run(&mut bwe, t0, now, seq, 5, 2 * MS, Some(id));
        assert!(!bwe.can_probe(at(now + 900 * MS)));
        bwe.on_packet_sent(at(now + 1_100 * MS), seq + 5, 1_000, None);
        assert!(!bwe.can_probe(at(now + 5 * SEC)));
        assert!(bwe.can_probe(at(now + 1_100 * MS + 5 * SEC)));
        now += 1_100 * MS + 5 * SEC;
        seq += 6;

        // A success resets the backoff: 3 Mbps through.
        let id = bwe.start_probe(at(now), 3_000_000).expect("probe allowed");
        send_run(&mut bwe, t0, now, seq, 30, 8 * MS / 3, Some(id));
        bwe.on_feedback(
            at(now + 200 * MS),
            &arrivals(seq, 30, now + 20 * MS, 8 * MS / 3),
        );
        assert!(bwe.estimate_bps() > 2_800_000, "{}", bwe.estimate_bps());
        assert!(bwe.can_probe(at(now + 200 * MS)));
    }

    #[test]
    fn a_link_delivering_more_than_a_failed_probe_ends_the_backoff() {
        let t0 = Instant::now();
        let at = |us: i64| t0 + Duration::from_micros(us as u64);
        let mut bwe = SendSideBwe::new(BweConfig::default(), t0);
        // Two probes at 4 Mbps get 2 Mbps through: a 4 s backoff.
        let mut now = 0;
        for seq in [0, 20] {
            let id = bwe.start_probe(at(now), 4_000_000).expect("probe allowed");
            send_run(&mut bwe, t0, now, seq, 20, 2 * MS, Some(id));
            now += 150 * MS;
            bwe.on_feedback(at(now), &arrivals(seq, 20, now - 130 * MS, 4 * MS));
            now += 2 * SEC;
        }
        let failed = now - 2 * SEC;
        // Then 600 packets get through at 8 Mbps.
        send_run(&mut bwe, t0, now, 40, 600, MS, None);
        assert!(!bwe.can_probe(at(now + 700 * MS)), "still backing off");
        bwe.on_feedback(at(now + 700 * MS), &arrivals(40, 600, now + 20 * MS, MS));
        assert!(now + 700 * MS < failed + 4 * SEC);
        assert!(bwe.can_probe(at(now + 700 * MS)));
    }

    #[test]
    fn a_probe_that_fills_the_queue_does_not_cut_the_estimate_but_congestion_does() {
        const CAPACITY_BPS: i64 = 2_000_000;
        let t0 = Instant::now();
        let at = |us: i64| t0 + Duration::from_micros(us as u64);
        let cfg = BweConfig {
            initial_bps: 3_000_000,
            ..BweConfig::default()
        };
        let mut bwe = SendSideBwe::new(cfg, t0);
        let (mut seq, mut busy_until) = (0u16, 0i64);
        let mut in_flight: VecDeque<(u16, i64)> = VecDeque::new();
        let (mut before_probe, mut overused, mut probe) = (0, false, None);
        let mut lowest_after_probe = u64::MAX;
        for now in (0..5 * SEC).step_by(MS as usize) {
            if now == 2 * SEC {
                before_probe = bwe.estimate_bps();
                probe = bwe.start_probe(at(now), 5_000_000);
                assert!(probe.is_some());
            }
            let probing = (2 * SEC..2 * SEC + 100 * MS).contains(&now);
            // 1 Mbps of media; 4 Mbps of padding during the probe; 3 Mbps of
            // media from 4 s, over the 2 Mbps link.
            let media = if now >= 4 * SEC { 3 } else { 1 };
            let packets =
                media * i64::from(now % (8 * MS) == 0) + i64::from(probing && now % (2 * MS) == 0);
            for _ in 0..packets {
                bwe.on_packet_sent(at(now), seq, 1_000, probe.filter(|_| probing));
                busy_until = busy_until.max(now) + 8_000 * SEC / CAPACITY_BPS;
                in_flight.push_back((seq, busy_until + ONE_WAY_US));
                seq = seq.wrapping_add(1);
            }
            if now % FEEDBACK_INTERVAL_US == 0 {
                let base_seq = in_flight.front().map_or(seq, |p| p.0);
                let mut arrivals = Vec::new();
                while in_flight.front().is_some_and(|p| p.1 <= now) {
                    arrivals.push(in_flight.pop_front().map(|p| p.1));
                }
                let fb = Feedback {
                    base_seq,
                    reference_us: 0,
                    arrivals,
                };
                bwe.on_feedback(at(now), &fb);
            }
            overused |= probe.is_some() && bwe.is_overusing() && now < 4 * SEC;
            if (2 * SEC..4 * SEC).contains(&now) {
                lowest_after_probe = lowest_after_probe.min(bwe.estimate_bps());
            }
        }
        assert!(overused, "the probe's queue was seen");
        assert!(
            lowest_after_probe >= before_probe,
            "{lowest_after_probe} < {before_probe}"
        );
        assert_eq!(before_probe, 3_000_000);
        let congested = bwe.estimate_bps();
        assert!((800_000..=1_800_000).contains(&congested), "{congested}");
    }

    #[test]
    fn probe_packets_count_as_acknowledged_traffic() {
        let t0 = Instant::now();
        let mut bwe = SendSideBwe::new(BweConfig::default(), t0);
        let id = bwe.start_probe(t0, 2_000_000);
        send_run(&mut bwe, t0, 0, 0, 100, 2 * MS, id);
        bwe.on_feedback(
            t0 + Duration::from_millis(250),
            &arrivals(0, 100, 20 * MS, 2 * MS),
        );
        // 100 × 8 000 bits over 200 ms.
        let acked = bwe.acked_bps().expect("acked");
        assert!(acked.abs_diff(4_000_000) < 100_000, "{acked}");
    }

    #[test]
    fn receiver_reports_drive_the_estimate_only_without_transport_feedback() {
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        let mut bwe = SendSideBwe::new(BweConfig::default(), t0);
        for i in 0..=10 {
            bwe.on_loss_report(s(i), 0.0);
        }
        let grown = bwe.estimate_bps();
        assert!((1_550_000..=1_650_000).contains(&grown), "{grown}");
        for i in 11..=13 {
            bwe.on_loss_report(s(i), 0.3);
        }
        let cut = bwe.estimate_bps();
        assert_eq!(cut, (grown as f64 * 0.85 * 0.85 * 0.85) as u64);
        bwe.on_loss_report(s(14), 0.05);
        assert_eq!(bwe.estimate_bps(), cut, "2-10 % holds");
        bwe.on_feedback(s(15), &Feedback::default());
        bwe.on_loss_report(s(16), 0.5);
        assert_eq!(
            bwe.estimate_bps(),
            cut,
            "transport-wide feedback is fresher"
        );
        bwe.on_loss_report(s(18), 0.5);
        assert!(bwe.estimate_bps() < cut);
    }

    #[test]
    fn hostile_feedback_neither_panics_nor_leaves_the_bounds() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let cfg = BweConfig::default();
        let mut bwe = SendSideBwe::new(cfg, t0);
        let within = |bwe: &SendSideBwe| (cfg.min_bps..=cfg.max_bps).contains(&bwe.estimate_bps());
        bwe.on_feedback(at(1), &arrivals(7, 50, 0, MS));
        bwe.on_feedback(at(1), &Feedback::default());
        assert_eq!(
            bwe.estimate_bps(),
            1_000_000,
            "nothing sent, nothing learnt"
        );
        send_run(&mut bwe, t0, 0, 100, 300, MS, None);
        // Never sent; sent but far away; empty.
        bwe.on_feedback(at(300), &arrivals(40_000, 100, 0, MS));
        bwe.on_feedback(at(300), &arrivals(90, 5, 0, MS));
        bwe.on_feedback(
            at(300),
            &Feedback {
                base_seq: 100,
                ..Feedback::default()
            },
        );
        assert_eq!(bwe.acked_bps(), None);
        // Duplicates count once.
        let fb = arrivals(100, 300, 20 * MS, MS);
        bwe.on_feedback(at(330), &fb);
        let acked = bwe.acked_bps();
        bwe.on_feedback(at(340), &fb);
        bwe.on_feedback(at(350), &fb);
        assert_eq!(bwe.acked_bps(), acked);
        assert!(within(&bwe));
        // Time running backwards, absurd offsets, references and sizes.
        send_run(&mut bwe, t0, 400 * MS, 400, 300, MS, None);
        bwe.on_feedback(at(700), &arrivals(400, 100, 50 * SEC, -MS));
        for (reference_us, offset) in [
            (i64::MAX, i64::MAX),
            (i64::MIN, i64::MIN),
            (0, i64::MIN),
            (-1, i64::MAX),
            (REFERENCE_PERIOD_US * 3 + 1, -5),
        ] {
            bwe.on_feedback(
                at(700),
                &Feedback {
                    base_seq: 500,
                    reference_us,
                    arrivals: vec![Some(offset), None, Some(offset), Some(0)],
                },
            );
            assert!(within(&bwe));
        }
        bwe.on_packet_sent(at(800), 700, usize::MAX, Some(u32::MAX));
        bwe.on_feedback(
            at(800),
            &Feedback {
                base_seq: 0,
                reference_us: 0,
                arrivals: vec![Some(1); usize::from(u16::MAX)],
            },
        );
        for loss in [f64::NAN, f64::INFINITY, -1.0, 7.0] {
            bwe.on_loss_report(at(900), loss);
        }
        bwe.start_probe(at(900), u64::MAX);
        bwe.on_packet_sent(at(901), 701, 0, Some(1));
        bwe.on_feedback(at(5_000), &arrivals(690, 20, 0, 0));
        assert!(within(&bwe));
        // Instants before the estimator's origin.
        if let Some(before) = t0.checked_sub(Duration::from_secs(1)) {
            bwe.on_packet_sent(before, 702, 1_000, None);
        }
        assert!(within(&bwe));
        // Sane traffic afterwards is measured as if nothing had happened.
        send_run(&mut bwe, t0, 10 * SEC, 1_000, 600, MS, None);
        bwe.on_feedback(at(10_700), &arrivals(1_000, 600, 10 * SEC, MS));
        let acked = bwe.acked_bps().expect("acked after garbage");
        assert!(acked.abs_diff(8_000_000) < 200_000, "{acked}");
    }

    #[test]
    fn a_nonsensical_config_still_gives_bounded_estimates() {
        let t0 = Instant::now();
        for cfg in [
            BweConfig {
                initial_bps: 0,
                min_bps: 0,
                max_bps: 0,
            },
            BweConfig {
                initial_bps: 5,
                min_bps: 10,
                max_bps: 1,
            },
            BweConfig {
                initial_bps: u64::MAX,
                min_bps: 0,
                max_bps: u64::MAX,
            },
        ] {
            let mut bwe = SendSideBwe::new(cfg, t0);
            let (lo, hi) = (cfg.min_bps, cfg.max_bps.max(cfg.min_bps));
            send_run(&mut bwe, t0, 0, 0, 100, MS, None);
            bwe.on_feedback(t0 + Duration::from_millis(200), &arrivals(0, 100, 0, MS));
            bwe.on_loss_report(t0 + Duration::from_secs(5), 0.0);
            assert!(
                (lo..=hi).contains(&bwe.estimate_bps()),
                "{cfg:?}: {}",
                bwe.estimate_bps()
            );
        }
    }

    mod arbitrary_input {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Send {
                dt_us: u32,
                skip: u8,
                size: u16,
                probe: bool,
            },
            Feedback {
                dt_us: u32,
                back: u16,
                reference_us: i64,
                arrivals: Vec<Option<i64>>,
            },
            Loss {
                dt_us: u32,
                fraction: f64,
            },
            Probe {
                bps: u64,
            },
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (0..20_000u32, 0..3u8, 0..1_500u16, any::<bool>()).prop_map(
                    |(dt_us, skip, size, probe)| Op::Send { dt_us, skip, size, probe }
                ),
                2 => (
                    0..100_000u32,
                    0..600u16,
                    prop_oneof![any::<i64>(), 0..1_000_000_000i64],
                    prop::collection::vec(
                        prop::option::of(prop_oneof![any::<i64>(), -100_000..1_000_000i64]),
                        0..80,
                    ),
                )
                    .prop_map(|(dt_us, back, reference_us, arrivals)| Op::Feedback {
                        dt_us,
                        back,
                        reference_us,
                        arrivals,
                    }),
                1 => (0..2_000_000u32, any::<f64>()).prop_map(|(dt_us, fraction)| Op::Loss { dt_us, fraction }),
                1 => any::<u64>().prop_map(|bps| Op::Probe { bps }),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            #[test]
            fn any_input_keeps_the_estimate_within_bounds(
                min in 0..2_000_000u64,
                span in 0..50_000_000u64,
                initial in any::<u64>(),
                ops in prop::collection::vec(op(), 1..300),
            ) {
                let t0 = Instant::now();
                let cfg = BweConfig { initial_bps: initial, min_bps: min, max_bps: min + span };
                let mut bwe = SendSideBwe::new(cfg, t0);
                let mut now = t0;
                let mut seq = 0u16;
                let mut probe = None;
                for op in ops {
                    match op {
                        Op::Send { dt_us, skip, size, probe: tagged } => {
                            now += Duration::from_micros(u64::from(dt_us));
                            seq = seq.wrapping_add(u16::from(skip)).wrapping_add(1);
                            bwe.on_packet_sent(now, seq, usize::from(size), probe.filter(|_| tagged));
                        }
                        Op::Feedback { dt_us, back, reference_us, arrivals } => {
                            now += Duration::from_micros(u64::from(dt_us));
                            let base_seq = seq.wrapping_sub(back);
                            bwe.on_feedback(now, &Feedback { base_seq, reference_us, arrivals });
                        }
                        Op::Loss { dt_us, fraction } => {
                            now += Duration::from_micros(u64::from(dt_us));
                            bwe.on_loss_report(now, fraction);
                        }
                        Op::Probe { bps } => {
                            if bwe.can_probe(now) {
                                probe = bwe.start_probe(now, bps).or(probe);
                            }
                        }
                    }
                    prop_assert!((min..=min + span).contains(&bwe.estimate_bps()));
                    let _ = (bwe.acked_bps(), bwe.is_overusing());
                }
            }
        }
    }
}
