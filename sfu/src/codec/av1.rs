//! AV1 (AOM "RTP Payload Format for AV1"): the first packet of a coded
//! video sequence, from the aggregation header and its OBU elements.

use super::take;

/// N=1 in the aggregation header marks the first packet of a coded video
/// sequence. Z=1 (the packet continues an OBU) contradicts that, and the
/// OBU elements must fit the packet, or a receiver drops it.
pub(super) fn av1_keyframe_start(payload: &[u8]) -> bool {
    //  |Z|Y| W |N|-|-|-|
    let Some((&agg, elements)) = payload.split_first() else {
        return false;
    };
    agg & 0x88 == 0x08 && av1_elements_fit(elements, usize::from((agg >> 4) & 0x03))
}

/// Whether the OBU elements parse: with W=0 each has a LEB128 length; with
/// W=1..3 there are exactly W, the last without a length.
fn av1_elements_fit(mut rest: &[u8], w: usize) -> bool {
    let mut count = 0;
    while !rest.is_empty() {
        count += 1;
        let len = if count == w {
            rest.len()
        } else {
            match leb128(&mut rest) {
                Some(len) => len,
                None => return false,
            }
        };
        match rest.get(len..) {
            Some(tail) if len > 0 => rest = tail,
            _ => return false,
        }
    }
    count > 0 && (w == 0 || count == w)
}

/// An AV1 `leb128()`: at most 8 bytes, a value below 2^32.
fn leb128(rest: &mut &[u8]) -> Option<usize> {
    let mut value = 0u64;
    for i in 0..8 {
        let b = take(rest)?;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return usize::try_from(u32::try_from(value).ok()?).ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::codec::tests::check_prefixes;
    use crate::codec::{VideoCodec, is_keyframe_start};

    #[test]
    fn av1_n_bit_marks_the_start_of_a_coded_video_sequence() {
        // |Z=0|Y=0|W=1|N=1|, then one OBU without length: a sequence header.
        let start = [0x18, 0x08, 0x00, 0x00, 0x00, 0x02, 0xaf];
        check_prefixes(VideoCodec::Av1, &start, 2);
        // W=0: every element has a LEB128 length.
        let counted = [0x08, 0x03, 0x08, 0x00, 0x00, 0x02, 0x30, 0x10];
        check_prefixes(VideoCodec::Av1, &counted, 5); // the first element whole
        // Y=1: the last OBU continues in the next packet; still a start.
        assert!(is_keyframe_start(VideoCodec::Av1, &[0x58, 0x08, 0x00]));
    }

    #[test]
    fn av1_continuations_inter_frames_and_bad_elements_are_not_starts() {
        assert!(!is_keyframe_start(VideoCodec::Av1, &[0x90, 0x11, 0x22])); // Z=1
        assert!(!is_keyframe_start(VideoCodec::Av1, &[0x10, 0x30, 0x10])); // N=0
        assert!(!is_keyframe_start(VideoCodec::Av1, &[0x98, 0x08, 0x00])); // N=1 with Z=1
        assert!(!is_keyframe_start(
            VideoCodec::Av1,
            &[0x28, 0x02, 0x08, 0x00]
        )); // W=2, one OBU
        assert!(!is_keyframe_start(VideoCodec::Av1, &[0x08, 0x05, 0x08])); // length overruns
        assert!(!is_keyframe_start(VideoCodec::Av1, &[0x08, 0x00])); // empty element
        assert!(!is_keyframe_start(
            VideoCodec::Av1,
            &[0x08, 0xff, 0xff, 0xff, 0xff, 0xff]
        )); // LEB128
    }
}
