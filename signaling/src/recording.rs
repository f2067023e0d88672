//! Recordings of broadcasts: started and stopped over HTTP (or from the
//! start of every WHIP broadcast with `recording.auto`), written by the
//! media server's recorder (`sfu::record`) into `recording.dir`, listed and
//! downloaded through the admin API.
//!
//! - `POST /api/rooms/{room}/recording`: start (admin key, or a moderator or
//!   publisher token for the room, or the room's stream key)
//! - `DELETE /api/rooms/{room}/recording`: stop; answers once the file is complete
//! - `GET /api/rooms/{room}/recording`: the running recording, if any
//! - `GET /api/recordings`: every recording on disk (admin key), each with a
//!   download link valid for an hour
//! - `GET /api/recordings/{name}`: the file (admin key, or the link's signature)

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tracing::{info, warn};

use sfu::record::{RecordSpec, Recording};

use crate::auth::Role;
use crate::http::AppState;
use crate::sdp_http;

/// How long a download link works.
const LINK_LIFETIME: Duration = Duration::from_secs(3600);
/// `recording.auto` starts as soon as a broadcast has audio and video; one
/// with only one of them is recorded once it has been live this long (its
/// other track, if any, opens a moment after the first).
const AUTO_SETTLE: Duration = Duration::from_secs(1);

/// The recordings being written, by room.
#[derive(Default)]
pub struct Recordings {
    active: Mutex<HashMap<String, Active>>,
    next_id: AtomicU64,
}

impl Recordings {
    /// The recordings in progress, by room (a poisoned lock is still read:
    /// the map stays consistent).
    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, Active>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn not_recording() -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        "not_recording",
        "this room is not being recorded",
    )
}

struct Active {
    id: u64,
    name: String,
    started: u64,
    recording: Option<Recording>,
}

impl Active {
    fn done(&self) -> bool {
        self.recording
            .as_ref()
            .is_none_or(|r| r.status().done.load(Ordering::Acquire))
    }

    fn info(&self, room: &str, state: &AppState) -> RecordingInfo {
        let status = self.recording.as_ref().map(|r| r.status().clone());
        let load = |f: fn(&sfu::record::RecordStatus) -> u64| status.as_ref().map_or(0, |s| f(s));
        RecordingInfo {
            name: self.name.clone(),
            room: Some(room.to_owned()),
            state: if self.done() { "complete" } else { "recording" },
            bytes: load(|s| s.bytes.load(Ordering::Relaxed)),
            media_seconds: Some(load(|s| s.media_ms.load(Ordering::Relaxed)) as f64 / 1000.0),
            started: self.started,
            error: status.and_then(|s| s.error.lock().ok().and_then(|e| e.clone())),
            download: download_link(state, &self.name),
        }
    }
}

/// What the API says of a recording.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecordingInfo {
    /// The file name (also its id in the API).
    pub name: String,
    /// Its room, while it is being written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// `recording` or `complete`.
    pub state: &'static str,
    /// Its size.
    pub bytes: u64,
    /// Media written so far (running recordings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_seconds: Option<f64>,
    /// When it started (or the file was last written), Unix seconds.
    pub started: u64,
    /// Why it stopped early, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A link that downloads it without the admin key, for an hour.
    pub download: String,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The folder recordings go to.
pub fn dir(state: &AppState) -> PathBuf {
    state
        .config
        .recording
        .dir
        .clone()
        .unwrap_or_else(|| state.config.server.data_dir.join("recordings"))
}

/// A refusal: its status, a code for programs and a message for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// The status it is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        let mut res = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

pub fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        code,
        message: message.into(),
    }
}

/// Whether the request carries the admin key. `Err` is the response to give.
pub fn admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = state.config.admin.api_key.as_deref() else {
        return Err(error(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "the admin API is off: set admin.api_key (KAIGI_ADMIN__API_KEY)",
        ));
    };
    match sdp_http::bearer(headers) {
        Ok(t) if crate::auth::constant_time_eq(t.as_bytes(), key.as_bytes()) => Ok(()),
        Ok(_) => Err(unauthorized("wrong admin key")),
        Err(why) => Err(unauthorized(why)),
    }
}

fn unauthorized(why: impl Into<String>) -> ApiError {
    error(StatusCode::UNAUTHORIZED, "unauthorized", why)
}

/// Who may start and stop a room's recording: the admin key, a moderator or
/// publisher token for the room, or the room's stream key.
fn may_record(state: &AppState, room: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = sdp_http::bearer(headers).map_err(unauthorized)?;
    if let Some(key) = state.config.admin.api_key.as_deref()
        && crate::auth::constant_time_eq(token.as_bytes(), key.as_bytes())
    {
        return Ok(());
    }
    if let Some(key) = state.config.auth.stream_keys.get(room)
        && crate::auth::constant_time_eq(token.as_bytes(), key.as_bytes())
    {
        return Ok(());
    }
    match state.verify_token(token, room) {
        Ok(c) if matches!(c.role, Role::Moderator | Role::Publisher) => Ok(()),
        Ok(_) => Err(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only a moderator or publisher may record",
        )),
        Err(e) => Err(unauthorized(e.to_string())),
    }
}

fn valid_room(room: &str) -> Result<(), ApiError> {
    sfu::room::validate_name(room)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "bad_room", e.to_string()))
}

/// Whether `room` is being recorded now.
pub fn is_recording(state: &AppState, room: &str) -> bool {
    state
        .recordings
        .active()
        .get(room)
        .is_some_and(|a| !a.done())
}

/// `POST /api/rooms/{room}/recording`
pub async fn start(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = valid_room(&room).and_then(|()| may_record(&state, &room, &headers)) {
        return e.into_response();
    }
    match start_recording(&state, &room) {
        Ok(info) => (StatusCode::CREATED, Json(info)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Starts recording what `room` broadcasts.
pub fn start_recording(state: &AppState, room: &str) -> Result<RecordingInfo, ApiError> {
    let recordings = &state.recordings;
    let mut active = recordings.active();
    if active.get(room).is_some_and(|a| !a.done()) {
        return Err(error(
            StatusCode::CONFLICT,
            "already_recording",
            "this room is being recorded already",
        ));
    }
    let Some(source) = state.sfu.control(|e| e.broadcast_source(room)) else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "not_live",
            "nothing is being broadcast in this room",
        ));
    };
    let spec = RecordSpec::for_codecs(
        source.video.as_ref().map(|v| v.1.as_str()),
        source.audio.as_ref().map(|a| a.1.as_str()),
    )
    .map_err(|why| error(StatusCode::UNPROCESSABLE_ENTITY, "unsupported_codec", why))?;
    let folder = dir(state);
    std::fs::create_dir_all(&folder).map_err(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage",
            format!("cannot create {}: {e}", folder.display()),
        )
    })?;
    let started = unix_now();
    let base = format!("{room}-{}", utc_stamp(started));
    let (recording, name) = (1..100)
        .find_map(|n| {
            let name = match n {
                1 => format!("{base}.{}", spec.extension()),
                n => format!("{base}-{n}.{}", spec.extension()),
            };
            match Recording::start(&folder.join(&name), spec) {
                Ok(r) => Some(Ok((r, name))),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                Err(e) => Some(Err(e)),
            }
        })
        .unwrap_or_else(|| Err(std::io::Error::other("too many recordings this second")))
        .map_err(|e| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage",
                format!("cannot create a file in {}: {e}", folder.display()),
            )
        })?;
    let id = recordings.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let sink = recording.sink.clone();
    state
        .sfu
        .control(|e| e.start_recording(id, room, &source, sink));
    info!(room, file = %name, format = spec.extension(), "recording started");
    state.metrics.recordings_started.inc();
    let a = Active {
        id,
        name,
        started,
        recording: Some(recording),
    };
    let info = a.info(room, state);
    active.insert(room.to_owned(), a);
    Ok(info)
}

/// `DELETE /api/rooms/{room}/recording`
pub async fn stop(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = valid_room(&room).and_then(|()| may_record(&state, &room, &headers)) {
        return e.into_response();
    }
    let a = state.recordings.active().remove(&room);
    let Some(mut a) = a else {
        return not_recording().into_response();
    };
    state.sfu.control(|e| e.stop_recording(a.id));
    // The worker lets go of its end; the writer then completes the file.
    if let Some(r) = a.recording.take() {
        let status = r.status().clone();
        let _ = tokio::task::spawn_blocking(move || r.wait()).await;
        a.recording = None;
        let mut info = a.info(&room, &state);
        info.bytes = status.bytes.load(Ordering::Relaxed);
        info.media_seconds = Some(status.media_ms.load(Ordering::Relaxed) as f64 / 1000.0);
        info.error = status.error.lock().ok().and_then(|e| e.clone());
        info!(room, file = %a.name, bytes = info.bytes, "recording stopped");
        return Json(info).into_response();
    }
    Json(a.info(&room, &state)).into_response()
}

/// `GET /api/rooms/{room}/recording`
pub async fn status(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = valid_room(&room).and_then(|()| may_record(&state, &room, &headers)) {
        return e.into_response();
    }
    let active = state.recordings.active();
    match active.get(&room).filter(|a| !a.done()) {
        Some(a) => Json(a.info(&room, &state)).into_response(),
        None => not_recording().into_response(),
    }
}

/// `GET /api/recordings`
pub async fn list(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = admin(&state, &headers) {
        return e.into_response();
    }
    let running: HashMap<String, RecordingInfo> = {
        let mut active = state.recordings.active();
        // Recordings whose broadcast ended are complete: forget them here.
        active.retain(|_, a| !a.done());
        active
            .iter()
            .map(|(room, a)| (a.name.clone(), a.info(room, &state)))
            .collect()
    };
    let folder = dir(&state);
    let mut out = Vec::new();
    if let Ok(mut entries) = tokio::fs::read_dir(&folder).await {
        while let Ok(Some(e)) = entries.next_entry().await {
            let name = e.file_name().to_string_lossy().into_owned();
            if !is_recording_name(&name) {
                continue;
            }
            let Ok(meta) = e.metadata().await else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            if let Some(mut r) = running.get(&name).map(|r| RecordingInfo {
                name: r.name.clone(),
                room: r.room.clone(),
                state: r.state,
                bytes: r.bytes,
                media_seconds: r.media_seconds,
                started: r.started,
                error: r.error.clone(),
                download: r.download.clone(),
            }) {
                r.bytes = r.bytes.max(meta.len());
                out.push(r);
                continue;
            }
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            out.push(RecordingInfo {
                download: download_link(&state, &name),
                name,
                room: None,
                state: "complete",
                bytes: meta.len(),
                media_seconds: None,
                started: modified,
                error: None,
            });
        }
    }
    out.sort_by(|a, b| b.started.cmp(&a.started).then(a.name.cmp(&b.name)));
    Json(serde_json::json!({ "recordings": out })).into_response()
}

/// A name this API serves: a plain file name with a recording's extension.
fn is_recording_name(name: &str) -> bool {
    !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && (name.ends_with(".webm") || name.ends_with(".mp4"))
        && name.len() <= 200
}

type HmacSha256 = Hmac<Sha256>;

fn link_signature(state: &AppState, name: &str, exp: u64) -> String {
    let mut mac = HmacSha256::new_from_slice(&state.token_secret).expect("HMAC takes any key");
    mac.update(format!("recording\0{name}\0{exp}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn download_link(state: &AppState, name: &str) -> String {
    let exp = unix_now() + LINK_LIFETIME.as_secs();
    format!(
        "/api/recordings/{name}?exp={exp}&sig={}",
        link_signature(state, name, exp)
    )
}

/// A download link's query.
#[derive(Debug, Deserialize)]
pub struct LinkQuery {
    exp: Option<u64>,
    sig: Option<String>,
}

/// `GET /api/recordings/{name}`
pub async fn download(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<LinkQuery>,
    headers: HeaderMap,
) -> Response {
    let signed = match (q.exp, q.sig.as_deref()) {
        (Some(exp), Some(sig)) => {
            if exp < unix_now() {
                return error(
                    StatusCode::FORBIDDEN,
                    "link_expired",
                    "this download link has expired",
                )
                .into_response();
            }
            let want = link_signature(&state, &name, exp);
            if !crate::auth::constant_time_eq(want.as_bytes(), sig.as_bytes()) {
                return error(
                    StatusCode::FORBIDDEN,
                    "bad_link",
                    "this download link is not valid",
                )
                .into_response();
            }
            true
        }
        _ => false,
    };
    if !signed && let Err(e) = admin(&state, &headers) {
        return e.into_response();
    }
    if !is_recording_name(&name) {
        return error(StatusCode::NOT_FOUND, "not_found", "no such recording").into_response();
    }
    let path = dir(&state).join(&name);
    serve_file(&path, &name, &headers).await
}

/// The file, whole or the one byte range asked for.
async fn serve_file(path: &FsPath, name: &str, headers: &HeaderMap) -> Response {
    match serve_file_inner(path, name, headers).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
}

async fn serve_file_inner(
    path: &FsPath,
    name: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let missing = || error(StatusCode::NOT_FOUND, "not_found", "no such recording");
    let mut file = tokio::fs::File::open(path).await.map_err(|_| missing())?;
    let len = match file.metadata().await {
        Ok(m) if m.is_file() => m.len(),
        _ => return Err(missing()),
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_range(v, len));
    let (status, start, end) = match range {
        Some(Ok((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b),
        Some(Err(())) => {
            let mut res = error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "bad_range",
                "range not satisfiable",
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                res.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(res);
        }
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
    };
    if start > 0 && file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage",
            "cannot read the file",
        ));
    }
    let count = if len == 0 { 0 } else { end - start + 1 };
    let stream = futures_util::stream::unfold((file, count), |(mut f, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; left.min(256 * 1024) as usize];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), (f, left - n as u64)))
            }
            Err(e) => {
                warn!(error = %e, "reading a recording failed");
                Some((Err(e), (f, 0)))
            }
        }
    });
    let mime = if name.ends_with(".mp4") {
        "video/mp4"
    } else {
        "video/webm"
    };
    let mut res = Response::new(Body::from_stream(stream));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}"))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// One `bytes=a-b` range (`a-`, `-n` too) of a `len`-byte file: `None`
/// when there is no usable Range header (serve it all), `Err` when the
/// range is outside the file.
fn parse_range(v: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        // Several ranges: serving the whole file is allowed, and simpler.
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.is_empty(), b.is_empty()) {
        (true, true) => return None,
        (true, false) => {
            let n: u64 = b.parse().ok()?;
            if n == 0 {
                return Some(Err(()));
            }
            (len.saturating_sub(n), len.checked_sub(1)?)
        }
        (false, _) => {
            let start: u64 = a.parse().ok()?;
            let end = if b.is_empty() {
                len.checked_sub(1)?
            } else {
                b.parse::<u64>().ok()?.min(len.saturating_sub(1))
            };
            (start, end)
        }
    };
    if range.0 >= len || range.0 > range.1 {
        return Some(Err(()));
    }
    Some(Ok(range))
}

/// `recording.auto`: records every WHIP broadcast from its start (once it
/// has audio and video, or has been live a moment). Runs until the server stops.
pub async fn auto(state: Arc<AppState>) {
    let mut seen: HashMap<String, std::time::Instant> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        if state.draining() {
            return;
        }
        let rooms: Vec<String> = {
            let ingests = state.ingests.lock().unwrap_or_else(|e| e.into_inner());
            ingests.values().map(|s| s.room.clone()).collect()
        };
        let now = std::time::Instant::now();
        seen.retain(|room, _| rooms.contains(room));
        for room in rooms {
            let Some(source) = state.sfu.control(|e| e.broadcast_source(&room)) else {
                seen.remove(&room);
                continue;
            };
            let whole = source.video.is_some() && source.audio.is_some();
            let since = *seen.entry(room.clone()).or_insert(now);
            let recording = state
                .recordings
                .active()
                .get(&room)
                .is_some_and(|a| !a.done());
            if recording || (!whole && now.saturating_duration_since(since) < AUTO_SETTLE) {
                continue;
            }
            // One attempt per broadcast: a refusal (a codec kaigi cannot
            // record) is not retried every tick, nor a recording stopped by
            // the API restarted.
            seen.insert(room.clone(), now + Duration::from_secs(24 * 3600));
            if let Err(e) = start_recording(&state, &room) {
                warn!(room, status = %e.status(), why = %e.message, "automatic recording could not start");
            }
        }
    }
}

/// Stops every recording and waits for the files to be complete (shutdown).
pub fn stop_all(state: &AppState) {
    let all: Vec<(String, Active)> = state.recordings.active().drain().collect();
    for (room, mut a) in all {
        state.sfu.control(|e| e.stop_recording(a.id));
        if let Some(r) = a.recording.take() {
            r.wait();
            info!(room, file = %a.name, "recording completed at shutdown");
        }
    }
}

/// `YYYYMMDD-HHMMSS` (UTC) of Unix seconds `t`.
fn utc_stamp(t: u64) -> String {
    let (days, secs) = (t / 86_400, t % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_dates() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
        assert_eq!(utc_stamp(1_795_564_799), "20261124-235959");
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some(Ok((0, 99))));
        assert_eq!(parse_range("bytes=900-", 1000), Some(Ok((900, 999))));
        assert_eq!(parse_range("bytes=-100", 1000), Some(Ok((900, 999))));
        assert_eq!(parse_range("bytes=0-5000", 1000), Some(Ok((0, 999))));
        assert_eq!(parse_range("bytes=1000-", 1000), Some(Err(())));
        assert_eq!(parse_range("bytes=5-2", 1000), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
        assert_eq!(parse_range("bytes=x-1", 1000), None);
    }

    #[test]
    fn only_plain_recording_names_are_served() {
        assert!(is_recording_name("press-20261124-101500.webm"));
        assert!(is_recording_name("a.mp4"));
        assert!(!is_recording_name("../secret.webm"));
        assert!(!is_recording_name(".hidden.mp4"));
        assert!(!is_recording_name("token_secret"));
        assert!(!is_recording_name("a\\b.webm"));
    }
}
