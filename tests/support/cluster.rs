//! Several real nodes on one PostgreSQL schema, and a load driver that records what each
//! answer proved.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::limit::Watchdog;
use super::pg::Schema;
use super::process::Node;

/// The time limit of a cluster test: several real nodes under load are slow by design, more
/// so on a debug build sharing two cores; at least 300 s, more if `TEST_TIME_LIMIT_SECS` says.
pub fn limit() -> Duration {
    super::limit::time_limit().max(Duration::from_secs(300))
}

/// Fields drop in order: the nodes are killed before their schema is dropped.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub schema: Schema,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    _watchdog: Watchdog,
}

/// A config for node `id` with one group `DNIS` of `pool` numbers and long sessions.
pub fn config(dir: &tempfile::TempDir, id: usize, pool: usize, booking: u32) -> PathBuf {
    let path = dir.path().join(format!("node{id}.toml"));
    let last = 7_000_000 + pool - 1;
    let text = format!(
        r#"
[server]
node_id = "{id}"
store_timeout_ms = 2000
store_max_connections = 8
[resource_groups.DNIS]
numbers = ["7000000-{last}"]
allocation = "round-robin"
[services.request-access]
type = "request-access"
_resource_group = "DNIS"
_provide_code = true
_booking_expiration_timeout = {booking}
[services.match-interaction]
type = "match-interaction"
[services.request-interaction]
type = "request-interaction"
_resource_group = "DNIS"
_booking_expiration_timeout = {booking}
_ttl = 3600
[services.callback]
type = "session"
_ttl = 3600
"#
    );
    std::fs::write(&path, text).expect("write config");
    path
}

impl Cluster {
    /// Starts `n` nodes on a fresh schema; panics when PostgreSQL is not configured (mark the
    /// test `#[cfg_attr(no_postgres, ignore = …)]`).
    pub async fn start(n: usize, pool: usize, booking: u32) -> Cluster {
        Self::start_with(n, pool, booking, "").await
    }

    /// [`Cluster::start`] with `extra` TOML (tables) at the end of every node's config.
    pub async fn start_with(n: usize, pool: usize, booking: u32, extra: &str) -> Cluster {
        let watchdog = Watchdog::start(limit());
        let schema = Schema::require().await;
        let dir = tempfile::tempdir().expect("dir");
        let url = schema.url_string();
        let nodes = (1..=n)
            .map(|id| {
                let path = config(&dir, id, pool, booking);
                let text = std::fs::read_to_string(&path).expect("read config");
                std::fs::write(&path, format!("{text}\n{extra}\n")).expect("write config");
                Node::start(&path, &url, &[])
            })
            .collect();
        // Idle connections kept less long than the server's header_timeout_ms (10 s), which
        // also closes idle keep-alive connections: a pooled connection reused just as the
        // server closes it fails the request (the race every idle timeout has).
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        Cluster {
            nodes,
            schema,
            dir,
            client,
            _watchdog: watchdog,
        }
    }

    pub fn url(&self, node: usize) -> &str {
        &self.nodes[node % self.nodes.len()].url
    }

    /// A new session's id, made through `node` (panics if it cannot be).
    pub async fn session(&self, node: usize) -> String {
        let session: serde_json::Value = self
            .client
            .post(format!("{}/genesys/1/service/callback", self.url(node)))
            .send()
            .await
            .expect("session")
            .json()
            .await
            .expect("session json");
        session["_id"].as_str().expect("_id").to_owned()
    }
}

/// What one successful request-access proved, with the client-side times around it.
#[derive(Debug, Clone)]
pub struct Held {
    pub number: String,
    pub code: String,
    pub session: String,
    /// When the answer arrived: the reservation was live from here…
    pub granted: Instant,
    /// …at least until the match request was sent (None: not matched).
    pub released: Option<Instant>,
}

/// Pairs of answers proving two live reservations on one number at the same time.
pub fn overlaps(held: &[Held]) -> usize {
    let mut by_number: std::collections::HashMap<&str, Vec<&Held>> = Default::default();
    for h in held {
        by_number.entry(&h.number).or_default().push(h);
    }
    let mut found = 0;
    for list in by_number.values() {
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                let a_end = a.released.unwrap_or_else(Instant::now);
                let b_end = b.released.unwrap_or_else(Instant::now);
                if a.granted < b_end && b.granted < a_end {
                    found += 1;
                }
            }
        }
    }
    found
}
