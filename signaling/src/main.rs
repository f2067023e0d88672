//! The `kaigi` binary: command line, configuration, start-up and shutdown.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tracing::{info, warn};

use kaigi::config::Config;
use kaigi::http::AppState;
use kaigi::{auth, http, metrics, protocol, recording, tls};

/// kaigi: meetings, consultations and broadcasts for closed intranets.
#[derive(Parser, Debug)]
#[command(name = "kaigi", version)]
struct Cli {
    /// Configuration file (TOML); every key can also be set as KAIGI_SECTION__KEY.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Address to listen on (HTTPS and media), e.g. 0.0.0.0 or 127.0.0.1.
    #[arg(long)]
    bind: Option<IpAddr>,
    /// Address to advertise in ICE candidates (what browsers can reach).
    #[arg(long)]
    public_ip: Option<IpAddr>,
    /// HTTPS port.
    #[arg(long)]
    http_port: Option<u16>,
    /// Media port (UDP and ICE-TCP).
    #[arg(long)]
    media_port: Option<u16>,
    /// Data folder (certificate, secrets, recordings).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Serve the web client from this folder (development).
    #[arg(long)]
    web_dir: Option<PathBuf>,
    /// Media worker threads (0: one per core).
    #[arg(long)]
    workers: Option<usize>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print a signed join token.
    Token {
        /// Room the token admits to.
        #[arg(long)]
        room: String,
        /// participant, moderator, publisher or viewer.
        #[arg(long, default_value = "participant")]
        role: auth::Role,
        /// Display name to impose.
        #[arg(long)]
        name: Option<String>,
        /// Validity: 30m, 1h, 7d…
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Sign with this private key (PEM, PKCS#8; Ed25519 or P-256)
        /// instead of the server's secret; its stem is the token's `kid`.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Make a key pair for signing join tokens elsewhere (a portal):
    /// PREFIX.key.pem (private, keep it there) and PREFIX.pub.pem (for
    /// `auth.token_public_keys`).
    Keygen {
        /// ed25519 (JWT EdDSA) or es256 (P-256).
        #[arg(long, default_value = "ed25519")]
        alg: auth::KeyAlg,
        /// Path and name stem of the two files.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut cfg = Config::load(cli.config.as_deref(), std::env::vars())?;
    if let Some(b) = cli.bind {
        cfg.server.bind = b;
    }
    if let Some(ip) = cli.public_ip {
        cfg.media.public_ip = Some(ip);
    }
    if let Some(p) = cli.http_port {
        cfg.server.http_port = p;
    }
    if let Some(p) = cli.media_port {
        cfg.media.port = p;
    }
    if let Some(d) = cli.data_dir {
        cfg.server.data_dir = d;
    }
    if let Some(d) = cli.web_dir {
        cfg.server.web_dir = Some(d);
    }
    if let Some(w) = cli.workers {
        cfg.media.workers = w;
    }
    cfg.validate()?;
    match cli.command {
        Some(Cmd::Token {
            room,
            role,
            name,
            ttl,
            key,
        }) => {
            sfu::room::validate_name(&room).context("--room")?;
            let ttl = auth::parse_ttl(&ttl).map_err(anyhow::Error::msg)?;
            let signer = match key {
                Some(path) => {
                    let pem = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    auth::Signer::from_pem(&pem, key_id(&path))
                        .map_err(anyhow::Error::msg)
                        .with_context(|| path.display().to_string())?
                }
                None => auth::Signer::Hs256(token_secret(&cfg)?),
            };
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
            let claims = auth::Claims {
                room,
                role,
                name: name.and_then(|n| protocol::clean_name(&n)),
                iat: now,
                exp: now + ttl,
            };
            println!("{}", signer.mint(&claims));
            Ok(())
        }
        Some(Cmd::Keygen { alg, out }) => {
            let (private, public) = auth::generate(alg);
            let stem = out.display().to_string();
            let (kpath, ppath) = (
                PathBuf::from(format!("{stem}.key.pem")),
                PathBuf::from(format!("{stem}.pub.pem")),
            );
            if kpath.exists() {
                bail!("{} exists: not overwriting a key", kpath.display());
            }
            tls::write_private(&kpath, private.as_bytes())?;
            std::fs::write(&ppath, public)
                .with_context(|| format!("writing {}", ppath.display()))?;
            println!(
                "private key: {} (sign with `kaigi token --key`; keep it secret)\npublic key:  {} (list it in auth.token_public_keys)",
                kpath.display(),
                ppath.display()
            );
            Ok(())
        }
        None => serve(cfg),
    }
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| {
            // The WebRTC stack reports every state change at info; keep its warnings only.
            tracing_subscriber::EnvFilter::new(format!(
                "rtc=warn,rtc_ice=warn,rtc_dtls=error,rtc_srtp=warn,rtc_sctp=warn,rtc_interceptor=warn,{}",
                cfg.log.level
            ))
        });
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if cfg.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// A key's id: its file name without `.pub.pem`, `.key.pem` or `.pem`, so
/// that a token signed with `portal.key.pem` names `portal.pub.pem`.
fn key_id(path: &std::path::Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = [".pub.pem", ".key.pem", ".pem"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    Some(stem.to_owned())
}

/// The public keys of `auth.token_public_keys`, read at start.
fn token_keys(cfg: &Config) -> anyhow::Result<Vec<auth::PublicKey>> {
    cfg.auth
        .token_public_keys
        .iter()
        .map(|path| {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("auth.token_public_keys: reading {}", path.display()))?;
            auth::PublicKey::from_pem(&pem, key_id(path))
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("auth.token_public_keys: {}", path.display()))
        })
        .collect()
}

/// The join-token secret: configured, or generated once into the data folder.
fn token_secret(cfg: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = &cfg.auth.token_secret {
        if s.len() < 16 {
            bail!("auth.token_secret must have at least 16 characters");
        }
        return Ok(s.as_bytes().to_vec());
    }
    let path = cfg.server.data_dir.join("token_secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        return Ok(s.trim().as_bytes().to_vec());
    }
    std::fs::create_dir_all(&cfg.server.data_dir)
        .with_context(|| format!("creating {}", cfg.server.data_dir.display()))?;
    let secret: String = (0..48)
        .map(|_| {
            const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
            CHARS[rand::random_range(0..CHARS.len())] as char
        })
        .collect();
    tls::write_private(&path, secret.as_bytes())?;
    Ok(secret.into_bytes())
}

/// The first non-loopback IPv4 address of an interface that is up, else 127.0.0.1.
fn detect_ip() -> IpAddr {
    let mut found = None;
    // SAFETY: getifaddrs fills a linked list we only read and then free.
    unsafe {
        let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut ifap) == 0 {
            let mut p = ifap;
            while !p.is_null() {
                let ifa = &*p;
                let up = ifa.ifa_flags & libc::IFF_UP as u32 != 0;
                let lo = ifa.ifa_flags & libc::IFF_LOOPBACK as u32 != 0;
                if up
                    && !lo
                    && !ifa.ifa_addr.is_null()
                    && (*ifa.ifa_addr).sa_family as i32 == libc::AF_INET
                {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    found = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                        sin.sin_addr.s_addr,
                    ))));
                    break;
                }
                p = ifa.ifa_next;
            }
            libc::freeifaddrs(ifap);
        }
    }
    found.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

fn serve(cfg: Config) -> anyhow::Result<()> {
    init_logging(&cfg);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let media_bind = cfg.media.bind.unwrap_or(cfg.server.bind);
    let advertise = match cfg.media.public_ip {
        Some(ip) => ip,
        None if !media_bind.is_unspecified() => media_bind,
        None => {
            let ip = detect_ip();
            warn!(%ip, "media.public_ip is not set; advertising the first interface address (set --public-ip for other networks)");
            ip
        }
    };
    let workers = match cfg.media.workers {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    };
    let token_secret = token_secret(&cfg)?;
    let token_keys = token_keys(&cfg)?;
    // Two TLS back ends are linked (the server's, and ring for the directory
    // client): name the server's, or rustls can not pick one.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let sessions: http::Sessions = Arc::default();
    let metrics = metrics::Metrics::new();
    let sink: sfu::runtime::NoticeSink = {
        let sessions = sessions.clone();
        let dropped = metrics.notices_dropped.clone();
        Arc::new(move |n: sfu::Notice| http::deliver(&sessions, &dropped, n))
    };
    let sfu = sfu::runtime::start(
        sfu::runtime::MediaConfig {
            bind: media_bind,
            port: cfg.media.port,
            advertise,
            workers,
            tcp: cfg.media.tcp,
            engine: sfu::EngineConfig {
                workers,
                max_participants_per_room: cfg.limits.max_participants_per_room,
                max_rooms: cfg.limits.max_rooms,
            },
        },
        sink,
        rand::random(),
    )
    .with_context(|| format!("binding the media port {}:{}", media_bind, cfg.media.port))?;

    let tls_paths = if cfg.server.tls {
        let mut ips = vec![advertise, IpAddr::V4(Ipv4Addr::LOCALHOST)];
        if !cfg.server.bind.is_unspecified() {
            ips.push(cfg.server.bind);
        }
        Some(tls::ensure_certificate(
            &cfg.server.data_dir,
            cfg.server.tls_cert.as_deref(),
            cfg.server.tls_key.as_deref(),
            &ips,
        )?)
    } else {
        None
    };
    let addr = SocketAddr::new(cfg.server.bind, cfg.server.http_port);
    let cluster_cfg = cfg.cluster.clone();
    let cfg_limits = (
        cfg.limits.ws_connects_per_ip_per_minute,
        cfg.limits.offers_per_ip_per_minute,
        cfg.limits.failed_logins_per_ip_per_minute,
    );
    let state = Arc::new(AppState {
        config: cfg,
        sfu,
        metrics,
        sessions,
        token_secret,
        token_keys,
        draining: AtomicBool::new(false),
        meetings: Default::default(),
        resumes: Default::default(),
        ingests: Default::default(),
        viewers: Default::default(),
        recordings: Default::default(),
        started: std::time::Instant::now(),
        ws_rate: kaigi::ratelimit::RateLimiter::new(cfg_limits.0),
        offer_rate: kaigi::ratelimit::RateLimiter::new(cfg_limits.1),
        login_failures: kaigi::ratelimit::RateLimiter::new(cfg_limits.2),
        cluster: kaigi::cluster::Cluster::new(&cluster_cfg).map(Arc::new),
        relays: Default::default(),
    });
    let app = http::router(state.clone());
    let signal_state = state.clone();
    let state_for_auto = state.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let handle = axum_server::Handle::new();
        {
            let (handle, state) = (handle.clone(), signal_state);
            tokio::spawn(async move {
                shutdown_signal().await;
                drain(&state).await;
                // Out of the registry at once, so no node sends anyone here.
                if let Some(c) = &state.cluster {
                    c.leave().await;
                }
                handle.graceful_shutdown(Some(Duration::from_secs(2)));
            });
        }
        if let Some(c) = state_for_auto.cluster.clone() {
            tokio::spawn(c.run(state_for_auto.clone()));
        }
        if state_for_auto.config.recording.auto {
            tokio::spawn(recording::auto(state_for_auto.clone()));
        }
        // The client's address, for the per-address rate limits.
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        match tls_paths {
            Some((cert, key)) => {
                let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                    .await
                    .with_context(|| format!("loading {} and {}", cert.display(), key.display()))?;
                info!(%addr, "serving HTTPS (open https://localhost:{}/ )", addr.port());
                // Without TCP_NODELAY, Nagle and delayed ACKs add ~40 ms to every response.
                axum_server::bind(addr)
                    .acceptor(
                        axum_server::tls_rustls::RustlsAcceptor::new(tls)
                            .acceptor(axum_server::accept::NoDelayAcceptor),
                    )
                    .handle(handle)
                    .serve(service)
                    .await
                    .with_context(|| format!("serving on {addr}"))?;
            }
            None => {
                info!(%addr, "serving plain HTTP (TLS is off)");
                axum_server::bind(addr)
                    .acceptor(axum_server::accept::NoDelayAcceptor)
                    .handle(handle)
                    .serve(service)
                    .await
                    .with_context(|| format!("serving on {addr}"))?;
            }
        }
        anyhow::Ok(())
    })?;
    // Recordings end with their files complete (Cues, sizes) before the media stops.
    recording::stop_all(&state);
    // Background tasks hold the state too: they end with their runtime.
    drop(rt);
    let state = Arc::try_unwrap(state).ok();
    if let Some(state) = state {
        state.sfu.shutdown();
    }
    Ok(())
}

/// Stops taking joins, then waits until the meetings and broadcasts end,
/// the grace time (`server.drain_secs`) is up, or a second signal comes.
async fn drain(state: &AppState) {
    state.draining.store(true, Ordering::Relaxed);
    let grace = Duration::from_secs(state.config.server.drain_secs);
    let deadline = tokio::time::Instant::now() + grace;
    info!(
        grace_secs = grace.as_secs(),
        "draining: new joins refused; meetings go on until they end or the grace time is up (signal again to stop now)"
    );
    let again = shutdown_signal();
    tokio::pin!(again);
    loop {
        let busy = state
            .sfu
            .control(|e| e.participant_count() + e.viewer_count());
        if busy == 0 {
            info!("every meeting has ended: stopping");
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                info!(busy, "grace time over: stopping");
                return;
            }
            _ = &mut again => {
                info!(busy, "second signal: stopping now");
                return;
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}
