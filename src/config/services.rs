//! Service tables: `[services.NAME]` with a `type` and GMS `_`-options.
//!
//! GMS configs carry over: `_type = "builtin"` with `_service = "request-access"` means
//! `type = "request-access"`; an empty string means unset; options access-broker does not act
//! on, and options of another type of service, load with one warning naming them; any other
//! unknown key is an error.

use crate::domain::{BookingTimeout, CodeLength, GroupName, SessionTtl};

use super::build::{Cx, credentials, password};
use super::{ConfigError, Credentials};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    RequestAccess,
    MatchInteraction,
    RequestInteraction,
    Session,
}

impl ServiceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequestAccess => "request-access",
            Self::MatchInteraction => "match-interaction",
            Self::RequestInteraction => "request-interaction",
            Self::Session => "session",
        }
    }

    const ALL: [Self; 4] = [
        Self::RequestAccess,
        Self::MatchInteraction,
        Self::RequestInteraction,
        Self::Session,
    ];

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub kind: ServiceKind,
    /// When set, only these credentials open this service.
    pub credentials: Option<Credentials>,
    pub resource_group: Option<GroupName>,
    pub provide_code: Option<bool>,
    pub access_code_length: Option<CodeLength>,
    pub booking_timeout: Option<BookingTimeout>,
    pub ttl: Option<SessionTtl>,
    /// match-interaction: a reservation with a code also matches a request without one.
    pub match_without_code: bool,
    /// match-interaction: a refused call's answer says why (`reason`).
    pub return_failure_reason: bool,
    pub return_pool_health: bool,
}

/// GMS options that load with a warning because access-broker does not act on them. `_id`
/// and `_phone_number` are request parameters that GMS's request-access lists among its
/// options too (the seed's configuration table), so GMS configs carry them.
const IGNORED: [&str; 4] = ["_overwritable_options", "_redirect", "_phone_number", "_id"];

/// Keys every service table may carry, whatever its type.
const COMMON: [&str; 6] = [
    "type",
    "_type",
    "_service",
    "username",
    "password",
    "password_file",
];

/// The options a service of this type acts on. Another type's option (`match_without_code`
/// on a request-access service, `_ttl` on a match-interaction one) loads with the warning of
/// the options not acted on, like the GMS ones: it is a known key in the wrong table, which
/// an operator should hear about, not a typo.
fn options(kind: ServiceKind) -> &'static [&'static str] {
    const RESERVING: [&str; 5] = [
        "_resource_group",
        "_provide_code",
        "_access_code_length",
        "_booking_expiration_timeout",
        "_return_pool_health",
    ];
    const INTERACTION: [&str; 6] = [
        "_resource_group",
        "_provide_code",
        "_access_code_length",
        "_booking_expiration_timeout",
        "_return_pool_health",
        "_ttl",
    ];
    match kind {
        ServiceKind::RequestAccess => &RESERVING,
        ServiceKind::RequestInteraction => &INTERACTION,
        ServiceKind::MatchInteraction => &["match_without_code", "return_failure_reason"],
        ServiceKind::Session => &["_ttl"],
    }
}

/// Whether some type of service acts on this option.
fn any_type(key: &str) -> bool {
    ServiceKind::ALL.iter().any(|&k| options(k).contains(&key))
}

pub fn parse(
    cx: &Cx,
    name: &str,
    table: &toml::Table,
    warnings: &mut Vec<String>,
) -> Result<ServiceConfig, ConfigError> {
    let key = |k: &str| format!("services.{name}.{k}");
    let get = |k: &str| -> Result<Option<String>, ConfigError> { cx.scalar(&key(k), table.get(k)) };
    // The GMS spelling: `_type = "builtin"` and the builtin in `_service`; no other GMS type
    // (ORS, external…) is served, and a misspelt one must not quietly become a session.
    let gms = match (get("_type")?, get("_service")?) {
        (None, None) => None,
        (Some(t), _) if t != "builtin" => {
            return Err(cx.err(
                key("_type"),
                format!("{t:?} is not served; expected \"builtin\" (with _service), or set type"),
            ));
        }
        (Some(_), None) => {
            return Err(cx.err(key("_service"), "required with _type = \"builtin\""));
        }
        // `_service` names a builtin, with `_type = "builtin"` or alone: it must agree with
        // `type` (alone it was ignored, so a table could say two services at once).
        (_, Some(s)) => Some(
            ServiceKind::parse(&s)
                .ok_or_else(|| cx.err(key("_service"), format!("unknown builtin {s:?}")))?,
        ),
    };
    let kind = match (get("type")?, gms) {
        (Some(t), gms) => {
            let kind = ServiceKind::parse(&t).ok_or_else(|| cx.err(key("type"), format!("unknown type {t:?}; expected request-access, match-interaction, request-interaction or session")))?;
            if gms.is_some_and(|g| g != kind) {
                return Err(cx.err(
                    key("_service"),
                    format!("names another service than type = {t:?}"),
                ));
            }
            kind
        }
        (None, Some(kind)) => kind,
        (None, None) => {
            // `Type = "session"`: the key is unknown (keys are lower case), not missing.
            if let Some(k) = table.keys().find(|k| k.eq_ignore_ascii_case("type")) {
                return Err(cx.err(key(k), "unknown key (keys are lower case: type)"));
            }
            return Err(cx.err(
                key("type"),
                "required: request-access, match-interaction, request-interaction or session",
            ));
        }
    };
    let mut ignored = Vec::new();
    let applies = options(kind);
    for k in table.keys().map(String::as_str) {
        // An option set to the empty string is unset (GMS configs carry many): no warning.
        let unset = table.get(k).and_then(toml::Value::as_str) == Some("");
        if COMMON.contains(&k) || applies.contains(&k) {
            continue;
        }
        if IGNORED.contains(&k) || any_type(k) {
            if !unset {
                ignored.push(k);
            }
        } else {
            let takes: Vec<&str> = COMMON.iter().chain(applies).copied().collect();
            return Err(cx.err(
                key(k),
                format!(
                    "unknown key; a {} service takes {}",
                    kind.as_str(),
                    takes.join(", ")
                ),
            ));
        }
    }
    if !ignored.is_empty() {
        warnings.push(format!(
            "{}: services.{name}: options a {} service does not act on: {}",
            cx.origin,
            kind.as_str(),
            ignored.join(", ")
        ));
    }
    // Only the options of its type are read: another type's is not even parsed.
    let get = |k: &str| match applies.contains(&k) || COMMON.contains(&k) {
        true => get(k),
        false => Ok(None),
    };
    let int = |k: &str| -> Result<Option<i64>, ConfigError> {
        get(k)?
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| cx.err(key(k), format!("{v:?} is not an integer")))
            })
            .transpose()
    };
    let flag = |k: &str| -> Result<Option<bool>, ConfigError> {
        get(k)?
            .map(|v| crate::domain::parse_bool(&v).map_err(|e| cx.err(key(k), e)))
            .transpose()
    };
    let ttl = int("_ttl")?;
    Ok(ServiceConfig {
        kind,
        credentials: credentials(
            cx,
            &format!("services.{name}"),
            get("username")?,
            password(
                cx,
                &format!("services.{name}"),
                get("password")?,
                get("password_file")?,
            )?,
        )?,
        resource_group: get("_resource_group")?
            .map(|g| GroupName::parse(&g).map_err(|e| cx.err(key("_resource_group"), e)))
            .transpose()?,
        provide_code: flag("_provide_code")?,
        access_code_length: int("_access_code_length")?
            .map(|n| CodeLength::new(n).map_err(|e| cx.err(key("_access_code_length"), e)))
            .transpose()?,
        booking_timeout: int("_booking_expiration_timeout")?
            .map(|n| {
                BookingTimeout::from_secs_strict(n)
                    .map_err(|e| cx.err(key("_booking_expiration_timeout"), e))
            })
            .transpose()?,
        ttl: ttl
            .map(|n| SessionTtl::new(n).map_err(|e| cx.err(key("_ttl"), e)))
            .transpose()?,
        match_without_code: flag("match_without_code")?.unwrap_or(false),
        return_failure_reason: flag("return_failure_reason")?.unwrap_or(false),
        return_pool_health: flag("_return_pool_health")?.unwrap_or(false),
    })
}
