//! Simulcast: a subscriber receives the layer of a publisher's camera that
//! fits the size it shows it at and what its link carries. Layers switch on
//! keyframes, the subscriber sees one stream with continuous sequence
//! numbers, and the publisher is told which layers nobody needs.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Link, Sim};
use sfu::NoticeKind;

/// The layers of the last `n` frames `viewer` got from `publisher`.
fn last_layers(sim: &Sim, viewer: usize, publisher: usize, n: usize) -> Vec<u8> {
    let stream = format!("p{}", sim.clients[publisher].id);
    let all = sim.clients[viewer]
        .frame_layers
        .get(&stream)
        .cloned()
        .unwrap_or_default();
    all[all.len().saturating_sub(n)..].to_vec()
}

fn layer_notices(sim: &Sim, publisher: usize) -> Vec<u8> {
    sim.clients[publisher]
        .notices
        .iter()
        .filter_map(|n| match n {
            NoticeKind::VideoLayers(m) => Some(*m),
            _ => None,
        })
        .collect()
}

/// Every sequence number between the first and the last one received was
/// received: switches leave no gap for the receiver to ask for.
fn assert_continuous(sim: &Sim, viewer: usize, publisher: usize) {
    let stream = format!("p{}", sim.clients[publisher].id);
    let seqs = &sim.clients[viewer].video_seqs[&stream];
    let mut sorted: Vec<u16> = seqs.iter().copied().collect();
    sorted.sort_unstable();
    // Sequence numbers start at a random point: find the wrap, if any.
    let (lo, hi) = (sorted[0], sorted[sorted.len() - 1]);
    assert!(
        hi.wrapping_sub(lo) as usize + 1 == sorted.len() || lo < 100 || hi > 65_000,
        "a gap in {} .. {} ({} received)",
        lo,
        hi,
        sorted.len()
    );
}

#[test]
fn layer_follows_the_size_the_subscriber_shows() {
    let mut sim = Sim::new(2);
    let publisher = sim.join_simulcast("r", "presenter");
    let viewer = sim.join("r", "viewer");
    let (pid, vid) = (sim.clients[publisher].id, sim.clients[viewer].id);
    sim.run_for(Duration::from_secs(3));
    assert_eq!(
        last_layers(&sim, viewer, publisher, 10),
        vec![2; 10],
        "no size given: the top layer"
    );

    sim.control(|e| e.set_sizes(vid, HashMap::from([((pid, false), (320, 180))])));
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        last_layers(&sim, viewer, publisher, 10),
        vec![0; 10],
        "a small tile"
    );
    assert_ne!(
        layer_notices(&sim, publisher).last(),
        Some(&0),
        "not at once: fewer layers must be wanted for 3 s"
    );
    sim.run_for(Duration::from_millis(1500));
    assert_eq!(
        layer_notices(&sim, publisher).last(),
        Some(&0),
        "h and f not needed"
    );

    sim.control(|e| e.set_sizes(vid, HashMap::from([((pid, false), (600, 340))])));
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        last_layers(&sim, viewer, publisher, 10),
        vec![1; 10],
        "a middle tile"
    );
    assert_eq!(layer_notices(&sim, publisher).last(), Some(&1));
    assert_continuous(&sim, viewer, publisher);
    let switches: u64 = sim
        .stats
        .iter()
        .map(|s| s.layer_switches.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    assert!(switches >= 3, "0 → 2 → 0 → 1: {switches}");
}

/// A simulcast presenter and a viewer on a 4 Mbit/s link, 8 s in: at the top layer.
fn at_the_top_layer() -> (Sim, usize, usize, std::net::SocketAddr) {
    let mut sim = Sim::new(1);
    let publisher = sim.join_simulcast("r", "presenter");
    let viewer = sim.join("r", "viewer");
    let link = sim.clients[viewer].subscribe_addr;
    sim.links.insert(link, Link::new(4_000_000));
    sim.run_for(Duration::from_secs(8));
    (sim, publisher, viewer, link)
}

#[test]
fn layer_follows_the_subscribers_bandwidth() {
    let (mut sim, publisher, viewer, link) = at_the_top_layer();
    assert_eq!(
        last_layers(&sim, viewer, publisher, 10),
        vec![2; 10],
        "4 Mbit/s carries the top layer (1.15 Mbit/s)"
    );

    // The link drops to 450 kbit/s: only the low layer (~290 k) fits.
    sim.links.get_mut(&link).unwrap().bps = 450_000;
    let start = sim.now;
    let mut down = None;
    for _ in 0..100 {
        sim.run_for(Duration::from_millis(100));
        if last_layers(&sim, viewer, publisher, 5) == vec![0; 5] {
            down = Some(sim.now - start);
            break;
        }
    }
    let down = down.expect("the low layer within 10 s of the drop");
    sim.run_for(Duration::from_secs(3));
    assert_eq!(
        last_layers(&sim, viewer, publisher, 30),
        vec![0; 30],
        "stays low while the link is short"
    );

    // The link recovers: probing finds it, the top layer comes back.
    sim.links.get_mut(&link).unwrap().bps = 10_000_000;
    let start = sim.now;
    let mut up = None;
    for _ in 0..200 {
        sim.run_for(Duration::from_millis(100));
        if last_layers(&sim, viewer, publisher, 5) == vec![2; 5] {
            up = Some(sim.now - start);
            break;
        }
    }
    let up = up.expect("the top layer within 20 s of the recovery");
    println!(
        "layer switch (simulated): down {down:?} after the drop, up {up:?} after the recovery"
    );
    assert_continuous(&sim, viewer, publisher);
}

#[test]
fn a_link_too_short_for_the_lowest_layer_keeps_audio_and_pauses_video() {
    let mut sim = Sim::new(1);
    let publisher = sim.join_simulcast("r", "presenter");
    let viewer = sim.join("r", "viewer");
    sim.run_for(Duration::from_secs(3));
    let link = sim.clients[viewer].subscribe_addr;
    // 120 kbit/s: audio (~20 k here) fits, the lowest video layer (~290 k) does not.
    sim.links.insert(link, Link::new(120_000));
    sim.run_for(Duration::from_secs(8));
    let frames = |sim: &Sim| last_layers(sim, viewer, publisher, usize::MAX).len();
    let (before, frames_before) = (sim.received(viewer, publisher), frames(&sim));
    sim.run_for(Duration::from_secs(3));
    let (after, frames_after) = (sim.received(viewer, publisher), frames(&sim));
    assert!(
        after[0] - before[0] > 120,
        "audio keeps flowing: {before:?} → {after:?}"
    );
    // (Probes' padding-only packets still reach it: count frames.)
    assert_eq!(frames_after, frames_before, "video paused");
    let paused: u64 = sim
        .stats
        .iter()
        .map(|s| {
            s.video_paused_for_bandwidth
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    assert!(paused >= 1);

    // The link recovers: video comes back without anyone asking.
    sim.links.remove(&link);
    sim.run_for(Duration::from_secs(15));
    assert_eq!(last_layers(&sim, viewer, publisher, 5), vec![2; 5]);
}

#[test]
fn a_simulcast_publisher_that_renegotiates_keeps_reaching_its_subscribers() {
    let mut sim = Sim::new(2);
    let publisher = sim.join_simulcast("r", "presenter");
    let viewer = sim.join("r", "viewer");
    sim.run_for(Duration::from_secs(3));
    let before = sim.received(viewer, publisher)[1];
    assert!(before > 30);
    sim.renegotiate_publish(publisher);
    sim.run_for(Duration::from_secs(3));
    let after = sim.received(viewer, publisher)[1];
    assert!(
        after > before + 60,
        "video keeps flowing: {before} → {after}"
    );
    assert_eq!(last_layers(&sim, viewer, publisher, 5), vec![2; 5]);
}

#[test]
fn a_simulcasting_encoder_reaches_each_whep_viewer_at_the_layer_its_link_carries() {
    let mut sim = Sim::new(2);
    let encoder = sim.join_simulcast_source("press", "encoder");
    sim.run_for(Duration::from_secs(1));
    let fast = sim.join_whep("press");
    let slow = sim.join_whep("press");
    sim.links
        .insert(sim.clients[fast].subscribe_addr, Link::new(4_000_000));
    sim.links
        .insert(sim.clients[slow].subscribe_addr, Link::new(450_000));
    sim.run_for(Duration::from_secs(10));
    assert_eq!(
        last_layers(&sim, fast, encoder, 10),
        vec![2; 10],
        "4 Mbit/s: the top layer"
    );
    assert_eq!(
        last_layers(&sim, slow, encoder, 10),
        vec![0; 10],
        "450 kbit/s: the low layer"
    );
    assert_continuous(&sim, slow, encoder);
    // The encoder keeps sending every layer someone receives.
    assert!(layer_notices(&sim, encoder).last().is_none_or(|&m| m == 2));
}

#[test]
fn a_short_burst_of_bandwidth_does_not_lift_the_layer() {
    let (mut sim, publisher, viewer, link) = at_the_top_layer();
    // The link drops: down to the low layer, and past the upgrade cooldown.
    sim.links.get_mut(&link).unwrap().bps = 450_000;
    sim.run_for(Duration::from_secs(12));
    assert_eq!(
        last_layers(&sim, viewer, publisher, 20),
        vec![0; 20],
        "450 kbit/s carries the low layer"
    );
    // A policer's burst: the link carries far more for under a second, then
    // is short again. The estimate jumps with it; the layer must not follow
    // (up, a keyframe, straight down again, a stall).
    let frames = |sim: &Sim| {
        let stream = format!("p{}", sim.clients[publisher].id);
        sim.clients[viewer]
            .frame_layers
            .get(&stream)
            .map_or(0, Vec::len)
    };
    let before = frames(&sim);
    sim.links.get_mut(&link).unwrap().bps = 10_000_000;
    sim.run_for(Duration::from_millis(900));
    sim.links.get_mut(&link).unwrap().bps = 450_000;
    sim.run_for(Duration::from_secs(4));
    let after = frames(&sim) - before;
    assert!(after > 20, "frames kept coming: {after}");
    let layers = last_layers(&sim, viewer, publisher, after);
    assert!(
        layers.iter().all(|&l| l == 0),
        "the layer rose on a burst: {layers:?}"
    );
    assert_continuous(&sim, viewer, publisher);
}

#[test]
fn a_short_link_with_a_deep_queue_keeps_the_low_layer() {
    // As the browser test's shaper, a second of queue, on a link that carries
    // the sim's low layer (~290 k) but not the middle one.
    let (mut sim, publisher, viewer, link) = at_the_top_layer();
    let l = sim.links.get_mut(&link).unwrap();
    l.bps = 400_000;
    l.max_queue = Duration::from_secs(1);
    sim.run_for(Duration::from_secs(10));
    let stream = format!("p{}", sim.clients[publisher].id);
    let before = sim.clients[viewer]
        .frame_layers
        .get(&stream)
        .map_or(0, Vec::len);
    sim.run_for(Duration::from_secs(30));
    let all = sim.clients[viewer]
        .frame_layers
        .get(&stream)
        .cloned()
        .unwrap_or_default();
    let after = &all[before..];
    assert!(
        after.len() > 500,
        "video kept coming: {} frames",
        after.len()
    );
    assert!(
        after.iter().all(|&l| l == 0),
        "went up on a 400 kbit/s link with a deep queue"
    );
}
