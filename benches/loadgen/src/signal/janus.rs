//! One load-generator client on Janus's videoroom plugin, over Janus's HTTP
//! API: `create` a session, `attach` janus.plugin.videoroom handles, a
//! long-poll loop for events (which also keeps the session alive).
//!
//! - A publisher `join`s as `publisher` with a chosen feed id, then
//!   `configure`s with its JSEP offer; the answer comes in an event.
//! - A subscriber `join`s as `subscriber` with `streams: [{feed}]`, gets an
//!   offer (`attached`), and answers with `start`. A join answers error 428
//!   until the feed is published: retried every 200 ms. Publishing clients
//!   learn new feeds from `publishers` events and add them with `subscribe`
//!   (a renegotiation: `updated` with a new offer, answered with `start`).
//!
//! The peers themselves live on a media thread (`engine`), as for kaigi.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use super::http::Endpoint;
use super::kaigi::{ClientReport, ClientSpec};
use crate::engine::Cmd;

/// Janus room number of load room `i`.
pub fn room_id(i: usize) -> u64 {
    5000 + i as u64
}

/// Janus feed (publisher) id of client `index`.
pub fn feed_id(index: usize) -> u64 {
    1_000_000 + index as u64
}

static TXN: AtomicU64 = AtomicU64::new(1);

fn txn() -> String {
    format!("t{}", TXN.fetch_add(1, Ordering::Relaxed))
}

/// Checks a synchronous Janus reply.
fn ok(v: Value) -> anyhow::Result<Value> {
    match v["janus"].as_str() {
        Some("success") | Some("ack") => Ok(v),
        _ => bail!("janus: {}", v["error"]),
    }
}

async fn create_session(ep: &Endpoint) -> anyhow::Result<u64> {
    let v = ok(ep
        .post("", &json!({"janus": "create", "transaction": txn()}))
        .await?)?;
    v["data"]["id"].as_u64().context("session id")
}

async fn attach(ep: &Endpoint, sid: u64) -> anyhow::Result<u64> {
    let body = json!({"janus": "attach", "plugin": "janus.plugin.videoroom", "transaction": txn()});
    let v = ok(ep.post(&format!("/{sid}"), &body).await?)?;
    v["data"]["id"].as_u64().context("handle id")
}

async fn message(
    ep: &Endpoint,
    sid: u64,
    handle: u64,
    body: Value,
    jsep: Option<Value>,
) -> anyhow::Result<Value> {
    let mut m = json!({"janus": "message", "transaction": txn(), "body": body});
    if let Some(j) = jsep {
        m["jsep"] = j;
    }
    ok(ep.post(&format!("/{sid}/{handle}"), &m).await?)
}

/// Tells Janus that no more candidates will trickle on `handle`.
async fn trickle_done(ep: &Endpoint, sid: u64, handle: u64) -> anyhow::Result<()> {
    let m = json!({"janus": "trickle", "transaction": txn(), "candidate": {"completed": true}});
    ok(ep.post(&format!("/{sid}/{handle}"), &m).await?)?;
    Ok(())
}

/// Creates the load rooms (an existing room is fine).
pub async fn create_rooms(
    url: &str,
    rooms: usize,
    publishers: usize,
    kbps: u32,
) -> anyhow::Result<()> {
    let ep = Endpoint::parse(url)?;
    let sid = create_session(&ep).await?;
    let h = attach(&ep, sid).await?;
    for r in 0..rooms {
        let body = json!({
            "request": "create", "room": room_id(r), "description": format!("loadgen {r}"),
            "publishers": publishers.max(1), "bitrate": kbps.max(100) * 2000,
            "audiocodec": "opus", "videocodec": "vp8", "audiolevel_ext": true,
            "fir_freq": 10, "permanent": false,
        });
        let v = message(&ep, sid, h, body, None).await?;
        let data = &v["plugindata"]["data"];
        if data["error_code"].as_u64().is_some_and(|c| c != 427) {
            bail!("creating room {}: {}", room_id(r), data["error"]);
        }
    }
    let _ = ep
        .post(
            &format!("/{sid}"),
            &json!({"janus": "destroy", "transaction": txn()}),
        )
        .await;
    Ok(())
}

/// Pushes the session's events into `tx` until the session or `tx` ends.
async fn long_poll(ep: Endpoint, sid: u64, tx: mpsc::UnboundedSender<Value>) {
    loop {
        match ep.get(&format!("/{sid}?maxev=10")).await {
            Ok(Value::Array(evs)) => {
                for e in evs {
                    if tx.send(e).is_err() {
                        return;
                    }
                }
            }
            Ok(e) => {
                if tx.send(e).is_err() {
                    return;
                }
            }
            Err(_) => {
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// The subscriber side's renegotiation state.
#[derive(Default)]
struct SubState {
    handle: Option<u64>,
    joined: bool,
    in_flight: bool,
    pending: Vec<u64>,
    subscribed: Vec<u64>,
    retry_at: Option<Instant>,
}

/// Runs one client on Janus until `stop` turns true.
pub async fn run_client(
    url: String,
    spec: ClientSpec,
    feeds: Vec<u64>,
    media: crossbeam_channel::Sender<Cmd>,
    mut stop: watch::Receiver<bool>,
) -> ClientReport {
    let mut report = ClientReport::default();
    if let Err(e) = session(&url, &spec, feeds, &media, &mut stop, &mut report).await {
        report.error = Some(format!("{e:#}"));
    }
    report
}

async fn session(
    url: &str,
    spec: &ClientSpec,
    feeds: Vec<u64>,
    media: &crossbeam_channel::Sender<Cmd>,
    stop: &mut watch::Receiver<bool>,
    report: &mut ClientReport,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let since = || started.elapsed().as_micros() as u64;
    let ep = Endpoint::parse(url)?;
    let room = spec.room_index;
    let client = spec.index;
    let sid = create_session(&ep).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let poller = tokio::spawn(long_poll(ep.clone(), sid, tx));
    let mut sub = SubState::default();
    let mut pub_h = None;
    if spec.publish.is_some() {
        let h = attach(&ep, sid).await?;
        pub_h = Some(h);
        let body = json!({"request": "join", "ptype": "publisher", "room": room_id(room),
            "id": feed_id(client), "display": format!("loadgen {client}")});
        message(&ep, sid, h, body, None).await?;
    } else {
        sub.pending = feeds;
    }
    let result = async {
        loop {
            try_subscribe(&ep, sid, room, &mut sub).await?;
            let retry = sub.retry_at;
            let ev = tokio::select! {
                e = rx.recv() => e.context("event stream ended")?,
                _ = stop.changed() => return Ok(()),
                _ = async {
                    match retry {
                        Some(t) => tokio::time::sleep_until(t.into()).await,
                        None => std::future::pending().await,
                    }
                } => {
                    sub.retry_at = None;
                    continue;
                }
            };
            let kind = ev["janus"].as_str().unwrap_or("");
            if kind == "hangup" || kind == "detached" {
                bail!("janus {kind}: {}", ev["reason"]);
            }
            if kind != "event" {
                continue;
            }
            let sender = ev["sender"].as_u64();
            let data = &ev["plugindata"]["data"];
            let jsep = &ev["jsep"];
            if sender.is_some() && sender == pub_h {
                if let Some(code) = data["error_code"].as_u64() {
                    bail!("publisher: {code} {}", data["error"]);
                }
                if data["videoroom"] == "joined" {
                    report.welcome_us = Some(since());
                    let (tx, rx) = oneshot::channel();
                    media.send(Cmd::Publish {
                        client,
                        media: spec.publish.context("publisher")?,
                        reply: tx,
                    })?;
                    let sdp = rx.await?.map_err(|e| anyhow!("publish offer: {e}"))?;
                    let body = json!({"request": "configure", "audio": true, "video": true});
                    let jsep = json!({"type": "offer", "sdp": sdp});
                    let h = pub_h.unwrap_or_default();
                    message(&ep, sid, h, body, Some(jsep)).await?;
                    // Our candidates are in the SDP; nothing more will trickle.
                    trickle_done(&ep, sid, h).await?;
                }
                if let Some(list) = data["publishers"].as_array() {
                    for p in list {
                        if let Some(id) = p["id"].as_u64()
                            && id != feed_id(client)
                            && !sub.subscribed.contains(&id)
                            && !sub.pending.contains(&id)
                        {
                            sub.pending.push(id);
                        }
                    }
                }
                if jsep["type"] == "answer" {
                    report.publish_answer_us = Some(since());
                    let sdp = jsep["sdp"].as_str().context("sdp")?.to_owned();
                    if client == 0 && std::env::var_os("LOADGEN_DUMP_SDP").is_some() {
                        eprintln!("janus publish answer of client 0:\n{sdp}");
                    }
                    media.send(Cmd::PublishAnswer { client, sdp })?;
                }
            } else if sender.is_some() && sender == sub.handle {
                if let Some(code) = data["error_code"].as_u64() {
                    // 428: no such feed (not published yet). Retry.
                    if code != 428 {
                        bail!("subscriber: {code} {}", data["error"]);
                    }
                    sub.in_flight = false;
                    let back: Vec<u64> = std::mem::take(&mut sub.subscribed);
                    if !sub.joined {
                        sub.pending.extend(back);
                    } else {
                        // Keep what was subscribed before this request.
                        sub.subscribed = back;
                    }
                    sub.retry_at = Some(Instant::now() + Duration::from_millis(200));
                    continue;
                }
                if data["videoroom"] == "attached" {
                    sub.joined = true;
                    report.welcome_us.get_or_insert_with(since);
                }
                if jsep["type"] == "offer" {
                    let sdp = jsep["sdp"].as_str().context("sdp")?.to_owned();
                    let answer =
                        super::answer_subscribe_offer(media, report, client, started, sdp).await?;
                    let jsep = json!({"type": "answer", "sdp": answer});
                    let h = sub.handle.unwrap_or_default();
                    message(&ep, sid, h, json!({"request": "start"}), Some(jsep)).await?;
                    trickle_done(&ep, sid, h).await?;
                }
                if data["started"] == "ok" || (data["videoroom"] == "updated" && jsep.is_null()) {
                    sub.in_flight = false;
                }
            }
        }
    }
    .await;
    let _ = ep
        .post(
            &format!("/{sid}"),
            &json!({"janus": "destroy", "transaction": txn()}),
        )
        .await;
    poller.abort();
    result
}

/// Sends the pending feeds: a subscriber `join` first, `subscribe` later.
async fn try_subscribe(
    ep: &Endpoint,
    sid: u64,
    room: usize,
    sub: &mut SubState,
) -> anyhow::Result<()> {
    if sub.in_flight || sub.pending.is_empty() || sub.retry_at.is_some() {
        return Ok(());
    }
    let handle = match sub.handle {
        Some(h) => h,
        None => {
            let h = attach(ep, sid).await?;
            sub.handle = Some(h);
            h
        }
    };
    let feeds = std::mem::take(&mut sub.pending);
    let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
    let body = if sub.joined {
        json!({"request": "subscribe", "streams": streams})
    } else {
        json!({"request": "join", "ptype": "subscriber", "room": room_id(room), "streams": streams})
    };
    sub.subscribed.extend(feeds);
    sub.in_flight = true;
    message(ep, sid, handle, body, None).await?;
    Ok(())
}
