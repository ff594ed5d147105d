//! Configuration: the typed, validated config the rest of the program trusts.
//!
//! Layering: built-in defaults (the demo config when no file is given) → TOML file →
//! `ACCESS_BROKER_*` environment → flags. `raw.rs` holds the serde shapes (unknown keys
//! rejected); `build.rs` turns them into these types in one pass whose every error names the
//! file and the key. Loading writes nothing.

mod build;
pub mod policy;
mod raw;
mod services;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::domain::{
    BookingTimeout, CodeLength, CodePrefix, GroupName, NodeId, ServiceName, SessionTtl,
};
use crate::store::{GroupSpec, SqliteSync, StoreUrl};

pub use services::{ServiceConfig, ServiceKind};

pub const DEMO_TOML: &str = include_str!("../../config/demo.toml");

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    /// `[auth]`: HTTP Basic for every `/genesys/1/*` call.
    pub auth: Option<Credentials>,
    /// `[auth.admin]`: the admin API's own credentials.
    pub admin_auth: Option<Credentials>,
    /// `[auth.metrics]`: guards `/metrics` when set.
    pub metrics_auth: Option<Credentials>,
    /// `[limits]`: per-client and store-wide limits (see `http::limits`).
    pub limits: LimitsConfig,
    /// `[events]`: webhooks for the reservation lifecycle, when set.
    pub events: Option<EventsConfig>,
    /// Resource groups in config order.
    pub groups: Vec<GroupSpec>,
    pub services: BTreeMap<ServiceName, ServiceConfig>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub store: StoreUrl,
    pub node_id: NodeId,
    pub access_code_prefix: CodePrefix,
    pub max_body_bytes: usize,
    /// PostgreSQL: how long a request waits for a connection or a statement before 503.
    pub store_timeout: Duration,
    /// PostgreSQL: most connections this node opens (`store_max_connections`).
    pub store_max_connections: usize,
    pub sqlite_synchronous: SqliteSync,
    /// HTTP: connections served at once; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// HTTP: a request's headers (and a TLS handshake) must arrive within this; it is also
    /// how long an idle keep-alive connection stays open.
    pub header_timeout: Duration,
    /// HTTP: a request must be read and answered within this, else 408 RequestTimeout.
    pub request_timeout: Duration,
    /// SIGTERM: requests in flight get this long to finish; then every connection closes.
    pub shutdown_timeout: Duration,
    /// `[server.tls]`: HTTPS with this certificate and key, loaded at config time.
    pub tls: Option<TlsFiles>,
}

/// `[server.tls]`: the PEM files and the rustls config made from them.
#[derive(Clone)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    pub config: std::sync::Arc<rustls::ServerConfig>,
    /// The certificate's dates, for the start's warning when it is not valid now.
    pub valid: crate::server::tls::Validity,
}

impl fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TlsFiles {{ cert: {:?}, key: {:?} }}",
            self.cert, self.key
        )
    }
}

/// `[limits]`; 0 (off) is `None`.
/// `[events]`: every lifecycle event is posted to `url`, signed with `secret`.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    pub url: reqwest::Url,
    pub secret: Secret,
}

/// `[limits]` as far as this build acts on it.
#[derive(Debug, Clone, Default)]
pub struct LimitsConfig {
    /// Per client, a token bucket holding two seconds' worth.
    pub requests_per_second: Option<std::num::NonZeroU32>,
    /// Live reservations one client may hold at once, in all groups.
    pub reservations_per_client: Option<u64>,
    /// Live sessions in the store.
    pub max_sessions: Option<u64>,
    /// Bytes of live session fields and storage entries in the store.
    pub max_storage_bytes: Option<u64>,
    /// Behind a trusted proxy: the header whose first address names the client
    /// (`x-forwarded-for`); `None` uses the connection's peer address.
    pub client_ip_header: Option<axum::http::HeaderName>,
}

/// The environment variables that give credentials, per config section, as
/// `(section, username variable, password variable)`. They beat the file, key by key.
pub const CREDENTIAL_ENV: [(&str, &str, &str); 3] = [
    (
        "auth",
        "ACCESS_BROKER_AUTH_USERNAME",
        "ACCESS_BROKER_AUTH_PASSWORD",
    ),
    (
        "auth.admin",
        "ACCESS_BROKER_ADMIN_USERNAME",
        "ACCESS_BROKER_ADMIN_PASSWORD",
    ),
    (
        "auth.metrics",
        "ACCESS_BROKER_METRICS_USERNAME",
        "ACCESS_BROKER_METRICS_PASSWORD",
    ),
];

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Credentials {{ username: {:?}, password: *** }}",
            self.username
        )
    }
}

/// A password: `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A config problem, in one line: `file: key: reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {key}{sep}{reason}", sep = if key.is_empty() { "" } else { ": " })]
pub struct ConfigError {
    pub origin: String,
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(origin: &str, key: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self {
            origin: origin.to_owned(),
            key: key.into(),
            reason: reason.to_string(),
        }
    }
}

/// Warnings a valid config may carry (GMS options access-broker does not act on).
pub type Warnings = Vec<String>;

impl Config {
    /// The built-in demo config.
    pub fn demo() -> Config {
        match Self::from_toml(DEMO_TOML, "built-in demo config") {
            Ok((config, _)) => config,
            Err(err) => unreachable!("the demo config is valid: {err}"),
        }
    }

    /// Loads a config file, or the demo config when `file` is `None`.
    pub fn load(file: Option<&Path>) -> Result<(Config, Warnings), ConfigError> {
        let Some(path) = file else {
            return Ok((Self::demo(), Vec::new()));
        };
        if path.as_os_str().is_empty() {
            return Err(ConfigError::new(
                "--config",
                "",
                "the config file's path is empty",
            ));
        }
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&origin, "", format!("cannot read: {e}")))?;
        Self::from_toml_in(&text, &origin, path.parent())
    }

    /// Parses and validates TOML text; `origin` names it in errors (usually the file path).
    /// A relative `password_file` is read from the current folder.
    pub fn from_toml(text: &str, origin: &str) -> Result<(Config, Warnings), ConfigError> {
        Self::from_toml_in(text, origin, None)
    }

    /// As [`Config::from_toml`], with relative `password_file` paths read from `base`
    /// (the config file's folder).
    pub fn from_toml_in(
        text: &str,
        origin: &str,
        base: Option<&Path>,
    ) -> Result<(Config, Warnings), ConfigError> {
        let raw: raw::RawConfig =
            toml::from_str(text).map_err(|e| build::toml_error(origin, text, &e))?;
        build::build(raw, origin, base)
    }

    /// Applies the credential variables of [`CREDENTIAL_ENV`] (read through `env`, so tests
    /// need not touch the process environment) over the file: each variable beats its key,
    /// and a section they complete or create must end up with both a username and a password.
    /// An empty variable counts as unset.
    pub fn with_env_credentials(
        mut self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        for (section, user_var, password_var) in CREDENTIAL_ENV {
            let slot = match section {
                "auth" => &mut self.auth,
                "auth.admin" => &mut self.admin_auth,
                _ => &mut self.metrics_auth,
            };
            let user = env(user_var).filter(|v| !v.is_empty());
            let password = env(password_var).filter(|v| !v.is_empty());
            if user.is_none() && password.is_none() {
                continue;
            }
            let user = user.or_else(|| slot.as_ref().map(|c| c.username.clone()));
            let password = password
                .map(Secret::new)
                .or_else(|| slot.as_ref().map(|c| c.password.clone()));
            match (user, password) {
                (Some(username), Some(_)) if username.contains(':') => {
                    return Err(ConfigError::new(
                        "environment",
                        user_var,
                        "must not contain ':' (HTTP Basic ends the user name there)",
                    ));
                }
                (Some(username), Some(password)) => {
                    *slot = Some(Credentials { username, password });
                }
                (None, _) => {
                    return Err(ConfigError::new(
                        "environment",
                        password_var,
                        format!("set, but [{section}] has no username: set {user_var} too"),
                    ));
                }
                (_, None) => {
                    return Err(ConfigError::new(
                        "environment",
                        user_var,
                        format!("set, but [{section}] has no password: set {password_var} too"),
                    ));
                }
            }
        }
        Ok(self)
    }

    /// Applies `--listen` / `--store` (or their environment variables) over the file.
    pub fn with_overrides(
        mut self,
        listen: Option<&str>,
        store: Option<&str>,
    ) -> Result<Config, ConfigError> {
        if let Some(l) = listen {
            self.server.listen = l.parse().map_err(|_| {
                ConfigError::new(
                    "--listen (ACCESS_BROKER_LISTEN)",
                    "",
                    format!("{l:?} is not an address such as 127.0.0.1:8080"),
                )
            })?;
        }
        if let Some(s) = store {
            self.server.store = s
                .parse()
                .map_err(|e| ConfigError::new("--store (ACCESS_BROKER_STORE)", "", e))?;
        }
        Ok(self)
    }
}

/// What `check-config` prints: each group with its size, then the services.
pub fn check_config_report(config: &Config) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "store {}  listen {}  node {}\n",
        config.server.store, config.server.listen, config.server.node_id
    ));
    for g in &config.groups {
        let timeout = g
            .settings
            .booking_timeout
            .map_or("default 30 s".to_owned(), |t| format!("{} s", t.secs()));
        let size = g.numbers.len();
        out.push_str(&format!(
            "group {}: {size} number{}, {}, booking {timeout}\n",
            g.settings.name,
            if size == 1 { "" } else { "s" },
            g.settings.allocation
        ));
    }
    for (name, s) in &config.services {
        out.push_str(&format!("service {name}: {}\n", s.kind.as_str()));
    }
    out
}

/// Defaults for keys a config may leave out.
pub(crate) mod defaults {
    pub const LISTEN: &str = "127.0.0.1:8080";
    pub const STORE: &str = "sqlite://data/access-broker.db";
    pub const MAX_BODY_BYTES: usize = 64 * 1024;
    pub const STORE_TIMEOUT_MS: u64 = 5_000;
    pub const STORE_MAX_CONNECTIONS: usize = 16;
    pub const MAX_CONNECTIONS: usize = 10_000;
    pub const HEADER_TIMEOUT_MS: u64 = 10_000;
    pub const REQUEST_TIMEOUT_MS: u64 = 30_000;
    pub const SHUTDOWN_TIMEOUT_MS: u64 = 10_000;
}

#[allow(dead_code)]
fn _assert_types(_: BookingTimeout, _: CodeLength, _: SessionTtl, _: GroupName) {}

#[cfg(test)]
mod tests;
