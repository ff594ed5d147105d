//! The purge loop a store handle owns: it frees the space of expired rows now and then.
//! It never decides expiry (reads do), so its interval only bounds disk and memory use.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::Store;

/// How often a store purges: every 30 s, or every 5 s when `[events]` waits on it (the purge
/// is what notices an expiry nobody called about and sends its `reservation.expired`).
pub fn interval(options: &super::StoreOptions) -> Duration {
    Duration::from_secs(if options.keep_outbox { 5 } else { 30 })
}

/// Runs `purge_expired` every `every` until the store is dropped (it holds only a `Weak`).
pub fn spawn(store: &Arc<dyn Store>, every: Duration) -> tokio::task::JoinHandle<()> {
    let weak: Weak<dyn Store> = Arc::downgrade(store);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(store) = weak.upgrade() else { return };
            match store.purge_expired().await {
                Ok(n) if n > 0 => tracing::debug!(purged = n, "expired entries purged"),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "purge failed; will retry"),
            }
        }
    })
}
