//! Join tokens and staff session cookies as clients present them
//! (WebSocket, WHIP, WHEP bearer, Cookie): HS256, EdDSA and ES256 paths.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn keys() -> &'static [kaigi::auth::PublicKey] {
    static KEYS: OnceLock<Vec<kaigi::auth::PublicKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        [kaigi::auth::KeyAlg::EdDsa, kaigi::auth::KeyAlg::Es256]
            .into_iter()
            .map(|alg| {
                let (_, public) = kaigi::auth::generate(alg);
                kaigi::auth::PublicKey::from_pem(&public, None).expect("a key just made")
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let secret = b"fuzzing-secret-0123456789";
    let _ = kaigi::auth::verify_with(secret, keys(), token, "room", 1_800_000_000);
    let _ = kaigi::directory::Staff::open(secret, token, 1_800_000_000);
    let _ = kaigi::auth::PublicKey::from_pem(token, None);
});
