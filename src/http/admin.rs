//! `/genesys/1/admin/*`: the operators' JSON API over groups, numbers and reservations.
//! Guarded by `[auth.admin]`, or by `[auth]` when that is absent.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Extension, Router};
use serde_json::json;

use super::AppState;
use super::admin_views::{AuditJson, GroupJson, GroupPageJson, NodeJson, ReservationJson};
use super::auth;
use super::error::ApiError;
use super::params::Params;
use super::reply::Reply;
use crate::broker::Actor;
use crate::domain::{
    AccessNumber, Allocation, BookingTimeout, GroupName, NumberSpec, PhoneNumber, SessionId,
};
use crate::store::{GroupChange, NumbersFilter, ReservationFilter, StateKind};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/genesys/1/admin/groups", get(list_groups))
        .route(
            "/genesys/1/admin/groups/{group}",
            get(show_group).put(put_group).delete(delete_group),
        )
        .route("/genesys/1/admin/groups/{group}/numbers", post(add_numbers))
        .route(
            "/genesys/1/admin/groups/{group}/numbers/{number}",
            delete(remove_number),
        )
        .route(
            "/genesys/1/admin/groups/{group}/numbers/{number}/free",
            post(free_number),
        )
        .route("/genesys/1/admin/reservations", get(find_reservations))
        .route("/genesys/1/admin/reservations/{number}", delete(release))
        .route("/genesys/1/admin/nodes", get(nodes))
        .route("/genesys/1/admin/audit", get(audit))
}

/// Middleware for the admin API and the page: `[auth.admin]`, else `[auth]`. Once passed, the
/// request carries the [`Actor`] the audit trail names: the user of those credentials (the
/// check demands exactly them, so no header is read again), or `anonymous` when none guard it.
pub async fn require_admin(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let expected = state
        .config
        .admin_auth
        .as_ref()
        .or(state.config.auth.as_ref());
    auth::require(req.headers(), expected)?;
    let actor = expected.map_or_else(Actor::anonymous, |c| Actor::named(c.username.clone()));
    req.extensions_mut().insert(actor);
    Ok(next.run(req).await)
}

/// `force=true` (query string or form): do it even though the group is in the config file.
/// It is a delete's only parameter: a misspelt one is 400, not ignored.
fn force(params: &Params) -> Result<bool, ApiError> {
    params.only(&["force"])?;
    Ok(params.flag("force")?.unwrap_or(false))
}

/// The group a route names. Any name a store may hold (`GroupName::from_stored`): a group
/// named `.` or `..` before such names were refused can still be viewed and deleted; only
/// `put_group` (which creates) holds a name to today's rules.
fn group_name(name: &str) -> Result<GroupName, ApiError> {
    GroupName::from_stored(name).map_err(ApiError::param("group"))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Reply, ApiError> {
    serde_json::to_value(value)
        .map(Reply::json)
        .map_err(|e| ApiError::Internal(Box::new(e)))
}

/// Most numbers one admin request may add: a typo (`6504660000-6509999999`) must not put
/// millions of rows into a store in one call. The config file may list larger groups.
pub const MAX_NUMBERS_PER_REQUEST: u64 = 100_000;

/// Numbers and ranges separated by commas, spaces or new lines.
pub fn parse_numbers(text: &str) -> Result<Vec<AccessNumber>, ApiError> {
    let specs = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| NumberSpec::parse(s).map_err(ApiError::param("numbers")))
        .collect::<Result<Vec<_>, _>>()?;
    let total: u64 = specs.iter().map(NumberSpec::len).sum();
    if total > MAX_NUMBERS_PER_REQUEST {
        return Err(ApiError::invalid(
            "numbers",
            format!("{total} numbers in one request; at most {MAX_NUMBERS_PER_REQUEST}"),
        ));
    }
    Ok(NumberSpec::expand(&specs))
}

async fn list_groups(State(state): State<AppState>) -> Result<Reply, ApiError> {
    let groups: Vec<GroupJson> = state
        .broker
        .admin_groups()
        .await?
        .into_iter()
        .map(GroupJson::from)
        .collect();
    to_json(&json!({ "groups": groups }))
}

/// The most numbers one group page lists, whatever `limit` says: a million-number group
/// answered 55 MB built at once (~650 MB of the node's memory a call, 2–3 s, four at once
/// stalled every call on the node for 2.7 s). The rest is read with `offset`.
pub const MAX_PAGE: usize = 100_000;

/// `GET …/admin/groups/{group}[?state=…&digits=…&limit=…&offset=…]`: the group and its
/// numbers, all or those in one state, containing some digits, at most `limit` of them
/// ([`MAX_PAGE`] at most) after the first `offset` (`listed` says how many passed the filter,
/// `next_offset` where the next page starts when some are left).
async fn show_group(
    State(state): State<AppState>,
    Path(group): Path<String>,
    params: Params,
) -> Result<Reply, ApiError> {
    params.only(&["state", "digits", "limit", "offset"])?;
    let filter = NumbersFilter {
        state: params.parse("state", |s| {
            StateKind::from_name(s).ok_or_else(|| {
                let names: Vec<&str> = StateKind::ALL.into_iter().map(StateKind::name).collect();
                format!("{s:?} is not a state ({})", names.join(", "))
            })
        })?,
        digits: params.parse("digits", |d| match d.bytes().all(|b| b.is_ascii_digit()) {
            true => Ok(d.to_owned()),
            false => Err(format!("{d:?}: digits only")),
        })?,
        limit: Some(
            params
                .parse("limit", |l| page_limit(l, MAX_PAGE))?
                .unwrap_or(MAX_PAGE),
        ),
        offset: params
            .parse("offset", |o| match o.parse::<u64>() {
                Ok(n) => Ok(n),
                Err(_) if o.bytes().all(|b| b.is_ascii_digit()) && !o.is_empty() => Ok(u64::MAX),
                Err(_) => Err(format!("{o:?} is not a count of 0 or more")),
            })?
            .unwrap_or(0),
    };
    let page = state
        .broker
        .admin_group(&group_name(&group)?, &filter)
        .await?;
    to_json(&GroupPageJson::new(page, filter.offset))
}

/// A `limit`: a count of 1 or more, at most `max`. Digits past the largest count mean `max`
/// (they were refused as no count).
fn page_limit(l: &str, max: usize) -> Result<usize, String> {
    match l.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n.min(max)),
        Err(_) if l.bytes().all(|b| b.is_ascii_digit()) && l.bytes().any(|b| b != b'0') => Ok(max),
        _ => Err(format!("{l:?} is not a count of 1 or more")),
    }
}

/// Creates a group or changes it. Settings not sent keep their value; `numbers` are added.
/// The whole change is one store operation (see `Store::put_group`): a taken number refuses
/// it with nothing changed.
/// What a group's `PUT` may set.
const GROUP_KEYS: [&str; 8] = [
    "allocation",
    "booking_expiration_timeout",
    "numbers",
    crate::config::policy::KEYS[0].0,
    crate::config::policy::KEYS[1].0,
    crate::config::policy::KEYS[2].0,
    crate::config::policy::KEYS[3].0,
    crate::config::policy::KEYS[4].0,
];

async fn put_group(
    State(state): State<AppState>,
    Extension(user): Extension<Actor>,
    Path(group): Path<String>,
    params: Params,
) -> Result<Reply, ApiError> {
    let name = GroupName::parse(&group).map_err(ApiError::param("group"))?;
    params.only(&GROUP_KEYS)?;
    let allocation = params
        .get("allocation")
        .map(|a| {
            a.parse::<Allocation>()
                .map_err(ApiError::param("allocation"))
        })
        .transpose()?;
    // `default`: back to no booking time of the group's own (an empty value changes nothing,
    // as for every setting, so the page could not clear one).
    let booking_timeout = params
        .get("booking_expiration_timeout")
        .map(|t| {
            if t.trim().eq_ignore_ascii_case("default") {
                return Ok(None);
            }
            let secs: i64 = t.trim().parse().map_err(|_| {
                ApiError::invalid(
                    "booking_expiration_timeout",
                    format!("{t:?} is neither an integer nor default"),
                )
            })?;
            BookingTimeout::from_secs_strict(secs)
                .map(Some)
                .map_err(ApiError::param("booking_expiration_timeout"))
        })
        .transpose()?;
    let policy = crate::config::policy::parse_change(|k| params.get(k))
        .map_err(|(key, why)| ApiError::invalid(key, why))?;
    let numbers = params
        .get("numbers")
        .map(parse_numbers)
        .transpose()?
        .unwrap_or_default();
    let (created, overview) = state
        .broker
        .admin_put_group(
            &user,
            GroupChange {
                name,
                allocation,
                booking_timeout,
                policy,
                numbers,
            },
        )
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(to_json(&GroupJson::from(overview))?.with_status(status))
}

async fn delete_group(
    State(state): State<AppState>,
    Extension(user): Extension<Actor>,
    Path(group): Path<String>,
    params: Params,
) -> Result<Reply, ApiError> {
    let name = group_name(&group)?;
    state
        .broker
        .admin_delete_group(&user, &name, force(&params)?)
        .await?;
    Ok(Reply::new().field("deleted", name))
}

async fn add_numbers(
    State(state): State<AppState>,
    Extension(user): Extension<Actor>,
    Path(group): Path<String>,
    params: Params,
) -> Result<Reply, ApiError> {
    let name = group_name(&group)?;
    params.only(&["numbers"])?;
    let text = params.get("numbers").ok_or_else(|| {
        ApiError::invalid(
            "numbers",
            "required: numbers and ranges, e.g. 6504660100-6504660199",
        )
    })?;
    let added = state
        .broker
        .admin_add_numbers(&user, &name, parse_numbers(text)?)
        .await?;
    to_json(&json!({ "group": name, "added": added }))
}

async fn remove_number(
    State(state): State<AppState>,
    Extension(user): Extension<Actor>,
    Path((group, number)): Path<(String, String)>,
    params: Params,
) -> Result<Reply, ApiError> {
    let name = group_name(&group)?;
    let number = AccessNumber::parse(&number).map_err(ApiError::param("number"))?;
    let outcome = state
        .broker
        .admin_remove_number(&user, &name, &number, force(&params)?)
        .await?;
    to_json(&json!({ "group": name, "number": number, "state": outcome }))
}

/// Ends a cool-down or a quarantine: `{"group", "number", "state": "freed" | "unchanged"}`.
async fn free_number(
    State(state): State<AppState>,
    Extension(user): Extension<Actor>,
    Path((group, number)): Path<(String, String)>,
    params: Params,
) -> Result<Reply, ApiError> {
    params.only(&[])?;
    let name = group_name(&group)?;
    let number = AccessNumber::parse(&number).map_err(ApiError::param("number"))?;
    let outcome = state
        .broker
        .admin_free_number(&user, &name, &number)
        .await?;
    to_json(&json!({ "group": name, "number": number, "state": outcome }))
}

/// The most reservations one search lists, whatever `limit` says (`more` says when others
/// passed the filter): with no filter a search listed every live reservation, ~14 MB at
/// 100,000 of them. A filter narrows it.
pub const MAX_RESERVATIONS: usize = 10_000;

/// `GET …/admin/reservations?number=…&session=…&phone=…&limit=…`: read as every other route's
/// parameters (UTF-8 checked, not decoded lossily), and a misspelt filter is 400, not a
/// search for everything.
async fn find_reservations(
    State(state): State<AppState>,
    params: Params,
) -> Result<Reply, ApiError> {
    params.only(&["number", "session", "phone", "limit"])?;
    let limit = params
        .parse("limit", |l| page_limit(l, MAX_RESERVATIONS))?
        .unwrap_or(MAX_RESERVATIONS);
    // A filter of spaces only counts as not sent.
    let given = |name| params.get(name).filter(|v| !v.trim().is_empty());
    let filter = ReservationFilter {
        number: given("number")
            .map(|n| AccessNumber::parse(n.trim()).map_err(ApiError::param("number")))
            .transpose()?,
        session: given("session")
            .map(|s| SessionId::parse(s.trim()).map_err(ApiError::param("session")))
            .transpose()?,
        phone: given("phone")
            .map(|p| PhoneNumber::parse(p).map_err(ApiError::param("phone")))
            .transpose()?,
        // One more than listed: whether others passed.
        limit: Some(limit + 1),
    };
    let mut found = state.broker.admin_reservations(filter).await?;
    let more = found.len() > limit;
    found.truncate(limit);
    let found: Vec<ReservationJson> = found.into_iter().map(ReservationJson::from).collect();
    match more {
        true => to_json(&json!({ "reservations": found, "more": true })),
        false => to_json(&json!({ "reservations": found })),
    }
}

async fn release(
    State(state): State<AppState>,
    Extension(user): Extension<Actor>,
    Path(number): Path<String>,
    params: Params,
) -> Result<Reply, ApiError> {
    params.only(&[])?;
    let number = AccessNumber::parse(&number).map_err(ApiError::param("number"))?;
    state.broker.admin_release(&user, &number).await?;
    Ok(Reply::new().field("released", number))
}

async fn nodes(State(state): State<AppState>) -> Result<Reply, ApiError> {
    let nodes: Vec<NodeJson> = state
        .broker
        .admin_nodes()
        .await?
        .into_iter()
        .map(NodeJson::from)
        .collect();
    to_json(&json!({ "nodes": nodes }))
}

/// This node's recent admin changes, newest first (per node, lost at restart; the INFO log
/// under `access_broker::audit` is the durable trail).
async fn audit(State(state): State<AppState>) -> Result<Reply, ApiError> {
    let entries: Vec<AuditJson> = state
        .broker
        .admin_audit()
        .into_iter()
        .map(AuditJson::from)
        .collect();
    to_json(&json!({ "entries": entries }))
}
