//! A room: who is in it, what they publish, and on which workers each
//! track has subscribers. Pure bookkeeping for the [`crate::Engine`].

use std::collections::HashMap;

use crate::peer::Codec;
use crate::{MediaKind, ParticipantId, TrackId};

/// The longest room name.
pub const MAX_ROOM_NAME: usize = 64;

/// Why a room name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomNameError {
    /// Empty or longer than [`MAX_ROOM_NAME`].
    #[error("a room name has 1 to {MAX_ROOM_NAME} characters")]
    Length,
    /// A character outside `A-Z a-z 0-9 - _ .`, or a leading dot.
    #[error(
        "a room name uses only letters A-Z a-z, digits, '-', '_' and '.', and does not start with '.'"
    )]
    Characters,
}

/// Checks a room name: 1–64 of `A-Z a-z 0-9 - _ .`, not starting with `.`.
pub fn validate_name(name: &str) -> Result<(), RoomNameError> {
    if name.is_empty() || name.len() > MAX_ROOM_NAME {
        return Err(RoomNameError::Length);
    }
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok || name.starts_with('.') {
        return Err(RoomNameError::Characters);
    }
    Ok(())
}

/// A track as the room knows it.
#[derive(Debug, Clone)]
pub struct RoomTrack {
    /// Audio or video.
    pub kind: MediaKind,
    /// Its codec.
    pub codec: Codec,
    /// The worker of its publisher.
    pub source_worker: usize,
    /// Subscribers per worker.
    pub subscribers: HashMap<usize, usize>,
    /// A screen share (its publisher declared it so).
    pub screen: bool,
    /// (Camera video) whether anyone shows it; `None` before it was first
    /// worked out (publishers start sending).
    pub wanted: Option<bool>,
    /// (Simulcast video) the highest layer each worker's subscribers are to
    /// receive.
    pub layers_wanted: HashMap<usize, u8>,
    /// The highest layer the publisher was last told to encode.
    pub layers_sent: Option<u8>,
}

impl RoomTrack {
    /// Camera video: paused for subscribers that do not show its publisher.
    pub fn pausable(&self) -> bool {
        self.kind == MediaKind::Video && !self.screen
    }
}

/// One room.
#[derive(Debug, Default)]
pub struct Room {
    /// Participants in join order.
    pub participants: Vec<ParticipantId>,
    /// WHEP viewers (not participants: they get no notices).
    pub viewers: Vec<ParticipantId>,
    /// The presenters a moderator put live for the viewers (the main one first).
    pub live: Vec<ParticipantId>,
    /// Published tracks.
    pub tracks: HashMap<TrackId, RoomTrack>,
    /// Who speaks.
    pub speakers: crate::speaker::SpeakerDetector,
}

impl Room {
    /// Counts one more subscriber of `track` on `worker`; true if it is the first there.
    pub fn add_subscriber(&mut self, track: TrackId, worker: usize) -> bool {
        let Some(t) = self.tracks.get_mut(&track) else {
            return false;
        };
        let n = t.subscribers.entry(worker).or_insert(0);
        *n += 1;
        *n == 1
    }

    /// Counts one subscriber less; true if it was the last on that worker.
    pub fn remove_subscriber(&mut self, track: TrackId, worker: usize) -> bool {
        let Some(t) = self.tracks.get_mut(&track) else {
            return false;
        };
        match t.subscribers.get_mut(&worker) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                t.subscribers.remove(&worker);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names() {
        for ok in ["a", "soumu-ka", "Room_1.2", &"x".repeat(64)] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_name(""), Err(RoomNameError::Length));
        assert_eq!(validate_name(&"x".repeat(65)), Err(RoomNameError::Length));
        for bad in [".hidden", "a/b", "a b", "会議", "../etc", "a%20"] {
            assert_eq!(validate_name(bad), Err(RoomNameError::Characters), "{bad}");
        }
    }

    #[test]
    fn subscriber_counts_per_worker() {
        let mut r = Room::default();
        let t = TrackId {
            participant: 1,
            index: 0,
        };
        r.tracks.insert(
            t,
            RoomTrack {
                kind: MediaKind::Audio,
                codec: Codec {
                    mime_type: "audio/opus".into(),
                    clock_rate: 48000,
                    channels: 2,
                    fmtp: String::new(),
                },
                source_worker: 0,
                subscribers: HashMap::new(),
                screen: false,
                wanted: None,
                layers_wanted: HashMap::new(),
                layers_sent: None,
            },
        );
        assert!(r.add_subscriber(t, 1));
        assert!(!r.add_subscriber(t, 1));
        assert!(r.add_subscriber(t, 0));
        assert!(!r.remove_subscriber(t, 1));
        assert!(r.remove_subscriber(t, 1));
        assert!(!r.remove_subscriber(t, 1));
    }
}
