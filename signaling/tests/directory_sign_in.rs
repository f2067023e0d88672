//! Staff directory sign-in against a real OpenLDAP (Debian's `slapd`,
//! started here on loopback with a test directory): the right password
//! signs in and the meeting shows the directory's name, group members
//! moderate or may broadcast, a directory room lets only signed-in staff
//! in, and wrong passwords, empty passwords, filter injection, forged
//! cookies and a directory that is down are refused, each in its own way.
//!
//! `scripts/test.sh` installs slapd; without it this test fails and says so.
//! The directory's people and groups: tests/ldap/directory.ldif.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const BASE: &str = "dc=pref,dc=example";

/// The test directory (tests/ldap/directory.ldif) served by tests/ldap/slapd.sh.
struct Slapd {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_slapd() -> Slapd {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ldap/slapd.sh");
    let dir = temp_dir("slapd");
    let port = free_port();
    let mut child = Command::new("bash")
        .arg(&script)
        .arg(&dir)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs tests/ldap/slapd.sh");
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
            panic!("tests/ldap/slapd.sh exited ({status}): {err}");
        }
        assert!(Instant::now() < deadline, "slapd did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Slapd { child, port, dir }
}

fn login(port: u16, user: &str, password: &str) -> HttpResponse {
    http_request(
        port,
        "POST",
        "/api/login",
        &[("Content-Type", "application/json")],
        json!({"user": user, "password": password})
            .to_string()
            .as_bytes(),
    )
}

/// The `name=value` of a Set-Cookie, for sending back.
fn cookie_of(r: &HttpResponse) -> String {
    let c = r.header("set-cookie").expect("a session cookie");
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(c.contains(flag), "{c}");
    }
    c.split(';').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_sign_in_with_a_real_directory() {
    let mut ldap = start_slapd();
    let s = start_with_config(
        &format!(
            r#"
            [directory]
            url = "ldap://127.0.0.1:{}"
            base_dn = "ou=people,{BASE}"
            user_filter = "(&(objectClass=inetOrgPerson)(uid={{user}}))"
            moderator_group = "cn=kaigi-moderators,ou=groups,{BASE}"
            publisher_group = "cn=kaigi-publishers,ou=groups,{BASE}"
            timeout_secs = 2
            [rooms."honcho*"]
            access = "directory"
            "#,
            ldap.port
        ),
        &[],
    );
    let port = s.http;

    // Not signed in yet.
    assert_eq!(http_request(port, "GET", "/api/me", &[], b"").status, 401);

    // Refusals, all alike for the person (no probing of staff IDs).
    for (user, pw) in [
        ("t.yamada", "wrong"),
        ("nobody", "yamada-pass-1"),
        ("t.yamada", ""), // an unauthenticated bind must never pass
        ("*", "yamada-pass-1"),
        ("t.yamada)(uid=*", "yamada-pass-1"),
    ] {
        let r = login(port, user, pw);
        assert_eq!(r.status, 401, "{user:?}/{pw:?}: {}", r.body);
        assert!(r.header("set-cookie").is_none());
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["error"], "wrong_credentials");
    }
    let r = http_request(port, "POST", "/api/login", &[], b"not json");
    assert_eq!(r.status, 400);

    // Yamada signs in: the directory's name, a moderator.
    let r = login(port, "t.yamada", "yamada-pass-1");
    assert_eq!(r.status, 200, "{}", r.body);
    let yamada = cookie_of(&r);
    let me: Value = serde_json::from_str(
        &http_request(port, "GET", "/api/me", &[("Cookie", &yamada)], b"").body,
    )
    .unwrap();
    assert_eq!(
        me,
        json!({"user": "t.yamada", "name": "山田 太郎", "moderator": true, "publisher": false})
    );

    // A directory room: Suzuki (no group) is admitted under the directory
    // name, whatever he typed, and is not a moderator; Yamada moderates.
    let r = login(port, "k.suzuki", "suzuki-pass-3");
    let suzuki = cookie_of(&r);
    let mut a = connect_with(port, &[("Cookie", &suzuki)]).await;
    let wa = ask(
        &mut a,
        &json!({"type": "join", "v": 1, "room": "honcho-soumu", "name": "Anyone"}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(wa["type"], "welcome", "{wa}");
    let mut b = connect_with(port, &[("Cookie", &yamada)]).await;
    let wb = ask(
        &mut b,
        &json!({"type": "join", "v": 1, "room": "honcho-soumu", "name": "x"}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(wb["moderator"], true, "{wb}");
    let others = wb["participants"].as_array().unwrap();
    assert_eq!(others.len(), 1);
    assert_eq!(others[0]["name"], "鈴木 一郎");
    assert_eq!(others[0]["moderator"], true); // first in the room
    // Without a sign-in, or with a forged cookie: refused.
    let mut c = connect(port).await;
    let r = ask(
        &mut c,
        &json!({"type": "join", "v": 1, "room": "honcho-soumu", "name": "x"}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(code(&r), "sign_in_required");
    let forged = {
        let (k, v) = suzuki.split_once('=').unwrap();
        let mut v = v.to_owned();
        v.insert(12, 'x');
        format!("{k}={v}")
    };
    let mut d = connect_with(port, &[("Cookie", &forged)]).await;
    let r = ask(
        &mut d,
        &json!({"type": "join", "v": 1, "room": "honcho-soumu", "name": "x"}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(code(&r), "sign_in_required");

    // Broadcast rights: Sato (publishers) gets a publisher token that WHIP
    // accepts as far as authorisation goes; Yamada does not get one.
    let sato = cookie_of(&login(port, "h.sato", "sato-pass-2"));
    let ask_token = |cookie: &str| {
        http_request(
            port,
            "POST",
            "/api/me/publisher-token",
            &[("Cookie", cookie), ("Content-Type", "application/json")],
            br#"{"room":"kaiken"}"#,
        )
    };
    assert_eq!(ask_token(&yamada).status, 403);
    let r = ask_token(&sato);
    assert_eq!(r.status, 200, "{}", r.body);
    let token: Value = serde_json::from_str(&r.body).unwrap();
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
    let junk_offer = b"v=0\r\n";
    let with_token = http_request(
        port,
        "POST",
        "/whip/kaiken",
        &[
            ("Content-Type", "application/sdp"),
            ("Authorization", &bearer),
        ],
        junk_offer,
    );
    let without = http_request(
        port,
        "POST",
        "/whip/kaiken",
        &[("Content-Type", "application/sdp")],
        junk_offer,
    );
    assert_eq!(without.status, 401);
    assert_ne!(with_token.status, 401, "{}", with_token.body);

    // Signing out clears the cookie.
    let r = http_request(port, "POST", "/api/logout", &[("Cookie", &sato)], b"");
    assert_eq!(r.status, 204);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));

    // The directory goes away: a clear 503, and the signed-in stay signed in.
    let _ = ldap.child.kill();
    let _ = ldap.child.wait();
    let r = login(port, "t.yamada", "yamada-pass-1");
    assert_eq!(r.status, 503, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["error"], "directory_unavailable");
    assert_eq!(
        http_request(port, "GET", "/api/me", &[("Cookie", &yamada)], b"").status,
        200
    );

    let m = http_get(port, "/metrics").unwrap();
    assert_eq!(metric(&m, "kaigi_logins_total{result=\"ok\"}"), 3);
    assert_eq!(metric(&m, "kaigi_logins_total{result=\"refused\"}"), 5);
    assert_eq!(metric(&m, "kaigi_logins_total{result=\"unavailable\"}"), 1);
    assert_eq!(
        metric(&m, "kaigi_joins_total{result=\"sign_in_required\"}"),
        2
    );
}
