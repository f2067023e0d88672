//! A moderator's mute is enforced by the SFU: the muted participant's audio
//! stops reaching everyone (on its own worker and on others), whatever its
//! client keeps sending, while its video flows on; only its own unmute
//! releases it. Everyone, the muted participant included, is told.

mod common;

use std::time::Duration;

use sfu::{MediaKind, NoticeKind};

#[test]
fn moderator_mute_holds_media_until_self_unmute() {
    let mut sim = common::Sim::new(2);
    let speaker = sim.join("r", "speaker");
    let a = sim.join_viewer("r", "a");
    let b = sim.join_viewer("r", "b");
    sim.run_for(Duration::from_secs(2));
    let id = sim.clients[speaker].id;
    let workers: Vec<_> = [speaker, a, b]
        .iter()
        .map(|&i| sim.engine.worker_of(sim.clients[i].id).unwrap())
        .collect();
    assert!(
        workers[1] != workers[0] || workers[2] != workers[0],
        "a viewer sits on another worker: {workers:?}"
    );
    for v in [a, b] {
        assert!(sim.received(v, speaker)[0] > 20, "audio flows before");
    }

    assert!(sim.control(|e| e.hold(id, MediaKind::Audio)));
    assert!(sim.engine.is_held(id, MediaKind::Audio));
    // Packets already on the wire may still land.
    sim.run_for(Duration::from_millis(200));
    let before: Vec<[u64; 2]> = [a, b].iter().map(|&v| sim.received(v, speaker)).collect();
    sim.run_for(Duration::from_secs(1));
    for (k, &v) in [a, b].iter().enumerate() {
        let now = sim.received(v, speaker);
        assert_eq!(now[0], before[k][0], "no audio while held (viewer {k})");
        assert!(now[1] > before[k][1] + 10, "video still flows (viewer {k})");
    }
    // The room and the muted participant itself see the mute.
    for c in [speaker, a, b] {
        assert!(
            sim.clients[c].notices.iter().any(|n| matches!(n,
                NoticeKind::ParticipantUpdated(i) if i.id == id && i.audio_muted)),
            "client {c} was told"
        );
    }

    // Muting again by the participant does not release it; unmuting does.
    sim.control(|e| e.set_muted(id, MediaKind::Audio, true));
    assert!(sim.engine.is_held(id, MediaKind::Audio));
    sim.control(|e| e.set_muted(id, MediaKind::Audio, false));
    assert!(!sim.engine.is_held(id, MediaKind::Audio));
    let before: Vec<u64> = [a, b]
        .iter()
        .map(|&v| sim.received(v, speaker)[0])
        .collect();
    sim.run_for(Duration::from_secs(1));
    for (k, &v) in [a, b].iter().enumerate() {
        assert!(
            sim.received(v, speaker)[0] > before[k] + 20,
            "audio flows again (viewer {k})"
        );
    }
    assert!(
        !sim.control(|e| e.hold(9999, MediaKind::Audio)),
        "unknown id"
    );
}
