//! VP8 RTP packetisation (RFC 7741) of synthetic frames.
//!
//! The frame bytes are not decodable VP8, but everything an SFU looks at is
//! right: the payload descriptor (X=1, I=1 with a 15-bit PictureID, S=1 and
//! PID=0 on a frame's first packet), the VP8 payload header's P bit (0 =
//! keyframe) and, on keyframes, the start code and dimensions, and the RTP
//! marker on a frame's last packet. Each packet ends with the send-time stamp
//! (see `clock`).

use crate::clock::STAMP_LEN;

/// Largest RTP payload we produce.
pub const MAX_PAYLOAD: usize = 1200;
/// Descriptor length: byte 0, the X byte, a 2-byte PictureID.
pub const DESCRIPTOR_LEN: usize = 4;

/// One packet of a frame: its payload (stamp bytes zeroed, to be filled at
/// send time) and whether it ends the frame (RTP marker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vp8Packet {
    pub payload: Vec<u8>,
    pub marker: bool,
}

/// Splits a synthetic frame of `frame_len` bytes into RTP payloads.
pub fn packetize(frame_len: usize, keyframe: bool, picture_id: u16) -> Vec<Vp8Packet> {
    let room = MAX_PAYLOAD - DESCRIPTOR_LEN - STAMP_LEN;
    let header = vp8_header(keyframe);
    let frame_len = frame_len.max(header.len());
    let count = frame_len.div_ceil(room);
    let mut out = Vec::with_capacity(count);
    let mut left = frame_len;
    for i in 0..count {
        let chunk = left.min(room);
        left -= chunk;
        let mut p = Vec::with_capacity(DESCRIPTOR_LEN + chunk + STAMP_LEN);
        let start = i == 0;
        p.push(0x80 | if start { 0x10 } else { 0 }); // X, S; N=0, PID=0
        p.push(0x80); // I: PictureID present
        p.push(0x80 | ((picture_id >> 8) as u8 & 0x7f)); // M=1: 15-bit PictureID
        p.push(picture_id as u8);
        let body_start = p.len();
        p.resize(body_start + chunk, 0);
        if start {
            p[body_start..body_start + header.len()].copy_from_slice(&header);
        }
        for (j, b) in p[body_start..].iter_mut().enumerate() {
            if !(start && j < header.len()) {
                *b = (j as u8).wrapping_mul(31) ^ picture_id as u8;
            }
        }
        p.extend_from_slice(&[0; STAMP_LEN]);
        out.push(Vp8Packet {
            payload: p,
            marker: i + 1 == count,
        });
    }
    out
}

/// The first bytes of a VP8 frame: the 3-byte frame tag, and for keyframes
/// the start code and a 640x360 size.
fn vp8_header(keyframe: bool) -> Vec<u8> {
    // Frame tag: bit 0 = P (0 keyframe), bits 1-3 version, bit 4 show_frame.
    let tag0 = if keyframe { 0x10 } else { 0x11 };
    let mut h = vec![tag0, 0x00, 0x00];
    if keyframe {
        h.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]);
    }
    h
}

/// Parsed fields of a VP8 payload descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// Bytes the descriptor takes.
    pub len: usize,
    /// Start of a partition.
    pub start: bool,
    /// Partition index.
    pub pid: u8,
    /// PictureID, when present.
    pub picture_id: Option<u16>,
}

/// Parses an RFC 7741 payload descriptor.
pub fn parse_descriptor(p: &[u8]) -> Option<Descriptor> {
    let b0 = *p.first()?;
    let mut len = 1;
    let mut picture_id = None;
    if b0 & 0x80 != 0 {
        let x = *p.get(1)?;
        len = 2;
        if x & 0x80 != 0 {
            let m = *p.get(len)?;
            if m & 0x80 != 0 {
                picture_id = Some(u16::from(m & 0x7f) << 8 | u16::from(*p.get(len + 1)?));
                len += 2;
            } else {
                picture_id = Some(u16::from(m));
                len += 1;
            }
        }
        if x & 0x40 != 0 {
            len += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            len += 1; // TID/KEYIDX
        }
    }
    (p.len() >= len).then_some(Descriptor {
        len,
        start: b0 & 0x10 != 0,
        pid: b0 & 0x07,
        picture_id,
    })
}

/// Whether an RTP payload starts a VP8 keyframe.
pub fn is_keyframe_start(p: &[u8]) -> bool {
    parse_descriptor(p)
        .is_some_and(|d| d.start && d.pid == 0 && p.get(d.len).is_some_and(|b| b & 0x01 == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_keyframe_is_one_marked_packet() {
        let ps = packetize(500, true, 7);
        assert_eq!(ps.len(), 1);
        assert!(ps[0].marker);
        assert!(is_keyframe_start(&ps[0].payload));
        assert_eq!(ps[0].payload.len(), DESCRIPTOR_LEN + 500 + STAMP_LEN);
        let d = parse_descriptor(&ps[0].payload).unwrap();
        assert_eq!(d.picture_id, Some(7));
        assert_eq!(&ps[0].payload[d.len + 3..d.len + 6], &[0x9d, 0x01, 0x2a]);
    }

    #[test]
    fn large_frames_split_under_the_limit_with_one_start_and_one_marker() {
        let ps = packetize(5000, false, 0x1234);
        assert_eq!(
            ps.len(),
            5000usize.div_ceil(MAX_PAYLOAD - DESCRIPTOR_LEN - STAMP_LEN)
        );
        assert!(ps.iter().all(|p| p.payload.len() <= MAX_PAYLOAD));
        let body: usize = ps
            .iter()
            .map(|p| p.payload.len() - DESCRIPTOR_LEN - STAMP_LEN)
            .sum();
        assert_eq!(body, 5000);
        for (i, p) in ps.iter().enumerate() {
            let d = parse_descriptor(&p.payload).unwrap();
            assert_eq!(d.start, i == 0);
            assert_eq!(d.picture_id, Some(0x1234));
            assert_eq!(p.marker, i == ps.len() - 1);
            assert!(!is_keyframe_start(&p.payload));
        }
    }

    #[test]
    fn delta_frame_start_is_not_a_keyframe() {
        let ps = packetize(100, false, 1);
        let d = parse_descriptor(&ps[0].payload).unwrap();
        assert!(d.start);
        assert_eq!(ps[0].payload[d.len] & 1, 1);
    }

    #[test]
    fn parses_short_and_absent_extensions() {
        assert_eq!(
            parse_descriptor(&[0x10, 0xaa]),
            Some(Descriptor {
                len: 1,
                start: true,
                pid: 0,
                picture_id: None
            })
        );
        // X, I with a 7-bit PictureID, L and T.
        let d = parse_descriptor(&[0x90, 0xe0, 0x05, 0x01, 0x02, 0x00]).unwrap();
        assert_eq!((d.len, d.picture_id), (5, Some(5)));
        assert_eq!(parse_descriptor(&[0x80]), None);
    }
}
