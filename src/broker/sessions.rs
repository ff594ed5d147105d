//! Service sessions (`type = "session"`) and the storage API.

use std::time::Duration;

use crate::config::ServiceConfig;
use crate::domain::{DataId, ServiceName, SessionId, SessionTtl, StorageTtl};
use crate::store::{Fields, NewSession, Session};

use super::{Broker, BrokerError};

impl Broker {
    pub async fn create_session(
        &self,
        name: &ServiceName,
        service: &ServiceConfig,
        fields: Fields,
        ttl: Option<SessionTtl>,
    ) -> Result<Session, BrokerError> {
        let new = self.new_session(name, service, fields, ttl);
        Ok(self.store.create_session(new).await?)
    }

    pub(super) fn new_session(
        &self,
        name: &ServiceName,
        service: &ServiceConfig,
        fields: Fields,
        ttl: Option<SessionTtl>,
    ) -> NewSession {
        let node = &self.config.server.node_id;
        let ttl = ttl.or(service.ttl).unwrap_or(SessionTtl::DEFAULT);
        let id = SessionId::generate(node);
        NewSession {
            data_id: DataId::of_session(&id),
            id,
            service: name.clone(),
            fields,
            ttl: ttl.duration(),
        }
    }

    pub async fn session(&self, id: &SessionId) -> Result<Session, BrokerError> {
        self.store
            .session(id)
            .await?
            .ok_or_else(|| BrokerError::SessionNotFound(id.clone()))
    }

    pub async fn end_session(&self, id: &SessionId) -> Result<(), BrokerError> {
        match self.store.end_session(id).await? {
            true => Ok(()),
            false => Err(BrokerError::SessionNotFound(id.clone())),
        }
    }

    pub async fn put_data(&self, fields: Fields, ttl: StorageTtl) -> Result<DataId, BrokerError> {
        let id = DataId::generate(&self.config.server.node_id);
        self.store
            .put_data(id.clone(), fields, ttl.duration())
            .await?;
        Ok(id)
    }

    pub async fn data(&self, id: &DataId) -> Result<Fields, BrokerError> {
        self.store.data(id).await?.ok_or_else(|| not_found(id))
    }

    pub async fn update_data(
        &self,
        id: &DataId,
        fields: Fields,
        ttl: StorageTtl,
    ) -> Result<(), BrokerError> {
        self.merge_fits(id, &fields).await?;
        match self
            .store
            .update_data(id, fields, Duration::from_secs(u64::from(ttl.secs())))
            .await?
        {
            true => Ok(()),
            false => Err(not_found(id)),
        }
    }

    /// Whether merging `fields` into the live entry `id` keeps it within
    /// `MAX_FIELDS_PER_ENTRY` (404 if there is no such entry). The entry's size after the
    /// merge is read first: concurrent updates may each pass and together exceed the limit
    /// by at most `MAX_FIELDS_PER_REQUEST` per writer, which keeps an entry bounded all the
    /// same.
    pub(super) async fn merge_fits(&self, id: &DataId, fields: &Fields) -> Result<(), BrokerError> {
        let existing = self.store.data(id).await?.ok_or_else(|| not_found(id))?;
        let count = crate::store::merged_len(&existing, fields);
        if count > crate::store::MAX_FIELDS_PER_ENTRY {
            return Err(BrokerError::TooManyFields {
                id: id.clone(),
                count,
                limit: crate::store::MAX_FIELDS_PER_ENTRY,
            });
        }
        Ok(())
    }

    pub async fn delete_data(&self, id: &DataId) -> Result<(), BrokerError> {
        match self.store.delete_data(id).await? {
            true => Ok(()),
            false => Err(not_found(id)),
        }
    }
}

pub(super) fn not_found(id: &DataId) -> BrokerError {
    BrokerError::DataNotFound(id.clone())
}
