//! The use cases: request-access, match-interaction, request-interaction, sessions, storage
//! and administration. The broker is the only caller of the store; it applies the contract's
//! precedence rules (request > service > group > default) and names every refusal with a
//! [`BrokerError`]; what a client sees of it is `http::error`'s business.

mod access;
mod admin;
mod audit;
mod error;
mod matching;
mod once;
mod sessions;

use std::sync::Arc;

pub use access::{Access, AccessRequest, group_for};
pub use admin::{GroupOverview, GroupPage, NodeSeen, Ready};
pub use audit::{AUDIT_CAPACITY, Actor, AuditAction, AuditEntry, AuditOutcome};
pub use error::BrokerError;
pub use matching::MatchParams;
pub use once::Keyed;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ServiceConfig};
use crate::domain::ServiceName;
use crate::metrics::Metrics;
use crate::store::DynStore;

use self::audit::AuditLog;

#[derive(Clone)]
pub struct Broker {
    store: DynStore,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    /// This node's recent admin changes (per node, lost at restart: see `audit`).
    audit: Arc<AuditLog>,
}

impl Broker {
    pub fn new(store: DynStore, config: Arc<Config>, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            config,
            metrics,
            audit: Arc::default(),
        }
    }

    /// The store's rebuilds after failed writes (`Store::rebuilds`).
    pub fn store_rebuilds(&self) -> u64 {
        self.store.rebuilds()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A configured service by its name (case-sensitive).
    pub fn service(&self, name: &str) -> Option<(&ServiceName, &ServiceConfig)> {
        self.config
            .services
            .iter()
            .find(|(n, _)| n.as_str() == name)
    }

    /// What the store holds, for `[limits]` (`None`: the store does not count).
    pub async fn usage(&self) -> Result<Option<crate::store::Usage>, BrokerError> {
        Ok(self.store.usage().await?)
    }

    /// Like [`Broker::service`], for a request that needs the service: unknown is a refusal.
    pub fn find_service(&self, name: &str) -> Result<(&ServiceName, &ServiceConfig), BrokerError> {
        self.service(name)
            .ok_or_else(|| BrokerError::UnknownService(name.to_owned()))
    }
}

/// The current minute on the wall clock, for the per-minute history metrics keep.
pub fn now_minute() -> i64 {
    SystemClock.now().0.div_euclid(60_000)
}
