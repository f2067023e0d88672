//! SDP offers on the WHEP/WHIP path: kaigi's own parser, answer planning
//! and writing (a fresh subscribe transport answering with a VP8 and an
//! Opus source), and the attribute readers used on publish offers.
#![no_main]

use std::sync::OnceLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use sfu::peer::{AnswerSource, Downlink};
use sfu::{Codec, Endpoint, MediaKind, PeerConfig};

fn cfg() -> &'static PeerConfig {
    static CFG: OnceLock<PeerConfig> = OnceLock::new();
    CFG.get_or_init(|| {
        PeerConfig::new(Endpoint {
            udp: Some("127.0.0.1:10000".parse().unwrap()),
            tcp: None,
        })
        .expect("DTLS identity")
    })
}

fn sources() -> Vec<AnswerSource> {
    let codec = |mime: &str, rate, channels| Codec {
        mime_type: mime.into(),
        clock_rate: rate,
        channels,
        fmtp: String::new(),
    };
    vec![
        AnswerSource {
            kind: MediaKind::Audio,
            codec: codec("audio/opus", 48000, 2),
            ssrc: 1,
            stream_id: "p1".into(),
            track_id: "p1t0".into(),
        },
        AnswerSource {
            kind: MediaKind::Video,
            codec: codec("video/VP8", 90000, 0),
            ssrc: 2,
            stream_id: "p1".into(),
            track_id: "p1t1".into(),
        },
    ]
}

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sfu::peer::sdp::extmap_id(sdp, sfu::peer::AUDIO_LEVEL_URI);
    let _ = sfu::peer::sdp::simulcast_rids(sdp);
    let mut d = Downlink::new(
        Instant::now(),
        cfg(),
        "ufrag".into(),
        "pwd-pwd-pwd-pwd-pwd-pwd".into(),
    );
    let _ = d.answer_offer(Instant::now(), sdp, &sources());
});
