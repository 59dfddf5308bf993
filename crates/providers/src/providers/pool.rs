//! Upstream connections, counted through the connector: hyper's pooled client does not
//! say how many connections its pool holds, so the connector counts every connection it
//! opens and the connection's `Drop` counts it closed. That gives the connections open
//! now (idle in the pool or carrying a request: the pool does not tell them apart) and
//! the connections opened since start (a rate well above the request rate means the pool
//! is not reusing them).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};

/// Upstream connections opened and open, shared by a connector and its connections.
#[derive(Debug, Default)]
pub struct UpstreamConnections {
    opened: AtomicU64,
    closed: AtomicU64,
}

impl UpstreamConnections {
    /// Connections opened since start.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        // `closed` first: a connection closed between the two loads is then not
        // counted as closed without having been counted as opened.
        let closed = self.closed.load(Ordering::Relaxed);
        self.opened().saturating_sub(closed)
    }
}

/// A connector that counts the connections it makes (see the module's documentation).
#[derive(Clone)]
pub struct Counted<C> {
    inner: C,
    stats: Arc<UpstreamConnections>,
}

impl<C> Counted<C> {
    pub fn new(inner: C, stats: Arc<UpstreamConnections>) -> Self {
        Self { inner, stats }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<C> tower::Service<Uri> for Counted<C>
where
    C: tower::Service<Uri> + Send,
    C::Response: Send + 'static,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
{
    type Response = CountedConnection<C::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.inner.call(dst);
        let stats = self.stats.clone();
        Box::pin(async move {
            let inner = connecting.await.map_err(Into::into)?;
            stats.opened.fetch_add(1, Ordering::Relaxed);
            Ok(CountedConnection { inner, stats })
        })
    }
}

/// A connection counted closed when dropped.
pub struct CountedConnection<T> {
    inner: T,
    stats: Arc<UpstreamConnections>,
}

impl<T> Drop for CountedConnection<T> {
    fn drop(&mut self) {
        self.stats.closed.fetch_add(1, Ordering::Relaxed);
    }
}

impl<T: Connection> Connection for CountedConnection<T> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}

impl<T: Read + Unpin> Read for CountedConnection<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for CountedConnection<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}
