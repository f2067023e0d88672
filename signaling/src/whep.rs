//! WHEP playback: a viewer (the `/watch` page, any WHEP player) `POST`s
//! its receive-only SDP offer to `/whep/{room}` and gets the room's
//! broadcast: the first publisher's camera (or share) and microphone.
//! `DELETE` on the returned resource ends it. The HTTP session itself is
//! [`crate::sdp_http`]'s.
//!
//! Viewers are not participants: they get no room notices and nobody is
//! told about them, so that a thousand of them cost the room nothing. A
//! session is not renegotiated: it carries the tracks its answer named.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tracing::debug;

use crate::http::AppState;
use crate::protocol::ServerMsg;
use crate::sdp_http::{self, Refusal};

/// How long an offer at an edge waits for the broadcast's relay to start.
const RELAY_WAIT: std::time::Duration = std::time::Duration::from_secs(6);

/// How long an offer waits for a broadcast with sound only to get its picture.
const VIDEO_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

/// Whether a viewer may watch `room`: by the room's access rule, as for
/// joining a meeting. The bearer is a join token (any role) or, for a
/// password room, the password; a signed-in member of staff brings their
/// session cookie (the viewer page is same-origin). `ip: None` (the status
/// poll) checks only that a token room gets a token: whether a broadcast is
/// live is no secret, and a password is asked for once, when watching.
pub fn authorize(
    state: &AppState,
    room: &str,
    headers: &HeaderMap,
    ip: Option<std::net::IpAddr>,
) -> Result<(), Refusal> {
    use crate::access::{Knock, admit};
    use crate::config::Access;
    let bearer = sdp_http::bearer(headers).ok();
    let (access, _) = state.config.room_access(room);
    let token_ok = bearer.is_some_and(|t| state.verify_token(t, room).is_ok());
    let Some(ip) = ip else {
        return if access == Access::Token && !token_ok {
            Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this broadcast needs a token",
            ))
        } else {
            Ok(())
        };
    };
    if token_ok {
        return Ok(());
    }
    let staff = crate::directory::Staff::from_headers(state, headers);
    let knock = if access == Access::Password {
        Knock {
            password: bearer,
            ..Knock::default()
        }
    } else {
        Knock {
            token: bearer,
            staff: staff.as_ref(),
            ..Knock::default()
        }
    };
    admit(state, room, knock, ip).map(|_| ()).map_err(|r| {
        let status = if r.code == "rate_limited" {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            StatusCode::UNAUTHORIZED
        };
        Refusal::new(status, r.code, r.message)
    })
}

/// `POST /whep/{room}`, `DELETE` and `PATCH` on its sessions ([`sdp_http`]'s handlers).
pub struct Whep;

impl sdp_http::Endpoint for Whep {
    const KIND: &'static str = "whep";
    fn sessions(state: &AppState) -> &sdp_http::Sessions {
        &state.viewers
    }
    fn counter(state: &AppState) -> &prometheus::IntCounterVec {
        &state.metrics.whep_requests
    }
    fn offer<'a>(
        state: &'a Arc<AppState>,
        room: &'a str,
        headers: &'a HeaderMap,
        body: &'a [u8],
        ip: std::net::IpAddr,
        origin: Option<&'a str>,
    ) -> impl std::future::Future<Output = Result<Response, Refusal>> + Send + 'a {
        watch(state, room, headers, body, ip, origin)
    }
}

async fn watch(
    state: &Arc<AppState>,
    room: &str,
    headers: &HeaderMap,
    body: &[u8],
    ip: std::net::IpAddr,
    origin: Option<&str>,
) -> Result<Response, Refusal> {
    let offer = sdp_http::check_offer(state, room, headers, body)?;
    authorize(state, room, headers, Some(ip))?;
    // At an edge: the broadcast is relayed here from its origin, started by
    // the first viewer who may watch it.
    if let Some(origin) = origin {
        crate::relay::Relays::ensure(state, room, origin, RELAY_WAIT).await;
    }
    let live = state
        .sfu
        .control(|e| e.room_participants(room).iter().any(|p| e.has_tracks(p.id)));
    if !live {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "not_live",
            "nothing is being broadcast in this room yet; try again when it starts",
        ));
    }
    // A presenter's sound arrives a moment before their picture: an answer made in
    // between would carry no video for the whole session (it is never renegotiated).
    let started = tokio::time::Instant::now();
    while state
        .sfu
        .control(|e| e.broadcast_source(room))
        .is_some_and(|b| b.video.is_none())
        && started.elapsed() < VIDEO_WAIT
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let id = state
        .sfu
        .control(|e| e.join_viewer(room))
        .map_err(|e| Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "refused", e.to_string()))?;
    let mut pending = sdp_http::register(state, id);
    debug!(room, viewer = id, offer, "WHEP offer");
    state.sfu.control(|e| e.whep_offer(id, offer.to_owned()));
    let answer = pending
        .answer(state, |msg| match msg {
            ServerMsg::SubscribeAnswer { sdp } => Some(sdp),
            _ => None,
        })
        .await?;
    debug!(room, viewer = id, "WHEP viewer started");
    Ok(pending.start(
        state,
        "whep",
        room,
        answer,
        <Whep as sdp_http::Endpoint>::sessions,
    ))
}
