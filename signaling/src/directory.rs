//! Sign-in with the staff directory (LDAP; Active Directory or OpenLDAP):
//! a person gives their staff ID and password on the landing page, kaigi
//! looks the ID up (as its service account, or anonymously), binds as the
//! person to check the password, reads their display name and whether
//! they belong to the moderator and publisher groups, and keeps that in a
//! signed, HttpOnly session cookie. Meetings then show the directory name,
//! members of the moderator group moderate, and members of the publisher
//! group can mint publisher tokens for their encoder.
//!
//! The password goes to the directory only, never into a log or the cookie.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::auth::{self, Claims, Role};
use crate::config::DirectoryConfig;
use crate::http::AppState;
use crate::recording::{ApiError, error};

/// The session cookie's name.
pub const COOKIE: &str = "kaigi_staff";

/// A signed-in member of staff, as the session cookie carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staff {
    /// The staff ID they signed in with.
    pub user: String,
    /// Their name from the directory.
    pub name: String,
    /// In the moderator group.
    pub moderator: bool,
    /// In the publisher group.
    pub publisher: bool,
    /// Expiry, Unix seconds.
    pub exp: u64,
}

// Its own `typ`, so that a session cookie is never taken for a join token
// (nor one for the other), though both are signed with the same secret.
const SESSION_HEADER: &str = r#"{"alg":"HS256","typ":"kaigi-staff"}"#;

impl Staff {
    /// The cookie value: the claims, signed.
    pub fn seal(&self, secret: &[u8]) -> String {
        let body = serde_json::to_vec(self).expect("staff serialise");
        let input = format!("{}.{}", B64.encode(SESSION_HEADER), B64.encode(body));
        let sig = auth::hmac(secret, input.as_bytes());
        format!("{input}.{}", B64.encode(sig))
    }

    /// Reads a cookie value back; `None` if forged, altered or expired.
    pub fn open(secret: &[u8], value: &str, now: u64) -> Option<Staff> {
        let (input, sig) = value.rsplit_once('.')?;
        let (h, b) = input.split_once('.')?;
        if B64.decode(h).ok()? != SESSION_HEADER.as_bytes() {
            return None;
        }
        let sig = B64.decode(sig).ok()?;
        if !auth::constant_time_eq(&auth::hmac(secret, input.as_bytes()), &sig) {
            return None;
        }
        let staff: Staff = serde_json::from_slice(&B64.decode(b).ok()?).ok()?;
        (staff.exp > now).then_some(staff)
    }

    /// The signed-in person behind a request's cookies, if any.
    pub fn from_headers(state: &AppState, headers: &HeaderMap) -> Option<Staff> {
        state.config.directory.url.as_ref()?;
        let value = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)?
            .1;
        Staff::open(&state.token_secret, value, unix_now())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown ID or wrong password (not told apart, so IDs can't be probed).
    #[error("wrong staff ID or password")]
    Refused,
    /// The directory could not be asked.
    #[error("the staff directory is unavailable: {0}")]
    Unavailable(String),
}

/// Checks `user`'s `password` against the directory and reads what
/// kaigi shows and grants.
pub async fn authenticate(
    cfg: &DirectoryConfig,
    user: &str,
    password: &str,
    session_ends: u64,
) -> Result<Staff, LoginError> {
    // An empty password is an "unauthenticated bind" (RFC 4513 §5.1.2):
    // many directories answer it with success. Never let it through.
    if user.is_empty() || password.is_empty() || user.len() > 256 || password.len() > 1024 {
        return Err(LoginError::Refused);
    }
    let url = cfg.url.as_deref().ok_or(LoginError::Refused)?;
    let timeout = Duration::from_secs(cfg.timeout_secs);
    let unavailable = |e: ldap3::LdapError| LoginError::Unavailable(e.to_string());
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(timeout)
        .set_starttls(cfg.starttls);
    if let Some(ca) = &cfg.ca_file {
        settings = settings.set_config(Arc::new(tls_config(ca).map_err(LoginError::Unavailable)?));
    }
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, url)
        .await
        .map_err(unavailable)?;
    ldap3::drive!(conn);
    ldap.with_timeout(timeout);
    if let (Some(dn), Some(pw)) = (&cfg.bind_dn, &cfg.bind_password) {
        ldap.simple_bind(dn, pw)
            .await
            .and_then(|r| r.success())
            .map_err(|e| LoginError::Unavailable(format!("service account bind: {e}")))?;
    }
    let filter = cfg.user_filter.replace("{user}", &ldap3::ldap_escape(user));
    ldap.with_timeout(timeout);
    let (entries, _) = ldap
        .search(
            &cfg.base_dn,
            Scope::Subtree,
            &filter,
            vec![cfg.name_attribute.as_str()],
        )
        .await
        .and_then(|r| r.success())
        .map_err(unavailable)?;
    // Exactly one: none is an unknown ID, several a filter that is too loose.
    let [entry] = <[_; 1]>::try_from(entries).map_err(|_| LoginError::Refused)?;
    let entry = SearchEntry::construct(entry);
    ldap.with_timeout(timeout);
    let bound = ldap
        .simple_bind(&entry.dn, password)
        .await
        .map_err(unavailable)?;
    if bound.rc != 0 {
        // 49: invalidCredentials; anything else is refused the same way.
        return Err(LoginError::Refused);
    }
    let name = entry
        .attrs
        .get(&cfg.name_attribute)
        .and_then(|v| v.first())
        .and_then(|n| crate::protocol::clean_name(n))
        .unwrap_or_else(|| user.to_owned());
    // Group checks as the person: a base search of the group entry for
    // their DN works on OpenLDAP (groupOfNames) and Active Directory alike,
    // without the memberOf overlay.
    let mut member_of = async |group: &Option<String>| -> Result<bool, LoginError> {
        let Some(group) = group else { return Ok(false) };
        let filter = format!("(member={})", ldap3::ldap_escape(&entry.dn));
        ldap.with_timeout(timeout);
        let (found, _) = ldap
            .search(group, Scope::Base, &filter, vec!["1.1"])
            .await
            .and_then(|r| r.success())
            .map_err(unavailable)?;
        Ok(!found.is_empty())
    };
    let moderator = member_of(&cfg.moderator_group).await?;
    let publisher = member_of(&cfg.publisher_group).await?;
    let _ = ldap.unbind().await;
    Ok(Staff {
        user: user.to_owned(),
        name,
        moderator,
        publisher,
        exp: session_ends,
    })
}

/// A TLS client trusting the office CA in `ca` (PEM).
/// TLS client settings trusting only the CA in `ca` (PEM).
pub fn tls_config(ca: &std::path::Path) -> Result<rustls::ClientConfig, String> {
    let pem = std::fs::read(ca).map_err(|e| format!("reading {}: {e}", ca.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile_certs(&pem)? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn rustls_pemfile_certs(
    pem: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate: {e}"))
        .and_then(|v| {
            if v.is_empty() {
                Err("no certificate in the CA file".into())
            } else {
                Ok(v)
            }
        })
}

/// The sign-in form's body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    user: String,
    password: String,
}

/// What the page learns about the signed-in person.
#[derive(Serialize)]
struct Me<'a> {
    user: &'a str,
    name: &'a str,
    moderator: bool,
    publisher: bool,
}

fn me(s: &Staff) -> Me<'_> {
    Me {
        user: &s.user,
        name: &s.name,
        moderator: s.moderator,
        publisher: s.publisher,
    }
}

fn no_directory() -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        "no_directory",
        "this server has no staff directory sign-in",
    )
}

// Secure is honoured over HTTPS and on localhost; without TLS kaigi sits
// behind a proxy that speaks HTTPS to the browser.
fn cookie(value: &str, max_age: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict"
    ))
    .expect("cookie is ASCII")
}

/// `POST /api/login`: staff ID and password in, session cookie out.
pub async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let cfg = &state.config.directory;
    if cfg.url.is_none() {
        return Err(no_directory());
    }
    let now = std::time::Instant::now();
    if let Some(wait) = state.login_failures.blocked(peer.ip(), now) {
        state
            .metrics
            .rate_limited
            .with_label_values(&["login"])
            .inc();
        return Err(error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many failed sign-ins from this address; try again in {} s",
                wait.as_secs().max(1)
            ),
        ));
    }
    let Ok(form) = serde_json::from_slice::<Login>(&body) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected {\"user\": …, \"password\": …}",
        ));
    };
    let user = form.user.trim();
    let ends = unix_now() + cfg.session_hours * 3600;
    let result = authenticate(cfg, user, &form.password, ends).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(LoginError::Refused) => "refused",
        Err(LoginError::Unavailable(_)) => "unavailable",
    };
    state.metrics.logins.with_label_values(&[outcome]).inc();
    match result {
        Ok(staff) => {
            info!(
                user = %staff.user,
                moderator = staff.moderator,
                publisher = staff.publisher,
                "signed in"
            );
            let mut res = Json(me(&staff)).into_response();
            res.headers_mut().insert(
                header::SET_COOKIE,
                cookie(&staff.seal(&state.token_secret), cfg.session_hours * 3600),
            );
            Ok(res)
        }
        Err(LoginError::Refused) => {
            let _ = state.login_failures.check(peer.ip(), now);
            info!(user = %user, "sign-in refused");
            Err(error(
                StatusCode::UNAUTHORIZED,
                "wrong_credentials",
                "wrong staff ID or password",
            ))
        }
        Err(e @ LoginError::Unavailable(_)) => {
            warn!("sign-in: {e}");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "directory_unavailable",
                "the staff directory can not be reached; try again shortly",
            ))
        }
    }
}

/// `POST /api/logout`: forgets the session cookie.
pub async fn logout() -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().insert(header::SET_COOKIE, cookie("", 0));
    res
}

/// `GET /api/me`: who is signed in (401), or that nobody can (404).
pub async fn whoami(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if state.config.directory.url.is_none() {
        return Err(no_directory());
    }
    match Staff::from_headers(&state, &headers) {
        Some(s) => Ok(Json(me(&s)).into_response()),
        None => Err(error(
            StatusCode::UNAUTHORIZED,
            "sign_in_required",
            "not signed in",
        )),
    }
}

/// `POST /api/me/publisher-token`: a member of the publisher group gets a
/// publisher token for a room, to paste into the encoder (OBS: Bearer token).
pub async fn publisher_token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Ask {
        room: String,
    }
    if state.config.directory.url.is_none() {
        return Err(no_directory());
    }
    let Some(staff) = Staff::from_headers(&state, &headers) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "sign_in_required",
            "sign in first",
        ));
    };
    if !staff.publisher {
        return Err(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only members of the publisher group may broadcast",
        ));
    }
    let Ok(ask) = serde_json::from_slice::<Ask>(&body) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected {\"room\": …}",
        ));
    };
    sfu::room::validate_name(&ask.room)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_room", e.to_string()))?;
    let now = unix_now();
    let claims = Claims {
        room: ask.room,
        role: Role::Publisher,
        name: Some(staff.name.clone()),
        iat: now,
        exp: staff.exp,
    };
    info!(user = %staff.user, room = %claims.room, "publisher token issued");
    Ok(Json(serde_json::json!({
        "token": auth::mint(&state.token_secret, &claims),
        "room": claims.room,
        "expires": claims.exp,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staff(exp: u64) -> Staff {
        Staff {
            user: "t.yamada".into(),
            name: "山田 太郎".into(),
            moderator: true,
            publisher: false,
            exp,
        }
    }

    #[test]
    fn cookie_roundtrip_and_forgeries() {
        let v = staff(100).seal(b"secret-secret-secret");
        assert_eq!(
            Staff::open(b"secret-secret-secret", &v, 50),
            Some(staff(100))
        );
        assert_eq!(Staff::open(b"secret-secret-secret", &v, 100), None);
        assert_eq!(Staff::open(b"another-secret-here", &v, 50), None);
        // A raised privilege under the old signature.
        let (input, sig) = v.rsplit_once('.').unwrap();
        let (h, _) = input.split_once('.').unwrap();
        let mut forged = staff(100);
        forged.publisher = true;
        let body = B64.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            Staff::open(b"secret-secret-secret", &format!("{h}.{body}.{sig}"), 50),
            None
        );
        for junk in ["", ".", "..", "a.b.c", "a.b", &"x".repeat(5000)] {
            assert_eq!(Staff::open(b"secret-secret-secret", junk, 50), None);
        }
    }

    #[test]
    fn a_join_token_is_not_a_session_and_back() {
        let claims = Claims {
            room: "r".into(),
            role: Role::Moderator,
            name: None,
            exp: 100,
            iat: 0,
        };
        let token = auth::mint(b"secret-secret-secret", &claims);
        assert_eq!(Staff::open(b"secret-secret-secret", &token, 50), None);
        let cookie = staff(100).seal(b"secret-secret-secret");
        assert!(auth::verify(b"secret-secret-secret", &cookie, "r", 50).is_err());
    }

    #[tokio::test]
    async fn empty_passwords_never_reach_the_directory() {
        let cfg = DirectoryConfig {
            // Nothing listens here: reaching it would be Unavailable, not Refused.
            url: Some("ldap://127.0.0.1:9".into()),
            base_dn: "dc=example".into(),
            ..Default::default()
        };
        assert!(matches!(
            authenticate(&cfg, "someone", "", 100).await,
            Err(LoginError::Refused)
        ));
        assert!(matches!(
            authenticate(&cfg, "", "pw", 100).await,
            Err(LoginError::Refused)
        ));
        assert!(matches!(
            authenticate(&cfg, "someone", "pw", 100).await,
            Err(LoginError::Unavailable(_))
        ));
    }
}
