//! The stores under comparison, opened side by side, and the number aliases that line up
//! random allocation across them.

use std::collections::HashMap;
use std::time::Duration;

use access_broker::domain::{AccessNumber, Allocation, BookingTimeout, GroupName};
use access_broker::store::{DynStore, GroupChange, PutGroup, StoreError};

use crate::support::{Backend, TestStore};

/// The one place that calls `Store::put_group`. A `None` booking timeout keeps the group's;
/// `true` when the group was created.
pub async fn put_group(
    store: &DynStore,
    name: &GroupName,
    allocation: Allocation,
    booking_timeout: Option<BookingTimeout>,
) -> Result<bool, StoreError> {
    let change = GroupChange {
        name: name.clone(),
        allocation: Some(allocation),
        booking_timeout: booking_timeout.map(Some),
        policy: Default::default(),
        numbers: Vec::new(),
    };
    Ok(store.put_group(change).await? == PutGroup::Created)
}

/// One store with its own clock, and how its numbers map onto the reference store's.
///
/// Random allocation picks different numbers on different stores. When store 0 (memory, the
/// reference) picks `a` and this store picks `b`, `b` becomes an alias of `a`: every later
/// operation that names "the number of that reservation" uses `b` here and `a` there, and
/// every answer is translated back to reference numbers before comparing. Two free numbers of
/// a random group are interchangeable, so swapping their aliases keeps both stores' states
/// equal. Numbers never picked at random map to themselves.
pub struct Side {
    pub t: TestStore,
    to_ref: HashMap<AccessNumber, AccessNumber>,
    from_ref: HashMap<AccessNumber, AccessNumber>,
}

impl Side {
    pub fn name(&self) -> &'static str {
        self.t.store.kind()
    }

    /// The reference store's name for this store's `number`.
    pub fn to_ref(&self, number: &AccessNumber) -> AccessNumber {
        self.to_ref.get(number).unwrap_or(number).clone()
    }

    /// Whether `number` was ever paired with another store's number (a random pick): its
    /// history (last reservation, stray calls) then belongs to different numbers on
    /// different stores.
    pub fn aliased(&self, number: &AccessNumber) -> bool {
        self.to_ref.contains_key(number) || self.from_ref.contains_key(number)
    }

    /// This store's name for the reference store's `number`.
    pub fn local(&self, number: &AccessNumber) -> AccessNumber {
        self.from_ref.get(number).unwrap_or(number).clone()
    }

    /// Records that this store's `got` is the reference store's `want` (a random pick).
    pub fn alias(&mut self, got: &AccessNumber, want: &AccessNumber) {
        let was = self.to_ref(got);
        if &was == want {
            return;
        }
        let other = self.local(want);
        self.to_ref.insert(got.clone(), want.clone());
        self.from_ref.insert(want.clone(), got.clone());
        self.to_ref.insert(other.clone(), was.clone());
        self.from_ref.insert(was, other);
    }
}

pub struct Stores {
    /// Memory first: the reference every other answer is compared with.
    pub sides: Vec<Side>,
}

impl Stores {
    /// Memory, SQLite and, when configured, PostgreSQL, each empty with a fresh manual clock.
    pub async fn open() -> Stores {
        let mut sides = Vec::new();
        for backend in [Backend::Memory, Backend::Sqlite, Backend::Postgres] {
            if let Some(t) = TestStore::open(backend).await {
                sides.push(Side {
                    t,
                    to_ref: HashMap::new(),
                    from_ref: HashMap::new(),
                });
            }
        }
        Stores { sides }
    }

    /// Moves every store's clock by the same amount.
    pub fn advance(&self, by: Duration) {
        for side in &self.sides {
            side.t.advance(by);
        }
    }
}

/// Runs `$body` on every side at once (`$s` is the `&Side`) and collects the answers in side
/// order. The body may borrow from the caller: bind owned values to references first, as the
/// async block moves what it captures.
#[macro_export]
macro_rules! on_all {
    ($stores:expr, |$s:ident| $body:expr) => {
        futures::future::join_all($stores.sides.iter().map(|$s| async move { $body })).await
    };
}
