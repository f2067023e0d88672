//! A WHEP player's offer is answered by kaigi's own subscribe transport: the
//! player (an `rtc` peer with receive-only transceivers) offers, a
//! `Downlink` answers, and over a simulated network ICE, DTLS (with either
//! role) and SRTP come up; media arrives on the player's payload types and
//! the sources' SSRCs, NACKs are answered and PLIs surface as keyframe
//! requests. No sockets, simulated time.

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    TransportLayerNack, nack_pairs_from_sequence_numbers,
};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use sfu::peer::sdp::{AnswerSource, TWCC_URI, extmap_id};
use sfu::peer::{Downlink, PeerError, PeerEvent, RtpPacket, SenderId};
use sfu::{Codec, Endpoint, MediaKind, PeerConfig, Transport};

const VIDEO_SSRC: u32 = 5001;
const AUDIO_SSRC: u32 = 5002;

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

/// The broadcast: a presenter's camera and microphone.
fn broadcast() -> Vec<AnswerSource> {
    vec![
        AnswerSource {
            kind: MediaKind::Video,
            codec: vp8(),
            ssrc: VIDEO_SSRC,
            stream_id: "p7".into(),
            track_id: "p7t1".into(),
        },
        AnswerSource {
            kind: MediaKind::Audio,
            codec: opus(),
            ssrc: AUDIO_SSRC,
            stream_id: "p7".into(),
            track_id: "p7t0".into(),
        },
    ]
}

/// The payload type an SDP maps `codec` (`VP8/90000`) to.
fn payload_type(sdp: &str, codec: &str) -> u8 {
    sdp.lines()
        .find_map(|l| {
            let (pt, rest) = l.strip_prefix("a=rtpmap:")?.split_once(' ')?;
            (rest == codec).then(|| pt.parse().ok()).flatten()
        })
        .unwrap_or_else(|| panic!("{codec} not in {sdp}"))
}

/// A WHEP player and kaigi's downlink, joined by a network with 5 ms of latency.
struct Whep {
    now: Instant,
    server: SocketAddr,
    addr: SocketAddr,
    downlink: Downlink,
    player: RTCPeerConnection,
    /// Datagrams in flight, in order: (arrival, towards kaigi, bytes).
    net: VecDeque<(Instant, bool, BytesMut)>,
    /// Decides whether the network loses a datagram on its way to the player.
    lose: Option<common::DropFilter>,
    player_connected: bool,
    /// The downlink's events.
    events: Vec<PeerEvent>,
    /// What the player's receivers opened: (receiver, SSRC).
    receivers: Vec<(RTCRtpReceiverId, u32)>,
    /// RTP the player received, decrypted.
    received: Vec<RtpPacket>,
    seq: [u16; 2],
}

impl Whep {
    /// A player with one receive-only transceiver per entry of `kinds`.
    fn new(kinds: &[RtpCodecKind]) -> Self {
        let now = Instant::now();
        let server: SocketAddr = common::SERVER.parse().unwrap();
        let addr: SocketAddr = "127.0.0.1:30000".parse().unwrap();
        let cfg = PeerConfig::new(Endpoint {
            udp: Some(server),
            tcp: None,
        })
        .unwrap();
        let downlink = Downlink::new(
            now,
            &cfg,
            "kaigiwhep".into(),
            "kaigiwheppassword0001".into(),
        );
        let mut player = common::client_peer(now, addr);
        for &kind in kinds {
            player
                .add_transceiver_from_kind(
                    kind,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Recvonly,
                        ..Default::default()
                    }),
                )
                .unwrap();
        }
        Whep {
            now,
            server,
            addr,
            downlink,
            player,
            net: VecDeque::new(),
            lose: None,
            player_connected: false,
            events: Vec::new(),
            receivers: Vec::new(),
            received: Vec::new(),
            seq: [0, 0],
        }
    }

    /// The player's offer, set as its local description.
    fn offer(&mut self) -> String {
        let offer = self.player.create_offer(None).unwrap();
        self.player
            .set_local_description(self.now, offer.clone())
            .unwrap();
        offer.sdp
    }

    /// kaigi answers `offer` (as sent, perhaps altered from the player's own)
    /// and the player applies the answer.
    fn answer(
        &mut self,
        offer: &str,
        sources: &[AnswerSource],
    ) -> (String, Vec<(usize, SenderId)>) {
        let (answer, senders) = self
            .downlink
            .answer_offer(self.now, offer, sources)
            .expect("answered");
        self.player
            .set_remote_description(
                self.now,
                RTCSessionDescription::answer(answer.clone()).unwrap(),
            )
            .expect("the player takes the answer");
        (answer, senders)
    }

    /// One millisecond of the world.
    fn step(&mut self) {
        self.now += Duration::from_millis(1);
        let now = self.now;
        if self.downlink.poll_timeout().is_some_and(|t| t <= now) {
            self.downlink.handle_timeout(now);
        }
        if self.player.poll_timeout().is_some_and(|t| t <= now) {
            let _ = self.player.handle_timeout(now);
        }
        self.drain();
        while self.net.front().is_some_and(|f| f.0 <= now) {
            let (_, to_kaigi, data) = self.net.pop_front().unwrap();
            if to_kaigi {
                let _ = self
                    .downlink
                    .handle_datagram(now, self.addr, Transport::Udp, data);
            } else {
                let _ = self.player.handle_read(TaggedBytesMut {
                    now,
                    transport: TransportContext {
                        local_addr: self.addr,
                        peer_addr: self.server,
                        ecn: None,
                        transport_protocol: TransportProtocol::UDP,
                    },
                    message: data,
                });
            }
        }
        self.drain();
    }

    /// Moves both sides' output onto the network and into the records.
    fn drain(&mut self) {
        let at = self.now + Duration::from_millis(5);
        while let Some(t) = self.downlink.poll_transmit() {
            assert_eq!(t.to, self.addr, "kaigi answers the checked address");
            if self.lose.as_mut().is_some_and(|lose| lose(t.to, &t.data)) {
                continue;
            }
            self.net.push_back((at, false, t.data));
        }
        while let Some(ev) = self.downlink.poll_event() {
            self.events.push(ev);
        }
        while let Some(m) = self.player.poll_write() {
            self.net.push_back((at, true, m.message));
        }
        while let Some(ev) = self.player.poll_event() {
            match ev {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) => {
                    self.player_connected = s == RTCPeerConnectionState::Connected;
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    self.receivers.push((init.receiver_id, init.ssrc));
                }
                _ => {}
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.player.poll_read() {
            if let RTCMessage::RtpPacket(_, p) = message {
                self.received.push(p);
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    /// Runs until both sides are connected (or fails after 5 s).
    fn connect(&mut self) {
        let end = self.now + Duration::from_secs(5);
        while !(self.player_connected && self.downlink.is_connected()) {
            assert!(self.now < end, "not connected after 5 s");
            self.step();
        }
        assert!(
            self.events
                .iter()
                .any(|e| matches!(e, PeerEvent::Connected)),
            "the downlink says it is connected"
        );
    }

    /// Runs `d` with the broadcast on: audio every 20 ms on `audio`, a
    /// one-packet VP8 keyframe every 33 ms on `video`.
    fn broadcast_for(&mut self, d: Duration, video: Option<SenderId>, audio: Option<SenderId>) {
        let end = self.now + d;
        let mut tick = 0u32;
        while self.now < end {
            tick += 1;
            for (k, sender, every, clock) in [(0, audio, 20, 48), (1, video, 33, 90)] {
                let Some(sender) = sender else { continue };
                if !tick.is_multiple_of(every) {
                    continue;
                }
                self.seq[k] = self.seq[k].wrapping_add(1);
                let mut p = RtpPacket::default();
                p.header.version = 2;
                // The publisher's numbering: the downlink sends with its own SSRC and PT.
                p.header.ssrc = 99;
                p.header.payload_type = 100;
                p.header.sequence_number = self.seq[k];
                p.header.timestamp = tick * clock;
                p.header.marker = true;
                p.payload = if k == 1 {
                    Bytes::from_static(&[0x10, 0x00, 0x9d, 0x01, 0x2a, 1, 2, 3])
                } else {
                    Bytes::from_static(&[0xfc; 40])
                };
                let sent = self.downlink.write_rtp(self.now, sender, &p).unwrap();
                assert!(sent, "connected and negotiated: sent");
            }
            self.step();
        }
    }

    /// The player's receiver of kaigi's stream `ssrc`.
    fn receiver(&self, ssrc: u32) -> RTCRtpReceiverId {
        self.receivers
            .iter()
            .find(|r| r.1 == ssrc)
            .unwrap_or_else(|| panic!("no receiver opened for SSRC {ssrc}"))
            .0
    }

    fn received_from(&self, ssrc: u32) -> impl Iterator<Item = &RtpPacket> {
        self.received.iter().filter(move |p| p.header.ssrc == ssrc)
    }
}

#[test]
fn whep_offer_is_answered_and_media_flows_with_feedback() {
    let mut w = Whep::new(&[RtpCodecKind::Video, RtpCodecKind::Audio]);
    let offer = w.offer();
    let (answer, senders) = w.answer(&offer, &broadcast());
    assert!(
        answer.contains("a=setup:passive\r\n"),
        "kaigi is the DTLS server"
    );
    let [(0, video), (1, audio)] = senders[..] else {
        panic!("one sender per source, in m-section order: {senders:?}");
    };
    w.connect();

    w.broadcast_for(Duration::from_secs(1), Some(video), Some(audio));
    let video_pt = payload_type(&offer, "VP8/90000");
    let audio_pt = payload_type(&offer, "opus/48000/2");
    let videos: Vec<&RtpPacket> = w.received_from(VIDEO_SSRC).collect();
    let audios: Vec<&RtpPacket> = w.received_from(AUDIO_SSRC).collect();
    assert!(
        videos.len() > 25 && audios.len() > 45,
        "{} video, {} audio",
        videos.len(),
        audios.len()
    );
    assert!(videos.iter().all(|p| p.header.payload_type == video_pt));
    assert!(audios.iter().all(|p| p.header.payload_type == audio_pt));
    assert_eq!(
        &videos[0].payload[..],
        &[0x10, 0x00, 0x9d, 0x01, 0x2a, 1, 2, 3]
    );
    assert_eq!(&audios[0].payload[..], &[0xfc; 40]);
    // Transport-wide sequence numbers on the player's extension id, and its feedback heard.
    let twcc = extmap_id(&offer, TWCC_URI).expect("the player offers TWCC");
    assert!(answer.contains(&format!("a=extmap:{twcc} {TWCC_URI}\r\n")));
    assert!(
        videos[0].header.extensions.iter().any(|e| e.id == twcc),
        "{:?}",
        videos[0].header
    );
    assert!(
        w.downlink.estimate_bps().is_some(),
        "feedback drives an estimate"
    );

    // The network loses three video packets; the player asks for them again.
    let lost = std::rc::Rc::new(std::cell::RefCell::new(Vec::<u16>::new()));
    let record = lost.clone();
    w.lose = Some(Box::new(move |_, data| {
        let rtp = data.len() > 12 && !(192..=223).contains(&data[1]);
        let ssrc = rtp.then(|| u32::from_be_bytes([data[8], data[9], data[10], data[11]]));
        if ssrc != Some(VIDEO_SSRC) || record.borrow().len() >= 3 {
            return false;
        }
        record
            .borrow_mut()
            .push(u16::from_be_bytes([data[2], data[3]]));
        true
    }));
    w.broadcast_for(Duration::from_millis(200), Some(video), Some(audio));
    w.lose = None;
    let lost_seqs = lost.borrow().clone();
    assert_eq!(lost_seqs.len(), 3);
    let seen = |w: &Whep, s: u16| {
        w.received_from(VIDEO_SSRC)
            .any(|p| p.header.sequence_number == s)
    };
    assert!(lost_seqs.iter().all(|&s| !seen(&w, s)), "lost");
    let (now, receiver) = (w.now, w.receiver(VIDEO_SSRC));
    w.player
        .rtp_receiver(receiver)
        .unwrap()
        .write_rtcp(
            now,
            vec![Box::new(TransportLayerNack {
                sender_ssrc: 1,
                media_ssrc: VIDEO_SSRC,
                nacks: nack_pairs_from_sequence_numbers(&lost_seqs),
            })],
        )
        .unwrap();
    w.run_for(Duration::from_millis(50));
    for &s in &lost_seqs {
        assert!(seen(&w, s), "packet {s} sent again after the NACK");
    }

    // A PLI from the player is a keyframe request for the source.
    assert!(
        !w.events
            .iter()
            .any(|e| matches!(e, PeerEvent::KeyframeRequested { .. }))
    );
    let now = w.now;
    w.player
        .rtp_receiver(receiver)
        .unwrap()
        .write_rtcp(
            now,
            vec![Box::new(PictureLossIndication {
                sender_ssrc: 1,
                media_ssrc: VIDEO_SSRC,
            })],
        )
        .unwrap();
    w.run_for(Duration::from_millis(50));
    assert!(
        w.events
            .iter()
            .any(|e| matches!(e, PeerEvent::KeyframeRequested { ssrc: VIDEO_SSRC })),
        "{:?}",
        w.events
    );
}

#[test]
fn passive_whep_offer_makes_kaigi_the_dtls_client() {
    let mut w = Whep::new(&[RtpCodecKind::Audio, RtpCodecKind::Video]);
    // As FFmpeg does: the player waits for kaigi's DTLS hello.
    let offer = w.offer().replace("a=setup:actpass", "a=setup:passive");
    let (answer, senders) = w.answer(&offer, &broadcast());
    assert!(answer.contains("a=setup:active\r\n") && !answer.contains("a=setup:passive"));
    // Sections in the player's order: audio first, the second source.
    let [(1, audio), (0, video)] = senders[..] else {
        panic!("{senders:?}");
    };
    w.connect();
    w.broadcast_for(Duration::from_millis(500), Some(video), Some(audio));
    assert!(w.received_from(VIDEO_SSRC).count() > 10);
    assert!(w.received_from(AUDIO_SSRC).count() > 20);
}

#[test]
fn sections_without_a_source_are_rejected_and_the_rest_plays() {
    // Two video transceivers and one for audio; the broadcast is one camera.
    let mut w = Whep::new(&[
        RtpCodecKind::Video,
        RtpCodecKind::Video,
        RtpCodecKind::Audio,
    ]);
    let offer = w.offer();
    let camera = broadcast().remove(0);
    let (answer, senders) = w.answer(&offer, std::slice::from_ref(&camera));
    assert_eq!(
        answer.matches(" 0 UDP/TLS/RTP/SAVPF ").count(),
        2,
        "{answer}"
    );
    let [(0, video)] = senders[..] else {
        panic!("{senders:?}");
    };
    w.connect();
    w.broadcast_for(Duration::from_millis(500), Some(video), None);
    assert!(w.received_from(VIDEO_SSRC).count() > 10);
}

#[test]
fn a_whep_session_is_negotiated_once_and_by_the_player() {
    let mut w = Whep::new(&[RtpCodecKind::Video, RtpCodecKind::Audio]);
    let offer = w.offer();
    let now = w.now;
    // Refused offers change nothing: the same downlink answers a good one after.
    assert!(matches!(
        w.downlink.answer_offer(now, "v=0\r\ngarbage", &broadcast()),
        Err(PeerError::BadSdp(_))
    ));
    let unknown = AnswerSource {
        codec: Codec {
            mime_type: "video/XV".into(),
            ..vp8()
        },
        ..broadcast().remove(0)
    };
    match w.downlink.answer_offer(now, &offer, &[unknown]) {
        Err(PeerError::BadSdp(reason)) => {
            assert_eq!(reason, "no offered codec matches the broadcast (XV)")
        }
        other => panic!("{other:?}"),
    }
    let mut one_ssrc = broadcast();
    one_ssrc[1].ssrc = VIDEO_SSRC;
    assert!(
        matches!(
            w.downlink.answer_offer(now, &offer, &one_ssrc),
            Err(PeerError::Rtc(_))
        ),
        "two sources on one SSRC"
    );
    w.answer(&offer, &broadcast());
    // Answered: no second answer, no offer, no new senders.
    assert!(w.downlink.answer_offer(now, &offer, &broadcast()).is_err());
    assert!(w.downlink.create_offer(now).is_err());
    assert!(
        w.downlink
            .add_sender("p8", "p8t0", MediaKind::Audio, &opus(), 77)
            .is_err()
    );
    w.connect();

    // And a downlink that offered does not answer.
    let server: SocketAddr = common::SERVER.parse().unwrap();
    let cfg = PeerConfig::new(Endpoint {
        udp: Some(server),
        tcp: None,
    })
    .unwrap();
    let mut offering = Downlink::new(now, &cfg, "u".into(), "p".into());
    offering.create_offer(now).unwrap();
    assert!(matches!(
        offering.answer_offer(now, &offer, &broadcast()),
        Err(PeerError::Rtc(_))
    ));
}
