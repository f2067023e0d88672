//! A media thread: owns a slice of the clients' peers and their sockets,
//! and drives them sans-IO style: readable sockets → `handle_read`, due
//! timers → `handle_timeout`, due media → `write_rtp`, then drain each
//! touched peer (`poll_write` → `send_to`, events, received RTP).
//!
//! Signaling tasks talk to it with [`Cmd`]s; SDP work happens here because
//! the peers live here.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::{Events, Interest, Poll, Token};
use rtc::peer_connection::certificate::RTCCertificate;
use tokio::sync::oneshot;

use crate::peer::{MediaCfg, Peer};
use crate::stats::Totals;

/// A reply to a signaling task: SDP, or why not.
pub type Reply = oneshot::Sender<Result<String, String>>;

/// What signaling asks a media thread to do.
pub enum Cmd {
    /// Make client's publish peer; reply with its offer.
    Publish {
        client: usize,
        media: MediaCfg,
        reply: Reply,
    },
    /// The publish answer arrived.
    PublishAnswer { client: usize, sdp: String },
    /// A subscribe offer arrived; reply with the answer.
    SubscribeOffer {
        client: usize,
        started: Instant,
        sdp: String,
        reply: Reply,
    },
    /// Make client's WHEP viewer peer; reply with its offer.
    WhepOffer { client: usize, reply: Reply },
    /// The WHEP answer to the offer POSTed at `posted` (the viewer's join
    /// time counts from there); reply with an empty string once applied.
    WhepAnswer {
        client: usize,
        posted: Instant,
        sdp: String,
        reply: Reply,
    },
    /// Figures from this instant on also go to the steady-state delay.
    SteadyFrom(Instant),
    /// Stop sending media (the run is ending).
    StopSending,
    /// Close everything and return the totals.
    Finish,
}

/// What the thread reports at the end, besides [`Totals`].
#[derive(Debug, Default, Clone)]
pub struct Notes {
    pub send_dropped: u64,
    pub audio_level_negotiated: Option<bool>,
    pub errors: Vec<String>,
}

/// Runs a media thread until [`Cmd::Finish`].
pub fn run(
    rx: Receiver<Cmd>,
    cert: RTCCertificate,
    run_start: Instant,
    ip: IpAddr,
) -> anyhow::Result<(Totals, Notes)> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut peers: Vec<Peer> = Vec::new();
    let mut by_client: HashMap<(usize, bool), usize> = HashMap::new();
    let mut totals = Totals::default();
    let mut notes = Notes::default();
    let mut sending = true;
    let mut buf = vec![0u8; 2048];
    let mut next_sweep = Instant::now();
    let mut next_send: Option<Instant> = None;
    let sweep_every = Duration::from_millis(2);
    let mut touched: Vec<usize> = Vec::new();
    let debug = std::env::var_os("LOADGEN_DEBUG").is_some();
    let mut dbg = [Duration::ZERO; 5];
    let mut dbg_max = [Duration::ZERO; 5];
    let mut dbg_at = Instant::now();
    let mut dbg_iters = 0u64;
    let mut dbg_reads = 0u64;

    loop {
        let t_cmd = Instant::now();
        // Commands.
        while let Ok(cmd) = rx.try_recv() {
            let now = Instant::now();
            match cmd {
                Cmd::Publish {
                    client,
                    media,
                    reply,
                } => {
                    let r =
                        Peer::publish(now, &cert, client, media, ip).and_then(|(mut p, sdp)| {
                            let i = peers.len();
                            poll.registry()
                                .register(&mut p.sock, Token(i), Interest::READABLE)?;
                            p.drain(now, run_start, &mut totals);
                            peers.push(p);
                            by_client.insert((client, true), i);
                            Ok(sdp)
                        });
                    let _ = reply.send(r.map_err(|e| e.to_string()));
                }
                Cmd::PublishAnswer { client, sdp } => {
                    if let Some(&i) = by_client.get(&(client, true)) {
                        let p = &mut peers[i];
                        if let Err(e) = p.apply_answer(now, sdp) {
                            notes
                                .errors
                                .push(format!("client {client} publish answer: {e}"));
                        }
                        notes.audio_level_negotiated = p.has_audio_level();
                        p.drain(now, run_start, &mut totals);
                        next_send = None;
                    }
                }
                Cmd::SubscribeOffer {
                    client,
                    started,
                    sdp,
                    reply,
                } => {
                    let i = match by_client.get(&(client, false)) {
                        Some(&i) => Ok(i),
                        None => Peer::subscribe(now, &cert, started, ip).and_then(|mut p| {
                            let i = peers.len();
                            poll.registry()
                                .register(&mut p.sock, Token(i), Interest::READABLE)?;
                            peers.push(p);
                            by_client.insert((client, false), i);
                            Ok(i)
                        }),
                    };
                    let r = i.and_then(|i| {
                        let p = &mut peers[i];
                        let sdp = p.answer_offer(now, sdp)?;
                        p.drain(now, run_start, &mut totals);
                        Ok(sdp)
                    });
                    let _ = reply.send(r.map_err(|e| e.to_string()));
                }
                Cmd::WhepOffer { client, reply } => {
                    let r = Peer::whep(now, &cert, ip).and_then(|(mut p, sdp)| {
                        let i = peers.len();
                        poll.registry()
                            .register(&mut p.sock, Token(i), Interest::READABLE)?;
                        p.drain(now, run_start, &mut totals);
                        peers.push(p);
                        by_client.insert((client, false), i);
                        Ok(sdp)
                    });
                    let _ = reply.send(r.map_err(|e| e.to_string()));
                }
                Cmd::WhepAnswer {
                    client,
                    posted,
                    sdp,
                    reply,
                } => {
                    let r = match by_client.get(&(client, false)) {
                        Some(&i) => {
                            let p = &mut peers[i];
                            p.set_started(posted);
                            let r = p.apply_answer(now, sdp).map(|()| String::new());
                            p.drain(now, run_start, &mut totals);
                            r.map_err(|e| e.to_string())
                        }
                        None => Err("no such viewer".to_owned()),
                    };
                    let _ = reply.send(r);
                }
                Cmd::SteadyFrom(t) => totals.steady_from = Some(t),
                Cmd::StopSending => sending = false,
                Cmd::Finish => {
                    for p in &mut peers {
                        p.finish(&mut totals);
                    }
                    return Ok((totals, notes));
                }
            }
        }

        // Media due.
        let now = Instant::now();
        let t_media = now;
        if sending && next_send.is_none_or(|t| t <= now) {
            let mut next: Option<Instant> = None;
            for p in peers.iter_mut() {
                if p.next_send().is_some_and(|t| t <= now) {
                    p.send_due(now, run_start, &mut totals);
                    notes.send_dropped += p.drain(now, run_start, &mut totals);
                }
                if let Some(t) = p.next_send() {
                    next = Some(next.map_or(t, |n: Instant| n.min(t)));
                }
            }
            // Re-scan at least every 20 ms so newly connected publishers start.
            next_send = Some(next.map_or(now + Duration::from_millis(20), |t| {
                t.min(now + Duration::from_millis(20))
            }));
        }

        // Timers.
        let t_timers = Instant::now();
        if now >= next_sweep {
            for p in peers.iter_mut() {
                if p.next_timeout.is_some_and(|t| t <= now) {
                    p.handle_timeout(now);
                    notes.send_dropped += p.drain(now, run_start, &mut totals);
                }
            }
            next_sweep = now + sweep_every;
        }

        // Sockets.
        let mut wake = next_sweep;
        if sending && let Some(t) = next_send {
            wake = wake.min(t);
        }
        let timeout = wake
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(1));
        let t_poll = Instant::now();
        poll.poll(&mut events, Some(timeout))?;
        let now = Instant::now();
        let t_read = now;
        touched.clear();
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(p) = peers.get_mut(i) else { continue };
            // Read until the socket is empty (edge-triggered).
            loop {
                match p.sock.recv_from(&mut buf) {
                    Ok((n, from)) => p.handle_datagram(now, from, &buf[..n], &mut totals),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break,
                }
            }
            touched.push(i);
        }
        for &i in &touched {
            notes.send_dropped += peers[i].drain(now, run_start, &mut totals);
        }
        if debug {
            let end = Instant::now();
            let ph = [
                t_media - t_cmd,
                t_timers - t_media,
                t_poll - t_timers,
                t_read - t_poll,
                end - t_read,
            ];
            for k in 0..5 {
                dbg[k] += ph[k];
                dbg_max[k] = dbg_max[k].max(ph[k]);
            }
            dbg_iters += 1;
            dbg_reads += touched.len() as u64;
            if end - dbg_at >= Duration::from_secs(1) {
                eprintln!(
                    "dbg {:?} iters={dbg_iters} touched={dbg_reads} sum(cmd,media,timers,poll,read)={:?} max={:?}",
                    std::thread::current().name(),
                    dbg.map(|d| d.as_millis()),
                    dbg_max.map(|d| d.as_millis())
                );
                dbg = [Duration::ZERO; 5];
                dbg_max = [Duration::ZERO; 5];
                dbg_iters = 0;
                dbg_reads = 0;
                dbg_at = end;
            }
        }
    }
}

/// Handles to the media threads.
pub struct Engines {
    pub txs: Vec<Sender<Cmd>>,
    pub handles: Vec<std::thread::JoinHandle<anyhow::Result<(Totals, Notes)>>>,
}

impl Engines {
    /// Starts `n` media threads whose peers bind `ip` (a loopback address).
    pub fn start(
        n: usize,
        cert: RTCCertificate,
        run_start: Instant,
        ip: IpAddr,
    ) -> anyhow::Result<Self> {
        let mut txs = Vec::new();
        let mut handles = Vec::new();
        for i in 0..n.max(1) {
            let (tx, rx) = crossbeam_channel::unbounded();
            let cert = cert.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("loadgen-media-{i}"))
                    .spawn(move || run(rx, cert, run_start, ip))?,
            );
            txs.push(tx);
        }
        Ok(Engines { txs, handles })
    }

    /// The thread that owns `client`'s peers.
    pub fn for_client(&self, client: usize) -> &Sender<Cmd> {
        &self.txs[client % self.txs.len()]
    }

    /// Tells every thread.
    pub fn broadcast(&self, make: impl Fn() -> Cmd) {
        for tx in &self.txs {
            let _ = tx.send(make());
        }
    }

    /// Finishes all threads and merges their figures.
    pub fn finish(self) -> anyhow::Result<(Totals, Notes)> {
        self.broadcast(|| Cmd::Finish);
        let mut totals = Totals::default();
        let mut notes = Notes::default();
        for h in self.handles {
            let (t, n) = h
                .join()
                .map_err(|_| anyhow::anyhow!("media thread panicked"))??;
            totals.merge(&t);
            notes.send_dropped += n.send_dropped;
            notes.audio_level_negotiated =
                notes.audio_level_negotiated.or(n.audio_level_negotiated);
            notes.errors.extend(n.errors);
        }
        Ok((totals, notes))
    }
}
