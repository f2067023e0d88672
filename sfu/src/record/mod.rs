//! Recording without transcoding: the packets of a broadcast, as they
//! arrive, put back into frames and written to a file that plays even if
//! the process is killed while writing it (WebM for VP8/VP9/AV1 and Opus,
//! fragmented MP4 for H.264 and Opus).
//!
//! The muxers ([`webm`], [`fmp4`]) are pure: they write to any
//! [`std::io::Write`] and know nothing of RTP.

pub mod fmp4;
pub mod webm;

use std::io;

/// How the video of a recording is coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoFormat {
    /// VP8 (WebM).
    Vp8,
    /// VP9 (WebM).
    Vp9,
    /// AV1 (WebM).
    Av1,
    /// H.264 (fragmented MP4).
    H264,
}

/// What a muxer needs to know of the video before its first frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoParams {
    /// The codec.
    pub format: VideoFormat,
    /// Width in pixels of the first keyframe.
    pub width: u16,
    /// Height in pixels of the first keyframe.
    pub height: u16,
    /// H.264 only: the parameter sets of the first keyframe (NAL units
    /// without start codes or length prefixes).
    pub sps: Vec<Vec<u8>>,
    /// H.264 only: see `sps`.
    pub pps: Vec<Vec<u8>>,
}

/// What a muxer needs to know of the (Opus, 48 kHz) audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioParams {
    /// 1 or 2.
    pub channels: u8,
}

/// A container being written: frames in, in decode order per track, with
/// times in microseconds since the start of the recording (the same clock
/// for both tracks, never decreasing within a track).
pub trait Muxer: Send {
    /// One video frame: a VP8/VP9/AV1 frame as the decoder takes it, or
    /// one H.264 access unit as 4-byte-length-prefixed NAL units (AVCC).
    fn video(&mut self, t_us: u64, keyframe: bool, data: &[u8]) -> io::Result<()>;
    /// One Opus packet.
    fn audio(&mut self, t_us: u64, data: &[u8]) -> io::Result<()>;
    /// Writes what is buffered that can be written now (a complete
    /// cluster/fragment); called about once a second so that a killed
    /// process loses at most the last second or two.
    fn flush(&mut self) -> io::Result<()>;
    /// The recording ended normally: writes what is left, and whatever
    /// index the container has for seeking.
    fn finish(&mut self) -> io::Result<()>;
}

mod depack;

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use tracing::{info, warn};

use crate::peer::RtpPacket;
use depack::{Assembler, Item, Payload, Reorder};

/// Packets queued for the writer thread at most; beyond, they are dropped
/// and counted (the forwarding path never waits for a disk).
const QUEUE: usize = 8192;
/// How often what is complete goes to the file: what a killed process loses.
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// How often the file is forced to disk (a power cut loses at most this).
const SYNC_EVERY: Duration = Duration::from_secs(10);
/// How far a track's RTP clock may stray from the arrival clock before it
/// is taken as a jump (an encoder restart) and re-anchored.
const CLOCK_JUMP_US: u64 = 1_000_000;
/// How often a keyframe is asked for while the video waits for one.
const KEYFRAME_EVERY: Duration = Duration::from_secs(1);

/// What is known of a recording while it runs, shared with the control plane.
#[derive(Debug, Default)]
pub struct RecordStatus {
    /// Bytes written to the file.
    pub bytes: AtomicU64,
    /// Media written, in milliseconds.
    pub media_ms: AtomicU64,
    /// Packets not recorded (queue full) or frames dropped (incomplete).
    pub dropped: AtomicU64,
    /// The video waits for a keyframe: the worker asks the publisher.
    pub keyframe_wanted: AtomicBool,
    /// The file is complete (stopped, or the broadcast ended).
    pub done: AtomicBool,
    /// Why it failed, if it did (a full disk, say).
    pub error: Mutex<Option<String>>,
}

/// A packet for a recording.
#[derive(Debug)]
pub struct RecordPacket {
    /// Video (else audio).
    pub video: bool,
    /// When it arrived.
    pub at: Instant,
    /// The packet, shared with the forwarding path.
    pub packet: Arc<RtpPacket>,
}

/// The worker's end of a recording: where its packets go.
#[derive(Debug, Clone)]
pub struct RecordSink {
    tx: Sender<RecordPacket>,
    /// The recording's status.
    pub status: Arc<RecordStatus>,
}

impl RecordSink {
    /// Queues a packet; a full queue drops it (counted), never blocks.
    pub fn send(&self, video: bool, at: Instant, packet: &Arc<RtpPacket>) {
        let p = RecordPacket {
            video,
            at,
            packet: packet.clone(),
        };
        if let Err(TrySendError::Full(_)) = self.tx.try_send(p) {
            self.status.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether the recording asked for a keyframe since the last call.
    pub fn take_keyframe_wanted(&self) -> bool {
        self.status.keyframe_wanted.swap(false, Ordering::Relaxed)
    }
}

/// What a recording holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSpec {
    /// The video codec, if there is video: VP8 (WebM) or H.264 (MP4).
    pub video: Option<VideoFormat>,
    /// Whether there is (Opus) audio.
    pub audio: bool,
}

impl RecordSpec {
    /// The file extension of this kind of recording.
    pub fn extension(&self) -> &'static str {
        match self.video {
            Some(VideoFormat::H264) => "mp4",
            _ => "webm",
        }
    }

    /// A spec for a source's codecs, or why it cannot be recorded.
    pub fn for_codecs(video: Option<&str>, audio: Option<&str>) -> Result<Self, String> {
        let video = match video {
            None => None,
            Some(mime) => Some(match crate::codec::VideoCodec::from_mime(mime) {
                crate::codec::VideoCodec::Vp8 => VideoFormat::Vp8,
                crate::codec::VideoCodec::H264 => VideoFormat::H264,
                _ => {
                    return Err(format!(
                        "{mime} cannot be recorded: kaigi records VP8 (WebM) and H.264 (MP4)"
                    ));
                }
            }),
        };
        let audio = match audio {
            None => false,
            Some(mime) if mime.eq_ignore_ascii_case("audio/opus") => true,
            Some(mime) => return Err(format!("{mime} cannot be recorded: kaigi records Opus")),
        };
        if video.is_none() && !audio {
            return Err("nothing to record".into());
        }
        Ok(RecordSpec { video, audio })
    }
}

/// A running recording: its sink for the worker, its status, its thread.
#[derive(Debug)]
pub struct Recording {
    /// Hand this to the worker hosting the source.
    pub sink: RecordSink,
    /// The file.
    pub path: PathBuf,
    thread: Option<JoinHandle<()>>,
}

impl Recording {
    /// Creates the file (which must not exist) and starts its writer thread.
    pub fn start(path: &Path, spec: RecordSpec) -> std::io::Result<Self> {
        let file = File::options().write(true).create_new(true).open(path)?;
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let status = Arc::new(RecordStatus::default());
        let writer = Writer::new(file, spec, status.clone());
        let name = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("kaigi-record".into())
            .spawn(move || writer.run(rx, &name))?;
        Ok(Recording {
            sink: RecordSink { tx, status },
            path: path.to_owned(),
            thread: Some(thread),
        })
    }

    /// The recording's status.
    pub fn status(&self) -> &Arc<RecordStatus> {
        &self.sink.status
    }

    /// Ends the recording once every other holder of the sink (the worker)
    /// has let go of it, and waits for the file to be complete.
    pub fn wait(mut self) {
        let thread = self.thread.take();
        drop(self);
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

/// A file that keeps the recording's size up to date.
struct Counted {
    file: File,
    status: Arc<RecordStatus>,
    /// Where the next write goes (a finished WebM goes back to patch its header).
    pos: u64,
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.pos += n as u64;
        self.status.bytes.fetch_max(self.pos, Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Seek for Counted {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.pos = self.file.seek(pos)?;
        Ok(self.pos)
    }
}

/// One track's way from packets to timed frames.
struct TrackIn {
    reorder: Reorder<Arc<RtpPacket>>,
    asm: Assembler,
    clock: u64,
    /// The first packet's (extended timestamp, arrival in µs since the
    /// recording's start): the track's place on the common clock.
    anchor: Option<(u64, u64)>,
    /// The last extended timestamp, for unwrapping.
    last_ts: u64,
    /// The stream's SSRC: another one is another source (a presenter switch).
    ssrc: Option<u32>,
}

impl TrackIn {
    fn new(payload: Payload, clock: u64) -> Self {
        TrackIn {
            reorder: Reorder::default(),
            asm: Assembler::new(payload),
            clock,
            anchor: None,
            last_ts: 0,
            ssrc: None,
        }
    }

    /// A frame's time in µs since the recording's start.
    fn time(&mut self, ts: u32, arrival_us: u64) -> u64 {
        let ext = match self.anchor {
            None => {
                let ext = u64::from(ts) + (1 << 32);
                self.anchor = Some((ext, arrival_us));
                ext
            }
            Some(_) => {
                let delta = ts.wrapping_sub(self.last_ts as u32) as i32;
                self.last_ts.saturating_add_signed(i64::from(delta))
            }
        };
        self.last_ts = ext;
        let (a_ts, a_us) = self.anchor.unwrap_or((ext, arrival_us));
        let d = ext as i64 - a_ts as i64;
        let us = d.saturating_mul(1_000_000) / self.clock as i64;
        let t = (a_us as i64).saturating_add(us);
        // A source that restarted (or jumped its clock) is put back on the
        // arrival clock rather than before its own start or far ahead.
        if t.abs_diff(arrival_us as i64) > CLOCK_JUMP_US {
            self.anchor = Some((ext, arrival_us));
            return arrival_us;
        }
        t.max(0) as u64
    }
}

/// The writer thread's state.
struct Writer {
    spec: RecordSpec,
    file: Option<File>,
    muxer: Option<Box<dyn Muxer>>,
    status: Arc<RecordStatus>,
    video: Option<TrackIn>,
    audio: Option<TrackIn>,
    start: Option<Instant>,
    /// The time (µs on the common clock) written as 0: the first keyframe.
    origin: Option<u64>,
    failed: bool,
    last_keyframe_ask: Option<Instant>,
}

impl Writer {
    fn new(file: File, spec: RecordSpec, status: Arc<RecordStatus>) -> Self {
        let video = spec.video.map(|v| {
            let payload = match v {
                VideoFormat::H264 => Payload::H264,
                _ => Payload::Vp8,
            };
            TrackIn::new(payload, 90_000)
        });
        let audio = spec.audio.then(|| TrackIn::new(Payload::Opus, 48_000));
        Writer {
            spec,
            file: Some(file),
            muxer: None,
            status,
            video,
            audio,
            start: None,
            origin: None,
            failed: false,
            last_keyframe_ask: None,
        }
    }

    fn run(mut self, rx: Receiver<RecordPacket>, name: &str) {
        let mut next_flush = Instant::now() + FLUSH_EVERY;
        let mut next_sync = Instant::now() + SYNC_EVERY;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(p) => self.packet(p),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            self.expire(now);
            if now >= next_flush {
                next_flush = now + FLUSH_EVERY;
                self.io(|m| m.flush());
                self.ask_keyframe(now);
            }
            if now >= next_sync {
                next_sync = now + SYNC_EVERY;
                if let Some(f) = self.muxer.as_ref().and(self.file.as_ref()) {
                    let _ = f.sync_data();
                }
            }
        }
        self.io(|m| m.finish());
        if let Some(f) = &self.file {
            let _ = f.sync_all();
        }
        self.status.done.store(true, Ordering::Release);
        info!(
            file = name,
            bytes = self.status.bytes.load(Ordering::Relaxed),
            media_ms = self.status.media_ms.load(Ordering::Relaxed),
            "recording finished"
        );
    }

    fn io(&mut self, f: impl FnOnce(&mut dyn Muxer) -> std::io::Result<()>) {
        if self.failed {
            return;
        }
        if let Some(m) = self.muxer.as_mut()
            && let Err(e) = f(m.as_mut())
        {
            warn!(error = %e, "recording failed; the file ends here");
            *self.status.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
            self.failed = true;
        }
    }

    fn ask_keyframe(&mut self, now: Instant) {
        let waiting = self.video.as_ref().is_some_and(|v| v.asm.needs_keyframe());
        if waiting
            && self
                .last_keyframe_ask
                .is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_EVERY)
        {
            self.last_keyframe_ask = Some(now);
            self.status.keyframe_wanted.store(true, Ordering::Relaxed);
        }
    }

    fn packet(&mut self, p: RecordPacket) {
        let start = *self.start.get_or_insert(p.at);
        let track = if p.video {
            self.video.as_mut()
        } else {
            self.audio.as_mut()
        };
        let Some(track) = track else {
            return;
        };
        let ssrc = p.packet.header.ssrc;
        if track.ssrc.is_some_and(|s| s != ssrc) {
            // The broadcast moved to another presenter: its own numbering and
            // clock; the picture resumes at its first keyframe.
            track.reorder = Reorder::default();
            track.asm.gap();
            track.anchor = None;
        }
        track.ssrc = Some(ssrc);
        let mut items = Vec::new();
        let seq = p.packet.header.sequence_number;
        track.reorder.push(p.at, seq, p.packet, &mut items);
        let arrival = p.at.saturating_duration_since(start).as_micros() as u64;
        self.items(p.video, items, arrival);
    }

    fn expire(&mut self, now: Instant) {
        let start = self.start.unwrap_or(now);
        let arrival = now.saturating_duration_since(start).as_micros() as u64;
        for video in [true, false] {
            let mut items = Vec::new();
            let track = if video {
                self.video.as_mut()
            } else {
                self.audio.as_mut()
            };
            if let Some(t) = track {
                t.reorder.expire(now, &mut items);
            }
            if !items.is_empty() {
                self.items(video, items, arrival);
            }
        }
    }

    fn items(&mut self, video: bool, items: Vec<Item<Arc<RtpPacket>>>, arrival: u64) {
        for item in items {
            let track = if video {
                self.video.as_mut()
            } else {
                self.audio.as_mut()
            };
            let Some(track) = track else {
                return;
            };
            let frame = match item {
                Item::Gap => {
                    track.asm.gap();
                    None
                }
                Item::Packet(p) => track
                    .asm
                    .push(p.header.timestamp, p.header.marker, &p.payload),
            };
            let Some(frame) = frame else {
                continue;
            };
            let t = track.time(frame.ts, arrival);
            self.frame(video, t, frame);
        }
    }

    fn frame(&mut self, video: bool, t: u64, frame: depack::Frame) {
        if self.muxer.is_none() && !self.failed {
            // The file starts with the first keyframe (or the first audio
            // when there is no video): it needs its size, and a decoder
            // could not start earlier anyway.
            let ready = if self.spec.video.is_some() {
                video && frame.keyframe
            } else {
                !video
            };
            if !ready {
                return;
            }
            if let Err(e) = self.open(video.then_some(&frame)) {
                warn!(error = %e, "recording could not start");
                *self.status.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                self.failed = true;
                return;
            }
            self.origin = Some(t);
        }
        let Some(origin) = self.origin else {
            return;
        };
        // Audio from before the first keyframe has no picture to go with.
        let Some(t) = t.checked_sub(origin) else {
            return;
        };
        self.io(|m| {
            if video {
                m.video(t, frame.keyframe, &frame.data)
            } else {
                m.audio(t, &frame.data)
            }
        });
        self.status.media_ms.fetch_max(t / 1000, Ordering::Relaxed);
    }

    fn open(&mut self, keyframe: Option<&depack::Frame>) -> Result<(), String> {
        let file = self.file.as_ref().ok_or("no file")?;
        let out = Counted {
            file: file.try_clone().map_err(|e| e.to_string())?,
            status: self.status.clone(),
            pos: 0,
        };
        let video = match (self.spec.video, keyframe) {
            (Some(format), Some(k)) => {
                let payload = match format {
                    VideoFormat::H264 => Payload::H264,
                    _ => Payload::Vp8,
                };
                let (width, height) = depack::keyframe_size(payload, &k.data)
                    .ok_or("the first keyframe does not say its size")?;
                let of_type = |t: u8| -> Vec<Vec<u8>> {
                    depack::nal_units(&k.data)
                        .filter(|n| n.first().is_some_and(|b| b & 0x1F == t))
                        .map(<[u8]>::to_vec)
                        .collect()
                };
                let (sps, pps) = if format == VideoFormat::H264 {
                    (of_type(7), of_type(8))
                } else {
                    (Vec::new(), Vec::new())
                };
                if format == VideoFormat::H264 && (sps.is_empty() || pps.is_empty()) {
                    return Err("the first H.264 keyframe carries no SPS/PPS".into());
                }
                Some(VideoParams {
                    format,
                    width,
                    height,
                    sps,
                    pps,
                })
            }
            _ => None,
        };
        let audio = self.spec.audio.then_some(AudioParams { channels: 2 });
        let muxer: Box<dyn Muxer> = match self.spec.video {
            Some(VideoFormat::H264) => {
                Box::new(fmp4::Fmp4::new(out, video, audio).map_err(|e| e.to_string())?)
            }
            _ => Box::new(webm::Webm::new(out, video, audio).map_err(|e| e.to_string())?),
        };
        self.muxer = Some(muxer);
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.status.done.store(true, Ordering::Release);
    }
}

/// Runs untrusted bytes through the recording path (fuzzing): they are cut
/// into RTP-like packets (sequence number, timestamp, marker, payload) for
/// VP8, H.264 and Opus, reordered, joined into frames and written by both
/// muxers into memory. It must never panic, whatever the bytes.
#[doc(hidden)]
pub fn fuzz_recording_path(data: &[u8]) {
    use std::io::Cursor;
    let now = Instant::now();
    let mut rest = data;
    let mut webm: Option<webm::Webm<Cursor<Vec<u8>>>> = None;
    let mut mp4: Option<fmp4::Fmp4<Vec<u8>>> = None;
    let mut tracks = [
        (Reorder::default(), Assembler::new(Payload::Vp8)),
        (Reorder::default(), Assembler::new(Payload::H264)),
        (Reorder::default(), Assembler::new(Payload::Opus)),
    ];
    let mut t_us = 0u64;
    while rest.len() >= 8 {
        let kind = usize::from(rest[0] % 3);
        let seq = u16::from_be_bytes([rest[1], rest[2]]);
        let ts = u32::from_be_bytes([rest[3], rest[4], rest[5], rest[6]]);
        let marker = rest[7] & 0x80 != 0;
        let len = usize::from(rest[7] & 0x7F).min(rest.len() - 8);
        let payload = &rest[8..8 + len];
        rest = &rest[8 + len..];
        t_us += u64::from(ts % 50_000);
        let (reorder, asm) = &mut tracks[kind];
        let mut items = Vec::new();
        reorder.push(now, seq, (ts, marker, payload.to_vec()), &mut items);
        reorder.expire(
            now + Duration::from_millis(u64::from(seq % 400)),
            &mut items,
        );
        for item in items {
            let frame = match item {
                Item::Gap => {
                    asm.gap();
                    None
                }
                Item::Packet((ts, marker, p)) => asm.push(ts, marker, &p),
            };
            let Some(frame) = frame else {
                continue;
            };
            let payload = [Payload::Vp8, Payload::H264, Payload::Opus][kind];
            let size = depack::keyframe_size(payload, &frame.data);
            match payload {
                Payload::Opus => {
                    if let Some(w) = webm.as_mut() {
                        let _ = w.audio(t_us, &frame.data);
                    }
                    if let Some(m) = mp4.as_mut() {
                        let _ = m.audio(t_us, &frame.data);
                    }
                }
                Payload::Vp8 => {
                    if webm.is_none()
                        && let Some((width, height)) = size
                    {
                        let video = VideoParams {
                            format: VideoFormat::Vp8,
                            width,
                            height,
                            sps: Vec::new(),
                            pps: Vec::new(),
                        };
                        let audio = Some(AudioParams { channels: 2 });
                        webm = webm::Webm::new(Cursor::new(Vec::new()), Some(video), audio).ok();
                    }
                    if let Some(w) = webm.as_mut() {
                        let _ = w.video(t_us, frame.keyframe, &frame.data);
                    }
                }
                Payload::H264 => {
                    if mp4.is_none()
                        && let Some((width, height)) = size
                    {
                        let of = |t: u8| -> Vec<Vec<u8>> {
                            depack::nal_units(&frame.data)
                                .filter(|n| n.first().is_some_and(|b| b & 0x1F == t))
                                .map(<[u8]>::to_vec)
                                .collect()
                        };
                        let video = VideoParams {
                            format: VideoFormat::H264,
                            width,
                            height,
                            sps: of(7),
                            pps: of(8),
                        };
                        mp4 = fmp4::Fmp4::new(
                            Vec::new(),
                            Some(video),
                            Some(AudioParams { channels: 2 }),
                        )
                        .ok();
                    }
                    if let Some(m) = mp4.as_mut() {
                        let _ = m.video(t_us, frame.keyframe, &frame.data);
                    }
                }
            }
        }
    }
    if let Some(w) = webm.as_mut() {
        let _ = w.flush();
        let _ = w.finish();
    }
    if let Some(m) = mp4.as_mut() {
        let _ = m.flush();
        let _ = m.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuzz_entry_takes_anything() {
        let mut seed = 1u64;
        for n in 0..300 {
            let bytes: Vec<u8> = (0..n * 7)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (seed >> 56) as u8
                })
                .collect();
            fuzz_recording_path(&bytes);
        }
    }

    #[test]
    fn track_times_follow_rtp_timestamps_from_the_first_arrival() {
        let mut t = TrackIn::new(Payload::Opus, 48_000);
        assert_eq!(t.time(1920, 500), 500);
        assert_eq!(t.time(2880, 900), 20_500);
        // Across the 32-bit wrap.
        let mut t = TrackIn::new(Payload::Opus, 48_000);
        assert_eq!(t.time(u32::MAX - 959, 0), 0);
        assert_eq!(t.time(0, 0), 20_000);
        assert_eq!(t.time(960, 30_000), 40_000);
        // An encoder restart (timestamps from 0 again) 10 s in: back on the arrival clock.
        assert_eq!(t.time(480, 10_000_000), 10_000_000);
        assert_eq!(t.time(1440, 10_020_000), 10_020_000);
    }
}
