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
mod tests {
    use super::*;

    fn load(text: &str) -> Result<(Config, Warnings), String> {
        Config::from_toml(text, "t.toml").map_err(|e| e.to_string())
    }

    const GROUP: &str = "[resource_groups.DNIS]\nnumbers = [\"100-109\"]\n";

    #[test]
    fn the_demo_config_loads() {
        let c = Config::demo();
        assert_eq!(c.groups.len(), 1);
        assert_eq!(c.groups[0].numbers.len(), 100);
        assert_eq!(c.groups[0].numbers[0].as_str(), "6504660000");
        let kinds: Vec<&str> = c.services.values().map(|s| s.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "session",
                "match-interaction",
                "request-access",
                "request-interaction"
            ]
        );
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.server.store.to_string(), "sqlite://data/access-broker.db");
    }

    #[test]
    fn every_bad_value_names_its_key() {
        let cases = [
            (
                "[resource_groups.DNIS]\nnumbers = [\"1\", \"1\"]\n",
                "resource_groups.DNIS.numbers[1]",
            ),
            (
                "[resource_groups.A]\nnumbers = [\"1\"]\n[resource_groups.B]\nnumbers = [\"0-5\"]\n",
                "resource_groups.B.numbers[0]",
            ),
            (
                "[resource_groups.DNIS]\nnumbers = []\n",
                "resource_groups.DNIS.numbers",
            ),
            (
                "[resource_groups.DNIS]\nnumbers = [\"1\"]\nallocation = \"LOCAL\"\n",
                "resource_groups.DNIS.allocation",
            ),
            (
                "[resource_groups.DNIS]\nnumbers = [\"1\"]\nbooking_expiration_timeout = 2000\n",
                "resource_groups.DNIS.booking_expiration_timeout",
            ),
            (
                "[resource_groups.DNIS]\nnumbers = [\"12-3\"]\n",
                "resource_groups.DNIS.numbers[0]",
            ),
            (
                "[resource_groups.DNIS]\nnumbers = [\"1\"]\ncolour = \"red\"\n",
                "resource_groups.DNIS",
            ),
            ("[server]\nnode_id = \"a-b\"\n", "server.node_id"),
            ("[events]\nsecret = \"k\"\n", "events.url"),
            (
                "[events]\nurl = \"ftp://x/\"\nsecret = \"k\"\n",
                "events.url",
            ),
            ("[events]\nurl = \"http://x/\"\n", "events.secret"),
            (
                "[events]\nurl = \"http://x/\"\nsecret = \"k\"\nretries = 3\n",
                "retries",
            ),
            ("[server]\nstore = \"redis://x\"\n", "server.store"),
            (
                "[server]\nsqlite_synchronous = \"off\"\n",
                "server.sqlite_synchronous",
            ),
            ("[server]\nmax_body_bytes = 0\n", "server.max_body_bytes"),
            (
                "[server]\naccess_code_prefix = \"123456\"\n",
                "server.access_code_prefix",
            ),
            ("[auth]\npassword = \"x\"\n", "auth"),
            ("[auth.admin]\nusername = \"x\"\n", "auth.admin"),
            (
                "[services.x]\n_resource_group = \"DNIS\"\n",
                "services.x.type",
            ),
            ("[services.x]\ntype = \"callback\"\n", "services.x.type"),
            (
                "[services.x]\ntype = \"request-access\"\n_resource_group = \"NOPE\"\n",
                "services.x._resource_group",
            ),
            (
                "[services.x]\ntype = \"request-access\"\n_access_code_length = 13\n",
                "services.x._access_code_length",
            ),
            (
                "[services.x]\ntype = \"request-access\"\n_provide_code = \"yes\"\n",
                "services.x._provide_code",
            ),
            (
                "[services.x]\ntype = \"session\"\n_ttl = 0\n",
                "services.x._ttl",
            ),
            (
                "[services.x]\ntype = \"session\"\nusername = \"u\"\n",
                "services.x",
            ),
            (
                "[services.x]\ntype = \"session\"\nbogus = 1\n",
                "services.x.bogus",
            ),
            (
                "[services.x]\n_type = \"builtin\"\n_service = \"nope\"\n",
                "services.x._service",
            ),
            (
                "[services.x]\n_type = \"buildin\"\n_service = \"request-access\"\n",
                "services.x._type",
            ),
            (
                "[services.x]\ntype = \"match-interaction\"\n_type = \"builtin\"\n_service = \"request-access\"\n",
                "services.x._service",
            ),
            (
                "[services.x]\ntype = \"session\"\n_service = \"request-access\"\n",
                "services.x._service",
            ),
            ("[auth]\n", "auth"),
            (
                "[auth]\nusername = \"u:v\"\npassword = \"x\"\n",
                "auth.username",
            ),
            ("[bogus]\nx = 1\n", "bogus"),
            (
                "[resource_groups.G]\nnumbers = \"200-209\"\n",
                "resource_groups.G.numbers:",
            ),
            (
                "[resource_groups.G]\nnumbers = [200]\n",
                "resource_groups.G.numbers[0]:",
            ),
            (
                "[resource_groups.G]\nnumbers = [\"200\"]\nallocation = 1\n",
                "resource_groups.G.allocation:",
            ),
        ];
        for (text, key) in cases {
            let text = format!("{GROUP}{text}").replacen(
                "[resource_groups.DNIS]\nnumbers = [\"100-109\"]\n[resource_groups.DNIS]",
                "[resource_groups.DNIS]",
                1,
            );
            let err = load(&text)
                .err()
                .unwrap_or_else(|| panic!("accepted: {text}"));
            assert!(
                err.starts_with("t.toml: ") && err.contains(key),
                "{key}: {err}"
            );
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn gms_configs_carry_over() {
        let text = format!(
            "{GROUP}[services.ra]\n_type = \"builtin\"\n_service = \"request-access\"\n_resource_group = \"DNIS\"\n_provide_code = \"true\"\n\
             _access_code_length = \"8\"\n_booking_expiration_timeout = \"\"\n_redirect = \"x\"\n_ttl = 60\n_phone_number = \"\"\n_id = \"\"\n\
             [services.ra2]\n_type = \"builtin\"\n_service = \"request-access\"\n_id = \"x\"\n"
        );
        let (c, warnings) = load(&text).expect("valid");
        let ra = &c.services.values().next().expect("service");
        assert_eq!(ra.kind, ServiceKind::RequestAccess);
        assert_eq!(c.services.len(), 2, "the seed's _id option loads");
        assert_eq!(ra.provide_code, Some(true));
        assert_eq!(ra.access_code_length.map(CodeLength::get), Some(8));
        assert_eq!(ra.booking_timeout, None, "an empty string is unset");
        assert_eq!(warnings.len(), 2, "one a service: {warnings:?}");
        assert!(
            warnings[0].contains("_redirect") && warnings[0].contains("_ttl"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].contains("services.ra2") && warnings[1].contains("_id"),
            "{warnings:?}"
        );
        assert!(
            !warnings[0].contains("_phone_number"),
            "an empty option is unset, not warned about: {warnings:?}"
        );
    }

    #[test]
    fn another_types_options_are_warned_about_not_read() {
        let text = format!(
            "{GROUP}[services.ra]
type = \"request-access\"
match_without_code = true
             [services.mi]
type = \"match-interaction\"
_ttl = 30
_provide_code = \"maybe\"
             [services.s]
type = \"session\"
_ttl = 60
"
        );
        let (c, warnings) = load(&text).expect("valid: a misplaced option is not a bad value");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        let ra = warnings.iter().find(|w| w.contains("services.ra"));
        assert!(
            ra.is_some_and(
                |w| w.contains("request-access service") && w.contains("match_without_code")
            ),
            "{warnings:?}"
        );
        let mi = warnings.iter().find(|w| w.contains("services.mi"));
        assert!(
            mi.is_some_and(|w| w.contains("_ttl") && w.contains("_provide_code")),
            "{warnings:?}"
        );
        let service = |n: &str| {
            c.services
                .iter()
                .find(|(name, _)| name.as_str() == n)
                .map(|(_, s)| s.clone())
                .expect("service")
        };
        assert!(!service("ra").match_without_code, "not acted on");
        assert_eq!(service("s").ttl.map(|t| t.secs()), Some(60));
    }

    #[test]
    fn overrides_beat_the_file_and_name_the_flag() {
        let (c, _) =
            load("[server]\nlisten = \"127.0.0.1:9000\"\nstore = \"memory://\"\n").expect("valid");
        assert_eq!(c.server.listen.port(), 9000);
        let c = c
            .with_overrides(Some("127.0.0.1:0"), Some("sqlite://x.db"))
            .expect("valid");
        assert_eq!(
            (c.server.listen.port(), c.server.store.to_string()),
            (0, "sqlite://x.db".to_owned())
        );
        let err = Config::demo()
            .with_overrides(Some("nowhere"), None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("--listen"), "{err}");
        let err = Config::demo()
            .with_overrides(None, Some("mysql://x"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("--store") && err.contains("mysql://x"),
            "{err}"
        );
    }

    #[test]
    fn a_password_file_gives_its_first_line_and_excludes_an_inline_password() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("pw"), "from-file\r\nsecond line\n").expect("write");
        let text = "[auth]\nusername = \"gms\"\npassword_file = \"pw\"\n\
                    [auth.admin]\nusername = \"ops\"\npassword_file = \"pw\"\n";
        let (c, _) = Config::from_toml_in(text, "t.toml", Some(dir.path())).expect("valid");
        let pw = |c: &Option<Credentials>| c.as_ref().map(|c| c.password.expose().to_owned());
        assert_eq!(pw(&c.auth).as_deref(), Some("from-file"));
        assert_eq!(pw(&c.admin_auth).as_deref(), Some("from-file"));
        let cases = [
            (
                "[auth]\nusername = \"u\"\npassword = \"p\"\npassword_file = \"pw\"\n",
                "auth.password_file",
            ),
            (
                "[auth.metrics]\nusername = \"u\"\npassword_file = \"missing\"\n",
                "auth.metrics.password_file",
            ),
            (
                "[services.x]\ntype = \"session\"\nusername = \"u\"\npassword = \"p\"\npassword_file = \"pw\"\n",
                "services.x.password_file",
            ),
        ];
        for (text, key) in cases {
            let err = Config::from_toml_in(text, "t.toml", Some(dir.path()))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| panic!("accepted: {text}"));
            assert!(err.contains(key), "{key}: {err}");
        }
        let err = load("[auth]\nusername = \"u\"\npassword_file = \"/no/such/pw\"\n")
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("/no/such/pw") && err.contains("auth.password_file"),
            "{err}"
        );
        let (c, _) = Config::from_toml_in(
            "[services.x]\ntype = \"session\"\nusername = \"u\"\npassword_file = \"pw\"\n",
            "t.toml",
            Some(dir.path()),
        )
        .expect("valid");
        let creds = c
            .services
            .values()
            .next()
            .and_then(|s| s.credentials.clone());
        assert_eq!(pw(&creds).as_deref(), Some("from-file"));
    }

    #[test]
    fn credential_variables_beat_the_file_key_by_key() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let (c, _) = load("[auth]\nusername = \"gms\"\npassword = \"file\"\n").expect("valid");
        let c = c
            .with_env_credentials(env(&[("ACCESS_BROKER_AUTH_PASSWORD", "env")]))
            .expect("valid");
        let auth = c.auth.expect("auth");
        assert_eq!(
            (auth.username.as_str(), auth.password.expose()),
            ("gms", "env")
        );
        let c = Config::demo()
            .with_env_credentials(env(&[
                ("ACCESS_BROKER_ADMIN_USERNAME", "ops"),
                ("ACCESS_BROKER_ADMIN_PASSWORD", "s3"),
                ("ACCESS_BROKER_METRICS_USERNAME", ""),
            ]))
            .expect("valid");
        assert!(c.auth.is_none() && c.metrics_auth.is_none());
        assert_eq!(c.admin_auth.map(|a| a.username), Some("ops".to_owned()));
        let err = Config::demo()
            .with_env_credentials(env(&[("ACCESS_BROKER_METRICS_USERNAME", "prom")]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("ACCESS_BROKER_METRICS_PASSWORD"), "{err}");
        assert!(
            !format!(
                "{:?}",
                Config::demo().with_env_credentials(env(&[
                    ("ACCESS_BROKER_AUTH_USERNAME", "u"),
                    ("ACCESS_BROKER_AUTH_PASSWORD", "hunter2"),
                ]))
            )
            .contains("hunter2")
        );
    }

    #[test]
    fn limits_and_server_limits_parse() {
        let (c, _) = load("[limits]\nrequests_per_second = 0\nreservations_per_client = 0\nmax_sessions = 0\nmax_storage_bytes = 0\nclient_ip_header = \"X-Forwarded-For\"\n")
            .expect("valid");
        assert_eq!(
            c.limits.client_ip_header.as_ref().map(|h| h.as_str()),
            Some("x-forwarded-for")
        );
        assert!(c.limits.requests_per_second.is_none() && c.limits.max_sessions.is_none());
        let (c, _) = load("[limits]\nrequests_per_second = 10\nreservations_per_client = 2\nmax_sessions = 1000\nmax_storage_bytes = 1\n")
            .expect("valid");
        assert_eq!(c.limits.requests_per_second.map(|n| n.get()), Some(10));
        assert_eq!(c.limits.reservations_per_client, Some(2));
        assert_eq!(c.limits.max_sessions, Some(1000));
        assert_eq!(c.limits.max_storage_bytes, Some(1));
        let (c, _) = load("[limits]\nclient_ip_header = \"\"\n").expect("valid");
        assert!(c.limits.client_ip_header.is_none());
        let (c, _) = load("").expect("valid");
        let s = &c.server;
        assert_eq!((s.max_connections, s.store_max_connections), (10_000, 16));
        assert_eq!(
            (
                s.header_timeout.as_millis(),
                s.request_timeout.as_millis(),
                s.shutdown_timeout.as_millis()
            ),
            (10_000, 30_000, 10_000)
        );
        assert!(s.tls.is_none());
        for (text, key) in [
            ("header_timeout_ms = 0", "server.header_timeout_ms"),
            ("request_timeout_ms = -5", "server.request_timeout_ms"),
            ("max_connections = 0", "server.max_connections"),
            // Each accepted before and failed after start (panic, abort, 503 for ever).
            (
                "max_connections = 2305843009213693952",
                "server.max_connections",
            ),
            (
                "store_max_connections = 1099511627776",
                "server.store_max_connections",
            ),
            ("store_timeout_ms = 2147483648", "server.store_timeout_ms"),
            (
                "max_body_bytes = 9223372036854775807",
                "server.max_body_bytes",
            ),
        ] {
            let err = load(&format!("[server]\n{text}\n"))
                .err()
                .unwrap_or_default();
            assert!(err.contains(key), "{text}: {err}");
        }
        for (text, key, says) in [
            (
                "requests_per_second = 5000000000",
                "limits.requests_per_second",
                "at most",
            ),
            (
                "max_sessions = -1",
                "limits.max_sessions",
                "0 (off) or more",
            ),
            (
                "client_ip_header = \"x forwarded\"",
                "limits.client_ip_header",
                "not a header name",
            ),
            ("burst = 3", "limits.burst", "unknown key"),
        ] {
            let err = load(&format!("[limits]\n{text}\n"))
                .err()
                .unwrap_or_default();
            assert!(err.contains(key) && err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let (c, _) = load("[auth]\nusername = \"gms\"\npassword = \"hunter2\"\n").expect("valid");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    /// A password or secret of the wrong type is named, not quoted: serde quotes the value.
    #[test]
    fn a_secret_of_the_wrong_type_is_not_echoed() {
        for text in [
            "[auth]\nusername = \"gms\"\npassword = 12345678\n",
            "[events]\nurl = \"http://127.0.0.1:9/\"\nsecret = 42424242\n",
        ] {
            let err = load(text).expect_err("a number is no password");
            assert!(err.contains("not a string"), "{err}");
            assert!(
                !err.contains("12345678") && !err.contains("42424242"),
                "{err}"
            );
        }
    }

    /// A webhook URL that does not parse is quoted without its query or user-info (a token
    /// or password there was printed on exit 2).
    #[test]
    fn a_bad_events_url_is_quoted_without_its_secrets() {
        for url in [
            "http://u:TOKB6@127.0.0.1:99999/ev",
            "http://127.0.0.1:99999/ev?token=TOKB4",
        ] {
            let err = load(&format!("[events]\nurl = \"{url}\"\nsecret = \"k\"\n"))
                .err()
                .unwrap_or_default();
            assert!(
                err.contains("events.url") && err.contains("127.0.0.1"),
                "{err}"
            );
            assert!(!err.contains("TOKB"), "{err}");
        }
    }
}
