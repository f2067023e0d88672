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

// ---------------------------------------------------------------- VP8

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

// ---------------------------------------------------------------- VP9

/// What the keyframe test needs from a VP9 payload descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Vp9Descriptor {
    is_keyframe_start: bool,
    header_len: usize,
}

/// Parses the whole RFC 9628 payload descriptor, scalability structure
/// included, so that a truncated or garbled one is never taken for a
/// keyframe. `None` if malformed or no VP9 payload byte follows.
fn parse_vp9(payload: &[u8]) -> Option<Vp9Descriptor> {
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

// ---------------------------------------------------------------- H.264

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
fn h264_keyframe_start(payload: &[u8]) -> bool {
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

// ---------------------------------------------------------------- AV1

/// N=1 in the aggregation header marks the first packet of a coded video
/// sequence. Z=1 (the packet continues an OBU) contradicts that, and the
/// OBU elements must fit the packet, or a receiver drops it.
fn av1_keyframe_start(payload: &[u8]) -> bool {
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
    fn check_prefixes(codec: VideoCodec, packet: &[u8], min_len: usize) {
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

    // ------------------------------------------------------------ VP8

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

    // ------------------------------------------------------------ VP9

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

    // ------------------------------------------------------------ H.264

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

    // ------------------------------------------------------------ AV1

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

    // ------------------------------------------------------------ properties

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
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            exercise(&data);
            // Also behind the first byte of each kind of header.
            for first in [0x90, 0xaa, 0xfc, 0x67, 0x78, 0x7c, 0x08, 0x18] {
                let mut p = vec![first];
                p.extend_from_slice(&data);
                exercise(&p);
            }
        }

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
