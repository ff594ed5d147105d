//! The storage API's records: put, get, update (merging fields and restarting the TTL),
//! delete, and expiry exactly at the end of the TTL; concurrent updates all land.

use access_broker::domain::DataId;

use crate::support::{TestStore, node};
use crate::{MS, SEC};

crate::conformance!(
    storage_put_get_update_delete_expire,
    concurrent_updates_keep_every_field,
);

fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn storage_put_get_update_delete_expire(t: TestStore) {
    let id = DataId::generate(&node());
    let first = fields(&[("name", "Zoë"), ("n", "1")]);
    t.store
        .put_data(id.clone(), first.clone(), 10 * SEC)
        .await
        .expect("put");
    assert_eq!(t.store.data(&id).await.expect("get"), Some(first));
    t.advance(5 * SEC);
    let update = fields(&[("n", "2"), ("extra", "x")]);
    assert!(
        t.store
            .update_data(&id, update, 10 * SEC)
            .await
            .expect("update")
    );
    let merged = fields(&[("name", "Zoë"), ("n", "2"), ("extra", "x")]);
    assert_eq!(t.store.data(&id).await.expect("get"), Some(merged));
    for (step, alive, why) in [
        (10 * SEC - MS, true, "new ttl counts from the update"),
        (MS, false, "gone at its end"),
    ] {
        t.advance(step);
        assert_eq!(
            t.store.data(&id).await.expect("get").is_some(),
            alive,
            "{why}"
        );
    }
    let updated = t.store.update_data(&id, vec![], 10 * SEC).await;
    assert!(!updated.expect("update"), "expired: unknown");
    assert!(!t.store.delete_data(&id).await.expect("delete"));
    let id2 = DataId::generate(&node());
    t.store
        .put_data(id2.clone(), vec![], 10 * SEC)
        .await
        .expect("put");
    assert!(t.store.delete_data(&id2).await.expect("delete"));
    assert!(t.store.data(&id2).await.expect("get").is_none());
}

/// Updates racing on one entry each keep the others' fields (no lost merge), on every store:
/// SQLite merges in its writer's transaction, PostgreSQL under a row lock.
async fn concurrent_updates_keep_every_field(t: TestStore) {
    let id = DataId::generate(&node());
    let first = fields(&[("base", "0")]);
    t.store
        .put_data(id.clone(), first, 60 * SEC)
        .await
        .expect("put");
    let updates = (0..20).map(|i| {
        let (store, id) = (t.store.clone(), id.clone());
        let update = vec![
            (format!("k{i}"), format!("v{i}")),
            ("last".into(), "any".into()),
        ];
        async move { store.update_data(&id, update, 60 * SEC).await }
    });
    for updated in futures::future::join_all(updates).await {
        assert!(updated.expect("update"), "live entry");
    }
    let stored = t.store.data(&id).await.expect("get").expect("live");
    assert_eq!(stored.len(), 22, "base, last and 20 keys: {stored:?}");
    for i in 0..20 {
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        assert!(stored.contains(&(k, v)), "k{i} kept");
    }
}
