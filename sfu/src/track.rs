//! An incoming track (mediasoup's Producer): its codec, its keyframe
//! throttle, and the workers that have subscribers to it.

use crate::keyframe::KeyframeThrottle;
use crate::peer::Codec;
use crate::{MediaKind, TrackId};

/// A track published by a participant hosted on this worker.
#[derive(Debug)]
pub struct PublishedTrack {
    /// Its global id.
    pub id: TrackId,
    /// The id the publisher's stack gave it (msid track id).
    pub local_id: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// Its codec.
    pub codec: Codec,
    /// Keyframe requests from all subscribers, aggregated, per layer.
    pub keyframes: Vec<KeyframeThrottle>,
    /// The SSRC of each simulcast layer, low to high (one entry without
    /// simulcast); `None` until that layer's first packet.
    pub layers: Vec<Option<u32>>,
    /// Workers (by index) that host at least one subscriber; packets go
    /// once to each, not once per subscriber.
    pub fanout: Vec<usize>,
    /// Not forwarded at all: a moderator muted its publisher, and only the
    /// publisher's own unmute releases it.
    pub held: bool,
    /// The header extension id of audio levels in its packets (audio only).
    pub audio_level_id: Option<u8>,
    /// Loudness since the last report to the engine.
    pub levels: crate::speaker::LevelMeter,
}

impl PublishedTrack {
    /// The layer a packet with this SSRC belongs to (0 without simulcast;
    /// `None` for a stream the track does not know).
    pub fn layer_of(&self, ssrc: u32) -> Option<u8> {
        if self.layers.len() <= 1 {
            return Some(0);
        }
        self.layers
            .iter()
            .position(|&s| s == Some(ssrc))
            .map(|i| i as u8)
    }

    /// Adds a worker to the fan-out (idempotent).
    pub fn add_worker(&mut self, worker: usize) {
        if !self.fanout.contains(&worker) {
            self.fanout.push(worker);
        }
    }

    /// Removes a worker from the fan-out.
    pub fn remove_worker(&mut self, worker: usize) {
        self.fanout.retain(|&w| w != worker);
    }
}
