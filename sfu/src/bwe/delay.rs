//! The delay-based detector: packet grouping, inter-arrival deltas, the
//! trendline filter and the overuse detector. It turns the send and arrival
//! times of received packets into a [`Signal`]; what the rate does about it
//! is for the AIMD controller (`rate`), and which packets reach it is for
//! the estimator.

/// Packets sent within this of a group's first packet are one group (one frame or burst).
const BURST_US: i64 = 5_000;
/// A packet arriving this soon after its group, and faster than it was sent, queued behind it.
const BURST_ARRIVAL_US: i64 = 5_000;
/// A burst never spans more than this on arrival, so a long queue drain is not one group.
const BURST_MAX_US: i64 = 100_000;
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

/// What the delay-based detector concludes from the latest packet group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Signal {
    Normal,
    Overuse,
    Underuse,
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
pub(super) struct GroupDelta {
    pub(super) send_ms: f64,
    pub(super) arrival_ms: f64,
    /// Arrival of the later group, ms on the receiver's clock.
    pub(super) at_ms: f64,
    /// Send time of the later group's last packet, µs.
    pub(super) sent_us: i64,
}

/// Packet grouping: turns received packets, in send order, into group deltas.
#[derive(Default)]
pub(super) struct InterArrival {
    current: Option<Group>,
    previous: Option<Group>,
}

impl InterArrival {
    pub(super) fn push(&mut self, send_us: i64, arrival_us: i64) -> Option<GroupDelta> {
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
pub(super) struct Trendline {
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
    pub(super) fn new() -> Self {
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

    pub(super) fn update(&mut self, variation_ms: f64, at_ms: f64) {
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
pub(super) struct OveruseDetector {
    threshold: f64,
    last_update_ms: Option<f64>,
    /// How long the trend has been above the threshold; `None` when it is not.
    over_ms: Option<f64>,
    over_count: u32,
    prev_slope: f64,
    pub(super) signal: Signal,
}

impl OveruseDetector {
    pub(super) fn new() -> Self {
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
    pub(super) fn detect(&mut self, trend: &Trendline, send_delta_ms: f64, at_ms: f64) -> bool {
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
