//! A broadcast recorded from the worker's packets: a simulcast VP8 camera
//! (the top layer is what is recorded) and Opus, over the simulated
//! network, into a WebM file that is complete when the recording stops.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::Sim;
use sfu::record::{RecordSpec, Recording};

/// Top-level EBML elements of `buf`: (id, payload range).
fn elements(buf: &[u8]) -> Vec<(u32, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < buf.len() {
        let id_len = buf[i].leading_zeros() as usize + 1;
        let id = buf[i..i + id_len]
            .iter()
            .fold(0u32, |a, &b| a << 8 | u32::from(b));
        i += id_len;
        let n = buf[i].leading_zeros() as usize + 1;
        let mut size = u64::from(buf[i]) & ((1 << (8 - n)) - 1);
        for &b in &buf[i + 1..i + n] {
            size = size << 8 | u64::from(b);
        }
        i += n;
        let end = if size == (1u64 << (7 * n)) - 1 {
            buf.len()
        } else {
            i + size as usize
        };
        out.push((id, i..end));
        i = end;
    }
    out
}

fn child(buf: &[u8], id: u32) -> &[u8] {
    let r = elements(buf)
        .into_iter()
        .find(|(i, _)| *i == id)
        .unwrap_or_else(|| panic!("no element {id:x}"))
        .1;
    &buf[r]
}

#[test]
fn a_recording_holds_the_top_layer_and_the_audio_until_stopped() {
    let dir = std::env::temp_dir().join(format!("kaigi-rec-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("broadcast.webm");
    let _ = std::fs::remove_file(&path);

    let mut sim = Sim::new(2);
    sim.join_simulcast("press", "governor");
    sim.run_for(Duration::from_secs(2));
    let src = sim
        .control(|e| e.broadcast_source("press"))
        .expect("the camera and microphone are published");
    let spec = RecordSpec::for_codecs(
        src.video.as_ref().map(|v| v.1.as_str()),
        src.audio.as_ref().map(|a| a.1.as_str()),
    )
    .unwrap();
    assert_eq!(spec.extension(), "webm");
    let rec = Recording::start(&path, spec).unwrap();
    let status = rec.status().clone();
    sim.control(|e| e.start_recording(7, "press", &src, rec.sink.clone()));
    sim.run_for(Duration::from_secs(4));
    sim.control(|e| e.stop_recording(7));
    sim.run_for(Duration::from_millis(50));
    rec.wait();

    assert!(status.done.load(Ordering::Acquire));
    assert!(status.error.lock().unwrap().is_none());
    let media_ms = status.media_ms.load(Ordering::Relaxed);
    assert!((3_500..=4_100).contains(&media_ms), "media {media_ms} ms");

    let file = std::fs::read(&path).unwrap();
    assert_eq!(status.bytes.load(Ordering::Relaxed), file.len() as u64);
    let top = elements(&file);
    assert_eq!(top.len(), 2, "EBML header and a Segment of known size");
    let segment = &file[top[1].1.clone()];
    let tracks = child(segment, 0x1654_AE6B);
    let video = &tracks[elements(tracks)[0].1.clone()];
    let pixels = child(video, 0xE0);
    assert_eq!(child(pixels, 0xB0), 1280u16.to_be_bytes(), "the top layer");
    assert_eq!(child(pixels, 0xBA), 720u16.to_be_bytes());
    let (mut v, mut a) = (0, 0);
    for (id, r) in elements(segment) {
        if id == 0x1F43_B675 {
            let cluster = &segment[r];
            for (id, b) in elements(cluster) {
                if id == 0xA3 {
                    match cluster[b.start] {
                        0x81 => v += 1,
                        0x82 => a += 1,
                        other => panic!("track {other:x}"),
                    }
                }
            }
        }
    }
    // ~4 s at 30 frames/s and 50 packets/s (the first keyframe starts the file).
    assert!((100..=125).contains(&v), "{v} video frames");
    assert!(
        (170..=205).contains(&a),
        "{a} audio frames, dropped {}",
        status.dropped.load(Ordering::Relaxed)
    );
    assert!(
        elements(segment).iter().any(|(id, _)| *id == 0x1C53_BB6B),
        "Cues written at the end"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_recording_follows_the_presenter_switch_and_ends_with_the_broadcast() {
    let dir = std::env::temp_dir().join(format!("kaigi-rec-follow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("follow.webm");
    let _ = std::fs::remove_file(&path);

    let mut sim = Sim::new(2);
    let governor = sim.join("press", "governor");
    let second = sim.join("press", "deputy");
    sim.run_for(Duration::from_secs(1));
    let src = sim.control(|e| e.broadcast_source("press")).unwrap();
    assert_eq!(src.participant, sim.clients[governor].id);
    let spec = RecordSpec::for_codecs(Some("video/VP8"), Some("audio/opus")).unwrap();
    let rec = Recording::start(&path, spec).unwrap();
    let status = rec.status().clone();
    sim.control(|e| e.start_recording(1, "press", &src, rec.sink.clone()));
    sim.run_for(Duration::from_secs(2));
    let (gid, did) = (sim.clients[governor].id, sim.clients[second].id);
    sim.control(|e| e.set_live(gid, vec![did])).unwrap();
    sim.run_for(Duration::from_secs(2));
    // Both leave: nothing is broadcast, the recording ends by itself.
    sim.leave(second);
    sim.leave(governor);
    sim.run_for(Duration::from_millis(100));
    rec.wait();
    assert!(status.done.load(Ordering::Acquire));

    let file = std::fs::read(&path).unwrap();
    let top = elements(&file);
    let segment = &file[top[1].1.clone()];
    // The sim's plain video frames end with their publisher's id.
    let mut tags = Vec::new();
    let mut last_ms = 0i64;
    for (id, r) in elements(segment) {
        if id != 0x1F43_B675 {
            continue;
        }
        let cluster = &segment[r];
        let mut base = 0i64;
        for (id, b) in elements(cluster) {
            if id == 0xE7 {
                base = cluster[b].iter().fold(0i64, |a, &x| a << 8 | i64::from(x));
            } else if id == 0xA3 && cluster[b.start] == 0x81 {
                let block = &cluster[b.clone()];
                let ms = base + i64::from(i16::from_be_bytes([block[1], block[2]]));
                assert!(ms >= last_ms, "video times never go back: {ms} < {last_ms}");
                last_ms = ms;
                tags.push(*block.last().unwrap());
            }
        }
    }
    let (g, d) = (gid as u8, did as u8);
    let switch = tags
        .iter()
        .position(|&t| t == d)
        .expect("the deputy is recorded after the switch");
    assert!(switch > 40, "the governor first: {switch} frames");
    assert!(tags[..switch].iter().all(|&t| t == g));
    assert!(tags[switch..].iter().all(|&t| t == d));
    assert!(
        tags.len() - switch > 40,
        "{} frames of the deputy",
        tags.len() - switch
    );
    let _ = std::fs::remove_dir_all(&dir);
}
