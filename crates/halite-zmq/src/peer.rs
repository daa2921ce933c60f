//! One task per connection, the outboxes writers share with it, and the table of connections
//! a listening socket keeps, with the limits that keep a peer without a key from growing the
//! master's memory: the connection cap, the subscription caps, the outbox budget and the
//! in-flight budget (see the crate's documentation for the values and why).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use bytes::{Buf, Bytes};
use halite_ratelog::{peer_warn, shown};
use halite_zmtp::{Connection, Event, SocketType, ZmtpError};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::{debug, info, Instrument};

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

/// Subscriptions a SUB peer may hold at once (a minion holds one, or a few with
/// `zmq_filtering`); one more closes its connection.
pub(crate) const MAX_SUBSCRIPTIONS: usize = 64;

/// Bytes of topic prefixes a SUB peer may hold at once; more closes its connection.
pub(crate) const MAX_SUBSCRIPTION_BYTES: usize = 64 << 10;

/// Peers closed at most to make room for one write when the outbox budget is spent.
const MAX_EVICTIONS: usize = 8;

/// Bytes read from one peer before the task yields to others.
const READ_BUDGET: usize = 256 << 10;

thread_local! {
    /// One read buffer per runtime thread rather than one per connection: an idle minion
    /// costs no buffer at all.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 << 10]);
}

/// The peer's address as the log limiter keys it: an IPv4 peer of a dual-stack listener
/// counts as its IPv4 address.
fn ip(remote: SocketAddr) -> IpAddr {
    remote.ip().to_canonical()
}

/// Bytes queued in all the outboxes of one socket, against
/// [`SocketOptions::max_queued_bytes`].
pub(crate) struct Budget {
    limit: usize,
    used: AtomicUsize,
}

impl Budget {
    fn new(limit: usize) -> Budget {
        Budget { limit, used: AtomicUsize::new(0) }
    }

    fn try_charge(&self, n: usize) -> bool {
        n == 0
            || self
                .used
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                    used.checked_add(n).filter(|&total| total <= self.limit)
                })
                .is_ok()
    }

    fn release(&self, n: usize) {
        if n > 0 {
            self.used.fetch_sub(n, Ordering::AcqRel);
        }
    }

    fn available(&self) -> usize {
        self.limit.saturating_sub(self.used())
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// What one connection is charged against its socket's in-flight budget
/// ([`SocketOptions::max_inflight_bytes`]) for the message it is receiving. Held by the
/// connection's task beside its decoder and dropped with it, so every way the task ends
/// (the peer leaving, an error, shutdown, the task aborted) gives the charge back.
struct InFlight<'a> {
    budget: &'a Budget,
    charged: usize,
}

impl<'a> InFlight<'a> {
    fn new(budget: &'a Budget) -> InFlight<'a> {
        InFlight { budget, charged: 0 }
    }

    /// Charges `n` bytes about to be handed to the decoder, before it buffers them.
    fn charge(&mut self, n: usize) -> Result<(), Ended> {
        if !self.budget.try_charge(n) {
            return Err(self.refused(self.charged.saturating_add(n)));
        }
        self.charged += n;
        Ok(())
    }

    /// Makes the charge what the decoder holds now (`held`): its buffer grew past the bytes
    /// charged for it (the room it takes for an announced frame, a doubling), or a message
    /// was completed and handed on, or bytes charged went into room already paid for.
    fn settle(&mut self, held: u64) -> Result<(), Ended> {
        let held = usize::try_from(held).unwrap_or(usize::MAX);
        if held > self.charged {
            if !self.budget.try_charge(held - self.charged) {
                return Err(self.refused(held));
            }
        } else {
            self.budget.release(self.charged - held);
        }
        self.charged = held;
        Ok(())
    }

    fn refused(&self, wanted: usize) -> Ended {
        Ended::Refused {
            kind: "inflight budget",
            reason: format!(
                "{wanted} bytes of unfinished messages do not fit the socket's {}-byte in-flight budget \
                 ({} in use, {} of them by this connection)",
                self.budget.limit,
                self.budget.used(),
                self.charged
            ),
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.budget.release(self.charged);
    }
}

/// A publish encoded once for every subscriber. Its bytes count against the budget once,
/// from when the first outbox queues it until the last one lets go of it, which is the
/// memory it holds however many subscribers are behind on it.
pub(crate) struct Publication {
    wire: Bytes,
    budget: Arc<Budget>,
    charged: AtomicBool,
}

impl Publication {
    pub fn new(wire: Bytes, budget: Arc<Budget>) -> Arc<Publication> {
        Arc::new(Publication { wire, budget, charged: AtomicBool::new(false) })
    }

    fn charge(&self) -> bool {
        if self.charged.load(Ordering::Acquire) {
            return true;
        }
        if !self.budget.try_charge(self.wire.len()) {
            return false;
        }
        if self.charged.swap(true, Ordering::AcqRel) {
            // Charged by another outbox in the meantime.
            self.budget.release(self.wire.len());
        }
        true
    }
}

impl Drop for Publication {
    fn drop(&mut self) {
        if *self.charged.get_mut() {
            self.budget.release(self.wire.len());
        }
    }
}

/// Bytes waiting in an outbox.
enum Out {
    /// A reply or protocol bytes of this peer's own, charged to the budget as they wait.
    Own(Bytes),
    /// A publish shared with other subscribers; `sent` of its bytes have gone out.
    Shared { publication: Arc<Publication>, sent: usize },
}

impl Out {
    fn remaining(&self) -> &[u8] {
        match self {
            Out::Own(bytes) => bytes,
            Out::Shared { publication, sent } => &publication.wire[*sent..],
        }
    }

    /// Marks `n` bytes as written.
    fn advance(&mut self, n: usize, budget: &Budget, queued: bool) {
        match self {
            Out::Own(bytes) => {
                bytes.advance(n);
                if queued {
                    budget.release(n);
                }
            }
            Out::Shared { sent, .. } => *sent += n,
        }
    }

    /// Charges the budget for these bytes waiting (a shared publish only once for all).
    fn charge(&self, budget: &Budget) -> bool {
        match self {
            Out::Own(bytes) => budget.try_charge(bytes.len()),
            Out::Shared { publication, .. } => publication.charge(),
        }
    }

    /// What queueing these bytes would add to the budget.
    fn cost(&self) -> usize {
        match self {
            Out::Own(bytes) => bytes.len(),
            Out::Shared { publication, .. } if publication.charged.load(Ordering::Acquire) => 0,
            Out::Shared { publication, .. } => publication.wire.len(),
        }
    }

    /// Gives these queued bytes up unsent.
    fn discard(self, budget: &Budget) {
        match self {
            Out::Own(bytes) => budget.release(bytes.len()),
            // The publication releases its bytes when its last holder lets go.
            Out::Shared { .. } => {}
        }
    }
}

#[derive(Default)]
struct PeerState {
    outbox: VecDeque<Out>,
    /// Topic prefixes, one entry per SUBSCRIBE (a CANCEL removes one), as libzmq counts them.
    subscriptions: Vec<Vec<u8>>,
    subscription_bytes: usize,
    open: bool,
    /// Why a writer closed the connection; its task ends on seeing it.
    closed: Option<&'static str>,
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
    /// The peer is too far behind; these bytes are dropped (publish past `pub_hwm`, or past
    /// the outbox budget).
    Dropped,
    Gone,
}

pub(crate) struct Peer {
    pub id: PeerId,
    pub remote: SocketAddr,
    stream: TcpStream,
    state: Mutex<PeerState>,
    wake: Notify,
    /// Bytes in the outbox: kept with the state, readable without its lock so the peer
    /// holding the most can be found.
    queued: AtomicUsize,
    budget: Arc<Budget>,
}

impl Peer {
    fn state(&self) -> MutexGuard<'_, PeerState> {
        // Nothing panics while holding it; if something did, the data is still consistent
        // enough to keep serving the other peers.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Closes the connection from a writer's side: the outbox is given up at once (its bytes
    /// back to the budget) and the peer's task told to end.
    fn discard(&self, st: &mut PeerState, why: &'static str) {
        for out in st.outbox.drain(..) {
            out.discard(&self.budget);
        }
        self.queued.store(0, Ordering::Release);
        if st.closed.is_none() {
            st.closed = Some(why);
        }
        self.wake.notify_one();
    }

    fn closed(&self) -> Option<&'static str> {
        self.state().closed
    }

    fn has_pending(&self) -> bool {
        !self.state().outbox.is_empty()
    }

    /// Writes queued bytes until the socket is full.
    fn flush(&self) -> Result<(), Ended> {
        let mut guard = self.state();
        let st = &mut *guard;
        if let Some(why) = st.closed {
            return Err(Ended::Dropped(why));
        }
        while let Some(front) = st.outbox.front_mut() {
            match self.stream.try_write(front.remaining()) {
                Ok(n) => {
                    self.queued.fetch_sub(n, Ordering::AcqRel);
                    front.advance(n, &self.budget, true);
                    if front.remaining().is_empty() {
                        st.outbox.pop_front();
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) => {
                    self.discard(st, "write failed");
                    return Err(Ended::Lost(format!("write failed: {e}")));
                }
            }
        }
        Ok(())
    }

    fn subscription(&self, prefix: Vec<u8>, add: bool) -> Result<(), Ended> {
        let mut st = self.state();
        if add {
            let count = st.subscriptions.len() + 1;
            let bytes = st.subscription_bytes.saturating_add(prefix.len());
            if count > MAX_SUBSCRIPTIONS || bytes > MAX_SUBSCRIPTION_BYTES {
                return Err(Ended::Refused {
                    kind: "subscriptions",
                    reason: format!(
                        "{count} subscriptions of {bytes} bytes: at most {MAX_SUBSCRIPTIONS} and {MAX_SUBSCRIPTION_BYTES} bytes"
                    ),
                });
            }
            st.subscription_bytes = bytes;
            st.subscriptions.push(prefix);
        } else if let Some(i) = st.subscriptions.iter().position(|p| *p == prefix) {
            let gone = st.subscriptions.swap_remove(i);
            st.subscription_bytes -= gone.len();
        }
        Ok(())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        for out in st.outbox.drain(..) {
            out.discard(&self.budget);
        }
    }
}

/// Why a connection's task ended, which decides how it is logged.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The peer closed the connection, or the socket is shutting down.
    Quietly,
    /// Routine trouble (I/O errors, a peer that stopped answering heartbeats): info.
    Lost(String),
    /// The peer broke a rule: a warning, rate-limited per kind and peer address. `reason`
    /// shows peer bytes only through [`shown`].
    Refused { kind: &'static str, reason: String },
    /// A writer closed the connection and logged why.
    Dropped(&'static str),
}

impl Ended {
    fn protocol(e: ZmtpError) -> Ended {
        // Every kind listed, so that one halite-zmtp adds is classified here, not defaulted.
        let kind = match e {
            ZmtpError::TooLarge { .. } | ZmtpError::TooManyFrames { .. } | ZmtpError::CommandTooLarge { .. } => {
                "message too large"
            }
            ZmtpError::NotZmtp
            | ZmtpError::OldVersion(_)
            | ZmtpError::Mechanism(_)
            | ZmtpError::TooManyProperties { .. }
            | ZmtpError::MalformedCommand(_)
            | ZmtpError::BeforeReady(_)
            | ZmtpError::NoSocketType
            | ZmtpError::Incompatible { .. }
            | ZmtpError::PeerError(_) => "protocol",
        };
        Ended::Refused { kind, reason: describe(&e) }
    }
}

/// A ZMTP error as a log line may show it: what the peer sent only through [`shown`].
fn describe(e: &ZmtpError) -> String {
    match e {
        ZmtpError::Mechanism(mechanism) => {
            format!("the peer wants the {} security mechanism; only NULL is supported", shown(mechanism))
        }
        ZmtpError::Incompatible { ours, theirs } => format!("a {} peer cannot talk to a {ours} socket", shown(theirs)),
        ZmtpError::PeerError(reason) => format!("the peer reported an error: {}", shown(reason)),
        // Numbers and halite-zmtp's own words only. No catch-all: a kind halite-zmtp adds
        // must be looked at here for peer text before it can be logged.
        ZmtpError::NotZmtp
        | ZmtpError::OldVersion(_)
        | ZmtpError::TooLarge { .. }
        | ZmtpError::TooManyFrames { .. }
        | ZmtpError::CommandTooLarge { .. }
        | ZmtpError::TooManyProperties { .. }
        | ZmtpError::MalformedCommand(_)
        | ZmtpError::BeforeReady(_)
        | ZmtpError::NoSocketType => e.to_string(),
    }
}

/// What the listening socket does with a peer's messages: takes each at once, or answers
/// that the peer must wait until it can ([`Waiting`]).
pub(crate) type OnMessage = Arc<dyn Fn(&Peer, Vec<Vec<u8>>) -> Option<Waiting> + Send + Sync>;

/// A message that could not be taken at once. Its connection reads nothing more until
/// `taken` completes, so the peer's further bytes wait in the kernel's buffers and its
/// sends stall (backpressure, as libzmq's ROUTER gives past its high-water mark), and the
/// message's `bytes` stay charged to the in-flight budget while it waits: however many
/// peers wait, they hold no more than that budget. A peer that closes its connection while
/// waiting has its message dropped with the connection, before anyone works on it.
pub(crate) struct Waiting {
    pub(crate) bytes: usize,
    pub(crate) taken: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

/// Completes when the message waiting (if any) has been taken; never, if none waits.
async fn taken(waiting: &mut Option<Waiting>) {
    match waiting {
        Some(w) => w.taken.as_mut().await,
        None => std::future::pending().await,
    }
}

/// A listening socket's connections.
pub(crate) struct Server {
    ours: SocketType,
    name: &'static str,
    opts: SocketOptions,
    /// [`SocketOptions::max_connections`], lowered to what the descriptor limit allows.
    max_connections: usize,
    budget: Arc<Budget>,
    /// Bytes the connections hold for messages they are still receiving, against
    /// [`SocketOptions::max_inflight_bytes`].
    inflight: Budget,
    peers: Mutex<HashMap<PeerId, Arc<Peer>>>,
    next_id: AtomicU64,
    closing: watch::Sender<bool>,
}

impl Server {
    pub fn new(ours: SocketType, name: &'static str, opts: SocketOptions) -> Arc<Server> {
        Arc::new(Server {
            ours,
            name,
            max_connections: crate::connection_cap(opts.max_connections, crate::descriptor_limit()),
            budget: Arc::new(Budget::new(opts.max_queued_bytes)),
            inflight: Budget::new(opts.max_inflight_bytes),
            opts,
            peers: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closing: watch::channel(false).0,
        })
    }

    pub fn opts(&self) -> &SocketOptions {
        &self.opts
    }

    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
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

    /// Sends a reply or protocol bytes to `peer`.
    pub fn send(&self, peer: &Peer, bytes: Bytes) -> Sent {
        let mut st = peer.state();
        self.write_or_queue(peer, &mut st, Out::Own(bytes))
    }

    /// Sends an encoded publish whose first frame is `topic`, if this peer subscribed to a
    /// prefix of it and has room under `hwm` queued publishes and in the outbox budget.
    pub fn publish(&self, peer: &Peer, publication: &Arc<Publication>, topic: &[u8], hwm: usize) -> Sent {
        let mut st = peer.state();
        if !st.open || !st.subscriptions.iter().any(|prefix| topic.starts_with(prefix)) {
            return Sent::Skipped;
        }
        if st.outbox.len() >= hwm {
            if !st.dropping {
                st.dropping = true;
                peer_warn!("pub_hwm", Some(ip(peer.remote)), socket = self.name, conn = %peer.id, remote = %peer.remote, hwm,
                    "subscriber is pub_hwm publishes behind; dropping publishes to it until it catches up");
            }
            return Sent::Dropped;
        }
        let sent = self.write_or_queue(peer, &mut st, Out::Shared { publication: publication.clone(), sent: 0 });
        match sent {
            Sent::Dropped if !st.dropping => {
                st.dropping = true;
                peer_warn!("outbox budget", Some(ip(peer.remote)), socket = self.name, conn = %peer.id, remote = %peer.remote,
                    budget = self.budget.limit, "the socket's outbox budget is spent; dropping publishes to this subscriber until it has room");
            }
            Sent::Written | Sent::Queued => st.dropping = false,
            _ => {}
        }
        sent
    }

    /// Writes `out` at once if nothing is queued ahead of it, and queues what the socket
    /// did not take for the peer's task, within the peer's and the socket's limits.
    fn write_or_queue(&self, peer: &Peer, st: &mut PeerState, mut out: Out) -> Sent {
        if st.closed.is_some() {
            return Sent::Gone;
        }
        let was_empty = st.outbox.is_empty();
        let mut started = false;
        if was_empty {
            match peer.stream.try_write(out.remaining()) {
                Ok(n) if n == out.remaining().len() => return Sent::Written,
                Ok(n) => {
                    started = n > 0;
                    out.advance(n, &peer.budget, false);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => {
                    debug!(conn = %peer.id, remote = %peer.remote, error = %e, "write failed; closing");
                    peer.discard(st, "write failed");
                    return Sent::Gone;
                }
            }
        }
        if !out.charge(&self.budget) {
            self.make_room(peer, st, out.cost());
            if st.closed.is_some() {
                return Sent::Gone;
            }
            if !out.charge(&self.budget) {
                if let (Out::Shared { .. }, false) = (&out, started) {
                    // Nothing of it went out: this subscriber can do without it, as past pub_hwm.
                    return Sent::Dropped;
                }
                // A reply that cannot wait is lost either way, and a frame half written
                // cannot be taken back: the connection goes, the peer reconnects.
                peer_warn!("outbox budget", Some(ip(peer.remote)), socket = self.name, conn = %peer.id, remote = %peer.remote,
                    budget = self.budget.limit, "the socket's outbox budget is spent; closing a peer whose bytes do not fit");
                peer.discard(st, "outbox budget spent");
                return Sent::Gone;
            }
        }
        let len = out.remaining().len();
        st.outbox.push_back(out);
        let queued = peer.queued.fetch_add(len, Ordering::AcqRel) + len;
        if queued > MAX_QUEUED_BYTES {
            peer_warn!("slow reader", Some(ip(peer.remote)), socket = self.name, conn = %peer.id, remote = %peer.remote, queued,
                "peer does not read what it is sent; closing");
            peer.discard(st, "does not read what it is sent");
            return Sent::Gone;
        }
        if was_empty {
            peer.wake.notify_one();
        }
        Sent::Queued
    }

    /// The outbox budget has less than `need` left: closes the connections holding the most
    /// unread bytes (a peer that reads what it is sent holds little for long), `peer` itself
    /// if it is one of them, until there is room or nothing more to close.
    ///
    /// `peer`'s state is locked by the caller; other peers' locks are only tried, never
    /// waited for, so two writers making room at once cannot deadlock.
    fn make_room(&self, peer: &Peer, st: &mut PeerState, need: usize) {
        if need > self.budget.limit {
            return;
        }
        let mut tried = Vec::new();
        for _ in 0..MAX_EVICTIONS {
            if self.budget.available() >= need {
                return;
            }
            let Some(victim) = self
                .snapshot()
                .into_iter()
                .filter(|p| p.queued() > 0 && !tried.contains(&p.id))
                .max_by_key(|p| p.queued())
            else {
                return;
            };
            tried.push(victim.id);
            let queued = victim.queued();
            let evict = |victim: &Peer, st: &mut PeerState| {
                peer_warn!("outbox budget", Some(ip(victim.remote)), socket = self.name, conn = %victim.id, remote = %victim.remote,
                    queued, budget = self.budget.limit, "the socket's outbox budget is spent; closing the connection with the most unread bytes");
                victim.discard(st, "outbox budget spent");
            };
            if victim.id == peer.id {
                evict(peer, st);
                return;
            }
            let locked = victim.state.try_lock();
            match locked {
                Ok(mut vst) => evict(&victim, &mut vst),
                Err(TryLockError::Poisoned(poisoned)) => evict(&victim, &mut poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => {}
            }
        }
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
                        peer_warn!("accept failed", None, socket = server.name, error = %e, "accept failed; retrying in 100 ms");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
    }

    fn start_peer(self: &Arc<Self>, stream: TcpStream, remote: SocketAddr, on_message: OnMessage) {
        let id = PeerId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let _ = stream.set_nodelay(true);
        let peer = {
            let mut peers = self.peers();
            if peers.len() >= self.max_connections {
                drop(peers);
                // Reset at once (a zero linger leaves no TIME_WAIT behind for a flood to
                // fill): the peer's libzmq reconnects later, by when others may have gone.
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                peer_warn!("connection cap", Some(ip(remote)), socket = self.name, %remote, max_connections = self.max_connections,
                    "connection refused: the socket has its maximum of connections");
                return;
            }
            let peer = Arc::new(Peer {
                id,
                remote,
                stream,
                state: Mutex::default(),
                wake: Notify::new(),
                queued: AtomicUsize::new(0),
                budget: self.budget.clone(),
            });
            peers.insert(id, peer.clone());
            peer
        };
        let server = self.clone();
        let span = tracing::debug_span!("conn", socket = self.name, peer = %id, %remote);
        tokio::spawn(
            async move {
                let closing = server.closing.subscribe();
                let socket = server.name;
                // The span is debug-level; the fields are repeated so these lines name the
                // connection at any log level.
                match server.serve(&peer, closing, &on_message).await {
                    Ended::Quietly => debug!("peer disconnected"),
                    Ended::Lost(reason) => info!(socket, conn = %id, %remote, %reason, "connection closed"),
                    Ended::Dropped(reason) => info!(socket, conn = %id, %remote, reason, "connection closed"),
                    Ended::Refused { kind, reason } => {
                        peer_warn!(kind, Some(ip(remote)), socket, conn = %id, %remote, %reason, "connection closed")
                    }
                }
                peer.discard(&mut peer.state(), "closed");
                server.peers().remove(&id);
            }
            .instrument(span),
        );
    }

    async fn serve(&self, peer: &Peer, mut closing: watch::Receiver<bool>, on_message: &OnMessage) -> Ended {
        // Declared first, so dropped last: whatever ends this function frees `conn`'s
        // buffers, then gives their charge back.
        let mut inflight = InFlight::new(&self.inflight);
        let mut conn = Connection::new(self.ours, b"", self.opts.max_message_size);
        self.send(peer, conn.take_output().into());
        // A PING in flight: when it went out. Anything read from the peer answers it.
        let mut ping_sent: Option<Instant> = None;
        let mut last_heard = Instant::now();
        let mut tick = Box::pin(tokio::time::sleep(self.opts.handshake_timeout));
        // A message handed on that must wait to be taken; nothing is read meanwhile.
        let mut waiting: Option<Waiting> = None;
        // Whether to watch a waiting peer's socket for its close (see the branch below).
        let mut watch_close = false;
        let mut peek = [0u8; 1];
        loop {
            if let Some(why) = peer.closed() {
                return Ended::Dropped(why);
            }
            let pending = peer.has_pending();
            tokio::select! {
                ready = peer.stream.readable(), if waiting.is_none() => {
                    if let Err(e) = ready {
                        return Ended::Lost(e.to_string());
                    }
                    match read_available(peer, &mut conn, &mut inflight) {
                        Ok(true) => {}
                        Ok(false) => return Ended::Quietly,
                        Err(ended) => return ended,
                    }
                    last_heard = Instant::now();
                    ping_sent = None;
                    if let Err(ended) = self.hand_on(peer, &mut conn, on_message, &mut inflight, &mut waiting) {
                        return ended;
                    }
                    watch_close = waiting.is_some();
                }
                () = taken(&mut waiting) => {
                    waiting = None;
                    // The peer was waiting for us, not silent.
                    last_heard = Instant::now();
                    ping_sent = None;
                    // Messages read behind the one that waited.
                    if let Err(ended) = self.hand_on(peer, &mut conn, on_message, &mut inflight, &mut waiting) {
                        return ended;
                    }
                    watch_close = waiting.is_some();
                }
                // A REQ peer sends nothing while it waits for its reply, so its socket turns
                // readable only when it closes (its request timed out): then what it sent is
                // dropped here, before a worker spends a private-key operation on a sign-in
                // nobody will read. Any bytes instead (a peer that pipelines) end the watch
                // until its message is taken.
                peeked = peer.stream.peek(&mut peek), if watch_close => {
                    match peeked {
                        Ok(0) => return Ended::Quietly,
                        Ok(_) => watch_close = false,
                        Err(e) => return Ended::Lost(e.to_string()),
                    }
                }
                ready = peer.stream.writable(), if pending => {
                    if let Err(e) = ready {
                        return Ended::Lost(e.to_string());
                    }
                    if let Err(ended) = peer.flush() {
                        return ended;
                    }
                }
                // New bytes in an empty outbox, or a writer closed the connection.
                _ = peer.wake.notified() => {}
                _ = &mut tick => {
                    if !conn.is_open() {
                        return Ended::Refused {
                            kind: "handshake timeout",
                            reason: format!("no ZMTP handshake within {:?}", self.opts.handshake_timeout),
                        };
                    }
                    // A quiet peer is not a dead one (a subscriber never speaks unasked):
                    // only a PING left unanswered for heartbeat_timeout closes it. One whose
                    // message waits is not read, so its answer could not be seen.
                    if conn.peer_has_heartbeats() && waiting.is_none() {
                        match ping_sent {
                            Some(sent) if sent.elapsed() >= self.opts.heartbeat_timeout => {
                                return Ended::Lost(format!(
                                    "heartbeat unanswered for {:?} (silent for {:?})",
                                    sent.elapsed(),
                                    last_heard.elapsed()
                                ));
                            }
                            Some(_) => {}
                            None if last_heard.elapsed() >= self.opts.heartbeat_interval => {
                                let ttl = (self.opts.heartbeat_timeout.as_millis() / 100).min(u16::MAX as u128) as u16;
                                conn.ping(ttl);
                                self.send(peer, conn.take_output().into());
                                ping_sent = Some(Instant::now());
                            }
                            None => {}
                        }
                    }
                    tick.as_mut().reset(Instant::now() + self.opts.heartbeat_interval);
                }
                _ = closing.changed() => return Ended::Quietly,
            }
        }
    }

    /// Hands on what `conn` has decoded, up to a message that must wait (left in `waiting`),
    /// sends what the decoder has to say, and makes the in-flight charge what is still held:
    /// the decoder's buffers and the waiting message. Complete messages taken come off the
    /// charge; a frame header just read adds the room the decoder took for the frame.
    fn hand_on(
        &self,
        peer: &Peer,
        conn: &mut Connection,
        on_message: &OnMessage,
        inflight: &mut InFlight<'_>,
        waiting: &mut Option<Waiting>,
    ) -> Result<(), Ended> {
        let handled = self.handle_events(peer, conn, on_message).and_then(|w| {
            if w.is_some() {
                // Nothing more is decoded until it is taken: the bytes that brought it
                // would otherwise stay allocated (and charged) beside the body it holds.
                conn.release_consumed();
            }
            *waiting = w;
            inflight.settle(conn.held_bytes().saturating_add(waiting.as_ref().map_or(0, |w| w.bytes as u64)))
        });
        if conn.has_output() {
            self.send(peer, conn.take_output().into());
        }
        handled
    }

    /// Hands on the events decoded so far, stopping at a message that must wait.
    fn handle_events(
        &self,
        peer: &Peer,
        conn: &mut Connection,
        on_message: &OnMessage,
    ) -> Result<Option<Waiting>, Ended> {
        while let Some(event) = conn.next_event().map_err(Ended::protocol)? {
            match event {
                Event::Open { socket_type, identity, minor_version } => {
                    debug!(peer_type = socket_type.name(), identity = %shown(&identity), zmtp = format!("3.{minor_version}"), "handshake complete");
                    peer.state().open = true;
                }
                Event::Message(parts) => {
                    if let Some(waiting) = on_message(peer, parts) {
                        return Ok(Some(waiting));
                    }
                }
                Event::Subscribe(prefix) => peer.subscription(prefix, true)?,
                Event::Cancel(prefix) => peer.subscription(prefix, false)?,
                Event::Pong => {}
            }
        }
        Ok(None)
    }

    /// Stops accepting, gives queued replies up to `grace` to reach their peers, then closes
    /// every connection.
    pub async fn close(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && self.snapshot().iter().any(|p| p.has_pending()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.closing.send(true);
    }
}

/// Reads what the socket has (up to [`READ_BUDGET`]) into `conn`, charging `inflight` for
/// each piece before `conn` buffers it and for the buffer's growth once it has grown.
/// `Ok(false)`: the peer closed the connection.
fn read_available(peer: &Peer, conn: &mut Connection, inflight: &mut InFlight<'_>) -> Result<bool, Ended> {
    READ_BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        let mut total = 0;
        while total < READ_BUDGET {
            match peer.stream.try_read(&mut buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    inflight.charge(n)?;
                    conn.receive(&buf[..n]);
                    inflight.settle(conn.held_bytes())?;
                    total += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Ended::Lost(format!("read failed: {e}"))),
            }
        }
        Ok(true)
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream as StdStream;

    use halite_zmtp::{Connection, Event, SocketType};

    use super::*;
    use crate::{bind_publisher, bind_router, listen_addr};

    const WAIT: Duration = Duration::from_secs(10);

    /// A hand-driven peer of type `ours`, through the handshake. A small receive buffer
    /// makes a peer that does not read stop taking bytes early.
    fn raw_peer(addr: SocketAddr, ours: SocketType, small_buffer: bool) -> (StdStream, Connection) {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        if small_buffer {
            socket.set_recv_buffer_size(4096).unwrap();
        }
        socket.connect(&addr.into()).unwrap();
        let mut s: StdStream = socket.into();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut conn = Connection::new(ours, b"", 64 << 20);
        let mut buf = [0u8; 4096];
        loop {
            s.write_all(&conn.take_output()).unwrap();
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed during the handshake");
            conn.receive(&buf[..n]);
            if let Some(Event::Open { .. }) = conn.next_event().unwrap() {
                s.write_all(&conn.take_output()).unwrap();
                return (s, conn);
            }
        }
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn subscribers_that_do_not_read_cannot_hold_more_than_the_budget() {
        const BUDGET: usize = 1 << 20;
        let opts = SocketOptions { max_queued_bytes: BUDGET, pub_hwm: 100_000, ..SocketOptions::default() };
        let publisher = bind_publisher(listen_addr("127.0.0.1", 0).unwrap(), &opts).unwrap();
        let addr = publisher.local_addr;
        let server = publisher.server.clone();
        let sender = publisher.sender();

        let stuck: Vec<_> = (0..4)
            .map(|_| {
                let (mut s, mut conn) = raw_peer(addr, SocketType::Sub, true);
                conn.subscribe(b"");
                s.write_all(&conn.take_output()).unwrap();
                s
            })
            .collect();
        // One subscriber reads everything, as a minion does.
        let (mut reader, mut conn) = raw_peer(addr, SocketType::Sub, false);
        conn.subscribe(b"");
        reader.write_all(&conn.take_output()).unwrap();
        const PUBLISHES: usize = 400;
        let received = Arc::new(AtomicUsize::new(0));
        let honest = {
            let received = received.clone();
            tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; 64 << 10];
                let mut got = 0;
                while got < PUBLISHES {
                    let n = reader.read(&mut buf).unwrap();
                    assert!(n > 0, "the reading subscriber was closed after {got} publishes");
                    conn.receive(&buf[..n]);
                    while let Some(event) = conn.next_event().unwrap() {
                        if let Event::Message(parts) = event {
                            assert_eq!(
                                parts[0][..8],
                                (got as u64).to_be_bytes(),
                                "publishes arrive in order, none missing"
                            );
                            got += 1;
                            received.store(got, Ordering::Release);
                        }
                    }
                }
                (got, reader)
            })
        };
        until("all six subscriptions are in", || {
            server.snapshot().iter().filter(|p| !p.state().subscriptions.is_empty()).count() == 5
        })
        .await;

        let mut most = 0;
        for i in 0..PUBLISHES {
            // Publishes come no faster than the reader takes them (at most 8 of 32 KiB in
            // flight), as jobs do: a burst of more than the budget would be too much for
            // any subscriber.
            until("the reader has caught up", || received.load(Ordering::Acquire) + 8 >= i).await;
            let mut frame = vec![0u8; 32 << 10];
            frame[..8].copy_from_slice(&(i as u64).to_be_bytes());
            sender.publish(frame).unwrap();
            most = most.max(server.budget().used());
        }
        let (got, reader) = tokio::time::timeout(WAIT, honest).await.unwrap().unwrap();
        assert_eq!(got, PUBLISHES);
        assert!(most <= BUDGET, "{most} bytes queued, over the {BUDGET}-byte budget");
        // 4 × 12.5 MiB sent to subscribers that read none of it: they were closed for it.
        until("the subscribers that do not read are closed", || server.snapshot().len() == 1).await;
        until("their queues are given back", || server.budget().used() == 0).await;
        assert_eq!(server.snapshot()[0].remote.port(), reader.local_addr().unwrap().port(), "the reader stays");
        drop(stuck);
        publisher.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requesters_that_do_not_read_their_replies_cannot_hold_more_than_the_budget() {
        const BUDGET: usize = 1 << 20;
        let opts = SocketOptions { max_queued_bytes: BUDGET, ..SocketOptions::default() };
        let mut router = bind_router(listen_addr("127.0.0.1", 0).unwrap(), &opts).unwrap();
        let addr = router.local_addr;
        let server = router.server.clone();

        // Four peers send 200 requests each and never read a reply: 12.5 MiB each, more than
        // the kernel's buffers and the budget take.
        let stuck: Vec<_> = (0..4)
            .map(|_| {
                let (mut s, mut conn) = raw_peer(addr, SocketType::Req, true);
                for _ in 0..200 {
                    conn.send(&[b"", b"give me 64 KiB"]);
                }
                s.write_all(&conn.take_output()).unwrap();
                s
            })
            .collect();
        let mut most = 0;
        for _ in 0..800 {
            let req = tokio::time::timeout(WAIT, router.requests.recv()).await.unwrap().unwrap();
            router.replier.reply(req.peer, &[7u8; 64 << 10]).unwrap();
            most = most.max(server.budget().used());
        }
        assert!(most <= BUDGET, "{most} bytes queued, over the {BUDGET}-byte budget");
        until("the peers that do not read are closed", || server.snapshot().is_empty()).await;
        assert_eq!(server.budget().used(), 0);

        // A minion that reads its replies is served as before.
        let ep = format!("tcp://{addr}");
        let minion = tokio::task::spawn_blocking(move || {
            let ctx = zmq::Context::new();
            let req = ctx.socket(zmq::REQ).unwrap();
            req.set_linger(0).unwrap();
            req.set_rcvtimeo(10_000).unwrap();
            req.connect(&ep).unwrap();
            req.send("hello", 0).unwrap();
            req.recv_bytes(0).unwrap()
        });
        let req = tokio::time::timeout(WAIT, router.requests.recv()).await.unwrap().unwrap();
        router.replier.reply(req.peer, &[9u8; 256 << 10]).unwrap();
        assert_eq!(minion.await.unwrap(), vec![9u8; 256 << 10]);
        drop(stuck);
        router.shutdown().await;
    }

    /// Whether the server has closed `s`: reads (and discards) until the end of the stream
    /// or a reset; `false` if the read timed out with the connection still open.
    fn closed_by_server(s: &mut StdStream) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }

    /// Starts a request `['', body]` whose body frame announces 60 MiB (under the 64 MiB
    /// message limit, so the frame is taken), and sends a few bytes of it.
    fn announce_a_large_request(s: &mut StdStream) -> std::io::Result<()> {
        let mut start = vec![0x01, 0x00, 0x02];
        start.extend_from_slice(&(60u64 << 20).to_be_bytes());
        start.extend_from_slice(b"the first bytes of 60 MiB");
        s.write_all(&start)
    }

    /// A libzmq REQ socket's round trip: sends `body`, returns the reply.
    fn libzmq_request(addr: SocketAddr, body: Vec<u8>) -> tokio::task::JoinHandle<Vec<u8>> {
        tokio::task::spawn_blocking(move || {
            let ctx = zmq::Context::new();
            let req = ctx.socket(zmq::REQ).unwrap();
            req.set_linger(0).unwrap();
            req.set_rcvtimeo(10_000).unwrap();
            req.connect(&format!("tcp://{addr}")).unwrap();
            req.send(body, 0).unwrap();
            req.recv_bytes(0).unwrap()
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unfinished_messages_cannot_hold_more_than_the_inflight_budget() {
        // A frame announced makes the decoder take 1 MiB for it, and 1 MiB past what has
        // come once more comes (2 MiB, as its buffer doubles): room for three connections
        // that trickle, not a fourth one's announcement.
        const BUDGET: usize = (6 << 20) + (512 << 10);
        let opts = SocketOptions { max_inflight_bytes: BUDGET, ..SocketOptions::default() };
        let mut router = bind_router(listen_addr("127.0.0.1", 0).unwrap(), &opts).unwrap();
        let addr = router.local_addr;
        let server = router.server.clone();

        let mut trickling = Vec::new();
        for i in 0..3 {
            let (mut s, _) = raw_peer(addr, SocketType::Req, false);
            announce_a_large_request(&mut s).unwrap();
            until("the announced frame is charged", || server.inflight.used() > (2 * i + 1) << 20).await;
            s.write_all(&[7u8; 1000]).unwrap();
            until("the frame's growing buffer is charged", || server.inflight.used() > (2 * i + 2) << 20).await;
            trickling.push(s);
        }
        // Two more announce theirs: the budget is spent, they are closed; the three stay.
        let (trickling, refused) = tokio::task::spawn_blocking(move || {
            let refused: Vec<bool> = (0..2)
                .map(|_| {
                    let (mut s, _) = raw_peer(addr, SocketType::Req, false);
                    announce_a_large_request(&mut s).unwrap();
                    closed_by_server(&mut s)
                })
                .collect();
            let mut trickling = trickling;
            for s in &mut trickling {
                s.write_all(&[7u8; 1000]).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
                assert!(!closed_by_server(s), "a connection within the budget must stay");
            }
            (trickling, refused)
        })
        .await
        .unwrap();
        assert_eq!(refused, [true, true], "connections past the budget must be closed");
        let used = server.inflight.used();
        assert!(used > 6 << 20 && used <= BUDGET, "{used} bytes in flight");
        assert_eq!(server.snapshot().len(), 3);

        // A minion's ordinary request needs little room and is served meanwhile.
        let minion = libzmq_request(addr, b"hello".to_vec());
        let req = tokio::time::timeout(WAIT, router.requests.recv()).await.unwrap().unwrap();
        assert_eq!(req.body, b"hello");
        router.replier.reply(req.peer, b"world").unwrap();
        assert_eq!(minion.await.unwrap(), b"world");

        // One of 1.5 MiB does not fit while the three hold theirs.
        let big_refused = tokio::task::spawn_blocking(move || {
            let (mut s, mut conn) = raw_peer(addr, SocketType::Req, false);
            conn.send(&[b"", &vec![1u8; 3 << 19]]);
            // The server may close while this is still being written.
            let _ = s.write_all(&conn.take_output());
            closed_by_server(&mut s)
        })
        .await
        .unwrap();
        assert!(big_refused, "a request that does not fit must close its connection");
        assert!(router.requests.try_recv().is_err());

        // The three go: what they held is given back, and the same request now fits.
        drop(trickling);
        until("the closed connections' charges are given back", || server.inflight.used() == 0).await;
        let minion = libzmq_request(addr, vec![2u8; 3 << 19]);
        let req = tokio::time::timeout(WAIT, router.requests.recv()).await.unwrap().unwrap();
        assert_eq!(req.body, vec![2u8; 3 << 19]);
        // A request handed on holds nothing of the budget, however long it waits.
        until("the complete request's charge is given back", || server.inflight.used() == 0).await;
        router.replier.reply(req.peer, b"stored").unwrap();
        assert_eq!(minion.await.unwrap(), b"stored");
        router.shutdown().await;
        assert_eq!(server.inflight.used(), 0);
    }

    #[test]
    fn the_inflight_charge_follows_the_decoder_and_is_given_back_when_dropped() {
        let budget = Budget::new(1000);
        let mut inflight = InFlight::new(&budget);
        inflight.charge(300).unwrap();
        // The buffer grew past the bytes read; then a message completed and went.
        inflight.settle(600).unwrap();
        assert_eq!(budget.used(), 600);
        inflight.settle(100).unwrap();
        assert_eq!(budget.used(), 100);
        // Neither bytes to read nor growth past the budget are taken.
        let mut other = InFlight::new(&budget);
        other.charge(800).unwrap();
        assert!(matches!(inflight.charge(101), Err(Ended::Refused { kind: "inflight budget", .. })));
        assert!(matches!(inflight.settle(201), Err(Ended::Refused { kind: "inflight budget", .. })));
        assert_eq!(budget.used(), 900, "a refused charge takes nothing");
        drop(other);
        drop(inflight);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn the_protocol_errors_are_classified_by_what_they_refuse() {
        let too_large = [
            ZmtpError::TooLarge { size: 1 << 30, limit: 1 << 26 },
            ZmtpError::TooManyFrames { limit: 64 },
            ZmtpError::CommandTooLarge { size: 1 << 20, limit: 1 << 16 },
        ];
        for e in too_large {
            assert!(matches!(Ended::protocol(e), Ended::Refused { kind: "message too large", .. }));
        }
        let protocol = [
            ZmtpError::NotZmtp,
            ZmtpError::TooManyProperties { limit: 64 },
            ZmtpError::MalformedCommand("READY"),
            ZmtpError::Mechanism("CURVE\n".into()),
        ];
        for e in protocol {
            assert!(matches!(Ended::protocol(e), Ended::Refused { kind: "protocol", .. }));
        }
        // Peer text only short and escaped.
        let Ended::Refused { reason, .. } = Ended::protocol(ZmtpError::PeerError("\x1b[2J\nFAKE".into())) else {
            unreachable!()
        };
        assert!(!reason.contains('\n') && !reason.contains('\x1b'), "{reason}");
    }

    #[test]
    fn a_shared_publish_counts_once_however_many_hold_it() {
        let budget = Arc::new(Budget::new(100));
        let publication = Publication::new(Bytes::from(vec![0u8; 60]), budget.clone());
        let held: Vec<_> = (0..10).map(|_| Out::Shared { publication: publication.clone(), sent: 0 }).collect();
        assert!(held.iter().all(|out| out.charge(&budget)));
        assert_eq!(budget.used(), 60);
        // A second publish does not fit beside it; own bytes that do, do.
        let other = Publication::new(Bytes::from(vec![0u8; 60]), budget.clone());
        assert!(!Out::Shared { publication: other, sent: 0 }.charge(&budget));
        assert!(Out::Own(Bytes::from(vec![0u8; 40])).charge(&budget));
        assert!(!budget.try_charge(1));
        budget.release(40);
        drop(publication);
        for out in held {
            out.discard(&budget);
        }
        assert_eq!(budget.used(), 0);
    }
}
