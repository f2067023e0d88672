//! Prints a compact table of SRTP packets/s per core, per provider / profile / payload size.
//!
//!     CARGO_TARGET_DIR=/tmp/tgt-crypto cargo run --release -p kaigi-srtp-crypto --bin srtp-table
//!     ... --bin srtp-table -- --samples 31 --sample-ms 300
//!
//! Each sample times a run of `encrypt_rtp_with_header` calls on one thread for about
//! `--sample-ms`; the cases are interleaved round-robin so that load from elsewhere on a shared
//! machine is spread over all of them. One warm-up round is discarded. Reported: the median
//! time per packet and the packets/s it implies, plus the lowest and highest sample.
//!
//! Instruction counts (no timing): run a fixed number of encrypts of one case under callgrind,
//! counting only inside `srtp_table::counted`:
//!
//!     valgrind --tool=callgrind --toggle-collect=srtp_table::counted \
//!         /tmp/tgt-crypto/release/srtp-table --count 10000 ring AEAD_AES_128_GCM 1200
//!
//! Ir / 10000 = instructions per encrypted packet.

use std::hint::black_box;
use std::process::exit;
use std::time::{Duration, Instant};

use kaigi_srtp_crypto::{HEADER_LEN, PAYLOAD_SIZES, Profile, Provider, Sender};

/// Packets per timed batch (the clock is read once per batch).
const BATCH: u32 = 256;

struct Case {
    provider: Provider,
    profile: Profile,
    payload_len: usize,
    sender: Sender,
    /// ns per packet, one entry per sample.
    samples: Vec<f64>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut samples = 21usize;
    let mut sample_ms = 250u64;
    let mut count: Option<u64> = None;
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage(&format!("{name} needs a number")))
        };
        match a.as_str() {
            "--samples" => samples = value("--samples").max(1) as usize,
            "--sample-ms" => sample_ms = value("--sample-ms").max(1),
            "--count" => count = Some(value("--count")),
            "-h" | "--help" => usage(""),
            _ => positional.push(a.clone()),
        }
    }

    if let Some(n) = count {
        let [provider, profile, size] = positional.as_slice() else {
            usage("--count needs PROVIDER PROFILE PAYLOAD_BYTES");
        };
        let provider = Provider::ALL
            .into_iter()
            .find(|p| p.name() == provider)
            .unwrap_or_else(|| usage("provider is ring or aws-lc-rs"));
        let profile = Profile::ALL
            .into_iter()
            .find(|p| p.name() == profile)
            .unwrap_or_else(|| usage("profile is AEAD_AES_128_GCM or AES128_CM_HMAC_SHA1_80"));
        let size: usize = size
            .parse()
            .unwrap_or_else(|_| usage("payload size in bytes"));
        let mut sender = Sender::new(provider, profile, size);
        // Warm the allocator's size class and the caches outside the counted function.
        for _ in 0..16 {
            black_box(sender.encrypt_next());
        }
        let mut bytes = 0usize;
        for _ in 0..n {
            bytes += counted(&mut sender);
        }
        println!(
            "{} {} {}B payload: {n} packets encrypted, {bytes} bytes out",
            provider.name(),
            profile.name(),
            size
        );
        return;
    }
    if !positional.is_empty() {
        usage("unexpected argument");
    }

    let mut cases = Vec::new();
    for profile in Profile::ALL {
        for (_, payload_len) in PAYLOAD_SIZES {
            for provider in Provider::ALL {
                cases.push(Case {
                    provider,
                    profile,
                    payload_len,
                    sender: Sender::new(provider, profile, payload_len),
                    samples: Vec::with_capacity(samples),
                });
            }
        }
    }

    let per_sample = Duration::from_millis(sample_ms);
    eprintln!(
        "{} cases x {samples} samples x {sample_ms} ms (+1 warm-up round), about {} s",
        cases.len(),
        cases.len() as u64 * (samples as u64 + 1) * sample_ms / 1000
    );
    for round in 0..=samples {
        for case in cases.iter_mut() {
            let ns = time_sample(&mut case.sender, per_sample);
            if round > 0 {
                case.samples.push(ns);
            }
        }
    }

    for case in &mut cases {
        case.samples.sort_by(f64::total_cmp);
    }
    println!(
        "| provider | profile | payload (B) | ns/packet (median) | packets/s per core (median) \
         | MB/s plaintext | packets/s range (min–max sample) | vs ring |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let ring_median = |profile: Profile, payload_len: usize| -> f64 {
        cases
            .iter()
            .find(|c| {
                c.provider == Provider::Ring && c.profile == profile && c.payload_len == payload_len
            })
            .map(|c| median(&c.samples))
            .unwrap_or(f64::NAN)
    };
    for case in &cases {
        let med = median(&case.samples);
        let pps = 1e9 / med;
        let mbs = pps * (HEADER_LEN + case.payload_len) as f64 / 1e6;
        let fastest = 1e9 / case.samples[0];
        let slowest = 1e9 / case.samples[case.samples.len() - 1];
        let vs_ring = ring_median(case.profile, case.payload_len) / med;
        println!(
            "| {} | {} | {} | {:.0} | {} | {:.0} | {}–{} | {:.2}× |",
            case.provider.name(),
            case.profile.name(),
            case.payload_len,
            med,
            thousands(pps),
            mbs,
            thousands(slowest),
            thousands(fastest),
            vs_ring
        );
    }
}

/// One encrypt, kept out of line so callgrind can count exactly this.
#[inline(never)]
fn counted(sender: &mut Sender) -> usize {
    black_box(sender.encrypt_next()).len()
}

/// Encrypts batches until `budget` has passed; returns ns per packet.
fn time_sample(sender: &mut Sender, budget: Duration) -> f64 {
    let start = Instant::now();
    let mut packets = 0u64;
    loop {
        for _ in 0..BATCH {
            black_box(sender.encrypt_next());
        }
        packets += u64::from(BATCH);
        let elapsed = start.elapsed();
        if elapsed >= budget {
            return elapsed.as_nanos() as f64 / packets as f64;
        }
    }
}

fn median(sorted_or_not: &[f64]) -> f64 {
    let mut v = sorted_or_not.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("srtp-table: {msg}");
    }
    eprintln!(
        "usage: srtp-table [--samples N] [--sample-ms MS]\n       \
         srtp-table --count N PROVIDER PROFILE PAYLOAD_BYTES   (for callgrind)\n\
         PROVIDER: ring | aws-lc-rs; PROFILE: AEAD_AES_128_GCM | AES128_CM_HMAC_SHA1_80"
    );
    exit(2)
}
