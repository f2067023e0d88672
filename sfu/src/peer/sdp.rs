//! The subscribe side's SDP, both ways round: kaigi's own offers (sendonly
//! m-sections, one codec each, ICE-lite, actpass) and what it needs from the
//! client's answer; and, for WHEP playback, what it needs from a client's
//! receive-only offer and kaigi's answer to it.
//!
//! Written by hand rather than through a generic SDP builder because both
//! descriptions are small and fixed in shape, and their exact lines are a
//! contract with the web client (`a=msid:<participant> <track>`, inactive
//! m-sections reused) and with WHEP players. Which source goes in which
//! m-section of an answer is decided here too (`plan_answer`), so that it
//! can be tested on SDP text alone.

use std::fmt::Write as _;
use std::io::Cursor;

use rtc::sdp::description::media::MediaDescription;
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
    pub stream: Option<LocalStream<'a>>,
}

/// A stream kaigi sends in an m-section, offered or answered.
#[derive(Debug, Clone)]
pub(crate) struct LocalStream<'a> {
    /// Payload type for the codec (kaigi's in offers, the client's in answers).
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

/// Session-wide parameters of a description kaigi writes (offer or answer).
#[derive(Debug, Clone)]
pub(crate) struct LocalSession<'a> {
    pub session_id: u64,
    pub version: u64,
    pub ufrag: &'a str,
    pub pwd: &'a str,
    /// `sha-256 AB:CD:...`
    pub fingerprint: &'a str,
    pub cname: &'a str,
    pub endpoint: &'a Endpoint,
}

/// A source a WHEP answer may carry: one of the room's tracks, as the
/// downlink will send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerSource {
    /// Audio or video: it only goes in an m-section of its kind.
    pub kind: MediaKind,
    /// The codec as published; the answer keeps its fmtp.
    pub codec: Codec,
    /// The SSRC kaigi sends it with (announced in `a=ssrc`).
    pub ssrc: u32,
    /// msid stream id.
    pub stream_id: String,
    /// msid track id.
    pub track_id: String,
}

/// Transport-wide sequence numbers (draft-holmer-rmcat-transport-wide-cc-extensions-01):
/// the client's feedback on them drives kaigi's estimate of its downlink.
pub const TWCC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
/// The extension id kaigi offers for [`TWCC_URI`] (one id across the BUNDLE group).
pub(crate) const TWCC_EXT_ID: u8 = 3;
/// The profile of every m-section kaigi sends on.
const RTP_PROTO: &str = "UDP/TLS/RTP/SAVPF";

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

/// The RTCP feedback kaigi writes for a stream: what it can act on (it keeps
/// a history for video NACKs, turns PLI/FIR into keyframe requests, and
/// estimates bandwidth from transport-wide feedback).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Feedback {
    pub nack: bool,
    pub pli: bool,
    pub fir: bool,
    pub transport_cc: bool,
}

impl Feedback {
    /// All kaigi can act on for `kind`: what it offers.
    fn all(kind: MediaKind) -> Self {
        let video = kind == MediaKind::Video;
        Feedback {
            nack: video,
            pli: video,
            fir: video,
            transport_cc: true,
        }
    }

    /// Of what kaigi can act on, what the client offered (`a=rtcp-fb` values):
    /// an answer may only narrow the offer.
    fn offered(kind: MediaKind, offered: &[String], twcc: bool) -> Self {
        let has = |want: &str| {
            offered
                .iter()
                .any(|f| f.split_whitespace().eq(want.split_whitespace()))
        };
        let all = Self::all(kind);
        Feedback {
            nack: all.nack && has("nack"),
            pli: all.pli && has("nack pli"),
            fir: all.fir && has("ccm fir"),
            transport_cc: twcc && has("transport-cc"),
        }
    }
}

/// What an m-section kaigi writes carries.
enum Body<'a> {
    /// One stream, sent.
    Send {
        stream: &'a LocalStream<'a>,
        feedback: Feedback,
        /// The transport-wide sequence number extension id, if negotiated.
        twcc: Option<u8>,
    },
    /// Nothing: a format (and its `rtpmap`, if known) because the m-line needs one.
    Inactive {
        format: &'a str,
        rtpmap: Option<&'a str>,
    },
}

/// One m-section kaigi writes.
struct MediaLines<'a> {
    media: &'a str,
    proto: &'a str,
    mid: &'a str,
    /// `a=setup`: `actpass` in offers, `passive` or `active` in answers.
    setup: &'a str,
    /// Port 0: an answer's refusal of an offered m-section (no candidates).
    rejected: bool,
    rtcp_rsize: bool,
    body: Body<'a>,
}

/// The session lines, with `bundle` as the BUNDLE group.
fn write_session<'m>(
    s: &mut String,
    session: &LocalSession<'_>,
    bundle: impl Iterator<Item = &'m str>,
) {
    let _ = write!(
        s,
        "v=0\r\no=- {} {} IN IP4 0.0.0.0\r\ns=kaigi\r\nt=0 0\r\n",
        session.session_id, session.version
    );
    s.push_str("a=group:BUNDLE");
    for mid in bundle {
        s.push(' ');
        s.push_str(mid);
    }
    s.push_str("\r\na=ice-lite\r\na=msid-semantic: WMS *\r\n");
}

/// One m-section: transport, direction, codec, stream and candidates.
fn write_media(s: &mut String, session: &LocalSession<'_>, m: &MediaLines<'_>) {
    let udp = session.endpoint.udp;
    let (c_ip, port) = udp
        .or(session.endpoint.tcp)
        .map_or(("0.0.0.0".to_owned(), 9), |a| {
            (a.ip().to_string(), a.port())
        });
    let family = if c_ip.contains(':') { "IP6" } else { "IP4" };
    let format = match &m.body {
        Body::Send { stream, .. } => stream.payload_type.to_string(),
        Body::Inactive { format, .. } => (*format).to_owned(),
    };
    let m_port = if m.rejected { 0 } else { port };
    let _ = write!(
        s,
        "m={} {m_port} {} {format}\r\nc=IN {family} {c_ip}\r\n",
        m.media, m.proto
    );
    if !m.rejected {
        let _ = write!(s, "a=rtcp:{port} IN {family} {c_ip}\r\n");
    }
    let _ = write!(
        s,
        "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=fingerprint:{}\r\na=setup:{}\r\na=mid:{}\r\n",
        session.ufrag, session.pwd, session.fingerprint, m.setup, m.mid
    );
    s.push_str(match m.body {
        Body::Send { .. } => "a=sendonly\r\n",
        Body::Inactive { .. } => "a=inactive\r\n",
    });
    if !m.rejected {
        s.push_str("a=rtcp-mux\r\n");
    }
    if m.rtcp_rsize {
        s.push_str("a=rtcp-rsize\r\n");
    }
    match &m.body {
        Body::Send {
            stream: st,
            feedback,
            twcc,
        } => {
            let pt = st.payload_type;
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
            for (on, fb) in [
                (feedback.nack, "nack"),
                (feedback.pli, "nack pli"),
                (feedback.fir, "ccm fir"),
                (feedback.transport_cc, "transport-cc"),
            ] {
                if on {
                    let _ = write!(s, "a=rtcp-fb:{pt} {fb}\r\n");
                }
            }
            if let Some(id) = twcc {
                let _ = write!(s, "a=extmap:{id} {TWCC_URI}\r\n");
            }
            if !c.fmtp.is_empty() {
                let _ = write!(s, "a=fmtp:{pt} {}\r\n", c.fmtp);
            }
            let _ = write!(
                s,
                "a=msid:{0} {1}\r\na=ssrc:{2} cname:{3}\r\na=ssrc:{2} msid:{0} {1}\r\n",
                st.stream_id, st.track_id, st.ssrc, session.cname
            );
        }
        Body::Inactive { format, rtpmap } => {
            if let Some(r) = rtpmap {
                let _ = write!(s, "a=rtpmap:{format} {r}\r\n");
            }
        }
    }
    if m.rejected {
        return;
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

/// Writes the whole offer.
pub(crate) fn write_offer(session: &LocalSession<'_>, sections: &[OfferSection<'_>]) -> String {
    let mut s = String::with_capacity(600 + 700 * sections.len());
    write_session(&mut s, session, sections.iter().map(|sec| sec.mid));
    for sec in sections {
        let (media, placeholder_pt, placeholder) = match sec.kind {
            MediaKind::Audio => ("audio", "111", "opus/48000/2"),
            MediaKind::Video => ("video", "96", "VP8/90000"),
        };
        let body = match &sec.stream {
            Some(stream) => Body::Send {
                stream,
                feedback: Feedback::all(sec.kind),
                twcc: Some(TWCC_EXT_ID),
            },
            None => Body::Inactive {
                format: placeholder_pt,
                rtpmap: Some(placeholder),
            },
        };
        let lines = MediaLines {
            media,
            proto: RTP_PROTO,
            mid: sec.mid,
            setup: "actpass",
            rejected: false,
            rtcp_rsize: true,
            body,
        };
        write_media(&mut s, session, &lines);
    }
    s
}

/// The client's DTLS role, from its `a=setup` (in an answer, or in an offer
/// once kaigi has chosen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Setup {
    /// The client connects (the usual browser answer, and kaigi's choice when
    /// an offer says `actpass`): kaigi is the DTLS server.
    Active,
    /// The client waits: kaigi is the DTLS client.
    Passive,
}

/// The client's side of the transport, from its SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Remote {
    pub ufrag: String,
    pub pwd: String,
    /// sha-256 fingerprints of the client's certificate, lower case.
    pub fingerprints: Vec<String>,
    pub setup: Setup,
}

/// What kaigi needs from an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub remote: Remote,
    /// Per m-section, in order: its mid and the payload types it accepted
    /// (empty when rejected or not receiving).
    pub sections: Vec<(String, Vec<u8>)>,
}

fn bad(msg: impl Into<String>) -> PeerError {
    PeerError::BadSdp(msg.into())
}

/// `<id>[/<direction>] <uri> [<attributes>]` of an `a=extmap`, as (id, uri).
fn parse_extmap(value: &str) -> Option<(u8, &str)> {
    let (id, tail) = value.split_once(' ')?;
    let uri = tail.split_whitespace().next()?;
    Some((id.split('/').next()?.parse().ok()?, uri))
}

/// The id an SDP gives the header extension `uri` (`a=extmap:<id>[/dir] <uri>`).
pub fn extmap_id(sdp: &str, uri: &str) -> Option<u8> {
    sdp.lines().find_map(|l| {
        let (id, ext_uri) = parse_extmap(l.trim_end().strip_prefix("a=extmap:")?)?;
        (ext_uri == uri).then_some(id)
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

/// Parses a client's SDP and what every description of it must say: the ICE
/// credentials, fingerprints and DTLS role (session or media level, the first
/// found). `what` names the description in errors.
fn parse_remote(sdp: &str, what: &str) -> Result<(SessionDescription, Remote), PeerError> {
    let desc = SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes()))
        .map_err(|e| bad(e.to_string()))?;
    let media_attr = |k: &str| {
        desc.media_descriptions
            .iter()
            .find_map(|m| m.attribute(k).flatten().map(str::to_owned))
    };
    let session_attr = |k: &str| desc.attribute(k).cloned().or_else(|| media_attr(k));
    let ufrag = session_attr("ice-ufrag").ok_or_else(|| bad("no a=ice-ufrag"))?;
    let pwd = session_attr("ice-pwd").ok_or_else(|| bad("no a=ice-pwd"))?;
    let fingerprints: Vec<String> = desc
        .attributes
        .iter()
        .chain(desc.media_descriptions.iter().flat_map(|m| &m.attributes))
        .filter(|a| a.key == "fingerprint")
        .filter_map(|a| {
            let (alg, value) = a.value.as_deref()?.trim().split_once(' ')?;
            alg.eq_ignore_ascii_case("sha-256")
                .then(|| value.trim().to_ascii_lowercase())
        })
        .collect();
    if fingerprints.is_empty() {
        return Err(bad("no sha-256 a=fingerprint"));
    }
    let setup = match session_attr("setup").as_deref().map(str::trim) {
        Some("active") | Some("actpass") | None => Setup::Active,
        Some("passive") => Setup::Passive,
        Some(other) => return Err(bad(format!("a=setup:{other} in an {what}"))),
    };
    let remote = Remote {
        ufrag,
        pwd,
        fingerprints,
        setup,
    };
    Ok((desc, remote))
}

/// An m-section's `a=mid`, which kaigi needs to match sections and BUNDLE.
fn mid_of(m: &MediaDescription) -> Result<String, PeerError> {
    m.attribute("mid")
        .flatten()
        .map(str::to_owned)
        .ok_or_else(|| bad("an m-section has no a=mid"))
}

/// Whether the client receives on an m-section: not rejected (port 0), and
/// `recvonly` or `sendrecv` (the default), at media or session level.
fn receives(desc: &SessionDescription, m: &MediaDescription) -> bool {
    const DIRECTIONS: [&str; 4] = ["sendrecv", "recvonly", "sendonly", "inactive"];
    let direction = DIRECTIONS
        .into_iter()
        .find(|d| m.has_attribute(d))
        .or_else(|| DIRECTIONS.into_iter().find(|d| desc.has_attribute(d)))
        .unwrap_or("sendrecv");
    m.media_name.port.value != 0 && matches!(direction, "sendrecv" | "recvonly")
}

/// Parses a client's answer to one of our offers.
pub(crate) fn parse_answer(sdp: &str) -> Result<Answer, PeerError> {
    let (desc, remote) = parse_remote(sdp, "answer")?;
    let mut sections = Vec::with_capacity(desc.media_descriptions.len());
    for m in &desc.media_descriptions {
        let mid = mid_of(m)?;
        let pts = if receives(&desc, m) {
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
    Ok(Answer { remote, sections })
}

/// A payload type of a client's offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OfferedCodec {
    pub payload_type: u8,
    /// The `rtpmap` encoding name (`VP8`, `opus`, `H264`, `rtx`…).
    pub name: String,
    pub clock_rate: u32,
    /// Audio channels (1 when the rtpmap does not say).
    pub channels: u16,
    pub fmtp: String,
    /// Its `a=rtcp-fb` values (`nack`, `nack pli`, `transport-cc`…), with those for `*`.
    pub feedback: Vec<String>,
}

/// One m-section of a client's offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OfferedSection {
    pub mid: String,
    /// The media (`audio`, `video`, `application`…) and transport profile, echoed when rejected.
    pub media: String,
    pub proto: String,
    /// Audio or video on an RTP profile kaigi can send on; `None` for anything else.
    pub kind: Option<MediaKind>,
    /// The client can receive on it (see [`receives`]).
    pub receives: bool,
    pub rtcp_mux: bool,
    pub rtcp_rsize: bool,
    /// The payload types, in the client's order of preference (the m-line's).
    pub codecs: Vec<OfferedCodec>,
    /// The first format of the m-line, and its rtpmap: a rejection echoes them.
    pub first_format: String,
    pub first_rtpmap: Option<String>,
    /// The id it gives the transport-wide sequence number extension.
    pub twcc: Option<u8>,
}

/// What kaigi needs from a client's offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Offer {
    pub remote: Remote,
    pub sections: Vec<OfferedSection>,
}

/// Splits an attribute value `<payload type> <rest>` (`rtpmap`, `fmtp`, `rtcp-fb`).
fn pt_value(value: Option<&str>) -> Option<(&str, &str)> {
    let (pt, rest) = value?.trim().split_once(' ')?;
    Some((pt, rest.trim()))
}

/// The offered payload types of one m-section, from its m-line, `rtpmap`,
/// `fmtp` and `rtcp-fb` lines. (Not `MediaDescription::codecs`: it drops
/// fmtp values that contain spaces, and loses the m-line's order.)
fn offered_codecs(m: &MediaDescription) -> Vec<OfferedCodec> {
    let attrs = |key: &'static str| {
        m.attributes
            .iter()
            .filter(move |a| a.key == key)
            .filter_map(|a| pt_value(a.value.as_deref()))
    };
    m.media_name
        .formats
        .iter()
        .filter_map(|f| {
            let payload_type: u8 = f.parse().ok()?;
            let rtpmap = attrs("rtpmap")
                .find(|(pt, _)| *pt == f)
                .map(|(_, v)| v.to_owned())
                .or_else(|| static_rtpmap(payload_type).map(str::to_owned))?;
            let mut parts = rtpmap.split('/');
            let name = parts.next()?.to_owned();
            let clock_rate = parts.next()?.parse().ok()?;
            let channels = parts.next().map_or(Some(1), |c| c.parse().ok())?;
            let fmtp = attrs("fmtp")
                .find(|(pt, _)| *pt == f)
                .map_or_else(String::new, |(_, v)| v.to_owned());
            let feedback = attrs("rtcp-fb")
                .filter(|(pt, _)| *pt == f || *pt == "*")
                .map(|(_, v)| v.to_owned())
                .collect();
            Some(OfferedCodec {
                payload_type,
                name,
                clock_rate,
                channels,
                fmtp,
                feedback,
            })
        })
        .collect()
}

/// The static payload types a WHEP player might offer without an rtpmap (RFC 3551).
fn static_rtpmap(pt: u8) -> Option<&'static str> {
    match pt {
        0 => Some("PCMU/8000"),
        8 => Some("PCMA/8000"),
        9 => Some("G722/8000"),
        _ => None,
    }
}

/// Parses a client's offer (WHEP: receive-only m-sections).
pub(crate) fn parse_offer(sdp: &str) -> Result<Offer, PeerError> {
    let (desc, remote) = parse_remote(sdp, "offer")?;
    // Both ICE-lite sides would wait for checks that never come.
    if desc.has_attribute("ice-lite") {
        return Err(bad(
            "the offer is ICE-lite, as kaigi is: the client must run full ICE",
        ));
    }
    let mut sections = Vec::with_capacity(desc.media_descriptions.len());
    for m in &desc.media_descriptions {
        let mid = mid_of(m)?;
        let proto = m.media_name.protos.join("/");
        // The secure profiles with feedback (JSEP §5.1.2); kaigi answers in the offer's.
        let rtp = matches!(
            proto.as_str(),
            "UDP/TLS/RTP/SAVPF" | "TCP/DTLS/RTP/SAVPF" | "TCP/TLS/RTP/SAVPF"
        );
        let kind = match m.media_name.media.as_str() {
            "audio" if rtp => Some(MediaKind::Audio),
            "video" if rtp => Some(MediaKind::Video),
            _ => None,
        };
        let first_format = m
            .media_name
            .formats
            .first()
            .cloned()
            .unwrap_or_else(|| "0".to_owned());
        let first_rtpmap = m
            .attributes
            .iter()
            .filter(|a| a.key == "rtpmap")
            .filter_map(|a| pt_value(a.value.as_deref()))
            .find(|(pt, _)| *pt == first_format)
            .map(|(_, v)| v.to_owned());
        let twcc = m
            .attributes
            .iter()
            .filter(|a| a.key == "extmap")
            .filter_map(|a| parse_extmap(a.value.as_deref()?))
            .find_map(|(id, uri)| (uri == TWCC_URI).then_some(id));
        sections.push(OfferedSection {
            mid,
            media: m.media_name.media.clone(),
            proto,
            kind,
            receives: receives(&desc, m),
            rtcp_mux: m.has_attribute("rtcp-mux") || desc.has_attribute("rtcp-mux"),
            rtcp_rsize: m.has_attribute("rtcp-rsize"),
            codecs: offered_codecs(m),
            first_format,
            first_rtpmap,
            twcc,
        });
    }
    Ok(Offer { remote, sections })
}

/// One `key=value` of an fmtp line, the key matched case-insensitively.
fn fmtp_param<'a>(fmtp: &'a str, key: &str) -> Option<&'a str> {
    fmtp.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
    })
}

/// H.264 profiles as libwebrtc tells them apart in `profile-level-id`: two
/// values of one profile are the same codec to a decoder, whatever the level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum H264Profile {
    ConstrainedBaseline,
    Baseline,
    Main,
    High,
    ConstrainedHigh,
    PredictiveHigh444,
    /// Not one of the above: only the same profile_idc and constraint flags match.
    Other(u8, u8),
}

/// (profile_idc, mask and value of the constraint-flags byte, profile), from
/// libwebrtc's `h264_profile_level_id.cc`.
#[rustfmt::skip]
const H264_PROFILES: [(u8, u8, u8, H264Profile); 9] = [
    (0x42, 0b0100_1111, 0b0100_0000, H264Profile::ConstrainedBaseline),
    (0x4D, 0b1000_1111, 0b1000_0000, H264Profile::ConstrainedBaseline),
    (0x58, 0b1100_1111, 0b1100_0000, H264Profile::ConstrainedBaseline),
    (0x42, 0b0100_1111, 0b0000_0000, H264Profile::Baseline),
    (0x58, 0b1100_1111, 0b1000_0000, H264Profile::Baseline),
    (0x4D, 0b1010_1111, 0b0000_0000, H264Profile::Main),
    (0x64, 0b1111_1111, 0b0000_0000, H264Profile::High),
    (0x64, 0b1111_1111, 0b0000_1100, H264Profile::ConstrainedHigh),
    (0xF4, 0b1111_1111, 0b0000_0000, H264Profile::PredictiveHigh444),
];

/// The profile of an H.264 fmtp; without `profile-level-id`, Constrained
/// Baseline (what libwebrtc assumes, rather than RFC 6184's Baseline).
fn h264_profile(fmtp: &str) -> Option<H264Profile> {
    let Some(id) = fmtp_param(fmtp, "profile-level-id") else {
        return Some(H264Profile::ConstrainedBaseline);
    };
    if id.len() != 6 {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(id.get(i..i + 2)?, 16).ok();
    let (idc, iop) = (byte(0)?, byte(2)?);
    Some(
        H264_PROFILES
            .iter()
            .find(|(i, mask, value, _)| *i == idc && iop & mask == *value)
            .map_or(H264Profile::Other(idc, iop), |p| p.3),
    )
}

/// Whether the client can take `source` on `offered`: the same encoding name
/// (any case), clock rate and channels, and for the codecs that have profiles
/// the same profile (H.264 also the same packetization mode). Levels are not
/// compared: the client decodes what its profile allows, and browsers offer
/// `level-asymmetry-allowed=1`.
fn codec_matches(kind: MediaKind, source: &Codec, offered: &OfferedCodec) -> bool {
    let name = codec_name(&source.mime_type);
    if !name.eq_ignore_ascii_case(&offered.name) || source.clock_rate != offered.clock_rate {
        return false;
    }
    if kind == MediaKind::Audio && source.channels.max(1) != offered.channels {
        return false;
    }
    let same = |key: &str, default: &str| {
        fmtp_param(&source.fmtp, key).unwrap_or(default)
            == fmtp_param(&offered.fmtp, key).unwrap_or(default)
    };
    match name.to_ascii_lowercase().as_str() {
        "h264" => {
            let profile = h264_profile(&source.fmtp);
            same("packetization-mode", "0")
                && profile.is_some()
                && profile == h264_profile(&offered.fmtp)
        }
        "vp9" => same("profile-id", "0"),
        "av1" => same("profile", "0"),
        _ => true,
    }
}

/// What an accepted m-section of an answer carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chosen {
    /// Index of the source in the `sources` given to [`plan_answer`].
    pub source: usize,
    /// The client's payload type for it.
    pub payload_type: u8,
    pub feedback: Feedback,
}

/// Which source goes where in the answer to an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AnswerPlan {
    /// Per offered m-section, in order; `None`: rejected.
    pub sections: Vec<Option<Chosen>>,
    /// The transport-wide sequence number extension id, when negotiated.
    pub twcc: Option<u8>,
}

/// Gives each m-section of `offer` that can receive the first unused source
/// of its kind whose codec the client offered, on the client's first payload
/// type for that codec; the others are rejected. An offer in which nothing
/// matches, or that lacks what kaigi's transport needs, is refused.
pub(crate) fn plan_answer(
    offer: &Offer,
    sources: &[AnswerSource],
) -> Result<AnswerPlan, PeerError> {
    let receiving = || {
        offer
            .sections
            .iter()
            .filter(|sec| sec.receives && sec.kind.is_some())
    };
    if receiving().next().is_none() {
        return Err(bad(
            "the offer has no audio or video m-section that can receive (recvonly or sendrecv)",
        ));
    }
    // One 5-tuple carries RTP and RTCP together.
    if let Some(sec) = receiving().find(|sec| !sec.rtcp_mux) {
        return Err(bad(format!(
            "m-section {} has no a=rtcp-mux: kaigi sends RTP and RTCP on one port",
            sec.mid
        )));
    }
    let mut used = vec![false; sources.len()];
    let mut chosen: Vec<Option<(usize, &OfferedCodec)>> = Vec::with_capacity(offer.sections.len());
    for sec in &offer.sections {
        let pick = sec.kind.filter(|_| sec.receives).and_then(|kind| {
            sources.iter().enumerate().find_map(|(i, src)| {
                if used[i] || src.kind != kind {
                    return None;
                }
                let codec = sec
                    .codecs
                    .iter()
                    .find(|c| codec_matches(kind, &src.codec, c))?;
                Some((i, codec))
            })
        });
        if let Some((i, _)) = pick {
            used[i] = true;
        }
        chosen.push(pick);
    }
    if chosen.iter().all(Option::is_none) {
        let mut names: Vec<&str> = Vec::new();
        for src in sources {
            let name = codec_name(&src.codec.mime_type);
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let names = if names.is_empty() {
            "nothing is published".to_owned()
        } else {
            names.join(", ")
        };
        return Err(bad(format!(
            "no offered codec matches the broadcast ({names})"
        )));
    }
    // kaigi numbers every packet of the bundle when the extension is on, so
    // every accepted m-section must map it, to one id (one byte header: 1-14).
    let mut accepted = offer
        .sections
        .iter()
        .zip(&chosen)
        .filter(|(_, c)| c.is_some());
    let first = accepted.next().and_then(|(sec, _)| sec.twcc);
    let twcc = first
        .filter(|id| (1..=14).contains(id))
        .filter(|&id| accepted.all(|(sec, _)| sec.twcc == Some(id)));
    let sections = chosen
        .into_iter()
        .map(|pick| {
            let (source, codec) = pick?;
            Some(Chosen {
                source,
                payload_type: codec.payload_type,
                feedback: Feedback::offered(sources[source].kind, &codec.feedback, twcc.is_some()),
            })
        })
        .collect();
    Ok(AnswerPlan { sections, twcc })
}

/// Writes kaigi's answer to `offer` as `plan` says. The BUNDLE group holds
/// every accepted m-section, whether or not the offer bundled them: kaigi
/// has one 5-tuple per connection, and every WHEP player supports max-bundle.
pub(crate) fn write_answer(
    session: &LocalSession<'_>,
    offer: &Offer,
    plan: &AnswerPlan,
    sources: &[AnswerSource],
) -> String {
    let mut s = String::with_capacity(600 + 700 * offer.sections.len());
    let accepted = offer
        .sections
        .iter()
        .zip(&plan.sections)
        .filter(|(_, c)| c.is_some())
        .map(|(sec, _)| sec.mid.as_str());
    write_session(&mut s, session, accepted);
    // kaigi is the DTLS server unless the client insists on being it.
    let setup = match offer.remote.setup {
        Setup::Active => "passive",
        Setup::Passive => "active",
    };
    for (sec, chosen) in offer.sections.iter().zip(&plan.sections) {
        let stream = chosen.as_ref().map(|c| {
            let src = &sources[c.source];
            LocalStream {
                payload_type: c.payload_type,
                codec: &src.codec,
                ssrc: src.ssrc,
                stream_id: &src.stream_id,
                track_id: &src.track_id,
            }
        });
        let body = match (&stream, chosen) {
            (Some(stream), Some(c)) => Body::Send {
                stream,
                feedback: c.feedback,
                twcc: plan.twcc,
            },
            _ => Body::Inactive {
                format: &sec.first_format,
                rtpmap: sec.first_rtpmap.as_deref(),
            },
        };
        let lines = MediaLines {
            media: &sec.media,
            proto: &sec.proto,
            mid: &sec.mid,
            setup,
            rejected: chosen.is_none(),
            rtcp_rsize: sec.rtcp_rsize && chosen.is_some(),
            body,
        };
        write_media(&mut s, session, &lines);
    }
    s
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
            &LocalSession {
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
                    stream: Some(LocalStream {
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
                    stream: Some(LocalStream {
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
        assert_eq!(a.remote.ufrag, "cli");
        assert_eq!(a.remote.pwd, "clipwd");
        assert_eq!(a.remote.fingerprints, vec!["aa:bb".to_owned()]);
        assert_eq!(a.remote.setup, Setup::Active);
        assert_eq!(
            a.sections,
            vec![("0".into(), vec![111]), ("1".into(), vec![96])]
        );
    }

    #[test]
    fn rejected_section_and_passive_role() {
        let a = parse_answer(&answer("passive", 0)).unwrap();
        assert_eq!(a.remote.setup, Setup::Passive);
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

    /// SDP text written with `\n` for readability, sent with `\r\n`.
    fn crlf(text: &str) -> String {
        text.lines()
            .map(str::trim_start)
            .filter(|l| !l.is_empty())
            .fold(String::new(), |s, l| s + l + "\r\n")
    }

    /// What Chrome offers for `addTransceiver('video'|'audio', {direction:
    /// 'recvonly'})` (a WHEP player), trimmed of some of its many codecs.
    fn chrome_offer() -> String {
        crlf(
            "v=0
            o=- 4215775240449105457 2 IN IP4 127.0.0.1
            s=-
            t=0 0
            a=group:BUNDLE 0 1
            a=extmap-allow-mixed
            a=msid-semantic: WMS
            m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 104 106 108 127 39 98 100 45 112 113 116
            c=IN IP4 0.0.0.0
            a=rtcp:9 IN IP4 0.0.0.0
            a=ice-ufrag:EsAw
            a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y
            a=ice-options:trickle
            a=fingerprint:sha-256 DA:7B:57:DC:28:CE:04:4F:31:79:85:C4:31:67:EB:27:58:29:ED:77:2A:0D:24:AE:ED:AD:30:BC:BD:F1:9C:02
            a=setup:actpass
            a=mid:0
            a=extmap:14 urn:ietf:params:rtp-hdrext:toffset
            a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
            a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
            a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
            a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id
            a=recvonly
            a=rtcp-mux
            a=rtcp-rsize
            a=rtpmap:96 VP8/90000
            a=rtcp-fb:96 goog-remb
            a=rtcp-fb:96 transport-cc
            a=rtcp-fb:96 ccm fir
            a=rtcp-fb:96 nack
            a=rtcp-fb:96 nack pli
            a=rtpmap:97 rtx/90000
            a=fmtp:97 apt=96
            a=rtpmap:102 H264/90000
            a=rtcp-fb:102 transport-cc
            a=rtcp-fb:102 nack pli
            a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f
            a=rtpmap:103 rtx/90000
            a=fmtp:103 apt=102
            a=rtpmap:104 H264/90000
            a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f
            a=rtpmap:106 H264/90000
            a=rtcp-fb:106 nack
            a=rtcp-fb:106 nack pli
            a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f
            a=rtpmap:108 H264/90000
            a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f
            a=rtpmap:127 H264/90000
            a=fmtp:127 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f
            a=rtpmap:39 H264/90000
            a=fmtp:39 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f
            a=rtpmap:98 VP9/90000
            a=rtcp-fb:98 nack
            a=fmtp:98 profile-id=0
            a=rtpmap:100 VP9/90000
            a=rtcp-fb:100 nack pli
            a=fmtp:100 profile-id=2
            a=rtpmap:45 AV1/90000
            a=rtpmap:112 red/90000
            a=rtpmap:113 rtx/90000
            a=fmtp:113 apt=112
            a=rtpmap:116 ulpfec/90000
            m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
            c=IN IP4 0.0.0.0
            a=rtcp:9 IN IP4 0.0.0.0
            a=ice-ufrag:EsAw
            a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y
            a=ice-options:trickle
            a=fingerprint:sha-256 DA:7B:57:DC:28:CE:04:4F:31:79:85:C4:31:67:EB:27:58:29:ED:77:2A:0D:24:AE:ED:AD:30:BC:BD:F1:9C:02
            a=setup:actpass
            a=mid:1
            a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
            a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
            a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
            a=recvonly
            a=rtcp-mux
            a=rtcp-rsize
            a=rtpmap:111 opus/48000/2
            a=rtcp-fb:111 transport-cc
            a=fmtp:111 minptime=10;useinbandfec=1
            a=rtpmap:63 red/48000/2
            a=fmtp:63 111/111
            a=rtpmap:9 G722/8000
            a=rtpmap:0 PCMU/8000
            a=rtpmap:8 PCMA/8000
            a=rtpmap:13 CN/8000
            a=rtpmap:110 telephone-event/48000
            a=rtpmap:126 telephone-event/8000
            ",
        )
    }

    fn source(kind: MediaKind, codec: Codec, ssrc: u32) -> AnswerSource {
        AnswerSource {
            kind,
            codec,
            ssrc,
            stream_id: "p1".into(),
            track_id: format!("p1t{ssrc}"),
        }
    }

    fn video(mime: &str, fmtp: &str) -> Codec {
        Codec {
            mime_type: mime.into(),
            clock_rate: 90000,
            channels: 0,
            fmtp: fmtp.into(),
        }
    }

    /// The broadcast of most tests: Opus and VP8.
    fn broadcast() -> Vec<AnswerSource> {
        vec![
            source(MediaKind::Video, vp8(), 1001),
            source(MediaKind::Audio, opus(), 1002),
        ]
    }

    /// The answer kaigi writes to `offer` for `sources`, and its plan.
    fn answer_to(offer: &str, sources: &[AnswerSource]) -> Result<(String, AnswerPlan), PeerError> {
        let ep = endpoint();
        let offer = parse_offer(offer)?;
        let plan = plan_answer(&offer, sources)?;
        let session = LocalSession {
            session_id: 42,
            version: 2,
            ufrag: "uf",
            pwd: "pw",
            fingerprint: "sha-256 AB:CD",
            cname: "kaigi",
            endpoint: &ep,
        };
        Ok((write_answer(&session, &offer, &plan, sources), plan))
    }

    /// The lines of the m-section with `a=mid:<mid>`.
    fn section<'a>(sdp: &'a str, mid: &str) -> Vec<&'a str> {
        let mid_line = format!("a=mid:{mid}");
        sdp.split("\r\nm=")
            .skip(1)
            .find(|s| s.lines().any(|l| l == mid_line))
            .map(|s| s.lines().collect())
            .unwrap_or_default()
    }

    #[test]
    fn chrome_whep_offer_gets_the_clients_payload_types() {
        let (sdp, plan) = answer_to(&chrome_offer(), &broadcast()).unwrap();
        let desc = SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes())).unwrap();
        assert_eq!(desc.attribute("group").unwrap(), "BUNDLE 0 1");
        assert!(desc.has_attribute("ice-lite"));
        assert_eq!(plan.twcc, Some(3), "the client's TWCC id");
        let v = section(&sdp, "0");
        assert_eq!(v[0], "video 10000 UDP/TLS/RTP/SAVPF 96");
        for line in [
            "a=setup:passive",
            "a=sendonly",
            "a=rtcp-mux",
            "a=rtcp-rsize",
            "a=rtpmap:96 VP8/90000",
            "a=rtcp-fb:96 nack",
            "a=rtcp-fb:96 nack pli",
            "a=rtcp-fb:96 ccm fir",
            "a=rtcp-fb:96 transport-cc",
            "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
            "a=msid:p1 p1t1001",
            "a=ssrc:1001 cname:kaigi",
            "a=candidate:1 1 udp 2130706431 127.0.0.1 10000 typ host",
            "a=candidate:2 1 tcp 1671430143 127.0.0.1 10000 typ host tcptype passive",
            "a=end-of-candidates",
        ] {
            assert!(v.contains(&line), "video lacks {line}: {v:#?}");
        }
        assert!(!sdp.contains("goog-remb") && !sdp.contains("rtx"), "{sdp}");
        let a = section(&sdp, "1");
        assert_eq!(a[0], "audio 10000 UDP/TLS/RTP/SAVPF 111");
        for line in [
            "a=rtpmap:111 opus/48000/2",
            "a=fmtp:111 minptime=10;useinbandfec=1",
            "a=rtcp-fb:111 transport-cc",
            "a=ssrc:1002 cname:kaigi",
        ] {
            assert!(a.contains(&line), "audio lacks {line}: {a:#?}");
        }
        assert!(!a.iter().any(|l| l.contains("nack")), "no NACK for audio");
        assert_eq!(
            plan.sections
                .iter()
                .map(|c| c.as_ref().map(|c| (c.source, c.payload_type)))
                .collect::<Vec<_>>(),
            vec![Some((0, 96)), Some((1, 111))]
        );
    }

    #[test]
    fn h264_and_vp9_sources_take_the_payload_type_of_their_profile() {
        let offer = chrome_offer();
        // The payload type chosen, or none when nothing matches.
        let pt = |codec: Codec| {
            let (_, plan) = answer_to(&offer, &[source(MediaKind::Video, codec, 5)]).ok()?;
            plan.sections[0].as_ref().map(|c| c.payload_type)
        };
        let h264 = |fmtp: &str| pt(video("video/H264", fmtp));
        // Constrained Baseline, mode 1: not 102 (Baseline) nor 104 (mode 0).
        assert_eq!(
            h264("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"),
            Some(106)
        );
        assert_eq!(
            h264("packetization-mode=1;profile-level-id=42e034"),
            Some(106),
            "level ignored"
        );
        assert_eq!(
            h264("packetization-mode=1;profile-level-id=42001f"),
            Some(102)
        );
        assert_eq!(
            h264("packetization-mode=1;profile-level-id=640c2a"),
            Some(127)
        );
        assert_eq!(
            h264("packetization-mode=1;profile-level-id=64001f"),
            Some(39)
        );
        assert_eq!(h264("packetization-mode=1;profile-level-id=f4001f"), None);
        assert_eq!(
            h264("profile-level-id=42e01f"),
            Some(104),
            "mode 0 by default"
        );
        assert_eq!(pt(video("video/VP9", "profile-id=2")), Some(100));
        assert_eq!(pt(video("video/vp9", "")), Some(98), "profile 0 by default");
        assert_eq!(pt(video("video/AV1", "")), Some(45));
        assert_eq!(pt(video("video/H265", "")), None);
    }

    #[test]
    fn sections_without_a_source_are_rejected_and_left_out_of_the_bundle() {
        // Two video m-sections, one video source and no audio.
        let offer = chrome_offer().replace("a=group:BUNDLE 0 1\r\n", "a=group:BUNDLE 0 1 2\r\n");
        let second = section(&offer, "0")
            .join("\r\n")
            .replace("a=mid:0", "a=mid:2");
        let offer = format!("{offer}m={second}\r\n");
        let sources = [source(MediaKind::Video, vp8(), 7)];
        let (sdp, plan) = answer_to(&offer, &sources).unwrap();
        let desc = SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes())).unwrap();
        assert_eq!(
            desc.media_descriptions.len(),
            3,
            "one m-section per offered one"
        );
        assert_eq!(desc.attribute("group").unwrap(), "BUNDLE 0");
        assert!(plan.sections[1].is_none() && plan.sections[2].is_none());
        let audio = section(&sdp, "1");
        assert_eq!(audio[0], "audio 0 UDP/TLS/RTP/SAVPF 111");
        assert!(audio.contains(&"a=inactive") && audio.contains(&"a=rtpmap:111 opus/48000/2"));
        assert!(!audio.iter().any(|l| l.starts_with("a=candidate")));
        let extra = section(&sdp, "2");
        assert_eq!(extra[0], "video 0 UDP/TLS/RTP/SAVPF 96");
        assert!(extra.contains(&"a=inactive") && !extra.iter().any(|l| l.starts_with("a=ssrc")));
    }

    #[test]
    fn gstreamer_offer_without_twcc_on_every_section_gets_none() {
        // webrtcbin (whepsrc): its own mids, OPUS in capitals, the TWCC
        // extension on video only; no rtcp-rsize on audio.
        let offer = crlf(
            "v=0
            o=- 1488458014376862437 0 IN IP4 0.0.0.0
            s=-
            t=0 0
            a=ice-options:trickle
            a=group:BUNDLE video0 audio1
            m=video 9 UDP/TLS/RTP/SAVPF 96
            c=IN IP4 0.0.0.0
            a=setup:actpass
            a=ice-ufrag:Pzw4h+aKifg7nDrRIqnvZlINTwdnb0F6
            a=ice-pwd:hzA4KXnaDGQDoIdvtjqR9l6mQ6G82Gkn
            a=rtcp-mux
            a=rtcp-rsize
            a=recvonly
            a=rtpmap:96 VP8/90000
            a=rtcp-fb:96 nack
            a=rtcp-fb:96 nack pli
            a=rtcp-fb:96 ccm fir
            a=extmap:1 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
            a=fingerprint:sha-256 3E:E2:46:37:7B:B4:9B:8A:A0:61:D6:E5:C6:A3:A3:8C:73:54:1E:21:0A:C7:BF:4F:A8:1E:8A:94:92:A7:55:FE
            a=mid:video0
            m=audio 9 UDP/TLS/RTP/SAVPF 97
            c=IN IP4 0.0.0.0
            a=setup:actpass
            a=ice-ufrag:Pzw4h+aKifg7nDrRIqnvZlINTwdnb0F6
            a=ice-pwd:hzA4KXnaDGQDoIdvtjqR9l6mQ6G82Gkn
            a=rtcp-mux
            a=recvonly
            a=rtpmap:97 OPUS/48000/2
            a=fmtp:97 sprop-maxcapturerate=48000; sprop-stereo=0
            a=fingerprint:sha-256 3E:E2:46:37:7B:B4:9B:8A:A0:61:D6:E5:C6:A3:A3:8C:73:54:1E:21:0A:C7:BF:4F:A8:1E:8A:94:92:A7:55:FE
            a=mid:audio1
            ",
        );
        let parsed = parse_offer(&offer).unwrap();
        assert_eq!(
            parsed.sections[1].codecs[0].fmtp,
            "sprop-maxcapturerate=48000; sprop-stereo=0"
        );
        let (sdp, plan) = answer_to(&offer, &broadcast()).unwrap();
        assert_eq!(plan.twcc, None, "audio does not map the extension");
        assert!(
            !sdp.contains("extmap") && !sdp.contains("transport-cc"),
            "{sdp}"
        );
        assert!(sdp.contains("a=group:BUNDLE video0 audio1\r\n"));
        let a = section(&sdp, "audio1");
        assert_eq!(a[0], "audio 10000 UDP/TLS/RTP/SAVPF 97");
        assert!(a.contains(&"a=rtpmap:97 opus/48000/2"), "{a:#?}");
        assert!(
            !a.contains(&"a=rtcp-rsize"),
            "rtcp-rsize only where offered"
        );
        assert!(section(&sdp, "video0").contains(&"a=rtcp-fb:96 ccm fir"));
    }

    /// An FFmpeg-like player: waits as DTLS server, trickles nothing, no BUNDLE.
    fn passive_offer() -> String {
        crlf(
            "v=0
            o=FFmpeg 4489045141692799359 2 IN IP4 127.0.0.1
            s=FFmpegPlaySession
            t=0 0
            m=audio 9 UDP/TLS/RTP/SAVPF 111
            c=IN IP4 0.0.0.0
            a=ice-ufrag:a174B
            a=ice-pwd:wY8rJ3gNLxL3eWZs6UKOxy
            a=fingerprint:sha-256 EE:FE:AA:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC
            a=setup:passive
            a=mid:0
            a=recvonly
            a=rtcp-mux
            a=rtpmap:111 opus/48000/2
            m=video 9 UDP/TLS/RTP/SAVPF 106
            c=IN IP4 0.0.0.0
            a=ice-ufrag:a174B
            a=ice-pwd:wY8rJ3gNLxL3eWZs6UKOxy
            a=fingerprint:sha-256 EE:FE:AA:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC
            a=setup:passive
            a=mid:1
            a=recvonly
            a=rtcp-mux
            a=rtpmap:106 H264/90000
            a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f
            ",
        )
    }

    #[test]
    fn passive_offer_makes_kaigi_the_dtls_client_and_is_bundled_anyway() {
        let offer = passive_offer();
        let parsed = parse_offer(&offer).unwrap();
        assert_eq!(parsed.remote.setup, Setup::Passive);
        assert_eq!(parsed.remote.ufrag, "a174B");
        let sources = [
            source(MediaKind::Audio, opus(), 1),
            source(
                MediaKind::Video,
                video("video/H264", "packetization-mode=1;profile-level-id=42e01f"),
                2,
            ),
        ];
        let (sdp, plan) = answer_to(&offer, &sources).unwrap();
        assert_eq!(sdp.matches("a=setup:active\r\n").count(), 2, "{sdp}");
        assert!(!sdp.contains("a=setup:passive"));
        assert!(sdp.contains("a=group:BUNDLE 0 1\r\n"), "max-bundle: {sdp}");
        assert!(sdp.contains("a=rtpmap:106 H264/90000\r\n"));
        assert!(
            sdp.contains("a=fmtp:106 packetization-mode=1;profile-level-id=42e01f\r\n"),
            "the source's fmtp"
        );
        assert!(
            !sdp.contains("rtcp-fb"),
            "no feedback offered, none answered"
        );
        assert_eq!(plan.twcc, None);
        // The same offer from a client that takes the DTLS client role.
        let active = offer.replace("a=setup:passive", "a=setup:active");
        assert_eq!(parse_offer(&active).unwrap().remote.setup, Setup::Active);
        let (sdp, _) = answer_to(&active, &sources).unwrap();
        assert!(sdp.contains("a=setup:passive\r\n") && !sdp.contains("a=setup:active"));
    }

    #[test]
    fn bad_offers_are_refused_with_a_reason() {
        let reason = |offer: &str, sources: &[AnswerSource]| match answer_to(offer, sources) {
            Err(PeerError::BadSdp(r)) => r,
            other => panic!("accepted: {other:?}"),
        };
        let chrome = chrome_offer();
        assert!(parse_offer("garbage").is_err());
        let no_ufrag: String = chrome
            .lines()
            .filter(|l| !l.starts_with("a=ice-ufrag"))
            .fold(String::new(), |s, l| s + l + "\r\n");
        assert_eq!(reason(&no_ufrag, &broadcast()), "no a=ice-ufrag");
        let no_fp: String = chrome
            .lines()
            .filter(|l| !l.starts_with("a=fingerprint"))
            .fold(String::new(), |s, l| s + l + "\r\n");
        assert_eq!(reason(&no_fp, &broadcast()), "no sha-256 a=fingerprint");
        let no_mux = chrome.replace("a=rtcp-mux\r\n", "");
        assert!(reason(&no_mux, &broadcast()).contains("no a=rtcp-mux"));
        assert_eq!(
            reason(
                &chrome.replace("VP8/", "XX/").replace("opus/", "xx/"),
                &broadcast()
            ),
            "no offered codec matches the broadcast (VP8, opus)"
        );
        assert_eq!(
            reason(&chrome, &[]),
            "no offered codec matches the broadcast (nothing is published)"
        );
        let send_only = chrome.replace("a=recvonly", "a=sendonly");
        assert!(
            reason(&send_only, &broadcast())
                .contains("no audio or video m-section that can receive")
        );
        let lite = chrome.replace("t=0 0\r\n", "t=0 0\r\na=ice-lite\r\n");
        assert!(reason(&lite, &broadcast()).contains("ICE-lite"));
        let holdconn = chrome.replace("a=setup:actpass", "a=setup:holdconn");
        assert_eq!(
            reason(&holdconn, &broadcast()),
            "a=setup:holdconn in an offer"
        );
        let no_mid: String = chrome
            .lines()
            .filter(|l| !l.starts_with("a=mid"))
            .fold(String::new(), |s, l| s + l + "\r\n");
        assert!(reason(&no_mid, &broadcast()).contains("a=mid"));
    }

    #[test]
    fn h264_profiles_are_told_apart_like_libwebrtc() {
        let p = |id: &str| h264_profile(&format!("profile-level-id={id}"));
        assert_eq!(p("42e01f"), Some(H264Profile::ConstrainedBaseline));
        assert_eq!(p("4d801f"), Some(H264Profile::ConstrainedBaseline));
        assert_eq!(p("42001f"), Some(H264Profile::Baseline));
        assert_eq!(p("4d001f"), Some(H264Profile::Main));
        assert_eq!(p("640c1f"), Some(H264Profile::ConstrainedHigh));
        assert_eq!(p("64001f"), Some(H264Profile::High));
        assert_eq!(p("7a001f"), Some(H264Profile::Other(0x7a, 0)));
        assert_eq!(p("42e0"), None);
        assert_eq!(p("zze01f"), None);
        assert_eq!(h264_profile(""), Some(H264Profile::ConstrainedBaseline));
    }
}
