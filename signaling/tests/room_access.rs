//! Who gets into which room, against the real binary: password rooms (and
//! the limit on wrong guesses), token rooms with HS256, EdDSA and ES256
//! tokens minted by `kaigi token` and by OpenSSL, the same rules on WHEP,
//! and the limit on tracks one participant may publish.

mod common;

use common::*;
use serde_json::{Value, json};

fn join(room: &str, extra: Value) -> String {
    let mut j = json!({"type": "join", "v": 1, "room": room, "name": "Kato"});
    j.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    j.to_string()
}

async fn try_join(port: u16, room: &str, extra: Value) -> Value {
    let mut ws = connect(port).await;
    ask(&mut ws, &join(room, extra)).await.unwrap()
}

fn kaigi(args: &[&str], config: &std::path::Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kaigi"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kaigi {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn openssl(args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl (Debian package openssl; scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_tokens_and_key_pairs_open_the_right_doors() {
    let keys = temp_dir("keys");
    let cfg = keys.join("mint.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\ndata_dir = {:?}\n[auth]\ntoken_secret = \"a-shared-secret-of-the-test\"\n",
            keys.join("data")
        ),
    )
    .unwrap();
    let ed = keys.join("portal").display().to_string();
    let es = keys.join("p256").display().to_string();
    kaigi(&["keygen", "--alg", "ed25519", "--out", &ed], &cfg);
    kaigi(&["keygen", "--alg", "es256", "--out", &es], &cfg);
    // A key pair made by OpenSSL, as an intranet portal would.
    let ossl = keys.join("ossl").display().to_string();
    openssl(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        &format!("{ossl}.key.pem"),
    ]);
    openssl(&[
        "pkey",
        "-in",
        &format!("{ossl}.key.pem"),
        "-pubout",
        "-out",
        &format!("{ossl}.pub.pem"),
    ]);
    // A third key pair the server does not know.
    let rogue = keys.join("rogue").display().to_string();
    kaigi(&["keygen", "--out", &rogue], &cfg);

    let s = start_with_config(
        &format!(
            r#"
            [auth]
            token_secret = "a-shared-secret-of-the-test"
            token_public_keys = ["{ed}.pub.pem", "{es}.pub.pem", "{ossl}.pub.pem"]
            [limits]
            failed_logins_per_ip_per_minute = 10
            max_tracks_per_participant = 3
            [rooms.soudan]
            access = "password"
            password = "branch-office-7"
            [rooms."kaiken*"]
            access = "token"
            "#
        ),
        &[],
    );
    let port = s.http;

    // An open room (the default) needs nothing.
    assert_eq!(try_join(port, "lobby", json!({})).await["type"], "welcome");

    // The password room.
    assert_eq!(
        code(&try_join(port, "soudan", json!({})).await),
        "password_required"
    );
    assert_eq!(
        code(&try_join(port, "soudan", json!({"password": "guess"})).await),
        "wrong_password"
    );
    let w = try_join(port, "soudan", json!({"password": "branch-office-7"})).await;
    assert_eq!(w["type"], "welcome", "{w}");

    // Token rooms (by prefix): HS256 from the shared secret, EdDSA and ES256
    // from the key pairs; a token for another room, or signed by an unknown
    // key, does not open them.
    assert_eq!(
        code(&try_join(port, "kaiken-1124", json!({})).await),
        "unauthorized"
    );
    let hs = kaigi(
        &["token", "--room", "kaiken-1124", "--role", "moderator"],
        &cfg,
    );
    let eddsa = kaigi(
        &[
            "token",
            "--room",
            "kaiken-1124",
            "--name",
            "広報課",
            "--key",
            &format!("{ed}.key.pem"),
        ],
        &cfg,
    );
    let es256 = kaigi(
        &[
            "token",
            "--room",
            "kaiken-1124",
            "--key",
            &format!("{es}.key.pem"),
        ],
        &cfg,
    );
    let other_room = kaigi(
        &[
            "token",
            "--room",
            "kaiken-0101",
            "--key",
            &format!("{ed}.key.pem"),
        ],
        &cfg,
    );
    let unknown = kaigi(
        &[
            "token",
            "--room",
            "kaiken-1124",
            "--key",
            &format!("{rogue}.key.pem"),
        ],
        &cfg,
    );
    // A token signed by OpenSSL (not by kaigi's code): header, claims,
    // Ed25519 over "header.claims", as RFC 8037 has it.
    let openssl_token = {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        let input = format!(
            "{}.{}",
            b64(br#"{"alg":"EdDSA","typ":"JWT","kid":"ossl"}"#),
            b64(json!({"room": "kaiken-1124", "role": "viewer", "exp": exp, "iat": 0, "sub": "portal-user-17"})
                .to_string()
                .as_bytes())
        );
        let input_file = keys.join("input");
        std::fs::write(&input_file, &input).unwrap();
        let sig = std::process::Command::new("openssl")
            .args([
                "pkeyutl",
                "-sign",
                "-rawin",
                "-inkey",
                &format!("{ossl}.key.pem"),
                "-in",
            ])
            .arg(&input_file)
            .output()
            .unwrap();
        assert!(sig.status.success());
        assert_eq!(sig.stdout.len(), 64);
        format!("{input}.{}", b64(&sig.stdout))
    };
    let w = try_join(port, "kaiken-1124", json!({"token": openssl_token})).await;
    assert_eq!(w["type"], "welcome", "{w}");
    // kaigi's own private keys are ones OpenSSL reads (PKCS#8 v1), and derive
    // the same public key.
    let derived = openssl(&["pkey", "-in", &format!("{ed}.key.pem"), "-pubout"]);
    assert_eq!(
        derived.trim(),
        std::fs::read_to_string(format!("{ed}.pub.pem"))
            .unwrap()
            .trim()
    );
    let w = try_join(port, "kaiken-1124", json!({"token": hs})).await;
    assert_eq!(w["moderator"], true, "{w}");
    let mut watcher = connect(port).await;
    let w = ask(&mut watcher, &join("kaiken-1124", json!({"token": eddsa})))
        .await
        .unwrap();
    assert_eq!(w["type"], "welcome", "{w}");
    // The token's name wins over the one typed in.
    let me = w["participant_id"].as_str().unwrap();
    let mut third = connect(port).await;
    let w3 = ask(&mut third, &join("kaiken-1124", json!({"token": es256})))
        .await
        .unwrap();
    assert_eq!(w3["type"], "welcome", "{w3}");
    let names: Vec<&Value> = w3["participants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["id"] == me)
        .map(|p| &p["name"])
        .collect();
    assert_eq!(names, [&json!("広報課")]);
    assert_eq!(
        code(&try_join(port, "kaiken-1124", json!({"token": other_room})).await),
        "unauthorized"
    );
    let refused = try_join(port, "kaiken-1124", json!({"token": unknown})).await;
    assert_eq!(code(&refused), "unauthorized");
    // A valid token opens a password room too (an organiser's link).
    let soudan = kaigi(&["token", "--room", "soudan"], &cfg);
    assert_eq!(
        try_join(port, "soudan", json!({"token": soudan})).await["type"],
        "welcome"
    );

    // WHEP goes by the same rules: the bearer is the password (the check
    // comes before "is anything live").
    let offer = b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n";
    let whep = |room: &str, bearer: Option<&str>| {
        let auth = bearer.map(|b| format!("Bearer {b}"));
        let mut h = vec![("Content-Type", "application/sdp")];
        if let Some(a) = &auth {
            h.push(("Authorization", a.as_str()));
        }
        http_request(port, "POST", &format!("/whep/{room}"), &h, offer).status
    };
    assert_eq!(whep("soudan", None), 401);
    assert_eq!(whep("soudan", Some("branch-office-7")), 404); // allowed; not live
    assert_eq!(whep("kaiken-1124", None), 401);
    assert_eq!(whep("kaiken-1124", Some(&eddsa)), 404);
    let st = http_request(port, "GET", "/watch/soudan/status", &[], b"");
    assert_eq!(st.status, 200);
    let st: Value = serde_json::from_str(&st.body).unwrap();
    assert_eq!(st["access"], "password");

    // Too many tracks in one publish offer: refused, counted; the session stays.
    let mut ws = connect(port).await;
    assert_eq!(
        ask(&mut ws, &join("lobby", json!({}))).await.unwrap()["type"],
        "welcome"
    );
    let many: String = (0..4)
        .map(|i| format!("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:{i}\r\na=sendonly\r\n"))
        .collect();
    let r = ask(
        &mut ws,
        &json!({"type": "publish_offer", "sdp": format!("v=0\r\n{many}")}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(code(&r), "too_many_tracks", "{r}");
    let pong = ask(&mut ws, r#"{"type":"ping"}"#).await.unwrap();
    assert_eq!(pong["type"], "pong");

    // Guessing: after five wrong passwords from one address (half the
    // minute's ten at once) even the right one waits, and says so.
    for _ in 0..10 {
        try_join(port, "soudan", json!({"password": "nope"})).await;
    }
    let r = try_join(port, "soudan", json!({"password": "branch-office-7"})).await;
    assert_eq!(code(&r), "rate_limited", "{r}");
    assert!(r["message"].as_str().unwrap().contains("try again"));
    assert_eq!(whep("soudan", Some("branch-office-7")), 429);

    let m = http_get(port, "/metrics").unwrap();
    let wrong = metric(&m, "kaigi_joins_total{result=\"wrong_password\"}");
    assert!((5..=7).contains(&wrong), "{wrong}");
    assert!(metric(&m, "kaigi_joins_total{result=\"rate_limited\"}") >= 4);
    assert_eq!(
        metric(&m, "kaigi_joins_total{result=\"password_required\"}"),
        1
    );
    assert!(metric(&m, "kaigi_rate_limited_total{what=\"password\"}") >= 2);
    assert_eq!(metric(&m, "kaigi_tracks_refused_total{endpoint=\"ws\"}"), 1);
    let _ = std::fs::remove_dir_all(&keys);
}
