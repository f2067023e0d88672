//! SRTP encryption per crypto provider: the per-core floor of kaigi's forward path.
//!
//! Each case builds one `srtp::context::Context` (the crate `rtc` re-exports as `rtc::srtp`)
//! with an explicit provider — `ring` or `aws-lc-rs`, both built into `rtc-crypto` — and
//! encrypts RTP packets with [`Context::encrypt_rtp_with_header`], the call kaigi's
//! forward path makes once per subscriber per packet. The sequence number increments per packet
//! (in the parsed header and in the header bytes), as it does on a real send stream.
//!
//! What each provider actually runs (rtc-crypto 0.21.1):
//! - `AEAD_AES_128_GCM`: the provider's own AES-GCM (`ring::aead` / `aws_lc_rs::aead`).
//! - `AES128_CM_HMAC_SHA1_80`: AES-CTR comes from RustCrypto (`ctr` + `aes`) under both
//!   providers; HMAC-SHA1 is RustCrypto's under `ring` and AWS-LC's under `aws-lc-rs`.

use bytes::BytesMut;
use crypto::RTCCryptoProvider;
use crypto::providers::{AwsLcRsProvider, RingProvider};
use shared::marshal::MarshalSize;
use srtp::context::Context;
use srtp::protection_profile::ProtectionProfile;

/// RTP header length in every case: the 12-byte fixed header, no CSRCs, no extensions.
pub const HEADER_LEN: usize = 12;

/// Payload sizes: an Opus frame and a full video packet.
pub const PAYLOAD_SIZES: [(&str, usize); 2] = [("audio", 100), ("video", 1200)];

const SSRC: u32 = 0x1234_5678;
const MASTER_KEY_16: [u8; 16] = [
    96, 180, 31, 4, 119, 137, 128, 252, 75, 194, 252, 44, 63, 56, 61, 55,
];
const MASTER_SALT_14: [u8; 14] = [247, 26, 49, 94, 99, 29, 79, 94, 5, 111, 252, 216, 62, 195];
const MASTER_SALT_12: [u8; 12] = [247, 26, 49, 94, 99, 29, 79, 94, 5, 111, 252, 216];

/// The two crypto providers under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Ring,
    AwsLcRs,
}

impl Provider {
    pub const ALL: [Provider; 2] = [Provider::Ring, Provider::AwsLcRs];

    pub fn name(self) -> &'static str {
        match self {
            Provider::Ring => "ring",
            Provider::AwsLcRs => "aws-lc-rs",
        }
    }

    /// The built-in provider, constructed explicitly (no default-provider resolution).
    pub fn build(self) -> Box<dyn RTCCryptoProvider> {
        match self {
            Provider::Ring => Box::new(RingProvider::new()),
            Provider::AwsLcRs => Box::new(AwsLcRsProvider::new()),
        }
    }
}

/// The two SRTP protection profiles under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    AeadAes128Gcm,
    Aes128CmHmacSha1_80,
}

impl Profile {
    pub const ALL: [Profile; 2] = [Profile::AeadAes128Gcm, Profile::Aes128CmHmacSha1_80];

    pub fn name(self) -> &'static str {
        match self {
            Profile::AeadAes128Gcm => "AEAD_AES_128_GCM",
            Profile::Aes128CmHmacSha1_80 => "AES128_CM_HMAC_SHA1_80",
        }
    }

    pub fn srtp(self) -> ProtectionProfile {
        match self {
            Profile::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
            Profile::Aes128CmHmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        }
    }

    /// Bytes SRTP appends per RTP packet (the auth tag).
    pub fn overhead(self) -> usize {
        self.srtp().rtp_auth_tag_len() + self.srtp().aead_auth_tag_len()
    }
}

/// One encrypting stream: an SRTP context and the plaintext packet it sends, re-numbered per
/// packet.
pub struct Sender {
    ctx: Context,
    header: rtp::Header,
    packet: Vec<u8>,
}

impl Sender {
    pub fn new(provider: Provider, profile: Profile, payload_len: usize) -> Sender {
        let p = provider.build();
        let salt: &[u8] = match profile {
            Profile::AeadAes128Gcm => &MASTER_SALT_12,
            Profile::Aes128CmHmacSha1_80 => &MASTER_SALT_14,
        };
        let ctx = Context::new(&MASTER_KEY_16, salt, profile.srtp(), None, None, p.crypto())
            .expect("SRTP context");

        let header = rtp::Header {
            version: 2,
            marker: true,
            payload_type: 96,
            sequence_number: 0,
            timestamp: 90_000,
            ssrc: SSRC,
            ..Default::default()
        };
        assert_eq!(header.marshal_size(), HEADER_LEN);

        let mut packet = Vec::with_capacity(HEADER_LEN + payload_len);
        packet.extend_from_slice(&[0x80, 0x80 | 96, 0, 0]);
        packet.extend_from_slice(&header.timestamp.to_be_bytes());
        packet.extend_from_slice(&SSRC.to_be_bytes());
        packet.extend((0..payload_len).map(|i| i as u8));

        let mut s = Sender {
            ctx,
            header,
            packet,
        };
        // First packet creates the per-SSRC state; keep it out of any measurement.
        let out = s.encrypt_next();
        assert_eq!(out.len(), HEADER_LEN + payload_len + profile.overhead());
        s
    }

    /// Plaintext packet length (header + payload).
    pub fn packet_len(&self) -> usize {
        self.packet.len()
    }

    /// Encrypts the next packet: sequence number + 1, then `encrypt_rtp_with_header`.
    #[inline(always)]
    pub fn encrypt_next(&mut self) -> BytesMut {
        let seq = self.header.sequence_number.wrapping_add(1);
        self.header.sequence_number = seq;
        self.packet[2..4].copy_from_slice(&seq.to_be_bytes());
        self.ctx
            .encrypt_rtp_with_header(&self.packet, &self.header)
            .expect("encrypt_rtp_with_header")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both providers produce byte-identical SRTP for the same key, profile and packet.
    #[test]
    fn providers_agree() {
        for profile in Profile::ALL {
            for (_, len) in PAYLOAD_SIZES {
                let mut a = Sender::new(Provider::Ring, profile, len);
                let mut b = Sender::new(Provider::AwsLcRs, profile, len);
                for _ in 0..3 {
                    assert_eq!(a.encrypt_next(), b.encrypt_next());
                }
            }
        }
    }

    /// The output decrypts with an independent context back to the plaintext.
    #[test]
    fn round_trips() {
        for provider in Provider::ALL {
            for profile in Profile::ALL {
                let mut s = Sender::new(provider, profile, 100);
                let p = provider.build();
                let salt: &[u8] = match profile {
                    Profile::AeadAes128Gcm => &MASTER_SALT_12,
                    Profile::Aes128CmHmacSha1_80 => &MASTER_SALT_14,
                };
                let mut rx =
                    Context::new(&MASTER_KEY_16, salt, profile.srtp(), None, None, p.crypto())
                        .unwrap();
                let enc = s.encrypt_next();
                let dec = rx.decrypt_rtp(&enc).unwrap();
                assert_eq!(&dec[..], &s.packet[..]);
            }
        }
    }
}
