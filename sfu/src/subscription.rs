//! One outgoing copy of a published track for one subscriber (mediasoup's
//! Consumer): which sender of the subscriber's downlink carries it, with which
//! SSRC and negotiated payload type. The downlink writes each forwarded
//! packet's header with those (extensions dropped: their ids are negotiated
//! per connection) and shares the payload.

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
}
