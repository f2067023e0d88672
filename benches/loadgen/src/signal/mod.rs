//! Signaling clients: how a load-generator client joins a room and trades
//! SDP with the server. `kaigi` speaks kaigi's /ws protocol
//! (docs/protocol.md); `janus` speaks Janus's videoroom plugin over its
//! HTTP API, for a side-by-side run; `whep` plays a kaigi broadcast as a
//! WHEP viewer (`POST /whep/{room}`), not a participant.

pub mod http;
pub mod janus;
pub mod kaigi;
pub mod tls;
pub mod whep;

use std::time::Instant;

use anyhow::anyhow;
use tokio::sync::oneshot;

use crate::engine::Cmd;
use kaigi::ClientReport;

/// Counts a subscribe offer, hands it to the media threads, and waits for the answer SDP.
pub async fn answer_subscribe_offer(
    media: &crossbeam_channel::Sender<Cmd>,
    report: &mut ClientReport,
    client: usize,
    started: Instant,
    sdp: String,
) -> anyhow::Result<String> {
    report.subscribe_offers += 1;
    report
        .first_offer_us
        .get_or_insert_with(|| started.elapsed().as_micros() as u64);
    let (tx, rx) = oneshot::channel();
    media.send(Cmd::SubscribeOffer {
        client,
        started,
        sdp,
        reply: tx,
    })?;
    rx.await?.map_err(|e| anyhow!("subscribe answer: {e}"))
}
