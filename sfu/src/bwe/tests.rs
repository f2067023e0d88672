//! The estimator's tests: scenarios on the simulated link (`sim`), then
//! hand-built feedback for probing, receiver reports and hostile input.

use super::sim::{FEEDBACK_INTERVAL_US, MS, ONE_WAY_US, SEC, Scenario, WRAPS_SOON_US, simulate};
use super::*;
use std::collections::VecDeque;

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
