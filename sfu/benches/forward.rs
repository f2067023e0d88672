//! The forward path, measured without sockets: one publisher's SRTP video
//! packet enters a worker (decrypt once) and leaves encrypted for each of N
//! viewers. Criterion reports the time per forwarded packet (throughput =
//! N elements per input packet). The publisher's own encryption is done in
//! the batch set-up and not measured.
//!
//!     cargo bench -p kaigi-sfu --bench forward
//!
//! For stable counts on a busy machine, count instructions instead of time:
//!
//!     FORWARD_COUNT=200 valgrind --tool=callgrind --toggle-collect=forward::forward_one \
//!         target/release/deps/forward-<hash>
//!
//! (runs 200 packets to 10 viewers; Ir / 2000 = instructions per forwarded packet).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sfu::{Output, Transport};

fn world(viewers: usize) -> common::Sim {
    let mut sim = common::Sim::new(1);
    sim.join("bench", "publisher");
    for i in 0..viewers {
        sim.join_viewer("bench", &format!("viewer-{i}"));
    }
    sim.run_for(Duration::from_secs(3));
    for v in 1..=viewers {
        assert!(
            sim.received(v, 0)[1] > 0,
            "viewer {v} receives before measuring"
        );
    }
    sim
}

/// One input packet through the worker; returns the bytes sent.
#[inline(never)]
fn forward_one(
    sim: &mut common::Sim,
    datagrams: Vec<(std::net::SocketAddr, bytes::BytesMut)>,
) -> usize {
    let now = sim.now;
    let w = &mut sim.workers[0];
    for (from, data) in datagrams {
        w.handle_datagram(now, from, Transport::Udp, data);
    }
    let mut sent = 0usize;
    while let Some(out) = w.poll_output() {
        if let Output::Transmit(t) = out {
            sent += t.data.len();
        }
    }
    sent
}

fn forward(c: &mut Criterion) {
    if let Some(n) = std::env::var("FORWARD_COUNT")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let mut sim = world(10);
        for _ in 0..n {
            let d = sim.publisher_datagrams(0, 1, 1200);
            std::hint::black_box(forward_one(&mut sim, d));
        }
        std::process::exit(0);
    }
    let mut group = c.benchmark_group("forward_video_1200B");
    for viewers in [1usize, 10, 100] {
        let mut sim = world(viewers);
        group.throughput(Throughput::Elements(viewers as u64));
        group.bench_function(format!("{viewers}_viewers"), |b| {
            b.iter_custom(|iters| {
                let mut measured = Duration::ZERO;
                for _ in 0..iters {
                    let datagrams = sim.publisher_datagrams(0, 1, 1200);
                    let start = Instant::now();
                    let sent = forward_one(&mut sim, datagrams);
                    measured += start.elapsed();
                    std::hint::black_box(sent);
                }
                measured
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).sample_size(30);
    targets = forward
}
criterion_main!(benches);
