//! Configuration text (and a KAIGI_ variable made of the same bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = kaigi::config::Config::parse(text, []);
    if let Some((k, v)) = text.split_once('=') {
        let env = [(format!("KAIGI_{}", k.trim()), v.to_owned())];
        let _ = kaigi::config::Config::parse("", env);
    }
});
