//! Join tokens: compact JWTs carrying the room, the role, a display name
//! and an expiry, signed with HMAC-SHA256 (a secret kaigi shares with
//! whoever mints them) or with a key pair, Ed25519 (`EdDSA`) or P-256
//! (`ES256`), so that an intranet portal can issue tokens kaigi only checks.
//! `kaigi token` mints them; the WebSocket, WHIP and WHEP check them.

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
    /// Its `nbf` lies in the future.
    #[error("token not valid yet")]
    NotYet,
    /// Signed with an algorithm or key this server does not accept.
    #[error("token signed with an unknown key or algorithm")]
    UnknownKey,
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `data` under `secret`.
pub fn hmac(secret: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Signs `claims` with `secret`.
pub fn mint(secret: &[u8], claims: &Claims) -> String {
    let body = serde_json::to_vec(claims).expect("claims serialise");
    let signing_input = format!("{}.{}", B64.encode(HEADER), B64.encode(body));
    let sig = hmac(secret, signing_input.as_bytes());
    format!("{signing_input}.{}", B64.encode(sig))
}

/// Checks an HS256 token's signature, expiry (against `now`, Unix seconds) and room.
pub fn verify(secret: &[u8], token: &str, room: &str, now: u64) -> Result<Claims, TokenError> {
    verify_with(secret, &[], token, room, now)
}

/// The registered claims kaigi checks beyond [`Claims`].
#[derive(Deserialize)]
struct Window {
    #[serde(default)]
    nbf: Option<u64>,
}

/// Checks a token signed with `secret` (HS256) or one of `keys` (EdDSA,
/// ES256): signature, expiry, not-before and room. The header's `alg`
/// picks the check; a key is never used for another algorithm, so a
/// public key can not be passed off as an HMAC secret.
pub fn verify_with(
    secret: &[u8],
    keys: &[PublicKey],
    token: &str,
    room: &str,
    now: u64,
) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(b), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header = B64.decode(h).map_err(|_| TokenError::Malformed)?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(|_| TokenError::Malformed)?;
    let sig = B64.decode(s).map_err(|_| TokenError::Malformed)?;
    let signed = &token.as_bytes()[..h.len() + 1 + b.len()];
    let kid = header.get("kid").and_then(|k| k.as_str());
    match header.get("alg").and_then(|a| a.as_str()) {
        Some("HS256") => {
            let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
            mac.update(signed);
            mac.verify_slice(&sig).map_err(|_| TokenError::Signature)?;
        }
        Some(alg @ ("EdDSA" | "ES256")) => {
            let alg = if alg == "EdDSA" {
                KeyAlg::EdDsa
            } else {
                KeyAlg::Es256
            };
            let mut candidates = keys
                .iter()
                .filter(|k| {
                    k.alg == alg && (kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid)
                })
                .peekable();
            if candidates.peek().is_none() {
                return Err(TokenError::UnknownKey);
            }
            if !candidates.any(|k| k.verifies(signed, &sig)) {
                return Err(TokenError::Signature);
            }
        }
        _ => return Err(TokenError::UnknownKey),
    }
    let body = B64.decode(b).map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&body).map_err(|_| TokenError::Malformed)?;
    let window: Window = serde_json::from_slice(&body).map_err(|_| TokenError::Malformed)?;
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    if window.nbf.is_some_and(|nbf| nbf > now) {
        return Err(TokenError::NotYet);
    }
    if claims.room != room {
        return Err(TokenError::WrongRoom);
    }
    Ok(claims)
}

/// The signature algorithm of a key pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    /// Ed25519, JWT `EdDSA`.
    EdDsa,
    /// ECDSA on P-256 with SHA-256, JWT `ES256`.
    Es256,
}

impl KeyAlg {
    fn jwt(self) -> &'static str {
        match self {
            KeyAlg::EdDsa => "EdDSA",
            KeyAlg::Es256 => "ES256",
        }
    }
}

impl std::str::FromStr for KeyAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "ed25519" | "eddsa" => Ok(KeyAlg::EdDsa),
            "es256" | "p256" | "p-256" => Ok(KeyAlg::Es256),
            _ => Err(format!("unknown key algorithm {s:?}: ed25519 or es256")),
        }
    }
}

// SubjectPublicKeyInfo prefixes (RFC 8410, RFC 5480): what comes before the
// raw key in the DER of `-----BEGIN PUBLIC KEY-----` for each algorithm.
const SPKI_ED25519: &[u8] = &[
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
const SPKI_P256: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A public key that verifies tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// Its algorithm.
    pub alg: KeyAlg,
    /// Key id a token's header may name (`kid`); the file's stem by default.
    pub kid: Option<String>,
    raw: Vec<u8>,
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) of an Ed25519 or P-256 key.
    pub fn from_pem(text: &str, kid: Option<String>) -> Result<Self, String> {
        let der = pem_block(text, "PUBLIC KEY")?;
        let (alg, raw) = if let Some(raw) = der.strip_prefix(SPKI_ED25519) {
            (KeyAlg::EdDsa, raw)
        } else if let Some(raw) = der.strip_prefix(SPKI_P256) {
            (KeyAlg::Es256, raw)
        } else {
            return Err("not an Ed25519 or P-256 public key".into());
        };
        let want = if alg == KeyAlg::EdDsa { 32 } else { 65 };
        if raw.len() != want {
            return Err("public key has the wrong length".into());
        }
        Ok(PublicKey {
            alg,
            kid,
            raw: raw.to_vec(),
        })
    }

    /// The key as PEM.
    pub fn to_pem(&self) -> String {
        let prefix = match self.alg {
            KeyAlg::EdDsa => SPKI_ED25519,
            KeyAlg::Es256 => SPKI_P256,
        };
        pem("PUBLIC KEY", &[prefix, &self.raw].concat())
    }

    fn verifies(&self, signed: &[u8], sig: &[u8]) -> bool {
        use ring::signature::{ECDSA_P256_SHA256_FIXED, ED25519, UnparsedPublicKey};
        match self.alg {
            KeyAlg::EdDsa => UnparsedPublicKey::new(&ED25519, &self.raw).verify(signed, sig),
            KeyAlg::Es256 => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.raw).verify(signed, sig)
            }
        }
        .is_ok()
    }
}

/// Who signs tokens: the shared secret or a private key.
pub enum Signer {
    /// HMAC-SHA256 with the shared secret.
    Hs256(Vec<u8>),
    /// An Ed25519 key pair.
    EdDsa(ring::signature::Ed25519KeyPair, Option<String>),
    /// A P-256 key pair.
    Es256(ring::signature::EcdsaKeyPair, Option<String>),
}

impl Signer {
    /// Reads a PEM `PRIVATE KEY` (PKCS#8) of an Ed25519 or P-256 key; `kid`
    /// goes into each token's header.
    pub fn from_pem(text: &str, kid: Option<String>) -> Result<Self, String> {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
        if text.contains("BEGIN EC PRIVATE KEY") {
            return Err("an SEC1 EC key: convert it to PKCS#8 with \
                        `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8.pem`"
                .into());
        }
        let der = pem_block(text, "PRIVATE KEY")?;
        if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
            return Ok(Signer::EdDsa(k, kid));
        }
        let rng = ring::rand::SystemRandom::new();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map(|k| Signer::Es256(k, kid))
            .map_err(|_| "not an Ed25519 or P-256 private key (PKCS#8)".into())
    }

    /// Signs `claims`.
    pub fn mint(&self, claims: &Claims) -> String {
        let (alg, kid) = match self {
            Signer::Hs256(secret) => return mint(secret, claims),
            Signer::EdDsa(_, kid) => (KeyAlg::EdDsa, kid),
            Signer::Es256(_, kid) => (KeyAlg::Es256, kid),
        };
        let mut header = serde_json::json!({"alg": alg.jwt(), "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = kid.clone().into();
        }
        let body = serde_json::to_vec(claims).expect("claims serialise");
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(body));
        let sig = match self {
            Signer::Hs256(_) => unreachable!("returned above"),
            Signer::EdDsa(k, _) => k.sign(input.as_bytes()).as_ref().to_vec(),
            Signer::Es256(k, _) => k
                .sign(&ring::rand::SystemRandom::new(), input.as_bytes())
                .expect("ECDSA signing with the system's random numbers")
                .as_ref()
                .to_vec(),
        };
        format!("{input}.{}", B64.encode(sig))
    }
}

// RFC 8410 PKCS#8 v1 of an Ed25519 key: this header, then the 32-byte seed.
const PKCS8_V1_ED25519: &[u8] = &[
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
// Where the seed starts in ring's v2 document (same header length, version 1).
const PKCS8_V2_ED25519_SEED: usize = 16;

/// A new key pair: (private key PEM, public key PEM).
pub fn generate(alg: KeyAlg) -> (String, String) {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let (pkcs8, raw) = match alg {
        KeyAlg::EdDsa => {
            let doc = Ed25519KeyPair::generate_pkcs8(&rng).expect("system random numbers");
            let k = Ed25519KeyPair::from_pkcs8(doc.as_ref()).expect("a key just made");
            // ring writes PKCS#8 v2 (with the public key), which OpenSSL 3.0
            // does not read; a portal signing with OpenSSL needs v1 (RFC 8410):
            // the same seed under the shorter header.
            let seed = &doc.as_ref()[PKCS8_V2_ED25519_SEED..PKCS8_V2_ED25519_SEED + 32];
            (
                [PKCS8_V1_ED25519, seed].concat(),
                k.public_key().as_ref().to_vec(),
            )
        }
        KeyAlg::Es256 => {
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .expect("system random numbers");
            let k = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng)
                .expect("a key just made");
            (doc.as_ref().to_vec(), k.public_key().as_ref().to_vec())
        }
    };
    let public = PublicKey {
        alg,
        kid: None,
        raw,
    };
    (pem("PRIVATE KEY", &pkcs8), public.to_pem())
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::engine::general_purpose::STANDARD;
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_block(text: &str, label: &str) -> Result<Vec<u8>, String> {
    use base64::engine::general_purpose::STANDARD;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .ok_or_else(|| format!("no {begin} block"))?
        + begin.len();
    let stop = text[start..]
        .find(&end)
        .ok_or_else(|| format!("no {end} line"))?
        + start;
    let b64: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(b64)
        .map_err(|_| format!("the {label} block is not valid base64"))
}

/// Compares secrets without leaking, by timing, how much of them matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
    fn key_pairs_sign_and_verify() {
        for alg in [KeyAlg::EdDsa, KeyAlg::Es256] {
            let (private, public) = generate(alg);
            let signer = Signer::from_pem(&private, Some("portal".into())).unwrap();
            let key = PublicKey::from_pem(&public, Some("portal".into())).unwrap();
            assert_eq!(key.alg, alg);
            assert_eq!(
                PublicKey::from_pem(&key.to_pem(), None).unwrap().raw,
                key.raw
            );
            let t = signer.mint(&claims(100));
            let keys = [key.clone()];
            assert_eq!(verify_with(b"", &keys, &t, "r", 50).unwrap(), claims(100));
            assert_eq!(
                verify_with(b"", &keys, &t, "r", 100),
                Err(TokenError::Expired)
            );
            assert_eq!(
                verify_with(b"", &keys, &t, "x", 50),
                Err(TokenError::WrongRoom)
            );
            // Without the key, or with another key of the same kind: refused.
            assert_eq!(
                verify_with(b"", &[], &t, "r", 50),
                Err(TokenError::UnknownKey)
            );
            let (_, other) = generate(alg);
            let other = PublicKey::from_pem(&other, None).unwrap();
            assert_eq!(
                verify_with(b"", std::slice::from_ref(&other), &t, "r", 50),
                Err(TokenError::Signature)
            );
            // Key rotation: the old and the new key side by side.
            assert!(verify_with(b"", &[other, key.clone()], &t, "r", 50).is_ok());
            // A kid naming another key is not tried against this one.
            let mut renamed = key.clone();
            renamed.kid = Some("old".into());
            assert_eq!(
                verify_with(b"", &[renamed], &t, "r", 50),
                Err(TokenError::UnknownKey)
            );
            // A forged body under the real header and signature.
            let mut parts: Vec<&str> = t.split('.').collect();
            let forged = B64.encode(r#"{"room":"r","role":"moderator","exp":99,"iat":0}"#);
            parts[1] = &forged;
            assert_eq!(
                verify_with(b"", &keys, &parts.join("."), "r", 50),
                Err(TokenError::Signature)
            );
        }
    }

    #[test]
    fn algorithm_confusion_and_nbf() {
        let (_, public) = generate(KeyAlg::EdDsa);
        let key = PublicKey::from_pem(&public, None).unwrap();
        // An HS256 token keyed with the public key's PEM must not pass as
        // anything but an HS256 token under the configured secret.
        let t = mint(public.as_bytes(), &claims(100));
        assert_eq!(
            verify_with(b"the real secret", std::slice::from_ref(&key), &t, "r", 50),
            Err(TokenError::Signature)
        );
        // alg none, or one kaigi does not know.
        for alg in ["none", "RS256", "HS512"] {
            let h = B64.encode(format!(r#"{{"alg":"{alg}"}}"#));
            let b = B64.encode(r#"{"room":"r","role":"moderator","exp":99,"iat":0}"#);
            assert_eq!(
                verify_with(
                    b"s",
                    std::slice::from_ref(&key),
                    &format!("{h}.{b}."),
                    "r",
                    50
                ),
                Err(TokenError::UnknownKey)
            );
        }
        let h = B64.encode(HEADER);
        let b = B64.encode(r#"{"room":"r","role":"viewer","exp":99,"iat":0,"nbf":60}"#);
        let sig = B64.encode(hmac(b"s", format!("{h}.{b}").as_bytes()));
        let t = format!("{h}.{b}.{sig}");
        assert_eq!(verify(b"s", &t, "r", 50), Err(TokenError::NotYet));
        assert!(verify(b"s", &t, "r", 60).is_ok());
    }

    #[test]
    fn bad_key_files_are_explained() {
        assert!(PublicKey::from_pem("junk", None).is_err());
        assert!(
            Signer::from_pem(
                "-----BEGIN EC PRIVATE KEY-----\nAA\n-----END EC PRIVATE KEY-----",
                None
            )
            .err()
            .unwrap()
            .contains("openssl pkcs8")
        );
        let (private, _) = generate(KeyAlg::EdDsa);
        // A private key where a public one belongs.
        assert!(PublicKey::from_pem(&private, None).is_err());
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
