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
    /// Keyframe requests from all subscribers, aggregated.
    pub keyframes: KeyframeThrottle,
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
