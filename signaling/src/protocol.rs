//! The signaling protocol's messages (version 1), as documented in
//! `docs/protocol.md`. Only types and their JSON form live here.

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
    },
    /// The publish connection's offer.
    PublishOffer {
        /// SDP.
        sdp: String,
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
    /// Leave the room.
    Leave,
    /// Keep-alive.
    Ping,
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
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Joined.
    Welcome {
        /// Protocol version.
        v: u32,
        /// Room name.
        room: String,
        /// The client's own id.
        participant_id: String,
        /// The others in the room.
        participants: Vec<Participant>,
    },
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
                token: None
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
        for bad in [
            "",
            "{}",
            r#"{"type":"nope"}"#,
            r#"{"type":"join"}"#,
            r#"{"type":"mute","kind":"smell","muted":true}"#,
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
