//! ICE-lite (RFC 8445 §2.5) for the subscribe side: kaigi never sends
//! checks, it answers the client's and sends media where the client
//! nominated. Consent (RFC 7675) is the client's checks arriving.

use std::net::SocketAddr;

use rtc::crypto::RTCCrypto;
use rtc::stun::attributes::{ATTR_USE_CANDIDATE, ATTR_USERNAME};
use rtc::stun::fingerprint::FINGERPRINT;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Message};
use rtc::stun::textattrs::TextAttribute;
use rtc::stun::xoraddr::XorMappedAddress;

/// A connectivity check that passed.
#[derive(Debug)]
pub(crate) struct Check {
    /// The success response to send back to the check's source.
    pub response: Vec<u8>,
    /// The client nominated this pair (USE-CANDIDATE).
    pub nominated: bool,
}

/// Why a STUN message was not answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not a binding request, or not parseable.
    NotARequest,
    /// USERNAME is not `<our ufrag>:<their ufrag>`.
    WrongUsername,
    /// MESSAGE-INTEGRITY does not match our password.
    BadIntegrity,
}

/// Checks a binding request against our credentials (and the client's ufrag
/// once its answer is known) and builds the response.
pub(crate) fn answer_check(
    data: &[u8],
    from: SocketAddr,
    local_ufrag: &str,
    local_pwd: &str,
    remote_ufrag: Option<&str>,
    crypto: &dyn RTCCrypto,
) -> Result<Check, Refused> {
    let mut m = Message::new();
    m.unmarshal_binary(data).map_err(|_| Refused::NotARequest)?;
    if m.typ != BINDING_REQUEST {
        return Err(Refused::NotARequest);
    }
    let username =
        TextAttribute::get_from_as(&m, ATTR_USERNAME).map_err(|_| Refused::WrongUsername)?;
    let (ours, theirs) = username
        .text
        .split_once(':')
        .ok_or(Refused::WrongUsername)?;
    if ours != local_ufrag || remote_ufrag.is_some_and(|r| r != theirs) {
        return Err(Refused::WrongUsername);
    }
    MessageIntegrity::check(&mut m, local_pwd.as_bytes(), crypto)
        .map_err(|_| Refused::BadIntegrity)?;
    let nominated = m.contains(ATTR_USE_CANDIDATE);
    let mut out = Message::new();
    out.build(&[
        Box::new(m.clone()),
        Box::new(BINDING_SUCCESS),
        Box::new(XorMappedAddress {
            ip: from.ip(),
            port: from.port(),
        }),
        Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
            local_pwd.to_owned(),
            crypto,
        )),
        Box::new(FINGERPRINT),
    ])
    .map_err(|_| Refused::NotARequest)?;
    Ok(Check {
        response: out.raw,
        nominated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::stun::message::Setter;

    fn request(username: &str, pwd: &str, nominate: bool, crypto: &dyn RTCCrypto) -> Vec<u8> {
        let mut m = Message::new();
        m.build(&[
            Box::new(BINDING_REQUEST),
            Box::new(TextAttribute::new(ATTR_USERNAME, username.to_owned())),
        ])
        .unwrap();
        m.new_transaction_id().unwrap();
        if nominate {
            m.add(ATTR_USE_CANDIDATE, &[]);
        }
        MessageIntegrity::new_short_term_integrity_with_provider(pwd.to_owned(), crypto)
            .add_to(&mut m)
            .unwrap();
        FINGERPRINT.add_to(&mut m).unwrap();
        m.raw
    }

    #[test]
    fn valid_check_is_answered_with_a_verifiable_response() {
        let provider = rtc::crypto::default_provider().unwrap();
        let crypto = provider.crypto();
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let req = request("srv:cli", "serverpassword", true, crypto);
        let check = answer_check(&req, from, "srv", "serverpassword", Some("cli"), crypto).unwrap();
        assert!(check.nominated);
        let mut resp = Message::new();
        resp.unmarshal_binary(&check.response).unwrap();
        assert_eq!(resp.typ, BINDING_SUCCESS);
        MessageIntegrity::check(&mut resp, b"serverpassword", crypto).unwrap();
        let mut mapped = XorMappedAddress::default();
        mapped
            .get_from_as(&resp, rtc::stun::attributes::ATTR_XORMAPPED_ADDRESS)
            .unwrap();
        assert_eq!(mapped.port, 5000);
    }

    #[test]
    fn wrong_credentials_and_garbage_are_refused() {
        let provider = rtc::crypto::default_provider().unwrap();
        let crypto = provider.crypto();
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let wrong_pwd = request("srv:cli", "guess", false, crypto);
        assert_eq!(
            answer_check(&wrong_pwd, from, "srv", "serverpassword", None, crypto).unwrap_err(),
            Refused::BadIntegrity
        );
        let wrong_user = request("other:cli", "serverpassword", false, crypto);
        assert_eq!(
            answer_check(&wrong_user, from, "srv", "serverpassword", None, crypto).unwrap_err(),
            Refused::WrongUsername
        );
        let known_remote = request("srv:intruder", "serverpassword", false, crypto);
        assert!(
            answer_check(
                &known_remote,
                from,
                "srv",
                "serverpassword",
                Some("cli"),
                crypto
            )
            .is_err()
        );
        assert_eq!(
            answer_check(&[0, 1, 2], from, "srv", "serverpassword", None, crypto).unwrap_err(),
            Refused::NotARequest
        );
    }
}
