//! The real binary, on loopback: malformed, oversized and out-of-order
//! signaling messages get clear errors or a close; garbage on the media port
//! is dropped and counted; and a well-behaved client still joins afterwards.

mod common;

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_counted() {
    let server = start();

    // Malformed and out-of-order messages: clear errors, connection stays open.
    let mut ws = connect(server.http).await;
    assert_eq!(
        code(&ask(&mut ws, "not json").await.unwrap()),
        "bad_request"
    );
    assert_eq!(
        code(&ask(&mut ws, r#"{"type":"fly"}"#).await.unwrap()),
        "bad_request"
    );
    assert_eq!(
        code(
            &ask(&mut ws, r#"{"type":"publish_offer","sdp":"x"}"#)
                .await
                .unwrap()
        ),
        "not_joined"
    );
    assert_eq!(
        code(
            &ask(&mut ws, r#"{"type":"join","room":"../etc","name":"a"}"#)
                .await
                .unwrap()
        ),
        "invalid_room"
    );
    assert_eq!(
        code(
            &ask(&mut ws, r#"{"type":"join","room":"ok","name":"   "}"#)
                .await
                .unwrap()
        ),
        "bad_request"
    );
    assert_eq!(
        code(
            &ask(&mut ws, r#"{"type":"join","v":9,"room":"ok","name":"a"}"#)
                .await
                .unwrap()
        ),
        "unsupported_version"
    );
    assert_eq!(
        code(
            &ask(
                &mut ws,
                r#"{"type":"join","room":"ok","name":"a","token":"abc"}"#
            )
            .await
            .unwrap()
        ),
        "unauthorized"
    );
    assert_eq!(
        ask(&mut ws, r#"{"type":"ping"}"#).await.unwrap()["type"],
        "pong"
    );
    // Joined, then a bad SDP: an error for this participant only.
    let welcome = ask(
        &mut ws,
        r#"{"type":"join","v":1,"room":"bad-input","name":"a"}"#,
    )
    .await
    .unwrap();
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(
        code(
            &ask(&mut ws, r#"{"type":"join","room":"bad-input","name":"a"}"#)
                .await
                .unwrap()
        ),
        "already_joined"
    );
    assert_eq!(
        code(
            &ask(&mut ws, r#"{"type":"publish_offer","sdp":"v=0 garbage"}"#)
                .await
                .unwrap()
        ),
        "bad_sdp"
    );
    assert_eq!(
        code(
            &ask(&mut ws, r#"{"type":"subscribe_answer","sdp":"v=0"}"#)
                .await
                .unwrap()
        ),
        "bad_request"
    );
    // Too many tile sizes in a view; sizes of strangers are ignored, not an error.
    let many: Vec<String> = (0..300).map(|i| format!(r#""p{i}":[320,180]"#)).collect();
    let view = format!(
        r#"{{"type":"view","hidden":[],"sizes":{{{}}}}}"#,
        many.join(",")
    );
    assert_eq!(code(&ask(&mut ws, &view).await.unwrap()), "bad_request");
    ws.send(Message::Text(
        r#"{"type":"view","hidden":[],"sizes":{"nobody":[1,1],"p999-screen":[99999,1]}}"#.into(),
    ))
    .await
    .unwrap();

    // A second participant sees the first.
    let mut ws2 = connect(server.http).await;
    let w2 = ask(
        &mut ws2,
        r#"{"type":"join","v":1,"room":"bad-input","name":"b"}"#,
    )
    .await
    .unwrap();
    assert_eq!(w2["participants"][0]["name"], "a");
    assert_eq!(
        next_json(&mut ws).await.unwrap()["type"],
        "participant_joined"
    );

    // Oversized message: the socket is closed; the other participant is told b left.
    let huge = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(200_000));
    let _ = ws2.send(Message::Text(huge.into())).await;
    assert!(
        next_json(&mut ws2).await.is_none(),
        "oversized frame closes the socket"
    );
    let left = next_json(&mut ws).await.unwrap();
    assert_eq!(left["type"], "participant_left", "{left}");

    // A flood of bad messages closes that connection (policy violation).
    let mut ws3 = connect(server.http).await;
    let mut closed = false;
    for _ in 0..20 {
        if ask(&mut ws3, "{").await.is_none() {
            closed = true;
            break;
        }
    }
    assert!(closed, "too many bad messages close the socket");

    // Garbage on the media port, UDP and TCP.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..500u32 {
        let mut junk = vec![(i % 256) as u8; (i as usize * 7) % 1400 + 1];
        junk[0] = [0u8, 1, 22, 0x80, 0x90, 0xff][i as usize % 6];
        udp.send_to(&junk, ("127.0.0.1", server.media)).unwrap();
        // Paced, so that the kernel's socket buffer never overflows: we count what kaigi saw.
        if i % 20 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    if let Ok(mut t) = TcpStream::connect(("127.0.0.1", server.media)) {
        let _ = t.write_all(&[0, 5, 1, 2, 3, 4, 5, 0xff, 0xff]);
    }
    // The first participant is still served.
    assert_eq!(
        ask(&mut ws, r#"{"type":"ping"}"#).await.unwrap()["type"],
        "pong"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = http_get(server.http, "/metrics").unwrap();
        let dropped = metric(&body, "kaigi_packets_dropped_total");
        if dropped >= 500 {
            assert!(metric(&body, "kaigi_ws_rejected_total") >= 10, "{body}");
            assert_eq!(metric(&body, "kaigi_participants "), 1, "{body}");
            // The workers' delay histogram is exported in the histogram form.
            assert!(
                body.contains("# TYPE kaigi_forward_delay_seconds histogram")
                    && body.contains("kaigi_forward_delay_seconds_bucket{le=\"0.002\"}")
                    && body.contains("kaigi_forward_delay_seconds_bucket{le=\"+Inf\"}"),
                "{body}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "garbage was not counted: {dropped}\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        http_get(server.http, "/healthz")
            .unwrap()
            .contains("200 OK")
    );
    assert!(
        http_get(server.http, "/r/..").unwrap().contains("400")
            || http_get(server.http, "/r/.x").unwrap().contains("400")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_flood_whep_or_the_websocket() {
    let s = start_with(&[
        ("KAIGI_LIMITS__OFFERS_PER_IP_PER_MINUTE", "6"),
        ("KAIGI_LIMITS__WS_CONNECTS_PER_IP_PER_MINUTE", "4"),
    ]);
    // Half a minute's worth at once (3), then 429 with Retry-After.
    let post = || {
        http_request(
            s.http,
            "POST",
            "/whep/flood",
            &[("Content-Type", "application/sdp")],
            b"v=0\r\n",
        )
    };
    let statuses: Vec<u16> = (0..5).map(|_| post().status).collect();
    assert!(statuses[..3].iter().all(|&c| c != 429), "{statuses:?}");
    assert_eq!(statuses[3..], [429, 429], "{statuses:?}");
    let r = post();
    assert!(r.header("retry-after").is_some());
    assert!(r.body.contains("too many requests"));
    // WebSocket connections: 2 at once, then refused.
    let url = format!("ws://127.0.0.1:{}/ws", s.http);
    let mut ok = Vec::new();
    for _ in 0..4 {
        ok.push(tokio_tungstenite::connect_async(url.as_str()).await.is_ok());
    }
    assert_eq!(ok, [true, true, false, false], "{ok:?}");
    let metrics = http_get(s.http, "/metrics").unwrap();
    assert!(metric(&metrics, "kaigi_rate_limited_total{what=\"whep\"}") >= 3);
    assert!(metric(&metrics, "kaigi_rate_limited_total{what=\"ws\"}") >= 2);
}
