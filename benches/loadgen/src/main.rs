//! kaigi's load generator: many real WebRTC peers (`rtc`, sans-IO) from one
//! process, on loopback only, publishing real Opus and VP8-packetised video
//! and measuring what subscribers receive. Prints a JSON result.
//!
//! ```text
//! loadgen --url https://127.0.0.1:18443 --scenario livestream --subscribers 100 --duration 30
//! ```

mod clock;
mod engine;
mod media;
mod peer;
mod report;
mod scenario;
mod server_metrics;
mod signal;
mod stats;

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde_json::json;

use crate::engine::{Cmd, Engines};
use crate::report::{cpu_seconds, loss_pct, quantiles};
use crate::scenario::{Plan, Scenario};
use crate::signal::kaigi::{ClientReport, run_client, ws_url};
use crate::stats::histogram;

/// Which server the load goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Target {
    /// kaigi's WebSocket signaling (`--url https://host:port`).
    Kaigi,
    /// Janus's videoroom plugin over HTTP (`--url http://host:8088/janus`).
    Janus,
}

/// How non-publishing clients (livestream viewers) reach kaigi.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum ViewersVia {
    /// As participants, over the /ws protocol.
    Ws,
    /// As WHEP players (`POST /whep/{room}`), not participants.
    Whep,
}

#[derive(Debug, Parser)]
#[command(name = "loadgen", about = "Load generator for kaigi (WebRTC SFU)")]
struct Cli {
    #[arg(long, value_enum, default_value = "kaigi")]
    target: Target,
    /// kaigi: https://host:port (the certificate is not checked);
    /// janus: http://host:8088/janus.
    #[arg(long, default_value = "https://127.0.0.1:8443")]
    url: String,
    #[arg(long, value_enum, default_value = "livestream")]
    scenario: Scenario,
    /// Rooms, each with the same load.
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Per room: viewers (livestream), participants (meeting), listeners (audio-only).
    #[arg(long, default_value_t = 10)]
    subscribers: usize,
    /// kaigi, livestream: viewers join as /ws participants or as WHEP players.
    #[arg(long, value_enum, default_value = "ws")]
    viewers_via: ViewersVia,
    /// Per room: speakers (audio-only).
    #[arg(long, default_value_t = 10)]
    speakers: usize,
    /// Seconds of media after the last join.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Joins per second.
    #[arg(long, default_value_t = 50.0)]
    ramp: f64,
    #[arg(long, default_value_t = 1000)]
    video_kbps: u32,
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Seconds between periodic keyframes.
    #[arg(long, default_value_t = 2.0)]
    keyframe_interval: f64,
    /// Address the peers bind and advertise: loopback only (127.0.0.0/8).
    /// Janus in the netns_lo.sh namespace only reaches 127.0.0.2.
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// Media threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Room name prefix (rooms are PREFIX0, PREFIX1, ...).
    #[arg(long, default_value = "load")]
    room_prefix: String,
    /// The server's pid, to report its CPU time over the run.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The server's Prometheus endpoint (kaigi: https://host:port/metrics),
    /// to report the forwarding delay the server measures itself.
    #[arg(long)]
    server_metrics: Option<String>,
    /// Write the JSON here instead of stdout.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    env_logger::init();
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(run(&cli))?;
    let text = serde_json::to_string_pretty(&result)?;
    match &cli.out {
        Some(p) => std::fs::write(p, text + "\n").with_context(|| format!("writing {p:?}"))?,
        None => println!("{text}"),
    }
    Ok(())
}

async fn run(cli: &Cli) -> anyhow::Result<serde_json::Value> {
    let plan = Plan {
        scenario: cli.scenario,
        rooms: cli.rooms,
        subscribers: cli.subscribers,
        speakers: cli.speakers,
        video_kbps: cli.video_kbps,
        fps: cli.fps,
        keyframe_interval: Duration::from_secs_f64(cli.keyframe_interval),
    };
    anyhow::ensure!(
        cli.bind.is_loopback(),
        "--bind must be a loopback address (127.0.0.0/8): this tool never leaves the machine"
    );
    anyhow::ensure!(
        cli.viewers_via == ViewersVia::Ws
            || (cli.target == Target::Kaigi && cli.scenario == Scenario::Livestream),
        "--viewers-via whep needs --target kaigi and --scenario livestream (one publisher per room)"
    );
    let clients = plan.clients(&cli.room_prefix);
    let whep_base = signal::whep::base_url(&cli.url);
    let url = ws_url(&cli.url);
    let tls = signal::tls::insecure_client_config()?;
    let _ = clock::epoch();
    let cpu0 = cpu_seconds("self").unwrap_or(0.0);
    let server_pid = cli.server_pid.map(|p| p.to_string());
    let server_cpu0 = server_pid.as_deref().and_then(cpu_seconds);
    let run_start = Instant::now();
    let engines = Engines::start(cli.threads, peer::certificate()?, run_start, cli.bind)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    if cli.target == Target::Janus {
        let per_room = clients.len().div_ceil(cli.rooms.max(1));
        signal::janus::create_rooms(&cli.url, cli.rooms, per_room, cli.video_kbps).await?;
    }
    let gap = Duration::from_secs_f64(1.0 / cli.ramp.max(0.001));
    let mut tasks = Vec::new();
    for (i, spec) in clients.iter().enumerate() {
        tokio::time::sleep_until((run_start + gap * i as u32).into()).await;
        let media = engines.for_client(spec.index).clone();
        tasks.push(match cli.target {
            Target::Kaigi if cli.viewers_via == ViewersVia::Whep && spec.publish.is_none() => {
                tokio::spawn(signal::whep::run_viewer(
                    whep_base.clone(),
                    tls.clone(),
                    spec.clone(),
                    media,
                    stop_rx.clone(),
                ))
            }
            Target::Kaigi => tokio::spawn(run_client(
                url.clone(),
                tls.clone(),
                spec.clone(),
                media,
                stop_rx.clone(),
            )),
            Target::Janus => {
                // Non-publishing clients subscribe to every publisher of their room.
                let feeds = clients
                    .iter()
                    .filter(|c| c.room_index == spec.room_index && c.publish.is_some())
                    .map(|c| signal::janus::feed_id(c.index))
                    .collect();
                tokio::spawn(signal::janus::run_client(
                    cli.url.clone(),
                    spec.clone(),
                    feeds,
                    media,
                    stop_rx.clone(),
                ))
            }
        });
    }
    let ramp_done = Instant::now();
    // Steady state: from the first whole second 2 s after the last join started.
    let steady_s = ramp_done.duration_since(run_start).as_secs() + 2;
    let steady_from = run_start + Duration::from_secs(steady_s);
    engines.broadcast(|| Cmd::SteadyFrom(steady_from));
    eprintln!(
        "loadgen: {} clients started in {:.1} s; running {} s",
        clients.len(),
        ramp_done.duration_since(run_start).as_secs_f64(),
        cli.duration
    );
    // The server's CPU over the steady window too: joins (DTLS handshakes) out.
    let run_end = ramp_done + Duration::from_secs(cli.duration);
    let (steady_cpu0, self_steady_cpu0) = if steady_from < run_end {
        tokio::time::sleep_until(steady_from.into()).await;
        (
            server_pid.as_deref().and_then(cpu_seconds),
            cpu_seconds("self"),
        )
    } else {
        (None, None)
    };
    let delay0 = forward_delay(cli.server_metrics.clone()).await;
    tokio::time::sleep_until(run_end.into()).await;
    let media_end = Instant::now();
    let steady_cpu = steady_cpu0.and_then(|c0| Some(cpu_seconds(server_pid.as_deref()?)? - c0));
    // The generator's own CPU over the window: is it the bottleneck?
    let self_steady_cpu = self_steady_cpu0.and_then(|c0| Some(cpu_seconds("self")? - c0));
    let server_delay = match (delay0, forward_delay(cli.server_metrics.clone()).await) {
        (Some(a), Some(b)) => Some(b.since(&a).summary_ms()),
        _ => None,
    };
    let steady_secs = media_end
        .saturating_duration_since(steady_from)
        .as_secs_f64();
    engines.broadcast(|| Cmd::StopSending);
    // Let the last packets arrive before closing the peers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu_media = cpu_seconds("self").unwrap_or(0.0) - cpu0;
    let server_cpu = server_cpu0.and_then(|c0| Some(cpu_seconds(server_pid.as_deref()?)? - c0));
    let wall = run_start.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    let mut reports: Vec<ClientReport> = Vec::new();
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(5), t).await {
            Ok(Ok(r)) => reports.push(r),
            _ => reports.push(ClientReport {
                error: Some("signaling task did not end".into()),
                ..Default::default()
            }),
        }
    }
    let (totals, notes) = tokio::task::spawn_blocking(move || engines.finish()).await??;

    let mut welcome = histogram();
    let mut offer = histogram();
    for r in &reports {
        if let Some(us) = r.welcome_us {
            let _ = welcome.record(us.max(1));
        }
        if let Some(us) = r.first_offer_us {
            let _ = offer.record(us.max(1));
        }
    }
    let errors: Vec<&String> = reports.iter().filter_map(|r| r.error.as_ref()).collect();
    let first = steady_s as usize;
    let last = media_end.duration_since(run_start).as_secs() as usize;
    let window: Vec<u64> = totals
        .per_second
        .get(first.min(totals.per_second.len())..last.min(totals.per_second.len()))
        .unwrap_or_default()
        .to_vec();
    let steady_pps = if window.is_empty() {
        0.0
    } else {
        window.iter().sum::<u64>() as f64 / window.len() as f64
    };
    Ok(json!({
        "target": cli.target,
        "url": cli.url,
        "scenario": plan.scenario,
        "params": {
            "rooms": cli.rooms, "subscribers": cli.subscribers, "speakers": cli.speakers,
            "duration_s": cli.duration, "ramp_per_s": cli.ramp, "video_kbps": cli.video_kbps,
            "fps": cli.fps, "bind": cli.bind, "viewers_via": cli.viewers_via, "keyframe_interval_s": cli.keyframe_interval, "threads": cli.threads,
        },
        "clients": {
            "planned": clients.len(),
            "welcomed": reports.iter().filter(|r| r.welcome_us.is_some()).count(),
            "subscribed": totals.first_packet.len(),
            "errors": errors.len(),
            "whep_not_live_retries": reports.iter().map(|r| r.whep_not_live).sum::<u64>(),
            "whep_deleted": reports.iter().filter(|r| r.whep_deleted).count(),
            "error_samples": errors.iter().take(5).collect::<Vec<_>>(),
            "engine_errors": notes.errors.iter().take(5).collect::<Vec<_>>(),
        },
        "totals": {
            "packets_sent": totals.packets_sent,
            "packets_received": totals.packets_received,
            "expected": totals.expected,
            "lost": totals.lost,
            "loss_pct": loss_pct(totals.lost, totals.expected),
            "streams": totals.streams,
            "disconnects": totals.disconnects,
            "keyframes_sent": totals.keyframes_sent,
            "keyframes_received": totals.keyframes_received,
            "keyframe_requests_seen": totals.keyframe_requests,
            "delay_ms": quantiles(&totals.delay),
            "jitter_ms": quantiles(&totals.jitter),
            "join_ms": quantiles(&welcome),
            "subscribe_offer_ms": quantiles(&offer),
            "connect_ms": quantiles(&totals.connect),
            "first_packet_ms": quantiles(&totals.first_packet),
        },
        "steady_state": {
            "from_s": first, "to_s": last,
            "received_pps": steady_pps.round(),
            "delay_ms": quantiles(&totals.delay_steady),
            "server_forward_delay_ms": server_delay,
        },
        "per_second": {
            "received": totals.per_second,
            "sent": totals.sent_per_second,
        },
        "cpu": {
            "wall_s": (wall * 100.0).round() / 100.0,
            "loadgen_cpu_s": (cpu_media * 100.0).round() / 100.0,
            "loadgen_cpu_pct": (cpu_media / wall * 1000.0).round() / 10.0,
            "loadgen_cpu_steady_pct": self_steady_cpu
                .filter(|_| steady_secs > 0.0)
                .map(|c| (c / steady_secs * 1000.0).round() / 10.0),
            "server_cpu_s": server_cpu.map(|c| (c * 100.0).round() / 100.0),
            "server_cpu_pct": server_cpu.map(|c| (c / wall * 1000.0).round() / 10.0),
            "server_cpu_steady_s": steady_cpu.map(|c| (c * 1000.0).round() / 1000.0),
            "server_cpu_steady_pct": steady_cpu
                .filter(|_| steady_secs > 0.0)
                .map(|c| (c / steady_secs * 1000.0).round() / 10.0),
            "server_us_per_packet_steady": steady_cpu
                .filter(|_| steady_pps > 0.0 && steady_secs > 0.0)
                .map(|c| (c * 1e6 / (steady_pps * steady_secs) * 100.0).round() / 100.0),
        },
        "notes": {
            "audio_level_negotiated": notes.audio_level_negotiated,
            "send_dropped": notes.send_dropped,
            "join_ms": if cli.viewers_via == ViewersVia::Whep {
                "viewers: WHEP POST sent → 201 answer (the publisher: connect start → welcome); connect_ms: POST sent → viewer PC connected; first_packet_ms: POST sent → first RTP"
            } else {
                "connect start → welcome (kaigi) / joined or attached (janus); connect_ms: → subscribe PC connected; first_packet_ms: → first RTP on the subscribe PC"
            },
            "delay": "send stamp = last 8 payload bytes, µs on the process's monotonic clock",
            "server_forward_delay": "kaigi_forward_delay_seconds over the steady window: receive → copies handed to the kernel, per incoming media packet, from the server's own histogram",
        },
    }))
}

/// One socket per peer and one WebSocket per client: lift the soft limit.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// kaigi's forwarding-delay histogram now, if `--server-metrics` was given
/// and answers.
async fn forward_delay(url: Option<String>) -> Option<server_metrics::PromHistogram> {
    let url = url?;
    let text = tokio::task::spawn_blocking(move || server_metrics::fetch(&url))
        .await
        .ok()?;
    match text {
        Ok(t) => server_metrics::parse_histogram(&t, "kaigi_forward_delay_seconds"),
        Err(e) => {
            eprintln!("loadgen: server metrics: {e:#}");
            None
        }
    }
}
