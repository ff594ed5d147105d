//! request-access and request-interaction: which group, how long, whether a code, and the
//! precedence of request parameters over the service's options.

use crate::config::ServiceConfig;
use crate::domain::{
    AccessCode, BookingTimeout, CodeLength, GroupName, PhoneNumber, ServiceName, SessionId,
    SessionTtl,
};
use crate::store::{Fields, NewSession, Reservation, ReserveError, ReserveRequest};

use super::{Broker, BrokerError};

/// The parameters of a request-access (or request-interaction) call, parsed.
#[derive(Debug, Clone, Default)]
pub struct AccessRequest {
    pub group: Option<GroupName>,
    pub provide_code: Option<bool>,
    pub phone: Option<PhoneNumber>,
    pub code_length: Option<CodeLength>,
    pub booking_timeout: Option<BookingTimeout>,
    pub pool_health: Option<bool>,
    /// Who asks and its quota, when `[limits] reservations_per_client` is set.
    pub quota: Option<crate::store::Quota>,
}

/// What a successful request-access answers.
#[derive(Debug, Clone)]
pub struct Access {
    pub session: SessionId,
    pub reservation: Reservation,
    pub pool_health: bool,
}

impl Access {
    /// The answer's fields, in the order GMS gives them (the HTTP reply and the answer an
    /// `Idempotency-Key` keeps are both these).
    pub fn answer(&self) -> Fields {
        let mut fields = Vec::with_capacity(6);
        self.each_field(|name, value| fields.push((name.to_owned(), value)));
        fields
    }

    /// The answer's fields one by one, named by constants: the HTTP reply is built from
    /// these without an owned copy of each name (`answer` is the same list, owned).
    pub fn each_field(&self, mut field: impl FnMut(&'static str, String)) {
        let r = &self.reservation;
        field("_id", self.session.as_str().to_owned());
        field("_access_number", r.number.as_str().to_owned());
        field("_expiration_time", r.expires_in.as_secs().to_string());
        if let Some(code) = &r.code {
            field("_access_code", code.as_str().to_owned());
        }
        if self.pool_health {
            field("_pool_size", r.pool_size.to_string());
            field("_pool_free", r.pool_free.to_string());
        }
    }
}

impl Broker {
    /// Reserves a number for an existing live session.
    pub async fn request_access(
        &self,
        service: &ServiceConfig,
        session: SessionId,
        req: AccessRequest,
    ) -> Result<Access, BrokerError> {
        let (reserve, pool_health) = self.reserve_request(service, session.clone(), req)?;
        let group = reserve.group.clone();
        let result = self.store.reserve(reserve).await;
        let reservation = self
            .count(&group, result)
            .map_err(|e| BrokerError::from_reserve(e, &session, &group))?;
        Ok(Access {
            session,
            reservation,
            pool_health,
        })
    }

    /// Creates a session holding `fields` and reserves for it, in one step.
    pub async fn request_interaction(
        &self,
        name: &ServiceName,
        service: &ServiceConfig,
        fields: Fields,
        ttl: Option<SessionTtl>,
        req: AccessRequest,
    ) -> Result<Access, BrokerError> {
        let (new, reserve, pool_health) = self.interaction(name, service, fields, ttl, req)?;
        let group = reserve.group.clone();
        let id = new.id.clone();
        let result = self.store.reserve_new_session(new, reserve).await;
        let (session, reservation) = self
            .count(&group, result)
            .map_err(|e| BrokerError::from_reserve(e, &id, &group))?;
        Ok(Access {
            session: session.id,
            reservation,
            pool_health,
        })
    }

    /// The session and reservation a request-interaction asks for.
    pub(super) fn interaction(
        &self,
        name: &ServiceName,
        service: &ServiceConfig,
        fields: Fields,
        ttl: Option<SessionTtl>,
        req: AccessRequest,
    ) -> Result<(NewSession, ReserveRequest, bool), BrokerError> {
        let node = &self.config.server.node_id;
        let ttl = ttl
            .or(service.ttl)
            .unwrap_or(SessionTtl::INTERACTION_DEFAULT);
        let id = SessionId::generate(node);
        let new = NewSession {
            data_id: crate::domain::DataId::of_session(&id),
            id,
            service: name.clone(),
            fields,
            ttl: ttl.duration(),
        };
        let (reserve, pool_health) = self.reserve_request(service, new.id.clone(), req)?;
        Ok((new, reserve, pool_health))
    }

    /// Counts a reservation or a refusal for the group's metrics.
    pub(super) fn count<T>(
        &self,
        group: &GroupName,
        result: Result<T, ReserveError>,
    ) -> Result<T, ReserveError> {
        match &result {
            Ok(_) => self.metrics.reserved(group.as_str(), super::now_minute()),
            Err(ReserveError::Exhausted { .. }) => {
                self.metrics.refused(group.as_str(), super::now_minute())
            }
            Err(_) => {}
        }
        result
    }

    /// Applies the precedence rules: request parameter, then service option, then the group's
    /// (booking time, in the store), then the built-in default.
    fn reserve_request(
        &self,
        service: &ServiceConfig,
        session: SessionId,
        req: AccessRequest,
    ) -> Result<(ReserveRequest, bool), BrokerError> {
        let group = group_for(service, req.group)?;
        let provide_code = req.provide_code.or(service.provide_code).unwrap_or(false);
        // A fresh code goes with every request: the group may require one whatever the
        // request says (`rules::booking::code_to_give` decides in the store).
        let length = req
            .code_length
            .or(service.access_code_length)
            .unwrap_or(CodeLength::DEFAULT);
        let prefix = &self.config.server.access_code_prefix;
        let code = if prefix.fits(length) {
            Some(AccessCode::generate(length, prefix))
        } else if provide_code || req.code_length.is_some() {
            return Err(BrokerError::CodeTooShort {
                length,
                prefix: prefix.clone(),
            });
        } else {
            None
        };
        let pool_health = req.pool_health.unwrap_or(service.return_pool_health);
        let reserve = ReserveRequest {
            session,
            group,
            timeout: req.booking_timeout.or(service.booking_timeout),
            code,
            provide_code,
            phone: req.phone,
            pool_health,
            quota: req.quota,
        };
        Ok((reserve, pool_health))
    }
}

/// The group a request reserves in: the one it names, else its service's; neither is 400.
pub fn group_for(
    service: &ServiceConfig,
    named: Option<GroupName>,
) -> Result<GroupName, BrokerError> {
    named
        .or_else(|| service.resource_group.clone())
        .ok_or(BrokerError::GroupRequired)
}
