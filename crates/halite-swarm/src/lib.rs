//! A swarm of simulated salt-minions: thousands in a process, each behaving on the wire
//! as a real 3006.0–3006.11 (request version 2) or 3006.12+/3007/3008 (version 3) minion does.
//!
//! Owns: per-minion keys (cached, [`keys`]); ZMTP connections (REQ and SUB, through
//! halite-zmtp; the SUB read by a task of its own, as libzmq's I/O thread reads a real
//! minion's, so heartbeats are answered while the minion is busy); the minion's life
//! — `_auth` (retrying while pending), `_pillar` with grains (`roles` from the site's role
//! list), subscribing to publishes, the start event, then for each publish: opening it
//! (re-authenticating when the AES key rotated), minion-side targeting (glob, list, pcre,
//! grain, compound... through `halite-target`), and a `_return` for `test.ping`,
//! `test.sleep`, `grains.get`, `grains.items`, `saltutil.find_job`, `state.apply` (a
//! highstate's worth of state results) and `mine.update` (a `_mine` write of
//! `{"test.echo": <jid>}` first), the `_return` and the `_mine` write sent again if the
//! master does not acknowledge them, as a real minion does; restarts on demand ([`Swarm::restart`]: connections dropped, signed
//! in again as a restarted minion process does); and a [`Report`] of when all were
//! authenticated and ready, and per job when returns went out.
//!
//! Must not: be used by the master, or fake anything a master can observe: every minion has
//! its own key, connections, AES session and replies, as a real one does.

pub mod keys;
pub mod shards;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use halite_proto::minion::{self, AuthAnswer, Channel, ReqVersion};
use halite_proto::payload::{map, Value, ValueExt};
use halite_proto::rsa::{clean_key, PrivateKey, PublicKey};
use halite_target::{matches_one, CachedMinion, Expr, TargetType};
use halite_zmtp::{Connection, Event, SocketType, ZmtpError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Which request protocol the minions speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V2,
    V3,
    /// Alternating: even minions v3, odd ones v2.
    Mixed,
}

impl Protocol {
    pub fn from_name(name: &str) -> Option<Protocol> {
        Some(match name {
            "v2" | "3006" => Protocol::V2,
            "v3" | "3007" | "3008" => Protocol::V3,
            "mixed" => Protocol::Mixed,
            _ => return None,
        })
    }

    /// The name [`Protocol::from_name`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::V2 => "v2",
            Protocol::V3 => "v3",
            Protocol::Mixed => "mixed",
        }
    }

    fn of(self, index: usize) -> ReqVersion {
        match self {
            Protocol::V2 => ReqVersion::V2,
            Protocol::V3 => ReqVersion::V3,
            Protocol::Mixed if index.is_multiple_of(2) => ReqVersion::V3,
            Protocol::Mixed => ReqVersion::V2,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub ret_port: u16,
    pub publish_port: u16,
    pub protocol: Protocol,
    /// Minion ids are `<prefix><n>`; each one's roles come from [`ROLES`] by index.
    pub prefix: String,
    /// Seconds one request waits for its reply (Salt: 60, and 5 for `_auth`).
    pub request_timeout: Duration,
    /// Index of the first minion, so several swarm processes (each under its own
    /// descriptor limit) make one swarm of distinct minions.
    pub first_index: usize,
}

/// The VM-roles document's roles, spread over the swarm in turn.
pub const ROLES: &[&[&str]] = &[
    &["app"],
    &["db"],
    &["db", "masterdb"],
    &["sessions"],
    &["memcache"],
    &["elastic"],
    &["mail"],
    &["blog"],
    &["project"],
    &["notes"],
    &["bots"],
    &["jobrunner"],
    &["accounts"],
    &["source"],
];

/// The grains minion `index` reports.
pub fn grains(id: &str, index: usize, version: ReqVersion) -> Value {
    let roles = ROLES[index % ROLES.len()];
    let saltversion = if version == ReqVersion::V2 { "3006.11" } else { "3007.8" };
    map([
        ("id", Value::from(id)),
        ("roles", Value::Array(roles.iter().map(|r| Value::from(*r)).collect())),
        ("os", Value::from("Debian")),
        ("os_family", Value::from("Debian")),
        ("osrelease", Value::from("12")),
        ("kernel", Value::from("Linux")),
        ("num_cpus", Value::from(2)),
        ("fqdn", Value::from(id)),
        ("ipv4", Value::Array(vec![Value::from(format!("127.0.{}.{}", index / 250 % 250, index % 250 + 1))])),
        ("saltversion", Value::from(saltversion)),
    ])
}

/// What happened to one job, as the swarm saw it.
#[derive(Debug, Clone, Default)]
struct JobSeen {
    fun: String,
    received: usize,
    returned: usize,
    /// Minions restarted after receiving the job and before its return was acknowledged.
    dropped_by_restart: usize,
    /// Which minions' returns were acknowledged, a bit per slot.
    acknowledged: Vec<u64>,
    /// Which minions' `_mine` writes of a `mine.update` were acknowledged, a bit per slot.
    mine_stored: Vec<u64>,
    first_publish: Option<Duration>,
    last_return: Option<Duration>,
}

#[derive(Debug, Default)]
struct Stats {
    authenticated: AtomicUsize,
    ready: AtomicUsize,
    reauths: AtomicUsize,
    /// Sign-ins sent again on a new connection after `auth_timeout`, as a real minion does.
    auth_resends: AtomicUsize,
    /// Returns and `_mine` writes sent again after the master did not acknowledge them in
    /// `request_timeout` (or their connection broke).
    return_resends: AtomicUsize,
    /// Restarts asked for by [`Swarm::restart`] and carried out.
    restarts: AtomicUsize,
    errors: AtomicUsize,
    all_authenticated: Mutex<Option<Duration>>,
    all_ready: Mutex<Option<Duration>>,
    jobs: Mutex<HashMap<String, JobSeen>>,
    error_samples: Mutex<Vec<String>>,
    /// When each minion last became ready (seconds since the swarm started).
    last_ready: Mutex<Vec<Option<Duration>>>,
}

/// A running swarm.
pub struct Swarm {
    started: Instant,
    started_unix: f64,
    count: usize,
    config: Arc<Config>,
    stats: Arc<Stats>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// One per minion: notified, the minion restarts.
    restart: Vec<Arc<tokio::sync::Notify>>,
    /// The next minion [`Swarm::restart`] restarts, so restarts go round the swarm.
    next_restart: AtomicUsize,
}

/// The swarm's figures.
#[derive(Debug, Clone)]
pub struct Report(pub serde_json::Value);

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Swarm {
    /// Starts one task per key on the current tokio runtime.
    pub fn start(config: Config, keys: Vec<PrivateKey>) -> Swarm {
        let started = Instant::now();
        let started_unix = unix_now();
        let count = keys.len();
        let stats = Arc::new(Stats { last_ready: Mutex::new(vec![None; count]), ..Stats::default() });
        let (stop, stopped) = watch::channel(false);
        let config = Arc::new(config);
        let restart: Vec<Arc<tokio::sync::Notify>> = (0..count).map(|_| Arc::default()).collect();
        let tasks = keys
            .into_iter()
            .enumerate()
            .map(|(slot, key)| {
                let index = config.first_index + slot;
                let sim = Sim {
                    index,
                    slot,
                    id: format!("{}{index}", config.prefix),
                    version: config.protocol.of(index),
                    key,
                    config: Arc::clone(&config),
                    stats: Arc::clone(&stats),
                    started,
                    count,
                    restart: Arc::clone(&restart[slot]),
                    in_flight: Mutex::new(None),
                };
                let stopped = stopped.clone();
                tokio::spawn(sim.run(stopped))
            })
            .collect();
        Swarm { started, started_unix, count, config, stats, stop, tasks, restart, next_restart: AtomicUsize::new(0) }
    }

    /// Restarts `count` minions, taking them in turn round the swarm, as if their processes
    /// were restarted: whatever they were doing is dropped with their connections (a return
    /// in flight is neither acknowledged nor sent again), and they sign in anew.
    /// Returns how many were asked to restart.
    pub fn restart(&self, count: usize) -> usize {
        let count = count.min(self.count);
        for _ in 0..count {
            let slot = self.next_restart.fetch_add(1, Ordering::Relaxed) % self.count;
            self.restart[slot].notify_one();
        }
        count
    }

    pub fn ready(&self) -> usize {
        self.stats.ready.load(Ordering::Relaxed)
    }

    /// Waits until every minion is ready (authenticated, pillar received, subscribed).
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.ready() < self.count {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// How many minions became ready (again) at or after `unix` seconds: after a master
    /// restart or an AES rotation, how many are back.
    pub fn ready_since(&self, unix: f64) -> usize {
        let since = Duration::from_secs_f64((unix - self.started_unix).max(0.0));
        locked(&self.stats.last_ready).iter().filter(|at| at.is_some_and(|at| at >= since)).count()
    }

    /// The minions whose return of `jid` the master acknowledged, in slot order.
    pub fn acknowledged(&self, jid: &str) -> Vec<String> {
        self.members(jid, |job| &job.acknowledged)
    }

    /// The minions whose `_mine` write for the `mine.update` job `jid` the master
    /// acknowledged (answered `True`: committed, it says), by id.
    pub fn mine_stored(&self, jid: &str) -> Vec<String> {
        self.members(jid, |job| &job.mine_stored)
    }

    fn members(&self, jid: &str, bits: fn(&JobSeen) -> &Vec<u64>) -> Vec<String> {
        let jobs = locked(&self.stats.jobs);
        let Some(job) = jobs.get(jid) else { return Vec::new() };
        let bits = bits(job);
        (0..self.count)
            .filter(|slot| bits.get(slot / 64).is_some_and(|word| word & (1 << (slot % 64)) != 0))
            .map(|slot| format!("{}{}", self.config.prefix, self.config.first_index + slot))
            .collect()
    }

    /// How many returns the swarm sent for `jid`.
    pub fn returned(&self, jid: &str) -> usize {
        locked(&self.stats.jobs).get(jid).map_or(0, |j| j.returned)
    }

    pub fn report(&self) -> Report {
        let secs = |d: Option<Duration>| d.map_or(serde_json::Value::Null, |d| serde_json::json!(d.as_secs_f64()));
        let mut jobs: Vec<(String, JobSeen)> =
            locked(&self.stats.jobs).iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        jobs.sort_by(|a, b| a.0.cmp(&b.0));
        let jobs: Vec<serde_json::Value> = jobs
            .into_iter()
            .map(|(jid, j)| {
                serde_json::json!({
                    "jid": jid,
                    "fun": j.fun,
                    "received": j.received,
                    "returned": j.returned,
                    "dropped_by_restart": j.dropped_by_restart,
                    "first_publish_s": secs(j.first_publish),
                    "last_return_s": secs(j.last_return),
                    "publish_to_last_return_s": match (j.first_publish, j.last_return) {
                        (Some(a), Some(b)) => serde_json::json!(b.saturating_sub(a).as_secs_f64()),
                        _ => serde_json::Value::Null,
                    },
                })
            })
            .collect();
        Report(serde_json::json!({
            "minions": self.count,
            "processes": 1,
            "started_unix": self.started_unix,
            "authenticated": self.stats.authenticated.load(Ordering::Relaxed),
            "ready": self.ready(),
            "all_authenticated_s": secs(*locked(&self.stats.all_authenticated)),
            "all_ready_s": secs(*locked(&self.stats.all_ready)),
            "reauths": self.stats.reauths.load(Ordering::Relaxed),
            "errors": self.stats.errors.load(Ordering::Relaxed),
            "auth_resends": self.stats.auth_resends.load(Ordering::Relaxed),
            "return_resends": self.stats.return_resends.load(Ordering::Relaxed),
            "restarts": self.stats.restarts.load(Ordering::Relaxed),
            "error_samples": *locked(&self.stats.error_samples),
            "elapsed_s": self.started.elapsed().as_secs_f64(),
            "jobs": jobs,
        }))
    }

    /// Stops every minion and waits for their tasks.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// One simulated minion.
struct Sim {
    index: usize,
    /// Position in this process's swarm.
    slot: usize,
    id: String,
    version: ReqVersion,
    key: PrivateKey,
    config: Arc<Config>,
    stats: Arc<Stats>,
    started: Instant,
    count: usize,
    restart: Arc<tokio::sync::Notify>,
    /// The job received and not yet acknowledged, so a restart can say which it dropped.
    in_flight: Mutex<Option<String>>,
}

/// A ZMTP connection: a TCP stream and its protocol state.
struct Conn {
    stream: TcpStream,
    zmtp: Connection,
}

#[derive(Debug, thiserror::Error)]
enum SimError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Zmtp(#[from] ZmtpError),
    #[error("{0}")]
    Proto(#[from] halite_proto::ProtoError),
    #[error("timed out waiting for the master")]
    Timeout,
    #[error("{0}")]
    Refused(String),
}

/// Largest message a simulated minion accepts (a pillar or publish is far below it).
const MAX_MESSAGE: u64 = 256 << 20;

impl Conn {
    async fn connect(host: &str, port: u16, ours: SocketType, identity: &[u8]) -> Result<Conn, SimError> {
        let stream = TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        let mut conn = Conn { stream, zmtp: Connection::new(ours, identity, MAX_MESSAGE) };
        loop {
            if let Event::Open { .. } = conn.next_event().await? {
                return Ok(conn);
            }
        }
    }

    /// Writes what the protocol has queued (handshake, PONGs, messages).
    async fn flush(&mut self) -> Result<(), SimError> {
        if self.zmtp.has_output() {
            self.stream.write_all(&self.zmtp.take_output()).await?;
        }
        Ok(())
    }

    /// Reads whatever has arrived, without writing anything, so it can be raced against
    /// another connection's read and dropped without corrupting a stream.
    async fn read_some(&mut self) -> Result<(), SimError> {
        let mut buf = [0u8; 16 * 1024];
        let n = self.stream.read(&mut buf).await?;
        if n == 0 {
            return Err(SimError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        self.zmtp.receive(&buf[..n]);
        Ok(())
    }

    /// Handles what has been read (PINGs are answered), and returns the first message.
    async fn drain(&mut self) -> Result<Option<Vec<Vec<u8>>>, SimError> {
        while let Some(event) = self.zmtp.next_event()? {
            if let Event::Message(parts) = event {
                self.flush().await?;
                return Ok(Some(parts));
            }
        }
        self.flush().await?;
        Ok(None)
    }

    async fn next_event(&mut self) -> Result<Event, SimError> {
        loop {
            self.flush().await?;
            if let Some(event) = self.zmtp.next_event()? {
                self.flush().await?;
                return Ok(event);
            }
            self.read_some().await?;
        }
    }

    async fn next_message(&mut self) -> Result<Vec<Vec<u8>>, SimError> {
        loop {
            if let Event::Message(parts) = self.next_event().await? {
                return Ok(parts);
            }
        }
    }

    /// One REQ exchange: the body out, the reply body back.
    async fn request(&mut self, body: &[u8], timeout: Duration) -> Result<Vec<u8>, SimError> {
        self.zmtp.send(&[b"", body]);
        self.flush().await?;
        let parts = tokio::time::timeout(timeout, self.next_message()).await.map_err(|_| SimError::Timeout)??;
        Ok(parts.into_iter().last().unwrap_or_default())
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
const AUTH_TRIES: u32 = 7;
/// Salt's `return_retry_tries`.
const RETURN_TRIES: u32 = 3;

/// Publishes a minion's subscription may hold unread: libzmq's default receive high-water
/// mark, past which it drops.
const SUBSCRIPTION_QUEUE: usize = 1000;

/// A minion's subscription, read by a task of its own, as libzmq's I/O thread reads a real
/// minion's SUB socket: its heartbeat PINGs are answered however long the minion is busy
/// (signing in again in a rotation storm, waiting on a return), so the publisher never
/// closes it for silence. Publishes wait in a bounded queue; the task ends with the
/// connection, and is stopped when this is dropped.
struct Subscription {
    publishes: tokio::sync::mpsc::Receiver<Vec<Vec<u8>>>,
    reader: tokio::task::JoinHandle<SimError>,
}

impl Subscription {
    fn start(sub: Conn) -> Subscription {
        let (tx, publishes) = tokio::sync::mpsc::channel(SUBSCRIPTION_QUEUE);
        Subscription { publishes, reader: tokio::spawn(Subscription::read(sub, tx)) }
    }

    /// Reads until the connection fails; why it failed.
    async fn read(mut sub: Conn, tx: tokio::sync::mpsc::Sender<Vec<Vec<u8>>>) -> SimError {
        loop {
            match sub.drain().await {
                Ok(Some(parts)) => {
                    if let Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) = tx.try_send(parts) {
                        return SimError::Refused("the minion stopped reading its subscription".into());
                    }
                }
                Ok(None) => {
                    if let Err(e) = sub.read_some().await {
                        return e;
                    }
                }
                Err(e) => return e,
            }
        }
    }

    /// The next publish, or why the subscription ended.
    async fn next(&mut self) -> Result<Vec<Vec<u8>>, SimError> {
        match self.publishes.recv().await {
            Some(parts) => Ok(parts),
            None => Err((&mut self.reader)
                .await
                .unwrap_or_else(|e| SimError::Refused(format!("the subscription's reader: {e}")))),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// How the master seals a request's reply.
#[derive(Clone, Copy)]
enum Sealed {
    /// With the minion's session key (or the AES key, for version 2).
    Session,
    /// To the minion's own RSA key, as `_pillar` replies are.
    ToMinion,
}

/// How far one simulated minion has come, across re-authentications.
#[derive(Default)]
struct Progress {
    authenticated: bool,
    ready: bool,
}

/// An authenticated session: what the minion keeps between publishes.
struct Session {
    req: Conn,
    channel: Channel,
    aes: halite_proto::crypticle::Crypticle,
    master_pub: Option<PublicKey>,
}

impl Sim {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut progress = Progress::default();
        loop {
            let attempt = tokio::select! {
                r = self.live(&mut progress) => r,
                _ = self.restart.notified() => {
                    self.stats.restarts.fetch_add(1, Ordering::Relaxed);
                    if let Some(jid) = locked(&self.in_flight).take() {
                        if let Some(job) = locked(&self.stats.jobs).get_mut(&jid) {
                            job.dropped_by_restart += 1;
                        }
                    }
                    Ok(())
                }
                _ = stopped.changed() => return,
            };
            if let Err(e) = attempt {
                self.note_error(&e.to_string());
            }
            // A job an error dropped is not one a restart dropped.
            locked(&self.in_flight).take();
            // A real minion waits `acceptance_wait_time` before it tries again.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn note_error(&self, what: &str) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        let mut samples = locked(&self.stats.error_samples);
        if samples.len() < 10 {
            samples.push(format!("{}: {what}", self.id).chars().take(300).collect());
        }
    }

    fn mark(&self, counter: &AtomicUsize, all: &Mutex<Option<Duration>>) {
        if counter.fetch_add(1, Ordering::Relaxed) + 1 == self.count {
            *locked(all) = Some(self.started.elapsed());
        }
    }

    /// Authenticates, fetches the pillar, subscribes and serves publishes until the
    /// connection breaks or a publish no longer opens (then the caller starts over).
    async fn live(&self, progress: &mut Progress) -> Result<(), SimError> {
        let mut session = self.authenticate().await?;
        if progress.authenticated {
            self.stats.reauths.fetch_add(1, Ordering::Relaxed);
        } else {
            progress.authenticated = true;
            self.mark(&self.stats.authenticated, &self.stats.all_authenticated);
        }
        let grains = grains(&self.id, self.index, self.version);
        let pillar_load = map([
            ("cmd", Value::from("_pillar")),
            ("id", Value::from(self.id.as_str())),
            ("grains", grains.clone()),
            ("saltenv", Value::Nil),
            ("pillarenv", Value::Nil),
            ("pillar_override", map::<_, String>([])),
            ("extra_minion_data", map::<_, String>([])),
            ("ver", Value::from("2")),
        ]);
        self.call_sealed(&mut session, pillar_load, Sealed::ToMinion).await?;
        let mut sub =
            Conn::connect(&self.config.host, self.config.publish_port, SocketType::Sub, self.id.as_bytes()).await?;
        sub.zmtp.subscribe(b"");
        sub.flush().await?;
        let mut subscription = Subscription::start(sub);
        let start = map([
            ("cmd", Value::from("_minion_event")),
            ("id", Value::from(self.id.as_str())),
            ("tag", Value::from(format!("salt/minion/{}/start", self.id))),
            ("data", Value::from(format!("Minion {} started", self.id))),
            ("pretag", Value::Nil),
        ]);
        self.call(&mut session, start).await?;
        if !progress.ready {
            progress.ready = true;
            self.mark(&self.stats.ready, &self.stats.all_ready);
        }
        locked(&self.stats.last_ready)[self.slot] = Some(self.started.elapsed());
        let mut seen: VecDeque<String> = VecDeque::new();
        loop {
            // While waiting for a publish, the request connection is read too, so the
            // master's heartbeat PINGs on it are answered at once, as libzmq does for a real
            // minion (an unanswered connection is closed after heartbeat_timeout). Only
            // reads are raced; replies are written after the race.
            let parts = loop {
                tokio::select! {
                    publish = subscription.next() => break publish?,
                    read = session.req.read_some() => {
                        read?;
                        // Nothing is asked on it now, so a message here is stray: dropped.
                        let _stray = session.req.drain().await?;
                    }
                }
            };
            let Some(frame) = parts.last() else { continue };
            let load = match minion::open_publish(frame, &session.aes, session.master_pub.as_ref()) {
                Ok(load) => load,
                // The AES key rotated. As Salt's pub channel does: authenticate again on a
                // fresh request connection (the subscription stays), then open the same
                // publish with the new key, so the job that revealed the rotation is answered.
                Err(_) => {
                    session = self.authenticate().await?;
                    self.stats.reauths.fetch_add(1, Ordering::Relaxed);
                    locked(&self.stats.last_ready)[self.slot] = Some(self.started.elapsed());
                    match minion::open_publish(frame, &session.aes, session.master_pub.as_ref()) {
                        Ok(load) => load,
                        Err(_) => {
                            self.note_error("a publish does not open even after re-authenticating");
                            continue;
                        }
                    }
                }
            };
            let Some(jid) = load.get_text("jid").map(str::to_owned) else { continue };
            if seen.contains(&jid) || !self.targeted(&load, &grains) {
                continue;
            }
            seen.push_back(jid.clone());
            if seen.len() > 100 {
                seen.pop_front();
            }
            let fun = load.get("fun").map(halite_yaml::py::text).unwrap_or_default();
            self.job_event(&jid, &fun, true);
            *locked(&self.in_flight) = Some(jid.clone());
            if fun == "test.sleep" {
                // Salt's `test.sleep <seconds>`: a job whose returns come later (tests fill a
                // disk in between), at most a minute.
                let secs = load.get("arg").and_then(Value::as_array).and_then(|a| a.first()).map(halite_yaml::py::text);
                let secs = secs.and_then(|s| s.parse::<u64>().ok()).unwrap_or(0).min(60);
                tokio::time::sleep(Duration::from_secs(secs)).await;
            }
            let ret = if fun == "mine.update" {
                Some(self.update_mine(&mut session, &jid).await?)
            } else {
                self.execute(&load, &grains)
            };
            let (value, retcode, success) = match ret {
                Some(v) => (v, 0, true),
                None => (Value::from(format!("'{fun}' is not available.")), 254, false),
            };
            let ret_load = map([
                ("cmd", Value::from("_return")),
                ("id", Value::from(self.id.as_str())),
                ("success", Value::Boolean(success)),
                ("return", value),
                ("retcode", Value::from(retcode)),
                ("jid", Value::from(jid.as_str())),
                ("fun", Value::from(fun.as_str())),
                ("fun_args", load.get("arg").cloned().unwrap_or(Value::Array(vec![]))),
                ("user", load.get("user").cloned().unwrap_or(Value::from("root"))),
            ]);
            self.send_retried(&mut session, ret_load).await?;
            self.job_event(&jid, &fun, false);
            *locked(&self.in_flight) = None;
        }
    }

    fn job_event(&self, jid: &str, fun: &str, published: bool) {
        let at = self.started.elapsed();
        let mut jobs = locked(&self.stats.jobs);
        let job = jobs.entry(jid.to_owned()).or_insert_with(|| JobSeen { fun: fun.to_owned(), ..JobSeen::default() });
        if published {
            job.received += 1;
            job.first_publish.get_or_insert(at);
        } else {
            job.returned += 1;
            set_bit(&mut job.acknowledged, self.slot);
            job.last_return = Some(at.max(job.last_return.unwrap_or_default()));
        }
    }

    /// Salt's `mine.update` with `mine_functions: {test.echo: [<jid>]}`: a `_mine` write,
    /// sent until acknowledged; the master's answer is the job's return.
    async fn update_mine(&self, session: &mut Session, jid: &str) -> Result<Value, SimError> {
        let load = map([
            ("cmd", Value::from("_mine")),
            ("id", Value::from(self.id.as_str())),
            ("data", map([("test.echo", Value::from(jid))])),
            ("clear", Value::Boolean(false)),
        ]);
        let reply = self.send_retried(session, load).await?;
        if reply == Value::Boolean(true) {
            let mut jobs = locked(&self.stats.jobs);
            set_bit(&mut jobs.entry(jid.to_owned()).or_default().mine_stored, self.slot);
        }
        Ok(reply)
    }

    /// Sends a request that changes the master's state (a `_return`, a `_mine` write) until
    /// it is acknowledged, `RETURN_TRIES` times at most, as a real minion's request channel
    /// does (`return_retry_tries`): after a timeout, or a connection that broke (a master
    /// restarting; a real minion only notices its timeout, so the swarm waits as long), it
    /// connects again and sends the request again.
    async fn send_retried(&self, session: &mut Session, load: Value) -> Result<Value, SimError> {
        let mut tries = 1;
        loop {
            match self.call(session, load.clone()).await {
                Err(e @ (SimError::Timeout | SimError::Io(_) | SimError::Zmtp(_))) if tries < RETURN_TRIES => {
                    tries += 1;
                    self.stats.return_resends.fetch_add(1, Ordering::Relaxed);
                    let timed_out = matches!(e, SimError::Timeout);
                    if !timed_out {
                        tokio::time::sleep(self.config.request_timeout).await;
                    }
                    match Conn::connect(&self.config.host, self.config.ret_port, SocketType::Req, b"").await {
                        Ok(req) => session.req = req,
                        // A connection that timed out may still bring the old reply, which
                        // would answer the next request: never send on it again.
                        Err(e) if timed_out => return Err(e),
                        // A broken one fails the next try at once.
                        Err(_) => {}
                    }
                }
                other => return other,
            }
        }
    }

    /// One encrypted request. A reply that fails authentication (the master rotated its key
    /// while the request was on its way, and answered `bad load` or under the new key) makes the
    /// minion sign in again and send the request once more, as Salt's `_crypted_transfer`
    /// does on an `AuthenticationError`.
    async fn call(&self, session: &mut Session, load: Value) -> Result<Value, SimError> {
        self.call_sealed(session, load, Sealed::Session).await
    }

    /// [`Sim::call`] for a reply sealed as `sealed` says.
    async fn call_sealed(&self, session: &mut Session, load: Value, sealed: Sealed) -> Result<Value, SimError> {
        match self.transfer(session, load.clone(), sealed).await? {
            Err(halite_proto::ProtoError::Authentication) => {}
            opened => return Ok(opened?),
        }
        *session = self.authenticate().await?;
        self.stats.reauths.fetch_add(1, Ordering::Relaxed);
        locked(&self.stats.last_ready)[self.slot] = Some(self.started.elapsed());
        Ok(self.transfer(session, load, sealed).await??)
    }

    /// Seals `load`, sends it and waits for the reply; the inner result is the reply opened.
    /// A `bad load` answer (what Salt's master says to a request it cannot decrypt) counts
    /// as a reply that failed authentication, as it does for Salt's minion.
    async fn transfer(
        &self,
        session: &mut Session,
        load: Value,
        sealed: Sealed,
    ) -> Result<Result<Value, halite_proto::ProtoError>, SimError> {
        let nonce = minion::nonce()?;
        let body = session.channel.seal(load, &nonce, now_secs())?;
        let reply = session.req.request(&body, self.config.request_timeout).await?;
        if halite_proto::payload::decode(&reply).is_ok_and(|v| v.as_text() == Some("bad load")) {
            return Ok(Err(halite_proto::ProtoError::Authentication));
        }
        Ok(match sealed {
            Sealed::Session => session.channel.open(&reply, &nonce),
            Sealed::ToMinion => Channel::open_private(&reply, &self.key, &nonce, session.master_pub.as_ref()),
        })
    }

    async fn authenticate(&self) -> Result<Session, SimError> {
        let pub_pem = clean_key(&String::from_utf8_lossy(&self.key.public_key()?.to_spki_pem()?));
        let connect = || Conn::connect(&self.config.host, self.config.ret_port, SocketType::Req, b"");
        let mut req = connect().await?;
        let mut tries = 0;
        loop {
            let body = minion::auth_request(&self.id, &pub_pem, &minion::nonce()?);
            // A real minion (3007's zeromq RequestClient) waits `auth_timeout`, then closes
            // the socket, connects again and re-sends, `auth_tries` times. The swarm does the
            // same, so an overloaded master sees the duplicate sign-ins real minions send.
            let reply = match req.request(&body, AUTH_TIMEOUT).await {
                Err(SimError::Timeout) if tries + 1 < AUTH_TRIES => {
                    tries += 1;
                    self.stats.auth_resends.fetch_add(1, Ordering::Relaxed);
                    req = connect().await?;
                    continue;
                }
                other => other?,
            };
            tries = 0;
            match minion::read_auth_reply(&reply, &self.key) {
                AuthAnswer::Accepted { aes, session, master_pub, .. } => {
                    let channel = Channel::new(&self.id, self.version, &aes, &session, &self.key)?;
                    let master_pub = PublicKey::from_pem(master_pub.as_bytes()).ok();
                    return Ok(Session { req, channel, aes, master_pub });
                }
                // acceptance_wait_time: a pending minion asks again.
                AuthAnswer::Pending => tokio::time::sleep(Duration::from_secs(1)).await,
                other => return Err(SimError::Refused(format!("_auth: {other:?}"))),
            }
        }
    }

    /// Minion-side targeting, as `Minion._target_load` does it.
    fn targeted(&self, load: &Value, grains: &Value) -> bool {
        let Some(tgt) = load.get("tgt") else { return false };
        let tgt_type = load.get_text("tgt_type").unwrap_or("glob");
        let Some(tgt_type) = TargetType::from_name(tgt_type) else { return false };
        let delimiter = load.get_text("delimiter").unwrap_or(":");
        let data = CachedMinion { grains: Some(grains), pillar: None };
        matches_one(&self.id, data, &Expr::from_value(tgt), tgt_type, delimiter, &[]).unwrap_or(false)
    }

    /// The functions a simulated minion runs; `None` for any other.
    fn execute(&self, load: &Value, grains: &Value) -> Option<Value> {
        let fun = load.get_text("fun")?;
        let args = load.get("arg").and_then(Value::as_array).cloned().unwrap_or_default();
        Some(match fun {
            "test.ping" => Value::Boolean(true),
            "grains.items" => grains.clone(),
            "grains.get" => {
                let key = args.first().map(halite_yaml::py::text).unwrap_or_default();
                halite_target::subdict::traverse(grains, &key, ":")
                    .cloned()
                    .unwrap_or_else(|| args.get(1).cloned().unwrap_or(Value::from("")))
            }
            "saltutil.find_job" => map::<_, String>([]),
            "state.apply" | "state.highstate" => highstate(),
            "test.sleep" => Value::Boolean(true),
            _ => return None,
        })
    }
}

/// States in a simulated highstate: about what one of the site's VMs applies.
const HIGHSTATE_STATES: usize = 40;

fn set_bit(bits: &mut Vec<u64>, slot: usize) {
    if bits.len() <= slot / 64 {
        bits.resize(slot / 64 + 1, 0);
    }
    bits[slot / 64] |= 1 << (slot % 64);
}

/// What `state.apply` returns: one result per state, in Salt's shape (about 12 KB packed).
fn highstate() -> Value {
    Value::Map(
        (0..HIGHSTATE_STATES)
            .map(|n| {
                let path = format!("/etc/webplatform/site-{n:02}.conf");
                let key = format!("file_|-site_config_{n:02}_|-{path}_|-managed");
                let result = map([
                    ("name", Value::from(path)),
                    ("changes", map::<_, String>([])),
                    ("result", Value::Boolean(true)),
                    ("comment", Value::from("The file is in the correct state")),
                    ("__sls__", Value::from(format!("site.role{}", n % 7))),
                    ("__run_num__", Value::from(n)),
                    ("start_time", Value::from(format!("12:00:{:02}.{:06}", n % 60, n * 1_237))),
                    ("duration", Value::F64(1.5 + n as f64 / 8.0)),
                    ("__id__", Value::from(format!("site_config_{n:02}"))),
                ]);
                (Value::from(key), result)
            })
            .collect(),
    )
}
