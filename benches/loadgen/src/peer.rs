//! One client peer connection (`rtc`), its own UDP socket on 127.0.0.1, and
//! what it sends or measures: the only file that knows the WebRTC crate.
//!
//! A *publish* peer offers audio and/or video (sendonly), and once
//! connected writes Opus and VP8 packets on its own schedule. A *subscribe*
//! peer answers kaigi's offers and counts what arrives, per SSRC; a WHEP
//! viewer is a subscribe peer that makes the (receive-only) offer itself. The media
//! thread (`engine`) owns the peers and drives them: datagrams in, the time,
//! datagrams out.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use bytes::{Bytes, BytesMut};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::certificate::RTCCertificate;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine,
};
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability,
    RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use crate::clock;
use crate::media::opus::{AudioSource, RTP_STEP};
use crate::media::{VideoSource, vp8};
use crate::stats::{StreamStats, Totals, bump};

/// RFC 6464 client-to-mixer audio level.
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// A DTLS certificate for all peers (key generation per peer is slow).
pub fn certificate() -> anyhow::Result<RTCCertificate> {
    let provider = rtc::crypto::default_provider().map_err(|e| anyhow!("{e}"))?;
    let params = rtc::peer_connection::certificate::CertificateParams::new(vec![
        "kaigi-loadgen".to_owned(),
    ])?;
    RTCCertificate::generate(
        provider.crypto(),
        rtc::crypto::SignatureScheme::EcdsaP256Sha256,
        params,
    )
    .map_err(|e| anyhow!("certificate: {e}"))
}

fn build_pc(now: Instant, cert: &RTCCertificate) -> anyhow::Result<RTCPeerConnection> {
    let mut me = MediaEngine::default();
    me.register_default_codecs()?;
    me.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: AUDIO_LEVEL_URI.to_owned(),
        },
        RtpCodecKind::Audio,
        None,
    )?;
    Ok(RTCPeerConnectionBuilder::new()
        .with_configuration(
            RTCConfigurationBuilder::new()
                .with_certificates(vec![cert.clone()])
                .build(),
        )
        .with_media_engine(me)
        .build(now)?)
}

fn add_host_candidate(pc: &mut RTCPeerConnection, addr: SocketAddr) -> anyhow::Result<()> {
    let c = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: addr.ip().to_string(),
            port: addr.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()?;
    pc.add_local_candidate(RTCIceCandidate::from(&c).to_json()?)?;
    Ok(())
}

/// One outgoing track of a publish peer.
struct Sender {
    id: RTCRtpSenderId,
    ssrc: u32,
    pt: u8,
    seq: u16,
    ts: u32,
    next: Instant,
    /// Negotiated audio-level extension id (audio only).
    level_ext: Option<u8>,
}

/// What a publish peer sends.
pub struct Publish {
    audio: Option<(Sender, AudioSource)>,
    video: Option<(Sender, VideoSource)>,
    answered: bool,
}

/// What a subscribe peer receives.
pub struct Subscribe {
    /// Payload type → clock rate, from the latest offer.
    clocks: HashMap<u8, u32>,
    pub streams: HashMap<u32, StreamStats>,
    first_packet: bool,
}

/// Publish or subscribe.
pub enum Role {
    Publish(Box<Publish>),
    Subscribe(Subscribe),
}

/// Media settings of a publish peer.
#[derive(Debug, Clone, Copy)]
pub struct MediaCfg {
    pub audio: bool,
    pub video: bool,
    pub video_kbps: u32,
    pub fps: u32,
    pub keyframe_interval: Duration,
}

/// A peer connection and its socket.
pub struct Peer {
    pc: RTCPeerConnection,
    pub sock: mio::net::UdpSocket,
    /// The socket's address (asked once, not per datagram).
    local: SocketAddr,
    pub next_timeout: Option<Instant>,
    pub role: Role,
    /// When the client started joining.
    started: Instant,
    connected: bool,
    /// Connected at least once: media keeps flowing through a disconnection,
    /// as a browser's would.
    ever_connected: bool,
}

/// Kernel receive buffer per peer socket: a meeting peer receives a few
/// thousand packets a second and the thread may be busy with SDP for a while.
const RECV_BUFFER: libc::c_int = 1 << 20;

fn bind(ip: IpAddr) -> anyhow::Result<(mio::net::UdpSocket, SocketAddr)> {
    let sock = mio::net::UdpSocket::bind(SocketAddr::new(ip, 0)).context("binding UDP")?;
    set_recv_buffer(&sock);
    let addr = sock.local_addr()?;
    Ok((sock, addr))
}

/// Asks for [`RECV_BUFFER`]; past `net.core.rmem_max` only root gets it.
fn set_recv_buffer(sock: &mio::net::UdpSocket) {
    use std::os::fd::AsRawFd;
    let fd = sock.as_raw_fd();
    let size = RECV_BUFFER;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let p = (&size as *const libc::c_int).cast();
    // SAFETY: a valid socket and a c_int option value.
    unsafe {
        if libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, p, len) != 0 {
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, p, len);
        }
    }
}

impl Peer {
    /// A publish peer and its offer SDP.
    pub fn publish(
        now: Instant,
        cert: &RTCCertificate,
        client: usize,
        cfg: MediaCfg,
        ip: IpAddr,
    ) -> anyhow::Result<(Self, String)> {
        let (sock, addr) = bind(ip)?;
        let mut pc = build_pc(now, cert)?;
        let stream = format!("loadgen-{client}");
        let mut publish = Publish {
            audio: None,
            video: None,
            answered: false,
        };
        // Stagger clients' media so that they do not all send at once.
        let phase = Duration::from_micros((client as u64 * 7919) % 20_000);
        for (kind, on) in [
            (RtpCodecKind::Audio, cfg.audio),
            (RtpCodecKind::Video, cfg.video),
        ] {
            if !on {
                continue;
            }
            let video = kind == RtpCodecKind::Video;
            let ssrc = 0x1000_0000 + (client as u32) * 2 + video as u32;
            let (mime, clock, channels, fmtp) = if video {
                (MIME_TYPE_VP8, 90000, 0, String::new())
            } else {
                (
                    MIME_TYPE_OPUS,
                    48000,
                    2,
                    "minptime=10;useinbandfec=1".to_owned(),
                )
            };
            let track = MediaStreamTrack::new(
                stream.clone(),
                format!("{stream}-{}", if video { "video" } else { "audio" }),
                format!("{stream}-{}", if video { "video" } else { "audio" }),
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: RTCRtpCodec {
                        mime_type: mime.to_owned(),
                        clock_rate: clock,
                        channels,
                        sdp_fmtp_line: fmtp,
                        rtcp_feedback: vec![],
                    },
                    ..Default::default()
                }],
            );
            let id = pc.add_track(track)?;
            let s = Sender {
                id,
                ssrc,
                pt: 0,
                seq: (client as u16).wrapping_mul(1009),
                ts: (client as u32).wrapping_mul(2_654_435_761),
                next: now + phase,
                level_ext: None,
            };
            if video {
                let v = VideoSource::new(cfg.video_kbps, cfg.fps, cfg.keyframe_interval);
                publish.video = Some((s, v));
            } else {
                publish.audio = Some((s, AudioSource::new(client as u32 + 1)?));
            }
        }
        add_host_candidate(&mut pc, addr)?;
        let offer = pc.create_offer(None)?;
        let sdp = offer.sdp.clone();
        pc.set_local_description(now, offer)?;
        let peer = Peer {
            pc,
            sock,
            local: addr,
            next_timeout: None,
            role: Role::Publish(Box::new(publish)),
            started: now,
            connected: false,
            ever_connected: false,
        };
        Ok((peer, sdp))
    }

    /// A subscribe peer, before its first offer.
    pub fn subscribe(
        now: Instant,
        cert: &RTCCertificate,
        started: Instant,
        ip: IpAddr,
    ) -> anyhow::Result<Self> {
        let (sock, addr) = bind(ip)?;
        let mut pc = build_pc(now, cert)?;
        add_host_candidate(&mut pc, addr)?;
        Ok(Peer {
            pc,
            sock,
            local: addr,
            next_timeout: None,
            role: Role::Subscribe(Subscribe {
                clocks: HashMap::new(),
                streams: HashMap::new(),
                first_packet: false,
            }),
            started,
            connected: false,
            ever_connected: false,
        })
    }

    /// A WHEP viewer: a subscribe peer with receive-only audio and video
    /// transceivers, and its offer.
    pub fn whep(now: Instant, cert: &RTCCertificate, ip: IpAddr) -> anyhow::Result<(Self, String)> {
        let mut peer = Self::subscribe(now, cert, now, ip)?;
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            peer.pc.add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    ..Default::default()
                }),
            )?;
        }
        let offer = peer.pc.create_offer(None)?;
        let sdp = offer.sdp.clone();
        peer.pc.set_local_description(now, offer)?;
        Ok((peer, sdp))
    }

    /// When the client started joining (join, connect and first-packet
    /// times count from it).
    pub fn set_started(&mut self, started: Instant) {
        self.started = started;
    }

    /// Applies the answer to this peer's offer: a publish peer learns
    /// payload types and extension ids, a WHEP viewer the clock rates.
    pub fn apply_answer(&mut self, now: Instant, sdp: String) -> anyhow::Result<()> {
        let clocks = rtpmap_clocks(&sdp);
        self.pc
            .set_remote_description(now, RTCSessionDescription::answer(sdp)?)?;
        let p = match &mut self.role {
            Role::Publish(p) => p,
            Role::Subscribe(s) => {
                s.clocks = clocks;
                return Ok(());
            }
        };
        for s in [
            p.audio.as_mut().map(|a| &mut a.0),
            p.video.as_mut().map(|v| &mut v.0),
        ]
        .into_iter()
        .flatten()
        {
            let mut sender = self.pc.rtp_sender(s.id).context("sender")?;
            let params = sender.get_parameters();
            s.pt = params
                .rtp_parameters
                .codecs
                .first()
                .map(|c| c.payload_type)
                .context("no codec negotiated")?;
            s.level_ext = params
                .rtp_parameters
                .header_extensions
                .iter()
                .find(|e| e.uri == AUDIO_LEVEL_URI)
                .map(|e| e.id as u8);
        }
        p.answered = true;
        Ok(())
    }

    /// Applies a subscribe offer and returns the answer SDP.
    pub fn answer_offer(&mut self, now: Instant, sdp: String) -> anyhow::Result<String> {
        if let Role::Subscribe(s) = &mut self.role {
            s.clocks = rtpmap_clocks(&sdp);
        }
        self.pc
            .set_remote_description(now, RTCSessionDescription::offer(sdp)?)?;
        let answer = self.pc.create_answer(None)?;
        let out = answer.sdp.clone();
        self.pc.set_local_description(now, answer)?;
        Ok(out)
    }

    /// Whether the audio-level extension was negotiated (publish peers).
    pub fn has_audio_level(&self) -> Option<bool> {
        match &self.role {
            Role::Publish(p) if p.answered => {
                Some(p.audio.as_ref().is_some_and(|a| a.0.level_ext.is_some()))
            }
            _ => None,
        }
    }

    /// Feeds one datagram from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8], t: &mut Totals) {
        if let Role::Publish(p) = &mut self.role
            && data.len() > 8
            && data[1] == 206
            && data[0] & 0x1f == 1
        {
            // SRTCP leaves the first header clear: a PLI heading a compound.
            t.keyframe_requests += 1;
            if let Some((_, v)) = p.video.as_mut() {
                v.request_keyframe();
            }
        }
        let _ = self.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.local,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(data),
        });
    }

    /// Runs the peer's timers when due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = self.pc.handle_timeout(now);
    }

    /// Sends the media that is due (publish peers, once connected).
    pub fn send_due(&mut self, now: Instant, run_start: Instant, t: &mut Totals) {
        let Role::Publish(p) = &mut self.role else {
            return;
        };
        if !p.answered || !self.ever_connected {
            return;
        }
        let sec = now.saturating_duration_since(run_start).as_secs() as usize;
        if let Some((s, src)) = p.audio.as_mut() {
            while s.next <= now {
                s.next = catch_up(s.next, now, Duration::from_millis(20));
                let Ok(f) = src.next_frame() else { break };
                let mut payload = f.payload;
                clock::write_stamp(&mut payload, now);
                let mut pkt = rtp_packet(s, payload, false);
                if let Some(id) = s.level_ext {
                    pkt.header.extension = true;
                    pkt.header.extension_profile = 0xBEDE;
                    let byte = f.level | if f.voice { 0x80 } else { 0 };
                    let _ = pkt
                        .header
                        .set_extension(id, Bytes::copy_from_slice(&[byte]));
                }
                s.ts = s.ts.wrapping_add(RTP_STEP);
                if let Some(mut snd) = self.pc.rtp_sender(s.id)
                    && snd.write_rtp(now, pkt).is_ok()
                {
                    t.packets_sent += 1;
                    bump(&mut t.sent_per_second, sec, 1);
                }
            }
        }
        if let Some((s, src)) = p.video.as_mut() {
            while s.next <= now {
                s.next = catch_up(s.next, now, src.interval());
                let (packets, key) = src.next_frame();
                t.keyframes_sent += key as u64;
                for vp in packets {
                    let mut payload = vp.payload;
                    clock::write_stamp(&mut payload, now);
                    let pkt = rtp_packet(s, payload, vp.marker);
                    if let Some(mut snd) = self.pc.rtp_sender(s.id)
                        && snd.write_rtp(now, pkt).is_ok()
                    {
                        t.packets_sent += 1;
                        bump(&mut t.sent_per_second, sec, 1);
                    }
                }
                s.ts = s.ts.wrapping_add(src.rtp_step());
            }
        }
    }

    /// The next instant media is due (publish peers).
    pub fn next_send(&self) -> Option<Instant> {
        match &self.role {
            Role::Publish(p) if p.answered && self.ever_connected => [
                p.audio.as_ref().map(|a| a.0.next),
                p.video.as_ref().map(|v| v.0.next),
            ]
            .into_iter()
            .flatten()
            .min(),
            _ => None,
        }
    }

    /// Drains the peer: datagrams out, events, received RTP; refreshes the
    /// next timeout. Returns datagrams that could not be sent.
    pub fn drain(&mut self, now: Instant, run_start: Instant, t: &mut Totals) -> u64 {
        let mut dropped = 0;
        while let Some(m) = self.pc.poll_write() {
            match self.sock.send_to(&m.message, m.transport.peer_addr) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => dropped += 1,
                Err(_) => dropped += 1,
            }
        }
        while let Some(ev) = self.pc.poll_event() {
            match ev {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) => {
                    let was = self.connected;
                    self.connected = s == RTCPeerConnectionState::Connected;
                    if was && !self.connected {
                        t.disconnects += 1;
                    }
                    if self.connected
                        && !self.ever_connected
                        && matches!(self.role, Role::Subscribe(_))
                    {
                        let _ = t.connect.record(micros_since(self.started, now));
                    }
                    self.ever_connected |= self.connected;
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(_)) => {}
                _ => {}
            }
        }
        let sec = now.saturating_duration_since(run_start).as_secs() as usize;
        let now_us = clock::micros(now);
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            let (RTCMessage::RtpPacket(_, p), Role::Subscribe(s)) = (message, &mut self.role)
            else {
                continue;
            };
            t.packets_received += 1;
            bump(&mut t.per_second, sec, 1);
            if !s.first_packet {
                s.first_packet = true;
                let _ = t.first_packet.record(micros_since(self.started, now));
            }
            let h = &p.header;
            let clock_rate = s.clocks.get(&h.payload_type).copied().unwrap_or(90000);
            s.streams
                .entry(h.ssrc)
                .or_insert_with(|| StreamStats::new(clock_rate))
                .on_packet(h.sequence_number, h.timestamp, now_us);
            if clock_rate == 90000 && vp8::is_keyframe_start(&p.payload) {
                t.keyframes_received += 1;
            }
            if let Some(stamp) = clock::read_stamp(&p.payload)
                && stamp <= now_us
            {
                let d = (now_us - stamp).max(1);
                let _ = t.delay.record(d);
                if t.steady_from.is_some_and(|f| now >= f) {
                    let _ = t.delay_steady.record(d);
                }
            }
        }
        self.next_timeout = self.pc.poll_timeout();
        dropped
    }

    /// Folds the per-stream figures into `t`.
    pub fn finish(&mut self, t: &mut Totals) {
        if let Role::Subscribe(s) = &self.role {
            for st in s.streams.values() {
                t.add_stream(st);
            }
        }
        let _ = self.pc.close();
    }
}

fn micros_since(start: Instant, now: Instant) -> u64 {
    (now.saturating_duration_since(start).as_micros() as u64).max(1)
}

/// The next deadline after `next`; skips ahead rather than bursting when
/// the thread fell more than 200 ms behind.
fn catch_up(next: Instant, now: Instant, step: Duration) -> Instant {
    let n = next + step;
    if now.saturating_duration_since(n) > Duration::from_millis(200) {
        now + step
    } else {
        n
    }
}

fn rtp_packet(s: &mut Sender, payload: Vec<u8>, marker: bool) -> rtc::rtp::Packet {
    s.seq = s.seq.wrapping_add(1);
    let mut p = rtc::rtp::Packet::default();
    p.header.version = 2;
    p.header.ssrc = s.ssrc;
    p.header.payload_type = s.pt;
    p.header.sequence_number = s.seq;
    p.header.timestamp = s.ts;
    p.header.marker = marker;
    p.payload = Bytes::from(payload);
    p
}

/// `a=rtpmap:<pt> <name>/<clock>` lines of an SDP: payload type → clock rate.
pub fn rtpmap_clocks(sdp: &str) -> HashMap<u8, u32> {
    sdp.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("a=rtpmap:")?;
            let (pt, codec) = rest.split_once(' ')?;
            let clock = codec.split('/').nth(1)?;
            Some((pt.parse().ok()?, clock.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_clock_rates_from_rtpmap() {
        let sdp = "v=0\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:x y/1\r\n";
        let m = rtpmap_clocks(sdp);
        assert_eq!(m.get(&111), Some(&48000));
        assert_eq!(m.get(&96), Some(&90000));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn catch_up_skips_when_far_behind() {
        let t0 = Instant::now();
        let step = Duration::from_millis(20);
        assert_eq!(catch_up(t0, t0, step), t0 + step);
        let late = t0 + Duration::from_secs(1);
        assert_eq!(catch_up(t0, late, step), late + step);
    }
}
