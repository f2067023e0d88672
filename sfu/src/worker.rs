//! A media worker's state, sans-IO: the peers of the participants it hosts,
//! the tracks they publish, and the subscriptions it serves.
//!
//! The worker takes datagrams, commands, packets from other workers and the
//! time; it gives back datagrams, messages for other workers and events for
//! the control plane. A room's participants may live on any worker: a
//! published packet is decrypted once on the publisher's worker, handed once
//! to every worker that has subscribers to it, and encrypted there per
//! subscriber. The thread, channels and sockets around it are in
//! [`crate::runtime`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tracing::{debug, info, warn};

use crate::codec::VideoCodec;
use crate::layers::{self, ALLOCATE_EVERY, SourceLayers};
use crate::net::demux::{PacketClass, classify, stun_local_ufrag};
use crate::peer::{
    AnswerSource, Codec, Connection, Downlink, Peer, PeerConfig, PeerEvent, RtpPacket, SenderId,
    Transmit, Transport,
};
use crate::record::RecordSink;
use crate::stats::{DropReason, WorkerStats};
use crate::subscription::Subscription;
use crate::track::PublishedTrack;
use crate::{MediaKind, ParticipantId, Rng, Role, TrackId};

/// An instruction from the control plane to the worker that hosts a participant.
#[derive(Debug)]
pub enum Command {
    /// Host a new participant; its peers use these ICE credentials.
    AddParticipant {
        /// Who.
        participant: ParticipantId,
        /// (ufrag, pwd) of its publish peer.
        publish_ice: (String, String),
        /// (ufrag, pwd) of its subscribe peer.
        subscribe_ice: (String, String),
        /// The index of its first track: a participant that reconnects
        /// continues where its last connection stopped, so track ids are
        /// never reused.
        first_track: u32,
    },
    /// The client's offer for its publish peer.
    PublishOffer {
        /// Who.
        participant: ParticipantId,
        /// The SDP.
        sdp: String,
    },
    /// The client's answer to our last subscribe offer.
    SubscribeAnswer {
        /// Who.
        participant: ParticipantId,
        /// The SDP.
        sdp: String,
    },
    /// A trickled client candidate.
    Candidate {
        /// Who.
        participant: ParticipantId,
        /// Which of its peers.
        role: Role,
        /// The `candidate:` line.
        candidate: String,
        /// Its m-section id.
        sdp_mid: Option<String>,
        /// Its m-section index.
        sdp_mline_index: Option<u16>,
    },
    /// Start forwarding `track` to `subscriber` (hosted here).
    Subscribe {
        /// The receiving participant.
        subscriber: ParticipantId,
        /// The track.
        track: TrackId,
        /// The worker hosting the publisher.
        source_worker: usize,
        /// Audio or video.
        kind: MediaKind,
        /// The source codec.
        codec: Codec,
        /// A screen share: offered in the stream `p<id>-screen`.
        screen: bool,
        /// Starts paused (the subscriber does not show it).
        paused: bool,
        /// The size the subscriber shows it at (device pixels), if known.
        size: Option<(u32, u32)>,
    },
    /// The size (device pixels) a subscriber shows a video at: the layer
    /// chosen for it fits that size.
    SetSize {
        /// The receiving participant.
        subscriber: ParticipantId,
        /// The track.
        track: TrackId,
        /// Width and height; `None`: not known (the top layer fits).
        size: Option<(u32, u32)>,
    },
    /// Pause (or resume) forwarding `track` to `subscriber`: it does not
    /// show that video now.
    SetPaused {
        /// The receiving participant.
        subscriber: ParticipantId,
        /// The track.
        track: TrackId,
        /// Paused.
        paused: bool,
    },
    /// Stop forwarding `track` to `subscriber`.
    Unsubscribe {
        /// The receiving participant.
        subscriber: ParticipantId,
        /// The track.
        track: TrackId,
    },
    /// Send `track` (published here) to `worker` too.
    AddFanout {
        /// The track.
        track: TrackId,
        /// The worker that now has subscribers.
        worker: usize,
    },
    /// Stop sending `track` to `worker`.
    RemoveFanout {
        /// The track.
        track: TrackId,
        /// The worker that has no subscribers left.
        worker: usize,
    },
    /// Stop (or resume) forwarding a participant's audio or video, whatever
    /// its client sends: a moderator's mute is enforced here, not trusted to
    /// the client.
    Hold {
        /// Whose media.
        participant: ParticipantId,
        /// Which kind.
        kind: MediaKind,
        /// Held (not forwarded) or released.
        held: bool,
    },
    /// A viewer's (WHEP) offer for its subscribe connection: answer it with
    /// these sources, and forward them to it from then on.
    ViewerOffer {
        /// The viewer.
        participant: ParticipantId,
        /// The client's offer.
        sdp: String,
        /// What the answer may carry.
        sources: Vec<ViewerSource>,
    },
    /// Record tracks published here into `sink` (the broadcast's video at
    /// its top layer, and its audio) until stopped or the tracks end.
    Record {
        /// The recording, for `StopRecord`.
        id: u64,
        /// The video track.
        video: Option<TrackId>,
        /// The audio track.
        audio: Option<TrackId>,
        /// Where the packets go.
        sink: RecordSink,
    },
    /// Stop feeding a recording (its file is then completed).
    StopRecord {
        /// The recording.
        id: u64,
    },
    /// A viewer now gets these tracks (the broadcast's presenter changed):
    /// its senders are re-pointed, each to the source of its kind (in
    /// order), without a renegotiation; a sender whose codec no source of
    /// its kind has stays silent.
    ViewerSwitch {
        /// The viewer.
        viewer: ParticipantId,
        /// What it is to receive.
        sources: Vec<ViewerSource>,
    },
    /// Close the participant's peers and forget it.
    RemoveParticipant {
        /// Who.
        participant: ParticipantId,
    },
}

/// A track a viewer's answer may carry.
#[derive(Debug, Clone)]
pub struct ViewerSource {
    /// The track.
    pub track: TrackId,
    /// The worker hosting its publisher.
    pub source_worker: usize,
    /// Audio or video.
    pub kind: MediaKind,
    /// Its codec.
    pub codec: Codec,
    /// A screen share.
    pub screen: bool,
}

/// Everything a worker can be handed (other than datagrams and time).
#[derive(Debug)]
pub enum WorkerMsg {
    /// From the control plane.
    Command(Command),
    /// A decrypted packet of a track published on another worker.
    Media {
        /// Which track.
        track: TrackId,
        /// Its simulcast layer (0 without simulcast).
        layer: u8,
        /// The packet (payload shared by reference count).
        packet: Arc<RtpPacket>,
    },
    /// A subscriber on another worker wants a keyframe of a track published here.
    KeyframeRequest {
        /// Which track.
        track: TrackId,
        /// Of which layer (`None`: all).
        layer: Option<u8>,
    },
}

/// What the worker tells the control plane.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerEvent {
    /// The answer to a participant's publish offer.
    PublishAnswer {
        /// Who.
        participant: ParticipantId,
        /// The SDP.
        sdp: String,
    },
    /// A (re)offer for a participant's subscribe peer.
    SubscribeOffer {
        /// Who.
        participant: ParticipantId,
        /// The SDP.
        sdp: String,
    },
    /// The answer to a viewer's (WHEP) offer.
    SubscribeAnswer {
        /// Who.
        participant: ParticipantId,
        /// The SDP.
        sdp: String,
    },
    /// A participant's track started.
    TrackPublished {
        /// Its id (the participant is `track.participant`).
        track: TrackId,
        /// Audio or video.
        kind: MediaKind,
        /// Its codec.
        codec: Codec,
        /// The publisher's own id for it (its msid track id).
        local_id: String,
    },
    /// Mean loudness (127 − RFC 6464 level) of audio tracks published here
    /// over the last interval; 0 for a track that sent no level.
    AudioLevels {
        /// When measured.
        at: Instant,
        /// Per track.
        levels: Vec<(TrackId, f32)>,
    },
    /// The highest simulcast layer of a track that this worker's
    /// subscribers are to receive changed (`None`: none of them); the
    /// publisher need not encode layers above what any worker wants.
    LayersWanted {
        /// The reporting worker.
        worker: usize,
        /// The track.
        track: TrackId,
        /// The highest layer wanted here.
        max: Option<u8>,
    },
    /// A participant's track ended.
    TrackUnpublished {
        /// Its id.
        track: TrackId,
    },
    /// A peer connected.
    Connected {
        /// Who.
        participant: ParticipantId,
        /// Which peer.
        role: Role,
    },
    /// A peer failed or closed.
    Failed {
        /// Who.
        participant: ParticipantId,
        /// Which peer.
        role: Role,
    },
    /// A request of the participant could not be carried out.
    Error {
        /// Who.
        participant: ParticipantId,
        /// Protocol error code.
        code: &'static str,
        /// Reason for a human.
        message: String,
    },
}

/// What the worker gives back.
#[derive(Debug)]
pub enum Output {
    /// A datagram to send.
    Transmit(Transmit),
    /// A message for another worker (by index).
    ToWorker(usize, WorkerMsg),
    /// An event for the control plane.
    Event(WorkerEvent),
}

/// The subscribe side's offer/answer state.
#[derive(Debug, Default, PartialEq, Eq)]
enum Negotiation {
    /// Nothing in flight.
    #[default]
    Stable,
    /// An offer was sent; `again` if the senders changed since.
    Offered { again: bool },
}

struct Hosted {
    // Boxed: a peer connection is ~8 KiB, and the map of hosted participants
    // keeps spare slots; viewers have no publish peer at all.
    publish: Option<Box<Peer>>,
    publish_ice: (String, String),
    subscribe: Box<Downlink>,
    negotiation: Negotiation,
    /// How many tracks this participant has published (for track indices).
    next_track: u32,
    /// Tracks this participant subscribes to.
    subscriptions: FastSet<TrackId>,
    /// Held kinds ([audio, video]): tracks published later start held too.
    held: [bool; 2],
    /// The audio-level header extension id its publish offer negotiated.
    audio_level_id: Option<u8>,
    /// The simulcast stream ids of its camera, low to high (its publish offer).
    simulcast_rids: Vec<String>,
    /// A viewer whose client offered (WHEP): its subscribe connection is
    /// never renegotiated.
    viewer: bool,
    /// A viewer's senders, fixed by its answer: what each carries now.
    viewer_senders: Vec<ViewerSender>,
}

/// One sender of a viewer's answer.
struct ViewerSender {
    kind: MediaKind,
    sender: SenderId,
    ssrc: u32,
    /// The codec its answer negotiated (sources of another codec cannot use it).
    mime: String,
    /// The track it carries now, if any.
    track: Option<TrackId>,
}

type PeerKey = (ParticipantId, Role);

/// Maps on the packet path hash with Fx, not SipHash: their keys are ids
/// kaigi assigns, or addresses that passed an ICE check, so flooding them
/// with collisions is not open to a stranger.
type FastMap<K, V> = rustc_hash::FxHashMap<K, V>;
type FastSet<K> = rustc_hash::FxHashSet<K>;

/// The state of one media worker.
pub struct WorkerCore {
    index: usize,
    cfg: PeerConfig,
    stats: Arc<WorkerStats>,
    rng: Rng,
    hosted: FastMap<ParticipantId, Hosted>,
    by_ufrag: HashMap<String, PeerKey>,
    by_addr: FastMap<(SocketAddr, Transport), PeerKey>,
    /// Tracks published by participants hosted here.
    published: FastMap<TrackId, PublishedTrack>,
    /// When audio levels are reported next (while any track carries them).
    next_levels: Option<Instant>,
    /// (publisher, stack track id) → track, for incoming packets.
    by_local_track: FastMap<(ParticipantId, String), TrackId>,
    /// Subscriptions hosted here, by track.
    subs: FastMap<TrackId, Vec<Subscription>>,
    /// Where each track's publisher lives (for keyframe requests).
    source_worker: FastMap<TrackId, usize>,
    /// Outgoing SSRC → (subscriber, track), for keyframe requests from subscribers.
    by_out_ssrc: FastMap<u32, TrackId>,
    /// Peer deadlines; an entry is live only while it equals `scheduled[key]`.
    timers: BinaryHeap<Reverse<(Instant, ParticipantId, bool)>>,
    scheduled: FastMap<PeerKey, Instant>,
    out: VecDeque<Output>,
    /// Subscribers touched by the packet being forwarded (kept to reuse its allocation).
    scratch: Vec<ParticipantId>,
    /// What this worker sees of the layers of each track it forwards.
    sources: FastMap<TrackId, SourceLayers>,
    /// The highest layer of each track wanted here, as last reported.
    layers_wanted: FastMap<TrackId, Wanted>,
    /// When the subscribers' layers are chosen next (while any subscribe).
    next_allocation: Option<Instant>,
    /// Tracks published here that are being recorded.
    recordings: Vec<Recorded>,
    /// When recordings' keyframe wishes are looked at next (while any).
    next_record_check: Option<Instant>,
}

/// A track being recorded.
struct Recorded {
    id: u64,
    track: TrackId,
    video: bool,
    sink: RecordSink,
}

/// Video sections of a viewer's offer answered beyond the live pictures
/// (for presenters added later; see [`Command::ViewerSwitch`]).
const SPARE_VIEWER_VIDEOS: usize = 3;

/// How often a recording's wish for a keyframe is looked at.
const RECORD_CHECK_EVERY: Duration = Duration::from_millis(250);

impl WorkerCore {
    /// A worker numbered `index`; `seed` makes its SSRCs reproducible in tests.
    pub fn new(index: usize, cfg: PeerConfig, stats: Arc<WorkerStats>, seed: u64) -> Self {
        WorkerCore {
            index,
            cfg,
            stats,
            rng: Rng::new(seed),
            hosted: FastMap::default(),
            by_ufrag: HashMap::new(),
            by_addr: FastMap::default(),
            published: FastMap::default(),
            next_levels: None,
            by_local_track: FastMap::default(),
            subs: FastMap::default(),
            source_worker: FastMap::default(),
            by_out_ssrc: FastMap::default(),
            timers: BinaryHeap::new(),
            scheduled: FastMap::default(),
            out: VecDeque::new(),
            scratch: Vec::new(),
            sources: FastMap::default(),
            layers_wanted: FastMap::default(),
            next_allocation: None,
            recordings: Vec::new(),
            next_record_check: None,
        }
    }

    /// This worker's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many participants this worker hosts.
    pub fn participant_count(&self) -> usize {
        self.hosted.len()
    }

    /// How many subscriptions this worker serves.
    pub fn subscription_count(&self) -> usize {
        self.subs.values().map(Vec::len).sum()
    }

    /// The counters of this worker.
    pub fn stats(&self) -> &Arc<WorkerStats> {
        &self.stats
    }

    /// How many outputs wait to be taken.
    pub fn pending_outputs(&self) -> usize {
        self.out.len()
    }

    /// Takes the next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn event(&mut self, ev: WorkerEvent) {
        self.out.push_back(Output::Event(ev));
    }

    fn error(&mut self, participant: ParticipantId, code: &'static str, message: String) {
        self.event(WorkerEvent::Error {
            participant,
            code,
            message,
        });
    }

    fn peer_mut(&mut self, key: PeerKey) -> Option<&mut dyn Connection> {
        let h = self.hosted.get_mut(&key.0)?;
        match key.1 {
            Role::Publish => h.publish.as_deref_mut().map(|p| p as &mut dyn Connection),
            Role::Subscribe => Some(h.subscribe.as_mut()),
        }
    }

    /// Feeds one datagram received on the media port.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: Transport,
        data: BytesMut,
    ) {
        WorkerStats::add(&self.stats.packets_in, 1);
        WorkerStats::add(&self.stats.bytes_in, data.len() as u64);
        let key = match classify(&data) {
            PacketClass::Other => {
                self.stats.dropped(DropReason::Garbage);
                return;
            }
            PacketClass::Stun => {
                let by_ufrag = stun_local_ufrag(&data).and_then(|u| self.by_ufrag.get(u).copied());
                match by_ufrag {
                    Some(key) => {
                        self.by_addr.insert((from, transport), key);
                        key
                    }
                    // Responses to our own checks carry no USERNAME.
                    None => match self.by_addr.get(&(from, transport)) {
                        Some(&key) => key,
                        None => {
                            self.stats.dropped(DropReason::UnknownSource);
                            return;
                        }
                    },
                }
            }
            PacketClass::Dtls | PacketClass::Rtp => match self.by_addr.get(&(from, transport)) {
                Some(&key) => key,
                None => {
                    self.stats.dropped(DropReason::UnknownSource);
                    return;
                }
            },
        };
        let Some(peer) = self.peer_mut(key) else {
            self.stats.dropped(DropReason::UnknownSource);
            return;
        };
        if let Err(e) = peer.handle_datagram(now, from, transport, data) {
            debug!(participant = key.0, error = %e, "datagram rejected");
            self.stats.dropped(DropReason::Rejected);
        }
        self.after_peer(now, key);
    }

    /// Handles a message from the control plane or another worker.
    pub fn handle_msg(&mut self, now: Instant, msg: WorkerMsg) {
        match msg {
            WorkerMsg::Command(cmd) => self.handle_command(now, cmd),
            WorkerMsg::Media {
                track,
                layer,
                packet,
            } => self.deliver_local(now, track, layer, &packet),
            WorkerMsg::KeyframeRequest { track, layer } => self.keyframe_request(now, track, layer),
        }
    }

    fn handle_command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::AddParticipant {
                participant,
                publish_ice,
                subscribe_ice,
                first_track,
            } => {
                let sub_ufrag = subscribe_ice.0.clone();
                let subscribe = Downlink::new(now, &self.cfg, subscribe_ice.0, subscribe_ice.1);
                self.by_ufrag
                    .insert(sub_ufrag, (participant, Role::Subscribe));
                self.by_ufrag
                    .insert(publish_ice.0.clone(), (participant, Role::Publish));
                self.hosted.insert(
                    participant,
                    Hosted {
                        publish: None,
                        publish_ice,
                        subscribe: Box::new(subscribe),
                        negotiation: Negotiation::Stable,
                        next_track: first_track,
                        subscriptions: FastSet::default(),
                        held: [false; 2],
                        audio_level_id: None,
                        simulcast_rids: Vec::new(),
                        viewer: false,
                        viewer_senders: Vec::new(),
                    },
                );
            }
            Command::PublishOffer { participant, sdp } => self.publish_offer(now, participant, sdp),
            Command::SubscribeAnswer { participant, sdp } => {
                self.subscribe_answer(now, participant, sdp)
            }
            Command::Candidate {
                participant,
                role,
                candidate,
                sdp_mid,
                sdp_mline_index,
            } => {
                if let Some(peer) = self.peer_mut((participant, role))
                    && let Err(e) = peer.add_remote_candidate(candidate, sdp_mid, sdp_mline_index)
                {
                    self.error(participant, "bad_request", format!("candidate: {e}"));
                }
            }
            Command::Subscribe {
                subscriber,
                track,
                source_worker,
                kind,
                codec,
                screen,
                paused,
                size,
            } => self.subscribe(
                now,
                subscriber,
                track,
                source_worker,
                (kind, codec),
                screen,
                (paused, size),
            ),
            Command::SetSize {
                subscriber,
                track,
                size,
            } => {
                if let Some(s) = self
                    .subs
                    .get_mut(&track)
                    .and_then(|l| l.iter_mut().find(|s| s.subscriber == subscriber))
                {
                    s.size = size;
                }
            }
            Command::Unsubscribe { subscriber, track } => self.unsubscribe(now, subscriber, track),
            Command::SetPaused {
                subscriber,
                track,
                paused,
            } => {
                let Some(s) = self
                    .subs
                    .get_mut(&track)
                    .and_then(|l| l.iter_mut().find(|s| s.subscriber == subscriber))
                else {
                    return;
                };
                if s.paused == paused {
                    return;
                }
                s.paused = paused;
                let sender = s.sender;
                if !paused {
                    // Resume at once: continuous sequence numbers and a fresh keyframe.
                    if let Some(h) = self.hosted.get_mut(&subscriber) {
                        h.subscribe.resync(sender);
                    }
                    let layer = self.target_layer(track, subscriber);
                    self.keyframe_request_remote(now, track, layer);
                }
            }
            Command::AddFanout { track, worker } => {
                if let Some(t) = self.published.get_mut(&track) {
                    t.add_worker(worker);
                }
            }
            Command::RemoveFanout { track, worker } => {
                if let Some(t) = self.published.get_mut(&track) {
                    t.remove_worker(worker);
                }
            }
            Command::Hold {
                participant,
                kind,
                held,
            } => {
                if let Some(h) = self.hosted.get_mut(&participant) {
                    h.held[kind as usize] = held;
                }
                for t in self.published.values_mut() {
                    if t.id.participant == participant && t.kind == kind {
                        t.held = held;
                    }
                }
                info!(participant, kind = kind.as_str(), held, "media hold");
            }
            Command::ViewerOffer {
                participant,
                sdp,
                sources,
            } => self.viewer_offer(now, participant, &sdp, sources),
            Command::Record {
                id,
                video,
                audio,
                sink,
            } => {
                let tracks = [(video, true), (audio, false)];
                for (track, is_video) in tracks {
                    if let Some(track) = track.filter(|t| self.published.contains_key(t)) {
                        self.recordings.push(Recorded {
                            id,
                            track,
                            video: is_video,
                            sink: sink.clone(),
                        });
                        if is_video {
                            self.keyframe_request(now, track, self.recorded_layer(track));
                        }
                    }
                }
                if !self.recordings.is_empty() {
                    self.next_record_check = Some(now + RECORD_CHECK_EVERY);
                    self.next_allocation.get_or_insert(now);
                }
                info!(worker = self.index, id, ?video, ?audio, "recording started");
            }
            Command::StopRecord { id } => {
                // Dropping the sinks ends the recording's queue: its writer finishes the file.
                self.recordings.retain(|r| r.id != id);
                info!(worker = self.index, id, "recording stopped");
            }
            Command::ViewerSwitch { viewer, sources } => self.viewer_switch(now, viewer, sources),
            Command::RemoveParticipant { participant } => self.remove(participant),
        }
    }

    /// Re-points a viewer's senders at `sources` (see [`Command::ViewerSwitch`]).
    fn viewer_switch(&mut self, now: Instant, viewer: ParticipantId, sources: Vec<ViewerSource>) {
        let Some(h) = self.hosted.get_mut(&viewer) else {
            return;
        };
        // Which source each sender gets: the next unused one of its kind and codec.
        let mut plan: Vec<(usize, Option<ViewerSource>)> = Vec::new();
        let mut taken = vec![false; sources.len()];
        for (i, vs) in h.viewer_senders.iter().enumerate() {
            let pick = sources.iter().enumerate().position(|(k, src)| {
                !taken[k]
                    && src.kind == vs.kind
                    && src.codec.mime_type.eq_ignore_ascii_case(&vs.mime)
            });
            if let Some(k) = pick {
                taken[k] = true;
            }
            plan.push((i, pick.map(|k| sources[k].clone())));
        }
        for (i, src) in plan {
            let Some(h) = self.hosted.get_mut(&viewer) else {
                return;
            };
            let vs = &h.viewer_senders[i];
            let (sender, ssrc, old) = (vs.sender, vs.ssrc, vs.track);
            if old == src.as_ref().map(|s| s.track) {
                continue;
            }
            if let Some(old) = old {
                self.detach(viewer, old);
            }
            let Some(src) = src else {
                continue;
            };
            let Some(h) = self.hosted.get_mut(&viewer) else {
                return;
            };
            h.viewer_senders[i].track = Some(src.track);
            let payload_type = h.subscribe.sender_payload_type(sender, &src.codec);
            // The new source numbers its packets its own way: continue the viewer's.
            h.subscribe.resync(sender);
            h.subscriptions.insert(src.track);
            self.by_out_ssrc.insert(ssrc, src.track);
            self.source_worker.insert(src.track, src.source_worker);
            self.sources
                .entry(src.track)
                .or_insert_with(|| SourceLayers::new(&src.codec.mime_type));
            self.subs.entry(src.track).or_default().push(Subscription {
                subscriber: viewer,
                track: src.track,
                kind: src.kind,
                codec: src.codec.clone(),
                sender,
                ssrc,
                payload_type,
                paused: false,
                screen: src.screen,
                // Nothing until the new source's keyframe.
                current: None,
                target: Some(0),
                size: None,
                starved: 0,
                upgrade_after: None,
                resumed_at: None,
                pause_backoff: Duration::ZERO,
            });
            if src.kind == MediaKind::Video {
                self.keyframe_request_remote(now, src.track, Some(0));
            }
        }
        self.next_allocation.get_or_insert(now + ALLOCATE_EVERY);
    }

    /// Stops forwarding `track` to `subscriber`; its sender stays (a viewer's
    /// answer is never renegotiated, so its senders are kept for what comes next).
    fn detach(&mut self, subscriber: ParticipantId, track: TrackId) -> Option<Subscription> {
        let list = self.subs.get_mut(&track)?;
        let pos = list.iter().position(|s| s.subscriber == subscriber)?;
        let sub = list.swap_remove(pos);
        if list.is_empty() {
            self.subs.remove(&track);
            self.source_worker.remove(&track);
            self.sources.remove(&track);
        }
        if self.by_out_ssrc.get(&sub.ssrc) == Some(&track) {
            self.by_out_ssrc.remove(&sub.ssrc);
        }
        if let Some(h) = self.hosted.get_mut(&subscriber) {
            h.subscriptions.remove(&track);
            for vs in h
                .viewer_senders
                .iter_mut()
                .filter(|v| v.track == Some(track))
            {
                vs.track = None;
            }
        }
        Some(sub)
    }

    /// The simulcast layer of `track` a recording takes: the top one.
    fn recorded_layer(&self, track: TrackId) -> Option<u8> {
        self.published
            .get(&track)
            .map(|t| t.layers.len().saturating_sub(1) as u8)
    }

    fn publish_offer(&mut self, now: Instant, participant: ParticipantId, sdp: String) {
        let Some(h) = self.hosted.get_mut(&participant) else {
            return;
        };
        h.audio_level_id = crate::peer::sdp::extmap_id(&sdp, crate::peer::AUDIO_LEVEL_URI);
        h.simulcast_rids = crate::peer::sdp::simulcast_rids(&sdp);
        let result = match h.publish.as_mut() {
            Some(peer) => peer.answer(now, sdp),
            None => {
                let (ufrag, pwd) = h.publish_ice.clone();
                Peer::new_publisher(now, &self.cfg, ufrag, pwd, sdp).map(|(peer, answer)| {
                    h.publish = Some(Box::new(peer));
                    answer
                })
            }
        };
        match result {
            Ok(answer) => {
                self.event(WorkerEvent::PublishAnswer {
                    participant,
                    sdp: answer,
                });
                self.after_peer(now, (participant, Role::Publish));
            }
            Err(e) => self.error(participant, "bad_sdp", e.to_string()),
        }
    }

    /// Answers a viewer's offer with the sources its worker was given, and
    /// subscribes it to those the answer carries.
    fn viewer_offer(
        &mut self,
        now: Instant,
        participant: ParticipantId,
        sdp: &str,
        sources: Vec<ViewerSource>,
    ) {
        let Some(h) = self.hosted.get_mut(&participant) else {
            return;
        };
        h.viewer = true;
        let mut answer_sources: Vec<AnswerSource> = sources
            .iter()
            .map(|src| AnswerSource {
                kind: src.kind,
                codec: src.codec.clone(),
                ssrc: self.rng.next_u64() as u32,
                stream_id: if src.screen {
                    format!("p{}-screen", src.track.participant)
                } else {
                    format!("p{}", src.track.participant)
                },
                track_id: src.track.to_string(),
            })
            .collect();
        // Video sections the offer has beyond what is live now are answered
        // too, silent, so that a presenter added later (a sign-language
        // interpreter) can be shown without a renegotiation.
        if let Some(video) = sources.iter().find(|s| s.kind == MediaKind::Video) {
            for k in 0..SPARE_VIEWER_VIDEOS {
                answer_sources.push(AnswerSource {
                    kind: MediaKind::Video,
                    codec: video.codec.clone(),
                    ssrc: self.rng.next_u64() as u32,
                    stream_id: format!("kaigi-picture-{}", k + 2),
                    track_id: format!("picture-{}", k + 2),
                });
            }
        }
        let (answer, used) = match h.subscribe.answer_offer(now, sdp, &answer_sources) {
            Ok(r) => r,
            Err(e) => {
                let code = if e.to_string().contains("no offered codec matches") {
                    "no_codec"
                } else {
                    "bad_sdp"
                };
                self.error(participant, code, e.to_string());
                return;
            }
        };
        for (index, sender) in used {
            let Some(h) = self.hosted.get_mut(&participant) else {
                return;
            };
            let Some(out) = answer_sources.get(index) else {
                continue;
            };
            let Some(src) = sources.get(index) else {
                // A spare picture: nothing to carry yet.
                h.viewer_senders.push(ViewerSender {
                    kind: out.kind,
                    sender,
                    ssrc: out.ssrc,
                    mime: out.codec.mime_type.clone(),
                    track: None,
                });
                continue;
            };
            let payload_type = h.subscribe.sender_payload_type(sender, &src.codec);
            h.subscriptions.insert(src.track);
            h.viewer_senders.push(ViewerSender {
                kind: src.kind,
                sender,
                ssrc: out.ssrc,
                mime: src.codec.mime_type.clone(),
                track: Some(src.track),
            });
            self.by_out_ssrc.insert(out.ssrc, src.track);
            self.source_worker.insert(src.track, src.source_worker);
            self.sources
                .entry(src.track)
                .or_insert_with(|| SourceLayers::new(&src.codec.mime_type));
            self.subs.entry(src.track).or_default().push(Subscription {
                subscriber: participant,
                track: src.track,
                kind: src.kind,
                codec: src.codec.clone(),
                sender,
                ssrc: out.ssrc,
                payload_type,
                paused: false,
                screen: src.screen,
                current: Some(0),
                target: Some(0),
                size: None,
                starved: 0,
                upgrade_after: None,
                resumed_at: None,
                pause_backoff: Duration::ZERO,
            });
        }
        self.next_allocation.get_or_insert(now + ALLOCATE_EVERY);
        self.event(WorkerEvent::SubscribeAnswer {
            participant,
            sdp: answer,
        });
        self.after_peer(now, (participant, Role::Subscribe));
    }

    fn subscribe_answer(&mut self, now: Instant, participant: ParticipantId, sdp: String) {
        let Some(h) = self.hosted.get_mut(&participant) else {
            return;
        };
        let Negotiation::Offered { again } = h.negotiation else {
            self.error(
                participant,
                "bad_request",
                "subscribe_answer without a pending subscribe_offer".into(),
            );
            return;
        };
        if let Err(e) = h.subscribe.apply_answer(now, sdp) {
            self.error(participant, "bad_sdp", e.to_string());
            return;
        }
        h.negotiation = Negotiation::Stable;
        // Now that the answer is in, each sender knows its payload types.
        let tracks: Vec<TrackId> = h.subscriptions.iter().copied().collect();
        for track in tracks {
            let Some(list) = self.subs.get_mut(&track) else {
                continue;
            };
            let h = self.hosted.get_mut(&participant).expect("checked above");
            for s in list.iter_mut().filter(|s| s.subscriber == participant) {
                s.payload_type = h.subscribe.sender_payload_type(s.sender, &s.codec);
            }
            // A new subscriber needs a keyframe to start decoding.
            let layer = self.target_layer(track, participant);
            self.keyframe_request_remote(now, track, layer);
        }
        if again {
            self.renegotiate(now, participant);
        }
        self.after_peer(now, (participant, Role::Subscribe));
    }

    #[allow(clippy::too_many_arguments)] // one Command::Subscribe, unpacked
    fn subscribe(
        &mut self,
        now: Instant,
        subscriber: ParticipantId,
        track: TrackId,
        source_worker: usize,
        (kind, codec): (MediaKind, Codec),
        screen: bool,
        (paused, size): (bool, Option<(u32, u32)>),
    ) {
        let ssrc = self.rng.next_u64() as u32;
        let Some(h) = self.hosted.get_mut(&subscriber) else {
            return;
        };
        if h.subscriptions.contains(&track) {
            return;
        }
        // The msid stream id names the participant (docs/protocol.md); its
        // screen share is a stream of its own.
        let stream_id = if screen {
            format!("p{}-screen", track.participant)
        } else {
            format!("p{}", track.participant)
        };
        let sender =
            match h
                .subscribe
                .add_sender(&stream_id, &track.to_string(), kind, &codec, ssrc)
            {
                Ok(s) => s,
                Err(e) => {
                    warn!(subscriber, %track, error = %e, "cannot add sender");
                    return;
                }
            };
        h.subscriptions.insert(track);
        self.by_out_ssrc.insert(ssrc, track);
        self.source_worker.insert(track, source_worker);
        self.sources
            .entry(track)
            .or_insert_with(|| SourceLayers::new(&codec.mime_type));
        self.subs.entry(track).or_default().push(Subscription {
            subscriber,
            track,
            kind,
            codec,
            sender,
            ssrc,
            payload_type: None,
            paused,
            screen,
            // Layer 0 at first (simulcast or not); the allocator moves it up.
            current: Some(0),
            target: Some(0),
            size,
            starved: 0,
            upgrade_after: None,
            resumed_at: None,
            pause_backoff: Duration::ZERO,
        });
        self.next_allocation.get_or_insert(now + ALLOCATE_EVERY);
        self.renegotiate(now, subscriber);
    }

    fn unsubscribe(&mut self, now: Instant, subscriber: ParticipantId, track: TrackId) {
        let Some(sub) = self.detach(subscriber, track) else {
            return;
        };
        if let Some(h) = self.hosted.get_mut(&subscriber)
            && !h.viewer
        {
            let _ = h.subscribe.remove_sender(sub.sender);
            self.renegotiate(now, subscriber);
        }
    }

    /// Sends a new subscribe offer now, or after the pending one is answered.
    fn renegotiate(&mut self, now: Instant, participant: ParticipantId) {
        let Some(h) = self.hosted.get_mut(&participant) else {
            return;
        };
        // A viewer's senders were fixed by its answer; a removed one falls silent.
        if h.viewer {
            return;
        }
        match h.negotiation {
            Negotiation::Offered { .. } => h.negotiation = Negotiation::Offered { again: true },
            Negotiation::Stable => match h.subscribe.create_offer(now) {
                Ok(sdp) => {
                    h.negotiation = Negotiation::Offered { again: false };
                    self.event(WorkerEvent::SubscribeOffer { participant, sdp });
                    self.after_peer(now, (participant, Role::Subscribe));
                }
                Err(e) => warn!(participant, error = %e, "cannot create subscribe offer"),
            },
        }
    }

    fn remove(&mut self, participant: ParticipantId) {
        let Some(mut h) = self.hosted.remove(&participant) else {
            return;
        };
        if let Some(p) = h.publish.as_mut() {
            p.close();
        }
        h.subscribe.close();
        self.flush_closing(&mut h);
        self.by_ufrag.retain(|_, k| k.0 != participant);
        self.scheduled.retain(|k, _| k.0 != participant);
        self.by_addr.retain(|_, k| k.0 != participant);
        // Its subscriptions.
        for track in &h.subscriptions {
            if let Some(list) = self.subs.get_mut(track) {
                list.retain(|s| {
                    if s.subscriber == participant {
                        self.by_out_ssrc.remove(&s.ssrc);
                        false
                    } else {
                        true
                    }
                });
                if list.is_empty() {
                    self.subs.remove(track);
                    self.source_worker.remove(track);
                    self.sources.remove(track);
                }
            }
        }
        // Its tracks.
        let gone: Vec<TrackId> = self
            .published
            .keys()
            .filter(|t| t.participant == participant)
            .copied()
            .collect();
        for t in gone {
            self.published.remove(&t);
            self.recordings.retain(|r| r.track != t);
            self.event(WorkerEvent::TrackUnpublished { track: t });
        }
        self.by_local_track.retain(|k, _| k.0 != participant);
        info!(participant, worker = self.index, "participant removed");
    }

    /// Sends what the peers have left to say (DTLS close) before they go.
    fn flush_closing(&mut self, h: &mut Hosted) {
        if let Some(p) = h.publish.as_mut() {
            while let Some(t) = p.poll_transmit() {
                self.out.push_back(Output::Transmit(t));
            }
        }
        while let Some(t) = h.subscribe.poll_transmit() {
            self.out.push_back(Output::Transmit(t));
        }
    }

    /// Drains a peer after it was touched: transmits, events, its next timer.
    fn after_peer(&mut self, now: Instant, key: PeerKey) {
        // Split borrows: the peer lives in `hosted`, its output goes to `out`.
        let Some(h) = self.hosted.get_mut(&key.0) else {
            return;
        };
        let peer: &mut dyn Connection = match key.1 {
            Role::Publish => match h.publish.as_mut() {
                Some(p) => p.as_mut(),
                None => return,
            },
            Role::Subscribe => h.subscribe.as_mut(),
        };
        while let Some(t) = peer.poll_transmit() {
            WorkerStats::add(&self.stats.packets_out, 1);
            WorkerStats::add(&self.stats.bytes_out, t.data.len() as u64);
            self.out.push_back(Output::Transmit(t));
        }
        let deadline = peer.poll_timeout();
        if let Some(d) = deadline {
            self.schedule(key, d);
        }
        // Events may touch other peers (a packet fans out): handle them one at a time.
        while let Some(ev) = self.peer_mut(key).and_then(|p| p.poll_event()) {
            self.peer_event(now, key, ev);
        }
    }

    /// Keeps one live heap entry per peer, at its earliest known deadline.
    fn schedule(&mut self, key: PeerKey, at: Instant) {
        if self.scheduled.get(&key).is_some_and(|&s| s <= at) {
            return;
        }
        self.scheduled.insert(key, at);
        self.timers
            .push(Reverse((at, key.0, key.1 == Role::Publish)));
    }

    fn peer_event(&mut self, now: Instant, key: PeerKey, ev: PeerEvent) {
        let (participant, role) = key;
        match ev {
            PeerEvent::Rtp { track, packet } => {
                let Some(&id) = self.by_local_track.get(&(participant, track)) else {
                    return;
                };
                let Some(layer) = self
                    .published
                    .get(&id)
                    .and_then(|t| t.layer_of(packet.header.ssrc))
                else {
                    return;
                };
                // A moderator-held track does not speak.
                if let Some(t) = self.published.get_mut(&id)
                    && !t.held
                    && let Some(ext) = t.audio_level_id
                    && let Some(level) = packet
                        .header
                        .get_extension(ext)
                        .and_then(|p| crate::speaker::level_of(&p))
                {
                    t.levels.add(level);
                }
                self.forward(now, id, layer, packet);
            }
            PeerEvent::TrackOpened {
                track,
                kind,
                codec,
                ssrc,
                rid,
            } => {
                let Some(h) = self.hosted.get_mut(&participant) else {
                    return;
                };
                // Simulcast: each layer opens under the same track; its
                // place is that of its rid in the offer (low to high).
                let rids = &h.simulcast_rids;
                let layer = rid
                    .as_ref()
                    .and_then(|r| rids.iter().position(|x| x == r))
                    .filter(|&i| i < layers::MAX_LAYERS);
                let layer_count = if rid.is_some() {
                    rids.len().clamp(1, layers::MAX_LAYERS)
                } else {
                    1
                };
                if let Some(&id) = self.by_local_track.get(&(participant, track.clone())) {
                    if let (Some(t), Some(i)) = (self.published.get_mut(&id), layer)
                        && let Some(slot) = t.layers.get_mut(i)
                    {
                        *slot = Some(ssrc);
                        debug!(participant, %id, layer = i, ssrc, "simulcast layer opened");
                    }
                    return;
                }
                if rid.is_some() && layer.is_none() {
                    // A rid the offer did not list: not a layer kaigi can place.
                    warn!(
                        participant,
                        ?rid,
                        "simulcast stream with an unknown rid ignored"
                    );
                    return;
                }
                let mut layer_ssrcs = vec![None; layer_count];
                layer_ssrcs[layer.unwrap_or(0)] = Some(ssrc);
                let id = TrackId {
                    participant,
                    index: h.next_track,
                };
                h.next_track += 1;
                self.by_local_track.insert((participant, track.clone()), id);
                let held = h.held[kind as usize];
                let audio_level_id = h.audio_level_id.filter(|_| kind == MediaKind::Audio);
                self.published.insert(
                    id,
                    PublishedTrack {
                        id,
                        local_id: track.clone(),
                        kind,
                        codec: codec.clone(),
                        keyframes: vec![Default::default(); layer_count],
                        layers: layer_ssrcs,
                        fanout: Vec::new(),
                        held,
                        audio_level_id,
                        levels: Default::default(),
                    },
                );
                if audio_level_id.is_some() {
                    self.next_levels.get_or_insert(now + LEVELS_EVERY);
                }
                info!(participant, %id, kind = kind.as_str(), codec = %codec.mime_type, "track published");
                self.event(WorkerEvent::TrackPublished {
                    track: id,
                    kind,
                    codec,
                    local_id: track,
                });
            }
            PeerEvent::TrackClosed { track } => {
                if let Some(id) = self.by_local_track.remove(&(participant, track)) {
                    self.published.remove(&id);
                    self.recordings.retain(|r| r.track != id);
                    self.event(WorkerEvent::TrackUnpublished { track: id });
                }
            }
            PeerEvent::KeyframeRequested { ssrc } => {
                if let Some(&track) = self.by_out_ssrc.get(&ssrc) {
                    // The subscriber's decoder needs a keyframe of what it receives.
                    let layer = self
                        .subs
                        .get(&track)
                        .and_then(|l| l.iter().find(|s| s.ssrc == ssrc))
                        .and_then(|s| s.current.or(s.target));
                    self.keyframe_request_remote(now, track, layer);
                }
            }
            PeerEvent::Connected => {
                // Keyframes asked for before the subscriber could receive were lost.
                if role == Role::Subscribe
                    && let Some(h) = self.hosted.get(&participant)
                {
                    let tracks: Vec<TrackId> = h.subscriptions.iter().copied().collect();
                    for t in tracks {
                        let layer = self.target_layer(t, participant);
                        self.keyframe_request_remote(now, t, layer);
                    }
                }
                self.event(WorkerEvent::Connected { participant, role })
            }
            PeerEvent::Failed => self.event(WorkerEvent::Failed { participant, role }),
            PeerEvent::LinkStats {
                rtt,
                loss,
                estimate_bps,
            } => {
                if let Some(rtt) = rtt {
                    self.stats.rtt.observe(rtt.as_secs_f64());
                }
                if let Some(loss) = loss {
                    self.stats.loss.observe(loss);
                }
                if let Some(bps) = estimate_bps {
                    self.stats.estimate.observe(bps as f64 / 8.0);
                }
            }
            PeerEvent::FirstMedia(after) => self.stats.first_media.observe(after.as_secs_f64()),
        }
    }

    /// A packet of a track published here: once to each worker with
    /// subscribers, and to its recordings.
    fn forward(&mut self, now: Instant, track: TrackId, layer: u8, packet: RtpPacket) {
        let Some(t) = self.published.get(&track) else {
            return;
        };
        let recorded =
            !self.recordings.is_empty() && self.recordings.iter().any(|r| r.track == track);
        if (t.fanout.is_empty() && !recorded) || t.held {
            return;
        }
        let packet = Arc::new(packet);
        if recorded {
            let top = t.layers.len().saturating_sub(1) as u8;
            for r in self.recordings.iter().filter(|r| r.track == track) {
                if !r.video || layer == top {
                    r.sink.send(r.video, now, &packet);
                }
            }
        }
        let mut local = false;
        for &w in &t.fanout {
            if w == self.index {
                local = true;
            } else {
                self.out.push_back(Output::ToWorker(
                    w,
                    WorkerMsg::Media {
                        track,
                        layer,
                        packet: packet.clone(),
                    },
                ));
            }
        }
        if local {
            self.deliver_local(now, track, layer, &packet);
        }
    }

    /// A packet to every subscriber of `track` hosted here.
    fn deliver_local(&mut self, now: Instant, track: TrackId, layer: u8, packet: &RtpPacket) {
        let Some(list) = self.subs.get_mut(&track) else {
            return;
        };
        // Whether the packet starts a keyframe is asked once, and only when
        // someone waits to switch layers (or a source's size is unknown).
        let mut keyframe: Option<bool> = None;
        let codec = self.sources.get(&track).map(SourceLayers::codec);
        let mut is_keyframe = || {
            *keyframe.get_or_insert_with(|| {
                codec.is_some_and(|c| crate::codec::is_keyframe_start(c, &packet.payload))
            })
        };
        if let Some(src) = self.sources.get_mut(&track) {
            let key = src.codec() != VideoCodec::Other && is_keyframe();
            src.on_packet(now, layer, &packet.payload, key, packet.payload.len() + 12);
        }
        // A reused list: no allocation per forwarded packet.
        let mut touched = std::mem::take(&mut self.scratch);
        touched.clear();
        for s in list.iter_mut() {
            let Some(h) = self.hosted.get_mut(&s.subscriber) else {
                continue;
            };
            if s.paused {
                WorkerStats::add(&self.stats.rtp_paused, 1);
                continue;
            }
            let (forward, switched) = s.admit(layer, &mut is_keyframe);
            if !forward {
                continue;
            }
            if switched {
                h.subscribe.resync(s.sender);
                WorkerStats::add(&self.stats.layer_switches, 1);
            }
            if s.payload_type.is_none() || !h.subscribe.is_connected() {
                self.stats.dropped(DropReason::SubscriberNotReady);
                continue;
            }
            match h.subscribe.write_rtp(now, s.sender, packet) {
                Ok(true) => {
                    WorkerStats::add(&self.stats.rtp_forwarded, 1);
                    touched.push(s.subscriber);
                }
                // Padding only: nothing a subscriber can use.
                Ok(false) => {}
                Err(e) => {
                    debug!(subscriber = s.subscriber, error = %e, "write_rtp failed");
                    self.stats.dropped(DropReason::Rejected);
                }
            }
        }
        for &p in &touched {
            self.after_peer(now, (p, Role::Subscribe));
        }
        self.scratch = touched;
    }

    /// The layer `subscriber` is to receive of `track`, for keyframe requests.
    fn target_layer(&self, track: TrackId, subscriber: ParticipantId) -> Option<u8> {
        self.subs
            .get(&track)
            .and_then(|l| l.iter().find(|s| s.subscriber == subscriber))
            .and_then(|s| s.target.or(s.current))
    }

    /// A subscriber hosted here needs a keyframe of `track` (of `layer`, or
    /// of all layers), wherever it is published.
    fn keyframe_request_remote(&mut self, now: Instant, track: TrackId, layer: Option<u8>) {
        match self.source_worker.get(&track) {
            Some(&w) if w != self.index => self.out.push_back(Output::ToWorker(
                w,
                WorkerMsg::KeyframeRequest { track, layer },
            )),
            _ => self.keyframe_request(now, track, layer),
        }
    }

    /// A keyframe request for a track published here, throttled per layer.
    fn keyframe_request(&mut self, now: Instant, track: TrackId, layer: Option<u8>) {
        let Some(t) = self.published.get_mut(&track) else {
            return;
        };
        if t.kind != MediaKind::Video {
            return;
        }
        let due: Vec<usize> = t
            .keyframes
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| layer.is_none_or(|l| l as usize == *i))
            .filter_map(|(i, k)| k.request(now).then_some(i))
            .collect();
        for i in due {
            self.send_pli(now, track, i);
        }
    }

    fn send_pli(&mut self, now: Instant, track: TrackId, layer: usize) {
        let Some(t) = self.published.get(&track) else {
            return;
        };
        let local = t.local_id.clone();
        // Without simulcast: the track's one stream, whatever its SSRC.
        let ssrc = if t.layers.len() > 1 {
            match t.layers.get(layer).copied().flatten() {
                Some(s) => Some(s),
                None => return,
            }
        } else {
            None
        };
        let key = (track.participant, Role::Publish);
        if let Some(peer) = self
            .hosted
            .get_mut(&track.participant)
            .and_then(|h| h.publish.as_mut())
            && peer.request_keyframe(now, &local, ssrc).is_ok()
        {
            WorkerStats::add(&self.stats.keyframe_requests, 1);
        }
        self.after_peer(now, key);
    }

    /// Chooses, for every subscriber hosted here, the layer of each video
    /// it receives (bandwidth estimate and tile sizes), tells the downlink
    /// what it would send if it could (probing), asks for keyframes of
    /// newly chosen layers, and reports per track the highest layer wanted.
    fn allocate_layers(&mut self, now: Instant) {
        let participants: Vec<ParticipantId> = self
            .hosted
            .iter()
            .filter(|(_, h)| !h.subscriptions.is_empty())
            .map(|(&p, _)| p)
            .collect();
        let mut keyframes = Vec::new();
        for p in participants {
            let h = &self.hosted[&p];
            let estimate = h.subscribe.estimate_bps();
            let mut audio = 0u64;
            let mut tracks = Vec::new();
            let mut items = Vec::new();
            for &track in &h.subscriptions {
                let Some(s) = self
                    .subs
                    .get(&track)
                    .and_then(|l| l.iter().find(|s| s.subscriber == p))
                else {
                    continue;
                };
                let Some(src) = self.sources.get(&track) else {
                    continue;
                };
                if s.kind == MediaKind::Audio {
                    audio += src.audio_bps(now);
                    continue;
                }
                if s.paused {
                    continue;
                }
                let mut item = src.item(now);
                item.shown = s.size;
                item.screen = s.screen;
                item.current = s.current;
                if s.upgrade_after.is_some_and(|t| now < t) {
                    item.cap = s.target;
                }
                tracks.push(track);
                items.push(item);
            }
            // Audio first: video gets what is left.
            let budget = estimate.map(|e| e.saturating_sub(audio));
            let (choices, wanted) = layers::allocate(budget, &items);
            if let Some(h) = self.hosted.get_mut(&p) {
                h.subscribe.set_wanted_bps(now, wanted + audio);
            }
            for ((track, choice), item) in tracks.into_iter().zip(choices).zip(&items) {
                let Some(s) = self
                    .subs
                    .get_mut(&track)
                    .and_then(|l| l.iter_mut().find(|s| s.subscriber == p))
                else {
                    continue;
                };
                // A chosen layer that does not arrive (the publisher stopped
                // it, nobody wanted it) is switched to once it does.
                // An estimate dips below the lowest layer for a moment after a
                // drop (it undershoots before it settles): pausing needs it
                // to stay there.
                let mut layer = match choice.layer {
                    None if s.starved < STARVED_ROUNDS => {
                        s.starved += 1;
                        Some(0)
                    }
                    None => None,
                    Some(l) => {
                        s.starved = 0;
                        Some(l)
                    }
                };
                // A paused video stays paused through its cooldown (the
                // allocator's cap cannot say "none").
                if s.target.is_none() && s.upgrade_after.is_some_and(|t| now < t) {
                    layer = None;
                }
                if layer != s.target {
                    debug!(subscriber = p, %track, from = ?s.target, to = ?layer, estimate, "layer target");
                    // Down for want of bandwidth (not because the tile shrank).
                    if layer < s.target && layer < Some(choice.desired) {
                        s.upgrade_after = Some(now + UPGRADE_COOLDOWN);
                    }
                    if layer.is_none() {
                        s.current = None;
                        WorkerStats::add(&self.stats.video_paused_for_bandwidth, 1);
                        // A link that paused this video again soon after it came
                        // back cannot carry it: wait longer each time.
                        let recent = s
                            .resumed_at
                            .is_some_and(|t| now.saturating_duration_since(t) < PAUSE_MEMORY);
                        s.pause_backoff = if recent {
                            (s.pause_backoff * 2).clamp(UPGRADE_COOLDOWN, MAX_PAUSE_BACKOFF)
                        } else {
                            UPGRADE_COOLDOWN
                        };
                        s.upgrade_after = Some(now + s.pause_backoff);
                    } else if s.target.is_none() {
                        s.resumed_at = Some(now);
                    }
                    s.target = layer;
                }
                if let Some(t) = s.target
                    && s.current != Some(t)
                    && item.flowing[t as usize]
                {
                    keyframes.push((track, t));
                }
            }
            self.after_peer(now, (p, Role::Subscribe));
        }
        for (track, layer) in keyframes {
            self.keyframe_request_remote(now, track, Some(layer));
        }
        self.report_layers_wanted(now);
        let busy = !self.subs.is_empty() || !self.recordings.is_empty();
        self.next_allocation = busy.then(|| now + ALLOCATE_EVERY);
    }

    /// Per video track forwarded here: the highest layer any subscriber
    /// here is to receive, to the engine when it changed (dynacast).
    fn report_layers_wanted(&mut self, now: Instant) {
        let mut changes = Vec::new();
        let mut wanted: Vec<(TrackId, Option<u8>)> = Vec::new();
        for (&track, list) in &self.subs {
            if list.first().is_none_or(|s| s.kind != MediaKind::Video) {
                continue;
            }
            let max = list
                .iter()
                .filter(|s| !s.paused)
                .filter_map(|s| s.target)
                .max();
            wanted.push((track, max));
        }
        // A recording wants the top layer, whoever watches.
        for r in self.recordings.iter().filter(|r| r.video) {
            let top = self.recorded_layer(r.track);
            match wanted.iter_mut().find(|(t, _)| *t == r.track) {
                Some((_, max)) => *max = (*max).max(top),
                None => wanted.push((r.track, top)),
            }
        }
        for (track, max) in wanted {
            match self.layers_wanted.get_mut(&track) {
                None => {
                    self.layers_wanted.insert(
                        track,
                        Wanted {
                            reported: max,
                            lower_since: None,
                        },
                    );
                    changes.push((track, max));
                }
                Some(w) if max > w.reported => {
                    *w = Wanted {
                        reported: max,
                        lower_since: None,
                    };
                    changes.push((track, max));
                }
                // Less is said only once it lasted: a publisher that stops and
                // restarts a layer each time an estimate wavers costs keyframes.
                Some(w) if max < w.reported => {
                    let since = *w.lower_since.get_or_insert(now);
                    if now.saturating_duration_since(since) >= LAYER_DROP_DELAY {
                        *w = Wanted {
                            reported: max,
                            lower_since: None,
                        };
                        changes.push((track, max));
                    }
                }
                Some(w) => w.lower_since = None,
            }
        }
        let gone: Vec<TrackId> = self
            .layers_wanted
            .keys()
            .filter(|t| {
                !self.subs.contains_key(t) && !self.recordings.iter().any(|r| r.track == **t)
            })
            .copied()
            .collect();
        for track in gone {
            self.layers_wanted.remove(&track);
            changes.push((track, None));
        }
        for (track, max) in changes {
            let worker = self.index;
            self.event(WorkerEvent::LayersWanted { worker, track, max });
        }
    }

    /// The next instant `handle_timeout` must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let peers = self.timers.peek().map(|Reverse((t, _, _))| *t);
        let peers = [
            peers,
            self.next_levels,
            self.next_allocation,
            self.next_record_check,
        ]
        .into_iter()
        .flatten()
        .min();
        let keyframes = self
            .published
            .values()
            .flat_map(|t| t.keyframes.iter().filter_map(|k| k.poll_timeout()))
            .min();
        match (peers, keyframes) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(Reverse((t, p, publish))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let role = if publish {
                Role::Publish
            } else {
                Role::Subscribe
            };
            if self.scheduled.get(&(p, role)) == Some(&t) {
                self.scheduled.remove(&(p, role));
                due.push((p, role));
            }
        }
        for key in due {
            let Some(peer) = self.peer_mut(key) else {
                continue;
            };
            if peer.poll_timeout().is_none_or(|d| d <= now) {
                peer.handle_timeout(now);
            }
            self.after_peer(now, key);
        }
        let mut due_keyframes = Vec::new();
        for t in self.published.values_mut() {
            for (i, k) in t.keyframes.iter_mut().enumerate() {
                if k.handle_timeout(now) {
                    due_keyframes.push((t.id, i));
                }
            }
        }
        for (t, layer) in due_keyframes {
            self.send_pli(now, t, layer);
        }
        if self.next_allocation.is_some_and(|t| t <= now) {
            self.allocate_layers(now);
        }
        if self.next_levels.is_some_and(|t| t <= now) {
            self.report_levels(now);
        }
        if self.next_record_check.is_some_and(|t| t <= now) {
            self.check_recordings(now);
        }
    }

    /// A recording that waits for a keyframe (its start, or after a loss)
    /// asks the publisher, through the same throttle as subscribers.
    fn check_recordings(&mut self, now: Instant) {
        self.next_record_check = (!self.recordings.is_empty()).then(|| now + RECORD_CHECK_EVERY);
        let wanted: Vec<TrackId> = self
            .recordings
            .iter()
            .filter(|r| r.video && r.sink.take_keyframe_wanted())
            .map(|r| r.track)
            .collect();
        for track in wanted {
            self.keyframe_request(now, track, self.recorded_layer(track));
        }
    }

    /// Every [`LEVELS_EVERY`], the loudness of each audio track published
    /// here goes to the engine (active speaker).
    fn report_levels(&mut self, now: Instant) {
        // A track that sent nothing with a level is silent (muted, DTX).
        let levels: Vec<(TrackId, f32)> = self
            .published
            .values_mut()
            .filter(|t| t.audio_level_id.is_some())
            .map(|t| (t.id, t.levels.take().unwrap_or(0.0)))
            .collect();
        let any = !levels.is_empty();
        self.next_levels = any.then(|| now + LEVELS_EVERY);
        tracing::trace!(worker = self.index, ?levels, "audio levels");
        if !levels.is_empty() {
            self.event(WorkerEvent::AudioLevels { at: now, levels });
        }
    }
}

/// The highest layer of a track wanted on a worker, as last reported.
struct Wanted {
    reported: Option<u8>,
    /// Since when less has been wanted.
    lower_since: Option<Instant>,
}

/// How long fewer layers must be wanted before the publisher is told.
const LAYER_DROP_DELAY: Duration = Duration::from_secs(3);
/// After a subscription's layer went down, it does not go up again for
/// this long: an estimate near a layer's rate must not make it flap.
const UPGRADE_COOLDOWN: Duration = Duration::from_secs(4);

/// A video paused for bandwidth within this of coming back waits twice as
/// long before it comes back again.
const PAUSE_MEMORY: Duration = Duration::from_secs(30);
/// The longest wait before a paused video is tried again.
const MAX_PAUSE_BACKOFF: Duration = Duration::from_secs(32);

/// Allocation rounds in a row without room for a video's lowest layer
/// before it is paused (2 s).
const STARVED_ROUNDS: u8 = 4;

/// How often audio levels go to the engine.
const LEVELS_EVERY: Duration = Duration::from_millis(300);
