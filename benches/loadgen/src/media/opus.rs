//! Real Opus audio from a generated voice-like signal: a 140 Hz tone with
//! harmonics under a syllable-rate envelope, pauses between "phrases", and
//! noise; 20 ms mono frames at 48 kHz.
//!
//! Each encoded frame is carried as an Opus *code 3* packet with padding
//! (RFC 6716 §3.2.5) whose 8 padding bytes are the send-time stamp (see
//! `clock`): decoders ignore padding, so the audio stays decodable.

use crate::clock::STAMP_LEN;

/// Samples per 20 ms frame at 48 kHz.
pub const FRAME_SAMPLES: usize = 960;
/// RTP timestamp step per frame.
pub const RTP_STEP: u32 = FRAME_SAMPLES as u32;

/// An encoder and its signal generator.
pub struct AudioSource {
    enc: opus::Encoder,
    n: u64,
    noise: u32,
    pcm: Vec<i16>,
    out: Vec<u8>,
}

/// One encoded frame, ready for RTP (stamp bytes zeroed).
pub struct AudioFrame {
    /// Code-3 Opus packet with the stamp as padding.
    pub payload: Vec<u8>,
    /// RFC 6464 level: -dBov, 0..=127.
    pub level: u8,
    /// Voice activity (the V bit).
    pub voice: bool,
}

impl AudioSource {
    /// A 32 kbit/s VoIP encoder.
    pub fn new(seed: u32) -> anyhow::Result<Self> {
        let mut enc = opus::Encoder::new(48000, opus::Channels::Mono, opus::Application::Voip)?;
        enc.set_bitrate(opus::Bitrate::Bits(32000))?;
        enc.set_complexity(5)?;
        Ok(AudioSource {
            enc,
            n: 0,
            noise: seed | 1,
            pcm: vec![0; FRAME_SAMPLES],
            out: vec![0; 1500],
        })
    }

    /// The next 20 ms frame.
    pub fn next_frame(&mut self) -> anyhow::Result<AudioFrame> {
        let mut energy = 0f64;
        for i in 0..FRAME_SAMPLES {
            let t = (self.n + i as u64) as f64 / 48000.0;
            // Phrases of ~3 s with ~1 s pauses; syllables at ~4 Hz.
            let phrase = (t % 4.0) < 3.0;
            let syll = (0.5 - 0.5 * (2.0 * std::f64::consts::PI * 4.0 * t).cos()).powi(2);
            let pitch = 140.0 + 20.0 * (2.0 * std::f64::consts::PI * 0.5 * t).sin();
            let ph = 2.0 * std::f64::consts::PI * pitch * t;
            let voiced = ph.sin() + 0.5 * (2.0 * ph).sin() + 0.25 * (3.0 * ph).sin();
            self.noise ^= self.noise << 13;
            self.noise ^= self.noise >> 17;
            self.noise ^= self.noise << 5;
            let noise = (self.noise as f64 / u32::MAX as f64 - 0.5) * 0.02;
            let s = if phrase { 0.3 * syll * voiced } else { 0.0 } + noise;
            energy += s * s;
            self.pcm[i] = (s.clamp(-1.0, 1.0) * 32767.0) as i16;
        }
        self.n += FRAME_SAMPLES as u64;
        let rms = (energy / FRAME_SAMPLES as f64).sqrt().max(1e-7);
        let dbov = -20.0 * rms.log10();
        let level = dbov.clamp(0.0, 127.0) as u8;
        let len = self.enc.encode(&self.pcm, &mut self.out)?;
        Ok(AudioFrame {
            payload: pad_with_stamp(&self.out[..len]),
            level,
            voice: level < 50,
        })
    }
}

/// Turns an Opus packet of one frame (code 0) into a code-3 packet with
/// [`STAMP_LEN`] bytes of padding at the end.
pub fn pad_with_stamp(packet: &[u8]) -> Vec<u8> {
    let toc = packet[0];
    if toc & 0x03 != 0 {
        // Not a single frame: leave it, append the stamp (the decoder may
        // mis-read the tail; libopus only makes code 0 at 20 ms).
        let mut p = packet.to_vec();
        p.extend_from_slice(&[0; STAMP_LEN]);
        return p;
    }
    let mut p = Vec::with_capacity(packet.len() + 3 + STAMP_LEN);
    p.push(toc | 0x03);
    p.push(0x40 | 0x01); // CBR, padding follows, one frame
    p.push(STAMP_LEN as u8); // padding length
    p.extend_from_slice(&packet[1..]);
    p.extend_from_slice(&[0; STAMP_LEN]);
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock;

    #[test]
    fn padded_frames_decode_and_carry_the_stamp() {
        let mut src = AudioSource::new(1).unwrap();
        let mut dec = opus::Decoder::new(48000, opus::Channels::Mono).unwrap();
        let mut pcm = vec![0i16; FRAME_SAMPLES];
        let mut levels = Vec::new();
        for _ in 0..100 {
            let f = src.next_frame().unwrap();
            let mut p = f.payload.clone();
            let t = clock::epoch() + std::time::Duration::from_micros(999);
            clock::write_stamp(&mut p, t);
            assert_eq!(clock::read_stamp(&p), Some(999));
            assert_eq!(dec.decode(&p, &mut pcm, false).unwrap(), FRAME_SAMPLES);
            levels.push(f.level);
        }
        // Speech and pauses: the level moves.
        assert!(levels.iter().min() < levels.iter().max());
    }

    #[test]
    fn padding_layout() {
        let p = pad_with_stamp(&[0x78, 1, 2, 3]);
        assert_eq!(&p[..6], &[0x7b, 0x41, 8, 1, 2, 3]);
        assert_eq!(p.len(), 6 + STAMP_LEN);
    }
}
