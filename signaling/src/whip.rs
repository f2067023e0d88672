//! WHIP ingest (RFC 9725): an encoder (OBS, FFmpeg, a hardware encoder)
//! `POST`s its SDP offer to `/whip/{room}` and publishes into the room like a
//! participant that only sends (and never moderates). `DELETE` on the
//! returned resource ends it; so does its connection failing (ICE consent
//! lost for 30 s). The HTTP session itself is [`crate::sdp_http`]'s.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tracing::{debug, info};

use crate::auth::Role;
use crate::http::AppState;
use crate::protocol::ServerMsg;
use crate::sdp_http::{self, Refusal};

/// Name shown to the room for an ingest without a name in its token.
const DEFAULT_NAME: &str = "配信 / Broadcast";

/// Who may publish: a `publisher` (or `moderator`) token for this room, or
/// the room's stream key from the configuration. Gives the name the token
/// carries, or why the request is refused.
fn authorize(state: &AppState, room: &str, headers: &HeaderMap) -> Result<Option<String>, String> {
    let token = sdp_http::bearer(headers)?;
    if let Some(key) = state.config.auth.stream_keys.get(room)
        && crate::auth::constant_time_eq(key.as_bytes(), token.as_bytes())
    {
        return Ok(None);
    }
    match state.verify_token(token, room) {
        Ok(c) if matches!(c.role, Role::Publisher | Role::Moderator) => Ok(c.name),
        Ok(_) => Err("the token does not allow publishing".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Whether an answer accepts at least one m-section (a rejected one has port 0).
fn accepts_media(answer: &str) -> bool {
    answer
        .lines()
        .filter_map(|l| l.strip_prefix("m="))
        .any(|m| m.split_whitespace().nth(1).is_some_and(|port| port != "0"))
}

/// `POST /whip/{room}`, `DELETE` and `PATCH` on its sessions ([`sdp_http`]'s handlers).
pub struct Whip;

impl sdp_http::Endpoint for Whip {
    const KIND: &'static str = "whip";
    fn sessions(state: &AppState) -> &sdp_http::Sessions {
        &state.ingests
    }
    fn counter(state: &AppState) -> &prometheus::IntCounterVec {
        &state.metrics.whip_requests
    }
    fn offer<'a>(
        state: &'a Arc<AppState>,
        room: &'a str,
        headers: &'a HeaderMap,
        body: &'a [u8],
        _ip: std::net::IpAddr,
        _origin: Option<&'a str>,
    ) -> impl std::future::Future<Output = Result<Response, Refusal>> + Send + 'a {
        ingest(state, room, headers, body)
    }
}

async fn ingest(
    state: &Arc<AppState>,
    room: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Refusal> {
    let offer = sdp_http::check_offer(state, room, headers, body)?;
    let name = authorize(state, room, headers)
        .map_err(|why| Refusal::new(StatusCode::UNAUTHORIZED, "unauthorized", why))?
        .unwrap_or_else(|| DEFAULT_NAME.to_owned());
    sdp_http::check_tracks(state, "whip", offer)
        .map_err(|why| Refusal::new(StatusCode::UNPROCESSABLE_ENTITY, "too_many_tracks", why))?;
    let sources = state
        .ingests
        .lock()
        .expect("ingests")
        .values()
        .filter(|i| i.room == room)
        .count();
    let allowed = state.config.whip.sources_allowed(room);
    if sources >= allowed {
        return Err(Refusal::new(
            StatusCode::CONFLICT,
            "busy",
            format!(
                "this room already has {sources} broadcast source(s), the most it allows \
                 (whip.max_sources / whip.room_sources); DELETE one first"
            ),
        ));
    }
    let joined = state
        .sfu
        .control(|e| e.join_source(room, &name))
        .map_err(|e| Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "refused", e.to_string()))?;
    let id = joined.id;
    let mut pending = sdp_http::register(state, id);
    debug!(room, participant = id, offer, "WHIP offer");
    // Not `ready`: an ingest is subscribed to nothing.
    state.sfu.control(|e| e.publish_offer(id, offer.to_owned()));
    let answer = pending
        .answer(state, |msg| match msg {
            ServerMsg::PublishAnswer { sdp } => Some(sdp),
            _ => None,
        })
        .await?;
    if !accepts_media(&answer) {
        pending.abandon(state);
        return Err(Refusal::new(
            StatusCode::NOT_ACCEPTABLE,
            "no_codec",
            "none of the offered codecs can be received: send H.264 (packetization-mode 1), VP8 or VP9 video and Opus audio",
        ));
    }
    debug!(room, participant = id, answer, "WHIP answer");
    info!(room, participant = id, "WHIP ingest started");
    Ok(pending.start(
        state,
        "whip",
        room,
        answer,
        <Whip as sdp_http::Endpoint>::sessions,
    ))
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
        assert!(crate::auth::constant_time_eq(b"abc", b"abc"));
        assert!(!crate::auth::constant_time_eq(b"abc", b"abd"));
        assert!(!crate::auth::constant_time_eq(b"abc", b"abcd"));
    }
}
