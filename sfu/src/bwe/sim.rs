//! A simulated link for the estimator's tests: a paced sender that probes
//! when it wants more than the estimate, a drop-tail bottleneck with a
//! fixed one-way delay, and a receiver sending transport-wide feedback
//! every 50 ms, all in simulated time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{BweConfig, Feedback, REFERENCE_PERIOD_US, SendSideBwe};

pub(super) const MS: i64 = 1_000;
pub(super) const SEC: i64 = 1_000_000;
const MEDIA_PACKET: usize = 1_200;
const PADDING_PACKET: usize = 300;
pub(super) const FEEDBACK_INTERVAL_US: i64 = 50 * MS;
pub(super) const ONE_WAY_US: i64 = 20 * MS;
/// A receiver clock 3.264 s before the 24-bit reference time wraps; a
/// multiple of 64 ms and of 10 ms, so that only the wrap differs from 0.
pub(super) const WRAPS_SOON_US: i64 = REFERENCE_PERIOD_US - 51 * 64 * MS;

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
pub(super) struct Scenario {
    /// (from second, capacity bps), in order.
    pub(super) capacity: Vec<(f64, f64)>,
    pub(super) demand_bps: f64,
    pub(super) initial_bps: u64,
    pub(super) random_loss: f64,
    pub(super) max_queue_us: i64,
    pub(super) seconds: f64,
    pub(super) probing: bool,
    pub(super) first_seq: u16,
    /// Receiver clock at the start, µs: near the 24-bit reference wrap to exercise it.
    pub(super) receiver_clock_us: i64,
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
pub(super) struct Trace {
    /// (second, estimate bps)
    pub(super) estimate: Vec<(f64, u64)>,
    /// (second sent, queueing delay ms) per packet that entered the queue.
    queue_ms: Vec<(f64, f64)>,
    pub(super) probes: u32,
    pub(super) dropped: u32,
}

impl Trace {
    pub(super) fn at(&self, second: f64) -> u64 {
        self.estimate
            .iter()
            .rev()
            .find(|(t, _)| *t <= second)
            .map_or(0, |e| e.1)
    }

    pub(super) fn range(&self, from: f64, to: f64) -> (u64, u64) {
        let xs = self
            .estimate
            .iter()
            .filter(|(t, _)| (from..=to).contains(t))
            .map(|e| e.1);
        (xs.clone().min().unwrap_or(0), xs.max().unwrap_or(0))
    }

    /// First time from which the estimate stays within `band` until `until`.
    pub(super) fn settles(&self, band: (u64, u64), until: f64) -> Option<f64> {
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

    pub(super) fn first_reaching(&self, from: f64, pred: impl Fn(u64) -> bool) -> Option<f64> {
        self.estimate
            .iter()
            .find(|(t, e)| *t >= from && pred(*e))
            .map(|e| e.0)
    }

    pub(super) fn queue_percentile(&self, from: f64, p: f64) -> f64 {
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
    pub(super) fn worst_second_queue_ms(&self, from: f64) -> f64 {
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

pub(super) fn simulate(s: &Scenario) -> Trace {
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
