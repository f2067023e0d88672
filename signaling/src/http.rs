//! The HTTP side: router, pages and static files (embedded, or from a
//! folder in development), health and metrics endpoints, security headers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tokio::sync::mpsc;

use sfu::ParticipantId;
use sfu::runtime::SfuHandle;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::protocol::ServerMsg;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// A joined participant's outgoing queue, and the way to end its session.
#[derive(Clone)]
pub struct SessionHandle {
    /// Messages to the client.
    pub tx: mpsc::Sender<ServerMsg>,
    /// Woken when the client cannot keep up: the session closes.
    pub kill: Arc<tokio::sync::Notify>,
    /// A session without a signaling channel of its own (WHIP): a failed
    /// connection ends it.
    pub ends_with_peer: bool,
}

/// Sessions by participant. Never held while calling into the engine: the
/// engine's notices take this lock.
pub type Sessions = Arc<Mutex<HashMap<ParticipantId, SessionHandle>>>;

/// Delivers a notice to its participant's session. A client whose queue is
/// full has stopped reading: its session is ended rather than left with a
/// gap in its negotiation.
pub fn deliver(sessions: &Sessions, dropped: &prometheus::IntCounter, n: sfu::Notice) {
    let handle = sessions.lock().expect("sessions").get(&n.to).cloned();
    match handle {
        Some(h) => {
            if matches!(n.kind, sfu::NoticeKind::PeerFailed(_)) && h.ends_with_peer {
                h.kill.notify_one();
                return;
            }
            let Some(msg) = crate::ws::notice_to_msg(n.kind) else {
                return;
            };
            if h.tx.try_send(msg).is_err() {
                dropped.inc();
                h.kill.notify_one();
            }
        }
        None => dropped.inc(),
    }
}

/// Shared state of the HTTP/WebSocket side.
pub struct AppState {
    /// The configuration in force.
    pub config: Config,
    /// The media server.
    pub sfu: SfuHandle,
    /// Metrics.
    pub metrics: Metrics,
    /// Each joined participant's signaling session.
    pub sessions: Sessions,
    /// HMAC secret of join tokens (and of session cookies and download links).
    pub token_secret: Vec<u8>,
    /// Public keys of token issuers that sign with a key pair.
    pub token_keys: Vec<crate::auth::PublicKey>,
    /// Set on SIGTERM: new joins are refused, `/readyz` fails.
    pub draining: AtomicBool,
    /// Chat, room settings and waiting rooms.
    pub meetings: crate::meeting::Meetings,
    /// Resume tokens of participants in rooms: token → (participant, role).
    pub resumes: Mutex<HashMap<String, (ParticipantId, crate::auth::Role)>>,
    /// WHIP ingest sessions.
    pub ingests: crate::sdp_http::Sessions,
    /// WHEP viewer sessions.
    pub viewers: crate::sdp_http::Sessions,
    /// Recordings being written.
    pub recordings: crate::recording::Recordings,
    /// When the server started (health, uptime).
    pub started: std::time::Instant,
    /// New WebSockets per client address.
    pub ws_rate: crate::ratelimit::RateLimiter,
    /// WHIP and WHEP offers per client address.
    pub offer_rate: crate::ratelimit::RateLimiter,
    /// Wrong room passwords and failed sign-ins per client address.
    pub login_failures: crate::ratelimit::RateLimiter,
    /// The cluster (Redis), when configured.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Broadcasts relayed here from their origin node.
    pub relays: crate::relay::Relays,
}

impl AppState {
    /// Checks a join token for `room`: HS256 under the secret, or EdDSA/ES256
    /// under one of the configured public keys.
    pub fn verify_token(
        &self,
        token: &str,
        room: &str,
    ) -> Result<crate::auth::Claims, crate::auth::TokenError> {
        crate::auth::verify_with(
            &self.token_secret,
            &self.token_keys,
            token,
            room,
            crate::access::unix_now(),
        )
    }

    /// Whether the server is shutting down.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// The content security policy: nothing from anywhere but this server.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Builds the router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(landing))
        .route("/r/{room}", get(meeting))
        .route("/watch/{room}", get(watch_page))
        .route("/watch/{room}/status", get(crate::watch::status))
        .route("/assets/{file}", get(asset))
        .route("/favicon.ico", get(favicon))
        .route("/ws", get(crate::ws::handler))
        .route(
            "/whip/{room}",
            post(crate::sdp_http::post::<crate::whip::Whip>)
                .options(crate::sdp_http::options)
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::sdp_http::MAX_OFFER_BYTES,
                )),
        )
        .route(
            "/whip/{room}/{resource}",
            delete(crate::sdp_http::on_delete::<crate::whip::Whip>)
                .patch(crate::sdp_http::on_patch::<crate::whip::Whip>),
        )
        .route(
            "/whep/{room}",
            post(crate::sdp_http::post::<crate::whep::Whep>)
                .options(crate::sdp_http::options)
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::sdp_http::MAX_OFFER_BYTES,
                )),
        )
        .route(
            "/whep/{room}/{resource}",
            delete(crate::sdp_http::on_delete::<crate::whep::Whep>)
                .patch(crate::sdp_http::on_patch::<crate::whep::Whep>),
        )
        .route(
            "/api/rooms/{room}/recording",
            post(crate::recording::start)
                .delete(crate::recording::stop)
                .get(crate::recording::status),
        )
        .route("/api/recordings", get(crate::recording::list))
        .route("/api/login", post(crate::directory::login))
        .route("/api/logout", post(crate::directory::logout))
        .route("/api/me", get(crate::directory::whoami))
        .route(
            "/api/me/publisher-token",
            post(crate::directory::publisher_token),
        )
        .route("/admin", get(crate::admin::page))
        .route("/api/health", get(crate::admin::health))
        .route("/api/rooms", get(crate::admin::rooms))
        .route(
            "/api/rooms/{room}",
            get(crate::admin::room).delete(crate::admin::end_room),
        )
        .route(
            "/api/rooms/{room}/participants/{id}",
            delete(crate::admin::kick),
        )
        .route("/api/recordings/{name}", get(crate::recording::download))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            security_headers,
        ))
        .with_state(state)
}

async fn security_headers(State(state): State<Arc<AppState>>, mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(self), microphone=(self), display-capture=(self)"),
    );
    if state.config.server.tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    res
}

fn load(state: &AppState, name: &str) -> Option<Vec<u8>> {
    match &state.config.server.web_dir {
        Some(dir) => std::fs::read(PathBuf::from(dir).join(name)).ok(),
        None => embedded::ASSETS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| b.to_vec()),
    }
}

/// One of the web client's files, by name.
pub fn serve(state: &AppState, name: &str) -> Response {
    // Flat folder: a name with a path separator or a leading dot is never a file of ours.
    if name.contains(['/', '\\']) || name.starts_with('.') {
        return not_found_response();
    }
    match load(state, name) {
        Some(bytes) => {
            let mime = mime_guess::from_path(name).first_or_octet_stream();
            let mut res = Response::new(Body::from(bytes));
            let ct = if mime.type_() == "text" || mime.subtype() == "javascript" {
                format!("{mime}; charset=utf-8")
            } else {
                mime.to_string()
            };
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(&ct).expect("mime"),
            );
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            res
        }
        None => not_found_response(),
    }
}

async fn landing(State(state): State<Arc<AppState>>) -> Response {
    serve(&state, "index.html")
}

/// A page of a room (the meeting, the viewer page): refused for a name no room can have.
fn room_page(state: &AppState, room: &str, page: &str) -> Response {
    if sfu::room::validate_name(room).is_err() {
        return (
            StatusCode::BAD_REQUEST,
            "invalid room name: use 1-64 letters A-Z a-z, digits, '-', '_' or '.'\n",
        )
            .into_response();
    }
    serve(state, page)
}

async fn meeting(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    uri: axum::http::Uri,
) -> Response {
    homed_page(&state, &room, &uri, "room.html").await
}

async fn watch_page(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    uri: axum::http::Uri,
) -> Response {
    match viewer_route(&state, &room, &uri, peer.ip(), "page").await {
        ViewerRoute::Redirect(r) => r,
        ViewerRoute::Relay(_) | ViewerRoute::Serve => room_page(&state, &room, "watch.html"),
    }
}

/// How a viewer's request (the viewer page, its status, a WHEP offer) is served.
pub enum ViewerRoute {
    /// Here: this node is the room's home, or nobody is.
    Serve,
    /// Here, relayed from the room's home at this base URL.
    Relay(String),
    /// At a node of the viewer's site (a 307).
    Redirect(Response),
}

/// Where a viewer is served in cluster mode: at a node of their site
/// (`?site=`, else `cluster.subnets` by their address, else this node's
/// site), relaying from the room's home when that is another node. A relay
/// from another node (`?relay=`) and a page that fled a dead node
/// (`?failover=1`) are served here.
pub async fn viewer_route(
    state: &AppState,
    room: &str,
    uri: &axum::http::Uri,
    ip: std::net::IpAddr,
    kind: &str,
) -> ViewerRoute {
    let Some(cluster) = state.cluster.as_ref() else {
        return ViewerRoute::Serve;
    };
    if sfu::room::validate_name(room).is_err() {
        return ViewerRoute::Serve;
    }
    let query = uri.query().unwrap_or("");
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
    };
    if param("relay").is_some() {
        return ViewerRoute::Serve;
    }
    if param("failover") != Some("1") {
        let site = param("site")
            .filter(|s| sfu::room::validate_name(s).is_ok())
            .or_else(|| state.config.cluster.site_of(ip))
            .unwrap_or(cluster.site());
        if site != cluster.site()
            && let Some(url) = cluster.node_at(site, room)
            && let Some(res) = redirect_to(state, &url, uri, kind)
        {
            return ViewerRoute::Redirect(res);
        }
    }
    match cluster.home(room).await {
        crate::cluster::Route::Here => ViewerRoute::Serve,
        crate::cluster::Route::There { url, .. } => ViewerRoute::Relay(url),
    }
}

/// A room's page, from the room's home node (a 307 there in cluster mode).
async fn homed_page(state: &AppState, room: &str, uri: &axum::http::Uri, file: &str) -> Response {
    match elsewhere(state, room, uri, "page").await {
        Some(r) => r,
        None => room_page(state, room, file),
    }
}

/// A 307 to the same path on the room's home node, when that is another
/// node (cluster mode); `None`: serve it here.
pub async fn elsewhere(
    state: &AppState,
    room: &str,
    uri: &axum::http::Uri,
    kind: &str,
) -> Option<Response> {
    let cluster = state.cluster.as_ref()?;
    sfu::room::validate_name(room).ok()?;
    // A page that fled a dead node loads here; its join waits for the takeover.
    if uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "failover=1"))
    {
        return None;
    }
    let crate::cluster::Route::There { url, .. } = cluster.route(room).await else {
        return None;
    };
    redirect_to(state, &url, uri, kind)
}

/// A 307 to the same path and query on another node at `base`, counted by `kind`.
fn redirect_to(
    state: &AppState,
    base: &str,
    uri: &axum::http::Uri,
    kind: &str,
) -> Option<Response> {
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let location = HeaderValue::from_str(&crate::cluster::redirect_url(base, path)).ok()?;
    state
        .metrics
        .cluster_redirects
        .with_label_values(&[kind])
        .inc();
    let mut res = StatusCode::TEMPORARY_REDIRECT.into_response();
    res.headers_mut().insert(header::LOCATION, location);
    Some(res)
}

async fn asset(State(state): State<Arc<AppState>>, Path(file): Path<String>) -> Response {
    serve(&state, &file)
}

async fn favicon(State(state): State<Arc<AppState>>) -> Response {
    serve(&state, "favicon.svg")
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else {
        "ready\n".into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let body = state.metrics.render(&state.sfu);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

fn not_found_response() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

async fn not_found() -> Response {
    not_found_response()
}
