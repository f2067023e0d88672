//! The `kaigi` server as a library: HTTP and WebSocket signaling, WHIP and
//! WHEP, tokens, configuration, recordings and the admin API around the
//! media core (`sfu`). The binary (`src/main.rs`) is the command line on
//! top; the library exists so that tests and fuzz targets (`fuzz/`) reach
//! the parsers.

pub mod access;
pub mod admin;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod directory;
pub mod http;
pub mod meeting;
pub mod metrics;
pub mod protocol;
pub mod ratelimit;
pub mod recording;
pub mod relay;
pub mod sdp_http;
pub mod tls;
pub mod watch;
pub mod whep;
pub mod whip;
pub mod ws;
