//! request-interaction on PostgreSQL (a new session and its reservation in one call), a
//! batch at a time (`batch.rs`): the batch's sessions are inserted first, then reserved for
//! exactly as a batch of request-access calls is (`reserve::reserve_many`: the same rules,
//! in arrival order), and a call refused a number takes its session back out in the same
//! transaction, so a refusal leaves no session behind ("no error leaves a half-made
//! reservation or session"). One transaction and one commit for every call waiting
//! together, where each was a transaction of its own.
//!
//! Lock order as every path (clients, sessions, numbers): the new sessions' rows are locked
//! by their insert, which no other transaction can be waiting for.

use tokio_postgres::types::Type;

use super::prepared::Stmt;
use super::reserve::{Writes, reserve_many};
use super::sessions;
use crate::events::Event;
use crate::store::{NewSession, Reservation, ReserveError, ReserveRequest, Session, StoreError};

/// request-interaction calls as a batch (`batch.rs`).
pub struct Interacting;

/// What the batch writes with its `COMMIT`: the reservations, and the sessions (with their
/// data rows) of the calls that were refused.
pub struct Plan {
    writes: Writes,
    refused: Vec<(String, String)>,
}

impl super::batch::Work for Interacting {
    type Req = (NewSession, ReserveRequest);
    type Ans = Result<(Session, Reservation), ReserveError>;
    type Plan = Plan;

    async fn decide(
        client: &deadpool_postgres::Client,
        db: &super::Db,
        reqs: &[Self::Req],
    ) -> Result<(Vec<Self::Ans>, Plan), StoreError> {
        // The sessions inserted ahead of the reservations' reads, in their first round trip.
        let inserts = sessions::inserts(reqs.iter().map(|(new, _)| new), db.frozen());
        let asks: Vec<ReserveRequest> = reqs.iter().map(|(_, req)| req.clone()).collect();
        let (answers, writes) =
            reserve_many(client, db.frozen(), &db.walks, inserts.into(), &asks).await?;
        let mut refused = Vec::new();
        let answers = reqs
            .iter()
            .zip(answers)
            .map(|((new, _), answer)| match answer {
                Ok(reservation) => Ok((sessions::created(new), reservation)),
                Err(refusal) => {
                    refused.push((new.id.as_str().to_owned(), new.data_id.as_str().to_owned()));
                    Err(refusal)
                }
            })
            .collect();
        Ok((answers, Plan { writes, refused }))
    }

    async fn write(
        client: &deadpool_postgres::Client,
        _reqs: &[Self::Req],
        plan: &Plan,
        finish: &mut super::batch::Finish,
    ) -> Result<Vec<Event>, StoreError> {
        let mut stmts = plan.writes.stmts();
        if !plan.refused.is_empty() {
            let (ids, data_ids): (Vec<&str>, Vec<&str>) = plan
                .refused
                .iter()
                .map(|(id, data)| (id.as_str(), data.as_str()))
                .unzip();
            stmts.push(
                Stmt::new("DELETE FROM sessions WHERE id = ANY($1)").bind(ids, Type::TEXT_ARRAY),
            );
            stmts.push(
                Stmt::new("DELETE FROM data WHERE id = ANY($1)").bind(data_ids, Type::TEXT_ARRAY),
            );
        }
        finish.last(client, &stmts).await?;
        Ok(plan.writes.events.clone())
    }

    fn after_commit<'a>(
        db: &'a super::Db,
        reqs: &'a [Self::Req],
        answers: &'a mut [Self::Ans],
    ) -> impl std::future::Future<Output = ()> + Send + 'a {
        super::retry_after::recount(db, reqs.iter().map(|(_, req)| req).zip(answers))
    }

    fn failed(err: StoreError) -> Self::Ans {
        Err(err.into())
    }
}
