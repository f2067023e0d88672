//! The web client's signaling WebSocket (`GET /ws`): parses client
//! messages, calls the engine, and forwards the engine's notices. Bad input
//! gets an `error` message; too much of it closes the socket.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info_span};

use sfu::{JoinError, MediaKind, NoticeKind, ParticipantId, Role as PcRoleSfu};

use crate::auth::{self, Role};
use crate::http::{AppState, SessionHandle};
use crate::protocol::{self, ClientMsg, Kind, Participant, PcRole, ServerMsg};

/// Outgoing messages queued per client; a client this far behind loses notices.
pub const CLIENT_QUEUE: usize = 256;

/// Read and write buffer of each signaling connection (grows for a larger message).
const WS_BUFFER: usize = 4096;

/// Upgrades to the signaling WebSocket.
pub async fn handler(ws: WebSocketUpgrade, State(state): State<Arc<AppState>>) -> Response {
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
            session(socket, state).instrument(span)
        })
}

/// Converts an engine notice to a protocol message.
pub fn notice_to_msg(kind: NoticeKind) -> ServerMsg {
    let p = |i: sfu::engine::ParticipantInfo| Participant {
        id: protocol::participant_id(i.id),
        name: i.name,
        audio_muted: i.audio_muted,
        video_muted: i.video_muted,
    };
    match kind {
        NoticeKind::ParticipantJoined(i) => ServerMsg::ParticipantJoined { participant: p(i) },
        NoticeKind::ParticipantLeft(id) => ServerMsg::ParticipantLeft {
            id: protocol::participant_id(id),
        },
        NoticeKind::ParticipantUpdated(i) => ServerMsg::ParticipantUpdated { participant: p(i) },
        NoticeKind::PublishAnswer(sdp) => ServerMsg::PublishAnswer { sdp },
        NoticeKind::SubscribeOffer(sdp) => ServerMsg::SubscribeOffer { sdp },
        NoticeKind::Error { code, message } => ServerMsg::error(code, message),
    }
}

struct Joined {
    id: ParticipantId,
    role: Role,
}

async fn session(mut socket: WebSocket, state: Arc<AppState>) {
    state.metrics.ws_connections.inc();
    let (tx, mut rx) = mpsc::channel::<ServerMsg>(CLIENT_QUEUE);
    let kill = Arc::new(tokio::sync::Notify::new());
    let session_handle = SessionHandle {
        tx: tx.clone(),
        kill: kill.clone(),
    };
    let mut joined: Option<Joined> = None;
    let mut bad = 0u32;
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
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        // Oversized frames end here too (axum closes with 1009).
                        state.metrics.ws_rejected.with_label_values(&["transport"]).inc();
                        debug!(error = %e, "websocket error");
                        break;
                    }
                };
                match serde_json::from_str::<ClientMsg>(&text) {
                    Ok(msg) => {
                        if let Some(reply) = handle(&state, &session_handle, &mut joined, msg) {
                            if matches!(reply, ServerMsg::Error { .. }) {
                                bad += 1;
                            }
                            let _ = tx.try_send(reply);
                        }
                        if joined.as_ref().is_some_and(|j| j.id == 0) {
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
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: 1008, reason: "too many bad messages".into() }))).await;
                    break;
                }
            }
            _ = kill.notified() => {
                let _ = socket.send(Message::Close(Some(CloseFrame { code: 1013, reason: "client too slow".into() }))).await;
                break;
            }
            Some(out) = rx.recv() => {
                let text = serde_json::to_string(&out).expect("server messages serialise");
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
        }
    }
    if let Some(j) = joined.filter(|j| j.id != 0) {
        state.sessions.lock().expect("sessions").remove(&j.id);
        state.sfu.control(|e| e.leave(j.id));
    }
    state.metrics.ws_connections.dec();
}

/// Handles one well-formed message; returns the direct reply, if any.
fn handle(
    state: &AppState,
    session: &SessionHandle,
    joined: &mut Option<Joined>,
    msg: ClientMsg,
) -> Option<ServerMsg> {
    let Some(j) = joined.as_ref() else {
        return match msg {
            ClientMsg::Join {
                v,
                room,
                name,
                token,
            } => match join(state, session, v, &room, &name, token.as_deref()) {
                Ok(j) => {
                    *joined = Some(j);
                    None
                }
                Err(reply) => Some(reply),
            },
            ClientMsg::Ping => Some(ServerMsg::Pong),
            _ => Some(ServerMsg::error("not_joined", "send join first")),
        };
    };
    let id = j.id;
    match msg {
        ClientMsg::Join { .. } => Some(ServerMsg::error(
            "already_joined",
            "this connection has joined a room already",
        )),
        ClientMsg::PublishOffer { sdp } => {
            if j.role == Role::Viewer {
                return Some(ServerMsg::error("unauthorized", "viewers do not publish"));
            }
            state.sfu.control(|e| e.publish_offer(id, sdp));
            None
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
            let kind = match kind {
                Kind::Audio => MediaKind::Audio,
                Kind::Video => MediaKind::Video,
            };
            state.sfu.control(|e| e.set_muted(id, kind, muted));
            None
        }
        ClientMsg::Leave => {
            state.sessions.lock().expect("sessions").remove(&id);
            state.sfu.control(|e| e.leave(id));
            // Id 0 marks "left": the loop closes the socket.
            *joined = Some(Joined {
                id: 0,
                role: j.role,
            });
            None
        }
        ClientMsg::Ping => Some(ServerMsg::Pong),
    }
}

fn join(
    state: &AppState,
    session: &SessionHandle,
    v: Option<u32>,
    room: &str,
    name: &str,
    token: Option<&str>,
) -> Result<Joined, ServerMsg> {
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
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = match token {
        Some(t) => match auth::verify(&state.token_secret, t, room, now) {
            Ok(c) => Some(c),
            Err(e) => {
                return refuse(
                    "unauthorized",
                    ServerMsg::error("unauthorized", e.to_string()),
                );
            }
        },
        None if state.config.auth.require_token => {
            return refuse(
                "unauthorized",
                ServerMsg::error("unauthorized", "this server requires a join token"),
            );
        }
        None => None,
    };
    let name = claims
        .as_ref()
        .and_then(|c| c.name.clone())
        .or_else(|| protocol::clean_name(name));
    let Some(name) = name else {
        return refuse(
            "bad_request",
            ServerMsg::error("bad_request", "a display name is required"),
        );
    };
    let role = claims.map(|c| c.role).unwrap_or(Role::Participant);
    if state.draining() {
        return refuse(
            "server_busy",
            ServerMsg::error(
                "server_busy",
                "the server is shutting down; try again shortly",
            ),
        );
    }
    match state.sfu.control(|e| e.join(room, &name)) {
        Ok(j) => {
            state.metrics.joins.with_label_values(&["ok"]).inc();
            let participants = j
                .others
                .into_iter()
                .map(|i| Participant {
                    id: protocol::participant_id(i.id),
                    name: i.name,
                    audio_muted: i.audio_muted,
                    video_muted: i.video_muted,
                })
                .collect();
            // The welcome goes first; only then may notices reach this client.
            // (The engine's notices take the sessions lock: never hold it around `control`.)
            let _ = session.tx.try_send(ServerMsg::Welcome {
                v: protocol::VERSION,
                room: room.to_owned(),
                participant_id: protocol::participant_id(j.id),
                participants,
            });
            state
                .sessions
                .lock()
                .expect("sessions")
                .insert(j.id, session.clone());
            tracing::Span::current()
                .record("room", room)
                .record("participant", j.id);
            // Only now may subscriptions start: their offers have somewhere to go.
            state.sfu.control(|e| e.ready(j.id));
            Ok(Joined { id: j.id, role })
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
