//! The purge loop a store handle owns: it frees the space of expired rows now and then.
//! It never decides expiry (reads do), so its interval bounds disk and memory use, and how
//! late an expiry nobody called about is told (the purge notices it and sends its
//! `reservation.expired`).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{Store, StoreOptions};

/// How often a store purges while someone waits for its expiries: `[events]`' outbox, or a
/// live event stream listening now (`GET /genesys/1/admin/events`).
pub const HEARD_EVERY: Duration = Duration::from_secs(5);
/// How often it purges while no one does (a purge may scan every number: PostgreSQL's).
pub const UNHEARD_EVERY: Duration = Duration::from_secs(30);

/// Runs `purge_expired` until the store is dropped (it holds only a `Weak`): every
/// [`HEARD_EVERY`] while the events are kept or streamed, else every [`UNHEARD_EVERY`]. (A
/// stream without `[events]` got its expiries up to 30 s late.)
pub fn spawn(store: &Arc<dyn Store>, options: &StoreOptions) -> tokio::task::JoinHandle<()> {
    let weak: Weak<dyn Store> = Arc::downgrade(store);
    let keep_outbox = options.keep_outbox;
    let bus = options.bus.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARD_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut last = Instant::now();
        loop {
            tick.tick().await;
            let heard = keep_outbox || bus.receiver_count() > 0;
            if !heard && last.elapsed() < UNHEARD_EVERY {
                continue;
            }
            last = Instant::now();
            let Some(store) = weak.upgrade() else { return };
            match store.purge_expired().await {
                Ok(n) if n > 0 => tracing::debug!(purged = n, "expired entries purged"),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "purge failed; will retry"),
            }
        }
    })
}
