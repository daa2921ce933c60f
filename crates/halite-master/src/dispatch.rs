//! The request path, from bytes to the reply: parse the envelope, refuse versions below
//! `minimum_auth_version`, open it with the key it names, prove who sent it
//! ([`Master::authenticate`], the one place a [`Caller`] is made), look the command up in
//! [`crate::command`]'s table, run its handler, and turn the handler's [`Outcome`] into
//! bytes sealed with the key that opened the request.
//!
//! Every warning here is caused by what a peer sent, so each goes through
//! `halite_ratelog::peer_warn!` (a budget per kind and peer address) and shows peer data
//! only through `halite_ratelog::shown` (a short, escaped prefix).

use std::net::IpAddr;
use std::sync::Arc;

use halite_proto::auth::AuthRequest;
use halite_proto::payload::{map, Value, ValueExt};
use halite_proto::request::{self, KeyNeeded, OpenedRequest, Refusal, Request, SealedRequest};
use halite_proto::rsa::{EncAlgo, SigAlgo};
use halite_ratelog::{peer_warn, shown};
use tracing::{debug, info, info_span};

use crate::command::{Caller, Command, MinionCmd, Outcome, SharedCmd};
use crate::jobs::PendingReturn;
use crate::master::{now_secs, seal, Master, Reply};
use crate::peer::{Deferred, DeferredCmd};

/// When a request's reply may leave.
enum Answer {
    Now(Reply),
    /// After the `_return` is durable.
    AfterCommit(PendingReturn, Reply),
    /// From a thread of its own, once the peer request's returns are in.
    Deferred(Deferred),
}

/// How a `_pillar` reply is sealed for the minion: what its envelope asked for.
#[derive(Clone, Copy)]
pub(crate) struct PrivateAlgos {
    pub enc: EncAlgo,
    pub sig: SigAlgo,
    pub signed: bool,
}

impl Master {
    /// Answers one request body and waits for whatever the reply waits for (a return's
    /// commit, a peer request's returns): for tests and benchmarks driving the master in
    /// process. The daemon uses [`Master::handle_then`]. `None`: no reply is sent (a return
    /// that could not be saved), so the peer asks again.
    pub fn handle(&self, body: &[u8]) -> Option<Reply> {
        match self.answer(None, body) {
            Answer::Now(reply) => Some(reply),
            Answer::AfterCommit(ret, reply) => self.save_return(ret).then_some(reply),
            Answer::Deferred(work) => Some(self.run_deferred(work)),
        }
    }

    /// Answers one request from `ip` without waiting: `respond` gets the reply at once, or,
    /// for a `_return`, once the return is durable — from the thread that committed it, so
    /// the calling worker moves on to the next request meanwhile, and returns arriving
    /// together share one fsync however few workers there are. A peer request that waits
    /// for returns or a runner is answered from a thread of its own (`peer.rs`).
    pub fn handle_then(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
        body: &[u8],
        respond: impl FnOnce(Reply) + Send + 'static,
    ) {
        match self.answer(ip, body) {
            Answer::Now(reply) => respond(reply),
            Answer::AfterCommit(ret, reply) => self.save_return_then(ret, move || respond(reply)),
            Answer::Deferred(work) => self.spawn_deferred(work, respond),
        }
    }

    fn answer(&self, ip: Option<IpAddr>, body: &[u8]) -> Answer {
        let request = match request::parse(body) {
            Ok(r) => r,
            Err(refusal) => {
                peer_warn!("bad envelope", ip, reason = %shown(&refusal.to_string()), bytes = body.len(), "refusing request");
                return Answer::Now(refusal.reply());
            }
        };
        let minimum = self.settings.minimum_auth_version;
        if minimum > 0 && request.version() < i64::from(minimum) {
            // Salt 3006.30/3008.5: checked before anything is decrypted, `_auth` included.
            peer_warn!(
                "old protocol",
                ip,
                version = request.version(),
                minimum_auth_version = minimum,
                "request refused: protocol version below minimum_auth_version"
            );
            return Answer::Now(Refusal::BadLoad("version below minimum_auth_version".into()).reply());
        }
        match request {
            Request::Clear { load, version } => Answer::Now(self.handle_clear(ip, load, version)),
            Request::Aes(sealed) => self.handle_aes(ip, sealed),
        }
    }

    fn handle_clear(&self, ip: Option<IpAddr>, load: Value, version: i64) -> Reply {
        match load.get_text("cmd") {
            Some("_auth") => match AuthRequest::from_load(&load) {
                Ok(req) => {
                    let span = info_span!("auth", minion = %shown(&req.id));
                    let _enter = span.enter();
                    self.auth(ip, &req, version > 1)
                }
                Err(e) => {
                    peer_warn!("bad auth", ip, error = %shown(&e.to_string()), "malformed _auth request");
                    Refusal::BadLoad(e.to_string()).reply()
                }
            },
            Some("publish") => request::clear_reply(&self.clear_publish(&load)),
            other => {
                // The other ClearFuncs (runner, wheel, tokens) are not served.
                let cmd = other.unwrap_or("");
                peer_warn!("unknown command", ip, cmd = %shown(cmd), "clear command not served");
                request::clear_reply(&map([(
                    "error",
                    map([
                        ("name", Value::from("SaltInvocationError")),
                        ("message", Value::from("clear command is not available")),
                    ]),
                )]))
            }
        }
    }

    fn handle_aes(&self, ip: Option<IpAddr>, sealed: SealedRequest) -> Answer {
        let key = match sealed.key_needed() {
            Err(refusal) => {
                peer_warn!("bad envelope", ip, reason = %shown(&refusal.to_string()), "refusing request");
                return Answer::Now(refusal.reply());
            }
            Ok(KeyNeeded::SharedAes) => self.aes.current(),
            Ok(KeyNeeded::Session(id)) => match self.session_if_known(id) {
                Some(k) => k,
                None => {
                    peer_warn!("unknown minion", ip, minion = %shown(id), "request from a minion with no accepted key");
                    return Answer::Now(Refusal::BadLoad("no accepted key".into()).reply());
                }
            },
        };
        let algos = PrivateAlgos {
            enc: sealed.enc_algo.as_deref().and_then(EncAlgo::from_name).unwrap_or(EncAlgo::OaepSha1),
            sig: sealed.sig_algo.as_deref().and_then(SigAlgo::from_name).unwrap_or(SigAlgo::Pkcs1v15Sha1),
            signed: sealed.signs_replies(),
        };
        let opened = match request::open(sealed, &key) {
            Ok(o) => o,
            Err(refusal) => {
                // The key did not open it: a rotated AES key or session, or a forgery. The
                // minion re-authenticates on this answer, as with Salt. Routine after every
                // rotation, so not a warning.
                info!(reason = %shown(&refusal.to_string()), "refusing request");
                return Answer::Now(refusal.reply());
            }
        };
        let caller = match self.authenticate(ip, &opened) {
            Ok(caller) => caller,
            Err(refusal) => {
                peer_warn!("unproven id", ip, reason = %shown(&refusal.to_string()), "refusing request");
                return Answer::Now(refusal.reply());
            }
        };
        // A proven id passed `valid_id` (no control characters, at most 255 bytes): shown as is.
        let span = info_span!(
            "request",
            minion = %caller.as_ref().map_or("", Caller::id),
            cmd = %shown(opened.cmd().unwrap_or(""))
        );
        let _enter = span.enter();
        let nonce = opened.nonce.clone();
        let outcome = match Command::parse(opened.cmd()) {
            Command::Minion(cmd) => match caller {
                Some(caller) => self.minion_command(cmd, &caller, opened, &algos),
                None => {
                    peer_warn!(
                        "unproven id",
                        ip,
                        cmd = %shown(opened.cmd().unwrap_or("")),
                        "refusing request: the command acts for a minion and the load names none"
                    );
                    Outcome::SendClear(Value::from(Refusal::BadLoad(String::new()).reply_text()))
                }
            },
            Command::Shared(cmd) => self.shared_command(cmd, ip, &opened.load),
            // Salt answers a `__private` name without running anything.
            Command::Private => Outcome::Send(map::<_, String>([])),
            Command::Unknown => {
                peer_warn!(
                    "unknown command",
                    ip,
                    cmd = %shown(opened.cmd().unwrap_or("")),
                    "command not served; answering False as Salt does"
                );
                Outcome::Send(Value::Boolean(false))
            }
        };
        match outcome {
            Outcome::Send(value) => Answer::Now(seal(&key, &value, nonce.as_deref())),
            Outcome::SendClear(value) | Outcome::SendPrivate(value) => Answer::Now(request::clear_reply(&value)),
            Outcome::AfterCommit { ret, reply } => Answer::AfterCommit(ret, seal(&key, &reply, nonce.as_deref())),
            Outcome::Deferred { cmd, caller, load } => Answer::Deferred(Deferred { cmd, caller, load, key, nonce }),
        }
    }

    /// Who sent an opened request: the one place a [`Caller`] is made.
    ///
    /// A load that names an `id` must prove it with a `tok` (X9.31 of `b"salt"`) that
    /// verifies with that id's accepted key, whatever the protocol version: for v3 the
    /// session key that opened the request is that id's already, and `tok` proves the sender
    /// still holds the minion key; for v2 (shared AES key, `minimum_auth_version: 2`) the
    /// `tok` is all that tells one minion from another. A load without an `id` proves
    /// nothing beyond holding the key that opened it: `None`, and only [`SharedCmd`]s run.
    fn authenticate(&self, ip: Option<IpAddr>, opened: &OpenedRequest) -> Result<Option<Caller>, Refusal> {
        let ttl = self.settings.request_server_ttl;
        if opened.version > 2 && ttl > 0 {
            let ts = opened.load.get("ts").and_then(Value::as_u64).unwrap_or(0);
            if now_secs().saturating_sub(ts) > ttl {
                return Err(Refusal::BadLoad(format!("request older than request_server_ttl ({ttl} s)")));
            }
        }
        if !opened.tok_required() {
            return Ok(None);
        }
        let id = opened.id().ok_or_else(|| Refusal::BadLoad("tok without id".into()))?;
        if !halite_proto::valid_id(id) {
            return Err(Refusal::BadLoad(format!("invalid minion id {}", shown(id))));
        }
        let Some(tok) = &opened.tok else {
            return Err(Refusal::BadLoad(format!("the load names minion {} without a tok", shown(id))));
        };
        match self.pki.proves(id, tok) {
            Ok(Some(true)) => Ok(Some(Caller::proven(id.to_owned(), ip))),
            Ok(Some(false)) => {
                Err(Refusal::BadLoad(format!("tok does not verify with the accepted key of {}", shown(id))))
            }
            _ => Err(Refusal::BadLoad(format!("no accepted key for {} to check its tok against", shown(id)))),
        }
    }

    /// The commands that act for the minion `caller` proved to be.
    fn minion_command(&self, cmd: MinionCmd, caller: &Caller, opened: OpenedRequest, algos: &PrivateAlgos) -> Outcome {
        let minion = caller.id();
        match cmd {
            MinionCmd::Pillar => self.pillar(caller, &opened, algos),
            MinionCmd::MinionEvent => Outcome::Send(self.minion_event(caller, opened.load)),
            MinionCmd::Return => self.job_return(caller, opened.load),
            MinionCmd::Mine(cmd) => Outcome::Send(self.mine.command(cmd, caller, &opened.load)),
            MinionCmd::MinionPub => Outcome::Send(self.minion_pub(minion, &opened.load)),
            MinionCmd::PubRet => Outcome::Send(self.pub_ret(minion, &opened.load)),
            MinionCmd::MinionPublish => {
                Outcome::Deferred { cmd: DeferredCmd::MinionPublish, caller: caller.clone(), load: opened.load }
            }
            MinionCmd::MinionRunner => {
                Outcome::Deferred { cmd: DeferredCmd::MinionRunner, caller: caller.clone(), load: opened.load }
            }
        }
    }

    /// The commands any holder of the opening key may ask.
    fn shared_command(&self, cmd: SharedCmd, ip: Option<IpAddr>, load: &Value) -> Outcome {
        match cmd {
            SharedCmd::File(cmd) => Outcome::Send(self.file_command(cmd, load)),
            SharedCmd::RegisterResources => {
                debug!("resource registration ignored: resource targeting is not supported");
                Outcome::Send(Value::Boolean(true))
            }
            SharedCmd::NotServed(name) => {
                peer_warn!("unserved command", ip, cmd = name, "command not served by halite; answering False");
                Outcome::Send(Value::Boolean(false))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The handlers driven in process: a `Master` over a temp dir, minions speaking through
    //! `halite_proto::minion::Channel` as the swarm does.

    use super::*;
    use halite_pki::{KeyState, MasterKeys, PkiDir};
    use halite_proto::minion::{Channel, ReqVersion};
    use halite_proto::rsa::PrivateKey;

    use crate::clear::UserKeys;
    use crate::master::Settings;

    struct Fixture {
        master: Arc<Master>,
        /// What the master queued for the publisher.
        published: std::sync::mpsc::Receiver<Vec<u8>>,
        _dir: tempfile::TempDir,
    }

    fn fixture(minimum_auth_version: u8) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = PkiDir::open(dir.path().join("pki")).expect("pki dir");
        let keys = MasterKeys::load_or_create(&pki, 2048).expect("master keys");
        let store = halite_store::Store::open(&dir.path().join("halite.redb")).expect("store");
        let (config, _) = halite_config::MasterConfig::load_at(None, dir.path()).expect("embedded config");
        let mut settings = Settings::from_config(&config).expect("settings");
        settings.cachedir = dir.path().to_owned();
        settings.minimum_auth_version = minimum_auth_version;
        let (publisher, published) = halite_zmq::PublishSender::channel();
        let user_keys = UserKeys::load_or_create(dir.path(), &["root".to_owned()]).expect("user keys");
        let master = Arc::new(Master::new(settings, keys, pki, store, user_keys, publisher).expect("master"));
        Fixture { master, published, _dir: dir }
    }

    struct Minion {
        channel: Channel,
    }

    /// A minion with an accepted key, speaking `version`.
    fn minion(f: &Fixture, id: &str, version: ReqVersion) -> Minion {
        let key = PrivateKey::generate(2048).expect("keygen");
        let pem = String::from_utf8(key.public_key().and_then(|k| k.to_spki_pem()).expect("pem")).expect("utf-8");
        f.master.pki.write(KeyState::Accepted, id, &pem).expect("accept");
        let session = f.master.store.session_key(id, now_secs(), 86_400).expect("session key");
        let channel = Channel::new(id, version, &f.master.aes.current(), &session, &key).expect("channel");
        Minion { channel }
    }

    impl Minion {
        /// The decrypted answer, or the clear text answered instead.
        fn call(&self, f: &Fixture, load: Value) -> Result<Value, String> {
            let nonce = halite_proto::minion::nonce().expect("nonce");
            let body = self.channel.seal(load, &nonce, now_secs() as i64).expect("seal");
            let reply = f.master.handle(&body).expect("a reply");
            self.channel.open(&reply, &nonce).map_err(|_| {
                halite_proto::payload::decode(&reply)
                    .ok()
                    .and_then(|v| v.as_text().map(str::to_owned))
                    .unwrap_or_default()
            })
        }
    }

    fn load(pairs: &[(&str, Value)]) -> Value {
        map(pairs.iter().cloned())
    }

    fn mine_store(id: &str, address: &str) -> Value {
        load(&[
            ("cmd", Value::from("_mine")),
            ("id", Value::from(id)),
            ("data", map([("network.ip_addrs", Value::Array(vec![Value::from(address)]))])),
        ])
    }

    fn mine_get(id: &str, tgt: &str) -> Value {
        load(&[
            ("cmd", Value::from("_mine_get")),
            ("id", Value::from(id)),
            ("tgt", Value::from(tgt)),
            ("fun", Value::from("network.ip_addrs")),
        ])
    }

    #[test]
    fn v3_minions_act_for_themselves() {
        let f = fixture(3);
        let web1 = minion(&f, "web1", ReqVersion::V3);
        assert_eq!(web1.call(&f, mine_store("web1", "10.0.0.1")), Ok(Value::Boolean(true)));
        let got = web1.call(&f, mine_get("web1", "web1")).expect("mine.get");
        assert_eq!(got.get("web1"), Some(&Value::Array(vec![Value::from("10.0.0.1")])));
        // Unknown and private names, as Salt answers them.
        assert_eq!(
            web1.call(&f, load(&[("cmd", Value::from("_no_such")), ("id", Value::from("web1"))])),
            Ok(Value::Boolean(false))
        );
        assert_eq!(
            web1.call(&f, load(&[("cmd", Value::from("__init__")), ("id", Value::from("web1"))])),
            Ok(map::<_, String>([]))
        );
    }

    #[test]
    fn shared_key_requests_are_below_the_default_minimum() {
        let f = fixture(3);
        let old = minion(&f, "old", ReqVersion::V2);
        assert_eq!(old.call(&f, mine_store("old", "10.0.0.2")), Err("bad load".into()));
        assert_eq!(old.call(&f, load(&[("cmd", Value::from("_file_envs"))])), Err("bad load".into()));
    }

    #[test]
    fn at_version_2_a_load_naming_an_id_needs_that_ids_tok() {
        let f = fixture(2);
        let victim = minion(&f, "victim", ReqVersion::V3);
        assert_eq!(victim.call(&f, mine_store("victim", "10.0.0.7")), Ok(Value::Boolean(true)));
        let evil = minion(&f, "evil", ReqVersion::V2);
        // evil's channel adds evil's tok to any load naming an id: the victim's id fails.
        assert_eq!(evil.call(&f, mine_store("victim", "10.6.6.6")), Err("bad load".into()));
        assert_eq!(evil.call(&f, mine_store("nokey", "10.6.6.6")), Err("bad load".into()));
        // Without an id, only the shared commands run.
        assert_eq!(evil.call(&f, load(&[("cmd", Value::from("_mine_flush"))])), Err("bad load".into()));
        assert_eq!(
            evil.call(&f, load(&[("cmd", Value::from("_file_envs"))])),
            Ok(Value::Array(vec![Value::from("base")]))
        );
        // Its own id, its own tok: served.
        assert_eq!(evil.call(&f, mine_store("evil", "10.0.0.8")), Ok(Value::Boolean(true)));
        let got = victim.call(&f, mine_get("victim", "*")).expect("mine.get");
        assert_eq!(got.get("victim"), Some(&Value::Array(vec![Value::from("10.0.0.7")])));
        assert_eq!(got.get("evil"), Some(&Value::Array(vec![Value::from("10.0.0.8")])));
        assert_eq!(got.get("nokey"), None);
    }

    #[test]
    fn events_carry_the_callers_id_and_name_no_other_minion() {
        let f = fixture(3);
        let evil = minion(&f, "evil", ReqVersion::V3);
        let mut bus = f.master.events.subscribe();
        let claim = map([("id", Value::from("victim")), ("act", Value::from("accept"))]);
        let tags = [
            "salt/job/20261204120000000000/ret/victim",
            "salt/job/20261204120000000000/ret/evil",
            "salt/minion/victim/start",
            "salt/beacon/victim/x/",
            "salt/auth",
            "salt/key",
            "salt/minion/evil/start",
            "salt/job/20261204120000000000/prog/evil/0",
            "site/custom",
        ];
        let events =
            Value::Array(tags.iter().map(|t| map([("tag", Value::from(*t)), ("data", claim.clone())])).collect());
        let batch = load(&[("cmd", Value::from("_minion_event")), ("id", Value::from("evil")), ("events", events)]);
        assert_eq!(evil.call(&f, batch), Ok(Value::Boolean(true)));
        let mut fired = Vec::new();
        while let Ok(event) = bus.try_recv() {
            assert_eq!(event.data.get_text("id"), Some("evil"), "{}", event.tag);
            fired.push(event.tag.clone());
        }
        assert_eq!(fired, ["salt/minion/evil/start", "salt/job/20261204120000000000/prog/evil/0", "site/custom"]);
    }

    #[test]
    fn returns_are_stored_under_the_caller_with_a_real_jid() {
        let f = fixture(3);
        let web1 = minion(&f, "web1", ReqVersion::V3);
        let mut bus = f.master.events.subscribe();
        let ret = |jid: &str| {
            load(&[
                ("cmd", Value::from("_return")),
                ("id", Value::from("web1")),
                ("jid", Value::from(jid)),
                ("fun", Value::from("test.ping")),
                ("return", Value::Boolean(true)),
            ])
        };
        assert_eq!(web1.call(&f, ret("../../etc")), Ok(Value::Boolean(false)));
        assert_eq!(web1.call(&f, ret(&format!("20261204120000000000_{}", "x".repeat(200)))), Ok(Value::Boolean(false)));
        assert_eq!(web1.call(&f, ret("20261204120000000003")), Ok(Value::Nil));
        let event = bus.try_recv().expect("the return's event");
        assert_eq!(event.tag, "salt/job/20261204120000000003/ret/web1");
        assert_eq!(event.data.get_text("id"), Some("web1"));
    }

    /// A clear request body of `version`.
    fn clear(load: Value, version: i64) -> Vec<u8> {
        halite_proto::payload::encode(&map([
            ("enc", Value::from("clear")),
            ("load", load),
            ("version", Value::from(version)),
        ]))
    }

    fn clear_text(reply: &[u8]) -> Option<String> {
        halite_proto::payload::decode(reply).ok().and_then(|v| v.as_text().map(str::to_owned))
    }

    #[test]
    fn old_sign_ins_are_refused_before_any_key_is_written() {
        // CVE-2025-62349: a downgrade to version 2 (or none) at the default minimum.
        let f = fixture(3);
        let key = PrivateKey::generate(2048).expect("keygen");
        let pem = String::from_utf8(key.public_key().and_then(|k| k.to_spki_pem()).expect("pem")).expect("utf-8");
        let auth = load(&[("cmd", Value::from("_auth")), ("id", Value::from("old")), ("pub", Value::from(pem))]);
        for version in [0, 1, 2] {
            assert_eq!(
                clear_text(&f.master.handle(&clear(auth.clone(), version)).expect("a reply")).as_deref(),
                Some("bad load")
            );
        }
        assert_eq!(std::fs::read_dir(f.master.pki.state_dir(KeyState::Pending)).expect("minions_pre").count(), 0);
    }

    #[test]
    fn clear_commands_other_than_auth_and_publish_run_nothing() {
        // CVE-2020-11651: ClearFuncs reachable without a key.
        let f = fixture(3);
        for cmd in ["_prep_auth_info", "_send_pub", "runner", "wheel", "mk_token", "get_token", "publish_batch"] {
            let reply = f.master.handle(&clear(load(&[("cmd", Value::from(cmd))]), 3)).expect("a reply");
            let reply = halite_proto::payload::decode(&reply).expect("an answer");
            let error = reply.get("error").unwrap_or_else(|| panic!("{cmd}: {reply}"));
            assert_eq!(error.get_text("name"), Some("SaltInvocationError"), "{cmd}");
            assert!(
                !halite_proto::payload::encode(&reply).windows(cmd.len()).any(|w| w == cmd.as_bytes()),
                "{cmd} echoed"
            );
        }
    }

    #[test]
    fn stale_requests_are_refused_past_request_server_ttl() {
        // CVE-2024-38823: a v3 request's `ts` older than request_server_ttl.
        let mut f = fixture(3);
        Arc::get_mut(&mut f.master).expect("one owner").settings.request_server_ttl = 5;
        let web1 = minion(&f, "web1", ReqVersion::V3);
        let nonce = halite_proto::minion::nonce().expect("nonce");
        let stale = web1.channel.seal(mine_store("web1", "10.0.0.1"), &nonce, now_secs() as i64 - 60).expect("seal");
        assert_eq!(clear_text(&f.master.handle(&stale).expect("a reply")).as_deref(), Some("bad load"));
        assert_eq!(web1.call(&f, mine_store("web1", "10.0.0.1")), Ok(Value::Boolean(true)));
    }

    #[test]
    fn unserved_minion_commands_write_nothing() {
        // CVE-2024-38824 (`_file_recv`), CVE-2024-22231 (`_syndic_return`), CVE-2025-22242
        // (`pub_ret` opening a path a minion names), CVE-2025-22237/22241 (`ext` pillar).
        let f = fixture(3);
        let web1 = minion(&f, "web1", ReqVersion::V3);
        let id = ("id", Value::from("web1"));
        let path = Value::Array(vec![Value::from(".."), Value::from(".."), Value::from("x")]);
        let recv = load(&[("cmd", Value::from("_file_recv")), id.clone(), ("path", path), ("data", Value::from("x"))]);
        assert_eq!(web1.call(&f, recv), Ok(Value::Boolean(false)));
        let syndic =
            load(&[("cmd", Value::from("_syndic_return")), ("id", Value::from("../../x")), ("jid", Value::from("1"))]);
        assert_eq!(web1.call(&f, syndic), Ok(Value::Boolean(false)));
        for jid in ["../../../dev/zero", "20261204120000000000_/../../x"] {
            let poll = load(&[("cmd", Value::from("pub_ret")), id.clone(), ("jid", Value::from(jid))]);
            assert_eq!(web1.call(&f, poll), Ok(map::<_, String>([])), "{jid}");
        }
        let before: Vec<_> = walk(&f.master.settings.cachedir);
        let ext = Value::Array(vec![map([("git", Value::from("master https://example.invalid/x.git"))])]);
        let pillar = load(&[("cmd", Value::from("_pillar")), id, ("grains", map::<_, String>([])), ("ext", ext)]);
        let _ = web1.call(&f, pillar);
        let after: Vec<_> = walk(&f.master.settings.cachedir);
        assert_eq!(before, after, "no file appeared for an `ext` pillar");
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "redb") {
                continue;
            }
            if path.is_dir() {
                out.extend(walk(&path));
            }
            out.push(path);
        }
        out.sort();
        out
    }

    #[test]
    fn the_pending_key_budget_holds() {
        let f = fixture(3);
        let key = PrivateKey::generate(2048).expect("keygen");
        let pem = String::from_utf8(key.public_key().and_then(|k| k.to_spki_pem()).expect("pem")).expect("utf-8");
        let burst = crate::budget::NEW_KEYS_BURST_PER_ADDRESS as usize;
        for n in 0..burst + 20 {
            let nonce = halite_proto::minion::nonce().expect("nonce");
            let reply =
                f.master.handle(&halite_proto::minion::auth_request(&format!("s{n}"), &pem, &nonce)).expect("a reply");
            assert!(matches!(
                halite_proto::minion::read_auth_reply(&reply, &key),
                halite_proto::minion::AuthAnswer::Pending
            ));
        }
        let written = std::fs::read_dir(f.master.pki.state_dir(KeyState::Pending)).expect("minions_pre").count();
        assert!((burst..burst + 5).contains(&written), "{written} keys written for a burst of {burst}");
    }

    /// Salt's minion drops a publish whose serial is not above the last it took, so jobs
    /// published by several request workers at once must be queued in serial order (seen
    /// lost: one of four concurrent peer publishes, dropped by every minion).
    #[test]
    fn publishes_sealed_on_many_threads_are_queued_in_serial_order() {
        let f = fixture(0);
        const THREADS: usize = 6;
        const EACH: usize = 30;
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                scope.spawn(|| {
                    for _ in 0..EACH {
                        let load = map([("fun", Value::from("test.ping")), ("tgt", Value::from("*"))]);
                        f.master.seal_and_queue_publish(load).expect("queued");
                    }
                });
            }
        });
        let aes = f.master.aes.current();
        let serials: Vec<u64> = f
            .published
            .try_iter()
            .map(|frame| {
                let load = halite_proto::minion::open_publish(&frame, &aes, None).expect("opens");
                load.get("serial").and_then(Value::as_u64).expect("a serial")
            })
            .collect();
        assert_eq!(serials.len(), THREADS * EACH);
        assert!(serials.windows(2).all(|w| w[0] < w[1]), "queued out of serial order: {serials:?}");
    }
}
