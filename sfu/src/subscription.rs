//! One outgoing copy of a published track for one subscriber (mediasoup's
//! Consumer): which sender of the subscriber's downlink carries it, with which
//! SSRC and negotiated payload type, and which simulcast layer it forwards.
//! The downlink writes each forwarded packet's header with those (extensions
//! dropped: their ids are negotiated per connection) and shares the payload.

use crate::peer::{Codec, SenderId};
use crate::{MediaKind, ParticipantId, TrackId};

/// A track forwarded to one subscriber.
#[derive(Debug)]
pub struct Subscription {
    /// The subscriber.
    pub subscriber: ParticipantId,
    /// What it receives.
    pub track: TrackId,
    /// Audio or video.
    pub kind: MediaKind,
    /// The codec of the source.
    pub codec: Codec,
    /// The sender on the subscriber's subscribe peer.
    pub sender: SenderId,
    /// The SSRC kaigi sends it with.
    pub ssrc: u32,
    /// The payload type the subscriber negotiated; `None` until its answer is applied.
    pub payload_type: Option<u8>,
    /// Not forwarded: the subscriber does not show this video (off its page).
    pub paused: bool,
    /// A screen share (shown large: first served when bandwidth is short).
    pub screen: bool,
    /// The layer being forwarded (0 without simulcast); `None`: none, the
    /// link cannot carry even the lowest.
    pub current: Option<u8>,
    /// The layer the allocator chose; the switch happens on its next keyframe.
    pub target: Option<u8>,
    /// The size (device pixels) the subscriber shows it at, if it said.
    pub size: Option<(u32, u32)>,
    /// Allocation rounds in a row in which not even the lowest layer fit.
    pub starved: u8,
    /// No layer above the target before this (it just went down).
    pub upgrade_after: Option<std::time::Instant>,
    /// When it last came back after a pause for bandwidth.
    pub resumed_at: Option<std::time::Instant>,
    /// How long the last pause for bandwidth lasted at least.
    pub pause_backoff: std::time::Duration,
}

impl Subscription {
    /// Whether a packet of `layer` is forwarded, switching layers when the
    /// packet starts a keyframe of the chosen one. Returns (forward, switched).
    pub fn admit(&mut self, layer: u8, keyframe_start: impl FnOnce() -> bool) -> (bool, bool) {
        if self.current == Some(layer) {
            return (true, false);
        }
        let Some(target) = self.target else {
            return (false, false);
        };
        // The chosen layer, or while nothing flows, any layer up to it: a
        // picture now beats a better one later.
        let acceptable = layer == target || (self.current.is_none() && layer < target);
        if acceptable && keyframe_start() {
            self.current = Some(layer);
            return (true, true);
        }
        (false, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub() -> Subscription {
        Subscription {
            subscriber: 1,
            track: TrackId {
                participant: 2,
                index: 0,
            },
            kind: MediaKind::Video,
            codec: Codec {
                mime_type: "video/VP8".into(),
                clock_rate: 90000,
                channels: 0,
                fmtp: String::new(),
            },
            sender: SenderId::default(),
            ssrc: 1,
            payload_type: Some(96),
            paused: false,
            screen: false,
            current: Some(0),
            target: Some(0),
            size: None,
            starved: 0,
            upgrade_after: None,
            resumed_at: None,
            pause_backoff: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn switches_only_on_a_keyframe_of_the_target() {
        let mut s = sub();
        assert_eq!(s.admit(0, || false), (true, false));
        assert_eq!(s.admit(2, || true), (false, false), "not the target");
        s.target = Some(2);
        assert_eq!(s.admit(2, || false), (false, false), "waits for a keyframe");
        assert_eq!(s.admit(0, || false), (true, false), "old layer until then");
        assert_eq!(s.admit(2, || true), (true, true));
        assert_eq!(
            s.admit(0, || true),
            (false, false),
            "old layer dropped after"
        );
        assert_eq!(s.current, Some(2));
    }

    #[test]
    fn with_nothing_flowing_any_lower_layer_starts() {
        let mut s = sub();
        s.current = None;
        s.target = Some(1);
        assert_eq!(s.admit(2, || true), (false, false), "above the target");
        assert_eq!(s.admit(0, || true), (true, true));
        s.target = None;
        s.current = None;
        assert_eq!(s.admit(0, || true), (false, false), "paused for bandwidth");
    }
}
