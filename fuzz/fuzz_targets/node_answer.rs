//! Another node's HTTP answer to a relay's WHEP offer (status line,
//! headers, plain or chunked body, the SDP's codecs, the Location): it
//! comes from another machine, so it is read without trusting it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kaigi::relay::read_node_answer(data);
});
