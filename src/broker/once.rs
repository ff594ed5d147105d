//! Creations under an `Idempotency-Key` (session services, request-interaction, storage
//! POSTs): the first call creates and its answer is kept for 24 h; a retry with the same key
//! from the same client gets that answer again, never a second session or reservation.
//! The store keeps the answer atomically with the creation (`store::once`).

use std::sync::Arc;

use crate::config::ServiceConfig;
use crate::domain::{DataId, ServiceName, SessionTtl, StorageTtl};
use crate::store::{AnswerFn, Created, Creation, Fields, IdempotencyKey, Once, ReserveError};

use super::{Access, AccessRequest, Broker, BrokerError};

impl Broker {
    /// A session service's session, once per key; answers its fields (`_id`).
    pub async fn create_session_once(
        &self,
        key: IdempotencyKey,
        name: &ServiceName,
        service: &ServiceConfig,
        fields: Fields,
        ttl: Option<SessionTtl>,
    ) -> Result<Keyed, BrokerError> {
        let new = self.new_session(name, service, fields, ttl);
        let answer = Arc::new(|c: &Created| match c {
            Created::Session(s) => vec![("_id".to_owned(), s.id.to_string())],
            _ => Vec::new(),
        });
        let once = self
            .store
            .create_once(&key, Creation::Session(new), answer.clone());
        Ok(answered(once.await.map_err(store_only)?, &*answer))
    }

    /// request-interaction, once per key; answers as request-access does.
    pub async fn request_interaction_once(
        &self,
        key: IdempotencyKey,
        name: &ServiceName,
        service: &ServiceConfig,
        fields: Fields,
        ttl: Option<SessionTtl>,
        req: AccessRequest,
    ) -> Result<Keyed, BrokerError> {
        let (new, reserve, pool_health) = self.interaction(name, service, fields, ttl, req)?;
        let (id, group) = (new.id.clone(), reserve.group.clone());
        let answer = Arc::new(move |c: &Created| match c {
            Created::Interaction(s, r) => Access {
                session: s.id.clone(),
                reservation: r.clone(),
                pool_health,
            }
            .answer(),
            _ => Vec::new(),
        });
        let creation = Creation::Interaction(new, reserve);
        let once = self.store.create_once(&key, creation, answer.clone()).await;
        let once = match once {
            // A replay reserved nothing now: only a fresh reservation counts in the metrics.
            Ok(Once::First(c)) => self.count(&group, Ok(Once::First(c))),
            other => other,
        }
        .map_err(|e| BrokerError::from_reserve(e, &id, &group))?;
        Ok(answered(once, &*answer))
    }

    /// Stored fields under a fresh id, once per key; answers `id`.
    pub async fn put_data_once(
        &self,
        key: IdempotencyKey,
        fields: Fields,
        ttl: StorageTtl,
    ) -> Result<Keyed, BrokerError> {
        let id = DataId::generate(&self.config.server.node_id);
        let creation = Creation::Data {
            id,
            fields,
            ttl: ttl.duration(),
        };
        let answer = Arc::new(|c: &Created| match c {
            Created::Data(id) => vec![("id".to_owned(), id.to_string())],
            _ => Vec::new(),
        });
        let once = self.store.create_once(&key, creation, answer.clone());
        Ok(answered(once.await.map_err(store_only)?, &*answer))
    }
}

impl Broker {
    /// [`Self::update_data`] once per key: a retry gets the first answer (even one the
    /// entry's size would now refuse), and its fields are not merged a second time.
    pub async fn update_data_once(
        &self,
        key: IdempotencyKey,
        id: &DataId,
        fields: Fields,
        ttl: StorageTtl,
    ) -> Result<Keyed, BrokerError> {
        if let Err(refusal) = self.merge_fits(id, &fields).await {
            let fields = self.replay(&key).await?.ok_or(refusal)?;
            return Ok(Keyed {
                fields,
                fresh: false,
            });
        }
        let answer = Arc::new(|c: &Created| match c {
            Created::Updated(id) => vec![("id".to_owned(), id.to_string())],
            _ => Vec::new(),
        });
        let creation = Creation::Update {
            id: id.clone(),
            fields,
            ttl: ttl.duration(),
        };
        match self.store.create_once(&key, creation, answer.clone()).await {
            Err(ReserveError::Refused) => Err(super::sessions::not_found(id)),
            once => Ok(answered(once.map_err(store_only)?, &*answer)),
        }
    }

    /// The first answer to `key`, if it has one. For a call with a key that a limit refused:
    /// a retry still gets what the first call got.
    pub async fn replay(&self, key: &IdempotencyKey) -> Result<Option<Fields>, BrokerError> {
        let nothing: AnswerFn = Arc::new(|_: &Created| Vec::new());
        match self
            .store
            .create_once(key, Creation::Refused, nothing)
            .await
        {
            Ok(Once::Replay(fields)) => Ok(Some(fields)),
            Ok(Once::First(_)) | Err(ReserveError::Refused) => Ok(None),
            Err(e) => Err(store_only(e)),
        }
    }
}

/// A keyed call's answer, and whether this call made it: a replay of the first call's
/// answer created nothing now (no session, reservation or bytes for `[limits]` to count).
#[derive(Debug, Clone)]
pub struct Keyed {
    pub fields: Fields,
    pub fresh: bool,
}

fn answered(once: Once, answer: &dyn Fn(&Created) -> Fields) -> Keyed {
    match once {
        Once::First(created) => Keyed {
            fields: answer(&created),
            fresh: true,
        },
        Once::Replay(fields) => Keyed {
            fields,
            fresh: false,
        },
    }
}

/// Creating a session or stored fields refuses nothing but a store failure.
fn store_only(e: ReserveError) -> BrokerError {
    match e {
        ReserveError::Store(e) => BrokerError::Store(e),
        other => BrokerError::Store(crate::store::StoreError::query(format!("{other:?}"))),
    }
}
