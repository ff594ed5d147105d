//! One validation pass from the raw shapes to the typed config. Every error names the file
//! and the key path, e.g. `demo.toml: resource_groups.DNIS.numbers[1]: range "9-1": …`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{RawConfig, RawCredentials, RawGroup, RawLimits};
use super::services::{self, ServiceKind};
use super::{
    Config, ConfigError, Credentials, EventsConfig, LimitsConfig, Secret, ServerConfig, Warnings,
    defaults,
};
use crate::domain::{
    AccessNumber, Allocation, BookingTimeout, CodeLength, CodePrefix, GroupName, NodeId,
    NumberSpec, ServiceName,
};
use crate::store::{GroupSettings, GroupSpec, SqliteSync};

/// The file being read, for error messages.
pub struct Cx<'a> {
    pub origin: &'a str,
    /// The config file's folder: a relative `password_file` is read from there.
    pub base: Option<&'a Path>,
}

impl Cx<'_> {
    /// A path from the config file, relative to the file's folder.
    fn resolve(&self, path: &str) -> PathBuf {
        match self.base {
            Some(base) if Path::new(path).is_relative() => base.join(path),
            _ => PathBuf::from(path),
        }
    }

    pub fn err(&self, key: impl Into<String>, reason: impl std::fmt::Display) -> ConfigError {
        ConfigError::new(self.origin, key, reason)
    }

    /// A scalar option as text (GMS configs write `"true"` and `"30"` as strings); an empty
    /// string counts as unset.
    pub fn scalar(
        &self,
        key: &str,
        value: Option<&toml::Value>,
    ) -> Result<Option<String>, ConfigError> {
        match value {
            None => Ok(None),
            Some(toml::Value::String(s)) if s.is_empty() => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(toml::Value::Integer(i)) => Ok(Some(i.to_string())),
            Some(toml::Value::Boolean(b)) => Ok(Some(b.to_string())),
            Some(other) => Err(self.err(
                key,
                format!(
                    "expected a string, integer or boolean, found {}",
                    other.type_str()
                ),
            )),
        }
    }
}

/// A TOML syntax or shape error, on one line with its line number. An unknown key (serde's
/// `unknown field`) is named by its full path, e.g. `server.lisen (line 2)`, found from the
/// error's span and the table header above it.
pub fn toml_error(origin: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let line = e.span().map(|s| {
        text.as_bytes()[..s.start.min(text.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    });
    let place = line.map_or(String::new(), |l| format!("line {l}"));
    let message = e.message().replace('\n', " ");
    if let (Some(span), Some(line)) = (e.span(), line)
        && let Some((_, expected)) = unknown_field(&message)
        && let Some(path) = key_path_at(text, span)
    {
        return ConfigError::new(
            origin,
            format!("{path} (line {line})"),
            format!("unknown key; {expected}"),
        );
    }
    // A value of the wrong shape (`shutdown_timeout_ms = "abc"`): the span is the value's,
    // so the key is the one before the `=` on its line.
    if let (Some(span), Some(line)) = (e.span(), line)
        && let Some(key) = key_before_value(text, span.start)
        && let Some(path) = key_path_at(text, key)
    {
        let message = match path.rsplit('.').next() {
            // serde quotes the value (`invalid type: integer `12345678``): not a secret's.
            Some("password" | "secret") => "not a string (the value is not shown)".to_owned(),
            _ => message,
        };
        return ConfigError::new(origin, format!("{path} (line {line})"), message);
    }
    ConfigError::new(origin, place, message)
}

/// The span of the key whose value starts at `at`: `key = value` on one line.
fn key_before_value(text: &str, at: usize) -> Option<std::ops::Range<usize>> {
    let start = text.get(..at)?.rfind('\n').map_or(0, |i| i + 1);
    let (lhs, _) = text.get(start..at)?.split_once('=')?;
    let lead = lhs.len() - lhs.trim_start().len();
    // The last dotted part is the key; `key_path_at` adds the parts before it.
    let key_start = lhs.rfind('.').map_or(lead, |i| i + 1);
    if lhs[key_start..].trim().is_empty() {
        return None;
    }
    Some(start + key_start..start + lhs.trim_end().len())
}

/// The dotted path of the key at `span`: the last `[table]` header before it, any dotted
/// keys before it on its line (`server.lisen = 1`), then the key itself.
fn key_path_at(text: &str, span: std::ops::Range<usize>) -> Option<String> {
    let key = text.get(span.clone())?.trim().trim_matches(['"', '\'']);
    if key.is_empty() || key.contains(['\n', '=', '[', ']']) {
        return None;
    }
    let before = text.get(..span.start)?;
    let (earlier, line) = before.rsplit_once('\n').unwrap_or(("", before));
    let dotted = |s: &str| -> Vec<String> {
        s.split('.')
            .map(|k| k.trim().trim_matches(['"', '\'']).to_owned())
            .filter(|k| !k.is_empty())
            .collect()
    };
    let mut path = match line.trim_start().strip_prefix('[') {
        // The key sits in a header: `[server.tls]` or `[[x]]`.
        Some(header) => dotted(header.trim_start_matches('[')),
        None => {
            let mut path = earlier
                .lines()
                .rev()
                .find_map(|l| {
                    let l = l.trim().strip_prefix('[')?;
                    Some(dotted(l.trim_start_matches('[').split(']').next()?))
                })
                .unwrap_or_default();
            path.extend(dotted(line));
            path
        }
    };
    path.push(key.to_owned());
    Some(path.join("."))
}

/// serde's `unknown field `x`, expected one of `a`, `b`` as (`x`, `expected one of a, b`).
pub fn unknown_field(message: &str) -> Option<(String, String)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, expected) = rest.split_once('`')?;
    let expected = expected.trim_start_matches(',').trim().replace('`', "");
    Some((field.to_owned(), expected))
}

pub fn credentials(
    cx: &Cx,
    section: &str,
    username: Option<String>,
    password: Option<Secret>,
) -> Result<Option<Credentials>, ConfigError> {
    match (username, password) {
        (None, None) => Ok(None),
        // HTTP Basic splits the user from the password at the first colon: such a name
        // could never log in.
        (Some(username), Some(_)) if username.contains(':') => Err(cx.err(
            format!("{section}.username"),
            "must not contain ':' (HTTP Basic ends the user name there)",
        )),
        (Some(username), Some(password)) => Ok(Some(Credentials { username, password })),
        _ => Err(cx.err(section, "username and password must both be set")),
    }
}

/// A section's password: `password` inline or `password_file` (its first line), exactly one.
/// An empty inline value counts as unset, as everywhere in the file.
pub fn password(
    cx: &Cx,
    section: &str,
    value: Option<String>,
    file: Option<String>,
) -> Result<Option<Secret>, ConfigError> {
    let value = value.filter(|s| !s.is_empty());
    let file = file.filter(|s| !s.is_empty());
    match (value, file) {
        (Some(_), Some(_)) => Err(cx.err(
            format!("{section}.password_file"),
            format!("{section}.password is set too; give the password or the file, not both"),
        )),
        (Some(value), None) => Ok(Some(Secret::new(value))),
        (None, Some(file)) => read_secret(cx, &format!("{section}.password_file"), &file).map(Some),
        (None, None) => Ok(None),
    }
}

/// The first line of a secret file, without its line ending; never echoed in errors.
fn read_secret(cx: &Cx, key: &str, file: &str) -> Result<Secret, ConfigError> {
    let path = cx.resolve(file);
    let bytes = std::fs::read(&path)
        .map_err(|e| cx.err(key, format!("cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| cx.err(key, format!("{} is not UTF-8 text", path.display())))?;
    let first = text.split('\n').next().unwrap_or_default();
    let first = first.strip_suffix('\r').unwrap_or(first);
    if first.is_empty() {
        return Err(cx.err(key, format!("{}: the first line is empty", path.display())));
    }
    Ok(Secret::new(first))
}

fn raw_credentials(
    cx: &Cx,
    section: &str,
    raw: Option<RawCredentials>,
) -> Result<Option<Credentials>, ConfigError> {
    let raw = raw.unwrap_or_default();
    let password = password(cx, section, raw.password, raw.password_file)?;
    credentials(
        cx,
        section,
        raw.username.filter(|s| !s.is_empty()),
        password,
    )
}

/// `[limits]`: each limit is off at 0 (or absent) and enforced otherwise.
fn limits(cx: &Cx, raw: Option<RawLimits>) -> Result<LimitsConfig, ConfigError> {
    let raw = raw.unwrap_or_default();
    let count = |key: &str, value: Option<i64>| -> Result<Option<u64>, ConfigError> {
        match value {
            None | Some(0) => Ok(None),
            Some(n) if n < 0 => Err(cx.err(
                format!("limits.{key}"),
                format!("{n}: must be 0 (off) or more"),
            )),
            Some(n) => Ok(Some(n as u64)),
        }
    };
    let requests_per_second = match count("requests_per_second", raw.requests_per_second)? {
        None => None,
        Some(n) => Some(
            u32::try_from(n)
                .ok()
                .and_then(std::num::NonZeroU32::new)
                .ok_or_else(|| {
                    cx.err(
                        "limits.requests_per_second",
                        format!("{n}: at most {}", u32::MAX),
                    )
                })?,
        ),
    };
    let reservations_per_client = count("reservations_per_client", raw.reservations_per_client)?;
    let max_sessions = count("max_sessions", raw.max_sessions)?;
    let max_storage_bytes = count("max_storage_bytes", raw.max_storage_bytes)?;
    let client_ip_header = match raw.client_ip_header.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(h) => Some(
            axum::http::HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).map_err(
                |_| {
                    cx.err(
                        "limits.client_ip_header",
                        format!("{h:?} is not a header name"),
                    )
                },
            )?,
        ),
    };
    Ok(LimitsConfig {
        requests_per_second,
        reservations_per_client,
        max_sessions,
        max_storage_bytes,
        client_ip_header,
    })
}

/// A webhook URL as an error may quote it: a query may carry a token and a user-info a
/// password, so both are left out (`…`).
fn url_without_secrets(url: &str) -> String {
    let mut shown = match url.find(['?', '#']) {
        Some(at) => format!("{}?…", &url[..at]),
        None => url.to_owned(),
    };
    let from = shown.find("://").map_or(0, |i| i + 3);
    let authority_end = shown[from..]
        .find(['/', '?'])
        .map_or(shown.len(), |i| from + i);
    if let Some(at) = shown[from..authority_end].rfind('@') {
        shown.replace_range(from..from + at + 1, "…@");
    }
    shown
}

/// `[events]`: an http(s) URL and a secret (inline or `secret_file`, like passwords), both
/// required: an unsigned webhook could not be told from a forged one.
fn events(
    cx: &Cx,
    raw: Option<super::raw::RawEvents>,
) -> Result<Option<EventsConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let url = raw
        .url
        .filter(|u| !u.is_empty())
        .ok_or_else(|| cx.err("events.url", "missing: the URL events are posted to"))?;
    let url = reqwest::Url::parse(&url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            let shown = url_without_secrets(&url);
            cx.err("events.url", format!("{shown:?} is not an http(s) URL"))
        })?;
    let secret = match (
        raw.secret.filter(|s| !s.is_empty()),
        raw.secret_file.filter(|s| !s.is_empty()),
    ) {
        (Some(_), Some(_)) => {
            return Err(cx.err(
                "events.secret_file",
                "events.secret is set too; give the secret or the file, not both",
            ));
        }
        (Some(value), None) => Secret::new(value),
        (None, Some(file)) => read_secret(cx, "events.secret_file", &file)?,
        (None, None) => {
            return Err(cx.err(
                "events.secret",
                "missing: the key that signs every delivery",
            ));
        }
    };
    Ok(Some(EventsConfig { url, secret }))
}

pub fn build(
    raw: RawConfig,
    origin: &str,
    base: Option<&Path>,
) -> Result<(Config, Warnings), ConfigError> {
    let cx = Cx { origin, base };
    let mut warnings = Vec::new();
    let server = server(&cx, raw.server)?;
    let limits = limits(&cx, raw.limits)?;
    // An `[auth]` table that sets nothing would read as "guarded" and guard nothing.
    let empty_auth = raw.auth.as_ref().is_some_and(|a| {
        let unset = |v: &Option<String>| v.as_deref().is_none_or(str::is_empty);
        unset(&a.username)
            && unset(&a.password)
            && unset(&a.password_file)
            && a.admin.is_none()
            && a.metrics.is_none()
    });
    if empty_auth {
        return Err(cx.err("auth", "sets no credentials; give username and password, or remove the table (ACCESS_BROKER_AUTH_USERNAME and _PASSWORD need none)"));
    }
    let auth = raw.auth.unwrap_or_default();
    let admin_auth = raw_credentials(&cx, "auth.admin", auth.admin)?;
    let metrics_auth = raw_credentials(&cx, "auth.metrics", auth.metrics)?;
    let auth = raw_credentials(
        &cx,
        "auth",
        Some(RawCredentials {
            username: auth.username,
            password: auth.password,
            password_file: auth.password_file,
        }),
    )?;
    let events = events(&cx, raw.events)?;
    let groups = groups(&cx, raw.resource_groups)?;
    let mut services = BTreeMap::new();
    for (name, table) in &raw.services {
        let service_name =
            ServiceName::parse(name).map_err(|e| cx.err(format!("services.{name}"), e))?;
        let service = services::parse(&cx, name, table, &mut warnings)?;
        if let Some(group) = &service.resource_group
            && !groups.iter().any(|g| g.settings.name == *group)
        {
            return Err(cx.err(
                format!("services.{name}._resource_group"),
                format!("unknown resource group {:?}", group.as_str()),
            ));
        }
        services.insert(service_name, service);
    }
    check_prefix(&cx, &server.access_code_prefix, &services)?;
    if let Some(tls) = &server.tls
        && let Some(warning) = tls.valid.warning(&tls.cert, std::time::SystemTime::now())
    {
        warnings.push(warning);
    }
    if services.is_empty() {
        // Not an error: the storage and admin APIs work without services, and a node may
        // be started only to serve them. But it is almost always a forgotten section.
        warnings.push(format!(
            "{origin}: no [services.*] table: request-access, match-interaction and sessions \
             answer 404 ServiceNotFound; only the storage and admin APIs serve"
        ));
    }
    Ok((
        Config {
            server,
            auth,
            admin_auth,
            metrics_auth,
            limits,
            events,
            groups,
            services,
        },
        warnings,
    ))
}

/// `[server]` ceilings: 1 GiB bodies; a timeout of 24 h; the connections one process serves
/// or holds to PostgreSQL (whose own `max_connections` cannot pass 262,143).
const MAX_BODY_BYTES: u64 = 1 << 30;
const MAX_TIMEOUT_MS: u64 = 24 * 3600 * 1000;
const MAX_CONNECTIONS: u64 = 1_000_000;
const MAX_STORE_CONNECTIONS: u64 = 10_000;

fn server(cx: &Cx, raw: super::raw::RawServer) -> Result<ServerConfig, ConfigError> {
    let listen = raw.listen.unwrap_or_else(|| defaults::LISTEN.into());
    let store = raw.store.unwrap_or_else(|| defaults::STORE.into());
    // Each number has a ceiling, so that no value the file accepts fails later: a semaphore
    // of more than 2^61 permits panicked after "listening", a pool of 2^40 connections
    // aborted allocating it, a PostgreSQL `statement_timeout` past 2^31 - 1 ms was refused at
    // every connect (503 for ever).
    let positive =
        |key: &str, v: Option<i64>, default: u64, max: u64| -> Result<u64, ConfigError> {
            match v {
                None => Ok(default),
                Some(n) if n > 0 && n as u64 <= max => Ok(n as u64),
                Some(n) if n > 0 => Err(cx.err(
                    format!("server.{key}"),
                    format!("{n} is more than the most allowed, {max}"),
                )),
                Some(n) => Err(cx.err(format!("server.{key}"), format!("{n} must be positive"))),
            }
        };
    Ok(ServerConfig {
        listen: listen.parse().map_err(|_| {
            cx.err(
                "server.listen",
                format!("{listen:?} is not an address such as 127.0.0.1:8080"),
            )
        })?,
        store: store.parse().map_err(|e| cx.err("server.store", e))?,
        node_id: match raw.node_id {
            Some(id) => NodeId::parse(&id).map_err(|e| cx.err("server.node_id", e))?,
            None => NodeId::default(),
        },
        access_code_prefix: CodePrefix::parse(raw.access_code_prefix.as_deref().unwrap_or(""))
            .map_err(|e| cx.err("server.access_code_prefix", e))?,
        max_body_bytes: positive(
            "max_body_bytes",
            raw.max_body_bytes,
            defaults::MAX_BODY_BYTES as u64,
            MAX_BODY_BYTES,
        )? as usize,
        store_timeout: Duration::from_millis(positive(
            "store_timeout_ms",
            raw.store_timeout_ms,
            defaults::STORE_TIMEOUT_MS,
            MAX_TIMEOUT_MS,
        )?),
        store_max_connections: positive(
            "store_max_connections",
            raw.store_max_connections,
            defaults::STORE_MAX_CONNECTIONS as u64,
            MAX_STORE_CONNECTIONS,
        )? as usize,
        max_connections: positive(
            "max_connections",
            raw.max_connections,
            defaults::MAX_CONNECTIONS as u64,
            MAX_CONNECTIONS,
        )? as usize,
        header_timeout: Duration::from_millis(positive(
            "header_timeout_ms",
            raw.header_timeout_ms,
            defaults::HEADER_TIMEOUT_MS,
            MAX_TIMEOUT_MS,
        )?),
        request_timeout: Duration::from_millis(positive(
            "request_timeout_ms",
            raw.request_timeout_ms,
            defaults::REQUEST_TIMEOUT_MS,
            MAX_TIMEOUT_MS,
        )?),
        shutdown_timeout: Duration::from_millis(positive(
            "shutdown_timeout_ms",
            raw.shutdown_timeout_ms,
            defaults::SHUTDOWN_TIMEOUT_MS,
            MAX_TIMEOUT_MS,
        )?),
        tls: match raw.tls {
            None => None,
            Some(tls) => Some(tls_files(cx, tls)?),
        },
        sqlite_synchronous: match raw.sqlite_synchronous.as_deref() {
            None | Some("full") => SqliteSync::Full,
            Some("normal") => SqliteSync::Normal,
            Some(other) => {
                return Err(cx.err(
                    "server.sqlite_synchronous",
                    format!("{other:?}: expected \"full\" or \"normal\""),
                ));
            }
        },
    })
}

/// `[server.tls]`: both files named and readable as PEM, else an error naming the key.
fn tls_files(cx: &Cx, raw: super::raw::RawTls) -> Result<super::TlsFiles, ConfigError> {
    let path = |key: &str, v: Option<String>| match v.filter(|s| !s.trim().is_empty()) {
        Some(p) => Ok(cx.resolve(&p)),
        None => Err(cx.err(
            format!("server.tls.{key}"),
            "required: [server.tls] needs both cert and key (PEM files)",
        )),
    };
    let cert = path("cert", raw.cert)?;
    let key = path("key", raw.key)?;
    let (config, valid) = crate::server::tls::server_config(&cert, &key)
        .map_err(|(which, reason)| cx.err(format!("server.tls.{which}"), reason))?;
    Ok(super::TlsFiles {
        cert,
        key,
        config,
        valid,
    })
}

fn groups(cx: &Cx, raw: toml::Table) -> Result<Vec<GroupSpec>, ConfigError> {
    let mut out = Vec::new();
    // Which `numbers` entry each number came from, per group, for the listed-twice check.
    let mut sources: Vec<Vec<u32>> = Vec::new();
    for (name, value) in raw {
        let key = format!("resource_groups.{name}");
        let group = serde_path_to_error::deserialize::<_, RawGroup>(value).map_err(|e| {
            let at = match e.path().to_string() {
                path if path == "." => key.clone(),
                path => format!("{key}.{path}"),
            };
            let e = e.into_inner();
            match unknown_field(e.message()) {
                Some((field, expected)) => {
                    cx.err(format!("{key}.{field}"), format!("unknown key; {expected}"))
                }
                None => cx.err(&at, e.message().replace('\n', " ")),
            }
        })?;
        let group_name = GroupName::parse(&name).map_err(|e| cx.err(&key, e))?;
        let allocation = match group.allocation.as_deref() {
            None | Some("") => Allocation::RoundRobin,
            Some(a) => a
                .parse()
                .map_err(|e| cx.err(format!("{key}.allocation"), e))?,
        };
        let timeout_key = format!("{key}.booking_expiration_timeout");
        let booking_timeout =
            match cx.scalar(&timeout_key, group.booking_expiration_timeout.as_ref())? {
                None => None,
                Some(t) => {
                    let n: i64 = t
                        .trim()
                        .parse()
                        .map_err(|_| cx.err(&timeout_key, format!("{t:?} is not an integer")))?;
                    Some(BookingTimeout::from_secs_strict(n).map_err(|e| cx.err(&timeout_key, e))?)
                }
            };
        let mut numbers = Vec::new();
        let mut entries = Vec::new();
        for (i, entry) in group.numbers.iter().enumerate() {
            let spec =
                NumberSpec::parse(entry).map_err(|e| cx.err(format!("{key}.numbers[{i}]"), e))?;
            numbers.reserve(spec.len() as usize);
            entries.reserve(spec.len() as usize);
            for number in spec.numbers() {
                numbers.push(number);
                entries.push(i as u32);
            }
        }
        if numbers.is_empty() {
            return Err(cx.err(
                format!("{key}.numbers"),
                "a group needs at least one number",
            ));
        }
        let policy = group_policy(cx, &key, &group)?;
        out.push(GroupSpec {
            settings: GroupSettings {
                name: group_name,
                allocation,
                booking_timeout,
                policy,
            },
            numbers,
        });
        sources.push(entries);
    }
    listed_once(cx, &out, &sources)?;
    Ok(out)
}

/// The group's policy keys; unset ones take the defaults.
fn group_policy(
    cx: &Cx,
    key: &str,
    group: &RawGroup,
) -> Result<crate::domain::NumberPolicy, ConfigError> {
    let values = [
        ("require_code", &group.require_code),
        ("max_code_attempts", &group.max_code_attempts),
        ("cool_down", &group.cool_down),
        ("late_match_grace", &group.late_match_grace),
        (
            "quarantine_after_stray_calls",
            &group.quarantine_after_stray_calls,
        ),
    ];
    let mut texts = Vec::new();
    for (name, value) in values {
        texts.push((name, cx.scalar(&format!("{key}.{name}"), value.as_ref())?));
    }
    let change = super::policy::parse_change(|k| {
        texts
            .iter()
            .find(|(name, _)| *name == k)
            .and_then(|(_, v)| v.as_deref())
    })
    .map_err(|(name, why)| cx.err(format!("{key}.{name}"), why))?;
    Ok(change.apply(crate::domain::NumberPolicy::default()))
}

/// Every number in at most one group, once: sorting (group, entry, number) triples finds
/// repeats without a million-entry hash map, and reports the later listing of each.
fn listed_once(cx: &Cx, groups: &[GroupSpec], sources: &[Vec<u32>]) -> Result<(), ConfigError> {
    let key = |g: u32| format!("resource_groups.{}", groups[g as usize].settings.name);
    let mut all: Vec<(&AccessNumber, u32, u32)> = groups
        .iter()
        .zip(sources)
        .enumerate()
        .flat_map(|(g, (spec, entries))| {
            spec.numbers
                .iter()
                .zip(entries)
                .map(move |(n, &e)| (n, g as u32, e))
        })
        .collect();
    all.sort_unstable();
    let repeat = all
        .windows(2)
        .filter(|w| w[0].0 == w[1].0)
        .min_by_key(|w| (w[1].1, w[1].2));
    if let Some(w) = repeat {
        let (number, (g, entry), first) = (w[1].0, (w[1].1, w[1].2), w[0].1);
        return Err(cx.err(
            format!("{}.numbers[{entry}]", key(g)),
            format!("number {number} is listed twice (also in {})", key(first)),
        ));
    }
    Ok(())
}

/// The node's code prefix must leave at least four random digits in every code a service can
/// be configured to hand out (GMS answered 500 here; we refuse to start).
fn check_prefix(
    cx: &Cx,
    prefix: &CodePrefix,
    services: &BTreeMap<ServiceName, super::ServiceConfig>,
) -> Result<(), ConfigError> {
    let mut lengths: Vec<(String, CodeLength)> =
        vec![("the default code length".into(), CodeLength::DEFAULT)];
    for (name, s) in services {
        if matches!(
            s.kind,
            ServiceKind::RequestAccess | ServiceKind::RequestInteraction
        ) && let Some(len) = s.access_code_length
        {
            lengths.push((format!("services.{name}._access_code_length"), len));
        }
    }
    for (what, len) in lengths {
        if !prefix.fits(len) {
            return Err(cx.err("server.access_code_prefix", format!("\"{prefix}\" takes {} of the {} digits of {what}; codes need at least 4 random digits", prefix.len(), len.get())));
        }
    }
    Ok(())
}
