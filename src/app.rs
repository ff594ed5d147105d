//! Wiring: the store, the broker and the router, served on a listener until shutdown.
//! Tests build the same `App` on port 0 with their own store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use crate::broker::Broker;
use crate::config::Config;
use crate::http::{self, AppState};
use crate::store::{DynStore, StoreError};

pub struct App {
    listener: TcpListener,
    router: http::front::Front,
    addr: SocketAddr,
    broker: Broker,
    serve: crate::server::ServeOptions,
    /// Tells open event streams that the node is stopping (they would hold shutdown open).
    closing: tokio::sync::watch::Sender<bool>,
    /// `[events]`: the webhook delivery task's inputs, started by `run`.
    delivery: Option<(
        DynStore,
        crate::config::EventsConfig,
        Arc<crate::metrics::Metrics>,
    )>,
}

impl App {
    /// Applies the config's groups to the store (logging every difference found) and builds
    /// the router. Nothing is served until `run`.
    pub async fn build(
        config: Config,
        listener: TcpListener,
        store: DynStore,
    ) -> Result<App, StoreError> {
        let notes = store.apply_groups(&config.groups).await?;
        crate::store::log_notes(&store, notes);
        Self::on_applied(config, listener, store)
    }

    /// Builds the router on a store the config's groups were applied to already (the
    /// binary's `store::open_waiting` applies them as part of the opening, and waits when
    /// the database stops answering meanwhile). Nothing is served until `run`.
    pub fn on_applied(
        mut config: Config,
        listener: TcpListener,
        store: DynStore,
    ) -> Result<App, StoreError> {
        // The store holds the numbers from here on; a million-number group's list would
        // otherwise stay in memory for the life of the process.
        for group in &mut config.groups {
            group.numbers = Vec::new();
        }
        let addr = listener.local_addr().map_err(StoreError::unavailable)?;
        let server = &config.server;
        let serve = crate::server::ServeOptions {
            max_connections: server.max_connections,
            header_timeout: server.header_timeout,
            write_timeout: server.request_timeout,
            shutdown_timeout: server.shutdown_timeout,
            tls: server.tls.as_ref().map(|t| t.config.clone()),
        };
        let config = Arc::new(config);
        let metrics =
            Arc::new(crate::metrics::Metrics::new().for_node(&config.server.node_id.to_string()));
        let delivery = config
            .events
            .clone()
            .map(|events| (store.clone(), events, metrics.clone()));
        let bus = store.bus();
        let (closing, stopping) = tokio::sync::watch::channel(false);
        let broker = Broker::new(store, config.clone(), metrics);
        let state = AppState::new(http::Shared {
            broker: broker.clone(),
            limits: Arc::new(crate::http::limits::Limits::new(&config.limits)),
            config,
            bus,
            stopping,
        });
        Ok(App {
            listener,
            router: http::front::Front::new(state),
            addr,
            broker,
            serve,
            closing,
            delivery,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` resolves, then stops taking requests and finishes those in
    /// flight within `shutdown_timeout` (see `server`).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let sampler = tokio::spawn(sample_pools(self.broker));
        // The webhook's delivery wraps up beside the requests' drain, in part of the same
        // shutdown time.
        let wrap_up = (self.serve.shutdown_timeout / 2).min(Duration::from_secs(2));
        let delivery = self.delivery.map(|(store, events, metrics)| {
            let stop = self.closing.subscribe();
            crate::events::deliver::spawn(store, events, metrics, stop, wrap_up)
        });
        let closing = self.closing;
        let shutdown_timeout = self.serve.shutdown_timeout;
        let began = Arc::new(std::sync::OnceLock::new());
        let shutdown = {
            let began = began.clone();
            async move {
                shutdown.await;
                began.get_or_init(Instant::now);
                closing.send_replace(true);
            }
        };
        let served = crate::server::serve(self.listener, self.router, self.serve, shutdown).await;
        sampler.abort();
        if let Some(mut delivery) = delivery {
            // Within what is left of the shutdown time: the delivery's attempts get
            // `wrap_up` of it, the rest is for telling the store (waiting only `wrap_up`
            // here cut that off, so nothing was given back).
            let deadline =
                *began.get_or_init(Instant::now) + crate::server::drain_budget(shutdown_timeout);
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, &mut delivery).await.is_err() {
                delivery.abort();
            }
        }
        served
    }
}

/// The store settings a config asks for.
pub fn store_options(config: &Config) -> crate::store::StoreOptions {
    let server = &config.server;
    crate::store::StoreOptions {
        clock: Arc::new(crate::clock::SystemClock),
        max_connections: server.store_max_connections,
        timeout: server.store_timeout,
        sqlite_synchronous: server.sqlite_synchronous,
        node_id: server.node_id.to_string(),
        bus: crate::events::bus(),
        keep_outbox: config.events.is_some(),
    }
}

/// Samples pool occupancy every 10 s for the gauges and the pool-size advisor.
async fn sample_pools(broker: Broker) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(err) = broker.admin_groups().await {
            tracing::debug!(error = %err, "pool sample skipped");
        }
    }
}
