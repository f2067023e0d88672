//! Configuration: one TOML file, every key overridable by an environment
//! variable `KAIGI_SECTION__KEY`, then by command-line flags. Validated at
//! start; the documented reference is `deploy/kaigi.example.toml`.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP, TLS and files.
    pub server: ServerConfig,
    /// The media port and workers.
    pub media: MediaConfig,
    /// Limits on what clients may do.
    pub limits: LimitsConfig,
    /// Join tokens.
    pub auth: AuthConfig,
    /// WHIP ingest.
    pub whip: WhipConfig,
    /// Recording broadcasts.
    pub recording: RecordingConfig,
    /// The admin API.
    pub admin: AdminConfig,
    /// Logging.
    pub log: LogConfig,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address for HTTPS (and the media port unless `media.bind` is set).
    pub bind: IpAddr,
    /// HTTPS port.
    pub http_port: u16,
    /// Certificate, secrets and recordings live here.
    pub data_dir: PathBuf,
    /// Serve the web client from this folder instead of the embedded copy.
    pub web_dir: Option<PathBuf>,
    /// Serve HTTPS (false: plain HTTP, e.g. behind a TLS-terminating proxy).
    pub tls: bool,
    /// PEM certificate chain; a self-signed one is generated when absent.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// On SIGTERM, how long running meetings and broadcasts may go on
    /// (no new joins) before the server stops; it stops sooner once they end.
    pub drain_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: IpAddr::from([0, 0, 0, 0]),
            http_port: 8443,
            data_dir: PathBuf::from("./data"),
            web_dir: None,
            tls: true,
            tls_cert: None,
            tls_key: None,
            drain_secs: 30,
        }
    }
}

/// `[media]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Address for the media port; defaults to `server.bind`.
    pub bind: Option<IpAddr>,
    /// UDP and ICE-TCP port shared by every peer.
    pub port: u16,
    /// Address written into ICE candidates; detected when absent.
    pub public_ip: Option<IpAddr>,
    /// Media worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// Accept ICE-TCP on `port` too (for networks that block UDP).
    pub tcp: bool,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind: None,
            port: 10000,
            public_ip: None,
            workers: 0,
            tcp: true,
        }
    }
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// The most participants in one room.
    pub max_participants_per_room: usize,
    /// The most rooms at once.
    pub max_rooms: usize,
    /// The largest WebSocket message, in bytes.
    pub ws_max_message_bytes: usize,
    /// Malformed messages tolerated on one WebSocket before it is closed.
    pub ws_max_bad_messages: u32,
    /// Seconds a participant whose connection dropped (without leaving)
    /// stays in the room, shown as reconnecting, waiting to resume.
    pub reconnect_grace_secs: u64,
    /// New signaling WebSockets (joins, reconnections) one address may open
    /// a minute (half of it at once); 0: no limit.
    pub ws_connects_per_ip_per_minute: u32,
    /// WHIP and WHEP offers one address may post a minute (half of it at
    /// once); 0: no limit.
    pub offers_per_ip_per_minute: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_participants_per_room: 100,
            max_rooms: 1000,
            ws_max_message_bytes: 64 * 1024,
            ws_max_bad_messages: 50,
            reconnect_grace_secs: 30,
            // Generous: a branch office behind one NAT opens its meeting at once.
            ws_connects_per_ip_per_minute: 600,
            offers_per_ip_per_minute: 1200,
        }
    }
}

/// `[auth]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HMAC secret for join tokens; generated into `data_dir` when absent.
    pub token_secret: Option<String>,
    /// Refuse joins without a valid token.
    pub require_token: bool,
    /// WHIP stream keys by room: an encoder may publish into the room with
    /// `Authorization: Bearer <key>` instead of a publisher token.
    pub stream_keys: std::collections::HashMap<String, String>,
}

/// `[whip]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhipConfig {
    /// Encoders that may publish into one room at once (a further one gets 409).
    pub max_sources: usize,
    /// Rooms that allow more (or fewer), e.g. the governor and a
    /// sign-language interpreter from two encoders: `kaiken = 2`.
    pub room_sources: std::collections::HashMap<String, usize>,
}

impl Default for WhipConfig {
    fn default() -> Self {
        WhipConfig {
            max_sources: 1,
            room_sources: Default::default(),
        }
    }
}

impl WhipConfig {
    /// How many encoders may publish into `room` at once.
    pub fn sources_allowed(&self, room: &str) -> usize {
        self.room_sources
            .get(room)
            .copied()
            .unwrap_or(self.max_sources)
    }
}

/// `[recording]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Where recordings are written; `<server.data_dir>/recordings` when absent.
    pub dir: Option<PathBuf>,
    /// Record every WHIP broadcast from its start, without being asked.
    pub auto: bool,
}

/// `[admin]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// The admin API's key (`Authorization: Bearer <key>`); the API is
    /// off while it is unset.
    pub api_key: Option<String>,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `pretty` or `json`.
    pub format: String,
    /// A `tracing` filter, e.g. `info` or `kaigi=debug,sfu=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "pretty".into(),
            level: "info".into(),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML or a value was wrong.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads `path` (if any), then applies `KAIGI_SECTION__KEY` variables from `env`.
    pub fn load(
        path: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.to_owned(),
                source,
            })?,
            None => String::new(),
        };
        Self::parse(&text, env)
    }

    /// A configuration from TOML `text`, then `KAIGI_SECTION__KEY` variables from `env`.
    pub fn parse(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        for (key, value) in env {
            let Some(rest) = key.strip_prefix("KAIGI_") else {
                continue;
            };
            let Some((section, field)) = rest.split_once("__") else {
                continue;
            };
            let (section, field) = (section.to_ascii_lowercase(), field.to_ascii_lowercase());
            // A value is TOML when it parses as one (numbers, booleans, arrays), else a string.
            let parsed = format!("v = {value}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or(toml::Value::String(value));
            let entry = table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(Default::default()));
            match entry {
                toml::Value::Table(t) => {
                    t.insert(field, parsed);
                }
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "{key}: [{section}] is not a section"
                    )));
                }
            }
        }
        let cfg: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.limits.ws_max_message_bytes < 1024 {
            return bad("limits.ws_max_message_bytes must be at least 1024");
        }
        if self.limits.max_participants_per_room == 0 || self.limits.max_rooms == 0 {
            return bad("limits.max_participants_per_room and limits.max_rooms must be positive");
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return bad("server.tls_cert and server.tls_key go together");
        }
        if self.admin.api_key.as_ref().is_some_and(|k| k.len() < 16) {
            return bad("admin.api_key must be at least 16 characters");
        }
        if !matches!(self.log.format.as_str(), "pretty" | "json") {
            return bad("log.format is \"pretty\" or \"json\"");
        }
        if self
            .media
            .public_ip
            .is_some_and(|ip| ip.is_unspecified() || ip.is_multicast())
        {
            return bad("media.public_ip must be an address clients can reach");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_without_a_file() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.server.http_port, 8443);
        assert_eq!(c.media.port, 10000);
        assert!(c.server.tls && c.media.tcp);
    }

    #[test]
    fn env_overrides_file() {
        let dir = std::env::temp_dir().join(format!("kaigi-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("k.toml");
        std::fs::write(&f, "[server]\nhttp_port = 9000\n[media]\nport = 11000\n").unwrap();
        let c = Config::load(
            Some(&f),
            env(&[
                ("KAIGI_SERVER__HTTP_PORT", "9443"),
                ("KAIGI_MEDIA__PUBLIC_IP", "10.1.2.3"),
                ("KAIGI_LOG__FORMAT", "json"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.http_port, 9443);
        assert_eq!(c.media.port, 11000);
        assert_eq!(c.media.public_ip, Some("10.1.2.3".parse().unwrap()));
        assert_eq!(c.log.format, "json");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(Config::load(None, env(&[("KAIGI_SERVER__NOPE", "1")])).is_err());
        assert!(Config::load(None, env(&[("KAIGI_LOG__FORMAT", "xml")])).is_err());
        assert!(Config::load(None, env(&[("KAIGI_MEDIA__PORT", "banana")])).is_err());
    }

    #[test]
    fn example_config_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/kaigi.example.toml");
        let c = Config::load(Some(std::path::Path::new(path)), env(&[])).unwrap();
        assert_eq!(c.server.http_port, 8443);
    }
}
