//! What WHIP and WHEP share: an SDP offer `POST`ed over HTTP is answered
//! `201 Created` with a resource that `DELETE` ends. A session has no
//! signaling channel of its own: it lives while its resource exists and its
//! connection is up (a failed connection ends it as `DELETE` would).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus::IntCounterVec;
use tokio::sync::mpsc;

use sfu::ParticipantId;

use crate::http::{AppState, SessionHandle};
use crate::protocol::ServerMsg;

/// `429 Too Many Requests` with `Retry-After`.
pub fn too_many(wait: Duration) -> Response {
    let secs = wait.as_secs().max(1);
    let mut res = reply(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many requests from this address; try again in {secs} s"),
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}

/// Runs a WHIP or WHEP request from `peer`: refuses it past the
/// per-address rate, counts its result in `counter` and times the answers
/// it gives (`kaigi_answer_seconds{kind}`).
/// What differs between WHIP and WHEP; the HTTP handlers are shared.
pub trait Endpoint: Send + Sync + 'static {
    /// `whip` or `whep`: a metric label.
    const KIND: &'static str;
    /// Its sessions.
    fn sessions(state: &AppState) -> &Sessions;
    /// Its requests counter, by result.
    fn counter(state: &AppState) -> &IntCounterVec;
    /// Handles one offer: the 201 with the answer, or why not. `origin`: the
    /// node a viewer's broadcast is relayed from (cluster mode, WHEP).
    fn offer<'a>(
        state: &'a Arc<AppState>,
        room: &'a str,
        headers: &'a HeaderMap,
        body: &'a [u8],
        ip: std::net::IpAddr,
        origin: Option<&'a str>,
    ) -> impl std::future::Future<Output = Result<Response, Refusal>> + Send + 'a;
}

/// `POST /{whip,whep}/{room}`: the offer in, kaigi's answer out; rate
/// limited per address before anything else (a cluster lookup included),
/// timed into `kaigi_answer_seconds{kind}`, counted by result.
pub async fn post<E: Endpoint>(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let counter = E::counter(&state);
    let t0 = std::time::Instant::now();
    if let Err(wait) = state.offer_rate.check(peer.ip(), t0) {
        counter.with_label_values(&["rate_limited"]).inc();
        state
            .metrics
            .rate_limited
            .with_label_values(&[E::KIND])
            .inc();
        return too_many(wait);
    }
    // A 307 keeps the method and body: the encoder or player posts again there.
    let mut origin = None;
    if E::KIND == "whep" {
        use crate::http::ViewerRoute;
        match crate::http::viewer_route(&state, &room, &uri, peer.ip(), E::KIND).await {
            ViewerRoute::Redirect(r) => return r,
            ViewerRoute::Relay(o) => origin = Some(o),
            ViewerRoute::Serve => {}
        }
    } else if let Some(r) = crate::http::elsewhere(&state, &room, &uri, E::KIND).await {
        return r;
    }
    match E::offer(&state, &room, &headers, &body, peer.ip(), origin.as_deref()).await {
        Ok(res) => {
            counter.with_label_values(&["ok"]).inc();
            state
                .metrics
                .answer_seconds
                .with_label_values(&[E::KIND])
                .observe(t0.elapsed().as_secs_f64());
            res
        }
        Err(refusal) => refusal.respond(counter),
    }
}

/// `DELETE /{whip,whep}/{room}/{resource}`: the session ends.
pub async fn on_delete<E: Endpoint>(
    State(state): State<Arc<AppState>>,
    Path((room, resource)): Path<(String, String)>,
) -> Response {
    delete(&state, E::sessions(&state), &room, &resource)
}

/// `PATCH /{whip,whep}/{room}/{resource}`: trickle (not needed), ICE restart (refused).
pub async fn on_patch<E: Endpoint>(
    State(state): State<Arc<AppState>>,
    Path((room, resource)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    patch(E::sessions(&state), &room, &resource, &headers, &body)
}

/// Largest offer accepted (a real one is a few KiB).
pub const MAX_OFFER_BYTES: usize = 64 * 1024;
/// How long the media server may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// One session: its room and its participant (or viewer) in the media server.
#[derive(Debug, Clone)]
pub struct Session {
    /// Its room.
    pub room: String,
    /// Its participant or viewer id.
    pub id: ParticipantId,
}

/// Sessions by resource id (the last path segment of `Location`).
pub type Sessions = Mutex<HashMap<String, Session>>;

/// A request refused: the status, the result label it is counted under, and
/// the reason the client is told.
pub struct Refusal {
    status: StatusCode,
    result: &'static str,
    reason: String,
}

impl Refusal {
    /// A refusal with `status`, counted as `result`.
    pub fn new(status: StatusCode, result: &'static str, reason: impl Into<String>) -> Self {
        Refusal {
            status,
            result,
            reason: reason.into(),
        }
    }

    /// What the client is told.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The response (with a Bearer challenge on 401), counted in `counter`.
    pub fn respond(self, counter: &IntCounterVec) -> Response {
        counter.with_label_values(&[self.result]).inc();
        let mut res = reply(self.status, self.reason);
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

/// The audio and video sections of an offer that carry media (not rejected
/// with port 0, not `a=inactive`): what `limits.max_tracks_per_participant`
/// counts. A simulcast camera is one section.
pub fn media_sections(sdp: &str) -> usize {
    let mut n = 0;
    let mut current = false;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            n += usize::from(current);
            let mut f = m.split_whitespace();
            current = matches!(f.next(), Some("audio" | "video")) && f.next() != Some("0");
        } else if line == "a=inactive" {
            current = false;
        }
    }
    n + usize::from(current)
}

/// Refuses a publish offer with more media sections than the limit allows.
pub fn check_tracks(state: &AppState, endpoint: &str, sdp: &str) -> Result<(), String> {
    let max = state.config.limits.max_tracks_per_participant;
    let n = media_sections(sdp);
    if n > max {
        state
            .metrics
            .too_many_tracks
            .with_label_values(&[endpoint])
            .inc();
        return Err(format!(
            "{n} media tracks offered; this server allows {max} per participant \
             (limits.max_tracks_per_participant)"
        ));
    }
    Ok(())
}

/// A plain-text answer with a reason.
pub fn reply(status: StatusCode, reason: impl Into<String>) -> Response {
    let mut body = reason.into();
    body.push('\n');
    (status, body).into_response()
}

/// What every offer needs before anyone joins: the server takes joins, the
/// room name is valid, the body is SDP. Gives the offer text.
pub fn check_offer<'a>(
    state: &AppState,
    room: &str,
    headers: &HeaderMap,
    body: &'a [u8],
) -> Result<&'a str, Refusal> {
    if state.draining() {
        return Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "the server is shutting down",
        ));
    }
    if sfu::room::validate_name(room).is_err() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "bad_room",
            "invalid room name: use 1-64 letters A-Z a-z, digits, '-', '_' or '.'",
        ));
    }
    let sdp_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/sdp"));
    if !sdp_type {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_content_type",
            "the offer must be sent as Content-Type: application/sdp",
        ));
    }
    std::str::from_utf8(body)
        .ok()
        .filter(|o| o.trim_start().starts_with("v=0"))
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "bad_sdp",
                "the body is not an SDP offer (no v=0)",
            )
        })
}

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &HeaderMap) -> Result<&str, String> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or("a bearer token is required")?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| "the Authorization header is not a bearer token".into())
}

/// A session being set up: its notices arrive on `rx`.
pub struct Pending {
    id: ParticipantId,
    rx: mpsc::Receiver<ServerMsg>,
    kill: Arc<tokio::sync::Notify>,
}

/// Registers participant `id`'s notices (it has joined) before its offer
/// goes to the media server, so that the answer cannot be missed.
pub fn register(state: &AppState, id: ParticipantId) -> Pending {
    let (tx, rx) = mpsc::channel::<ServerMsg>(64);
    let kill = Arc::new(tokio::sync::Notify::new());
    state.sessions.lock().expect("sessions").insert(
        id,
        SessionHandle {
            tx,
            kill: kill.clone(),
            ends_with_peer: true,
        },
    );
    Pending { id, rx, kill }
}

impl Pending {
    /// Waits for the answer `pick` recognises; on an error or a timeout the
    /// participant leaves and the refusal says why (`no_codec` errors are 406).
    pub async fn answer(
        &mut self,
        state: &AppState,
        pick: impl Fn(ServerMsg) -> Option<String>,
    ) -> Result<String, Refusal> {
        let waited = tokio::time::timeout(ANSWER_TIMEOUT, async {
            while let Some(msg) = self.rx.recv().await {
                if let ServerMsg::Error { code, message } = msg {
                    return Err((code, message));
                }
                if let Some(sdp) = pick(msg) {
                    return Ok(sdp);
                }
            }
            Err(("internal".into(), "the session closed".into()))
        })
        .await;
        let refusal = match waited {
            Ok(Ok(sdp)) => return Ok(sdp),
            Ok(Err((code, message))) if code == "no_codec" => Refusal::new(
                StatusCode::NOT_ACCEPTABLE,
                "no_codec",
                format!("the offer was refused: {message}"),
            ),
            Ok(Err((_, message))) => Refusal::new(
                StatusCode::BAD_REQUEST,
                "bad_sdp",
                format!("the offer was refused: {message}"),
            ),
            Err(_) => Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "the media server did not answer in time",
            ),
        };
        self.abandon(state);
        Err(refusal)
    }

    /// The participant leaves without a session.
    pub fn abandon(&self, state: &AppState) {
        state.sessions.lock().expect("sessions").remove(&self.id);
        state.sfu.control(|e| e.leave(self.id));
    }

    /// The session exists from now on, under a new resource in `sessions`
    /// (`kind`: `whip` or `whep`): `201` with the answer and its `Location`.
    /// It ends when its connection fails or `end` is called.
    pub fn start(
        self,
        state: &Arc<AppState>,
        kind: &'static str,
        room: &str,
        answer: String,
        sessions: fn(&AppState) -> &Sessions,
    ) -> Response {
        let resource = resource_id();
        sessions(state).lock().expect("sessions").insert(
            resource.clone(),
            Session {
                room: room.to_owned(),
                id: self.id,
            },
        );
        let (state, task_resource, mut rx, kill) =
            (state.clone(), resource.clone(), self.rx, self.kill);
        tokio::spawn(async move {
            // Later notices (the room's news) are not this session's business.
            loop {
                tokio::select! {
                    _ = kill.notified() => break,
                    msg = rx.recv() => if msg.is_none() { break },
                }
            }
            end(&state, sessions(&state), &task_resource, "connection lost");
        });
        let mut res = (StatusCode::CREATED, answer).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/sdp"),
        );
        if let Ok(v) = HeaderValue::from_str(&format!("/{kind}/{room}/{resource}")) {
            h.insert(header::LOCATION, v);
        }
        if let Ok(v) = HeaderValue::from_str(&format!("\"{resource}\"")) {
            h.insert(header::ETAG, v);
        }
        res
    }
}

/// An unguessable resource id.
pub fn resource_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Ends a session (idempotent): its participant leaves the room.
pub fn end(state: &AppState, sessions: &Sessions, resource: &str, why: &str) -> bool {
    let Some(s) = sessions.lock().expect("sessions").remove(resource) else {
        return false;
    };
    // Stops the session's task (when DELETE, not the connection, ends it).
    if let Some(h) = state.sessions.lock().expect("sessions").remove(&s.id) {
        h.kill.notify_one();
    }
    state.sfu.control(|e| e.leave(s.id));
    tracing::info!(room = s.room, participant = s.id, why, "session ended");
    true
}

/// Whether `resource` is a session of `room`.
pub fn known(sessions: &Sessions, room: &str, resource: &str) -> bool {
    sessions
        .lock()
        .expect("sessions")
        .get(resource)
        .is_some_and(|s| s.room == room)
}

/// `DELETE` on a session.
pub fn delete(state: &AppState, sessions: &Sessions, room: &str, resource: &str) -> Response {
    if !known(sessions, room, resource) || !end(state, sessions, resource, "deleted") {
        return reply(StatusCode::NOT_FOUND, "no such session");
    }
    StatusCode::OK.into_response()
}

/// `PATCH` on a session: trickled candidates are accepted and not needed
/// (kaigi is ICE-lite and learns addresses from the checks); an ICE
/// restart is refused.
pub fn patch(
    sessions: &Sessions,
    room: &str,
    resource: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if !known(sessions, room, resource) {
        return reply(StatusCode::NOT_FOUND, "no such session");
    }
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

/// `OPTIONS` on an endpoint: what it takes.
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
    fn media_sections_count_what_carries_media() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendonly\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=simulcast:send q;h;f\r\n\
                   m=video 0 UDP/TLS/RTP/SAVPF 96\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=inactive\r\n\
                   m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
        assert_eq!(media_sections(sdp), 2);
        assert_eq!(media_sections(""), 0);
        assert_eq!(media_sections(&"m=audio 9 x\n".repeat(300)), 300);
    }

    #[test]
    fn resource_ids_are_unguessable_hex() {
        let (a, b) = (resource_id(), resource_id());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn bearer_tokens_are_read_or_refused_with_a_reason() {
        let mut h = HeaderMap::new();
        assert!(bearer(&h).unwrap_err().contains("required"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(bearer(&h).unwrap_err().contains("not a bearer"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  tok "),
        );
        assert_eq!(bearer(&h).unwrap(), "tok");
    }
}
