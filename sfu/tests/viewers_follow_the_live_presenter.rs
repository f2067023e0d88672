//! Broadcast room mode: WHEP viewers see the room's first publisher until a
//! moderator puts another presenter live; they are re-pointed at once, on
//! the same connection (no renegotiation), with sequence numbers that carry
//! on; when the live presenter leaves they go back to the first publisher.

mod common;

use std::time::Duration;

use common::Sim;
use sfu::NoticeKind;

/// The publisher tags of the video a viewer received since `from`.
fn tags_since(sim: &Sim, viewer: usize, from: usize) -> Vec<u8> {
    let c = &sim.clients[viewer];
    c.video_tags
        .values()
        .flat_map(|v| v.iter().skip(from).copied())
        .collect()
}

fn tag_count(sim: &Sim, viewer: usize) -> usize {
    sim.clients[viewer].video_tags.values().map(Vec::len).sum()
}

#[test]
fn a_moderator_switches_what_viewers_see_without_renegotiating() {
    let mut sim = Sim::new(2);
    let governor = sim.join("press", "governor"); // first: the moderator
    let interpreter = sim.join("press", "interpreter");
    sim.run_for(Duration::from_secs(1));
    let viewers: Vec<usize> = (0..4).map(|_| sim.join_whep("press")).collect();
    sim.run_for(Duration::from_secs(2));
    let (g, i) = (
        sim.clients[governor].id as u8,
        sim.clients[interpreter].id as u8,
    );
    for &v in &viewers {
        let tags = tags_since(&sim, v, 0);
        assert!(tags.len() > 30, "viewer {v} gets video: {}", tags.len());
        assert!(tags.iter().all(|&t| t == g), "the first publisher at first");
        assert!(sim.received(v, governor)[0] > 50, "and its audio");
    }

    // Only a moderator may switch.
    let (gid, iid) = (sim.clients[governor].id, sim.clients[interpreter].id);
    assert_eq!(
        sim.control(|e| e.set_live(iid, Some(iid))),
        Err("forbidden")
    );
    assert_eq!(
        sim.control(|e| e.set_live(gid, Some(9999))),
        Err("not_found")
    );
    let before: Vec<usize> = viewers.iter().map(|&v| tag_count(&sim, v)).collect();
    let seqs_before: Vec<usize> = viewers
        .iter()
        .map(|&v| sim.clients[v].video_seqs.values().map(|s| s.len()).sum())
        .collect();
    sim.control(|e| e.set_live(gid, Some(iid))).unwrap();
    assert!(
        sim.clients[interpreter]
            .notices
            .contains(&NoticeKind::Live(Some(iid))),
        "participants are told who is live"
    );
    sim.run_for(Duration::from_secs(2));
    for (k, &v) in viewers.iter().enumerate() {
        let tags = tags_since(&sim, v, before[k]);
        assert!(
            tags.len() > 30,
            "viewer {v} keeps getting video: {}",
            tags.len()
        );
        let switched = tags
            .iter()
            .position(|&t| t == i)
            .expect("the interpreter reaches the viewer");
        assert!(
            tags[switched..].iter().all(|&t| t == i),
            "and only the interpreter after the switch"
        );
        // One stream, one receiver: the viewer's connection was not renegotiated.
        assert_eq!(sim.clients[v].video_tags.len(), 1);
        // Sequence numbers continue: no gap the receiver would NACK forever.
        let seqs: Vec<u16> = {
            let mut all: Vec<u16> = sim.clients[v]
                .video_seqs
                .values()
                .flatten()
                .copied()
                .collect();
            all.sort_unstable();
            all
        };
        let span = (seqs.last().unwrap() - seqs.first().unwrap()) as usize + 1;
        assert!(
            span <= seqs.len() + 3,
            "no big gap in sequence numbers: span {span}, received {}",
            seqs.len()
        );
        assert!(seqs.len() > seqs_before[k]);
    }

    // The live presenter leaves: back to the first publisher.
    let mid: Vec<usize> = viewers.iter().map(|&v| tag_count(&sim, v)).collect();
    sim.leave(interpreter);
    assert!(
        sim.clients[governor]
            .notices
            .contains(&NoticeKind::Live(None))
    );
    sim.run_for(Duration::from_secs(2));
    for (k, &v) in viewers.iter().enumerate() {
        let tags = tags_since(&sim, v, mid[k]);
        assert!(
            tags.iter().rev().take(20).all(|&t| t == g),
            "viewer {v} is back on the governor"
        );
    }
}
