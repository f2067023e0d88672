//! Which peer a datagram belongs to, without a WebRTC stack: the first byte
//! tells STUN from DTLS from RTP (RFC 7983), and a STUN binding request
//! names the receiving peer in its USERNAME (`ourufrag:theirufrag`).

/// What kind of datagram this is, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketClass {
    /// STUN (ICE connectivity checks).
    Stun,
    /// DTLS records.
    Dtls,
    /// RTP or RTCP (SRTP/SRTCP).
    Rtp,
    /// Anything else: dropped.
    Other,
}

/// Classifies a datagram by RFC 7983.
pub fn classify(data: &[u8]) -> PacketClass {
    match data.first() {
        Some(0..=3) => PacketClass::Stun,
        Some(20..=63) => PacketClass::Dtls,
        Some(128..=191) => PacketClass::Rtp,
        _ => PacketClass::Other,
    }
}

/// Whether an RTP-class datagram is RTCP (payload types 192–223, RFC 5761).
pub fn is_rtcp(data: &[u8]) -> bool {
    data.len() >= 2 && (192..=223).contains(&data[1])
}

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const ATTR_USERNAME: u16 = 0x0006;

/// The local (our) ufrag named by a STUN message's USERNAME attribute, if
/// the datagram is a well-formed STUN message that has one.
pub fn stun_local_ufrag(data: &[u8]) -> Option<&str> {
    if data.len() < 20 || data[0] & 0xC0 != 0 || data[4..8] != MAGIC_COOKIE {
        return None;
    }
    let body_len = u16::from_be_bytes([data[2], data[3]]) as usize;
    if !body_len.is_multiple_of(4) || data.len() < 20 + body_len {
        return None;
    }
    let mut attrs = &data[20..20 + body_len];
    while attrs.len() >= 4 {
        let typ = u16::from_be_bytes([attrs[0], attrs[1]]);
        let len = u16::from_be_bytes([attrs[2], attrs[3]]) as usize;
        let padded = (len + 3) & !3;
        if attrs.len() < 4 + len {
            return None;
        }
        if typ == ATTR_USERNAME {
            let username = std::str::from_utf8(&attrs[4..4 + len]).ok()?;
            return username.split(':').next().filter(|u| !u.is_empty());
        }
        if attrs.len() < 4 + padded {
            return None;
        }
        attrs = &attrs[4 + padded..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun_with_username(username: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        attr.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut msg = vec![0x00, 0x01];
        msg.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        msg.extend_from_slice(&MAGIC_COOKIE);
        msg.extend_from_slice(&[7u8; 12]);
        msg.extend_from_slice(&attr);
        msg
    }

    #[test]
    fn finds_local_ufrag() {
        let msg = stun_with_username("abcd:efgh");
        assert_eq!(classify(&msg), PacketClass::Stun);
        assert_eq!(stun_local_ufrag(&msg), Some("abcd"));
    }

    #[test]
    fn rejects_truncated_and_garbage() {
        let msg = stun_with_username("abcd:efgh");
        for n in 0..msg.len() {
            assert_eq!(stun_local_ufrag(&msg[..n]), None, "prefix {n}");
        }
        assert_eq!(stun_local_ufrag(&[0u8; 20]), None);
        assert_eq!(classify(&[200]), PacketClass::Other);
        assert_eq!(classify(&[]), PacketClass::Other);
    }

    #[test]
    fn tells_rtcp_from_rtp() {
        assert!(is_rtcp(&[0x80, 200]));
        assert!(is_rtcp(&[0x81, 206]));
        assert!(!is_rtcp(&[0x80, 96]));
        assert!(!is_rtcp(&[0x80, 0xE0]));
        assert!(!is_rtcp(&[0x80]));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_random_input(data: Vec<u8>) {
            let _ = classify(&data);
            let _ = stun_local_ufrag(&data);
        }
    }
}
