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

mod peer;
mod publisher;
mod router;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use peer::PeerId;
pub use publisher::{bind_publisher, serve_publisher, PublishSender, Publisher};
pub use router::{bind_router, Replier, Request, RouterHandle};

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
    /// Requests queued towards the handlers before further ones are refused.
    pub request_queue: usize,
    /// Silence after which a peer that knows heartbeats (ZMTP 3.1) is sent a PING.
    pub heartbeat_interval: Duration,
    /// Silence after which such a peer is taken for dead and its connection closed.
    pub heartbeat_timeout: Duration,
    /// Time a new connection has to complete the ZMTP handshake (libzmq's handshake_ivl).
    pub handshake_timeout: Duration,
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self {
            ipv6: false,
            backlog: 1000,
            pub_hwm: 1000,
            max_message_size: 64 << 20,
            request_queue: 4096,
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(30),
        }
    }
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
}
