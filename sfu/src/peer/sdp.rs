//! The subscribe side's SDP: kaigi writes its own offers (sendonly m-sections,
//! one codec each, ICE-lite, actpass) and reads what it needs from the answer.
//!
//! Written by hand rather than through a generic SDP builder because the
//! offer is small and fixed in shape, and its exact lines are a contract with
//! the web client (`a=msid:<participant> <track>`, inactive m-sections reused).

use std::fmt::Write as _;
use std::io::Cursor;

use rtc::sdp::description::session::SessionDescription;

use super::{Codec, Endpoint, PeerError};
use crate::MediaKind;

/// One m-section of an offer.
#[derive(Debug, Clone)]
pub(crate) struct OfferSection<'a> {
    /// Its `a=mid`.
    pub mid: &'a str,
    /// Audio or video.
    pub kind: MediaKind,
    /// What it carries; `None` writes an inactive section.
    pub stream: Option<OfferStream<'a>>,
}

/// The stream an active m-section sends.
#[derive(Debug, Clone)]
pub(crate) struct OfferStream<'a> {
    /// Payload type chosen for the codec.
    pub payload_type: u8,
    /// The codec, as published.
    pub codec: &'a Codec,
    /// Our SSRC.
    pub ssrc: u32,
    /// msid stream id (the publishing participant).
    pub stream_id: &'a str,
    /// msid track id.
    pub track_id: &'a str,
}

/// Session-wide parameters of an offer.
#[derive(Debug, Clone)]
pub(crate) struct OfferSession<'a> {
    pub session_id: u64,
    pub version: u64,
    pub ufrag: &'a str,
    pub pwd: &'a str,
    /// `sha-256 AB:CD:...`
    pub fingerprint: &'a str,
    pub cname: &'a str,
    pub endpoint: &'a Endpoint,
}

/// Transport-wide sequence numbers (draft-holmer-rmcat-transport-wide-cc-extensions-01):
/// the client's feedback on them drives kaigi's estimate of its downlink.
pub const TWCC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
/// The extension id kaigi offers for [`TWCC_URI`] (one id across the BUNDLE group).
pub(crate) const TWCC_EXT_ID: u8 = 3;

/// Codec name and default payload type for a mime type, as browsers number them.
fn codec_name(mime: &str) -> &str {
    mime.split_once('/').map_or(mime, |(_, n)| n)
}

/// The payload type browsers use for a codec, so that answers keep it.
pub(crate) fn preferred_payload_type(codec: &Codec) -> u8 {
    match codec_name(&codec.mime_type).to_ascii_lowercase().as_str() {
        "opus" => 111,
        "pcmu" => 0,
        "pcma" => 8,
        "g722" => 9,
        "vp8" => 96,
        "vp9" => 98,
        "h264" => 102,
        "av1" => 45,
        "h265" => 104,
        _ => 100,
    }
}

/// Writes the whole offer.
pub(crate) fn write_offer(session: &OfferSession<'_>, sections: &[OfferSection<'_>]) -> String {
    let mut s = String::with_capacity(600 + 700 * sections.len());
    let udp = session.endpoint.udp;
    let (c_ip, port) = udp
        .or(session.endpoint.tcp)
        .map_or(("0.0.0.0".to_owned(), 9), |a| {
            (a.ip().to_string(), a.port())
        });
    let family = if c_ip.contains(':') { "IP6" } else { "IP4" };
    let _ = write!(
        s,
        "v=0\r\no=- {} {} IN IP4 0.0.0.0\r\ns=kaigi\r\nt=0 0\r\n",
        session.session_id, session.version
    );
    s.push_str("a=group:BUNDLE");
    for sec in sections {
        s.push(' ');
        s.push_str(sec.mid);
    }
    s.push_str("\r\na=ice-lite\r\na=msid-semantic: WMS *\r\n");
    for sec in sections {
        let (media, placeholder_pt, placeholder) = match sec.kind {
            MediaKind::Audio => ("audio", 111, "opus/48000/2"),
            MediaKind::Video => ("video", 96, "VP8/90000"),
        };
        let pt = sec
            .stream
            .as_ref()
            .map_or(placeholder_pt, |st| st.payload_type);
        let _ = write!(
            s,
            "m={media} {port} UDP/TLS/RTP/SAVPF {pt}\r\nc=IN {family} {c_ip}\r\na=rtcp:{port} IN {family} {c_ip}\r\n"
        );
        let _ = write!(
            s,
            "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=fingerprint:{}\r\na=setup:actpass\r\na=mid:{}\r\n",
            session.ufrag, session.pwd, session.fingerprint, sec.mid
        );
        match &sec.stream {
            Some(st) => {
                s.push_str("a=sendonly\r\na=rtcp-mux\r\na=rtcp-rsize\r\n");
                let c = st.codec;
                let name = codec_name(&c.mime_type);
                if c.channels > 1 {
                    let _ = write!(
                        s,
                        "a=rtpmap:{pt} {name}/{}/{}\r\n",
                        c.clock_rate, c.channels
                    );
                } else {
                    let _ = write!(s, "a=rtpmap:{pt} {name}/{}\r\n", c.clock_rate);
                }
                if sec.kind == MediaKind::Video {
                    let _ = write!(
                        s,
                        "a=rtcp-fb:{pt} nack\r\na=rtcp-fb:{pt} nack pli\r\na=rtcp-fb:{pt} ccm fir\r\n"
                    );
                }
                let _ = write!(
                    s,
                    "a=rtcp-fb:{pt} transport-cc\r\na=extmap:{TWCC_EXT_ID} {TWCC_URI}\r\n"
                );
                if !c.fmtp.is_empty() {
                    let _ = write!(s, "a=fmtp:{pt} {}\r\n", c.fmtp);
                }
                let _ = write!(
                    s,
                    "a=msid:{0} {1}\r\na=ssrc:{2} cname:{3}\r\na=ssrc:{2} msid:{0} {1}\r\n",
                    st.stream_id, st.track_id, st.ssrc, session.cname
                );
            }
            None => {
                s.push_str("a=inactive\r\na=rtcp-mux\r\na=rtcp-rsize\r\n");
                let _ = write!(s, "a=rtpmap:{pt} {placeholder}\r\n");
            }
        }
        let mut foundation = 1;
        if let Some(a) = udp {
            let _ = write!(
                s,
                "a=candidate:{foundation} 1 udp 2130706431 {} {} typ host\r\n",
                a.ip(),
                a.port()
            );
            foundation += 1;
        }
        if let Some(a) = session.endpoint.tcp {
            let _ = write!(
                s,
                "a=candidate:{foundation} 1 tcp 1671430143 {} {} typ host tcptype passive\r\n",
                a.ip(),
                a.port()
            );
        }
        s.push_str("a=end-of-candidates\r\n");
    }
    s
}

/// Who takes which DTLS role, from the answer's `a=setup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Setup {
    /// The client connects (the usual browser answer): kaigi is the DTLS server.
    Active,
    /// The client waits: kaigi is the DTLS client.
    Passive,
}

/// What kaigi needs from an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub ufrag: String,
    pub pwd: String,
    /// sha-256 fingerprints of the client's certificate, lower case.
    pub fingerprints: Vec<String>,
    pub setup: Setup,
    /// Per m-section, in order: its mid and the payload types it accepted
    /// (empty when rejected or not receiving).
    pub sections: Vec<(String, Vec<u8>)>,
}

fn bad(msg: impl Into<String>) -> PeerError {
    PeerError::BadSdp(msg.into())
}

/// The id an SDP gives the header extension `uri` (`a=extmap:<id>[/dir] <uri>`).
pub fn extmap_id(sdp: &str, uri: &str) -> Option<u8> {
    sdp.lines().find_map(|l| {
        let rest = l.trim_end().strip_prefix("a=extmap:")?;
        let (id, tail) = rest.split_once(' ')?;
        let ext_uri = tail.split_whitespace().next()?;
        (ext_uri == uri)
            .then(|| id.split('/').next()?.parse().ok())
            .flatten()
    })
}

/// The simulcast stream ids a publish offer sends, in the order of its first
/// `a=simulcast:send` line (the client lists its layers low to high); empty
/// without simulcast. Paused (`~q`) ids count; of alternatives (`q,x`) the first.
pub fn simulcast_rids(sdp: &str) -> Vec<String> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=simulcast:"))
        .and_then(|rest| {
            let mut parts = rest.split_whitespace();
            while let Some(dir) = parts.next() {
                let list = parts.next()?;
                if dir == "send" {
                    return Some(
                        list.split(';')
                            .filter_map(|alt| alt.split(',').next())
                            .map(|r| r.trim_start_matches('~').to_owned())
                            .filter(|r| !r.is_empty() && r.len() <= 32)
                            .take(4)
                            .collect(),
                    );
                }
            }
            None
        })
        .unwrap_or_default()
}

/// Parses a client's answer to one of our offers.
pub(crate) fn parse_answer(sdp: &str) -> Result<Answer, PeerError> {
    let desc = SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes()))
        .map_err(|e| bad(e.to_string()))?;
    let session_attr = |k: &str| desc.attribute(k).cloned();
    let mut ufrag = session_attr("ice-ufrag");
    let mut pwd = session_attr("ice-pwd");
    let mut fingerprints: Vec<String> = desc
        .attributes
        .iter()
        .filter(|a| a.key == "fingerprint")
        .filter_map(|a| a.value.clone())
        .collect();
    let mut setup = session_attr("setup");
    let mut sections = Vec::with_capacity(desc.media_descriptions.len());
    for m in &desc.media_descriptions {
        let attr = |k: &str| m.attribute(k).flatten().map(str::to_owned);
        ufrag = ufrag.or_else(|| attr("ice-ufrag"));
        pwd = pwd.or_else(|| attr("ice-pwd"));
        setup = setup.or_else(|| attr("setup"));
        fingerprints.extend(
            m.attributes
                .iter()
                .filter(|a| a.key == "fingerprint")
                .filter_map(|a| a.value.clone()),
        );
        let mid = attr("mid").ok_or_else(|| bad("an m-section has no a=mid"))?;
        let receiving = m.media_name.port.value != 0
            && !m.has_attribute("inactive")
            && !m.has_attribute("sendonly");
        let pts = if receiving {
            m.media_name
                .formats
                .iter()
                .filter_map(|f| f.parse::<u8>().ok())
                .collect()
        } else {
            Vec::new()
        };
        sections.push((mid, pts));
    }
    let ufrag = ufrag.ok_or_else(|| bad("no a=ice-ufrag"))?;
    let pwd = pwd.ok_or_else(|| bad("no a=ice-pwd"))?;
    let fingerprints: Vec<String> = fingerprints
        .iter()
        .filter_map(|f| {
            let (alg, value) = f.trim().split_once(' ')?;
            alg.eq_ignore_ascii_case("sha-256")
                .then(|| value.trim().to_ascii_lowercase())
        })
        .collect();
    if fingerprints.is_empty() {
        return Err(bad("no sha-256 a=fingerprint"));
    }
    let setup = match setup.as_deref().map(str::trim) {
        Some("active") | Some("actpass") | None => Setup::Active,
        Some("passive") => Setup::Passive,
        Some(other) => return Err(bad(format!("a=setup:{other} in an answer"))),
    };
    Ok(Answer {
        ufrag,
        pwd,
        fingerprints,
        setup,
        sections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        Endpoint {
            udp: Some("127.0.0.1:10000".parse().unwrap()),
            tcp: Some("127.0.0.1:10000".parse().unwrap()),
        }
    }

    fn vp8() -> Codec {
        Codec {
            mime_type: "video/VP8".into(),
            clock_rate: 90000,
            channels: 0,
            fmtp: String::new(),
        }
    }

    fn opus() -> Codec {
        Codec {
            mime_type: "audio/opus".into(),
            clock_rate: 48000,
            channels: 2,
            fmtp: "minptime=10;useinbandfec=1".into(),
        }
    }

    fn offer() -> String {
        let ep = endpoint();
        let (v, a) = (vp8(), opus());
        write_offer(
            &OfferSession {
                session_id: 42,
                version: 3,
                ufrag: "uf",
                pwd: "pw",
                fingerprint: "sha-256 AB:CD",
                cname: "kaigi",
                endpoint: &ep,
            },
            &[
                OfferSection {
                    mid: "0",
                    kind: MediaKind::Audio,
                    stream: Some(OfferStream {
                        payload_type: 111,
                        codec: &a,
                        ssrc: 7,
                        stream_id: "p1",
                        track_id: "1/0",
                    }),
                },
                OfferSection {
                    mid: "1",
                    kind: MediaKind::Video,
                    stream: Some(OfferStream {
                        payload_type: 96,
                        codec: &v,
                        ssrc: 8,
                        stream_id: "p1",
                        track_id: "1/1",
                    }),
                },
                OfferSection {
                    mid: "2",
                    kind: MediaKind::Video,
                    stream: None,
                },
            ],
        )
    }

    #[test]
    fn offer_is_parseable_and_carries_the_contract_lines() {
        let sdp = offer();
        let desc = SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes())).unwrap();
        assert_eq!(desc.media_descriptions.len(), 3);
        assert!(desc.has_attribute("ice-lite"));
        assert_eq!(desc.attribute("group").unwrap(), "BUNDLE 0 1 2");
        assert!(sdp.contains("a=msid:p1 1/0\r\n"));
        assert!(sdp.contains("a=rtpmap:111 opus/48000/2\r\n"));
        assert!(sdp.contains("a=fmtp:111 minptime=10;useinbandfec=1\r\n"));
        assert!(sdp.contains("a=rtcp-fb:96 nack pli\r\n"));
        assert!(sdp.contains("typ host tcptype passive"));
        let third = &desc.media_descriptions[2];
        assert!(third.has_attribute("inactive"));
    }

    fn answer(setup: &str, video_port: u16) -> String {
        format!(
            "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:cli\r\na=ice-pwd:clipwd\r\n\
             a=fingerprint:sha-256 AA:BB\r\na=setup:{setup}\r\na=mid:0\r\na=recvonly\r\na=rtpmap:111 opus/48000/2\r\n\
             m=video {video_port} UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n"
        )
    }

    #[test]
    fn answer_gives_credentials_role_and_accepted_payload_types() {
        let a = parse_answer(&answer("active", 9)).unwrap();
        assert_eq!(a.ufrag, "cli");
        assert_eq!(a.pwd, "clipwd");
        assert_eq!(a.fingerprints, vec!["aa:bb".to_owned()]);
        assert_eq!(a.setup, Setup::Active);
        assert_eq!(
            a.sections,
            vec![("0".into(), vec![111]), ("1".into(), vec![96])]
        );
    }

    #[test]
    fn rejected_section_and_passive_role() {
        let a = parse_answer(&answer("passive", 0)).unwrap();
        assert_eq!(a.setup, Setup::Passive);
        assert!(a.sections[1].1.is_empty());
    }

    #[test]
    fn bad_answers_are_refused_with_a_reason() {
        assert!(parse_answer("garbage").is_err());
        let no_fp = answer("active", 9).replace("a=fingerprint:sha-256 AA:BB\r\n", "");
        assert!(
            parse_answer(&no_fp)
                .unwrap_err()
                .to_string()
                .contains("fingerprint")
        );
        let bad_setup = answer("holdconn", 9);
        assert!(parse_answer(&bad_setup).is_err());
    }

    #[test]
    fn reads_simulcast_layers_in_order() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rid:q send\r\na=rid:h send\r\na=rid:f send\r\na=simulcast:send q;h;~f\r\n";
        assert_eq!(simulcast_rids(sdp), vec!["q", "h", "f"]);
        assert_eq!(
            simulcast_rids("a=simulcast:recv a;b send x,y;z"),
            vec!["x", "z"]
        );
        assert!(simulcast_rids("v=0\r\nm=video 9 x 96\r\n").is_empty());
        assert!(simulcast_rids("a=simulcast:send").is_empty(), "truncated");
    }

    #[test]
    fn offer_asks_for_transport_wide_feedback() {
        let sdp = offer();
        assert!(sdp.contains(&format!("a=extmap:{TWCC_EXT_ID} {TWCC_URI}\r\n")));
        assert!(sdp.contains("a=rtcp-fb:96 transport-cc\r\n"));
    }

    #[test]
    fn finds_extmap_ids() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=extmap:14 urn:x\r\na=extmap:1/sendonly urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n";
        assert_eq!(
            extmap_id(sdp, "urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
            Some(1)
        );
        assert_eq!(extmap_id(sdp, "urn:x"), Some(14));
        assert_eq!(extmap_id(sdp, "urn:y"), None);
        assert_eq!(extmap_id("a=extmap:x urn:y", "urn:y"), None, "garbage id");
    }
}
