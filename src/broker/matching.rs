//! match-interaction: the IVR's side. Code and phone rules live in the store (they must be
//! checked atomically with the release); the broker applies the service's leniency option.

use crate::config::ServiceConfig;
use crate::domain::{AccessCode, AccessNumber, PhoneNumber};
use crate::store::{MatchRequest, Session};

use super::{Broker, BrokerError};

#[derive(Debug, Clone)]
pub struct MatchParams {
    pub number: AccessNumber,
    pub code: Option<AccessCode>,
    pub phone: Option<PhoneNumber>,
    pub end_session: bool,
}

impl Broker {
    pub async fn match_interaction(
        &self,
        service: &ServiceConfig,
        p: MatchParams,
    ) -> Result<Session, BrokerError> {
        let number = p.number.clone();
        let req = MatchRequest {
            number: p.number,
            code: p.code,
            phone: p.phone,
            code_required: !service.match_without_code,
            end_session: p.end_session,
        };
        let matched = self.store.match_reservation(req).await?;
        self.metrics.matched(matched.is_some());
        matched.ok_or(BrokerError::NoMatch(number))
    }
}
