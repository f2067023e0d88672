//! Who may enter which room. A valid join token always may (it names the
//! room and the role); without one, the room's rule in `[rooms]` (or
//! `auth.default_access`) decides: open, token only, the room's password,
//! or staff signed in with the directory. Used by the WebSocket join and
//! by WHEP, so a meeting and its broadcast have the same door.

use std::net::IpAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::auth::Claims;
use crate::config::Access;
use crate::directory::Staff;
use crate::http::AppState;

/// A refusal: a code for programs (the protocol's error codes), a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `unauthorized`, `password_required`, `wrong_password`,
    /// `sign_in_required` or `rate_limited`.
    pub code: &'static str,
    /// What to tell the person.
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// What a client brings to the door.
#[derive(Debug, Default, Clone, Copy)]
pub struct Knock<'a> {
    /// A join token.
    pub token: Option<&'a str>,
    /// The room's password.
    pub password: Option<&'a str>,
    /// The signed-in member of staff.
    pub staff: Option<&'a Staff>,
}

/// Lets the client in (with the token's claims, if it brought one) or says why not.
pub fn admit(
    state: &AppState,
    room: &str,
    knock: Knock<'_>,
    ip: IpAddr,
) -> Result<Option<Claims>, Refusal> {
    if let Some(token) = knock.token {
        return state
            .verify_token(token, room)
            .map(Some)
            .map_err(|e| refuse("unauthorized", e.to_string()));
    }
    match state.config.room_access(room) {
        (Access::Open, _) => Ok(None),
        (Access::Token, _) => Err(refuse(
            "unauthorized",
            "this room needs a join token: use the link you were given",
        )),
        (Access::Directory, _) => match knock.staff {
            Some(_) => Ok(None),
            None => Err(refuse(
                "sign_in_required",
                "sign in with your staff ID to enter this room",
            )),
        },
        (Access::Password, expected) => {
            let Some(given) = knock.password else {
                return Err(refuse("password_required", "this room has a password"));
            };
            let now = Instant::now();
            if let Some(wait) = state.login_failures.blocked(ip, now) {
                state
                    .metrics
                    .rate_limited
                    .with_label_values(&["password"])
                    .inc();
                return Err(refuse(
                    "rate_limited",
                    format!(
                        "too many wrong passwords from this address; try again in {} s",
                        wait.as_secs().max(1)
                    ),
                ));
            }
            let expected = expected.unwrap_or_default();
            if crate::auth::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
                Ok(None)
            } else {
                let _ = state.login_failures.check(ip, now);
                Err(refuse("wrong_password", "wrong password"))
            }
        }
    }
}

/// Seconds since the Unix epoch, for token checks.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}
