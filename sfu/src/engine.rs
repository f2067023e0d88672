//! The control plane, sans-IO: rooms, participants, which worker hosts whom,
//! and who subscribes to what. It turns requests of participants and events
//! of workers into commands for workers and notices for participants. It is
//! not on the packet path.

use std::collections::{HashMap, HashSet, VecDeque};

use tracing::info;

use crate::record::RecordSink;
use crate::room::{Room, RoomNameError, RoomTrack, validate_name};
use crate::worker::{Command, WorkerEvent};
use crate::{MediaKind, ParticipantId, Rng, Role, TrackId};

/// Limits of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Media workers to spread participants over.
    pub workers: usize,
    /// The most participants in one room.
    pub max_participants_per_room: usize,
    /// The most rooms at once.
    pub max_rooms: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 1,
            max_participants_per_room: 100,
            max_rooms: 1000,
        }
    }
}

/// Why a join is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The room name breaks the rules.
    #[error("invalid room name: {0}")]
    InvalidRoom(#[from] RoomNameError),
    /// The room has reached its participant limit.
    #[error("the room is full ({0} participants)")]
    RoomFull(usize),
    /// The server has reached its room limit.
    #[error("the server hosts its maximum number of rooms")]
    TooManyRooms,
}

/// What others see of a participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantInfo {
    /// Its id.
    pub id: ParticipantId,
    /// Display name.
    pub name: String,
    /// Microphone muted.
    pub audio_muted: bool,
    /// Camera off.
    pub video_muted: bool,
    /// Hand raised.
    pub hand_raised: bool,
    /// May moderate the room.
    pub moderator: bool,
    /// Sharing its screen.
    pub sharing: bool,
    /// Its connection dropped; it has a grace period to come back.
    pub reconnecting: bool,
}

/// Something to tell one participant.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// To whom.
    pub to: ParticipantId,
    /// What.
    pub kind: NoticeKind,
}

/// The content of a [`Notice`].
#[derive(Debug, Clone, PartialEq)]
pub enum NoticeKind {
    /// Someone joined the room.
    ParticipantJoined(ParticipantInfo),
    /// Someone left.
    ParticipantLeft(ParticipantId),
    /// Who viewers (WHEP, the watch page) now see: a moderator chose, or a
    /// chosen presenter left. The first is the main picture and the sound;
    /// the others are further pictures (a sign-language interpreter, say).
    /// Empty: the room's first publisher.
    Live(Vec<ParticipantId>),
    /// Someone's state changed (mute).
    ParticipantUpdated(ParticipantInfo),
    /// The answer to the participant's publish offer.
    PublishAnswer(String),
    /// A subscribe offer to answer.
    SubscribeOffer(String),
    /// kaigi's answer to a viewer's (WHEP) offer.
    SubscribeAnswer(String),
    /// Whether anyone shows the participant's camera: when nobody does, it
    /// may stop encoding it.
    VideoWanted(bool),
    /// Encode simulcast layers 0 to this one of the camera only: nobody
    /// receives the ones above.
    VideoLayers(u8),
    /// The room's active speaker changed.
    ActiveSpeaker {
        /// Who speaks now.
        speaker: ParticipantId,
        /// Recent speakers, most recent first.
        recent: Vec<ParticipantId>,
    },
    /// One of the participant's connections failed or closed (ICE consent
    /// lost, DTLS closed). A browser reconnects by itself; a session with no
    /// signaling channel of its own (WHIP) ends.
    PeerFailed(Role),
    /// A request failed.
    Error {
        /// Protocol error code.
        code: &'static str,
        /// Reason.
        message: String,
    },
}

/// A change to the media port's demultiplexing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Datagrams whose STUN names this ufrag go to this worker.
    Add(String, usize),
    /// Forget this ufrag.
    Remove(String),
}

/// A recording being fed, as the engine follows it.
struct Recorded {
    room: String,
    /// The worker hosting what it records now.
    worker: usize,
    /// Its video track and codec, and its audio track.
    video: Option<(TrackId, String)>,
    audio: Option<TrackId>,
    /// Kept to hand to the next worker; dropped when the recording ends.
    sink: RecordSink,
}

impl Recorded {
    fn command(&self, id: u64) -> Command {
        Command::Record {
            id,
            video: self.video.as_ref().map(|v| v.0),
            audio: self.audio,
            sink: self.sink.clone(),
        }
    }
}

/// A room at a glance (the admin API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSummary {
    /// Its name.
    pub name: String,
    /// Participants in it.
    pub participants: usize,
    /// WHEP viewers of it.
    pub viewers: usize,
    /// Tracks published in it.
    pub tracks: usize,
    /// Who a moderator put on air (the main one first).
    pub live: Vec<ParticipantId>,
}

/// What a room broadcasts: its first publisher's camera (or share) and microphone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastSource {
    /// Who is broadcast.
    pub participant: ParticipantId,
    /// The worker hosting it.
    pub worker: usize,
    /// Its video track and codec (e.g. `video/VP8`).
    pub video: Option<(TrackId, String)>,
    /// Its audio track and codec.
    pub audio: Option<(TrackId, String)>,
}

/// The result of a successful join.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The new participant's id.
    pub id: ParticipantId,
    /// Who else is in the room.
    pub others: Vec<ParticipantInfo>,
    /// Whether it moderates the room.
    pub moderator: bool,
    /// The room's recent speakers, most recent (the active one) first.
    pub speakers: Vec<ParticipantId>,
}

struct Member {
    room: String,
    worker: usize,
    info: ParticipantInfo,
    ufrags: [String; 2],
    /// Whether its signaling can take notices; until then it gets no subscriptions
    /// (their offers would be lost).
    ready: bool,
    /// Tracks it is subscribed to.
    subscribed: HashSet<TrackId>,
    /// Kinds a moderator muted ([audio, video]), held at its worker until it
    /// unmutes itself.
    held: [bool; 2],
    /// Its own track ids (msid) that it declared as screen shares.
    screen_tracks: HashSet<String>,
    /// Connections so far (0 for the first): track indices start at
    /// `epoch * TRACKS_PER_EPOCH`.
    epoch: u32,
    /// Whose video it does not show now (off its page, or its tab hidden).
    hidden: HashSet<ParticipantId>,
    /// Its subscriptions paused because it does not show them.
    paused: HashSet<TrackId>,
    /// The size (device pixels) it shows each participant's camera
    /// (`false`) or screen share (`true`) at.
    sizes: HashMap<(ParticipantId, bool), (u32, u32)>,
    /// A WHEP viewer: receives the broadcast on one connection it offered,
    /// is not a participant (no notices, not in the list) and never
    /// renegotiates.
    viewer: bool,
    /// A broadcast source (WHIP): never moderates.
    source: bool,
}

/// Track indices a participant may use per connection.
const TRACKS_PER_EPOCH: u32 = 1 << 16;

/// Rooms and participants of this process.
pub struct Engine {
    cfg: EngineConfig,
    rng: Rng,
    next_id: ParticipantId,
    rooms: HashMap<String, Room>,
    members: HashMap<ParticipantId, Member>,
    load: Vec<usize>,
    commands: VecDeque<(usize, Command)>,
    notices: VecDeque<Notice>,
    routes: VecDeque<Route>,
    /// Recordings being fed, by id.
    recordings: HashMap<u64, Recorded>,
}

impl Engine {
    /// An engine; `seed` feeds ICE credentials (use OS randomness outside tests).
    pub fn new(cfg: EngineConfig, seed: u64) -> Self {
        let workers = cfg.workers.max(1);
        Engine {
            cfg,
            rng: Rng::new(seed),
            next_id: 1,
            rooms: HashMap::new(),
            members: HashMap::new(),
            load: vec![0; workers],
            commands: VecDeque::new(),
            notices: VecDeque::new(),
            routes: VecDeque::new(),
            recordings: HashMap::new(),
        }
    }

    /// Takes the next command for a worker: (worker index, command).
    pub fn poll_command(&mut self) -> Option<(usize, Command)> {
        self.commands.pop_front()
    }

    /// Takes the next notice for a participant.
    pub fn poll_notice(&mut self) -> Option<Notice> {
        self.notices.pop_front()
    }

    /// Takes the next change to the demultiplexing table.
    pub fn poll_route(&mut self) -> Option<Route> {
        self.routes.pop_front()
    }

    /// Number of rooms with at least one participant.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Number of participants.
    pub fn participant_count(&self) -> usize {
        self.members.values().filter(|m| !m.viewer).count()
    }

    /// Number of WHEP viewers (not participants).
    pub fn viewer_count(&self) -> usize {
        self.members.values().filter(|m| m.viewer).count()
    }

    /// Number of published tracks.
    pub fn track_count(&self) -> usize {
        self.rooms.values().map(|r| r.tracks.len()).sum()
    }

    /// Participants per worker.
    pub fn worker_load(&self) -> &[usize] {
        &self.load
    }

    /// The worker hosting a participant.
    pub fn worker_of(&self, id: ParticipantId) -> Option<usize> {
        self.members.get(&id).map(|m| m.worker)
    }

    /// Every room: its name, participants, viewers, tracks and who is on air.
    pub fn rooms(&self) -> Vec<RoomSummary> {
        let mut out: Vec<RoomSummary> = self
            .rooms
            .iter()
            .map(|(name, r)| RoomSummary {
                name: name.clone(),
                participants: r.participants.len(),
                viewers: r.viewers.len(),
                tracks: r.tracks.len(),
                live: r.live.clone(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The WHEP viewers of a room.
    pub fn room_viewers(&self, room: &str) -> Vec<ParticipantId> {
        self.rooms
            .get(room)
            .map(|r| r.viewers.clone())
            .unwrap_or_default()
    }

    /// The participants of a room, in join order.
    pub fn room_participants(&self, room: &str) -> Vec<ParticipantInfo> {
        self.rooms
            .get(room)
            .map(|r| {
                r.participants
                    .iter()
                    .filter_map(|id| self.members.get(id).map(|m| m.info.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn notify(&mut self, to: ParticipantId, kind: NoticeKind) {
        self.notices.push_back(Notice { to, kind });
    }

    fn notify_room(&mut self, room: &str, except: ParticipantId, kind: NoticeKind) {
        let ids: Vec<ParticipantId> = self
            .rooms
            .get(room)
            .map(|r| r.participants.clone())
            .unwrap_or_default();
        for id in ids.into_iter().filter(|&id| id != except) {
            self.notify(id, kind.clone());
        }
    }

    /// Adds a participant to a room (creating the room), placing it on the
    /// least loaded worker, and subscribes it to what the room publishes.
    /// The first one into a room moderates it.
    pub fn join(&mut self, room: &str, name: &str) -> Result<Joined, JoinError> {
        self.join_as(room, name, false)
    }

    /// [`Engine::join`], as a moderator when `moderator` (a moderator token).
    pub fn join_as(
        &mut self,
        room: &str,
        name: &str,
        moderator: bool,
    ) -> Result<Joined, JoinError> {
        self.join_inner(room, name, moderator, false)
    }

    /// A broadcast source (a WHIP encoder) joins: a participant that only
    /// publishes, and never moderates (the first person to join does).
    pub fn join_source(&mut self, room: &str, name: &str) -> Result<Joined, JoinError> {
        self.join_inner(room, name, false, true)
    }

    fn join_inner(
        &mut self,
        room: &str,
        name: &str,
        moderator: bool,
        source: bool,
    ) -> Result<Joined, JoinError> {
        validate_name(room)?;
        match self.rooms.get(room) {
            Some(r) if r.participants.len() >= self.cfg.max_participants_per_room => {
                return Err(JoinError::RoomFull(self.cfg.max_participants_per_room));
            }
            None if self.rooms.len() >= self.cfg.max_rooms => return Err(JoinError::TooManyRooms),
            _ => {}
        }
        let (id, worker) = self.place();
        let info = ParticipantInfo {
            id,
            name: name.to_owned(),
            audio_muted: false,
            video_muted: false,
            hand_raised: false,
            sharing: false,
            reconnecting: false,
            // The first person in: sources (encoders) do not count.
            moderator: !source
                && (moderator
                    || self.rooms.get(room).is_none_or(|r| {
                        r.participants
                            .iter()
                            .all(|p| self.members.get(p).is_some_and(|m| m.source))
                    })),
        };
        let moderator = info.moderator;
        self.add_member(id, room, worker, info.clone(), false, source);
        let others = self.room_participants(room);
        self.rooms
            .entry(room.to_owned())
            .or_default()
            .participants
            .push(id);
        self.notify_room(room, id, NoticeKind::ParticipantJoined(info));
        info!(participant = id, room, worker, "joined");
        let speakers = self
            .rooms
            .get(room)
            .map(|r| r.speakers.recent())
            .unwrap_or_default();
        Ok(Joined {
            id,
            others,
            moderator,
            speakers,
        })
    }

    /// The participant's signaling is ready for notices: subscribe it to
    /// what the room publishes. Call once after [`Engine::join`].
    pub fn ready(&mut self, id: ParticipantId) {
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        if m.ready {
            return;
        }
        m.ready = true;
        let room = m.room.clone();
        let tracks: Vec<TrackId> = self
            .rooms
            .get(&room)
            .map(|r| r.tracks.keys().copied().collect())
            .unwrap_or_default();
        for track in tracks {
            self.subscribe(&room, id, track);
        }
    }

    /// A new id, on the least loaded worker.
    fn place(&mut self) -> (ParticipantId, usize) {
        let id = self.next_id;
        self.next_id += 1;
        let worker = (0..self.load.len())
            .min_by_key(|&w| self.load[w])
            .unwrap_or(0);
        self.load[worker] += 1;
        (id, worker)
    }

    /// Records a member and has its worker host it, with fresh ICE
    /// credentials routed there.
    fn add_member(
        &mut self,
        id: ParticipantId,
        room: &str,
        worker: usize,
        info: ParticipantInfo,
        viewer: bool,
        source: bool,
    ) {
        let publish_ice = (self.rng.ice_string(16), self.rng.ice_string(32));
        let subscribe_ice = (self.rng.ice_string(16), self.rng.ice_string(32));
        self.routes
            .push_back(Route::Add(publish_ice.0.clone(), worker));
        self.routes
            .push_back(Route::Add(subscribe_ice.0.clone(), worker));
        self.members.insert(
            id,
            Member {
                room: room.to_owned(),
                worker,
                info,
                ufrags: [publish_ice.0.clone(), subscribe_ice.0.clone()],
                ready: false,
                subscribed: HashSet::new(),
                held: [false; 2],
                screen_tracks: HashSet::new(),
                epoch: 0,
                hidden: HashSet::new(),
                sizes: HashMap::new(),
                paused: HashSet::new(),
                viewer,
                source,
            },
        );
        self.commands.push_back((
            worker,
            Command::AddParticipant {
                participant: id,
                publish_ice,
                subscribe_ice,
                first_track: 0,
            },
        ));
    }

    /// A WHEP viewer joins `room`: it is placed on the least loaded worker
    /// like a participant, but it is not one (no notices either way, not in
    /// the participant list, never moderator), so that thousands of viewers
    /// cost the room nothing. Its client's offer comes with [`Engine::whep_offer`].
    pub fn join_viewer(&mut self, room: &str) -> Result<ParticipantId, JoinError> {
        validate_name(room)?;
        if !self.rooms.contains_key(room) && self.rooms.len() >= self.cfg.max_rooms {
            return Err(JoinError::TooManyRooms);
        }
        let (id, worker) = self.place();
        let info = ParticipantInfo {
            id,
            name: String::new(),
            audio_muted: false,
            video_muted: false,
            hand_raised: false,
            sharing: false,
            reconnecting: false,
            moderator: false,
        };
        self.add_member(id, room, worker, info, true, false);
        self.rooms
            .entry(room.to_owned())
            .or_default()
            .viewers
            .push(id);
        info!(viewer = id, room, worker, "viewer joined");
        Ok(id)
    }

    /// What a viewer of `room` is offered: the main presenter's microphone
    /// and camera (or screen share), then the other live presenters'
    /// cameras, then the main presenter's screen share. The main presenter
    /// is the first one a moderator put live that has media, else the
    /// room's first publisher (in join order).
    fn broadcast_tracks(&self, room: &str) -> Vec<TrackId> {
        let Some(r) = self.rooms.get(room) else {
            return Vec::new();
        };
        let of = |p: ParticipantId| {
            let mut tracks: Vec<(TrackId, &RoomTrack)> = r
                .tracks
                .iter()
                .filter(|(t, _)| t.participant == p)
                .map(|(t, rt)| (*t, rt))
                .collect();
            tracks.sort_by_key(|(t, rt)| (rt.kind == MediaKind::Video, rt.screen, t.index));
            tracks
        };
        let Some(main) = r
            .live
            .iter()
            .chain(&r.participants)
            .copied()
            .find(|&p| !of(p).is_empty())
        else {
            return Vec::new();
        };
        let main_tracks = of(main);
        let (screens, firsts): (Vec<_>, Vec<_>) = main_tracks
            .iter()
            .partition(|(_, rt)| rt.screen && main_tracks.iter().any(|(_, c)| c.pausable()));
        let mut out: Vec<TrackId> = firsts.iter().map(|(t, _)| *t).collect();
        for &p in r.live.iter().filter(|&&p| p != main) {
            out.extend(
                of(p)
                    .iter()
                    .filter(|(_, rt)| rt.pausable())
                    .map(|(t, _)| *t),
            );
        }
        out.extend(screens.iter().map(|(t, _)| *t));
        out
    }

    /// Puts `presenters` live in `room`: the first is the main picture and
    /// the sound, the others further pictures (empty: back to the room's
    /// first publisher). Every viewer is re-pointed at once, without a
    /// renegotiation (each picture starts at its next keyframe). Only a
    /// moderator of the room may; the presenters must be in it.
    pub fn set_live(
        &mut self,
        by: ParticipantId,
        presenters: Vec<ParticipantId>,
    ) -> Result<(), &'static str> {
        let m = self.members.get(&by).ok_or("not_found")?;
        if !m.info.moderator || m.viewer {
            return Err("forbidden");
        }
        let room = m.room.clone();
        let r = self.rooms.get_mut(&room).ok_or("not_found")?;
        if presenters.iter().any(|p| !r.participants.contains(p)) {
            return Err("not_found");
        }
        let mut live = Vec::with_capacity(presenters.len());
        for p in presenters {
            if !live.contains(&p) {
                live.push(p);
            }
        }
        if r.live == live {
            return Ok(());
        }
        r.live = live.clone();
        info!(room, ?live, by, "live presenters");
        let everyone = r.participants.clone();
        for to in everyone {
            self.notices.push_back(Notice {
                to,
                kind: NoticeKind::Live(live.clone()),
            });
        }
        self.refresh_broadcast(&room);
        Ok(())
    }

    /// Who a moderator put live in `room` (the main presenter first).
    pub fn live(&self, room: &str) -> Vec<ParticipantId> {
        self.rooms
            .get(room)
            .map(|r| r.live.clone())
            .unwrap_or_default()
    }

    /// Viewers and recordings of `room` follow what it broadcasts now.
    fn refresh_broadcast(&mut self, room: &str) {
        self.refresh_viewers(room);
        self.refresh_recordings(room);
    }

    /// Points every viewer of `room` at what the room broadcasts now (after
    /// a presenter switch, or when the presenter's tracks changed).
    fn refresh_viewers(&mut self, room: &str) {
        let tracks = self.broadcast_tracks(room);
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        if r.viewers.is_empty() {
            return;
        }
        let sources: Vec<crate::worker::ViewerSource> = tracks
            .iter()
            .filter_map(|t| {
                r.tracks.get(t).map(|rt| crate::worker::ViewerSource {
                    track: *t,
                    source_worker: rt.source_worker,
                    kind: rt.kind,
                    codec: rt.codec.clone(),
                    screen: rt.screen,
                })
            })
            .collect();
        let desired: HashSet<TrackId> = tracks.iter().copied().collect();
        let viewers = r.viewers.clone();
        for v in viewers {
            let Some(m) = self.members.get_mut(&v) else {
                continue;
            };
            if m.subscribed == desired {
                continue;
            }
            let worker = m.worker;
            let old: Vec<TrackId> = m.subscribed.difference(&desired).copied().collect();
            let new: Vec<TrackId> = desired.difference(&m.subscribed).copied().collect();
            m.subscribed = desired.clone();
            let Some(r) = self.rooms.get_mut(room) else {
                return;
            };
            for t in old {
                if r.remove_subscriber(t, worker)
                    && let Some(rt) = r.tracks.get(&t)
                {
                    self.commands
                        .push_back((rt.source_worker, Command::RemoveFanout { track: t, worker }));
                }
            }
            for t in new {
                if r.add_subscriber(t, worker)
                    && let Some(rt) = r.tracks.get(&t)
                {
                    self.commands
                        .push_back((rt.source_worker, Command::AddFanout { track: t, worker }));
                }
            }
            self.commands.push_back((
                worker,
                Command::ViewerSwitch {
                    viewer: v,
                    sources: sources.clone(),
                },
            ));
        }
    }

    /// What is broadcast in `room` (what viewers get and a recording
    /// holds): `None` while nothing is.
    pub fn broadcast_source(&self, room: &str) -> Option<BroadcastSource> {
        let r = self.rooms.get(room)?;
        let tracks = self.broadcast_tracks(room);
        let first = tracks.first()?;
        let worker = r.tracks.get(first)?.source_worker;
        let of_kind = |kind| {
            tracks
                .iter()
                .filter_map(|t| r.tracks.get(t).map(|rt| (*t, rt)))
                .find(|(_, rt)| rt.kind == kind)
                .map(|(t, rt)| (t, rt.codec.mime_type.clone()))
        };
        Some(BroadcastSource {
            participant: first.participant,
            worker,
            video: of_kind(MediaKind::Video),
            audio: of_kind(MediaKind::Audio),
        })
    }

    /// Starts feeding recording `id` of what `room` broadcasts (`source`)
    /// into `sink`. It follows the broadcast as viewers do (a presenter
    /// switch, a presenter who leaves) and ends with
    /// [`Engine::stop_recording`], or by itself when nothing is broadcast.
    pub fn start_recording(
        &mut self,
        id: u64,
        room: &str,
        source: &BroadcastSource,
        sink: RecordSink,
    ) {
        let rec = Recorded {
            room: room.to_owned(),
            worker: source.worker,
            video: source.video.clone(),
            audio: source.audio.as_ref().map(|a| a.0),
            sink,
        };
        self.commands.push_back((rec.worker, rec.command(id)));
        self.recordings.insert(id, rec);
    }

    /// Stops feeding recording `id`: its file is then completed.
    pub fn stop_recording(&mut self, id: u64) {
        if let Some(rec) = self.recordings.remove(&id) {
            self.commands
                .push_back((rec.worker, Command::StopRecord { id }));
        }
    }

    /// Moves the recordings of `room` to what it broadcasts now; ends them
    /// when nothing is. A new video of another codec than the recording's
    /// is not followed (the file has one codec): its sound still is.
    fn refresh_recordings(&mut self, room: &str) {
        let ids: Vec<u64> = self
            .recordings
            .iter()
            .filter(|(_, r)| r.room == room)
            .map(|(&id, _)| id)
            .collect();
        if ids.is_empty() {
            return;
        }
        let source = self.broadcast_source(room);
        for id in ids {
            let Some(src) = &source else {
                // Nothing broadcast: letting go of the sink ends the file.
                if let Some(rec) = self.recordings.remove(&id) {
                    self.commands
                        .push_back((rec.worker, Command::StopRecord { id }));
                    info!(room, id, "recording ended with the broadcast");
                }
                continue;
            };
            let Some(rec) = self.recordings.get_mut(&id) else {
                continue;
            };
            let video = match (&rec.video, &src.video) {
                (Some((_, old)), Some((t, new))) if old.eq_ignore_ascii_case(new) => {
                    Some((*t, new.clone()))
                }
                (None, _) => None,
                // Another codec (or no video now): keep the old one if it still exists.
                (Some(old), _) => Some(old.clone()),
            };
            let audio = src.audio.as_ref().map(|a| a.0);
            if video == rec.video && audio == rec.audio && rec.worker == src.worker {
                continue;
            }
            self.commands
                .push_back((rec.worker, Command::StopRecord { id }));
            rec.video = video;
            rec.audio = audio;
            rec.worker = src.worker;
            info!(room, id, video = ?rec.video, audio = ?rec.audio, "recording follows the broadcast");
            self.commands.push_back((rec.worker, rec.command(id)));
        }
    }

    /// A WHEP viewer's offer: its worker answers it with the room's
    /// broadcast (its answer comes as [`NoticeKind::SubscribeAnswer`], or an
    /// error). The tracks are fixed from then on: a WHEP session is not
    /// renegotiated.
    pub fn whep_offer(&mut self, id: ParticipantId, sdp: String) {
        let Some(m) = self.members.get(&id) else {
            return;
        };
        if !m.viewer {
            return;
        }
        let (room, worker) = (m.room.clone(), m.worker);
        let tracks = self.broadcast_tracks(&room);
        let mut sources = Vec::new();
        for track in tracks {
            let Some(t) = self
                .rooms
                .get(&room)
                .and_then(|r| r.tracks.get(&track))
                .cloned()
            else {
                continue;
            };
            if let Some(m) = self.members.get_mut(&id) {
                m.subscribed.insert(track);
            }
            let r = self.rooms.get_mut(&room).expect("checked above");
            if r.add_subscriber(track, worker) {
                self.commands
                    .push_back((t.source_worker, Command::AddFanout { track, worker }));
            }
            sources.push(crate::worker::ViewerSource {
                track,
                source_worker: t.source_worker,
                kind: t.kind,
                codec: t.codec,
                screen: t.screen,
            });
        }
        self.commands.push_back((
            worker,
            Command::ViewerOffer {
                participant: id,
                sdp,
                sources,
            },
        ));
    }

    fn subscribe(&mut self, room: &str, subscriber: ParticipantId, track: TrackId) {
        let Some(t) = self
            .rooms
            .get(room)
            .and_then(|r| r.tracks.get(&track))
            .cloned()
        else {
            return;
        };
        let Some(m) = self.members.get_mut(&subscriber) else {
            return;
        };
        if !m.ready || track.participant == subscriber || !m.subscribed.insert(track) {
            return;
        }
        let worker = m.worker;
        let paused = t.pausable() && m.hidden.contains(&track.participant);
        if paused {
            m.paused.insert(track);
        }
        let size = (t.kind == MediaKind::Video)
            .then(|| m.sizes.get(&(track.participant, t.screen)).copied())
            .flatten();
        let r = self.rooms.get_mut(room).expect("checked above");
        let first_here = r.add_subscriber(track, worker);
        self.commands.push_back((
            worker,
            Command::Subscribe {
                subscriber,
                track,
                source_worker: t.source_worker,
                kind: t.kind,
                codec: t.codec,
                screen: t.screen,
                paused,
                size,
            },
        ));
        if first_here {
            self.commands
                .push_back((t.source_worker, Command::AddFanout { track, worker }));
        }
        self.update_wanted(room, track);
    }

    /// Whose video participant `id` does not show now (off its page, its tab
    /// hidden; empty, the default: it shows everyone). Their camera video is
    /// paused for it, and resumed (with a fresh keyframe) when they come
    /// into view; screen shares and audio always flow. Publishers nobody
    /// shows are told (`VideoWanted`).
    pub fn set_hidden(&mut self, id: ParticipantId, hidden: HashSet<ParticipantId>) {
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        m.hidden = hidden;
        let room = m.room.clone();
        let worker = m.worker;
        let Some(r) = self.rooms.get(&room) else {
            return;
        };
        let mut changed = Vec::new();
        for &track in &m.subscribed {
            let Some(t) = r.tracks.get(&track) else {
                continue;
            };
            let paused = t.pausable() && m.hidden.contains(&track.participant);
            let was = m.paused.contains(&track);
            if paused != was {
                changed.push((track, paused));
            }
        }
        for &(track, paused) in &changed {
            if paused {
                m.paused.insert(track);
            } else {
                m.paused.remove(&track);
            }
            self.commands.push_back((
                worker,
                Command::SetPaused {
                    subscriber: id,
                    track,
                    paused,
                },
            ));
        }
        for (track, _) in changed {
            self.update_wanted(&room, track);
        }
    }

    /// The sizes (device pixels) participant `id` shows others' cameras
    /// (`(who, false)`) and screen shares (`(who, true)`) at; the layers it
    /// receives fit them. Videos without a size get the top layer.
    pub fn set_sizes(
        &mut self,
        id: ParticipantId,
        sizes: HashMap<(ParticipantId, bool), (u32, u32)>,
    ) {
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        let Some(r) = self.rooms.get(&m.room) else {
            return;
        };
        for &track in &m.subscribed {
            let Some(t) = r.tracks.get(&track) else {
                continue;
            };
            if t.kind != MediaKind::Video {
                continue;
            }
            let key = (track.participant, t.screen);
            let (before, after) = (m.sizes.get(&key), sizes.get(&key));
            if before != after {
                self.commands.push_back((
                    m.worker,
                    Command::SetSize {
                        subscriber: id,
                        track,
                        size: after.copied(),
                    },
                ));
            }
        }
        m.sizes = sizes;
    }

    /// A worker's subscribers of `track` want up to layer `max` now: tells
    /// the publisher when the highest layer anyone wants changed.
    fn layers_wanted(&mut self, worker: usize, track: TrackId, max: Option<u8>) {
        let Some(room) = self.members.get(&track.participant).map(|m| m.room.clone()) else {
            return;
        };
        let Some(t) = self
            .rooms
            .get_mut(&room)
            .and_then(|r| r.tracks.get_mut(&track))
        else {
            return;
        };
        match max {
            Some(m) => t.layers_wanted.insert(worker, m),
            None => t.layers_wanted.remove(&worker),
        };
        // Nobody at all: `VideoWanted` speaks for that.
        let Some(top) = t.layers_wanted.values().copied().max() else {
            return;
        };
        if t.layers_sent != Some(top) {
            t.layers_sent = Some(top);
            self.notify(track.participant, NoticeKind::VideoLayers(top));
        }
    }

    /// Works out whether anyone shows camera `track`, and tells its
    /// publisher when that changes.
    fn update_wanted(&mut self, room: &str, track: TrackId) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let Some(t) = r.tracks.get(&track) else {
            return;
        };
        if !t.pausable() {
            return;
        }
        let wanted = r.participants.iter().any(|p| {
            *p != track.participant
                && self
                    .members
                    .get(p)
                    .is_some_and(|m| m.subscribed.contains(&track) && !m.paused.contains(&track))
        });
        let before = t.wanted;
        if before == Some(wanted) {
            return;
        }
        if let Some(t) = self
            .rooms
            .get_mut(room)
            .and_then(|r| r.tracks.get_mut(&track))
        {
            t.wanted = Some(wanted);
        }
        // Publishers start sending: only a change from that is news.
        if before.unwrap_or(true) != wanted {
            self.notify(track.participant, NoticeKind::VideoWanted(wanted));
        }
    }

    /// Removes a participant: closes its peers, ends its tracks for the
    /// others, and tells the room.
    pub fn leave(&mut self, id: ParticipantId) {
        let Some(m) = self.members.remove(&id) else {
            return;
        };
        self.load[m.worker] = self.load[m.worker].saturating_sub(1);
        for u in m.ufrags {
            self.routes.push_back(Route::Remove(u));
        }
        self.commands
            .push_back((m.worker, Command::RemoveParticipant { participant: id }));
        let Some(r) = self.rooms.get_mut(&m.room) else {
            return;
        };
        r.participants.retain(|&p| p != id);
        r.viewers.retain(|&p| p != id);
        r.speakers.remove(id);
        // Viewers of a presenter who left see the others, or the room's first publisher.
        let was_live = r.live.contains(&id);
        r.live.retain(|&p| p != id);
        let live_now = r.live.clone();
        let room = m.room.clone();
        self.release_subscriptions(&room, m.worker, &m.subscribed);
        self.unpublish_all(&room, id);
        if self
            .rooms
            .get(&room)
            .is_some_and(|r| r.participants.is_empty() && r.viewers.is_empty())
        {
            self.rooms.remove(&room);
            info!(room, "room closed");
        }
        if m.viewer {
            info!(viewer = id, room, "viewer left");
            return;
        }
        self.notify_room(&room, id, NoticeKind::ParticipantLeft(id));
        if was_live {
            self.notify_room(&room, id, NoticeKind::Live(live_now));
        }
        info!(participant = id, room, "left");
        if m.info.moderator {
            self.ensure_moderator(&room);
        }
    }

    /// A room whose last moderator left gets one: the earliest joiner left.
    fn ensure_moderator(&mut self, room: &str) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let has = r
            .participants
            .iter()
            .any(|p| self.members.get(p).is_some_and(|m| m.info.moderator));
        let first = r
            .participants
            .iter()
            .find(|p| self.members.get(p).is_some_and(|m| !m.source));
        if let (false, Some(&first)) = (has, first) {
            info!(participant = first, room, "moderator handed over");
            self.set_moderator(first, true);
        }
    }

    /// Grants or withdraws moderation; the whole room (the participant
    /// included) is told.
    pub fn set_moderator(&mut self, id: ParticipantId, moderator: bool) {
        self.update_info(id, |i| i.moderator = moderator);
    }

    /// Marks a participant whose connection dropped (or back); the room sees
    /// "reconnecting" instead of a leave.
    pub fn set_reconnecting(&mut self, id: ParticipantId, reconnecting: bool) {
        self.update_info(id, |i| i.reconnecting = reconnecting);
    }

    /// The participant comes back on a new connection: same id, name, room
    /// and role, fresh peers (new ICE credentials). Its old tracks end (its
    /// client publishes again) and its subscriptions are made again after
    /// [`Engine::ready`]. The room sees no leave, only `reconnecting` end.
    /// A moderator's hold stays on.
    pub fn reconnect(&mut self, id: ParticipantId) -> Option<Joined> {
        let m = self.members.get_mut(&id)?;
        let worker = m.worker;
        let room = m.room.clone();
        m.epoch += 1;
        let first_track = m.epoch.saturating_mul(TRACKS_PER_EPOCH);
        let publish_ice = (self.rng.ice_string(16), self.rng.ice_string(32));
        let subscribe_ice = (self.rng.ice_string(16), self.rng.ice_string(32));
        let old = std::mem::replace(
            &mut m.ufrags,
            [publish_ice.0.clone(), subscribe_ice.0.clone()],
        );
        let subscribed = std::mem::take(&mut m.subscribed);
        m.paused.clear();
        m.ready = false;
        m.screen_tracks.clear();
        m.info.reconnecting = false;
        m.info.sharing = false;
        let held = m.held;
        let info = m.info.clone();
        for u in old {
            self.routes.push_back(Route::Remove(u));
        }
        self.routes
            .push_back(Route::Add(publish_ice.0.clone(), worker));
        self.routes
            .push_back(Route::Add(subscribe_ice.0.clone(), worker));
        self.commands
            .push_back((worker, Command::RemoveParticipant { participant: id }));
        self.commands.push_back((
            worker,
            Command::AddParticipant {
                participant: id,
                publish_ice,
                subscribe_ice,
                first_track,
            },
        ));
        for (k, kind) in [MediaKind::Audio, MediaKind::Video].into_iter().enumerate() {
            if held[k] {
                self.commands.push_back((
                    worker,
                    Command::Hold {
                        participant: id,
                        kind,
                        held: true,
                    },
                ));
            }
        }
        self.release_subscriptions(&room, worker, &subscribed);
        self.unpublish_all(&room, id);
        // Not to itself: its welcome goes first.
        self.notify_room(&room, id, NoticeKind::ParticipantUpdated(info.clone()));
        info!(participant = id, room, "reconnected");
        Some(Joined {
            id,
            others: self
                .room_participants(&room)
                .into_iter()
                .filter(|i| i.id != id)
                .collect(),
            moderator: info.moderator,
            speakers: self
                .rooms
                .get(&room)
                .map(|r| r.speakers.recent())
                .unwrap_or_default(),
        })
    }

    /// Starts or stops a participant's screen share (the grant; its track is
    /// published separately); the whole room is told.
    pub fn set_sharing(&mut self, id: ParticipantId, sharing: bool) {
        self.update_info(id, |i| i.sharing = sharing);
    }

    /// Records which of `id`'s own track ids (msid) are screen shares (all
    /// of them, with every offer), so that subscribers get them in the
    /// stream `p<id>-screen`. Call before the offer that carries them.
    pub fn declare_screen_tracks(
        &mut self,
        id: ParticipantId,
        tracks: impl IntoIterator<Item = String>,
    ) {
        if let Some(m) = self.members.get_mut(&id) {
            // Each offer names all of them: the set is replaced, and cannot grow
            // without bound whatever a client sends.
            m.screen_tracks = tracks.into_iter().collect();
        }
    }

    /// Raises or lowers a participant's hand; the whole room is told.
    pub fn set_hand(&mut self, id: ParticipantId, raised: bool) {
        self.update_info(id, |i| i.hand_raised = raised);
    }

    /// Whether `id` may moderate its room.
    pub fn is_moderator(&self, id: ParticipantId) -> bool {
        self.members.get(&id).is_some_and(|m| m.info.moderator)
    }

    /// What the room sees of `id`.
    pub fn participant(&self, id: ParticipantId) -> Option<ParticipantInfo> {
        self.members.get(&id).map(|m| m.info.clone())
    }

    fn update_info(&mut self, id: ParticipantId, f: impl FnOnce(&mut ParticipantInfo)) {
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        let before = m.info.clone();
        f(&mut m.info);
        if m.info != before {
            let (room, info) = (m.room.clone(), m.info.clone());
            self.notify_room(&room, 0, NoticeKind::ParticipantUpdated(info));
        }
    }

    /// A subscriber on `worker` gave up `subscribed` (it left, or its
    /// connection was replaced): fewer subscribers there, fan-outs dropped
    /// where it was the last, publishers told if nobody shows them now.
    fn release_subscriptions(&mut self, room: &str, worker: usize, subscribed: &HashSet<TrackId>) {
        if let Some(r) = self.rooms.get_mut(room) {
            let tracks: Vec<(TrackId, usize)> = subscribed
                .iter()
                .filter_map(|t| r.tracks.get(t).map(|rt| (*t, rt.source_worker)))
                .collect();
            for (track, source) in tracks {
                if r.remove_subscriber(track, worker) {
                    self.commands
                        .push_back((source, Command::RemoveFanout { track, worker }));
                }
            }
        }
        for &track in subscribed {
            self.update_wanted(room, track);
        }
    }

    fn unpublish_all(&mut self, room: &str, publisher: ParticipantId) {
        let tracks: Vec<TrackId> = self
            .rooms
            .get(room)
            .map(|r| {
                r.tracks
                    .keys()
                    .filter(|t| t.participant == publisher)
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        for t in tracks {
            self.unpublish(room, t);
        }
    }

    fn unpublish(&mut self, room: &str, track: TrackId) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        if r.tracks.remove(&track).is_none() {
            return;
        }
        let subscribers: Vec<ParticipantId> = r
            .participants
            .iter()
            .chain(&r.viewers)
            .copied()
            .filter(|&p| p != track.participant)
            .collect();
        for s in subscribers {
            let Some(m) = self.members.get_mut(&s) else {
                continue;
            };
            if m.subscribed.remove(&track) {
                let w = m.worker;
                self.commands.push_back((
                    w,
                    Command::Unsubscribe {
                        subscriber: s,
                        track,
                    },
                ));
            }
        }
        // Viewers and recordings move on to what the room broadcasts now, if anything.
        self.refresh_broadcast(room);
    }

    /// Routes a participant's publish offer to its worker.
    pub fn publish_offer(&mut self, id: ParticipantId, sdp: String) {
        if let Some(w) = self.worker_of(id) {
            self.commands.push_back((
                w,
                Command::PublishOffer {
                    participant: id,
                    sdp,
                },
            ));
        }
    }

    /// Routes a participant's subscribe answer to its worker.
    pub fn subscribe_answer(&mut self, id: ParticipantId, sdp: String) {
        if let Some(w) = self.worker_of(id) {
            self.commands.push_back((
                w,
                Command::SubscribeAnswer {
                    participant: id,
                    sdp,
                },
            ));
        }
    }

    /// Routes a trickled candidate to its worker.
    pub fn candidate(
        &mut self,
        id: ParticipantId,
        role: Role,
        candidate: String,
        sdp_mid: Option<String>,
        sdp_mline_index: Option<u16>,
    ) {
        if let Some(w) = self.worker_of(id) {
            self.commands.push_back((
                w,
                Command::Candidate {
                    participant: id,
                    role,
                    candidate,
                    sdp_mid,
                    sdp_mline_index,
                },
            ));
        }
    }

    /// Records a mute change by the participant itself and tells the room;
    /// unmuting releases a moderator's hold on that kind.
    pub fn set_muted(&mut self, id: ParticipantId, kind: MediaKind, muted: bool) {
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        match kind {
            MediaKind::Audio => m.info.audio_muted = muted,
            MediaKind::Video => m.info.video_muted = muted,
        }
        if !muted && m.held[kind as usize] {
            m.held[kind as usize] = false;
            self.commands.push_back((
                m.worker,
                Command::Hold {
                    participant: id,
                    kind,
                    held: false,
                },
            ));
        }
        let (room, info) = (m.room.clone(), m.info.clone());
        self.notify_room(&room, id, NoticeKind::ParticipantUpdated(info));
    }

    /// A moderator mutes `id`: its media of `kind` stops being forwarded,
    /// whatever its client sends, until it unmutes itself; the room (the
    /// participant included) sees it muted. False if `id` is unknown.
    pub fn hold(&mut self, id: ParticipantId, kind: MediaKind) -> bool {
        let Some(m) = self.members.get_mut(&id) else {
            return false;
        };
        match kind {
            MediaKind::Audio => m.info.audio_muted = true,
            MediaKind::Video => m.info.video_muted = true,
        }
        if !m.held[kind as usize] {
            m.held[kind as usize] = true;
            self.commands.push_back((
                m.worker,
                Command::Hold {
                    participant: id,
                    kind,
                    held: true,
                },
            ));
        }
        let (room, info) = (m.room.clone(), m.info.clone());
        self.notify_room(&room, 0, NoticeKind::ParticipantUpdated(info));
        true
    }

    /// The room `id` is in.
    pub fn room_of(&self, id: ParticipantId) -> Option<&str> {
        self.members.get(&id).map(|m| m.room.as_str())
    }

    /// Whether `id` publishes anything now.
    pub fn has_tracks(&self, id: ParticipantId) -> bool {
        self.members
            .get(&id)
            .and_then(|m| self.rooms.get(&m.room))
            .is_some_and(|r| r.tracks.keys().any(|t| t.participant == id))
    }

    /// Whether a moderator's hold is on `id`'s media of `kind`.
    pub fn is_held(&self, id: ParticipantId, kind: MediaKind) -> bool {
        self.members.get(&id).is_some_and(|m| m.held[kind as usize])
    }

    /// Handles what a worker reports.
    pub fn handle_worker_event(&mut self, ev: WorkerEvent) {
        match ev {
            WorkerEvent::AudioLevels { at, levels } => {
                for (track, loudness) in levels {
                    let Some(room) = self.members.get(&track.participant).map(|m| m.room.clone())
                    else {
                        continue;
                    };
                    let Some(r) = self.rooms.get_mut(&room) else {
                        continue;
                    };
                    if let Some(c) = r.speakers.report(at, track.participant, loudness) {
                        self.notify_room(
                            &room,
                            0,
                            NoticeKind::ActiveSpeaker {
                                speaker: c.speaker,
                                recent: c.recent,
                            },
                        );
                    }
                }
            }
            WorkerEvent::PublishAnswer { participant, sdp } => {
                self.notify(participant, NoticeKind::PublishAnswer(sdp))
            }
            WorkerEvent::SubscribeOffer { participant, sdp } => {
                self.notify(participant, NoticeKind::SubscribeOffer(sdp))
            }
            WorkerEvent::SubscribeAnswer { participant, sdp } => {
                self.notify(participant, NoticeKind::SubscribeAnswer(sdp))
            }
            WorkerEvent::Error {
                participant,
                code,
                message,
            } => self.notify(participant, NoticeKind::Error { code, message }),
            WorkerEvent::TrackPublished {
                track,
                kind,
                codec,
                local_id,
            } => {
                let Some(m) = self.members.get(&track.participant) else {
                    return;
                };
                let (room, source_worker) = (m.room.clone(), m.worker);
                let screen = m.screen_tracks.contains(&local_id);
                let Some(r) = self.rooms.get_mut(&room) else {
                    return;
                };
                r.tracks.insert(
                    track,
                    RoomTrack {
                        kind,
                        codec,
                        source_worker,
                        subscribers: HashMap::new(),
                        screen,
                        wanted: None,
                        layers_wanted: HashMap::new(),
                        layers_sent: None,
                    },
                );
                let others: Vec<ParticipantId> = r
                    .participants
                    .iter()
                    .copied()
                    .filter(|&p| p != track.participant)
                    .collect();
                for s in others {
                    self.subscribe(&room, s, track);
                }
                self.refresh_broadcast(&room);
            }
            WorkerEvent::TrackUnpublished { track } => {
                if let Some(m) = self.members.get(&track.participant) {
                    let room = m.room.clone();
                    self.unpublish(&room, track);
                }
            }
            WorkerEvent::LayersWanted { worker, track, max } => {
                self.layers_wanted(worker, track, max)
            }
            WorkerEvent::Failed { participant, role } => {
                self.notify(participant, NoticeKind::PeerFailed(role))
            }
            WorkerEvent::Connected { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::Codec;

    fn opus() -> Codec {
        Codec {
            mime_type: "audio/opus".into(),
            clock_rate: 48000,
            channels: 2,
            fmtp: String::new(),
        }
    }

    /// `participant`'s worker reports its first track, an Opus microphone.
    fn publish_audio(e: &mut Engine, participant: ParticipantId) {
        e.handle_worker_event(WorkerEvent::TrackPublished {
            track: TrackId {
                participant,
                index: 0,
            },
            kind: MediaKind::Audio,
            codec: opus(),
            local_id: format!("{participant}-0"),
        });
    }

    fn drain(e: &mut Engine) -> Vec<(usize, Command)> {
        std::iter::from_fn(|| e.poll_command()).collect()
    }

    #[test]
    fn a_broadcast_source_never_moderates() {
        let mut e = Engine::new(EngineConfig::default(), 1);
        let source = e.join_source("hall", "encoder").unwrap().id;
        assert!(!e.is_moderator(source));
        let first = e.join("hall", "first person").unwrap().id;
        assert!(e.is_moderator(first), "the first person, not the encoder");
        let second = e.join("hall", "second").unwrap().id;
        e.leave(first);
        assert!(e.is_moderator(second) && !e.is_moderator(source));
    }

    #[test]
    fn viewers_get_the_broadcast_and_cost_the_room_no_notices() {
        let mut e = Engine::new(EngineConfig::default(), 1);
        let source = e.join("hall", "source").unwrap().id;
        e.ready(source);
        publish_audio(&mut e, source);
        assert!(e.has_tracks(source));
        drain(&mut e);
        std::iter::from_fn(|| e.poll_notice()).for_each(drop);

        let v = e.join_viewer("hall").unwrap();
        assert!(e.poll_notice().is_none(), "nobody is told about a viewer");
        assert!(e.room_participants("hall").iter().all(|p| p.id != v));
        assert_eq!((e.participant_count(), e.viewer_count()), (1, 1));
        assert!(!e.is_moderator(v));
        drain(&mut e);
        e.whep_offer(v, "v=0".into());
        let cmds = drain(&mut e);
        let offer = cmds.iter().find_map(|(_, c)| match c {
            Command::ViewerOffer { sources, .. } => Some(sources.clone()),
            _ => None,
        });
        let sources = offer.expect("the viewer's worker answers");
        assert_eq!(sources.len(), 1);
        assert_eq!(sources[0].track.participant, source);
        // The source's packets reach the viewer's worker.
        assert!(
            cmds.iter()
                .any(|(_, c)| matches!(c, Command::AddFanout { .. }))
                || e.worker_of(v) == e.worker_of(source)
        );

        // A participant's offer is not a viewer's: ignored.
        e.whep_offer(source, "v=0".into());
        assert!(
            !drain(&mut e)
                .iter()
                .any(|(_, c)| matches!(c, Command::ViewerOffer { .. }))
        );

        e.leave(v);
        assert!(e.poll_notice().is_none(), "nor about one leaving");
        assert_eq!(e.viewer_count(), 0);
        // A bad room name is refused as for participants.
        assert!(e.join_viewer("../x").is_err());
    }

    #[test]
    fn reconnect_keeps_the_identity_with_fresh_peers() {
        let mut e = Engine::new(EngineConfig::default(), 1);
        let a = e.join("r", "a").unwrap().id;
        let b = e.join("r", "b").unwrap().id;
        e.ready(a);
        e.ready(b);
        publish_audio(&mut e, a);
        e.set_reconnecting(a, true);
        assert!(e.participant(a).unwrap().reconnecting);
        e.hold(a, MediaKind::Audio);
        drain(&mut e);
        std::iter::from_fn(|| e.poll_route()).for_each(drop);
        std::iter::from_fn(|| e.poll_notice()).for_each(drop);

        let j = e.reconnect(a).expect("a is known");
        assert_eq!(j.id, a);
        assert_eq!(j.others.len(), 1);
        assert!(!e.participant(a).unwrap().reconnecting);
        let cmds = drain(&mut e);
        let pos = |f: &dyn Fn(&Command) -> bool| cmds.iter().position(|(_, c)| f(c));
        let removed =
            pos(&|c| matches!(c, Command::RemoveParticipant { participant } if *participant == a));
        let added = pos(&|c| {
            matches!(c, Command::AddParticipant { participant, first_track, .. }
                if *participant == a && *first_track == TRACKS_PER_EPOCH)
        });
        let held = pos(
            &|c| matches!(c, Command::Hold { participant, held: true, .. } if *participant == a),
        );
        assert!(
            removed < added && added < held,
            "remove, add, hold again: {cmds:?}"
        );
        assert!(removed.is_some());
        // b is unsubscribed from a's old track.
        assert!(cmds.iter().any(
            |(_, c)| matches!(c, Command::Unsubscribe { subscriber, .. } if *subscriber == b)
        ));
        let routes: Vec<Route> = std::iter::from_fn(|| e.poll_route()).collect();
        assert_eq!(
            routes
                .iter()
                .filter(|r| matches!(r, Route::Remove(_)))
                .count(),
            2
        );
        assert_eq!(
            routes
                .iter()
                .filter(|r| matches!(r, Route::Add(..)))
                .count(),
            2
        );
        let told: Vec<Notice> = std::iter::from_fn(|| e.poll_notice()).collect();
        assert!(
            told.iter().all(|n| n.to == b),
            "a itself hears nothing before its welcome"
        );
        assert!(
            !told
                .iter()
                .any(|n| matches!(n.kind, NoticeKind::ParticipantLeft(_)))
        );
        assert!(told.iter().any(
            |n| matches!(&n.kind, NoticeKind::ParticipantUpdated(i) if i.id == a && !i.reconnecting)
        ));
        assert!(e.reconnect(999).is_none());
    }

    #[test]
    fn moderation_is_handed_to_the_earliest_joiner_left() {
        let mut e = Engine::new(EngineConfig::default(), 1);
        let a = e.join("r", "a").unwrap().id;
        let b = e.join("r", "b").unwrap().id;
        let c = e.join("r", "c").unwrap().id;
        e.set_moderator(a, true);
        e.set_hand(c, true);
        assert!(e.is_moderator(a) && !e.is_moderator(b));
        assert!(e.participant(c).unwrap().hand_raised);
        std::iter::from_fn(|| e.poll_notice()).for_each(drop);
        e.leave(a);
        assert!(e.is_moderator(b), "b joined before c");
        assert!(!e.is_moderator(c));
        let told: Vec<Notice> = std::iter::from_fn(|| e.poll_notice()).collect();
        for to in [b, c] {
            assert!(
                told.iter().any(|n| n.to == to
                    && matches!(&n.kind, NoticeKind::ParticipantUpdated(i) if i.id == b && i.moderator)),
                "{to} was told: {told:?}"
            );
        }
        // A room that still has a moderator keeps it.
        e.leave(c);
        assert!(e.is_moderator(b));
        // Unchanged state tells nobody.
        std::iter::from_fn(|| e.poll_notice()).for_each(drop);
        e.set_hand(b, false);
        assert!(e.poll_notice().is_none());
    }

    #[test]
    fn join_spreads_participants_over_workers() {
        let mut e = Engine::new(
            EngineConfig {
                workers: 3,
                ..Default::default()
            },
            1,
        );
        let ids: Vec<_> = (0..6)
            .map(|i| e.join("r", &format!("n{i}")).unwrap().id)
            .collect();
        assert_eq!(e.worker_load(), &[2, 2, 2]);
        let workers: Vec<_> = ids.iter().map(|&i| e.worker_of(i).unwrap()).collect();
        assert_eq!(workers, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn no_subscription_before_the_participant_is_ready() {
        let mut e = Engine::new(EngineConfig::default(), 1);
        let a = e.join("r", "a").unwrap().id;
        e.ready(a);
        publish_audio(&mut e, a);
        let b = e.join("r", "b").unwrap().id;
        let subscribes = |cmds: Vec<(usize, Command)>| {
            cmds.into_iter()
                .filter(|(_, c)| matches!(c, Command::Subscribe { .. }))
                .count()
        };
        assert_eq!(subscribes(drain(&mut e)), 0);
        // Leaving before ready must not disturb the subscriber counts.
        e.leave(b);
        let b = e.join("r", "b2").unwrap().id;
        e.ready(b);
        let cmds = drain(&mut e);
        assert_eq!(subscribes(cmds), 1);
        e.ready(b);
        assert_eq!(subscribes(drain(&mut e)), 0, "ready is idempotent");
    }

    #[test]
    fn refuses_bad_names_and_full_rooms() {
        let mut e = Engine::new(
            EngineConfig {
                workers: 1,
                max_participants_per_room: 2,
                max_rooms: 1,
            },
            1,
        );
        assert!(matches!(
            e.join("../x", "a"),
            Err(JoinError::InvalidRoom(_))
        ));
        e.join("r", "a").unwrap();
        e.join("r", "b").unwrap();
        assert_eq!(e.join("r", "c").unwrap_err(), JoinError::RoomFull(2));
        assert_eq!(e.join("other", "d").unwrap_err(), JoinError::TooManyRooms);
    }

    #[test]
    fn a_published_track_reaches_each_worker_once_and_leave_cleans_up() {
        let mut e = Engine::new(
            EngineConfig {
                workers: 2,
                ..Default::default()
            },
            1,
        );
        let a = e.join("r", "a").unwrap().id; // worker 0
        let b = e.join("r", "b").unwrap().id; // worker 1
        let c = e.join("r", "c").unwrap().id; // worker 0
        // b is ready before the track appears, c after: both end up subscribed.
        e.ready(a);
        e.ready(b);
        drain(&mut e);
        let t = TrackId {
            participant: a,
            index: 0,
        };
        publish_audio(&mut e, a);
        e.ready(c);
        let cmds = drain(&mut e);
        let subs: Vec<_> = cmds
            .iter()
            .filter_map(|(w, c)| match c {
                Command::Subscribe { subscriber, .. } => Some((*w, *subscriber)),
                _ => None,
            })
            .collect();
        assert_eq!(subs, vec![(1, b), (0, c)]);
        let fanouts: Vec<_> = cmds
            .iter()
            .filter_map(|(w, c)| match c {
                Command::AddFanout { worker, .. } => Some((*w, *worker)),
                _ => None,
            })
            .collect();
        assert_eq!(fanouts, vec![(0, 1), (0, 0)]);

        // b leaves: worker 1 has no subscriber left, so the fan-out to it stops.
        e.leave(b);
        let cmds = drain(&mut e);
        assert!(
            cmds.iter()
                .any(|(w, c)| *w == 0 && matches!(c, Command::RemoveFanout { worker: 1, .. }))
        );
        assert!(cmds.iter().any(|(w, c)| *w == 1
            && matches!(c, Command::RemoveParticipant { participant } if *participant == b)));
        let notices: Vec<_> = std::iter::from_fn(|| e.poll_notice()).collect();
        assert!(notices.contains(&Notice {
            to: a,
            kind: NoticeKind::ParticipantLeft(b)
        }));

        // a (the publisher) leaves: c is unsubscribed; the room keeps c only.
        e.leave(a);
        let cmds = drain(&mut e);
        assert!(cmds.iter().any(|(w, cmd)| *w == 0
            && matches!(cmd, Command::Unsubscribe { subscriber, track } if *subscriber == c && *track == t)));
        assert_eq!(e.track_count(), 0);
        assert_eq!(e.room_participants("r").len(), 1);
        e.leave(c);
        assert_eq!(e.room_count(), 0);
        assert_eq!(e.participant_count(), 0);
    }
}
