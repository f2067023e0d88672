//! A fragmented MP4 (ISO BMFF) writer for live recordings: H.264 video and
//! Opus audio.
//!
//! The header (`ftyp`, `moov` with empty sample tables and `mvex`) is
//! written first; then media goes out as `moof` + `mdat` fragments of about
//! a second, each in one `write_all`. A process killed at any moment leaves
//! the header and every fragment written before, which players read as a
//! complete, shorter file; nothing is ever patched afterwards.

use std::io::{self, Write};

use super::{AudioParams, Muxer, VideoFormat, VideoParams};

const VIDEO_TIMESCALE: u32 = 90_000;
const AUDIO_TIMESCALE: u32 = 48_000;
/// Cut a fragment at a video keyframe once it holds this much (timescale-free: µs).
const KEYFRAME_FRAGMENT_US: u64 = 1_000_000;
/// Cut a fragment regardless once it holds this much (long GOPs, audio only).
const MAX_FRAGMENT_US: u64 = 2_000_000;
/// Cut a fragment regardless once its media is this large.
const MAX_FRAGMENT_BYTES: usize = 8 << 20;
/// Opus decoders discard this many samples at 48 kHz (RFC 7845).
const OPUS_PRE_SKIP: u16 = 312;
/// `trun` sample flags: a sync sample, and one that depends on others.
const SYNC: u32 = 0x0200_0000;
const NON_SYNC: u32 = 0x0101_0000;

/// A sample waiting for the next one (its duration is the distance to it).
struct Pending {
    t: u64,
    sync: bool,
    data: Vec<u8>,
}

/// One track's samples of the fragment being filled.
struct Track {
    id: u32,
    timescale: u32,
    pending: Option<Pending>,
    /// (duration, size, flags) of the samples in this fragment.
    samples: Vec<(u32, u32, u32)>,
    data: Vec<u8>,
    /// Decode time of the fragment's first sample.
    base: Option<u64>,
    last_duration: u32,
    default_duration: u32,
}

impl Track {
    fn new(id: u32, timescale: u32, default_duration: u32) -> Self {
        Track {
            id,
            timescale,
            pending: None,
            samples: Vec::new(),
            data: Vec::new(),
            base: None,
            last_duration: 0,
            default_duration,
        }
    }

    fn to_timescale(&self, t_us: u64) -> u64 {
        (u128::from(t_us) * u128::from(self.timescale) / 1_000_000) as u64
    }

    /// Commits the pending sample with the duration up to `next` (or a guess).
    fn commit(&mut self, next: Option<u64>) {
        let Some(p) = self.pending.take() else {
            return;
        };
        let duration = match next {
            Some(n) => u32::try_from(n.saturating_sub(p.t)).unwrap_or(u32::MAX),
            None if self.last_duration > 0 => self.last_duration,
            None => self.default_duration,
        };
        self.last_duration = duration;
        self.base.get_or_insert(p.t);
        let flags = if p.sync { SYNC } else { NON_SYNC };
        self.samples.push((duration, p.data.len() as u32, flags));
        self.data.extend_from_slice(&p.data);
    }

    /// Media in the fragment, in µs.
    fn span_us(&self) -> u64 {
        let ticks: u64 = self.samples.iter().map(|s| u64::from(s.0)).sum();
        ticks * 1_000_000 / u64::from(self.timescale)
    }
}

/// A fragmented MP4 file being written.
pub struct Fmp4<W: Write + Send> {
    out: W,
    video: Option<Track>,
    audio: Option<Track>,
    sequence: u32,
    dropped: u64,
    finished: bool,
}

impl<W: Write + Send> Fmp4<W> {
    /// Starts a file: writes `ftyp` and `moov`.
    pub fn new(
        mut out: W,
        video: Option<VideoParams>,
        audio: Option<AudioParams>,
    ) -> io::Result<Self> {
        let invalid = |m: &str| io::Error::new(io::ErrorKind::InvalidInput, m.to_owned());
        if video.is_none() && audio.is_none() {
            return Err(invalid("a recording needs video or audio"));
        }
        if let Some(v) = &video {
            if v.format != VideoFormat::H264 {
                return Err(invalid("MP4 recordings carry H.264 video"));
            }
            if v.sps.first().is_none_or(|s| s.len() < 4) || v.pps.is_empty() {
                return Err(invalid("H.264 needs its SPS and PPS"));
            }
        }
        let mut head = Vec::with_capacity(1024);
        bx(&mut head, b"ftyp", |b| {
            b.extend_from_slice(b"isom");
            b.extend_from_slice(&0x200u32.to_be_bytes());
            for brand in [b"isom", b"iso6", b"iso2", b"avc1", b"mp41"] {
                b.extend_from_slice(brand);
            }
        });
        let video_track = video.as_ref().map(|_| Track::new(1, VIDEO_TIMESCALE, 3000));
        let audio_id = if video.is_some() { 2 } else { 1 };
        let audio_track = audio.map(|_| Track::new(audio_id, AUDIO_TIMESCALE, 960));
        bx(&mut head, b"moov", |b| {
            full(b, b"mvhd", 0, 0, |b| {
                b.extend_from_slice(&[0; 8]); // creation, modification
                u32be(b, 1000);
                u32be(b, 0); // duration: fragments say
                u32be(b, 0x0001_0000); // rate 1.0
                b.extend_from_slice(&[0x01, 0x00]); // volume 1.0
                b.extend_from_slice(&[0; 10]);
                matrix(b);
                b.extend_from_slice(&[0; 24]);
                u32be(b, audio_id + u32::from(audio.is_some()));
            });
            if let Some(v) = &video {
                trak(b, 1, Some(v), None);
            }
            if let Some(a) = &audio {
                trak(b, audio_id, None, Some(a));
            }
            bx(b, b"mvex", |b| {
                for id in video
                    .iter()
                    .map(|_| 1)
                    .chain(audio.iter().map(|_| audio_id))
                {
                    full(b, b"trex", 0, 0, |b| {
                        u32be(b, id);
                        u32be(b, 1); // sample description index
                        b.extend_from_slice(&[0; 12]);
                    });
                }
            });
        });
        out.write_all(&head)?;
        Ok(Fmp4 {
            out,
            video: video_track,
            audio: audio_track,
            sequence: 0,
            dropped: 0,
            finished: false,
        })
    }

    /// Frames refused (empty, back in time, for a track the file lacks).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The writer, back (for tests).
    pub fn into_inner(self) -> W {
        self.out
    }

    fn add(&mut self, video: bool, t_us: u64, sync: bool, data: &[u8]) -> io::Result<()> {
        if self.finished {
            return Err(io::Error::other("the recording is finished"));
        }
        let track = if video {
            self.video.as_mut()
        } else {
            self.audio.as_mut()
        };
        let Some(track) = track else {
            self.dropped += 1;
            return Ok(());
        };
        let t = track.to_timescale(t_us);
        if data.is_empty() || track.pending.as_ref().is_some_and(|p| t < p.t) {
            self.dropped += 1;
            return Ok(());
        }
        track.commit(Some(t));
        let key = video && sync;
        let (span, bytes) = self.fill();
        if (key && span >= KEYFRAME_FRAGMENT_US)
            || span >= MAX_FRAGMENT_US
            || bytes >= MAX_FRAGMENT_BYTES
        {
            self.write_fragment()?;
        }
        let track = if video {
            self.video.as_mut()
        } else {
            self.audio.as_mut()
        };
        if let Some(track) = track {
            track.pending = Some(Pending {
                t,
                sync,
                data: data.to_vec(),
            });
        }
        Ok(())
    }

    /// The fragment being filled: its longest track's span (µs) and its bytes.
    fn fill(&self) -> (u64, usize) {
        let tracks = self.video.iter().chain(self.audio.iter());
        tracks.fold((0, 0), |(s, b), t| (s.max(t.span_us()), b + t.data.len()))
    }

    /// Writes the committed samples as one `moof` + `mdat`, in one write.
    fn write_fragment(&mut self) -> io::Result<()> {
        let tracks: Vec<&mut Track> = self
            .video
            .iter_mut()
            .chain(self.audio.iter_mut())
            .filter(|t| !t.samples.is_empty())
            .collect();
        if tracks.is_empty() {
            return Ok(());
        }
        self.sequence += 1;
        let mut moof = Vec::new();
        bx(&mut moof, b"moof", |b| {
            full(b, b"mfhd", 0, 0, |b| u32be(b, self.sequence));
            for t in &tracks {
                bx(b, b"traf", |b| {
                    full(b, b"tfhd", 0, 0x02_0000, |b| u32be(b, t.id));
                    full(b, b"tfdt", 1, 0, |b| {
                        b.extend_from_slice(&t.base.unwrap_or(0).to_be_bytes());
                    });
                    full(b, b"trun", 0, 0x0701, |b| {
                        u32be(b, t.samples.len() as u32);
                        u32be(b, 0); // data offset: patched below

                        for &(d, s, f) in &t.samples {
                            u32be(b, d);
                            u32be(b, s);
                            u32be(b, f);
                        }
                    });
                });
            }
        });
        // Each trun's data offset counts from the moof's start, whose size
        // is known only now.
        let positions = trun_offset_positions(&moof);
        let mdat_len: usize = tracks.iter().map(|t| t.data.len()).sum();
        let mut data_at = moof.len() + 8;
        for (pos, t) in positions.iter().zip(&tracks) {
            moof[*pos..*pos + 4].copy_from_slice(&(data_at as u32).to_be_bytes());
            data_at += t.data.len();
        }
        let mut buf = moof;
        buf.reserve(mdat_len + 8);
        u32be(&mut buf, (mdat_len + 8) as u32);
        buf.extend_from_slice(b"mdat");
        for t in tracks {
            buf.extend_from_slice(&t.data);
            t.data.clear();
            t.samples.clear();
            t.base = None;
        }
        self.out.write_all(&buf)
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
        if self.finished {
            return Ok(());
        }
        self.write_fragment()?;
        self.out.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.finished {
            return Ok(());
        }
        for t in self.video.iter_mut().chain(self.audio.iter_mut()) {
            t.commit(None);
        }
        self.write_fragment()?;
        self.finished = true;
        self.out.flush()
    }
}

/// Where the data-offset field of each `trun` in a `moof` is.
fn trun_offset_positions(moof: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut stack = vec![(8usize, moof.len())];
    while let Some((mut i, end)) = stack.pop() {
        while i + 8 <= end {
            let size =
                u32::from_be_bytes([moof[i], moof[i + 1], moof[i + 2], moof[i + 3]]) as usize;
            let kind = &moof[i + 4..i + 8];
            if size < 8 || i + size > end {
                break;
            }
            match kind {
                b"traf" => stack.push((i + 8, i + size)),
                // Header (8), version and flags (4), sample count (4).
                b"trun" => out.push(i + 16),
                _ => {}
            }
            i += size;
        }
    }
    out.sort_unstable();
    out
}

fn u32be(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_be_bytes());
}

/// A box: size, type, what `f` writes.
fn bx(b: &mut Vec<u8>, kind: &[u8; 4], f: impl FnOnce(&mut Vec<u8>)) {
    let at = b.len();
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(kind);
    f(b);
    let size = (b.len() - at) as u32;
    b[at..at + 4].copy_from_slice(&size.to_be_bytes());
}

/// A full box: a box whose contents start with a version and 24 bits of flags.
fn full(b: &mut Vec<u8>, kind: &[u8; 4], version: u8, flags: u32, f: impl FnOnce(&mut Vec<u8>)) {
    bx(b, kind, |b| {
        u32be(b, u32::from(version) << 24 | (flags & 0x00FF_FFFF));
        f(b);
    });
}

fn matrix(b: &mut Vec<u8>) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        u32be(b, v);
    }
}

fn trak(b: &mut Vec<u8>, id: u32, video: Option<&VideoParams>, audio: Option<&AudioParams>) {
    bx(b, b"trak", |b| {
        full(b, b"tkhd", 0, 3, |b| {
            b.extend_from_slice(&[0; 8]);
            u32be(b, id);
            u32be(b, 0);
            u32be(b, 0); // duration
            b.extend_from_slice(&[0; 8]);
            b.extend_from_slice(&[0; 4]); // layer, alternate group
            b.extend_from_slice(if audio.is_some() { &[1, 0] } else { &[0, 0] });
            b.extend_from_slice(&[0; 2]);
            matrix(b);
            let (w, h) = video.map_or((0, 0), |v| (u32::from(v.width), u32::from(v.height)));
            u32be(b, w << 16);
            u32be(b, h << 16);
        });
        bx(b, b"mdia", |b| {
            full(b, b"mdhd", 0, 0, |b| {
                b.extend_from_slice(&[0; 8]);
                u32be(
                    b,
                    if video.is_some() {
                        VIDEO_TIMESCALE
                    } else {
                        AUDIO_TIMESCALE
                    },
                );
                u32be(b, 0);
                b.extend_from_slice(&[0x55, 0xC4, 0, 0]); // "und"
            });
            full(b, b"hdlr", 0, 0, |b| {
                u32be(b, 0);
                b.extend_from_slice(if video.is_some() { b"vide" } else { b"soun" });
                b.extend_from_slice(&[0; 12]);
                b.extend_from_slice(if video.is_some() {
                    b"kaigi video\0"
                } else {
                    b"kaigi audio\0"
                });
            });
            bx(b, b"minf", |b| {
                if video.is_some() {
                    full(b, b"vmhd", 0, 1, |b| b.extend_from_slice(&[0; 8]));
                } else {
                    full(b, b"smhd", 0, 0, |b| b.extend_from_slice(&[0; 4]));
                }
                bx(b, b"dinf", |b| {
                    full(b, b"dref", 0, 0, |b| {
                        u32be(b, 1);
                        full(b, b"url ", 0, 1, |_| {});
                    });
                });
                bx(b, b"stbl", |b| {
                    full(b, b"stsd", 0, 0, |b| {
                        u32be(b, 1);
                        if let Some(v) = video {
                            avc1(b, v);
                        }
                        if let Some(a) = audio {
                            opus(b, a);
                        }
                    });
                    full(b, b"stts", 0, 0, |b| u32be(b, 0));
                    full(b, b"stsc", 0, 0, |b| u32be(b, 0));
                    full(b, b"stsz", 0, 0, |b| b.extend_from_slice(&[0; 8]));
                    full(b, b"stco", 0, 0, |b| u32be(b, 0));
                });
            });
        });
    });
}

fn avc1(b: &mut Vec<u8>, v: &VideoParams) {
    bx(b, b"avc1", |b| {
        b.extend_from_slice(&[0; 6]);
        b.extend_from_slice(&1u16.to_be_bytes()); // data reference index
        b.extend_from_slice(&[0; 16]);
        b.extend_from_slice(&v.width.to_be_bytes());
        b.extend_from_slice(&v.height.to_be_bytes());
        u32be(b, 0x0048_0000); // 72 dpi
        u32be(b, 0x0048_0000);
        u32be(b, 0);
        b.extend_from_slice(&1u16.to_be_bytes()); // frame count
        let mut name = [0u8; 32];
        name[0] = 5;
        name[1..6].copy_from_slice(b"kaigi");
        b.extend_from_slice(&name);
        b.extend_from_slice(&0x18u16.to_be_bytes()); // depth
        b.extend_from_slice(&[0xFF, 0xFF]);
        bx(b, b"avcC", |b| {
            let sps = &v.sps[0];
            b.push(1);
            b.extend_from_slice(&sps[1..4]); // profile, compatibility, level
            b.push(0xFF); // 4-byte lengths
            let sets = |b: &mut Vec<u8>, list: &[Vec<u8>], max: usize| {
                for s in list.iter().take(max) {
                    b.extend_from_slice(&(s.len().min(u16::MAX.into()) as u16).to_be_bytes());
                    b.extend_from_slice(&s[..s.len().min(u16::MAX.into())]);
                }
            };
            b.push(0xE0 | v.sps.len().min(31) as u8);
            sets(b, &v.sps, 31);
            b.push(v.pps.len().min(255) as u8);
            sets(b, &v.pps, 255);
        });
    });
}

fn opus(b: &mut Vec<u8>, a: &AudioParams) {
    let channels = a.channels.clamp(1, 2);
    bx(b, b"Opus", |b| {
        b.extend_from_slice(&[0; 6]);
        b.extend_from_slice(&1u16.to_be_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&u16::from(channels).to_be_bytes());
        b.extend_from_slice(&16u16.to_be_bytes());
        b.extend_from_slice(&[0; 4]);
        u32be(b, AUDIO_TIMESCALE << 16);
        bx(b, b"dOps", |b| {
            b.push(0);
            b.push(channels);
            b.extend_from_slice(&OPUS_PRE_SKIP.to_be_bytes());
            u32be(b, 48_000);
            b.extend_from_slice(&0i16.to_be_bytes());
            b.push(0);
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (type, payload range) of the boxes in `buf[range]`.
    fn boxes(buf: &[u8], range: std::ops::Range<usize>) -> Vec<([u8; 4], std::ops::Range<usize>)> {
        let mut out = Vec::new();
        let mut i = range.start;
        while i + 8 <= range.end {
            let size = u32::from_be_bytes(buf[i..i + 4].try_into().unwrap()) as usize;
            let kind: [u8; 4] = buf[i + 4..i + 8].try_into().unwrap();
            out.push((kind, i + 8..(i + size).min(range.end)));
            i += size.max(8);
        }
        out
    }

    fn find(
        buf: &[u8],
        range: std::ops::Range<usize>,
        path: &[&[u8; 4]],
    ) -> Option<std::ops::Range<usize>> {
        let (first, rest) = path.split_first()?;
        let r = boxes(buf, range).into_iter().find(|(k, _)| k == *first)?.1;
        if rest.is_empty() {
            Some(r)
        } else {
            find(buf, r, rest)
        }
    }

    fn be32(b: &[u8]) -> u32 {
        u32::from_be_bytes(b[..4].try_into().unwrap())
    }

    // A 320x240 constrained-baseline SPS and a PPS.
    const SPS: &[u8] = &[0x67, 0x42, 0xC0, 0x0D, 0xDA, 0x05, 0x07, 0xEC, 0x04, 0x40];
    const PPS: &[u8] = &[0x68, 0xCE, 0x3C, 0x80];

    fn params() -> VideoParams {
        VideoParams {
            format: VideoFormat::H264,
            width: 320,
            height: 240,
            sps: vec![SPS.to_vec()],
            pps: vec![PPS.to_vec()],
        }
    }

    /// `seconds` of 30 fps video (keyframe every second) and 20 ms audio.
    fn sample(seconds: u64, finish: bool) -> Vec<u8> {
        let mut w = Fmp4::new(
            Vec::new(),
            Some(params()),
            Some(AudioParams { channels: 2 }),
        )
        .unwrap();
        let mut a = 0u64;
        for f in 0..seconds * 30 {
            let t = f * 1_000_000 / 30;
            while a * 20_000 <= t {
                w.audio(a * 20_000, &[0xFC, a as u8, 0]).unwrap();
                a += 1;
            }
            w.video(t, f % 30 == 0, &[0, 0, 0, 2, 0x65, f as u8])
                .unwrap();
            if f % 15 == 14 {
                w.flush().unwrap();
            }
        }
        if finish {
            w.finish().unwrap();
        }
        w.into_inner()
    }

    #[test]
    fn header_has_the_codec_configuration() {
        let buf = sample(1, true);
        let top: Vec<[u8; 4]> = boxes(&buf, 0..buf.len()).into_iter().map(|b| b.0).collect();
        assert_eq!(&top[..2], [*b"ftyp", *b"moov"]);
        assert!(
            top[2..].chunks(2).all(|p| p == [*b"moof", *b"mdat"]),
            "{top:?}"
        );
        let all = 0..buf.len();
        let avcc = find(
            &buf,
            all.clone(),
            &[b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"],
        )
        .unwrap();
        // stsd: version/flags, count, then avc1 (78 bytes of fields) and avcC inside it.
        let avc1 = boxes(&buf, avcc.start + 8..avcc.end)[0].clone();
        assert_eq!(&avc1.0, b"avc1");
        let c = boxes(&buf, avc1.1.start + 78..avc1.1.end)[0].clone();
        assert_eq!(&c.0, b"avcC");
        let c = &buf[c.1];
        assert_eq!(c[..5], [1, 0x42, 0xC0, 0x0D, 0xFF]);
        assert_eq!(c[5], 0xE1);
        assert_eq!(&c[8..8 + SPS.len()], SPS);
        assert_eq!(c[8 + SPS.len()], 1);
        // The audio track: an Opus entry with dOps.
        let traks: Vec<_> = boxes(&buf, find(&buf, all, &[b"moov"]).unwrap())
            .into_iter()
            .filter(|b| &b.0 == b"trak")
            .collect();
        assert_eq!(traks.len(), 2);
        let stsd = find(
            &buf,
            traks[1].1.clone(),
            &[b"mdia", b"minf", b"stbl", b"stsd"],
        )
        .unwrap();
        let entry = boxes(&buf, stsd.start + 8..stsd.end)[0].clone();
        assert_eq!(&entry.0, b"Opus");
        let d = boxes(&buf, entry.1.start + 28..entry.1.end)[0].clone();
        assert_eq!(&d.0, b"dOps");
        assert_eq!(
            buf[d.1.clone()],
            [0, 2, 0x01, 0x38, 0, 0, 0xBB, 0x80, 0, 0, 0]
        );
    }

    /// Per track id: (first tfdt, total duration, sample count, sizes).
    fn fragments(buf: &[u8]) -> std::collections::BTreeMap<u32, (u64, u64, usize, Vec<u32>)> {
        let mut out = std::collections::BTreeMap::new();
        let top = boxes(buf, 0..buf.len());
        for pair in top.windows(2) {
            let ((k1, moof), (k2, mdat)) = (&pair[0], &pair[1]);
            if k1 != b"moof" || k2 != b"mdat" {
                continue;
            }
            let moof_start = moof.start - 8;
            for (k, traf) in boxes(buf, moof.clone()) {
                if &k != b"traf" {
                    continue;
                }
                let tfhd = find(buf, traf.clone(), &[b"tfhd"]).unwrap();
                let id = be32(&buf[tfhd.start + 4..]);
                let tfdt = find(buf, traf.clone(), &[b"tfdt"]).unwrap();
                let base =
                    u64::from_be_bytes(buf[tfdt.start + 4..tfdt.start + 12].try_into().unwrap());
                let trun = find(buf, traf, &[b"trun"]).unwrap();
                let n = be32(&buf[trun.start + 4..]) as usize;
                let offset = be32(&buf[trun.start + 8..]) as usize;
                assert!(
                    moof_start + offset >= mdat.start && moof_start + offset <= mdat.end,
                    "data offset inside mdat"
                );
                let e = out.entry(id).or_insert((base, 0, 0, Vec::new()));
                assert_eq!(e.0 + e.1, base, "fragments follow each other without gaps");
                let mut at = moof_start + offset;
                for k in 0..n {
                    let s = trun.start + 12 + k * 12;
                    let (d, size) = (be32(&buf[s..]), be32(&buf[s + 4..]));
                    e.1 += u64::from(d);
                    e.2 += 1;
                    e.3.push(size);
                    at += size as usize;
                }
                assert!(at <= mdat.end);
            }
        }
        out
    }

    #[test]
    fn every_sample_is_in_a_fragment_with_its_duration() {
        let buf = sample(3, true);
        let f = fragments(&buf);
        let (base, dur, n, sizes) = &f[&1];
        assert_eq!((*base, *n), (0, 90));
        // 89 intervals of ~3000 ticks (µs times round down) and the last
        // frame lasting as long as the one before.
        assert!(dur.abs_diff(90 * 3000) <= 2, "{dur}");
        assert!(sizes.iter().all(|&s| s == 6));
        let (base, dur, n, _) = &f[&2];
        // Audio up to the last video frame (2.967 s): 149 packets of 20 ms.
        assert_eq!((*base, *n), (0, 149));
        assert_eq!(*dur, 149 * 960);
    }

    #[test]
    fn keyframes_start_fragments_after_a_second() {
        let mut w = Fmp4::new(Vec::new(), Some(params()), None).unwrap();
        for f in 0..95u64 {
            w.video(f * 1_000_000 / 30, f % 30 == 0, &[0, 0, 0, 1, 0x41])
                .unwrap();
        }
        w.finish().unwrap();
        let buf = w.into_inner();
        let f = fragments(&buf);
        assert_eq!(f[&1].2, 95);
        let moofs = boxes(&buf, 0..buf.len())
            .iter()
            .filter(|b| &b.0 == b"moof")
            .count();
        assert_eq!(moofs, 4, "cut at the keyframes of 1, 2 and 3 s");
        // The first sample of each fragment is a sync sample.
        for (k, r) in boxes(&buf, 0..buf.len()) {
            if &k == b"moof" {
                let trun = find(&buf, r, &[b"traf", b"trun"]).unwrap();
                assert_eq!(be32(&buf[trun.start + 20..]), SYNC);
            }
        }
    }

    #[test]
    fn a_truncated_file_keeps_its_whole_fragments() {
        let full = sample(3, false);
        let top = boxes(&full, 0..full.len());
        let last = top.last().unwrap().1.clone();
        let cut = &full[..last.start + 3];
        let whole = boxes(cut, 0..cut.len())
            .iter()
            .filter(|(_, r)| r.end < cut.len())
            .count();
        assert_eq!(whole, top.len() - 1);
        assert!(fragments(&full[..last.start - 8]).contains_key(&1));
    }

    #[test]
    fn bad_input_is_dropped_or_refused() {
        assert!(Fmp4::new(Vec::new(), None, None).is_err());
        let mut vp8 = params();
        vp8.format = VideoFormat::Vp8;
        assert!(Fmp4::new(Vec::new(), Some(vp8), None).is_err());
        let mut no_sps = params();
        no_sps.sps.clear();
        assert!(Fmp4::new(Vec::new(), Some(no_sps), None).is_err());
        let mut w = Fmp4::new(Vec::new(), None, Some(AudioParams { channels: 1 })).unwrap();
        w.audio(40_000, &[1]).unwrap();
        w.audio(20_000, &[2]).unwrap();
        w.audio(60_000, &[]).unwrap();
        w.video(0, true, &[1]).unwrap();
        assert_eq!(w.dropped(), 3);
        w.finish().unwrap();
        assert!(w.audio(80_000, &[3]).is_err());
    }
}
