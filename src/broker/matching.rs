//! match-interaction: the IVR's side. What a call does is decided in the store, atomically
//! with its effects (`rules::call`); the broker applies the service's leniency option and
//! counts and logs outcomes: late matches, lockouts, stray calls and quarantines.

use crate::config::ServiceConfig;
use crate::domain::{AccessCode, AccessNumber, GroupName, PhoneNumber};
use crate::store::{MatchOutcome, MatchRequest, Session};

/// A successful match: the session, and whether it came from a late call.
#[derive(Debug, Clone)]
pub struct Matched {
    pub session: Session,
    /// The group of the matched number.
    pub group: GroupName,
    pub late: bool,
}

use super::{Broker, BrokerError};

#[derive(Debug, Clone)]
pub struct MatchParams {
    pub number: AccessNumber,
    pub code: Option<AccessCode>,
    pub phone: Option<PhoneNumber>,
    pub end_session: bool,
    /// The answer shows the session's fields (`_return_data`).
    pub return_data: bool,
}

impl Broker {
    pub async fn match_interaction(
        &self,
        service: &ServiceConfig,
        p: MatchParams,
    ) -> Result<Matched, BrokerError> {
        let number = p.number.clone();
        let req = MatchRequest {
            number: p.number,
            code: p.code,
            phone: p.phone,
            code_required: !service.match_without_code,
            end_session: p.end_session,
            with_fields: p.return_data,
        };
        match self.store.match_reservation(req).await? {
            MatchOutcome::Matched {
                session,
                group,
                late,
                locked,
            } => {
                self.metrics.matched(if late { "late" } else { "hit" });
                if locked.is_some() {
                    self.metrics.code_lockout(group.as_str());
                    tracing::warn!(%number, group = group.as_str(), "too many wrong codes: reservation cancelled");
                }
                if late {
                    self.metrics.late_match(group.as_str(), super::now_minute());
                    tracing::info!(%number, group = group.as_str(), session = %session.id, "late call matched an ended reservation");
                }
                Ok(Matched {
                    session,
                    group,
                    late,
                })
            }
            MatchOutcome::NoMatch {
                reason,
                group,
                locked,
                stray,
                quarantined,
            } => {
                self.metrics.matched("miss");
                let group = group.map(|g| g.to_string()).unwrap_or_default();
                if locked.is_some() {
                    self.metrics.code_lockout(&group);
                    tracing::warn!(%number, group = group.as_str(), "too many wrong codes: reservation cancelled");
                }
                if stray {
                    self.metrics.stray_call(&group, super::now_minute());
                }
                if quarantined {
                    tracing::warn!(%number, group = group.as_str(), "stray calls: number quarantined until an operator frees it");
                }
                let reason = service.return_failure_reason.then_some(reason);
                Err(BrokerError::NoMatch { number, reason })
            }
        }
    }
}
