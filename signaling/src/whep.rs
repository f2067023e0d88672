//! WHEP playback: a viewer (the `/watch` page, any WHEP player) `POST`s
//! its receive-only SDP offer to `/whep/{room}` and gets the room's
//! broadcast: the first publisher's camera (or share) and microphone.
//! `DELETE` on the returned resource ends it.
//!
//! Viewers are not participants: they get no room notices and nobody is
//! told about them, so that a thousand of them cost the room nothing. A
//! session is not renegotiated: it carries the tracks its answer named.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use tracing::{debug, info};

use crate::http::{AppState, SessionHandle};
use crate::protocol::ServerMsg;
use crate::whip::{Ingest, reply, resource_id};

/// How long the media server may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Counts a request's outcome and answers it.
fn counted(state: &AppState, result: &'static str, res: Response) -> Response {
    state
        .metrics
        .whep_requests
        .with_label_values(&[result])
        .inc();
    res
}

/// Viewers need a token (any role, for this room) only where tokens are required.
fn authorize(state: &AppState, room: &str, headers: &HeaderMap) -> Result<(), String> {
    if !state.config.auth.require_token {
        return Ok(());
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or("a bearer token is required")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    crate::auth::verify(&state.token_secret, token, room, now)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `POST /whep/{room}`: the viewer's offer in, kaigi's answer out.
pub async fn post(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if state.draining() {
        return counted(
            &state,
            "draining",
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down",
            ),
        );
    }
    if sfu::room::validate_name(&room).is_err() {
        return counted(
            &state,
            "bad_room",
            reply(
                StatusCode::BAD_REQUEST,
                "invalid room name: use 1-64 letters A-Z a-z, digits, '-', '_' or '.'",
            ),
        );
    }
    if let Err(why) = authorize(&state, &room, &headers) {
        let mut res = reply(StatusCode::UNAUTHORIZED, why);
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return counted(&state, "unauthorized", res);
    }
    let sdp_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/sdp"));
    if !sdp_type {
        return counted(
            &state,
            "bad_content_type",
            reply(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the offer must be sent as Content-Type: application/sdp",
            ),
        );
    }
    let Some(offer) = std::str::from_utf8(&body)
        .ok()
        .filter(|o| o.trim_start().starts_with("v=0"))
    else {
        return counted(
            &state,
            "bad_sdp",
            reply(
                StatusCode::BAD_REQUEST,
                "the body is not an SDP offer (no v=0)",
            ),
        );
    };
    let live = state.sfu.control(|e| {
        e.room_participants(&room)
            .iter()
            .any(|p| e.has_tracks(p.id))
    });
    if !live {
        return counted(
            &state,
            "not_live",
            reply(
                StatusCode::NOT_FOUND,
                "nothing is being broadcast in this room yet; try again when it starts",
            ),
        );
    }
    let id = match state.sfu.control(|e| e.join_viewer(&room)) {
        Ok(id) => id,
        Err(e) => {
            return counted(
                &state,
                "refused",
                reply(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            );
        }
    };
    let (tx, mut rx) = mpsc::channel::<ServerMsg>(8);
    let kill = Arc::new(tokio::sync::Notify::new());
    state.sessions.lock().expect("sessions").insert(
        id,
        SessionHandle {
            tx,
            kill: kill.clone(),
            ends_with_peer: true,
        },
    );
    debug!(room, viewer = id, offer, "WHEP offer");
    state.sfu.control(|e| e.whep_offer(id, offer.to_owned()));
    let answer = tokio::time::timeout(ANSWER_TIMEOUT, async {
        while let Some(msg) = rx.recv().await {
            match msg {
                ServerMsg::SubscribeAnswer { sdp } => return Ok(sdp),
                ServerMsg::Error { code, message } => return Err((code, message)),
                _ => {}
            }
        }
        Err(("internal".into(), "the session closed".into()))
    })
    .await;
    let failed = |state: &AppState| {
        state.sessions.lock().expect("sessions").remove(&id);
        state.sfu.control(|e| e.leave(id));
    };
    let answer = match answer {
        Ok(Ok(sdp)) => sdp,
        Ok(Err((code, message))) => {
            failed(&state);
            let (status, result) = if code == "no_codec" {
                (StatusCode::NOT_ACCEPTABLE, "no_codec")
            } else {
                (StatusCode::BAD_REQUEST, "bad_sdp")
            };
            return counted(
                &state,
                result,
                reply(status, format!("the offer was refused: {message}")),
            );
        }
        Err(_) => {
            failed(&state);
            return counted(
                &state,
                "timeout",
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the media server did not answer in time",
                ),
            );
        }
    };
    let resource = resource_id();
    state.viewers.lock().expect("viewers").insert(
        resource.clone(),
        Ingest {
            room: room.clone(),
            id,
        },
    );
    info!(room, viewer = id, "WHEP viewer started");
    {
        let (state, resource) = (state.clone(), resource.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = kill.notified() => break,
                    msg = rx.recv() => if msg.is_none() { break },
                }
            }
            end(&state, &resource, "connection lost");
        });
    }
    let mut res = (StatusCode::CREATED, answer).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("/whep/{room}/{resource}")) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{resource}\"")) {
        h.insert(header::ETAG, v);
    }
    counted(&state, "ok", res)
}

/// Ends a viewer session (idempotent).
fn end(state: &AppState, resource: &str, why: &str) -> bool {
    let Some(v) = state.viewers.lock().expect("viewers").remove(resource) else {
        return false;
    };
    if let Some(h) = state.sessions.lock().expect("sessions").remove(&v.id) {
        h.kill.notify_one();
    }
    state.sfu.control(|e| e.leave(v.id));
    debug!(room = v.room, viewer = v.id, why, "WHEP viewer ended");
    true
}

/// `DELETE /whep/{room}/{resource}`: the viewer stops watching.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path((room, resource)): Path<(String, String)>,
) -> Response {
    let known = state
        .viewers
        .lock()
        .expect("viewers")
        .get(&resource)
        .is_some_and(|v| v.room == room);
    if !known || !end(&state, &resource, "deleted") {
        return reply(StatusCode::NOT_FOUND, "no such WHEP session");
    }
    StatusCode::OK.into_response()
}

/// `PATCH /whep/{room}/{resource}`: trickled candidates are not needed
/// (kaigi is ICE-lite); ICE restarts are not supported.
pub async fn patch(
    State(state): State<Arc<AppState>>,
    Path((room, resource)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let known = state
        .viewers
        .lock()
        .expect("viewers")
        .get(&resource)
        .is_some_and(|v| v.room == room);
    if !known {
        return reply(StatusCode::NOT_FOUND, "no such WHEP session");
    }
    crate::whip::patch_reply(&headers, &body)
}
