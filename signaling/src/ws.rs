//! The web client's signaling WebSocket (`GET /ws`): parses client
//! messages, calls the engine, and forwards the engine's notices. Bad input
//! gets an `error` message; too much of it closes the socket.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, debug, info, info_span};

use sfu::{JoinError, MediaKind, NoticeKind, ParticipantId, Role as PcRoleSfu};

use crate::auth::Role;
use crate::http::{AppState, SessionHandle};
use crate::meeting::RateLimit;
use crate::protocol::{
    self, ClientMsg, Kind, ModerateAction, Participant, PcRole, ServerMsg, TrackSource,
};

/// Outgoing messages queued per client; a client this far behind loses notices.
pub const CLIENT_QUEUE: usize = 256;

/// Read and write buffer of each signaling connection (grows for a larger message).
const WS_BUFFER: usize = 4096;

/// Upgrades to the signaling WebSocket.
pub async fn handler(
    ws: WebSocketUpgrade,
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Err(wait) = state.ws_rate.check(peer.ip(), std::time::Instant::now()) {
        state.metrics.rate_limited.with_label_values(&["ws"]).inc();
        return crate::sdp_http::too_many(wait);
    }
    // The sign-in is read once, at the upgrade: the cookie does not travel
    // on the socket afterwards.
    let visitor = Visitor {
        ip: peer.ip(),
        staff: crate::directory::Staff::from_headers(&state, &headers),
    };
    let max = state.config.limits.ws_max_message_bytes;
    // Signaling messages are small and rare: tungstenite's default 128 KiB read
    // and write buffers per connection were most of a viewer's memory.
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(WS_BUFFER)
        .write_buffer_size(WS_BUFFER)
        .on_upgrade(move |socket| {
            let span = info_span!(
                "ws",
                room = tracing::field::Empty,
                participant = tracing::field::Empty
            );
            session(socket, state, visitor).instrument(span)
        })
}

/// What others see of a participant, in the protocol's form.
pub fn participant(i: sfu::engine::ParticipantInfo) -> Participant {
    Participant {
        id: protocol::participant_id(i.id),
        name: i.name,
        audio_muted: i.audio_muted,
        video_muted: i.video_muted,
        hand_raised: i.hand_raised,
        moderator: i.moderator,
        sharing: i.sharing,
        reconnecting: i.reconnecting,
    }
}

/// Converts an engine notice to a protocol message (`None`: nothing to say
/// on the wire).
pub fn notice_to_msg(kind: NoticeKind) -> Option<ServerMsg> {
    Some(match kind {
        NoticeKind::ParticipantJoined(i) => ServerMsg::ParticipantJoined {
            participant: participant(i),
        },
        NoticeKind::ParticipantLeft(id) => ServerMsg::ParticipantLeft {
            id: protocol::participant_id(id),
        },
        NoticeKind::ParticipantUpdated(i) => ServerMsg::ParticipantUpdated {
            participant: participant(i),
        },
        NoticeKind::PublishAnswer(sdp) => ServerMsg::PublishAnswer { sdp },
        NoticeKind::SubscribeOffer(sdp) => ServerMsg::SubscribeOffer { sdp },
        NoticeKind::SubscribeAnswer(sdp) => ServerMsg::SubscribeAnswer { sdp },
        NoticeKind::VideoWanted(wanted) => ServerMsg::VideoWanted { wanted },
        NoticeKind::VideoLayers(max) => ServerMsg::VideoLayers { max },
        NoticeKind::Live(ps) => ServerMsg::Live {
            id: ps.first().copied().map(protocol::participant_id),
            ids: ps.into_iter().map(protocol::participant_id).collect(),
        },
        NoticeKind::ActiveSpeaker { speaker, recent } => ServerMsg::ActiveSpeaker {
            id: protocol::participant_id(speaker),
            recent: recent.into_iter().map(protocol::participant_id).collect(),
        },
        NoticeKind::Error { code, message } => ServerMsg::error(code, message),
        // The web client watches its own connections and reconnects.
        NoticeKind::PeerFailed(_) => return None,
    })
}

/// Cluster mode: a join for a room homed on another node is told where
/// to go (`redirect`), and the socket closes.
async fn redirect(state: &AppState, room: &str) -> Option<ServerMsg> {
    let cluster = state.cluster.as_ref()?;
    sfu::room::validate_name(room).ok()?;
    let crate::cluster::Route::There { url, node } = cluster.route(room).await else {
        return None;
    };
    debug!(room, node = %node, "room homed elsewhere: redirecting the join");
    state
        .metrics
        .cluster_redirects
        .with_label_values(&["ws"])
        .inc();
    Some(ServerMsg::Redirect {
        url: crate::cluster::redirect_url(&url, &format!("/r/{room}")),
    })
}

/// Who opened the socket.
struct Visitor {
    ip: std::net::IpAddr,
    staff: Option<crate::directory::Staff>,
}

/// A session in a room.
struct Joined {
    id: ParticipantId,
    role: Role,
    room: String,
}

/// A join that passed the checks: who, where, as what.
struct JoinRequest {
    room: String,
    name: String,
    role: Role,
}

/// A session in the waiting room: the moderator's decision arrives on `decided`.
struct Waiting {
    req: JoinRequest,
    waiter: u64,
    decided: oneshot::Receiver<bool>,
}

/// Where a session stands.
enum Stage {
    /// Not in a room yet.
    Idle,
    /// In the waiting room.
    Waiting(Waiting),
    /// In a room.
    Joined(Joined),
    /// Left (or was turned away): the socket closes.
    Done,
}

async fn session(mut socket: WebSocket, state: Arc<AppState>, visitor: Visitor) {
    state.metrics.ws_connections.inc();
    let (tx, mut rx) = mpsc::channel::<ServerMsg>(CLIENT_QUEUE);
    let kill = Arc::new(tokio::sync::Notify::new());
    let session_handle = SessionHandle {
        tx: tx.clone(),
        kill: kill.clone(),
        ends_with_peer: false,
    };
    let mut stage = Stage::Idle;
    let mut chat_limit =
        RateLimit::chat(Instant::now(), state.config.limits.chat_messages_per_minute);
    let mut bad = 0u32;
    // A close frame with 1000 or 1001 (the tab closed) ends the participation at
    // once; a dropped connection leaves a grace period to resume.
    let mut clean = false;
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Binary(_))) => {
                        state.metrics.ws_rejected.with_label_values(&["binary"]).inc();
                        bad += 1;
                        let _ = tx.try_send(ServerMsg::error("bad_request", "binary frames are not part of the protocol"));
                        continue;
                    }
                    Some(Ok(Message::Close(frame))) => {
                        clean = frame.is_none_or(|f| matches!(f.code, 1000 | 1001));
                        break;
                    }
                    None => break,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        // Oversized frames end here too (axum closes with 1009): a
                        // client that breaks the limits gets no grace period. Any
                        // other error is taken for a dropped connection.
                        let text = e.to_string();
                        clean = text.contains("Space limit") || text.contains("too long");
                        state.metrics.ws_rejected.with_label_values(&["transport"]).inc();
                        debug!(error = %e, "websocket error");
                        break;
                    }
                };
                let parsed = serde_json::from_str::<ClientMsg>(&text);
                if let (Ok(ClientMsg::Join { room, .. }), Stage::Idle) = (&parsed, &stage)
                    && let Some(to) = redirect(&state, room).await
                {
                    let _ = socket.send(text_msg(&to)).await;
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: 1000, reason: "join on the room's home node".into() }))).await;
                    clean = true;
                    break;
                }
                match parsed {
                    Ok(msg) => {
                        let mut ctx = Ctx { state: &state, session: &session_handle, chat_limit: &mut chat_limit, visitor: &visitor };
                        if let Some(reply) = handle(&mut ctx, &mut stage, msg) {
                            if let ServerMsg::Error { code, .. } = &reply {
                                bad += 1;
                                if code == "rate_limited" {
                                    state.metrics.ws_rejected.with_label_values(&["rate_limited"]).inc();
                                }
                            }
                            let _ = tx.try_send(reply);
                        }
                        if matches!(stage, Stage::Done) {
                            break;
                        }
                    }
                    Err(e) => {
                        bad += 1;
                        state.metrics.ws_rejected.with_label_values(&["malformed"]).inc();
                        let _ = tx.try_send(ServerMsg::error("bad_request", format!("malformed message: {e}")));
                    }
                }
                if bad > state.config.limits.ws_max_bad_messages {
                    clean = true;
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: 1008, reason: "too many bad messages".into() }))).await;
                    break;
                }
            }
            decision = async {
                match &mut stage {
                    Stage::Waiting(w) => (&mut w.decided).await.unwrap_or(false),
                    _ => std::future::pending().await,
                }
            } => {
                let Stage::Waiting(w) = std::mem::replace(&mut stage, Stage::Idle) else { unreachable!() };
                if decision {
                    match enter(&state, &session_handle, w.req) {
                        Ok(j) => stage = Stage::Joined(j),
                        Err(reply) => {
                            let _ = tx.try_send(reply);
                        }
                    }
                } else {
                    let _ = socket.send(text_msg(&ServerMsg::LobbyDenied)).await;
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: 4003, reason: "not admitted".into() }))).await;
                    stage = Stage::Done;
                    break;
                }
            }
            _ = kill.notified() => {
                let _ = socket.send(Message::Close(Some(CloseFrame { code: 1013, reason: "client too slow".into() }))).await;
                break;
            }
            Some(out) = rx.recv() => {
                let ends = out.ends_session();
                if socket.send(text_msg(&out)).await.is_err() {
                    break;
                }
                if ends {
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: 4000, reason: "session ended".into() }))).await;
                    break;
                }
            }
        }
    }
    match stage {
        Stage::Joined(j) => {
            let ours = state
                .sessions
                .lock()
                .expect("sessions")
                .get(&j.id)
                .is_some_and(|h| Arc::ptr_eq(&h.kill, &kill));
            // Not ours: resumed on another connection, or removed by a moderator.
            if ours && clean {
                leave(&state, &j);
            } else if ours {
                await_resume(state.clone(), j, kill.clone());
            }
        }
        Stage::Waiting(w) => {
            let gone = state
                .meetings
                .with(&w.req.room, |r| r.take_waiter(w.waiter).is_some());
            if gone {
                tell_moderators(
                    &state,
                    &w.req.room,
                    ServerMsg::LobbyLeft {
                        id: format!("l{}", w.waiter),
                    },
                );
            }
            state
                .meetings
                .close_if_empty(&w.req.room, occupied(&state, &w.req.room));
        }
        Stage::Idle | Stage::Done => {}
    }
    state.metrics.ws_connections.dec();
}

fn text_msg(m: &ServerMsg) -> Message {
    Message::Text(
        serde_json::to_string(m)
            .expect("server messages serialise")
            .into(),
    )
}

/// What a message handler works with.
struct Ctx<'a> {
    state: &'a AppState,
    session: &'a SessionHandle,
    chat_limit: &'a mut RateLimit,
    visitor: &'a Visitor,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whether anyone is in `room`.
fn occupied(state: &AppState, room: &str) -> bool {
    state.sfu.control(|e| !e.room_participants(room).is_empty())
}

/// A dropped connection: the room sees the participant reconnecting; if no
/// new connection resumes it within the grace period, it leaves.
fn await_resume(state: Arc<AppState>, j: Joined, kill: Arc<tokio::sync::Notify>) {
    state.sfu.control(|e| e.set_reconnecting(j.id, true));
    let grace = Duration::from_secs(state.config.limits.reconnect_grace_secs);
    info!(
        participant = j.id,
        grace_s = grace.as_secs(),
        "connection dropped; waiting for a resume"
    );
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        let still = state
            .sessions
            .lock()
            .expect("sessions")
            .get(&j.id)
            .is_some_and(|h| Arc::ptr_eq(&h.kill, &kill));
        if still {
            info!(participant = j.id, "not resumed in time; leaving");
            leave(&state, &j);
        }
    });
}

/// Forgets `id`'s resume token (it left for good).
/// Takes `id` out of its room: it is told (`removed`, by `by`) first, then
/// its session and media end at once, even if its client never reads the message.
pub fn remove_participant(state: &AppState, id: ParticipantId, by: String) {
    send_to(state, id, ServerMsg::Removed { by });
    state.sessions.lock().expect("sessions").remove(&id);
    forget_resume(state, id);
    state.sfu.control(|e| e.leave(id));
}

/// Ends the meeting in `room` for everyone (told `meeting_ended`, by `by`);
/// waiting joiners are turned away.
pub fn end_meeting(state: &AppState, room: &str, by: String) {
    state.meetings.end(room);
    broadcast(state, room, &ServerMsg::MeetingEnded { by });
    let ids: Vec<ParticipantId> = state
        .sfu
        .control(|e| e.room_participants(room))
        .into_iter()
        .map(|i| i.id)
        .collect();
    for t in ids {
        state.sessions.lock().expect("sessions").remove(&t);
        forget_resume(state, t);
        state.sfu.control(|e| e.leave(t));
    }
}

fn forget_resume(state: &AppState, id: ParticipantId) {
    state
        .resumes
        .lock()
        .expect("resumes")
        .retain(|_, (p, _)| *p != id);
}

/// Leaves the room; the last one out closes the meeting's state, and
/// whoever still waits is let in (there is nobody left to guard the door).
fn leave(state: &AppState, j: &Joined) {
    state.sessions.lock().expect("sessions").remove(&j.id);
    forget_resume(state, j.id);
    state.sfu.control(|e| e.leave(j.id));
    if !occupied(state, &j.room) {
        let waiters = state
            .meetings
            .with(&j.room, |r| std::mem::take(&mut r.waiting));
        for w in waiters {
            let _ = w.decide.send(true);
        }
    }
    state
        .meetings
        .close_if_empty(&j.room, occupied(state, &j.room));
}

/// Sends to one participant's session; a client that stopped reading is ended.
fn send_to(state: &AppState, id: ParticipantId, msg: ServerMsg) {
    let h = state.sessions.lock().expect("sessions").get(&id).cloned();
    if let Some(h) = h
        && h.tx.try_send(msg).is_err()
    {
        state.metrics.notices_dropped.inc();
        h.kill.notify_one();
    }
}

/// Sends to everyone in `room`.
fn broadcast(state: &AppState, room: &str, msg: &ServerMsg) {
    for i in state.sfu.control(|e| e.room_participants(room)) {
        send_to(state, i.id, msg.clone());
    }
}

/// Sends to the moderators of `room`.
fn tell_moderators(state: &AppState, room: &str, msg: ServerMsg) {
    for i in state.sfu.control(|e| e.room_participants(room)) {
        if i.moderator {
            send_to(state, i.id, msg.clone());
        }
    }
}

/// Handles one well-formed message; returns the direct reply, if any.
fn handle(ctx: &mut Ctx<'_>, stage: &mut Stage, msg: ClientMsg) -> Option<ServerMsg> {
    let state = ctx.state;
    let j = match stage {
        Stage::Joined(j) => j,
        Stage::Idle => {
            return match msg {
                ClientMsg::Join {
                    v,
                    room,
                    name,
                    token,
                    password,
                    resume,
                } => match join_timed(
                    ctx,
                    v,
                    &room,
                    &name,
                    crate::access::Knock {
                        token: token.as_deref(),
                        password: password.as_deref(),
                        staff: None,
                    },
                    resume,
                ) {
                    Ok(next) => {
                        *stage = next;
                        None
                    }
                    Err(reply) => Some(reply),
                },
                ClientMsg::Ping => Some(ServerMsg::Pong),
                _ => Some(ServerMsg::error("not_joined", "send join first")),
            };
        }
        Stage::Waiting(_) => {
            return match msg {
                ClientMsg::Ping => Some(ServerMsg::Pong),
                ClientMsg::Leave => {
                    *stage = Stage::Done;
                    None
                }
                _ => Some(ServerMsg::error(
                    "not_joined",
                    "waiting for a moderator to admit you",
                )),
            };
        }
        Stage::Done => return None,
    };
    let id = j.id;
    match msg {
        ClientMsg::Join { .. } => Some(ServerMsg::error(
            "already_joined",
            "this connection has joined a room already",
        )),
        ClientMsg::PublishOffer { sdp, sources } => {
            if j.role == Role::Viewer {
                return Some(ServerMsg::error("unauthorized", "viewers do not publish"));
            }
            if sources.len() > protocol::MAX_SOURCES || sources.keys().any(|k| k.len() > 64) {
                return Some(ServerMsg::error(
                    "bad_request",
                    format!(
                        "sources: at most {} entries, track ids of at most 64 bytes",
                        protocol::MAX_SOURCES
                    ),
                ));
            }
            if let Err(why) = crate::sdp_http::check_tracks(state, "ws", &sdp) {
                return Some(ServerMsg::error("too_many_tracks", why));
            }
            let screens = sources
                .into_iter()
                .filter(|(_, s)| *s == TrackSource::Screen)
                .map(|(k, _)| k);
            state.sfu.control(|e| {
                e.declare_screen_tracks(id, screens);
                e.publish_offer(id, sdp)
            });
            None
        }
        ClientMsg::Share { on } => {
            if on && j.role == Role::Viewer {
                return Some(ServerMsg::error("unauthorized", "viewers do not publish"));
            }
            let multiple = state.meetings.with(&j.room, |r| r.state.multiple_shares);
            let busy = state.sfu.control(|e| {
                let other = e
                    .room_participants(&j.room)
                    .into_iter()
                    .find(|i| i.sharing && i.id != id);
                match other {
                    Some(o) if on && !multiple => Some(o.name),
                    _ => {
                        e.set_sharing(id, on);
                        None
                    }
                }
            });
            busy.map(|name| {
                ServerMsg::error(
                    "share_busy",
                    format!("{name} is sharing; a moderator can allow more than one share"),
                )
            })
        }
        ClientMsg::SubscribeAnswer { sdp } => {
            state.sfu.control(|e| e.subscribe_answer(id, sdp));
            None
        }
        ClientMsg::Candidate { pc, candidate } => {
            let role = match pc {
                PcRole::Publish => PcRoleSfu::Publish,
                PcRole::Subscribe => PcRoleSfu::Subscribe,
            };
            state.sfu.control(|e| {
                e.candidate(
                    id,
                    role,
                    candidate.candidate,
                    candidate.sdp_mid,
                    candidate.sdp_mline_index,
                )
            });
            None
        }
        ClientMsg::Mute { kind, muted } => {
            state
                .sfu
                .control(|e| e.set_muted(id, media_kind(kind), muted));
            None
        }
        ClientMsg::Chat { text } => {
            let text = match protocol::clean_chat(&text) {
                Ok(t) => t,
                Err(reason) => return Some(ServerMsg::error("bad_request", reason)),
            };
            let now = Instant::now();
            if !ctx.chat_limit.allow(now) {
                return Some(ServerMsg::error(
                    "rate_limited",
                    format!(
                        "too many chat messages; wait {} ms",
                        ctx.chat_limit.retry_after().as_millis()
                    ),
                ));
            }
            let name = state
                .sfu
                .control(|e| e.participant(id).map(|i| i.name))
                .unwrap_or_default();
            let entry = state.meetings.with(&j.room, |r| {
                r.add_chat(protocol::participant_id(id), name, text, now_ms())
            });
            broadcast(state, &j.room, &ServerMsg::Chat(entry));
            None
        }
        ClientMsg::View { hidden, sizes } => {
            if hidden.len() > protocol::MAX_VIEW || sizes.len() > protocol::MAX_VIEW {
                return Some(ServerMsg::error(
                    "bad_request",
                    format!("view: at most {} participants", protocol::MAX_VIEW),
                ));
            }
            let hidden = hidden
                .iter()
                .filter_map(|s| protocol::parse_id('p', s))
                .collect();
            // Unknown keys are ignored; sizes are clamped to what a screen can be.
            let sizes = sizes
                .iter()
                .filter_map(|(key, &[w, h])| {
                    let (who, screen) = match key.strip_suffix("-screen") {
                        Some(p) => (p, true),
                        None => (key.as_str(), false),
                    };
                    let who = protocol::parse_id('p', who)?;
                    Some(((who, screen), (w.min(16_384), h.min(16_384))))
                })
                .collect();
            state.sfu.control(|e| {
                e.set_hidden(id, hidden);
                e.set_sizes(id, sizes);
            });
            None
        }
        ClientMsg::Hand { raised } => {
            state.sfu.control(|e| e.set_hand(id, raised));
            None
        }
        ClientMsg::Moderate(action) => moderate(state, j, action).err(),
        ClientMsg::Leave => {
            leave(state, j);
            *stage = Stage::Done;
            None
        }
        ClientMsg::Ping => Some(ServerMsg::Pong),
    }
}

fn media_kind(kind: Kind) -> MediaKind {
    match kind {
        Kind::Audio => MediaKind::Audio,
        Kind::Video => MediaKind::Video,
    }
}

/// The most presenters live at once (a main picture and a few more).
const MAX_LIVE: usize = 4;

/// A moderator's action; anyone else is refused with `forbidden`.
fn moderate(state: &AppState, j: &Joined, action: ModerateAction) -> Result<(), ServerMsg> {
    let (allowed, me) = state.sfu.control(|e| {
        (
            e.is_moderator(j.id),
            e.participant(j.id).map(|i| i.name).unwrap_or_default(),
        )
    });
    if !allowed {
        state
            .metrics
            .ws_rejected
            .with_label_values(&["forbidden"])
            .inc();
        return Err(ServerMsg::error(
            "forbidden",
            "only a moderator can do this",
        ));
    }
    // A participant of this room, by wire id.
    let member = |target: &str| -> Result<ParticipantId, ServerMsg> {
        protocol::parse_id('p', target)
            .filter(|&t| state.sfu.control(|e| e.room_of(t) == Some(j.room.as_str())))
            .ok_or_else(|| {
                ServerMsg::error("not_found", format!("no participant {target} in this room"))
            })
    };
    let waiter = |target: &str| -> Result<crate::meeting::Waiter, ServerMsg> {
        protocol::parse_id('l', target)
            .and_then(|w| state.meetings.with(&j.room, |r| r.take_waiter(w)))
            .ok_or_else(|| ServerMsg::error("not_found", format!("nobody is waiting as {target}")))
    };
    info!(room = %j.room, moderator = j.id, ?action, "moderation");
    let admit = matches!(action, ModerateAction::Admit { .. });
    match action {
        ModerateAction::Mute { target, kind } => {
            let t = member(&target)?;
            state.sfu.control(|e| e.hold(t, media_kind(kind)));
            send_to(state, t, ServerMsg::MutedByModerator { kind, by: me });
        }
        ModerateAction::Remove { target } => {
            let t = member(&target)?;
            if t == j.id {
                return Err(ServerMsg::error("bad_request", "use leave to leave"));
            }
            remove_participant(state, t, me);
        }
        ModerateAction::Lock { locked } => {
            let rs = state.meetings.with(&j.room, |r| {
                r.state.locked = locked;
                r.state
            });
            broadcast(state, &j.room, &ServerMsg::RoomState(rs));
        }
        ModerateAction::Lobby { enabled } => {
            let (rs, waiters) = state.meetings.with(&j.room, |r| {
                r.state.lobby = enabled;
                let w = if enabled {
                    Vec::new()
                } else {
                    std::mem::take(&mut r.waiting)
                };
                (r.state, w)
            });
            // Turning the waiting room off lets everyone in it in.
            for w in waiters {
                tell_moderators(
                    state,
                    &j.room,
                    ServerMsg::LobbyLeft {
                        id: format!("l{}", w.id),
                    },
                );
                let _ = w.decide.send(true);
            }
            broadcast(state, &j.room, &ServerMsg::RoomState(rs));
        }
        ModerateAction::Admit { target } | ModerateAction::Deny { target } => {
            let w = waiter(&target)?;
            let _ = w.decide.send(admit);
            tell_moderators(state, &j.room, ServerMsg::LobbyLeft { id: target });
        }
        ModerateAction::AllowShares { allowed } => {
            let rs = state.meetings.with(&j.room, |r| {
                r.state.multiple_shares = allowed;
                r.state
            });
            broadcast(state, &j.room, &ServerMsg::RoomState(rs));
        }
        ModerateAction::Promote { target } => {
            let t = member(&target)?;
            state.sfu.control(|e| e.set_moderator(t, true));
        }
        ModerateAction::SetLive { target, targets } => {
            let wanted: Vec<String> = targets
                .unwrap_or_default()
                .into_iter()
                .chain(target)
                .collect();
            if wanted.len() > MAX_LIVE {
                return Err(ServerMsg::error(
                    "bad_request",
                    format!("at most {MAX_LIVE} presenters can be live at once"),
                ));
            }
            let ids = wanted
                .iter()
                .map(|t| member(t))
                .collect::<Result<Vec<_>, _>>()?;
            state
                .sfu
                .control(|e| e.set_live(j.id, ids))
                .map_err(|code| ServerMsg::error(code, "cannot put this participant live"))?;
        }
        ModerateAction::End => end_meeting(state, &j.room, me),
    }
    Ok(())
}

/// Checks a join: version, room name, token, name, capacity.
fn request_join(
    state: &AppState,
    visitor: &Visitor,
    v: Option<u32>,
    room: &str,
    name: &str,
    knock: crate::access::Knock<'_>,
) -> Result<JoinRequest, ServerMsg> {
    let refuse = |reason: &str, msg: ServerMsg| {
        state.metrics.joins.with_label_values(&[reason]).inc();
        Err(msg)
    };
    if v.is_some_and(|v| v != protocol::VERSION) {
        return refuse(
            "unsupported_version",
            ServerMsg::error(
                "unsupported_version",
                format!("this server speaks protocol version {}", protocol::VERSION),
            ),
        );
    }
    if let Err(e) = sfu::room::validate_name(room) {
        return refuse(
            "invalid_room",
            ServerMsg::error("invalid_room", e.to_string()),
        );
    }
    let staff = visitor.staff.as_ref();
    let knock = crate::access::Knock { staff, ..knock };
    let claims = match crate::access::admit(state, room, knock, visitor.ip) {
        Ok(c) => c,
        Err(r) => return refuse(r.code, ServerMsg::error(r.code, r.message)),
    };
    // A token's name wins, then the directory's: neither can be typed over.
    let name = claims
        .as_ref()
        .and_then(|c| c.name.clone())
        .or_else(|| staff.map(|s| s.name.clone()))
        .or_else(|| protocol::clean_name(name));
    let Some(name) = name else {
        return refuse(
            "bad_request",
            ServerMsg::error("bad_request", "a display name is required"),
        );
    };
    let role = match (claims, staff) {
        (Some(c), _) => c.role,
        (None, Some(s)) if s.moderator => Role::Moderator,
        _ => Role::Participant,
    };
    if state.draining() {
        return refuse(
            "server_busy",
            ServerMsg::error(
                "server_busy",
                "the server is shutting down; try again shortly",
            ),
        );
    }
    Ok(JoinRequest {
        room: room.to_owned(),
        name,
        role,
    })
}

/// A locked room refuses; a room with its waiting room on queues the joiner
/// for a moderator; otherwise the joiner enters. Moderator tokens pass both.
fn admit_or_wait(
    state: &AppState,
    session: &SessionHandle,
    req: JoinRequest,
) -> Result<Stage, ServerMsg> {
    let privileged = req.role == Role::Moderator;
    let occupied = occupied(state, &req.room);
    let rs = state.meetings.with(&req.room, |r| r.state);
    if rs.locked && occupied && !privileged {
        state
            .metrics
            .joins
            .with_label_values(&["room_locked"])
            .inc();
        return Err(ServerMsg::error(
            "room_locked",
            "a moderator has locked this meeting",
        ));
    }
    if rs.lobby && occupied && !privileged {
        let (decide, decided) = oneshot::channel();
        let waiter = state.meetings.waiter_id();
        state.meetings.with(&req.room, |r| {
            r.waiting.push(crate::meeting::Waiter {
                id: waiter,
                name: req.name.clone(),
                decide,
            })
        });
        state.metrics.joins.with_label_values(&["lobby"]).inc();
        let _ = session.tx.try_send(ServerMsg::LobbyWaiting);
        tell_moderators(
            state,
            &req.room,
            ServerMsg::LobbyRequest(crate::meeting::waiting(waiter, &req.name)),
        );
        return Ok(Stage::Waiting(Waiting {
            req,
            waiter,
            decided,
        }));
    }
    enter(state, session, req).map(Stage::Joined)
}

/// The participant a resume token stands for, if it is still in `room`.
fn resumable(state: &AppState, token: &str, room: &str) -> Option<(ParticipantId, Role, String)> {
    let (id, role) = *state.resumes.lock().expect("resumes").get(token)?;
    state
        .sfu
        .control(|e| e.room_of(id) == Some(room))
        .then(|| (id, role, token.to_owned()))
}

/// Takes participant `id` over on this connection: fresh peers, the same
/// identity; a connection still attached to it is closed without leaving.
fn resume_session(
    state: &AppState,
    session: &SessionHandle,
    id: ParticipantId,
    role: Role,
    token: String,
    room: String,
) -> Result<Joined, ServerMsg> {
    let Some(j) = state.sfu.control(|e| e.reconnect(id)) else {
        return Err(ServerMsg::error("not_found", "that session has ended"));
    };
    state.metrics.joins.with_label_values(&["resumed"]).inc();
    let _ = session.tx.try_send(welcome(state, &room, j, token, true));
    let old = state
        .sessions
        .lock()
        .expect("sessions")
        .insert(id, session.clone());
    if let Some(old) = old.filter(|o| !Arc::ptr_eq(&o.kill, &session.kill)) {
        old.kill.notify_one();
    }
    tracing::Span::current()
        .record("room", room.as_str())
        .record("participant", id);
    state.sfu.control(|e| e.ready(id));
    Ok(Joined { id, role, room })
}

/// The `welcome` for a participant the engine just took in (or back).
fn welcome(
    state: &AppState,
    room: &str,
    j: sfu::engine::Joined,
    resume_token: String,
    resumed: bool,
) -> ServerMsg {
    let (room_state, chat, lobby) = state.meetings.with(room, |r| {
        (
            r.state,
            r.chat.iter().cloned().collect(),
            if j.moderator {
                r.waiting_list()
            } else {
                Vec::new()
            },
        )
    });
    ServerMsg::Welcome(Box::new(protocol::Welcome {
        v: protocol::VERSION,
        room: room.to_owned(),
        participant_id: protocol::participant_id(j.id),
        speakers: j
            .speakers
            .iter()
            .map(|&p| protocol::participant_id(p))
            .collect(),
        participants: j.others.into_iter().map(participant).collect(),
        moderator: j.moderator,
        room_state,
        chat,
        lobby,
        resume_token,
        resumed,
        nodes: state
            .cluster
            .as_ref()
            .map(|c| c.fallbacks())
            .unwrap_or_default(),
    }))
}

/// A join (or resume), timed into `kaigi_answer_seconds{kind="join"}`.
fn join_timed(
    ctx: &mut Ctx<'_>,
    v: Option<u32>,
    room: &str,
    name: &str,
    knock: crate::access::Knock<'_>,
    resume: Option<String>,
) -> Result<Stage, ServerMsg> {
    let state = ctx.state;
    let t0 = std::time::Instant::now();
    let r = request_join(state, ctx.visitor, v, room, name, knock).and_then(|req| {
        match resume.and_then(|t| resumable(state, &t, &req.room)) {
            Some((id, role, token)) => {
                resume_session(state, ctx.session, id, role, token, req.room).map(Stage::Joined)
            }
            None => admit_or_wait(state, ctx.session, req),
        }
    });
    state
        .metrics
        .answer_seconds
        .with_label_values(&["join"])
        .observe(t0.elapsed().as_secs_f64());
    r
}

/// Puts the participant in the room: engine join, welcome, subscriptions.
fn enter(state: &AppState, session: &SessionHandle, req: JoinRequest) -> Result<Joined, ServerMsg> {
    let refuse = |reason: &str, msg: ServerMsg| {
        state.metrics.joins.with_label_values(&[reason]).inc();
        Err(msg)
    };
    let room = req.room.as_str();
    match state
        .sfu
        .control(|e| e.join_as(room, &req.name, req.role == Role::Moderator))
    {
        Ok(j) => {
            state.metrics.joins.with_label_values(&["ok"]).inc();
            let resume_token: String = rand::random::<[u8; 16]>()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            state
                .resumes
                .lock()
                .expect("resumes")
                .insert(resume_token.clone(), (j.id, req.role));
            let id = j.id;
            // The welcome goes first; only then may notices reach this client.
            // (The engine's notices take the sessions lock: never hold it around `control`.)
            let _ = session
                .tx
                .try_send(welcome(state, room, j, resume_token, false));
            state
                .sessions
                .lock()
                .expect("sessions")
                .insert(id, session.clone());
            tracing::Span::current()
                .record("room", room)
                .record("participant", id);
            // Only now may subscriptions start: their offers have somewhere to go.
            state.sfu.control(|e| e.ready(id));
            Ok(Joined {
                id,
                role: req.role,
                room: req.room,
            })
        }
        Err(JoinError::RoomFull(n)) => refuse(
            "room_full",
            ServerMsg::error("room_full", format!("the room is full ({n} participants)")),
        ),
        Err(JoinError::TooManyRooms) => refuse(
            "server_busy",
            ServerMsg::error(
                "server_busy",
                "the server hosts its maximum number of rooms",
            ),
        ),
        Err(JoinError::InvalidRoom(e)) => refuse(
            "invalid_room",
            ServerMsg::error("invalid_room", e.to_string()),
        ),
    }
}
