//! UDP serving, the path almost every query takes: `udp_threads` threads per listen
//! address, each with a socket of its own on that address (`SO_REUSEPORT`: the kernel
//! spreads clients over them by their address and port), each blocking in `recvmmsg` for up
//! to [`BATCH`] queries and sending their replies with one `sendmmsg`. That is how gdnsd and
//! Knot serve UDP; a tokio task per socket paid a `recvfrom` and a `sendto` per query, and
//! on this 2-core machine the system calls were most of a query's cost (docs/benchmarks.md).
//!
//! Each thread keeps a memo of the replies it built (`halite_dns::memo`): a query repeated
//! byte for byte but for its ID, as the VMs' are, is answered from it until the zones reload.
//!
//! The threads stay off the tokio runtime: the answer to a query about the zones is built
//! synchronously, in well under a microsecond, and a blocked thread is the back-pressure a
//! full socket buffer should apply. A question for the forwarders is the one thing that
//! waits, so it goes to the runtime (`Handle::spawn`) and its reply is sent from there
//! without blocking (`MSG_DONTWAIT`; a full buffer loses that reply, as it would a datagram).
//!
//! Bounds a client cannot move: [`BATCH`] buffers of 64 KiB per thread (pages the kernel
//! never writes stay unallocated), at most [`BATCH`] replies held, and at most
//! [`MAX_PENDING`] forwarded questions handed to the runtime at once, counted before the
//! task is spawned: past it a client gets SERVFAIL at once (the receiving threads are
//! faster than the runtime's workers, and a flood of uncached names would otherwise queue
//! tasks without end).
//!
//! `SO_REUSEPORT` lets any process of the same user join the group of sockets and take a
//! share of the queries; the kernel allows it only for the same effective user, which is why
//! halite-dns runs as a user of its own (the site's unit: `DynamicUser`; started as root: the
//! config's `user`, with the sockets bound as root).

use std::io;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use halite_dns::memo::ReplyMemo;
use halite_dns::respond::{truncated, Outcome};
use halite_dns::rrl::Verdict;
use halite_ratelog::peer_warn;
use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, Socket, Type};

use crate::resolver::{Resolver, MAX_PENDING};
use crate::{authority, guarded, log_drop, Current, Limiter};

/// Datagrams received, and replies sent, per system call: gdnsd's and Knot's order of size.
/// A quiet server gets batches of one; a busy one drains its queue 32 at a time.
pub const BATCH: usize = 32;

/// The largest UDP payload: a buffer this long never truncates a datagram.
const DATAGRAM_MAX: usize = 65_535;

/// What every UDP thread shares.
pub struct Shared {
    pub current: Current,
    pub resolver: Arc<Resolver>,
    pub limiter: Limiter,
    /// Where questions for the forwarders wait.
    pub runtime: tokio::runtime::Handle,
    /// Forwarded questions handed to the runtime and not answered yet, by every UDP thread.
    pub forwarding: AtomicUsize,
}

impl Shared {
    /// Counts one more forwarded question in flight, unless [`MAX_PENDING`] are.
    fn start_forward(self: &Arc<Shared>) -> Option<Forwarding> {
        if self.forwarding.fetch_add(1, Ordering::AcqRel) < MAX_PENDING {
            Some(Forwarding(self.clone()))
        } else {
            self.forwarding.fetch_sub(1, Ordering::AcqRel);
            None
        }
    }
}

/// One forwarded question in flight; dropped (answered, or the task cancelled), it is not.
struct Forwarding(Arc<Shared>);

impl Drop for Forwarding {
    fn drop(&mut self) {
        self.0.forwarding.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `count` sockets bound to `addr`, sharing it through `SO_REUSEPORT` when there are
/// several. Port 0 is resolved by the first bind, so all share the port it got.
pub fn bind(addr: SocketAddr, count: usize) -> io::Result<Vec<UdpSocket>> {
    let mut sockets: Vec<UdpSocket> = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let at = sockets.first().map_or(Ok(addr), UdpSocket::local_addr)?;
        let socket = Socket::new(Domain::for_address(at), Type::DGRAM, Some(Protocol::UDP))?;
        // Only with several sockets: with one, a second bind of the address (another
        // instance, another user's process) fails loudly instead of sharing the queries.
        if count > 1 {
            socket.set_reuse_port(true)?;
        }
        socket.bind(&at.into())?;
        sockets.push(socket.into());
    }
    Ok(sockets)
}

/// A reply waiting for the batch's `sendmmsg`.
struct Reply {
    bytes: Vec<u8>,
    peer: SocketAddr,
    /// The client has a rate-limit bucket of its own (a site VM), not its prefix's.
    own_bucket: bool,
}

/// Serves `socket` until the process ends. Runs on a thread of its own.
pub fn serve(socket: UdpSocket, shared: Arc<Shared>) {
    let socket = Arc::new(socket);
    let mut batch = Batch::new();
    let mut memo = ReplyMemo::new();
    let mut replies: Vec<Reply> = Vec::with_capacity(BATCH);
    loop {
        let received = match batch.receive(&socket) {
            Ok(received) => received,
            Err(e) => {
                // ICMP errors from earlier sends surface here on Linux; nothing to do.
                peer_warn!("udp receive", None, "receiving UDP queries: {e}");
                continue;
            }
        };
        // One look at the zones of the moment for the whole batch.
        let authority = authority(&shared.current);
        for index in 0..received {
            let Some((query, peer)) = batch.datagram(index) else { continue };
            // A site VM has a rate-limit bucket of its own, other clients their prefix's.
            let own_bucket = shared.limiter.is_some() && authority.recursion_allowed(peer.ip());
            match guarded(query, peer.ip(), || authority.respond_udp(&mut memo, query, peer.ip())) {
                Outcome::Reply(bytes) => replies.push(Reply { bytes, peer, own_bucket }),
                Outcome::Drop(why) => log_drop(peer.ip(), "udp", why),
                Outcome::Transfer(_) => log_drop(peer.ip(), "udp", "a zone transfer over UDP"),
                Outcome::Forward(forward) => match shared.resolver.cached(&forward) {
                    Some(bytes) => replies.push(Reply { bytes, peer, own_bucket }),
                    // The forwarders may take seconds: this thread goes on receiving.
                    None => match shared.start_forward() {
                        Some(in_flight) => {
                            let socket = socket.clone();
                            shared.runtime.spawn(async move {
                                let shared = in_flight.0.clone();
                                let bytes = shared.resolver.answer(&forward, peer.ip()).await;
                                drop(in_flight);
                                let mut reply = [Reply { bytes, peer, own_bucket }];
                                if let [reply] = rate_limit(&shared.limiter, &mut reply) {
                                    send_now(&socket, &reply.bytes, peer);
                                }
                            });
                        }
                        None => {
                            // Forgeable source: one log budget for all of them.
                            peer_warn!(
                                "forward queue",
                                None,
                                "{MAX_PENDING} forwarded questions wait already: SERVFAIL to {}",
                                peer.ip()
                            );
                            replies.push(Reply { bytes: forward.servfail(), peer, own_bucket });
                        }
                    },
                },
            }
        }
        drop(authority);
        let kept = rate_limit(&shared.limiter, &mut replies);
        send_all(&socket, kept);
        replies.clear();
    }
}

/// The replies the rate limiter lets out (whole, or truncated when they slip), first in
/// `replies`. The limiter's lock is held for the verdicts only: truncating and logging wait
/// for no other thread.
fn rate_limit<'r>(limiter: &Limiter, replies: &'r mut [Reply]) -> &'r [Reply] {
    let Some(limiter) = limiter else { return replies };
    let now = Instant::now();
    let verdicts: Vec<Verdict> = {
        let mut limiter = limiter.lock().expect("no panic holds the limiter");
        replies.iter().map(|reply| limiter.check(reply.peer.ip(), reply.own_bucket, now)).collect()
    };
    let mut kept = 0;
    for (index, verdict) in verdicts.into_iter().enumerate() {
        let Reply { peer, own_bucket, .. } = replies[index];
        let bytes = match verdict {
            Verdict::Send => std::mem::take(&mut replies[index].bytes),
            Verdict::Slip => match truncated(&replies[index].bytes) {
                Some(short) => short,
                None => continue,
            },
            Verdict::Drop => {
                // Forgeable source: one log budget for all of them.
                peer_warn!("rate limit", None, "UDP replies to {} over rate_limit: dropped", peer.ip());
                continue;
            }
        };
        replies[kept] = Reply { bytes, peer, own_bucket };
        kept += 1;
    }
    &replies[..kept]
}

/// Sends one reply from a task of the runtime, never blocking it.
fn send_now(socket: &UdpSocket, reply: &[u8], peer: SocketAddr) {
    if let Err(e) = socket2::SockRef::from(socket).send_to_with_flags(reply, &peer.into(), libc::MSG_DONTWAIT) {
        peer_warn!("udp send", None, "sending a UDP reply to {peer}: {e}");
    }
}

/// Sends `replies` with as few `sendmmsg` calls as the kernel allows. A reply the kernel
/// refuses (an unreachable address, say) is logged and skipped; the rest still go.
fn send_all(socket: &UdpSocket, replies: &[Reply]) {
    let mut sent = 0;
    while sent < replies.len() {
        let rest = &replies[sent..];
        let addrs: Vec<SockAddr> = rest.iter().map(|reply| SockAddr::from(reply.peer)).collect();
        let mut iovecs: Vec<libc::iovec> = rest
            .iter()
            .map(|reply| libc::iovec {
                iov_base: reply.bytes.as_ptr() as *mut libc::c_void,
                iov_len: reply.bytes.len(),
            })
            .collect();
        let mut headers: Vec<libc::mmsghdr> = iovecs
            .iter_mut()
            .zip(&addrs)
            .map(|(iovec, addr)| {
                // SAFETY: msghdr is plain data; all zeros is its empty value.
                let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
                header.msg_name = addr.as_ptr() as *mut libc::c_void;
                header.msg_namelen = addr.len();
                header.msg_iov = iovec;
                header.msg_iovlen = 1;
                libc::mmsghdr { msg_hdr: header, msg_len: 0 }
            })
            .collect();
        // SAFETY: every header points at an address and an iovec that live until the call
        // returns, each iovec at a reply's bytes, which outlive it too; the count is the
        // vector's length.
        let done = unsafe { libc::sendmmsg(fd(socket), headers.as_mut_ptr(), headers.len() as libc::c_uint, 0) };
        if done < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The first reply of the rest failed: skip it, send the others.
            peer_warn!("udp send", None, "sending a UDP reply to {}: {e}", rest[0].peer);
            sent += 1;
        } else {
            sent += done as usize;
        }
    }
}

fn fd(socket: &UdpSocket) -> libc::c_int {
    std::os::fd::AsRawFd::as_raw_fd(socket)
}

/// The buffers `recvmmsg` fills: [`BATCH`] datagrams and their sources.
struct Batch {
    buffers: Vec<Box<[MaybeUninit<u8>]>>,
    sources: Vec<SockAddrStorage>,
    headers: Vec<libc::mmsghdr>,
    iovecs: Vec<libc::iovec>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            buffers: (0..BATCH).map(|_| Box::new_uninit_slice(DATAGRAM_MAX)).collect(),
            sources: (0..BATCH).map(|_| SockAddrStorage::zeroed()).collect(),
            // SAFETY: mmsghdr and iovec are plain data; all zeros is their empty value.
            headers: (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect(),
            iovecs: (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect(),
        }
    }

    /// Waits for at least one datagram, then takes what else is queued, up to [`BATCH`].
    fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        for (iovec, buffer) in self.iovecs.iter_mut().zip(&mut self.buffers) {
            *iovec = libc::iovec { iov_base: buffer.as_mut_ptr().cast(), iov_len: buffer.len() };
        }
        // Raw pointers taken once per vector, so that no later borrow of it invalidates them.
        let (iovecs, sources) = (self.iovecs.as_mut_ptr(), self.sources.as_mut_ptr());
        for (index, header) in self.headers.iter_mut().enumerate() {
            // SAFETY: `index` is below BATCH, the length of both vectors.
            let (iovec, source) = unsafe { (iovecs.add(index), sources.add(index)) };
            header.msg_hdr.msg_name = source.cast();
            header.msg_hdr.msg_namelen = size_of::<SockAddrStorage>() as libc::socklen_t;
            header.msg_hdr.msg_iov = iovec;
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_control = std::ptr::null_mut();
            header.msg_hdr.msg_controllen = 0;
            header.msg_hdr.msg_flags = 0;
            header.msg_len = 0;
        }
        // SAFETY: each header points at a source storage of the size it states and at an
        // iovec describing a buffer of this batch; all live as long as `self`, which the
        // call borrows mutably; the count is the vectors' length.
        let received = unsafe {
            libc::recvmmsg(
                fd(socket),
                self.headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if received < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(received as usize)
    }

    /// The `index`th datagram of the last [`Batch::receive`] and its source; `None` for a
    /// source that is not an IP address (never, on a UDP socket bound to one).
    fn datagram(&mut self, index: usize) -> Option<(&[u8], SocketAddr)> {
        let header = &self.headers[index];
        let len = (header.msg_len as usize).min(DATAGRAM_MAX);
        let name_len = header.msg_hdr.msg_namelen;
        let storage = std::mem::replace(&mut self.sources[index], SockAddrStorage::zeroed());
        // SAFETY: the kernel wrote `name_len` bytes of a socket address into the storage.
        let source = unsafe { SockAddr::new(storage, name_len) }.as_socket()?;
        // SAFETY: the kernel wrote the first `len` bytes of this buffer (msg_len).
        let bytes = unsafe { std::slice::from_raw_parts(self.buffers[index].as_ptr().cast::<u8>(), len) };
        Some((bytes, source))
    }
}
