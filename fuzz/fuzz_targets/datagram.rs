//! Raw datagrams and ICE-TCP streams as kaigi reads them before the WebRTC
//! stack: the STUN/DTLS/RTP/RTCP demultiplexer, the STUN username a packet
//! is routed by, and RFC 4571 framing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sfu::net::demux::classify(data);
    let _ = sfu::net::demux::is_rtcp(data);
    let _ = sfu::net::demux::stun_local_ufrag(data);
    let mut dec = sfu::net::framing::FrameDecoder::new();
    for chunk in data.chunks(7) {
        dec.push(chunk);
        while dec.next_packet().is_some() {}
    }
    let mut out = vec![0u8; data.len() + 2];
    let _ = sfu::net::framing::frame_into(data, &mut out);
});
