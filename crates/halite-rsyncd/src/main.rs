//! `halite-rsyncd --config /etc/halite/rsyncd.conf`: the salt VM's rsync daemon.
//!
//! The listener stays single-threaded and forks one process per connection, as the
//! reference does: each connection chroots and drops to its module's uid/gid for good,
//! so one client's transfer can never act with another module's rights, and a crash
//! ends one connection only.

use anyhow::{Context, Result};
use clap::Parser;
use halite_rsyncd::session::{self, Served};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;

/// Connections served at once across all modules: past it new ones are refused at
/// once, so a connection flood cannot fork the machine to death.
const MAX_CHILDREN: usize = 256;

#[derive(Parser, Debug)]
#[command(name = "halite-rsyncd", version, about = "rsync daemon for the stock rsync client")]
struct Args {
    /// rsyncd.conf(5) file.
    #[arg(long, default_value = "/etc/halite/rsyncd.conf")]
    config: PathBuf,
    /// Port, overriding the config's `port`.
    #[arg(long)]
    port: Option<u16>,
    /// Address to listen on, overriding the config's `address`.
    #[arg(long)]
    address: Option<IpAddr>,
    /// Read the config, report what it says and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let loaded = halite_rsyncd::config::Config::load(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    // The config names the log file, so what reading it found is logged after.
    let log_file = if args.check { None } else { loaded.0.global.log_file.clone() };
    halite_rsyncd::log::init(log_file.as_deref())?;
    let daemon = halite_rsyncd::daemon::Daemon::from_config(&loaded).map_err(anyhow::Error::msg)?;
    halite_rsyncd::tree::check_confinement()?;
    if args.check {
        println!(
            "{}: {} module(s): {}",
            args.config.display(),
            daemon.modules.len(),
            daemon.modules.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
        );
        return Ok(());
    }
    let address = args.address.or(daemon.address).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let port = args.port.unwrap_or(daemon.port);
    let listener = TcpListener::bind(SocketAddr::new(address, port))
        .with_context(|| format!("listening on {address} port {port}"))?;
    tracing::info!("halite-rsyncd version {} starting, listening on {address} port {port}", env!("CARGO_PKG_VERSION"));
    if let Some(pid_file) = &daemon.pid_file {
        std::fs::write(pid_file, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing the pid file {}", pid_file.display()))?;
    }
    let served = Served {
        modules: &daemon.modules,
        motd: daemon.motd.clone(),
        reverse_lookup: daemon.reverse_lookup,
        log_file: log_file.as_deref(),
    };
    let mut children = 0usize;
    loop {
        children = children.saturating_sub(reap());
        // Wake at least once a second so ended connections are collected promptly (their
        // CPU and memory counted, no zombies) even when no new client comes.
        if !readable(&listener, 1000) {
            continue;
        }
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("accept: {e}");
                std::thread::sleep(std::time::Duration::from_millis(50));
                continue;
            }
        };
        children = children.saturating_sub(reap());
        if children >= MAX_CHILDREN {
            tracing::warn!("{MAX_CHILDREN} connections already: {peer} refused");
            let mut s = stream;
            let _ = std::io::Write::write_all(&mut s, b"@ERROR: max connections reached -- try again later\n");
            continue;
        }
        // SAFETY: the listener is single-threaded, so the child starts with a
        // consistent copy of it; the child only serves the connection and exits.
        match unsafe { libc::fork() } {
            0 => {
                drop(listener);
                halite_rsyncd::log::open_for_connection();
                let code = session::serve(stream, peer.ip(), &served);
                std::process::exit(code);
            }
            -1 => {
                tracing::error!("fork: {}", std::io::Error::last_os_error());
            }
            _ => children += 1,
        }
    }
}

/// Whether the listener has a connection waiting, within `timeout_ms`.
fn readable(listener: &TcpListener, timeout_ms: i32) -> bool {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: poll on one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, timeout_ms) > 0 }
}

/// Collects the children that ended; returns how many.
fn reap() -> usize {
    let mut n = 0;
    loop {
        let mut status = 0;
        // SAFETY: waitpid with WNOHANG on any child.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return n;
        }
        n += 1;
    }
}
