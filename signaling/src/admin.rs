//! The admin API (`Authorization: Bearer <admin.api_key>`) and its page,
//! `/admin`: rooms, who is in them, removing someone, ending a room,
//! server health. Recordings are listed by [`crate::recording`].
//!
//! - `GET /api/health`: version, uptime, counts, worker load, draining
//! - `GET /api/rooms`: every room at a glance
//! - `GET /api/rooms/{room}`: its participants, viewers, who is on air, recording
//! - `DELETE /api/rooms/{room}`: ends the meeting for everyone, viewers and encoders too
//! - `DELETE /api/rooms/{room}/participants/{id}`: removes one participant (or encoder)

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::info;

use crate::http::AppState;
use crate::protocol;
use crate::recording::{admin, error};

/// Who an admin action is said to come from (shown to the people it affects).
const BY: &str = "管理者 / administrator";

/// `GET /admin`: the admin page (it asks for the key; the API checks it).
pub async fn page(State(state): State<Arc<AppState>>) -> Response {
    crate::http::serve(&state, "admin.html")
}

/// `GET /api/health`
pub async fn health(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = admin(&state, &headers) {
        return e.into_response();
    }
    let (rooms, participants, viewers, tracks, load) = state.sfu.control(|e| {
        (
            e.room_count(),
            e.participant_count(),
            e.viewer_count(),
            e.track_count(),
            e.worker_load().to_vec(),
        )
    });
    // Cluster mode: this node, whether Redis answers, the other nodes it knows.
    let cluster = match &state.cluster {
        Some(c) => json!({
            "node": c.id(),
            "redis": if c.redis_up() { "up" } else { "down" },
            "site": c.site(),
            "other_nodes": c.fallbacks(),
            "relays": state.relays.running().into_iter()
                .map(|(room, origin)| json!({"room": room, "origin": origin}))
                .collect::<Vec<_>>(),
        }),
        None => serde_json::Value::Null,
    };
    Json(json!({
        "status": if state.draining() { "draining" } else { "ok" },
        "cluster": cluster,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "rooms": rooms,
        "participants": participants,
        "viewers": viewers,
        "tracks": tracks,
        "worker_participants": load,
        "whip_sessions": state.ingests.lock().map(|m| m.len()).unwrap_or(0),
        "whep_sessions": state.viewers.lock().map(|m| m.len()).unwrap_or(0),
    }))
    .into_response()
}

/// `GET /api/rooms`
pub async fn rooms(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = admin(&state, &headers) {
        return e.into_response();
    }
    let rooms: Vec<serde_json::Value> = state
        .sfu
        .control(|e| e.rooms())
        .into_iter()
        .map(|r| {
            json!({
                "name": r.name,
                "participants": r.participants,
                "viewers": r.viewers,
                "tracks": r.tracks,
                "live": r.live.into_iter().map(protocol::participant_id).collect::<Vec<_>>(),
                "recording": crate::recording::is_recording(&state, &r.name),
            })
        })
        .collect();
    Json(json!({ "rooms": rooms })).into_response()
}

fn valid_room(room: &str) -> Result<(), crate::recording::ApiError> {
    sfu::room::validate_name(room)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "bad_room", e.to_string()))
}

/// `GET /api/rooms/{room}`
pub async fn room(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = admin(&state, &headers).and_then(|()| valid_room(&room)) {
        return e.into_response();
    }
    let (participants, viewers, live) = state.sfu.control(|e| {
        (
            e.room_participants(&room),
            e.room_viewers(&room).len(),
            e.live(&room),
        )
    });
    if participants.is_empty() && viewers == 0 {
        return error(StatusCode::NOT_FOUND, "not_found", "no such room").into_response();
    }
    let participants: Vec<_> = participants
        .into_iter()
        .map(crate::ws::participant)
        .collect();
    Json(json!({
        "name": room,
        "participants": participants,
        "viewers": viewers,
        "live": live.into_iter().map(protocol::participant_id).collect::<Vec<_>>(),
        "recording": crate::recording::is_recording(&state, &room),
        "waiting": state.meetings.with(&room, |r| r.waiting_list().len()),
    }))
    .into_response()
}

/// `DELETE /api/rooms/{room}`: everyone out, encoders and viewers included.
pub async fn end_room(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = admin(&state, &headers).and_then(|()| valid_room(&room)) {
        return e.into_response();
    }
    let exists = state
        .sfu
        .control(|e| !e.room_participants(&room).is_empty() || !e.room_viewers(&room).is_empty());
    if !exists {
        return error(StatusCode::NOT_FOUND, "not_found", "no such room").into_response();
    }
    end_sessions(&state, &state.ingests, &room);
    end_sessions(&state, &state.viewers, &room);
    crate::ws::end_meeting(&state, &room, BY.to_owned());
    info!(room, "room ended by the admin API");
    StatusCode::NO_CONTENT.into_response()
}

/// Ends the WHIP or WHEP sessions of `room`.
fn end_sessions(state: &AppState, sessions: &crate::sdp_http::Sessions, room: &str) {
    let resources: Vec<String> = sessions
        .lock()
        .map(|m| {
            m.iter()
                .filter(|(_, s)| s.room == room)
                .map(|(r, _)| r.clone())
                .collect()
        })
        .unwrap_or_default();
    for r in resources {
        crate::sdp_http::end(state, sessions, &r, "room ended by the admin API");
    }
}

/// `DELETE /api/rooms/{room}/participants/{id}`
pub async fn kick(
    State(state): State<Arc<AppState>>,
    Path((room, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = admin(&state, &headers).and_then(|()| valid_room(&room)) {
        return e.into_response();
    }
    let target = protocol::parse_id('p', &id)
        .filter(|&t| state.sfu.control(|e| e.room_of(t) == Some(room.as_str())));
    let Some(target) = target else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no participant {id} in this room"),
        )
        .into_response();
    };
    // An encoder is ended as its DELETE would; a person is told, then removed.
    let ingest = state.ingests.lock().ok().and_then(|m| {
        m.iter()
            .find(|(_, s)| s.id == target)
            .map(|(r, _)| r.clone())
    });
    match ingest {
        Some(resource) => {
            crate::sdp_http::end(
                &state,
                &state.ingests,
                &resource,
                "removed by the admin API",
            );
        }
        None => crate::ws::remove_participant(&state, target, BY.to_owned()),
    }
    info!(room, participant = target, "removed by the admin API");
    StatusCode::NO_CONTENT.into_response()
}
