//! Join tokens as clients present them (WebSocket, WHIP, WHEP bearer).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let _ = kaigi::auth::verify(b"fuzzing-secret-0123456789", token, "room", 1_800_000_000);
});
