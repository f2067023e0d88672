//! Video RTP payloads as the SFU reads them to switch layers: keyframe
//! starts for every codec, VP8 descriptors (and their rewriting), frame
//! sizes in VP8 keyframes and H.264 SPS.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfu::codec::{
    VideoCodec, h264_sps_size, is_keyframe_start, parse_vp8, rewrite_vp8, vp8_keyframe_size,
};

fuzz_target!(|data: &[u8]| {
    for codec in [
        VideoCodec::Vp8,
        VideoCodec::Vp9,
        VideoCodec::H264,
        VideoCodec::Av1,
        VideoCodec::Other,
    ] {
        let _ = is_keyframe_start(codec, data);
    }
    let _ = parse_vp8(data);
    let _ = vp8_keyframe_size(data);
    let _ = h264_sps_size(data);
    let mut copy = data.to_vec();
    let _ = rewrite_vp8(&mut copy, 12_345, 7);
});
