//! The master's state ([`Master`], shared by every request worker, the local channel, the
//! reactor and the maintenance loop), its settings, and the handlers of `_auth`, `_pillar`
//! and `_minion_event`. The request path that reaches them (parse, `minimum_auth_version`,
//! open, prove the caller, the command table) is `dispatch.rs` and `command.rs`.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use halite_pki::{AuthDecision, AuthPolicy, MasterKeys, PkiDir};
use halite_proto::auth::{self, AcceptReply, Acceptance, AuthRequest, AuthStatus};
use halite_proto::crypticle::Crypticle;
use halite_proto::payload::{self, map, Value, ValueExt};
use halite_proto::request::{self, OpenedRequest, Refusal};
use halite_proto::rsa::{PublicKey, SigAlgo};
use halite_proto::{pillar, publish};
use halite_ratelog::{peer_warn, shown};
use halite_store::{MinionData, Store};
use tracing::{debug, error, info, warn};

use crate::aes::AesKey;
use crate::budget::{self, NewKeys, TokenBucket};
use crate::clear::UserKeys;
use crate::command::{Caller, Outcome};
use crate::dispatch::PrivateAlgos;
use crate::events::EventBus;

/// What the master needs from its configuration, resolved once at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `id` option, else `<hostname>_master`: who the master is to the mine's ACLs.
    pub master_id: String,
    pub publish_port: u16,
    pub cachedir: PathBuf,
    pub max_minions: usize,
    pub sign_pub_messages: bool,
    pub publish_signing_algorithm: SigAlgo,
    pub publish_session: u64,
    pub ping_on_rotate: bool,
    pub request_server_ttl: u64,
    /// Requests of an older protocol version are answered `bad load` (0: none are).
    pub minimum_auth_version: u8,
    pub auth_events: bool,
    pub policy: AuthPolicy,
    /// Name → compound target, as in the config.
    pub nodegroups: Vec<(String, Value)>,
    /// Salt's `hash_type`, which also names job directories in Salt's job cache layout.
    pub hash_type: String,
    pub fileserver: halite_fileserver::Settings,
    pub pillar: halite_pillar::Settings,
    pub mine: crate::mine::MineSettings,
    /// The options `_master_opts` sends minions besides `file_roots`: those that decide how
    /// a minion compiles its highstate (top merging, renderer, Jinja settings, nodegroups).
    pub master_opts: Value,
    /// `peer`, `peer_run` and what master-side runners read.
    pub peer: crate::peer::PeerSettings,
}

impl Settings {
    /// Resolves the options the request path reads; a bad value names its key.
    pub fn from_config(c: &halite_config::MasterConfig) -> anyhow::Result<Self> {
        let publish_signing_algorithm = SigAlgo::from_name(&c.publish_signing_algorithm).ok_or_else(|| {
            anyhow::anyhow!(
                "publish_signing_algorithm: {:?} is not one of PKCS1v15-SHA1, PKCS1v15-SHA224",
                c.publish_signing_algorithm
            )
        })?;
        Ok(Self {
            master_id: c.master_id(),
            publish_port: c.publish_port,
            cachedir: c.cachedir.clone(),
            max_minions: usize::try_from(c.max_minions).unwrap_or(usize::MAX),
            sign_pub_messages: c.sign_pub_messages,
            publish_signing_algorithm,
            publish_session: c.publish_session,
            ping_on_rotate: c.ping_on_rotate,
            request_server_ttl: c.request_server_ttl,
            minimum_auth_version: c.minimum_auth_version,
            auth_events: c.auth_events,
            nodegroups: c.nodegroups.clone(),
            hash_type: c.hash_type.clone(),
            fileserver: halite_fileserver::Settings {
                file_roots: c.file_roots.0.clone(),
                ignore_regex: c.file_ignore_regex.clone(),
                ignore_glob: c.file_ignore_glob.clone(),
                ignore_symlinks: c.fileserver_ignoresymlinks,
                buffer_size: usize::try_from(c.file_buffer_size).unwrap_or(usize::MAX),
                hash_type: c.hash_type.clone(),
            },
            master_opts: master_opts(c),
            peer: crate::peer::PeerSettings::from_config(c)?,
            pillar: halite_pillar::Settings::from_config(c)?,
            mine: crate::mine::MineSettings::from_config(c),
            policy: AuthPolicy {
                open_mode: c.open_mode,
                auto_accept: c.auto_accept,
                autosign_file: c.autosign_file.clone(),
                autoreject_file: c.autoreject_file.clone(),
                autosign_grains_dir: c.autosign_grains_dir.clone(),
                permissive_pki_access: c.permissive_pki_access,
                autosign_timeout_minutes: c.extra("autosign_timeout").and_then(|v| v.as_u64()).unwrap_or(120),
            },
        })
    }
}

/// What `_master_opts` tells a minion, besides the saltenvs.
fn master_opts(c: &halite_config::MasterConfig) -> Value {
    let text = |s: &str| Value::from(s);
    let pairs =
        |p: &[(String, Value)]| Value::Map(p.iter().map(|(k, v)| (Value::from(k.as_str()), v.clone())).collect());
    let aggregate = match &c.state_aggregate {
        halite_config::StateAggregate::All(b) => Value::from(*b),
        halite_config::StateAggregate::States(s) => Value::Array(s.iter().map(|m| text(m)).collect()),
    };
    map([
        ("top_file_merging_strategy", text(&c.top_file_merging_strategy)),
        ("env_order", Value::Array(c.env_order.iter().map(|e| text(e)).collect())),
        ("default_top", text(&c.default_top)),
        ("renderer", text(&c.renderer)),
        ("failhard", Value::from(c.failhard)),
        ("state_top", text(&c.state_top)),
        ("state_top_saltenv", c.extra("state_top_saltenv").cloned().unwrap_or(Value::Nil)),
        ("nodegroups", pairs(&c.nodegroups)),
        ("state_auto_order", Value::from(c.state_auto_order)),
        ("state_events", Value::from(c.state_events)),
        ("state_aggregate", aggregate),
        ("jinja_env", pairs(&c.jinja_env)),
        ("jinja_sls_env", pairs(&c.jinja_sls_env)),
        ("jinja_lstrip_blocks", Value::from(c.jinja_lstrip_blocks)),
        ("jinja_trim_blocks", Value::from(c.jinja_trim_blocks)),
    ])
}

/// The master's state, shared by every request worker, the local channel, the reactor and
/// the maintenance loop. Its fields are the crate's: outside it, the master is driven through
/// [`Master::handle`] / [`Master::handle_then`] and the methods of `jobs`, `local` and the rest.
pub struct Master {
    pub(crate) settings: Settings,
    pub(crate) fileserver: halite_fileserver::Roots,
    pub(crate) pillar: halite_pillar::Compiler,
    pub(crate) keys: MasterKeys,
    pub(crate) pki: PkiDir,
    pub(crate) store: Arc<Store>,
    /// `_mine*` and templates' `mine.get`, over the same store.
    pub(crate) mine: Arc<crate::mine::Mine>,
    pub(crate) aes: AesKey,
    pub(crate) events: EventBus,
    pub(crate) user_keys: UserKeys,
    pub(crate) publisher: halite_zmq::PublishSender,
    /// Held from taking a publish's serial until the publish is queued: see
    /// [`Master::seal_and_queue_publish`].
    pub(crate) publish_order: Mutex<()>,
    /// Minions that authenticated since start: what `max_minions` counts.
    pub(crate) connected: Mutex<HashSet<String>>,
    /// When the AES key was last made: `publish_session` counts from here.
    pub(crate) aes_since: Mutex<std::time::Instant>,
    /// Whether a stranger's key may be written to `minions_pre/` now.
    new_keys: NewKeys,
    /// Events each minion may still fire now.
    event_budgets: Mutex<std::collections::HashMap<String, TokenBucket>>,
}

/// The largest `pub` an `_auth` may present.
pub const MAX_PUB_PEM: usize = 16 << 10;

pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Tags a minion may not put on the master's bus: Salt's `MINION_EVENT_BLACKLIST`, plus what
/// would let one minion speak for the master or for another minion.
const MASTER_ONLY_TAGS: &[&str] = &[
    "salt/job/*/publish",
    "salt/job/*/new",
    "salt/job/*/return",
    // Salt lists `salt/key` exactly; any suffix is refused here, since Salt's event readers
    // split a tag from its data at the first "\n\n" and a reactor glob may end in `*`.
    "salt/key*",
    "salt/cloud/*",
    "salt/run/*",
    "salt/cluster/*",
    "salt/wheel/*/new",
    "salt/wheel/*/return",
    // Beyond Salt's list: sign-in results (a forged `salt/auth` with `act: accept` would
    // drive the reactions that trust new minions) and presence.
    "salt/auth*",
    "salt/presence/*",
    // halite's own tags (`halite/mine/<id>/changed`).
    "halite/*",
];

/// Events one `_minion_event` batch may fire; the rest are dropped with a warning. A beacon
/// sends a handful; Salt has no limit.
const MAX_EVENTS_PER_BATCH: usize = 1000;

/// Events a minion may fire per second, after a burst of [`MINION_EVENT_BURST`]: enough for
/// the progress events of a large highstate (`state_events`), not for one minion to flood
/// the bus until the reactor and the CLIs fall behind and drop everyone's events.
pub const MINION_EVENTS_PER_SECOND: f64 = 500.0;
pub const MINION_EVENT_BURST: f64 = 5000.0;

/// Makes event data name the minion that fired it: `id` is the proven id, and the 3008
/// `resource_id` (which Salt 3008's CLI shows a return under, in place of `id`) is dropped,
/// since halite manages no resources.
fn speak_for_itself(data: &mut Value, minion: &str) {
    payload::insert(data, "id", Value::from(minion));
    payload::remove(data, "resource_id");
}

/// The longest tag a minion may fire (Salt has no limit; its own tags are under 100 bytes).
const MAX_TAG_BYTES: usize = 1024;

/// Tags whose third part names the minion they are about: a minion fires them for itself only.
const PER_MINION_PREFIXES: &[&str] = &["salt/minion/", "salt/beacon/"];

/// Why `minion` may not fire `tag`, or `None` when it may.
///
/// Under `salt/job/` a minion fires only its own state progress (`salt/job/<jid>/prog/<id>/..`,
/// with `state_events`): job returns come through `_return`, which caches them first, and a
/// return event naming another minion would be taken for that minion's return by the CLI
/// and the runners.
pub(crate) fn refused_tag(minion: &str, tag: &str) -> Option<&'static str> {
    if tag.is_empty() || tag.len() > MAX_TAG_BYTES {
        return Some("a tag is 1 to 1024 bytes");
    }
    // Salt's event socket frames an event as `tag + "\n\n" + data`: a control character in
    // a tag could splice a minion's bytes into what readers take for the tag or the data.
    if tag.chars().any(char::is_control) {
        return Some("a tag may not hold control characters");
    }
    if MASTER_ONLY_TAGS.iter().any(|glob| halite_target::fnmatch(tag, glob)) {
        return Some("only the master fires this tag");
    }
    if let Some(rest) = tag.strip_prefix("salt/job/") {
        let mut parts = rest.split('/');
        let (_jid, kind, whose) = (parts.next(), parts.next(), parts.next());
        return match (kind, whose) {
            (Some("prog"), Some(id)) if id == minion => None,
            _ => Some("a minion fires no salt/job/ events but its own state progress"),
        };
    }
    for prefix in PER_MINION_PREFIXES {
        if let Some(rest) = tag.strip_prefix(prefix) {
            if rest.split('/').next() != Some(minion) {
                return Some("the tag names another minion");
            }
        }
    }
    None
}

/// `reply` sealed with the key that opened its request, echoing the nonce.
pub(crate) fn seal(key: &Crypticle, reply: &Value, nonce: Option<&str>) -> Reply {
    match request::seal_reply(key, reply, nonce) {
        Ok(body) => body,
        Err(e) => {
            error!(error = %e, "cannot seal reply");
            request::clear_reply(&Value::from("Server-side exception handling payload"))
        }
    }
}

/// A reply body, or nothing: some malformed requests are answered by Salt with an exception
/// string, and those are the bodies here too; nothing is ever left unanswered on purpose.
pub type Reply = Vec<u8>;

impl Master {
    pub fn new(
        settings: Settings,
        keys: MasterKeys,
        pki: PkiDir,
        store: Store,
        user_keys: UserKeys,
        publisher: halite_zmq::PublishSender,
    ) -> anyhow::Result<Self> {
        let fileserver = halite_fileserver::Roots::new(settings.fileserver.clone())?;
        let store = Arc::new(store);
        // Room for every return of a 10,000-minion job in one burst, so a CLI rarely lags.
        let events = EventBus::new(16384);
        let mine = Arc::new(crate::mine::Mine::new(
            Arc::clone(&store),
            pki.clone(),
            settings.nodegroups.clone(),
            settings.mine.clone(),
            events.clone(),
        ));
        let pillar = halite_pillar::Compiler::new(settings.pillar.clone())?.with_mine(mine.clone());
        Ok(Self {
            fileserver,
            pillar,
            settings,
            keys,
            pki,
            store,
            mine,
            aes: AesKey::generate()?,
            events,
            user_keys,
            publisher,
            publish_order: Mutex::new(()),
            connected: Mutex::new(HashSet::new()),
            aes_since: Mutex::new(std::time::Instant::now()),
            new_keys: NewKeys::new(std::time::Instant::now()),
            event_budgets: Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// Whether `minion` may fire one more event now (per-minion token bucket; the table holds
    /// proven ids only, so it is bounded by the accepted keys).
    fn event_budget_allows(&self, minion: &str) -> bool {
        let Ok(mut budgets) = self.event_budgets.lock() else { return true };
        let now = std::time::Instant::now();
        budgets
            .entry(minion.to_owned())
            .or_insert_with(|| TokenBucket::new(MINION_EVENTS_PER_SECOND, MINION_EVENT_BURST, now))
            .take(now)
    }

    /// The event bus, for the daemon's journal and event socket.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// `_auth`: Salt's key decision, answered signed (v2+) as Salt answers it.
    pub(crate) fn auth(&self, ip: Option<IpAddr>, req: &AuthRequest, sign: bool) -> Reply {
        let status = |status: AuthStatus| match auth::status_reply(&self.keys.private, req, status, sign) {
            Ok(reply) => reply,
            Err(e) => {
                error!(error = %e, "cannot sign auth reply");
                Refusal::BadLoad(e.to_string()).reply()
            }
        };
        if !halite_proto::valid_id(&req.id) {
            peer_warn!("bad auth", ip, minion = %shown(&req.id), "authentication request from an invalid id");
            return status(AuthStatus::Refused);
        }
        // Salt writes whatever `pub` holds to minions_pre; only an RSA public key of a sane
        // size is worth a file (a 16,384-bit key's PEM is under 3 KiB). The text of the
        // accepted file, unchanged since it parsed, is one already (every sign-in but the first).
        let parses = || {
            self.pki.presents_accepted_key(&req.id, &req.pub_pem) || PublicKey::from_pem(req.pub_pem.as_bytes()).is_ok()
        };
        if req.pub_pem.len() > MAX_PUB_PEM || !parses() {
            peer_warn!(
                "bad auth",
                ip,
                bytes = req.pub_pem.len(),
                "authentication refused: pub is not an RSA public key"
            );
            return status(AuthStatus::Refused);
        }
        if self.is_full(&req.id) {
            info!(max_minions = self.settings.max_minions, "too many minions connected; refusing");
            self.auth_event(req, false, Some("full"));
            return status(AuthStatus::Full);
        }
        let new_key_refused = std::cell::Cell::new(None);
        let admit_pending = || match self.new_keys.admit(ip, &self.pki, std::time::Instant::now()) {
            Ok(()) => true,
            Err(why) => {
                new_key_refused.set(Some(why));
                false
            }
        };
        let decision = match halite_pki::decide_auth(
            &self.pki,
            &self.settings.policy,
            &req.id,
            &req.pub_pem,
            req.autosign_grains.as_ref(),
            admit_pending,
        ) {
            Ok(d) => d,
            Err(e) => {
                error!(error = %e, "key store error during authentication");
                return status(AuthStatus::Refused);
            }
        };
        match decision {
            AuthDecision::Pending => {
                info!("key pending acceptance; accept it with salt-key -a {}", req.id);
                self.auth_event(req, true, Some("pend"));
                status(AuthStatus::Pending)
            }
            AuthDecision::Deferred => {
                match new_key_refused.get() {
                    Some(budget::Refusal::Full) => peer_warn!(
                        "new keys",
                        ip,
                        max = budget::MAX_PENDING_KEYS,
                        "new key not recorded: minions_pre is full; accept, reject or delete pending keys \
                         (salt-key -L); the minion is told to wait and asks again"
                    ),
                    _ => peer_warn!(
                        "new keys",
                        ip,
                        per_second = budget::NEW_KEYS_PER_SECOND_PER_ADDRESS,
                        "new key not recorded: too many new keys from this address; the minion is told to wait \
                         and asks again"
                    ),
                }
                status(AuthStatus::Pending)
            }
            AuthDecision::Refused { act, reason } => {
                peer_warn!("auth refused", ip, %reason, "authentication refused");
                self.auth_event(req, false, act);
                status(AuthStatus::Refused)
            }
            AuthDecision::Accept { key } => {
                // A refusal would make the minion exit; a key that cannot be stored is kept in
                // memory instead, and a restart makes the minion sign in again.
                let session = match self.store.session_key(&req.id, now_secs(), self.settings.publish_session) {
                    Ok(s) => s,
                    Err(e) => {
                        halite_ratelog::limited_error!(
                            "session key not stored",
                            error = %e,
                            "session key kept in memory only: the store cannot hold it"
                        );
                        match self.store.volatile_session_key(&req.id, now_secs()) {
                            Ok(s) => s,
                            Err(e) => {
                                error!(error = %e, "cannot make a session key");
                                return status(AuthStatus::Refused);
                            }
                        }
                    }
                };
                let (aes, aes_sig) = match self.aes.current_signed(&self.keys.private) {
                    Ok(signed) => signed,
                    Err(e) => {
                        error!(error = %e, "cannot sign the AES key");
                        return status(AuthStatus::Refused);
                    }
                };
                let acceptance = Acceptance {
                    master_key: &self.keys.private,
                    master_pub_pem: &self.keys.pub_pem,
                    publish_port: self.settings.publish_port,
                    aes: &aes,
                    session: &session,
                    aes_sig: &aes_sig,
                    minion_key: &key,
                };
                match auth::accept_reply(req, &acceptance, sign) {
                    Ok(AcceptReply::Reply(body)) => {
                        info!(enc_algo = %req.enc_algo_name, sig_algo = %req.sig_algo_name, "authentication accepted");
                        if let Ok(mut c) = self.connected.lock() {
                            c.insert(req.id.clone());
                        }
                        self.auth_event(req, true, Some("accept"));
                        body
                    }
                    Ok(AcceptReply::BadAlgo(body)) => {
                        peer_warn!(
                            "bad auth",
                            ip,
                            enc_algo = %shown(&req.enc_algo_name),
                            sig_algo = %shown(&req.sig_algo_name),
                            "unsupported algorithm requested"
                        );
                        body
                    }
                    Err(e) => {
                        error!(error = %e, "cannot build the accept reply");
                        status(AuthStatus::Refused)
                    }
                }
            }
        }
    }

    fn is_full(&self, id: &str) -> bool {
        let max = self.settings.max_minions;
        max > 0 && self.connected.lock().map(|c| !c.contains(id) && c.len() >= max).unwrap_or(false)
    }

    /// `salt/auth` with Salt's payload; Salt omits `act` for some refusals.
    fn auth_event(&self, req: &AuthRequest, result: bool, act: Option<&str>) {
        if self.settings.auth_events {
            let mut data = vec![
                ("result", Value::Boolean(result)),
                ("id", Value::from(req.id.as_str())),
                ("pub", Value::from(req.pub_pem.as_str())),
            ];
            if let Some(act) = act {
                data.push(("act", Value::from(act)));
            }
            self.events.fire("salt/auth", map(data));
        }
    }

    /// A v3 request's session key; only minions with an accepted key have one, so a request
    /// naming any other id cannot make the master create keys for strangers.
    pub(crate) fn session_if_known(&self, id: &str) -> Option<Crypticle> {
        match self.pki.accepted_key(id) {
            Ok(Some(_)) => self.store.session_key(id, now_secs(), self.settings.publish_session).ok(),
            _ => None,
        }
    }

    /// `_pillar`: compile the caller's pillar from the grains it sent, cache both, and answer
    /// the pillar sealed for that minion's key alone (`send_private`).
    pub(crate) fn pillar(&self, caller: &Caller, opened: &OpenedRequest, algos: &PrivateAlgos) -> Outcome {
        let minion = caller.id();
        let load = &opened.load;
        let grains = load.get("grains").filter(|g| g.is_map()).cloned().unwrap_or_else(|| map::<_, String>([]));
        let text = |k: &str| load.get_text(k).map(str::to_owned);
        let saltenv = text("saltenv").or_else(|| text("env"));
        let pillarenv = text("pillarenv");
        let empty = map::<_, String>([]);
        let pillar_override = load.get("pillar_override").filter(|p| p.is_map()).unwrap_or(&empty);
        let request = halite_pillar::Request {
            minion_id: minion,
            grains: &grains,
            saltenv: saltenv.as_deref(),
            pillarenv: pillarenv.as_deref(),
            pillar_override,
        };
        let pillar_data = self.compile_pillar(&request);
        // Salt caches the grains with the minion's `id` set, as the compile saw them.
        let mut cached_grains = grains.clone();
        if let Value::Map(pairs) = &mut cached_grains {
            match pairs.iter_mut().find(|(k, _)| k.as_str() == Some("id")) {
                Some(slot) => slot.1 = Value::from(minion),
                None => pairs.push((Value::from("id"), Value::from(minion))),
            }
        }
        if let Err(e) =
            self.store.put_minion_data(minion, &MinionData { grains: cached_grains, pillar: pillar_data.clone() })
        {
            halite_ratelog::limited_error!("minion data not saved", error = %e, "cannot save minion data");
        }
        let key = match self.pki.accepted_key(minion) {
            Ok(Some(k)) => k,
            _ => {
                warn!("pillar requested by a minion without an accepted key");
                return Outcome::SendClear(map([("error", Value::from("AES key not found"))]));
            }
        };
        let PrivateAlgos { enc, sig, signed } = *algos;
        match pillar::send_private(&self.keys.private, &key, &pillar_data, opened.nonce.as_deref(), enc, sig, signed) {
            Ok(reply) => {
                debug!("pillar sent");
                Outcome::SendPrivate(reply)
            }
            Err(e) => {
                warn!(error = %e, "cannot build the pillar reply");
                Outcome::SendClear(map([("error", Value::from(e.to_string()))]))
            }
        }
    }

    /// Compiles a minion's pillar, logging each failure once with its cause. A panic in the
    /// renderer (a bug) becomes an `_errors` entry for this minion only.
    pub fn compile_pillar(&self, request: &halite_pillar::Request<'_>) -> Value {
        let started = std::time::Instant::now();
        let compiled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.pillar.compile(request)));
        match compiled {
            Ok(c) => {
                for detail in &c.details {
                    // Render errors can quote what a minion sent (its grains): escaped, bounded,
                    // and rate-limited, since any minion can ask for its pillar again and again.
                    peer_warn!(
                        "pillar error",
                        None,
                        minion = request.minion_id,
                        "pillar: {}",
                        halite_ratelog::shown_up_to(detail, 1024)
                    );
                }
                debug!(elapsed_ms = started.elapsed().as_millis() as u64, errors = c.errors.len(), "pillar compiled");
                c.pillar
            }
            Err(_) => {
                error!(minion = request.minion_id, "pillar compile panicked; the minion gets an _errors pillar");
                map([(
                    "_errors",
                    Value::Array(vec![Value::from("Pillar compilation failed on the master; see its log")]),
                )])
            }
        }
    }

    /// `salt-run pillar.show_pillar` / `pillar.show_top`: from the minion's cached grains
    /// (`{"fqdn": <id>}` when it has none, as Salt does), with the query's grains over them.
    pub fn pillar_query(&self, q: &halite_ipc::PillarQuery) -> Result<Value, String> {
        let cached = self.store.minion_data(&q.minion).map_err(|e| format!("minion data of {}: {e}", q.minion))?;
        let mut grains = match cached {
            Some(data) if data.grains.as_map().is_some_and(|m| !m.is_empty()) => data.grains,
            _ => map([("fqdn", Value::from(q.minion.as_str()))]),
        };
        if let (Value::Map(pairs), Value::Map(extra)) = (&mut grains, &q.grains) {
            for (k, v) in extra {
                match pairs.iter_mut().find(|(key, _)| key == k) {
                    Some(slot) => slot.1 = v.clone(),
                    None => pairs.push((k.clone(), v.clone())),
                }
            }
        }
        let empty = map::<_, String>([]);
        let request = halite_pillar::Request {
            minion_id: &q.minion,
            grains: &grains,
            saltenv: Some(q.saltenv.as_deref().unwrap_or("base")),
            pillarenv: q.pillarenv.as_deref(),
            pillar_override: &empty,
        };
        if q.top {
            let (top, errors) = self.pillar.top(&request);
            return Ok(if errors.is_empty() {
                top
            } else {
                Value::Array(errors.into_iter().map(Value::from).collect())
            });
        }
        Ok(self.compile_pillar(&request))
    }

    /// Salt's `_minion_event`: a batch of `events` (each fired under its tag, and again
    /// under `pretag/tag` when the load has a `pretag`), or one `tag` fired with the whole load
    /// as its data (`event.send`, `event.fire_master`, the start events).
    ///
    /// Every event fired carries the id the caller proved as its data's `id` (a batch
    /// event's data that is not a mapping is refused), so a reactor or a CLI reading `data.id`
    /// reads who sent it, never who the sender claimed to be. Tags are checked by
    /// [`refused_tag`]; Salt checks only its master-only list, and only in the batch form.
    pub(crate) fn minion_event(&self, caller: &Caller, mut load: Value) -> Value {
        let (minion, ip) = (caller.id(), caller.ip());
        if load.get_text("tag") == Some("_salt_error") {
            let message = load.get("data").and_then(|d| d.get_text("message")).unwrap_or("");
            peer_warn!("minion error", ip, %minion, message = %shown(message), "minion reports an error");
        }
        let may_fire = |tag: &str| match refused_tag(minion, tag) {
            None if self.event_budget_allows(minion) => true,
            None => {
                peer_warn!(
                    "event budget",
                    ip,
                    %minion,
                    tag = %shown(tag),
                    per_second = MINION_EVENTS_PER_SECOND,
                    "event dropped: the minion fires more events than its budget"
                );
                false
            }
            Some(why) => {
                peer_warn!("event refused", ip, %minion, tag = %shown(tag), reason = why, "event refused");
                false
            }
        };
        match payload::remove(&mut load, "events") {
            Some(Value::Array(events)) => {
                let pretag = load.get_text("pretag").map(str::to_owned);
                if events.len() > MAX_EVENTS_PER_BATCH {
                    peer_warn!(
                        "event budget",
                        ip,
                        %minion,
                        events = events.len(),
                        max = MAX_EVENTS_PER_BATCH,
                        "_minion_event batch too large; the events past the limit are dropped"
                    );
                }
                for event in events.into_iter().take(MAX_EVENTS_PER_BATCH) {
                    let Some(tag) = event.get_text("tag").map(str::to_owned) else {
                        peer_warn!("event refused", ip, %minion, "_minion_event: an event without a tag; skipped");
                        continue;
                    };
                    if !may_fire(&tag) {
                        continue;
                    }
                    let mut data = event.get("data").cloned().unwrap_or(event);
                    if !data.is_map() {
                        peer_warn!("event refused", ip, %minion, tag = %shown(&tag), "event data is not a mapping; skipped");
                        continue;
                    }
                    speak_for_itself(&mut data, minion);
                    // Salt's tagify drops empty parts: an empty pretag adds nothing.
                    let again = pretag
                        .as_deref()
                        .filter(|base| !base.is_empty())
                        .map(|base| format!("{base}/{tag}"))
                        .filter(|joined| may_fire(joined));
                    if let Some(joined) = again {
                        self.events.fire(joined, data.clone());
                    }
                    self.events.fire(tag, data);
                }
                Value::Boolean(true)
            }
            _ => match (load.get_text("tag").map(str::to_owned), load.get("data").is_some()) {
                (Some(tag), true) => {
                    if !may_fire(&tag) {
                        return Value::Boolean(false);
                    }
                    debug!(%minion, tag = %shown(&tag), "minion event");
                    speak_for_itself(&mut load, minion);
                    self.events.fire(tag, load);
                    Value::Boolean(true)
                }
                _ => {
                    peer_warn!(
                        "event refused",
                        ip,
                        %minion,
                        "_minion_event without events, or without a tag and data; ignored as Salt does"
                    );
                    Value::Boolean(false)
                }
            },
        }
    }

    /// Seals a publish with the next serial and queues it for the publisher, as one step.
    /// A minion drops any publish whose serial is not above the last one it took ("A
    /// message with an invalid serial was received"), so publishes sealed on several
    /// threads at once must reach the publisher in the order of their serials; sealed
    /// and queued separately, a request worker that took serial 17 could queue it after
    /// others had queued 18 and 19, and every minion would drop that job.
    pub fn seal_and_queue_publish(&self, mut load: Value) -> Result<(), crate::jobs::PublishError> {
        use crate::jobs::PublishError;
        let _in_order = self.publish_order.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (key, serial) = self.aes.next_publish();
        payload::insert(&mut load, "serial", Value::from(serial));
        let signer =
            self.settings.sign_pub_messages.then_some((&self.keys.private, self.settings.publish_signing_algorithm));
        let frame = publish::frame(&key, &load, signer)
            .map_err(|e| PublishError::Internal(format!("cannot seal publish: {e}")))?;
        self.publisher.publish(frame).map_err(|e| PublishError::Internal(format!("publisher unavailable: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::refused_tag;

    #[test]
    fn a_minion_fires_no_tag_of_the_master_or_of_another_minion() {
        for tag in [
            "salt/key",
            "salt/key\n\nforged",
            "salt/keyX",
            "salt/auth",
            "salt/auth/creds",
            "salt/presence/present",
            "salt/job/20261204120000000000/ret/web1",
            "salt/job/20261204120000000000/ret/evil",
            "salt/job/20261204120000000000/new",
            "salt/job/20261204120000000000/prog/web1/0",
            "salt/minion/web1/start",
            "salt/beacon/web1/inotify/",
            "halite/mine/web1/changed",
            "site/with\ttab",
            "",
        ] {
            assert!(refused_tag("evil", tag).is_some(), "{tag:?}");
        }
        assert!(refused_tag("evil", &"x".repeat(1025)).is_some());
        for tag in [
            "minion_start",
            "salt/minion/evil/start",
            "salt/beacon/evil/inotify/",
            "salt/job/20261204120000000000/prog/evil/0",
            "site/custom",
            "salt/minion/evil",
        ] {
            assert_eq!(refused_tag("evil", tag), None, "{tag:?}");
        }
    }
}
