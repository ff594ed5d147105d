//! Starting the floor and the product as child processes, and reading their CPU and memory.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Settings;
use crate::load::{self, Scenario};
use crate::report::Row;

const PRODUCT: &str = env!("CARGO_BIN_EXE_access-broker");

pub struct Proc {
    child: Child,
    pub url: String,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("RUST_LOG", "warn,access_broker=info")
            .spawn()
            .expect("spawn");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line
                    .split("listening on ")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(600))
            .expect("server printed its address");
        Proc {
            child,
            url: format!("http://{addr}"),
        }
    }

    /// utime + stime of the process, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let after = stat.rsplit_once(") ").map(|x| x.1).unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }

    /// (VmRSS, VmHWM) in MB.
    pub fn memory_mb(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let kb = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
    }

    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

pub async fn floor(s: &Settings, conns: usize) -> Row {
    // The floor is this very binary, re-started as a server (see `floor.rs`).
    let mut cmd = Command::new(std::env::current_exe().expect("bench binary path"));
    cmd.arg(crate::floor::ARG);
    let p = Proc::spawn(cmd);
    let row = load::measure(&p, "floor", "-", 0, Scenario::Floor, conns, s).await;
    p.stop();
    row
}

pub struct Node {
    proc: Option<Proc>,
    store: String,
    url: String,
    pool: usize,
    dir: tempfile::TempDir,
}

fn config(dir: &tempfile::TempDir, pool: usize) -> PathBuf {
    let path = dir.path().join("bench.toml");
    let last = 10_000_000 + pool - 1;
    // BENCH_SQLITE_SYNC=normal measures the no-fsync-per-commit setting (default: full).
    let sync = std::env::var("BENCH_SQLITE_SYNC").unwrap_or_else(|_| "full".into());
    let text = format!(
        "[server]\nstore_max_connections = 32\nsqlite_synchronous = \"{sync}\"\n[resource_groups.DNIS]\nnumbers = [\"10000000-{last}\"]\n\
         [services.request-access]\ntype = \"request-access\"\n_resource_group = \"DNIS\"\n\
         [services.match-interaction]\ntype = \"match-interaction\"\n\
         [services.request-interaction]\ntype = \"request-interaction\"\n_resource_group = \"DNIS\"\n_ttl = 3600\n\
         [services.callback]\ntype = \"session\"\n_ttl = 3600\n"
    );
    std::fs::write(&path, text).expect("config");
    path
}

impl Node {
    pub async fn start(store: &str, pool: usize, s: &Settings) -> Option<Node> {
        let dir = tempfile::tempdir().expect("dir");
        let url = match store {
            "memory" => "memory://".to_owned(),
            "sqlite" => format!("sqlite://{}", dir.path().join("bench.db").display()),
            "postgres" => match crate::pgfloor::fresh_schema(&s.pg, "bench").await {
                Some(url) => url,
                None => {
                    eprintln!("postgres: not reachable at {}; skipped", s.pg);
                    return None;
                }
            },
            other => panic!("unknown store {other}"),
        };
        let mut node = Node {
            proc: None,
            store: store.to_owned(),
            url,
            pool,
            dir,
        };
        node.proc = Some(node.spawn());
        Some(node)
    }

    fn spawn(&self) -> Proc {
        let mut cmd = Command::new(PRODUCT);
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            &self.url,
            "--config",
        ])
        .arg(config(&self.dir, self.pool));
        Proc::spawn(cmd)
    }

    fn proc(&self) -> &Proc {
        self.proc.as_ref().expect("running")
    }

    pub async fn run(&self, scenario: Scenario, conns: usize, s: &Settings) -> Row {
        load::measure(
            self.proc(),
            "access-broker",
            &self.store,
            self.pool,
            scenario,
            conns,
            s,
        )
        .await
    }

    /// Start time on a store that already holds the 1,000,000 numbers (durable stores), and
    /// memory with 100,000 live reservations.
    pub async fn scale_checks(&mut self, _s: &Settings) -> Vec<Row> {
        let mut rows = Vec::new();
        if self.store != "memory" {
            if let Some(p) = self.proc.take() {
                p.stop();
            }
            let started = Instant::now();
            let p = self.spawn();
            let client = reqwest::Client::new();
            while client
                .get(format!("{}/ready", p.url))
                .send()
                .await
                .map(|r| r.status() != 200)
                .unwrap_or(true)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            rows.push(Row::note(
                &self.store,
                self.pool,
                "restart to ready, 1M numbers held",
                format!("{:.2} s", started.elapsed().as_secs_f64()),
            ));
            self.proc = Some(p);
        }
        let made = load::fill(self.proc(), 100_000).await;
        let (rss, _) = self.proc().memory_mb();
        rows.push(Row::note(
            &self.store,
            self.pool,
            &format!("RSS with {made} live reservations"),
            format!("{rss:.0} MB"),
        ));
        rows
    }

    pub async fn stop(mut self, s: &Settings) {
        if let Some(p) = self.proc.take() {
            p.stop();
        }
        if self.store == "postgres" {
            crate::pgfloor::drop_schema(&s.pg, &self.url).await;
        }
    }
}
