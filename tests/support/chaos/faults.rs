//! The chaos run's cluster and its faults: nodes behind one fault proxy each (PostgreSQL),
//! or one node on a small tmpfs (SQLite); every fault heals by itself a few seconds later,
//! and the time until the node is ready again is measured.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use rand::Rng;

use super::{Kind, Plan, rss_kb};
use crate::support::cluster::config;
use crate::support::pg::{Schema, connect};
use crate::support::process::Node;
use crate::support::proxy::{FaultProxy, Mode};

pub struct Cluster {
    kind: Kind,
    nodes: Vec<Mutex<Option<Node>>>,
    urls: RwLock<Vec<String>>,
    configs: Vec<PathBuf>,
    stores: Vec<String>,
    proxies: Vec<FaultProxy>,
    schema: Option<Schema>,
    tmpfs: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn start(plan: &Plan) -> Cluster {
        let dir = tempfile::tempdir().expect("dir");
        let (mut stores, mut proxies, mut schema, mut tmpfs) = (vec![], vec![], None, None);
        match plan.kind {
            Kind::Postgres => {
                let s = Schema::require().await;
                let upstream = pg_address(&s.url_string());
                for _ in 0..plan.nodes {
                    let p = FaultProxy::start(&upstream, Mode::Pass).await;
                    stores.push(p.url(&s.url_string()));
                    proxies.push(p);
                }
                schema = Some(s);
            }
            Kind::Sqlite => {
                let mount = dir.path().join("fs");
                std::fs::create_dir_all(&mount).expect("mount point");
                // Room for a long run's rows; the disk-full fault fills whatever is free.
                let size = std::env::var("CHAOS_TMPFS").unwrap_or_else(|_| "8m".into());
                let ok = std::process::Command::new("mount")
                    .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                    .arg(&mount)
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "mount a tmpfs (needs root)");
                stores.push(format!("sqlite://{}", mount.join("chaos.db").display()));
                tmpfs = Some(mount);
            }
        }
        let configs: Vec<PathBuf> = (1..=stores.len())
            .map(|id| config(&dir, id, plan.pool, 1800))
            .collect();
        let nodes: Vec<Node> = configs
            .iter()
            .zip(&stores)
            .map(|(c, s)| Node::start(c, s, &[]))
            .collect();
        let urls = nodes.iter().map(|n| n.url.clone()).collect();
        Cluster {
            kind: plan.kind,
            nodes: nodes.into_iter().map(|n| Mutex::new(Some(n))).collect(),
            urls: RwLock::new(urls),
            configs,
            stores,
            proxies,
            schema,
            tmpfs,
            _dir: dir,
        }
    }

    pub fn any_url(&self) -> String {
        let urls = self.urls.read();
        urls[rand::rng().random_range(0..urls.len())].clone()
    }

    pub fn rss_kb(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .map(|n| n.lock().as_ref().map_or(0, rss_kb))
            .collect()
    }

    /// Rows and bytes of the store's tables (PostgreSQL), or the file's bytes and each
    /// table's rows and bytes (SQLite, through `dbstat`: indexes counted with their table).
    pub async fn sizes(&self) -> Vec<(String, i64)> {
        if let Some(dir) = &self.tmpfs {
            let dir = dir.clone();
            return tokio::task::spawn_blocking(move || sqlite_sizes(&dir))
                .await
                .unwrap_or_default();
        }
        let Some(schema) = &self.schema else {
            return vec![];
        };
        let client = connect(&schema.url_string()).await;
        let mut out = vec![];
        for table in ["sessions", "data", "idempotency", "numbers"] {
            let sql = format!("SELECT count(*), pg_total_relation_size('{table}') FROM {table}");
            if let Ok(row) = client.query_one(&sql, &[]).await {
                out.push((format!("{table} rows"), row.get::<_, i64>(0)));
                out.push((format!("{table} bytes"), row.get::<_, i64>(1)));
            }
        }
        out
    }

    async fn restart(&self, i: usize) {
        if let Some(mut old) = self.nodes[i].lock().take() {
            old.kill9();
        }
        let (config, store) = (self.configs[i].clone(), self.stores[i].clone());
        let node = tokio::task::spawn_blocking(move || Node::start(&config, &store, &[]))
            .await
            .expect("node restarts");
        self.urls.write()[i] = node.url.clone();
        *self.nodes[i].lock() = Some(node);
    }

    /// Waits until node `i` answers `/ready` 200 (at most 60 s); returns how long it took.
    async fn ready(&self, i: usize) -> Duration {
        let started = Instant::now();
        let http = reqwest::Client::new();
        while started.elapsed() < Duration::from_secs(60) {
            let url = format!("{}/ready", self.urls.read()[i]);
            if http.get(url).send().await.is_ok_and(|r| r.status() == 200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        started.elapsed()
    }

    pub async fn heal(&self) {
        for p in &self.proxies {
            p.set(Mode::Pass);
            p.set_latency(Duration::ZERO);
        }
        if let Some(dir) = &self.tmpfs {
            let _ = std::fs::remove_file(dir.join("filler"));
        }
        for i in 0..self.nodes.len() {
            self.ready(i).await;
        }
    }

    /// (number, session) of every live reservation, as node 0 sees the store.
    pub async fn final_state(&self) -> Vec<(String, String)> {
        let url = format!("{}/genesys/1/admin/reservations", self.urls.read()[0]);
        let body: serde_json::Value = reqwest::get(url)
            .await
            .expect("final state")
            .json()
            .await
            .expect("json");
        body["reservations"]
            .as_array()
            .expect("reservations")
            .iter()
            .map(|r| {
                (
                    r["number"].as_str().unwrap_or_default().to_owned(),
                    r["_id"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &self.nodes {
            if let Some(mut n) = n.lock().take() {
                n.kill9();
            }
        }
        if let Some(dir) = &self.tmpfs {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(dir)
                .status();
        }
    }
}

/// The file's bytes, then rows and bytes per table of the SQLite store (read through its
/// own connection while the node runs: WAL readers do not disturb the writer).
fn sqlite_sizes(dir: &std::path::Path) -> Vec<(String, i64)> {
    let size = |name: &str| std::fs::metadata(dir.join(name)).map_or(0, |m| m.len() as i64);
    let mut out = vec![
        ("chaos.db bytes".into(), size("chaos.db")),
        ("chaos.db-wal bytes".into(), size("chaos.db-wal")),
    ];
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let Ok(conn) = rusqlite::Connection::open_with_flags(dir.join("chaos.db"), flags) else {
        return out;
    };
    let _ = conn.busy_timeout(Duration::from_secs(2));
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .unwrap_or_default();
    for table in tables {
        let rows: i64 = conn
            .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
                r.get(0)
            })
            .unwrap_or(-1);
        // The table's pages and those of its indexes.
        let sql = "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = ?1 \
                   OR name IN (SELECT name FROM sqlite_schema WHERE tbl_name = ?1)";
        let bytes: i64 = conn.query_row(sql, [&table], |r| r.get(0)).unwrap_or(-1);
        out.push((format!("{table} rows"), rows));
        out.push((format!("{table} bytes"), bytes));
    }
    out
}

/// `host:port` of a PostgreSQL URL (`postgres://user@host:port/db?...`), port 5432 if none.
fn pg_address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    }
}

/// The cluster to restart (`version/name` for `pg_ctlcluster`): `CHAOS_PG_CLUSTER` if set,
/// else the one whose `postgresql.conf` listens on the test URL's port, so a run against a
/// cluster of its own never restarts the machine's other clusters.
fn pg_cluster() -> Option<(String, String)> {
    if let Ok(named) = std::env::var("CHAOS_PG_CLUSTER") {
        let (version, name) = named.split_once('/')?;
        return Some((version.to_owned(), name.to_owned()));
    }
    let url = std::env::var(crate::support::pg::ENV).ok()?;
    let port = pg_address(&url).rsplit_once(':')?.1.to_owned();
    for version in std::fs::read_dir("/etc/postgresql").ok()?.flatten() {
        for cluster in std::fs::read_dir(version.path()).ok()?.flatten() {
            let conf = std::fs::read_to_string(cluster.path().join("postgresql.conf"));
            let listens = conf.is_ok_and(|c| {
                c.lines().any(|l| {
                    let l = l.split('#').next().unwrap_or_default();
                    l.split_once('=')
                        .is_some_and(|(k, v)| k.trim() == "port" && v.trim() == port)
                })
            });
            if listens {
                let name = |e: &std::fs::DirEntry| e.file_name().to_string_lossy().into_owned();
                return Some((name(&version), name(&cluster)));
            }
        }
    }
    None
}

fn restart_postgres() -> bool {
    let Some((version, name)) = pg_cluster() else {
        eprintln!("chaos: no PostgreSQL cluster found for the test URL's port; not restarting");
        return false;
    };
    std::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, &name, "restart"])
        .status()
        .is_ok_and(|s| s.success())
}

fn fill(path: &std::path::Path) {
    use std::io::Write;
    let Ok(mut f) = std::fs::File::create(path) else {
        return;
    };
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
}

/// Injects one fault every `plan.fault_every` (±50 %) until `until`; returns the faults by
/// kind and the recovery times.
pub async fn inject(
    cluster: Arc<Cluster>,
    plan: Plan,
    until: Instant,
) -> (HashMap<&'static str, u64>, Vec<Duration>) {
    let mut faults: HashMap<&'static str, u64> = HashMap::new();
    let mut recoveries = Vec::new();
    let kinds: Vec<&'static str> = match (cluster.kind, plan.pg_restart) {
        (Kind::Postgres, restart) => {
            let mut k = vec![
                "latency",
                "drop_connections",
                "blackhole",
                "db_unreachable",
                "kill9",
            ];
            if restart {
                k.push("pg_restart");
            }
            k
        }
        (Kind::Sqlite, _) => vec!["disk_full", "disk_full", "kill9"],
    };
    let kinds: Vec<&'static str> = kinds
        .into_iter()
        .filter(|k| plan.only_faults.is_empty() || plan.only_faults.iter().any(|o| o == k))
        .collect();
    assert!(
        !kinds.is_empty(),
        "no fault kind left: {:?}",
        plan.only_faults
    );
    loop {
        let wait = plan.fault_every.mul_f64(rand::rng().random_range(0.5..1.5));
        if Instant::now() + wait + Duration::from_secs(5) > until {
            break;
        }
        tokio::time::sleep(wait).await;
        let kind = kinds[rand::rng().random_range(0..kinds.len())];
        let i = rand::rng().random_range(0..cluster.nodes.len());
        *faults.entry(kind).or_default() += 1;
        let hold = Duration::from_secs(3);
        match kind {
            "latency" => {
                cluster
                    .proxies
                    .iter()
                    .for_each(|p| p.set_latency(Duration::from_millis(150)));
                tokio::time::sleep(hold).await;
                cluster
                    .proxies
                    .iter()
                    .for_each(|p| p.set_latency(Duration::ZERO));
            }
            "drop_connections" => cluster.proxies[i].drop_connections(),
            "blackhole" => {
                cluster.proxies[i].set(Mode::Blackhole);
                tokio::time::sleep(hold).await;
                cluster.proxies[i].set(Mode::Pass);
            }
            "db_unreachable" => {
                cluster.proxies[i].set(Mode::Refuse);
                cluster.proxies[i].drop_connections();
                tokio::time::sleep(hold).await;
                cluster.proxies[i].set(Mode::Pass);
            }
            "kill9" => cluster.restart(i).await,
            "pg_restart" if !restart_postgres() => {
                *faults.entry("pg_restart_failed").or_default() += 1;
            }
            "disk_full" => {
                if let Some(dir) = &cluster.tmpfs {
                    let filler = dir.join("filler");
                    tokio::task::spawn_blocking({
                        let filler = filler.clone();
                        move || fill(&filler)
                    })
                    .await
                    .expect("fill");
                    tokio::time::sleep(hold).await;
                    let _ = std::fs::remove_file(filler);
                }
            }
            _ => {}
        }
        recoveries.push(cluster.ready(i).await);
    }
    (faults, recoveries)
}
