//! The config file's shape as serde reads it: every table rejects unknown keys. Service
//! tables stay raw TOML here because GMS option names vary; `services.rs` reads them.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    pub auth: Option<RawAuth>,
    pub limits: Option<RawLimits>,
    pub events: Option<RawEvents>,
    #[serde(default)]
    pub resource_groups: toml::Table,
    #[serde(default)]
    pub services: BTreeMap<String, toml::Table>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub store: Option<String>,
    pub node_id: Option<String>,
    pub access_code_prefix: Option<String>,
    pub max_body_bytes: Option<i64>,
    pub store_timeout_ms: Option<i64>,
    /// HTTP connections served at once (the contract's `max_connections`).
    pub max_connections: Option<i64>,
    /// PostgreSQL connections this node holds.
    pub store_max_connections: Option<i64>,
    pub sqlite_synchronous: Option<String>,
    pub header_timeout_ms: Option<i64>,
    pub request_timeout_ms: Option<i64>,
    pub shutdown_timeout_ms: Option<i64>,
    pub tls: Option<RawTls>,
}

/// `[server.tls]`: PEM files for HTTPS.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: Option<String>,
    pub key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub admin: Option<RawCredentials>,
    pub metrics: Option<RawCredentials>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredentials {
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
}

/// `[limits]`: every key the contract lists, so none is mistaken for a typo; 0 = off.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub requests_per_second: Option<i64>,
    pub reservations_per_client: Option<i64>,
    pub max_sessions: Option<i64>,
    pub max_storage_bytes: Option<i64>,
    pub client_ip_header: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    #[serde(default)]
    pub numbers: Vec<String>,
    pub allocation: Option<String>,
    pub booking_expiration_timeout: Option<toml::Value>,
    pub require_code: Option<toml::Value>,
    pub max_code_attempts: Option<toml::Value>,
    pub cool_down: Option<toml::Value>,
    pub late_match_grace: Option<toml::Value>,
    pub quarantine_after_stray_calls: Option<toml::Value>,
}

/// `[events]`: where lifecycle webhooks go and the key that signs them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvents {
    pub url: Option<String>,
    pub secret: Option<String>,
    pub secret_file: Option<String>,
}
