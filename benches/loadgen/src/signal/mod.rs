//! Signaling clients: how a load-generator client joins a room and trades
//! SDP with the server. `kaigi` speaks kaigi's /ws protocol
//! (docs/protocol.md); `janus` speaks Janus's videoroom plugin over its
//! HTTP API, for a side-by-side run.

pub mod http;
pub mod janus;
pub mod kaigi;
pub mod tls;
