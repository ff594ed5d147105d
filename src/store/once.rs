//! Creations run at most once per `Idempotency-Key`: the types every store shares.
//!
//! A client that lost an answer (a timeout, a broken connection, a 503 whose outcome was
//! unknown) retries with the same key and gets the first answer, never a second session or
//! reservation. Each store keeps the answer in the same atomic step as the creation (one
//! engine lock and journal batch, or one PostgreSQL transaction), so a creation and its
//! remembered answer land together or not at all. Only successful answers are kept: an
//! error changed nothing, so a retry may as well try again.

use std::sync::Arc;
use std::time::Duration;

use crate::domain::DataId;

use super::{Fields, NewSession, Reservation, ReserveRequest, Session};

/// How long a key's first answer is kept.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// A client's key: the same key from two clients names two different calls.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    /// The Basic-auth user name, else the source address.
    pub client: String,
    pub key: String,
}

/// What to create.
#[derive(Debug, Clone)]
pub enum Creation {
    Session(NewSession),
    /// A session and its reservation (request-interaction).
    Interaction(NewSession, ReserveRequest),
    Data {
        id: DataId,
        fields: Fields,
        ttl: Duration,
    },
    /// Adds or replaces fields of a stored entry and sets its ttl (`POST /storage/{id}/{ttl}`);
    /// an entry that is not there is [`ReserveError::Refused`].
    Update {
        id: DataId,
        fields: Fields,
        ttl: Duration,
    },
    /// Nothing: the caller refused the call already (a limit). A key that has an answer
    /// still replays it (a retry gets what the first call got); else [`ReserveError::Refused`].
    ///
    /// [`ReserveError::Refused`]: super::ReserveError::Refused
    Refused,
}

/// What a creation made.
#[derive(Debug, Clone)]
pub enum Created {
    Session(Session),
    Interaction(Session, Reservation),
    Data(DataId),
    Updated(DataId),
}

/// The answer's fields for what was created, computed by the caller; the store keeps them.
pub type AnswerFn = Arc<dyn Fn(&Created) -> Fields + Send + Sync>;

/// The outcome of a creation under a key.
#[derive(Debug, Clone)]
pub enum Once {
    /// Created now; its answer is remembered.
    First(Created),
    /// Created by an earlier call with this key: its answer's fields.
    Replay(Fields),
}
