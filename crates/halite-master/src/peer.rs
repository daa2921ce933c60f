//! Peer publishing: minions publishing jobs to other minions (`publish.publish`,
//! `publish.full_data`: `minion_pub` then `pub_ret`; the older synchronous `minion_publish`)
//! and running runners on the master (`publish.runner`: `minion_runner`), as far as the
//! master's `peer` and `peer_run` options allow.
//!
//! The rules are Salt's `__verify_minion_publish` and `auth_check(publish_validate=True)`:
//! every minion-id pattern that `re.match`es the caller contributes its function patterns; a
//! function is allowed when one of them `re.match`es it; `publish.*` is never allowed (no
//! publish loops); a pillar target must name the same minions when matched exactly, so a
//! minion cannot reach others by globbing pillar values. A refused call is logged with the
//! minion and the function and answered `{}`, as Salt answers it.
//!
//! Where halite is stricter than Salt: a multi-function call (`f1,f2`) needs every function
//! allowed and none of them `publish.*` (Salt allows the lot when any one is allowed, and
//! checks only the first for recursion).
//!
//! Which minion started a job is kept where Salt keeps it, `cachedir/publish_auth/<jid>`
//! holding the id, so a `pub_ret` polling across a switch between a Python master and halite
//! still finds it; halite removes the file with its job at `keep_jobs_seconds`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use halite_proto::payload::{map, Value, ValueExt};
use halite_ratelog::{peer_warn, shown};
use halite_target::pyre::PyRegex;
use tracing::{error, info, warn};

use crate::command::Caller;
use crate::jobs::{PublishError, PublishRequest};
use crate::master::Master;
use crate::runner::InProcess;

/// Deferred peer requests (`minion_publish`, `minion_runner`) running at once, at most.
pub const MAX_DEFERRED: usize = 64;

/// Process-wide: one master per process in production.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// One of `peer` / `peer_run`, compiled: minion-id pattern → function patterns.
#[derive(Debug, Clone, Default)]
pub struct Rules(Vec<(PyRegex, Vec<PyRegex>)>);

impl Rules {
    /// Compiles the option `key`; a pattern Python would reject names the key.
    pub fn compile(key: &str, rules: &[(String, Vec<String>)]) -> anyhow::Result<Rules> {
        let compile = |p: &str| PyRegex::new(p).map_err(|e| anyhow::anyhow!("{key}: {e}"));
        let mut out = Vec::new();
        for (minions, funs) in rules {
            let funs = funs.iter().map(|f| compile(f)).collect::<anyhow::Result<Vec<_>>>()?;
            out.push((compile(minions)?, funs));
        }
        Ok(Rules(out))
    }

    /// Whether `minion` may call `fun`: some function pattern of some minion pattern that
    /// matches the minion matches the function.
    pub fn allows(&self, minion: &str, fun: &str) -> bool {
        self.0.iter().filter(|(m, _)| m.is_match(minion)).any(|(_, funs)| funs.iter().any(|f| f.is_match(fun)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The master options of peer publishing and master-side runners.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    pub peer: Rules,
    pub peer_run: Rules,
    /// Whom the master's own jobs (peer publishes, runners) are published as: its `user`.
    pub user: String,
    pub runner: halite_runner::Settings,
}

impl PeerSettings {
    pub fn from_config(c: &halite_config::MasterConfig) -> anyhow::Result<PeerSettings> {
        Ok(PeerSettings {
            peer: Rules::compile("peer", &c.peer)?,
            peer_run: Rules::compile("peer_run", &c.peer_run)?,
            user: c.publishing_user(),
            runner: halite_runner::Settings { timeout: c.timeout, gather_job_timeout: c.gather_job_timeout() },
        })
    }
}

/// A peer publish that passed the rules: what to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerCall {
    /// One function, or a list for `f1,f2`.
    pub fun: Value,
    /// `parse_input` of the minion's arguments (per function for a list).
    pub arg: Value,
    pub tgt: Value,
    pub tgt_type: String,
    pub ret: Value,
}

/// Why a peer call is refused (logged; the minion gets `{}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("no peer rules are configured")]
    NoRules,
    #[error("load lacks {0}")]
    Missing(&'static str),
    #[error("{0} would publish again (publish loops are refused)")]
    Recursive(String),
    #[error("{0} is not allowed by the peer rules")]
    NotAllowed(String),
    #[error("malformed load: {0}")]
    Malformed(String),
    #[error("pillar target names other minions when matched exactly")]
    PillarGlob,
}

/// Salt's `__verify_minion_publish` without the target check: required fields, `f1,f2`
/// splitting (each function's argument text split on whitespace), recursion, and the rules.
pub fn verify(rules: &Rules, minion: &str, load: &Value) -> Result<PeerCall, Refused> {
    if rules.is_empty() {
        return Err(Refused::NoRules);
    }
    for key in ["fun", "arg", "tgt", "ret"] {
        if load.get(key).is_none() {
            return Err(Refused::Missing(key));
        }
    }
    let text = load.get_text("fun").ok_or_else(|| Refused::Malformed("fun is not text".into()))?;
    let args = match load.get("arg") {
        Some(Value::Array(items)) => items.as_slice(),
        _ => return Err(Refused::Malformed("arg is not a list".into())),
    };
    let funs: Vec<&str> = text.split(',').collect();
    for f in &funs {
        if f.starts_with("publish.") {
            return Err(Refused::Recursive((*f).to_owned()));
        }
        if !rules.allows(minion, f) {
            return Err(Refused::NotAllowed((*f).to_owned()));
        }
    }
    let (fun, arg) = if funs.len() > 1 {
        let per_fun = args
            .iter()
            .map(|a| {
                let words = a.as_str().ok_or_else(|| Refused::Malformed("a multi-function arg is not text".into()))?;
                Ok(Value::Array(words.split_whitespace().map(Value::from).collect()))
            })
            .collect::<Result<Vec<_>, Refused>>()?;
        (Value::Array(funs.iter().map(|f| Value::from(*f)).collect()), Value::Array(per_fun))
    } else {
        (Value::from(text), Value::Array(parse_args(args, load)))
    };
    let tgt_type = load.get_text("tgt_type").unwrap_or("glob");
    // Salt takes any `node*` type for a nodegroup name.
    let tgt_type = if tgt_type.starts_with("node") { "nodegroup" } else { tgt_type };
    Ok(PeerCall {
        fun,
        arg,
        tgt: load.get("tgt").cloned().unwrap_or(Value::Nil),
        tgt_type: tgt_type.to_owned(),
        ret: load.get("ret").cloned().unwrap_or(Value::from("")),
    })
}

/// Salt's `minion_runner` check: some `peer_run` pattern of the caller matches `fun`.
pub fn verify_runner(rules: &Rules, minion: &str, load: &Value) -> Result<(String, Vec<Value>), Refused> {
    if rules.is_empty() {
        return Err(Refused::NoRules);
    }
    let fun = load.get_text("fun").ok_or(Refused::Missing("fun"))?;
    let args = match load.get("arg") {
        Some(Value::Array(items)) => items.as_slice(),
        Some(_) => return Err(Refused::Malformed("arg is not a list".into())),
        None => return Err(Refused::Missing("arg")),
    };
    if !rules.allows(minion, fun) {
        return Err(Refused::NotAllowed(fun.to_owned()));
    }
    Ok((fun.to_owned(), parse_args(args, load)))
}

/// Salt's `parse_input` of a peer's arguments, leaving alone those its `no_parse` names.
fn parse_args(args: &[Value], load: &Value) -> Vec<Value> {
    let no_parse: Vec<&str> = match load.get("no_parse") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    halite_runner::args::parse_input(args, &no_parse)
}

/// A peer request answered after the worker has moved on: `minion_publish` waits for the
/// job's returns and `minion_runner` for its runner, up to their timeouts.
pub struct Deferred {
    pub cmd: DeferredCmd,
    pub caller: Caller,
    pub load: Value,
    /// The key that opened the request and its nonce, to seal the reply with.
    pub key: halite_proto::crypticle::Crypticle,
    pub nonce: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferredCmd {
    MinionPublish,
    MinionRunner,
}

fn empty() -> Value {
    map::<_, String>([])
}

/// `{minion: {"ret": return, "out"?: outputter}}`: Salt's `get_cache_returns`.
fn cache_returns(master: &Master, jid: &str) -> Vec<(String, Value)> {
    let returns = match master.store.returns(jid) {
        Ok(r) => r,
        Err(e) => {
            error!(%jid, error = %e, "cannot read the job's returns for a peer");
            return Vec::new();
        }
    };
    returns
        .into_iter()
        .map(|(id, ret)| {
            let mut view = vec![("ret", ret.get("return").cloned().unwrap_or(Value::Nil))];
            if let Some(out) = ret.get("out") {
                view.push(("out", out.clone()));
            }
            (id, map(view))
        })
        .collect()
}

impl Master {
    fn publish_auth_path(&self, jid: &str) -> Option<PathBuf> {
        // Only jids the master made can name a file: no path can be smuggled in.
        crate::jid::is_jid(jid).then(|| self.settings.cachedir.join("publish_auth").join(jid))
    }

    fn remember_publisher(&self, jid: &str, minion: &str) {
        let Some(path) = self.publish_auth_path(jid) else { return };
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, minion)?;
            std::fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            error!(%jid, %minion, path = %path.display(), error = %e, "cannot record who published the job; its pub_ret will be refused");
        }
    }

    /// Removes a job's `publish_auth` entry (job expiry).
    pub(crate) fn forget_publisher(&self, jid: &str) {
        if let Some(path) = self.publish_auth_path(jid) {
            let _ = std::fs::remove_file(path);
        }
    }

    fn verified(&self, minion: &str, load: &Value) -> Option<PeerCall> {
        let refuse = |why: Refused| {
            peer_warn!(
                "peer refused",
                None,
                %minion,
                fun = %shown(load.get_text("fun").unwrap_or("")),
                reason = %shown(&why.to_string()),
                "peer publish refused"
            );
            None
        };
        let call = match verify(&self.settings.peer.peer, minion, load) {
            Ok(c) => c,
            Err(why) => return refuse(why),
        };
        // auth_check's publish_validate: a pillar glob must not reach more minions than the
        // exact match would.
        let exact = match call.tgt_type.as_str() {
            "pillar" | "pillar_pcre" => Some("pillar_exact"),
            "compound" => Some("compound_pillar_exact"),
            _ => None,
        };
        if let Some(exact) = exact {
            let delimiter = halite_target::subdict::DEFAULT_DELIMITER;
            let (loose, strict) = (
                self.expected_minions(&call.tgt, &call.tgt_type, delimiter),
                self.expected_minions(&call.tgt, exact, delimiter),
            );
            match (loose, strict) {
                (Ok(l), Ok(s)) if l.minions.iter().all(|m| s.minions.contains(m)) => {}
                (Ok(_), Ok(_)) => return refuse(Refused::PillarGlob),
                (Err(e), _) | (_, Err(e)) => return refuse(Refused::Malformed(e.to_string())),
            }
        }
        Some(call)
    }

    fn peer_request(&self, call: PeerCall) -> PublishRequest {
        let user = &self.settings.peer.user;
        PublishRequest {
            ret: call.ret,
            ..PublishRequest::from_master(user, call.tgt, &call.tgt_type, call.fun, call.arg)
        }
    }

    /// Salt's `minion_pub`: publish, remember the publisher, answer `{jid, minions}`.
    pub(crate) fn minion_pub(&self, minion: &str, load: &Value) -> Value {
        let Some(call) = self.verified(minion, load) else { return empty() };
        // Published without following it: the minion polls pub_ret for the returns.
        match self.publish_job(&self.peer_request(call)) {
            Ok(p) => {
                self.remember_publisher(&p.jid, minion);
                info!(jid = %p.jid, %minion, fun = %shown(load.get_text("fun").unwrap_or("")), "peer publish");
                map([
                    ("jid", Value::from(p.jid.as_str())),
                    ("minions", Value::Array(p.minions.iter().map(|m| Value::from(m.as_str())).collect())),
                ])
            }
            // Salt's cmd_async gives jid 0 when nothing was published; the minion then polls
            // for no one and returns None.
            Err(
                e @ (PublishError::NoMinions(_) | PublishError::Target { .. } | PublishError::UnknownTargetType(_)),
            ) => {
                info!(%minion, reason = %shown(&e.to_string()), "peer publish names no minion");
                map([("jid", Value::from(0)), ("minions", Value::Array(Vec::new()))])
            }
            Err(e) => {
                peer_warn!("peer refused", None, %minion, error = %shown(&e.to_string()), "peer publish failed");
                empty()
            }
        }
    }

    /// Salt's `pub_ret`: the job's cached returns, for the minion that published it only.
    pub(crate) fn pub_ret(&self, minion: &str, load: &Value) -> Value {
        let Some(jid) = load.get_text("jid") else {
            peer_warn!("peer refused", None, %minion, "pub_ret without jid refused");
            return empty();
        };
        let publisher = self.publish_auth_path(jid).and_then(|p| std::fs::read_to_string(p).ok());
        if publisher.as_deref() != Some(minion) {
            peer_warn!(
                "peer refused",
                None,
                %minion,
                jid = %shown(jid),
                "pub_ret refused: the job was not published by this minion"
            );
            return empty();
        }
        Value::Map(cache_returns(self, jid).into_iter().map(|(id, v)| (Value::from(id), v)).collect())
    }

    /// Answers a deferred peer request, sealed; blocks up to its timeout.
    pub(crate) fn run_deferred(&self, work: Deferred) -> crate::master::Reply {
        let minion = work.caller.id();
        let span = tracing::info_span!("request", %minion, cmd = ?work.cmd);
        let _enter = span.enter();
        // A defect must still answer the minion, or it would retry into the same defect.
        let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match work.cmd {
            DeferredCmd::MinionPublish => self.minion_publish(minion, &work.load),
            DeferredCmd::MinionRunner => self.minion_runner(minion, &work.load),
        }))
        .unwrap_or_else(|_| {
            error!("peer request panicked; answered {{}}");
            empty()
        });
        crate::master::seal(&work.key, &reply, work.nonce.as_deref())
    }

    /// Runs a deferred peer request on a thread of its own and hands the reply to `respond`,
    /// so the request worker takes the next request meanwhile. At most
    /// [`MAX_DEFERRED`] run at once; past that the minion is answered `{}` at once (Salt
    /// would hold one of its few workers for each instead).
    pub(crate) fn spawn_deferred(
        self: &Arc<Self>,
        work: Deferred,
        respond: impl FnOnce(crate::master::Reply) + Send + 'static,
    ) {
        if IN_FLIGHT.fetch_add(1, Ordering::SeqCst) >= MAX_DEFERRED {
            IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
            warn!(minion = %work.caller.id(), cmd = ?work.cmd, max = MAX_DEFERRED, "too many peer requests waiting; answered {{}}");
            return respond(crate::master::seal(&work.key, &empty(), work.nonce.as_deref()));
        }
        let master = self.clone();
        let spawned = std::thread::Builder::new().name("peer".into()).spawn(move || {
            struct Done;
            impl Drop for Done {
                fn drop(&mut self) {
                    IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
                }
            }
            let _done = Done;
            respond(master.run_deferred(work));
        });
        if let Err(e) = spawned {
            IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
            error!(error = %e, "cannot start a thread for a peer request; the minion retries");
        }
    }

    /// Salt's `minion_publish`: publish, wait for the returns (`cmd_iter`), and answer them,
    /// `{id: return}` or, with `form: full`, `{id: {ret, jid, ...}, "__jid__": jid}`.
    fn minion_publish(&self, minion: &str, load: &Value) -> Value {
        let Some(call) = self.verified(minion, load) else { return empty() };
        let mut timeout = self.settings.peer.runner.timeout;
        for key in ["tmo", "timeout"] {
            match load.get(key) {
                None => {}
                Some(v) => match v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())) {
                    Some(t) => timeout = t,
                    None => {
                        peer_warn!(
                            "peer refused",
                            None,
                            %minion,
                            value = %shown(&format!("{v:?}")),
                            "Failed to parse timeout value; peer publish refused"
                        );
                        return empty();
                    }
                },
            }
        }
        let full = load.get_text("form") == Some("full");
        let mut channel = InProcess::new(self, &self.settings.peer.user);
        let published = match channel.publish_request(self.peer_request(call)) {
            Ok(p) => p,
            Err(e) => {
                peer_warn!("peer refused", None, %minion, error = %shown(&e.to_string()), "peer publish failed");
                return empty();
            }
        };
        info!(
            jid = %published.jid,
            %minion,
            fun = %shown(load.get_text("fun").unwrap_or("")),
            "peer publish (waiting for returns)"
        );
        let collector = halite_runner::collect::Collector::new(
            &published.jid,
            &published.minions,
            &[],
            std::time::Duration::from_secs(timeout),
            std::time::Duration::from_secs(self.settings.peer.runner.gather_job_timeout),
            false,
            std::time::Instant::now(),
        );
        if let Err(e) = halite_runner::collect::wait_for_returns(&mut channel, &published.jid, collector, |_| Ok(())) {
            warn!(jid = %published.jid, error = %e, "stopped waiting for peer publish returns");
        }
        let mut out: Vec<(Value, Value)> = Vec::new();
        for (id, data) in channel.raw_returns() {
            // The channel also carries the answers to the collector's saltutil.find_job
            // follow-ups (`{}` from a minion that has finished); only the job's own count.
            if data.get_text("jid") != Some(published.jid.as_str()) {
                continue;
            }
            if out.iter().any(|(k, _)| k.as_str() == Some(id.as_str())) {
                continue;
            }
            let entry = if full {
                let mut data = data.clone();
                if let Value::Map(pairs) = &mut data {
                    for (k, _) in pairs.iter_mut() {
                        if k.as_str() == Some("return") {
                            *k = Value::from("ret");
                        }
                    }
                }
                data
            } else {
                data.get("return").cloned().unwrap_or(Value::Nil)
            };
            out.push((Value::from(id.as_str()), entry));
        }
        // Returns the bus did not bring (a lagging listener) come from the job cache, in
        // get_cache_returns' shape, as Salt merges them.
        for (id, cached) in cache_returns(self, &published.jid) {
            if !out.iter().any(|(k, _)| k.as_str() == Some(id.as_str())) {
                out.push((Value::from(id), cached));
            }
        }
        if full {
            out.push((Value::from("__jid__"), Value::from(published.jid.as_str())));
        }
        Value::Map(out)
    }

    /// Salt's `minion_runner`: the runner's data, or the text of its error.
    fn minion_runner(&self, minion: &str, load: &Value) -> Value {
        let (fun, args) = match verify_runner(&self.settings.peer.peer_run, minion, load) {
            Ok(ok) => ok,
            Err(why) => {
                peer_warn!(
                    "peer refused",
                    None,
                    %minion,
                    fun = %shown(load.get_text("fun").unwrap_or("")),
                    reason = %shown(&why.to_string()),
                    "peer runner refused"
                );
                return empty();
            }
        };
        info!(%minion, fun = %shown(&fun), "peer runner");
        match self.run_runner_parsed(&fun, &args) {
            Ok(data) => data,
            Err(e) => {
                peer_warn!(
                    "peer refused",
                    None,
                    %minion,
                    fun = %shown(&fun),
                    error = %shown(&e.to_string()),
                    "peer runner failed"
                );
                Value::from(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(spec: &[(&str, &[&str])]) -> Rules {
        let owned: Vec<(String, Vec<String>)> =
            spec.iter().map(|(m, f)| (m.to_string(), f.iter().map(|s| s.to_string()).collect())).collect();
        Rules::compile("peer", &owned).expect("valid rules")
    }

    fn load(fun: &str, arg: Vec<Value>) -> Value {
        map([
            ("fun", Value::from(fun)),
            ("arg", Value::Array(arg)),
            ("tgt", Value::from("*")),
            ("ret", Value::from("")),
            ("id", Value::from("web1")),
        ])
    }

    #[test]
    fn rules_use_re_match_on_both_sides() {
        let r = rules(&[("web", &["test\\.", "grains.*"]), ("db.*", &["network.*"])]);
        assert!(r.allows("web1", "test.ping"), "re.match: a prefix match is enough");
        assert!(r.allows("web1", "grains.items"));
        assert!(!r.allows("web1", "network.interfaces"), "db's rules are not web's");
        assert!(!r.allows("aweb1", "test.ping"), "anchored at the start");
        assert!(r.allows("db2", "network.interfaces"));
        assert!(!r.allows("db2", "cmd.run"));
        // Rules of every matching minion pattern add up.
        let r = rules(&[(".*", &["test.*"]), ("web.*", &["cmd.run"])]);
        assert!(r.allows("web1", "cmd.run") && r.allows("web1", "test.ping") && !r.allows("db1", "cmd.run"));
    }

    #[test]
    fn bad_patterns_name_the_option() {
        let err = Rules::compile("peer_run", &[(".*".into(), vec!["(unclosed".into()])]).unwrap_err();
        assert!(err.to_string().starts_with("peer_run:"), "{err}");
    }

    #[test]
    fn verify_like_salt() {
        let r = rules(&[(".*", &["grains.*", "network.*", "test.*"])]);
        let ok = verify(&r, "web1", &load("test.echo", vec![Value::from("hi"), Value::from("n=1")])).unwrap();
        assert_eq!(ok.fun, Value::from("test.echo"));
        assert_eq!(
            ok.arg,
            Value::Array(vec![Value::from("hi"), map([("__kwarg__", Value::Boolean(true)), ("n", Value::from(1))]),]),
            "arguments read as parse_input does"
        );
        assert_eq!(ok.tgt_type, "glob");
        assert_eq!(verify(&r, "web1", &load("cmd.run", vec![])), Err(Refused::NotAllowed("cmd.run".into())));
        let publish_everything = rules(&[(".*", &[".*"])]);
        assert_eq!(
            verify(&publish_everything, "web1", &load("publish.publish", vec![])),
            Err(Refused::Recursive("publish.publish".into()))
        );
        assert_eq!(verify(&Rules::default(), "web1", &load("test.ping", vec![])), Err(Refused::NoRules));
        let mut no_ret = load("test.ping", vec![]);
        if let Value::Map(pairs) = &mut no_ret {
            pairs.retain(|(k, _)| k.as_str() != Some("ret"));
        }
        assert_eq!(verify(&r, "web1", &no_ret), Err(Refused::Missing("ret")));
    }

    #[test]
    fn multi_function_calls_need_every_function() {
        let r = rules(&[(".*", &["test.*"])]);
        let ok = verify(&r, "web1", &load("test.ping,test.echo", vec![Value::from(""), Value::from("a b")])).unwrap();
        assert_eq!(ok.fun, Value::Array(vec![Value::from("test.ping"), Value::from("test.echo")]));
        assert_eq!(
            ok.arg,
            Value::Array(vec![Value::Array(vec![]), Value::Array(vec![Value::from("a"), Value::from("b")])])
        );
        // Salt lets these through (any one allowed function, recursion checked on the first).
        assert_eq!(
            verify(&r, "web1", &load("test.ping,cmd.run", vec![Value::from(""), Value::from("")])),
            Err(Refused::NotAllowed("cmd.run".into()))
        );
        let all = rules(&[(".*", &[".*"])]);
        assert_eq!(
            verify(&all, "web1", &load("test.ping,publish.publish", vec![Value::from(""), Value::from("")])),
            Err(Refused::Recursive("publish.publish".into()))
        );
    }

    #[test]
    fn runner_rules() {
        let r = rules(&[("web1", &["manage.up"])]);
        let l = map([("fun", Value::from("manage.up")), ("arg", Value::Array(vec![Value::from("tgt=db*")]))]);
        let (fun, args) = verify_runner(&r, "web1", &l).unwrap();
        assert_eq!(fun, "manage.up");
        assert_eq!(args, vec![map([("__kwarg__", Value::Boolean(true)), ("tgt", Value::from("db*"))])]);
        assert_eq!(verify_runner(&r, "web2", &l), Err(Refused::NotAllowed("manage.up".into())));
        let other = map([("fun", Value::from("jobs.list_jobs")), ("arg", Value::Array(vec![]))]);
        assert_eq!(verify_runner(&r, "web1", &other), Err(Refused::NotAllowed("jobs.list_jobs".into())));
        assert_eq!(verify_runner(&Rules::default(), "web1", &l), Err(Refused::NoRules));
    }
}
