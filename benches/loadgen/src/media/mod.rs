//! What publishers send: Opus audio frames and VP8 video frames, on their
//! schedules. `opus` and `vp8` make the payloads; [`VideoSource`] decides
//! frame sizes and keyframes for a target bitrate.

pub mod opus;
pub mod vp8;

use std::time::Duration;

/// Sizes and keyframes of a synthetic video stream.
#[derive(Debug, Clone)]
pub struct VideoSource {
    /// Frames per second.
    pub fps: u32,
    frames_per_key: u64,
    key_len: usize,
    delta_len: usize,
    frame: u64,
    picture_id: u16,
    force_key: bool,
}

impl VideoSource {
    /// `kbps` average, a keyframe every `keyframe_interval` (and on request).
    pub fn new(kbps: u32, fps: u32, keyframe_interval: Duration) -> Self {
        let fps = fps.max(1);
        let avg = (kbps as usize * 1000 / 8 / fps as usize).max(16);
        let frames_per_key = ((keyframe_interval.as_secs_f64() * fps as f64).round() as u64).max(1);
        // A keyframe is about 5 average frames; deltas shrink to keep the average.
        let key_len = avg * 5;
        let n = frames_per_key as usize;
        let delta_len = if n > 1 {
            (avg * n).saturating_sub(key_len).max(16 * (n - 1)) / (n - 1)
        } else {
            avg
        };
        VideoSource {
            fps,
            frames_per_key,
            key_len,
            delta_len,
            frame: 0,
            picture_id: 0,
            force_key: false,
        }
    }

    /// Time between frames.
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.fps as f64)
    }

    /// RTP timestamp step per frame (90 kHz clock).
    pub fn rtp_step(&self) -> u32 {
        90_000 / self.fps
    }

    /// Asks for a keyframe next (a PLI arrived).
    pub fn request_keyframe(&mut self) {
        self.force_key = true;
    }

    /// The next frame's packets, and whether it is a keyframe.
    pub fn next_frame(&mut self) -> (Vec<vp8::Vp8Packet>, bool) {
        let key = self.force_key || self.frame.is_multiple_of(self.frames_per_key);
        if key {
            // Periodic keyframes count from the last one, forced or not.
            self.frame = 0;
        }
        self.force_key = false;
        self.frame += 1;
        self.picture_id = (self.picture_id + 1) & 0x7fff;
        let len = if key { self.key_len } else { self.delta_len };
        (vp8::packetize(len, key, self.picture_id), key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_and_requested_keyframes_and_average_rate() {
        let mut v = VideoSource::new(1000, 30, Duration::from_secs(2));
        let mut bytes = 0;
        let mut keys = Vec::new();
        for i in 0..120 {
            let (ps, key) = v.next_frame();
            if key {
                keys.push(i);
            }
            bytes += ps
                .iter()
                .map(|p| p.payload.len() - vp8::DESCRIPTOR_LEN - crate::clock::STAMP_LEN)
                .sum::<usize>();
        }
        assert_eq!(keys, vec![0, 60]);
        // 4 s at 1000 kbit/s = 500 kB, within 2%.
        assert!((490_000..510_000).contains(&bytes), "{bytes}");
        v.request_keyframe();
        assert!(v.next_frame().1);
        assert!(!v.next_frame().1);
    }
}
