//! The store's timeout for waiting requests, kept by one thread for all of them instead of a
//! timer per request: a request waiting for its batch arms nothing (a tokio timer is a lock
//! on the timer wheel to arm it and another to cancel it, on every write), and a writer that
//! hangs (a disk that stops answering) still gets its waiters answered 503 within the store's
//! timeout plus one tick.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::outcome::Outcomes;

/// Longest time between two looks at the waiters.
const MAX_TICK: Duration = Duration::from_millis(100);

/// Starts the thread; it stops when the returned sender is dropped (with the journal).
pub fn start(outcomes: &Arc<Outcomes>, timeout: Duration) -> mpsc::Sender<()> {
    let (stop, stopped) = mpsc::channel::<()>();
    let outcomes: Weak<Outcomes> = Arc::downgrade(outcomes);
    let tick = (timeout / 10).clamp(Duration::from_millis(1), MAX_TICK);
    let spawned = std::thread::Builder::new()
        .name("sqlite-deadline".into())
        .spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                let Some(outcomes) = outcomes.upgrade() else {
                    return;
                };
                outcomes.expire(timeout);
            }
        });
    if let Err(err) = spawned {
        tracing::error!(error = %err, "cannot start the sqlite deadline thread; a hung commit will not time out");
    }
    stop
}
