//! Shared by the signaling tests: the real binary on loopback (plain HTTP),
//! WebSocket clients, metrics scraping.
#![allow(dead_code)] // each test uses a part

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

pub struct Server {
    child: Child,
    pub http: u16,
    pub media: u16,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Server {
    /// Sends the server a signal (e.g. `libc::SIGTERM`).
    #[allow(dead_code)]
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Whether the server has exited (without waiting).
    #[allow(dead_code)]
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    // Both UDP and TCP must be free for the media port.
    loop {
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[allow(clippy::zombie_processes)] // Server's Drop kills and waits.
pub fn start() -> Server {
    start_with(&[])
}

/// [`start`] with extra environment (configuration overrides).
pub fn start_with(env: &[(&str, &str)]) -> Server {
    start_with_config("", env)
}

/// A fresh folder under the system's temporary one, removed on drop.
pub fn temp_dir(what: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("kaigi-{what}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// [`start`] with a configuration file (TOML text) and extra environment.
pub fn start_with_config(toml: &str, env: &[(&str, &str)]) -> Server {
    start_on(free_port(), free_port(), toml, env)
}

/// [`start_with_config`] on given ports (a cluster node's configuration names its own URL).
#[allow(clippy::zombie_processes)] // Server's Drop kills and waits.
pub fn start_on(http: u16, media: u16, toml: &str, env: &[(&str, &str)]) -> Server {
    let dir = temp_dir("test");
    let config = dir.join("kaigi.toml");
    std::fs::write(&config, toml).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_kaigi"))
        .arg("--config")
        .arg(&config)
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
        .envs(env.iter().copied())
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

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket with extra request headers (a session cookie).
pub async fn connect_with(port: u16, headers: &[(&str, &str)]) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://127.0.0.1:{port}/ws")
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket")
        .0
}

pub async fn connect(port: u16) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
        .await
        .expect("websocket");
    ws
}

/// Sends a text frame and returns the next JSON reply (or None if the socket closed).
pub async fn ask(ws: &mut Ws, text: &str) -> Option<serde_json::Value> {
    ws.send(Message::Text(text.into())).await.ok()?;
    next_json(ws).await
}

pub async fn next_json(ws: &mut Ws) -> Option<serde_json::Value> {
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

pub fn code(v: &serde_json::Value) -> &str {
    assert_eq!(v["type"], "error", "{v}");
    v["code"].as_str().unwrap()
}

pub fn metric(body: &str, name: &str) -> u64 {
    body.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// An HTTP/1.0 response: status, headers (lower-case names), body.
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One plain HTTP/1.0 request to the server on loopback.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // A refused oversized body may close the socket before it is all written.
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}
