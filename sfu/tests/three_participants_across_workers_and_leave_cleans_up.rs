//! Three clients spread over two workers: everyone receives everyone else;
//! when one leaves, its subscriptions and tracks are gone everywhere and the
//! other two keep receiving each other.

mod common;

use std::time::Duration;

use sfu::NoticeKind;

#[test]
fn three_participants_across_workers_and_leave_cleans_up() {
    let mut sim = common::Sim::new(2);
    let a = sim.join("r", "a");
    let b = sim.join("r", "b");
    let c = sim.join("r", "c");
    assert_ne!(
        sim.engine.worker_of(sim.clients[a].id),
        sim.engine.worker_of(sim.clients[b].id)
    );
    sim.run_for(Duration::from_secs(5));
    for (to, from) in [(a, b), (a, c), (b, a), (b, c), (c, a), (c, b)] {
        let [audio, video] = sim.received(to, from);
        assert!(
            audio > 40 && video > 20,
            "{to} from {from}: {audio} audio, {video} video"
        );
    }
    let subs_before: usize = sim.workers.iter().map(|w| w.subscription_count()).sum();
    assert_eq!(subs_before, 12, "3 participants × 2 others × 2 tracks");

    sim.leave(c);
    sim.run_for(Duration::from_millis(500));
    let subs_after: usize = sim.workers.iter().map(|w| w.subscription_count()).sum();
    assert_eq!(
        subs_after, 4,
        "a and b subscribe to each other's 2 tracks only"
    );
    assert_eq!(sim.engine.track_count(), 4);
    assert_eq!(sim.engine.participant_count(), 2);
    let participants: usize = sim.workers.iter().map(|w| w.participant_count()).sum();
    assert_eq!(participants, 2);
    let c_id = sim.clients[c].id;
    for i in [a, b] {
        assert!(
            sim.clients[i]
                .notices
                .contains(&NoticeKind::ParticipantLeft(c_id)),
            "client {i} was told that c left"
        );
    }

    let before = [sim.received(a, b), sim.received(b, a)];
    sim.run_for(Duration::from_secs(2));
    let after = [sim.received(a, b), sim.received(b, a)];
    for k in 0..2 {
        assert!(
            after[k][0] > before[k][0] + 50,
            "audio keeps flowing after the leave"
        );
        assert!(
            after[k][1] > before[k][1] + 30,
            "video keeps flowing after the leave"
        );
    }
}
