//! WHIP ingest over HTTP against the real binary: an encoder's offer is
//! answered with 201 and a Location that DELETE ends; bad requests get the
//! status RFC 9725 and HTTP give them, with a reason, and never disturb the
//! running broadcast. (Media from real encoders: tests/interop.)

mod common;

use common::*;

const ROOM: &str = "whip-room";
const KEY: &str = "stream-key-0123456789";

/// An OBS-shaped offer: Opus and H.264 (packetization-mode 1) plus VP8, sendonly.
fn offer() -> String {
    [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "a=msid-semantic: WMS obs",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:obsu",
        "a=ice-pwd:obspassword0123456789ab",
        "a=ice-options:trickle",
        "a=fingerprint:sha-256 3E:4F:7A:22:19:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44",
        "a=setup:actpass",
        "a=mid:0",
        "a=sendonly",
        "a=msid:obs audio",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=ssrc:1111 cname:obs",
        "m=video 9 UDP/TLS/RTP/SAVPF 102 96",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:obsu",
        "a=ice-pwd:obspassword0123456789ab",
        "a=ice-options:trickle",
        "a=fingerprint:sha-256 3E:4F:7A:22:19:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44",
        "a=setup:actpass",
        "a=mid:1",
        "a=sendonly",
        "a=msid:obs video",
        "a=rtcp-mux",
        "a=rtcp-rsize",
        "a=rtpmap:102 H264/90000",
        "a=rtcp-fb:102 nack",
        "a=rtcp-fb:102 nack pli",
        "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        "a=rtpmap:96 VP8/90000",
        "a=ssrc:2222 cname:obs",
        "",
    ]
    .join("\r\n")
}

fn post(port: u16, room: &str, auth: Option<&str>, ctype: &str, body: &[u8]) -> HttpResponse {
    let bearer = auth.map(|a| format!("Bearer {a}"));
    let mut headers = vec![("Content-Type", ctype)];
    if let Some(b) = bearer.as_deref() {
        headers.push(("Authorization", b));
    }
    http_request(port, "POST", &format!("/whip/{room}"), &headers, body)
}

#[test]
fn whip_offers_are_answered_and_bad_requests_refused() {
    let keys = format!("{{ \"{ROOM}\" = \"{KEY}\" }}");
    let server = start_with(&[("KAIGI_AUTH__STREAM_KEYS", &keys)]);
    let port = server.http;
    let sdp = offer();

    // No token, a wrong key, a token for another room: 401 with a challenge.
    let r = post(port, ROOM, None, "application/sdp", sdp.as_bytes());
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert!(r.body.contains("bearer token"));
    assert_eq!(
        post(port, ROOM, Some("wrong"), "application/sdp", sdp.as_bytes()).status,
        401
    );
    assert_eq!(
        post(
            port,
            "other-room",
            Some(KEY),
            "application/sdp",
            sdp.as_bytes()
        )
        .status,
        401
    );

    // Not SDP, not an offer, too big, a bad room name.
    let r = post(port, ROOM, Some(KEY), "text/plain", sdp.as_bytes());
    assert_eq!(r.status, 415, "{}", r.body);
    let r = post(port, ROOM, Some(KEY), "application/sdp", b"hello");
    assert_eq!(r.status, 400);
    assert!(r.body.contains("v=0"), "{}", r.body);
    let r = post(
        port,
        ROOM,
        Some(KEY),
        "application/sdp",
        b"v=0\r\nm=garbage\r\n",
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("refused"), "{}", r.body);
    let big = format!("{sdp}{}", "a=x-padding:0123456789\r\n".repeat(4000));
    assert_eq!(
        post(port, ROOM, Some(KEY), "application/sdp", big.as_bytes()).status,
        413
    );
    assert_eq!(
        post(
            port,
            "bad%20room",
            Some(KEY),
            "application/sdp",
            sdp.as_bytes()
        )
        .status,
        400
    );

    // Only codecs kaigi cannot forward: 406.
    let theora = sdp
        .replace(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "m=audio 9 UDP/TLS/RTP/SAVPF 98",
        )
        .replace("a=rtpmap:111 opus/48000/2", "a=rtpmap:98 speex/16000")
        .replace("a=fmtp:111 minptime=10;useinbandfec=1\r\n", "")
        .replace(
            "m=video 9 UDP/TLS/RTP/SAVPF 102 96",
            "m=video 9 UDP/TLS/RTP/SAVPF 120",
        )
        .replace("a=rtpmap:102 H264/90000", "a=rtpmap:120 theora/90000")
        .replace("a=rtpmap:96 VP8/90000\r\n", "");
    let r = post(port, ROOM, Some(KEY), "application/sdp", theora.as_bytes());
    assert!(
        r.status == 406 || r.status == 400,
        "{} {}",
        r.status,
        r.body
    );
    assert!(r.body.to_ascii_lowercase().contains("codec"), "{}", r.body);

    // A good offer: 201, an SDP answer, a Location and an ETag.
    let r = post(port, ROOM, Some(KEY), "application/sdp", sdp.as_bytes());
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/sdp"));
    let location = r.header("location").expect("Location").to_owned();
    assert!(
        location.starts_with(&format!("/whip/{ROOM}/")),
        "{location}"
    );
    assert!(r.header("etag").is_some());
    assert!(r.body.starts_with("v=0"));
    assert!(r.body.contains("a=ice-lite"));
    assert!(
        r.body.contains("a=candidate:"),
        "all candidates in the answer"
    );
    assert!(r.body.contains("H264/90000"), "H.264 accepted: {}", r.body);
    assert!(r.body.contains("a=recvonly"));

    // The room shows the broadcast source; a second one is refused, and
    // refusals do not end the first.
    let metrics = http_get(server.http, "/metrics").unwrap();
    assert!(metrics.contains("kaigi_participants 1"), "{metrics}");
    let r = post(port, ROOM, Some(KEY), "application/sdp", sdp.as_bytes());
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        http_get(server.http, "/metrics")
            .unwrap()
            .contains("kaigi_participants 1")
    );

    // Trickle: accepted (ICE-lite needs none); an ICE restart is not supported.
    let frag = [("Content-Type", "application/trickle-ice-sdpfrag")];
    let r = http_request(
        port,
        "PATCH",
        &location,
        &frag,
        b"a=mid:0\r\na=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\n",
    );
    assert_eq!(r.status, 204);
    let r = http_request(
        port,
        "PATCH",
        &location,
        &frag,
        b"a=ice-ufrag:new\r\na=ice-pwd:newnewnewnewnewnewnewnew\r\n",
    );
    assert_eq!(r.status, 405);
    let r = http_request(port, "PATCH", &format!("/whip/{ROOM}/nope"), &frag, b"");
    assert_eq!(r.status, 404);

    // DELETE ends it (and only once); the room is free for the next source.
    assert_eq!(
        http_request(port, "DELETE", &location, &[], b"").status,
        200
    );
    assert_eq!(
        http_request(port, "DELETE", &location, &[], b"").status,
        404
    );
    assert!(
        http_get(server.http, "/metrics")
            .unwrap()
            .contains("kaigi_participants 0")
    );
    let r = post(port, ROOM, Some(KEY), "application/sdp", sdp.as_bytes());
    assert_eq!(r.status, 201, "{}", r.body);

    let metrics = http_get(server.http, "/metrics").unwrap();
    for result in ["ok", "unauthorized", "busy", "bad_sdp"] {
        assert!(
            metrics.contains(&format!("kaigi_whip_requests_total{{result=\"{result}\"}}")),
            "{result} counted: {metrics}"
        );
    }
}

#[test]
fn whep_requests_are_checked_before_anything_plays() {
    let server = start();
    let port = server.http;
    let offer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n";
    let whep = |ctype: &str, body: &[u8]| {
        http_request(port, "POST", "/whep/hall", &[("Content-Type", ctype)], body)
    };
    assert_eq!(whep("text/plain", offer.as_bytes()).status, 415);
    assert_eq!(whep("application/sdp", b"hello").status, 400);
    // Nothing is published in the room: the player is told, nobody joins.
    let r = whep("application/sdp", offer.as_bytes());
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("nothing is being broadcast"), "{}", r.body);
    assert!(
        http_get(port, "/metrics")
            .unwrap()
            .contains("kaigi_participants 0")
    );
    assert_eq!(
        http_request(port, "DELETE", "/whep/hall/nope", &[], b"").status,
        404
    );
    let frag = [("Content-Type", "application/trickle-ice-sdpfrag")];
    assert_eq!(
        http_request(port, "PATCH", "/whep/hall/nope", &frag, b"").status,
        404
    );
    let options = http_request(port, "OPTIONS", "/whep/hall", &[], b"");
    assert_eq!(options.status, 204);
    assert_eq!(options.header("accept-post"), Some("application/sdp"));

    // Where tokens are required, a player needs one.
    let strict = start_with(&[("KAIGI_AUTH__REQUIRE_TOKEN", "true")]);
    let r = http_request(
        strict.http,
        "POST",
        "/whep/hall",
        &[("Content-Type", "application/sdp")],
        offer.as_bytes(),
    );
    assert_eq!(r.status, 401, "{}", r.body);
    let metrics = http_get(port, "/metrics").unwrap();
    for result in ["bad_content_type", "bad_sdp", "not_live"] {
        assert!(
            metrics.contains(&format!("kaigi_whep_requests_total{{result=\"{result}\"}}")),
            "{result} counted: {metrics}"
        );
    }
}

#[test]
fn the_viewer_page_and_its_status() {
    let s = start();
    let r = http_request(s.http, "GET", "/watch/kaiken", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.body.contains("/assets/watch.js"));
    let r = http_request(s.http, "GET", "/watch/bad%20room", &[], b"");
    assert_eq!(r.status, 400);
    let r = http_request(s.http, "GET", "/watch/kaiken/status", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v, serde_json::json!({"live": false, "access": "open"}));
    let r = http_request(s.http, "GET", "/assets/watch.js", &[], b"");
    assert_eq!(r.status, 200);

    // Where tokens are required, the status needs one too.
    let s = start_with(&[("KAIGI_AUTH__REQUIRE_TOKEN", "true")]);
    let r = http_request(s.http, "GET", "/watch/kaiken/status", &[], b"");
    assert_eq!(r.status, 401);
}

#[test]
fn a_room_may_allow_several_encoders() {
    let keys = format!("{{ \"{ROOM}\" = \"{KEY}\", \"other\" = \"{KEY}\" }}");
    let server = start_with(&[
        ("KAIGI_AUTH__STREAM_KEYS", &keys),
        ("KAIGI_WHIP__ROOM_SOURCES", &format!("{{ \"{ROOM}\" = 2 }}")),
    ]);
    let sdp = offer();
    for expected in [201, 201, 409] {
        let r = post(
            server.http,
            ROOM,
            Some(KEY),
            "application/sdp",
            sdp.as_bytes(),
        );
        assert_eq!(r.status, expected, "{}", r.body);
    }
    // Other rooms keep the default of one.
    let r = post(
        server.http,
        "other",
        Some(KEY),
        "application/sdp",
        sdp.as_bytes(),
    );
    assert_eq!(r.status, 201);
    let r = post(
        server.http,
        "other",
        Some(KEY),
        "application/sdp",
        sdp.as_bytes(),
    );
    assert_eq!(r.status, 409);
    assert!(r.body.contains("whip.room_sources"));
}
