//! The scenarios, modelled on LiveKit's load test: who joins which room,
//! in what order, and what each one publishes.
//!
//! - `livestream`: per room, 1 publisher (audio + video) and N viewers that
//!   only subscribe (they never send `publish_offer`).
//! - `meeting`: per room, N participants, each publishing audio + video and
//!   subscribing to everybody else.
//! - `audio-only`: per room, S speakers publishing audio, N listeners.
//!
//! Publishers join first (all rooms), then the others, rooms interleaved.

use std::time::Duration;

use clap::ValueEnum;
use serde::Serialize;

use crate::peer::MediaCfg;
use crate::signal::kaigi::ClientSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    Livestream,
    Meeting,
    AudioOnly,
}

/// Scenario sizes and media settings.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub scenario: Scenario,
    pub rooms: usize,
    pub subscribers: usize,
    pub speakers: usize,
    pub video_kbps: u32,
    pub fps: u32,
    pub keyframe_interval: Duration,
}

impl Plan {
    fn media(&self, video: bool) -> MediaCfg {
        MediaCfg {
            audio: true,
            video,
            video_kbps: self.video_kbps,
            fps: self.fps,
            keyframe_interval: self.keyframe_interval,
        }
    }

    /// Every client, in join order.
    pub fn clients(&self, room_prefix: &str) -> Vec<ClientSpec> {
        let (publishers, publish, others, other_publish) = match self.scenario {
            Scenario::Livestream => (1, self.media(true), self.subscribers, None),
            Scenario::Meeting => (
                0,
                self.media(true),
                self.subscribers,
                Some(self.media(true)),
            ),
            Scenario::AudioOnly => (self.speakers, self.media(false), self.subscribers, None),
        };
        let mut out = Vec::new();
        for (count, media) in [(publishers, Some(publish)), (others, other_publish)] {
            for _ in 0..count {
                for r in 0..self.rooms {
                    out.push(ClientSpec {
                        index: out.len(),
                        room: format!("{room_prefix}{r}"),
                        room_index: r,
                        publish: media,
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(scenario: Scenario) -> Plan {
        Plan {
            scenario,
            rooms: 2,
            subscribers: 3,
            speakers: 2,
            video_kbps: 500,
            fps: 15,
            keyframe_interval: Duration::from_secs(2),
        }
    }

    #[test]
    fn livestream_has_one_publisher_per_room_first() {
        let c = plan(Scenario::Livestream).clients("r");
        assert_eq!(c.len(), 2 * 4);
        assert!(c[..2].iter().all(|c| c.publish.is_some_and(|m| m.video)));
        assert!(c[2..].iter().all(|c| c.publish.is_none()));
        assert_eq!((c[0].room.as_str(), c[1].room.as_str()), ("r0", "r1"));
        assert!(c.iter().enumerate().all(|(i, c)| c.index == i));
    }

    #[test]
    fn meeting_everyone_publishes_audio_only_speakers_no_video() {
        let c = plan(Scenario::Meeting).clients("r");
        assert_eq!(c.len(), 6);
        assert!(c.iter().all(|c| c.publish.is_some()));
        let c = plan(Scenario::AudioOnly).clients("r");
        assert_eq!(c.len(), 2 * 5);
        assert_eq!(c.iter().filter(|c| c.publish.is_some()).count(), 4);
        assert!(
            c.iter()
                .flat_map(|c| c.publish)
                .all(|m| m.audio && !m.video)
        );
    }
}
