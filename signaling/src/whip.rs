//! WHIP ingest (RFC 9725): an encoder (OBS, FFmpeg, a hardware encoder)
//! `POST`s its SDP offer to `/whip/{room}` and publishes into the room like a
//! participant that only sends. `DELETE` on the returned resource ends it.
//!
//! The session has no signaling channel of its own: it lives as long as its
//! resource exists and its connection is up (a failed connection, ICE consent
//! lost for 30 s, ends it as a `DELETE` would).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use sfu::ParticipantId;

use crate::auth::Role;
use crate::http::{AppState, SessionHandle};
use crate::protocol::ServerMsg;

/// Largest offer accepted (a real one is a few KiB).
pub const MAX_OFFER_BYTES: usize = 64 * 1024;
/// How long the media server may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Name shown to the room for an ingest without a name in its token.
const DEFAULT_NAME: &str = "配信 / Broadcast";

/// One ingest session.
#[derive(Debug, Clone)]
pub struct Ingest {
    /// Its room.
    pub room: String,
    /// Its participant in the room.
    pub id: ParticipantId,
}

/// Ingest sessions by resource id (the last path segment of `Location`).
pub type Ingests = std::sync::Mutex<std::collections::HashMap<String, Ingest>>;

pub(crate) fn reply(status: StatusCode, reason: impl Into<String>) -> Response {
    let mut body = reason.into();
    body.push('\n');
    (status, body).into_response()
}

/// Who may publish: a `publisher` (or `moderator`) token for this room, or
/// the room's stream key from the configuration. Gives the name the token
/// carries, or why the request is refused.
fn authorize(state: &AppState, room: &str, headers: &HeaderMap) -> Result<Option<String>, String> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err("a bearer token is required".into());
    };
    let Some(token) = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return Err("the Authorization header is not a bearer token".into());
    };
    if let Some(key) = state.config.auth.stream_keys.get(room)
        && constant_time_eq(key.as_bytes(), token.as_bytes())
    {
        return Ok(None);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    match crate::auth::verify(&state.token_secret, token, room, now) {
        Ok(c) if matches!(c.role, Role::Publisher | Role::Moderator) => Ok(c.name),
        Ok(_) => Err("the token does not allow publishing".into()),
        Err(e) => Err(e.to_string()),
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn resource_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Counts a request's outcome and answers it.
fn counted(state: &AppState, result: &'static str, res: Response) -> Response {
    state
        .metrics
        .whip_requests
        .with_label_values(&[result])
        .inc();
    res
}

/// `POST /whip/{room}`: the encoder's offer in, kaigi's answer out.
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
    let name = match authorize(&state, &room, &headers) {
        Ok(name) => name.unwrap_or_else(|| DEFAULT_NAME.to_owned()),
        Err(why) => {
            let mut res = reply(StatusCode::UNAUTHORIZED, why);
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return counted(&state, "unauthorized", res);
        }
    };
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
    let Ok(offer) = std::str::from_utf8(&body) else {
        return counted(
            &state,
            "bad_sdp",
            reply(StatusCode::BAD_REQUEST, "the offer is not UTF-8 text"),
        );
    };
    if !offer.trim_start().starts_with("v=0") {
        return counted(
            &state,
            "bad_sdp",
            reply(
                StatusCode::BAD_REQUEST,
                "the body is not an SDP offer (no v=0)",
            ),
        );
    }
    if state
        .ingests
        .lock()
        .expect("ingests")
        .values()
        .any(|i| i.room == room)
    {
        return counted(
            &state,
            "busy",
            reply(
                StatusCode::CONFLICT,
                "this room already has a broadcast source; DELETE it first",
            ),
        );
    }

    let joined = match state.sfu.control(|e| e.join_source(&room, &name)) {
        Ok(j) => j,
        Err(e) => {
            return counted(
                &state,
                "refused",
                reply(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            );
        }
    };
    let id = joined.id;
    // Notices for the ingest arrive here; the answer first.
    let (tx, mut rx) = mpsc::channel::<ServerMsg>(64);
    let kill = Arc::new(tokio::sync::Notify::new());
    state.sessions.lock().expect("sessions").insert(
        id,
        SessionHandle {
            tx,
            kill: kill.clone(),
            ends_with_peer: true,
        },
    );
    debug!(room, participant = id, offer, "WHIP offer");
    // Not `ready`: an ingest is subscribed to nothing.
    state.sfu.control(|e| e.publish_offer(id, offer.to_owned()));
    let answer = tokio::time::timeout(ANSWER_TIMEOUT, async {
        while let Some(msg) = rx.recv().await {
            match msg {
                ServerMsg::PublishAnswer { sdp } => return Ok(sdp),
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
            warn!(room, code, message, "WHIP offer refused");
            return counted(
                &state,
                "bad_sdp",
                reply(
                    StatusCode::BAD_REQUEST,
                    format!("the offer was refused: {message}"),
                ),
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
    if !accepts_media(&answer) {
        failed(&state);
        return counted(
            &state,
            "no_codec",
            reply(
                StatusCode::NOT_ACCEPTABLE,
                "none of the offered codecs can be received: send H.264 (packetization-mode 1), VP8 or VP9 video and Opus audio",
            ),
        );
    }
    debug!(room, participant = id, answer, "WHIP answer");
    let resource = resource_id();
    state.ingests.lock().expect("ingests").insert(
        resource.clone(),
        Ingest {
            room: room.clone(),
            id,
        },
    );
    info!(room, participant = id, "WHIP ingest started");
    // The session ends when its connection fails or its resource is deleted.
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
    let location = format!("/whip/{room}/{resource}");
    let mut res = (StatusCode::CREATED, answer).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{resource}\"")) {
        h.insert(header::ETAG, v);
    }
    counted(&state, "ok", res)
}

/// Whether an answer accepts at least one m-section (a rejected one has port 0).
pub(crate) fn accepts_media(answer: &str) -> bool {
    answer
        .lines()
        .filter_map(|l| l.strip_prefix("m="))
        .any(|m| m.split_whitespace().nth(1).is_some_and(|port| port != "0"))
}

/// Ends an ingest (idempotent): its participant leaves the room.
fn end(state: &AppState, resource: &str, why: &str) -> bool {
    let Some(ingest) = state.ingests.lock().expect("ingests").remove(resource) else {
        return false;
    };
    // Stops the session's task (when DELETE, not the connection, ends it).
    if let Some(h) = state.sessions.lock().expect("sessions").remove(&ingest.id) {
        h.kill.notify_one();
    }
    state.sfu.control(|e| e.leave(ingest.id));
    info!(
        room = ingest.room,
        participant = ingest.id,
        why,
        "WHIP ingest ended"
    );
    true
}

/// `DELETE /whip/{room}/{resource}`: the encoder stops.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path((room, resource)): Path<(String, String)>,
) -> Response {
    let known = state
        .ingests
        .lock()
        .expect("ingests")
        .get(&resource)
        .is_some_and(|i| i.room == room);
    if !known || !end(&state, &resource, "deleted") {
        return reply(StatusCode::NOT_FOUND, "no such WHIP session");
    }
    StatusCode::OK.into_response()
}

/// `PATCH /whip/{room}/{resource}`: trickled candidates. kaigi is ICE-lite
/// and learns the encoder's addresses from its checks, so they are accepted
/// and not needed; an ICE restart is not supported.
pub async fn patch(
    State(state): State<Arc<AppState>>,
    Path((room, resource)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let known = state
        .ingests
        .lock()
        .expect("ingests")
        .get(&resource)
        .is_some_and(|i| i.room == room);
    if !known {
        return reply(StatusCode::NOT_FOUND, "no such WHIP session");
    }
    patch_reply(&headers, &body)
}

/// The answer to a PATCH on a known session: trickle accepted (not
/// needed: kaigi is ICE-lite), an ICE restart refused.
pub(crate) fn patch_reply(headers: &HeaderMap, body: &[u8]) -> Response {
    let frag = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/trickle-ice-sdpfrag")
        });
    if !frag {
        return reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "PATCH takes application/trickle-ice-sdpfrag",
        );
    }
    // A fragment with new credentials asks for an ICE restart.
    let restart = String::from_utf8_lossy(body)
        .lines()
        .any(|l| l.starts_with("a=ice-ufrag:") || l.starts_with("a=ice-pwd:"));
    if restart {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "ICE restarts are not supported: DELETE the session and POST a new offer",
        );
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `OPTIONS /whip/{room}`: what the endpoint takes.
pub async fn options() -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut()
        .insert("accept-post", HeaderValue::from_static("application/sdp"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_answers_are_told_apart() {
        assert!(accepts_media(
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nm=video 0 UDP/TLS/RTP/SAVPF 96\r\n"
        ));
        assert!(!accepts_media(
            "v=0\r\nm=audio 0 UDP/TLS/RTP/SAVPF 0\r\nm=video 0 UDP/TLS/RTP/SAVPF 0\r\n"
        ));
        assert!(!accepts_media("v=0\r\n"));
    }

    #[test]
    fn stream_keys_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn resource_ids_are_unguessable_hex() {
        let (a, b) = (resource_id(), resource_id());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
