//! H.264 (RFC 6184): keyframe starts in single NAL units, STAPs and FUs,
//! and the picture size an SPS announces.

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_STAP_A: u8 = 24;
const NAL_STAP_B: u8 = 25;
const NAL_FU_A: u8 = 28;
const NAL_FU_B: u8 = 29;

/// The type of a NAL unit header, `None` when the forbidden bit says the
/// unit is damaged (a decoder may drop it, so it starts nothing).
fn nal_type(header: u8) -> Option<u8> {
    (header & 0x80 == 0).then_some(header & 0x1f)
}

/// An IDR slice or an SPS at the start of the packet: a decoder can start
/// at either, since encoders send SPS and PPS just before an IDR.
pub(super) fn h264_keyframe_start(payload: &[u8]) -> bool {
    let starts = |t: u8| t == NAL_IDR || t == NAL_SPS;
    let Some((&header, body)) = payload.split_first() else {
        return false;
    };
    match nal_type(header) {
        // A unit of its header alone holds no slice or parameter to decode.
        Some(t @ 1..=23) => !body.is_empty() && starts(t),
        Some(NAL_STAP_A) => stap_find(body, starts).is_some(),
        Some(NAL_STAP_B) => body
            .get(2..)
            .and_then(|units| stap_find(units, starts))
            .is_some(),
        // |F|NRI|Type| |S|E|R|Type|, then the fragment (never empty); FU-B
        // has a 16-bit DON before it.
        Some(NAL_FU_A) => fu_starts(body, 0, starts),
        Some(NAL_FU_B) => fu_starts(body, 2, starts),
        _ => false,
    }
}

/// Whether a fragmentation unit begins a NAL unit of a type `starts` accepts.
fn fu_starts(body: &[u8], don_len: usize, starts: impl Fn(u8) -> bool) -> bool {
    match body.split_first() {
        Some((&fu, data)) => fu & 0x80 != 0 && data.len() > don_len && starts(fu & 0x1f),
        None => false,
    }
}

/// The first NAL unit of a STAP (after its header, and DON for STAP-B)
/// whose type `want` accepts, if the aggregate is well formed: a receiver
/// drops a STAP whose sizes overrun it, so a unit in one starts nothing.
fn stap_find(mut units: &[u8], want: impl Fn(u8) -> bool) -> Option<&[u8]> {
    let mut found = None;
    // Each unit: | size (16 bits) | NAL unit |. A lone trailing byte, with
    // no room for a size, is ignored rather than failing the packet.
    while let [hi, lo, tail @ ..] = units {
        let size = usize::from(u16::from_be_bytes([*hi, *lo]));
        let nal = tail.get(..size).filter(|n| !n.is_empty())?;
        if found.is_none() && nal.first().and_then(|&h| nal_type(h)).is_some_and(&want) {
            found = Some(nal);
        }
        units = tail.get(size..)?;
    }
    found
}

/// Picture size from an H.264 SPS: a single-NAL-unit payload holding the
/// SPS, or a STAP-A/STAP-B aggregating one. Cropping is applied, so a
/// 1080p stream (coded as 1088 lines) gives 1920×1080. `None` if there is
/// no SPS or it is malformed.
pub fn h264_sps_size(payload: &[u8]) -> Option<(u16, u16)> {
    let is_sps = |t: u8| t == NAL_SPS;
    let (&header, body) = payload.split_first()?;
    let nal = match nal_type(header)? {
        NAL_SPS => payload,
        NAL_STAP_A => stap_find(body, is_sps)?,
        NAL_STAP_B => stap_find(body.get(2..)?, is_sps)?,
        _ => return None,
    };
    parse_sps(nal.get(1..)?)
}

/// Longest SPS RBSP kept. Everything needed for the size comes before the
/// VUI, so a longer SPS (a long VUI) is cut, not rejected; only one whose
/// scaling lists alone overrun this fails.
const SPS_MAX: usize = 256;

/// `profile_idc` values whose SPS carries chroma format, bit depths and
/// scaling matrices (H.264 7.3.2.1.1).
const HIGH_PROFILES: [u32; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

/// Parses an SPS RBSP (after the NAL header) up to the frame cropping.
fn parse_sps(ebsp: &[u8]) -> Option<(u16, u16)> {
    let mut rbsp = [0u8; SPS_MAX];
    let len = unescape(ebsp, &mut rbsp);
    let r = &mut BitReader {
        data: rbsp.get(..len)?,
        pos: 0,
    };

    let profile_idc = r.bits(8)?;
    r.bits(8)?; // constraint_set0..5 flags, reserved_zero_2bits
    r.bits(8)?; // level_idc
    if r.ue()? > 31 {
        return None; // seq_parameter_set_id
    }
    let mut chroma_format_idc = 1; // inferred 4:2:0 outside high profiles
    let mut separate_colour_plane = false;
    if HIGH_PROFILES.contains(&profile_idc) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return None;
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()? == 1;
        }
        if r.ue()? > 6 || r.ue()? > 6 {
            return None; // bit_depth_luma/chroma_minus8: at most 14 bits
        }
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? == 1 {
            // seq_scaling_matrix_present_flag: 6 4×4 lists, then 2 (4:2:0,
            // 4:2:2) or 6 (4:4:4) 8×8 lists, each only if flagged present.
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    skip_scaling_list(r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    if r.ue()? > 12 {
        return None; // log2_max_frame_num_minus4
    }
    match r.ue()? {
        0 => {
            if r.ue()? > 12 {
                return None; // log2_max_pic_order_cnt_lsb_minus4
            }
        }
        1 => {
            r.bit()?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = r.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                r.se()?; // offset_for_ref_frame
            }
        }
        2 => {}
        _ => return None,
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = u64::from(r.bit()?);
    if frame_mbs_only == 0 {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let (mut left, mut right, mut top, mut bottom) = (0, 0, 0, 0);
    if r.bit()? == 1 {
        (left, right) = (u64::from(r.ue()?), u64::from(r.ue()?));
        (top, bottom) = (u64::from(r.ue()?), u64::from(r.ue()?));
    }

    // Crop offsets count chroma samples (H.264 7.4.2.1.1, CropUnitX/Y), and
    // field pairs double the vertical unit in interlaced streams.
    let fields = 2 - frame_mbs_only;
    let (unit_x, unit_y) = match (separate_colour_plane, chroma_format_idc) {
        (true, _) | (_, 0) => (1, fields),
        (_, 1) => (2, 2 * fields),
        (_, 2) => (2, fields),
        _ => (1, fields),
    };
    let width = (width_mbs * 16).checked_sub(unit_x * (left + right))?;
    let height = (fields * height_map_units * 16).checked_sub(unit_y * (top + bottom))?;
    let size = (u16::try_from(width).ok()?, u16::try_from(height).ok()?);
    (size.0 > 0 && size.1 > 0).then_some(size)
}

/// Skips one `scaling_list()` (H.264 7.3.2.1.1.1): its length in bits
/// depends on the deltas, which end early once the next scale is 0.
fn skip_scaling_list(r: &mut BitReader, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return None;
            }
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// Copies a NAL unit payload into `out` without its emulation-prevention
/// bytes (the 03 of each 00 00 03), stopping when `out` is full; returns
/// the length written.
fn unescape(ebsp: &[u8], out: &mut [u8]) -> usize {
    let (mut len, mut zeros) = (0, 0);
    for &b in ebsp {
        if zeros >= 2 && b == 0x03 {
            zeros = 0;
            continue;
        }
        let Some(slot) = out.get_mut(len) else {
            break;
        };
        *slot = b;
        len += 1;
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    len
}

/// An MSB-first bit reader with Exp-Golomb codes; `None` past the end.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl BitReader<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(bit))
    }

    /// `n` ≤ 32 bits as an unsigned number.
    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0u32, |acc, _| Some(acc << 1 | self.bit()?))
    }

    /// ue(v). More than 31 leading zeros cannot be a 32-bit value.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let value = (1u64 << zeros) - 1 + u64::from(self.bits(zeros)?);
        u32::try_from(value).ok()
    }

    /// se(v): 1, 2, 3, 4… map to 1, −1, 2, −2…
    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::tests::check_prefixes;
    use crate::codec::{VideoCodec, is_keyframe_start};

    /// SPSs written by x264 0.164 (one frame of a blank picture), each with
    /// the size the encoder was given. They carry VUI and
    /// emulation-prevention bytes; 1080-line ones crop 8 lines of 1088.
    const X264_SPS: [(&str, (u16, u16)); 10] = [
        (
            "6742c01fd9005005ba1000000300100000030328f1832480",
            (1280, 720),
        ),
        (
            "6764001facd9405005ba1000000300100000030328f1831960",
            (1280, 720),
        ),
        (
            "6742c028d900780227e584000003000400000300ca3c60c920",
            (1920, 1080),
        ),
        (
            "67640028acd940780227e584000003000400000300ca3c60c658",
            (1920, 1080),
        ),
        (
            "67f40028919b280f0044f717080000030008000003019478c18cb0",
            (1918, 1078),
        ), // 4:4:4
        (
            "677a0028bcd940780227e261000003000100000300328f183196",
            (1920, 1080),
        ), // 4:2:2
        (
            "67640028acd94078044fdc20000003002000000653e2c5b2c0",
            (1920, 1080),
        ), // interlaced
        (
            "677a0028bcd94078044f5342000003000200000300653e2c5b2c",
            (1918, 1078),
        ), // 4:2:2 interlaced
        (
            "67640028f36501e0089f8984000003000400000300ca3c60c658",
            (1920, 1080),
        ), // 4:0:0
        (
            "676e001fa6cd9405005ba1000003000100000300328f183196",
            (1280, 720),
        ), // High 10
    ];

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn h264_sps_size_of_x264_streams() {
        for (sps, size) in X264_SPS {
            let sps = hex(sps);
            assert_eq!(h264_sps_size(&sps), Some(size), "{sps:02x?}");
            assert!(is_keyframe_start(VideoCodec::H264, &sps));
            check_prefixes(VideoCodec::H264, &sps, 2);
        }
        // QCIF baseline.
        assert_eq!(
            h264_sps_size(&hex("6742c00bd902c4e840000003004000000ca3c50a92")),
            Some((176, 144))
        );
    }

    /// STAP-A carrying SPS, PPS and the start of an IDR slice.
    fn stap_a_keyframe() -> Vec<u8> {
        let sps = hex(X264_SPS[3].0);
        let mut p = vec![0x78]; // F=0 NRI=3 type 24
        p.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        p.extend_from_slice(&sps);
        p.extend_from_slice(&[0x00, 0x04, 0x68, 0xeb, 0xe3, 0xcb]); // PPS (type 8)
        p.extend_from_slice(&[0x00, 0x03, 0x65, 0x88, 0x84]); // IDR (type 5)
        p
    }

    #[test]
    fn h264_stap_a_with_sps_starts_a_keyframe() {
        let p = stap_a_keyframe();
        assert_eq!(h264_sps_size(&p), Some((1920, 1080)));
        let sps_end = 1 + 2 + hex(X264_SPS[3].0).len();
        check_prefixes(VideoCodec::H264, &p, sps_end);
        // The same units behind a STAP-B's decoding order number.
        let mut stap_b = vec![0x79, 0x00, 0x01];
        stap_b.extend_from_slice(&p[1..]);
        assert!(is_keyframe_start(VideoCodec::H264, &stap_b));
        assert_eq!(h264_sps_size(&stap_b), Some((1920, 1080)));
        // IDR only, after an SEI: still a start.
        let idr = [0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x03, 0x65, 0x88, 0x84];
        assert!(is_keyframe_start(VideoCodec::H264, &idr));
        assert_eq!(h264_sps_size(&idr), None);
    }

    #[test]
    fn h264_inter_and_malformed_staps_are_not_starts() {
        let inter = [0x78, 0x00, 0x02, 0x06, 0x05, 0x00, 0x03, 0x41, 0x9a, 0x02];
        assert!(!is_keyframe_start(VideoCodec::H264, &inter));
        // The IDR unit's size overruns the packet.
        let overrun = [0x78, 0x00, 0x09, 0x65, 0x88, 0x84];
        assert!(!is_keyframe_start(VideoCodec::H264, &overrun));
        // A zero-sized unit before the IDR.
        let empty = [0x78, 0x00, 0x00, 0x00, 0x03, 0x65, 0x88, 0x84];
        assert!(!is_keyframe_start(VideoCodec::H264, &empty));
        assert!(!is_keyframe_start(VideoCodec::H264, &[0x78]));
    }

    #[test]
    fn h264_single_nal_units() {
        assert!(is_keyframe_start(
            VideoCodec::H264,
            &[0x65, 0x88, 0x84, 0x00]
        ));
        assert!(!is_keyframe_start(VideoCodec::H264, &[0x41, 0x9a, 0x02]));
        assert!(!is_keyframe_start(VideoCodec::H264, &[0x68, 0xeb])); // PPS
        assert!(!is_keyframe_start(VideoCodec::H264, &[0xe5, 0x88])); // forbidden bit
        assert_eq!(h264_sps_size(&[0x65, 0x88, 0x84]), None);
    }

    #[test]
    fn h264_fu_a_starts_only_at_an_idr_fragment_with_s_set() {
        let start = [0x7c, 0x85, 0x88, 0x84]; // FU indicator NRI=3 type 28; S=1 type 5
        check_prefixes(VideoCodec::H264, &start, 3);
        assert!(!is_keyframe_start(VideoCodec::H264, &[0x7c, 0x05, 0x11])); // middle
        assert!(!is_keyframe_start(VideoCodec::H264, &[0x7c, 0x45, 0x11])); // end
        assert!(!is_keyframe_start(VideoCodec::H264, &[0x5c, 0x81, 0x9a])); // non-IDR start
        assert!(is_keyframe_start(VideoCodec::H264, &[0x7c, 0x87, 0x42])); // SPS start
        // FU-B: S=1 type 5, then a 16-bit DON before the fragment.
        assert!(is_keyframe_start(
            VideoCodec::H264,
            &[0x7d, 0x85, 0x00, 0x01, 0x88]
        ));
        assert!(!is_keyframe_start(
            VideoCodec::H264,
            &[0x7d, 0x85, 0x00, 0x01]
        ));
    }

    /// Writes an SPS bit by bit, for fields x264 never emits.
    #[derive(Default)]
    struct SpsWriter {
        bits: Vec<bool>,
    }

    impl SpsWriter {
        fn u(&mut self, n: u32, v: u64) -> &mut Self {
            self.bits.extend((0..n).rev().map(|i| v >> i & 1 == 1));
            self
        }
        fn ue(&mut self, v: u64) -> &mut Self {
            let len = 64 - (v + 1).leading_zeros();
            self.u(len - 1, 0).u(len, v + 1)
        }
        fn se(&mut self, v: i64) -> &mut Self {
            self.ue(if v > 0 {
                2 * v as u64 - 1
            } else {
                2 * v.unsigned_abs()
            })
        }
        /// The NAL unit: header, RBSP with its stop bit, emulation prevention.
        fn nal(&mut self) -> Vec<u8> {
            self.u(1, 1);
            while self.bits.len() & 7 != 0 {
                self.bits.push(false);
            }
            let mut out = vec![0x67];
            let mut zeros = 0;
            for byte in self.bits.chunks(8) {
                let b = byte.iter().fold(0u8, |acc, &bit| acc << 1 | u8::from(bit));
                if zeros >= 2 && b <= 3 {
                    out.push(0x03);
                    zeros = 0;
                }
                out.push(b);
                zeros = if b == 0 { zeros + 1 } else { 0 };
            }
            out
        }
    }

    #[test]
    fn h264_sps_with_scaling_lists_and_poc_cycle() {
        // High, 4:2:0, interlaced 1280×720: 23 map units of 32 lines = 736,
        // cropped by 4 units of 4 lines.
        let mut w = SpsWriter::default();
        w.u(8, 100).u(8, 0).u(8, 31).ue(0); // profile, flags, level, sps id
        w.ue(1).ue(0).ue(0).u(1, 0); // chroma_format_idc, bit depths, qpprime
        w.u(1, 1); // seq_scaling_matrix_present_flag, then 8 lists:
        w.u(1, 1).se(8).se(-3).se(5).se(-18); // 0: ends early (next scale 0)
        for _ in 1..6 {
            w.u(1, 0);
        }
        w.u(1, 1).se(-8); // 6: 0 at once = default matrix
        w.u(1, 1); // 7: all 64 deltas
        for j in 0..64 {
            w.se(if j % 2 == 0 { 7 } else { -5 });
        }
        w.ue(0).ue(1); // log2_max_frame_num_minus4, pic_order_cnt_type 1
        w.u(1, 0)
            .se(-(1 << 20))
            .se(3)
            .ue(3)
            .se(1)
            .se(-2)
            .se(1 << 19);
        w.ue(4).u(1, 0).ue(79).ue(22); // refs, gaps, 80 mbs wide, 23 map units
        w.u(1, 0).u(1, 1).u(1, 1); // frame_mbs_only=0, mb_adaptive, direct_8x8
        w.u(1, 1).ue(0).ue(0).ue(0).ue(4); // crop bottom 4 units
        w.u(1, 0); // no VUI
        let sps = w.nal();
        assert!(
            sps.windows(3).any(|x| x == [0, 0, 3]),
            "no emulation prevention in {sps:02x?}"
        );
        assert_eq!(h264_sps_size(&sps), Some((1280, 720)));
        check_prefixes(VideoCodec::H264, &sps, 2);
    }

    #[test]
    fn h264_sps_separate_colour_planes_crop_in_luma_samples() {
        // High 4:4:4 Predictive with separate colour planes: 12 lists, and
        // crop units of one sample.
        let mut w = SpsWriter::default();
        w.u(8, 244)
            .u(8, 0)
            .u(8, 40)
            .ue(3)
            .ue(3)
            .u(1, 1)
            .ue(2)
            .ue(2)
            .u(1, 1);
        w.u(1, 1);
        for i in 0..12 {
            w.u(1, u64::from(i >= 8));
            if i >= 8 {
                w.se(-8);
            }
        }
        w.ue(2).ue(2).ue(1).u(1, 0).ue(119).ue(67).u(1, 1).u(1, 1);
        w.u(1, 1).ue(0).ue(2).ue(0).ue(10).u(1, 0);
        let sps = w.nal();
        assert_eq!(h264_sps_size(&sps), Some((1918, 1078)));
        // A long tail (a VUI past the stack buffer) does not matter.
        let mut long = sps.clone();
        long.extend_from_slice(&[0x55; 400]);
        assert_eq!(h264_sps_size(&long), Some((1918, 1078)));
    }

    #[test]
    fn h264_sps_rejects_impossible_values() {
        let mut w = SpsWriter::default();
        w.u(8, 66).u(8, 0).u(8, 30).ue(0).ue(0).ue(3); // pic_order_cnt_type 3
        assert_eq!(h264_sps_size(&w.nal()), None);
        // Cropping more than the picture.
        let mut w = SpsWriter::default();
        w.u(8, 66)
            .u(8, 0)
            .u(8, 30)
            .ue(0)
            .ue(0)
            .ue(2)
            .ue(1)
            .u(1, 0)
            .ue(0)
            .ue(0);
        w.u(1, 1).u(1, 1).u(1, 1).ue(5).ue(5).ue(0).ue(0);
        assert_eq!(h264_sps_size(&w.nal()), None);
    }
}
