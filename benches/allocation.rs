//! Allocation cost against pool size: reserve + release cycles on the memory store for
//! groups of 10, 100,000 and 1,000,000 numbers, per allocation rule. Prints each rate and its
//! ratio to the 10-number group; flat cost means ratios near 1.0.
//!
//! Run: `cargo bench --bench allocation`. Not a test: it reports, it never fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use access_broker::clock::SystemClock;
use access_broker::domain::{
    AccessNumber, Allocation, DataId, GroupName, NodeId, ServiceName, SessionId,
};
use access_broker::store::local::LocalStore;
use access_broker::store::{GroupSettings, GroupSpec, NewSession, ReserveRequest, Store};

const CYCLES: usize = 200_000;

async fn rate(size: u32, allocation: Allocation) -> f64 {
    let store = LocalStore::memory(Arc::new(SystemClock));
    let name = GroupName::parse("G").expect("name");
    let numbers = (0..size)
        .map(|i| AccessNumber::parse(&format!("{:07}", i)).expect("number"))
        .collect();
    let spec = GroupSpec {
        settings: GroupSettings {
            name: name.clone(),
            allocation,
            booking_timeout: None,
            policy: Default::default(),
        },
        numbers,
    };
    store.apply_groups(&[spec]).await.expect("apply");
    let node = NodeId::default();
    let mut sessions = Vec::new();
    for _ in 0..1000 {
        let new = NewSession {
            id: SessionId::generate(&node),
            service: ServiceName::parse("s").expect("name"),
            data_id: DataId::generate(&node),
            fields: vec![],
            ttl: Duration::from_secs(3600),
        };
        sessions.push(store.create_session(new).await.expect("session").id);
    }
    let request = |session: &SessionId| ReserveRequest {
        session: session.clone(),
        group: name.clone(),
        timeout: None,
        code: None,
        provide_code: false,
        phone: None,
        pool_health: false,
        quota: None,
    };
    // Keep half the pool (at most 5 numbers) busy so allocation has to skip reserved numbers.
    let busy = (size as usize / 2).min(5);
    for session in &sessions[..busy] {
        store.reserve(request(session)).await.expect("reserved");
    }
    let free_sessions = &sessions[busy..];
    let started = Instant::now();
    for i in 0..CYCLES {
        let req = request(&free_sessions[i % free_sessions.len()]);
        let r = store.reserve(req).await.expect("reserved");
        store.release(&r.number).await.expect("released");
    }
    CYCLES as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    println!(
        "{:<22} {:>12} {:>16} {:>9}",
        "allocation", "pool size", "reserve+release/s", "ratio"
    );
    for allocation in Allocation::ALL {
        let base = rate(10, allocation).await;
        for size in [10, 100_000, 1_000_000] {
            let r = if size == 10 {
                base
            } else {
                rate(size, allocation).await
            };
            println!(
                "{:<22} {:>12} {:>16.0} {:>9.2}",
                allocation.as_str(),
                size,
                r,
                r / base
            );
        }
    }
}
