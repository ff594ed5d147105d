//! The socket as hyper sees it: a write that waits too long for the client cuts the
//! connection, and the accept loop can tell whether an answer is still on its way out.
//!
//! - **Stalled writes** (`tokio-io-timeout`): a write that waits `write_timeout` for the
//!   client to read fails, and hyper closes the connection. The kernel's send buffer is
//!   capped ([`SEND_BUFFER`]): Linux wakes a blocked writer only once a third of the buffer
//!   has drained, so with the autotuned 4 MB a client reading 32 KB/s waited more than 30 s
//!   between wakes and was cut while reading. With 128 KiB (the kernel doubles it) a write
//!   waits for ~120 KB to drain: measured on loopback, a client reading 8 KB/s keeps its
//!   connection at the default 30 s (3–6 KB/s is cut), one reading 128 KB/s at 3 s.
//! - **Unsent answers** ([`Sending`]): hyper has taken a response's last bytes (and dropped its
//!   body, which ends the request's `InFlight`) before the socket has accepted them; while a
//!   write waits, the connection is still answering, and a shutdown must let it finish.
//! - **Lingering close**: when hyper closes a connection (`Connection: close`, a shutdown),
//!   the client may have sent more requests we will not read. Closing a socket with unread
//!   bytes makes Linux answer with a reset, and a reset makes the client's kernel discard the
//!   answers it had not yet read: answers to calls that took effect were lost. So the write
//!   side is shut first (the client sees the answers, then the end), and what the client
//!   still sends is read and dropped until it closes, for at most [`LINGER`], as web servers
//!   do (Apache's lingering close, nginx's `lingering_close`).

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_io_timeout::TimeoutStream;

/// The longest a closing connection reads what the client still sends (see above).
pub const LINGER: Duration = Duration::from_secs(2);

/// `SO_SNDBUF` of each accepted connection, before the kernel doubles it.
pub const SEND_BUFFER: usize = 128 * 1024;

/// Caps the socket's send buffer (see the module's docs). A failure leaves the default.
pub fn cap_send_buffer(stream: &tokio::net::TcpStream) {
    let _ = socket2::SockRef::from(stream).set_send_buffer_size(SEND_BUFFER);
}

/// Whether the last write to the client is still waiting: set when one returns `Pending`,
/// cleared when one completes.
#[derive(Clone, Default)]
pub struct Sending(Arc<AtomicBool>);

impl Sending {
    pub fn waiting(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The connection's socket (TCP or TLS) with all of the above.
pub struct Watched<IO> {
    inner: Pin<Box<TimeoutStream<IO>>>,
    sending: Sending,
    /// Set once the write side is shut: until when the close reads what still comes.
    lingering: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<IO: AsyncRead + AsyncWrite> Watched<IO> {
    pub fn new(io: IO, write_timeout: Duration) -> (Self, Sending) {
        let mut inner = TimeoutStream::new(io);
        inner.set_write_timeout(Some(write_timeout));
        let sending = Sending::default();
        let watched = Self {
            inner: Box::pin(inner),
            sending: sending.clone(),
            lingering: None,
        };
        (watched, sending)
    }

    fn noted<T>(&self, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        self.sending.0.store(polled.is_pending(), Ordering::Relaxed);
        polled
    }
}

impl<IO: AsyncRead + AsyncWrite> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.inner.as_mut().poll_read(cx, buf)
    }
}

impl<IO: AsyncRead + AsyncWrite> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = self.inner.as_mut().poll_write(cx, buf);
        self.noted(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = self.inner.as_mut().poll_write_vectored(cx, bufs);
        self.noted(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = self.inner.as_mut().poll_flush(cx);
        self.noted(polled)
    }

    /// Shuts the write side, then reads and drops what the client still sends until it
    /// closes or [`LINGER`] has passed (see the module's docs).
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.lingering.is_none() {
            std::task::ready!(self.inner.as_mut().poll_shutdown(cx))?;
            self.lingering = Some(Box::pin(tokio::time::sleep(LINGER)));
        }
        let mut scratch = [0u8; 4096];
        // A client flooding the socket gets its turn bounded: the task yields after 64 reads.
        for _ in 0..64 {
            if let Some(until) = self.lingering.as_mut()
                && until.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match self.inner.as_mut().poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => continue,
                // A reset or any error: nothing more will come.
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
