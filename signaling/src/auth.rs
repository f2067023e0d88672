//! Join tokens: compact JWTs signed with HMAC-SHA256, carrying the room,
//! the role, a display name and an expiry. `kaigi token` mints them; the
//! WebSocket checks them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Publishes and subscribes in meetings.
    Participant,
    /// A participant who may moderate.
    Moderator,
    /// A broadcast source.
    Publisher,
    /// Watches only; never publishes.
    Viewer,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "participant" => Ok(Role::Participant),
            "moderator" => Ok(Role::Moderator),
            "publisher" => Ok(Role::Publisher),
            "viewer" => Ok(Role::Viewer),
            _ => Err(format!(
                "unknown role {s:?}: participant, moderator, publisher or viewer"
            )),
        }
    }
}

/// The claims of a join token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Room the token is for.
    pub room: String,
    /// What the holder may do.
    pub role: Role,
    /// Display name, if the issuer sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
}

/// Why a token was refused (the message never echoes the token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts, or not JSON.
    #[error("malformed token")]
    Malformed,
    /// The signature does not match.
    #[error("bad token signature")]
    Signature,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
    /// For another room.
    #[error("token is for another room")]
    WrongRoom,
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

type HmacSha256 = Hmac<Sha256>;

fn sign(secret: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Signs `claims` with `secret`.
pub fn mint(secret: &[u8], claims: &Claims) -> String {
    let body = serde_json::to_vec(claims).expect("claims serialise");
    let signing_input = format!("{}.{}", B64.encode(HEADER), B64.encode(body));
    let sig = sign(secret, signing_input.as_bytes());
    format!("{signing_input}.{}", B64.encode(sig))
}

/// Checks a token's signature, expiry (against `now`, Unix seconds) and room.
pub fn verify(secret: &[u8], token: &str, room: &str, now: u64) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(b), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header = B64.decode(h).map_err(|_| TokenError::Malformed)?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(|_| TokenError::Malformed)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err(TokenError::Malformed);
    }
    let sig = B64.decode(s).map_err(|_| TokenError::Malformed)?;
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("{h}.{b}").as_bytes());
    mac.verify_slice(&sig).map_err(|_| TokenError::Signature)?;
    let body = B64.decode(b).map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&body).map_err(|_| TokenError::Malformed)?;
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    if claims.room != room {
        return Err(TokenError::WrongRoom);
    }
    Ok(claims)
}

/// Parses `30s`, `15m`, `1h`, `7d` or plain seconds.
pub fn parse_ttl(s: &str) -> Result<u64, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("bad duration unit in {s:?}: use s, m, h or d")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("duration {s:?} too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            room: "r".into(),
            role: Role::Moderator,
            name: Some("課長".into()),
            exp,
            iat: 0,
        }
    }

    #[test]
    fn roundtrip_and_refusals() {
        let t = mint(b"secret", &claims(100));
        assert_eq!(verify(b"secret", &t, "r", 50).unwrap(), claims(100));
        assert_eq!(verify(b"other", &t, "r", 50), Err(TokenError::Signature));
        assert_eq!(verify(b"secret", &t, "r", 100), Err(TokenError::Expired));
        assert_eq!(verify(b"secret", &t, "x", 50), Err(TokenError::WrongRoom));
        assert_eq!(
            verify(b"secret", "a.b", "r", 50),
            Err(TokenError::Malformed)
        );
        assert_eq!(verify(b"secret", "", "r", 50), Err(TokenError::Malformed));
        let mut tampered = t.clone();
        tampered.insert(30, 'A');
        assert!(verify(b"secret", &tampered, "r", 50).is_err());
    }

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("1h"), Ok(3600));
        assert_eq!(parse_ttl("90"), Ok(90));
        assert_eq!(parse_ttl("2d"), Ok(172800));
        assert!(parse_ttl("1y").is_err());
        assert!(parse_ttl("h").is_err());
    }
}
