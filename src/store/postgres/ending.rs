//! Ending sessions on PostgreSQL (`DELETE /genesys/1/service/{id}`), a batch at a time
//! (`batch.rs`): the batch's sessions end together (`sessions::end_all`: one statement
//! deletes them, their live reservations end in number order, their data rows go), in one
//! transaction and one WAL flush for every session ended meanwhile, where each was a
//! transaction of its own.
//!
//! The same answers as one by one in arrival order: a session named twice in a batch ends
//! for the first call and is not found for the second.

use super::sessions::end_all;
use crate::domain::SessionId;
use crate::events::Event;
use crate::store::StoreError;

/// Session ends as a batch (`batch.rs`); an answer says whether the session was live.
pub struct Ending;

impl super::batch::Work for Ending {
    type Req = SessionId;
    type Ans = Result<bool, StoreError>;
    /// The events of the reservations the batch ended.
    type Plan = Vec<Event>;

    async fn decide(
        client: &deadpool_postgres::Client,
        db: &super::Db,
        reqs: &[SessionId],
    ) -> Result<(Vec<Self::Ans>, Self::Plan), StoreError> {
        let ids: Vec<&str> = reqs.iter().map(SessionId::as_str).collect();
        let (mut live, events) = end_all(client, db.frozen(), &ids).await?;
        // In arrival order: the first call for a session ended it, a second found none.
        let answers = reqs.iter().map(|id| Ok(live.remove(id.as_str()))).collect();
        Ok((answers, events))
    }

    /// Only the `COMMIT` is left (`batch::Finish`).
    async fn write(
        client: &deadpool_postgres::Client,
        _reqs: &[SessionId],
        events: &Vec<Event>,
        finish: &mut super::batch::Finish,
    ) -> Result<Vec<Event>, StoreError> {
        finish.last(client, &[]).await?;
        Ok(events.clone())
    }

    fn failed(err: StoreError) -> Self::Ans {
        Err(err)
    }
}
