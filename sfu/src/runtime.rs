//! The threaded shell around the sans-IO core: one UDP socket and one
//! ICE-TCP listener on the media port for every peer, a receive thread that
//! hands each datagram to the worker hosting its peer, the worker threads,
//! and the thread that runs the [`Engine`] on the workers' events.
//!
//! Threads, not tasks: the packet path never touches tokio. The signaling
//! side drives the engine through [`SfuHandle::control`] and receives
//! notices through the sink it gave at start.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, select, unbounded};
use tracing::{debug, info, warn};

use crate::engine::{Engine, EngineConfig, Notice, Route};
use crate::net::batch::{BATCH, UdpBatch};
use crate::net::demux::{PacketClass, classify, is_rtcp, stun_local_ufrag};
use crate::net::framing::{FrameDecoder, frame_into};
use crate::peer::{Endpoint, PeerConfig, Transmit, Transport};
use crate::stats::{DropReason, WorkerStats};
use crate::worker::{Output, WorkerCore, WorkerEvent, WorkerMsg};

/// Where media is received and what is advertised.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Address to bind the media port on (e.g. 0.0.0.0 or 127.0.0.1).
    pub bind: IpAddr,
    /// The media port (UDP and ICE-TCP).
    pub port: u16,
    /// The address written into candidates (what clients can reach).
    pub advertise: IpAddr,
    /// Number of media worker threads.
    pub workers: usize,
    /// Whether to accept ICE-TCP.
    pub tcp: bool,
    /// Engine limits.
    pub engine: EngineConfig,
}

/// Receives notices for participants (called from the engine's thread or a
/// signaling task; must not block).
pub type NoticeSink = Arc<dyn Fn(Notice) + Send + Sync>;

/// The largest datagram accepted on the media port.
const MAX_DATAGRAM: usize = 1500;
/// Kernel buffer asked for on the media socket, each direction.
const SOCKET_BUFFER: usize = 8 << 20;
/// Queue depth of each worker's data channel.
const WORKER_QUEUE: usize = 16384;
/// Queue depth of one ICE-TCP connection's writer.
const TCP_WRITE_QUEUE: usize = 1024;
/// The most ICE-TCP connections at once.
const MAX_TCP_CONNECTIONS: usize = 4096;
/// An ICE-TCP connection that says nothing for this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(30);

enum DataInput {
    Datagram {
        from: SocketAddr,
        transport: Transport,
        data: BytesMut,
        at: Instant,
    },
    Msg(WorkerMsg, Instant),
}

/// Media that waited longer than this in a worker's queue is shed: a
/// subscriber is better served by a gap (and a keyframe) than by video
/// seconds late, and the queue drains instead of growing.
const MAX_QUEUE_DELAY: Duration = Duration::from_millis(150);

enum CtlInput {
    Msg(WorkerMsg),
    Stop,
}

struct Shared {
    engine: Mutex<Engine>,
    ctl: Vec<Sender<CtlInput>>,
    data: Vec<Sender<DataInput>>,
    routes: RwLock<HashMap<String, usize>>,
    sink: NoticeSink,
    tcp_conns: RwLock<HashMap<SocketAddr, Sender<Vec<u8>>>>,
    udp: UdpSocket,
    net_stats: Arc<WorkerStats>,
    stop: AtomicBool,
}

impl Shared {
    /// Delivers what the engine produced: commands, routes, notices.
    fn pump(&self, engine: &mut Engine) {
        while let Some(route) = engine.poll_route() {
            let mut routes = self.routes.write().expect("routes lock");
            match route {
                Route::Add(ufrag, worker) => routes.insert(ufrag, worker),
                Route::Remove(ufrag) => routes.remove(&ufrag),
            };
        }
        while let Some((w, cmd)) = engine.poll_command() {
            let _ = self.ctl[w].send(CtlInput::Msg(WorkerMsg::Command(cmd)));
        }
        while let Some(n) = engine.poll_notice() {
            (self.sink)(n);
        }
    }
}

/// A running media server.
pub struct SfuHandle {
    shared: Arc<Shared>,
    stats: Vec<Arc<WorkerStats>>,
    threads: Vec<JoinHandle<()>>,
    local_udp: SocketAddr,
    local_tcp: Option<SocketAddr>,
}

impl SfuHandle {
    /// Runs `f` on the engine, then delivers what it produced.
    pub fn control<R>(&self, f: impl FnOnce(&mut Engine) -> R) -> R {
        let mut engine = self.shared.engine.lock().expect("engine lock");
        let r = f(&mut engine);
        self.shared.pump(&mut engine);
        r
    }

    /// Counters of each worker.
    pub fn worker_stats(&self) -> &[Arc<WorkerStats>] {
        &self.stats
    }

    /// Counters of the receive threads (drops before a worker is known).
    pub fn net_stats(&self) -> &Arc<WorkerStats> {
        &self.shared.net_stats
    }

    /// The bound UDP media address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.local_udp
    }

    /// The bound ICE-TCP address, if enabled.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.local_tcp
    }

    /// Stops every thread and waits for them.
    pub fn shutdown(mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for c in &self.shared.ctl {
            let _ = c.send(CtlInput::Stop);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Binds the media port and starts the threads.
pub fn start(cfg: MediaConfig, sink: NoticeSink, seed: u64) -> io::Result<SfuHandle> {
    let udp = bind_udp(SocketAddr::new(cfg.bind, cfg.port))?;
    udp.set_read_timeout(Some(Duration::from_millis(200)))?;
    let local_udp = udp.local_addr()?;
    let tcp = if cfg.tcp {
        Some(TcpListener::bind(SocketAddr::new(cfg.bind, cfg.port))?)
    } else {
        None
    };
    let local_tcp = tcp.as_ref().map(|l| l.local_addr()).transpose()?;
    let endpoint = Endpoint {
        udp: Some(SocketAddr::new(cfg.advertise, local_udp.port())),
        tcp: local_tcp.map(|a| SocketAddr::new(cfg.advertise, a.port())),
    };
    let workers = cfg.workers.max(1);
    let mut engine_cfg = cfg.engine.clone();
    engine_cfg.workers = workers;

    let (mut ctl_tx, mut ctl_rx, mut data_tx, mut data_rx) = (vec![], vec![], vec![], vec![]);
    for _ in 0..workers {
        let (t, r) = unbounded();
        ctl_tx.push(t);
        ctl_rx.push(r);
        let (t, r) = bounded(WORKER_QUEUE);
        data_tx.push(t);
        data_rx.push(r);
    }
    let (event_tx, event_rx) = unbounded::<WorkerEvent>();
    let shared = Arc::new(Shared {
        engine: Mutex::new(Engine::new(engine_cfg, seed)),
        ctl: ctl_tx,
        data: data_tx,
        routes: RwLock::new(HashMap::new()),
        sink,
        tcp_conns: RwLock::new(HashMap::new()),
        udp,
        net_stats: Arc::new(WorkerStats::default()),
        stop: AtomicBool::new(false),
    });

    let mut threads = Vec::new();
    let mut stats = Vec::new();
    // One DTLS certificate for every connection (a key per peer would cost an
    // ECDSA key generation per join).
    let peer_cfg = PeerConfig::new(endpoint.clone()).map_err(io::Error::other)?;
    for (i, (ctl, data)) in ctl_rx.into_iter().zip(data_rx).enumerate() {
        let st = Arc::new(WorkerStats::default());
        stats.push(st.clone());
        let peer_cfg = peer_cfg.clone();
        let core = WorkerCore::new(i, peer_cfg, st, seed.wrapping_add(i as u64 + 1));
        let (shared, events) = (shared.clone(), event_tx.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("kaigi-media-{i}"))
                .spawn(move || run_worker(core, ctl, data, events, shared))?,
        );
    }
    {
        let shared = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("kaigi-engine".into())
                .spawn(move || {
                    for ev in event_rx {
                        let mut engine = shared.engine.lock().expect("engine lock");
                        engine.handle_worker_event(ev);
                        shared.pump(&mut engine);
                    }
                })?,
        );
    }
    {
        let shared = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("kaigi-udp-recv".into())
                .spawn(move || run_udp_receiver(shared))?,
        );
    }
    if let Some(listener) = tcp {
        let shared = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("kaigi-tcp-accept".into())
                .spawn(move || run_tcp_acceptor(listener, shared))?,
        );
    }
    info!(udp = %local_udp, tcp = ?local_tcp, advertise = %cfg.advertise, workers, "media server started");
    Ok(SfuHandle {
        shared,
        stats,
        threads,
        local_udp,
        local_tcp,
    })
}

/// Binds the media socket with large kernel buffers: a worker's batch of
/// sends and a burst of arrivals must not overflow them.
fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel caps these at net.core.[rw]mem_max.
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    s.bind(&addr.into())?;
    Ok(s.into())
}

fn run_worker(
    mut core: WorkerCore,
    ctl: Receiver<CtlInput>,
    data: Receiver<DataInput>,
    events: Sender<WorkerEvent>,
    shared: Arc<Shared>,
) {
    // When each media input of this round arrived: after the round's sends,
    // receive → sent is recorded per input (`kaigi_forward_delay_seconds`).
    let mut media_at: Vec<Instant> = Vec::with_capacity(512);
    let handle_data = |core: &mut WorkerCore, media_at: &mut Vec<Instant>, input: DataInput| {
        let now = Instant::now();
        match input {
            DataInput::Datagram {
                from,
                transport,
                data,
                at,
            } => {
                let media = classify(&data) == PacketClass::Rtp && !is_rtcp(&data);
                // Only media is shed: ICE, DTLS and RTCP keep the sessions alive.
                if media && now.saturating_duration_since(at) > MAX_QUEUE_DELAY {
                    core.stats().dropped(DropReason::Overload);
                } else {
                    if media {
                        media_at.push(at);
                    }
                    core.handle_datagram(now, from, transport, data);
                }
            }
            DataInput::Msg(WorkerMsg::Media { .. }, at)
                if now.saturating_duration_since(at) > MAX_QUEUE_DELAY =>
            {
                core.stats().dropped(DropReason::Overload);
            }
            DataInput::Msg(m, at) => {
                if matches!(m, WorkerMsg::Media { .. }) {
                    media_at.push(at);
                }
                core.handle_msg(now, m)
            }
        }
    };
    let mut batch = UdpBatch::new();
    loop {
        let deadline = core
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        select! {
            recv(ctl) -> m => match m {
                Ok(CtlInput::Msg(m)) => core.handle_msg(Instant::now(), m),
                Ok(CtlInput::Stop) | Err(_) => break,
            },
            recv(data) -> m => match m {
                Ok(input) => handle_data(&mut core, &mut media_at, input),
                Err(_) => break,
            },
            default(deadline.saturating_duration_since(Instant::now())) => {},
        }
        // Drain what queued up meanwhile, control first, in bounded batches.
        while let Ok(m) = ctl.try_recv() {
            match m {
                CtlInput::Msg(m) => core.handle_msg(Instant::now(), m),
                CtlInput::Stop => return,
            }
        }
        for _ in 0..256 {
            // A packet that fans out to many is sent as soon as a sendmmsg batch
            // is full, not after the whole round: copies leave while the next
            // packet is encrypted, and the queue of outputs stays short.
            if core.pending_outputs() >= BATCH {
                flush(&mut core, &events, &shared, &mut batch, &mut media_at);
            }
            match data.try_recv() {
                Ok(input) => handle_data(&mut core, &mut media_at, input),
                Err(_) => break,
            }
        }
        let now = Instant::now();
        if core.poll_timeout().is_some_and(|t| t <= now) {
            core.handle_timeout(now);
        }
        flush(&mut core, &events, &shared, &mut batch, &mut media_at);
    }
}

/// Sends what the worker produced, then records receive → sent for the media
/// inputs handled since the last flush.
fn flush(
    core: &mut WorkerCore,
    events: &Sender<WorkerEvent>,
    shared: &Shared,
    batch: &mut UdpBatch,
    media_at: &mut Vec<Instant>,
) {
    while let Some(out) = core.poll_output() {
        match out {
            Output::Transmit(t) if t.transport == Transport::Udp => {
                batch.push(t.to, t.data);
                if batch.len() >= 4 * BATCH {
                    send_batch(shared, core.stats(), batch);
                }
            }
            Output::Transmit(t) => send_tcp(shared, core.stats(), t),
            Output::ToWorker(w, msg) => {
                match shared.data[w].try_send(DataInput::Msg(msg, Instant::now())) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => core.stats().dropped(DropReason::QueueFull),
                    Err(TrySendError::Disconnected(_)) => {}
                }
            }
            Output::Event(ev) => {
                let _ = events.send(ev);
            }
        }
    }
    if !batch.is_empty() {
        send_batch(shared, core.stats(), batch);
    }
    if !media_at.is_empty() {
        let sent = Instant::now();
        let h = &core.stats().forward_delay;
        for at in media_at.drain(..) {
            h.observe(sent.saturating_duration_since(at));
        }
    }
}

fn send_batch(shared: &Shared, stats: &WorkerStats, batch: &mut UdpBatch) {
    let f = batch.flush(&shared.udp);
    for _ in 0..f.failed {
        stats.dropped(DropReason::SendFailed);
    }
}

fn send_tcp(shared: &Shared, stats: &WorkerStats, t: Transmit) {
    let conns = shared.tcp_conns.read().expect("tcp lock");
    match conns.get(&t.to) {
        Some(tx) => {
            if tx.try_send(t.data.to_vec()).is_err() {
                stats.dropped(DropReason::QueueFull);
            }
        }
        None => stats.dropped(DropReason::SendFailed),
    }
}

/// Which worker a datagram from `from` goes to: by STUN ufrag, else by the
/// address a STUN check came from before.
fn route(
    shared: &Shared,
    addrs: &mut HashMap<SocketAddr, (usize, String)>,
    from: SocketAddr,
    data: &[u8],
) -> Result<usize, DropReason> {
    match classify(data) {
        PacketClass::Other => Err(DropReason::Garbage),
        PacketClass::Stun => {
            if let Some(ufrag) = stun_local_ufrag(data) {
                let routes = shared.routes.read().expect("routes lock");
                if let Some(&w) = routes.get(ufrag) {
                    if addrs.get(&from).is_none_or(|(_, u)| u != ufrag) {
                        addrs.insert(from, (w, ufrag.to_owned()));
                    }
                    return Ok(w);
                }
            }
            addrs
                .get(&from)
                .map(|(w, _)| *w)
                .ok_or(DropReason::UnknownSource)
        }
        PacketClass::Dtls | PacketClass::Rtp => addrs
            .get(&from)
            .map(|(w, _)| *w)
            .ok_or(DropReason::UnknownSource),
    }
}

fn run_udp_receiver(shared: Arc<Shared>) {
    let mut buf = [0u8; 2048];
    let mut addrs: HashMap<SocketAddr, (usize, String)> = HashMap::new();
    let mut last_prune = Instant::now();
    let stats = shared.net_stats.clone();
    while !shared.stop.load(Ordering::Relaxed) {
        if last_prune.elapsed() > Duration::from_secs(10) {
            let routes = shared.routes.read().expect("routes lock");
            addrs.retain(|_, (_, u)| routes.contains_key(u));
            last_prune = Instant::now();
        }
        let (n, from) = match shared.udp.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => {
                // ICMP errors surface here on some systems; they concern one peer only.
                debug!(error = %e, "udp recv");
                continue;
            }
        };
        if n > MAX_DATAGRAM {
            stats.dropped(DropReason::Garbage);
            continue;
        }
        let data = &buf[..n];
        match route(&shared, &mut addrs, from, data) {
            Ok(w) => {
                let input = DataInput::Datagram {
                    from,
                    transport: Transport::Udp,
                    data: BytesMut::from(data),
                    at: Instant::now(),
                };
                if shared.data[w].try_send(input).is_err() {
                    stats.dropped(DropReason::QueueFull);
                }
            }
            Err(reason) => stats.dropped(reason),
        }
    }
}

fn run_tcp_acceptor(listener: TcpListener, shared: Arc<Shared>) {
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, from)) => {
                if shared.tcp_conns.read().expect("tcp lock").len() >= MAX_TCP_CONNECTIONS {
                    warn!("too many ICE-TCP connections; refusing one");
                    continue;
                }
                let shared = shared.clone();
                let _ = std::thread::Builder::new()
                    .name("kaigi-tcp-conn".into())
                    .spawn(move || {
                        if let Err(e) = run_tcp_conn(stream, from, &shared) {
                            debug!(error = %e, "ice-tcp connection ended");
                        }
                        shared.tcp_conns.write().expect("tcp lock").remove(&from);
                    });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                warn!(error = %e, "ice-tcp accept");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn run_tcp_conn(mut stream: TcpStream, from: SocketAddr, shared: &Shared) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(TCP_IDLE))?;
    let stats = &shared.net_stats;
    let mut decoder = FrameDecoder::new();
    let mut buf = [0u8; 4096];
    let mut worker: Option<usize> = None;
    let mut addrs = HashMap::new();
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 || shared.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        decoder.push(&buf[..n]);
        while let Some(packet) = decoder.next_packet() {
            let w = match worker {
                Some(w) => w,
                None => match route(shared, &mut addrs, from, &packet) {
                    Ok(w) => {
                        worker = Some(w);
                        let (tx, rx) = bounded::<Vec<u8>>(TCP_WRITE_QUEUE);
                        let writer = stream.try_clone()?;
                        std::thread::Builder::new()
                            .name("kaigi-tcp-write".into())
                            .spawn(move || run_tcp_writer(writer, rx))?;
                        shared.tcp_conns.write().expect("tcp lock").insert(from, tx);
                        w
                    }
                    Err(reason) => {
                        // The first packet of an ICE-TCP connection must be a check
                        // for a peer we know; anything else is not ours.
                        stats.dropped(reason);
                        return Ok(());
                    }
                },
            };
            let input = DataInput::Datagram {
                from,
                transport: Transport::Tcp,
                data: BytesMut::from(&packet[..]),
                at: Instant::now(),
            };
            if shared.data[w].try_send(input).is_err() {
                stats.dropped(DropReason::QueueFull);
            }
        }
        if decoder.buffered() > 2 + u16::MAX as usize {
            return Ok(());
        }
    }
}

fn run_tcp_writer(mut stream: TcpStream, rx: Receiver<Vec<u8>>) {
    let mut buf = vec![0u8; 2 + u16::MAX as usize];
    for packet in rx {
        let Some(n) = frame_into(&packet, &mut buf) else {
            continue;
        };
        if stream.write_all(&buf[..n]).is_err() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}
