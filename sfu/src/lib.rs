//! kaigi's forwarding core.
//!
//! The core is sans-IO: [`WorkerCore`] takes "datagram from A at time T",
//! "timeout at T", commands and packets from other workers, and gives back
//! datagrams to send, messages for other workers and events for the
//! signaling side. [`Engine`] is the control plane: rooms, participants,
//! who subscribes to what, and which worker hosts whom. [`runtime`] is the
//! thin threaded shell that owns the sockets and the clock.
//!
//! What this crate does not own: HTTP, WebSocket, authentication and the
//! wire format of the signaling protocol (see the `kaigi` binary).

pub mod bwe;
pub mod codec;
pub mod engine;
pub mod keyframe;
pub mod layers;
pub mod net;
pub mod peer;
pub mod record;
pub mod room;
pub mod runtime;
pub mod speaker;
pub mod stats;
pub mod subscription;
pub mod track;
pub mod worker;

pub use engine::{
    BroadcastSource, Engine, EngineConfig, JoinError, Notice, NoticeKind, RoomSummary,
};
pub use peer::{Codec, Endpoint, PeerConfig, Transport};
pub use stats::{DropReason, WorkerStats};
pub use worker::{Command, Output, ViewerSource, WorkerCore, WorkerEvent, WorkerMsg};

/// A participant, unique in the process for its lifetime.
pub type ParticipantId = u64;

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

impl MediaKind {
    /// `audio` or `video`.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

/// A published track: the publishing participant and its n-th track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId {
    /// Who publishes it.
    pub participant: ParticipantId,
    /// Its number among that participant's tracks.
    pub index: u32,
}

impl std::fmt::Display for TrackId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p{}t{}", self.participant, self.index)
    }
}

/// Which of a participant's two peer connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The client offers and sends its own media.
    Publish,
    /// kaigi offers and sends the others' media.
    Subscribe,
}

/// A small, seedable random source: the core never reads the OS RNG or clock.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value).
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits (splitmix64).
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A string of `len` characters from the ICE character set.
    pub fn ice_string(&mut self, len: usize) -> String {
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..len)
            .map(|_| CHARS[(self.next_u64() % CHARS.len() as u64) as usize] as char)
            .collect()
    }
}
