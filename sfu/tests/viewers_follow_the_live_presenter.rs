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
        sim.control(|e| e.set_live(iid, vec![iid])),
        Err("forbidden")
    );
    assert_eq!(
        sim.control(|e| e.set_live(gid, vec![9999])),
        Err("not_found")
    );
    let before: Vec<usize> = viewers.iter().map(|&v| tag_count(&sim, v)).collect();
    let seqs_before: Vec<usize> = viewers
        .iter()
        .map(|&v| sim.clients[v].video_seqs.values().map(|s| s.len()).sum())
        .collect();
    sim.control(|e| e.set_live(gid, vec![iid])).unwrap();
    assert!(
        sim.clients[interpreter]
            .notices
            .contains(&NoticeKind::Live(vec![iid])),
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
            .contains(&NoticeKind::Live(vec![]))
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

#[test]
fn a_second_presenter_is_a_second_picture_for_players_that_ask_for_one() {
    let mut sim = Sim::new(2);
    let governor = sim.join("press", "governor");
    let interpreter = sim.join("press", "interpreter");
    sim.run_for(Duration::from_secs(1));
    let (gid, iid) = (sim.clients[governor].id, sim.clients[interpreter].id);
    // A two-picture player that came before the interpreter was added: its
    // second picture is answered (silent) and filled later, no renegotiation.
    let early = sim.join_whep_with("press", 2);
    sim.run_for(Duration::from_secs(1));
    sim.control(|e| e.set_live(gid, vec![gid, iid])).unwrap();
    let two = sim.join_whep_with("press", 2);
    let one = sim.join_whep("press");
    sim.run_for(Duration::from_secs(2));
    fn tags(sim: &Sim, v: usize, p: usize) -> Vec<u8> {
        let stream = format!("p{}", sim.clients[p].id);
        sim.clients[v]
            .video_tags
            .get(&stream)
            .cloned()
            .unwrap_or_default()
    }
    let (g, i) = (gid as u8, iid as u8);
    assert!(
        tags(&sim, two, governor).len() > 30 && tags(&sim, two, governor).iter().all(|&t| t == g)
    );
    assert!(
        tags(&sim, two, interpreter).len() > 30
            && tags(&sim, two, interpreter).iter().all(|&t| t == i),
        "the interpreter as the second picture"
    );
    assert!(
        sim.received(two, governor)[0] > 50,
        "the main presenter's sound"
    );
    assert!(
        tags(&sim, one, governor).len() > 30,
        "a one-picture player gets the main presenter"
    );
    assert!(tags(&sim, one, interpreter).is_empty());
    let second: Vec<u8> = sim.clients[early]
        .video_tags
        .get("kaigi-picture-2")
        .cloned()
        .unwrap_or_default();
    assert!(
        second.len() > 30 && second.iter().all(|&t| t == i),
        "the early player's second picture shows the interpreter: {}",
        second.len()
    );

    // The main presenter leaves: the interpreter becomes the main picture.
    let before = tags(&sim, one, governor).len();
    sim.leave(governor);
    sim.run_for(Duration::from_secs(2));
    let after: Vec<u8> = tags(&sim, one, governor)[before..].to_vec();
    assert!(after.iter().rev().take(20).all(|&t| t == i), "{after:?}");
}
