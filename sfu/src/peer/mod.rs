//! A participant's WebRTC connections, and the only module of the core that
//! knows the WebRTC crates (`rtc` and its parts).
//!
//! A participant has two: a *publish* peer ([`Peer`], an `RTCPeerConnection`:
//! the client offers, kaigi answers and receives) and a *subscribe* connection
//! ([`Downlink`], kaigi's own sender: kaigi offers and sends). Neither owns a
//! socket or a clock: the worker feeds them datagrams and the time, and drains
//! datagrams to send, events, and their next deadline. They do not decide
//! what to forward to whom; that is the worker's and the subscription's job.

mod downlink;
mod ice_lite;
pub mod sdp;
pub(crate) mod twcc;

pub use downlink::{AnswerSource, Downlink, SenderId};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::interceptor::Registry;
use rtc::interceptor::{NackGeneratorBuilder, ReceiverReportBuilder, Slot};
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::certificate::RTCCertificate;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_nack, configure_simulcast_extension_headers, configure_twcc_receiver_only,
};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::RTCRtpReceiverId;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpHeaderExtensionCapability, RtpCodecKind};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

pub use rtc::rtp::Packet as RtpPacket;

use crate::MediaKind;

/// RFC 6464 client-to-mixer audio level.
/// RFC 6464 audio levels, negotiated on publish for active-speaker detection.
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// Why a peer operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The remote SDP could not be parsed or applied.
    #[error("invalid SDP: {0}")]
    BadSdp(String),
    /// The WebRTC stack refused an operation.
    #[error("webrtc: {0}")]
    Rtc(String),
}

fn rtc_err(e: impl std::fmt::Display) -> PeerError {
    PeerError::Rtc(e.to_string())
}

/// Where this server can be reached: the candidates written into every SDP.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// UDP host candidate (the advertised address and the media port).
    pub udp: Option<SocketAddr>,
    /// ICE-TCP passive candidate.
    pub tcp: Option<SocketAddr>,
}

/// Whether a datagram came over UDP or an ICE-TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Plain UDP.
    Udp,
    /// RFC 4571 framed ICE-TCP.
    Tcp,
}

/// The codec of a published track, as forwarded to subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// e.g. `video/VP8`.
    pub mime_type: String,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Audio channels (0 for video).
    pub channels: u16,
    /// The `a=fmtp` parameters.
    pub fmtp: String,
}

/// Something the peer wants its owner to know.
#[derive(Debug)]
pub enum PeerEvent {
    /// A remote track started sending (first RTP packet seen).
    TrackOpened {
        /// The peer-local track id (the msid track id).
        track: String,
        /// Audio or video.
        kind: MediaKind,
        /// Its codec.
        codec: Codec,
        /// The SSRC that opened it.
        ssrc: u32,
        /// Its simulcast stream id (`a=rid`), if it is one layer of a
        /// simulcast track: each layer opens once, under the same track id.
        rid: Option<String>,
    },
    /// A remote track ended.
    TrackClosed {
        /// The peer-local track id.
        track: String,
    },
    /// An RTP packet of a remote track, decrypted.
    Rtp {
        /// The peer-local track id.
        track: String,
        /// The packet.
        packet: RtpPacket,
    },
    /// The remote side asked for a keyframe of the stream we send with this SSRC.
    KeyframeRequested {
        /// Our outgoing SSRC.
        ssrc: u32,
    },
    /// ICE and DTLS are up.
    Connected,
    /// A measurement of the link to the remote side, for the metrics.
    LinkStats {
        /// Round-trip time from a receiver report.
        rtt: Option<Duration>,
        /// Fraction lost (0–1) the remote side reported.
        loss: Option<f64>,
        /// The downlink estimate, bits per second.
        estimate_bps: Option<u64>,
    },
    /// The first media packet went out, this long after the connection was made.
    FirstMedia(Duration),
    /// The connection failed or closed.
    Failed,
}

/// One RTCPeerConnection driven by the worker.
pub struct Peer {
    pc: RTCPeerConnection,
    ufrag: String,
    /// Remote track id → receiver and the SSRC of each of its streams
    /// (one, or one per simulcast layer), for keyframe requests.
    receivers: HashMap<String, (RTCRtpReceiverId, Vec<u32>)>,
    events: std::collections::VecDeque<PeerEvent>,
    /// `local_addr` given to the stack for each transport: the advertised address.
    endpoint: Endpoint,
    connected: bool,
}

/// What a datagram to send looks like.
#[derive(Debug)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// Over which transport.
    pub transport: Transport,
    /// The bytes (already encrypted).
    pub data: BytesMut,
}

/// What the worker drives on either kind of connection.
pub trait Connection {
    /// Feeds one received datagram.
    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: Transport,
        data: BytesMut,
    ) -> Result<(), PeerError>;
    /// Runs timers due at `now`.
    fn handle_timeout(&mut self, now: Instant);
    /// The next instant at which `handle_timeout` must be called.
    fn poll_timeout(&mut self) -> Option<Instant>;
    /// Takes the next datagram to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// Takes the next event.
    fn poll_event(&mut self) -> Option<PeerEvent>;
    /// Adds a trickled remote candidate.
    fn add_remote_candidate(
        &mut self,
        candidate: String,
        sdp_mid: Option<String>,
        sdp_mline_index: Option<u16>,
    ) -> Result<(), PeerError>;
    /// Closes the connection (what it has left to say stays queued).
    fn close(&mut self);
}

macro_rules! impl_connection {
    ($t:ty) => {
        impl Connection for $t {
            fn handle_datagram(
                &mut self,
                now: Instant,
                from: SocketAddr,
                transport: Transport,
                data: BytesMut,
            ) -> Result<(), PeerError> {
                <$t>::handle_datagram(self, now, from, transport, data)
            }
            fn handle_timeout(&mut self, now: Instant) {
                <$t>::handle_timeout(self, now)
            }
            fn poll_timeout(&mut self) -> Option<Instant> {
                <$t>::poll_timeout(self)
            }
            fn poll_transmit(&mut self) -> Option<Transmit> {
                <$t>::poll_transmit(self)
            }
            fn poll_event(&mut self) -> Option<PeerEvent> {
                <$t>::poll_event(self)
            }
            fn add_remote_candidate(
                &mut self,
                candidate: String,
                sdp_mid: Option<String>,
                sdp_mline_index: Option<u16>,
            ) -> Result<(), PeerError> {
                <$t>::add_remote_candidate(self, candidate, sdp_mid, sdp_mline_index)
            }
            fn close(&mut self) {
                <$t>::close(self)
            }
        }
    };
}
impl_connection!(Peer);
impl_connection!(Downlink);

/// kaigi's DTLS certificate and its SDP fingerprint, shared by every connection.
pub struct DtlsIdentity {
    certificate: rtc::dtls::crypto::Certificate,
    /// `sha-256 AB:CD:...` as written in `a=fingerprint`.
    fingerprint: String,
    /// The same certificate for `RTCPeerConnection`s.
    rtc: RTCCertificate,
}

/// The lower-case hex sha-256 fingerprint of a DER certificate.
fn fingerprint_of(crypto: &dyn rtc::crypto::RTCCrypto, der: &[u8]) -> Result<String, PeerError> {
    let digest = crypto
        .hash(rtc::crypto::HashAlgorithm::Sha256, der)
        .map_err(rtc_err)?;
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(hex.join(":"))
}

impl DtlsIdentity {
    /// A fresh self-signed certificate (ECDSA P-256), valid for a year.
    pub fn generate(crypto: &dyn rtc::crypto::RTCCrypto) -> Result<Self, PeerError> {
        let certificate =
            rtc::dtls::crypto::Certificate::generate_self_signed(vec!["kaigi".to_owned()], crypto)
                .map_err(rtc_err)?;
        let der = certificate
            .certificate
            .first()
            .ok_or_else(|| PeerError::Rtc("empty certificate".into()))?;
        let fingerprint = format!("sha-256 {}", fingerprint_of(crypto, der)?.to_uppercase());
        let rtc = RTCCertificate::from_existing(
            certificate.clone(),
            std::time::SystemTime::now() + Duration::from_secs(365 * 24 * 3600),
        );
        Ok(DtlsIdentity {
            certificate,
            fingerprint,
            rtc,
        })
    }
}

/// A host candidate at `addr`: UDP, or passive ICE-TCP.
pub fn host_candidate(addr: SocketAddr, tcp: bool) -> Result<RTCIceCandidateInit, PeerError> {
    let config = CandidateHostConfig {
        base_config: CandidateConfig {
            network: if tcp { "tcp" } else { "udp" }.to_owned(),
            address: addr.ip().to_string(),
            port: addr.port(),
            component: 1,
            ..Default::default()
        },
        tcp_type: if tcp {
            rtc::ice::tcp_type::TcpType::Passive
        } else {
            Default::default()
        },
    };
    let cand = config.new_candidate_host().map_err(rtc_err)?;
    RTCIceCandidate::from(&cand).to_json().map_err(rtc_err)
}

/// How to build peers: shared by all peers of a worker.
#[derive(Clone)]
pub struct PeerConfig {
    /// Candidates to advertise.
    pub endpoint: Endpoint,
    crypto: std::sync::Arc<dyn rtc::crypto::RTCCryptoProvider>,
    identity: std::sync::Arc<DtlsIdentity>,
}

impl PeerConfig {
    /// Peers advertising `endpoint`, with one freshly generated DTLS certificate.
    pub fn new(endpoint: Endpoint) -> Result<Self, PeerError> {
        let crypto = rtc::crypto::default_provider().map_err(rtc_err)?;
        let identity = std::sync::Arc::new(DtlsIdentity::generate(crypto.crypto())?);
        Ok(PeerConfig {
            endpoint,
            crypto,
            identity,
        })
    }
}

impl Peer {
    fn build(
        now: Instant,
        cfg: &PeerConfig,
        (ufrag, pwd): (String, String),
        dtls_role: RTCDtlsRole,
    ) -> Result<RTCPeerConnection, PeerError> {
        let mut media_engine = MediaEngine::default();
        media_engine.register_default_codecs().map_err(rtc_err)?;
        // Publishers' audio levels (RFC 6464), for active-speaker detection.
        media_engine
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: AUDIO_LEVEL_URI.to_owned(),
                },
                RtpCodecKind::Audio,
                None,
            )
            .map_err(rtc_err)?;
        // (configure_nack is called for its SDP feedback lines — nack, nack pli — alone.)
        let _ = configure_nack(Registry::new(), &mut media_engine);
        configure_simulcast_extension_headers(&mut media_engine).map_err(rtc_err)?;
        // Receives only: NACKs for losses, receiver reports, transport-wide feedback
        // for the browser's bandwidth estimate. (Sending is the downlink's.)
        let registry = configure_twcc_receiver_only(Registry::new(), &mut media_engine)
            .map_err(rtc_err)?
            .with(Slot::NackGenerator, NackGeneratorBuilder::new().build())
            .with(Slot::ReceiverReport, ReceiverReportBuilder::new().build());
        let setting_engine = SettingEngineBuilder::new()
            .with_lite(true)
            .with_ice_credentials(ufrag, pwd)
            // Browsers check consent every 5 s ± 20% (RFC 7675): 5 s of silence is no
            // disconnection. 12 s + 18 s ends a dead peer after the RFC's 30 s.
            .with_ice_timeouts(
                Some(Duration::from_secs(12)),
                Some(Duration::from_secs(18)),
                Some(Duration::from_secs(2)),
            )
            .with_answering_dtls_role(dtls_role)
            .build();
        let config =
            RTCConfigurationBuilder::new().with_certificates(vec![cfg.identity.rtc.clone()]);
        RTCPeerConnectionBuilder::new()
            .with_configuration(config.build())
            .with_setting_engine(setting_engine)
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .build(now)
            .map_err(rtc_err)
    }

    fn add_local_candidates(&mut self) -> Result<(), PeerError> {
        let candidates = [
            self.endpoint.udp.map(|a| host_candidate(a, false)),
            self.endpoint.tcp.map(|a| host_candidate(a, true)),
        ];
        for init in candidates.into_iter().flatten() {
            self.pc.add_local_candidate(init?).map_err(rtc_err)?;
        }
        Ok(())
    }

    fn new_inner(
        now: Instant,
        cfg: &PeerConfig,
        ufrag: String,
        pwd: String,
        dtls_role: RTCDtlsRole,
    ) -> Result<Self, PeerError> {
        let pc = Self::build(now, cfg, (ufrag.clone(), pwd), dtls_role)?;
        let mut peer = Peer {
            pc,
            ufrag,
            receivers: HashMap::new(),
            events: Default::default(),
            endpoint: cfg.endpoint.clone(),
            connected: false,
        };
        peer.add_local_candidates()?;
        Ok(peer)
    }

    /// A publish peer: applies the client's offer and returns the answer SDP.
    pub fn new_publisher(
        now: Instant,
        cfg: &PeerConfig,
        ufrag: String,
        pwd: String,
        offer_sdp: String,
    ) -> Result<(Self, String), PeerError> {
        // kaigi is the DTLS server, unless the offerer insists on being it
        // (`a=setup:passive`, as FFmpeg's WHIP muxer does): then the answer
        // must say `active` and kaigi connects.
        let passive = offer_sdp.lines().any(|l| l.trim_end() == "a=setup:passive");
        let role = if passive {
            RTCDtlsRole::Client
        } else {
            RTCDtlsRole::Server
        };
        let mut peer = Self::new_inner(now, cfg, ufrag, pwd, role)?;
        let answer = peer.answer(now, offer_sdp)?;
        Ok((peer, answer))
    }

    /// Applies a (re)offer from the client and returns the answer.
    pub fn answer(&mut self, now: Instant, offer_sdp: String) -> Result<String, PeerError> {
        let offer = RTCSessionDescription::offer(offer_sdp)
            .map_err(|e| PeerError::BadSdp(e.to_string()))?;
        self.pc
            .set_remote_description(now, offer)
            .map_err(|e| PeerError::BadSdp(e.to_string()))?;
        let answer = self.pc.create_answer(None).map_err(rtc_err)?;
        let sdp = answer.sdp.clone();
        self.pc
            .set_local_description(now, answer)
            .map_err(rtc_err)?;
        Ok(sdp)
    }

    /// Adds a trickled remote candidate. An empty candidate (end of candidates) is ignored.
    pub fn add_remote_candidate(
        &mut self,
        candidate: String,
        sdp_mid: Option<String>,
        sdp_mline_index: Option<u16>,
    ) -> Result<(), PeerError> {
        if candidate.trim().is_empty() {
            return Ok(());
        }
        self.pc
            .add_remote_candidate(RTCIceCandidateInit {
                candidate,
                sdp_mid,
                sdp_mline_index,
                username_fragment: None,
                url: None,
            })
            .map_err(rtc_err)
    }

    /// Asks the remote publisher for a keyframe on one of its tracks: on the
    /// stream `ssrc` (one simulcast layer), or on all of its streams.
    pub fn request_keyframe(
        &mut self,
        now: Instant,
        track: &str,
        ssrc: Option<u32>,
    ) -> Result<(), PeerError> {
        let Some((receiver_id, ssrcs)) = self.receivers.get(track) else {
            return Ok(());
        };
        let plis: Vec<Box<dyn rtc::rtcp::packet::Packet>> = ssrcs
            .iter()
            .filter(|&&s| ssrc.is_none_or(|want| want == s))
            .map(|&media_ssrc| {
                Box::new(PictureLossIndication {
                    sender_ssrc: 0,
                    media_ssrc,
                }) as Box<dyn rtc::rtcp::packet::Packet>
            })
            .collect();
        if plis.is_empty() {
            return Ok(());
        }
        let mut receiver = self
            .pc
            .rtp_receiver(*receiver_id)
            .ok_or_else(|| PeerError::Rtc("no such receiver".into()))?;
        receiver.write_rtcp(now, plis).map_err(rtc_err)
    }

    /// The ICE username fragment of this side: the demultiplexing key.
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// Whether ICE and DTLS are up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Feeds one received datagram.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: Transport,
        data: BytesMut,
    ) -> Result<(), PeerError> {
        let (local_addr, proto) = match transport {
            Transport::Udp => (self.endpoint.udp, TransportProtocol::UDP),
            Transport::Tcp => (self.endpoint.tcp, TransportProtocol::TCP),
        };
        let local_addr = local_addr.unwrap_or(from);
        self.pc
            .handle_read(TaggedBytesMut {
                now,
                transport: TransportContext {
                    local_addr,
                    peer_addr: from,
                    ecn: None,
                    transport_protocol: proto,
                },
                message: data,
            })
            .map_err(rtc_err)?;
        self.drain(now);
        Ok(())
    }

    /// Runs timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = self.pc.handle_timeout(now);
        self.drain(now);
    }

    /// The next instant at which `handle_timeout` must be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.pc.poll_timeout()
    }

    /// Takes the next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let msg = self.pc.poll_write()?;
        let transport = match msg.transport.transport_protocol {
            TransportProtocol::TCP => Transport::Tcp,
            _ => Transport::Udp,
        };
        Some(Transmit {
            to: msg.transport.peer_addr,
            transport,
            data: msg.message,
        })
    }

    /// Takes the next event.
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    /// Moves everything the stack has for us into our own event queue.
    fn drain(&mut self, _now: Instant) {
        while let Some(ev) = self.pc.poll_event() {
            match ev {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => match state {
                    RTCPeerConnectionState::Connected => {
                        self.connected = true;
                        self.events.push_back(PeerEvent::Connected);
                    }
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        self.connected = false;
                        self.events.push_back(PeerEvent::Failed);
                    }
                    _ => {}
                },
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let Some(receiver) = self.pc.rtp_receiver(init.receiver_id) else {
                        continue;
                    };
                    let track = receiver.track();
                    let kind = match track.kind() {
                        RtpCodecKind::Audio => MediaKind::Audio,
                        _ => MediaKind::Video,
                    };
                    let Some(c) = track.codec(init.ssrc) else {
                        continue;
                    };
                    let codec = Codec {
                        mime_type: c.mime_type.clone(),
                        clock_rate: c.clock_rate,
                        channels: c.channels,
                        fmtp: c.sdp_fmtp_line.clone(),
                    };
                    let entry = self
                        .receivers
                        .entry(init.track_id.clone())
                        .or_insert_with(|| (init.receiver_id, Vec::new()));
                    entry.0 = init.receiver_id;
                    if !entry.1.contains(&init.ssrc) {
                        entry.1.push(init.ssrc);
                    }
                    self.events.push_back(PeerEvent::TrackOpened {
                        track: init.track_id,
                        kind,
                        codec,
                        ssrc: init.ssrc,
                        rid: init.rid,
                    });
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnClose(track)) => {
                    self.receivers.remove(&track);
                    self.events.push_back(PeerEvent::TrackClosed { track });
                }
                _ => {}
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            match message {
                RTCMessage::RtpPacket(track, packet) => {
                    self.events.push_back(PeerEvent::Rtp { track, packet });
                }
                RTCMessage::RtcpPacket(_, packets) => {
                    for p in packets {
                        let any = p.as_any();
                        if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
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
                }
                _ => {}
            }
        }
    }

    /// Closes the connection (sends DTLS close_notify where possible).
    pub fn close(&mut self) {
        let _ = self.pc.close();
    }
}
