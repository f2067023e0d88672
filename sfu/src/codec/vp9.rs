//! VP9 (RFC 9628): enough of the payload descriptor to tell a keyframe's
//! first packet.

use super::take;

/// What the keyframe test needs from a VP9 payload descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Vp9Descriptor {
    pub(super) is_keyframe_start: bool,
    header_len: usize,
}

/// Parses the whole RFC 9628 payload descriptor, scalability structure
/// included, so that a truncated or garbled one is never taken for a
/// keyframe. `None` if malformed or no VP9 payload byte follows.
pub(super) fn parse_vp9(payload: &[u8]) -> Option<Vp9Descriptor> {
    //  |I|P|L|F|B|E|V|Z|
    let mut rest = payload;
    let first = take(&mut rest)?;
    let [i, p, l, f, b, v] = [0x80, 0x40, 0x20, 0x10, 0x08, 0x02].map(|m| first & m != 0);
    if i {
        //  |M| PICTURE ID |  and, if M, |EXTENDED PID|
        if take(&mut rest)? & 0x80 != 0 {
            take(&mut rest)?;
        }
    }
    let mut spatial_id = 0;
    if l {
        //  |  TID  |U| SID |D|, then TL0PICIDX in non-flexible mode only
        spatial_id = (take(&mut rest)? >> 1) & 0x07;
        if !f {
            take(&mut rest)?;
        }
    }
    if f && p {
        //  |  P_DIFF   |N|  up to 3 times; N says another follows
        let mut more = true;
        for _ in 0..3 {
            if !more {
                break;
            }
            more = take(&mut rest)? & 0x01 != 0;
        }
        if more {
            return None;
        }
    }
    if v {
        skip_vp9_ss(&mut rest)?;
    }
    rest.first()?;
    Some(Vp9Descriptor {
        // A subscriber can start only at the base spatial layer: the upper
        // ones of a keyframe still predict from it.
        is_keyframe_start: b && !p && spatial_id == 0,
        header_len: payload.len() - rest.len(),
    })
}

/// Skips the scalability structure (SS) of a VP9 descriptor.
fn skip_vp9_ss(rest: &mut &[u8]) -> Option<()> {
    //  | N_S |Y|G|-|-|-|
    let head = take(rest)?;
    let spatial_layers = usize::from(head >> 5) + 1;
    if head & 0x10 != 0 {
        // WIDTH and HEIGHT, 16 bits each, per spatial layer.
        *rest = rest.get(spatial_layers * 4..)?;
    }
    if head & 0x08 != 0 {
        //  N_G, then per picture: | TID |U| R |-|-| and R P_DIFF bytes
        for _ in 0..take(rest)? {
            let refs = usize::from((take(rest)? >> 2) & 0x03);
            *rest = rest.get(refs..)?;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::tests::check_prefixes;
    use crate::codec::{VideoCodec, is_keyframe_start};

    /// Non-flexible mode, first packet of a 3-spatial-layer keyframe with
    /// its scalability structure.
    const VP9_KEY_SS: [u8; 26] = [
        0xaa, // I=1 P=0 L=1 F=0 B=1 E=0 V=1 Z=0
        0x81, 0x23, // M=1, PictureID 0x0123
        0x00, // TID=0 U=0 SID=0 D=0
        0x05, // TL0PICIDX
        0x58, // N_S=2 (3 layers) Y=1 G=1
        0x01, 0x40, 0x00, 0xb4, // 320×180
        0x02, 0x80, 0x01, 0x68, // 640×360
        0x05, 0x00, 0x02, 0xd0, // 1280×720
        0x02, // N_G=2
        0x04, 0x01, // TID=0 U=0 R=1, P_DIFF 1
        0x24, 0x01, // TID=1 U=0 R=1, P_DIFF 1
        0x82, 0x49, 0x83, // frame_marker, profile, sync code…
    ];

    #[test]
    fn vp9_non_flexible_keyframe_with_ss() {
        assert_eq!(
            parse_vp9(&VP9_KEY_SS),
            Some(Vp9Descriptor {
                is_keyframe_start: true,
                header_len: 23
            })
        );
        check_prefixes(VideoCodec::Vp9, &VP9_KEY_SS, 24);
        // Without L, I or SS the descriptor is one byte.
        assert!(is_keyframe_start(VideoCodec::Vp9, &[0x08, 0x82]));
    }

    #[test]
    fn vp9_upper_spatial_layer_and_later_packets_are_not_starts() {
        // B=1 P=0 but SID=1 (D=1): the keyframe's second spatial layer.
        let upper = [0xa8, 0x81, 0x23, 0x03, 0x05, 0x82];
        assert_eq!(parse_vp9(&upper).map(|d| d.is_keyframe_start), Some(false));
        // B=0: a later packet of the base layer.
        let later = [0xa0, 0x81, 0x23, 0x00, 0x05, 0x11];
        assert!(!is_keyframe_start(VideoCodec::Vp9, &later));
    }

    #[test]
    fn vp9_flexible_inter_frame_skips_p_diffs() {
        let inter = [
            0xfc, // I=1 P=1 L=1 F=1 B=1 E=1 V=0 Z=0
            0x80, 0x24, // PictureID 36
            0x40, // TID=2 U=0 SID=0 D=0 (no TL0PICIDX in flexible mode)
            0x03, 0x04, // P_DIFF 1 (N=1), P_DIFF 2 (N=0)
            0x86,
        ];
        assert_eq!(
            parse_vp9(&inter),
            Some(Vp9Descriptor {
                is_keyframe_start: false,
                header_len: 6
            })
        );
        // A fourth P_DIFF announced by the third's N bit is malformed.
        assert_eq!(
            parse_vp9(&[0xfc, 0x80, 0x24, 0x40, 0x03, 0x03, 0x03, 0x04, 0x86]),
            None
        );
        // The flexible keyframe: P=0, so no P_DIFF.
        assert!(is_keyframe_start(
            VideoCodec::Vp9,
            &[0xb8, 0x80, 0x24, 0x00, 0x82]
        ));
    }
}
