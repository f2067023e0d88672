//! The real binary, on loopback: malformed, oversized and out-of-order
//! signaling messages get clear errors or a close; garbage on the media port
//! is dropped and counted; and a well-behaved client still joins afterwards.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

struct Server {
    child: Child,
    http: u16,
    media: u16,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    // Both UDP and TCP must be free for the media port.
    loop {
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[allow(clippy::zombie_processes)] // Server's Drop kills and waits.
fn start() -> Server {
    let dir = std::env::temp_dir().join(format!("kaigi-bad-input-{}", std::process::id()));
    let (http, media) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_kaigi"))
        .args(["--bind", "127.0.0.1", "--public-ip", "127.0.0.1"])
        .args([
            "--http-port",
            &http.to_string(),
            "--media-port",
            &media.to_string(),
        ])
        .arg("--data-dir")
        .arg(&dir)
        .env("KAIGI_SERVER__TLS", "false")
        .env("KAIGI_LIMITS__WS_MAX_BAD_MESSAGES", "10")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kaigi starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if http_get(http, "/healthz").is_some_and(|r| r.contains("200 OK")) {
            return Server {
                child,
                http,
                media,
                _dir: TempDir(dir),
            };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("kaigi did not become healthy");
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(port: u16) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
        .await
        .expect("websocket");
    ws
}

/// Sends a text frame and returns the next JSON reply (or None if the socket closed).
async fn ask(ws: &mut Ws, text: &str) -> Option<serde_json::Value> {
    ws.send(Message::Text(text.into())).await.ok()?;
    next_json(ws).await
}

async fn next_json(ws: &mut Ws) -> Option<serde_json::Value> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .ok()??;
        match m.ok()? {
            Message::Text(t) => return Some(serde_json::from_str(&t).expect("server sends JSON")),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

fn code(v: &serde_json::Value) -> &str {
    assert_eq!(v["type"], "error", "{v}");
    v["code"].as_str().unwrap()
}

fn metric(body: &str, name: &str) -> u64 {
    body.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

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
