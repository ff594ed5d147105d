//! Configuration: the typed, validated config the rest of the program trusts.
//!
//! Layering: built-in defaults (the demo config when no file is given) → TOML file →
//! `ACCESS_BROKER_*` environment → flags. `raw.rs` holds the serde shapes (unknown keys
//! rejected); `build.rs` turns them into these types in one pass whose every error names the
//! file and the key. Loading writes nothing.

mod build;
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
    /// PostgreSQL: most connections this node opens.
    pub max_connections: usize,
    pub sqlite_synchronous: SqliteSync,
}

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
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&origin, "", format!("cannot read: {e}")))?;
        Self::from_toml(&text, &origin)
    }

    /// Parses and validates TOML text; `origin` names it in errors (usually the file path).
    pub fn from_toml(text: &str, origin: &str) -> Result<(Config, Warnings), ConfigError> {
        let raw: raw::RawConfig =
            toml::from_str(text).map_err(|e| build::toml_error(origin, text, &e))?;
        build::build(raw, origin)
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
        out.push_str(&format!(
            "group {}: {} numbers, {}, booking {timeout}\n",
            g.settings.name,
            g.numbers.len(),
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
    pub const MAX_CONNECTIONS: usize = 16;
}

#[allow(dead_code)]
fn _assert_types(_: BookingTimeout, _: CodeLength, _: SessionTtl, _: GroupName) {}
