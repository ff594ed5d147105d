//! The SQLite store when its file cannot grow, in-process and without root: the writer's
//! connection gets `PRAGMA max_page_count` just above the file's size, and a second
//! connection fills the room with a table of its own, so commits that need a new page fail
//! with a real `SQLITE_FULL`; deleting that table frees the pages again. (`tests/disk_full.rs`
//! does the same on a real full tmpfs, as root.)

use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::open_local;
use crate::domain::{DataId, NodeId};
use crate::store::{Store, StoreError, StoreOptions};

/// Pages the writer may add beyond the file's size at open.
const ROOM: i64 = 64;

fn node() -> NodeId {
    NodeId::parse("7").expect("node id")
}

fn fields(bytes: usize) -> Vec<(String, String)> {
    vec![("k".to_owned(), "x".repeat(bytes))]
}

/// A connection beside the store's, as another process would have one.
fn neighbour(path: &std::path::Path) -> Connection {
    let conn = Connection::open(path).expect("second connection");
    conn.busy_timeout(Duration::from_secs(5)).expect("busy");
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_file_costs_one_rebuild_per_probe_not_one_per_refused_write() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("full.db");
    let options = StoreOptions::default();
    let store = open_local(&path, &options, |conn| {
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .map_err(|e| e.to_string())?;
        conn.pragma_update(None, "max_page_count", pages + ROOM)
            .map_err(|e| e.to_string())
    })
    .await
    .expect("opens");
    let kept = DataId::generate(&node());
    store
        .put_data(kept.clone(), fields(10), Duration::from_secs(600))
        .await
        .expect("a write while there is room");

    // Another connection takes the room (it has no cap), then writes need a page: refused.
    let other = neighbour(&path);
    other
        .execute_batch("CREATE TABLE filler (b BLOB)")
        .expect("filler table");
    let blob = vec![0u8; (ROOM as usize + 16) * 4096];
    other
        .execute("INSERT INTO filler VALUES (?1)", [blob])
        .expect("fill");
    let mut refused = None;
    for _ in 0..50 {
        let id = DataId::generate(&node());
        if let Err(e) = store
            .put_data(id.clone(), fields(8192), Duration::from_secs(600))
            .await
        {
            refused = Some(id);
            assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
            break;
        }
    }
    let refused = refused.expect("a full file refuses writes");
    assert_eq!(
        store.rebuilds(),
        1,
        "the failed commit rebuilt the engine once"
    );

    // Many more writes while it stays full: each is refused, and rebuilds stay bounded by
    // the probe interval (a probe may find room for its one row, let one write fail, and
    // that failure rebuilds again), not by the number of writes.
    let started = Instant::now();
    let attempts = 300;
    let mut refusals = 0;
    for _ in 0..attempts {
        let r = store
            .put_data(
                DataId::generate(&node()),
                fields(8192),
                Duration::from_secs(600),
            )
            .await;
        if r.is_err() {
            refusals += 1;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let probes = started.elapsed().as_millis() / super::writer::PROBE_EVERY.as_millis();
    let rebuilds = store.rebuilds();
    assert_eq!(refusals, attempts, "nothing fits while the file is full");
    assert!(
        rebuilds <= 2 + probes as u64,
        "{rebuilds} rebuilds for {attempts} refused writes over {probes} probe intervals"
    );
    assert!(rebuilds < attempts / 4, "{rebuilds} rebuilds");
    // The count operators see: the trait's, as `/metrics` reads it at each scrape.
    let dynamic: &dyn crate::store::Store = &store;
    assert_eq!(dynamic.rebuilds(), rebuilds);
    let metrics = crate::metrics::Metrics::new();
    metrics.set_store_rebuilds(dynamic.rebuilds());
    let text = metrics.encode();
    assert!(
        text.contains(&format!("access_broker_store_rebuilds_total {rebuilds}")),
        "{text}"
    );

    // Reads keep working; the refused write left nothing; /ready would say 503.
    assert!(store.data(&kept).await.expect("read").is_some());
    assert_eq!(store.data(&refused).await.expect("read"), None);
    assert!(store.groups().await.is_ok());
    assert!(store.ping().await.is_err(), "ping fails while writes fail");

    // Room returns: a probe lets writes in again, with no restart and no further rebuild.
    other.execute_batch("DROP TABLE filler").expect("free");
    let before = store.rebuilds();
    let started = Instant::now();
    while store.ping().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "writable again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = DataId::generate(&node());
    store
        .put_data(again.clone(), fields(8192), Duration::from_secs(600))
        .await
        .expect("writes work again");
    assert!(store.data(&again).await.expect("read").is_some());
    assert_eq!(store.rebuilds(), before, "recovering needs no rebuild");
}
