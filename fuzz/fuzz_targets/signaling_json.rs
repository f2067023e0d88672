//! Anything a browser (or an attacker) sends on the signaling WebSocket.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(msg) = serde_json::from_str::<kaigi::protocol::ClientMsg>(text) {
        // What the server derives from a message it accepted.
        let _ = format!("{msg:?}");
    }
    for prefix in ['p', 'l'] {
        let _ = kaigi::protocol::parse_id(prefix, text);
    }
    let _ = kaigi::protocol::clean_name(text);
});
