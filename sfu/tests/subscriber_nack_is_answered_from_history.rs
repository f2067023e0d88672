//! Video packets lost on the way to a subscriber are sent again when it asks
//! by NACK (answered from the downlink's history), and only those.

mod common;

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

#[test]
fn subscriber_nack_is_answered_from_history() {
    let mut sim = common::Sim::new(1);
    let publisher = sim.join("r", "presenter");
    let viewer = sim.join_viewer("r", "viewer");
    sim.run_for(Duration::from_secs(2));
    let stream = format!("p{}", sim.clients[publisher].id);
    assert!(sim.received(viewer, publisher)[1] > 20, "video flows");

    // Lose the next three video packets to the viewer (SRTP leaves the RTP header clear).
    let target = sim.clients[viewer].subscribe_addr;
    let lost = Rc::new(RefCell::new(Vec::<u16>::new()));
    let record = lost.clone();
    sim.drop_filter = Some(Box::new(move |to, data| {
        let rtp = data.len() > 12 && data[0] >> 6 == 2 && !(192..=223).contains(&data[1]);
        let video = rtp && (data[1] & 0x7f) != 111;
        if to != target || !video || record.borrow().len() >= 3 {
            return false;
        }
        record
            .borrow_mut()
            .push(u16::from_be_bytes([data[2], data[3]]));
        true
    }));
    sim.run_for(Duration::from_millis(300));
    let lost: Vec<u16> = lost.borrow().clone();
    assert_eq!(lost.len(), 3);
    let seen = |sim: &common::Sim| -> HashSet<u16> {
        sim.clients[viewer]
            .video_seqs
            .get(&stream)
            .cloned()
            .unwrap_or_default()
    };
    for s in &lost {
        assert!(!seen(&sim).contains(s), "packet {s} was lost");
    }

    sim.send_nack(viewer, publisher, &lost);
    sim.run_for(Duration::from_millis(100));
    for s in &lost {
        assert!(
            seen(&sim).contains(s),
            "packet {s} was sent again after the NACK"
        );
    }

    // A NACK for packets long gone from the history is ignored, not answered with garbage.
    let before = sim.received(viewer, publisher)[1];
    let newest = *seen(&sim).iter().max().unwrap();
    sim.send_nack(viewer, publisher, &[newest.wrapping_sub(1000)]);
    sim.run_for(Duration::from_millis(100));
    let after = sim.received(viewer, publisher)[1];
    assert!(
        after - before <= 4,
        "only regular video arrived ({} packets)",
        after - before
    );
}
