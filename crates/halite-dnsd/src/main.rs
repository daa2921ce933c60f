//! `halite-dns -c /etc/halite/dns.yaml`: the salt VM's DNS server. This binary is the thin
//! shell around the `halite-dns` library: it reads the config and the zone files, binds UDP
//! and TCP on every `listen` address, hands each query's bytes to
//! [`halite_dns::respond::Authority`] and sends back what it returns, or, for a name
//! outside the zones, what the cache or the forwarders say (`resolver`). UDP is served by
//! threads of its own, in batches (`udp`); TCP, the forwarders and the zone files by a tokio
//! runtime. Zone files are re-read when they change (polled every half second) and on SIGHUP.
//!
//! Bounds a client cannot move: `udp::BATCH` 64 KiB buffers and a memo of at most
//! `halite_dns::memo::MAX_ENTRIES` replies per UDP thread; TCP connections
//! capped at `tcp_max_connections` (1,024; more are closed as they are accepted), each
//! closed after `tcp_idle_timeout` (10 s) without a complete query (a length prefix then
//! silence included) and after [`MAX_QUERIES_PER_CONNECTION`]; UDP replies rate-limited
//! per client prefix (`rate_limit`, see `halite_dns::rrl`); every warning a client can
//! cause goes through `halite_ratelog::peer_warn!`.

mod notify;
mod privileges;
mod resolver;
mod udp;
mod zones;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use halite_dns::config::Config;
use halite_dns::forward::Access;
use halite_dns::respond::{Authority, Outcome, Transport};
use halite_dns::rrl::RateLimiter;
use halite_dns::transfer::Secondaries;
use halite_ratelog::peer_warn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

use crate::resolver::Resolver;
use crate::zones::{Refresh, Zones};

/// Queries answered on one TCP connection before it is closed (the client reconnects).
pub const MAX_QUERIES_PER_CONNECTION: usize = 10_000;

/// How often the zone files' stamps are compared.
const ZONE_POLL: Duration = Duration::from_millis(500);

#[derive(Parser, Debug)]
#[command(name = "halite-dns", version, about = "The salt VM's DNS server: authoritative for the site's zones")]
struct Args {
    /// The configuration file.
    #[arg(short = 'c', long = "config", default_value = "/etc/halite/dns.yaml")]
    config: PathBuf,
    /// Reads the config and every zone, reports what is wrong, and exits (0 when all load).
    #[arg(long = "check")]
    check: bool,
}

/// What the serving tasks share: the answers of the moment, swapped whole on reload.
type Current = Arc<RwLock<Arc<Authority>>>;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // To stderr (the journal under systemd), colours only for a terminal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();

    let text = std::fs::read_to_string(&args.config).with_context(|| format!("reading {}", args.config.display()))?;
    let (config, warnings) =
        Config::parse(&text).with_context(|| format!("{}: invalid configuration", args.config.display()))?;
    for warning in warnings {
        warn!("{}: {warning}", args.config.display());
    }
    if let Some(user) = &config.user {
        privileges::check(user)?;
    }
    let (zones, loaded) = Zones::load(&config, now_secs());
    let errors = loaded.errors;
    for e in &errors {
        error!("{e} (the zone is answered SERVFAIL until its files load)");
    }
    for note in &loaded.notes {
        warn!("{note}");
    }
    if args.check {
        if errors.is_empty() {
            println!("{}: configuration and {} zones load", args.config.display(), config.zones.len());
            return Ok(());
        }
        anyhow::bail!("{} of {} zones do not load", errors.len(), config.zones.len());
    }
    raise_descriptor_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(config, zones))
}

async fn serve(config: Config, mut zones: Zones) -> anyhow::Result<()> {
    // Never an open resolver: without forwarders nobody has other names resolved; with
    // them, the networks allowed (by default loopback and the listened interfaces').
    let recursion = if config.forwarders.is_empty() {
        info!("no forwarders: names outside the zones are REFUSED");
        Access::default()
    } else {
        let networks = config.allow_recursion.clone().unwrap_or_else(|| resolver::default_recursion(&config.listen));
        let shown: Vec<String> = networks.iter().map(ToString::to_string).collect();
        info!(forwarders = ?config.forwarders, "names outside the zones are forwarded for {}", shown.join(", "));
        Access::new(networks)
    };
    let resolver = Arc::new(Resolver::new(config.forwarders.clone(), config.cache_size));
    let secondaries = Secondaries::new(
        config.transfer.iter().map(|(apex, addrs)| (apex.clone(), addrs.iter().map(|a| a.ip()).collect())).collect(),
    );
    let first = zones.authority(&recursion, &secondaries);
    for zone in first.zones() {
        log_warnings(zone);
    }
    let current: Current = Arc::new(RwLock::new(first));
    let tcp = TcpLimits {
        connections: Arc::new(Semaphore::new(config.tcp_max_connections)),
        max: config.tcp_max_connections,
        idle: config.tcp_idle_timeout,
    };
    // Knot's default prefixes: a /24 or a /56 is one client's.
    let limiter: Limiter = (config.rate_limit > 0)
        .then(|| Arc::new(Mutex::new(RateLimiter::new(config.rate_limit, config.rate_limit_slip, 24, 56))));
    let udp_threads = config.udp_threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let mut bound = Vec::new();
    for &addr in &config.listen {
        let udp = udp::bind(addr, udp_threads).with_context(|| format!("listen: binding UDP {addr}"))?;
        let listener = TcpListener::bind(addr).await.with_context(|| format!("listen: binding TCP {addr}"))?;
        bound.push((addr, udp, listener));
    }
    // Every socket is bound: root (if we had it) is needed no more, and no query is served
    // before it is gone.
    if let Some(user) = &config.user {
        if privileges::drop_to(user)? {
            info!(user, "running as the configured user");
        }
    }
    let shared = Arc::new(udp::Shared {
        current: current.clone(),
        resolver: resolver.clone(),
        limiter,
        runtime: tokio::runtime::Handle::current(),
        forwarding: std::sync::atomic::AtomicUsize::new(0),
    });
    for (addr, sockets, listener) in bound {
        info!(%addr, udp_threads, "answering on UDP and TCP");
        for (index, socket) in sockets.into_iter().enumerate() {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("udp-{addr}-{index}"))
                .spawn(move || {
                    // A query's answer is already guarded; what fails here is the thread's own
                    // (a poisoned lock): a process missing a UDP thread would go on half
                    // serving, unseen, so it stops and the service manager starts it again.
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| udp::serve(socket, shared))).is_err() {
                        error!("a UDP thread failed (a bug): stopping halite-dns");
                        std::process::abort();
                    }
                })
                .context("starting a UDP thread")?;
        }
        tokio::spawn(serve_tcp(listener, current.clone(), resolver.clone(), tcp.clone()));
    }
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut poll = tokio::time::interval(ZONE_POLL);
    let mut flush = tokio::time::interval(Duration::from_secs(1));
    loop {
        let force = tokio::select! {
            _ = poll.tick() => false,
            _ = hangup.recv() => {
                info!("SIGHUP: re-reading every zone");
                true
            }
            _ = flush.tick() => {
                halite_ratelog::PEERS.flush();
                continue;
            }
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Refresh { reloaded, files_loaded, errors, notes } = zones.refresh(force, now_secs());
        for e in &errors {
            error!("{e} (the last version that loaded is still served)");
        }
        for note in &notes {
            warn!("{note}");
        }
        for (zone, records) in &reloaded {
            info!(%zone, records, "zone reloaded");
        }
        if !reloaded.is_empty() {
            let authority = zones.authority(&recursion, &secondaries);
            *current.write().expect("no writer panics holding it") = authority.clone();
            for zone in authority.zones().iter().filter(|zone| files_loaded.iter().any(|apex| apex == zone.apex())) {
                log_warnings(zone);
            }
            for (apex, _) in &reloaded {
                let targets =
                    config.transfer.iter().filter(|(zone, _)| zone == apex).flat_map(|(_, addrs)| addrs.iter());
                for &target in targets {
                    tokio::spawn(notify::send(authority.clone(), apex.clone(), target));
                }
            }
        }
    }
    info!("stopping");
    Ok(())
}

/// The clock's seconds since 1970, for the serials of zones holding minions.
fn now_secs() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32)
}

/// Raises the soft limit on open descriptors to the hard one: a socket per question waiting
/// on the forwarders (1,024), per TCP client (`tcp_max_connections`) and the zone files
/// would not fit the usual soft limit of 1,024.
fn raise_descriptor_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the struct passed; no other precondition.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                warn!("raising the open-file limit: {}", std::io::Error::last_os_error());
            }
        }
    }
}

/// What loading a zone corrected (an RRset's TTLs differing), once per load.
fn log_warnings(zone: &halite_dns::zone::Zone) {
    for warning in zone.warnings() {
        warn!("{warning}");
    }
}

fn authority(current: &Current) -> Arc<Authority> {
    current.read().expect("no writer panics holding it").clone()
}

/// A query not answered. Over UDP the source address can be forged, so the budget of log
/// lines is one for all sources (a flood from a thousand forged addresses gets five lines
/// and a count, not five per address); over TCP it is per address.
fn log_drop(peer: IpAddr, transport: &str, why: &'static str) {
    let key = if transport == "udp" { None } else { Some(peer) };
    peer_warn!("dns query dropped", key, transport, "query from {peer} not answered: {why}");
}

/// The outcome for `query`.
fn respond(authority: &Authority, query: &[u8], transport: Transport, peer: IpAddr) -> Outcome {
    guarded(query, peer, || authority.respond(query, transport, peer))
}

/// What `answer` gives for `query`, or a drop if it panicked: a bug must cost that query,
/// not the thread or task that serves the socket (a UDP thread that ended would leave
/// fewer, then none).
fn guarded(query: &[u8], peer: IpAddr, answer: impl FnOnce() -> Outcome) -> Outcome {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(answer)).unwrap_or_else(|_| {
        tracing::error!(%peer, "answering a query panicked (a bug): {}", halite_ratelog::shown(query));
        Outcome::Drop("answering it panicked")
    })
}

/// What bounds the TCP side: `tcp_max_connections` and `tcp_idle_timeout`.
#[derive(Clone)]
struct TcpLimits {
    connections: Arc<Semaphore>,
    max: usize,
    idle: Duration,
}

/// The UDP rate limiter shared by every UDP task (`rate_limit`; `None` when 0).
type Limiter = Option<Arc<Mutex<RateLimiter>>>;

async fn serve_tcp(listener: TcpListener, current: Current, resolver: Arc<Resolver>, limits: TcpLimits) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(got) => got,
            Err(e) => {
                // Out of descriptors, most likely: wait rather than spin.
                peer_warn!("tcp accept", None, "accepting a TCP connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = limits.connections.clone().try_acquire_owned() else {
            peer_warn!(
                "tcp connections",
                Some(peer.ip()),
                "{} TCP connections open (tcp_max_connections): closing a new one",
                limits.max
            );
            continue;
        };
        let (current, resolver) = (current.clone(), resolver.clone());
        let idle = limits.idle;
        tokio::spawn(async move {
            serve_connection(stream, peer, &current, &resolver, idle).await;
            drop(permit);
        });
    }
}

/// Answers the queries of one TCP connection in the order they come (RFC 7766 pipelining:
/// the client may send several before reading; each is answered in turn).
async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    current: &Current,
    resolver: &Resolver,
    idle: Duration,
) {
    let _ = stream.set_nodelay(true);
    let mut message = Vec::new();
    for _ in 0..MAX_QUERIES_PER_CONNECTION {
        let read = tokio::time::timeout(idle, async {
            let len = stream.read_u16().await?;
            message.resize(usize::from(len), 0);
            stream.read_exact(&mut message).await?;
            Ok::<_, std::io::Error>(())
        })
        .await;
        match read {
            Ok(Ok(())) => {}
            // The client closed the connection, cleanly or not.
            Ok(Err(_)) => return,
            Err(_) => {
                tracing::debug!(%peer, "TCP connection idle for {idle:?}: closed");
                return;
            }
        }
        let outcome = respond(&authority(current), &message, Transport::Tcp, peer.ip());
        let replies = match outcome {
            Outcome::Reply(reply) => vec![reply],
            Outcome::Forward(forward) => vec![resolver.answer(&forward, peer.ip()).await],
            Outcome::Transfer(messages) => {
                info!(%peer, messages = messages.len(), "zone transfer");
                messages
            }
            Outcome::Drop(why) => {
                log_drop(peer.ip(), "tcp", why);
                return;
            }
        };
        for reply in replies {
            let mut framed = Vec::with_capacity(reply.len() + 2);
            framed.extend_from_slice(&(reply.len() as u16).to_be_bytes());
            framed.extend_from_slice(&reply);
            match tokio::time::timeout(idle, stream.write_all(&framed)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    }
}
