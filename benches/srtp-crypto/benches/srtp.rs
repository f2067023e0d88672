//! SRTP encrypt per packet, `ring` vs `aws-lc-rs`, for AEAD_AES_128_GCM and
//! AES128_CM_HMAC_SHA1_80, with 100-byte (audio) and 1200-byte (video) payloads behind a
//! 12-byte RTP header. Criterion reports the time per packet and the throughput in plaintext
//! bytes (header + payload) per second.
//!
//!     CARGO_TARGET_DIR=/tmp/tgt-crypto cargo bench -p kaigi-srtp-crypto --bench srtp
//!
//! Benchmark ids: `encrypt/<profile>/<size>/<provider>`. For a compact packets/s table use the
//! `srtp-table` binary of this crate instead.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kaigi_srtp_crypto::{PAYLOAD_SIZES, Profile, Provider, Sender};

fn encrypt(c: &mut Criterion) {
    for profile in Profile::ALL {
        for (size_name, payload_len) in PAYLOAD_SIZES {
            let mut g = c.benchmark_group(format!(
                "encrypt/{}/{size_name}-{payload_len}B",
                profile.name()
            ));
            g.throughput(Throughput::Bytes(
                (kaigi_srtp_crypto::HEADER_LEN + payload_len) as u64,
            ));
            for provider in Provider::ALL {
                let mut sender = Sender::new(provider, profile, payload_len);
                g.bench_function(provider.name(), |b| {
                    b.iter(|| black_box(sender.encrypt_next()))
                });
            }
            g.finish();
        }
    }
}

criterion_group!(benches, encrypt);
criterion_main!(benches);
