//! The broadcast viewer page, `/watch/{room}` (web-client/watch.html), and
//! the status it polls, `/watch/{room}/status`: whether anything is being
//! broadcast, so that the page can say "not started yet" or "ended" and
//! start by itself when the broadcast does. The media itself is WHEP
//! ([`crate::whep`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::http::AppState;

/// `GET /watch/{room}/status`: `{"live": bool, "access": rule}`, never
/// cached. In a token room it needs the same bearer as WHEP.
pub async fn status(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = sfu::room::validate_name(&room) {
        return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
    }
    if let Err(r) = crate::whep::authorize(&state, &room, &headers, None) {
        return r.respond(&state.metrics.whep_requests);
    }
    // At an edge, a broadcast homed elsewhere is live as its origin says (until
    // it is relayed here).
    let origin = match crate::http::viewer_route(&state, &room, &uri, peer.ip(), "page").await {
        crate::http::ViewerRoute::Relay(origin) => Some(origin),
        _ => None,
    };
    let live = match &origin {
        Some(o) => crate::relay::Relays::live(&state, &room, o).await,
        None => state.sfu.control(|e| e.broadcast_source(&room)).is_some(),
    };
    // The page asks for a password before it tries to watch a password room.
    let access = state.config.room_access(&room).0.as_str();
    let mut body = serde_json::json!({ "live": live, "access": access });
    // Cluster mode: where the page goes on watching if this node stops answering.
    if let Some(c) = &state.cluster {
        body["nodes"] = c.fallbacks_via(origin.as_deref()).into();
    }
    let mut res = Json(body).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
