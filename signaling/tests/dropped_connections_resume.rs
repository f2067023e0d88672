//! The real binary, on loopback: a participant whose connection drops
//! (no close frame) is shown as reconnecting, not gone, and comes back as
//! the same participant with its resume token; a closed tab (close 1001) is
//! gone at once; an unresumed participant leaves after the grace period.

mod common;

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use common::*;

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// Reads until a message matches `pred`, returning it and everything skipped.
async fn until(
    ws: &mut Ws,
    what: &str,
    secs: u64,
    pred: impl Fn(&Value) -> bool,
) -> (Value, Vec<Value>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut skipped = Vec::new();
    loop {
        let m = tokio::time::timeout_at(deadline, next_json(ws))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}; got {skipped:?}"))
            .unwrap_or_else(|| panic!("socket closed while waiting for {what}"));
        if pred(&m) {
            return (m, skipped);
        }
        skipped.push(m);
    }
}

async fn join(port: u16, room: &str, name: &str, resume: Option<&str>) -> (Ws, Value) {
    let mut ws = connect(port).await;
    let mut j = json!({"type": "join", "v": 1, "room": room, "name": name});
    if let Some(r) = resume {
        j["resume"] = json!(r);
    }
    send(&mut ws, j).await;
    let (w, _) = until(&mut ws, "welcome", 5, |m| m["type"] == "welcome").await;
    (ws, w)
}

fn updated(id: &str, reconnecting: bool) -> impl Fn(&Value) -> bool + '_ {
    move |m: &Value| {
        m["type"] == "participant_updated"
            && m["participant"]["id"] == id
            && m["participant"]["reconnecting"] == reconnecting
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_resume() {
    let server = start();
    let port = server.http;
    let (mut a, _) = join(port, "rc", "a", None).await;
    let (b, wb) = join(port, "rc", "b", None).await;
    let b_id = wb["participant_id"].as_str().unwrap().to_owned();
    let token = wb["resume_token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 32, "{wb}");
    assert_eq!(wb["resumed"], false);
    send(&mut a, json!({"type": "chat", "text": "before"})).await;

    // b's network drops: the TCP connection ends without a close frame.
    drop(b);
    let (_, skipped) = until(&mut a, "b reconnecting", 5, updated(&b_id, true)).await;
    assert!(!skipped.iter().any(|m| m["type"] == "participant_left"));

    // b comes back with its token: same id, the room's state, no leave seen by a.
    let t0 = Instant::now();
    let (mut b2, w2) = join(port, "rc", "b", Some(&token)).await;
    assert_eq!(w2["participant_id"], b_id.as_str(), "{w2}");
    assert_eq!(w2["resumed"], true);
    assert_eq!(w2["chat"][0]["text"], "before");
    assert_eq!(w2["participants"].as_array().unwrap().len(), 1);
    let (_, skipped) = until(&mut a, "b back", 5, updated(&b_id, false)).await;
    assert!(
        !skipped.iter().any(|m| m["type"] == "participant_left"),
        "{skipped:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
    // The resumed session works.
    send(&mut b2, json!({"type": "chat", "text": "back"})).await;
    until(&mut a, "b's chat", 5, |m| {
        m["type"] == "chat" && m["text"] == "back"
    })
    .await;

    // A token for another room, or a made-up one, is an ordinary join.
    let (_x, wx) = join(port, "other", "x", Some(&token)).await;
    assert_ne!(wx["participant_id"], b_id.as_str());
    let (_y, wy) = join(port, "rc", "y", Some("00112233445566778899aabbccddeeff")).await;
    assert_eq!(wy["resumed"], false);
    assert_ne!(wy["participant_id"], b_id.as_str());

    // A closed tab (close 1001) is gone at once, and its token is void.
    let t0 = Instant::now();
    b2.close(Some(CloseFrame {
        code: 1001.into(),
        reason: "".into(),
    }))
    .await
    .unwrap();
    until(&mut a, "b left", 5, |m| {
        m["type"] == "participant_left" && m["id"] == b_id.as_str()
    })
    .await;
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "gone within {:?}",
        t0.elapsed()
    );
    let (_b3, w3) = join(port, "rc", "b", Some(&token)).await;
    assert_eq!(w3["resumed"], false, "a token dies with its participant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresumed_participant_leaves_after_the_grace_period() {
    let server = start_with(&[("KAIGI_LIMITS__RECONNECT_GRACE_SECS", "1")]);
    let port = server.http;
    let (mut a, _) = join(port, "g", "a", None).await;
    let (b, wb) = join(port, "g", "b", None).await;
    let b_id = wb["participant_id"].as_str().unwrap().to_owned();
    let t0 = Instant::now();
    drop(b);
    until(&mut a, "b reconnecting", 5, updated(&b_id, true)).await;
    until(&mut a, "b left", 5, |m| {
        m["type"] == "participant_left" && m["id"] == b_id.as_str()
    })
    .await;
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
}
