//! One WHEP viewer on kaigi (`POST /whep/{room}`, RFC 9725 style): the
//! viewer's peer makes a receive-only audio + video offer on its media
//! thread, the offer is POSTed over HTTPS (the same insecure rustls config
//! as the /ws clients: kaigi's certificate is self-signed), the `201`'s
//! answer goes back to the peer, and at the end the `Location` resource is
//! DELETEd. A viewer is not a participant: no WebSocket, no notices.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use tokio::sync::{oneshot, watch};

use crate::engine::Cmd;
use crate::signal::http::{exchange, parse_response, status_and_header};
use crate::signal::kaigi::ClientReport;
use crate::signal::kaigi::ClientSpec;

/// How long a viewer keeps retrying while the room is not live yet (`404`).
const NOT_LIVE_PATIENCE: Duration = Duration::from_secs(10);

/// `https://host:port` (with or without a trailing `/ws`) → the base URL.
pub fn base_url(url: &str) -> String {
    let u = url.trim_end_matches('/');
    u.strip_suffix("/ws").unwrap_or(u).to_owned()
}

/// Runs one viewer until `stop` turns true, then DELETEs its session.
pub async fn run_viewer(
    base: String,
    tls: Arc<rustls::ClientConfig>,
    spec: ClientSpec,
    media: crossbeam_channel::Sender<Cmd>,
    mut stop: watch::Receiver<bool>,
) -> ClientReport {
    let mut report = ClientReport::default();
    if let Err(e) = session(&base, tls, &spec, &media, &mut stop, &mut report).await {
        report.error = Some(format!("{e:#}"));
    }
    report
}

/// One blocking HTTP(S) exchange on the blocking pool.
async fn request(
    url: String,
    method: &'static str,
    body: Option<String>,
    tls: Arc<rustls::ClientConfig>,
) -> anyhow::Result<Vec<u8>> {
    tokio::task::spawn_blocking(move || {
        exchange(
            &url,
            method,
            body.as_deref().map(|b| ("application/sdp", b)),
            &tls,
        )
    })
    .await?
}

async fn session(
    base: &str,
    tls: Arc<rustls::ClientConfig>,
    spec: &ClientSpec,
    media: &crossbeam_channel::Sender<Cmd>,
    stop: &mut watch::Receiver<bool>,
    report: &mut ClientReport,
) -> anyhow::Result<()> {
    let client = spec.index;
    let (tx, rx) = oneshot::channel();
    media.send(Cmd::WhepOffer { client, reply: tx })?;
    let offer = rx.await?.map_err(|e| anyhow!("whep offer: {e}"))?;
    let url = format!("{base}/whep/{}", spec.room);
    let first_try = Instant::now();
    let (posted, raw) = loop {
        let posted = Instant::now();
        let raw = request(url.clone(), "POST", Some(offer.clone()), tls.clone()).await?;
        let (status, _) = status_and_header(&raw, "location")?;
        if status == 404 && first_try.elapsed() < NOT_LIVE_PATIENCE && !*stop.borrow() {
            report.whep_not_live += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        break (posted, raw);
    };
    let (status, location) = status_and_header(&raw, "location")?;
    if status != 201 {
        let body = String::from_utf8_lossy(&raw);
        bail!(
            "POST /whep: HTTP {status}: {}",
            body.split("\r\n\r\n").nth(1).unwrap_or("").trim()
        );
    }
    report.welcome_us = Some(posted.elapsed().as_micros() as u64);
    let answer = String::from_utf8(parse_response(&raw)?)?;
    let location = location.context("201 without Location")?;
    let (tx, rx) = oneshot::channel();
    media.send(Cmd::WhepAnswer {
        client,
        posted,
        sdp: answer,
        reply: tx,
    })?;
    rx.await?.map_err(|e| anyhow!("whep answer: {e}"))?;
    let _ = stop.wait_for(|s| *s).await;
    let resource = if location.starts_with("http") {
        location
    } else {
        format!("{base}{location}")
    };
    let raw = request(resource, "DELETE", None, tls).await?;
    let (status, _) = status_and_header(&raw, "location")?;
    if !(200..300).contains(&status) {
        bail!("DELETE: HTTP {status}");
    }
    report.whep_deleted = true;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_drops_ws_and_slash() {
        assert_eq!(base_url("https://h:1/"), "https://h:1");
        assert_eq!(base_url("https://h:1/ws"), "https://h:1");
        assert_eq!(base_url("https://h:1"), "https://h:1");
    }

    #[test]
    fn status_and_location() {
        let r = b"HTTP/1.1 201 Created\r\ncontent-type: application/sdp\r\nlocation: /whep/r/abc\r\n\r\nv=0\r\n";
        let (s, l) = status_and_header(r, "Location").unwrap();
        assert_eq!((s, l.as_deref()), (201, Some("/whep/r/abc")));
    }
}
