//! Two kaigi nodes sharing a room directory in a real Redis (Debian's
//! redis-server, started here on loopback): a room is homed where it was
//! opened and the other node sends joins, pages and WHEP offers there; a
//! node that dies (SIGKILL) loses its rooms to the next node asked within
//! the heartbeat's time to live; Redis stopped: meetings go on and new
//! rooms are served where they are asked for; Redis back: recorded again.
//!
//! `scripts/test.sh` installs redis-server; without it this test fails and says so.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const REDIS: &str = "/usr/bin/redis-server";
const ADMIN_KEY: &str = "cluster-test-admin-key-0123";

struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    #[allow(clippy::zombie_processes)] // Drop kills and waits.
    fn start(port: u16) -> Redis {
        assert!(
            Path::new(REDIS).exists(),
            "{REDIS} is missing: apt-get install redis-server (scripts/test.sh does)"
        );
        let child = Command::new(REDIS)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child, port }
    }

    fn get(&self, key: &str) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "GET", key])
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn node(id: &str, redis: u16) -> (Server, String) {
    node_at(id, "honcho", redis)
}

fn node_at(id: &str, site: &str, redis: u16) -> (Server, String) {
    let (http, media) = (free_port(), free_port());
    let url = format!("http://127.0.0.1:{http}");
    let toml = format!(
        "[auth]\ntoken_secret = \"cluster-test-secret-shared-0123456789\"\n\
         [cluster]\nredis_url = \"redis://127.0.0.1:{redis}/0\"\nnode_id = \"{id}\"\nsite = \"{site}\"\nurl = \"{url}\"\nheartbeat_secs = 1\n\
         [cluster.subnets]\n\"10.20.0.0/16\" = \"kita\"\n[admin]\napi_key = \"{ADMIN_KEY}\"\n"
    );
    (start_on(http, media, &toml, &[]), url)
}

async fn join(port: u16, room: &str, name: &str) -> (Ws, Value) {
    let mut ws = connect(port).await;
    let v = ask(
        &mut ws,
        &json!({"type": "join", "v": 1, "room": room, "name": name}).to_string(),
    )
    .await
    .unwrap();
    (ws, v)
}

/// Waits until `f` holds, up to `secs`; gives how long it took.
async fn within(secs: u64, what: &str, mut f: impl AsyncFnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f().await {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t0.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_homed_routed_and_taken_over() {
    let mut redis = Redis::start(free_port());
    let (mut a, a_url) = node("node-a", redis.port);
    let (b, b_url) = node("node-b", redis.port);

    // Both register.
    within(5, "both nodes in the registry", async || {
        redis.get("kaigi:node:node-a").contains(&a_url)
            && redis.get("kaigi:node:node-b").contains(&b_url)
    })
    .await;

    // The admin API says which node this is, that Redis answers, and whom it knows.
    within(5, "B knows A", async || {
        let h = http_request(
            b.http,
            "GET",
            "/api/health",
            &[("Authorization", &format!("Bearer {ADMIN_KEY}"))],
            b"",
        );
        let h: Value = serde_json::from_str(&h.body).unwrap_or(Value::Null);
        h["cluster"]["node"] == "node-b"
            && h["cluster"]["redis"] == "up"
            && h["cluster"]["other_nodes"] == json!([a_url.clone()])
    })
    .await;
    // A room opened on A is homed on A.
    let (mut on_a, w) = join(a.http, "soumu", "Aoki").await;
    assert_eq!(w["type"], "welcome", "{w}");
    assert_eq!(redis.get("kaigi:room:soumu"), "node-a");

    // B sends the meeting there: the socket and the meeting page.
    let (_, r) = join(b.http, "soumu", "Baba").await;
    assert_eq!(
        r,
        json!({"type": "redirect", "url": format!("{a_url}/r/soumu")})
    );
    let page = http_request(b.http, "GET", "/r/soumu?token=abc", &[], b"");
    assert_eq!(page.status, 307);
    assert_eq!(
        page.header("location"),
        Some(format!("{a_url}/r/soumu?token=abc").as_str())
    );
    // Its viewers B serves itself, relaying from A: nothing is broadcast
    // there, so the relay does not start (counted) and WHEP says not live.
    let watch = http_request(b.http, "GET", "/watch/soumu", &[], b"");
    assert_eq!(watch.status, 200);
    let whep = http_request(
        b.http,
        "POST",
        "/whep/soumu",
        &[("Content-Type", "application/sdp")],
        b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
    );
    assert_eq!(whep.status, 404, "{}", whep.body);
    let m = http_get(b.http, "/metrics").unwrap_or_default();
    assert!(
        metric(&m, "kaigi_relay_failures_total{reason=\"not_live\"}") >= 1,
        "{m}"
    );
    // A viewer asking about a room that is homed nowhere does not make it B's.
    let status = http_request(b.http, "GET", "/watch/kokai/status", &[], b"");
    assert_eq!(status.status, 200);
    assert!(redis.get("kaigi:room:kokai").is_empty());
    // A viewer of another site is sent to that site's node: by ?site=, and
    // the WHEP offer too (a relay from another node is served where it asks).
    let (_c, c_url) = node_at("node-c", "kita", redis.port);
    within(5, "A knows C", async || {
        http_request(a.http, "GET", "/watch/soumu?site=kita", &[], b"").status == 307
    })
    .await;
    let to_c = http_request(a.http, "GET", "/watch/soumu?site=kita", &[], b"");
    assert_eq!(
        to_c.header("location"),
        Some(format!("{c_url}/watch/soumu?site=kita").as_str())
    );
    let whep = http_request(
        a.http,
        "POST",
        "/whep/soumu?site=kita",
        &[("Content-Type", "application/sdp")],
        b"v=0\r\n",
    );
    assert_eq!(whep.status, 307);
    let relayed = http_request(
        a.http,
        "GET",
        "/watch/soumu?site=kita&relay=node-c",
        &[],
        b"",
    );
    assert_eq!(relayed.status, 200);
    // A room B opens is B's; A sends there.
    let (_b_room, w) = join(b.http, "jinji", "Baba").await;
    assert_eq!(w["type"], "welcome");
    let (_, r) = join(a.http, "jinji", "Aoki").await;
    assert_eq!(r["url"], format!("{b_url}/r/jinji"));

    // A dies without a word: within the time to live (3 heartbeats = 3 s) B
    // takes the room on the next join, and the registry no longer names A.
    a.signal(libc::SIGKILL);
    let _ = on_a.close(None).await;
    let killed = Instant::now();
    let took = within(8, "B takes over A's room", async || {
        let (_, v) = join(b.http, "soumu", "Baba").await;
        v["type"] == "welcome"
    })
    .await;
    assert!(redis.get("kaigi:node:node-a").is_empty());
    assert_eq!(redis.get("kaigi:room:soumu"), "node-b");
    eprintln!(
        "cluster: a room of a killed node taken over after {:.1} s",
        killed.elapsed().as_secs_f64()
    );
    assert!(took <= Duration::from_secs(5), "takeover took {took:?}");
    assert!(a.exited());

    // Redis goes away: B's meeting goes on (the socket answers), and a new
    // room is served here rather than refused.
    let (mut kept, w) = join(b.http, "kaiken", "Chiba").await;
    assert_eq!(w["type"], "welcome");
    let port = redis.port;
    redis.stop();
    let (_, w) = join(b.http, "tokei", "Doi").await;
    assert_eq!(w["type"], "welcome", "{w}");
    let pong = ask(&mut kept, r#"{"type":"ping"}"#).await.unwrap();
    assert_eq!(pong["type"], "pong");
    within(5, "redis_up reads 0", async || {
        metric(
            &http_get(b.http, "/metrics").unwrap(),
            "kaigi_cluster_redis_up",
        ) == 0
    })
    .await;

    // Redis returns (empty, as after a restart): B registers again and
    // records the rooms it kept serving, the one opened meanwhile included.
    let redis = Redis::start(port);
    within(8, "B and its rooms recorded again", async || {
        let (n, t, k) = (
            redis.get("kaigi:node:node-b"),
            redis.get("kaigi:room:tokei"),
            redis.get("kaigi:room:kaiken"),
        );
        eprintln!("registry: node-b {n:?}, tokei {t:?}, kaiken {k:?}");
        n.contains(&b_url) && t == "node-b" && k == "node-b"
    })
    .await;
    let m = http_get(b.http, "/metrics").unwrap();
    assert_eq!(metric(&m, "kaigi_cluster_redis_up"), 1);
    assert!(metric(&m, "kaigi_cluster_redirects_total{kind=\"ws\"}") >= 1);
    drop(b);
}
