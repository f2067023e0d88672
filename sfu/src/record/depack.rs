//! RTP back into frames, for recording: packets put in sequence order
//! (late ones waited for briefly, lost ones declared lost), then VP8
//! (RFC 7741), H.264 (RFC 6184) and Opus (RFC 7587) payloads joined into
//! the frames a decoder takes. A frame with a packet missing is never
//! written: the video waits for the next keyframe instead, so that the file
//! never holds a picture that decodes to garbage.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::codec::{h264_sps_size, parse_vp8};

/// How long a missing packet is waited for before it is declared lost.
const REORDER_WAIT: Duration = Duration::from_millis(150);
/// Packets held while waiting, at most (a large keyframe fits).
const REORDER_MAX: usize = 512;

/// What the reorder buffer gives out.
#[derive(Debug, PartialEq)]
pub(crate) enum Item<P> {
    /// The next packet in sequence order.
    Packet(P),
    /// One or more packets before the next were lost.
    Gap,
}

/// Puts one stream's packets in sequence-number order.
#[derive(Debug)]
pub(crate) struct Reorder<P> {
    /// Extended (unwrapped) sequence number expected next.
    next: Option<u64>,
    /// The last extended number seen, for unwrapping.
    last: Option<u64>,
    held: BTreeMap<u64, (Instant, P)>,
}

impl<P> Default for Reorder<P> {
    fn default() -> Self {
        Reorder {
            next: None,
            last: None,
            held: BTreeMap::new(),
        }
    }
}

impl<P> Reorder<P> {
    /// Takes a packet; gives out (into `out`) what is now in order.
    pub(crate) fn push(&mut self, now: Instant, seq: u16, packet: P, out: &mut Vec<Item<P>>) {
        let ext = match self.last {
            None => u64::from(seq) + (1 << 32),
            Some(last) => {
                let delta = seq.wrapping_sub(last as u16) as i16;
                last.saturating_add_signed(i64::from(delta))
            }
        };
        self.last = Some(self.last.map_or(ext, |l| l.max(ext)));
        let next = *self.next.get_or_insert(ext);
        if ext < next {
            // A duplicate, or later than it was waited for.
            return;
        }
        self.held.entry(ext).or_insert((now, packet));
        self.release(out);
        if self.held.len() > REORDER_MAX {
            self.skip(out);
        }
        self.expire(now, out);
    }

    /// Declares lost what has been waited for too long.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<Item<P>>) {
        while let Some((_, (at, _))) = self.held.first_key_value() {
            if now.saturating_duration_since(*at) < REORDER_WAIT {
                break;
            }
            self.skip(out);
        }
    }

    /// Gives up on the missing packet(s) before the first held one.
    fn skip(&mut self, out: &mut Vec<Item<P>>) {
        if let Some((&first, _)) = self.held.first_key_value() {
            out.push(Item::Gap);
            self.next = Some(first);
            self.release(out);
        }
    }

    fn release(&mut self, out: &mut Vec<Item<P>>) {
        while let Some(next) = self.next
            && let Some((_, p)) = self.held.remove(&next)
        {
            out.push(Item::Packet(p));
            self.next = Some(next + 1);
        }
    }
}

/// A frame put back together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    /// Its RTP timestamp.
    pub ts: u32,
    /// A decoder can start here.
    pub keyframe: bool,
    /// VP8: the frame. H.264: the access unit as 4-byte-length-prefixed NAL units.
    pub data: Vec<u8>,
}

/// Which payload format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Payload {
    /// RFC 7741.
    Vp8,
    /// RFC 6184, packetization modes 0 and 1.
    H264,
    /// RFC 7587: one packet, one frame.
    Opus,
}

/// Joins one stream's in-order packets into frames.
#[derive(Debug)]
pub(crate) struct Assembler {
    payload: Payload,
    /// The frame being joined: its timestamp and bytes so far.
    ts: Option<u32>,
    data: Vec<u8>,
    /// The frame being joined lost a packet (or never had its start).
    broken: bool,
    /// Since a loss, frames are dropped until a keyframe.
    need_keyframe: bool,
    /// H.264: a fragmented NAL unit is being joined; where its length goes.
    fu_at: Option<usize>,
    /// Frames dropped (incomplete, or waiting for a keyframe).
    pub dropped: u64,
}

impl Assembler {
    /// An assembler for `payload`; video starts by waiting for a keyframe.
    pub(crate) fn new(payload: Payload) -> Self {
        Assembler {
            payload,
            ts: None,
            data: Vec::new(),
            broken: false,
            need_keyframe: payload != Payload::Opus,
            fu_at: None,
            dropped: 0,
        }
    }

    /// Whether video is waiting for a keyframe (one should be asked for).
    pub(crate) fn needs_keyframe(&self) -> bool {
        self.need_keyframe
    }

    /// Packets were lost before the next one.
    pub(crate) fn gap(&mut self) {
        if self.payload == Payload::Opus {
            return;
        }
        if self.ts.is_some() {
            self.broken = true;
        }
        // The frames after the loss refer to what was lost.
        self.need_keyframe = true;
    }

    /// The next packet in order; a frame when it completes one.
    pub(crate) fn push(&mut self, ts: u32, marker: bool, payload: &[u8]) -> Option<Frame> {
        if self.payload == Payload::Opus {
            // Empty payloads are DTX keep-alives, not frames.
            return (!payload.is_empty()).then(|| Frame {
                ts,
                keyframe: true,
                data: payload.to_vec(),
            });
        }
        if self.ts != Some(ts) {
            if self.ts.is_some() {
                // The last frame never saw its marker: its end was lost.
                self.dropped += 1;
                self.need_keyframe = true;
            }
            self.ts = Some(ts);
            self.data.clear();
            self.broken = false;
            self.fu_at = None;
        }
        let ok = match self.payload {
            Payload::Vp8 => self.vp8(payload),
            Payload::H264 => self.h264(payload),
            Payload::Opus => unreachable!("handled above"),
        };
        if !ok {
            self.broken = true;
        }
        if !marker {
            return None;
        }
        self.ts = None;
        let data = std::mem::take(&mut self.data);
        if self.broken || data.is_empty() || self.fu_at.take().is_some() {
            self.dropped += 1;
            self.need_keyframe = true;
            return None;
        }
        let keyframe = match self.payload {
            // The P bit of the frame tag: 0 for a keyframe.
            Payload::Vp8 => data[0] & 0x01 == 0,
            Payload::H264 => nal_units(&data).any(|n| n.first().is_some_and(|b| b & 0x1F == 5)),
            Payload::Opus => true,
        };
        if self.need_keyframe && !keyframe {
            self.dropped += 1;
            return None;
        }
        self.need_keyframe = false;
        Some(Frame { ts, keyframe, data })
    }

    fn vp8(&mut self, payload: &[u8]) -> bool {
        let Some(d) = parse_vp8(payload) else {
            return false;
        };
        if self.data.is_empty() && !(d.start_of_partition && d.partition_index == 0) {
            // Not the frame's first packet: its start was lost.
            return false;
        }
        self.data.extend_from_slice(&payload[d.header_len..]);
        true
    }

    fn h264(&mut self, payload: &[u8]) -> bool {
        let Some(&header) = payload.first() else {
            return false;
        };
        match header & 0x1F {
            1..=23 => {
                if self.fu_at.is_some() {
                    return false;
                }
                self.nal(payload);
                true
            }
            // STAP-A: 16-bit sizes, each followed by a NAL unit.
            24 => {
                if self.fu_at.is_some() {
                    return false;
                }
                let mut rest = &payload[1..];
                while rest.len() >= 2 {
                    let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                    if n == 0 || rest.len() < 2 + n {
                        return false;
                    }
                    self.nal(&rest[2..2 + n]);
                    rest = &rest[2 + n..];
                }
                rest.is_empty()
            }
            // FU-A: the NAL unit's header is rebuilt from the indicator and the FU header.
            28 => {
                let Some(&fu) = payload.get(1) else {
                    return false;
                };
                let (start, end) = (fu & 0x80 != 0, fu & 0x40 != 0);
                if start {
                    if self.fu_at.is_some() {
                        return false;
                    }
                    self.fu_at = Some(self.data.len());
                    self.data.extend_from_slice(&[0; 4]);
                    self.data.push((header & 0xE0) | (fu & 0x1F));
                } else if self.fu_at.is_none() {
                    return false;
                }
                self.data.extend_from_slice(&payload[2..]);
                if end && let Some(at) = self.fu_at.take() {
                    let len = (self.data.len() - at - 4) as u32;
                    self.data[at..at + 4].copy_from_slice(&len.to_be_bytes());
                }
                true
            }
            // STAP-B, MTAP, FU-B: interleaved mode, which WebRTC does not use.
            _ => false,
        }
    }

    fn nal(&mut self, nal: &[u8]) {
        self.data
            .extend_from_slice(&(nal.len() as u32).to_be_bytes());
        self.data.extend_from_slice(nal);
    }
}

/// The NAL units of a 4-byte-length-prefixed access unit.
pub(crate) fn nal_units(au: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = au;
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let nal = rest.get(4..4 + n)?;
        rest = &rest[4 + n..];
        Some(nal)
    })
}

/// The frame size a keyframe announces: VP8's keyframe header, or H.264's SPS.
pub(crate) fn keyframe_size(payload: Payload, frame: &[u8]) -> Option<(u16, u16)> {
    match payload {
        Payload::Vp8 => {
            // Frame tag (3 bytes), start code 9d 01 2a, then 14-bit width and height.
            if frame.len() < 10 || frame[3..6] != [0x9D, 0x01, 0x2A] {
                return None;
            }
            let w = u16::from_le_bytes([frame[6], frame[7]]) & 0x3FFF;
            let h = u16::from_le_bytes([frame[8], frame[9]]) & 0x3FFF;
            (w > 0 && h > 0).then_some((w, h))
        }
        Payload::H264 => nal_units(frame)
            .filter(|n| n.first().is_some_and(|b| b & 0x1F == 7))
            .find_map(h264_sps_size),
        Payload::Opus => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(r: &mut Reorder<u16>, now: Instant, seqs: &[u16]) -> Vec<Item<u16>> {
        let mut out = Vec::new();
        for &s in seqs {
            r.push(now, s, s, &mut out);
        }
        out
    }

    #[test]
    fn reorder_puts_packets_in_order_across_the_wrap() {
        let now = Instant::now();
        let mut r = Reorder::default();
        let out = drain(&mut r, now, &[65534, 0, 65535, 1, 1, 65535]);
        assert_eq!(
            out,
            vec![
                Item::Packet(65534),
                Item::Packet(65535),
                Item::Packet(0),
                Item::Packet(1)
            ]
        );
    }

    #[test]
    fn a_lost_packet_is_declared_after_the_wait() {
        let t0 = Instant::now();
        let mut r = Reorder::default();
        let mut out = drain(&mut r, t0, &[10, 12, 13]);
        assert_eq!(out, vec![Item::Packet(10)]);
        r.expire(t0 + Duration::from_millis(100), &mut out);
        assert_eq!(out.len(), 1, "still waiting for 11");
        r.expire(t0 + REORDER_WAIT, &mut out);
        assert_eq!(out[1..], [Item::Gap, Item::Packet(12), Item::Packet(13)]);
        // 11 arriving now is too late.
        r.push(t0 + REORDER_WAIT, 11, 11, &mut out);
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn a_flood_of_out_of_order_packets_is_bounded() {
        let now = Instant::now();
        let mut r = Reorder::default();
        let mut out = Vec::new();
        r.push(now, 0, 0, &mut out);
        for s in 2..(REORDER_MAX as u16 + 10) {
            r.push(now, s, s, &mut out);
        }
        assert!(r.held.len() <= REORDER_MAX);
        assert!(out.contains(&Item::Gap));
    }

    fn vp8_packet(start: bool, key: bool, body: &[u8]) -> Vec<u8> {
        // X=0, S, PID 0; then the VP8 payload.
        let mut p = vec![if start { 0x10 } else { 0x00 }];
        if start {
            p.push(if key { 0x10 } else { 0x11 });
        }
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn vp8_frames_join_and_losses_wait_for_a_keyframe() {
        let mut a = Assembler::new(Payload::Vp8);
        assert!(a.push(1, false, &vp8_packet(true, false, b"ab")).is_none());
        assert!(
            a.push(1, true, &vp8_packet(false, false, b"cd")).is_none(),
            "not a keyframe: the recording starts at one"
        );
        assert!(a.push(2, false, &vp8_packet(true, true, b"ab")).is_none());
        let f = a.push(2, true, &vp8_packet(false, false, b"cd")).unwrap();
        assert!(f.keyframe);
        assert_eq!(f.data, [0x10, b'a', b'b', b'c', b'd']);
        let f = a.push(3, true, &vp8_packet(true, false, b"x")).unwrap();
        assert!(!f.keyframe);
        // A loss inside frame 4: it and frame 5 are dropped, the keyframe 6 is not.
        assert!(a.push(4, false, &vp8_packet(true, false, b"x")).is_none());
        a.gap();
        assert!(a.push(4, true, &vp8_packet(false, false, b"y")).is_none());
        assert!(a.needs_keyframe());
        assert!(a.push(5, true, &vp8_packet(true, false, b"z")).is_none());
        assert!(
            a.push(6, true, &vp8_packet(true, true, b"k"))
                .unwrap()
                .keyframe
        );
        assert!(!a.needs_keyframe());
        // A frame whose first packet was lost (no gap seen: the stream restarted).
        assert!(a.push(7, true, &vp8_packet(false, false, b"q")).is_none());
        assert!(a.dropped >= 4);
    }

    #[test]
    fn h264_single_stap_and_fu_a_become_length_prefixed_nal_units() {
        let mut a = Assembler::new(Payload::H264);
        let sps = [0x67, 0x42, 0xC0, 0x1F];
        let pps = [0x68, 0xCE, 0x3C, 0x80];
        let mut stap = vec![0x78];
        for n in [&sps[..], &pps[..]] {
            stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
            stap.extend_from_slice(n);
        }
        assert!(a.push(9, false, &stap).is_none());
        // An IDR (type 5) in three FU-A fragments.
        assert!(a.push(9, false, &[0x7C, 0x85, 1, 2]).is_none());
        assert!(a.push(9, false, &[0x7C, 0x05, 3]).is_none());
        let f = a.push(9, true, &[0x7C, 0x45, 4]).unwrap();
        assert!(f.keyframe);
        let nals: Vec<&[u8]> = nal_units(&f.data).collect();
        assert_eq!(nals, [&sps[..], &pps[..], &[0x65, 1, 2, 3, 4][..]]);
        // A single NAL unit P-frame.
        let f = a.push(10, true, &[0x41, 9, 9]).unwrap();
        assert!(!f.keyframe);
        assert_eq!(f.data, [0, 0, 0, 3, 0x41, 9, 9]);
        // An FU-A without its start, and a truncated STAP-A: dropped.
        assert!(a.push(11, true, &[0x7C, 0x05, 3]).is_none());
        assert!(a.push(12, true, &[0x78, 0, 9, 1]).is_none());
        assert!(
            a.push(13, true, &[0x41, 1]).is_none(),
            "waits for a keyframe"
        );
    }

    #[test]
    fn opus_packets_are_frames_and_dtx_is_skipped() {
        let mut a = Assembler::new(Payload::Opus);
        assert_eq!(a.push(960, true, &[0xFC, 1]).unwrap().data, [0xFC, 1]);
        assert!(a.push(1920, false, &[]).is_none());
        a.gap();
        assert!(a.push(2880, false, &[0xFC]).is_some());
    }

    #[test]
    fn keyframe_sizes() {
        let vp8 = [0x50, 0x42, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0x68, 0x01];
        assert_eq!(keyframe_size(Payload::Vp8, &vp8), Some((640, 360)));
        assert_eq!(keyframe_size(Payload::Vp8, &vp8[..8]), None);
        assert_eq!(keyframe_size(Payload::H264, &[0, 0, 0, 1, 0x41]), None);
    }

    #[test]
    fn hostile_payloads_never_panic() {
        let mut a = Assembler::new(Payload::H264);
        let mut b = Assembler::new(Payload::Vp8);
        let mut seed = 7u64;
        for i in 0..5000u32 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (seed >> 60) as usize;
            let bytes: Vec<u8> = (0..len).map(|k| (seed >> (k * 3 % 56)) as u8).collect();
            let _ = a.push(i / 3, seed & 1 == 0, &bytes);
            let _ = b.push(i / 3, seed & 2 == 0, &bytes);
            if let Some(f) = a.push(i, true, &bytes) {
                let _ = keyframe_size(Payload::H264, &f.data);
            }
        }
    }
}
