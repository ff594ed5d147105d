//! A TCP fault proxy written with tokio, for putting real network faults between nodes and
//! PostgreSQL: added latency, every open connection dropped at once, new connections
//! refused, or a blackhole (connections stay open, nothing goes through: a partition), or
//! each connection closed once the database sent it a given number of bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Pass = 0,
    /// New connections are closed at once (the database "is down").
    Refuse = 1,
    /// Bytes stop flowing both ways, connections stay open (a partition).
    Blackhole = 2,
}

pub struct FaultProxy {
    pub port: u16,
    mode: Arc<AtomicU8>,
    latency_ms: Arc<AtomicU64>,
    /// Bytes from upstream after which a connection is closed (0: never).
    cut_after: Arc<AtomicU64>,
    conns: Arc<parking_lot::Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
    /// The `host:port` it forwards to, which [`FaultProxy::url`] replaces in a store URL.
    upstream: String,
}

impl FaultProxy {
    /// Listens on a free 127.0.0.1 port and forwards to `upstream` (host:port).
    pub async fn start(upstream: &str, mode: Mode) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let mode = Arc::new(AtomicU8::new(mode as u8));
        let latency_ms = Arc::new(AtomicU64::new(0));
        let cut_after = Arc::new(AtomicU64::new(0));
        let conns: Arc<parking_lot::Mutex<Vec<AbortHandle>>> = Arc::default();
        let (upstream, target) = (upstream.to_owned(), upstream.to_owned());
        let (m, l, c, cut) = (
            mode.clone(),
            latency_ms.clone(),
            conns.clone(),
            cut_after.clone(),
        );
        let accept = tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                if m.load(Ordering::SeqCst) == Mode::Refuse as u8 {
                    drop(down);
                    continue;
                }
                let (m, l, upstream) = (m.clone(), l.clone(), upstream.clone());
                let budget = match cut.load(Ordering::SeqCst) {
                    0 => u64::MAX,
                    n => n,
                };
                let task = tokio::spawn(async move {
                    let Ok(up) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (dr, dw) = down.into_split();
                    let (ur, uw) = up.into_split();
                    tokio::join!(pump(dr, uw, &m, &l, u64::MAX), pump(ur, dw, &m, &l, budget));
                });
                let mut list = c.lock();
                list.retain(|h| !h.is_finished());
                list.push(task.abort_handle());
            }
        })
        .abort_handle();
        FaultProxy {
            port,
            mode,
            latency_ms,
            cut_after,
            conns,
            accept,
            upstream: target,
        }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    pub fn set_latency(&self, latency: Duration) {
        self.latency_ms
            .store(latency.as_millis() as u64, Ordering::SeqCst);
    }

    /// Each connection opened from now on is closed once the database has sent it `bytes`
    /// (wherever that falls: mid-answer, during a COMMIT's); 0 lets them run.
    pub fn cut_after(&self, bytes: u64) {
        self.cut_after.store(bytes, Ordering::SeqCst);
    }

    /// Closes every open connection at once (the client sees a reset or EOF mid-statement).
    pub fn drop_connections(&self) {
        for h in self.conns.lock().drain(..) {
            h.abort();
        }
    }

    /// `url` with its upstream address (the test database, e.g. `127.0.0.1:5432`) replaced
    /// by this proxy.
    pub fn url(&self, url: &str) -> String {
        let via = url.replace(&self.upstream, &format!("127.0.0.1:{}", self.port));
        assert_ne!(
            via, url,
            "the test database is expected at {}",
            self.upstream
        );
        via
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.drop_connections();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mode: &AtomicU8,
    latency_ms: &AtomicU64,
    mut budget: u64,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Past the connection's budget: what fits goes through, then the connection closes.
        let n = usize::try_from(budget).map_or(n, |left| n.min(left));
        budget -= n as u64;
        while mode.load(Ordering::SeqCst) == Mode::Blackhole as u8 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let latency = latency_ms.load(Ordering::SeqCst);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() || budget == 0 {
            return;
        }
    }
}
