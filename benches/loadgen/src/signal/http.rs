//! A minimal HTTP/1.1 JSON client over plain TCP (one connection per
//! request, `Connection: close`), enough for Janus's HTTP API on loopback.
//! Handles `Content-Length` and chunked bodies. [`exchange`] is a blocking
//! one-shot request over http:// or https:// (kaigi's /metrics and /whep).

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where requests go: `http://host:port/base`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `host:port`.
    pub authority: String,
    /// Base path, e.g. `/janus`.
    pub base: String,
}

impl Endpoint {
    /// Parses `http://host:port/path`.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .context("only http:// URLs are supported")?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        Ok(Endpoint {
            authority: authority.to_owned(),
            base: path.trim_end_matches('/').to_owned(),
        })
    }

    /// `POST base+path` with a JSON body; the JSON reply.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.request("POST", path, Some(body.to_string())).await
    }

    /// `GET base+path`; the JSON reply.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.request("GET", path, None).await
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<Value> {
        let mut s = TcpStream::connect(&self.authority)
            .await
            .with_context(|| format!("connecting to {}", self.authority))?;
        let body = body.unwrap_or_default();
        let req = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.base,
            self.authority,
            body.len()
        );
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        let body = parse_response(&buf)?;
        Ok(serde_json::from_slice(&body)?)
    }
}

/// One request to `url` (http:// or https://; over TLS with `tls`, which on
/// loopback accepts the server's self-signed certificate), `Connection:
/// close`; the raw response. `body` is `(content type, bytes)`. Blocking,
/// for `spawn_blocking`.
pub fn exchange(
    url: &str,
    method: &str,
    body: Option<(&str, &str)>,
    tls: &Arc<rustls::ClientConfig>,
) -> anyhow::Result<Vec<u8>> {
    let (secure, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        bail!("not an http(s) URL: {url}");
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let tcp = std::net::TcpStream::connect(authority)
        .with_context(|| format!("connecting to {authority}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    match body {
        Some((ctype, b)) => req.push_str(&format!(
            "Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => req.push_str("Content-Length: 0\r\n\r\n"),
    }
    let mut buf = Vec::new();
    if secure {
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())?;
        let conn = rustls::ClientConnection::new(tls.clone(), name)?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        s.write_all(req.as_bytes())?;
        // Servers may close without close_notify; what was read is complete
        // when the headers' length says so, which the caller checks.
        if let Err(e) = s.read_to_end(&mut buf)
            && buf.is_empty()
        {
            return Err(e.into());
        }
    } else {
        let mut s = tcp;
        s.write_all(req.as_bytes())?;
        s.read_to_end(&mut buf)?;
    }
    Ok(buf)
}

/// The status code and a header's value (case-insensitive name) of a raw
/// response.
pub fn status_and_header(buf: &[u8], name: &str) -> anyhow::Result<(u16, Option<String>)> {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = std::str::from_utf8(&buf[..end])?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    let value = head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    });
    Ok((status, value))
}

/// The body of a complete HTTP/1.1 response, checked for a 2xx status.
pub fn parse_response(buf: &[u8]) -> anyhow::Result<Vec<u8>> {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = std::str::from_utf8(&buf[..end])?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    if !(200..300).contains(&status) {
        bail!("HTTP {status}");
    }
    let body = &buf[end + 4..];
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Ok(body.to_vec());
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let nl = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("bad chunk")?;
        let size_str = std::str::from_utf8(&rest[..nl])?;
        let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)?;
        rest = &rest[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(rest.get(..size).context("short chunk")?);
        rest = rest.get(size + 2..).context("short chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chunked_and_plain_bodies() {
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(r).unwrap(), b"{\"a\":1}");
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_response(r).unwrap(), b"{}");
        assert!(parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n").is_err());
    }

    #[test]
    fn endpoint_from_url() {
        let e = Endpoint::parse("http://127.0.0.1:8088/janus/").unwrap();
        assert_eq!(
            (e.authority.as_str(), e.base.as_str()),
            ("127.0.0.1:8088", "/janus")
        );
        assert!(Endpoint::parse("https://x").is_err());
    }
}
