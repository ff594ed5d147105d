//! Webhook delivery (`[events]`): a task per node that posts the store's due outbox events to
//! the configured URL, signed, and tells the store how each attempt went.
//!
//! At least once: an event leaves the outbox only after a 2xx answer (or after 24 h of
//! failures, when it is given up, counted and logged). Anything else, a timeout included, is
//! retried with the same `id`: the first retry within 5 s, then doubling, at most 5 min apart.
//! The schedule lives in the store, not here, so a restart (or, on PostgreSQL, another node)
//! picks up exactly where this task stopped. A stuck endpoint shows as a growing
//! `access_broker_events_backlog`; it never makes the node unready.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use hmac::{KeyInit, Mac};
use tokio::sync::watch;

use super::Event;
use super::pace::Pace;
use crate::config::EventsConfig;
use crate::metrics::Metrics;
use crate::store::{DynStore, PendingEvent};

/// The header carrying `sha256=<hex HMAC-SHA256 of the body with the secret>`.
pub const SIGNATURE_HEADER: &str = "x-access-broker-signature";
/// How long an event is retried before it is given up.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// A delivery that has not answered by then failed (the PostgreSQL lease is longer).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection not made by then is a busy receiver (`Outcome::Busy`): under the kernel's
/// first SYN retry (1 s), which is what a receiver whose listen queue is full gets. (32
/// connections at once to a receiver with a queue of 5: 25 waited in `SYN-SENT`, and the
/// outbox drained at ~64 events a second, with not one failure to slow down for.)
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(900);
/// How often the outbox is polled when it had nothing due.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// `sha256=<hex>` for a body: what the receiver recomputes with the shared secret.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + digest.len() * 2);
    hex.push_str("sha256=");
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// The wait before the next attempt after `failures` failed ones (1 = the first failure):
/// 4 s, 8 s, 16 s, … at most 5 min. The first is 4 s, not 5, so that the retry, which also
/// waits for its turn and its connection, still comes within the contract's 5 s.
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(10);
    (Duration::from_secs(4) * 2u32.pow(doublings)).min(Duration::from_secs(300))
}

/// Posts events to one URL.
#[derive(Clone)]
pub struct Deliverer {
    client: reqwest::Client,
    config: Arc<EventsConfig>,
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Another answer than a 2xx (or 429/503), or none in time: what the log says of it.
    Failed(String),
    /// The receiver is busy (no connection, a reset, 429 or 503): as `Failed`, and fewer
    /// are sent at once (`pace.rs`).
    Busy(String),
}

impl Deliverer {
    pub fn new(config: EventsConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            client,
            config: Arc::new(config),
        }
    }

    /// One attempt: the event's JSON, signed.
    pub async fn post(&self, event: &Event) -> Outcome {
        let body = event.to_json().to_string();
        let signature = signature(self.config.secret.expose(), body.as_bytes());
        let sent = self
            .client
            .post(self.config.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Outcome::Delivered,
            Ok(r) if matches!(r.status().as_u16(), 429 | 503) => {
                Outcome::Busy(format!("answered {}", r.status()))
            }
            Ok(r) => Outcome::Failed(format!("answered {}", r.status())),
            Err(e) if e.is_connect() => {
                Outcome::Busy(crate::telemetry::Chain(&e.without_url()).to_string())
            }
            // Not taken as busy: behind a receiver that hangs, fewer at once would only
            // work the backlog off slower (each attempt waits its 10 s either way).
            Err(e) if e.is_timeout() => {
                Outcome::Failed(format!("no answer within {ATTEMPT_TIMEOUT:?}"))
            }
            // Without the URL: its query may carry a token (`?token=…`), and the log says
            // which events are failing, not where the one `[events] url` points.
            Err(e) => Outcome::Busy(crate::telemetry::Chain(&e.without_url()).to_string()),
        }
    }

    /// Delivers for ever: up to `pace::MOST` attempts in flight (fewer while the receiver is
    /// busy: `pace.rs`), the next due events started as places free up, and each outcome
    /// recorded as it comes. (Rounds that waited for their slowest attempt held every other
    /// event behind a receiver that hung: a failure was rescheduled only when its round
    /// ended, and retries starved behind new events.)
    ///
    /// When `stop` turns true (the node is stopping) it starts nothing more, lets the
    /// attempts under way finish within `wrap_up`, records those delivered and gives the
    /// rest back to the outbox (`Store::events_unclaim`), then returns.
    async fn run(
        &self,
        store: &DynStore,
        metrics: &Metrics,
        mut stop: watch::Receiver<bool>,
        wrap_up: Duration,
    ) {
        let mut flying = FuturesUnordered::new();
        // Read from the outbox and not started yet: started as places free up. (On
        // PostgreSQL every event read is leased to this node for a minute; one read and
        // dropped waited out its lease before any node sent it.)
        let mut queued: VecDeque<PendingEvent> = VecDeque::new();
        // Events queued, being sent, or delivered and not yet recorded: never started twice.
        let mut sending: HashSet<String> = HashSet::new();
        let mut done: Vec<String> = Vec::new();
        let mut pace = Pace::default();
        loop {
            if !done.is_empty() {
                match store.events_done(&done).await {
                    Ok(()) => done.drain(..).for_each(|id| {
                        sending.remove(&id);
                    }),
                    Err(err) => warn_unreadable(&err),
                }
            }
            // Topped up in halves of what the receiver takes at once, so a steady flow reads
            // the outbox once per few events and a due retry waits behind few. The embedded
            // stores lease nothing: what is in flight comes back and is skipped. Retries go
            // first (the stores offer them first too): a retry queued behind a backlog came
            // as late as the backlog was long, not within the contract's 5 s.
            let room = pace.limit();
            if flying.len() + queued.len() <= room / 2 {
                match store.due_events(room + sending.len()).await {
                    Ok(due) => {
                        let mut retries = Vec::new();
                        for pending in due {
                            if sending.insert(pending.event.id.clone()) {
                                if pending.attempts > 0 {
                                    retries.push(pending);
                                } else {
                                    queued.push_back(pending);
                                }
                            }
                        }
                        for retry in retries.into_iter().rev() {
                            queued.push_front(retry);
                        }
                    }
                    Err(err) => warn_unreadable(&err),
                }
                if let Ok(backlog) = store.outbox_len().await {
                    metrics.set_event_backlog(backlog);
                }
            }
            while flying.len() < pace.limit() {
                let Some(pending) = queued.pop_front() else {
                    break;
                };
                let epoch = pace.epoch();
                flying.push(async move {
                    let outcome = self.post(&pending.event).await;
                    (pending, outcome, epoch)
                });
            }
            let ended = tokio::select! {
                _ = stop.wait_for(|stopping| *stopping) => break,
                ended = tokio::time::timeout(IDLE_POLL, flying.next()), if !flying.is_empty() => ended,
                () = tokio::time::sleep(IDLE_POLL), if flying.is_empty() => continue,
            };
            let Ok(Some(first)) = ended else {
                continue;
            };
            let mut ended = vec![first];
            while let Some(Some(next)) = flying.next().now_or_never() {
                ended.push(next);
            }
            for (pending, outcome, epoch) in ended {
                match &outcome {
                    Outcome::Delivered => pace.delivered(std::time::Instant::now()),
                    Outcome::Busy(why) => {
                        if let Some(limit) = pace.busy(epoch, std::time::Instant::now()) {
                            tracing::debug!(limit, reason = %why, "event receiver busy; fewer deliveries at once");
                        }
                    }
                    Outcome::Failed(_) => {}
                }
                let id = pending.event.id.clone();
                match self.settle(store, metrics, &pending, outcome).await {
                    Settled::Done => done.push(id),
                    Settled::Retried => {
                        sending.remove(&id);
                    }
                }
            }
        }
        let finishing = async {
            while let Some((pending, outcome, _)) = flying.next().await {
                if outcome == Outcome::Delivered {
                    metrics.event_delivered();
                    done.push(pending.event.id);
                }
            }
        };
        let _ = tokio::time::timeout(wrap_up, finishing).await;
        if !done.is_empty() && store.events_done(&done).await.is_ok() {
            for id in &done {
                sending.remove(id);
            }
        }
        // Taken and not delivered: leased to this node on PostgreSQL, where a clean stop
        // left them for a minute (as a crash does) before any node sent them.
        let unsent: Vec<String> = sending.into_iter().collect();
        if let Err(err) = store.events_unclaim(&unsent).await {
            warn_unreadable(&err);
        }
    }

    /// What one attempt's outcome asks of the store: a failure is rescheduled at once (its
    /// backoff counts from now); a delivery or a give-up leaves with the next batch.
    async fn settle(
        &self,
        store: &DynStore,
        metrics: &Metrics,
        pending: &PendingEvent,
        outcome: Outcome,
    ) -> Settled {
        let event = &pending.event;
        let attempts = pending.attempts + 1;
        match outcome {
            Outcome::Delivered => {
                metrics.event_delivered();
                Settled::Done
            }
            Outcome::Failed(why) | Outcome::Busy(why) if pending.age >= GIVE_UP_AFTER => {
                metrics.event_given_up();
                tracing::error!(id = %event.id, kind = %event.kind, attempts, reason = %why,
                    "event given up after 24 h of failed deliveries");
                Settled::Done
            }
            Outcome::Failed(why) | Outcome::Busy(why) => {
                let wait = backoff(attempts);
                if let Err(err) = store.event_retry(&event.id, wait).await {
                    warn_unreadable(&err);
                }
                metrics.event_failed();
                tracing::warn!(id = %event.id, kind = %event.kind, attempts, retry_in = ?wait,
                    reason = %why, "event delivery failed");
                Settled::Retried
            }
        }
    }
}

/// How an attempt ended for the outbox.
enum Settled {
    /// Delivered or given up: it leaves the outbox.
    Done,
    /// Rescheduled: it may be started again when due.
    Retried,
}

fn warn_unreadable(err: &crate::store::StoreError) {
    tracing::warn!(error = %crate::telemetry::Chain(err), "event outbox unreadable; retrying");
}

/// Delivers until `stop` turns true, then wraps up within `wrap_up` (see `Deliverer::run`)
/// and ends. An event whose attempt did not finish is delivered again later, by this node
/// or another, which at-least-once allows.
pub fn spawn(
    store: DynStore,
    config: EventsConfig,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
    wrap_up: Duration,
) -> tokio::task::JoinHandle<()> {
    let deliverer = Deliverer::new(config);
    tokio::spawn(async move { deliverer.run(&store, &metrics, stop, wrap_up).await })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn deliverer_to(url: &str) -> Deliverer {
        Deliverer::new(EventsConfig {
            url: url.parse().expect("url"),
            secret: crate::config::Secret::new("k"),
        })
    }

    fn an_event() -> Event {
        Event::new(
            super::super::EventKind::Created,
            crate::domain::UnixMillis(0),
            crate::domain::GroupName::parse("G").expect("group"),
            crate::domain::AccessNumber::parse("100").expect("number"),
            None,
        )
    }

    /// A failed attempt's reason is logged: it quoted the URL, query token and all.
    #[tokio::test]
    async fn a_failure_is_told_without_the_url() {
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let url = format!("http://127.0.0.1:{port}/hook?token=SECRETTOKEN");
        match deliverer_to(&url).post(&an_event()).await {
            Outcome::Failed(why) | Outcome::Busy(why) => {
                assert!(!why.contains("SECRETTOKEN"), "{why}")
            }
            Outcome::Delivered => panic!("delivered to a closed port"),
        }
    }

    /// A receiver whose listen queue is full: the kernel drops further connection attempts
    /// and the client tries again only after 1 s, then 3 s, … An attempt gives up on the
    /// connection within `CONNECT_TIMEOUT` and says the receiver is busy.
    #[tokio::test]
    async fn a_full_listen_queue_is_a_busy_receiver() {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        let addr = socket.local_addr().expect("addr");
        // Never accepted: the queue fills with the first connections.
        let _listener = socket.listen(1).expect("listen");
        let mut filling = Vec::new();
        for _ in 0..8 {
            let connect = tokio::net::TcpStream::connect(addr);
            match tokio::time::timeout(Duration::from_millis(200), connect).await {
                Ok(Ok(stream)) => filling.push(stream),
                _ => break,
            }
        }
        let deliverer = deliverer_to(&format!("http://{addr}/hook"));
        let started = std::time::Instant::now();
        let outcome = deliverer.post(&an_event()).await;
        assert!(matches!(outcome, Outcome::Busy(_)), "{outcome:?}");
        assert!(
            started.elapsed() < ATTEMPT_TIMEOUT,
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn backoff_doubles_from_four_seconds_to_five_minutes() {
        let secs: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(backoff(u32::MAX), Duration::from_secs(300));
    }
}
