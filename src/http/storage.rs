//! `/genesys/1/storage/*`: the GMS storage API. Fields live for a TTL (1..2592000 s, anything
//! else means 30 s); a session's data is readable here under its `_data_id`.
//!
//! Auth ([`require_storage`], a route layer, so before any body is read): a session's data
//! (`<session id>.data`) needs its service's own credentials when the service has some, as
//! the session itself does, and answers 404 once its session has ended, whatever ttl it was
//! given; everything else needs `[auth]`.

use axum::RequestExt as _;
use axum::Router;
use axum::extract::{Path, RawPathParams, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::post;

use axum::http::HeaderMap;

use super::client::ClientAddr;
use super::error::ApiError;
use super::idempotency::{self, Turn};
use super::limits::{Adds, Room};
use super::params::Params;
use super::reply::Reply;
use super::{AppState, auth};
use crate::broker::BrokerError;
use crate::domain::{DataId, StorageTtl};
use crate::store::fields_bytes;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/genesys/1/storage/{ttl_or_id}",
            post(create).get(read).delete(delete),
        )
        .route(
            "/genesys/1/storage/{id}/{ttl_or_key}",
            post(update).get(read_key),
        )
}

/// Route layer: the credentials the named entry needs (see the module doc).
pub async fn require_storage(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let server = state.config.auth.as_ref();
    let named = match req.extract_parts::<RawPathParams>().await {
        Ok(params) => params
            .iter()
            .find(|(key, _)| matches!(*key, "id" | "ttl_or_id"))
            .map(|(_, value)| value.to_owned()),
        Err(_) => None,
    };
    let data = named.and_then(|id| DataId::parse(&id).ok());
    let Some(session) = data.as_ref().and_then(DataId::session) else {
        auth::require(req.headers(), server)?;
        return Ok(next.run(req).await);
    };
    // A session's data lives with its session: its service's credentials guard it, and once
    // the session has ended it answers 404 to everyone (a ttl the storage API gave it past
    // the session's end left it guarded by no credentials, or by the server's).
    match super::service::guarded_session(&state, &session, req.headers()).await {
        Ok(_) => Ok(next.run(req).await),
        Err(ApiError::Broker(BrokerError::SessionNotFound(_))) => {
            let id = data.map(|d| d.to_string()).unwrap_or_default();
            Err(ApiError::NotFound(format!(
                "storage id {id} not found: no such session, or it has ended"
            )))
        }
        Err(refused) => Err(refused),
    }
}

fn data_id(id: &str) -> Result<DataId, ApiError> {
    DataId::parse(id).map_err(|_| ApiError::NotFound(format!("storage id {id:?} not found")))
}

async fn create(
    State(state): State<AppState>,
    Path(ttl): Path<String>,
    addr: ClientAddr,
    headers: HeaderMap,
    params: Params,
) -> Result<Reply, ApiError> {
    let fields = params.fields_except(&[]);
    let key = idempotency::key(&state.config, &headers, addr, "storage")?;
    let _turn = match &key {
        Some(key) => match idempotency::turn(&state.limits, &state.broker, key).await? {
            Turn::Replay(answer) => return Ok(answer),
            Turn::Go(turn) => turn,
        },
        None => None,
    };
    let room = match state
        .limits
        .room_for(&state.broker, Adds::Fields, &fields)
        .await
    {
        Ok(room) => room,
        Err(refusal) => return idempotency::replay_or(&state.broker, key.as_ref(), refusal).await,
    };
    let ttl = StorageTtl::parse_lenient(&ttl);
    if let Some(key) = key {
        let answer = room.settle_keyed(state.broker.put_data_once(key, fields, ttl).await)?;
        return Ok(Reply::new().fields(&answer.fields));
    }
    let id = room.settle(state.broker.put_data(fields, ttl).await)?;
    Ok(Reply::new().field("id", id))
}

async fn read(State(state): State<AppState>, Path(id): Path<String>) -> Result<Reply, ApiError> {
    let fields = state.broker.data(&data_id(&id)?).await?;
    Ok(Reply::new().fields(&fields))
}

async fn read_key(
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
) -> Result<Reply, ApiError> {
    let fields = state.broker.data(&data_id(&id)?).await?;
    let value = fields
        .into_iter()
        .find(|(k, _)| *k == key)
        .ok_or_else(|| ApiError::NotFound(format!("storage id {id} has no field {key:?}")))?;
    Ok(Reply::new().field(value.0, value.1))
}

async fn update(
    State(state): State<AppState>,
    Path((id, ttl)): Path<(String, String)>,
    addr: ClientAddr,
    headers: HeaderMap,
    params: Params,
) -> Result<Reply, ApiError> {
    let id = data_id(&id)?;
    let key = idempotency::key(&state.config, &headers, addr, &format!("storage/{id}"))?;
    let fields = params.fields_except(&[]);
    let _turn = match &key {
        Some(key) => match idempotency::turn(&state.limits, &state.broker, key).await? {
            Turn::Replay(answer) => return Ok(answer),
            Turn::Go(turn) => turn,
        },
        None => None,
    };
    // Under a byte limit an update counts what it adds to the entry: the fields it replaces
    // free their bytes (a replacement of the same size fits a full store). Concurrent
    // updates of one entry may each count the same growth: the strict side.
    let room = match state.limits.counts_room(Adds::Fields) {
        false => Ok(Room::none()),
        true => {
            // An entry that cannot be read counts as new: the update itself then answers
            // (404, the store's 503), or a key replays its first answer.
            let before = state.broker.data(&id).await.unwrap_or_default();
            let mut after = before.clone();
            crate::store::merge_fields(&mut after, fields.clone());
            let growth = fields_bytes(&after).saturating_sub(fields_bytes(&before));
            state
                .limits
                .room_for_bytes(&state.broker, Adds::Fields, growth)
                .await
        }
    };
    let room = match room {
        Ok(room) => room,
        Err(refusal) => return idempotency::replay_or(&state.broker, key.as_ref(), refusal).await,
    };
    let ttl = StorageTtl::parse_lenient(&ttl);
    if let Some(key) = key {
        let answer =
            room.settle_keyed(state.broker.update_data_once(key, &id, fields, ttl).await)?;
        state.limits.made_room();
        return Ok(Reply::new().fields(&answer.fields));
    }
    room.settle(state.broker.update_data(&id, fields, ttl).await)?;
    // It may have replaced fields with shorter ones.
    state.limits.made_room();
    Ok(Reply::new().field("id", id))
}

async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> Result<Reply, ApiError> {
    let id = data_id(&id)?;
    state.broker.delete_data(&id).await?;
    state.limits.made_room();
    Ok(Reply::new().field("id", id))
}
