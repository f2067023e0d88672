//! Packets of a broadcast into a recording: reordering, VP8/H.264/Opus
//! depacketization, WebM and fragmented MP4 writing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sfu::record::fuzz_recording_path(data);
});
