//! One outgoing copy of a published track for one subscriber (mediasoup's
//! Consumer): which sender carries it and how each forwarded packet is
//! rewritten (SSRC, payload type, header extensions).

use rtc::rtp_transceiver::RTCRtpSenderId;

use crate::peer::{Codec, RtpPacket};
use crate::{MediaKind, ParticipantId, TrackId};

/// A track forwarded to one subscriber.
#[derive(Debug)]
pub struct Subscription {
    /// The subscriber.
    pub subscriber: ParticipantId,
    /// What it receives.
    pub track: TrackId,
    /// Audio or video.
    pub kind: MediaKind,
    /// The codec of the source.
    pub codec: Codec,
    /// The sender on the subscriber's subscribe peer.
    pub sender: RTCRtpSenderId,
    /// The SSRC kaigi sends it with.
    pub ssrc: u32,
    /// The payload type the subscriber negotiated; `None` until its answer is applied.
    pub payload_type: Option<u8>,
}

impl Subscription {
    /// The packet as this subscriber must receive it, or `None` while the
    /// subscription is not negotiated. The payload is shared, not copied.
    ///
    /// Header extensions are stripped: their ids are negotiated per peer
    /// connection and the subscriber's stack adds its own (transport-wide
    /// sequence numbers).
    pub fn rewrite(&self, packet: &RtpPacket) -> Option<RtpPacket> {
        let pt = self.payload_type?;
        let mut out = RtpPacket {
            header: rtc::rtp::header::Header {
                version: packet.header.version,
                padding: false,
                extension: false,
                marker: packet.header.marker,
                payload_type: pt,
                sequence_number: packet.header.sequence_number,
                timestamp: packet.header.timestamp,
                ssrc: self.ssrc,
                csrc: Vec::new(),
                extension_profile: 0,
                extensions: Vec::new(),
                extensions_padding: 0,
            },
            payload: packet.payload.clone(),
        };
        // Padding-only packets carry nothing a subscriber can use.
        if packet.header.padding && out.payload.is_empty() {
            return None;
        }
        out.header.padding = false;
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn sub(pt: Option<u8>) -> Subscription {
        Subscription {
            subscriber: 2,
            track: TrackId {
                participant: 1,
                index: 0,
            },
            kind: MediaKind::Video,
            codec: Codec {
                mime_type: "video/VP8".into(),
                clock_rate: 90000,
                channels: 0,
                fmtp: String::new(),
            },
            sender: RTCRtpSenderId::default(),
            ssrc: 0xABCD,
            payload_type: pt,
        }
    }

    fn packet() -> RtpPacket {
        let mut p = RtpPacket::default();
        p.header.version = 2;
        p.header.payload_type = 120;
        p.header.sequence_number = 77;
        p.header.timestamp = 9000;
        p.header.ssrc = 1234;
        p.header.marker = true;
        p.header.extension = true;
        p.header.extensions.push(rtc::rtp::header::Extension {
            id: 3,
            payload: Bytes::from_static(&[1, 2]),
        });
        p.payload = Bytes::from_static(b"frame");
        p
    }

    #[test]
    fn waits_for_negotiation() {
        assert!(sub(None).rewrite(&packet()).is_none());
    }

    #[test]
    fn rewrites_ssrc_and_payload_type_and_shares_payload() {
        let p = packet();
        let out = sub(Some(96)).rewrite(&p).unwrap();
        assert_eq!(out.header.ssrc, 0xABCD);
        assert_eq!(out.header.payload_type, 96);
        assert_eq!(out.header.sequence_number, 77);
        assert_eq!(out.header.timestamp, 9000);
        assert!(out.header.marker);
        assert!(out.header.extensions.is_empty());
        assert!(!out.header.extension);
        assert_eq!(out.payload.as_ptr(), p.payload.as_ptr());
    }
}
