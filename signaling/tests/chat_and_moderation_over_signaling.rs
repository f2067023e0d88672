//! The real binary, on loopback, with WebSocket clients: chat with history
//! for late joiners, raised hands, and a moderator's powers (mute enforced
//! by the server, remove, lock, waiting room, end), refused to anyone else;
//! chat floods are rate-limited without disturbing the others.

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use common::*;

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// Reads until a message matches `pred` (others are skipped); panics after 5 s.
async fn expect(ws: &mut Ws, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let m = tokio::time::timeout_at(deadline, next_json(ws))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap_or_else(|| panic!("socket closed while waiting for {what}"));
        if pred(&m) {
            return m;
        }
    }
}

async fn of_type(ws: &mut Ws, t: &str) -> Value {
    expect(ws, t, |m| m["type"] == t).await
}

/// Whether the server closes the socket within 5 s (skipping messages).
async fn closes(ws: &mut Ws) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
}

async fn join(port: u16, room: &str, name: &str) -> (Ws, Value) {
    let mut ws = connect(port).await;
    send(
        &mut ws,
        json!({"type": "join", "v": 1, "room": room, "name": name}),
    )
    .await;
    let w = of_type(&mut ws, "welcome").await;
    (ws, w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_and_moderation_over_signaling() {
    let server = start();
    let port = server.http;

    // The first one in moderates; the next does not, and sees who does.
    let (mut a, wa) = join(port, "m", "a").await;
    assert_eq!(wa["moderator"], true, "{wa}");
    assert_eq!(wa["chat"], json!([]));
    assert_eq!(
        wa["room_state"],
        json!({"locked": false, "lobby": false, "multiple_shares": false})
    );
    let a_id = wa["participant_id"].as_str().unwrap().to_owned();
    let (mut b, wb) = join(port, "m", "b").await;
    assert_eq!(wb["moderator"], false);
    assert_eq!(wb["participants"][0]["moderator"], true, "{wb}");
    let b_id = wb["participant_id"].as_str().unwrap().to_owned();

    // Chat reaches everyone, text untouched (clients render it as text).
    let text = "<img src=x onerror=alert(1)> こんにちは";
    send(&mut a, json!({"type": "chat", "text": text})).await;
    for ws in [&mut a, &mut b] {
        let c = of_type(ws, "chat").await;
        assert_eq!(c["text"], text);
        assert_eq!(c["name"], "a");
        assert_eq!(c["from"], a_id.as_str());
        assert!(c["ts"].as_u64().unwrap() > 1_700_000_000_000);
    }
    // A late joiner gets the history.
    let (mut c, wc) = join(port, "m", "c").await;
    assert_eq!(wc["chat"][0]["text"], text, "{wc}");
    let c_id = wc["participant_id"].as_str().unwrap().to_owned();

    // Too long, empty: refused with a reason.
    send(&mut b, json!({"type": "chat", "text": "あ".repeat(2001)})).await;
    assert_eq!(of_type(&mut b, "error").await["code"], "bad_request");
    send(&mut b, json!({"type": "chat", "text": " \n "})).await;
    assert_eq!(of_type(&mut b, "error").await["code"], "bad_request");

    // A flood from b: 5 go through, the rest are refused; a still gets chat from c.
    for i in 0..12 {
        send(
            &mut b,
            json!({"type": "chat", "text": format!("flood {i}")}),
        )
        .await;
    }
    let mut limited = 0;
    for _ in 0..7 {
        let e = of_type(&mut b, "error").await;
        assert_eq!(e["code"], "rate_limited", "{e}");
        limited += 1;
    }
    assert_eq!(limited, 7);
    send(&mut c, json!({"type": "chat", "text": "still here"})).await;
    let mut floods = 0;
    loop {
        let m = of_type(&mut a, "chat").await;
        if m["text"] == "still here" {
            break;
        }
        floods += 1;
    }
    assert_eq!(floods, 5, "only the first five of the flood were delivered");

    // Moderator actions from a non-moderator are refused.
    send(
        &mut b,
        json!({"type": "moderate", "action": "mute", "target": a_id, "kind": "audio"}),
    )
    .await;
    assert_eq!(of_type(&mut b, "error").await["code"], "forbidden");
    send(&mut c, json!({"type": "moderate", "action": "end"})).await;
    assert_eq!(of_type(&mut c, "error").await["code"], "forbidden");
    // An unknown target is a clear error.
    send(
        &mut a,
        json!({"type": "moderate", "action": "remove", "target": "p999"}),
    )
    .await;
    assert_eq!(of_type(&mut a, "error").await["code"], "not_found");

    // The moderator mutes b: b is told, everyone sees b muted.
    send(
        &mut a,
        json!({"type": "moderate", "action": "mute", "target": b_id, "kind": "audio"}),
    )
    .await;
    let m = of_type(&mut b, "muted_by_moderator").await;
    assert_eq!(
        m,
        json!({"type": "muted_by_moderator", "kind": "audio", "by": "a"})
    );
    for ws in [&mut a, &mut c] {
        expect(ws, "b muted", |m| {
            m["type"] == "participant_updated"
                && m["participant"]["id"] == b_id.as_str()
                && m["participant"]["audio_muted"] == true
        })
        .await;
    }

    // A raised hand is seen by all.
    send(&mut c, json!({"type": "hand", "raised": true})).await;
    for ws in [&mut a, &mut b] {
        expect(ws, "c's hand", |m| {
            m["type"] == "participant_updated"
                && m["participant"]["id"] == c_id.as_str()
                && m["participant"]["hand_raised"] == true
        })
        .await;
    }

    // Locked: nobody new gets in.
    send(
        &mut a,
        json!({"type": "moderate", "action": "lock", "locked": true}),
    )
    .await;
    assert_eq!(of_type(&mut b, "room_state").await["locked"], true);
    let mut d = connect(port).await;
    send(&mut d, json!({"type": "join", "room": "m", "name": "d"})).await;
    assert_eq!(of_type(&mut d, "error").await["code"], "room_locked");
    send(
        &mut a,
        json!({"type": "moderate", "action": "lock", "locked": false}),
    )
    .await;
    assert_eq!(of_type(&mut b, "room_state").await["locked"], false);

    // Waiting room: d waits, the moderator is asked and admits; e is turned away.
    send(
        &mut a,
        json!({"type": "moderate", "action": "lobby", "enabled": true}),
    )
    .await;
    expect(&mut a, "lobby on", |m| {
        m["type"] == "room_state" && m["lobby"] == true
    })
    .await;
    send(&mut d, json!({"type": "join", "room": "m", "name": "d"})).await;
    of_type(&mut d, "lobby_waiting").await;
    let req = of_type(&mut a, "lobby_request").await;
    assert_eq!(req["name"], "d");
    let l_d = req["id"].as_str().unwrap().to_owned();
    send(&mut d, json!({"type": "chat", "text": "let me in"})).await;
    assert_eq!(of_type(&mut d, "error").await["code"], "not_joined");
    send(
        &mut a,
        json!({"type": "moderate", "action": "admit", "target": l_d}),
    )
    .await;
    let wd = of_type(&mut d, "welcome").await;
    assert_eq!(wd["participants"].as_array().unwrap().len(), 3, "{wd}");
    assert_eq!(of_type(&mut a, "lobby_left").await["id"], l_d.as_str());
    let (mut e, _) = {
        let mut e = connect(port).await;
        send(&mut e, json!({"type": "join", "room": "m", "name": "e"})).await;
        of_type(&mut e, "lobby_waiting").await;
        (e, ())
    };
    let l_e = of_type(&mut a, "lobby_request").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    send(
        &mut a,
        json!({"type": "moderate", "action": "deny", "target": l_e}),
    )
    .await;
    of_type(&mut e, "lobby_denied").await;
    assert!(closes(&mut e).await, "a denied joiner is disconnected");

    // Removed: c is told and disconnected; the others see c leave.
    send(
        &mut a,
        json!({"type": "moderate", "action": "remove", "target": c_id}),
    )
    .await;
    assert_eq!(of_type(&mut c, "removed").await["by"], "a");
    assert!(closes(&mut c).await);
    expect(&mut b, "c left", |m| {
        m["type"] == "participant_left" && m["id"] == c_id.as_str()
    })
    .await;

    // The end: everyone is told and disconnected.
    send(&mut a, json!({"type": "moderate", "action": "end"})).await;
    for ws in [&mut a, &mut b, &mut d] {
        assert_eq!(of_type(ws, "meeting_ended").await["by"], "a");
        assert!(closes(ws).await);
    }

    // The room starts afresh: no history, a new moderator.
    let (_f, wf) = join(port, "m", "f").await;
    assert_eq!(wf["chat"], json!([]));
    assert_eq!(wf["moderator"], true);

    // A moderator who leaves hands over to the earliest joiner left.
    let (mut x, _) = join(port, "h", "x").await;
    let (mut y, wy) = join(port, "h", "y").await;
    let y_id = wy["participant_id"].as_str().unwrap().to_owned();
    send(&mut x, json!({"type": "leave"})).await;
    expect(&mut y, "y moderates", |m| {
        m["type"] == "participant_updated"
            && m["participant"]["id"] == y_id.as_str()
            && m["participant"]["moderator"] == true
    })
    .await;
    send(
        &mut y,
        json!({"type": "moderate", "action": "lock", "locked": true}),
    )
    .await;
    assert_eq!(of_type(&mut y, "room_state").await["locked"], true);

    let body = http_get(port, "/metrics").unwrap();
    assert!(
        metric(&body, "kaigi_ws_rejected_total{reason=\"rate_limited\"}") >= 7,
        "{body}"
    );
    assert!(
        metric(&body, "kaigi_ws_rejected_total{reason=\"forbidden\"}") >= 2,
        "{body}"
    );
    assert!(
        metric(&body, "kaigi_joins_total{result=\"room_locked\"}") >= 1,
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screen_share_is_one_at_a_time_unless_allowed() {
    let server = start();
    let port = server.http;
    let (mut a, wa) = join(port, "s", "a").await;
    let a_id = wa["participant_id"].as_str().unwrap().to_owned();
    let (mut b, wb) = join(port, "s", "b").await;
    let b_id = wb["participant_id"].as_str().unwrap().to_owned();
    let sharing = |id: String| {
        move |m: &Value| {
            m["type"] == "participant_updated"
                && m["participant"]["id"] == id.as_str()
                && m["participant"]["sharing"] == true
        }
    };

    // b shares; everyone, b included, sees it.
    send(&mut b, json!({"type": "share", "on": true})).await;
    expect(&mut a, "b sharing", sharing(b_id.clone())).await;
    expect(&mut b, "b sharing (own)", sharing(b_id.clone())).await;
    // a second share is refused while b shares...
    send(&mut a, json!({"type": "share", "on": true})).await;
    let e = of_type(&mut a, "error").await;
    assert_eq!(e["code"], "share_busy", "{e}");
    assert!(e["message"].as_str().unwrap().contains('b'));
    // ...until the moderator allows more than one.
    send(
        &mut a,
        json!({"type": "moderate", "action": "allow_shares", "allowed": true}),
    )
    .await;
    expect(&mut b, "multiple shares", |m| {
        m["type"] == "room_state" && m["multiple_shares"] == true
    })
    .await;
    send(&mut a, json!({"type": "share", "on": true})).await;
    expect(&mut b, "a sharing", sharing(a_id.clone())).await;
    // Stopping is always allowed.
    send(&mut b, json!({"type": "share", "on": false})).await;
    expect(&mut a, "b stopped", |m| {
        m["type"] == "participant_updated"
            && m["participant"]["id"] == b_id.as_str()
            && m["participant"]["sharing"] == false
    })
    .await;

    // Track sources: bounded, well-formed.
    let many: serde_json::Map<String, Value> =
        (0..9).map(|i| (format!("t{i}"), json!("screen"))).collect();
    send(
        &mut a,
        json!({"type": "publish_offer", "sdp": "v=0", "sources": many}),
    )
    .await;
    assert_eq!(of_type(&mut a, "error").await["code"], "bad_request");
    send(
        &mut a,
        json!({"type": "publish_offer", "sdp": "v=0", "sources": {"t": "hologram"}}),
    )
    .await;
    assert_eq!(of_type(&mut a, "error").await["code"], "bad_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderator_chooses_who_is_on_air() {
    let server = start();
    let port = server.http;
    let (mut a, wa) = join(port, "onair", "moderator").await;
    let a_id = wa["participant_id"].as_str().unwrap().to_owned();
    let (mut b, wb) = join(port, "onair", "interpreter").await;
    let b_id = wb["participant_id"].as_str().unwrap().to_owned();

    // Not a moderator: refused.
    send(
        &mut b,
        json!({"type": "moderate", "action": "set_live", "target": b_id}),
    )
    .await;
    assert_eq!(of_type(&mut b, "error").await["code"], "forbidden");
    // Someone not in the room: not found.
    send(
        &mut a,
        json!({"type": "moderate", "action": "set_live", "target": "p99999"}),
    )
    .await;
    assert_eq!(of_type(&mut a, "error").await["code"], "not_found");

    send(
        &mut a,
        json!({"type": "moderate", "action": "set_live", "target": b_id}),
    )
    .await;
    for ws in [&mut a, &mut b] {
        let m = of_type(ws, "live").await;
        assert_eq!(m["id"], b_id.as_str());
    }
    // The moderator as the main picture, the interpreter as a second one.
    send(
        &mut a,
        json!({"type": "moderate", "action": "set_live", "targets": [b_id, "p0"]}),
    )
    .await;
    assert_eq!(of_type(&mut a, "error").await["code"], "not_found");
    let list = json!({"type": "moderate", "action": "set_live", "targets": [a_id, b_id]});
    send(&mut a, list).await;
    let m = of_type(&mut a, "live").await;
    assert_eq!(m["ids"], json!([a_id, b_id]), "{m}");
    assert_eq!(m["id"], a_id.as_str());
    assert_eq!(of_type(&mut b, "live").await["ids"][1], b_id.as_str());
    let too_many = json!({"type": "moderate", "action": "set_live", "targets": [a_id, b_id, a_id, b_id, a_id]});
    send(&mut a, too_many).await;
    assert_eq!(of_type(&mut a, "error").await["code"], "bad_request");
    // Back to the default.
    send(
        &mut a,
        json!({"type": "moderate", "action": "set_live", "target": null}),
    )
    .await;
    for ws in [&mut a, &mut b] {
        assert_eq!(of_type(ws, "live").await["id"], Value::Null);
    }
    // The live presenter leaving puts viewers back on the default too.
    send(
        &mut a,
        json!({"type": "moderate", "action": "set_live", "target": b_id}),
    )
    .await;
    assert_eq!(of_type(&mut a, "live").await["id"], b_id.as_str());
    send(&mut b, json!({"type": "leave"})).await;
    assert_eq!(of_type(&mut a, "live").await["id"], Value::Null);
}
