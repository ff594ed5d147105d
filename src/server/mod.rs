//! The accept loop: serves the router on a listener, HTTP/1.1 over TCP or TLS, with the limits
//! a hostile or slow client must not get around.
//!
//! Why our own loop instead of `axum::serve`: the contract asks for a connection cap
//! (`max_connections`: beyond it, accepts wait), a header timeout that also closes idle
//! keep-alive connections (hyper needs a timer for that, which `axum::serve` does not give
//! it), TLS, and a shutdown that ends within `shutdown_timeout` whatever clients do. On
//! shutdown the listener closes at once; connections with no request in flight (idle, or
//! still sending their headers) close at once; the others finish their requests and close,
//! and whatever is left when `shutdown_timeout` runs out is dropped.
//!
//! HTTP/1.1 only: GMS clients speak it, and hyper's header timeout exists for HTTP/1 only.
//!
//! A client that stops reading its answers is cut once a write has waited `write_timeout`
//! (`request_timeout_ms`) without progress (`io`): hyper's timers cover reading only, so
//! such a connection (pipelined requests never read, or one large answer) kept its place
//! under `max_connections` and its answer in memory for ever, and a few of them locked
//! everyone out. A slow reader that keeps reading is not cut: the wait restarts at each write.

mod io;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::ConnectInfo;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::http::front::Front;

/// What the loop needs from `[server]`.
#[derive(Clone)]
pub struct ServeOptions {
    pub max_connections: usize,
    pub header_timeout: Duration,
    /// How long a write may wait for the client to read before the connection is cut.
    pub write_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Serves `router` until `shutdown` resolves, then drains as described above.
pub async fn serve(
    listener: TcpListener,
    router: Front,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let acceptor = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        // A slot first: past the cap, new connections wait in the kernel's backlog.
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of descriptors or a connection reset before accept: keep serving
                    // the connections we have, and try again shortly.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let connection = Connection {
            router: router.clone(),
            peer,
            header_timeout: options.header_timeout,
            write_timeout: options.write_timeout,
            stop: stop_rx.clone(),
        };
        let acceptor = acceptor.clone();
        connections.spawn(async move {
            let _slot = slot;
            connection.run(stream, acceptor).await;
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(drain_budget(options.shutdown_timeout), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = connections.len(),
            "shutdown_timeout reached: closing the connections still open"
        );
        connections.abort_all();
    }
    Ok(())
}

/// How long the connections in flight get to finish once the shutdown begins: the
/// `shutdown_timeout` less what the process needs after them to close (the store's last
/// commit, the runtime's end), a tenth of it and at most 250 ms, so that the process has
/// exited when the timeout ends (it closed a few milliseconds after, when a connection
/// used all of it).
pub fn drain_budget(shutdown_timeout: Duration) -> Duration {
    shutdown_timeout.saturating_sub((shutdown_timeout / 10).min(Duration::from_millis(250)))
}

struct Connection {
    router: Front,
    peer: SocketAddr,
    header_timeout: Duration,
    write_timeout: Duration,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn run(self, stream: TcpStream, acceptor: Option<tokio_rustls::TlsAcceptor>) {
        let _ = stream.set_nodelay(true);
        io::cap_send_buffer(&stream);
        match acceptor {
            None => self.http(stream).await,
            Some(acceptor) => {
                // The handshake counts as part of the headers: a client that stalls it is cut,
                // and so is one still in it when the shutdown begins (nothing is in flight on
                // it; it held the exit until the header timeout or the shutdown's end).
                let handshake = tokio::time::timeout(self.header_timeout, acceptor.accept(stream));
                let mut stop = self.stop.clone();
                let done = tokio::select! {
                    done = handshake => done,
                    _ = stop.wait_for(|stop| *stop) => {
                        tracing::debug!(peer = %self.peer, "TLS handshake cut by the shutdown");
                        return;
                    }
                };
                match done {
                    Ok(Ok(tls)) => self.http(tls).await,
                    Ok(Err(err)) => {
                        tracing::debug!(peer = %self.peer, error = %err, "TLS handshake failed")
                    }
                    Err(_) => tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
                }
            }
        }
    }

    async fn http<IO>(mut self, io: IO)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let service = {
            let router = self.router.clone();
            let peer = self.peer;
            let in_flight = in_flight.clone();
            hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                let guard = InFlight::enter(in_flight.clone());
                let router = router.clone();
                async move {
                    let response = router.oneshot(req.map(axum::body::Body::new)).await?;
                    // The request stays in flight until its body is written (and dropped).
                    // Handed to hyper as it is, not boxed again in an `axum::body::Body`.
                    Ok::<_, std::convert::Infallible>(response.map(|body| {
                        body.map_frame(move |frame| {
                            let _ = &guard;
                            frame
                        })
                    }))
                }
            })
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .max_header_size(MAX_HEAD_BYTES)
            .keep_alive(true);
        let (io, sending) = io::Watched::new(io, self.write_timeout);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = self.stop.wait_for(|stop| *stop) => {}
        }
        // Shutting down: nothing in flight (idle, or headers still coming) closes now. An
        // answer whose body hyper has taken whole but the client has not yet read is in
        // flight too (it was cut off here).
        if in_flight.load(Ordering::SeqCst) == 0 && !sending.waiting() {
            return;
        }
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

/// The longest request head (method, URI and headers) a connection takes: past it, hyper's
/// bare 431, and the connection closes. Without it the bound was hyper's read buffer
/// (~400 KiB), so each connection sending a large head slowly held ~0.5–0.7 MB until
/// `header_timeout_ms` (an outside audit), up to gigabytes at `max_connections`; a GMS
/// call's head is well under 1 KiB.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Counts a request from the moment its headers are read until its answer is written.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
