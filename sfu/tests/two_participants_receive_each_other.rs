//! Two clients in a room, on one worker: each receives the other's audio and
//! video through the SFU core, with simulated time and network.

mod common;

use std::time::Duration;

#[test]
fn two_participants_receive_each_other() {
    let mut sim = common::Sim::new(1);
    let a = sim.join("room-1", "a");
    let b = sim.join("room-1", "b");
    sim.run_for(Duration::from_secs(5));
    let [audio_ab, video_ab] = sim.received(b, a);
    let [audio_ba, video_ba] = sim.received(a, b);
    assert!(
        audio_ab > 50 && video_ab > 30,
        "b got from a: {audio_ab} audio, {video_ab} video"
    );
    assert!(
        audio_ba > 50 && video_ba > 30,
        "a got from b: {audio_ba} audio, {video_ba} video"
    );
    // Nobody receives their own media.
    assert_eq!(sim.received(a, a), [0, 0]);
}
