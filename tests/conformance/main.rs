//! One conformance suite, every backend: memory, SQLite, and PostgreSQL when configured.
//!
//! Each case gets a fresh store and a manual clock, and steps the clock across expiry
//! boundaries exactly (`now >= expires_at` ends a reservation), so backends cannot disagree on
//! expiry without this suite noticing. One module per area; each lists its cases once in
//! `conformance!`, which makes `<area>::{memory,sqlite,postgres}::<case>` tests. The
//! PostgreSQL ones are listed as ignored in a build without `TEST_POSTGRES_URL`.

#[path = "../support/mod.rs"]
mod support;

mod admin;
mod allocation;
mod config;
mod expiry;
mod lifecycle;
mod matching;
mod page;
mod reserve;
mod retries;
mod sessions;
mod storage;

use std::future::Future;
use std::time::Duration;

use access_broker::domain::{AccessCode, AccessNumber, GroupName, PhoneNumber};
use access_broker::store::{MatchRequest, Reservation, ReservationFilter, ReserveError};
use support::{Backend, TestStore, number};

const SEC: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

/// Runs one case on a fresh store of `backend`, under the per-test time limit.
async fn run<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(TestStore) -> Fut,
    Fut: Future<Output = ()>,
{
    support::limit::within(async {
        let store = TestStore::require(backend).await;
        case(store).await;
    })
    .await;
}

/// Each case of an area as `memory::case`, `sqlite::case` and `postgres::case`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $( #[tokio::test] async fn $case() { $crate::run($crate::Backend::Memory, super::$case).await } )*
        }
        mod sqlite {
            $( #[tokio::test] async fn $case() { $crate::run($crate::Backend::Sqlite, super::$case).await } )*
        }
        mod postgres {
            $(
                #[tokio::test]
                #[cfg_attr(
                    no_postgres,
                    ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
                )]
                async fn $case() { $crate::run($crate::Backend::Postgres, super::$case).await }
            )*
        }
    };
}
pub(crate) use conformance;

fn code(s: &str) -> AccessCode {
    AccessCode::parse(s).expect("code")
}

fn phone(s: &str) -> PhoneNumber {
    PhoneNumber::parse(s).expect("phone")
}

fn group_name(s: &str) -> GroupName {
    GroupName::parse(s).expect("group name")
}

/// A match on `number` with no code, no phone, a code required, the session kept.
fn plain_match(number: &AccessNumber) -> MatchRequest {
    MatchRequest {
        number: number.clone(),
        code: None,
        phone: None,
        code_required: true,
        end_session: false,
        with_fields: true,
    }
}

/// Whether a plain match on `number` finds a live reservation (and so releases it).
async fn matches(t: &TestStore, number: &AccessNumber) -> bool {
    let m = t.store.match_reservation(plain_match(number)).await;
    m.expect("match").into_session().is_some()
}

/// A new five-minute session's reservation in `g`.
async fn reserve_fresh(t: &TestStore, g: &GroupName) -> Reservation {
    let s = t.session(300 * SEC).await;
    t.reserve(&s, g).await.expect("reserved")
}

/// The `retry_after` of a refusal for an empty pool; panics on any other answer.
fn exhausted(answer: Result<Reservation, ReserveError>) -> Duration {
    match answer {
        Err(ReserveError::Exhausted { retry_after }) => retry_after,
        other => panic!("expected Exhausted, got {other:?}"),
    }
}

/// How many live reservations the admin search finds on `n`.
async fn live_on(t: &TestStore, n: &str) -> usize {
    let filter = ReservationFilter {
        number: Some(number(n)),
        ..Default::default()
    };
    t.store.find_reservations(filter).await.expect("find").len()
}

/// The numbers a group lists, in the store's order.
async fn group_numbers(t: &TestStore, g: &GroupName) -> Vec<String> {
    let detail = t.store.group(g).await.expect("group");
    let detail = detail.expect("the group exists");
    detail
        .numbers
        .iter()
        .map(|n| n.number.to_string())
        .collect()
}
