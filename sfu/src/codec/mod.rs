//! What the SFU needs to know about video payloads, at the RTP payload
//! level, to switch a subscriber between simulcast layers: where a receiver
//! can start decoding (a keyframe's first packet), the frame size a
//! keyframe or SPS announces, and VP8's PictureID/TL0PICIDX rewriting so
//! that the numbering a receiver sees continues across a switch.
//!
//! It owns no state and does not decide anything: which layer to forward,
//! and sequence-number and timestamp rewriting, live in the subscription.
//! Every function takes untrusted bytes, allocates nothing and never panics;
//! a malformed payload is "not a keyframe" / `None` / `false`.

mod av1;
mod h264;
mod vp8;
mod vp9;

pub use h264::h264_sps_size;
pub use vp8::{Vp8Descriptor, parse_vp8, rewrite_vp8, vp8_keyframe_size};

use av1::av1_keyframe_start;
use h264::h264_keyframe_start;
use vp9::parse_vp9;

/// Video codecs kaigi can switch layers of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// VP8, RFC 7741.
    Vp8,
    /// VP9, RFC 9628.
    Vp9,
    /// H.264, RFC 6184 (packetization modes 0 and 1).
    H264,
    /// AV1, the AOM "RTP Payload Format for AV1".
    Av1,
    /// Anything else: never a known keyframe, so never a switching point.
    Other,
}

impl VideoCodec {
    /// The codec of an SDP/`RTCRtpCodec` MIME type such as `video/VP8`,
    /// compared case-insensitively; a bare `VP8` is accepted too.
    pub fn from_mime(mime: &str) -> Self {
        let name = match mime.split_once('/') {
            Some((kind, name)) if kind.eq_ignore_ascii_case("video") => name,
            Some(_) => return Self::Other,
            None => mime,
        };
        // Old Chrome offered AV1 as "AV1X" while the payload format was a draft.
        [
            ("VP8", Self::Vp8),
            ("VP9", Self::Vp9),
            ("H264", Self::H264),
            ("AV1", Self::Av1),
            ("AV1X", Self::Av1),
        ]
        .into_iter()
        .find(|(n, _)| name.eq_ignore_ascii_case(n))
        .map_or(Self::Other, |(_, c)| c)
    }
}

/// Whether this RTP payload starts a keyframe (the first packet of an intra
/// frame), i.e. a receiver can start decoding here.
pub fn is_keyframe_start(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => parse_vp8(payload).is_some_and(|d| d.is_keyframe_start),
        VideoCodec::Vp9 => parse_vp9(payload).is_some_and(|d| d.is_keyframe_start),
        VideoCodec::H264 => h264_keyframe_start(payload),
        VideoCodec::Av1 => av1_keyframe_start(payload),
        VideoCodec::Other => false,
    }
}

/// Takes the next byte off a cursor; `None` at the end, so a truncated
/// payload surfaces as `?` rather than as an index panic.
fn take(rest: &mut &[u8]) -> Option<u8> {
    let (&b, tail) = rest.split_first()?;
    *rest = tail;
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [VideoCodec; 5] = [
        VideoCodec::Vp8,
        VideoCodec::Vp9,
        VideoCodec::H264,
        VideoCodec::Av1,
        VideoCodec::Other,
    ];

    /// Calls every function on `p`; a rewrite that fails must not write.
    fn exercise(p: &[u8]) {
        for codec in ALL {
            is_keyframe_start(codec, p);
        }
        parse_vp8(p);
        vp8_keyframe_size(p);
        h264_sps_size(p);
        let mut copy = p.to_vec();
        if !rewrite_vp8(&mut copy, 12345, 77) {
            assert_eq!(copy, p);
        }
    }

    /// Every prefix of a keyframe-start packet: no panic, no keyframe claim
    /// before `min_len` bytes, and a size parse gives the full packet's
    /// answer or nothing.
    pub(super) fn check_prefixes(codec: VideoCodec, packet: &[u8], min_len: usize) {
        assert!(is_keyframe_start(codec, packet));
        for n in 0..=packet.len() {
            let p = &packet[..n];
            exercise(p);
            if n < min_len {
                assert!(
                    !is_keyframe_start(codec, p),
                    "{codec:?} claims a keyframe in {n} bytes"
                );
            }
            for size in [vp8_keyframe_size(p), h264_sps_size(p)] {
                let full = [vp8_keyframe_size(packet), h264_sps_size(packet)];
                assert!(
                    size.is_none() || full.contains(&size),
                    "prefix {n} gives {size:?}"
                );
            }
        }
    }

    #[test]
    fn from_mime_is_case_insensitive() {
        assert_eq!(VideoCodec::from_mime("video/VP8"), VideoCodec::Vp8);
        assert_eq!(VideoCodec::from_mime("VIDEO/vp9"), VideoCodec::Vp9);
        assert_eq!(VideoCodec::from_mime("video/h264"), VideoCodec::H264);
        assert_eq!(VideoCodec::from_mime("video/AV1"), VideoCodec::Av1);
        assert_eq!(VideoCodec::from_mime("av1"), VideoCodec::Av1);
        assert_eq!(VideoCodec::from_mime("audio/VP8"), VideoCodec::Other);
        assert_eq!(VideoCodec::from_mime("video/H265"), VideoCodec::Other);
        assert_eq!(VideoCodec::from_mime(""), VideoCodec::Other);
        assert!(!is_keyframe_start(VideoCodec::Other, &[0x10, 0x00]));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            exercise(&data);
            // Also behind the first byte of each kind of header.
            for first in [0x90, 0xaa, 0xfc, 0x67, 0x78, 0x7c, 0x08, 0x18] {
                let mut p = vec![first];
                p.extend_from_slice(&data);
                exercise(&p);
            }
        }
    }
}
