//! SIGTERM drains: /readyz fails at once, new joins (and WHIP/WHEP) are
//! refused with a clear message, the running meeting goes on, and the
//! server stops once it ends (or when the grace time is up).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn wait_exit(s: &mut Server, within: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if s.exited() {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_stops_when_the_meeting_ends() {
    let mut s = start_with(&[("KAIGI_SERVER__DRAIN_SECS", "20")]);
    let port = s.http;
    let mut a = connect(port).await;
    let w = ask(
        &mut a,
        &json!({"type": "join", "v": 1, "room": "drain", "name": "A"}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(w["type"], "welcome");
    assert!(http_get(port, "/readyz").unwrap().contains("200 OK"));

    s.signal(libc::SIGTERM);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        http_get(port, "/readyz").unwrap().contains("503"),
        "not ready while draining"
    );
    // A new join is refused with a reason; the meeting in progress goes on.
    let mut b = connect(port).await;
    let r = ask(
        &mut b,
        &json!({"type": "join", "v": 1, "room": "drain", "name": "B"}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(code(&r), "server_busy");
    assert!(r["message"].as_str().unwrap().contains("shutting down"));
    let r = http_request(
        port,
        "POST",
        "/whep/drain",
        &[("Content-Type", "application/sdp")],
        b"v=0\r\n",
    );
    assert_eq!(r.status, 503, "{}", r.body);
    let pong = ask(&mut a, r#"{"type":"ping"}"#).await.unwrap();
    assert_eq!(pong["type"], "pong", "the running meeting is still served");
    assert!(!s.exited());

    // The last one leaves: the server stops soon after.
    let _ = ask(&mut a, r#"{"type":"leave"}"#).await;
    let took = wait_exit(&mut s, Duration::from_secs(8)).expect("stops once the meeting ended");
    assert!(
        took < Duration::from_secs(5),
        "stopped {took:?} after the last leave"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_time_bounds_the_drain() {
    let mut s = start_with(&[("KAIGI_SERVER__DRAIN_SECS", "2")]);
    let mut a = connect(s.http).await;
    let w = ask(
        &mut a,
        &json!({"type": "join", "v": 1, "room": "stay", "name": "A"}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(w["type"], "welcome");
    s.signal(libc::SIGTERM);
    let took = wait_exit(&mut s, Duration::from_secs(10)).expect("stops after the grace time");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "{took:?}"
    );
}
