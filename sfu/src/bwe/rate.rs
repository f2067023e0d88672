//! The rate controllers: the acknowledged bitrate, the delay-based AIMD
//! controller with its link-capacity estimate, and the loss-based
//! controller. Each holds a bitrate; combining them, the configured bounds
//! and probe results are the estimator's.

use std::time::{Duration, Instant};

use super::DEFAULT_RTT;
use super::delay::Signal;

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
pub(super) const LOSS_DECREASE_INTERVAL: Duration = Duration::from_millis(300);

/// One bucket of the acknowledged-bitrate window.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    id: i64,
    bytes: u64,
}

/// Bytes the receiver got over the last 500 ms of arrival time, in fixed buckets.
pub(super) struct AckedBitrate {
    buckets: [Bucket; ACK_BUCKETS],
    first_id: Option<i64>,
    latest_id: i64,
}

impl AckedBitrate {
    pub(super) fn new() -> Self {
        Self {
            buckets: [Bucket {
                id: i64::MIN,
                bytes: 0,
            }; ACK_BUCKETS],
            first_id: None,
            latest_id: 0,
        }
    }

    pub(super) fn push(&mut self, arrival_us: i64, size: u32) {
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

    pub(super) fn bps(&self) -> Option<f64> {
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
pub(super) struct LinkCapacity {
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
pub(super) struct Aimd {
    pub(super) bps: f64,
    state: RateState,
    last_update: Option<Instant>,
    last_decrease: Option<Instant>,
    pub(super) capacity: LinkCapacity,
}

impl Aimd {
    pub(super) fn new(bps: f64) -> Self {
        Self {
            bps,
            state: RateState::Hold,
            last_update: None,
            last_decrease: None,
            capacity: LinkCapacity::default(),
        }
    }

    pub(super) fn update(
        &mut self,
        now: Instant,
        signal: Signal,
        acked: Option<f64>,
        rtt: Duration,
    ) {
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
/// A loss-based decrease does not go below this share of the acknowledged bitrate.
const LOSS_ACKED_FLOOR: f64 = 0.85;

pub(super) struct LossControl {
    pub(super) bps: f64,
    lost: u32,
    expected: u32,
    window_start: Option<Instant>,
    last_eval: Option<Instant>,
    last_decrease: Option<Instant>,
    pub(super) decrease_interval: Duration,
    /// When loss last went above [`LOSS_HIGH`].
    pub(super) last_heavy: Option<Instant>,
}

impl LossControl {
    pub(super) fn new(bps: f64) -> Self {
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
    pub(super) fn count(
        &mut self,
        now: Instant,
        lost: u32,
        received: u32,
        recovered: u32,
        estimate: f64,
        acked: Option<f64>,
    ) {
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
            self.apply(now, fraction, estimate, acked);
        }
    }

    /// `acked`: what the receiver got lately. Losses from a queue that
    /// overflowed keep being reported for a round trip after a decrease;
    /// cutting again and again for them would take the rate far below what
    /// the link demonstrably delivers, so a decrease stops at
    /// [`LOSS_ACKED_FLOOR`] of that.
    pub(super) fn apply(&mut self, now: Instant, fraction: f64, estimate: f64, acked: Option<f64>) {
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
                let before = self.bps;
                self.bps *= 1.0 - 0.5 * fraction;
                if let Some(acked) = acked {
                    self.bps = self.bps.max((LOSS_ACKED_FLOOR * acked).min(before));
                }
                self.last_decrease = Some(now);
            }
        }
    }
}
