//! One load-generator client on kaigi's WebSocket signaling (protocol v1):
//! `join` → `welcome`; for publishers `publish_offer` → `publish_answer`;
//! every `subscribe_offer` answered with `subscribe_answer`; `leave` at the
//! end. The peers themselves live on a media thread (`engine`).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, connect_async_tls_with_config};

use crate::engine::Cmd;
use crate::peer::MediaCfg;

/// Who a client is in the scenario.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub index: usize,
    pub room: String,
    /// Which of the load's rooms (Janus room numbers derive from it).
    pub room_index: usize,
    /// Publish these (None: never send `publish_offer`).
    pub publish: Option<MediaCfg>,
}

/// What the signaling side measured for one client.
#[derive(Debug, Default, Clone)]
pub struct ClientReport {
    /// Start → `welcome`, µs (WHEP viewers: POST sent → `201`).
    pub welcome_us: Option<u64>,
    /// Start → `publish_answer`, µs.
    pub publish_answer_us: Option<u64>,
    /// Start → first `subscribe_offer`, µs.
    pub first_offer_us: Option<u64>,
    pub subscribe_offers: u64,
    /// WHEP viewers: `404` (not live yet) answers before the `201`.
    pub whep_not_live: u64,
    /// WHEP viewers: the session was DELETEd at the end.
    pub whep_deleted: bool,
    pub error: Option<String>,
}

/// `https://host:port` → `wss://host:port/ws`.
pub fn ws_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let rest = base
        .strip_prefix("https://")
        .map(|r| format!("wss://{r}"))
        .or_else(|| base.strip_prefix("http://").map(|r| format!("ws://{r}")))
        .unwrap_or_else(|| base.to_owned());
    if rest.ends_with("/ws") {
        rest
    } else {
        format!("{rest}/ws")
    }
}

/// Runs one client until `stop` turns true, then leaves.
pub async fn run_client(
    url: String,
    tls: Arc<rustls::ClientConfig>,
    spec: ClientSpec,
    media: crossbeam_channel::Sender<Cmd>,
    mut stop: watch::Receiver<bool>,
) -> ClientReport {
    let mut report = ClientReport::default();
    if let Err(e) = session(&url, tls, &spec, &media, &mut stop, &mut report).await {
        report.error = Some(format!("{e:#}"));
    }
    report
}

async fn session(
    url: &str,
    tls: Arc<rustls::ClientConfig>,
    spec: &ClientSpec,
    media: &crossbeam_channel::Sender<Cmd>,
    stop: &mut watch::Receiver<bool>,
    report: &mut ClientReport,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let since = || started.elapsed().as_micros() as u64;
    let (mut ws, _) = connect_async_tls_with_config(url, None, true, Some(Connector::Rustls(tls)))
        .await
        .context("websocket connect")?;
    let join = json!({"type": "join", "v": 1, "room": spec.room, "name": format!("loadgen {}", spec.index)});
    ws.send(Message::text(join.to_string())).await?;
    let client = spec.index;
    let mut published = false;
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = stop.changed() => {
                let _ = ws.send(Message::text(json!({"type": "leave"}).to_string())).await;
                let _ = ws.close(None).await;
                return Ok(());
            }
        };
        let Some(msg) = msg else {
            bail!("server closed the connection");
        };
        let text = match msg? {
            Message::Text(t) => t,
            Message::Close(c) => bail!("server closed: {c:?}"),
            _ => continue,
        };
        let v: Value = serde_json::from_str(&text)?;
        match v["type"].as_str().unwrap_or("") {
            "welcome" => {
                report.welcome_us = Some(since());
                if let (Some(m), false) = (spec.publish, published) {
                    published = true;
                    let (tx, rx) = oneshot::channel();
                    media.send(Cmd::Publish {
                        client,
                        media: m,
                        reply: tx,
                    })?;
                    let sdp = rx.await?.map_err(|e| anyhow!("publish offer: {e}"))?;
                    if client == 0 && std::env::var_os("LOADGEN_DUMP_SDP").is_some() {
                        eprintln!("publish offer of client 0:\n{sdp}");
                    }
                    ws.send(Message::text(
                        json!({"type": "publish_offer", "sdp": sdp}).to_string(),
                    ))
                    .await?;
                }
            }
            "publish_answer" => {
                report.publish_answer_us = Some(since());
                let sdp = v["sdp"].as_str().context("sdp")?.to_owned();
                if client == 0 && std::env::var_os("LOADGEN_DUMP_SDP").is_some() {
                    eprintln!("publish answer of client 0:\n{sdp}");
                }
                media.send(Cmd::PublishAnswer { client, sdp })?;
            }
            "subscribe_offer" => {
                let sdp = v["sdp"].as_str().context("sdp")?.to_owned();
                let answer =
                    super::answer_subscribe_offer(media, report, client, started, sdp).await?;
                ws.send(Message::text(
                    json!({"type": "subscribe_answer", "sdp": answer}).to_string(),
                ))
                .await?;
            }
            "error" => bail!("server error: {} {}", v["code"], v["message"]),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_url_from_base() {
        assert_eq!(
            ws_url("https://127.0.0.1:18443"),
            "wss://127.0.0.1:18443/ws"
        );
        assert_eq!(ws_url("https://h:1/"), "wss://h:1/ws");
        assert_eq!(ws_url("wss://h:1/ws"), "wss://h:1/ws");
        assert_eq!(ws_url("http://h:1"), "ws://h:1/ws");
    }
}
