//! A test kit: the SFU engine and several worker cores, and WebRTC client
//! peers (`rtc`, the same stack a non-browser client would use), joined by a
//! simulated network under simulated time. No sockets, no threads, no sleep.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_simulcast_extension_headers, configure_twcc_receiver_only,
};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine,
};
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use sfu::engine::Route;
use sfu::{
    Engine, EngineConfig, Notice, NoticeKind, Output, ParticipantId, PeerConfig, Transport,
    WorkerCore, WorkerMsg, WorkerStats,
};

/// The address the simulated server is reached at.
pub const SERVER: &str = "127.0.0.1:10000";

/// One simulated client: a publish and a subscribe peer connection.
pub struct Client {
    pub id: ParticipantId,
    pub name: String,
    pub publish: RTCPeerConnection,
    pub publish_addr: SocketAddr,
    pub subscribe: Option<RTCPeerConnection>,
    pub subscribe_addr: SocketAddr,
    pub senders: Vec<(RTCRtpSenderId, u32, u8, bool)>,
    /// msid stream id → packets received, and the payloads seen, by kind.
    pub received: HashMap<String, [u64; 2]>,
    pub track_streams: HashMap<String, String>,
    /// Receivers of the subscribe side: (receiver, ssrc, msid stream id).
    pub remote_tracks: Vec<(rtc::rtp_transceiver::RTCRtpReceiverId, u32, String)>,
    pub connected: [bool; 2],
    pub notices: Vec<NoticeKind>,
    pub seq: [u16; 2],
    /// Keyframe requests (PLI) seen on the wire to this client's publish side.
    pub keyframe_requests: u64,
    /// Video sequence numbers received on the subscribe peer, per msid stream.
    pub video_seqs: HashMap<String, std::collections::HashSet<u16>>,
    /// A simulcast publisher's video layers, low to high: (SSRC, rid).
    pub layers: Vec<(u32, &'static str)>,
    /// Per msid stream: the publisher tag (last payload byte) of the plain
    /// video packets received, in order.
    pub video_tags: HashMap<String, Vec<u8>>,
    /// Per msid stream: the simulcast layer of each video frame received
    /// (read from the sim's payload), in order.
    pub frame_layers: HashMap<String, Vec<u8>>,
}

/// A server→client bottleneck: a rate, a FIFO queue that drops what would
/// wait longer than `max_queue`.
pub struct Link {
    pub bps: u64,
    pub max_queue: Duration,
    free_at: Option<Instant>,
}

impl Link {
    /// A bottleneck of `bps` with a 200 ms queue.
    pub fn new(bps: u64) -> Self {
        Link {
            bps,
            max_queue: Duration::from_millis(200),
            free_at: None,
        }
    }
}

/// A datagram in flight.
struct InFlight {
    at: Instant,
    from: SocketAddr,
    to: SocketAddr,
    data: BytesMut,
}

/// Decides, per server→client datagram (destination, bytes), whether the network loses it.
pub type DropFilter = Box<dyn FnMut(SocketAddr, &[u8]) -> bool>;

/// The whole simulated deployment.
pub struct Sim {
    pub now: Instant,
    pub engine: Engine,
    pub workers: Vec<WorkerCore>,
    pub clients: Vec<Client>,
    routes: HashMap<String, usize>,
    addr_routes: HashMap<SocketAddr, usize>,
    net: VecDeque<InFlight>,
    pub latency: Duration,
    pub server: SocketAddr,
    next_port: u16,
    pub stats: Vec<Arc<WorkerStats>>,
    /// Drops server→client datagrams for which it returns true.
    pub drop_filter: Option<DropFilter>,
    /// The next join declares its video as a screen share.
    screen_next: bool,
    /// The next join publishes its video as three simulcast layers.
    simulcast_next: bool,
    source_next: bool,
    /// Bottlenecks on the way to these client addresses.
    pub links: HashMap<SocketAddr, Link>,
}

/// A client peer: default codecs, the simulcast header extensions, and
/// transport-wide feedback on what it receives (as browsers send).
fn client_pc(now: Instant) -> RTCPeerConnection {
    let mut media_engine = MediaEngine::default();
    media_engine.register_default_codecs().unwrap();
    configure_simulcast_extension_headers(&mut media_engine).unwrap();
    let registry = configure_twcc_receiver_only(Registry::new(), &mut media_engine).unwrap();
    RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .build(now)
        .unwrap()
}

/// The sim's VP8 payload: a frame's first packet starts a keyframe (every
/// frame is one) with the layer's size in the VP8 header, and the layer
/// index after it; continuation packets only fill.
fn vp8_payload(layer: u8, first: bool, len: usize) -> Bytes {
    let (w, h): (u16, u16) = [(320, 180), (640, 360), (1280, 720)][layer as usize % 3];
    let mut p = vec![0u8; len.max(12)];
    if first {
        p[..7].copy_from_slice(&[0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a]);
        p[7..9].copy_from_slice(&w.to_le_bytes());
        p[9..11].copy_from_slice(&h.to_le_bytes());
        p[11] = layer;
    }
    Bytes::from(p)
}

/// Packets per frame of each simulcast layer (1200 bytes each, 30 frames/s):
/// ~290 k, ~580 k and ~1.15 Mbit/s.
const LAYER_PACKETS: [usize; 3] = [1, 2, 4];

fn add_host_candidate(pc: &mut RTCPeerConnection, addr: SocketAddr) {
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
    .new_candidate_host()
    .unwrap();
    pc.add_local_candidate(RTCIceCandidate::from(&c).to_json().unwrap())
        .unwrap();
}

impl Sim {
    /// A server with `workers` media workers.
    pub fn new(workers: usize) -> Self {
        let now = Instant::now();
        let server: SocketAddr = SERVER.parse().unwrap();
        let cfg = PeerConfig::new(sfu::Endpoint {
            udp: Some(server),
            tcp: None,
        })
        .unwrap();
        let stats: Vec<_> = (0..workers)
            .map(|_| Arc::new(WorkerStats::default()))
            .collect();
        Sim {
            now,
            engine: Engine::new(
                EngineConfig {
                    workers,
                    max_participants_per_room: 10_000,
                    ..Default::default()
                },
                42,
            ),
            workers: (0..workers)
                .map(|i| WorkerCore::new(i, cfg.clone(), stats[i].clone(), 7 + i as u64))
                .collect(),
            clients: Vec::new(),
            routes: HashMap::new(),
            addr_routes: HashMap::new(),
            net: VecDeque::new(),
            latency: Duration::from_millis(5),
            server,
            next_port: 20000,
            stats,
            drop_filter: None,
            screen_next: false,
            simulcast_next: false,
            source_next: false,
            links: HashMap::new(),
        }
    }

    fn alloc_addr(&mut self) -> SocketAddr {
        self.next_port += 1;
        SocketAddr::new("127.0.0.1".parse().unwrap(), self.next_port)
    }

    /// A client joins `room` and publishes one Opus and one VP8 track.
    pub fn join(&mut self, room: &str, name: &str) -> usize {
        self.join_with(room, name, true)
    }

    /// Client `i` offers again on its publish connection (as a browser does
    /// when it adds a screen share), with the same tracks.
    pub fn renegotiate_publish(&mut self, i: usize) {
        let now = self.now;
        let c = &mut self.clients[i];
        let offer = c.publish.create_offer(None).unwrap();
        c.publish.set_local_description(now, offer.clone()).unwrap();
        let id = c.id;
        self.engine.publish_offer(id, offer.sdp);
        self.pump();
    }

    /// A client joins `room` and only watches (never offers to publish).
    pub fn join_viewer(&mut self, room: &str, name: &str) -> usize {
        self.join_with(room, name, false)
    }

    /// A client joins `room` and publishes audio and a screen share (its
    /// video track declared as screen before the offer).
    #[allow(dead_code)]
    pub fn join_sharing_screen(&mut self, room: &str, name: &str) -> usize {
        self.screen_next = true;
        self.join_with(room, name, true)
    }

    /// Joins a participant whose camera is published as three simulcast
    /// layers (rids q, h, f: 320×180, 640×360, 1280×720).
    pub fn join_simulcast(&mut self, room: &str, name: &str) -> usize {
        self.simulcast_next = true;
        self.join_with(room, name, true)
    }

    /// A broadcast source (as WHIP makes one: never a moderator, subscribes
    /// to nothing) that publishes its camera as three simulcast layers.
    #[allow(dead_code)]
    pub fn join_simulcast_source(&mut self, room: &str, name: &str) -> usize {
        self.simulcast_next = true;
        self.source_next = true;
        self.join_with(room, name, true)
    }

    fn join_with(&mut self, room: &str, name: &str, publishes: bool) -> usize {
        let joined = if std::mem::take(&mut self.source_next) {
            self.engine
                .join_source(room, name)
                .expect("join as a source")
        } else {
            self.engine.join(room, name).expect("join")
        };
        let publish_addr = self.alloc_addr();
        let subscribe_addr = self.alloc_addr();
        let mut publish = client_pc(self.now);
        let mut senders = Vec::new();
        let mut layers = Vec::new();
        let simulcast = std::mem::take(&mut self.simulcast_next);
        let stream = format!("client-{}", joined.id);
        for (i, (kind, mime, clock, channels, pt)) in [
            (RtpCodecKind::Audio, MIME_TYPE_OPUS, 48000, 2, 111u8),
            (RtpCodecKind::Video, MIME_TYPE_VP8, 90000, 0, 96u8),
        ]
        .into_iter()
        .enumerate()
        {
            let ssrc = 1000 * joined.id as u32 + i as u32;
            let rids: &[&'static str] = if simulcast && kind == RtpCodecKind::Video {
                &["q", "h", "f"]
            } else {
                &[""]
            };
            let encodings = rids
                .iter()
                .enumerate()
                .map(|(l, rid)| RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        rid: (*rid).to_owned(),
                        ssrc: Some(ssrc + 10 * l as u32),
                        ..Default::default()
                    },
                    codec: RTCRtpCodec {
                        mime_type: mime.to_owned(),
                        clock_rate: clock,
                        channels,
                        sdp_fmtp_line: if kind == RtpCodecKind::Audio {
                            "minptime=10;useinbandfec=1".into()
                        } else {
                            String::new()
                        },
                        rtcp_feedback: vec![],
                    },
                    ..Default::default()
                })
                .collect();
            if rids.len() > 1 {
                layers = rids
                    .iter()
                    .enumerate()
                    .map(|(l, rid)| (ssrc + 10 * l as u32, *rid))
                    .collect();
            }
            let track = MediaStreamTrack::new(
                stream.clone(),
                format!("{stream}-{i}"),
                format!("{stream}-{i}"),
                kind,
                encodings,
            );
            let sender = publish.add_track(track).unwrap();
            senders.push((sender, ssrc, pt, kind == RtpCodecKind::Video));
        }
        add_host_candidate(&mut publish, publish_addr);
        let offer = publish.create_offer(None).unwrap();
        publish
            .set_local_description(self.now, offer.clone())
            .unwrap();
        self.engine.ready(joined.id);
        if std::mem::take(&mut self.screen_next) {
            self.engine
                .declare_screen_tracks(joined.id, [format!("{stream}-1")]);
        }
        if publishes {
            self.engine.publish_offer(joined.id, offer.sdp);
        }
        self.clients.push(Client {
            id: joined.id,
            name: name.to_owned(),
            publish,
            publish_addr,
            subscribe: None,
            subscribe_addr,
            senders,
            received: HashMap::new(),
            track_streams: HashMap::new(),
            remote_tracks: Vec::new(),
            connected: [false, false],
            notices: Vec::new(),
            seq: [0, 0],
            keyframe_requests: 0,
            video_seqs: HashMap::new(),
            layers,
            frame_layers: HashMap::new(),
            video_tags: HashMap::new(),
        });
        self.pump();
        self.clients.len() - 1
    }

    /// A WHEP viewer of `room`: offers receive-only audio and video; kaigi
    /// answers with the room's broadcast.
    #[allow(dead_code)]
    pub fn join_whep(&mut self, room: &str) -> usize {
        self.join_whep_with(room, 1)
    }

    /// A WHEP viewer that offers `videos` receive-only video sections (a
    /// player that shows a second picture, e.g. a sign-language interpreter).
    #[allow(dead_code)]
    pub fn join_whep_with(&mut self, room: &str, videos: usize) -> usize {
        let id = self.engine.join_viewer(room).expect("viewer joins");
        let subscribe_addr = self.alloc_addr();
        let publish_addr = self.alloc_addr();
        let mut pc = client_pc(self.now);
        let kinds = std::iter::once(RtpCodecKind::Audio)
            .chain(std::iter::repeat_n(RtpCodecKind::Video, videos));
        for kind in kinds {
            pc.add_transceiver_from_kind(
                kind,
                Some(rtc::rtp_transceiver::RTCRtpTransceiverInit {
                    direction: rtc::rtp_transceiver::RTCRtpTransceiverDirection::Recvonly,
                    ..Default::default()
                }),
            )
            .unwrap();
        }
        add_host_candidate(&mut pc, subscribe_addr);
        let offer = pc.create_offer(None).unwrap();
        pc.set_local_description(self.now, offer.clone()).unwrap();
        self.clients.push(Client {
            id,
            name: format!("viewer-{id}"),
            publish: client_pc(self.now),
            publish_addr,
            subscribe: Some(pc),
            subscribe_addr,
            senders: Vec::new(),
            received: HashMap::new(),
            track_streams: HashMap::new(),
            remote_tracks: Vec::new(),
            connected: [false, false],
            notices: Vec::new(),
            seq: [0, 0],
            keyframe_requests: 0,
            video_seqs: HashMap::new(),
            layers: Vec::new(),
            frame_layers: HashMap::new(),
            video_tags: HashMap::new(),
        });
        self.engine.whep_offer(id, offer.sdp);
        self.pump();
        self.clients.len() - 1
    }

    /// The client `idx` leaves.
    pub fn leave(&mut self, idx: usize) {
        let id = self.clients[idx].id;
        self.engine.leave(id);
        self.pump();
    }

    /// Runs `f` on the engine (a control-plane call), then delivers what it produced.
    #[allow(dead_code)]
    pub fn control<R>(&mut self, f: impl FnOnce(&mut Engine) -> R) -> R {
        let r = f(&mut self.engine);
        self.pump();
        r
    }

    /// Delivers engine commands, routes and notices; worker outputs.
    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(r) = self.engine.poll_route() {
                progressed = true;
                match r {
                    Route::Add(u, w) => {
                        self.routes.insert(u, w);
                    }
                    Route::Remove(u) => {
                        self.routes.remove(&u);
                    }
                }
            }
            while let Some((w, cmd)) = self.engine.poll_command() {
                progressed = true;
                self.workers[w].handle_msg(self.now, WorkerMsg::Command(cmd));
            }
            while let Some(n) = self.engine.poll_notice() {
                progressed = true;
                self.notice(n);
            }
            for w in 0..self.workers.len() {
                while let Some(out) = self.workers[w].poll_output() {
                    progressed = true;
                    match out {
                        Output::Transmit(t) => {
                            // A bottleneck on the way delays (queues) or drops it.
                            let mut at = self.now + self.latency;
                            if let Some(link) = self.links.get_mut(&t.to) {
                                let start = link.free_at.map_or(self.now, |f| f.max(self.now));
                                if start.saturating_duration_since(self.now) > link.max_queue {
                                    continue;
                                }
                                let tx = Duration::from_nanos(
                                    (t.data.len() as u64 + 28) * 8 * 1_000_000_000 / link.bps,
                                );
                                link.free_at = Some(start + tx);
                                at = start + tx + self.latency;
                            }
                            let f = InFlight {
                                at,
                                from: self.server,
                                to: t.to,
                                data: t.data,
                            };
                            let pos = self.net.partition_point(|x| x.at <= f.at);
                            self.net.insert(pos, f);
                        }
                        Output::ToWorker(to, msg) => self.workers[to].handle_msg(self.now, msg),
                        Output::Event(ev) => self.engine.handle_worker_event(ev),
                    }
                }
            }
            if !progressed {
                break;
            }
        }
    }

    fn notice(&mut self, n: Notice) {
        let now = self.now;
        let Some(c) = self.clients.iter_mut().find(|c| c.id == n.to) else {
            return;
        };
        match &n.kind {
            NoticeKind::PublishAnswer(sdp) => {
                c.publish
                    .set_remote_description(
                        now,
                        RTCSessionDescription::answer(sdp.clone()).unwrap(),
                    )
                    .unwrap();
            }
            NoticeKind::SubscribeAnswer(sdp) => {
                if let Some(pc) = c.subscribe.as_mut() {
                    pc.set_remote_description(
                        now,
                        RTCSessionDescription::answer(sdp.clone()).unwrap(),
                    )
                    .unwrap();
                }
            }
            NoticeKind::SubscribeOffer(sdp) => {
                if c.subscribe.is_none() {
                    let mut pc = client_pc(now);
                    add_host_candidate(&mut pc, c.subscribe_addr);
                    c.subscribe = Some(pc);
                }
                let pc = c.subscribe.as_mut().unwrap();
                pc.set_remote_description(now, RTCSessionDescription::offer(sdp.clone()).unwrap())
                    .unwrap();
                let answer = pc.create_answer(None).unwrap();
                pc.set_local_description(now, answer.clone()).unwrap();
                let id = c.id;
                c.notices.push(n.kind.clone());
                self.engine.subscribe_answer(id, answer.sdp);
                return;
            }
            _ => {}
        }
        c.notices.push(n.kind);
    }

    /// Runs the world until `until`, in 1 ms steps, clients sending media:
    /// audio every 20 ms, video every 33 ms.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        let mut tick = 0u64;
        while self.now < end {
            self.now += Duration::from_millis(1);
            tick += 1;
            let now = self.now;
            // Client timers and outputs.
            for i in 0..self.clients.len() {
                let send_audio = tick.is_multiple_of(20);
                let send_video = tick.is_multiple_of(33);
                let c = &mut self.clients[i];
                if c.connected[0] && (send_audio || send_video) {
                    for &(sender, ssrc, pt, video) in &c.senders {
                        let due = if video { send_video } else { send_audio };
                        if !due {
                            continue;
                        }
                        if video && !c.layers.is_empty() {
                            c.seq[1] = c.seq[1].wrapping_add(1);
                            send_layers(&mut c.publish, sender, &c.layers, pt, c.seq[1], now);
                            continue;
                        }
                        c.seq[video as usize] = c.seq[video as usize].wrapping_add(1);
                        let seq = c.seq[video as usize];
                        let mut p = rtc::rtp::packet::Packet::default();
                        p.header.version = 2;
                        p.header.ssrc = ssrc;
                        p.header.payload_type = pt;
                        p.header.sequence_number = seq;
                        p.header.timestamp = tick as u32 * if video { 90 } else { 48 };
                        p.header.marker = true;
                        p.payload = if video {
                            // A VP8 payload descriptor marking a keyframe start, a
                            // keyframe header (320×240), and the publisher's tag.
                            Bytes::from(vec![
                                0x10, 0x50, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00,
                                c.id as u8,
                            ])
                        } else {
                            Bytes::from(vec![0xfc; 40])
                        };
                        if let Some(mut s) = c.publish.rtp_sender(sender) {
                            let _ = s.write_rtp(now, p);
                        }
                    }
                }
            }
            for i in 0..self.clients.len() {
                self.drive_client(i);
            }
            // Network.
            while let Some(f) = self.net.front() {
                if f.at > now {
                    break;
                }
                let f = self.net.pop_front().unwrap();
                self.deliver(f);
            }
            for w in 0..self.workers.len() {
                if self.workers[w].poll_timeout().is_some_and(|t| t <= now) {
                    self.workers[w].handle_timeout(now);
                }
            }
            self.pump();
        }
    }

    fn drive_client(&mut self, i: usize) {
        let now = self.now;
        let server = self.server;
        let latency = self.latency;
        let c = &mut self.clients[i];
        let addrs = [c.publish_addr, c.subscribe_addr];
        for (k, pc) in [Some(&mut c.publish), c.subscribe.as_mut()]
            .into_iter()
            .enumerate()
        {
            let Some(pc) = pc else { continue };
            if pc.poll_timeout().is_some_and(|t| t <= now) {
                let _ = pc.handle_timeout(now);
            }
            while let Some(m) = pc.poll_write() {
                self.net.push_back(InFlight {
                    at: now + latency,
                    from: addrs[k],
                    to: server,
                    data: m.message,
                });
            }
            while let Some(ev) = pc.poll_event() {
                match ev {
                    RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) => {
                        c.connected[k] = s == RTCPeerConnectionState::Connected;
                    }
                    RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                        let stream = init.stream_ids.first().cloned().unwrap_or_default();
                        if k == 1 {
                            c.remote_tracks
                                .push((init.receiver_id, init.ssrc, stream.clone()));
                        }
                        c.track_streams.insert(init.track_id, stream);
                    }
                    _ => {}
                }
            }
            while let Some(TaggedRTCMessage { message, .. }) = pc.poll_read() {
                if let RTCMessage::RtpPacket(track, p) = message {
                    let stream = c.track_streams.get(&track).cloned().unwrap_or_default();
                    let video = p.header.payload_type >= 96 && p.header.payload_type != 111;
                    if video
                        && p.payload.len() >= 12
                        && p.payload[..7] == [0x10, 0, 0, 0, 0x9d, 1, 0x2a]
                    {
                        c.frame_layers
                            .entry(stream.clone())
                            .or_default()
                            .push(p.payload[11]);
                    }
                    if video {
                        c.video_seqs
                            .entry(stream.clone())
                            .or_default()
                            .insert(p.header.sequence_number);
                        if p.payload.len() == 12 && p.payload[1] == 0x50 {
                            c.video_tags
                                .entry(stream.clone())
                                .or_default()
                                .push(p.payload[11]);
                        }
                    }
                    c.received.entry(stream).or_default()[video as usize] += 1;
                }
            }
        }
    }

    fn deliver(&mut self, f: InFlight) {
        if f.to == self.server {
            // Route like the media port's receive thread: by STUN ufrag, then by address.
            let w = sfu::net::demux::stun_local_ufrag(&f.data)
                .and_then(|u| self.routes.get(u).copied())
                .inspect(|&w| {
                    self.addr_routes.insert(f.from, w);
                })
                .or_else(|| self.addr_routes.get(&f.from).copied());
            if let Some(w) = w {
                self.workers[w].handle_datagram(self.now, f.from, Transport::Udp, f.data);
            }
            return;
        }
        if let Some(drop) = self.drop_filter.as_mut()
            && drop(f.to, &f.data)
        {
            return;
        }
        let now = self.now;
        for c in &mut self.clients {
            let pc = if f.to == c.publish_addr {
                // SRTCP leaves the first header clear: a PLI (PSFB, FMT 1) heading a compound.
                if f.data.len() > 8 && f.data[1] == 206 && f.data[0] & 0x1f == 1 {
                    c.keyframe_requests += 1;
                }
                Some(&mut c.publish)
            } else if f.to == c.subscribe_addr {
                c.subscribe.as_mut()
            } else {
                None
            };
            if let Some(pc) = pc {
                let _ = pc.handle_read(TaggedBytesMut {
                    now,
                    transport: TransportContext {
                        local_addr: f.to,
                        peer_addr: f.from,
                        ecn: None,
                        transport_protocol: TransportProtocol::UDP,
                    },
                    message: f.data,
                });
                return;
            }
        }
    }

    /// `count` encrypted video datagrams from publisher `i` to kaigi, made now
    /// (for benchmarks: the client's encryption is not what is measured).
    pub fn publisher_datagrams(
        &mut self,
        i: usize,
        count: usize,
        payload: usize,
    ) -> Vec<(SocketAddr, BytesMut)> {
        let now = self.now;
        let c = &mut self.clients[i];
        let &(sender, ssrc, pt, _) = c.senders.iter().find(|s| s.3).expect("a video sender");
        let body = Bytes::from(vec![0x5au8; payload]);
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            c.seq[1] = c.seq[1].wrapping_add(1);
            let mut p = rtc::rtp::packet::Packet::default();
            p.header.version = 2;
            p.header.ssrc = ssrc;
            p.header.payload_type = pt;
            p.header.sequence_number = c.seq[1];
            p.header.timestamp = c.seq[1] as u32 * 3000;
            p.payload = body.clone();
            if let Some(mut s) = c.publish.rtp_sender(sender) {
                let _ = s.write_rtp(now, p);
            }
            while let Some(m) = c.publish.poll_write() {
                out.push((c.publish_addr, m.message));
            }
        }
        out
    }

    /// Client `i` asks kaigi for a keyframe of every stream it receives from `from` (a PLI).
    pub fn request_keyframe(&mut self, i: usize, from: usize) {
        let stream = format!("p{}", self.clients[from].id);
        let now = self.now;
        let c = &mut self.clients[i];
        let pc = c.subscribe.as_mut().expect("subscribed");
        for (receiver, ssrc, s) in c.remote_tracks.clone() {
            if s == stream
                && let Some(mut r) = pc.rtp_receiver(receiver)
            {
                let _ = r.write_rtcp(
                    now,
                    vec![Box::new(
                        rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
                            sender_ssrc: 1,
                            media_ssrc: ssrc,
                        },
                    )],
                );
            }
        }
    }

    /// Client `i` asks, by NACK, for video packets `seqs` of participant `from`.
    pub fn send_nack(&mut self, i: usize, from: usize, seqs: &[u16]) {
        use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
            TransportLayerNack, nack_pairs_from_sequence_numbers,
        };
        let stream = format!("p{}", self.clients[from].id);
        let now = self.now;
        let c = &mut self.clients[i];
        let pc = c.subscribe.as_mut().expect("subscribed");
        for (receiver, ssrc, s) in c.remote_tracks.clone() {
            if s == stream
                && let Some(mut r) = pc.rtp_receiver(receiver)
                && r.track().kind() == rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Video
            {
                let _ = r.write_rtcp(
                    now,
                    vec![Box::new(TransportLayerNack {
                        sender_ssrc: 1,
                        media_ssrc: ssrc,
                        nacks: nack_pairs_from_sequence_numbers(seqs),
                    })],
                );
            }
        }
    }

    /// Injects a datagram as if `from` had sent it to the server now.
    pub fn inject(&mut self, from: SocketAddr, data: &[u8]) {
        self.net.push_back(InFlight {
            at: self.now,
            from,
            to: self.server,
            data: BytesMut::from(data),
        });
    }

    /// Packets client `i` received from participant `from`: [audio, video].
    pub fn received(&self, i: usize, from: usize) -> [u64; 2] {
        let stream = format!("p{}", self.clients[from].id);
        self.clients[i]
            .received
            .get(&stream)
            .copied()
            .unwrap_or_default()
    }
}

/// Frame number `frame` of each simulcast layer, with the rid (and mid)
/// extensions a simulcast sender writes.
fn send_layers(
    pc: &mut RTCPeerConnection,
    sender: RTCRtpSenderId,
    layers: &[(u32, &'static str)],
    pt: u8,
    frame: u16,
    now: Instant,
) {
    let Some(mut s) = pc.rtp_sender(sender) else {
        return;
    };
    let params = s.get_parameters();
    let ext = |uri: &str| {
        params
            .rtp_parameters
            .header_extensions
            .iter()
            .find(|e| e.uri == uri)
            .map(|e| e.id as u8)
    };
    let rid_id = ext("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id");
    let mid_id = ext("urn:ietf:params:rtp-hdrext:sdes:mid");
    for (l, &(ssrc, rid)) in layers.iter().enumerate() {
        let count = LAYER_PACKETS[l.min(2)];
        for k in 0..count {
            let mut p = rtc::rtp::packet::Packet::default();
            p.header.version = 2;
            p.header.ssrc = ssrc;
            p.header.payload_type = pt;
            // Each layer numbers on its own (as browsers do), from its own start.
            p.header.sequence_number =
                ((frame as usize * count + k) as u16).wrapping_add(l as u16 * 7919);
            p.header.timestamp = (u32::from(frame) * 3000).wrapping_add(l as u32 * 1_000_003);
            p.header.marker = k + 1 == count;
            // Like libwebrtc, stop naming the stream once the receiver knows it
            // (after its first receiver reports).
            if frame < 60 {
                if let Some(id) = mid_id {
                    let _ = p.header.set_extension(id, Bytes::from_static(b"1"));
                }
                if let Some(id) = rid_id {
                    let _ = p
                        .header
                        .set_extension(id, Bytes::from(rid.as_bytes().to_vec()));
                }
            }
            p.payload = vp8_payload(l as u8, k == 0, 1200);
            let _ = s.write_rtp(now, p);
        }
    }
}

/// A client peer like the kit's own (default codecs, simulcast extensions,
/// transport-wide feedback on what it receives), with a UDP host candidate
/// at `addr`: for tests that drive one connection by hand.
pub fn client_peer(now: Instant, addr: SocketAddr) -> RTCPeerConnection {
    let mut pc = client_pc(now);
    add_host_candidate(&mut pc, addr);
    pc
}
