//! Video of a participant the subscriber does not show (off its page) is not
//! forwarded, audio still is; it resumes with continuous sequence numbers
//! when it comes into view; a publisher nobody shows is told, and told
//! again when someone does.

mod common;

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use sfu::NoticeKind;

#[test]
fn off_screen_video_is_paused() {
    let mut sim = common::Sim::new(2);
    let publisher = sim.join("r", "presenter");
    let viewer = sim.join_viewer("r", "viewer");
    sim.run_for(Duration::from_secs(2));
    let pid = sim.clients[publisher].id;
    let vid = sim.clients[viewer].id;
    let stream = format!("p{pid}");
    assert!(sim.received(viewer, publisher)[1] > 20, "video flows");
    let wanted = |sim: &common::Sim| -> Vec<bool> {
        sim.clients[publisher]
            .notices
            .iter()
            .filter_map(|n| match n {
                NoticeKind::VideoWanted(w) => Some(*w),
                _ => None,
            })
            .collect()
    };
    assert!(wanted(&sim).is_empty(), "shown: nothing to say");

    // The presenter is off the viewer's page: its video stops, its audio does not.
    sim.control(|e| e.set_hidden(vid, HashSet::from([pid])));
    sim.run_for(Duration::from_millis(200));
    let before = sim.received(viewer, publisher);
    let last_seq = *sim.clients[viewer].video_seqs[&stream]
        .iter()
        .max()
        .unwrap();
    sim.run_for(Duration::from_secs(1));
    let during = sim.received(viewer, publisher);
    assert_eq!(during[1], before[1], "no video while off screen");
    assert!(during[0] > before[0] + 30, "audio still flows");
    let paused: u64 = sim.stats.iter().map(|s| s.rtp_paused.load(Relaxed)).sum();
    assert!(paused > 20, "paused packets are counted: {paused}");
    assert_eq!(
        wanted(&sim),
        vec![false],
        "nobody shows the presenter's camera"
    );

    // Back in view: video resumes, sequence numbers continue without a gap.
    sim.control(|e| e.set_hidden(vid, HashSet::new()));
    sim.run_for(Duration::from_millis(500));
    assert!(
        sim.received(viewer, publisher)[1] > during[1] + 5,
        "video again"
    );
    let seqs = &sim.clients[viewer].video_seqs[&stream];
    assert!(
        seqs.contains(&last_seq.wrapping_add(1)),
        "the stream continues at {} after {last_seq}",
        last_seq.wrapping_add(1)
    );
    assert_eq!(wanted(&sim), vec![false, true]);
    // The same view again changes nothing.
    sim.control(|e| e.set_hidden(vid, HashSet::from([999])));
    assert_eq!(wanted(&sim), vec![false, true]);
}
