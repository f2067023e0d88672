//! The signaling protocol's messages (version 1), as documented in
//! `docs/protocol.md`. Only types and their JSON form live here.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The protocol version this server speaks.
pub const VERSION: u32 = 1;

/// Which of a participant's peer connections a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PcRole {
    /// The client's own media.
    Publish,
    /// Everybody else's media.
    Subscribe,
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Microphone.
    Audio,
    /// Camera.
    Video,
}

/// An ICE candidate as the browser gives it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Candidate {
    /// The `candidate:` line (empty: end of candidates).
    pub candidate: String,
    /// The m-section id.
    #[serde(default, alias = "sdpMid")]
    pub sdp_mid: Option<String>,
    /// The m-section index.
    #[serde(default, alias = "sdpMLineIndex")]
    pub sdp_mline_index: Option<u16>,
}

/// Client → server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Enter a room.
    Join {
        /// Protocol version the client speaks.
        #[serde(default)]
        v: Option<u32>,
        /// Room name.
        room: String,
        /// Display name.
        name: String,
        /// A join token, when the room needs one.
        #[serde(default)]
        token: Option<String>,
        /// The room's password, for a room that has one.
        #[serde(default)]
        password: Option<String>,
        /// The `resume_token` of an earlier session whose connection
        /// dropped: the client comes back as the same participant.
        #[serde(default)]
        resume: Option<String>,
    },
    /// The publish connection's offer.
    PublishOffer {
        /// SDP.
        sdp: String,
        /// What some of its tracks are, by track id (the msid track id):
        /// `screen` marks a screen share.
        #[serde(default)]
        sources: HashMap<String, TrackSource>,
    },
    /// The answer to the latest subscribe offer.
    SubscribeAnswer {
        /// SDP.
        sdp: String,
    },
    /// A trickled candidate.
    Candidate {
        /// Which connection.
        pc: PcRole,
        /// The candidate.
        candidate: Candidate,
    },
    /// Microphone or camera muted/unmuted.
    Mute {
        /// Which.
        kind: Kind,
        /// Now muted.
        muted: bool,
    },
    /// A chat message to everyone in the room.
    Chat {
        /// Plain text (never interpreted as HTML).
        text: String,
    },
    /// Start or stop sharing one's screen (asks first: one share at a time
    /// unless a moderator allows more).
    Share {
        /// Sharing.
        on: bool,
    },
    /// Whose video the client does not show now (off its grid page, or its
    /// tab hidden): their camera video is not sent to it.
    View {
        /// Participant ids; at most [`MAX_VIEW`]. Empty: it shows everyone.
        hidden: Vec<String>,
        /// The size (device pixels, `[width, height]`) it shows each camera
        /// (`"p7"`) and screen share (`"p7-screen"`) at; at most [`MAX_VIEW`].
        /// The layer it receives fits that size; without one, the top layer.
        #[serde(default)]
        sizes: std::collections::HashMap<String, [u32; 2]>,
    },
    /// Raise or lower one's hand.
    Hand {
        /// Raised.
        raised: bool,
    },
    /// A moderator's action.
    Moderate(ModerateAction),
    /// Leave the room.
    Leave,
    /// Keep-alive.
    Ping,
}

/// What a moderator can do.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ModerateAction {
    /// Mute someone's microphone (or camera); only they can unmute.
    Mute {
        /// Participant id (`p3`).
        target: String,
        /// Which.
        kind: Kind,
    },
    /// Remove someone from the meeting.
    Remove {
        /// Participant id.
        target: String,
    },
    /// Lock or unlock the room: a locked room takes no new participants.
    Lock {
        /// Locked.
        locked: bool,
    },
    /// Turn the waiting room on or off.
    Lobby {
        /// On.
        enabled: bool,
    },
    /// Let someone in from the waiting room.
    Admit {
        /// Waiting-room id (`l4`).
        target: String,
    },
    /// Turn someone away from the waiting room.
    Deny {
        /// Waiting-room id.
        target: String,
    },
    /// Allow several screen shares at once (or back to one).
    AllowShares {
        /// More than one allowed.
        allowed: bool,
    },
    /// Grant moderation to another participant.
    Promote {
        /// Participant id.
        target: String,
    },
    /// Choose whom viewers (WHEP, the watch page) see and hear: `target`
    /// alone, or `targets` (the first is the main picture and the sound, the
    /// others further pictures); neither (or empty) for the room's first
    /// publisher.
    SetLive {
        /// One participant id.
        #[serde(default)]
        target: Option<String>,
        /// Several, the main one first.
        #[serde(default)]
        targets: Option<Vec<String>>,
    },
    /// End the meeting for everyone.
    End,
}

/// What others see of a participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Participant {
    /// `p<number>`; also the msid stream id of its media.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Microphone muted.
    pub audio_muted: bool,
    /// Camera off.
    pub video_muted: bool,
    /// Hand raised.
    pub hand_raised: bool,
    /// May moderate the room.
    pub moderator: bool,
    /// Sharing its screen (shown in the stream `<id>-screen`).
    pub sharing: bool,
    /// Its connection dropped; it may come back (`resume`).
    pub reconnecting: bool,
}

/// What a published track is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackSource {
    /// The camera.
    Camera,
    /// The microphone.
    Microphone,
    /// A shared screen, window or tab.
    Screen,
}

/// At most this many ids in a `view`.
pub const MAX_VIEW: usize = 256;

/// At most this many `sources` entries in one offer, each id at most 64 bytes.
pub const MAX_SOURCES: usize = 8;

/// One chat message, as sent and as kept in the room's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatEntry {
    /// Increasing per room.
    pub id: u64,
    /// Sender's participant id.
    pub from: String,
    /// Sender's display name when it was sent.
    pub name: String,
    /// The text (plain; clients must not render it as HTML).
    pub text: String,
    /// When the server received it, milliseconds since the Unix epoch.
    pub ts: u64,
}

/// Room-wide settings a moderator controls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RoomState {
    /// No new participants.
    pub locked: bool,
    /// New participants wait until a moderator admits them.
    pub lobby: bool,
    /// More than one screen share at a time.
    pub multiple_shares: bool,
}

/// Someone in the waiting room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiting {
    /// Waiting-room id (`l4`).
    pub id: String,
    /// Display name.
    pub name: String,
}

/// The `welcome` message: the joiner's view of the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Welcome {
    /// Protocol version.
    pub v: u32,
    /// Room name.
    pub room: String,
    /// The client's own id.
    pub participant_id: String,
    /// The others in the room.
    pub participants: Vec<Participant>,
    /// Whether the joiner moderates the room.
    pub moderator: bool,
    /// The room's settings.
    pub room_state: RoomState,
    /// Recent chat, oldest first.
    pub chat: Vec<ChatEntry>,
    /// Who waits to be admitted (moderators only; empty otherwise).
    pub lobby: Vec<Waiting>,
    /// Secret to send as `resume` in `join` after a dropped connection.
    pub resume_token: String,
    /// This session resumed an earlier one (same participant id).
    pub resumed: bool,
    /// Cluster mode: the other live nodes' URLs (this node's site first),
    /// where the page rejoins if this node stops answering.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// Recent speakers, the active one first.
    pub speakers: Vec<String>,
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Joined.
    Welcome(Box<Welcome>),
    /// Answer for the publish connection.
    PublishAnswer {
        /// SDP.
        sdp: String,
    },
    /// A (re)offer for the subscribe connection.
    SubscribeOffer {
        /// SDP.
        sdp: String,
    },
    /// Someone joined.
    ParticipantJoined {
        /// Who.
        participant: Participant,
    },
    /// Someone left.
    ParticipantLeft {
        /// Their id.
        id: String,
    },
    /// Someone's state changed.
    ParticipantUpdated {
        /// Who, now.
        participant: Participant,
    },
    /// Whether anyone shows the client's camera now: when nobody does it may
    /// stop encoding it (and starts again when told `true`).
    VideoWanted {
        /// Wanted.
        wanted: bool,
    },
    /// kaigi's answer to a viewer's WHEP offer (carried over HTTP, never
    /// sent on the WebSocket).
    SubscribeAnswer {
        /// The SDP.
        sdp: String,
    },
    /// Encode only simulcast layers 0..=max of the camera (low to high):
    /// nobody receives the ones above.
    VideoLayers {
        /// The highest layer wanted.
        max: u8,
    },
    /// Whom viewers see now (a moderator's `set_live`, or a live presenter
    /// left).
    Live {
        /// The main presenter (picture and sound), or null: the room's first publisher.
        id: Option<String>,
        /// Every live presenter, the main one first.
        ids: Vec<String>,
    },
    /// The active speaker changed.
    ActiveSpeaker {
        /// Who speaks now.
        id: String,
        /// Recent speakers, most recent first (at most 9).
        recent: Vec<String>,
    },
    /// A chat message.
    Chat(ChatEntry),
    /// The room's settings changed.
    RoomState(RoomState),
    /// A moderator muted the client: its media of this kind is no longer
    /// forwarded until it unmutes itself.
    MutedByModerator {
        /// Which.
        kind: Kind,
        /// The moderator's name.
        by: String,
    },
    /// The client waits in the waiting room for a moderator.
    LobbyWaiting,
    /// (To moderators) someone waits to be admitted.
    LobbyRequest(Waiting),
    /// (To moderators) someone left the waiting room (admitted, denied, gone).
    LobbyLeft {
        /// Waiting-room id.
        id: String,
    },
    /// A moderator turned the client away; the connection closes.
    LobbyDenied,
    /// The room is hosted on another node: join there (the meeting page's
    /// URL on that node). The connection closes.
    Redirect {
        /// Where.
        url: String,
    },
    /// A moderator removed the client; the connection closes.
    Removed {
        /// The moderator's name.
        by: String,
    },
    /// A moderator ended the meeting; the connection closes.
    MeetingEnded {
        /// The moderator's name.
        by: String,
    },
    /// A request failed.
    Error {
        /// Machine-readable code.
        code: String,
        /// Human-readable reason.
        message: String,
    },
    /// Answer to `ping`.
    Pong,
}

impl ServerMsg {
    /// Whether the session closes after this message.
    pub fn ends_session(&self) -> bool {
        matches!(
            self,
            ServerMsg::LobbyDenied | ServerMsg::Removed { .. } | ServerMsg::MeetingEnded { .. }
        )
    }

    /// An error message.
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        ServerMsg::Error {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// The wire id of a participant.
pub fn participant_id(id: sfu::ParticipantId) -> String {
    format!("p{id}")
}

/// The longest chat message, in characters.
pub const MAX_CHAT_CHARS: usize = 2000;

/// Cleans a chat message: drops control characters except line breaks and
/// tabs, trims, and refuses empty or over-long text.
pub fn clean_chat(text: &str) -> Result<String, &'static str> {
    let cleaned: String = text
        .chars()
        .filter(|&c| !c.is_control() || c == '\n' || c == '\t')
        .collect::<String>()
        .trim()
        .to_owned();
    if cleaned.is_empty() {
        return Err("a chat message needs some text");
    }
    if cleaned.chars().count() > MAX_CHAT_CHARS {
        return Err("a chat message is at most 2000 characters");
    }
    Ok(cleaned)
}

/// Parses a wire id with its prefix (`p3`, `l4`).
pub fn parse_id(prefix: char, s: &str) -> Option<u64> {
    s.strip_prefix(prefix)?.parse().ok()
}

/// Cleans a display name: trims, drops control characters, caps at 64 characters.
pub fn clean_name(name: &str) -> Option<String> {
    let cleaned: String = name
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .chars()
        .take(64)
        .collect();
    (!cleaned.is_empty()).then_some(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_client_messages() {
        let m: ClientMsg =
            serde_json::from_str(r#"{"type":"join","v":1,"room":"r1","name":"山田"}"#).unwrap();
        assert_eq!(
            m,
            ClientMsg::Join {
                v: Some(1),
                room: "r1".into(),
                name: "山田".into(),
                token: None,
                password: None,
                resume: None
            }
        );
        let m: ClientMsg = serde_json::from_str(
            r#"{"type":"candidate","pc":"publish","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5 typ host","sdpMid":"0","sdpMLineIndex":0}}"#,
        )
        .unwrap();
        assert!(matches!(
            m,
            ClientMsg::Candidate {
                pc: PcRole::Publish,
                ..
            }
        ));
        let m: ClientMsg = serde_json::from_str(
            r#"{"type":"view","hidden":["p2"],"sizes":{"p3":[640,352],"p3-screen":[1280,720]}}"#,
        )
        .unwrap();
        let ClientMsg::View { hidden, sizes } = m else {
            panic!("not a view: {m:?}");
        };
        assert_eq!(hidden, vec!["p2".to_owned()]);
        assert_eq!(sizes["p3-screen"], [1280, 720]);
        // Older clients send no sizes.
        assert!(matches!(
            serde_json::from_str::<ClientMsg>(r#"{"type":"view","hidden":[]}"#),
            Ok(ClientMsg::View { sizes, .. }) if sizes.is_empty()
        ));
        assert_eq!(
            serde_json::to_string(&ServerMsg::VideoLayers { max: 1 }).unwrap(),
            r#"{"type":"video_layers","max":1}"#
        );
        for bad in [
            "",
            "{}",
            r#"{"type":"nope"}"#,
            r#"{"type":"join"}"#,
            r#"{"type":"mute","kind":"smell","muted":true}"#,
            r#"{"type":"view","hidden":[],"sizes":{"p3":[640]}}"#,
            r#"{"type":"view","hidden":[],"sizes":{"p3":[-1,5]}}"#,
            "[1,2]",
        ] {
            assert!(serde_json::from_str::<ClientMsg>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn serialises_server_messages() {
        let s = serde_json::to_string(&ServerMsg::ParticipantLeft { id: "p3".into() }).unwrap();
        assert_eq!(s, r#"{"type":"participant_left","id":"p3"}"#);
        assert_eq!(
            serde_json::to_string(&ServerMsg::Pong).unwrap(),
            r#"{"type":"pong"}"#
        );
    }

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name("  山田\u{0}太郎 \n"), Some("山田太郎".into()));
        assert_eq!(clean_name(" \t "), None);
        assert_eq!(clean_name(&"あ".repeat(100)).unwrap().chars().count(), 64);
    }
}
