//! Ten subscribers joining at once each need a keyframe of the publisher's
//! video; the publisher gets a handful of requests, not ten.

mod common;

use std::time::Duration;

use sfu::WorkerStats;

#[test]
fn keyframe_requests_from_many_joins_are_aggregated() {
    let mut sim = common::Sim::new(2);
    let publisher = sim.join("town-hall", "governor");
    sim.run_for(Duration::from_secs(2));
    let before = sim.clients[publisher].keyframe_requests;
    let viewers: Vec<usize> = (0..10)
        .map(|i| sim.join("town-hall", &format!("v{i}")))
        .collect();
    sim.run_for(Duration::from_secs(3));
    for &v in &viewers {
        let [_, video] = sim.received(v, publisher);
        assert!(video > 30, "viewer {v} receives video ({video} packets)");
    }
    let requests = sim.clients[publisher].keyframe_requests - before;
    assert!(requests >= 1, "the publisher was asked for a keyframe");
    // Joins spread over ~1 s of negotiation; one request per 500 ms at most.
    assert!(
        requests <= 4,
        "10 joins caused {requests} keyframe requests"
    );
    // Every participant publishes video here: 11 tracks, each throttled on its own.
    let sent: u64 = sim
        .stats
        .iter()
        .map(|s| WorkerStats::get(&s.keyframe_requests))
        .sum();
    assert!(sent <= 11 * 4, "workers sent {sent} keyframe requests");
}

#[test]
fn fifty_whep_viewers_joining_at_once_cost_the_encoder_a_few_keyframes() {
    let mut sim = common::Sim::new(2);
    let encoder = sim.join("press", "encoder");
    sim.run_for(Duration::from_secs(2));
    let before = sim.clients[encoder].keyframe_requests;
    let viewers: Vec<usize> = (0..50).map(|_| sim.join_whep("press")).collect();
    sim.run_for(Duration::from_secs(3));
    for &v in &viewers {
        let [_, video] = sim.received(v, encoder);
        assert!(video > 30, "viewer {v} receives video ({video} packets)");
    }
    let requests = sim.clients[encoder].keyframe_requests - before;
    assert!(requests >= 1, "the encoder was asked for a keyframe");
    // One request per 500 ms at most, served to every viewer that waits.
    assert!(
        requests <= 4,
        "50 viewers caused {requests} keyframe requests"
    );
}
