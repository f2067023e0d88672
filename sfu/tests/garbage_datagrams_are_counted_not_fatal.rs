//! Garbage on the media port, from strangers and from a participant's own
//! address, is dropped and counted; the meeting goes on.

mod common;

use std::time::Duration;

use proptest::prelude::*;
use sfu::{DropReason, WorkerStats};

fn garbage() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..1500),
            // Looks like STUN, RTP or DTLS by its first byte, then junk.
            (
                prop_oneof![
                    Just(0u8),
                    Just(1),
                    Just(22),
                    Just(23),
                    Just(0x80),
                    Just(0x90)
                ],
                prop::collection::vec(any::<u8>(), 0..300)
            )
                .prop_map(|(first, rest)| {
                    let mut v = vec![first];
                    v.extend(rest);
                    v
                }),
        ],
        1..60,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn garbage_datagrams_are_counted_not_fatal(packets in garbage()) {
        let mut sim = common::Sim::new(1);
        let a = sim.join("r", "a");
        let b = sim.join("r", "b");
        sim.run_for(Duration::from_secs(2));
        let before = sim.received(b, a);
        let stranger = "127.0.0.1:9".parse().unwrap();
        let known = sim.clients[a].publish_addr;
        for p in &packets {
            sim.inject(stranger, p);
            sim.inject(known, p);
        }
        sim.run_for(Duration::from_secs(2));
        let after = sim.received(b, a);
        prop_assert!(after[0] > before[0] + 50, "audio still flows: {:?} -> {:?}", before, after);
        prop_assert!(after[1] > before[1] + 30, "video still flows: {:?} -> {:?}", before, after);
        let s = &sim.stats[0];
        let dropped: u64 = DropReason::ALL.iter().map(|&r| s.drops(r)).sum();
        prop_assert!(dropped > 0 || WorkerStats::get(&s.packets_in) > 0);
    }
}
