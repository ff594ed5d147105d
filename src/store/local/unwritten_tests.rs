//! While the journal cannot write, a write whose answer needs no change answers as on a
//! healthy store (`LocalStore::unwritten`), and every other write is refused. The journal here
//! refuses every write for as long as the test runs: a real full disk lets a probe's one row
//! through now and then (the writer then tries writes again), which makes that state too
//! brief to hold a test on (`tests/disk_full.rs` covers the real file).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;

use super::LocalStore;
use super::engine::Engine;
use super::journal::{Change, Journal, JournalError};
use crate::clock::{Clock, ManualClock};
use crate::domain::{
    AccessNumber, Allocation, DataId, GroupName, NodeId, ServiceName, SessionId, UnixMillis,
};
use crate::rules::call::Reason;
use crate::store::{
    DeleteGroup, FreeNumber, GroupSettings, GroupSpec, MatchOutcome, MatchRequest, NewSession,
    RemoveNumber, ReserveError, ReserveRequest, Store, StoreError,
};

/// A journal whose writes always fail (a disk that stays full).
struct Refusing;

impl Journal for Refusing {
    fn submit(&self, _: Vec<Change>) -> u64 {
        unreachable!("a failing journal is never given changes")
    }
    fn pending(&self) -> Option<u64> {
        None
    }
    fn durable(&self, _: u64) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(std::future::ready(Ok(())))
    }
    fn usable(&self) -> Result<(), StoreError> {
        Ok(())
    }
    fn writable(&self) -> Result<(), StoreError> {
        Err(StoreError::unavailable("disk full"))
    }
}

fn number(n: &str) -> AccessNumber {
    AccessNumber::parse(n).expect("number")
}

fn group(name: &str) -> GroupName {
    GroupName::parse(name).expect("group")
}

#[tokio::test]
async fn writes_that_change_nothing_answer_while_writes_fail() {
    let clock = Arc::new(ManualClock::new(UnixMillis(1_000_000)));
    let now = clock.now();
    let node = NodeId::parse("1").expect("node");
    let mut engine = Engine::new();
    let spec = GroupSpec {
        settings: GroupSettings {
            name: group("G"),
            allocation: Allocation::RoundRobin,
            booking_timeout: None,
            policy: Default::default(),
        },
        numbers: vec![number("100"), number("101")],
    };
    engine.apply_groups(&[spec], now, &mut None);
    let session = SessionId::generate(&node);
    engine.create_session(
        NewSession {
            id: session.clone(),
            service: ServiceName::parse("callback").expect("service"),
            data_id: DataId::generate(&node),
            fields: Vec::new(),
            ttl: Duration::from_secs(300),
        },
        now,
        &mut None,
    );
    let engine = Arc::new(Mutex::new(engine));
    let store = LocalStore::durable(engine, clock, Box::new(Refusing), "test");
    let ask = |session: &SessionId, name: &str| ReserveRequest {
        session: session.clone(),
        group: group(name),
        timeout: None,
        code: None,
        provide_code: false,
        phone: None,
        pool_health: false,
        quota: None,
    };
    let unknown = SessionId::generate(&node);
    assert!(matches!(
        store.reserve(ask(&unknown, "G")).await,
        Err(ReserveError::SessionNotFound)
    ));
    assert!(matches!(
        store.reserve(ask(&session, "NOPE")).await,
        Err(ReserveError::UnknownGroup)
    ));
    let call = MatchRequest {
        number: number("999"),
        code: None,
        phone: None,
        code_required: true,
        end_session: false,
        with_fields: false,
    };
    match store.match_reservation(call).await {
        Ok(MatchOutcome::NoMatch { reason, .. }) => assert_eq!(reason, Reason::UnknownNumber),
        other => panic!("{other:?}"),
    }
    let entry = DataId::generate(&node);
    assert_eq!(store.delete_data(&entry).await.ok(), Some(false));
    assert_eq!(
        store.delete_group(&group("NOPE")).await.ok(),
        Some(DeleteGroup::NotFound)
    );
    assert_eq!(
        store.remove_number(&group("G"), &number("999")).await.ok(),
        Some(RemoveNumber::UnknownNumber)
    );
    assert_eq!(
        store
            .remove_number(&group("NOPE"), &number("100"))
            .await
            .ok(),
        Some(RemoveNumber::UnknownGroup)
    );
    assert_eq!(
        store.free_number(&group("NOPE"), &number("100")).await.ok(),
        Some(FreeNumber::UnknownGroup)
    );
    assert_eq!(store.release(&number("100")).await.ok(), Some(false));
    // What would change something is refused.
    assert!(matches!(
        store.reserve(ask(&session, "G")).await,
        Err(ReserveError::Store(StoreError::Unavailable(_)))
    ));
    assert!(
        store
            .remove_number(&group("G"), &number("100"))
            .await
            .is_err()
    );
    assert!(store.delete_group(&group("G")).await.is_err());
    assert!(store.end_session(&session).await.is_err());
}
