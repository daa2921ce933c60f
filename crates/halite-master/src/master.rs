//! The master's request handling: one [`Master`] shared by every request task.
//!
//! A request goes: ROUTER thread → [`Master::handle`] on the blocking pool (RSA and file
//! reads are blocking work) → [`halite_proto::request`] opens it → a command handler → the
//! reply is sealed with the key that opened the request → back to the ROUTER thread.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use halite_pki::{AuthDecision, AuthPolicy, MasterKeys, PkiDir};
use halite_proto::auth::{self, AcceptReply, Acceptance, AuthRequest, AuthStatus};
use halite_proto::crypticle::Crypticle;
use halite_proto::payload::{self, map, Value, ValueExt};
use halite_proto::request::{self, KeyNeeded, OpenedRequest, Refusal, Request, SealedRequest};
use halite_proto::rsa::{EncAlgo, SigAlgo};
use halite_proto::{pillar, publish};
use halite_store::{MinionData, Store};
use tracing::{debug, error, info, info_span, warn};

use crate::aes::AesKey;
use crate::clear::UserKeys;
use crate::events::EventBus;
use crate::jobs::PendingReturn;
use crate::peer::{Deferred, DeferredCmd};

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

pub struct Master {
    pub settings: Settings,
    pub fileserver: halite_fileserver::Roots,
    pub pillar: halite_pillar::Compiler,
    pub keys: MasterKeys,
    pub pki: PkiDir,
    pub store: Arc<Store>,
    /// `_mine*` and templates' `mine.get`, over the same store.
    pub mine: Arc<crate::mine::Mine>,
    pub aes: AesKey,
    pub events: EventBus,
    pub user_keys: UserKeys,
    pub publisher: halite_zmq::PublishSender,
    /// Minions that authenticated since start: what `max_minions` counts.
    pub(crate) connected: Mutex<HashSet<String>>,
    /// When the AES key was last made: `publish_session` counts from here.
    pub(crate) aes_since: Mutex<std::time::Instant>,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Tags a minion may not put on the master's bus (Salt's `MINION_EVENT_BLACKLIST`).
const MASTER_ONLY_TAGS: &[&str] = &[
    "salt/job/*/publish",
    "salt/job/*/new",
    "salt/job/*/return",
    "salt/key",
    "salt/cloud/*",
    "salt/run/*",
    "salt/cluster/*",
    "salt/wheel/*/new",
    "salt/wheel/*/return",
    // halite's own tags (`halite/mine/<id>/changed`).
    "halite/*",
];

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
            connected: Mutex::new(HashSet::new()),
            aes_since: Mutex::new(std::time::Instant::now()),
        })
    }

    /// Answers one request body. Every path returns a reply, as a REQ peer waits for one.
    pub fn handle(&self, body: &[u8]) -> Reply {
        let (mut pending, mut deferred) = (None, None);
        let reply = self.answer(body, &mut pending, &mut deferred);
        if let Some(ret) = pending {
            self.save_return(ret);
        }
        match deferred {
            Some(work) => self.run_deferred(work),
            None => reply,
        }
    }

    /// [`Master::handle`] for a caller that need not wait: `respond` gets the reply at once,
    /// or, for a `_return`, once the return is durable — from the thread that committed it,
    /// so the calling worker moves on to the next request meanwhile, and returns arriving
    /// together share one fsync however few workers there are. A peer request that waits
    /// for returns or a runner is answered from a thread of its own (`peer.rs`).
    pub fn handle_then(self: &Arc<Self>, body: &[u8], respond: impl FnOnce(Reply) + Send + 'static) {
        let (mut pending, mut deferred) = (None, None);
        let reply = self.answer(body, &mut pending, &mut deferred);
        match (pending, deferred) {
            (_, Some(work)) => self.spawn_deferred(work, respond),
            (None, None) => respond(reply),
            (Some(ret), None) => self.save_return_then(ret, move || respond(reply)),
        }
    }

    /// The reply; a `_return` to save before the reply may go out is left in `pending`, a
    /// request answered later in `deferred`.
    fn answer(&self, body: &[u8], pending: &mut Option<PendingReturn>, deferred: &mut Option<Deferred>) -> Reply {
        match request::parse(body) {
            Err(refusal) => {
                warn!(reason = %refusal, "refusing request");
                refusal.reply()
            }
            Ok(Request::Clear { load, version }) => self.handle_clear(load, version),
            Ok(Request::Aes(sealed)) => self.handle_aes(sealed, pending, deferred),
        }
    }

    fn handle_clear(&self, load: Value, version: i64) -> Reply {
        match load.get_text("cmd") {
            Some("_auth") => match AuthRequest::from_load(&load) {
                Ok(req) => {
                    let span = info_span!("auth", minion = %req.id);
                    let _enter = span.enter();
                    self.auth(&req, version > 1)
                }
                Err(e) => {
                    warn!(error = %e, "malformed _auth request");
                    Refusal::BadLoad(e.to_string()).reply()
                }
            },
            Some("publish") => request::clear_reply(&self.clear_publish(&load)),
            other => {
                // The other ClearFuncs (runner, wheel, tokens) arrive with the CLI work.
                warn!(cmd = ?other, "clear command not served");
                request::clear_reply(&map([(
                    "error",
                    map([
                        ("name", Value::from("SaltInvocationError")),
                        ("message", Value::from(format!("clear command {:?} is not available", other.unwrap_or("")))),
                    ]),
                )]))
            }
        }
    }

    fn auth(&self, req: &AuthRequest, sign: bool) -> Reply {
        let status = |status: AuthStatus| match auth::status_reply(&self.keys.private, req, status, sign) {
            Ok(reply) => reply,
            Err(e) => {
                error!(error = %e, "cannot sign auth reply");
                Refusal::BadLoad(e.to_string()).reply()
            }
        };
        if !halite_proto::valid_id(&req.id) {
            warn!("authentication request from an invalid id");
            return status(AuthStatus::Refused);
        }
        if self.is_full(&req.id) {
            info!(max_minions = self.settings.max_minions, "too many minions connected; refusing");
            self.auth_event(req, false, Some("full"));
            return status(AuthStatus::Full);
        }
        let decision = match halite_pki::decide_auth(
            &self.pki,
            &self.settings.policy,
            &req.id,
            &req.pub_pem,
            req.autosign_grains.as_ref(),
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
            AuthDecision::Refused { act, reason } => {
                warn!(%reason, "authentication refused");
                self.auth_event(req, false, act);
                status(AuthStatus::Refused)
            }
            AuthDecision::Accept { key } => {
                let session = match self.store.session_key(&req.id, now_secs(), self.settings.publish_session) {
                    Ok(s) => s,
                    Err(e) => {
                        error!(error = %e, "cannot load session key");
                        return status(AuthStatus::Refused);
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
                        warn!(enc_algo = %req.enc_algo_name, sig_algo = %req.sig_algo_name, "unsupported algorithm requested");
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

    fn handle_aes(
        &self,
        sealed: SealedRequest,
        pending: &mut Option<PendingReturn>,
        deferred: &mut Option<Deferred>,
    ) -> Reply {
        let key = match sealed.key_needed() {
            Err(refusal) => {
                warn!(reason = %refusal, "refusing request");
                return refusal.reply();
            }
            Ok(KeyNeeded::SharedAes) => self.aes.current(),
            Ok(KeyNeeded::Session(id)) => match self.session_if_known(id) {
                Some(k) => k,
                None => {
                    warn!(minion = %id, "request from a minion with no accepted key");
                    return Refusal::BadLoad("no accepted key".into()).reply();
                }
            },
        };
        let envelope_id = sealed.id.clone();
        let (enc_algo, sig_algo) = (sealed.enc_algo.clone(), sealed.sig_algo.clone());
        let signs = sealed.signs_replies();
        let opened = match request::open(sealed, &key) {
            Ok(o) => o,
            Err(refusal) => {
                // The key did not open it: a rotated AES key or session, or a forgery. The
                // minion re-authenticates on this answer, as with Salt.
                info!(minion = ?envelope_id, reason = %refusal, "refusing request");
                return refusal.reply();
            }
        };
        let minion = opened.id().unwrap_or("").to_owned();
        let span = info_span!("request", %minion, cmd = opened.cmd().unwrap_or(""));
        let _enter = span.enter();
        if let Err(refusal) = self.check_freshness_and_tok(&opened) {
            warn!(reason = %refusal, "refusing request");
            return refusal.reply();
        }
        let nonce = opened.nonce.clone();
        let reply = match opened.cmd() {
            Some("_pillar") => {
                let enc = enc_algo.as_deref().and_then(EncAlgo::from_name).unwrap_or(EncAlgo::OaepSha1);
                let sig = sig_algo.as_deref().and_then(SigAlgo::from_name).unwrap_or(SigAlgo::Pkcs1v15Sha1);
                return self.pillar(&minion, &opened, enc, sig, signs);
            }
            Some("_minion_event") => self.minion_event(&minion, opened.load),
            Some("_return") => self.job_return(&minion, opened.load, pending),
            Some(cmd @ ("minion_publish" | "minion_runner")) => {
                let cmd = if cmd == "minion_publish" { DeferredCmd::MinionPublish } else { DeferredCmd::MinionRunner };
                *deferred = Some(Deferred { cmd, minion, load: opened.load, key, nonce });
                return Vec::new();
            }
            Some(cmd) if let Some(answer) = self.peer_command(cmd, &minion, &opened.load) => answer,
            Some(cmd) if let Some(answer) = self.mine.command(cmd, &minion, &opened.load) => answer,
            Some(cmd) if cmd.starts_with("__") => map::<_, String>([]),
            Some(cmd) if let Some(answer) = self.file_command(cmd, &opened.load) => answer,
            // 3008 minions announce the resources they manage at start. halite has no
            // resource targeting (T@/M@) yet; the minion only logs the answer, so the
            // registration is acknowledged and dropped rather than warned about on every start.
            Some("_register_resources") => {
                debug!("resource registration ignored: resource targeting is not supported");
                Value::Boolean(true)
            }
            Some(cmd) => {
                // Salt answers an unknown AESFuncs command with False.
                warn!(%cmd, "command not served yet; answering False as Salt does for unknown commands");
                Value::Boolean(false)
            }
            None => {
                warn!("request without cmd");
                Value::Boolean(false)
            }
        };
        seal(&key, &reply, nonce.as_deref())
    }

    /// A v3 request's session key; only minions with an accepted key have one, so a request
    /// naming any other id cannot make the master create keys for strangers.
    fn session_if_known(&self, id: &str) -> Option<Crypticle> {
        match self.pki.accepted_key(id) {
            Ok(Some(_)) => self.store.session_key(id, now_secs(), self.settings.publish_session).ok(),
            _ => None,
        }
    }

    fn check_freshness_and_tok(&self, opened: &OpenedRequest) -> Result<(), Refusal> {
        let ttl = self.settings.request_server_ttl;
        if opened.version > 2 && ttl > 0 {
            let ts = opened.load.get("ts").and_then(Value::as_u64).unwrap_or(0);
            if now_secs().saturating_sub(ts) > ttl {
                return Err(Refusal::BadLoad(format!("request older than request_server_ttl ({ttl} s)")));
            }
        }
        if !opened.tok_required() {
            return Ok(());
        }
        let id = opened.id().ok_or_else(|| Refusal::BadLoad("tok without id".into()))?;
        if !halite_proto::valid_id(id) {
            return Err(Refusal::BadLoad(format!("invalid minion id {id:?}")));
        }
        let key = match self.pki.accepted_key(id) {
            Ok(Some(k)) => k,
            _ => return Err(Refusal::BadLoad(format!("no accepted key for {id:?} to check its tok against"))),
        };
        match &opened.tok {
            Some(tok) if request::verify_tok(&key, tok) => Ok(()),
            _ => Err(Refusal::BadLoad(format!("tok does not verify with the accepted key of {id:?}"))),
        }
    }

    fn pillar(&self, minion: &str, opened: &OpenedRequest, enc: EncAlgo, sig: SigAlgo, signed: bool) -> Reply {
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
            error!(error = %e, "cannot save minion data");
        }
        let key = match self.pki.accepted_key(minion) {
            Ok(Some(k)) => k,
            _ => {
                warn!("pillar requested by a minion without an accepted key");
                return request::clear_reply(&map([("error", Value::from("AES key not found"))]));
            }
        };
        match pillar::send_private(&self.keys.private, &key, &pillar_data, opened.nonce.as_deref(), enc, sig, signed) {
            Ok(reply) => {
                debug!("pillar sent");
                request::clear_reply(&reply)
            }
            Err(e) => {
                warn!(error = %e, "cannot build the pillar reply");
                request::clear_reply(&map([("error", Value::from(e.to_string()))]))
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
                    warn!(minion = request.minion_id, "pillar: {}", detail.replace('\n', " "));
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
    /// Tags the master alone may fire (Salt's `MINION_EVENT_BLACKLIST`: job publication,
    /// `salt/key`, runs, wheel, cloud, cluster) are refused from a minion. Salt checks them
    /// only in the batch form, and not under the pretag; halite checks every tag it fires,
    /// since a forged `salt/key` event would otherwise drive a reactor that accepts keys.
    /// So is a `salt/minion/<id>/...` tag naming another minion (its start event would
    /// set off that minion's reactions), which Salt allows.
    fn minion_event(&self, minion: &str, mut load: Value) -> Value {
        if load.get_text("tag") == Some("_salt_error") {
            let message = load.get("data").and_then(|d| d.get_text("message")).unwrap_or("");
            error!(%minion, message, "minion reports an error");
        }
        match payload::remove(&mut load, "events") {
            Some(Value::Array(events)) => {
                let pretag = load.get_text("pretag").map(str::to_owned);
                for event in events {
                    let Some(tag) = event.get_text("tag").map(str::to_owned) else {
                        warn!(%minion, "_minion_event: an event without a tag; skipped");
                        continue;
                    };
                    if !self.minion_may_fire(minion, &tag) {
                        continue;
                    }
                    let data = event.get("data").cloned().unwrap_or(event);
                    // Salt's tagify drops empty parts: an empty pretag adds nothing.
                    let again = pretag
                        .as_deref()
                        .filter(|base| !base.is_empty())
                        .map(|base| format!("{base}/{tag}"))
                        .filter(|joined| self.minion_may_fire(minion, joined));
                    if let Some(joined) = again {
                        self.events.fire(joined, data.clone());
                    }
                    self.events.fire(tag, data);
                }
                Value::Boolean(true)
            }
            _ => match (load.get_text("tag").map(str::to_owned), load.get("data").is_some()) {
                (Some(tag), true) => {
                    if !self.minion_may_fire(minion, &tag) {
                        return Value::Boolean(false);
                    }
                    debug!(%minion, %tag, "minion event");
                    self.events.fire(tag, load);
                    Value::Boolean(true)
                }
                _ => {
                    warn!(%minion, "_minion_event without events, or without a tag and data; ignored as Salt does");
                    Value::Boolean(false)
                }
            },
        }
    }

    fn minion_may_fire(&self, minion: &str, tag: &str) -> bool {
        if let Some(glob) = MASTER_ONLY_TAGS.iter().find(|glob| halite_target::fnmatch(tag, glob)) {
            warn!(%minion, %tag, reserved = glob, "event refused: only the master fires this tag");
            return false;
        }
        if let Some(other) = tag.strip_prefix("salt/minion/").and_then(|rest| rest.split('/').next()) {
            if other != minion {
                warn!(%minion, %tag, "event refused: a minion fires salt/minion/ events for itself only");
                return false;
            }
        }
        true
    }

    /// Seals and queues a publish; `load` gets its serial here.
    pub fn seal_publish(&self, mut load: Value) -> Result<Vec<u8>, halite_proto::ProtoError> {
        let (key, serial) = self.aes.next_publish();
        payload::insert(&mut load, "serial", Value::from(serial));
        let signer =
            self.settings.sign_pub_messages.then_some((&self.keys.private, self.settings.publish_signing_algorithm));
        publish::frame(&key, &load, signer)
    }
}
