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
    /// Join tokens and who may enter which room.
    pub auth: AuthConfig,
    /// Rooms with their own access rule, by name; a name ending in `*`
    /// covers every room that starts with the rest (the longest wins).
    pub rooms: std::collections::HashMap<String, RoomPolicy>,
    /// Sign-in with the staff directory (LDAP, Active Directory).
    pub directory: DirectoryConfig,
    /// Several nodes coordinated through Redis.
    pub cluster: ClusterConfig,
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
    /// Wrong room passwords and failed sign-ins one address may make a
    /// minute (half of it at once) before it must wait; 0: no limit.
    pub failed_logins_per_ip_per_minute: u32,
    /// Chat messages one participant may send a minute (a twelfth of it at once).
    pub chat_messages_per_minute: u32,
    /// Media sections (camera, microphone, screen…) one participant or
    /// encoder may publish; a simulcast camera counts once.
    pub max_tracks_per_participant: usize,
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
            failed_logins_per_ip_per_minute: 20,
            chat_messages_per_minute: 60,
            max_tracks_per_participant: 8,
        }
    }
}

/// `[auth]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HMAC secret for join tokens; generated into `data_dir` when absent.
    pub token_secret: Option<String>,
    /// Refuse joins without a valid token (the same as `default_access = "token"`).
    pub require_token: bool,
    /// Who may enter a room without a rule of its own in `[rooms]`.
    pub default_access: Access,
    /// PEM public keys (Ed25519 or P-256) of whoever issues tokens signed
    /// with a key pair (`EdDSA`, `ES256`); a token's `kid` names the file's stem.
    pub token_public_keys: Vec<PathBuf>,
    /// WHIP stream keys by room: an encoder may publish into the room with
    /// `Authorization: Bearer <key>` instead of a publisher token.
    pub stream_keys: std::collections::HashMap<String, String>,
}

/// Who may enter a room (a valid join token always may).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Anyone who can reach the server.
    #[default]
    Open,
    /// Only with a join token.
    Token,
    /// Anyone who gives the room's password.
    Password,
    /// Staff signed in with the directory.
    Directory,
}

impl Access {
    /// The name used in the configuration and in the protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Open => "open",
            Access::Token => "token",
            Access::Password => "password",
            Access::Directory => "directory",
        }
    }
}

/// `[rooms."name"]`: one room's (or one family's) access rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoomPolicy {
    /// Who may enter.
    pub access: Access,
    /// The password of a `password` room.
    pub password: Option<String>,
}

/// `[directory]`: LDAP sign-in on the landing page.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectoryConfig {
    /// `ldap://host:389` or `ldaps://host:636`; unset: no sign-in.
    pub url: Option<String>,
    /// Upgrade `ldap://` with StartTLS before sending a password.
    pub starttls: bool,
    /// PEM file of the CA that signed the directory's certificate (the
    /// office's own CA); unset: the system's CAs.
    pub ca_file: Option<PathBuf>,
    /// Account kaigi binds as to look users up; unset: an anonymous search.
    pub bind_dn: Option<String>,
    /// Its password.
    pub bind_password: Option<String>,
    /// Where users are looked up.
    pub base_dn: String,
    /// Finds one user; `{user}` becomes the escaped staff ID typed in.
    pub user_filter: String,
    /// Attribute shown as the person's name in meetings.
    pub name_attribute: String,
    /// Members of this group (its DN) moderate every meeting they join.
    pub moderator_group: Option<String>,
    /// Members of this group may publish broadcasts (mint publisher tokens).
    pub publisher_group: Option<String>,
    /// How long a sign-in lasts, in hours.
    pub session_hours: u64,
    /// Seconds to wait for the directory before giving up.
    pub timeout_secs: u64,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig {
            url: None,
            starttls: false,
            ca_file: None,
            bind_dn: None,
            bind_password: None,
            base_dn: String::new(),
            // Active Directory's staff ID; OpenLDAP directories use (uid={user}).
            user_filter: "(&(objectClass=user)(sAMAccountName={user}))".into(),
            name_attribute: "displayName".into(),
            moderator_group: None,
            publisher_group: None,
            session_hours: 10,
            timeout_secs: 5,
        }
    }
}

/// `[cluster]`: nodes that share a room directory in Redis. Without
/// `redis_url` the node stands alone (everything in memory).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// `redis://host:6379/0`; unset: no cluster.
    pub redis_url: Option<String>,
    /// This node's name in the registry (default: the host name).
    pub node_id: Option<String>,
    /// Where the node stands (a building, a branch office): viewers are sent
    /// to a node of their own site.
    pub site: String,
    /// How browsers and encoders reach this node, e.g.
    /// `https://kaigi-a.pref.example.lg.jp:8443`: other nodes send them here.
    pub url: Option<String>,
    /// Seconds between heartbeats; a node silent for three is taken for dead.
    pub heartbeat_secs: u64,
    /// Which site a viewer is at, by the subnet they come from:
    /// `"10.20.0.0/16" = "kita"`. A viewer may also say `?site=kita`.
    pub subnets: std::collections::HashMap<String, String>,
    /// PEM CA certificate(s) the other nodes' HTTPS certificates chain to
    /// (for relaying broadcasts between `https://` nodes).
    pub ca_file: Option<PathBuf>,
}

impl ClusterConfig {
    /// The site of a client at `ip` by `subnets` (longest prefix wins).
    pub fn site_of(&self, ip: IpAddr) -> Option<&str> {
        self.subnets
            .iter()
            .filter_map(|(net, site)| {
                let (base, bits) = parse_cidr(net).ok()?;
                in_subnet(ip, base, bits).then_some((bits, site.as_str()))
            })
            .max_by_key(|(bits, _)| *bits)
            .map(|(_, site)| site)
    }
}

/// `10.20.0.0/16` → (address, prefix length).
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, bits) = s.split_once('/').unwrap_or((s, ""));
    let addr: IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| format!("{s}: not an address/prefix"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = if bits.is_empty() {
        max
    } else {
        bits.trim()
            .parse::<u8>()
            .ok()
            .filter(|b| *b <= max)
            .ok_or_else(|| format!("{s}: the prefix length must be 0..={max}"))?
    };
    Ok((addr, bits))
}

/// Whether `ip` is in `base/bits` (an IPv4-mapped IPv6 address counts as IPv4).
pub fn in_subnet(ip: IpAddr, base: IpAddr, bits: u8) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (ip, base) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis_url: None,
            node_id: None,
            site: "main".into(),
            url: None,
            heartbeat_secs: 5,
            subnets: Default::default(),
            ca_file: None,
        }
    }
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
        if self.limits.chat_messages_per_minute == 0 {
            return bad("limits.chat_messages_per_minute must be positive");
        }
        if self.limits.max_tracks_per_participant == 0 {
            return bad("limits.max_tracks_per_participant must be positive");
        }
        for (name, p) in &self.rooms {
            let stem = name.strip_suffix('*').unwrap_or(name);
            if !stem.is_empty() && sfu::room::validate_name(stem).is_err() {
                return Err(ConfigError::Invalid(format!(
                    "[rooms.{name:?}]: not a room name (or a prefix followed by *)"
                )));
            }
            match (p.access, &p.password) {
                (Access::Password, None) => {
                    return Err(ConfigError::Invalid(format!(
                        "[rooms.{name:?}]: access = \"password\" needs a password"
                    )));
                }
                (Access::Password, Some(pw)) if pw.chars().count() < 6 => {
                    return Err(ConfigError::Invalid(format!(
                        "[rooms.{name:?}]: the password needs at least 6 characters"
                    )));
                }
                (Access::Password, _) | (_, None) => {}
                (_, Some(_)) => {
                    return Err(ConfigError::Invalid(format!(
                        "[rooms.{name:?}]: a password only goes with access = \"password\""
                    )));
                }
            }
            if p.access == Access::Directory && self.directory.url.is_none() {
                return Err(ConfigError::Invalid(format!(
                    "[rooms.{name:?}]: access = \"directory\" needs [directory] url"
                )));
            }
        }
        if self.auth.default_access == Access::Password {
            return bad(
                "auth.default_access can not be \"password\": give each room its own in [rooms]",
            );
        }
        if self.auth.default_access == Access::Directory && self.directory.url.is_none() {
            return bad("auth.default_access = \"directory\" needs [directory] url");
        }
        if let Some(url) = &self.directory.url {
            if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
                return bad("directory.url starts with ldap:// or ldaps://");
            }
            if self.directory.base_dn.is_empty() {
                return bad("directory.base_dn is needed with directory.url");
            }
            if !self.directory.user_filter.contains("{user}") {
                return bad("directory.user_filter must contain {user}");
            }
            if self.directory.bind_dn.is_some() != self.directory.bind_password.is_some() {
                return bad("directory.bind_dn and directory.bind_password go together");
            }
            if self.directory.session_hours == 0 || self.directory.timeout_secs == 0 {
                return bad("directory.session_hours and directory.timeout_secs must be positive");
            }
        }
        if let Some(url) = &self.cluster.redis_url {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return bad("cluster.redis_url starts with redis:// or rediss://");
            }
            match &self.cluster.url {
                Some(u) if u.starts_with("https://") || u.starts_with("http://") => {}
                _ => {
                    return bad(
                        "cluster.url (how browsers reach this node, https://…) is needed with cluster.redis_url",
                    );
                }
            }
            if self.cluster.heartbeat_secs == 0 {
                return bad("cluster.heartbeat_secs must be positive");
            }
            if self
                .cluster
                .node_id
                .as_ref()
                .is_some_and(|n| sfu::room::validate_name(n).is_err())
            {
                return bad("cluster.node_id: letters, digits, - _ . only");
            }
            for (net, site) in &self.cluster.subnets {
                if let Err(e) = parse_cidr(net) {
                    return bad(&format!("cluster.subnets: {e}"));
                }
                if sfu::room::validate_name(site).is_err() {
                    return bad("cluster.subnets: a site name is letters, digits, - _ . only");
                }
            }
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

impl Config {
    /// The access rule of `room` and, for a password room, its password:
    /// its own entry in `[rooms]`, else the longest `prefix*` entry that
    /// covers it, else the default.
    pub fn room_access(&self, room: &str) -> (Access, Option<&str>) {
        let policy = self.rooms.get(room).or_else(|| {
            self.rooms
                .iter()
                .filter_map(|(k, p)| Some((k.strip_suffix('*')?, p)))
                .filter(|(prefix, _)| room.starts_with(prefix))
                .max_by_key(|(prefix, _)| prefix.len())
                .map(|(_, p)| p)
        });
        match policy {
            Some(p) => (p.access, p.password.as_deref()),
            None if self.auth.require_token => (Access::Token, None),
            None => (self.auth.default_access, None),
        }
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
    fn room_rules_exact_then_longest_prefix_then_default() {
        let c = Config::parse(
            r#"
            [auth]
            default_access = "open"
            [rooms."kaiken*"]
            access = "token"
            [rooms."kaiken-naibu*"]
            access = "password"
            password = "himitsu-123"
            [rooms.kaiken-open]
            access = "open"
            "#,
            env(&[]),
        )
        .unwrap();
        assert_eq!(c.room_access("lobby"), (Access::Open, None));
        assert_eq!(c.room_access("kaiken-2026"), (Access::Token, None));
        assert_eq!(
            c.room_access("kaiken-naibu-1"),
            (Access::Password, Some("himitsu-123"))
        );
        assert_eq!(c.room_access("kaiken-open"), (Access::Open, None));
        let strict = Config::parse("[auth]\nrequire_token = true\n", env(&[])).unwrap();
        assert_eq!(strict.room_access("any"), (Access::Token, None));
    }

    #[test]
    fn sites_are_found_by_subnet_longest_prefix_first() {
        let c = ClusterConfig {
            subnets: [
                ("10.20.0.0/16".to_owned(), "kita".to_owned()),
                ("10.20.5.0/24".to_owned(), "kita-annex".to_owned()),
                ("fd00:1::/32".to_owned(), "minami".to_owned()),
            ]
            .into(),
            ..ClusterConfig::default()
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(c.site_of(ip("10.20.1.9")), Some("kita"));
        assert_eq!(c.site_of(ip("10.20.5.9")), Some("kita-annex"));
        assert_eq!(c.site_of(ip("::ffff:10.20.1.9")), Some("kita"));
        assert_eq!(c.site_of(ip("fd00:1:2::3")), Some("minami"));
        assert_eq!(c.site_of(ip("10.21.0.1")), None);
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("10.0.0/8").is_err());
        assert_eq!(parse_cidr("10.0.0.1").unwrap().1, 32);
        assert!(in_subnet(ip("1.2.3.4"), ip("0.0.0.0"), 0));
    }

    #[test]
    fn bad_room_rules_are_explained() {
        for (text, needle) in [
            ("[rooms.a]\naccess = \"password\"\n", "needs a password"),
            (
                "[rooms.a]\naccess = \"password\"\npassword = \"abc\"\n",
                "at least 6",
            ),
            (
                "[rooms.a]\naccess = \"open\"\npassword = \"abcdefg\"\n",
                "only goes with",
            ),
            (
                "[rooms.a]\naccess = \"directory\"\n",
                "needs [directory] url",
            ),
            ("[rooms.\"a b\"]\naccess = \"token\"\n", "not a room name"),
            ("[rooms.a]\naccess = \"secret\"\n", "unknown variant"),
            ("[auth]\ndefault_access = \"password\"\n", "give each room"),
            (
                "[directory]\nurl = \"http://x\"\nbase_dn = \"dc=x\"\n",
                "ldap://",
            ),
            ("[directory]\nurl = \"ldap://x\"\n", "base_dn"),
            (
                "[directory]\nurl = \"ldap://x\"\nbase_dn = \"dc=x\"\nuser_filter = \"(uid=x)\"\n",
                "{user}",
            ),
        ] {
            let e = Config::parse(text, env(&[])).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn example_config_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/kaigi.example.toml");
        let c = Config::load(Some(std::path::Path::new(path)), env(&[])).unwrap();
        assert_eq!(c.server.http_port, 8443);
    }
}
