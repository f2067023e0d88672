//! The Prometheus registry: one per process, names prefixed `kaigi_`, no
//! per-participant labels. Packet counters are read from the workers'
//! atomics at scrape time, so the packet path never touches Prometheus.

use prometheus::proto::{Bucket, Histogram, Metric, MetricFamily, MetricType};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use sfu::runtime::SfuHandle;
use sfu::stats::{DelaySnapshot, FORWARD_DELAY_BOUNDS};
use sfu::{DropReason, WorkerStats};

/// Every metric kaigi exports.
pub struct Metrics {
    registry: Registry,
    /// Rooms with at least one participant.
    pub rooms: IntGauge,
    /// Participants connected.
    pub participants: IntGauge,
    /// WHEP viewers.
    pub viewers: IntGauge,
    /// Published tracks.
    pub tracks: IntGauge,
    /// Participants per media worker.
    pub worker_participants: IntGaugeVec,
    packets: IntCounterVec,
    bytes: IntCounterVec,
    forwarded: IntCounter,
    keyframe_requests: IntCounter,
    paused: IntCounter,
    layer_switches: IntCounter,
    bandwidth_pauses: IntCounter,
    dropped: IntCounterVec,
    /// WebSocket connections open.
    pub ws_connections: IntGauge,
    /// Signaling messages refused, by reason.
    pub ws_rejected: IntCounterVec,
    /// Joins, by result.
    pub joins: IntCounterVec,
    /// WHIP ingest requests, by result.
    pub whip_requests: IntCounterVec,
    /// WHEP playback requests, by result.
    pub whep_requests: IntCounterVec,
    /// Notices dropped because a client's queue was full.
    pub notices_dropped: IntCounter,
    /// Recordings started.
    pub recordings_started: IntCounter,
    /// Requests refused by the per-address rate limits, by what.
    pub rate_limited: IntCounterVec,
    /// Directory sign-ins, by result.
    pub logins: IntCounterVec,
    /// Heartbeats that could not reach Redis.
    pub cluster_redis_errors: IntCounter,
    /// Rooms found homed on two nodes (after Redis was away).
    pub cluster_conflicts: IntCounter,
    /// Live nodes in the registry, as last seen.
    pub cluster_nodes: IntGauge,
    /// 1 while Redis answers.
    pub cluster_redis_up: IntGauge,
    /// Requests sent to a room's home node, by kind (ws, page, whip, whep).
    pub cluster_redirects: IntCounterVec,
    /// Publish offers refused for carrying too many tracks, by endpoint.
    pub too_many_tracks: IntCounterVec,
    /// Broadcasts relayed to this node from their origin now.
    pub relays: IntGauge,
    /// Relays that could not start, by reason.
    pub relay_failures: IntCounterVec,
    /// Media bytes (RTP payload and header) relayed into local rooms.
    pub relay_bytes: IntCounter,
    /// Keyframe requests a relay sent up to its origin.
    pub relay_keyframe_requests: IntCounter,
    /// Participants per room (rooms are bounded by `limits.max_rooms`).
    room_participants: IntGaugeVec,
    /// WHEP viewers per room.
    room_viewers: IntGaugeVec,
    /// Time to answer a join (WebSocket) or an SDP offer (WHIP, WHEP), by kind.
    pub answer_seconds: HistogramVec,
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("metric");
    r.register(Box::new(g.clone())).expect("register");
    g
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("metric");
    r.register(Box::new(g.clone())).expect("register");
    g
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("metric");
    r.register(Box::new(c.clone())).expect("register");
    c
}

/// Brings a counter up to a total kept elsewhere.
fn sync(c: &IntCounter, total: u64) {
    let cur = c.get();
    if total > cur {
        c.inc_by(total - cur);
    }
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric");
    r.register(Box::new(c.clone())).expect("register");
    c
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let r = Registry::new();
        // CPU seconds, resident memory, open files: process_* by convention.
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("register");
        let notices_dropped = counter(
            &r,
            "kaigi_notices_dropped_total",
            "Signaling notices dropped because a client's queue was full",
        );
        let m = Metrics {
            rooms: gauge(&r, "kaigi_rooms", "Rooms with at least one participant"),
            participants: gauge(&r, "kaigi_participants", "Participants in rooms"),
            viewers: gauge(&r, "kaigi_viewers", "WHEP viewers watching broadcasts"),
            tracks: gauge(&r, "kaigi_tracks", "Published tracks"),
            worker_participants: gauge_vec(
                &r,
                "kaigi_worker_participants",
                "Participants hosted per media worker",
                &["worker"],
            ),
            // Counters kept by the workers; exported as monotonic values.
            packets: counter_vec(
                &r,
                "kaigi_packets_total",
                "Datagrams on the media port",
                &["direction"],
            ),
            bytes: counter_vec(
                &r,
                "kaigi_bytes_total",
                "Bytes on the media port",
                &["direction"],
            ),
            forwarded: counter(
                &r,
                "kaigi_rtp_forwarded_total",
                "RTP packets forwarded to subscribers",
            ),
            keyframe_requests: counter(
                &r,
                "kaigi_keyframe_requests_total",
                "Keyframe requests sent to publishers",
            ),
            paused: counter(
                &r,
                "kaigi_rtp_paused_total",
                "Video packets not forwarded to subscribers that do not show that participant",
            ),
            layer_switches: counter(
                &r,
                "kaigi_layer_switches_total",
                "Simulcast layer switches of subscribers (on keyframes)",
            ),
            bandwidth_pauses: counter(
                &r,
                "kaigi_video_paused_for_bandwidth_total",
                "Videos paused for a subscriber whose link cannot carry their lowest layer",
            ),
            dropped: counter_vec(
                &r,
                "kaigi_packets_dropped_total",
                "Packets dropped, by reason",
                &["reason"],
            ),
            ws_connections: gauge(&r, "kaigi_ws_connections", "Signaling WebSockets open"),
            ws_rejected: counter_vec(
                &r,
                "kaigi_ws_rejected_total",
                "Signaling messages refused, by reason",
                &["reason"],
            ),
            joins: counter_vec(
                &r,
                "kaigi_joins_total",
                "Join attempts, by result",
                &["result"],
            ),
            whep_requests: counter_vec(
                &r,
                "kaigi_whep_requests_total",
                "WHEP playback offers, by result (ok, unauthorized, not_live, bad_sdp, no_codec, ...)",
                &["result"],
            ),
            whip_requests: counter_vec(
                &r,
                "kaigi_whip_requests_total",
                "WHIP ingest offers, by result (ok, unauthorized, busy, bad_sdp, no_codec, ...)",
                &["result"],
            ),
            notices_dropped,
            recordings_started: counter(&r, "kaigi_recordings_started_total", "Recordings started"),
            rate_limited: counter_vec(
                &r,
                "kaigi_rate_limited_total",
                "Requests refused by a per-address rate limit, by what (ws, whip, whep, login, password)",
                &["what"],
            ),
            cluster_redis_errors: counter(
                &r,
                "kaigi_cluster_redis_errors_total",
                "Heartbeats that could not reach Redis",
            ),
            cluster_conflicts: counter(
                &r,
                "kaigi_cluster_conflicts_total",
                "Rooms found homed on another node while hosted here",
            ),
            cluster_nodes: gauge(
                &r,
                "kaigi_cluster_nodes",
                "Live nodes in the Redis registry",
            ),
            cluster_redis_up: gauge(
                &r,
                "kaigi_cluster_redis_up",
                "1 while Redis answers (cluster mode)",
            ),
            cluster_redirects: counter_vec(
                &r,
                "kaigi_cluster_redirects_total",
                "Requests sent to their room's home node, by kind (ws, page, whip, whep)",
                &["kind"],
            ),
            relays: gauge(
                &r,
                "kaigi_relays",
                "Broadcasts relayed to this node from their origin node now",
            ),
            relay_failures: counter_vec(
                &r,
                "kaigi_relay_failures_total",
                "Relays that could not start, by reason (not_live, unreachable, refused, local, config, internal)",
                &["reason"],
            ),
            relay_bytes: counter(
                &r,
                "kaigi_relay_bytes_total",
                "RTP bytes relayed from origin nodes into this node's rooms",
            ),
            relay_keyframe_requests: counter(
                &r,
                "kaigi_relay_keyframe_requests_total",
                "Keyframe requests relays sent up to their origin node",
            ),
            logins: counter_vec(
                &r,
                "kaigi_logins_total",
                "Staff directory sign-ins, by result (ok, refused, unavailable)",
                &["result"],
            ),
            too_many_tracks: counter_vec(
                &r,
                "kaigi_tracks_refused_total",
                "Publish offers refused for more tracks than limits.max_tracks_per_participant, by endpoint (ws, whip)",
                &["endpoint"],
            ),
            room_participants: gauge_vec(
                &r,
                "kaigi_room_participants",
                "Participants per room",
                &["room"],
            ),
            room_viewers: gauge_vec(&r, "kaigi_room_viewers", "WHEP viewers per room", &["room"]),
            answer_seconds: {
                let h = HistogramVec::new(
                    HistogramOpts::new(
                        "kaigi_answer_seconds",
                        "Time from a join (kind=join), a WHIP offer (whip) or a WHEP offer \
                         (whep) to kaigi's answer",
                    )
                    .buckets(vec![
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    ]),
                    &["kind"],
                )
                .expect("metric");
                r.register(Box::new(h.clone())).expect("register");
                h
            },
            registry: r,
        };
        m.touch_known_labels();
        m
    }

    /// Creates the common label values at zero, so that a fresh server's
    /// families are there for dashboards and `rate()` from the start.
    fn touch_known_labels(&self) {
        let vecs: [(&IntCounterVec, &[&str]); 9] = [
            (&self.cluster_redirects, &["ws", "page", "whip", "whep"]),
            (
                &self.relay_failures,
                &["not_live", "unreachable", "refused", "local"],
            ),
            (
                &self.joins,
                &[
                    "ok",
                    "unauthorized",
                    "room_full",
                    "server_busy",
                    "wrong_password",
                ],
            ),
            (&self.ws_rejected, &["malformed", "rate_limited", "binary"]),
            (&self.whip_requests, &["ok", "unauthorized"]),
            (&self.whep_requests, &["ok", "unauthorized", "not_live"]),
            (
                &self.rate_limited,
                &["ws", "whip", "whep", "login", "password"],
            ),
            (&self.logins, &["ok", "refused", "unavailable"]),
            (&self.too_many_tracks, &["ws", "whip"]),
        ];
        for (v, labels) in vecs {
            for l in labels {
                v.with_label_values(&[l]);
            }
        }
        for kind in ["join", "whip", "whep"] {
            self.answer_seconds.with_label_values(&[kind]);
        }
    }

    /// Refreshes values read from the SFU, then renders the text format.
    pub fn render(&self, sfu: &SfuHandle) -> String {
        sfu.control(|e| {
            self.rooms.set(e.room_count() as i64);
            self.participants.set(e.participant_count() as i64);
            self.viewers.set(e.viewer_count() as i64);
            self.tracks.set(e.track_count() as i64);
            for (w, n) in e.worker_load().iter().enumerate() {
                self.worker_participants
                    .with_label_values(&[&w.to_string()])
                    .set(*n as i64);
            }
            // Rooms that closed go away with their labels.
            self.room_participants.reset();
            self.room_viewers.reset();
            for r in e.rooms() {
                self.room_participants
                    .with_label_values(&[&r.name])
                    .set(r.participants as i64);
                self.room_viewers
                    .with_label_values(&[&r.name])
                    .set(r.viewers as i64);
            }
        });
        let all: Vec<&WorkerStats> = sfu
            .worker_stats()
            .iter()
            .map(|s| &**s)
            .chain(std::iter::once(&**sfu.net_stats()))
            .collect();
        let sum = |f: fn(&WorkerStats) -> u64| all.iter().map(|s| f(s)).sum::<u64>();
        sync(
            &self.packets.with_label_values(&["in"]),
            sum(|s| WorkerStats::get(&s.packets_in)),
        );
        sync(
            &self.packets.with_label_values(&["out"]),
            sum(|s| WorkerStats::get(&s.packets_out)),
        );
        sync(
            &self.bytes.with_label_values(&["in"]),
            sum(|s| WorkerStats::get(&s.bytes_in)),
        );
        sync(
            &self.bytes.with_label_values(&["out"]),
            sum(|s| WorkerStats::get(&s.bytes_out)),
        );
        sync(&self.forwarded, sum(|s| WorkerStats::get(&s.rtp_forwarded)));
        sync(
            &self.keyframe_requests,
            sum(|s| WorkerStats::get(&s.keyframe_requests)),
        );
        sync(&self.paused, sum(|s| WorkerStats::get(&s.rtp_paused)));
        sync(
            &self.layer_switches,
            sum(|s| WorkerStats::get(&s.layer_switches)),
        );
        sync(
            &self.bandwidth_pauses,
            sum(|s| WorkerStats::get(&s.video_paused_for_bandwidth)),
        );
        for reason in DropReason::ALL {
            let n: u64 = all.iter().map(|s| s.drops(reason)).sum();
            sync(&self.dropped.with_label_values(&[reason.as_str()]), n);
        }
        let mut delay = all[0].forward_delay.snapshot();
        for s in &all[1..] {
            delay.merge(&s.forward_delay.snapshot());
        }
        let mut families = self.registry.gather();
        families.push(histogram_family(
            "kaigi_forward_delay_seconds",
            "Time from receiving a media packet (or taking it from another worker) \
             to handing its copies to the kernel",
            &FORWARD_DELAY_BOUNDS,
            &delay,
        ));
        // Link measurements of subscribers (and WHEP viewers), summed over workers.
        macro_rules! link_histogram {
            ($field:ident, $name:literal, $help:literal) => {{
                let bounds = all[0].$field.bounds();
                let mut sum = DelaySnapshot::empty(bounds.len());
                for s in &all {
                    sum.merge(&s.$field.snapshot());
                }
                families.push(histogram_family($name, $help, bounds, &sum));
            }};
        }
        link_histogram!(
            rtt,
            "kaigi_rtt_seconds",
            "Round-trip time to subscribers and viewers, from their RTCP receiver reports"
        );
        link_histogram!(
            loss,
            "kaigi_loss_ratio",
            "Fraction of packets lost on the way to subscribers and viewers, per RTCP receiver report (0-1)"
        );
        link_histogram!(
            estimate,
            "kaigi_bandwidth_estimate_bytes_per_second",
            "Each subscriber's and viewer's downlink bandwidth estimate, sampled once a second"
        );
        link_histogram!(
            first_media,
            "kaigi_first_media_seconds",
            "From a subscriber's or viewer's connection being set up (its join or WHEP offer) to its first media packet"
        );
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut buf)
            .expect("text encoding");
        String::from_utf8(buf).expect("utf-8")
    }
}

/// A histogram kept in the workers' atomics (not in the registry), as a
/// Prometheus family.
fn histogram_family(name: &str, help: &str, bounds: &[f64], d: &DelaySnapshot) -> MetricFamily {
    let mut h = Histogram::new();
    h.set_sample_count(d.count);
    h.set_sample_sum(d.sum_seconds);
    h.set_bucket(
        bounds
            .iter()
            .zip(&d.cumulative)
            .map(|(&le, &n)| {
                let mut b = Bucket::new();
                b.set_upper_bound(le);
                b.set_cumulative_count(n);
                b
            })
            .collect(),
    );
    let mut m = Metric::new();
    m.set_histogram(h);
    let mut f = MetricFamily::new();
    f.set_name(name.into());
    f.set_help(help.into());
    f.set_field_type(MetricType::HISTOGRAM);
    f.set_metric(vec![m]);
    f
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
