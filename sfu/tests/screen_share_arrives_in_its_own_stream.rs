//! A track its publisher declared as a screen share reaches subscribers in
//! the stream `p<id>-screen` (docs/protocol.md), so that pages can show it
//! large; the publisher's other tracks stay in `p<id>`; the engine's
//! sharing flag reaches the room.

mod common;

use std::time::Duration;

use sfu::NoticeKind;

#[test]
fn screen_share_arrives_in_its_own_stream() {
    let mut sim = common::Sim::new(2);
    let presenter = sim.join_sharing_screen("r", "presenter");
    let viewer = sim.join_viewer("r", "viewer");
    let camera = sim.join("r", "camera");
    sim.run_for(Duration::from_secs(2));
    let id = sim.clients[presenter].id;
    let received = |sim: &common::Sim, stream: &str| {
        sim.clients[viewer]
            .received
            .get(stream)
            .copied()
            .unwrap_or_default()
    };
    let screen = received(&sim, &format!("p{id}-screen"));
    let main = received(&sim, &format!("p{id}"));
    assert!(
        screen[1] > 20,
        "screen video arrives in p{id}-screen: {screen:?}"
    );
    assert_eq!(screen[0], 0, "no audio in the screen stream");
    assert!(
        main[0] > 20,
        "the presenter's audio stays in p{id}: {main:?}"
    );
    assert_eq!(main[1], 0, "its screen is not in p{id}");
    // An ordinary camera stays in its participant's stream.
    let cam_id = sim.clients[camera].id;
    assert!(received(&sim, &format!("p{cam_id}"))[1] > 20);
    assert!(received(&sim, &format!("p{cam_id}-screen")) == [0, 0]);

    sim.control(|e| e.set_sharing(id, true));
    assert!(sim.clients[viewer].notices.iter().any(|n| matches!(n,
        NoticeKind::ParticipantUpdated(i) if i.id == id && i.sharing)));
}
