//! The last check before a stop leaves this process: a connector whose
//! connections ask the run's [`Fence`] when they are about to write the
//! head of a stop request, and refuse to write it when the fence does not
//! hold.
//!
//! Why here and not only before the call: Docker's API takes no fencing
//! token, so the check must be as close to the socket as this side can
//! get. A check before the call leaves the whole of the HTTP client
//! between it and the wire (waiting for a pooled connection, opening one);
//! a leader paused (SIGSTOP, a frozen VM) in that stretch used to send its
//! stop when it woke, after the next leader had restarted the container.
//! Checked in the write itself, what remains is the few instructions
//! between the check and the `write` system call; bytes the kernel already
//! holds leave during the pause, before the lease can expire (the fence
//! holds only while a third of the lease remains; docs/ha.md).
//!
//! A stop is recognised by its request line (`POST …/containers/{id}/stop`),
//! which hyper writes at the start of a write: HTTP/1.1 carries one request
//! at a time on a connection.

use crate::runtime::Fence;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

/// The run's fence, shared by every connection of every host: empty until
/// the run sets it (HA mode only; without one every write goes).
#[derive(Clone, Default)]
pub struct FenceSlot(Arc<OnceLock<Arc<dyn Fence>>>);

impl FenceSlot {
    /// Sets the fence; a slot is set once (one run, one leadership).
    /// Returns false when it was set already.
    pub fn set(&self, fence: Arc<dyn Fence>) -> bool {
        self.0.set(fence).is_ok()
    }

    /// Whether acting is allowed now: no fence, or the fence holds.
    pub fn holds(&self) -> bool {
        self.0.get().is_none_or(|f| f.holds())
    }
}

/// The error a refused write carries, found again in the HTTP client's
/// error chain by [`is_fenced`].
#[derive(Debug)]
struct FencedWrite;

impl std::fmt::Display for FencedWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stop not written: the fence does not hold")
    }
}

impl std::error::Error for FencedWrite {}

/// Whether `e`, or one of its causes, is a write this module refused.
pub fn is_fenced(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<FencedWrite>() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if io.get_ref().is_some_and(|inner| inner.is::<FencedWrite>()) {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// Whether `head` begins a stop request: `POST <path>/stop[?query] `.
pub fn is_stop_request(head: &[u8]) -> bool {
    let Some(rest) = head.strip_prefix(b"POST ") else {
        return false;
    };
    let end = rest
        .iter()
        .position(|&b| b == b' ' || b == b'?' || b == b'\r')
        .unwrap_or(rest.len());
    rest[..end].ends_with(b"/stop")
}

/// A connector whose connections are [`FencedIo`].
#[derive(Clone)]
pub struct FencedConnector<C> {
    inner: C,
    fence: FenceSlot,
}

impl<C> FencedConnector<C> {
    /// Wraps `inner`; its connections ask `fence` before writing a stop.
    pub fn new(inner: C, fence: FenceSlot) -> Self {
        FencedConnector { inner, fence }
    }
}

impl<C> tower_service::Service<Uri> for FencedConnector<C>
where
    C: tower_service::Service<Uri> + Send,
    C::Future: Send + 'static,
{
    type Response = FencedIo<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let fence = self.fence.clone();
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            let io = connecting.await?;
            Ok(FencedIo { inner: io, fence })
        })
    }
}

/// A connection that refuses to write the head of a stop request while the
/// fence does not hold.
pub struct FencedIo<T> {
    inner: T,
    fence: FenceSlot,
}

impl<T> FencedIo<T> {
    fn refuse(&self, head: &[u8]) -> Option<io::Error> {
        (is_stop_request(head) && !self.fence.holds())
            .then(|| io::Error::new(io::ErrorKind::PermissionDenied, FencedWrite))
    }
}

impl<T: Read + Unpin> Read for FencedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for FencedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.refuse(buf) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
        if let Some(e) = self.refuse(first) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T: Connection> Connection for FencedIo<T> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_is_told_from_other_calls_by_its_request_line() {
        assert!(is_stop_request(
            b"POST /v1.47/containers/abc/stop?t=10 HTTP/1.1\r\n"
        ));
        assert!(is_stop_request(b"POST /containers/abc/stop HTTP/1.1\r\n"));
        assert!(!is_stop_request(
            b"POST /v1.47/containers/abc/start HTTP/1.1\r\n"
        ));
        assert!(!is_stop_request(
            b"GET /v1.47/containers/abc/json HTTP/1.1\r\n"
        ));
        // A container named "stop" is not a stop call.
        assert!(!is_stop_request(
            b"GET /v1.47/containers/stop/json HTTP/1.1\r\n"
        ));
        assert!(!is_stop_request(b"POST /v1.47/contai"));
        assert!(!is_stop_request(b""));
    }

    struct Flag(std::sync::atomic::AtomicBool);
    impl Fence for Flag {
        fn holds(&self) -> bool {
            self.0.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    #[test]
    fn an_empty_slot_holds_and_a_set_one_asks_its_fence_and_is_set_once() {
        let slot = FenceSlot::default();
        assert!(slot.holds(), "an empty slot holds");
        let flag = Arc::new(Flag(true.into()));
        assert!(slot.set(flag.clone()));
        assert!(!slot.set(Arc::new(Flag(true.into()))));
        assert!(slot.holds());
        flag.0.store(false, std::sync::atomic::Ordering::Relaxed);
        assert!(!slot.clone().holds());
        let io = FencedIo {
            inner: (),
            fence: slot,
        };
        let e = io
            .refuse(b"POST /containers/x/stop HTTP/1.1\r\n")
            .expect("refused");
        assert!(is_fenced(&e));
        assert!(io
            .refuse(b"POST /containers/x/start HTTP/1.1\r\n")
            .is_none());
    }
}
