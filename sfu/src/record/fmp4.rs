//! A fragmented MP4 (ISO BMFF, CMAF-style) writer for live recordings:
//! H.264 video and Opus audio.
//!
//! The header (`ftyp`, then a `moov` with empty sample tables and an
//! `mvex`) goes out at once; media then goes out as `moof` + `mdat`
//! fragments, each built in memory and written with one `write_all`. A
//! process killed at any moment leaves the header, every earlier fragment
//! and at most a truncated last one, which players read as a complete,
//! shorter file: nothing is patched afterwards and no index is needed.
//! A sample lasts until the next one of its track, so each track's last
//! sample waits for its successor (or for `finish`). This module owns the
//! byte layout only: the file, and when it reaches the disk, are the caller's.

use std::io::{self, Write};

use super::{AudioParams, Muxer, VideoFormat, VideoParams};

// Ticks a second: the RTP clock of H.264, and Opus's sample rate.
const VIDEO_TIMESCALE: u32 = 90_000;
const AUDIO_TIMESCALE: u32 = 48_000;
/// A video keyframe starts a new fragment once the current one holds this much.
const KEYFRAME_FRAGMENT_US: u64 = 1_000_000;
/// A fragment is cut anyway once it holds this much (long GOPs, audio alone).
const MAX_FRAGMENT_US: u64 = 2_000_000;
/// A fragment is cut before its media would pass this size.
const MAX_FRAGMENT_BYTES: usize = 4 << 20;
/// A fragment is cut at this many samples (which bounds its `moof`).
const MAX_FRAGMENT_SAMPLES: usize = 4096;
/// Larger frames are refused: no real one is, and with the limits above
/// every size and offset of a fragment then fits its 32-bit field.
const MAX_SAMPLE_BYTES: usize = 64 << 20;
/// Opus decoders discard this many samples at 48 kHz (RFC 7845).
const OPUS_PRE_SKIP: u16 = 312;
// `trun` sample flags of a sync sample, and of one that depends on others.
const SYNC: u32 = 0x0200_0000;
const NON_SYNC: u32 = 0x0101_0000;
// `tfhd`: default-base-is-moof (data offsets count from the `moof`);
// `trun`: a data offset, then each sample's duration, size and flags.
const TFHD_FLAGS: u32 = 0x02_0000;
const TRUN_FLAGS: u32 = 0x00_0701;

/// A sample waiting for its successor; its bytes are the tail of `Track::data`.
struct Pending {
    t: u64,
    sync: bool,
    len: usize,
}

/// One track: its last sample and its part of the fragment being filled.
#[derive(Default)]
struct Track {
    id: u32,
    video: bool,
    timescale: u32,
    /// The last accepted time (µs): earlier ones are refused.
    last_us: Option<u64>,
    pending: Option<Pending>,
    /// The duration of the last sample committed, for the very last one.
    last_duration: Option<u32>,
    /// The fragment's first decode time (its `tfdt`).
    base: u64,
    /// (duration, size, flags) of the fragment's samples.
    samples: Vec<[u32; 3]>,
    /// The sum of their durations.
    ticks: u64,
    /// Their bytes, then the pending sample's.
    data: Vec<u8>,
}

impl Track {
    /// A time in the track's timescale. Absolute times are converted and
    /// durations taken between them, so rounding never accumulates.
    fn to_ticks(&self, t_us: u64) -> u64 {
        // At most t_us * 0.09: it fits.
        (u128::from(t_us) * u128::from(self.timescale) / 1_000_000) as u64
    }

    /// Bytes of the fragment's samples (without the pending one).
    fn committed(&self) -> usize {
        let pending = self.pending.as_ref().map_or(0, |p| p.len);
        self.data.len().saturating_sub(pending)
    }

    /// Media of the fragment's samples, in µs.
    fn span_us(&self) -> u64 {
        self.ticks.saturating_mul(1_000_000) / u64::from(self.timescale)
    }
}

/// Where a file stands: it takes frames until finished or until a write fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Finished,
    Failed,
}

/// A fragmented MP4 file being written (H.264 and/or Opus).
pub struct Fmp4<W: Write + Send> {
    out: W,
    /// Video first (track 1) when there is video, then audio.
    tracks: Vec<Track>,
    /// The last `mfhd` sequence number (the first fragment's is 1).
    sequence: u32,
    dropped: u64,
    state: State,
    /// The fragment being built, kept for its capacity.
    buf: Vec<u8>,
}

impl<W: Write + Send> Fmp4<W> {
    /// Starts a file: checks the parameters and writes `ftyp` and `moov`.
    pub fn new(
        mut out: W,
        video: Option<VideoParams>,
        audio: Option<AudioParams>,
    ) -> io::Result<Self> {
        let invalid = |m: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, m.to_owned()));
        if video.is_none() && audio.is_none() {
            return invalid("an MP4 recording needs video or audio");
        }
        // avcC counts SPSs in 5 bits and PPSs in 8, and sizes each in 16.
        let fit = |sets: &[Vec<u8>], max: usize, kind: u8| {
            let fits =
                |s: &Vec<u8>| s.len() <= 0xFFFF && s.first().is_some_and(|b| b & 0x1F == kind);
            (1..=max).contains(&sets.len()) && sets.iter().all(fits)
        };
        if let Some(v) = &video
            && (v.format != VideoFormat::H264
                || !fit(&v.sps, 31, 7)
                || !fit(&v.pps, 255, 8)
                || v.sps.first().is_none_or(|s| s.len() < 4))
        {
            return invalid("MP4 recordings carry H.264 with its SPS and PPS");
        }
        if audio.is_some_and(|a| !(1..=2).contains(&a.channels)) {
            return invalid("Opus in MP4 is recorded as mono or stereo");
        }
        out.write_all(&header(video.as_ref(), audio.as_ref()))?;
        let track = |id, video, timescale| Track {
            id,
            video,
            timescale,
            ..Track::default()
        };
        let mut tracks = Vec::with_capacity(2);
        tracks.extend(video.map(|_| track(1, true, VIDEO_TIMESCALE)));
        let id = tracks.len() as u32 + 1;
        tracks.extend(audio.map(|_| track(id, false, AUDIO_TIMESCALE)));
        Ok(Fmp4 {
            out,
            tracks,
            sequence: 0,
            dropped: 0,
            state: State::Open,
            buf: Vec::new(),
        })
    }

    /// Frames refused: empty or oversized, back in time, not AVCC, video
    /// before the first keyframe, or for a track the file lacks.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The writer, back (for tests).
    pub fn into_inner(self) -> W {
        self.out
    }

    fn refuse_if_closed(&self) -> io::Result<()> {
        match self.state {
            State::Open => Ok(()),
            State::Finished => Err(io::Error::other("the MP4 recording is finished")),
            State::Failed => Err(io::Error::other("an earlier write of the MP4 failed")),
        }
    }

    fn add(&mut self, video: bool, t_us: u64, sync: bool, data: &[u8]) -> io::Result<()> {
        self.refuse_if_closed()?;
        let Some(i) = self.tracks.iter().position(|t| t.video == video) else {
            self.dropped += 1;
            return Ok(());
        };
        let track = &self.tracks[i];
        let bad = data.is_empty()
            || data.len() > MAX_SAMPLE_BYTES
            || track.last_us.is_some_and(|last| t_us < last)
            // A decoder can start at a keyframe only, and needs whole NAL units.
            || (video && ((track.last_us.is_none() && !sync) || !is_avcc(data)));
        if bad {
            self.dropped += 1;
            return Ok(());
        }
        let t = track.to_ticks(t_us);
        if let Some(p) = &track.pending {
            self.commit(i, t.saturating_sub(p.t))?;
        }
        let span = self.tracks.iter().map(Track::span_us).max().unwrap_or(0);
        if (video && sync && span >= KEYFRAME_FRAGMENT_US) || span >= MAX_FRAGMENT_US {
            self.write_fragment()?;
        }
        let track = &mut self.tracks[i];
        track.data.extend_from_slice(data);
        let len = data.len();
        track.pending = Some(Pending { t, sync, len });
        track.last_us = Some(t_us);
        Ok(())
    }

    /// Moves track `i`'s pending sample into the fragment with `duration`
    /// (ticks), first writing the fragment if it would grow too large.
    fn commit(&mut self, i: usize, duration: u64) -> io::Result<()> {
        let Some(len) = self.tracks[i].pending.as_ref().map(|p| p.len) else {
            return Ok(());
        };
        let bytes: usize = self.tracks.iter().map(Track::committed).sum();
        let count: usize = self.tracks.iter().map(|t| t.samples.len()).sum();
        if count > 0 && (bytes + len > MAX_FRAGMENT_BYTES || count >= MAX_FRAGMENT_SAMPLES) {
            self.write_fragment()?;
        }
        let track = &mut self.tracks[i];
        let Some(p) = track.pending.take() else {
            return Ok(());
        };
        // A gap of over 13 hours (video) is shortened; the next tfdt is exact.
        let duration = u32::try_from(duration).unwrap_or(u32::MAX);
        if track.samples.is_empty() {
            track.base = p.t;
        }
        let flags = if p.sync { SYNC } else { NON_SYNC };
        track.samples.push([duration, len32(p.len), flags]);
        track.ticks += u64::from(duration);
        track.last_duration = Some(duration);
        Ok(())
    }

    /// Writes the samples committed so far as one `moof` + `mdat`, in one write.
    fn write_fragment(&mut self) -> io::Result<()> {
        if self.tracks.iter().all(|t| t.samples.is_empty()) {
            return Ok(());
        }
        self.sequence = self.sequence.wrapping_add(1);
        let mut b = std::mem::take(&mut self.buf);
        b.clear();
        // Where each trun's data offset goes, known once the moof's size is.
        let mut offset_at = Vec::with_capacity(2);
        let filled: Vec<&Track> = self
            .tracks
            .iter()
            .filter(|t| !t.samples.is_empty())
            .collect();
        bx(&mut b, b"moof", |b| {
            full(b, b"mfhd", 0, 0, |b| put32(b, self.sequence));
            for t in &filled {
                bx(b, b"traf", |b| {
                    full(b, b"tfhd", 0, TFHD_FLAGS, |b| put32(b, t.id));
                    full(b, b"tfdt", 1, 0, |b| b.extend(t.base.to_be_bytes()));
                    full(b, b"trun", 0, TRUN_FLAGS, |b| {
                        put32(b, len32(t.samples.len()));
                        offset_at.push(b.len());
                        put32(b, 0);
                        t.samples.iter().flatten().for_each(|v| put32(b, *v));
                    });
                });
            }
        });
        // The moof starts the buffer; its data starts after the mdat header.
        let mut at = b.len() + 8;
        for (pos, t) in offset_at.into_iter().zip(&filled) {
            if let Some(field) = b.get_mut(pos..pos + 4) {
                field.copy_from_slice(&len32(at).to_be_bytes());
            }
            at += t.committed();
        }
        let media: usize = filled.iter().map(|t| t.committed()).sum();
        put32(&mut b, len32(media + 8));
        b.extend_from_slice(b"mdat");
        for t in &mut self.tracks {
            let n = t.committed();
            b.extend_from_slice(&t.data[..n]);
            // The pending sample's bytes move to the front.
            t.data.drain(..n);
            t.data.shrink_to(2 * MAX_FRAGMENT_BYTES);
            t.samples.clear();
            t.ticks = 0;
        }
        let result = self.out.write_all(&b);
        // One huge frame should not pin its memory for the whole recording.
        b.shrink_to(2 * MAX_FRAGMENT_BYTES);
        self.buf = b;
        if result.is_err() {
            // Part of a fragment may be in the file: nothing after it would read.
            self.state = State::Failed;
        }
        result
    }
}

impl<W: Write + Send> Muxer for Fmp4<W> {
    fn video(&mut self, t_us: u64, keyframe: bool, data: &[u8]) -> io::Result<()> {
        self.add(true, t_us, keyframe, data)
    }

    fn audio(&mut self, t_us: u64, data: &[u8]) -> io::Result<()> {
        self.add(false, t_us, true, data)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.state == State::Finished {
            return Ok(());
        }
        self.refuse_if_closed()?;
        self.write_fragment()?;
        self.out.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.state == State::Finished {
            return Ok(());
        }
        self.refuse_if_closed()?;
        for i in 0..self.tracks.len() {
            // With no earlier sample to copy: 1/30 s, or a 20 ms Opus packet.
            let t = &self.tracks[i];
            let guess = t.timescale / if t.video { 30 } else { 50 };
            self.commit(i, u64::from(t.last_duration.unwrap_or(guess)))?;
        }
        self.write_fragment()?;
        self.state = State::Finished;
        self.out.flush()
    }
}

/// Whether `data` is whole, non-empty, 4-byte-length-prefixed NAL units.
fn is_avcc(mut data: &[u8]) -> bool {
    while let Some((len, rest)) = data.split_first_chunk::<4>() {
        let n = u32::from_be_bytes(*len) as usize;
        match rest.get(n..) {
            Some(next) if n > 0 => data = next,
            _ => return false,
        }
    }
    data.is_empty()
}

/// A length for a 32-bit field. The limits above keep every length well
/// under 4 GiB; saturating rather than panicking is for the impossible case.
fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn put32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_be_bytes());
}

/// A box: its size, its type, then what `f` writes.
fn bx(b: &mut Vec<u8>, kind: &[u8; 4], f: impl FnOnce(&mut Vec<u8>)) {
    let at = b.len();
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(kind);
    f(b);
    let size = len32(b.len() - at);
    if let Some(field) = b.get_mut(at..at + 4) {
        field.copy_from_slice(&size.to_be_bytes());
    }
}

/// A full box: a box whose contents start with a version and 24 bits of flags.
fn full(b: &mut Vec<u8>, kind: &[u8; 4], version: u8, flags: u32, f: impl FnOnce(&mut Vec<u8>)) {
    bx(b, kind, |b| {
        put32(b, (u32::from(version) << 24) | (flags & 0x00FF_FFFF));
        f(b);
    });
}

/// Header fields as big-endian 32-bit words (two 16-bit fields share one).
fn fields(b: &mut Vec<u8>, words: &[u32]) {
    words.iter().for_each(|w| put32(b, *w));
}

/// The identity transformation matrix of `mvhd` and `tkhd`.
const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// What a track carries, for its `trak`.
#[derive(Clone, Copy)]
enum Media<'a> {
    Video(&'a VideoParams),
    Audio(&'a AudioParams),
}

/// `ftyp` and `moov`: the tracks and their codecs, with no samples.
fn header(video: Option<&VideoParams>, audio: Option<&AudioParams>) -> Vec<u8> {
    let mut b = Vec::with_capacity(1024);
    bx(&mut b, b"ftyp", |b| {
        b.extend_from_slice(b"isom\0\0\x02\0isomiso6iso2avc1mp41")
    });
    let mut media = Vec::with_capacity(2);
    media.extend(video.map(Media::Video));
    media.extend(audio.map(Media::Audio));
    let tracks = len32(media.len());
    bx(&mut b, b"moov", |b| {
        full(b, b"mvhd", 0, 0, |b| {
            // Times 0, timescale 1000 (ms), duration 0 (the fragments
            // have it), rate 1.0, volume 1.0.
            fields(b, &[0, 0, 1000, 0, 0x0001_0000, 0x0100_0000, 0, 0]);
            fields(b, &MATRIX);
            fields(b, &[0; 6]);
            put32(b, tracks + 1); // the next track id
        });
        for (id, m) in (1..).zip(&media) {
            trak(b, id, *m);
        }
        bx(b, b"mvex", |b| {
            for id in 1..=tracks {
                // Sample description 1; durations, sizes, flags: per sample.
                full(b, b"trex", 0, 0, |b| fields(b, &[id, 1, 0, 0, 0]));
            }
        });
    });
    b
}

fn trak(b: &mut Vec<u8>, id: u32, media: Media) {
    let (video, scale, volume, (w, h)) = match media {
        Media::Video(v) => (true, VIDEO_TIMESCALE, 0, (v.width, v.height)),
        Media::Audio(_) => (false, AUDIO_TIMESCALE, 0x0100, (0, 0)),
    };
    bx(b, b"trak", |b| {
        // Flags: enabled, in movie. Times, id, reserved, duration 0,
        // reserved, layer and group, volume; matrix; size in 16.16.
        full(b, b"tkhd", 0, 3, |b| {
            fields(b, &[0, 0, id, 0, 0, 0, 0, 0, volume << 16]);
            fields(b, &MATRIX);
            fields(b, &[u32::from(w) << 16, u32::from(h) << 16]);
        });
        bx(b, b"mdia", |b| {
            // Times, timescale, duration, language "und" (5 bits a letter).
            full(b, b"mdhd", 0, 0, |b| {
                fields(b, &[0, 0, scale, 0, 0x55C4_0000])
            });
            full(b, b"hdlr", 0, 0, |b| {
                let name = if video {
                    b"videkaigi video"
                } else {
                    b"sounkaigi audio"
                };
                put32(b, 0);
                b.extend_from_slice(&name[..4]);
                fields(b, &[0, 0, 0]);
                b.extend_from_slice(&name[4..]);
                b.push(0);
            });
            bx(b, b"minf", |b| {
                match video {
                    true => full(b, b"vmhd", 0, 1, |b| fields(b, &[0, 0])),
                    false => full(b, b"smhd", 0, 0, |b| fields(b, &[0])),
                }
                bx(b, b"dinf", |b| {
                    full(b, b"dref", 0, 0, |b| {
                        put32(b, 1);
                        full(b, b"url ", 0, 1, |_| {}); // flag: in this file
                    });
                });
                bx(b, b"stbl", |b| {
                    full(b, b"stsd", 0, 0, |b| {
                        put32(b, 1);
                        match media {
                            Media::Video(v) => avc1(b, v),
                            Media::Audio(a) => opus(b, a),
                        }
                    });
                    // Empty: the samples are in the fragments.
                    full(b, b"stts", 0, 0, |b| put32(b, 0));
                    full(b, b"stsc", 0, 0, |b| put32(b, 0));
                    full(b, b"stsz", 0, 0, |b| fields(b, &[0, 0]));
                    full(b, b"stco", 0, 0, |b| put32(b, 0));
                });
            });
        });
    });
}

/// The H.264 sample entry; `new` checked the parameter sets' counts and sizes.
fn avc1(b: &mut Vec<u8>, v: &VideoParams) {
    bx(b, b"avc1", |b| {
        // Reserved, data reference 1, predefined; width, height; 72 dpi
        // both ways; reserved; one frame a sample.
        fields(b, &[0, 1, 0, 0, 0, 0]);
        fields(
            b,
            &[
                u32::from(v.width) << 16 | u32::from(v.height),
                0x48_0000,
                0x48_0000,
                0,
            ],
        );
        b.extend_from_slice(b"\0\x01\x05kaigi"); // and a 32-byte compressor name
        b.extend_from_slice(&[0; 26]);
        put32(b, 0x0018_FFFF); // depth 24, predefined -1
        bx(b, b"avcC", |b| {
            // Version 1, then profile, compatibility and level from the SPS.
            b.push(1);
            let sps = v.sps.first().and_then(|s| s.get(1..4));
            b.extend_from_slice(sps.unwrap_or(&[0; 3]));
            b.push(0xFF); // 4-byte NAL unit lengths
            for (sets, count) in [
                (&v.sps, 0xE0 | v.sps.len() as u8),
                (&v.pps, v.pps.len() as u8),
            ] {
                b.push(count);
                for s in sets {
                    b.extend_from_slice(&(s.len() as u16).to_be_bytes());
                    b.extend_from_slice(s);
                }
            }
        });
    });
}

/// The Opus sample entry and its `dOps` (Encapsulation of Opus in ISOBMFF).
fn opus(b: &mut Vec<u8>, a: &AudioParams) {
    bx(b, b"Opus", |b| {
        // Reserved, data reference 1, reserved; channels, 16 bits; 48 kHz.
        fields(
            b,
            &[
                0,
                1,
                0,
                0,
                u32::from(a.channels) << 16 | 16,
                0,
                AUDIO_TIMESCALE << 16,
            ],
        );
        bx(b, b"dOps", |b| {
            // Version 0, channels, pre-skip, input rate, gain 0, mapping family 0.
            b.extend_from_slice(&[0, a.channels]);
            b.extend_from_slice(&OPUS_PRE_SKIP.to_be_bytes());
            put32(b, 48_000);
            b.extend_from_slice(&[0, 0, 0]);
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::Range;

    // From a 64x64 constrained-baseline stream made by x264.
    const SPS: &[u8] =
        b"\x67\x42\xC0\x0A\xD9\x04\x26\xC0\x44\0\0\x03\0\x04\0\0\x03\0\xF0\x3C\x48\x99\x20";
    const PPS: &[u8] = b"\x68\xCB\x83\xCB\x20";
    const STEREO: Option<AudioParams> = Some(AudioParams { channels: 2 });

    fn h264() -> Option<VideoParams> {
        let (sps, pps) = (vec![SPS.to_vec()], vec![PPS.to_vec()]);
        let (format, width, height) = (VideoFormat::H264, 64, 64);
        Some(VideoParams {
            format,
            width,
            height,
            sps,
            pps,
        })
    }

    fn be32(b: &[u8]) -> u32 {
        u32::from_be_bytes(b[..4].try_into().unwrap())
    }

    /// The whole boxes in `buf[r]`: (type, payload); a truncated one ends the list.
    fn boxes(buf: &[u8], r: Range<usize>) -> Vec<(String, Range<usize>)> {
        let (mut out, mut i) = (Vec::new(), r.start);
        while i + 8 <= r.end && (8..=r.end - i).contains(&(be32(&buf[i..]) as usize)) {
            let kind = String::from_utf8_lossy(&buf[i + 4..i + 8]).into_owned();
            out.push((kind, i + 8..i + be32(&buf[i..]) as usize));
            i = out[out.len() - 1].1.end;
        }
        out
    }

    /// The types of the boxes in `buf[r]`, joined by spaces.
    fn names(buf: &[u8], r: Range<usize>) -> String {
        let names: Vec<_> = boxes(buf, r).into_iter().map(|b| b.0).collect();
        names.join(" ")
    }

    /// The payload of the first box along a path such as "mdia/minf".
    fn find(buf: &[u8], mut r: Range<usize>, path: &str) -> Range<usize> {
        for kind in path.split('/') {
            r = boxes(buf, r).into_iter().find(|b| b.0 == kind).unwrap().1;
        }
        r
    }

    /// A sample read back: track, decode time, duration, flags, bytes.
    #[derive(Debug, PartialEq)]
    struct Sample(u32, u64, u32, u32, Vec<u8>);

    /// Reads the fragments back, checking their layout: the samples in
    /// file order, and each fragment's first sample.
    fn read(buf: &[u8]) -> (Vec<Sample>, Vec<usize>) {
        let top = boxes(buf, 0..buf.len());
        assert_eq!(names(buf, 0..buf.len())[..9], *"ftyp moov");
        let (mut samples, mut firsts) = (Vec::new(), Vec::new());
        let pairs = top[2..].chunks_exact(2);
        // A cut file may end in a moof whose mdat is cut: it is not read.
        assert!(pairs.remainder().iter().all(|b| b.0 == "moof"));
        for (n, pair) in pairs.enumerate() {
            let (moof, mdat) = (&pair[0].1, &pair[1].1);
            assert_eq!(format!("{} {}", pair[0].0, pair[1].0), "moof mdat");
            let mfhd = find(buf, moof.clone(), "mfhd");
            assert_eq!(be32(&buf[mfhd.start + 4..]) as usize, n + 1, "sequence");
            let (mut next, base) = (mdat.start, moof.start - 8);
            firsts.push(samples.len());
            for (_, traf) in boxes(buf, moof.clone()).into_iter().skip(1) {
                let [tfhd, tfdt, trun] =
                    ["tfhd", "tfdt", "trun"].map(|k| &buf[find(buf, traf.clone(), k)]);
                let flags = [be32(tfhd), be32(tfdt) >> 24, be32(trun)];
                assert_eq!(flags, [TFHD_FLAGS, 1, TRUN_FLAGS]);
                let mut t = u64::from_be_bytes(tfdt[4..].try_into().unwrap());
                assert_eq!(base + be32(&trun[8..]) as usize, next, "data offset");
                assert_eq!(trun.len(), 12 + 12 * be32(&trun[4..]) as usize);
                for e in trun[12..].chunks(12) {
                    let (d, end) = (be32(e), next + be32(&e[4..]) as usize);
                    let data = buf[next..end].to_vec();
                    samples.push(Sample(be32(&tfhd[4..]), t, d, be32(&e[8..]), data));
                    (next, t) = (end, t + u64::from(d));
                }
            }
            assert_eq!(next, mdat.end, "the samples fill the mdat exactly");
        }
        (samples, firsts)
    }

    /// What `read` gives for one track's input (µs, sync, bytes): times in
    /// the timescale, each sample lasting until the next.
    fn expected(id: u32, scale: u64, input: &[(u64, bool, Vec<u8>)]) -> Vec<Sample> {
        let ticks: Vec<u64> = input.iter().map(|s| s.0 * scale / 1_000_000).collect();
        let mut out: Vec<Sample> = Vec::new();
        for (k, (_, sync, data)) in input.iter().enumerate() {
            let last = out.last().map_or(0, |s| s.2);
            let d = ticks.get(k + 1).map_or(last, |n| (n - ticks[k]) as u32);
            let flags = if *sync { SYNC } else { NON_SYNC };
            out.push(Sample(id, ticks[k], d, flags, data.clone()));
        }
        out
    }

    /// A frame in AVCC: one NAL unit of `n` bytes (an IDR slice if `key`).
    fn nal(key: bool, n: usize, seed: u64) -> Vec<u8> {
        let mut v = (n as u32).to_be_bytes().to_vec();
        v.push(if key { 0x65 } else { 0x41 });
        v.extend((1..n).map(|i| (i as u64 * 31 + seed) as u8));
        v
    }

    #[test]
    fn the_header_describes_the_tracks_and_their_codecs() {
        let buf = Fmp4::new(Vec::new(), h264(), STEREO).unwrap().into_inner();
        let all = 0..buf.len();
        assert_eq!(names(&buf, all.clone()), "ftyp moov");
        let ftyp = &buf[find(&buf, all.clone(), "ftyp")];
        assert_eq!(ftyp, b"isom\0\0\x02\0isomiso6iso2avc1mp41");
        let moov = find(&buf, all, "moov");
        assert_eq!(names(&buf, moov.clone()), "mvhd trak trak mvex");
        let mvhd = &buf[find(&buf, moov.clone(), "mvhd")];
        assert_eq!([12, 16, 96].map(|i| be32(&mvhd[i..])), [1000, 0, 3]);
        let traks = boxes(&buf, moov.clone());
        let want = [(1, 90_000, 64 << 16, 0, "vmhd"), (2, 48_000, 0, 1, "smhd")];
        for ((_, trak), (id, scale, size, volume, head)) in traks[1..3].iter().zip(want) {
            let tkhd = &buf[find(&buf, trak.clone(), "tkhd")];
            let fields = [0, 12, 36, 76, 80].map(|i| be32(&tkhd[i..]));
            assert_eq!(fields, [3, id, volume << 24, size, size]);
            let mdhd = &buf[find(&buf, trak.clone(), "mdia/mdhd")];
            assert_eq!([be32(&mdhd[12..]), be32(&mdhd[20..])], [scale, 0x55C4_0000]);
            let minf = find(&buf, trak.clone(), "mdia/minf");
            assert_eq!(names(&buf, minf.clone()), format!("{head} dinf stbl"));
            let url = &buf[find(&buf, minf.clone(), "dinf/dref")][8..];
            assert_eq!(url, b"\0\0\0\x0curl \0\0\0\x01", "in this file");
            let stbl = find(&buf, minf, "stbl");
            assert_eq!(names(&buf, stbl), "stsd stts stsc stsz stco");
        }
        // A trak's sample entry: its fields, and the box after them.
        let entry = |trak: &Range<usize>, len: usize| {
            let stsd = find(&buf, trak.clone(), "mdia/minf/stbl/stsd");
            let (kind, r) = boxes(&buf, stsd.start + 8..stsd.end).remove(0);
            let (inner, payload) = boxes(&buf, r.start + len..r.end).remove(0);
            (
                kind + " " + &inner,
                &buf[r.start..r.start + len],
                &buf[payload],
            )
        };
        let (kinds, fields, avcc) = entry(&traks[1].1, 78);
        assert_eq!(
            (kinds, be32(&fields[24..])),
            ("avc1 avcC".into(), 64 << 16 | 64)
        );
        // Version 1, profile, compatibility, level, 4-byte lengths, 1 SPS, 1 PPS.
        let mut want = b"\x01\x42\xC0\x0A\xFF\xE1\0\x17".to_vec();
        want.extend([SPS, b"\x01\0\x05", PPS].concat());
        assert_eq!(avcc, want);
        let (kinds, fields, dops) = entry(&traks[2].1, 28);
        assert_eq!(kinds, "Opus dOps");
        // 2 channels, 16 bits, 48 kHz; dOps: version 0, 2 channels,
        // pre-skip 312, 48000 Hz, gain 0, mapping family 0.
        assert_eq!(fields[16..], [0, 2, 0, 16, 0, 0, 0, 0, 0xBB, 0x80, 0, 0]);
        assert_eq!(dops, [0, 2, 0x01, 0x38, 0, 0, 0xBB, 0x80, 0, 0, 0]);
        let trex = boxes(&buf, find(&buf, moov, "mvex"));
        let ids: Vec<u8> = trex.iter().map(|b| buf[b.1.start + 7]).collect();
        assert_eq!(ids, [1, 2]);
    }

    /// 3 s of 30 fps video (a keyframe each second) and jittered 20 ms
    /// audio, flushed every half second as the recorder does.
    #[test]
    fn every_sample_comes_back_with_its_time_duration_and_bytes() {
        let mut w = Fmp4::new(Vec::new(), h264(), STEREO).unwrap();
        let (mut video, mut audio) = (Vec::new(), Vec::new());
        for f in 0..90u64 {
            let t = f * 1_000_000 / 30;
            while audio.len() < 150 && (audio.len() as u64) * 20_000 <= t {
                let a = audio.len() as u64;
                audio.push((a * 20_000 + a * 7919 % 1000, true, vec![0xFC, a as u8]));
                w.audio(audio[a as usize].0, &audio[a as usize].2).unwrap();
            }
            video.push((t, f % 30 == 0, nal(f % 30 == 0, 100 + f as usize, f)));
            w.video(t, f % 30 == 0, &video[f as usize].2).unwrap();
            if f % 15 == 14 {
                w.flush().unwrap();
            }
        }
        w.finish().unwrap();
        assert_eq!(w.dropped(), 0);
        let (samples, firsts) = read(&w.into_inner());
        assert_eq!(firsts.len(), 7, "6 flushes and finish");
        let (v, a): (Vec<_>, Vec<_>) = samples.into_iter().partition(|s| s.0 == 1);
        assert_eq!(v, expected(1, 90_000, &video));
        assert_eq!(a, expected(2, 48_000, &audio[..149]), "the last one waits");
        // Durations sum to last - first + last duration: the last frame at
        // 2.9667 s (266 999 ticks) lasts as long as the one before.
        let total: u64 = v.iter().map(|s| u64::from(s.2)).sum();
        assert_eq!(total, 266_999 + 3000);
    }

    /// The fragments of a file of video (30 fps, a keyframe every `gop`
    /// frames) or of audio (20 ms apart, or all at once when `gop` is 0),
    /// as "sample count@first time" ("K" when that is a sync sample).
    fn cuts(video: bool, frames: u64, gop: u64, size: usize) -> String {
        let (v, a) = (h264().filter(|_| video), STEREO.filter(|_| !video));
        let mut w = Fmp4::new(Vec::new(), v, a).unwrap();
        for f in 0..frames {
            let key = f % gop.max(1) == 0;
            let r = match video {
                true => w.video(f * 1_000_000 / 30, key, &nal(key, size, f)),
                false => w.audio(f * 20_000 * gop.min(1), &vec![1; size]),
            };
            r.unwrap();
        }
        w.finish().unwrap();
        let (samples, mut firsts) = read(&w.into_inner());
        firsts.push(samples.len());
        let cut = |f: &[usize]| {
            let k = if video && samples[f[0]].3 == SYNC {
                "K"
            } else {
                ""
            };
            format!("{}@{}{k}", f[1] - f[0], samples[f[0]].1)
        };
        firsts.windows(2).map(cut).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn a_keyframe_starts_a_fragment_after_a_second_and_long_or_large_ones_are_cut() {
        let half_second_gop = cuts(true, 100, 15, 20);
        assert_eq!(half_second_gop, "30@0K 30@90000K 30@180000K 10@270000K");
        assert_eq!(cuts(true, 150, 1000, 20), "60@0K 60@180000 30@360000");
        // 1.5 MiB frames: two to a fragment.
        let big = cuts(true, 7, 1, 3 << 19);
        assert_eq!(big, "2@0K 2@5999K 2@11999K 1@18000K");
        assert_eq!(cuts(false, 250, 1, 3), "100@0 100@96000 50@192000");
        // Packets without duration are cut by count.
        let n = MAX_FRAGMENT_SAMPLES;
        assert_eq!(cuts(false, n as u64 + 10, 0, 3), format!("{n}@0 10@0"));
    }

    /// Keeps every write, fails once `fail` is 0.
    struct Writes(Vec<Vec<u8>>, usize);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.1 = self.1.checked_sub(1).ok_or(io::Error::other("disk full"))?;
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_fragment_is_one_write_and_a_cut_file_keeps_the_ones_before() {
        let mut w = Fmp4::new(Writes(Vec::new(), 5), h264(), STEREO).unwrap();
        for f in 0..49u64 {
            w.audio(f * 20_000, &[f as u8; 30]).unwrap();
            w.video(f * 33_333, f % 30 == 0, &nal(f % 30 == 0, 50, f))
                .unwrap();
            if f % 10 == 9 {
                w.flush().unwrap();
            }
        }
        // The sixth write fails: the file takes nothing more.
        assert!(w.flush().is_err());
        assert!(w.audio(2_000_000, &[1]).is_err() && w.finish().is_err());
        let writes = w.into_inner().0;
        let file = writes.concat();
        let mut at = 0;
        for (k, write) in writes.iter().enumerate() {
            let want = if k == 0 { "ftyp moov" } else { "moof mdat" };
            assert_eq!(names(&file, at..at + write.len()), want);
            at += write.len();
        }
        // Cut inside its last fragment (a process killed while writing
        // it), the file reads as the fragments before it.
        let (samples, firsts) = read(&file);
        let last = file.len() - writes[4].len();
        for cut in [last, last + 50, last + writes[4].len() - 1] {
            let (kept, kept_firsts) = read(&file[..cut]);
            assert_eq!((kept_firsts.len(), &kept[..]), (3, &samples[..firsts[3]]));
        }
    }

    #[test]
    fn bad_input_is_dropped_and_counted_and_a_last_sample_gets_a_duration() {
        assert!(Fmp4::new(Vec::new(), None, None).is_err());
        let mut vp8 = h264();
        vp8.as_mut().unwrap().format = VideoFormat::Vp8;
        assert!(Fmp4::new(Vec::new(), vp8, None).is_err());
        let mut swapped = h264();
        if let Some(v) = swapped.as_mut() {
            std::mem::swap(&mut v.sps, &mut v.pps);
        }
        assert!(Fmp4::new(Vec::new(), swapped, None).is_err());
        assert!(Fmp4::new(Vec::new(), None, Some(AudioParams { channels: 3 })).is_err());

        let mut w = Fmp4::new(Vec::new(), h264(), STEREO).unwrap();
        w.video(0, false, &nal(false, 5, 0)).unwrap(); // before the first keyframe
        w.video(10_000, true, &nal(true, 5, 1)).unwrap();
        w.video(5_000, false, &nal(false, 5, 2)).unwrap(); // back in time
        for broken in [&[][..], &[0, 0, 0, 9, 1], &[0, 0, 0, 0], &[0, 0, 1]] {
            w.video(20_000, false, broken).unwrap(); // empty, or not AVCC
        }
        w.audio(40_000, &[1]).unwrap();
        w.audio(20_000, &[2]).unwrap(); // back in time
        w.audio(60_000, &[]).unwrap();
        assert_eq!(w.dropped(), 8);
        w.finish().unwrap();
        w.finish().unwrap();
        assert!(w.audio(80_000, &[4]).is_err());
        // The lone video frame gets 1/30 s, the lone audio packet 20 ms.
        let (samples, _) = read(&w.into_inner());
        let want = [
            Sample(1, 900, 3000, SYNC, nal(true, 5, 1)),
            Sample(2, 1920, 960, SYNC, vec![1]),
        ];
        assert_eq!(samples, want);

        let mut w = Fmp4::new(Vec::new(), None, Some(AudioParams { channels: 1 })).unwrap();
        w.video(0, true, &nal(true, 5, 0)).unwrap(); // no video track
        assert_eq!(w.dropped(), 1);
        let buf = w.into_inner();
        let tkhd = find(&buf, 0..buf.len(), "moov/trak/tkhd");
        assert_eq!(be32(&buf[tkhd.start + 12..]), 1, "audio alone is track 1");
    }
}
