//! Stream adapters: a socket the daemon can close under russh's feet, a byte counter for
//! the audit, and the copy loop of a forward.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;

/// A stream that fails every read and write once `cancel` turns true.
///
/// russh runs a session in its own task, which owns the socket and reads messages (an
/// SSH_MSG_IGNORE every second, say) while it holds a key exchange or an authentication
/// open. A disconnect queued from outside waits behind that; failing the socket ends the
/// session at its next poll, which the cancel itself wakes.
pub struct Cancellable<S> {
    inner: S,
    cancelled: Pin<Box<dyn Future<Output = ()> + Send>>,
    done: bool,
}

impl<S> Cancellable<S> {
    pub fn new(inner: S, mut cancel: watch::Receiver<bool>) -> Cancellable<S> {
        let cancelled = Box::pin(async move {
            // A dropped sender cancels too: nobody is left to keep the connection.
            let _ = cancel.wait_for(|c| *c).await;
        });
        Cancellable { inner, cancelled, done: false }
    }

    fn is_cancelled(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.done && self.cancelled.as_mut().poll(cx).is_ready() {
            self.done = true;
        }
        self.done
    }
}

fn aborted() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "connection closed by halite-jumpbox")
}

impl<S: AsyncRead + Unpin> AsyncRead for Cancellable<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.is_cancelled(cx) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Cancellable<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if self.is_cancelled(cx) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A reader that counts the bytes read from it, so a forward's audit line has its byte
/// counts however the forward ends.
pub struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R> Counted<R> {
    pub fn new(inner: R, read: Arc<AtomicU64>) -> Counted<R> {
        Counted { inner, read }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Counted<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.read.fetch_add((buf.filled().len() - before) as u64, Ordering::Relaxed);
        polled
    }
}

/// Bytes a forward has carried each way.
#[derive(Default)]
pub struct Carried {
    pub to_destination: Arc<AtomicU64>,
    pub to_client: Arc<AtomicU64>,
}

/// Copies a forward both ways until both sides are done or either fails.
///
/// russh hands a channel's data to it through a bounded queue, and when that queue is full
/// it stops reading the whole connection: a destination that stops reading would freeze
/// every other forward of the connection. The client-to-destination half therefore gives
/// the destination `stall` to take any of what is waiting, and ends the forward when it
/// takes nothing. `bytes_in` counts what the destination took.
pub async fn forward<C, D>(client: C, destination: D, carried: &Carried, stall: Duration) -> io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
    D: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (destination_read, mut destination_write) = tokio::io::split(destination);
    let mut destination_read = Counted::new(destination_read, carried.to_client.clone());
    let up = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = client_read.read(&mut buf).await?;
            if n == 0 {
                return destination_write.shutdown().await;
            }
            let mut pending = &buf[..n];
            while !pending.is_empty() {
                let written = match tokio::time::timeout(stall, destination_write.write(pending)).await {
                    Ok(written) => written?,
                    Err(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("the destination read nothing for {}s", stall.as_secs()),
                        ))
                    }
                };
                if written == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                carried.to_destination.fetch_add(written as u64, Ordering::Relaxed);
                pending = &pending[written..];
            }
        }
    };
    let down = async {
        tokio::io::copy(&mut destination_read, &mut client_write).await?;
        client_write.shutdown().await
    };
    tokio::try_join!(up, down).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancelled_stream_fails_its_pending_read() {
        let (a, _b) = tokio::io::duplex(64);
        let (tx, rx) = watch::channel(false);
        let mut stream = Cancellable::new(a, rx);
        let read = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            stream.read(&mut buf).await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.send(true).unwrap();
        let err = read.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    }

    #[tokio::test]
    async fn a_destination_that_stops_reading_ends_the_forward() {
        let (client, mut client_peer) = tokio::io::duplex(1024);
        let (destination, _never_read) = tokio::io::duplex(1024);
        let sender = tokio::spawn(async move {
            let chunk = vec![7u8; 4096];
            while client_peer.write_all(&chunk).await.is_ok() {}
        });
        let carried = Carried::default();
        let err = forward(client, destination, &carried, Duration::from_millis(200)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(carried.to_destination.load(Ordering::Relaxed) > 0);
        sender.abort();
    }

    #[tokio::test]
    async fn both_ways_are_copied_and_counted() {
        let (client, mut client_peer) = tokio::io::duplex(1024);
        let (destination, mut destination_peer) = tokio::io::duplex(1024);
        let carried = Carried::default();
        let peers = async {
            client_peer.write_all(b"request").await.unwrap();
            client_peer.shutdown().await.unwrap();
            let mut got = Vec::new();
            destination_peer.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"request");
            destination_peer.write_all(b"a longer answer").await.unwrap();
            destination_peer.shutdown().await.unwrap();
            let mut back = Vec::new();
            client_peer.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, b"a longer answer");
        };
        let (copied, ()) = tokio::join!(forward(client, destination, &carried, Duration::from_secs(5)), peers);
        copied.unwrap();
        assert_eq!(carried.to_destination.load(Ordering::Relaxed), 7);
        assert_eq!(carried.to_client.load(Ordering::Relaxed), 15);
    }
}
