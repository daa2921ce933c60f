//! The master's ZeroMQ sockets: the request ROUTER (4506) and the publish PUB (4505).
//!
//! Owns: binding and tuning the sockets (libzmq, the library the minions run), one OS thread
//! per socket, and the channels that bridge those threads to tokio. libzmq sockets are not
//! thread-safe, so each socket lives on exactly one thread; replies reach the ROUTER thread
//! over an `inproc` PUSH/PULL pair so that thread can sleep in `zmq::poll` instead of spinning.
//!
//! Must not: decode Salt messages, block a socket thread on a handler, or grow without bound.
//! A frame over [`SocketOptions::max_message_size`] makes libzmq drop that peer's connection
//! before anything is allocated for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot bind {endpoint}: {source}")]
    Bind { endpoint: String, source: zmq::Error },
    #[error("zmq socket setup failed ({what}): {source}")]
    Setup { what: &'static str, source: zmq::Error },
    #[error("the {0} socket thread has stopped")]
    Stopped(&'static str),
}

/// Socket tuning, mostly Salt's master options of the same names.
#[derive(Debug, Clone)]
pub struct SocketOptions {
    /// `ipv6`: accept IPv6 peers (the socket is dual-stack when bound to `::`).
    pub ipv6: bool,
    /// `zmq_backlog`.
    pub backlog: i32,
    /// `pub_hwm`: messages queued per subscriber before libzmq drops publishes to it.
    pub pub_hwm: i32,
    /// Largest request accepted; larger frames drop the sending peer. Salt has no such limit;
    /// see docs/decisions.md for why halite has one.
    pub max_message_size: i64,
    /// Requests queued towards the handlers before the ROUTER thread starts refusing.
    pub request_queue: usize,
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self { ipv6: false, backlog: 1000, pub_hwm: 1000, max_message_size: 64 << 20, request_queue: 4096 }
    }
}

/// `tcp://host:port`, bracketing IPv6 literals as libzmq wants them.
pub fn tcp_endpoint(interface: &str, port: u16) -> String {
    if interface.contains(':') && !interface.starts_with('[') {
        format!("tcp://[{interface}]:{port}")
    } else {
        format!("tcp://{interface}:{port}")
    }
}

fn setup<T>(what: &'static str, r: zmq::Result<T>) -> Result<T, TransportError> {
    r.map_err(|source| TransportError::Setup { what, source })
}

/// Options shared by both listening sockets: what 3008's master sets, which older minions
/// are indifferent to (keepalive and ZMTP heartbeats find dead peers behind NAT and firewalls).
fn tune_listener(sock: &zmq::Socket, opts: &SocketOptions) -> Result<(), TransportError> {
    setup("ipv6", sock.set_ipv6(opts.ipv6))?;
    setup("backlog", sock.set_backlog(opts.backlog))?;
    setup("linger", sock.set_linger(1000))?;
    setup("tcp_keepalive", sock.set_tcp_keepalive(1))?;
    setup("tcp_keepalive_idle", sock.set_tcp_keepalive_idle(60))?;
    setup("tcp_keepalive_intvl", sock.set_tcp_keepalive_intvl(15))?;
    setup("tcp_keepalive_cnt", sock.set_tcp_keepalive_cnt(3))?;
    setup("heartbeat_ivl", sock.set_heartbeat_ivl(10_000))?;
    setup("heartbeat_timeout", sock.set_heartbeat_timeout(30_000))?;
    Ok(())
}

fn bind(sock: &zmq::Socket, endpoint: &str) -> Result<(), TransportError> {
    sock.bind(endpoint).map_err(|source| TransportError::Bind { endpoint: endpoint.to_owned(), source })
}

/// One request from a REQ peer. `peer` is the ROUTER routing id the reply must carry.
#[derive(Debug)]
pub struct Request {
    pub peer: Vec<u8>,
    pub body: Vec<u8>,
}

/// Sends replies back through the ROUTER thread. Cheap to clone; usable from any task.
#[derive(Clone)]
pub struct Replier {
    push: Arc<Mutex<zmq::Socket>>,
}

impl Replier {
    /// Queues a reply for `peer`. Never blocks for long: inproc sends only wait for memory.
    pub fn reply(&self, peer: &[u8], body: &[u8]) -> Result<(), TransportError> {
        let push = self.push.lock().map_err(|_| TransportError::Stopped("router"))?;
        push.send_multipart([peer, body], 0).map_err(|_| TransportError::Stopped("router"))
    }
}

/// The bound request socket and its thread.
pub struct RouterHandle {
    pub replier: Replier,
    pub requests: mpsc::Receiver<Request>,
    stop: Replier,
    thread: Option<JoinHandle<()>>,
    pub endpoint: String,
}

impl RouterHandle {
    /// Stops the thread, dropping queued replies after libzmq's linger.
    pub fn shutdown(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        // An empty routing id is the in-band stop signal; no real peer has one.
        let _ = self.stop.reply(b"", b"");
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RouterHandle {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

static INPROC_SEQ: AtomicU64 = AtomicU64::new(0);

/// Binds the ROUTER that serves minions' and CLIs' REQ sockets.
pub fn bind_router(ctx: &zmq::Context, endpoint: &str, opts: &SocketOptions) -> Result<RouterHandle, TransportError> {
    let router = setup("router socket", ctx.socket(zmq::ROUTER))?;
    tune_listener(&router, opts)?;
    setup("maxmsgsize", router.set_maxmsgsize(opts.max_message_size))?;
    // A reconnecting 3008 minion reuses its identity; let the new connection take it over.
    setup("router_handover", router.set_router_handover(true))?;
    // Replies to a peer that has gone are dropped rather than erroring the whole socket.
    setup("router_mandatory", router.set_router_mandatory(false))?;
    bind(&router, endpoint)?;

    let inproc = format!("inproc://halite-replies-{}", INPROC_SEQ.fetch_add(1, Ordering::Relaxed));
    let pull = setup("reply pull socket", ctx.socket(zmq::PULL))?;
    setup("reply pull bind", pull.bind(&inproc))?;
    let push = setup("reply push socket", ctx.socket(zmq::PUSH))?;
    setup("reply push connect", push.connect(&inproc))?;
    setup("reply push hwm", push.set_sndhwm(0))?;
    let replier = Replier { push: Arc::new(Mutex::new(push)) };

    let (tx, rx) = mpsc::channel(opts.request_queue);
    let name = endpoint.to_owned();
    let thread = std::thread::Builder::new()
        .name("zmq-router".into())
        .spawn(move || router_loop(router, pull, tx, &name))
        .map_err(|_| TransportError::Stopped("router"))?;
    info!(%endpoint, "request server listening");
    Ok(RouterHandle {
        stop: replier.clone(),
        replier,
        requests: rx,
        thread: Some(thread),
        endpoint: endpoint.to_owned(),
    })
}

fn router_loop(router: zmq::Socket, pull: zmq::Socket, tx: mpsc::Sender<Request>, endpoint: &str) {
    loop {
        let mut items = [router.as_poll_item(zmq::POLLIN), pull.as_poll_item(zmq::POLLIN)];
        if let Err(e) = zmq::poll(&mut items, -1) {
            if e == zmq::Error::EINTR {
                continue;
            }
            error!(%endpoint, error = %e, "zmq poll failed; request server stops");
            return;
        }
        if items[1].is_readable() {
            while let Ok(frames) = pull.recv_multipart(zmq::DONTWAIT) {
                let [peer, body]: [Vec<u8>; 2] = match frames.try_into() {
                    Ok(pair) => pair,
                    Err(_) => continue,
                };
                if peer.is_empty() {
                    debug!(%endpoint, "request server stopping");
                    return;
                }
                if let Err(e) = router.send_multipart([&peer[..], b"", &body[..]], zmq::DONTWAIT) {
                    warn!(%endpoint, peer = %PeerName(&peer), error = %e, "reply not delivered; peer gone or backed up");
                }
            }
        }
        if items[0].is_readable() {
            while let Ok(frames) = router.recv_multipart(zmq::DONTWAIT) {
                forward_request(frames, &tx, endpoint);
            }
        }
    }
}

/// A REQ peer's message is exactly `[routing id, empty delimiter, body]`; anything else is a
/// peer that is not speaking Salt's request protocol, logged once per message and dropped.
fn forward_request(frames: Vec<Vec<u8>>, tx: &mpsc::Sender<Request>, endpoint: &str) {
    let n = frames.len();
    let mut it = frames.into_iter();
    let (Some(peer), Some(delim), Some(body), None) = (it.next(), it.next(), it.next(), it.next()) else {
        warn!(%endpoint, frames = n, "dropping a request that is not [id, '', body]: not a REQ peer");
        return;
    };
    if !delim.is_empty() {
        warn!(%endpoint, peer = %PeerName(&peer), "dropping a request without the REQ delimiter frame");
        return;
    }
    match tx.try_send(Request { peer, body }) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(req)) => {
            // The peer's REQ socket times out and retries, as it would against a busy Salt master.
            warn!(%endpoint, peer = %PeerName(&req.peer), "request queue full; request dropped, the peer will retry");
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {}
    }
}

/// Routing ids are opaque bytes: libzmq's 5-byte generated ones, or 3008's readable
/// `salt-req/minion/<id>/...`. Shows the readable ones as text.
pub struct PeerName<'a>(pub &'a [u8]);

impl std::fmt::Display for PeerName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match std::str::from_utf8(self.0) {
            Ok(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic()) => f.write_str(s),
            _ => {
                for b in self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// The publish socket and its thread. Publishing never waits for subscribers.
pub struct Publisher {
    tx: Option<std::sync::mpsc::Sender<Vec<u8>>>,
    thread: Option<JoinHandle<()>>,
    pub endpoint: String,
}

/// A handle that queues publishes from any thread or task.
#[derive(Clone)]
pub struct PublishSender {
    tx: std::sync::mpsc::Sender<Vec<u8>>,
}

impl PublishSender {
    /// Queues one single-frame publish for every subscriber.
    pub fn publish(&self, frame: Vec<u8>) -> Result<(), TransportError> {
        if frame.is_empty() {
            return Ok(());
        }
        self.tx.send(frame).map_err(|_| TransportError::Stopped("publish"))
    }
}

impl Publisher {
    pub fn sender(&self) -> Result<PublishSender, TransportError> {
        let tx = self.tx.as_ref().ok_or(TransportError::Stopped("publish"))?;
        Ok(PublishSender { tx: tx.clone() })
    }

    /// Queues one single-frame publish for every subscriber.
    pub fn publish(&self, frame: Vec<u8>) -> Result<(), TransportError> {
        self.sender()?.publish(frame)
    }

    pub fn shutdown(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        // Cloned senders may outlive the publisher (handlers still hold them), so the channel
        // closing cannot be what stops the thread: the empty-frame sentinel does.
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Vec::new());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// Binds the PUB socket minions subscribe to with an empty prefix.
pub fn bind_publisher(ctx: &zmq::Context, endpoint: &str, opts: &SocketOptions) -> Result<Publisher, TransportError> {
    let sock = setup("pub socket", ctx.socket(zmq::PUB))?;
    tune_listener(&sock, opts)?;
    setup("sndhwm", sock.set_sndhwm(opts.pub_hwm))?;
    setup("rcvhwm", sock.set_rcvhwm(opts.pub_hwm))?;
    bind(&sock, endpoint)?;
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let name = endpoint.to_owned();
    let thread = std::thread::Builder::new()
        .name("zmq-pub".into())
        .spawn(move || {
            for frame in rx {
                if frame.is_empty() {
                    break;
                }
                if let Err(e) = sock.send(frame, 0) {
                    error!(endpoint = %name, error = %e, "publish failed");
                }
            }
        })
        .map_err(|_| TransportError::Stopped("publish"))?;
    info!(%endpoint, "publisher listening");
    Ok(Publisher { tx: Some(tx), thread: Some(thread), endpoint: endpoint.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn request_reply_round_trip_and_garbage_is_dropped() {
        let ctx = zmq::Context::new();
        let ep = tcp_endpoint("127.0.0.1", free_port());
        let mut router = bind_router(&ctx, &ep, &SocketOptions::default()).unwrap();

        // A DEALER sending a single frame is not a REQ peer: dropped, not forwarded.
        let dealer = ctx.socket(zmq::DEALER).unwrap();
        dealer.connect(&ep).unwrap();
        dealer.send("garbage", 0).unwrap();

        let req = ctx.socket(zmq::REQ).unwrap();
        req.connect(&ep).unwrap();
        req.send("hello", 0).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), router.requests.recv()).await.unwrap().unwrap();
        assert_eq!(got.body, b"hello");
        router.replier.reply(&got.peer, b"world").unwrap();
        req.set_rcvtimeo(5000).unwrap();
        assert_eq!(req.recv_bytes(0).unwrap(), b"world");
        router.shutdown();
    }

    #[tokio::test]
    async fn oversized_frame_never_reaches_handlers() {
        let ctx = zmq::Context::new();
        let ep = tcp_endpoint("127.0.0.1", free_port());
        let opts = SocketOptions { max_message_size: 1024, ..SocketOptions::default() };
        let mut router = bind_router(&ctx, &ep, &opts).unwrap();
        let big = ctx.socket(zmq::REQ).unwrap();
        big.connect(&ep).unwrap();
        big.send(vec![0u8; 4096], 0).unwrap();
        let small = ctx.socket(zmq::REQ).unwrap();
        small.connect(&ep).unwrap();
        small.send("ok", 0).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), router.requests.recv()).await.unwrap().unwrap();
        assert_eq!(got.body, b"ok");
        router.shutdown();
    }

    #[test]
    fn publisher_reaches_subscriber() {
        let ctx = zmq::Context::new();
        let ep = tcp_endpoint("127.0.0.1", free_port());
        let publisher = bind_publisher(&ctx, &ep, &SocketOptions::default()).unwrap();
        let sub = ctx.socket(zmq::SUB).unwrap();
        sub.set_subscribe(b"").unwrap();
        sub.connect(&ep).unwrap();
        sub.set_rcvtimeo(100).unwrap();
        // Slow joiner: publish until the subscription has propagated, bounded.
        for _ in 0..50 {
            publisher.publish(b"frame".to_vec()).unwrap();
            if let Ok(m) = sub.recv_bytes(0) {
                assert_eq!(m, b"frame");
                return;
            }
        }
        panic!("subscriber never received a publish");
    }

    #[test]
    fn ipv6_endpoint_is_bracketed() {
        assert_eq!(tcp_endpoint("::1", 4506), "tcp://[::1]:4506");
        assert_eq!(tcp_endpoint("127.0.0.1", 4505), "tcp://127.0.0.1:4505");
    }
}
