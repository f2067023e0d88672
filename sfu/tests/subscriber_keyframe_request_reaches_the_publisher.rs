//! A subscriber that lost the picture sends a PLI to kaigi; kaigi relays a
//! keyframe request to the publisher of that stream (through the other
//! worker), and only one per interval however often it is asked.

mod common;

use std::time::Duration;

#[test]
fn subscriber_keyframe_request_reaches_the_publisher() {
    let mut sim = common::Sim::new(2);
    let a = sim.join("r", "a");
    let b = sim.join("r", "b");
    sim.run_for(Duration::from_secs(3));
    assert_ne!(
        sim.engine.worker_of(sim.clients[a].id),
        sim.engine.worker_of(sim.clients[b].id)
    );
    let before = sim.clients[a].keyframe_requests;

    sim.request_keyframe(b, a);
    sim.run_for(Duration::from_millis(100));
    assert_eq!(
        sim.clients[a].keyframe_requests,
        before + 1,
        "the PLI was relayed"
    );

    // A burst of requests within the interval: one more request at most, at its end.
    for _ in 0..20 {
        sim.request_keyframe(b, a);
        sim.run_for(Duration::from_millis(10));
    }
    sim.run_for(Duration::from_secs(1));
    let relayed = sim.clients[a].keyframe_requests - before;
    assert!(
        (2..=3).contains(&relayed),
        "{relayed} requests reached the publisher"
    );
}
