//! One task per connection, the outbox writers share with it, and the table of connections
//! a listening socket keeps.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Buf, Bytes};
use halite_zmtp::{Connection, Event, SocketType, ZmtpError};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::{debug, info, warn, Instrument};

use crate::SocketOptions;

/// A connection's number, unique for the life of the listening socket: what a reply is
/// addressed to (libzmq's ROUTER routing id plays this part).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerId(pub u64);

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Most a peer may have waiting in its outbox before it counts as stuck and is closed (for
/// replies) or skipped (for publishes, by message count: `pub_hwm`).
const MAX_QUEUED_BYTES: usize = 256 << 20;

/// Bytes read from one peer before the task yields to others.
const READ_BUDGET: usize = 256 << 10;

thread_local! {
    /// One read buffer per runtime thread rather than one per connection: an idle minion
    /// costs no buffer at all.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 << 10]);
}

#[derive(Default)]
struct PeerState {
    outbox: VecDeque<Bytes>,
    queued_bytes: usize,
    /// Topic prefixes, one entry per SUBSCRIBE (a CANCEL removes one), as libzmq counts them.
    subscriptions: Vec<Vec<u8>>,
    open: bool,
    closed: bool,
    /// Publishes are being dropped for this peer (logged once per episode).
    dropping: bool,
}

/// What became of bytes handed to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    Written,
    Queued,
    /// Not for this peer (publish: not subscribed, or not yet through the handshake).
    Skipped,
    /// The peer is too far behind; these bytes are dropped (publish past `pub_hwm`).
    Dropped,
    Gone,
}

pub(crate) struct Peer {
    pub id: PeerId,
    pub remote: SocketAddr,
    stream: TcpStream,
    state: Mutex<PeerState>,
    wake: Notify,
}

impl Peer {
    fn state(&self) -> MutexGuard<'_, PeerState> {
        // Nothing panics while holding it; if something did, the data is still consistent
        // enough to keep serving the other peers.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes `bytes` at once if nothing is queued ahead of them, and queues what the socket
    /// did not take for the peer's task.
    fn write_or_queue(&self, st: &mut PeerState, mut bytes: Bytes) -> Sent {
        if st.closed {
            return Sent::Gone;
        }
        if st.outbox.is_empty() {
            match self.stream.try_write(&bytes) {
                Ok(n) if n == bytes.len() => return Sent::Written,
                Ok(n) => bytes.advance(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => {
                    debug!(peer = %self.id, remote = %self.remote, error = %e, "write failed; closing");
                    st.closed = true;
                    self.wake.notify_one();
                    return Sent::Gone;
                }
            }
        }
        st.queued_bytes += bytes.len();
        st.outbox.push_back(bytes);
        if st.queued_bytes > MAX_QUEUED_BYTES {
            warn!(peer = %self.id, remote = %self.remote, queued = st.queued_bytes, "peer does not read what it is sent; closing");
            st.closed = true;
        }
        self.wake.notify_one();
        Sent::Queued
    }

    /// Sends a reply or handshake bytes.
    pub fn send(&self, bytes: Bytes) -> Sent {
        let mut st = self.state();
        self.write_or_queue(&mut st, bytes)
    }

    /// Sends an encoded publish whose first frame is `topic`, if this peer subscribed to a
    /// prefix of it and has room under `hwm` queued publishes.
    pub fn publish(&self, bytes: &Bytes, topic: &[u8], hwm: usize) -> Sent {
        let mut st = self.state();
        if !st.open || !st.subscriptions.iter().any(|prefix| topic.starts_with(prefix)) {
            return Sent::Skipped;
        }
        if st.outbox.len() >= hwm {
            if !st.dropping {
                st.dropping = true;
                warn!(peer = %self.id, remote = %self.remote, hwm, "subscriber is {hwm} publishes behind; dropping publishes to it until it catches up");
            }
            return Sent::Dropped;
        }
        st.dropping = false;
        self.write_or_queue(&mut st, bytes.clone())
    }

    fn has_pending(&self) -> bool {
        let st = self.state();
        !st.outbox.is_empty() || st.closed
    }

    /// Writes queued bytes until the socket is full. `Err` closes the connection.
    fn flush(&self) -> Result<(), String> {
        let mut guard = self.state();
        let st = &mut *guard;
        if st.closed {
            return Err("closed".into());
        }
        while let Some(front) = st.outbox.front_mut() {
            match self.stream.try_write(front) {
                Ok(n) => {
                    st.queued_bytes -= n;
                    if n == front.len() {
                        st.outbox.pop_front();
                    } else {
                        front.advance(n);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) => {
                    st.closed = true;
                    return Err(format!("write failed: {e}"));
                }
            }
        }
        Ok(())
    }

    fn subscription(&self, prefix: Vec<u8>, add: bool) {
        let mut st = self.state();
        if add {
            st.subscriptions.push(prefix);
        } else if let Some(i) = st.subscriptions.iter().position(|p| *p == prefix) {
            st.subscriptions.swap_remove(i);
        }
    }
}

/// What the listening socket does with a peer's messages.
pub(crate) type OnMessage = Arc<dyn Fn(&Peer, Vec<Vec<u8>>) + Send + Sync>;

/// A listening socket's connections.
pub(crate) struct Server {
    ours: SocketType,
    name: &'static str,
    opts: SocketOptions,
    peers: Mutex<HashMap<PeerId, Arc<Peer>>>,
    next_id: AtomicU64,
    closing: watch::Sender<bool>,
}

impl Server {
    pub fn new(ours: SocketType, name: &'static str, opts: SocketOptions) -> Arc<Server> {
        Arc::new(Server {
            ours,
            name,
            opts,
            peers: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closing: watch::channel(false).0,
        })
    }

    pub fn opts(&self) -> &SocketOptions {
        &self.opts
    }

    fn peers(&self) -> MutexGuard<'_, HashMap<PeerId, Arc<Peer>>> {
        self.peers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn peer(&self, id: PeerId) -> Option<Arc<Peer>> {
        self.peers().get(&id).cloned()
    }

    /// The connected peers now; taken so that a fan-out does not hold the table locked.
    pub fn snapshot(&self) -> Vec<Arc<Peer>> {
        self.peers().values().cloned().collect()
    }

    /// Accepts connections until [`Server::close`], one task each.
    pub fn spawn_accept(self: &Arc<Self>, listener: TcpListener, on_message: OnMessage) -> tokio::task::JoinHandle<()> {
        let server = self.clone();
        let mut closing = self.closing.subscribe();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = closing.changed() => return,
                };
                match accepted {
                    Ok((stream, remote)) => server.start_peer(stream, remote, on_message.clone()),
                    Err(e) => {
                        // Out of descriptors, most likely: the connection waits in the
                        // backlog, and spinning on accept would only burn the CPU it needs.
                        warn!(socket = server.name, error = %e, "accept failed; retrying in 100 ms");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
    }

    fn start_peer(self: &Arc<Self>, stream: TcpStream, remote: SocketAddr, on_message: OnMessage) {
        let id = PeerId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let _ = stream.set_nodelay(true);
        let peer = Arc::new(Peer { id, remote, stream, state: Mutex::default(), wake: Notify::new() });
        self.peers().insert(id, peer.clone());
        let server = self.clone();
        let span = tracing::debug_span!("conn", socket = self.name, peer = %id, %remote);
        tokio::spawn(
            async move {
                let closing = server.closing.subscribe();
                let socket = server.name;
                match server.serve(&peer, closing, &on_message).await {
                    Ok(()) => debug!("peer disconnected"),
                    // The span is debug-level; the fields are repeated so this line names
                    // the connection at any log level.
                    Err(reason) => info!(socket, peer = %id, %remote, %reason, "connection closed"),
                }
                server.peers().remove(&id);
            }
            .instrument(span),
        );
    }

    async fn serve(
        &self,
        peer: &Peer,
        mut closing: watch::Receiver<bool>,
        on_message: &OnMessage,
    ) -> Result<(), String> {
        let mut conn = Connection::new(self.ours, b"", self.opts.max_message_size);
        peer.send(conn.take_output().into());
        // A PING in flight: when it went out. Anything read from the peer answers it.
        let mut ping_sent: Option<Instant> = None;
        let mut last_heard = Instant::now();
        let mut tick = Box::pin(tokio::time::sleep(self.opts.handshake_timeout));
        loop {
            let pending = peer.has_pending();
            tokio::select! {
                ready = peer.stream.readable() => {
                    ready.map_err(|e| e.to_string())?;
                    if !read_available(peer, &mut conn)? {
                        return Ok(());
                    }
                    last_heard = Instant::now();
                    ping_sent = None;
                    let handled = self.handle_events(peer, &mut conn, on_message);
                    if conn.has_output() {
                        peer.send(conn.take_output().into());
                    }
                    if let Err(e) = handled {
                        return Err(format!("protocol error: {e}"));
                    }
                }
                ready = peer.stream.writable(), if pending => {
                    ready.map_err(|e| e.to_string())?;
                    peer.flush()?;
                }
                _ = peer.wake.notified(), if !pending => {}
                _ = &mut tick => {
                    if !conn.is_open() {
                        return Err("no ZMTP handshake within the handshake timeout".into());
                    }
                    // A quiet peer is not a dead one (a subscriber never speaks unasked):
                    // only a PING left unanswered for heartbeat_timeout closes it.
                    if conn.peer_has_heartbeats() {
                        match ping_sent {
                            Some(sent) if sent.elapsed() >= self.opts.heartbeat_timeout => {
                                return Err(format!(
                                    "heartbeat unanswered for {:?} (silent for {:?})",
                                    sent.elapsed(),
                                    last_heard.elapsed()
                                ));
                            }
                            Some(_) => {}
                            None if last_heard.elapsed() >= self.opts.heartbeat_interval => {
                                let ttl = (self.opts.heartbeat_timeout.as_millis() / 100).min(u16::MAX as u128) as u16;
                                conn.ping(ttl);
                                peer.send(conn.take_output().into());
                                ping_sent = Some(Instant::now());
                            }
                            None => {}
                        }
                    }
                    tick.as_mut().reset(Instant::now() + self.opts.heartbeat_interval);
                }
                _ = closing.changed() => return Ok(()),
            }
        }
    }

    fn handle_events(&self, peer: &Peer, conn: &mut Connection, on_message: &OnMessage) -> Result<(), ZmtpError> {
        while let Some(event) = conn.next_event()? {
            match event {
                Event::Open { socket_type, identity, minor_version } => {
                    debug!(peer_type = socket_type.name(), identity = %String::from_utf8_lossy(&identity), zmtp = format!("3.{minor_version}"), "handshake complete");
                    peer.state().open = true;
                }
                Event::Message(parts) => on_message(peer, parts),
                Event::Subscribe(prefix) => peer.subscription(prefix, true),
                Event::Cancel(prefix) => peer.subscription(prefix, false),
                Event::Pong => {}
            }
        }
        Ok(())
    }

    /// Stops accepting, gives queued replies up to `grace` to reach their peers, then closes
    /// every connection.
    pub async fn close(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && self.snapshot().iter().any(|p| !p.state().outbox.is_empty()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.closing.send(true);
    }
}

/// Reads what the socket has (up to [`READ_BUDGET`]) into `conn`. `Ok(false)`: the peer
/// closed the connection.
fn read_available(peer: &Peer, conn: &mut Connection) -> Result<bool, String> {
    READ_BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        let mut total = 0;
        while total < READ_BUDGET {
            match peer.stream.try_read(&mut buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    conn.receive(&buf[..n]);
                    total += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read failed: {e}")),
            }
        }
        Ok(true)
    })
}
