//! The master's ZeroMQ sockets: the request ROUTER (4506) and the publish PUB (4505), as
//! tokio tasks speaking ZMTP through halite-zmtp.
//!
//! Owns: binding and tuning the listening sockets, one task per peer connection (handshake,
//! reads, heartbeats), the per-peer outbox that replies and publishes are written through,
//! and the bridges to the rest of the master (a request channel, a [`Replier`], a
//! [`PublishSender`]). Replies and publishes are written straight to the peer's socket from
//! the thread that produces them when the socket can take them, and queued for the peer's
//! task only when it cannot.
//!
//! Must not: decode Salt messages, block on a slow peer, or hold memory for an idle one. A
//! message over [`SocketOptions::max_message_size`] closes the sending peer's connection
//! before anything is allocated for it. Why halite speaks ZMTP itself rather than through
//! libzmq: docs/decisions.md ("The master's sockets without libzmq").
//!
//! # What a peer without a key can cost
//!
//! Anyone who reaches 4505 or 4506 can connect and complete the ZMTP handshake (the NULL
//! mechanism: Salt authenticates above ZeroMQ). So each socket bounds what its peers can make
//! it hold, and what they can make it log; none of these limits exists in Salt.
//!
//! - **Connections**: at most [`SocketOptions::max_connections`] per socket, default
//!   100,000: ten times the 10,000 minions halite is benchmarked with (one connection per port
//!   per minion; a minion whose REQ socket timed out can briefly hold a second one), two
//!   thousand times this site's ~50. The cap is lowered to the process's descriptor limit
//!   (`RLIMIT_NOFILE`, read from `/proc/self/limits`) less a reserve of 256 descriptors (half
//!   a limit below 512), so a flood of connections cannot take the descriptors the master
//!   needs to read key files, serve files and write its store, which would fail honest
//!   minions' requests rather than only delay their connections. A connection past the cap
//!   is accepted and reset at once (libzmq reconnects by itself later), with one warning,
//!   rate-limited per address; accepting goes on, and a slot is free again as soon as a
//!   connection ends. An idle connection costs a descriptor, its kernel buffers and a task:
//!   the benchmark's master grew by about 10 KB per minion, so the default bounds what a
//!   flood can make a socket hold at about 1 GB, and a site that wants less lowers it.
//!   There is no separate cap on connections still in their handshake: the 30 s
//!   `handshake_timeout` closes a silent one, and a NULL handshake costs a flood one round
//!   trip to complete, so such a cap would not stop it holding slots, and it would refuse
//!   honest minions reconnecting all at once after a restart.
//! - **Subscriptions** (publisher): at most 64 per SUB peer and 64 KiB of topic prefixes in
//!   all; one more closes the peer's connection. A minion subscribes to `""`, or to two or
//!   three topics with `zmq_filtering`.
//! - **Outboxes**: bytes queued for peers that do not read them as fast as they are sent are
//!   bounded per peer (256 MiB, beyond which the peer is closed; for publishes also
//!   `pub_hwm`), and across all the peers of a socket by [`SocketOptions::max_queued_bytes`],
//!   default 512 MiB, so many slow readers cannot each hold the per-peer maximum. A publish
//!   is counted once however many subscribers hold it (it is encoded once and shared). When
//!   a write does not fit, the connections holding the most unread bytes are closed first,
//!   which are the peers that do not read (an honest minion reads its reply or publish as it
//!   arrives and holds little for long); a libzmq peer that is closed reconnects. If there
//!   is still no room, a publish is dropped for that subscriber, as past `pub_hwm`, and a
//!   reply closes its connection (the minion's REQ socket times out and retries). 512 MiB
//!   holds a 1 MiB file chunk for each of 500 minions that all read slowly at once; a fleet
//!   that fetches big files all together may want more.
//! - **Messages being received**: a message is buffered until its last frame has arrived,
//!   up to `max_message_size` (64 MiB) per connection, so without a bound N connections
//!   could make the socket hold N × 64 MiB (more, as a buffer grows by doubling: a frame
//!   can hold up to twice its size while it arrives). All the connections of a socket
//!   together hold at most [`SocketOptions::max_inflight_bytes`], default 1 GiB: 8 to 16
//!   messages of the largest size at once, or hundreds of 1 MiB. Honest minions rarely send large
//!   messages, and seldom together: what is large goes the other way (pillars, files),
//!   and what comes in large is the `_return` of a big state run (a few MB, 50 MB at the
//!   extreme). What is charged is what the connection's decoder holds
//!   ([`halite_zmtp::Connection::held_bytes`]: its buffer's capacity, which takes up to
//!   1 MiB of a frame its header announces before the bytes come, and the frames of the
//!   unfinished message): bytes read are charged before they are handed to the decoder,
//!   and a buffer that grows past them is charged as soon as it has grown (over the budget
//!   by one allocation per runtime thread at most, and only until the connection is
//!   closed for it). The charge is given back as each message is handed on (a request
//!   in the request queue carries none: that queue bounds those; one waiting for room in
//!   it stays charged, see below) and when the connection ends, whichever way. A
//!   connection whose next bytes do not fit is closed with a warning (kind `inflight
//!   budget`); a minion's REQ socket times out and sends again, as after any closed
//!   connection. Its reads are not paused instead: connections each holding part of a
//!   message and waiting for room would wait for each other for ever. What the budget does not stop: a peer that announces a frame and trickles its
//!   bytes holds about 2 MiB for as long as it keeps the connection (there is no deadline
//!   on finishing a message), so about five hundred such connections can keep large
//!   messages out until they go; small requests need little room and still pass while
//!   there is any.
//!
//! - **Requests waiting for the master**: at most [`SocketOptions::request_queue`] requests
//!   and [`SocketOptions::request_queue_bytes`] (256 MiB) of them, counted until the master
//!   drops each (the master holds them until answered). A request that does not fit waits
//!   in its connection, which reads nothing more meanwhile (the peer's bytes stay in the
//!   kernel's buffers, its sends stall), with its bytes charged to the in-flight budget
//!   (the buffer that brought it is freed, so it is charged once); waiting connections are
//!   let in in the order they began to wait, so a large request first in line holds back
//!   the small ones behind it until it fits. Waiting requests that fill the in-flight
//!   budget leave no room for connections still receiving, which are then closed as
//!   above. This is libzmq's behaviour past a ROUTER's
//!   high-water mark, and what a minion expects of a busy master: its request is answered
//!   late rather than dropped, so it is not sent again after a timeout to queue once more.
//!   A waiting REQ peer sends nothing more until its reply, so its socket is watched for
//!   its close only (a peer that sends anything meanwhile is not watched until its request
//!   is taken): one that closes (its request timed out) has the request dropped with the
//!   connection, before any work is spent on it.
//!
//! Every warning a peer can cause (refused connections, protocol errors, oversized
//! messages, handshake timeouts, requests that are not `['', body]`, a full request queue,
//! slow readers, the limits above) goes through [`halite_ratelog::peer_warn!`], rate-limited
//! per kind and peer address, and shows peer bytes only through [`halite_ratelog::shown`].
//! Routine closes (the peer went away, heartbeats unanswered) are logged at info. The
//! limiter's summaries of suppressed lines are written by whoever calls
//! `halite_ratelog::PEERS.flush()` every second in the process: the master's tick for the
//! request socket, and a timer the [`Publisher`] runs for as long as it listens, since the
//! master runs it in a process of its own.

mod peer;
mod publisher;
mod router;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use peer::PeerId;
pub use publisher::{bind_publisher, serve_publisher, PublishSender, Publisher};
pub use router::{bind_router, Admission, Replier, Request, RouterHandle};

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("interface: {0:?} is not an IP address")]
    Interface(String),
    #[error("the {0} socket has stopped")]
    Stopped(&'static str),
}

/// Socket tuning, mostly Salt's master options of the same names.
#[derive(Debug, Clone)]
pub struct SocketOptions {
    /// `ipv6`: accept IPv4 peers on an IPv6 listener too (dual-stack).
    pub ipv6: bool,
    /// `zmq_backlog`.
    pub backlog: i32,
    /// `pub_hwm`: publishes queued per subscriber before further ones are dropped for it.
    pub pub_hwm: usize,
    /// Largest message accepted; a larger one closes the sending peer's connection. Salt has
    /// no such limit; see docs/decisions.md for why halite has one.
    pub max_message_size: u64,
    /// Requests queued towards the handlers; past it, or past
    /// [`SocketOptions::request_queue_bytes`], a peer's request waits in its connection,
    /// which reads nothing more until there is room.
    pub request_queue: usize,
    /// Bytes of requests queued towards the handlers, held until each [`Request`] (its
    /// [`Admission`]) is dropped. Salt has no such limit (libzmq's ROUTER bounds messages per peer).
    pub request_queue_bytes: usize,
    /// Silence after which a peer that knows heartbeats (ZMTP 3.1) is sent a PING.
    pub heartbeat_interval: Duration,
    /// Silence after which such a peer is taken for dead and its connection closed.
    pub heartbeat_timeout: Duration,
    /// Time a new connection has to complete the ZMTP handshake (libzmq's handshake_ivl).
    pub handshake_timeout: Duration,
    /// Connections the socket holds at once; more are closed as they are accepted. Lowered
    /// to the descriptor limit less a reserve (see the crate's documentation). Salt has no
    /// such limit.
    pub max_connections: usize,
    /// Bytes queued for all the socket's peers together (replies and publishes their
    /// sockets could not take yet); past it the peers holding the most are closed. Salt has
    /// no such limit.
    pub max_queued_bytes: usize,
    /// Bytes all the socket's connections together may hold for messages they are still
    /// receiving (the frames of an unfinished message and the buffer its next frame arrives
    /// in, and a complete request waiting for room in the request queue); a connection
    /// whose next bytes do not fit is closed. Released as each message is handed on. A
    /// message can hold up to twice its size while it arrives (its buffer grows by
    /// doubling), so below twice [`SocketOptions::max_message_size`] the largest messages
    /// may never arrive. Salt has no such limit.
    pub max_inflight_bytes: usize,
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self {
            ipv6: false,
            backlog: 1000,
            pub_hwm: 1000,
            max_message_size: 64 << 20,
            request_queue: 4096,
            // A few maximum-size messages, or tens of thousands of ordinary requests.
            request_queue_bytes: 256 << 20,
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(30),
            max_connections: 100_000,
            max_queued_bytes: 512 << 20,
            // 8 to 16 messages of the largest size at once (see the crate's documentation).
            max_inflight_bytes: 1 << 30,
        }
    }
}

/// Descriptors kept for the rest of the process when the connection cap is derived from
/// the descriptor limit: key files, served files, the store, logs, the local channel.
const RESERVED_DESCRIPTORS: usize = 256;

/// The connection cap: `configured`, but no more than the descriptor limit allows once
/// [`RESERVED_DESCRIPTORS`] (half the limit, for a limit under 512) are kept back.
fn connection_cap(configured: usize, descriptor_limit: Option<usize>) -> usize {
    match descriptor_limit {
        Some(limit) => configured.min(limit - RESERVED_DESCRIPTORS.min(limit / 2)),
        None => configured,
    }
}

/// The process's soft limit on open descriptors (`RLIMIT_NOFILE`), where the system tells
/// it (Linux); `None` when unlimited or unknown.
fn descriptor_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find_map(|line| line.strip_prefix("Max open files"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// The address to listen on for Salt's `interface` and a port; IPv6 literals may come
/// bracketed, as Salt's configs sometimes write them.
pub fn listen_addr(interface: &str, port: u16) -> Result<SocketAddr, TransportError> {
    let bare = interface.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = bare.parse().map_err(|_| TransportError::Interface(interface.to_owned()))?;
    Ok(SocketAddr::new(ip, port))
}

/// A listening socket with Salt's tuning: the backlog, dual-stack on request, and TCP
/// keepalive (60 s idle, 15 s apart, 3 probes), which accepted connections inherit.
fn listen(addr: SocketAddr, opts: &SocketOptions) -> Result<tokio::net::TcpListener, TransportError> {
    use socket2::{Domain, Protocol, Socket, TcpKeepalive, Type};
    let bind_err = |source| TransportError::Bind { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(bind_err)?;
    socket.set_reuse_address(true).map_err(bind_err)?;
    if addr.is_ipv6() {
        socket.set_only_v6(!opts.ipv6).map_err(bind_err)?;
    }
    let keepalive =
        TcpKeepalive::new().with_time(Duration::from_secs(60)).with_interval(Duration::from_secs(15)).with_retries(3);
    socket.set_tcp_keepalive(&keepalive).map_err(bind_err)?;
    socket.set_tcp_nodelay(true).map_err(bind_err)?;
    socket.set_nonblocking(true).map_err(bind_err)?;
    socket.bind(&addr.into()).map_err(bind_err)?;
    socket.listen(opts.backlog).map_err(bind_err)?;
    tokio::net::TcpListener::from_std(socket.into()).map_err(bind_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_parse_with_or_without_brackets() {
        assert_eq!(listen_addr("::1", 4506).unwrap().to_string(), "[::1]:4506");
        assert_eq!(listen_addr("[::]", 4505).unwrap().to_string(), "[::]:4505");
        assert_eq!(listen_addr("127.0.0.1", 4505).unwrap().to_string(), "127.0.0.1:4505");
        assert!(matches!(listen_addr("salt.example", 4505), Err(TransportError::Interface(_))));
    }

    #[test]
    fn the_connection_cap_leaves_descriptors_for_the_rest_of_the_master() {
        assert_eq!(connection_cap(100_000, None), 100_000);
        assert_eq!(connection_cap(100_000, Some(1_048_576)), 100_000);
        assert_eq!(connection_cap(100_000, Some(20_000)), 19_744);
        assert_eq!(connection_cap(100_000, Some(1024)), 768);
        assert_eq!(connection_cap(100_000, Some(256)), 128);
        assert_eq!(connection_cap(10, Some(1024)), 10);
        // Whatever this machine allows, the probe finds it.
        if cfg!(target_os = "linux") {
            assert!(
                descriptor_limit().is_some_and(|n| n > 0)
                    || std::fs::read_to_string("/proc/self/limits").is_ok_and(|l| l.contains("unlimited"))
            );
        }
    }
}
