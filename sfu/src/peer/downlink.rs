//! kaigi's own transport for the subscribe side: ICE-lite, DTLS-SRTP, RTP out,
//! RTCP feedback in.
//!
//! Why not an `RTCPeerConnection` like the publish side: the forward path is
//! (packets in) × (subscribers) × (encrypt + send), and the profile of the
//! general stack's write pipeline showed ~80% of the per-subscriber cost in
//! moving each packet through interceptor and handler queues, with ~340 KiB of
//! state per subscriber. A subscribe connection only sends media and hears
//! feedback, so it is small enough to own: this file writes the RTP header,
//! encrypts with the subscriber's SRTP context and queues the datagram, and
//! answers NACKs from a history that shares payloads with every other
//! subscriber. The DTLS handshake, SRTP ciphers, STUN and RTCP codecs are still
//! the `rtc` project's crates.
//!
//! Either side may offer, once: in a meeting kaigi offers and renegotiates as
//! tracks come and go ([`Downlink::create_offer`]); for WHEP playback the
//! player offers receive-only m-sections and kaigi answers
//! ([`Downlink::answer_offer`]), and that session is never renegotiated.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use rtc::crypto::RTCCryptoProvider;
use rtc::dtls::config::{ClientAuthType, ConfigBuilder, ExtendedMasterSecretType, HandshakeConfig};
use rtc::dtls::endpoint::{Endpoint as DtlsEndpoint, EndpointEvent};
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::source_description::{
    SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem,
};
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::shared::TransportProtocol;
use rtc::srtp::context::Context as SrtpContext;
use rtc::srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use rtc::srtp::protection_profile::ProtectionProfile;

use super::ice_lite::{self, Refused};
use super::sdp::{self, LocalSession, LocalStream, OfferSection, Setup};
use super::{
    Codec, DtlsIdentity, PeerConfig, PeerError, PeerEvent, RtpPacket, Transmit, Transport,
};
use crate::MediaKind;
use crate::bwe::{BweConfig, SendSideBwe};
use crate::codec::{self, VideoCodec};
use crate::net::demux::{PacketClass, classify, is_rtcp};

// The sources `answer_offer` takes, named with the downlink that answers.
pub use super::sdp::AnswerSource;

/// Packets kept per outgoing video stream to answer NACKs (a power of two):
/// ~2.5 s of 1 Mbit/s video. Entries share payloads with every other subscriber.
const NACK_HISTORY: usize = 256;
/// Retransmissions answered per NACK message, so that one message cannot
/// make kaigi send a burst.
const MAX_RETRANSMITS_PER_NACK: usize = 64;
/// No consent (RFC 7675: 30 s without a check) ends the connection.
const CONSENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Sender reports, for the client's lip sync and round-trip estimate.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// DTLS records that arrive before the client's answer is applied (its
/// fingerprint is needed to check them) wait here.
const MAX_EARLY_DTLS: usize = 16;
/// The DTLS association is keyed by this address whatever path the client
/// uses, so that a path change keeps the session.
const DTLS_KEY: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 9);
/// Seconds from 1900 (NTP) to 1970 (Unix).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
/// Padding bytes in one probe packet: the most an RTP padding count can say.
const PADDING: usize = 255;
/// How long one probe cluster lasts: long enough for a few feedback-visible
/// packets at low rates, short enough not to fill a slow link's queue.
const PROBE_DURATION: Duration = Duration::from_millis(100);
/// The longest probe (at the lowest rates).
const PROBE_MAX_DURATION: Duration = Duration::from_millis(400);
/// Padding packets a probe aims to send at least.
const PROBE_MIN_PACKETS: u64 = 12;
/// How often padding is sent during a probe.
const PROBE_TICK: Duration = Duration::from_millis(5);
/// How often the downlink considers probing when it wants more than its estimate.
const PROBE_CHECK: Duration = Duration::from_millis(250);

/// One sender of a downlink: a handle that stays valid until removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SenderId(u32);

/// Which side offers: decided by the first negotiation, for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Negotiation {
    /// Neither yet.
    Open,
    /// kaigi offers, the client answers (a meeting's subscribe connection).
    KaigiOffers,
    /// The client offered and kaigi answered (WHEP playback).
    ClientOffered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    New,
    Connecting,
    Connected,
    Failed,
}

/// An m-section: created with a sender, kept (inactive) after it goes.
struct Section {
    mid: String,
    kind: MediaKind,
    sender: Option<SenderId>,
}

/// A sent packet, kept to answer a NACK.
#[derive(Clone)]
struct Sent {
    seq: u16,
    timestamp: u32,
    marker: bool,
    payload: Bytes,
    /// The VP8 renumbering it was sent with.
    vp8: Vp8Delta,
}

/// How VP8 picture ids and TL0PICIDX are renumbered on the way out: each
/// simulcast layer counts on its own, and a receiver must see one sequence.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Vp8Delta {
    picture_id: u16,
    tl0: u8,
}

/// Padding sent to find out whether the link carries more (a probe cluster).
struct Probe {
    cluster: u32,
    bps: u64,
    start: Instant,
    end: Instant,
    /// Bytes sent since `start` (media and padding).
    bytes: u64,
}

/// One outgoing stream.
struct OutStream {
    id: SenderId,
    kind: MediaKind,
    codec: Codec,
    ssrc: u32,
    /// Payload type offered for the codec.
    offered_pt: u8,
    /// The offered payload type once an answer accepted it.
    negotiated_pt: Option<u8>,
    stream_id: String,
    track_id: String,
    packets: u32,
    octets: u32,
    last_timestamp: u32,
    last_sent: Option<Instant>,
    /// Video only, allocated on the first packet.
    history: Option<Box<[Option<Sent>]>>,
    /// Outgoing = incoming − offset: sequence numbers stay continuous when
    /// the stream resumes after a pause (no gap for the receiver to NACK).
    seq_offset: u16,
    /// The last outgoing sequence number.
    last_seq: Option<u16>,
    /// The next packet re-bases the offsets: the source was paused or
    /// switched to another simulcast layer.
    resync: bool,
    /// Outgoing = incoming + offset (wrapping): timestamps continue across
    /// a switch between layers, whose clocks start at random values.
    ts_offset: u32,
    /// VP8 only: renumbering of picture ids, and the last ones sent
    /// (picture id, whether it has 15 bits; TL0PICIDX).
    vp8: Option<Vp8Delta>,
    last_picture_id: Option<(u16, bool)>,
    last_tl0: Option<u8>,
}

struct Srtp {
    out: SrtpContext,
    inbound: SrtpContext,
}

/// A subscribe connection: kaigi offers and the client answers (or, for
/// WHEP, the client offers and kaigi answers); kaigi sends.
pub struct Downlink {
    ufrag: String,
    pwd: String,
    crypto: Arc<dyn RTCCryptoProvider>,
    identity: Arc<DtlsIdentity>,
    endpoint: super::Endpoint,
    session_id: u64,
    version: u64,
    cname: String,
    negotiation: Negotiation,
    sections: Vec<Section>,
    /// The m-sections of the last offer: (mid, sender) as offered. Senders
    /// added since wait for the next offer.
    offered: Vec<(String, Option<SenderId>)>,
    streams: Vec<OutStream>,
    next_sender: u32,
    /// (mime, fmtp) → payload type, unique across the BUNDLE group.
    payload_types: Vec<(String, String, u8)>,
    remote_ufrag: Option<String>,
    /// Where media goes: the pair the client nominated (or checked first).
    path: Option<(SocketAddr, Transport)>,
    /// The client has nominated a pair (USE-CANDIDATE).
    nominated: bool,
    last_check: Option<Instant>,
    /// When the first answer arrived (consent is counted from then).
    answered: Option<Instant>,
    dtls: Option<DtlsEndpoint>,
    /// The client config, kept until a path exists when kaigi is the DTLS client.
    dtls_client: Option<Arc<HandshakeConfig>>,
    early_dtls: Vec<BytesMut>,
    srtp: Option<Srtp>,
    state: State,
    transmits: VecDeque<Transmit>,
    events: VecDeque<PeerEvent>,
    next_report: Option<Instant>,
    /// (monotonic, wall) at creation, for NTP timestamps in sender reports.
    clock: (Instant, SystemTime),
    last_now: Instant,
    /// The transport-wide sequence number extension id the client accepted.
    twcc_id: Option<u8>,
    twcc_seq: u16,
    /// The RTP header handed to SRTP when packets carry the extension (kept
    /// to avoid building its extension list per packet).
    twcc_header: rtc::rtp::header::Header,
    /// The estimate of the client's downlink, fed by its feedback.
    bwe: SendSideBwe,
    /// Whether feedback of any kind (TWCC or receiver reports) has arrived.
    heard: bool,
    /// What the worker would send if the link allowed: probing aims there.
    wanted_bps: u64,
    probe: Option<Probe>,
    next_probe_check: Option<Instant>,
    /// The first media packet has gone out (reported once, for the metrics).
    first_media: bool,
}

impl Downlink {
    /// A subscribe connection with these ICE credentials; nothing to send yet.
    pub fn new(now: Instant, cfg: &PeerConfig, ufrag: String, pwd: String) -> Self {
        let session_id = fnv1a(ufrag.as_bytes()) & 0x7fff_ffff_ffff_ffff;
        Downlink {
            cname: format!("kaigi-{ufrag}"),
            ufrag,
            pwd,
            crypto: cfg.crypto.clone(),
            identity: cfg.identity.clone(),
            endpoint: cfg.endpoint.clone(),
            session_id,
            version: 1,
            negotiation: Negotiation::Open,
            sections: Vec::new(),
            offered: Vec::new(),
            streams: Vec::new(),
            next_sender: 0,
            payload_types: Vec::new(),
            remote_ufrag: None,
            path: None,
            nominated: false,
            last_check: None,
            answered: None,
            dtls: None,
            dtls_client: None,
            early_dtls: Vec::new(),
            srtp: None,
            state: State::New,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_report: None,
            clock: (now, SystemTime::now()),
            last_now: now,
            twcc_id: None,
            twcc_seq: 0,
            twcc_header: rtc::rtp::header::Header::default(),
            bwe: SendSideBwe::new(BweConfig::default(), now),
            heard: false,
            wanted_bps: 0,
            probe: None,
            next_probe_check: None,
            first_media: false,
        }
    }

    /// The estimate of this client's downlink in bits per second, once its
    /// feedback has been heard (transport-wide feedback or receiver reports).
    pub fn estimate_bps(&self) -> Option<u64> {
        self.heard.then(|| self.bwe.estimate_bps())
    }

    /// What the worker would send this client if the link allowed it: when
    /// that is more than the estimate, the downlink probes for more.
    pub fn set_wanted_bps(&mut self, now: Instant, bps: u64) {
        self.wanted_bps = bps;
        if self.next_probe_check.is_none() && self.twcc_id.is_some() {
            self.next_probe_check = Some(now + PROBE_CHECK);
        }
    }

    /// The ICE username fragment of this side: the demultiplexing key.
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// Whether ICE and DTLS are up.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    fn payload_type(&mut self, codec: &Codec) -> u8 {
        let mime = codec.mime_type.to_ascii_lowercase();
        if let Some(&(_, _, pt)) = self
            .payload_types
            .iter()
            .find(|(m, f, _)| *m == mime && *f == codec.fmtp)
        {
            return pt;
        }
        let taken = |pt: u8, list: &[(String, String, u8)]| list.iter().any(|e| e.2 == pt);
        let mut pt = sdp::preferred_payload_type(codec);
        if taken(pt, &self.payload_types) {
            pt = (96..=127)
                .chain(35..=63)
                .find(|&p| !taken(p, &self.payload_types) && p != 111)
                .unwrap_or(127);
        }
        self.payload_types.push((mime, codec.fmtp.clone(), pt));
        pt
    }

    /// Adds an outgoing track carrying another participant's media; it is
    /// offered at the next [`Self::create_offer`]. `stream_id` becomes the msid
    /// stream id the client sees. An error on a connection that answered a
    /// client's offer: its m-sections are fixed (WHEP is not renegotiated).
    pub fn add_sender(
        &mut self,
        stream_id: &str,
        track_id: &str,
        kind: MediaKind,
        codec: &Codec,
        ssrc: u32,
    ) -> Result<SenderId, PeerError> {
        if self.negotiation == Negotiation::ClientOffered {
            return Err(PeerError::Rtc(
                "senders of an answered (WHEP) connection are fixed by its offer".into(),
            ));
        }
        if self.streams.iter().any(|s| s.ssrc == ssrc) {
            return Err(PeerError::Rtc(format!("SSRC {ssrc} already in use")));
        }
        let pt = self.payload_type(codec);
        let source = AnswerSource {
            kind,
            codec: codec.clone(),
            ssrc,
            stream_id: stream_id.to_owned(),
            track_id: track_id.to_owned(),
        };
        let id = self.push_stream(source, pt);
        // Reuse an inactive m-section of the same kind, as browsers do.
        match self
            .sections
            .iter_mut()
            .find(|s| s.kind == kind && s.sender.is_none())
        {
            Some(s) => s.sender = Some(id),
            None => {
                let mid = self.sections.len().to_string();
                self.sections.push(Section {
                    mid,
                    kind,
                    sender: Some(id),
                });
            }
        }
        Ok(id)
    }

    /// A new outgoing stream of `source` with payload type `pt` (offered, or
    /// the client's when kaigi answers).
    fn push_stream(&mut self, source: AnswerSource, pt: u8) -> SenderId {
        let id = SenderId(self.next_sender);
        self.next_sender = self.next_sender.wrapping_add(1);
        let vp8 = (VideoCodec::from_mime(&source.codec.mime_type) == VideoCodec::Vp8)
            .then(Vp8Delta::default);
        self.streams.push(OutStream {
            id,
            kind: source.kind,
            codec: source.codec,
            ssrc: source.ssrc,
            offered_pt: pt,
            negotiated_pt: None,
            stream_id: source.stream_id,
            track_id: source.track_id,
            packets: 0,
            octets: 0,
            last_timestamp: 0,
            last_sent: None,
            history: None,
            seq_offset: 0,
            last_seq: None,
            resync: false,
            ts_offset: 0,
            vp8,
            last_picture_id: None,
            last_tl0: None,
        });
        id
    }

    /// Removes an outgoing track; its m-section goes inactive at the next
    /// offer (on an answered connection, it just stays silent).
    pub fn remove_sender(&mut self, sender: SenderId) -> Result<(), PeerError> {
        let Some(pos) = self.streams.iter().position(|s| s.id == sender) else {
            return Err(PeerError::Rtc("no such sender".into()));
        };
        self.streams.swap_remove(pos);
        for s in &mut self.sections {
            if s.sender == Some(sender) {
                s.sender = None;
            }
        }
        Ok(())
    }

    /// The payload type the client accepted for `sender`, once the answer is
    /// applied (or the client's own, once its offer is answered).
    pub fn sender_payload_type(&self, sender: SenderId, _codec: &Codec) -> Option<u8> {
        self.streams
            .iter()
            .find(|s| s.id == sender)
            .and_then(|s| s.negotiated_pt)
    }

    /// What every description kaigi writes says about the session.
    fn local_session(&self) -> LocalSession<'_> {
        LocalSession {
            session_id: self.session_id,
            version: self.version,
            ufrag: &self.ufrag,
            pwd: &self.pwd,
            fingerprint: &self.identity.fingerprint,
            cname: &self.cname,
            endpoint: &self.endpoint,
        }
    }

    /// An offer for the current senders. An error on a connection that
    /// answered a client's offer (WHEP is not renegotiated).
    pub fn create_offer(&mut self, _now: Instant) -> Result<String, PeerError> {
        if self.negotiation == Negotiation::ClientOffered {
            return Err(PeerError::Rtc(
                "an answered (WHEP) connection is not renegotiated".into(),
            ));
        }
        self.negotiation = Negotiation::KaigiOffers;
        self.version += 1;
        self.offered = self
            .sections
            .iter()
            .map(|s| (s.mid.clone(), s.sender))
            .collect();
        let sections: Vec<OfferSection<'_>> = self
            .sections
            .iter()
            .map(|sec| OfferSection {
                mid: &sec.mid,
                kind: sec.kind,
                stream: sec
                    .sender
                    .and_then(|id| self.streams.iter().find(|s| s.id == id))
                    .map(|s| LocalStream {
                        payload_type: s.offered_pt,
                        codec: &s.codec,
                        ssrc: s.ssrc,
                        stream_id: &s.stream_id,
                        track_id: &s.track_id,
                    }),
            })
            .collect();
        Ok(sdp::write_offer(&self.local_session(), &sections))
    }

    /// Applies the client's answer to the last offer.
    pub fn apply_answer(&mut self, now: Instant, answer_sdp: String) -> Result<(), PeerError> {
        if self.negotiation != Negotiation::KaigiOffers {
            return Err(PeerError::Rtc(
                "an answer, but kaigi has not offered".into(),
            ));
        }
        let answer = sdp::parse_answer(&answer_sdp)?;
        let twcc = sdp::extmap_id(&answer_sdp, sdp::TWCC_URI).filter(|id| (1..=14).contains(id));
        if answer.sections.len() != self.offered.len() {
            return Err(PeerError::BadSdp(format!(
                "the answer has {} m-sections, the offer {}",
                answer.sections.len(),
                self.offered.len()
            )));
        }
        for ((mid, _), (answered, _)) in self.offered.iter().zip(&answer.sections) {
            if answered != mid {
                return Err(PeerError::BadSdp(format!(
                    "m-section {mid} answered as mid {answered}"
                )));
            }
        }
        // Checked before anything changes: a refused answer leaves the connection as it was.
        let dtls = match self.dtls {
            None if self.state != State::Failed => Some(self.dtls_config(
                &answer.remote.fingerprints,
                answer.remote.setup == Setup::Passive,
            )?),
            _ => None,
        };
        for ((_, sender), (_, pts)) in self.offered.iter().zip(&answer.sections) {
            let Some(id) = sender else { continue };
            if let Some(s) = self.streams.iter_mut().find(|s| s.id == *id) {
                s.negotiated_pt = pts.contains(&s.offered_pt).then_some(s.offered_pt);
            }
        }
        self.remote_ufrag = Some(answer.remote.ufrag);
        self.set_twcc(twcc);
        if let Some(config) = dtls {
            self.start_dtls(now, config, answer.remote.setup)?;
        }
        Ok(())
    }

    /// Applies a client's offer (WHEP: it offers receive-only m-sections and
    /// kaigi answers) and returns kaigi's answer SDP and, for each source
    /// used, its index in `sources` and the sender carrying it (in the
    /// order of the offer's m-sections).
    ///
    /// Each offered audio or video m-section that can receive (`recvonly` or
    /// `sendrecv`) is given the first unused source of its kind whose codec
    /// the client offered: the same encoding name (any case), clock rate and
    /// channels, and for H.264 the same packetization mode and profile
    /// (Constrained Baseline, Baseline, Main, High…, as libwebrtc groups
    /// `profile-level-id`; levels are not compared), for VP9 and AV1 the same
    /// profile. The answer carries it on the client's payload type for that
    /// codec, with the source's fmtp, `a=sendonly`, its `a=msid` and SSRC,
    /// and of the RTCP feedback the client offered what kaigi acts on (NACK,
    /// PLI and FIR for video; transport-cc). Other m-sections are answered
    /// rejected (port 0, `a=inactive`).
    ///
    /// The transport: kaigi is ICE-lite with the same candidates as in its
    /// offers; it is the DTLS server (`a=setup:passive`) unless the client
    /// offers `a=setup:passive`, then the client (`active`). Every accepted
    /// m-section is answered in one BUNDLE group even when the offer did
    /// not group them: kaigi has one 5-tuple per connection, and max-bundle
    /// is what every WHEP player supports. `a=rtcp-mux` is required.
    /// Transport-wide sequence numbers are sent when every accepted
    /// m-section maps the extension (to one id, the client's); otherwise the
    /// estimate of the client's downlink comes from its receiver reports.
    ///
    /// Errors, with nothing changed: [`PeerError::BadSdp`] for an offer that
    /// cannot be parsed or lacks what the transport needs, or in which no
    /// m-section could be given a source ("no offered codec matches the
    /// broadcast (VP8, opus)"); [`PeerError::Rtc`] when this connection has
    /// offered or has senders already, or two sources share an SSRC. The
    /// session is not renegotiated afterwards: [`Self::create_offer`] and
    /// [`Self::add_sender`] are errors, and an ICE restart (a WHEP PATCH) is
    /// not supported; a client that needs one starts a new session.
    pub fn answer_offer(
        &mut self,
        now: Instant,
        offer_sdp: &str,
        sources: &[AnswerSource],
    ) -> Result<(String, Vec<(usize, SenderId)>), PeerError> {
        if self.negotiation != Negotiation::Open || !self.streams.is_empty() {
            return Err(PeerError::Rtc(
                "answer_offer needs a fresh connection: this one has offered or has senders".into(),
            ));
        }
        let offer = sdp::parse_offer(offer_sdp)?;
        let plan = sdp::plan_answer(&offer, sources)?;
        let chosen: Vec<&sdp::Chosen> = plan.sections.iter().flatten().collect();
        for (i, c) in chosen.iter().enumerate() {
            let ssrc = sources[c.source].ssrc;
            if chosen[..i].iter().any(|o| sources[o.source].ssrc == ssrc) {
                return Err(PeerError::Rtc(format!("SSRC {ssrc} already in use")));
            }
        }
        let config = self.dtls_config(
            &offer.remote.fingerprints,
            offer.remote.setup == Setup::Passive,
        )?;
        self.negotiation = Negotiation::ClientOffered;
        self.version += 1;
        let answer = sdp::write_answer(&self.local_session(), &offer, &plan, sources);
        let mut senders = Vec::with_capacity(chosen.len());
        for c in chosen {
            let id = self.push_stream(sources[c.source].clone(), c.payload_type);
            if let Some(s) = self.streams.last_mut() {
                s.negotiated_pt = Some(c.payload_type);
            }
            senders.push((c.source, id));
        }
        self.remote_ufrag = Some(offer.remote.ufrag);
        self.set_twcc(plan.twcc);
        self.start_dtls(now, config, offer.remote.setup)?;
        Ok((answer, senders))
    }

    /// Writes transport-wide sequence numbers with extension `id` from now on (or none).
    fn set_twcc(&mut self, id: Option<u8>) {
        if id == self.twcc_id {
            return;
        }
        self.twcc_id = id;
        if let Some(id) = id {
            self.twcc_header = rtc::rtp::header::Header {
                version: 2,
                extension: true,
                extension_profile: 0xBEDE,
                extensions: vec![rtc::rtp::header::Extension {
                    id,
                    payload: Bytes::from_static(&[0, 0]),
                }],
                ..Default::default()
            };
        }
    }

    /// Sets up DTLS once the client's fingerprints and role are known: as
    /// server it waits for the client's hello, as client it connects once
    /// ICE has a nominated path. Consent is counted from now.
    fn start_dtls(
        &mut self,
        now: Instant,
        config: Arc<HandshakeConfig>,
        client_role: Setup,
    ) -> Result<(), PeerError> {
        match client_role {
            Setup::Active => {
                self.dtls = Some(DtlsEndpoint::new(
                    DTLS_KEY,
                    TransportProtocol::UDP,
                    Some(config),
                ));
            }
            Setup::Passive => {
                self.dtls = Some(DtlsEndpoint::new(DTLS_KEY, TransportProtocol::UDP, None));
                self.dtls_client = Some(config);
            }
        }
        self.answered = Some(now);
        self.state = State::Connecting;
        self.maybe_connect_dtls(now);
        for data in std::mem::take(&mut self.early_dtls) {
            self.dtls_read(now, data)?;
        }
        Ok(())
    }

    fn dtls_config(
        &self,
        fingerprints: &[String],
        is_client: bool,
    ) -> Result<Arc<HandshakeConfig>, PeerError> {
        let expected = fingerprints.to_vec();
        let crypto = self.crypto.clone();
        let verify: rtc::dtls::config::VerifyPeerCertificateFn =
            Arc::new(move |certs: &[Vec<u8>], _chains| {
                let Some(cert) = certs.first() else {
                    return Err(rtc::shared::error::Error::ErrNonCertificate);
                };
                let fp = super::fingerprint_of(crypto.crypto(), cert)
                    .map_err(|e| rtc::shared::error::Error::Other(e.to_string()))?;
                if expected.contains(&fp) {
                    Ok(())
                } else {
                    Err(rtc::shared::error::Error::ErrNoMatchingCertificateFingerprint)
                }
            });
        let config = ConfigBuilder::default()
            .with_crypto_provider(self.crypto.clone())
            .with_certificates(vec![self.identity.certificate.clone()])
            .with_srtp_protection_profiles(vec![
                SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
                SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
            ])
            .with_client_auth(ClientAuthType::RequireAnyClientCert)
            .with_insecure_skip_verify(true)
            .with_verify_peer_certificate(Some(verify))
            .with_extended_master_secret(ExtendedMasterSecretType::Require)
            .build(is_client, None)
            .map_err(|e| PeerError::Rtc(e.to_string()))?;
        Ok(Arc::new(config))
    }

    /// As DTLS client, start the handshake once ICE has a path.
    fn maybe_connect_dtls(&mut self, now: Instant) {
        if self.path.is_none() || !self.nominated {
            return;
        }
        let (Some(dtls), Some(config)) = (self.dtls.as_mut(), self.dtls_client.take()) else {
            return;
        };
        if let Err(e) = dtls.connect(now, DTLS_KEY, config, None) {
            tracing::debug!(error = %e, "DTLS connect failed");
            self.fail();
            return;
        }
        self.drain_dtls();
    }

    /// Trickled client candidates are not needed: an ICE-lite side learns the
    /// client's addresses from its checks.
    pub fn add_remote_candidate(
        &mut self,
        _candidate: String,
        _sdp_mid: Option<String>,
        _sdp_mline_index: Option<u16>,
    ) -> Result<(), PeerError> {
        Ok(())
    }

    /// Feeds one received datagram.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: Transport,
        data: BytesMut,
    ) -> Result<(), PeerError> {
        self.last_now = now;
        match classify(&data) {
            PacketClass::Stun => self.stun(now, from, transport, &data),
            PacketClass::Dtls => {
                if !self.is_path(from, transport) {
                    return Err(PeerError::Rtc("DTLS from an unchecked address".into()));
                }
                if self.dtls.is_none() {
                    if self.early_dtls.len() >= MAX_EARLY_DTLS {
                        return Err(PeerError::Rtc("DTLS before the answer: queue full".into()));
                    }
                    self.early_dtls.push(data);
                    return Ok(());
                }
                self.dtls_read(now, data)
            }
            PacketClass::Rtp => {
                if !self.is_path(from, transport) {
                    return Err(PeerError::Rtc("SRTP from an unchecked address".into()));
                }
                self.srtcp(now, &data)
            }
            PacketClass::Other => Err(PeerError::Rtc("not STUN, DTLS or SRTP".into())),
        }
    }

    fn is_path(&self, from: SocketAddr, transport: Transport) -> bool {
        self.path == Some((from, transport))
    }

    fn stun(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: Transport,
        data: &[u8],
    ) -> Result<(), PeerError> {
        let check = ice_lite::answer_check(
            data,
            from,
            &self.ufrag,
            &self.pwd,
            self.remote_ufrag.as_deref(),
            self.crypto.crypto(),
        )
        .map_err(|r| {
            PeerError::Rtc(match r {
                Refused::NotARequest => "STUN: not a binding request".into(),
                Refused::WrongUsername => "STUN: wrong username".into(),
                Refused::BadIntegrity => "STUN: bad message integrity".into(),
            })
        })?;
        if self.state == State::Failed {
            return Ok(());
        }
        self.last_check = Some(now);
        self.transmits.push_back(Transmit {
            to: from,
            transport,
            data: BytesMut::from(&check.response[..]),
        });
        if self.path.is_none() || (check.nominated && self.path != Some((from, transport))) {
            self.path = Some((from, transport));
        }
        // As DTLS client, wait for the nomination: before it the client may not
        // yet take DTLS on this pair, and a lost first flight costs a 1 s retransmit.
        if check.nominated {
            self.nominated = true;
            self.maybe_connect_dtls(now);
        }
        Ok(())
    }

    fn dtls_read(&mut self, now: Instant, data: BytesMut) -> Result<(), PeerError> {
        let Some(dtls) = self.dtls.as_mut() else {
            return Ok(());
        };
        let result = dtls.read(now, DTLS_KEY, None, data);
        self.drain_dtls();
        let events = match result {
            Ok(events) => events,
            Err(e) => {
                // A handshake that cannot complete ends the connection; a stray
                // record after it does not.
                if self.srtp.is_none() {
                    self.fail();
                }
                return Err(PeerError::Rtc(format!("DTLS: {e}")));
            }
        };
        for ev in events {
            match ev {
                EndpointEvent::HandshakeComplete => self.on_handshake(now)?,
                EndpointEvent::PeerClosed => self.fail(),
                _ => {}
            }
        }
        Ok(())
    }

    fn drain_dtls(&mut self) {
        let Some(dtls) = self.dtls.as_mut() else {
            return;
        };
        while let Some(msg) = dtls.poll_transmit() {
            if let Some((to, transport)) = self.path {
                self.transmits.push_back(Transmit {
                    to,
                    transport,
                    data: msg.message,
                });
            }
        }
    }

    fn on_handshake(&mut self, now: Instant) -> Result<(), PeerError> {
        let err = |e: rtc::shared::error::Error| PeerError::Rtc(format!("SRTP keys: {e}"));
        let state = self
            .dtls
            .as_ref()
            .and_then(|d| d.get_connection_state(DTLS_KEY))
            .ok_or_else(|| PeerError::Rtc("DTLS state gone".into()))?;
        let profile = match state.srtp_protection_profile() {
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => ProtectionProfile::AeadAes128Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => {
                ProtectionProfile::Aes128CmHmacSha1_80
            }
            other => {
                self.fail();
                return Err(PeerError::Rtc(format!(
                    "SRTP profile {other:?} not offered"
                )));
            }
        };
        let mut config = rtc::srtp::config::Config {
            profile,
            ..Default::default()
        };
        let material = state
            .export_keying_material(
                rtc::srtp::config::LABEL_EXTRACTOR_DTLS_SRTP,
                &[],
                config.keying_material_len(),
            )
            .map_err(err)?;
        config
            .set_session_keys_from_keying_material(material.as_ref(), state.is_client())
            .map_err(err)?;
        let crypto = self.crypto.crypto();
        let out = SrtpContext::new(
            &config.keys.local_master_key,
            &config.keys.local_master_salt,
            profile,
            None,
            None,
            crypto,
        )
        .map_err(err)?;
        let inbound = SrtpContext::new(
            &config.keys.remote_master_key,
            &config.keys.remote_master_salt,
            profile,
            Some(srtp_replay_protection(64)),
            Some(srtcp_replay_protection(64)),
            crypto,
        )
        .map_err(err)?;
        self.srtp = Some(Srtp { out, inbound });
        self.state = State::Connected;
        self.next_report = Some(now + REPORT_INTERVAL);
        self.events.push_back(PeerEvent::Connected);
        Ok(())
    }

    fn fail(&mut self) {
        if self.state != State::Failed {
            self.state = State::Failed;
            self.srtp = None;
            self.events.push_back(PeerEvent::Failed);
        }
    }

    /// Client feedback: NACKs are answered from the history, keyframe requests
    /// go up to the worker.
    fn srtcp(&mut self, now: Instant, data: &[u8]) -> Result<(), PeerError> {
        if !is_rtcp(data) {
            return Err(PeerError::Rtc("RTP on a send-only connection".into()));
        }
        let Some(srtp) = self.srtp.as_mut() else {
            return Err(PeerError::Rtc("SRTCP before DTLS".into()));
        };
        let mut plain = srtp
            .inbound
            .decrypt_rtcp(data)
            .map_err(|e| PeerError::Rtc(format!("SRTCP: {e}")))?
            .freeze();
        let packets = rtc::rtcp::packet::unmarshal(&mut plain)
            .map_err(|e| PeerError::Rtc(format!("RTCP: {e}")))?;
        for p in &packets {
            let any = p.as_any();
            if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                self.answer_nack(now, nack);
            } else if let Some(cc) = any.downcast_ref::<TransportLayerCc>() {
                self.heard = true;
                self.bwe
                    .on_feedback(now, &super::twcc::feedback_from_rtcp(cc));
            } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                // Round trip from our last sender report (RFC 3550 §6.4.1):
                // the estimate reacts on that time scale.
                let now_mid = (self.ntp(now) >> 16) as u32;
                if let Some(rtt) = rr
                    .reports
                    .iter()
                    .filter(|r| r.last_sender_report != 0)
                    .filter(|r| self.streams.iter().any(|s| s.ssrc == r.ssrc))
                    .map(|r| {
                        now_mid
                            .wrapping_sub(r.last_sender_report)
                            .wrapping_sub(r.delay)
                    })
                    .filter(|&units| units < 10 << 16)
                    .min()
                {
                    let rtt = Duration::from_micros(u64::from(rtt) * 1_000_000 / 65_536);
                    self.bwe.set_rtt(rtt);
                    self.events.push_back(PeerEvent::LinkStats {
                        rtt: Some(rtt),
                        loss: None,
                        estimate_bps: None,
                    });
                }
                if let Some(worst) = rr
                    .reports
                    .iter()
                    .filter(|r| self.streams.iter().any(|s| s.ssrc == r.ssrc))
                    .map(|r| r.fraction_lost)
                    .max()
                {
                    self.events.push_back(PeerEvent::LinkStats {
                        rtt: None,
                        loss: Some(f64::from(worst) / 256.0),
                        estimate_bps: None,
                    });
                }
                // Loss from receiver reports only for clients without transport-wide feedback.
                if self.twcc_id.is_none()
                    && let Some(worst) = rr
                        .reports
                        .iter()
                        .filter(|r| self.streams.iter().any(|s| s.ssrc == r.ssrc))
                        .map(|r| r.fraction_lost)
                        .max()
                {
                    self.heard = true;
                    self.bwe.on_loss_report(now, f64::from(worst) / 256.0);
                }
            } else if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                self.events.push_back(PeerEvent::KeyframeRequested {
                    ssrc: pli.media_ssrc,
                });
            } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                for e in &fir.fir {
                    self.events
                        .push_back(PeerEvent::KeyframeRequested { ssrc: e.ssrc });
                }
            }
        }
        Ok(())
    }

    fn answer_nack(&mut self, now: Instant, nack: &TransportLayerNack) {
        let Some(idx) = self.streams.iter().position(|s| s.ssrc == nack.media_ssrc) else {
            return;
        };
        let mut budget = MAX_RETRANSMITS_PER_NACK;
        for pair in &nack.nacks {
            for seq in pair.packet_list() {
                if budget == 0 {
                    return;
                }
                let s = &self.streams[idx];
                let Some(sent) = s
                    .history
                    .as_ref()
                    .and_then(|h| h[seq as usize % NACK_HISTORY].as_ref())
                    .filter(|p| p.seq == seq)
                    .cloned()
                else {
                    continue;
                };
                budget -= 1;
                let _ = self.send(
                    now,
                    idx,
                    Outgoing {
                        marker: sent.marker,
                        seq: sent.seq,
                        timestamp: sent.timestamp,
                        payload: &sent.payload,
                        vp8: sent.vp8,
                        padding: false,
                    },
                    false,
                );
            }
        }
    }

    /// Sends one RTP packet of another participant's track on `sender`, with
    /// this sender's SSRC and payload type. Returns false when the packet was
    /// not sent because the sender is not negotiated yet or the packet carries
    /// nothing (padding only).
    pub fn write_rtp(
        &mut self,
        now: Instant,
        sender: SenderId,
        packet: &RtpPacket,
    ) -> Result<bool, PeerError> {
        if packet.payload.is_empty() && packet.header.padding {
            return Ok(false);
        }
        let Some(idx) = self.streams.iter().position(|s| s.id == sender) else {
            return Err(PeerError::Rtc("no such sender".into()));
        };
        let s = &mut self.streams[idx];
        let incoming = packet.header.sequence_number;
        if s.resync {
            s.resync = false;
            s.rebase(now, packet);
        }
        let seq = incoming.wrapping_sub(s.seq_offset);
        let timestamp = packet.header.timestamp.wrapping_add(s.ts_offset);
        let vp8 = s.vp8.unwrap_or_default();
        if s.vp8.is_some()
            && let Some(d) = codec::parse_vp8(&packet.payload)
        {
            if let Some(pid) = d.picture_id {
                let bits = if d.picture_id_15bit { 0x7fff } else { 0x7f };
                s.last_picture_id =
                    Some((pid.wrapping_add(vp8.picture_id) & bits, d.picture_id_15bit));
            }
            if let Some(tl0) = d.tl0picidx {
                s.last_tl0 = Some(tl0.wrapping_add(vp8.tl0));
            }
        }
        let sent = self.send(
            now,
            idx,
            Outgoing {
                marker: packet.header.marker,
                seq,
                timestamp,
                payload: &packet.payload,
                vp8,
                padding: false,
            },
            true,
        )?;
        if sent {
            self.streams[idx].last_seq = Some(seq);
            if !self.first_media {
                self.first_media = true;
                let after = now.saturating_duration_since(self.clock.0);
                self.events.push_back(PeerEvent::FirstMedia(after));
            }
        }
        Ok(sent)
    }

    /// The stream of `sender` continues after packets were skipped on
    /// purpose (a pause) or from another simulcast layer: its next packet
    /// continues the sequence numbers, timestamps and VP8 picture ids.
    pub fn resync(&mut self, sender: SenderId) {
        if let Some(s) = self.streams.iter_mut().find(|s| s.id == sender) {
            s.resync = true;
        }
    }

    fn send(
        &mut self,
        now: Instant,
        idx: usize,
        out: Outgoing<'_>,
        record: bool,
    ) -> Result<bool, PeerError> {
        let (Some(srtp), Some((to, transport))) = (self.srtp.as_mut(), self.path) else {
            return Ok(false);
        };
        let s = &mut self.streams[idx];
        let Some(pt) = s.negotiated_pt else {
            return Ok(false);
        };
        let Outgoing {
            marker,
            seq,
            timestamp,
            payload,
            vp8,
            padding,
        } = out;
        let body = if padding { PADDING } else { payload.len() };
        let mut plain = BytesMut::with_capacity(20 + body);
        let first = 0x80 | if padding { 0x20 } else { 0 };
        let twcc_seq = self.twcc_seq;
        let plain_header;
        let header = match self.twcc_id {
            Some(id) => {
                plain.put_u8(first | 0x10);
                write_fixed(&mut plain, marker, pt, seq, timestamp, s.ssrc);
                // One-byte extension header (RFC 8285): one element, two bytes, one pad.
                plain.put_u16(0xBEDE);
                plain.put_u16(1);
                plain.put_u8((id << 4) | 1);
                plain.put_u16(twcc_seq);
                plain.put_u8(0);
                let h = &mut self.twcc_header;
                h.padding = padding;
                h.marker = marker;
                h.payload_type = pt;
                h.sequence_number = seq;
                h.timestamp = timestamp;
                h.ssrc = s.ssrc;
                &*h
            }
            None => {
                plain.put_u8(first);
                plain_header = rtc::rtp::header::Header {
                    version: 2,
                    padding,
                    marker,
                    payload_type: pt,
                    sequence_number: seq,
                    timestamp,
                    ssrc: s.ssrc,
                    ..Default::default()
                };
                write_fixed(&mut plain, marker, pt, seq, timestamp, s.ssrc);
                &plain_header
            }
        };
        let header_len = plain.len();
        if padding {
            plain.resize(header_len + PADDING - 1, 0);
            plain.put_u8(PADDING as u8);
        } else {
            plain.extend_from_slice(payload);
            if vp8 != Vp8Delta::default() {
                codec::rewrite_vp8(&mut plain[header_len..], vp8.picture_id, vp8.tl0);
            }
        }
        let data = srtp
            .out
            .encrypt_rtp_with_header(&plain, header)
            .map_err(|e| PeerError::Rtc(format!("SRTP: {e}")))?;
        let size = data.len();
        self.transmits.push_back(Transmit {
            to,
            transport,
            data,
        });
        s.packets = s.packets.wrapping_add(1);
        s.octets = s.octets.wrapping_add(body as u32);
        s.last_timestamp = timestamp;
        s.last_sent = Some(now);
        if record && s.kind == MediaKind::Video {
            let h = s
                .history
                .get_or_insert_with(|| vec![None; NACK_HISTORY].into_boxed_slice());
            h[seq as usize % NACK_HISTORY] = Some(Sent {
                seq,
                timestamp,
                marker,
                payload: payload.clone(),
                vp8,
            });
        }
        if self.twcc_id.is_some() {
            self.twcc_seq = twcc_seq.wrapping_add(1);
            let cluster = self.probe.as_mut().map(|p| {
                p.bytes += size as u64;
                p.cluster
            });
            self.bwe.on_packet_sent(now, twcc_seq, size, cluster);
        }
        Ok(true)
    }

    /// During a probe, pads the stream up to the probe's rate.
    fn send_probe_padding(&mut self, now: Instant) {
        let Some(p) = self.probe.as_ref() else {
            return;
        };
        if now >= p.end {
            self.probe = None;
            return;
        }
        // Padding goes on a video stream that is sending: the receiver
        // counts it against that stream's sequence numbers.
        let Some(idx) = self.streams.iter().position(|s| {
            s.kind == MediaKind::Video && s.negotiated_pt.is_some() && s.last_seq.is_some()
        }) else {
            self.probe = None;
            return;
        };
        let elapsed = now.saturating_duration_since(p.start).as_secs_f64();
        let due = (p.bps as f64 * elapsed / 8.0) as u64;
        let mut owed = due.saturating_sub(p.bytes);
        while owed > 0 {
            let s = &mut self.streams[idx];
            let seq = s.last_seq.map_or(0, |l| l.wrapping_add(1));
            let timestamp = s.last_timestamp;
            match self.send(
                now,
                idx,
                Outgoing {
                    marker: false,
                    seq,
                    timestamp,
                    payload: &Bytes::new(),
                    vp8: Vp8Delta::default(),
                    padding: true,
                },
                false,
            ) {
                Ok(true) => {}
                _ => break,
            }
            let s = &mut self.streams[idx];
            s.last_seq = Some(seq);
            // The next media packet continues after the padding.
            s.seq_offset = s.seq_offset.wrapping_sub(1);
            owed = owed.saturating_sub((PADDING + 40) as u64);
        }
    }

    /// Starts a probe when the worker wants more than the estimate allows.
    fn maybe_probe(&mut self, now: Instant) {
        self.next_probe_check =
            (self.twcc_id.is_some() && self.wanted_bps > 0).then(|| now + PROBE_CHECK);
        if self.probe.is_some() || self.state != State::Connected || self.twcc_id.is_none() {
            return;
        }
        let estimate = self.bwe.estimate_bps();
        if self.wanted_bps <= estimate || !self.bwe.can_probe(now) {
            return;
        }
        // Probe a quarter past what is wanted: a probe's result is taken at
        // 95 % of what got through, and an estimate that lands just short of
        // an upgrade's need would stop the probing there, for good. At most
        // twice the estimate at once: a failed probe on a slow link costs a
        // queue, not a collapse.
        let bps = (self.wanted_bps + self.wanted_bps / 4).min(estimate.saturating_mul(2));
        if let Some(cluster) = self.bwe.start_probe(now, bps) {
            // Slow probes last longer: a result needs a dozen packets.
            let packets_time = Duration::from_micros(
                PROBE_MIN_PACKETS * (PADDING as u64 + 40) * 8 * 1_000_000 / bps.max(1),
            );
            self.probe = Some(Probe {
                cluster,
                bps,
                start: now,
                end: now + PROBE_DURATION.max(packets_time).min(PROBE_MAX_DURATION),
                bytes: 0,
            });
            self.send_probe_padding(now);
        }
    }

    fn ntp(&self, now: Instant) -> u64 {
        let wall = self.clock.1 + now.saturating_duration_since(self.clock.0);
        let since = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs() + NTP_UNIX_OFFSET;
        let frac = (u64::from(since.subsec_nanos()) << 32) / 1_000_000_000;
        (secs << 32) | frac
    }

    fn send_reports(&mut self, now: Instant) {
        if self.heard {
            self.events.push_back(PeerEvent::LinkStats {
                rtt: None,
                loss: None,
                estimate_bps: Some(self.bwe.estimate_bps()),
            });
        }
        let ntp_time = self.ntp(now);
        let mut packets: Vec<Box<dyn rtc::rtcp::packet::Packet>> = Vec::new();
        for s in &self.streams {
            let Some(last) = s.last_sent else { continue };
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            let rtp_time = s
                .last_timestamp
                .wrapping_add((elapsed * f64::from(s.codec.clock_rate)) as u32);
            packets.push(Box::new(SenderReport {
                ssrc: s.ssrc,
                ntp_time,
                rtp_time,
                packet_count: s.packets,
                octet_count: s.octets,
                reports: Vec::new(),
                profile_extensions: Bytes::new(),
            }));
        }
        let Some(first) = self.streams.iter().find(|s| s.last_sent.is_some()) else {
            return;
        };
        packets.push(Box::new(SourceDescription {
            chunks: vec![SourceDescriptionChunk {
                source: first.ssrc,
                items: vec![SourceDescriptionItem {
                    sdes_type: SdesType::SdesCname,
                    text: Bytes::from(self.cname.clone()),
                }],
            }],
        }));
        let (Some(srtp), Some((to, transport))) = (self.srtp.as_mut(), self.path) else {
            return;
        };
        let Ok(plain) = rtc::rtcp::packet::marshal(&packets) else {
            return;
        };
        if let Ok(data) = srtp.out.encrypt_rtcp(&plain) {
            self.transmits.push_back(Transmit {
                to,
                transport,
                data,
            });
        }
    }

    /// Runs timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        if self.state == State::Failed {
            return;
        }
        let consent_from = self.last_check.or(self.answered);
        if let Some(t) = consent_from
            && now.saturating_duration_since(t) >= CONSENT_TIMEOUT
        {
            tracing::debug!(ufrag = %self.ufrag, "subscribe connection lost consent");
            self.fail();
            return;
        }
        if let Some(dtls) = self.dtls.as_mut()
            && dtls.poll_timeout(&DTLS_KEY).is_some_and(|t| t <= now)
        {
            let result = dtls.handle_timeout(DTLS_KEY, now);
            self.drain_dtls();
            if result.is_err() {
                self.fail();
                return;
            }
        }
        if let Some(t) = self.next_report
            && t <= now
        {
            self.send_reports(now);
            self.next_report = Some(now + REPORT_INTERVAL);
        }
        if self.probe.is_some() {
            self.send_probe_padding(now);
        } else if self.next_probe_check.is_some_and(|t| t <= now) {
            self.maybe_probe(now);
        }
    }

    /// The next instant at which `handle_timeout` must be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        if self.state == State::Failed {
            return None;
        }
        let consent = self
            .last_check
            .or(self.answered)
            .map(|t| t + CONSENT_TIMEOUT);
        // Once keys are out, DTLS has no timers left; not asking spares a hash
        // lookup per forwarded packet.
        let dtls = match self.state {
            State::Connected => None,
            _ => self.dtls.as_ref().and_then(|d| d.poll_timeout(&DTLS_KEY)),
        };
        let probe = match &self.probe {
            Some(p) => Some((self.last_now + PROBE_TICK).min(p.end)),
            None => self.next_probe_check,
        };
        [consent, dtls, self.next_report, probe]
            .into_iter()
            .flatten()
            .min()
    }

    /// Takes the next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Takes the next event.
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    /// Closes the connection (a DTLS close_notify where possible).
    pub fn close(&mut self) {
        let now = self.last_now;
        if let Some(dtls) = self.dtls.as_mut() {
            dtls.stop(now, DTLS_KEY);
        }
        self.drain_dtls();
        self.state = State::Failed;
        self.srtp = None;
    }
}

/// One packet for [`Downlink::send`].
struct Outgoing<'a> {
    marker: bool,
    seq: u16,
    timestamp: u32,
    payload: &'a Bytes,
    vp8: Vp8Delta,
    /// A padding-only packet (a probe): `payload` is ignored.
    padding: bool,
}

/// The RTP fixed header after its first byte.
fn write_fixed(buf: &mut BytesMut, marker: bool, pt: u8, seq: u16, timestamp: u32, ssrc: u32) {
    buf.put_u8(if marker { 0x80 | pt } else { pt });
    buf.put_u16(seq);
    buf.put_u32(timestamp);
    buf.put_u32(ssrc);
}

impl OutStream {
    /// Re-bases the renumbering on `packet`, the first after a pause or a
    /// layer switch, so that it follows the last packet sent.
    fn rebase(&mut self, now: Instant, packet: &RtpPacket) {
        let Some(last) = self.last_seq else {
            return;
        };
        self.seq_offset = packet
            .header
            .sequence_number
            .wrapping_sub(last.wrapping_add(1));
        // The new source's clock is unrelated: continue ours by the time
        // that passed (at least one tick, so that frames stay ordered).
        let elapsed = self
            .last_sent
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        let ticks = ((elapsed * f64::from(self.codec.clock_rate)) as u32).max(1);
        self.ts_offset = self
            .last_timestamp
            .wrapping_add(ticks)
            .wrapping_sub(packet.header.timestamp);
        if let Some(delta) = self.vp8.as_mut()
            && let Some(d) = codec::parse_vp8(&packet.payload)
        {
            if let (Some(pid), Some((last_pid, _))) = (d.picture_id, self.last_picture_id) {
                delta.picture_id = last_pid.wrapping_add(1).wrapping_sub(pid);
            }
            if let (Some(tl0), Some(last_tl0)) = (d.tl0picidx, self.last_tl0) {
                delta.tl0 = last_tl0.wrapping_add(1).wrapping_sub(tl0);
            }
        }
    }
}

/// FNV-1a: a stable SDP session id from the ufrag (not security relevant).
fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
