//! `halite-jumpbox -c /etc/halite/jumpbox.yaml`: the SSH jump host of the salt VM.
//!
//! Reads the config and host keys, listens, and serves connections ([`daemon`]). SIGHUP
//! re-reads the config and the banner; connections and forwards already open keep going
//! (a changed `listen`, `host_keys` or `max_startups` needs a restart, and says so).
//! `authorized_keys` files are read at every sign-in, as sshd reads them, so a key the
//! users state adds or removes counts from the next sign-in on.
//!
//! Every log line a peer can cause goes through `halite_ratelog::peer_warn!`.

mod daemon;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context;
use clap::Parser;
use halite_jumpbox::config::{Config, DEFAULT_PATH};
use halite_jumpbox::throttle::Throttle;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

use daemon::audit_log::AuditLog;
use daemon::{Live, Shared};

#[derive(Parser)]
#[command(version, about = "The salt VM's SSH jump host: forwarding only, for the stock OpenSSH client")]
struct Args {
    /// The configuration file.
    #[arg(short = 'c', long, default_value = DEFAULT_PATH)]
    config: PathBuf,
    /// Check the configuration and host keys, then exit (as `sshd -t`).
    #[arg(short = 't', long)]
    check: bool,
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (config, warnings) =
        Config::parse(&text).with_context(|| format!("{}: invalid configuration", path.display()))?;
    for warning in warnings {
        warn!("{}: {warning}", path.display());
    }
    Ok(config)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();

    let config = load(&args.config)?;
    let keys = daemon::keys::host_keys(&config.host_keys)?;
    let live = Live::load(config)?;
    if args.check {
        println!("{}: configuration and {} host keys read", args.config.display(), keys.len());
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(args.config, live, keys))
}

async fn serve(path: PathBuf, live: Live, keys: Vec<russh::keys::PrivateKey>) -> anyhow::Result<()> {
    let config = &live.config;
    let mut listeners = Vec::new();
    for addr in &config.listen {
        let listener = TcpListener::bind(addr).await.with_context(|| format!("listen: binding {addr}"))?;
        info!("listening on {}", listener.local_addr()?);
        listeners.push(listener);
    }
    let shared = Arc::new(Shared {
        ssh: Arc::new(daemon::ssh_config(config, keys)),
        throttle: Mutex::new(Throttle::new(config.throttle)),
        startups: Arc::new(Semaphore::new(config.max_startups)),
        forwards: Mutex::new(Default::default()),
        audit: AuditLog::open(config.audit_log.as_deref())?,
        live: RwLock::new(Arc::new(live)),
    });
    for listener in listeners {
        tokio::spawn(daemon::accept_loop(shared.clone(), listener));
    }
    let flusher = shared.clone();
    tokio::spawn(async move {
        // The counts of log lines and audit records rate limits left out, once their
        // window ends.
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            halite_ratelog::PEERS.flush();
            flusher.audit.flush();
        }
    });
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = hangup.recv() => reload(&shared, &path),
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    info!("stopping");
    Ok(())
}

fn reload(shared: &Shared, path: &std::path::Path) {
    let config = match load(path) {
        Ok(config) => config,
        Err(e) => {
            error!("reload: {e:#}; the running configuration stays");
            return;
        }
    };
    let old = shared.live();
    for (key, changed) in [
        ("listen", old.config.listen != config.listen),
        ("host_keys", old.config.host_keys != config.host_keys),
        ("max_startups", old.config.max_startups != config.max_startups),
        ("audit_log", old.config.audit_log != config.audit_log),
        (
            "max_auth_tries, keepalive_interval, keepalive_max",
            old.config.max_auth_tries != config.max_auth_tries
                || old.config.keepalive_interval != config.keepalive_interval
                || old.config.keepalive_max != config.keepalive_max,
        ),
    ] {
        if changed {
            warn!("reload: {key} changed; that takes a restart");
        }
    }
    let live = match Live::load(config) {
        Ok(live) => live,
        Err(e) => {
            error!("reload: {e:#}; the running configuration stays");
            return;
        }
    };
    shared.throttle.lock().unwrap_or_else(|e| e.into_inner()).reconfigure(live.config.throttle);
    *shared.live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(live);
    info!("reloaded {}", path.display());
}
