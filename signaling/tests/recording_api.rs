//! The recording API's rules, against the real binary: who may start,
//! list and download; what a room with nothing live answers; recordings on
//! disk listed with working, signed, expiring download links (ranges too);
//! nothing outside the recordings folder can be reached.

mod common;

use common::{http_request, start_with};

const KEY: &str = "admin-key-for-the-test-0123456789";

#[test]
fn recordings_are_listed_and_downloaded_only_with_the_key_or_a_signed_link() {
    let dir = std::env::temp_dir().join(format!("kaigi-rec-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let body: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("press-20261124-101500.webm"), &body).unwrap();
    std::fs::write(dir.join("notes.txt"), b"not a recording").unwrap();
    let s = start_with(&[
        ("KAIGI_ADMIN__API_KEY", KEY),
        ("KAIGI_RECORDING__DIR", dir.to_str().unwrap()),
        (
            "KAIGI_AUTH__STREAM_KEYS",
            r#"{ "press" = "stream-key-press" }"#,
        ),
    ]);
    let bearer = format!("Bearer {KEY}");
    let auth = [("Authorization", bearer.as_str())];

    // The list: the admin key only.
    let r = http_request(s.http, "GET", "/api/recordings", &[], b"");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = http_request(
        s.http,
        "GET",
        "/api/recordings",
        &[("Authorization", "Bearer nope")],
        b"",
    );
    assert_eq!(r.status, 401);
    let r = http_request(s.http, "GET", "/api/recordings", &auth, b"");
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let list = v["recordings"].as_array().unwrap();
    assert_eq!(list.len(), 1, "only recordings are listed: {v}");
    assert_eq!(list[0]["name"], "press-20261124-101500.webm");
    assert_eq!(list[0]["bytes"], 5000);
    assert_eq!(list[0]["state"], "complete");
    let link = list[0]["download"].as_str().unwrap().to_owned();
    assert!(link.starts_with("/api/recordings/press-20261124-101500.webm?exp="));

    // The link downloads it without a key; whole, or a range.
    let r = http_request(s.http, "GET", &link, &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("video/webm"));
    assert_eq!(r.header("content-length"), Some("5000"));
    assert!(
        r.header("content-disposition")
            .unwrap()
            .contains("attachment")
    );
    let r = http_request(s.http, "GET", &link, &[("Range", "bytes=100-109")], b"");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 100-109/5000"));
    assert_eq!(r.header("content-length"), Some("10"));
    let r = http_request(s.http, "GET", &link, &[("Range", "bytes=9000-")], b"");
    assert_eq!(r.status, 416);
    // The admin key works too.
    let r = http_request(
        s.http,
        "GET",
        "/api/recordings/press-20261124-101500.webm",
        &auth,
        b"",
    );
    assert_eq!(r.status, 200);

    // A tampered, expired or borrowed signature does not.
    let name = "press-20261124-101500.webm";
    let (_, query) = link.split_once('?').unwrap();
    let r = http_request(
        s.http,
        "GET",
        &format!("/api/recordings/{name}?{}", query.replace("sig=", "sig=0")),
        &[],
        b"",
    );
    assert_eq!(r.status, 403);
    let r = http_request(
        s.http,
        "GET",
        &format!("/api/recordings/{name}?exp=1&sig=00"),
        &[],
        b"",
    );
    assert_eq!(r.status, 403);
    assert!(r.body.contains("expired"));
    let r = http_request(
        s.http,
        "GET",
        &format!("/api/recordings/notes.txt?{query}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 403, "a link is for one file");
    let r = http_request(s.http, "GET", &format!("/api/recordings/{name}"), &[], b"");
    assert_eq!(r.status, 401);

    // Nothing but recordings in the folder is served, even with the key.
    for path in [
        "/api/recordings/notes.txt",
        "/api/recordings/..%2Ftoken_secret",
        "/api/recordings/.hidden.webm",
        "/api/recordings/missing.mp4",
    ] {
        let r = http_request(s.http, "GET", path, &auth, b"");
        assert_eq!(r.status, 404, "{path}");
    }

    // Starting: nothing is live → 404; wrong credentials → 401; the
    // stream key or admin key may ask; a bad room name → 400.
    let r = http_request(s.http, "POST", "/api/rooms/press/recording", &[], b"");
    assert_eq!(r.status, 401);
    let r = http_request(
        s.http,
        "POST",
        "/api/rooms/press/recording",
        &[("Authorization", "Bearer stream-key-other")],
        b"",
    );
    assert_eq!(r.status, 401);
    let r = http_request(
        s.http,
        "POST",
        "/api/rooms/press/recording",
        &[("Authorization", "Bearer stream-key-press")],
        b"",
    );
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("not_live"));
    let r = http_request(s.http, "POST", "/api/rooms/other/recording", &auth, b"");
    assert_eq!(r.status, 404);
    let r = http_request(
        s.http,
        "POST",
        "/api/rooms/bad%20room/recording",
        &auth,
        b"",
    );
    assert_eq!(r.status, 400);
    let r = http_request(s.http, "DELETE", "/api/rooms/press/recording", &auth, b"");
    assert_eq!(r.status, 404);
    assert!(r.body.contains("not_recording"));
    let r = http_request(s.http, "GET", "/api/rooms/press/recording", &auth, b"");
    assert_eq!(r.status, 404);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_an_admin_key_the_admin_api_is_off() {
    let s = start_with(&[]);
    let r = http_request(
        s.http,
        "GET",
        "/api/recordings",
        &[("Authorization", "Bearer anything-at-all-long")],
        b"",
    );
    assert_eq!(r.status, 403);
    assert!(r.body.contains("admin.api_key"));
}
