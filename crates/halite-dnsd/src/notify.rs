//! Telling a zone's secondaries it changed (RFC 1996): a NOTIFY over UDP, sent again until
//! acknowledged, [`ATTEMPTS`] times at most, [`WAIT`] apart. A secondary that never answers
//! is logged once per change; it will find the change at its next SOA refresh.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use halite_dns::respond::Authority;
use halite_dns::transfer;
use halite_dns::zone::StoredName;
use tokio::net::UdpSocket;
use tracing::{info, warn};

/// Sends of one NOTIFY before the secondary is given up on (RFC 1996 4.8 suggests a few).
pub const ATTEMPTS: usize = 5;

/// Wait for an acknowledgement before sending again.
pub const WAIT: Duration = Duration::from_secs(2);

/// Notifies `target` that `apex` changed, as served by `authority`.
pub async fn send(authority: Arc<Authority>, apex: StoredName, target: SocketAddr) {
    let Some(zone) = authority.zones().iter().find(|zone| zone.apex() == &apex) else { return };
    let id: u16 = rand::random();
    let message = transfer::notify(zone, id);
    match attempt(&message, id, &apex, target).await {
        Ok(attempts) => info!(zone = %apex, %target, attempts, "NOTIFY acknowledged"),
        Err(e) => warn!(zone = %apex, %target, "NOTIFY not acknowledged after {ATTEMPTS} sends: {e}"),
    }
}

async fn attempt(message: &[u8], id: u16, apex: &StoredName, target: SocketAddr) -> std::io::Result<usize> {
    let local: SocketAddr =
        if target.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(target).await?;
    let mut buf = vec![0u8; 4096];
    let mut last = std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer");
    for attempt in 1..=ATTEMPTS {
        socket.send(message).await?;
        let answered = tokio::time::timeout(WAIT, async {
            loop {
                let len = socket.recv(&mut buf).await?;
                if transfer::notify_acknowledged(&buf[..len], id, apex) {
                    return Ok::<_, std::io::Error>(());
                }
            }
        })
        .await;
        match answered {
            Ok(Ok(())) => return Ok(attempt),
            Ok(Err(e)) => {
                // ICMP port unreachable surfaces here: wait before the next send anyway.
                last = e;
                tokio::time::sleep(WAIT).await;
            }
            Err(_) => last = std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"),
        }
    }
    Err(last)
}
