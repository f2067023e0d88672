//! Who is speaking in a room, from the audio levels publishers put in their
//! packets (RFC 6464: 0 is the loudest, 127 silence, in -dBov).
//!
//! Workers report each audio track's mean loudness (127 − level) over a
//! short interval; the detector smooths it per participant and names the
//! active speaker: the loudest one above the speech threshold, once it has
//! stayed the loudest for [`SWITCH_AFTER`] (so a cough or a short "yes"
//! does not move the stage). It also keeps the most recent speakers, for
//! pages that keep them on the first page in big rooms.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::ParticipantId;

/// Louder than −45 dBov counts as speech (quiet rooms sit near −60 and
/// below, speech around −20 to −35).
pub const SPEECH_LOUDNESS: f32 = 127.0 - 45.0;

/// How long someone must stay the loudest before the stage moves to them.
pub const SWITCH_AFTER: Duration = Duration::from_millis(600);

/// A report older than this counts as silence (the track stopped: muted,
/// DTX, or gone).
const STALE: Duration = Duration::from_millis(1500);

/// The weight of a new report in the smoothed loudness.
const NEW_WEIGHT: f32 = 0.5;

/// How many recent speakers are remembered.
pub const RECENT: usize = 9;

#[derive(Debug, Clone, Copy)]
struct Score {
    smoothed: f32,
    at: Instant,
}

/// What changed after a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerChange {
    /// The new active speaker.
    pub speaker: ParticipantId,
    /// Recent speakers, most recent first (the active one included).
    pub recent: Vec<ParticipantId>,
}

/// The active-speaker state of one room.
#[derive(Debug, Default)]
pub struct SpeakerDetector {
    scores: HashMap<ParticipantId, Score>,
    current: Option<ParticipantId>,
    /// The loudest speaker other than the current one, and since when.
    candidate: Option<(ParticipantId, Instant)>,
    recent: VecDeque<ParticipantId>,
}

impl SpeakerDetector {
    /// Records `id`'s mean loudness (127 − level) over the last interval and
    /// decides again; returns the change, if the stage moves.
    pub fn report(
        &mut self,
        now: Instant,
        id: ParticipantId,
        loudness: f32,
    ) -> Option<SpeakerChange> {
        let s = self.scores.entry(id).or_insert(Score {
            smoothed: loudness,
            at: now,
        });
        s.smoothed = s.smoothed * (1.0 - NEW_WEIGHT) + loudness * NEW_WEIGHT;
        s.at = now;
        self.decide(now)
    }

    /// Forgets a participant (it left).
    pub fn remove(&mut self, id: ParticipantId) {
        self.scores.remove(&id);
        self.recent.retain(|&p| p != id);
        if self.current == Some(id) {
            self.current = None;
        }
        if self.candidate.is_some_and(|(c, _)| c == id) {
            self.candidate = None;
        }
    }

    /// The active speaker, if anyone has spoken.
    pub fn current(&self) -> Option<ParticipantId> {
        self.current
    }

    /// Recent speakers, most recent first.
    pub fn recent(&self) -> Vec<ParticipantId> {
        self.recent.iter().copied().collect()
    }

    fn loudness(&self, id: ParticipantId, now: Instant) -> f32 {
        match self.scores.get(&id) {
            Some(s) if now.saturating_duration_since(s.at) <= STALE => s.smoothed,
            _ => 0.0,
        }
    }

    fn decide(&mut self, now: Instant) -> Option<SpeakerChange> {
        let loudest = self
            .scores
            .keys()
            .map(|&id| (id, self.loudness(id, now)))
            .filter(|&(_, l)| l >= SPEECH_LOUDNESS)
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(id, _)| id);
        let Some(top) = loudest.filter(|&t| Some(t) != self.current) else {
            self.candidate = None;
            return None;
        };
        let since = match self.candidate {
            Some((c, since)) if c == top => since,
            _ => {
                self.candidate = Some((top, now));
                now
            }
        };
        // Nobody on stage yet: the first speaker takes it at once.
        if self.current.is_some() && now.saturating_duration_since(since) < SWITCH_AFTER {
            return None;
        }
        self.current = Some(top);
        self.candidate = None;
        self.recent.retain(|&p| p != top);
        self.recent.push_front(top);
        self.recent.truncate(RECENT);
        Some(SpeakerChange {
            speaker: top,
            recent: self.recent(),
        })
    }
}

/// Mean loudness accumulated between reports, kept per audio track.
#[derive(Debug, Default, Clone, Copy)]
pub struct LevelMeter {
    sum: u32,
    count: u32,
}

impl LevelMeter {
    /// Adds one packet's RFC 6464 level byte (the V bit is ignored).
    pub fn add(&mut self, level_byte: u8) {
        self.sum += 127 - u32::from(level_byte & 0x7f);
        self.count += 1;
    }

    /// The mean loudness since the last take, and resets; `None` if no
    /// packet carried a level.
    pub fn take(&mut self) -> Option<f32> {
        let r = (self.count > 0).then(|| self.sum as f32 / self.count as f32);
        *self = LevelMeter::default();
        r
    }
}

/// The level byte of RFC 6464's one-byte extension payload.
pub fn level_of(ext_payload: &[u8]) -> Option<u8> {
    ext_payload.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEECH: f32 = 127.0 - 25.0;
    const QUIET: f32 = 127.0 - 70.0;

    /// Feeds reports every 300 ms for `secs` seconds; returns the changes.
    fn run(
        d: &mut SpeakerDetector,
        t: &mut Instant,
        secs: f32,
        loud: &[(ParticipantId, f32)],
    ) -> Vec<SpeakerChange> {
        let mut out = Vec::new();
        let steps = (secs / 0.3).round() as usize;
        for _ in 0..steps {
            *t += Duration::from_millis(300);
            for &(id, l) in loud {
                out.extend(d.report(*t, id, l));
            }
        }
        out
    }

    #[test]
    fn the_first_speaker_takes_the_stage_at_once() {
        let mut d = SpeakerDetector::default();
        let t = Instant::now();
        assert_eq!(
            d.report(t, 1, QUIET),
            None,
            "background noise is not speech"
        );
        let c = d.report(t, 2, SPEECH).expect("speech");
        assert_eq!(c.speaker, 2);
        assert_eq!(c.recent, vec![2]);
    }

    #[test]
    fn a_new_speaker_needs_to_hold_the_floor() {
        let mut d = SpeakerDetector::default();
        let mut t = Instant::now();
        run(&mut d, &mut t, 2.0, &[(1, SPEECH), (2, QUIET)]);
        assert_eq!(d.current(), Some(1));
        // A short interjection (one report) does not move the stage.
        assert!(run(&mut d, &mut t, 0.3, &[(1, QUIET), (2, SPEECH + 10.0)]).is_empty());
        run(&mut d, &mut t, 0.6, &[(1, SPEECH), (2, QUIET)]);
        assert_eq!(d.current(), Some(1));
        // Speaking on: the stage moves after about SWITCH_AFTER.
        let changes = run(&mut d, &mut t, 3.0, &[(1, QUIET), (2, SPEECH)]);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].speaker, 2);
        assert_eq!(changes[0].recent, vec![2, 1]);
    }

    #[test]
    fn louder_wins_and_silence_goes_stale() {
        let mut d = SpeakerDetector::default();
        let mut t = Instant::now();
        run(&mut d, &mut t, 1.0, &[(1, SPEECH), (2, SPEECH + 15.0)]);
        assert_eq!(d.current(), Some(2), "the louder one");
        // 2 stops sending altogether (muted): its last score goes stale.
        run(&mut d, &mut t, 3.0, &[(1, SPEECH)]);
        assert_eq!(d.current(), Some(1));
        d.remove(1);
        assert_eq!(d.current(), None);
        assert_eq!(d.recent(), vec![2]);
    }

    #[test]
    fn recent_speakers_are_bounded_and_unique() {
        let mut d = SpeakerDetector::default();
        let mut t = Instant::now();
        for id in 0..(RECENT as u64 + 3) {
            run(&mut d, &mut t, 1.5, &[(id, SPEECH)]);
        }
        run(&mut d, &mut t, 1.5, &[(5, SPEECH)]);
        let r = d.recent();
        assert_eq!(r.len(), RECENT);
        assert_eq!(r[0], 5);
        assert_eq!(r.iter().filter(|&&p| p == 5).count(), 1);
    }

    #[test]
    fn meter_averages_and_resets() {
        let mut m = LevelMeter::default();
        assert_eq!(m.take(), None);
        m.add(0x80 | 27); // voice bit set, -27 dBov
        m.add(127);
        assert_eq!(m.take(), Some((100.0 + 0.0) / 2.0));
        assert_eq!(m.take(), None);
        assert_eq!(level_of(&[0x9b]), Some(0x9b));
        assert_eq!(level_of(&[]), None);
    }
}
