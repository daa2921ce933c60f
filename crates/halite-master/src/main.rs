//! `halite-master`: the binary edge. Reads Salt's master config, opens the pki dir and the
//! store, starts the publisher process (4505), binds the request socket (4506) and serves
//! until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use halite_zmq::{bind_router, listen_addr, SocketOptions};
use tracing::{info, warn};

use halite_master::master::{self, Master};
use halite_master::{address_book, clear, event_pub, events, local, reactor, workers};

mod publish_process;

#[derive(Parser, Debug)]
#[command(name = "halite-master", version, about = "A Salt master for unmodified salt-minions")]
struct Args {
    /// Salt's configuration directory: reads DIR/master and DIR/master.d/*.conf. Without it,
    /// halite runs on embedded defaults (127.0.0.1, data under ./.halite, this repo's
    /// states/ and pillar/).
    #[arg(short = 'c', long = "config-dir")]
    config_dir: Option<PathBuf>,
    /// Overrides log_level (quiet, critical, error, warning, info, debug, trace, all).
    #[arg(short = 'l', long = "log-level")]
    log_level: Option<String>,
    /// Internal: run as the master's publisher process (started by the master itself).
    #[arg(long = "publisher", hide = true)]
    publisher: bool,
}

fn main() -> anyhow::Result<()> {
    limit_malloc_arenas();
    let args = Args::parse();
    let (config, warnings) = halite_config::MasterConfig::load(args.config_dir.as_deref())?;
    let level = args.log_level.as_deref().unwrap_or(&config.log_level).to_owned();
    init_logging(&level, &config.log_file)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    runtime.spawn(return_freed_memory());
    if args.publisher {
        // The parent has already warned about the config.
        let addr = listen_addr(&config.interface, config.publish_port)?;
        return runtime.block_on(publish_process::run_child(addr, socket_options(&config)));
    }
    for w in &warnings {
        warn!("{w}");
    }
    let child = publish_process::ChildCommand { config_dir: args.config_dir, log_level: args.log_level };
    runtime.block_on(serve(config, child))
}

/// glibc gives each thread that allocates its own arena (up to 8 per core) and keeps what is
/// freed in it; with a worker pool, the runtime and the publish thread all allocating, the
/// master held 14 MB more after a few 10,000-minion jobs (swarm benchmark: RSS 151 MB with
/// the default, 137 MB with two arenas, no change in latency). `MALLOC_ARENA_MAX` in the
/// environment still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only adjusts allocator parameters; it is called before any thread
        // is spawned, as glibc asks.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// How often freed heap memory goes back to the system ([`return_freed_memory`]).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// glibc returns freed memory to the system only from the top of each arena; what a storm
/// of sign-ins or returns freed below live allocations stays in the process. `malloc_trim`
/// gives those pages back (`MADV_DONTNEED`): with 10,000 minions connected after six jobs,
/// 135 MiB (master and publisher) became 108 MiB. A call took 0.12 ms (median) and 17 ms at
/// most, just after a storm, holding each arena's lock meanwhile (docs/decisions.md, "Freed
/// memory goes back every 10 seconds").
#[cfg(all(target_os = "linux", target_env = "gnu"))]
async fn return_freed_memory() {
    let mut tick = tokio::time::interval(TRIM_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // SAFETY: malloc_trim only walks the allocator's own free lists, under its locks.
        let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
    }
}

fn socket_options(config: &halite_config::MasterConfig) -> SocketOptions {
    SocketOptions {
        // Salt binds dual-stack only when asked, or when the interface is itself IPv6.
        ipv6: config.ipv6.unwrap_or_else(|| config.interface.contains(':')),
        backlog: config.zmq_backlog,
        pub_hwm: config.pub_hwm.max(1) as usize,
        ..SocketOptions::default()
    }
}

/// Logs go to stderr (for systemd and terminals) and to `log_file`, as Salt's do, with Salt's
/// level names mapped onto tracing's; `RUST_LOG` still wins when set.
fn init_logging(salt_level: &str, log_file: &str) -> anyhow::Result<()> {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    let level = match salt_level {
        "quiet" | "critical" | "error" => "error",
        "warning" => "warn",
        "info" | "profile" => "info",
        "debug" => "debug",
        "trace" | "garbage" | "all" => "trace",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},redb=warn")));
    // Salt accepts syslog and network URLs here; halite logs those to stderr only.
    let file = if log_file.contains("://") {
        None
    } else {
        let path = std::path::Path::new(log_file);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("log_file: creating {}", dir.display()))?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("log_file: opening {log_file}"))?;
        Some(std::sync::Mutex::new(f))
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    match file {
        Some(f) => builder.with_writer(std::io::stderr.and(f)).with_ansi(false).init(),
        None => builder.init(),
    }
    Ok(())
}

async fn serve(config: halite_config::MasterConfig, publisher: publish_process::ChildCommand) -> anyhow::Result<()> {
    for dir in [&config.pki_dir, &config.cachedir, &config.sock_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let pki = halite_pki::PkiDir::open(&config.pki_dir)?;
    let keys = halite_pki::MasterKeys::load_or_create(&pki, config.keysize)?;
    let store = halite_store::Store::open(&config.cachedir.join("halite.redb"))?;
    let opened = store.opened();
    if opened.full_repair {
        warn!(file = %store.path().display(), seconds = opened.took.as_secs_f64(),
            "the store was not closed cleanly (the master was killed or the machine stopped): redb checked every page of it before the master could start");
    } else {
        info!(file = %store.path().display(), seconds = opened.took.as_secs_f64(), "store opened");
    }
    let settings = master::Settings::from_config(&config)?;
    let user_keys = clear::UserKeys::load_or_create(&config.cachedir, &local_users(config.user.as_deref()))?;

    let (publisher, publish) = publish_process::PublishProcess::start(publisher)?;
    let master = Arc::new(Master::new(settings, keys, pki, store, user_keys, publish)?);
    master.import_salt_cache();
    // The stock `salt` CLI refuses to publish unless this path exists (it predates the TCP
    // request channel it actually uses).
    let marker = config.sock_dir.join("publish_pull.ipc");
    if !marker.exists() {
        std::fs::write(&marker, b"").with_context(|| format!("creating {}", marker.display()))?;
    }
    tokio::spawn(events::journal(master.events().subscribe()));
    let _reactor =
        reactor::start(master.clone(), reactor::Settings::from_config(&config)).context("starting the reactor")?;
    let (local_listener, local_path) = local::bind(&config.sock_dir)?;
    let local_server = tokio::spawn(local::serve(local_listener, master.clone()));
    let (event_listener, event_path) = event_pub::bind(&config.sock_dir)?;
    let event_server = tokio::spawn(event_pub::serve(event_listener, master.events().clone()));
    // halite-dns and halite-jumpbox read these files instead of holding a credential to the
    // local channel.
    let files =
        address_book::Files { address_book: config.dns_address_book.clone(), roster: config.jumpbox_roster.clone() };
    let address_book = (files.address_book.is_some() || files.roster.is_some())
        .then(|| tokio::spawn(address_book::run(master.clone(), files)));
    let mut router = bind_router(listen_addr(&config.interface, config.ret_port)?, &socket_options(&config))?;
    info!(pki_dir = %config.pki_dir.display(), "halite master ready");

    let maintenance = {
        let master = master.clone();
        let keep_jobs = Duration::from_secs(config.keep_jobs_seconds);
        let loop_interval = Duration::from_secs_f64(config.loop_interval.max(1.0));
        tokio::spawn(async move {
            // Salt looks for the dropfile every loop_interval (60 s); a stat per second costs
            // nothing and closes the window in which a deleted minion still reads publishes.
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut last_cleanup = tokio::time::Instant::now();
            loop {
                tick.tick().await;
                let m = master.clone();
                let clean = !keep_jobs.is_zero() && last_cleanup.elapsed() >= loop_interval;
                if clean {
                    last_cleanup = tokio::time::Instant::now();
                }
                let _ = tokio::task::spawn_blocking(move || {
                    // Summaries of the warnings peers caused beyond their budget.
                    halite_ratelog::PEERS.flush();
                    m.maintain_aes_key();
                    if clean {
                        m.expire_jobs(keep_jobs);
                    }
                })
                .await;
            }
        })
    };

    let workers = workers::Workers::start(config.worker_threads as usize, master.clone(), router.replier.clone())?;
    let serve_requests = async {
        while let Some(request) = router.requests.recv().await {
            workers.submit(request).await;
        }
    };

    tokio::select! {
        _ = serve_requests => warn!("request server stopped"),
        _ = shutdown_signal() => info!("shutting down"),
    }
    maintenance.abort();
    local_server.abort();
    event_server.abort();
    if let Some(task) = address_book {
        task.abort();
    }
    let _ = std::fs::remove_file(&local_path);
    let _ = std::fs::remove_file(&event_path);
    // Requests in the workers' queue are answered before the sockets close; those still in
    // the request socket's queue or waiting in their connections go with the connections,
    // and their minions send them again to the next master.
    tokio::task::spawn_blocking(move || workers.shutdown()).await?;
    router.shutdown().await;
    tokio::task::spawn_blocking(move || publisher.shutdown()).await?;
    info!("halite master stopped");
    Ok(())
}

/// Users that get a `.<user>_key` in cachedir: the master's `user` (Salt's default is root)
/// and whoever runs the daemon.
fn local_users(configured: Option<&str>) -> Vec<String> {
    let mut users = vec![configured.unwrap_or("root").to_owned()];
    if let Ok(me) = std::env::var("USER") {
        if !users.contains(&me) {
            users.push(me);
        }
    }
    users
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
