//! Network helpers: demultiplexing one port among many peers (STUN
//! username, RFC 7983 first-byte rules) and RFC 4571 framing for ICE-TCP.

pub mod batch;
pub mod demux;
pub mod framing;
