//! VP8 (RFC 7741): the payload descriptor, PictureID/TL0PICIDX rewriting
//! and the frame size in a keyframe's first packet.

use super::take;

/// The VP8 fields an SFU rewrites, and where they are in the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vp8Descriptor {
    /// PictureID (7 or 15 bits), if the I bit is set.
    pub picture_id: Option<u16>,
    /// Whether PictureID is the 15-bit form (M bit), which a rewrite keeps.
    pub picture_id_15bit: bool,
    /// TL0PICIDX, if the L bit is set.
    pub tl0picidx: Option<u8>,
    /// Temporal layer index, if the T bit is set.
    pub tid: Option<u8>,
    /// KEYIDX, if the K bit is set.
    pub keyidx: Option<u8>,
    /// S: this packet starts a VP8 partition.
    pub start_of_partition: bool,
    /// PID: the partition index (0 is the first partition of a frame).
    pub partition_index: u8,
    /// First packet of a keyframe: S=1, PID=0 and the payload header's P=0.
    pub is_keyframe_start: bool,
    /// Descriptor length in bytes: where the VP8 payload starts.
    pub header_len: usize,
}

/// Parses the RFC 7741 payload descriptor. `None` if it is truncated or no
/// VP8 payload byte follows it (a packet always carries some of the frame).
pub fn parse_vp8(payload: &[u8]) -> Option<Vp8Descriptor> {
    //  |X|R|N|S|R| PID |  then, if X:  |I|L|T|K| RSV |
    let mut rest = payload;
    let first = take(&mut rest)?;
    let mut d = Vp8Descriptor {
        start_of_partition: first & 0x10 != 0,
        partition_index: first & 0x07,
        ..Vp8Descriptor::default()
    };
    if first & 0x80 != 0 {
        let ext = take(&mut rest)?;
        if ext & 0x80 != 0 {
            //  |M| PictureID |  and, if M, a second byte of it
            let hi = take(&mut rest)?;
            if hi & 0x80 != 0 {
                let lo = take(&mut rest)?;
                d.picture_id = Some(u16::from_be_bytes([hi & 0x7f, lo]));
                d.picture_id_15bit = true;
            } else {
                d.picture_id = Some(u16::from(hi));
            }
        }
        if ext & 0x40 != 0 {
            d.tl0picidx = Some(take(&mut rest)?);
        }
        if ext & 0x30 != 0 {
            //  |TID|Y| KEYIDX |: one byte for either of T and K
            let b = take(&mut rest)?;
            d.tid = (ext & 0x20 != 0).then_some(b >> 6);
            d.keyidx = (ext & 0x10 != 0).then_some(b & 0x1f);
        }
    }
    // The VP8 payload header |Size0|H|VER|P| is only meaningful at the start
    // of partition 0; there P=0 means an intra frame.
    let vp8_header = *rest.first()?;
    d.header_len = payload.len() - rest.len();
    d.is_keyframe_start = d.start_of_partition && d.partition_index == 0 && vp8_header & 0x01 == 0;
    Some(d)
}

/// Rewrites PictureID and TL0PICIDX in place in `buf` (a copy of the
/// payload, at the payload's offset): picture_id := (picture_id + pid_delta)
/// mod 2^bits (15 or 7 bits, keeping the M bit and width as they were),
/// tl0picidx := tl0picidx + tl0_delta (mod 256). Whichever of the two is
/// present is rewritten. Returns false (and leaves buf untouched) if the
/// payload has neither field or is malformed.
pub fn rewrite_vp8(buf: &mut [u8], pid_delta: u16, tl0_delta: u8) -> bool {
    let Some(d) = parse_vp8(buf) else {
        return false;
    };
    if d.picture_id.is_none() && d.tl0picidx.is_none() {
        return false;
    }
    // Both fields sit right after the X byte, PictureID first; the parse has
    // checked that every byte written below exists.
    let mut at = 2;
    let mut put = |i: usize, v: u8| {
        if let Some(b) = buf.get_mut(i) {
            *b = v;
        }
    };
    if let Some(pid) = d.picture_id {
        let pid = pid.wrapping_add(pid_delta);
        if d.picture_id_15bit {
            let [hi, lo] = (pid & 0x7fff).to_be_bytes();
            put(at, 0x80 | hi);
            put(at + 1, lo);
            at += 2;
        } else {
            put(at, (pid & 0x7f) as u8);
            at += 1;
        }
    }
    if let Some(tl0) = d.tl0picidx {
        put(at, tl0.wrapping_add(tl0_delta));
    }
    true
}

/// Frame size from a VP8 keyframe's first packet (the 10-byte uncompressed
/// header after the descriptor: 3-byte frame tag, start code 9d 01 2a,
/// 14-bit width and height with 2-bit scale). None if not a VP8 keyframe
/// start, truncated, or a zero dimension.
///
/// The 2-bit scale is an upscaling hint for the display, not part of the
/// coded size, so it is dropped.
pub fn vp8_keyframe_size(payload: &[u8]) -> Option<(u16, u16)> {
    let d = parse_vp8(payload)?;
    if !d.is_keyframe_start {
        return None;
    }
    let header: &[u8; 10] = payload.get(d.header_len..)?.get(..10)?.try_into().ok()?;
    let [_, _, _, 0x9d, 0x01, 0x2a, w0, w1, h0, h1] = *header else {
        return None;
    };
    let width = u16::from_le_bytes([w0, w1]) & 0x3fff;
    let height = u16::from_le_bytes([h0, h1]) & 0x3fff;
    (width > 0 && height > 0).then_some((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::tests::check_prefixes;
    use crate::codec::{VideoCodec, is_keyframe_start};
    use proptest::prelude::*;

    /// A 1280×720 keyframe's first packet with every descriptor field.
    const VP8_KEY_720: [u8; 18] = [
        0x90, // X=1 R=0 N=0 S=1 R=0 PID=0
        0xe0, // I=1 L=1 T=1 K=0
        0x92, 0x34, // M=1, PictureID 0x1234 (15 bits)
        0x07, // TL0PICIDX 7
        0x20, // TID=0 Y=1 KEYIDX=0
        // Frame tag, little-endian: P=0 (key), VER=0, show=1, size0 1234.
        0x50, 0x9a, 0x00, //
        0x9d, 0x01, 0x2a, // start code
        0x00, 0x05, // width 1280, scale 0
        0xd0, 0x02, // height 720, scale 0
        0xab, 0xcd, // first bytes of the compressed frame
    ];

    #[test]
    fn vp8_keyframe_start_parses_every_field() {
        let d = parse_vp8(&VP8_KEY_720).unwrap();
        let want = Vp8Descriptor {
            picture_id: Some(0x1234),
            picture_id_15bit: true,
            tl0picidx: Some(7),
            tid: Some(0),
            keyidx: None,
            start_of_partition: true,
            partition_index: 0,
            is_keyframe_start: true,
            header_len: 6,
        };
        assert_eq!(d, want);
        assert!(is_keyframe_start(VideoCodec::Vp8, &VP8_KEY_720));
        assert_eq!(vp8_keyframe_size(&VP8_KEY_720), Some((1280, 720)));
    }

    #[test]
    fn vp8_minimal_descriptor_and_k_only_extension() {
        // |X=0 S=1 PID=0|, then the frame tag of a keyframe.
        assert!(is_keyframe_start(VideoCodec::Vp8, &[0x10, 0x50, 0x9a]));
        // X=1 with only K: |I=0 L=0 T=0 K=1|, then |TID|Y|KEYIDX=5|.
        let d = parse_vp8(&[0x90, 0x10, 0x05, 0x50]).unwrap();
        assert_eq!((d.tid, d.keyidx, d.header_len), (None, Some(5), 3));
        // A 7-bit PictureID: M=0.
        let d = parse_vp8(&[0x90, 0x80, 0x7f, 0x50]).unwrap();
        assert_eq!((d.picture_id, d.picture_id_15bit), (Some(127), false));
    }

    #[test]
    fn vp8_later_packets_and_inter_frames_are_not_keyframe_starts() {
        let mut later = VP8_KEY_720;
        later[0] = 0x80; // S=0: continues partition 0
        assert!(!is_keyframe_start(VideoCodec::Vp8, &later));
        later[0] = 0x91; // S=1 PID=1: starts partition 1, mid-frame
        assert!(!is_keyframe_start(VideoCodec::Vp8, &later));
        let mut inter = VP8_KEY_720;
        inter[6] = 0x51; // P=1
        assert!(!is_keyframe_start(VideoCodec::Vp8, &inter));
        assert_eq!(vp8_keyframe_size(&inter), None);
        // A descriptor with no VP8 payload after it is malformed.
        assert_eq!(parse_vp8(&VP8_KEY_720[..6]), None);
    }

    #[test]
    fn vp8_keyframe_size_ignores_scale_bits() {
        let mut p = VP8_KEY_720;
        p[12..16].copy_from_slice(&[0x80, 0x42, 0x68, 0x81]); // 640 scale 1, 360 scale 2
        assert_eq!(vp8_keyframe_size(&p), Some((640, 360)));
        p[10] = 0x02; // broken start code
        assert_eq!(vp8_keyframe_size(&p), None);
    }

    #[test]
    fn vp8_truncated_keyframe_never_claims_more_than_it_holds() {
        check_prefixes(VideoCodec::Vp8, &VP8_KEY_720, 7);
        for n in 0..16 {
            assert_eq!(vp8_keyframe_size(&VP8_KEY_720[..n]), None);
        }
    }

    #[test]
    fn vp8_rewrite_wraps_15_bit_picture_id() {
        let mut p = VP8_KEY_720;
        p[2..4].copy_from_slice(&[0xff, 0xff]); // PictureID 32767
        assert!(rewrite_vp8(&mut p, 1, 0));
        assert_eq!(&p[2..4], &[0x80, 0x00]); // M kept, PictureID 0
        let d = parse_vp8(&p).unwrap();
        assert_eq!((d.picture_id, d.picture_id_15bit), (Some(0), true));
        // A delta that is "negative" mod 2^16 steps back across the wrap.
        assert!(rewrite_vp8(&mut p, u16::MAX, 0));
        assert_eq!(parse_vp8(&p).unwrap().picture_id, Some(32767));
    }

    #[test]
    fn vp8_rewrite_wraps_7_bit_picture_id() {
        let mut p = [0x90, 0x80, 0x7f, 0x50, 0x9a];
        assert!(rewrite_vp8(&mut p, 1, 0));
        assert_eq!(p, [0x90, 0x80, 0x00, 0x50, 0x9a]);
        assert!(rewrite_vp8(&mut p, 300, 0)); // 300 mod 128 = 44
        assert_eq!(parse_vp8(&p).unwrap().picture_id, Some(44));
    }

    #[test]
    fn vp8_rewrite_wraps_tl0picidx() {
        let mut p = VP8_KEY_720;
        p[4] = 0xff;
        assert!(rewrite_vp8(&mut p, 0, 1));
        assert_eq!(parse_vp8(&p).unwrap().tl0picidx, Some(0));
        // TL0PICIDX alone (L=1, I=0) is rewritten too.
        let mut p = [0x90, 0x40, 0xfe, 0x50];
        assert!(rewrite_vp8(&mut p, 9, 3));
        assert_eq!(p, [0x90, 0x40, 0x01, 0x50]);
    }

    #[test]
    fn vp8_rewrite_leaves_other_bytes_untouched() {
        let mut p = VP8_KEY_720;
        assert!(rewrite_vp8(&mut p, 0x0101, 0x10));
        let mut want = VP8_KEY_720;
        want[2..5].copy_from_slice(&[0x93, 0x35, 0x17]);
        assert_eq!(p, want);
        // No PictureID nor TL0PICIDX, or malformed: nothing is written.
        for orig in [
            &[0x90, 0x20, 0x40, 0x50][..],
            &[0x10, 0x50],
            &[0x90, 0xc0, 0x81],
            &[],
        ] {
            let mut buf = orig.to_vec();
            assert!(!rewrite_vp8(&mut buf, 1, 1));
            assert_eq!(buf, orig);
        }
    }

    /// A VP8 descriptor from its fields, then `tail` as the VP8 payload.
    #[allow(clippy::too_many_arguments)]
    fn vp8_packet(
        s: bool,
        pid: u8,
        picture_id: Option<(u16, bool)>,
        tl0: Option<u8>,
        tid: Option<u8>,
        keyidx: Option<u8>,
        tail: &[u8],
    ) -> Vec<u8> {
        let x = picture_id.is_some() || tl0.is_some() || tid.is_some() || keyidx.is_some();
        let mut p = vec![u8::from(x) << 7 | u8::from(s) << 4 | pid];
        if x {
            let flag = |b: bool, m: u8| if b { m } else { 0 };
            p.push(
                flag(picture_id.is_some(), 0x80)
                    | flag(tl0.is_some(), 0x40)
                    | flag(tid.is_some(), 0x20)
                    | flag(keyidx.is_some(), 0x10),
            );
        }
        match picture_id {
            Some((id, true)) => p.extend_from_slice(&(0x8000 | id).to_be_bytes()),
            Some((id, false)) => p.push(id as u8),
            None => {}
        }
        p.extend(tl0);
        if tid.is_some() || keyidx.is_some() {
            p.push(tid.unwrap_or(0) << 6 | keyidx.unwrap_or(0));
        }
        p.extend_from_slice(tail);
        p
    }

    proptest! {
        #[test]
        fn rewrite_shifts_picture_id_and_tl0picidx(
            s: bool,
            pid in 0u8..8,
            picture_id in proptest::option::of((0u16..0x8000, any::<bool>())),
            tl0: Option<u8>,
            tid in proptest::option::of(0u8..4),
            keyidx in proptest::option::of(0u8..32),
            tail in proptest::collection::vec(any::<u8>(), 1..12),
            pid_delta: u16,
            tl0_delta: u8,
        ) {
            let picture_id = picture_id.map(|(id, wide)| (if wide { id } else { id & 0x7f }, wide));
            let orig = vp8_packet(s, pid, picture_id, tl0, tid, keyidx, &tail);
            let before = parse_vp8(&orig).unwrap();
            prop_assert_eq!(before.picture_id, picture_id.map(|(id, _)| id));
            prop_assert_eq!((before.tl0picidx, before.tid, before.keyidx), (tl0, tid, keyidx));
            prop_assert_eq!(before.header_len, orig.len() - tail.len());

            let mut buf = orig.clone();
            let rewritten = rewrite_vp8(&mut buf, pid_delta, tl0_delta);
            prop_assert_eq!(rewritten, picture_id.is_some() || tl0.is_some());
            let after = parse_vp8(&buf).unwrap();
            let modulus = if before.picture_id_15bit { 1 << 15 } else { 1 << 7 };
            let want_pid = before.picture_id.map(|id| ((u32::from(id) + u32::from(pid_delta)) % modulus) as u16);
            prop_assert_eq!(after.picture_id, want_pid);
            prop_assert_eq!(after.tl0picidx, before.tl0picidx.map(|t| t.wrapping_add(tl0_delta)));
            prop_assert_eq!(
                Vp8Descriptor { picture_id: None, tl0picidx: None, ..after },
                Vp8Descriptor { picture_id: None, tl0picidx: None, ..before }
            );
            prop_assert_eq!(&buf[..2], &orig[..2]);
            prop_assert_eq!(&buf[after.header_len..], &orig[before.header_len..]);
        }
    }
}
