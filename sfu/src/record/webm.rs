//! A WebM (Matroska) writer for live recordings: VP8 video and Opus audio.
//!
//! Crash safety comes from the layout: the Segment is written with an
//! unknown size and every Cluster is written whole, with its size, in one
//! `write_all`. A process killed at any moment leaves the header and all
//! clusters written before it, which players and ffprobe read as a
//! complete, shorter file. A normal [`Muxer::finish`] then adds Cues (for
//! seeking) and patches the Segment size, Duration and a SeekHead into
//! space reserved for them at the start.

use std::io::{self, Seek, SeekFrom, Write};

use super::{AudioParams, Muxer, VideoFormat, VideoParams};

const EBML: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const SEEK_HEAD: u32 = 0x114D_9B74;
const SEEK: u32 = 0x4DBB;
const SEEK_ID: u32 = 0x53AB;
const SEEK_POSITION: u32 = 0x53AC;
const INFO: u32 = 0x1549_A966;
const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
const DURATION: u32 = 0x4489;
const MUXING_APP: u32 = 0x4D80;
const WRITING_APP: u32 = 0x5741;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const CLUSTER: u32 = 0x1F43_B675;
const TIMESTAMP: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const CUES: u32 = 0x1C53_BB6B;
const CUE_POINT: u32 = 0xBB;
const CUE_TIME: u32 = 0xB3;
const CUE_TRACK_POSITIONS: u32 = 0xB7;
const CUE_TRACK: u32 = 0xF7;
const CUE_CLUSTER_POSITION: u32 = 0xF1;
const VOID: u32 = 0xEC;

/// Bytes reserved after the Segment header for a SeekHead naming the Cues.
const SEEK_HEAD_SPACE: usize = 40;
/// Bytes of a Duration element (2-byte id, 1-byte size, 8-byte float).
const DURATION_SPACE: usize = 11;
/// A cluster's blocks carry 16-bit signed times relative to it.
const MAX_CLUSTER_SPAN_MS: u64 = 30_000;
/// Cut a cluster at a video keyframe once it holds this much.
const KEYFRAME_CLUSTER_MS: u64 = 200;
/// Cut a cluster regardless when it holds this much (long GOPs).
const MAX_CLUSTER_MS: u64 = 5_000;
/// Opus decoders discard this many samples at 48 kHz (RFC 7845).
const OPUS_PRE_SKIP: u16 = 312;

/// A WebM file being written.
pub struct Webm<W: Write + Seek + Send> {
    out: W,
    /// Where the Segment's 8-byte size field is.
    segment_size_at: u64,
    /// Where the Segment's payload starts (Cue positions are relative to it).
    segment_data_at: u64,
    /// Where the reserved SeekHead space is.
    seek_head_at: u64,
    /// Where the reserved Duration space is.
    duration_at: u64,
    /// Bytes written so far (the position of the next write).
    pos: u64,
    video_track: Option<u64>,
    audio_track: Option<u64>,
    /// Blocks of the cluster being filled.
    cluster: Vec<u8>,
    /// Its time (ms).
    cluster_ms: Option<u64>,
    /// Whether it has video yet, and the time of its first video frame if
    /// that is a keyframe (a seek point).
    cluster_video: bool,
    cluster_cue: Option<u64>,
    /// Cue points: (time ms, cluster position relative to the segment data).
    cues: Vec<(u64, u64)>,
    last_video_ms: Option<u64>,
    last_audio_ms: Option<u64>,
    /// The end of the media written (ms), for Duration.
    end_ms: u64,
    dropped: u64,
    finished: bool,
}

impl<W: Write + Seek + Send> Webm<W> {
    /// Starts a file: writes the EBML header, the Segment start, Info and Tracks.
    pub fn new(
        mut out: W,
        video: Option<VideoParams>,
        audio: Option<AudioParams>,
    ) -> io::Result<Self> {
        if video.is_none() && audio.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a recording needs video or audio",
            ));
        }
        if let Some(v) = &video
            && v.format != VideoFormat::Vp8
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "WebM recordings carry VP8 video",
            ));
        }
        let mut head = Vec::with_capacity(512);
        let mut ebml = Vec::new();
        uint_el(&mut ebml, 0x4286, 1); // EBMLVersion
        uint_el(&mut ebml, 0x42F7, 1); // EBMLReadVersion
        uint_el(&mut ebml, 0x42F2, 4); // EBMLMaxIDLength
        uint_el(&mut ebml, 0x42F3, 8); // EBMLMaxSizeLength
        bytes_el(&mut ebml, 0x4282, b"webm"); // DocType
        uint_el(&mut ebml, 0x4287, 4); // DocTypeVersion
        uint_el(&mut ebml, 0x4285, 2); // DocTypeReadVersion
        bytes_el(&mut head, EBML, &ebml);

        write_id(&mut head, SEGMENT);
        let segment_size_at = head.len() as u64;
        // Unknown size (all ones): valid while the recording goes on, and
        // what a killed process leaves behind.
        head.extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        let segment_data_at = head.len() as u64;
        let seek_head_at = head.len() as u64;
        void(&mut head, SEEK_HEAD_SPACE);

        let mut info = Vec::new();
        uint_el(&mut info, TIMESTAMP_SCALE, 1_000_000); // ms
        bytes_el(&mut info, MUXING_APP, b"kaigi");
        bytes_el(&mut info, WRITING_APP, b"kaigi");
        write_id(&mut head, INFO);
        // The Duration space sits at the end of Info: Info's size counts it.
        write_size(&mut head, (info.len() + DURATION_SPACE) as u64);
        head.extend_from_slice(&info);
        let duration_at = head.len() as u64;
        void(&mut head, DURATION_SPACE);

        let mut tracks = Vec::new();
        let mut number = 0;
        let mut video_track = None;
        let mut audio_track = None;
        if let Some(v) = &video {
            number += 1;
            video_track = Some(number);
            let mut e = Vec::new();
            uint_el(&mut e, 0xD7, number); // TrackNumber
            uint_el(&mut e, 0x73C5, number); // TrackUID
            uint_el(&mut e, 0x83, 1); // TrackType: video
            uint_el(&mut e, 0x9C, 0); // FlagLacing
            bytes_el(&mut e, 0x86, b"V_VP8"); // CodecID
            let mut pixels = Vec::new();
            uint_el(&mut pixels, 0xB0, u64::from(v.width)); // PixelWidth
            uint_el(&mut pixels, 0xBA, u64::from(v.height)); // PixelHeight
            bytes_el(&mut e, 0xE0, &pixels); // Video
            bytes_el(&mut tracks, TRACK_ENTRY, &e);
        }
        if let Some(a) = &audio {
            number += 1;
            audio_track = Some(number);
            let mut e = Vec::new();
            uint_el(&mut e, 0xD7, number);
            uint_el(&mut e, 0x73C5, number);
            uint_el(&mut e, 0x83, 2); // TrackType: audio
            uint_el(&mut e, 0x9C, 0);
            bytes_el(&mut e, 0x86, b"A_OPUS");
            bytes_el(&mut e, 0x63A2, &opus_head(a.channels)); // CodecPrivate
            // CodecDelay (ns) = pre-skip; SeekPreRoll 80 ms, as RFC 7845 asks.
            uint_el(
                &mut e,
                0x56AA,
                u64::from(OPUS_PRE_SKIP) * 1_000_000_000 / 48_000,
            );
            uint_el(&mut e, 0x56BB, 80_000_000);
            let mut sound = Vec::new();
            float_el(&mut sound, 0xB5, 48_000.0); // SamplingFrequency
            uint_el(&mut sound, 0x9F, u64::from(a.channels.clamp(1, 2))); // Channels
            bytes_el(&mut e, 0xE1, &sound); // Audio
            bytes_el(&mut tracks, TRACK_ENTRY, &e);
        }
        bytes_el(&mut head, TRACKS, &tracks);
        out.write_all(&head)?;
        Ok(Webm {
            out,
            segment_size_at,
            segment_data_at,
            seek_head_at,
            duration_at,
            pos: head.len() as u64,
            video_track,
            audio_track,
            cluster: Vec::new(),
            cluster_ms: None,
            cluster_video: false,
            cluster_cue: None,
            cues: Vec::new(),
            last_video_ms: None,
            last_audio_ms: None,
            end_ms: 0,
            dropped: 0,
            finished: false,
        })
    }

    /// Frames refused (empty, going back in time, or for a track the file lacks).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The writer, back (for tests).
    pub fn into_inner(self) -> W {
        self.out
    }

    fn block(&mut self, track: u64, ms: u64, keyframe: bool, data: &[u8]) -> io::Result<()> {
        if self.finished {
            return Err(io::Error::other("the recording is finished"));
        }
        let is_video = Some(track) == self.video_track;
        let cut = match self.cluster_ms {
            None => false,
            Some(start) => {
                let span = ms.saturating_sub(start);
                span >= MAX_CLUSTER_MS
                    || span >= MAX_CLUSTER_SPAN_MS
                    // A keyframe starts a cluster's video, so that it can be a seek point.
                    || (keyframe && is_video && self.cluster_video && span >= KEYFRAME_CLUSTER_MS)
                    // An audio frame older than the cluster by more than
                    // the 16-bit relative time allows.
                    || ms + 32_000 < start
            }
        };
        if cut {
            self.write_cluster()?;
        }
        let start = *self.cluster_ms.get_or_insert(ms);
        if is_video && !self.cluster_video {
            self.cluster_video = true;
            self.cluster_cue = keyframe.then_some(ms);
        }
        let rel = (ms as i64 - start as i64).clamp(i16::MIN.into(), i16::MAX.into()) as i16;
        let mut body = Vec::with_capacity(data.len() + 4);
        write_size(&mut body, track);
        body.extend_from_slice(&rel.to_be_bytes());
        body.push(if keyframe { 0x80 } else { 0 });
        body.extend_from_slice(data);
        bytes_el(&mut self.cluster, SIMPLE_BLOCK, &body);
        self.end_ms = self.end_ms.max(ms);
        Ok(())
    }

    /// Writes the cluster being filled, whole, in one write.
    fn write_cluster(&mut self) -> io::Result<()> {
        let Some(start) = self.cluster_ms.take() else {
            return Ok(());
        };
        let mut buf = Vec::with_capacity(self.cluster.len() + 16);
        let mut ts = Vec::new();
        uint_el(&mut ts, TIMESTAMP, start);
        write_id(&mut buf, CLUSTER);
        write_size(&mut buf, (ts.len() + self.cluster.len()) as u64);
        buf.extend_from_slice(&ts);
        buf.extend_from_slice(&self.cluster);
        self.cluster.clear();
        // Seek points: clusters whose video starts with a keyframe.
        let cue = if self.video_track.is_some() {
            self.cluster_cue.take()
        } else {
            Some(start)
        };
        self.cluster_video = false;
        if let Some(ms) = cue {
            self.cues.push((ms, self.pos - self.segment_data_at));
        }
        self.out.write_all(&buf)?;
        self.pos += buf.len() as u64;
        Ok(())
    }
}

impl<W: Write + Seek + Send> Muxer for Webm<W> {
    fn video(&mut self, t_us: u64, keyframe: bool, data: &[u8]) -> io::Result<()> {
        let ms = t_us / 1000;
        let Some(track) = self.video_track else {
            self.dropped += 1;
            return Ok(());
        };
        if data.is_empty() || self.last_video_ms.is_some_and(|l| ms < l) {
            self.dropped += 1;
            return Ok(());
        }
        self.last_video_ms = Some(ms);
        self.block(track, ms, keyframe, data)
    }

    fn audio(&mut self, t_us: u64, data: &[u8]) -> io::Result<()> {
        let ms = t_us / 1000;
        let Some(track) = self.audio_track else {
            self.dropped += 1;
            return Ok(());
        };
        if data.is_empty() || self.last_audio_ms.is_some_and(|l| ms < l) {
            self.dropped += 1;
            return Ok(());
        }
        self.last_audio_ms = Some(ms);
        // Every Opus packet decodes on its own.
        self.block(track, ms, true, data)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.finished {
            return Ok(());
        }
        self.write_cluster()?;
        self.out.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.finished {
            return Ok(());
        }
        self.write_cluster()?;
        self.finished = true;
        // Cues at the end, then what the start left room for.
        let cues_at = self.pos - self.segment_data_at;
        let mut cues = Vec::new();
        let track = self.video_track.or(self.audio_track).unwrap_or(1);
        for &(ms, at) in &self.cues {
            let mut positions = Vec::new();
            uint_el(&mut positions, CUE_TRACK, track);
            uint_el(&mut positions, CUE_CLUSTER_POSITION, at);
            let mut point = Vec::new();
            uint_el(&mut point, CUE_TIME, ms);
            bytes_el(&mut point, CUE_TRACK_POSITIONS, &positions);
            bytes_el(&mut cues, CUE_POINT, &point);
        }
        let mut buf = Vec::new();
        if !self.cues.is_empty() {
            bytes_el(&mut buf, CUES, &cues);
        }
        self.out.write_all(&buf)?;
        self.pos += buf.len() as u64;

        let mut seek_head = Vec::new();
        if !self.cues.is_empty() {
            let mut seek = Vec::new();
            bytes_el(&mut seek, SEEK_ID, &CUES.to_be_bytes());
            let mut p = Vec::new();
            write_id(&mut p, SEEK_POSITION);
            write_size(&mut p, 8);
            p.extend_from_slice(&cues_at.to_be_bytes());
            seek.extend_from_slice(&p);
            let mut entry = Vec::new();
            bytes_el(&mut entry, SEEK, &seek);
            bytes_el(&mut seek_head, SEEK_HEAD, &entry);
        }
        let rest = SEEK_HEAD_SPACE - seek_head.len();
        void(&mut seek_head, rest);

        let mut duration = Vec::new();
        write_id(&mut duration, DURATION);
        write_size(&mut duration, 8);
        // The last frame lasts about as long as a frame: 20 ms is Opus's.
        duration.extend_from_slice(&((self.end_ms + 20) as f64).to_be_bytes());

        let size = self.pos - self.segment_data_at;
        let mut size_field = [0u8; 8];
        size_field[0] = 0x01;
        size_field[1..].copy_from_slice(&size.to_be_bytes()[1..]);

        self.out.seek(SeekFrom::Start(self.seek_head_at))?;
        self.out.write_all(&seek_head)?;
        self.out.seek(SeekFrom::Start(self.duration_at))?;
        self.out.write_all(&duration)?;
        self.out.seek(SeekFrom::Start(self.segment_size_at))?;
        self.out.write_all(&size_field)?;
        self.out.seek(SeekFrom::Start(self.pos))?;
        self.out.flush()
    }
}

/// Opus's CodecPrivate: the identification header of RFC 7845, mapping family 0.
fn opus_head(channels: u8) -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1);
    h.push(channels.clamp(1, 2));
    h.extend_from_slice(&OPUS_PRE_SKIP.to_le_bytes());
    h.extend_from_slice(&48_000u32.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0);
    h
}

fn write_id(buf: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    buf.extend_from_slice(&bytes[skip..]);
}

/// An EBML variable-size integer, in the fewest bytes (up to 8).
fn write_size(buf: &mut Vec<u8>, n: u64) {
    // n = 2^(7k) − 1 is reserved for "unknown" in k bytes, so use k+1 then.
    let len = (1..=8usize)
        .find(|&k| n < (1u64 << (7 * k)) - 1)
        .unwrap_or(8);
    let marked = n | (1u64 << (7 * len));
    buf.extend_from_slice(&marked.to_be_bytes()[8 - len..]);
}

fn bytes_el(buf: &mut Vec<u8>, id: u32, data: &[u8]) {
    write_id(buf, id);
    write_size(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

fn uint_el(buf: &mut Vec<u8>, id: u32, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count().min(7);
    bytes_el(buf, id, &bytes[skip..]);
}

fn float_el(buf: &mut Vec<u8>, id: u32, v: f64) {
    bytes_el(buf, id, &v.to_be_bytes());
}

/// A Void element of exactly `total` bytes (at least 2).
fn void(buf: &mut Vec<u8>, total: usize) {
    debug_assert!(total >= 2);
    write_id(buf, VOID);
    // One size byte while it fits (≤ 126 payload bytes), which it always does here.
    let payload = total.saturating_sub(2);
    buf.push(0x80 | payload.min(126) as u8);
    buf.resize(buf.len() + payload.min(126), 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A tiny EBML reader: (id, payload range) of the elements in `buf`.
    fn elements(buf: &[u8]) -> Vec<(u32, std::ops::Range<usize>)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < buf.len() {
            let (id, n) = read_id(&buf[i..]);
            i += n;
            let (size, n) = read_size(&buf[i..]);
            i += n;
            let end = if size == u64::MAX {
                buf.len()
            } else {
                i + size as usize
            };
            // Not clamped: a truncated element shows as running past the end.
            out.push((id, i..end));
            i = end;
        }
        out
    }

    fn read_id(b: &[u8]) -> (u32, usize) {
        let len = b[0].leading_zeros() as usize + 1;
        let mut id = 0u32;
        for &x in &b[..len] {
            id = id << 8 | u32::from(x);
        }
        (id, len)
    }

    fn read_size(b: &[u8]) -> (u64, usize) {
        let len = b[0].leading_zeros() as usize + 1;
        let mut v = u64::from(b[0]) & ((1 << (8 - len)) - 1);
        for &x in &b[1..len] {
            v = v << 8 | u64::from(x);
        }
        if v == (1u64 << (7 * len)) - 1 {
            return (u64::MAX, len);
        }
        (v, len)
    }

    fn find(buf: &[u8], id: u32) -> Option<std::ops::Range<usize>> {
        elements(buf)
            .into_iter()
            .find(|(i, _)| *i == id)
            .map(|(_, r)| r)
    }

    fn vp8() -> VideoParams {
        VideoParams {
            format: VideoFormat::Vp8,
            width: 640,
            height: 360,
            sps: vec![],
            pps: vec![],
        }
    }

    /// 3 s of 30 fps video (keyframe every second) and 20 ms audio.
    fn sample(finish: bool) -> Vec<u8> {
        let mut w = Webm::new(
            Cursor::new(Vec::new()),
            Some(vp8()),
            Some(AudioParams { channels: 2 }),
        )
        .unwrap();
        let mut a = 0;
        for f in 0..90u64 {
            let t = f * 33_333;
            while a * 20_000 <= t {
                w.audio(a * 20_000, &[0xFC, a as u8]).unwrap();
                a += 1;
            }
            w.video(t, f % 30 == 0, &[f as u8; 100]).unwrap();
            if f % 15 == 14 {
                w.flush().unwrap();
            }
        }
        if finish {
            w.finish().unwrap();
        }
        w.into_inner().into_inner()
    }

    #[test]
    fn sizes_are_minimal_and_never_the_unknown_marker() {
        let enc = |n| {
            let mut b = Vec::new();
            write_size(&mut b, n);
            b
        };
        assert_eq!(enc(0), [0x80]);
        assert_eq!(enc(126), [0xFE]);
        // 127 in one byte would read as "unknown".
        assert_eq!(enc(127), [0x40, 0x7F]);
        assert_eq!(enc(300), [0x41, 0x2C]);
        for n in [
            0u64,
            1,
            126,
            127,
            128,
            16_382,
            16_383,
            1 << 30,
            (1 << 49) - 1,
        ] {
            assert_eq!(read_size(&enc(n)), (n, enc(n).len()), "{n}");
        }
    }

    #[test]
    fn header_describes_both_tracks() {
        let buf = sample(false);
        let top = elements(&buf);
        assert_eq!(top[0].0, EBML);
        let ebml = &buf[top[0].1.clone()];
        assert_eq!(&ebml[find(ebml, 0x4282).unwrap()], b"webm");
        assert_eq!(top[1].0, SEGMENT);
        let seg = &buf[top[1].1.clone()];
        let tracks = &seg[find(seg, TRACKS).unwrap()];
        let entries: Vec<_> = elements(tracks);
        assert_eq!(entries.len(), 2);
        let video = &tracks[entries[0].1.clone()];
        assert_eq!(&video[find(video, 0x86).unwrap()], b"V_VP8");
        let pixels = &video[find(video, 0xE0).unwrap()];
        assert_eq!(&pixels[find(pixels, 0xB0).unwrap()], &640u16.to_be_bytes());
        let audio = &tracks[entries[1].1.clone()];
        assert_eq!(&audio[find(audio, 0x86).unwrap()], b"A_OPUS");
        let head = &audio[find(audio, 0x63A2).unwrap()];
        assert_eq!(&head[..8], b"OpusHead");
        assert_eq!(head[9], 2);
        assert_eq!(u16::from_le_bytes([head[10], head[11]]), 312);
    }

    /// The blocks of every cluster: (track, absolute ms, keyframe, data).
    fn blocks(seg: &[u8]) -> Vec<(u64, u64, bool, Vec<u8>)> {
        let mut out = Vec::new();
        for (id, r) in elements(seg) {
            if id != CLUSTER {
                continue;
            }
            let c = &seg[r];
            let mut base = 0;
            for (id, r) in elements(c) {
                match id {
                    TIMESTAMP => {
                        base = c[r].iter().fold(0u64, |a, &b| a << 8 | u64::from(b));
                    }
                    SIMPLE_BLOCK => {
                        let b = &c[r];
                        let (track, n) = read_size(b);
                        let rel = i16::from_be_bytes([b[n], b[n + 1]]);
                        let key = b[n + 2] & 0x80 != 0;
                        out.push((
                            track,
                            (base as i64 + i64::from(rel)) as u64,
                            key,
                            b[n + 3..].to_vec(),
                        ));
                    }
                    _ => {}
                }
            }
        }
        out
    }

    #[test]
    fn every_frame_is_in_a_cluster_at_its_time() {
        let buf = sample(true);
        let seg_r = elements(&buf)[1].1.clone();
        let seg = &buf[seg_r];
        let b = blocks(seg);
        let video: Vec<_> = b.iter().filter(|x| x.0 == 1).collect();
        let audio: Vec<_> = b.iter().filter(|x| x.0 == 2).collect();
        assert_eq!(video.len(), 90);
        assert_eq!(audio.len(), 149);
        for (f, v) in video.iter().enumerate() {
            assert_eq!(v.1, f as u64 * 33_333 / 1000, "frame {f}");
            assert_eq!(v.2, f % 30 == 0);
            assert_eq!(v.3, vec![f as u8; 100]);
        }
        for (i, a) in audio.iter().enumerate() {
            assert_eq!(a.1, i as u64 * 20);
        }
    }

    #[test]
    fn finish_adds_cues_duration_and_segment_size() {
        let buf = sample(true);
        let top = elements(&buf);
        let seg_r = top[1].1.clone();
        assert_eq!(seg_r.end, buf.len(), "segment size patched to the end");
        let seg = &buf[seg_r.clone()];
        let info = &seg[find(seg, INFO).unwrap()];
        let d = &info[find(info, DURATION).unwrap()];
        let d = f64::from_be_bytes(d.try_into().unwrap());
        assert!((2950.0..3100.0).contains(&d), "{d}");
        // The SeekHead points at the Cues, and each cue at a cluster that starts with a keyframe.
        let sh = &seg[find(seg, SEEK_HEAD).unwrap()];
        let seek = &sh[find(sh, SEEK).unwrap()];
        let pos = &seek[find(seek, SEEK_POSITION).unwrap()];
        let cues_at = u64::from_be_bytes(pos.try_into().unwrap()) as usize;
        let rest = &seg[cues_at..];
        assert_eq!(read_id(rest).0, CUES);
        let cues = &rest[find(rest, CUES).unwrap()];
        let points = elements(cues);
        assert_eq!(points.len(), 3, "one seek point per keyframe (each second)");
        for (_, r) in points {
            let p = &cues[r];
            let tp = &p[find(p, CUE_TRACK_POSITIONS).unwrap()];
            let at = tp[find(tp, CUE_CLUSTER_POSITION).unwrap()]
                .iter()
                .fold(0u64, |a, &b| a << 8 | u64::from(b)) as usize;
            let rest = &seg[at..];
            assert_eq!(read_id(rest).0, CLUSTER);
            let c = &rest[find(rest, CLUSTER).unwrap()];
            // Its first video frame is a keyframe (audio may come before it).
            let b = elements(c)
                .into_iter()
                .filter(|(i, _)| *i == SIMPLE_BLOCK)
                .map(|(_, r)| &c[r])
                .find(|b| b[0] == 0x81)
                .unwrap();
            assert_ne!(b[3] & 0x80, 0, "keyframe");
        }
    }

    #[test]
    fn an_unfinished_file_is_whole_up_to_its_last_cluster() {
        let full = sample(false);
        // Killed: the header and the clusters written so far, nothing patched.
        let top = elements(&full);
        assert_eq!(top.len(), 2);
        let seg = &full[top[1].1.clone()];
        let b = blocks(seg);
        // Flushed every 15 frames: all 90 written.
        assert_eq!(b.iter().filter(|x| x.0 == 1).count(), 90);
        // A cut in the middle of the last cluster leaves the earlier ones whole.
        let clusters: Vec<_> = elements(seg)
            .into_iter()
            .filter(|(i, _)| *i == CLUSTER)
            .collect();
        let last = clusters.last().unwrap().1.clone();
        let cut = top[1].1.start + last.start + 10;
        let truncated = &full[..cut];
        let seg_r = elements(truncated)[1].1.clone();
        let seg = &truncated[seg_r.start..];
        let found = elements(seg);
        let whole = found
            .iter()
            .filter(|(i, r)| *i == CLUSTER && r.end <= seg.len())
            .count();
        assert_eq!(whole, clusters.len() - 1);
        assert!(
            found.last().unwrap().1.end > seg.len(),
            "the cut one runs past the end"
        );
    }

    #[test]
    fn bad_frames_are_dropped_not_written() {
        let mut w = Webm::new(
            Cursor::new(Vec::new()),
            None,
            Some(AudioParams { channels: 1 }),
        )
        .unwrap();
        w.audio(40_000, &[1]).unwrap();
        w.audio(20_000, &[2]).unwrap(); // back in time
        w.audio(60_000, &[]).unwrap(); // empty
        w.video(0, true, &[1]).unwrap(); // no video track
        assert_eq!(w.dropped(), 3);
        w.finish().unwrap();
        assert!(w.audio(80_000, &[3]).is_err());
        assert!(Webm::new(Cursor::new(Vec::new()), None, None).is_err());
    }
}
