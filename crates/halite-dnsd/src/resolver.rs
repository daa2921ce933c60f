//! Asking the forwarders for names outside the zones, and the cache of their answers.
//!
//! Each question goes to the forwarders in the order configured: over UDP from a new socket
//! (a fresh source port from the kernel beside a random ID, so an off-path spoofer has both
//! to guess), a reply accepted only from that forwarder, with that ID and the same question;
//! a truncated reply is asked again over TCP. A forwarder that does not answer within
//! [`UPSTREAM_TIMEOUT`], or fails (SERVFAIL, REFUSED, a malformed reply), passes the question
//! to the next; when all have, the client gets SERVFAIL. Questions waiting on forwarders are
//! bounded ([`MAX_PENDING`]): past it a client gets SERVFAIL at once.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use halite_dns::cache::{Cache, NotCached};
use halite_dns::forward::Forward;
use halite_ratelog::peer_warn;
use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Semaphore;

/// How long one forwarder has to answer one question (BIND's and Unbound's first retry
/// come after a few hundred milliseconds; two seconds spares a slow upstream).
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// Questions waiting on the forwarders at once.
pub const MAX_PENDING: usize = 1024;

/// Bytes read of a forwarder's UDP reply.
const UPSTREAM_UDP_BUFFER: usize = 4096;

pub struct Resolver {
    forwarders: Vec<SocketAddr>,
    cache: Mutex<Cache>,
    pending: Semaphore,
}

impl Resolver {
    pub fn new(forwarders: Vec<SocketAddr>, cache_size: usize) -> Resolver {
        Resolver { forwarders, cache: Mutex::new(Cache::new(cache_size)), pending: Semaphore::new(MAX_PENDING) }
    }

    /// The reply from the cache, if it holds the answer.
    pub fn cached(&self, forward: &Forward) -> Option<Vec<u8>> {
        let now = Instant::now();
        let mut cache = self.cache.lock().expect("no panic holds the cache");
        cache.get(&forward.cache_key(), forward.qtype(), now).map(|entry| forward.from_cache(entry, now))
    }

    /// The reply to `forward`: from the cache, else from the first forwarder that answers.
    pub async fn answer(&self, forward: &Forward, client: IpAddr) -> Vec<u8> {
        if let Some(reply) = self.cached(forward) {
            return reply;
        }
        let Ok(_permit) = self.pending.try_acquire() else {
            peer_warn!(
                "forward queue",
                Some(client),
                "{MAX_PENDING} questions already wait on the forwarders: SERVFAIL"
            );
            return forward.servfail();
        };
        for &upstream in &self.forwarders {
            let raw = match ask(upstream, forward).await {
                Ok(raw) => raw,
                Err(e) => {
                    peer_warn!("forwarder", Some(upstream.ip()), "forwarder {upstream}: {e}");
                    continue;
                }
            };
            match forward.from_upstream(&raw) {
                Ok(reply) => {
                    let mut cache = self.cache.lock().expect("no panic holds the cache");
                    // What is not cached (a zero TTL, no SOA) is still this client's answer.
                    let _ = cache.insert(forward.qname(), forward.qtype(), &raw, Instant::now());
                    return reply;
                }
                Err(why) => {
                    let why = match why {
                        NotCached::Failure => "answered with an error",
                        NotCached::Truncated => "truncated its TCP reply",
                        NotCached::Malformed | NotCached::ZeroTtl | NotCached::TooLarge => {
                            "sent a reply that does not parse"
                        }
                    };
                    peer_warn!("forwarder", Some(upstream.ip()), "forwarder {upstream} {why}: asking the next");
                }
            }
        }
        forward.servfail()
    }
}

/// Asks `upstream` over UDP, then over TCP if the reply is truncated.
async fn ask(upstream: SocketAddr, forward: &Forward) -> std::io::Result<Vec<u8>> {
    let id: u16 = rand::random();
    let query = forward.upstream_query(id);
    let local: SocketAddr =
        if upstream.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = UdpSocket::bind(local).await?;
    // Connected: the kernel drops datagrams from any other address or port.
    socket.connect(upstream).await?;
    socket.send(&query).await?;
    // The question offers a 1,232-byte payload (halite_dns::respond::MAX_UDP_PAYLOAD); a
    // longer datagram is cut here, fails to parse and counts as that forwarder failing. A
    // 64 KiB buffer per question waiting would hold 64 MiB at MAX_PENDING.
    let mut buf = vec![0u8; UPSTREAM_UDP_BUFFER];
    let reply = tokio::time::timeout(UPSTREAM_TIMEOUT, async {
        loop {
            let len = socket.recv(&mut buf).await?;
            if forward.matches(&buf[..len], id) {
                return Ok::<_, std::io::Error>(buf[..len].to_vec());
            }
        }
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer over UDP"))??;
    // The TC bit: byte 2, bit 1.
    if reply[2] & 0x02 == 0 {
        return Ok(reply);
    }
    tokio::time::timeout(UPSTREAM_TIMEOUT, async {
        let mut stream = TcpStream::connect(upstream).await?;
        let mut framed = (query.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&query);
        stream.write_all(&framed).await?;
        loop {
            let len = stream.read_u16().await?;
            let mut reply = vec![0u8; usize::from(len)];
            stream.read_exact(&mut reply).await?;
            if forward.matches(&reply, id) {
                return Ok(reply);
            }
        }
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer over TCP"))?
}

/// The default `allow_recursion`: loopback, and the network of each interface holding a
/// `listen` address (every interface's, for a wildcard address). The site's VMs share the
/// salt VM's internal network; nothing beyond it is served.
pub fn default_recursion(listen: &[SocketAddr]) -> Vec<IpNet> {
    let mut networks: Vec<IpNet> =
        vec!["127.0.0.0/8".parse().expect("a network"), "::1/128".parse().expect("a network")];
    for (address, prefix) in interface_addresses() {
        let listened = listen.iter().any(|l| l.ip().is_unspecified() || l.ip().to_canonical() == address);
        if let Ok(net) = IpNet::new(address, prefix) {
            let net = net.trunc();
            if listened && !networks.contains(&net) {
                networks.push(net);
            }
        }
    }
    networks
}

/// Every interface address with its prefix length, from getifaddrs(3).
fn interface_addresses() -> Vec<(IpAddr, u8)> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list the caller frees with freeifaddrs;
    // each entry's pointers are valid (or null) until then, and the sockaddr behind
    // ifa_addr/ifa_netmask has the family its sa_family says.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            // Under a sandbox without AF_NETLINK, for one: the default would shrink to
            // loopback and refuse every VM, so say so.
            tracing::error!(
                "getifaddrs: {}: the default allow_recursion is loopback only (set allow_recursion)",
                std::io::Error::last_os_error()
            );
            return found;
        }
        let mut entry = list;
        while !entry.is_null() {
            let ifa = &*entry;
            if !ifa.ifa_addr.is_null() && !ifa.ifa_netmask.is_null() {
                match i32::from((*ifa.ifa_addr).sa_family) {
                    libc::AF_INET => {
                        let addr = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                        let mask = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
                        let prefix = u32::from_be(mask.sin_addr.s_addr).count_ones() as u8;
                        found.push((IpAddr::from(u32::from_be(addr.sin_addr.s_addr).to_be_bytes()), prefix));
                    }
                    libc::AF_INET6 => {
                        let addr = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                        let mask = &*(ifa.ifa_netmask as *const libc::sockaddr_in6);
                        let prefix = mask.sin6_addr.s6_addr.iter().map(|b| b.count_ones()).sum::<u32>() as u8;
                        found.push((IpAddr::from(addr.sin6_addr.s6_addr), prefix));
                    }
                    _ => {}
                }
            }
            entry = ifa.ifa_next;
        }
        libc::freeifaddrs(list);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_recursion_networks_are_loopback_and_the_listened_interfaces() {
        let loopback = default_recursion(&["127.0.0.1:53".parse().unwrap()]);
        assert!(loopback.contains(&"127.0.0.0/8".parse().unwrap()));
        assert!(interface_addresses().iter().any(|(ip, prefix)| ip.is_loopback() && *prefix > 0));
        // An address no interface holds adds nothing.
        assert_eq!(default_recursion(&["192.0.2.77:53".parse().unwrap()]).len(), 2);
    }
}
