//! Simulcast layer selection: what a worker learns of each source's layers
//! from the packets it forwards, and the allocator that picks, per
//! subscriber, the layer of each video that fits both the subscriber's
//! bandwidth estimate and the size it shows the video at.
//!
//! Sans-IO and pure: the worker feeds packets and asks for an allocation
//! every [`ALLOCATE_EVERY`]; the switch itself happens on the chosen layer's
//! next keyframe ([`crate::subscription::Subscription::admit`]).

use std::time::{Duration, Instant};

use crate::codec::{self, VideoCodec};

/// Simulcast layers kaigi tells apart per track.
pub const MAX_LAYERS: usize = 4;
/// How often each subscriber's layers are chosen again.
pub const ALLOCATE_EVERY: Duration = Duration::from_millis(500);
/// A layer without a packet for this long is not flowing (the publisher
/// stopped it, or its uplink is short).
const FLOWING: Duration = Duration::from_millis(1500);
/// Bitrates are measured over windows of this length.
const WINDOW: Duration = Duration::from_secs(1);
/// Reserved per audio track when its rate is not measured yet.
pub const AUDIO_BPS: u64 = 48_000;
/// An upgrade needs this much headroom over the layer's rate (per mille):
/// an estimate near a layer's rate must not flap between two layers.
const UPGRADE_HEADROOM: u64 = 1150;

/// What a worker has seen of one layer.
#[derive(Debug, Clone, Copy, Default)]
struct LayerStat {
    window_start: Option<Instant>,
    window_bytes: u64,
    /// Smoothed bits per second over past windows.
    bps: Option<u64>,
    last_packet: Option<Instant>,
    /// Frame size from its last keyframe, where the codec tells.
    size: Option<(u16, u16)>,
}

/// What a worker knows of one source track's layers.
#[derive(Debug, Clone)]
pub struct SourceLayers {
    codec: VideoCodec,
    layers: [LayerStat; MAX_LAYERS],
    /// Highest layer index seen + 1.
    count: usize,
}

impl SourceLayers {
    /// Nothing seen yet of a track in `mime`.
    pub fn new(mime: &str) -> Self {
        SourceLayers {
            codec: VideoCodec::from_mime(mime),
            layers: [LayerStat::default(); MAX_LAYERS],
            count: 0,
        }
    }

    /// The track's codec.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Accounts one packet of `layer` (`size`: its bytes on the wire, roughly).
    pub fn on_packet(
        &mut self,
        now: Instant,
        layer: u8,
        payload: &[u8],
        keyframe_start: bool,
        size: usize,
    ) {
        let Some(l) = self.layers.get_mut(layer as usize) else {
            return;
        };
        self.count = self.count.max(layer as usize + 1);
        l.last_packet = Some(now);
        let start = *l.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= WINDOW {
            let bps = l.window_bytes * 8 * 1000 / (elapsed.as_millis() as u64).max(1);
            // Keyframes make single windows spiky: smooth over a few.
            l.bps = Some(l.bps.map_or(bps, |old| (old + bps) / 2));
            l.window_start = Some(now);
            l.window_bytes = 0;
        }
        l.window_bytes += size as u64;
        if keyframe_start {
            let dims = match self.codec {
                VideoCodec::Vp8 => codec::vp8_keyframe_size(payload),
                VideoCodec::H264 => codec::h264_sps_size(payload),
                _ => None,
            };
            if dims.is_some() {
                l.size = dims;
            }
        }
    }

    /// How many layers the source has shown (at least 1).
    pub fn count(&self) -> usize {
        self.count.max(1)
    }

    /// Whether `layer` had a packet recently.
    pub fn is_flowing(&self, now: Instant, layer: u8) -> bool {
        self.layers
            .get(layer as usize)
            .and_then(|l| l.last_packet)
            .is_some_and(|t| now.saturating_duration_since(t) < FLOWING)
    }

    /// What the allocator needs of this source.
    pub fn item(&self, now: Instant) -> AllocItem {
        let n = self.count();
        let mut item = AllocItem {
            layers: n,
            ..Default::default()
        };
        for i in 0..n {
            let l = &self.layers[i];
            let flowing = self.is_flowing(now, i as u8);
            item.flowing[i] = flowing;
            item.rates[i] = match l.bps {
                Some(bps) if flowing && bps > 0 => bps,
                _ => nominal_bps(i, n),
            };
            item.sizes[i] = l
                .size
                .map_or_else(|| nominal_size(i, n), |(w, h)| (u32::from(w), u32::from(h)));
        }
        item
    }

    /// The measured rate of an audio source (layer 0).
    pub fn audio_bps(&self, now: Instant) -> u64 {
        match self.layers[0].bps {
            Some(bps) if self.is_flowing(now, 0) => bps,
            _ => AUDIO_BPS,
        }
    }
}

/// What a layer of `n` is expected to cost before it was measured: the web
/// client's encodings (150 k / 500 k / 1.2 M, low to high).
fn nominal_bps(i: usize, n: usize) -> u64 {
    const TOP_DOWN: [u64; MAX_LAYERS] = [1_200_000, 500_000, 150_000, 100_000];
    TOP_DOWN[(n - 1 - i).min(MAX_LAYERS - 1)]
}

/// What a layer of `n` is expected to show before a keyframe told: 720p at
/// the top, half per layer below.
fn nominal_size(i: usize, n: usize) -> (u32, u32) {
    let down = (n - 1 - i) as u32;
    (1280 >> down, 720 >> down)
}

/// One video subscription, as the allocator sees it.
#[derive(Debug, Clone, Default)]
pub struct AllocItem {
    /// Layers the source has (1 without simulcast).
    pub layers: usize,
    /// Bits per second of each layer (measured, or nominal).
    pub rates: [u64; MAX_LAYERS],
    /// Frame size of each layer.
    pub sizes: [(u32, u32); MAX_LAYERS],
    /// Which layers arrive now.
    pub flowing: [bool; MAX_LAYERS],
    /// The size it is shown at (device pixels), if the subscriber said.
    pub shown: Option<(u32, u32)>,
    /// A screen share: served first.
    pub screen: bool,
    /// The layer forwarded now.
    pub current: Option<u8>,
    /// No layer above this one now (it just went down); `None`: no cap.
    pub cap: Option<u8>,
}

/// The allocator's choice for one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// The layer to forward; `None`: none fits (the video pauses).
    pub layer: Option<u8>,
    /// The layer the size alone would ask for (what probing aims at).
    pub desired: u8,
}

/// The lowest layer that is at least about as large as the tile, or the top.
fn desired_layer(item: &AllocItem) -> u8 {
    let top = item.layers.max(1) - 1;
    let Some((w, h)) = item.shown else {
        return top as u8;
    };
    // 15% smaller than the tile still looks sharp; scaling up more does not.
    (0..=top)
        .find(|&i| {
            let (lw, lh) = item.sizes[i];
            lw * 100 >= w * 85 && lh * 100 >= h * 85
        })
        .unwrap_or(top) as u8
}

/// Chooses a layer for each item within `budget` bits per second (`None`:
/// no estimate, only sizes count). Screen shares first, then larger tiles;
/// everyone gets the lowest layer before anyone gets more; a video that
/// cannot have even its lowest layer is paused, except a single-layer one
/// (nothing lower to offer: the publisher's own congestion control must
/// adapt). Returns the choices in input order, and the rate the desired
/// layers would need.
pub fn allocate(budget: Option<u64>, items: &[AllocItem]) -> (Vec<Choice>, u64) {
    let desired: Vec<u8> = items.iter().map(desired_layer).collect();
    // What the desired layers need, with the headroom an upgrade asks for
    // where one is still to come: probing aims there.
    let wanted: u64 = items
        .iter()
        .zip(&desired)
        .map(|(it, &d)| {
            let rate = it.rates[d as usize];
            if it.current.is_some_and(|c| c >= d) {
                rate
            } else {
                rate * UPGRADE_HEADROOM / 1000
            }
        })
        .sum();
    let Some(mut left) = budget else {
        let choices = desired
            .iter()
            .map(|&d| Choice {
                layer: Some(d),
                desired: d,
            })
            .collect();
        return (choices, wanted);
    };
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| {
        let it = &items[i];
        let area = it
            .shown
            .map_or(u64::MAX, |(w, h)| u64::from(w) * u64::from(h));
        (!it.screen, std::cmp::Reverse(area))
    });
    let mut layer: Vec<Option<u8>> = vec![None; items.len()];
    for &i in &order {
        let it = &items[i];
        let cost = it.rates[0];
        if cost <= left || it.layers <= 1 {
            left = left.saturating_sub(cost);
            layer[i] = Some(0);
        }
    }
    for &i in &order {
        let it = &items[i];
        let Some(mut cur) = layer[i] else { continue };
        let top = it.cap.map_or(desired[i], |c| c.min(desired[i]));
        while cur < top {
            let next = cur + 1;
            let extra = it.rates[next as usize].saturating_sub(it.rates[cur as usize]);
            // Keeping what is forwarded needs no headroom; more does.
            let need = if it.current.is_some_and(|c| c >= next) {
                extra
            } else {
                extra * UPGRADE_HEADROOM / 1000
            };
            if need > left {
                break;
            }
            left -= extra;
            cur = next;
        }
        layer[i] = Some(cur);
    }
    let choices = layer
        .into_iter()
        .zip(desired)
        .map(|(layer, desired)| Choice { layer, desired })
        .collect();
    (choices, wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam(shown: Option<(u32, u32)>) -> AllocItem {
        AllocItem {
            layers: 3,
            rates: [150_000, 500_000, 1_200_000, 0],
            sizes: [(320, 180), (640, 360), (1280, 720), (0, 0)],
            flowing: [true, true, true, false],
            shown,
            screen: false,
            current: Some(0),
            cap: None,
        }
    }

    fn layers(choices: &[Choice]) -> Vec<Option<u8>> {
        choices.iter().map(|c| c.layer).collect()
    }

    #[test]
    fn without_an_estimate_the_tile_size_decides() {
        let items = [
            cam(Some((1280, 720))),
            cam(Some((640, 360))),
            cam(Some((200, 112))),
            cam(None),
        ];
        let (c, wanted) = allocate(None, &items);
        assert_eq!(layers(&c), vec![Some(2), Some(1), Some(0), Some(2)]);
        // All but the third are still to go up: with the upgrade headroom.
        assert_eq!(wanted, 1_380_000 + 575_000 + 150_000 + 1_380_000);
    }

    #[test]
    fn a_short_link_gets_the_low_layer_and_a_good_one_the_high() {
        let big = [cam(Some((1280, 720)))];
        assert_eq!(layers(&allocate(Some(300_000), &big).0), vec![Some(0)]);
        assert_eq!(layers(&allocate(Some(700_000), &big).0), vec![Some(1)]);
        assert_eq!(layers(&allocate(Some(2_000_000), &big).0), vec![Some(2)]);
        let (c, _) = allocate(Some(100_000), &big);
        assert_eq!(c[0].layer, None, "not even the lowest: paused");
        assert_eq!(c[0].desired, 2);
    }

    #[test]
    fn everyone_gets_the_lowest_before_anyone_more_and_screens_first() {
        let mut screen = cam(Some((1280, 720)));
        screen.screen = true;
        let items = [cam(Some((640, 360))), cam(Some((640, 360))), screen];
        let (c, _) = allocate(Some(1_000_000), &items);
        // 3 × 150 k first, then the screen share upgrades (+350 k × 1.15 fits,
        // +700 k does not), then 150 k left: nobody else moves.
        assert_eq!(layers(&c), vec![Some(0), Some(0), Some(1)]);
    }

    #[test]
    fn upgrades_need_headroom_but_keeping_a_layer_does_not() {
        let mut it = cam(Some((1280, 720)));
        // Exactly the rate of layer 1: no upgrade from 0...
        assert_eq!(
            layers(&allocate(Some(500_000), &[it.clone()]).0),
            vec![Some(0)]
        );
        // ...but a subscriber already on layer 1 keeps it.
        it.current = Some(1);
        assert_eq!(layers(&allocate(Some(500_000), &[it]).0), vec![Some(1)]);
    }

    #[test]
    fn a_cap_holds_the_layer_down_but_not_what_is_wanted() {
        let mut it = cam(Some((1280, 720)));
        it.cap = Some(0);
        let (c, wanted) = allocate(Some(5_000_000), &[it]);
        assert_eq!(layers(&c), vec![Some(0)]);
        assert_eq!(c[0].desired, 2);
        assert_eq!(wanted, 1_380_000, "probing still aims at the top layer");
    }

    #[test]
    fn single_layer_video_is_never_paused() {
        let one = AllocItem {
            layers: 1,
            rates: [800_000, 0, 0, 0],
            sizes: [(1280, 720), (0, 0), (0, 0), (0, 0)],
            flowing: [true, false, false, false],
            ..Default::default()
        };
        assert_eq!(layers(&allocate(Some(100_000), &[one]).0), vec![Some(0)]);
    }

    #[test]
    fn source_layers_measure_rates_and_flow() {
        let t0 = Instant::now();
        let mut s = SourceLayers::new("video/VP8");
        for i in 0..=50u64 {
            // 50 packets of 1000 bytes in 1 s on layer 1: 400 kbit/s.
            s.on_packet(t0 + Duration::from_millis(i * 20), 1, &[], false, 1000);
        }
        let now = t0 + Duration::from_millis(1000);
        assert_eq!(s.count(), 2);
        assert!(s.is_flowing(now, 1));
        assert!(!s.is_flowing(now, 0));
        let item = s.item(now);
        assert_eq!(item.rates[1], 400_000);
        assert_eq!(
            item.rates[0], 500_000,
            "layer 0 of 2, not measured: nominal"
        );
        assert!(!s.is_flowing(now + Duration::from_secs(2), 1));
        // Out-of-range layers are ignored, not a panic.
        s.on_packet(now, 9, &[], true, 10);
        assert_eq!(s.count(), 2);
    }
}
