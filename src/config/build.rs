//! One validation pass from the raw shapes to the typed config. Every error names the file
//! and the key path, e.g. `demo.toml: resource_groups.DNIS.numbers[1]: range "9-1": …`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::raw::{RawConfig, RawCredentials, RawGroup};
use super::services::{self, ServiceKind};
use super::{Config, ConfigError, Credentials, Secret, ServerConfig, Warnings, defaults};
use crate::domain::{
    AccessNumber, Allocation, BookingTimeout, CodeLength, CodePrefix, GroupName, NodeId,
    NumberSpec, ServiceName,
};
use crate::store::{GroupSettings, GroupSpec, SqliteSync};

/// The file being read, for error messages.
pub struct Cx<'a> {
    pub origin: &'a str,
}

impl Cx<'_> {
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

/// A TOML syntax or shape error, on one line with its line number.
pub fn toml_error(origin: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
    let place = line.map_or(String::new(), |l| format!("line {l}"));
    ConfigError::new(origin, place, e.message().replace('\n', " "))
}

pub fn credentials(
    cx: &Cx,
    section: &str,
    username: Option<String>,
    password: Option<String>,
) -> Result<Option<Credentials>, ConfigError> {
    match (username, password) {
        (None, None) => Ok(None),
        (Some(username), Some(password)) => Ok(Some(Credentials {
            username,
            password: Secret::new(password),
        })),
        _ => Err(cx.err(section, "username and password must both be set")),
    }
}

fn raw_credentials(
    cx: &Cx,
    section: &str,
    raw: Option<RawCredentials>,
) -> Result<Option<Credentials>, ConfigError> {
    let raw = raw.unwrap_or_default();
    credentials(
        cx,
        section,
        raw.username.filter(|s| !s.is_empty()),
        raw.password.filter(|s| !s.is_empty()),
    )
}

pub fn build(raw: RawConfig, origin: &str) -> Result<(Config, Warnings), ConfigError> {
    let cx = Cx { origin };
    let mut warnings = Vec::new();
    let server = server(&cx, raw.server)?;
    let auth = raw.auth.unwrap_or_default();
    let admin_auth = raw_credentials(&cx, "auth.admin", auth.admin)?;
    let metrics_auth = raw_credentials(&cx, "auth.metrics", auth.metrics)?;
    let auth = raw_credentials(
        &cx,
        "auth",
        Some(RawCredentials {
            username: auth.username,
            password: auth.password,
        }),
    )?;
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
                format!("unknown resource group {group:?}"),
            ));
        }
        services.insert(service_name, service);
    }
    check_prefix(&cx, &server.access_code_prefix, &services)?;
    Ok((
        Config {
            server,
            auth,
            admin_auth,
            metrics_auth,
            groups,
            services,
        },
        warnings,
    ))
}

fn server(cx: &Cx, raw: super::raw::RawServer) -> Result<ServerConfig, ConfigError> {
    let listen = raw.listen.unwrap_or_else(|| defaults::LISTEN.into());
    let store = raw.store.unwrap_or_else(|| defaults::STORE.into());
    let positive = |key: &str, v: Option<i64>, default: u64| -> Result<u64, ConfigError> {
        match v {
            None => Ok(default),
            Some(n) if n > 0 => Ok(n as u64),
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
        )? as usize,
        store_timeout: Duration::from_millis(positive(
            "store_timeout_ms",
            raw.store_timeout_ms,
            defaults::STORE_TIMEOUT_MS,
        )?),
        max_connections: positive(
            "max_connections",
            raw.max_connections,
            defaults::MAX_CONNECTIONS as u64,
        )? as usize,
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

fn groups(cx: &Cx, raw: toml::Table) -> Result<Vec<GroupSpec>, ConfigError> {
    let mut out = Vec::new();
    // Which `numbers` entry each number came from, per group, for the listed-twice check.
    let mut sources: Vec<Vec<u32>> = Vec::new();
    for (name, value) in raw {
        let key = format!("resource_groups.{name}");
        let group = RawGroup::deserialize(value)
            .map_err(|e| cx.err(&key, e.message().replace('\n', " ")))?;
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
        out.push(GroupSpec {
            settings: GroupSettings {
                name: group_name,
                allocation,
                booking_timeout,
            },
            numbers,
        });
        sources.push(entries);
    }
    listed_once(cx, &out, &sources)?;
    Ok(out)
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

/// The node's code prefix must leave at least one random digit in every code a service can
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
            return Err(cx.err("server.access_code_prefix", format!("\"{prefix}\" takes {} digits, as many as {what} ({}); codes would have no random digit", prefix.len(), len.get())));
        }
    }
    Ok(())
}
