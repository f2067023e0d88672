//! Relay between nodes: a node serving viewers of a broadcast homed on
//! another node (its *origin*) pulls one copy of it and fans it out
//! locally, so that a branch office's WAN link carries the stream once, not
//! once per viewer.
//!
//! The node-to-node link is plain WebRTC: the edge is a WHEP player of the
//! origin (`POST /whep/{room}?relay=<node>`, a viewer token signed with the
//! cluster's shared token secret), so the link is ICE + DTLS-SRTP like any
//! viewer's, gets the origin's bandwidth estimation, NACK answers and layer
//! choice (the highest layer the WAN link carries), and needs nothing an
//! origin does not already do. On the edge the relayed tracks are published
//! into the local room as a WHIP source would be (in-process, over the
//! loopback), so local viewers, recordings and keyframe aggregation work
//! unchanged. Keyframe requests go back up: the edge's media server asks its
//! source (this relay) after aggregating its viewers' requests, and the relay
//! asks the origin, which aggregates its edges'.
//!
//! A relay starts with the first WHEP offer at the edge that passed the
//! room's rules, runs while the edge has viewers for the room and ends
//! [`IDLE`] after the last one left, or when the broadcast ends at the origin.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::BytesMut;
use rtc::interceptor::{NackGeneratorBuilder, ReceiverReportBuilder, Registry, Slot};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::certificate::RTCCertificate;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_nack, configure_twcc_receiver_only,
};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{
    RTCRtpReceiverId, RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tracing::{debug, info, warn};

use crate::http::AppState;

/// A relay with no local viewer for this long ends.
pub const IDLE: Duration = Duration::from_secs(30);
/// After a relay could not start (nothing live at the origin, origin
/// unreachable), the next attempt waits this long: thousands of waiting
/// pages polling an edge cause at most one request to the origin per room
/// per this interval.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// How long a relay may take to connect both legs.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(8);
/// Lifetime of the token a relay shows the origin (the link outlives it:
/// only the offer is checked).
const TOKEN_SECS: u64 = 120;
/// Name of the relayed source in the edge's room.
const SOURCE_NAME: &str = "中継 / Relay";

/// A relay carries audio.
const AUDIO: u8 = 1;
/// A relay carries video.
const VIDEO: u8 = 2;

/// The relays of this node, by room.
#[derive(Default)]
pub struct Relays {
    map: Mutex<HashMap<String, Arc<Relay>>>,
    cert: OnceLock<RTCCertificate>,
    /// Whether a room is live at its origin, as last asked: (when, live).
    origin_live: Mutex<HashMap<String, (Instant, bool)>>,
}

/// One room's relay.
pub struct Relay {
    room: String,
    origin: String,
    /// Set to end it.
    stop: AtomicBool,
    /// Media flows from the origin into the local room.
    live: AtomicBool,
    /// What it carries: [`AUDIO`] | [`VIDEO`].
    kinds: std::sync::atomic::AtomicU8,
    /// It ended (or never started); `ended` says when.
    done: AtomicBool,
    ended: Mutex<Option<Instant>>,
    changed: tokio::sync::Notify,
}

impl Relay {
    fn finish(&self) {
        self.live.store(false, Ordering::SeqCst);
        *self.ended.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        self.done.store(true, Ordering::SeqCst);
        self.changed.notify_waiters();
    }
}

impl Relays {
    /// Makes sure `room` is relayed here from `origin` (a node's base URL),
    /// starting a relay if none runs; waits up to `wait` for media. Whether
    /// media flows.
    pub async fn ensure(state: &Arc<AppState>, room: &str, origin: &str, wait: Duration) -> bool {
        let relay = {
            let mut map = state.relays.map.lock().unwrap_or_else(|e| e.into_inner());
            // Ended relays are kept only as long as they hold back a retry.
            map.retain(|_, r| {
                !r.done.load(Ordering::SeqCst)
                    || r.ended
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .is_none_or(|t| t.elapsed() < RETRY_AFTER)
            });
            match map.get(room) {
                Some(r) if !r.done.load(Ordering::SeqCst) && r.origin == origin => r.clone(),
                Some(r)
                    if r.done.load(Ordering::SeqCst)
                        && r.origin == origin
                        && r.ended
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .is_some_and(|t| t.elapsed() < RETRY_AFTER) =>
                {
                    return false;
                }
                old => {
                    // The room moved to another origin: the old relay ends.
                    if let Some(old) = old {
                        old.stop.store(true, Ordering::SeqCst);
                    }
                    let r = Arc::new(Relay {
                        room: room.to_owned(),
                        origin: origin.to_owned(),
                        stop: AtomicBool::new(false),
                        live: AtomicBool::new(false),
                        kinds: Default::default(),
                        done: AtomicBool::new(false),
                        ended: Mutex::new(None),
                        changed: tokio::sync::Notify::new(),
                    });
                    map.insert(room.to_owned(), r.clone());
                    let (state, relay) = (state.clone(), r.clone());
                    tokio::spawn(async move {
                        // A relay that failed in an unforeseen way must not hold
                        // its room for good: it ends, and the next viewer retries.
                        if tokio::spawn(run(state, relay.clone())).await.is_err() {
                            relay.finish();
                        }
                    });
                    r
                }
            }
        };
        let until = tokio::time::Instant::now() + wait;
        loop {
            let changed = relay.changed.notified();
            if relay.live.load(Ordering::SeqCst) {
                // The local room shows the tracks once their first packets are
                // in: a viewer answered before the video is would get sound only.
                let want = relay.kinds.load(Ordering::SeqCst);
                let ready = || {
                    state
                        .sfu
                        .control(|e| e.broadcast_source(room))
                        .is_some_and(|b| {
                            (want & AUDIO == 0 || b.audio.is_some())
                                && (want & VIDEO == 0 || b.video.is_some())
                        })
                };
                while !ready() {
                    if tokio::time::Instant::now() >= until || relay.done.load(Ordering::SeqCst) {
                        return false;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                return true;
            }
            if relay.done.load(Ordering::SeqCst) {
                return false;
            }
            if tokio::time::timeout_at(until, changed).await.is_err() {
                return relay.live.load(Ordering::SeqCst);
            }
        }
    }

    /// Whether `room` is being broadcast, for a viewer here of a room homed at
    /// `origin`: live here once relayed; until then, as the origin says
    /// (asked at most every [`ORIGIN_POLL`] per room, however many pages poll).
    /// Asking does not start a relay: a WHEP offer that passed the room's
    /// rules does, so that pages nobody watches never pull a broadcast over the WAN.
    pub async fn live(state: &Arc<AppState>, room: &str, origin: &str) -> bool {
        if state.sfu.control(|e| e.broadcast_source(room)).is_some() {
            return true;
        }
        let cached = state
            .relays
            .origin_live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(room)
            .filter(|(at, _)| at.elapsed() < ORIGIN_POLL)
            .map(|(_, live)| *live);
        if let Some(live) = cached {
            return live;
        }
        let url = origin_status_url(state, origin, room);
        let token = viewer_token(state, room);
        let live = match http_request(state, "GET", &url, Some(&token), None).await {
            Ok(r) if r.status == 200 => serde_json::from_str::<serde_json::Value>(&r.body)
                .is_ok_and(|v| v["live"] == serde_json::Value::Bool(true)),
            _ => false,
        };
        let mut cache = state
            .relays
            .origin_live
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Rooms asked about once are not kept forever.
        cache.retain(|_, (at, _)| at.elapsed() < ORIGIN_POLL * 30);
        cache.insert(room.to_owned(), (Instant::now(), live));
        live
    }

    /// Rooms relayed here now, and their origins (admin health).
    pub fn running(&self) -> Vec<(String, String)> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = map
            .values()
            .filter(|r| !r.done.load(Ordering::SeqCst))
            .map(|r| (r.room.clone(), r.origin.clone()))
            .collect();
        v.sort();
        v
    }

    /// Ends every relay (shutdown).
    pub fn stop_all(&self) {
        for r in self.map.lock().unwrap_or_else(|e| e.into_inner()).values() {
            r.stop.store(true, Ordering::SeqCst);
        }
    }

    fn certificate(&self) -> anyhow::Result<RTCCertificate> {
        if let Some(c) = self.cert.get() {
            return Ok(c.clone());
        }
        let provider = rtc::crypto::default_provider().map_err(|e| anyhow!("{e}"))?;
        let params =
            rtc::peer_connection::certificate::CertificateParams::new(vec!["kaigi-relay".into()])?;
        let cert = RTCCertificate::generate(
            provider.crypto(),
            rtc::crypto::SignatureScheme::EcdsaP256Sha256,
            params,
        )
        .map_err(|e| anyhow!("certificate: {e}"))?;
        Ok(self.cert.get_or_init(|| cert).clone())
    }
}

/// A relay's life: connect both legs, pump media until told to stop or a
/// leg fails, then end both sessions.
async fn run(state: Arc<AppState>, relay: Arc<Relay>) {
    let started = Instant::now();
    match connect(&state, &relay).await {
        Ok(link) => {
            let Link {
                pump,
                upstream,
                ingest,
            } = link;
            info!(
                room = relay.room,
                origin = relay.origin,
                ms = started.elapsed().as_millis() as u64,
                "relay started"
            );
            state.metrics.relays.inc();
            let (relay2, state2) = (relay.clone(), state.clone());
            let mut pumping =
                tokio::task::spawn_blocking(move || pump.run(&relay2, &state2.metrics));
            tokio::spawn(follow_origin(state.clone(), relay.clone()));
            let mut idle_since: Option<Instant> = None;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let why = loop {
                tokio::select! {
                    r = &mut pumping => break match r {
                        Ok(Ok(())) => "stopped".to_owned(),
                        Ok(Err(e)) => e.to_string(),
                        Err(e) => e.to_string(),
                    },
                    _ = tick.tick() => {
                        let viewers = state.viewers.lock().expect("viewers")
                            .values().filter(|s| s.room == relay.room).count();
                        if viewers > 0 {
                            idle_since = None;
                        } else if idle_since.get_or_insert_with(Instant::now).elapsed() >= IDLE {
                            relay.stop.store(true, Ordering::SeqCst);
                        }
                        // The local source went (ended by the admin, a failed loopback).
                        if !state.ingests.lock().expect("ingests").contains_key(&ingest) {
                            relay.stop.store(true, Ordering::SeqCst);
                        }
                    }
                }
            };
            relay.finish();
            state.metrics.relays.dec();
            crate::sdp_http::end(&state, &state.ingests, &ingest, "relay ended");
            if let Err(e) = http_request(&state, "DELETE", &upstream, None, None).await {
                debug!(room = relay.room, error = %e, "relay: DELETE at the origin");
            }
            info!(room = relay.room, origin = relay.origin, why, "relay ended");
        }
        Err(e) => {
            relay.finish();
            state
                .metrics
                .relay_failures
                .with_label_values(&[e.kind])
                .inc();
            if e.kind == "not_live" {
                debug!(
                    room = relay.room,
                    origin = relay.origin,
                    "relay: nothing live at the origin yet"
                );
            } else {
                warn!(room = relay.room, origin = relay.origin, error = %e.error, "relay could not start");
            }
        }
    }
}

/// How often a relay asks its origin whether the broadcast goes on.
const ORIGIN_POLL: Duration = Duration::from_secs(2);

/// Ends the relay when the broadcast ends at its origin: the origin keeps
/// a viewer's session through a pause (a presenter switch), so its end is
/// not seen on the link itself. (An unreachable origin is the link's
/// business: the pump ends when it fails.)
async fn follow_origin(state: Arc<AppState>, relay: Arc<Relay>) {
    let url = origin_status_url(&state, &relay.origin, &relay.room);
    loop {
        tokio::time::sleep(ORIGIN_POLL).await;
        if relay.done.load(Ordering::SeqCst) || relay.stop.load(Ordering::SeqCst) {
            return;
        }
        let token = viewer_token(&state, &relay.room);
        if let Ok(r) = http_request(&state, "GET", &url, Some(&token), None).await
            && r.status == 200
            && serde_json::from_str::<serde_json::Value>(&r.body)
                .is_ok_and(|v| v["live"] == serde_json::Value::Bool(false))
        {
            info!(
                room = relay.room,
                "relay: the broadcast ended at the origin"
            );
            relay.stop.store(true, Ordering::SeqCst);
            return;
        }
    }
}

/// The origin's status of `room`, asked as this node's relay.
fn origin_status_url(state: &AppState, origin: &str, room: &str) -> String {
    let node = state.cluster.as_ref().map_or("kaigi", |c| c.id());
    format!(
        "{}/watch/{room}/status?relay={node}",
        origin.trim_end_matches('/')
    )
}

/// A short-lived viewer token for `room`, signed with the cluster's shared secret.
fn viewer_token(state: &AppState, room: &str) -> String {
    let node = state.cluster.as_ref().map_or("kaigi", |c| c.id());
    crate::auth::mint(
        &state.token_secret,
        &crate::auth::Claims {
            room: room.to_owned(),
            role: crate::auth::Role::Viewer,
            name: Some(format!("relay:{node}")),
            exp: crate::access::unix_now() + TOKEN_SECS,
            iat: crate::access::unix_now(),
        },
    )
}

/// Why a relay could not start, with a metric label.
struct StartError {
    kind: &'static str,
    error: anyhow::Error,
}

fn fail(kind: &'static str) -> impl FnOnce(anyhow::Error) -> StartError {
    move |error| StartError { kind, error }
}

/// Both legs negotiated.
struct Link {
    pump: Pump,
    /// The WHEP resource at the origin (an absolute URL).
    upstream: String,
    /// The local ingest session's resource id.
    ingest: String,
}

async fn connect(state: &Arc<AppState>, relay: &Relay) -> Result<Link, StartError> {
    let now = Instant::now();
    let cert = state.relays.certificate().map_err(fail("internal"))?;
    let origin = Url::parse(&relay.origin).map_err(fail("config"))?;
    let origin_ip = tokio::net::lookup_host((origin.host.as_str(), origin.port))
        .await
        .map_err(|e| anyhow!("{}: {e}", origin.host))
        .map_err(fail("unreachable"))?
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| fail("unreachable")(anyhow!("{}: no address", origin.host)))?;
    let bind = state.sfu.udp_addr().ip();
    let sock = UdpSocket::bind(SocketAddr::new(bind, 0))
        .context("binding the relay socket")
        .map_err(fail("internal"))?;
    let port = sock
        .local_addr()
        .map_err(|e| fail("internal")(e.into()))?
        .port();

    // Upstream: a receive-only WHEP offer to the origin.
    let mut up = build_pc(now, &cert, true).map_err(fail("internal"))?;
    add_host_candidate(
        &mut up,
        SocketAddr::new(local_ip_towards(bind, origin_ip), port),
    )
    .map_err(fail("internal"))?;
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        up.add_transceiver_from_kind(
            kind,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .map_err(|e| fail("internal")(e.into()))?;
    }
    let offer = up
        .create_offer(None)
        .map_err(|e| fail("internal")(e.into()))?;
    let offer_sdp = offer.sdp.clone();
    up.set_local_description(now, offer)
        .map_err(|e| fail("internal")(e.into()))?;
    let node = state.cluster.as_ref().map_or("kaigi", |c| c.id());
    let token = viewer_token(state, &relay.room);
    let url = format!(
        "{}/whep/{}?relay={}",
        relay.origin.trim_end_matches('/'),
        relay.room,
        node
    );
    let res = http_request(state, "POST", &url, Some(&token), Some(offer_sdp))
        .await
        .map_err(fail("unreachable"))?;
    match res.status {
        201 => {}
        404 => return Err(fail("not_live")(anyhow!("nothing is live at the origin"))),
        401 | 403 => {
            return Err(fail("refused")(anyhow!(
                "the origin refused the relay's token ({}): every node must share auth.token_secret",
                res.status
            )));
        }
        s => {
            return Err(fail("refused")(anyhow!(
                "the origin answered {s}: {}",
                res.body.trim()
            )));
        }
    }
    let upstream = res
        .location
        .map(|l| absolute(&relay.origin, &l))
        .ok_or_else(|| fail("refused")(anyhow!("the origin's answer has no Location")))?;
    let codecs = answer_codecs(&res.body);
    up.set_remote_description(
        now,
        RTCSessionDescription::answer(res.body).map_err(|e| fail("refused")(e.into()))?,
    )
    .map_err(|e| fail("refused")(e.into()))?;

    // Downstream: the same tracks, published into the local room.
    let local_media = match state.sfu.udp_addr() {
        a if a.ip().is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), a.port()),
        a => a,
    };
    let mut down = build_pc(now, &cert, false).map_err(fail("internal"))?;
    add_host_candidate(
        &mut down,
        SocketAddr::new(local_ip_towards(bind, local_media.ip()), port),
    )
    .map_err(fail("internal"))?;
    let stream = format!("relay-{}", relay.room);
    let mut outs = Vec::new();
    for (i, c) in codecs.iter().enumerate() {
        let ssrc: u32 = rand::random::<u32>() | 1;
        let kind = if c.video {
            RtpCodecKind::Video
        } else {
            RtpCodecKind::Audio
        };
        let track = MediaStreamTrack::new(
            stream.clone(),
            format!("{stream}-{i}"),
            format!("{stream}-{i}"),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: RTCRtpCodec {
                    mime_type: c.mime.clone(),
                    clock_rate: c.clock,
                    channels: c.channels,
                    sdp_fmtp_line: c.fmtp.clone(),
                    rtcp_feedback: vec![],
                },
                ..Default::default()
            }],
        );
        let id = down
            .add_track(track)
            .map_err(|e| fail("internal")(e.into()))?;
        outs.push(Out {
            id,
            video: c.video,
            ssrc,
            pt: 0,
            seq: Renumber::default(),
        });
    }
    let kinds = outs
        .iter()
        .fold(0, |k, o| k | if o.video { VIDEO } else { AUDIO });
    relay.kinds.store(kinds, Ordering::SeqCst);
    if outs.is_empty() {
        return Err(fail("refused")(anyhow!(
            "the origin's answer carries no media"
        )));
    }
    let offer = down
        .create_offer(None)
        .map_err(|e| fail("internal")(e.into()))?;
    let offer_sdp = offer.sdp.clone();
    down.set_local_description(now, offer)
        .map_err(|e| fail("internal")(e.into()))?;
    let (answer, ingest) = ingest_locally(state, &relay.room, &offer_sdp)
        .await
        .map_err(fail("local"))?;
    let local_answer =
        RTCSessionDescription::answer(answer).map_err(|e| fail("local")(e.into()))?;
    if let Err(e) = down.set_remote_description(now, local_answer) {
        crate::sdp_http::end(state, &state.ingests, &ingest, "relay refused");
        return Err(fail("local")(e.into()));
    }
    for o in &mut outs {
        if let Some(mut s) = down.rtp_sender(o.id) {
            o.pt = s
                .get_parameters()
                .rtp_parameters
                .codecs
                .first()
                .map_or(0, |c| c.payload_type);
        }
    }
    debug!(room = relay.room, "relay negotiated both legs");
    Ok(Link {
        pump: Pump {
            sock,
            up,
            down,
            outs,
            kinds: HashMap::new(),
            down_addrs: HashSet::new(),
            started: now,
        },
        upstream,
        ingest,
    })
}

/// Publishes the relay's offer into the local room as a WHIP source
/// (in-process: the same checks and session as an encoder's). The answer
/// and the session's resource id.
async fn ingest_locally(
    state: &Arc<AppState>,
    room: &str,
    offer: &str,
) -> anyhow::Result<(String, String)> {
    use crate::sdp_http::Endpoint as _;
    let token = crate::auth::mint(
        &state.token_secret,
        &crate::auth::Claims {
            room: room.to_owned(),
            role: crate::auth::Role::Publisher,
            name: Some(SOURCE_NAME.to_owned()),
            exp: crate::access::unix_now() + TOKEN_SECS,
            iat: crate::access::unix_now(),
        },
    );
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/sdp"),
    );
    headers.insert(
        axum::http::header::AUTHORIZATION,
        axum::http::HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    let res = crate::whip::Whip::offer(
        state,
        room,
        &headers,
        offer.as_bytes(),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        None,
    )
    .await
    .map_err(|r| anyhow!("the local media server refused the relay: {}", r.reason()))?;
    let location = res
        .headers()
        .get(axum::http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| l.rsplit('/').next())
        .map(str::to_owned)
        .context("no Location")?;
    let body = axum::body::to_bytes(res.into_body(), crate::sdp_http::MAX_OFFER_BYTES).await?;
    Ok((String::from_utf8(body.to_vec())?, location))
}

/// One relayed track on the local leg.
struct Out {
    id: RTCRtpSenderId,
    video: bool,
    ssrc: u32,
    pt: u8,
    seq: Renumber,
}

/// Sequence numbers without the packets left out (padding): each packet's
/// number less the number of those left out before it, so that a
/// retransmission arriving late still gets the number it had.
#[derive(Default)]
struct Renumber {
    /// The latest numbers left out.
    skipped: std::collections::VecDeque<u16>,
    /// How many more were left out before those.
    older: u16,
}

impl Renumber {
    const KEEP: usize = 512;

    fn skip(&mut self, seq: u16) {
        if self.skipped.len() == Self::KEEP {
            self.skipped.pop_front();
            self.older = self.older.wrapping_add(1);
        }
        self.skipped.push_back(seq);
    }

    fn map(&self, seq: u16) -> u16 {
        let before = self
            .skipped
            .iter()
            .filter(|&&s| (seq.wrapping_sub(s) as i16) > 0)
            .count() as u16;
        seq.wrapping_sub(self.older.wrapping_add(before))
    }
}

/// The media loop of one relay: one UDP socket, both legs (told apart by
/// the address: the local leg's is this node's own media port).
struct Pump {
    sock: UdpSocket,
    up: RTCPeerConnection,
    down: RTCPeerConnection,
    outs: Vec<Out>,
    /// Upstream track id → (video?, receiver, SSRCs).
    kinds: HashMap<String, (bool, RTCRtpReceiverId, Vec<u32>)>,
    /// Where the local leg sends (its answers come from there).
    down_addrs: HashSet<SocketAddr>,
    started: Instant,
}

impl Pump {
    fn run(mut self, relay: &Relay, metrics: &crate::metrics::Metrics) -> anyhow::Result<()> {
        let local = self.sock.local_addr()?;
        let mut buf = vec![0u8; 2048];
        let (mut up_ok, mut down_ok) = (false, false);
        let mut keyframe_asked: Option<Instant> = None;
        let mut wants_keyframe = false;
        loop {
            if relay.stop.load(Ordering::SeqCst) {
                let _ = self.up.close();
                let _ = self.down.close();
                self.flush()?;
                return Ok(());
            }
            let now = Instant::now();
            if !(up_ok && down_ok) && now.duration_since(self.started) > CONNECT_TIMEOUT {
                bail!(
                    "the relay did not connect in {CONNECT_TIMEOUT:?} (up: {up_ok}, down: {down_ok})"
                );
            }
            for pc in [&mut self.up, &mut self.down] {
                if pc.poll_timeout().is_some_and(|t| t <= now) {
                    let _ = pc.handle_timeout(now);
                }
            }
            self.flush()?;
            while let Some(ev) = self.up.poll_event() {
                match ev {
                    RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) => match s {
                        RTCPeerConnectionState::Connected => up_ok = true,
                        RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                            bail!("the link to the origin failed")
                        }
                        _ => {}
                    },
                    RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                        let Some(receiver) = self.up.rtp_receiver(init.receiver_id) else {
                            continue;
                        };
                        let video = receiver.track().kind() == RtpCodecKind::Video;
                        let e = self.kinds.entry(init.track_id).or_insert((
                            video,
                            init.receiver_id,
                            Vec::new(),
                        ));
                        if !e.2.contains(&init.ssrc) {
                            e.2.push(init.ssrc);
                        }
                    }
                    _ => {}
                }
            }
            while let Some(ev) = self.down.poll_event() {
                if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) = ev {
                    match s {
                        RTCPeerConnectionState::Connected => down_ok = true,
                        RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                            bail!("the local leg failed")
                        }
                        _ => {}
                    }
                }
            }
            while let Some(TaggedRTCMessage { message, .. }) = self.up.poll_read() {
                let RTCMessage::RtpPacket(track, mut p) = message else {
                    continue;
                };
                let Some(&(video, _, _)) = self.kinds.get(&track) else {
                    continue;
                };
                let Some(out) = self.outs.iter_mut().find(|o| o.video == video) else {
                    continue;
                };
                if !down_ok {
                    continue;
                }
                // The origin's bandwidth probes (padding only) stop here: the
                // local leg needs no probing, and its sequence numbers close up.
                if p.payload.is_empty() {
                    out.seq.skip(p.header.sequence_number);
                    continue;
                }
                p.header.sequence_number = out.seq.map(p.header.sequence_number);
                p.header.padding = false;
                p.header.ssrc = out.ssrc;
                p.header.payload_type = out.pt;
                p.header.extension = false;
                p.header.extension_profile = 0;
                p.header.extensions.clear();
                let bytes = p.payload.len() as u64 + 12;
                if let Some(mut s) = self.down.rtp_sender(out.id)
                    && s.write_rtp(now, p).is_ok()
                {
                    metrics.relay_bytes.inc_by(bytes);
                    if !relay.live.swap(true, Ordering::SeqCst) {
                        relay.changed.notify_waiters();
                    }
                }
            }
            while let Some(TaggedRTCMessage { message, .. }) = self.down.poll_read() {
                if let RTCMessage::RtcpPacket(_, packets) = message {
                    wants_keyframe |= packets.iter().any(|p| {
                        let any = p.as_any();
                        any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
                    });
                }
            }
            // The local media server already aggregated its viewers' requests;
            // this only keeps a burst of them from crossing the WAN twice.
            if wants_keyframe
                && keyframe_asked.is_none_or(|t| now.duration_since(t) > Duration::from_millis(300))
            {
                keyframe_asked = Some(now);
                self.ask_keyframe(now);
                metrics.relay_keyframe_requests.inc();
            }
            wants_keyframe = false;
            self.flush()?;
            let next = [self.up.poll_timeout(), self.down.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now + Duration::from_millis(50));
            let wait = next
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(1), Duration::from_millis(50));
            self.sock.set_read_timeout(Some(wait))?;
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let to_down = self.down_addrs.contains(&from);
                    // The local media server asking for a keyframe: SRTCP leaves the
                    // first header of a compound clear, and kaigi's requests head theirs.
                    if to_down && is_keyframe_request(&buf[..n]) {
                        wants_keyframe = true;
                    }
                    let pc = if to_down {
                        &mut self.down
                    } else {
                        &mut self.up
                    };
                    let _ = pc.handle_read(TaggedBytesMut {
                        now: Instant::now(),
                        transport: TransportContext {
                            local_addr: local,
                            peer_addr: from,
                            ecn: None,
                            transport_protocol: TransportProtocol::UDP,
                        },
                        message: BytesMut::from(&buf[..n]),
                    });
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                // ICMP (the origin's port closed) surfaces here: the state events tell.
                Err(e) => debug!(error = %e, "relay recv"),
            }
        }
    }

    /// Sends what both legs have queued.
    fn flush(&mut self) -> anyhow::Result<()> {
        while let Some(m) = self.up.poll_write() {
            let _ = self.sock.send_to(&m.message, m.transport.peer_addr);
        }
        while let Some(m) = self.down.poll_write() {
            self.down_addrs.insert(m.transport.peer_addr);
            let _ = self.sock.send_to(&m.message, m.transport.peer_addr);
        }
        Ok(())
    }

    /// A picture loss indication to the origin for each relayed video stream.
    fn ask_keyframe(&mut self, now: Instant) {
        let videos: Vec<_> = self
            .kinds
            .values()
            .filter(|(video, _, _)| *video)
            .map(|(_, r, ssrcs)| (*r, ssrcs.clone()))
            .collect();
        for (receiver, ssrcs) in videos {
            let plis: Vec<Box<dyn rtc::rtcp::packet::Packet>> = ssrcs
                .into_iter()
                .map(|media_ssrc| {
                    Box::new(PictureLossIndication {
                        sender_ssrc: 0,
                        media_ssrc,
                    }) as Box<dyn rtc::rtcp::packet::Packet>
                })
                .collect();
            if let Some(mut r) = self.up.rtp_receiver(receiver) {
                let _ = r.write_rtcp(now, plis);
            }
        }
    }
}

/// Whether an (S)RTCP datagram starts with a picture loss indication or a
/// full intra request.
fn is_keyframe_request(d: &[u8]) -> bool {
    d.len() >= 12 && d[0] >> 6 == 2 && d[1] == 206 && matches!(d[0] & 0x1f, 1 | 4)
}

/// A client peer connection. The upstream one reports losses (NACK),
/// receptions (receiver reports) and arrival times (transport-wide
/// feedback), so that the origin retransmits and estimates the WAN link
/// as for any viewer.
fn build_pc(
    now: Instant,
    cert: &RTCCertificate,
    receives: bool,
) -> anyhow::Result<RTCPeerConnection> {
    let mut me = MediaEngine::default();
    me.register_default_codecs()?;
    let mut builder = RTCPeerConnectionBuilder::new().with_configuration(
        RTCConfigurationBuilder::new()
            .with_certificates(vec![cert.clone()])
            .build(),
    );
    if receives {
        let _ = configure_nack(Registry::new(), &mut me);
        let registry = configure_twcc_receiver_only(Registry::new(), &mut me)?
            .with(Slot::NackGenerator, NackGeneratorBuilder::new().build())
            .with(Slot::ReceiverReport, ReceiverReportBuilder::new().build());
        builder = builder.with_interceptor_registry(registry);
    }
    Ok(builder.with_media_engine(me).build(now)?)
}

fn add_host_candidate(pc: &mut RTCPeerConnection, addr: SocketAddr) -> anyhow::Result<()> {
    pc.add_local_candidate(sfu::peer::host_candidate(addr, false)?)?;
    Ok(())
}

/// The address this host sends from towards `to` (the socket is bound to
/// `bind`, possibly unspecified).
fn local_ip_towards(bind: IpAddr, to: IpAddr) -> IpAddr {
    if !bind.is_unspecified() {
        return bind;
    }
    UdpSocket::bind(SocketAddr::new(bind, 0))
        .and_then(|s| {
            s.connect(SocketAddr::new(to, 9))?;
            s.local_addr()
        })
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip())
}

/// A negotiated codec of the origin's answer, per m-section.
#[derive(Debug, Clone, PartialEq)]
struct AnswerCodec {
    video: bool,
    mime: String,
    clock: u32,
    channels: u16,
    fmtp: String,
}

/// The first codec of each accepted audio/video m-section of an answer.
fn answer_codecs(sdp: &str) -> Vec<AnswerCodec> {
    let mut out = Vec::new();
    let sections = sdp.split("\nm=").skip(1);
    for s in sections {
        let mut words = s.split_whitespace();
        let kind = words.next().unwrap_or("");
        let port = words.next().unwrap_or("0");
        let _proto = words.next();
        let Some(pt) = words.next() else { continue };
        if port == "0" || !matches!(kind, "audio" | "video") {
            continue;
        }
        let video = kind == "video";
        if out.iter().any(|c: &AnswerCodec| c.video == video) {
            continue;
        }
        let attr = |name: &str| {
            s.lines()
                .find_map(|l| l.trim_end().strip_prefix(&format!("a={name}:{pt} ")))
                .map(str::to_owned)
        };
        let Some(rtpmap) = attr("rtpmap") else {
            continue;
        };
        let mut parts = rtpmap.split('/');
        let name = parts.next().unwrap_or("");
        let clock = parts.next().and_then(|c| c.parse().ok()).unwrap_or(90_000);
        let channels = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
        out.push(AnswerCodec {
            video,
            mime: format!("{kind}/{name}"),
            clock,
            channels,
            fmtp: attr("fmtp").unwrap_or_default(),
        });
    }
    out
}

/// `http://host:port` or `https://host:port`, as nodes' URLs are written.
#[derive(Debug, PartialEq)]
struct Url {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

impl Url {
    fn parse(url: &str) -> anyhow::Result<Url> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            bail!("{url}: a node URL starts with http:// or https://");
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
                h.trim_start_matches('[').trim_end_matches(']'),
                p.parse().with_context(|| format!("{url}: bad port"))?,
            ),
            _ => (authority, if tls { 443 } else { 80 }),
        };
        if host.is_empty() {
            bail!("{url}: no host");
        }
        Ok(Url {
            tls,
            host: host.to_owned(),
            port,
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
        })
    }
}

/// `location` (absolute, or a path) resolved against `base`.
fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else {
        format!("{}{}", base.trim_end_matches('/'), location)
    }
}

/// What a node answered.
struct HttpResponse {
    status: u16,
    location: Option<String>,
    body: String,
}

/// A small HTTP/1.1 client for node-to-node requests (an offer, a DELETE):
/// `https://` is checked against `cluster.ca_file` (the office CA).
async fn http_request(
    state: &AppState,
    method: &str,
    url: &str,
    bearer: Option<&str>,
    sdp: Option<String>,
) -> anyhow::Result<HttpResponse> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let u = Url::parse(url)?;
    let body = sdp.unwrap_or_default();
    let mut req = format!(
        "{method} {} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
        u.path,
        u.host,
        u.port,
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/sdp\r\n");
    }
    if let Some(t) = bearer {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    let work = async {
        let tcp = tokio::net::TcpStream::connect((u.host.as_str(), u.port)).await?;
        let mut raw = Vec::new();
        if u.tls {
            let config = node_tls(state)?;
            let name = rustls::pki_types::ServerName::try_from(u.host.clone())?;
            let mut s = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            s.write_all(req.as_bytes()).await?;
            s.take(256 * 1024).read_to_end(&mut raw).await?;
        } else {
            let mut s = tcp;
            s.write_all(req.as_bytes()).await?;
            s.take(256 * 1024).read_to_end(&mut raw).await?;
        }
        parse_response(&raw)
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .map_err(|_| anyhow!("{url}: no answer in 5 s"))?
}

fn parse_response(raw: &[u8]) -> anyhow::Result<HttpResponse> {
    // Bytes until the body is cut out: a chunk boundary may fall inside a
    // character, and slicing text there would panic.
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("a truncated response")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let mut location = None;
    let mut chunked = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if k == "location" {
                location = Some(v.trim().to_owned());
            } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            }
        }
    }
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Ok(HttpResponse {
        status,
        location,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A chunked body's data (what is well formed of it).
fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&s[..eol]).unwrap_or("");
        // Chunk extensions (`;name=value`) are allowed after the size.
        let size = size.split(';').next().unwrap_or("").trim();
        let Ok(n) = usize::from_str_radix(size, 16) else {
            break;
        };
        let rest = &s[eol + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        s = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// What a node's answer to a relay's offer is read for, in one call: for
/// the fuzzer (the answer comes from another machine).
#[doc(hidden)]
pub fn read_node_answer(raw: &[u8]) -> usize {
    let Ok(r) = parse_response(raw) else {
        return 0;
    };
    let _ = r
        .location
        .as_deref()
        .map(|l| Url::parse(&absolute("http://origin:8443", l)));
    answer_codecs(&r.body).len() + usize::from(r.status)
}

/// TLS towards other nodes: their certificates must chain to `cluster.ca_file`.
fn node_tls(state: &AppState) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if let Some(c) = CONFIG.get() {
        return Ok(c.clone());
    }
    let ca = state.config.cluster.ca_file.as_ref().context(
        "the nodes' URLs are https://: set cluster.ca_file to the CA that signed their certificates",
    )?;
    let config = crate::directory::tls_config(ca).map_err(|e| anyhow!(e))?;
    Ok(CONFIG.get_or_init(|| Arc::new(config)).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_nodes_parse() {
        let u = Url::parse("https://kaigi-a.example.lg.jp:8443").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (true, "kaigi-a.example.lg.jp", 8443, "/")
        );
        let u = Url::parse("http://10.0.0.1/whep/r?relay=b").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (false, "10.0.0.1", 80, "/whep/r?relay=b")
        );
        let u = Url::parse("http://[::1]:8080/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8080));
        assert!(Url::parse("ftp://x").is_err());
        assert!(Url::parse("http://:80").is_err());
        assert!(Url::parse("http://h:port").is_err());
    }

    #[test]
    fn answers_give_one_codec_per_kind() {
        let sdp = "v=0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 102 96\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\n\
            a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
            m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n";
        let c = answer_codecs(sdp);
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].mime.as_str(), c[0].clock, c[0].channels),
            ("audio/opus", 48000, 2)
        );
        assert_eq!(c[0].fmtp, "minptime=10;useinbandfec=1");
        assert_eq!((c[1].mime.as_str(), c[1].video), ("video/H264", true));
        assert!(c[1].fmtp.contains("packetization-mode=1"));
        assert!(answer_codecs("v=0\r\nm=video 0 UDP/TLS/RTP/SAVPF 96\r\n").is_empty());
        assert!(answer_codecs("garbage").is_empty());
    }

    #[test]
    fn padding_left_out_closes_up_the_numbers() {
        let mut r = Renumber::default();
        assert_eq!(r.map(100), 100);
        r.skip(101);
        r.skip(102);
        assert_eq!(r.map(103), 101);
        // A retransmission of a packet from before the gap keeps its number.
        assert_eq!(r.map(100), 100);
        // Across the wrap.
        let mut r = Renumber::default();
        r.skip(65535);
        assert_eq!(r.map(0), 65535);
        assert_eq!(r.map(65534), 65534);
        // Many skipped: the oldest are counted, not kept.
        let mut r = Renumber::default();
        for s in 0..2000u16 {
            r.skip(s);
        }
        assert_eq!(r.map(2000), 0);
    }

    #[test]
    fn keyframe_requests_are_seen_through_srtcp() {
        // PLI: V=2, FMT=1, PT=206, length 2, sender and media SSRCs (+ SRTCP trailer).
        let pli = [0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0x80, 0, 0, 1];
        assert!(is_keyframe_request(&pli));
        let fir = [0x84, 206, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0];
        assert!(is_keyframe_request(&fir));
        let remb = [0x8f, 206, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0];
        assert!(!is_keyframe_request(&remb));
        let rr = [0x81, 201, 0, 7, 0, 0, 0, 1, 0, 0, 0, 2];
        assert!(!is_keyframe_request(&rr));
        assert!(!is_keyframe_request(&pli[..8]));
    }

    #[test]
    fn responses_parse_plain_and_chunked() {
        let r = parse_response(
            b"HTTP/1.1 201 Created\r\nLocation: /whep/r/abc\r\nContent-Length: 3\r\n\r\nv=0",
        )
        .unwrap();
        assert_eq!(
            (r.status, r.location.as_deref(), r.body.as_str()),
            (201, Some("/whep/r/abc"), "v=0")
        );
        let r = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.body, "abcde");
        // A chunk ending inside a character (a panic when sliced as text).
        let r = parse_response(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n中\r\n".as_bytes(),
        )
        .unwrap();
        assert_eq!(r.body, "\u{fffd}");
        let r = parse_response(b"HTTP/1.1 201 Created\r\nLocation: /a\r\n\r\n\xff\xfe").unwrap();
        assert_eq!(r.status, 201);
        assert!(parse_response(b"HTTP/1.1 200").is_err());
        assert_eq!(absolute("http://a:1/", "/whep/r/x"), "http://a:1/whep/r/x");
        assert_eq!(absolute("http://a:1", "https://b/x"), "https://b/x");
    }
}
