//! The chaos run: real nodes under request-interaction / match load while real faults are
//! injected (TCP faults between nodes and PostgreSQL, `kill -9` of nodes, a PostgreSQL
//! restart, a full tmpfs under SQLite); then `history::check` judges what the clients saw.
//! `tests/chaos.rs` runs it briefly in CI; `benches/chaos.rs` runs it long.

mod faults;
pub mod history;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::Rng;

use self::history::{Granted, History, Verdict};
use super::process::Node;

pub use self::faults::Cluster;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    Sqlite,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub kind: Kind,
    pub nodes: usize,
    pub duration: Duration,
    pub fault_every: Duration,
    pub workers: usize,
    pub pool: usize,
    /// Restart the test URL's PostgreSQL cluster among the faults (`CHAOS_PG_CLUSTER`, or
    /// the cluster listening on the URL's port: `faults::pg_cluster`).
    pub pg_restart: bool,
    /// How often RSS and store sizes are sampled during the run (and printed at once).
    pub sample_every: Duration,
    /// request-interactions per second over all workers (0: as fast as they go). A long run
    /// needs a steady rate: the file keeps every Idempotency-Key answer for 24 h, so its
    /// size is the rate × the run's length, which must fit the tmpfs.
    pub rate: u64,
    /// Only these fault kinds (empty: every kind the store has). A soak without `kill9`
    /// shows one process's memory over the whole run.
    pub only_faults: Vec<String>,
}

/// One sample taken during the run: seconds since the load started, RSS per node, sizes.
pub type Sample = (u64, Vec<u64>, Vec<(String, i64)>);

#[derive(Debug, Default)]
pub struct Report {
    pub ops: u64,
    pub answers: HashMap<u16, u64>,
    pub transport_errors: u64,
    pub faults: HashMap<&'static str, u64>,
    pub recoveries: Vec<Duration>,
    pub verdict: Verdict,
    pub rss_start_kb: Vec<u64>,
    pub rss_end_kb: Vec<u64>,
    pub sizes_start: Vec<(String, i64)>,
    pub sizes_end: Vec<(String, i64)>,
    pub samples: Vec<Sample>,
    pub elapsed: Duration,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut answers: Vec<_> = self.answers.iter().collect();
        answers.sort();
        let mut faults: Vec<_> = self.faults.iter().collect();
        faults.sort();
        let rec = &self.recoveries;
        let max = rec.iter().max().copied().unwrap_or_default();
        let avg = rec.iter().sum::<Duration>() / (rec.len().max(1) as u32);
        writeln!(f, "elapsed: {:?}", self.elapsed)?;
        writeln!(
            f,
            "operations: {} (answers by status {answers:?}; transport errors {})",
            self.ops, self.transport_errors
        )?;
        writeln!(f, "faults: {faults:?}")?;
        writeln!(f, "verdict: {:?}", self.verdict)?;
        writeln!(f, "violations: {}", self.verdict.violations())?;
        writeln!(
            f,
            "recovery after a fault healed: {} measured, mean {avg:?}, max {max:?}",
            rec.len()
        )?;
        writeln!(
            f,
            "node RSS kB start {:?} end {:?}",
            self.rss_start_kb, self.rss_end_kb
        )?;
        for (secs, rss, sizes) in &self.samples {
            writeln!(f, "sample at {secs} s: RSS kB {rss:?} sizes {sizes:?}")?;
        }
        writeln!(f, "store sizes start {:?}", self.sizes_start)?;
        write!(f, "store sizes end   {:?}", self.sizes_end)
    }
}

/// One worker: request-interaction (with an Idempotency-Key, retried on 503 as a client
/// should), keeps a few reservations, matches the oldest (ending its session, as an IVR
/// does once the call arrived). With a `pace`, one request-interaction per `pace` at most.
async fn worker(
    cluster: Arc<Cluster>,
    history: Arc<Mutex<History>>,
    until: Instant,
    pace: Option<Duration>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client");
    let mut held: Vec<Granted> = Vec::new();
    let mut next = Instant::now();
    while Instant::now() < until {
        if let Some(pace) = pace {
            next = (next + pace).max(Instant::now() - pace);
            tokio::time::sleep_until(next.into()).await;
        }
        if let Some(g) = reserve(&cluster, &http, &history).await {
            held.push(g);
        }
        if held.len() > 4 || (!held.is_empty() && rand::rng().random_bool(0.3)) {
            let g = held.remove(0);
            let g = release(&cluster, &http, &history, g).await;
            history.lock().granted.push(g);
        }
    }
    history.lock().granted.extend(held);
}

async fn post(
    cluster: &Cluster,
    http: &reqwest::Client,
    path: &str,
    key: Option<&str>,
    form: &[(&str, &str)],
) -> Result<(u16, serde_json::Value), ()> {
    let mut req = http.post(format!("{}{path}", cluster.any_url())).form(form);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    let r = req.send().await.map_err(|_| ())?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or_default()))
}

const ATTEMPTS: usize = 8;

async fn reserve(cluster: &Cluster, http: &reqwest::Client, h: &Mutex<History>) -> Option<Granted> {
    let key = uuid::Uuid::new_v4().to_string();
    let path = "/genesys/1/service/request-interaction";
    for _ in 0..ATTEMPTS {
        match post(cluster, http, path, Some(&key), &[("who", "chaos")]).await {
            Ok((200, body)) => {
                h.lock().answered(200);
                let field = |n: &str| body[n].as_str().unwrap_or_default().to_owned();
                return Some(Granted {
                    number: field("_access_number"),
                    code: field("_access_code"),
                    session: field("_id"),
                    granted: Instant::now(),
                    release_sent: None,
                    release_status: None,
                    release_retried: false,
                    release_unanswered: false,
                });
            }
            Ok((status, body)) => {
                h.lock().answered(status);
                if body["exception"] == "PoolExhausted" {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    return None;
                }
            }
            Err(()) => h.lock().transport_errors += 1,
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    h.lock().unknown_sessions += 1;
    None
}

async fn release(
    cluster: &Cluster,
    http: &reqwest::Client,
    h: &Mutex<History>,
    mut g: Granted,
) -> Granted {
    let path = "/genesys/1/service/match-interaction";
    let form = [
        ("_access_number", g.number.clone()),
        ("_access_code", g.code.clone()),
        ("_delete_service", "true".to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    g.release_sent = Some(Instant::now());
    for _ in 0..ATTEMPTS {
        match post(cluster, http, path, None, &form).await {
            Ok((status @ (200 | 404), _)) => {
                h.lock().answered(status);
                g.release_status = Some(status);
                return g;
            }
            Ok((status, _)) => {
                h.lock().answered(status);
                g.release_retried = true;
            }
            Err(()) => {
                h.lock().transport_errors += 1;
                g.release_unanswered = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    g.release_status = Some(0); // never learnt: neither held nor released is required
    g
}

/// Runs the plan and returns its figures; the caller asserts on `verdict`.
pub async fn run(plan: Plan) -> Report {
    let started = Instant::now();
    let cluster = Arc::new(Cluster::start(&plan).await);
    let mut report = Report {
        rss_start_kb: cluster.rss_kb(),
        sizes_start: cluster.sizes().await,
        ..Report::default()
    };
    let history: Arc<Mutex<History>> = Arc::default();
    let until = Instant::now() + plan.duration;
    let workers: Vec<_> = (0..plan.workers)
        .map(|_| {
            let pace = (plan.rate > 0)
                .then(|| Duration::from_secs_f64(plan.workers as f64 / plan.rate as f64));
            tokio::spawn(worker(cluster.clone(), history.clone(), until, pace))
        })
        .collect();
    let injector = tokio::spawn(faults::inject(cluster.clone(), plan.clone(), until));
    let sampler = tokio::spawn(sample(cluster.clone(), plan.sample_every, until));
    let (faults, recoveries) = injector.await.expect("injector");
    report.samples = sampler.await.expect("sampler");
    for w in workers {
        w.await.expect("worker");
    }
    cluster.heal().await;
    let end = Instant::now();
    let final_state = cluster.final_state().await;
    {
        let h = history.lock();
        report.verdict = history::check(&h, &final_state, end);
        report.ops = h.ops();
        report.answers = h.answers.clone();
        report.transport_errors = h.transport_errors;
    }
    report.faults = faults;
    report.recoveries = recoveries;
    report.rss_end_kb = cluster.rss_kb();
    report.sizes_end = cluster.sizes().await;
    report.elapsed = started.elapsed();
    report
}

/// Samples RSS and store sizes every `every` until `until`, printing each at once (a long
/// run can be watched, and stopped early if something climbs).
async fn sample(cluster: Arc<Cluster>, every: Duration, until: Instant) -> Vec<Sample> {
    let started = Instant::now();
    let mut samples = Vec::new();
    while Instant::now() + every < until {
        tokio::time::sleep(every).await;
        let s = (
            started.elapsed().as_secs(),
            cluster.rss_kb(),
            cluster.sizes().await,
        );
        eprintln!(
            "chaos sample at {} s: RSS kB {:?} sizes {:?}",
            s.0, s.1, s.2
        );
        samples.push(s);
    }
    samples
}

/// Reads a process's resident set size in kB.
fn rss_kb(node: &Node) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", node.child.id()));
    status
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
