//! The request socket: REQ peers (minions, Salt's CLI) send `['', body]` and get
//! `['', reply]` back on the same connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use halite_ratelog::{peer_warn, shown};
use halite_zmtp::SocketType;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tracing::{debug, info};

use crate::peer::{OnMessage, Peer, PeerId, Sent, Server, Waiting};
use crate::{listen, SocketOptions, TransportError};

/// One request from a REQ peer; the reply goes to `peer`. Its bytes left the socket's
/// in-flight budget ([`SocketOptions::max_inflight_bytes`]) when it entered the request
/// queue, and count against [`SocketOptions::request_queue_bytes`] until the request is
/// dropped: keep it until its handler has finished with it.
#[derive(Debug)]
pub struct Request {
    pub peer: PeerId,
    pub remote: SocketAddr,
    pub body: Vec<u8>,
    pub admission: Admission,
}

/// A request's place in the queue's byte budget, given back when dropped.
#[derive(Debug)]
pub struct Admission(#[allow(dead_code)] OwnedSemaphorePermit);

/// The way from the request socket to the master: bounded in requests (the channel) and in
/// bytes (the semaphore, one permit a byte).
#[derive(Clone)]
struct Queue {
    requests: mpsc::Sender<Request>,
    bytes: Arc<Semaphore>,
    /// The permits one request takes: its size, but never more than the whole budget.
    most: usize,
}

impl Queue {
    fn permits(&self, len: usize) -> u32 {
        len.clamp(1, self.most).min(u32::MAX as usize) as u32
    }
}

/// Sends replies to request peers. Cheap to clone; usable from any thread.
#[derive(Clone)]
pub struct Replier {
    server: Arc<Server>,
}

impl Replier {
    /// Whether the peer is still connected: a REQ peer that timed out closed its socket and
    /// sends again on a new one, so work for the old one would be answered to nobody.
    pub fn is_connected(&self, peer: PeerId) -> bool {
        self.server.peer(peer).is_some()
    }

    /// Writes the reply, or queues it if the peer's socket is full. A peer that has gone
    /// (its REQ socket reconnects and resends) is logged, not an error.
    pub fn reply(&self, peer: PeerId, body: &[u8]) -> Result<(), TransportError> {
        let Some(conn) = self.server.peer(peer) else {
            // Its address went with the connection: such lines share one budget.
            peer_warn!("reply undelivered", None, conn = %peer, "reply not delivered: the peer has disconnected");
            return Ok(());
        };
        if self.server.send(&conn, Bytes::from(halite_zmtp::message(&[b"", body]))) == Sent::Gone {
            peer_warn!("reply undelivered", Some(conn.remote.ip().to_canonical()), conn = %peer, remote = %conn.remote,
                "reply not delivered: the connection is closing");
        }
        Ok(())
    }
}

/// The listening request socket.
pub struct RouterHandle {
    pub replier: Replier,
    pub requests: mpsc::Receiver<Request>,
    pub local_addr: SocketAddr,
    pub(crate) server: Arc<Server>,
    accept: tokio::task::JoinHandle<()>,
}

impl RouterHandle {
    /// Stops accepting, lets queued replies go out (up to a second), closes every peer.
    pub async fn shutdown(self) {
        self.accept.abort();
        self.server.close(Duration::from_secs(1)).await;
    }
}

/// Listens for REQ peers on `addr`. Must be called inside a tokio runtime.
pub fn bind_router(addr: SocketAddr, opts: &SocketOptions) -> Result<RouterHandle, TransportError> {
    let listener = listen(addr, opts)?;
    let local_addr = listener.local_addr().map_err(|source| TransportError::Bind { addr, source })?;
    let server = Server::new(SocketType::Router, "request", opts.clone());
    let (tx, rx) = mpsc::channel(opts.request_queue.max(1));
    let most = opts.request_queue_bytes.clamp(1, Semaphore::MAX_PERMITS);
    let queue = Queue { requests: tx, bytes: Arc::new(Semaphore::new(most)), most };
    let on_message: OnMessage = Arc::new(move |peer: &Peer, parts: Vec<Vec<u8>>| forward_request(peer, parts, &queue));
    let accept = server.spawn_accept(listener, on_message);
    info!(%local_addr, max_connections = server.max_connections(), "request server listening");
    Ok(RouterHandle { replier: Replier { server: server.clone() }, requests: rx, local_addr, server, accept })
}

/// A REQ peer's message is exactly `['', body]`; anything else is a peer that is not
/// speaking Salt's request protocol, logged and dropped. A request the queue has no room
/// for waits in its connection ([`Waiting`]).
fn forward_request(peer: &Peer, parts: Vec<Vec<u8>>, queue: &Queue) -> Option<Waiting> {
    let ip = Some(peer.remote.ip().to_canonical());
    let n = parts.len();
    let mut it = parts.into_iter();
    let (Some(delimiter), Some(body), None) = (it.next(), it.next(), it.next()) else {
        peer_warn!("not REQ", ip, conn = %peer.id, remote = %peer.remote, frames = n,
            "dropping a request that is not ['', body]: not a REQ peer");
        return None;
    };
    if !delimiter.is_empty() {
        peer_warn!("not REQ", ip, conn = %peer.id, remote = %peer.remote, delimiter = %shown(&delimiter),
            "dropping a request without the REQ delimiter frame");
        return None;
    }
    let (id, remote, bytes, permits) = (peer.id, peer.remote, body.len(), queue.permits(body.len()));
    let admitted = match queue.bytes.clone().try_acquire_many_owned(permits) {
        Ok(permit) => {
            let request = Request { peer: id, remote, body, admission: Admission(permit) };
            match queue.requests.try_send(request) {
                Ok(()) => return None,
                Err(mpsc::error::TrySendError::Closed(_)) => return None,
                Err(mpsc::error::TrySendError::Full(request)) => Ok(request),
            }
        }
        Err(TryAcquireError::Closed) => return None,
        Err(TryAcquireError::NoPermits) => Err(body),
    };
    // In a storm every peer waits alike: one budget of lines for all of them, not one per
    // address (10,000 minions would be 10,000 lines).
    debug!(conn = %peer.id, remote = %peer.remote, "request queue full; the connection waits for room");
    peer_warn!("request queue full", None, "request queue full; connections wait for room and are not read meanwhile");
    let queue = queue.clone();
    let taken = async move {
        let request = match admitted {
            Ok(request) => request,
            Err(body) => {
                let Ok(permit) = queue.bytes.acquire_many_owned(permits).await else { return };
                Request { peer: id, remote, body, admission: Admission(permit) }
            }
        };
        // Closed only when the master has stopped taking requests.
        let _ = queue.requests.send(request).await;
    };
    Some(Waiting { bytes, taken: Box::pin(taken) })
}
