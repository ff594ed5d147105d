//! `/genesys/1/service/*`: create a session of a configured service (dispatched on its type),
//! read or end a session by id.

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::AppState;
use super::auth;
use super::client::ClientAddr;
use super::error::ApiError;
use super::idempotency::{self, Turn};
use super::limits::Adds;
use super::params::Params;
use super::reply::Reply;
use crate::broker::{Access, AccessRequest, BrokerError, MatchParams};
use crate::config::{Credentials, ServiceKind};
use crate::domain::{
    AccessCode, AccessNumber, BookingTimeout, CodeLength, GroupName, PhoneNumber, SessionId,
    SessionTtl,
};
use crate::store::Session;

/// The one route: a service's name for POST, a session's id for GET and DELETE.
pub const ROUTE: &str = "/genesys/1/service/{name}";
/// What precedes the route's one parameter.
pub const PREFIX: &str = "/genesys/1/service/";

pub fn router() -> Router<AppState> {
    Router::new().route(ROUTE, post(create).get(read).delete(end))
}

async fn create(
    State(state): State<AppState>,
    Path(name): Path<String>,
    addr: ClientAddr,
    request: Request,
) -> Result<Reply, ApiError> {
    create_named(&state, &name, addr, request).await
}

/// `POST` on the route without the router (`front.rs`), whose path is the prefix and one
/// segment without escapes: the name as the router's `Path` would have decoded it.
pub async fn create_unrouted(state: AppState, request: Request) -> Response {
    let uri = request.uri().clone();
    let name = uri.path().strip_prefix(PREFIX).unwrap_or_default();
    let addr = ClientAddr::of(&state, request.headers(), request.extensions());
    create_named(&state, name, addr, request)
        .await
        .into_response()
}

async fn create_named(
    state: &AppState,
    name: &str,
    addr: ClientAddr,
    request: Request,
) -> Result<Reply, ApiError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let broker = &state.broker;
    // The credentials first, the body after: a caller without them learns nothing of the
    // service or of what its body would have got (a 400, a 413).
    let found = broker.find_service(name);
    let server = state.config.auth.as_ref();
    let needed = match &found {
        Ok((_, service)) => service.credentials.as_ref().or(server),
        Err(_) => server,
    };
    // A request-access call's session may belong to a service with credentials of its own,
    // which then decide (`auth::require_for_access`, once the body names the session).
    let owned_sessions = matches!(&found, Ok((_, s)) if s.kind == ServiceKind::RequestAccess)
        && auth::sessions_guarded(&state.config);
    match owned_sessions {
        true => auth::require_before_session(&state.config, headers, needed)?,
        false => auth::require(headers, needed)?,
    }
    let (name, service) = found?;
    let params = Params::read(&parts, body, state.config.server.max_body_bytes).await?;
    let limits = &state.limits;
    // Who the client is matters only for a reservation quota (a string built per request);
    // the store counts its reservations and refuses one too many (`rules::quota`).
    let quota = || limits.quota(&state.config, headers, addr);
    let key = match service.kind {
        ServiceKind::Session | ServiceKind::RequestInteraction => {
            idempotency::key(&state.config, headers, addr, &format!("service/{name}"))?
        }
        _ => None,
    };
    if let Some(key) = key {
        // Boxed apart: the keyed paths' futures (a turn, a replay, the store's keyed writes)
        // would otherwise size every call's future, which is copied whenever it moves.
        return Box::pin(keyed(state, name, service, &params, key, quota)).await;
    }
    match service.kind {
        ServiceKind::Session => {
            let ttl = params.parse("_ttl", SessionTtl::parse)?;
            let fields = params.fields_except(&["_ttl"]);
            let room = limits.room_for(broker, Adds::Session, &fields).await?;
            let session = room.settle(broker.create_session(name, service, fields, ttl).await)?;
            Ok(Reply::new().field("_id", session.id))
        }
        ServiceKind::RequestAccess => {
            let id = params
                .get("_id")
                .ok_or_else(|| ApiError::invalid("_id", "required"))?;
            // An id that cannot be a session's names no live session: 404, as the contract
            // says of `_id`, like an unknown one (and like `GET /service/{id}`).
            let id = SessionId::parse(id).map_err(|_| ApiError::no_session(id))?;
            if owned_sessions {
                access_guard(state, headers, service, &id).await?;
            }
            let req = AccessRequest {
                quota: quota(),
                ..access_request(&params)?
            };
            let access = broker.request_access(service, id, req).await?;
            Ok(access_reply(access))
        }
        ServiceKind::RequestInteraction => {
            let ttl = params.parse("_ttl", SessionTtl::parse)?;
            let fields = params.user_fields();
            let req = AccessRequest {
                quota: quota(),
                ..access_request(&params)?
            };
            let room = limits.room_for(broker, Adds::Session, &fields).await?;
            let access = room.settle(
                broker
                    .request_interaction(name, service, fields, ttl, req)
                    .await,
            )?;
            Ok(access_reply(access))
        }
        ServiceKind::MatchInteraction => match_interaction(state, service, &params).await,
    }
}

/// A session or request-interaction call with an `Idempotency-Key` (`idempotency.rs`, the
/// only kinds that take one): the first answer to the key is kept and given again.
async fn keyed(
    state: &AppState,
    name: &crate::domain::ServiceName,
    service: &crate::config::ServiceConfig,
    params: &Params,
    key: crate::store::IdempotencyKey,
    quota: impl FnOnce() -> Option<crate::store::Quota>,
) -> Result<Reply, ApiError> {
    let (broker, limits) = (&state.broker, &state.limits);
    let ttl = params.parse("_ttl", SessionTtl::parse)?;
    // A request-interaction's reservation; none for a plain session.
    let (fields, reserve) = match service.kind {
        ServiceKind::Session => (params.fields_except(&["_ttl"]), None),
        _ => {
            let req = AccessRequest {
                quota: quota(),
                ..access_request(params)?
            };
            (params.user_fields(), Some(req))
        }
    };
    let _turn = match idempotency::turn(limits, broker, &key).await? {
        Turn::Replay(answer) => return Ok(answer),
        Turn::Go(turn) => turn,
    };
    let room = match limits.room_for(broker, Adds::Session, &fields).await {
        Ok(room) => room,
        Err(refusal) => return idempotency::replay_or(broker, Some(&key), refusal).await,
    };
    // A replay reserves nothing, so the quota does not refuse it (the store counts only a
    // creation).
    let answer = room.settle_keyed(match reserve {
        None => {
            broker
                .create_session_once(key, name, service, fields, ttl)
                .await
        }
        Some(req) => {
            broker
                .request_interaction_once(key, name, service, fields, ttl, req)
                .await
        }
    })?;
    Ok(Reply::new().fields(&answer.fields))
}

/// The credentials a request-access call for session `id` needs (`auth::require_for_access`):
/// its service's own when it has some. An id that names no live session gets what a read of
/// it would (`guarded_session`), then its 404.
async fn access_guard(
    state: &AppState,
    headers: &HeaderMap,
    access: &crate::config::ServiceConfig,
    id: &SessionId,
) -> Result<(), ApiError> {
    let server = state.config.auth.as_ref();
    let own = access.credentials.as_ref();
    session_guarded_by(state, id, headers, own.or(server), |owner| {
        auth::require_for_access(headers, own, owner, server)
    })
    .await
    .map(drop)
}

fn access_request(params: &Params) -> Result<AccessRequest, ApiError> {
    Ok(AccessRequest {
        group: params.parse("_resource_group", GroupName::parse)?,
        provide_code: params.flag("_provide_code")?,
        phone: params.parse("_phone_number", PhoneNumber::parse)?,
        code_length: params.parse("_access_code_length", CodeLength::parse)?,
        booking_timeout: params
            .parse("_booking_expiration_timeout", BookingTimeout::parse_lenient)?,
        pool_health: params.flag("_return_pool_health")?,
        quota: None,
    })
}

fn access_reply(access: Access) -> Reply {
    let mut reply = Reply::new();
    access.each_field(|name, value| reply.push_new(name, value));
    reply
}

async fn match_interaction(
    state: &AppState,
    service: &crate::config::ServiceConfig,
    params: &Params,
) -> Result<Reply, ApiError> {
    let number = params
        .get("_access_number")
        .ok_or_else(|| ApiError::invalid("_access_number", "required"))?;
    // Two spellings of one option (GMS documents both): each one sent is checked, and either
    // one true returns the data.
    let return_data = params.flag("_return_data")?.unwrap_or(false)
        | params.flag("_return_user_data")?.unwrap_or(false);
    let p = MatchParams {
        // Trimmed, as codes, flags and numbers of seconds are: `" 100"` is the number 100.
        number: AccessNumber::parse(number.trim()).map_err(ApiError::param("_access_number"))?,
        // What the caller keyed and the caller id: compared, never refused (a value that is no
        // code or number matches nothing, or counts as no number: `offered`).
        code: params.get("_access_code").map(AccessCode::offered),
        phone: params.get("_phone_number").and_then(PhoneNumber::offered),
        end_session: params.flag("_delete_service")?.unwrap_or(false),
        return_data,
    };
    let multiple = params.flag("_return_multiple_matches")?.unwrap_or(false);
    let ends_session = p.end_session;
    let found = state.broker.match_interaction(service, p).await?;
    if !found.late && ends_session {
        state.limits.made_room();
    }
    let mut one = matched(found.session, return_data);
    if found.late {
        one = one.field("_late_match", "true");
    }
    Ok(if multiple {
        Reply::new().list("matches", vec![one])
    } else {
        one
    })
}

/// A match's answer. The stored fields come first and the answer's own fields win: a stored
/// `_id` or `_data_id` is replaced, and a stored `_late_match` left out (only the match says
/// whether it was late).
fn matched(mut session: Session, return_data: bool) -> Reply {
    let base = if return_data {
        session.fields.retain(|(name, _)| name != "_late_match");
        Reply::from_fields(session.fields)
    } else {
        Reply::new()
    };
    base.field("_id", session.id.as_str())
        .field("_data_id", session.data_id.as_str())
}

/// Reads a session. Its service's credentials apply; an unknown id still needs the server's.
async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Reply, ApiError> {
    let session = find_session(&state, &id, &headers).await?;
    Ok(Reply::new()
        .fields(&session.fields)
        .field("_id", &session.id)
        .field("_service", &session.service)
        .field("_data_id", &session.data_id)
        .field("_expiration_time", session.expires_in.as_secs()))
}

async fn end(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Reply, ApiError> {
    let session = find_session(&state, &id, &headers).await?;
    state.broker.end_session(&session.id).await?;
    state.limits.made_room();
    Ok(Reply::new().field("_id", &session.id))
}

async fn find_session(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
) -> Result<Session, ApiError> {
    let found = match SessionId::parse(id) {
        Ok(parsed) => guarded_session(state, &parsed, headers).await,
        Err(_) => {
            auth::require_for_no_session(&state.config, headers)?;
            Err(ApiError::no_session(id))
        }
    };
    match found {
        // A GET or DELETE of a service's own path: the id is the service's name.
        Err(e) if e.is_no_session() && state.broker.service(id).is_some() => {
            Err(ApiError::NoSession(format!(
                "{id:?} is a service, not a session id: a service is called with POST"
            )))
        }
        found => found,
    }
}

/// The live session `id`, once the request carries its service's credentials (or the
/// server's, for a service without its own); for no live session, what
/// `auth::require_for_no_session` asks, then `SessionNotFound`. The session routes and its
/// data under `/genesys/1/storage/` are guarded by this one rule.
pub(super) async fn guarded_session(
    state: &AppState,
    id: &SessionId,
    headers: &HeaderMap,
) -> Result<Session, ApiError> {
    let server = state.config.auth.as_ref();
    session_guarded_by(state, id, headers, server, |owner| {
        auth::require(headers, owner.or(server))
    })
    .await
}

/// The live session `id` once `allowed` passes with its service's own credentials (if it has
/// any); for no live session, what `auth::require_for_no_session` asks, then
/// `SessionNotFound`; when the store fails, `unknown`'s credentials, then the failure.
async fn session_guarded_by(
    state: &AppState,
    id: &SessionId,
    headers: &HeaderMap,
    unknown: Option<&Credentials>,
    allowed: impl FnOnce(Option<&Credentials>) -> Result<(), ApiError>,
) -> Result<Session, ApiError> {
    match state.broker.session(id).await {
        Ok(session) => {
            let owner = state
                .broker
                .service(session.service.as_str())
                .and_then(|(_, s)| s.credentials.as_ref());
            allowed(owner)?;
            Ok(session)
        }
        Err(err @ BrokerError::SessionNotFound(_)) => {
            auth::require_for_no_session(&state.config, headers)?;
            Err(err.into())
        }
        Err(err) => {
            auth::require(headers, unknown)?;
            Err(err.into())
        }
    }
}
