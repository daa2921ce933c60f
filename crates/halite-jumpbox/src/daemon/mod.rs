//! The daemon around the pure modules: the listening sockets, one russh session per
//! connection, and what the connections share (the config of the moment, the throttle,
//! the open-forward counts, the audit log).
//!
//! A connection's life:
//! 1. accepted; dropped unread if its source is banned or `max_startups` connections are
//!    still signing in (each holds a permit until it authenticates);
//! 2. signs in with a public key from the user's `authorized_keys` within
//!    `login_grace_time`, or is closed and counted as a failure for its source;
//! 3. opens forwards ([`handler`]), each in its own task that resolves once, connects to a
//!    checked address, then copies both ways until either side closes;
//! 4. on close, every forward it still has is stopped, writes its audit line, and the
//!    connection's own line follows.

pub mod audit_log;
pub mod handler;
pub mod io;
pub mod keys;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use halite_ratelog::peer_warn;
use russh::server::Config as SshConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};

use crate::daemon::io::Cancellable;
use tracing::{info, warn, Instrument};

use crate::daemon::audit_log::AuditLog;
use crate::daemon::handler::Connection;
use halite_jumpbox::audit::{Event, Record};
use halite_jumpbox::config::Config;
use halite_jumpbox::throttle::{Admission, Throttle};

/// What a reload replaces whole.
pub struct Live {
    pub config: Config,
    pub banner: Option<String>,
}

impl Live {
    /// The config with its banner read (a missing one is logged and left out), once the
    /// CA file it names reads: it is read again at each certificate's sign-in, as sshd
    /// reads `TrustedUserCAKeys`, but a broken one is better found at start or reload.
    pub fn load(config: Config) -> anyhow::Result<Live> {
        if let Some(path) = &config.trusted_user_ca_keys {
            keys::authorities(path).map_err(|e| anyhow::anyhow!("trusted_user_ca_keys: {e}"))?;
        }
        Ok(Live { banner: read_banner(&config), config })
    }
}

/// What every connection shares.
pub struct Shared {
    pub live: RwLock<Arc<Live>>,
    pub throttle: Mutex<Throttle>,
    pub startups: Arc<Semaphore>,
    /// Open forwards per user, across connections (`max_channels_per_user`).
    pub forwards: Mutex<HashMap<String, usize>>,
    pub audit: AuditLog,
    pub ssh: Arc<SshConfig>,
}

impl Shared {
    pub fn live(&self) -> Arc<Live> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Reads the banner file; a missing banner is logged and left out, not fatal.
pub fn read_banner(config: &Config) -> Option<String> {
    let path = config.banner.as_ref()?;
    match std::fs::read(path) {
        // The banner goes to clients' terminals: it is text, and not a large one.
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes[..bytes.len().min(64 * 1024)]).into_owned()),
        Err(e) => {
            warn!(path = %path.display(), "banner not read: {e}");
            None
        }
    }
}

pub fn ssh_config(config: &Config, keys: Vec<russh::keys::PrivateKey>) -> SshConfig {
    use russh::keys::{Algorithm, EcdsaCurve, HashAlg};
    use russh::{cipher, MethodKind, MethodSet, Preferred};
    use std::borrow::Cow;
    let preferred = Preferred {
        // OpenSSH's own server order; SHA-1 host-key signatures (plain `ssh-rsa`) are not
        // offered, as OpenSSH 8.8 stopped offering them.
        key: Cow::Owned(vec![
            Algorithm::Ed25519,
            Algorithm::Ecdsa { curve: EcdsaCurve::NistP256 },
            Algorithm::Ecdsa { curve: EcdsaCurve::NistP384 },
            Algorithm::Ecdsa { curve: EcdsaCurve::NistP521 },
            Algorithm::Rsa { hash: Some(HashAlg::Sha512) },
            Algorithm::Rsa { hash: Some(HashAlg::Sha256) },
        ]),
        cipher: Cow::Borrowed(&[
            cipher::CHACHA20_POLY1305,
            cipher::AES_128_CTR,
            cipher::AES_192_CTR,
            cipher::AES_256_CTR,
            cipher::AES_128_GCM,
            cipher::AES_256_GCM,
        ]),
        ..Preferred::DEFAULT
    };
    SshConfig {
        server_id: russh::SshId::Standard(Cow::Owned(format!("SSH-2.0-halite-jumpbox_{}", env!("CARGO_PKG_VERSION")))),
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        // Public-key refusals tell nothing a delay would hide (the server answers a key
        // probe either way, as sshd does), and OpenSSH clients probe with `none` and with
        // every agent key before the right one: a delay per refusal would only slow
        // every honest sign-in.
        auth_rejection_time: Duration::ZERO,
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys,
        // russh counts the client's opening `none` request as an attempt; sshd does not.
        max_auth_attempts: config.max_auth_tries + 1,
        // Keepalive replies reset russh's own timer, so it cannot time unused connections:
        // the daemon does (`idle_timeout`). It stays as a backstop for what keepalives do
        // not catch (no keepalives configured; russh busy writing to a dead peer).
        inactivity_timeout: Some(backstop(config)),
        keepalive_interval: config.keepalive_interval,
        keepalive_max: config.keepalive_max,
        nodelay: true,
        preferred,
        ..SshConfig::default()
    }
}

/// Silence after which russh drops a connection: longer than the keepalives take to find
/// a dead peer, and than `idle_timeout`.
fn backstop(config: &Config) -> Duration {
    let keepalives = config.keepalive_interval.map_or(Duration::ZERO, |i| i * (config.keepalive_max as u32 + 2));
    keepalives.max(config.idle_timeout)
}

/// A connection closed unread: its audit line, which the journal gets too, rate-limited
/// per source (a banned source may reconnect as fast as it likes).
fn dropped(shared: &Shared, peer: SocketAddr, kind: &'static str, reason: String) {
    let record = Record { refused: Some(reason), ..Record::new(Event::Connection, peer, SystemTime::now()) };
    shared.audit.limited(kind, peer.ip(), record);
}

/// Accepts on one listening socket until the process ends.
pub async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                peer_warn!("ssh accept", None, "accepting a connection: {e}");
                // EMFILE and the like: give the process a moment rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let admission = shared.throttle.lock().unwrap_or_else(|e| e.into_inner()).admit(peer.ip(), Instant::now());
        if let Admission::Banned(left) = admission {
            let reason = format!("banned after failed sign-ins ({}s more)", left.as_secs());
            dropped(&shared, peer, "banned", reason);
            continue;
        }
        let Ok(permit) = shared.startups.clone().try_acquire_owned() else {
            dropped(&shared, peer, "max_startups", "max_startups reached".to_owned());
            continue;
        };
        let span = tracing::info_span!("conn", %peer);
        tokio::spawn(serve(shared.clone(), stream, peer, permit).instrument(span));
    }
}

async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, permit: OwnedSemaphorePermit) {
    let started = Instant::now();
    let (grace, idle_timeout) = {
        let live = shared.live();
        (live.config.login_grace_time, live.config.idle_timeout)
    };
    let _ = stream.set_nodelay(true);
    let (cancel, cancelled) = watch::channel(false);
    let stream = Cancellable::new(stream, cancelled);
    let (signed_in_tx, mut signed_in_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = Arc::new(Mutex::new(handler::State::new()));
    let handler = Connection::new(shared.clone(), peer, state.clone(), signed_in_tx, stop_rx);
    // Held here, not by the handler: russh's session task may outlive a connection the
    // daemon has given up on, and the permit must go back at the deadline.
    let mut permit = Some(permit);
    let mut closed_by_us: Option<String> = None;
    let outcome =
        match tokio::time::timeout(grace, russh::server::run_stream(shared.ssh.clone(), stream, handler)).await {
            Err(_) => Err("login grace time over before the version exchange".to_owned()),
            Ok(Err(e)) => Err(format!("{e}")),
            Ok(Ok(session)) => {
                let deadline = tokio::time::sleep(grace.saturating_sub(started.elapsed()));
                tokio::pin!(session, deadline);
                let tick = idle_timeout.min(Duration::from_secs(10)).max(Duration::from_millis(100));
                let mut idle_check = tokio::time::interval(tick);
                let mut waiting_sign_in = true;
                loop {
                    tokio::select! {
                        ended = &mut session => break ended.map_err(|e| format!("{e}")),
                        signed = &mut signed_in_rx, if waiting_sign_in => {
                            waiting_sign_in = false;
                            if signed.is_ok() {
                                permit = None;
                            }
                        }
                        () = &mut deadline, if permit.is_some() && closed_by_us.is_none() => {
                            closed_by_us = Some("login grace time over".to_owned());
                            permit = None;
                            let _ = cancel.send(true);
                        }
                        _ = idle_check.tick(), if permit.is_none() && closed_by_us.is_none() => {
                            let idle = state.lock().unwrap_or_else(|e| e.into_inner()).idle_for();
                            if idle.is_some_and(|d| d >= idle_timeout) {
                                info!("closing: no channel open for {}s (idle_timeout)", idle_timeout.as_secs());
                                closed_by_us = Some("idle_timeout".to_owned());
                                let _ = cancel.send(true);
                            }
                        }
                    }
                }
            }
        };
    drop(permit);
    // Only the task handles are taken: the forwards still hold guards on the state's
    // channel count until they end.
    let forwards = std::mem::take(&mut state.lock().unwrap_or_else(|e| e.into_inner()).forwards);
    let _ = stop_tx.send(true);
    for forward in forwards {
        let _ = forward.await;
    }
    let state = state.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = match closed_by_us {
        Some(why) => Err(why),
        None => outcome,
    };
    let mut record =
        Record::new(Event::Connection, peer, SystemTime::now()).user(state.user.as_deref()).lasted(started.elapsed());
    record.key = state.key.clone();
    if !state.signed_in {
        let reason = match (&outcome, state.refusal.as_deref()) {
            (_, Some(why)) => why.to_owned(),
            (Err(e), None) => e.clone(),
            (Ok(()), None) => "closed before signing in".to_owned(),
        };
        // A connection that tried to sign in, or sat out the grace time, counts against
        // its source; a port scan that only exchanged versions does not.
        if state.tried || reason.starts_with("login grace") {
            let banned = shared.throttle.lock().unwrap_or_else(|e| e.into_inner()).failed(peer.ip(), Instant::now());
            if banned {
                let ban = shared.live().config.throttle.ban;
                warn!("{} banned for {}s after repeated failed sign-ins", peer.ip(), ban.as_secs());
            }
        }
        record.refused = Some(reason);
    } else if let Err(e) = &outcome {
        info!("connection ended: {e}");
    }
    shared.audit.write(&record);
}
