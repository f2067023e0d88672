//! What a meeting keeps beside the media: recent chat, the room's settings
//! (locked, waiting room) and who waits to be admitted. Kept per room while
//! it has participants or people waiting; who is in the room and who
//! moderates lives in the engine.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::protocol::{ChatEntry, RoomState, Waiting};

/// Chat messages kept per room for late joiners.
pub const CHAT_HISTORY: usize = 100;

/// Someone waiting to be admitted.
pub struct Waiter {
    /// Waiting-room id.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// Woken with the moderator's decision (true: admitted).
    pub decide: oneshot::Sender<bool>,
}

/// One room's meeting state.
#[derive(Default)]
pub struct MeetingRoom {
    /// Recent chat, oldest first.
    pub chat: VecDeque<ChatEntry>,
    next_chat: u64,
    /// Locked / waiting room.
    pub state: RoomState,
    /// Waiting to be admitted, in arrival order.
    pub waiting: Vec<Waiter>,
}

impl MeetingRoom {
    /// Appends a chat message (dropping the oldest beyond the history).
    pub fn add_chat(&mut self, from: String, name: String, text: String, ts: u64) -> ChatEntry {
        self.next_chat += 1;
        let e = ChatEntry {
            id: self.next_chat,
            from,
            name,
            text,
            ts,
        };
        if self.chat.len() == CHAT_HISTORY {
            self.chat.pop_front();
        }
        self.chat.push_back(e.clone());
        e
    }

    /// The waiting list as moderators see it.
    pub fn waiting_list(&self) -> Vec<Waiting> {
        self.waiting
            .iter()
            .map(|w| waiting(w.id, &w.name))
            .collect()
    }

    /// Takes a waiter out of the list.
    pub fn take_waiter(&mut self, id: u64) -> Option<Waiter> {
        let i = self.waiting.iter().position(|w| w.id == id)?;
        Some(self.waiting.remove(i))
    }
}

/// The wire form of a waiter.
pub fn waiting(id: u64, name: &str) -> Waiting {
    Waiting {
        id: format!("l{id}"),
        name: name.to_owned(),
    }
}

/// Every room's meeting state. Lock order: this lock may be held while
/// calling into the engine or taking the sessions lock, never the reverse.
#[derive(Default)]
pub struct Meetings {
    rooms: Mutex<HashMap<String, MeetingRoom>>,
    next_waiter: Mutex<u64>,
}

impl Meetings {
    /// Runs `f` on `room`'s state, creating it.
    pub fn with<R>(&self, room: &str, f: impl FnOnce(&mut MeetingRoom) -> R) -> R {
        let mut rooms = self.rooms.lock().expect("meetings");
        f(rooms.entry(room.to_owned()).or_default())
    }

    /// Forgets `room` if nobody is in it (`occupied` false) and nobody waits.
    pub fn close_if_empty(&self, room: &str, occupied: bool) {
        let mut rooms = self.rooms.lock().expect("meetings");
        if !occupied && rooms.get(room).is_some_and(|r| r.waiting.is_empty()) {
            rooms.remove(room);
        }
    }

    /// Forgets `room` entirely (the meeting ended); waiters are turned away.
    pub fn end(&self, room: &str) {
        let r = self.rooms.lock().expect("meetings").remove(room);
        for w in r.map(|r| r.waiting).unwrap_or_default() {
            let _ = w.decide.send(false);
        }
    }

    /// A fresh waiting-room id.
    pub fn waiter_id(&self) -> u64 {
        let mut n = self.next_waiter.lock().expect("waiter ids");
        *n += 1;
        *n
    }

    /// Rooms with meeting state.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.rooms.lock().expect("meetings").len()
    }

    /// Whether no room has meeting state.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A token bucket: `burst` at once, refilled at `per_second`.
#[derive(Debug, Clone)]
pub struct RateLimit {
    tokens: f64,
    burst: f64,
    per_second: f64,
    last: Instant,
}

impl RateLimit {
    /// The chat limit: `per_minute` messages a minute, a twelfth of that
    /// (at least one) at once: 60 gives 5 at once, then one a second.
    pub fn chat(now: Instant, per_minute: u32) -> Self {
        let burst = (f64::from(per_minute) / 12.0).max(1.0).floor();
        RateLimit {
            tokens: burst,
            burst,
            per_second: f64::from(per_minute) / 60.0,
            last: now,
        }
    }

    /// Takes a token if there is one.
    pub fn allow(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens = (self.tokens + dt.as_secs_f64() * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until the next token.
    pub fn retry_after(&self) -> Duration {
        Duration::from_secs_f64(((1.0 - self.tokens).max(0.0)) / self.per_second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_newest() {
        let mut r = MeetingRoom::default();
        for i in 0..CHAT_HISTORY + 5 {
            r.add_chat("p1".into(), "a".into(), format!("m{i}"), i as u64);
        }
        assert_eq!(r.chat.len(), CHAT_HISTORY);
        assert_eq!(r.chat.front().unwrap().text, "m5");
        assert_eq!(r.chat.back().unwrap().id, (CHAT_HISTORY + 5) as u64);
    }

    #[test]
    fn chat_rate_is_a_burst_then_one_per_second() {
        let t0 = Instant::now();
        let mut l = RateLimit::chat(t0, 60);
        assert!((0..5).all(|_| l.allow(t0)));
        assert!(!l.allow(t0), "the sixth at once is refused");
        assert!(l.retry_after() > Duration::from_millis(900));
        assert!(!l.allow(t0 + Duration::from_millis(500)));
        assert!(l.allow(t0 + Duration::from_millis(1100)));
        assert!(!l.allow(t0 + Duration::from_millis(1200)));
        // Idle time refills up to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        assert!((0..5).all(|_| l.allow(later)));
        assert!(!l.allow(later));
    }

    #[test]
    fn rooms_are_forgotten_when_empty_and_nobody_waits() {
        let m = Meetings::default();
        m.with("r", |r| r.state.locked = true);
        m.close_if_empty("r", true);
        assert_eq!(m.len(), 1, "occupied rooms stay");
        let (decide, decided) = oneshot::channel();
        let id = m.waiter_id();
        m.with("r", |r| {
            r.waiting.push(Waiter {
                id,
                name: "w".into(),
                decide,
            })
        });
        m.close_if_empty("r", false);
        assert_eq!(m.len(), 1, "a room with someone waiting stays");
        m.end("r");
        assert!(m.is_empty());
        assert_eq!(
            decided.blocking_recv(),
            Ok(false),
            "waiters are turned away"
        );
    }
}
