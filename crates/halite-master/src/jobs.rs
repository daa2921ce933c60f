//! Jobs: publishing one (expected minions, jid, job cache, `salt/job/<jid>/new`, the sealed
//! publish) and taking in the returns (`_return` → job cache → `salt/job/<jid>/ret/<id>`).
//!
//! Both the stock Python CLI (clear `publish` on the request port) and halite's own CLI (the
//! local channel in `sock_dir`) come through [`Master::publish_job`], so they target, cache
//! and announce jobs identically.

use std::collections::HashMap;

use halite_proto::payload::{self, map, Value, ValueExt};
use halite_store::jobs::Job;
use halite_store::MinionData;
use halite_target::{CachedMinion, Expr, Matched, MinionIndex, TargetError, TargetType};
use tracing::{error, info, warn};

use halite_ratelog::peer_warn;

use crate::command::{Caller, Outcome};
use crate::events::EventBus;
use crate::jid;
use crate::master::Master;

/// What a client asks to publish: the fields of Salt's clear `publish` load.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    pub user: String,
    pub tgt: Value,
    pub tgt_type: String,
    pub fun: Value,
    pub arg: Value,
    pub ret: Value,
    /// A jid the client chose (Salt honours a valid one), else the master makes one.
    pub jid: Option<String>,
    /// Salt's `kwargs` of the publish load: `delimiter`, `ret_config`, `metadata`, ...
    pub kwargs: Value,
    pub to: Option<Value>,
}

impl PublishRequest {
    /// Reads Salt's clear `publish` load (as the stock `salt` CLI sends it).
    pub fn from_load(load: &Value) -> Result<PublishRequest, PublishError> {
        let (Some(tgt), Some(fun)) = (load.get("tgt"), load.get("fun")) else {
            return Err(PublishError::BadRequest("publish needs tgt and fun".into()));
        };
        Ok(PublishRequest {
            user: load.get_text("user").unwrap_or("root").to_owned(),
            tgt: tgt.clone(),
            tgt_type: load.get_text("tgt_type").unwrap_or("glob").to_owned(),
            fun: fun.clone(),
            arg: load.get("arg").cloned().unwrap_or(Value::Array(vec![])),
            ret: load.get("ret").cloned().unwrap_or(Value::from("")),
            jid: load.get_text("jid").filter(|j| jid::is_jid(j)).map(str::to_owned),
            kwargs: load.get("kwargs").cloned().unwrap_or_else(|| map::<_, String>([])),
            to: load.get("to").cloned(),
        })
    }

    /// A job the master itself starts (a rotation's ping, a reaction, a peer's publish), as
    /// Salt's in-master `LocalClient.cmd_async` sends it: no returner, a fresh jid.
    pub fn from_master(user: &str, tgt: Value, tgt_type: &str, fun: Value, arg: Value) -> PublishRequest {
        PublishRequest {
            user: user.to_owned(),
            tgt,
            tgt_type: tgt_type.to_owned(),
            fun,
            arg,
            ret: Value::from(""),
            jid: None,
            kwargs: map::<_, String>([]),
            to: None,
        }
    }

    /// The `delimiter` of `kwargs`, for grain and pillar targets.
    pub fn delimiter(&self) -> Option<&str> {
        self.kwargs.get_text("delimiter")
    }
}

/// A published job: its jid and whom the master waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub jid: String,
    pub minions: Vec<String>,
    pub missing: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{0}")]
    BadRequest(String),
    #[error("unknown target type {0:?}")]
    UnknownTargetType(String),
    #[error("target {tgt}: {source}")]
    Target { tgt: String, source: TargetError },
    /// Salt's wording, which the stock CLI shows.
    #[error("Master could not resolve minions for target {0}")]
    NoMinions(String),
    #[error("{0}")]
    Internal(String),
    /// The job cache refused the job (a full disk): published, its returns could not be
    /// kept either, and the minions would run it for nothing.
    #[error("job not published: the job cache cannot store it: {0}")]
    NotStored(halite_store::StoreError),
}

/// Accepted keys and, when the target form reads them, every accepted minion's cached data,
/// read once per publish.
struct Snapshot {
    accepted: Vec<String>,
    data: HashMap<String, MinionData>,
}

impl MinionIndex for Snapshot {
    fn accepted(&self) -> Vec<String> {
        self.accepted.clone()
    }

    fn cached(&self, id: &str) -> Option<CachedMinion<'_>> {
        fn present(v: &Value) -> Option<&Value> {
            (!v.is_nil()).then_some(v)
        }
        self.data.get(id).map(|d| CachedMinion { grains: present(&d.grains), pillar: present(&d.pillar) })
    }
}

fn reads_minion_data(t: TargetType) -> bool {
    !matches!(t, TargetType::Glob | TargetType::Pcre | TargetType::List | TargetType::Range)
}

/// A target as errors and log lines show it.
fn shown(tgt: &Value) -> String {
    let text = match tgt {
        Value::Array(items) => halite_yaml::py::repr(&Value::Array(items.clone())),
        other => halite_yaml::py::text(other),
    };
    // Targets come from minions too (peer publishing, the mine): shortened, and no control
    // character reaches a log line or an error a CLI prints.
    let mut out = String::with_capacity(text.len().min(128));
    for c in halite_target::shown(&text).chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Salt's `check_minions` against the accepted keys of `pki` and the minion data cache of
/// `store` (also what the mine targets with).
pub(crate) fn expected_in(
    pki: &halite_pki::PkiDir,
    store: &halite_store::Store,
    nodegroups: &[(String, Value)],
    tgt: &Value,
    tgt_type: &str,
    delimiter: &str,
) -> Result<Matched, PublishError> {
    let kind = TargetType::from_name(tgt_type).ok_or_else(|| PublishError::UnknownTargetType(tgt_type.into()))?;
    let internal = |e: &dyn std::fmt::Display| PublishError::Internal(e.to_string());
    let accepted = pki.list(halite_pki::KeyState::Accepted).map_err(|e| internal(&e))?;
    let data = if reads_minion_data(kind) {
        store.minion_data_of(&accepted).map_err(|e| internal(&e))?
    } else {
        HashMap::new()
    };
    let snapshot = Snapshot { accepted, data };
    let matched = halite_target::check_minions(&snapshot, &Expr::from_value(tgt), kind, delimiter, nodegroups)
        .map_err(|source| PublishError::Target { tgt: shown(tgt), source })?;
    if matched.abandoned > 0 {
        // A target costing more than halite allows per minion (a runaway regex, a grain
        // expression with a search that explodes): those minions are left out of it.
        peer_warn!(
            "costly target",
            None,
            abandoned = matched.abandoned,
            tgt = %halite_ratelog::shown(&shown(tgt)),
            "minions given up on: matching them needed more work than halite allows one minion"
        );
    }
    Ok(matched)
}

fn id_list(ids: &[String]) -> Value {
    Value::Array(ids.iter().map(|m| Value::from(m.as_str())).collect())
}

impl Master {
    /// Salt's `check_minions` against the accepted keys and the minion data cache.
    pub fn expected_minions(&self, tgt: &Value, tgt_type: &str, delimiter: &str) -> Result<Matched, PublishError> {
        expected_in(&self.pki, &self.store, &self.settings.nodegroups, tgt, tgt_type, delimiter)
    }

    /// Salt's `ClearFuncs.publish` after authentication: resolve the expected minions,
    /// refuse a target naming none, assign the jid, cache the job, announce it on the bus and
    /// send it to every minion (each decides for itself whether it is targeted).
    pub fn publish_job(&self, req: &PublishRequest) -> Result<Published, PublishError> {
        let delimiter = req.delimiter().unwrap_or(halite_target::subdict::DEFAULT_DELIMITER);
        // Minions know no nodegroups: Salt's client sends a nodegroup as the compound words
        // it stands for. halite expands it here, so any client may name one.
        let mut req = req.clone();
        if req.tgt_type == "nodegroup" {
            let name = halite_yaml::py::text(&req.tgt);
            let words = halite_target::nodegroup::expand(&name, &self.settings.nodegroups)
                .map_err(|source| PublishError::Target { tgt: name.clone(), source })?;
            req.tgt = Value::Array(words.into_iter().map(Value::from).collect());
            req.tgt_type = "compound".to_owned();
        }
        let req = &req;
        let matched = self.expected_minions(&req.tgt, &req.tgt_type, delimiter)?;
        if matched.minions.is_empty() {
            return Err(PublishError::NoMinions(shown(&req.tgt)));
        }
        let jid = req.jid.clone().unwrap_or_else(jid::new_jid);
        let started_micros = jid::now_micros();

        let mut load = vec![
            ("fun", req.fun.clone()),
            ("arg", req.arg.clone()),
            ("tgt", req.tgt.clone()),
            ("jid", Value::from(jid.as_str())),
            ("ret", req.ret.clone()),
        ];
        if delimiter != halite_target::subdict::DEFAULT_DELIMITER {
            load.push(("delimiter", Value::from(delimiter)));
        }
        load.push(("tgt_type", Value::from(req.tgt_type.as_str())));
        if let Some(to) = &req.to {
            load.push(("to", to.clone()));
        }
        for key in ["ret_config", "metadata", "module_executors", "executor_opts", "ret_kwargs"] {
            if let Some(v) = req.kwargs.get(key) {
                load.push((key, v.clone()));
            }
        }
        load.push(("user", Value::from(req.user.as_str())));
        let load = map(load);

        let job = Job { jid: jid.clone(), load: load.clone(), minions: matched.minions.clone(), started_micros };
        if let Err(e) = self.store.put_job(&job) {
            // Salt publishes anyway and its returns reach the CLI over the bus. Here a
            // return that cannot be stored is not acknowledged (see `save_return_then`), so
            // a job the cache cannot hold would run on every minion and report nothing.
            halite_ratelog::limited_error!("job not saved", %jid, error = %e, "job not published: the job cache cannot store it");
            return Err(PublishError::NotStored(e));
        }
        self.write_salt_job_marker(&jid, &load);
        self.events.fire(jid.clone(), map([("minions", id_list(&matched.minions))]));
        self.events.fire(
            format!("salt/job/{jid}/new"),
            map([
                ("jid", Value::from(jid.as_str())),
                ("tgt_type", Value::from(req.tgt_type.as_str())),
                ("tgt", req.tgt.clone()),
                ("user", Value::from(req.user.as_str())),
                ("fun", req.fun.clone()),
                ("arg", req.arg.clone()),
                ("minions", id_list(&matched.minions)),
                ("missing", id_list(&matched.missing)),
            ]),
        );
        self.seal_and_queue_publish(load)?;
        info!(%jid, user = %req.user, fun = %shown(&req.fun), minions = matched.minions.len(), "published");
        Ok(Published { jid, minions: matched.minions, missing: matched.missing })
    }

    /// The job-cache reads of Salt's returner interface, for `salt-run jobs.*`.
    pub fn job_cache_query(&self, query: &halite_ipc::JobQuery) -> Result<Value, halite_store::StoreError> {
        let with_minions = |job: Job| {
            let mut load = job.load;
            payload::insert(&mut load, "Minions", id_list(&job.minions));
            load
        };
        Ok(match query {
            halite_ipc::JobQuery::Load(jid) => self.store.job(jid)?.map_or(Value::Nil, with_minions),
            halite_ipc::JobQuery::Returns(jid) => {
                Value::Map(self.store.returns(jid)?.into_iter().map(|(id, ret)| (Value::from(id), ret)).collect())
            }
            halite_ipc::JobQuery::List => Value::Map(
                self.store.jobs()?.into_iter().map(|job| (Value::from(job.jid.clone()), with_minions(job))).collect(),
            ),
        })
    }

    /// Takes over the Python master's minion data cache (its `localfs` files under cachedir)
    /// for accepted minions halite has no data for yet, so grain targets work from the first
    /// minute after a migration instead of after each minion's next pillar refresh. Reads
    /// 3006/3007's `minions/<id>/data.p` and 3008's `grains/<id>.p` + `pillar/<id>.p`.
    pub fn import_salt_cache(&self) -> usize {
        let dir = &self.settings.cachedir;
        let read = |path: std::path::PathBuf| -> Option<Value> {
            let bytes = std::fs::read(&path).ok()?;
            match payload::decode(&bytes) {
                Ok(v) => Some(v),
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "unreadable Salt cache file; not imported");
                    None
                }
            }
        };
        let accepted = self.pki.list(halite_pki::KeyState::Accepted).unwrap_or_default();
        let mut imported = 0;
        for id in accepted {
            if matches!(self.store.minion_data(&id), Ok(Some(_))) {
                continue;
            }
            let data = if let Some(mut both) = read(dir.join("minions").join(&id).join("data.p")) {
                MinionData {
                    grains: payload::remove(&mut both, "grains").unwrap_or(Value::Nil),
                    pillar: payload::remove(&mut both, "pillar").unwrap_or(Value::Nil),
                }
            } else if let Some(grains) = read(dir.join("grains").join(format!("{id}.p"))) {
                MinionData { grains, pillar: read(dir.join("pillar").join(format!("{id}.p"))).unwrap_or(Value::Nil) }
            } else {
                continue;
            };
            match self.store.put_minion_data(&id, &data) {
                Ok(()) => imported += 1,
                Err(e) => error!(minion = %id, error = %e, "cannot import Salt's cached minion data"),
            }
        }
        if imported > 0 {
            info!(minions = imported, "imported minion data from Salt's cache");
        }
        imported
    }

    /// Where Salt's `local_cache` keeps job `jid`: `cachedir/jobs/<h[:2]>/<h[2:]>`, `h` the
    /// `hash_type` digest of the jid.
    fn salt_job_dir(&self, jid: &str) -> Option<std::path::PathBuf> {
        let digest = match self.settings.hash_type.as_str() {
            "md5" => openssl::hash::MessageDigest::md5(),
            "sha1" => openssl::hash::MessageDigest::sha1(),
            "sha224" => openssl::hash::MessageDigest::sha224(),
            "sha384" => openssl::hash::MessageDigest::sha384(),
            "sha512" => openssl::hash::MessageDigest::sha512(),
            _ => openssl::hash::MessageDigest::sha256(),
        };
        let hash: String =
            openssl::hash::hash(digest, jid.as_bytes()).ok()?.iter().map(|b| format!("{b:02x}")).collect();
        Some(self.settings.cachedir.join("jobs").join(&hash[..2]).join(&hash[2..]))
    }

    /// Salt's own `salt` CLI checks that a job exists by reading its `.load.p` from Salt's job
    /// cache before it listens for returns. halite's job cache is its redb file, so it also
    /// writes that one file per job (atomically), and removes it with the job.
    fn write_salt_job_marker(&self, jid: &str, load: &Value) {
        let Some(dir) = self.salt_job_dir(jid) else { return };
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let tmp = dir.join(".load.p.tmp");
            std::fs::write(&tmp, payload::encode(load))?;
            std::fs::rename(&tmp, dir.join(".load.p"))
        };
        if let Err(e) = write() {
            warn!(%jid, dir = %dir.display(), error = %e, "cannot write the job's .load.p for Salt's own CLI");
        }
    }

    /// Salt's `keep_jobs_seconds` cleanup: drops jobs published longer ago than `keep`, and
    /// the `.load.p` each left for Salt's CLI. Reads only the expired jobs, never the whole
    /// cache.
    pub fn expire_jobs(&self, keep: std::time::Duration) {
        let cutoff = jid::now_micros().saturating_sub(keep.as_micros() as u64);
        let expired = match self.store.expire_jobs(cutoff) {
            Ok(expired) => expired,
            Err(e) => {
                error!(error = %e, "cannot expire old jobs");
                return;
            }
        };
        for jid in &expired {
            self.forget_publisher(jid);
            if let Some(dir) = self.salt_job_dir(jid) {
                let _ = std::fs::remove_dir_all(&dir);
                if let Some(parent) = dir.parent() {
                    // Only removed when empty: other jobs may share the two-letter directory.
                    let _ = std::fs::remove_dir(parent);
                }
            }
        }
        if !expired.is_empty() {
            info!(jobs = expired.len(), "expired jobs older than keep_jobs_seconds");
        }
    }

    /// Salt's `store_job` for a minion's `_return`: a load without `return`, `jid` or `id` is
    /// ignored; jid `req` (a minion's own job) gets a new jid; the return is cached and
    /// announced as `salt/job/<jid>/ret/<id>` (the id the caller proved) before the minion
    /// is answered.
    pub(crate) fn job_return(&self, caller: &Caller, mut load: Value) -> Outcome {
        let (minion, ip) = (caller.id(), caller.ip());
        let ignored = Outcome::Send(Value::Boolean(false));
        if ["return", "jid", "id"].iter().any(|k| load.get(k).is_none()) {
            peer_warn!("bad return", ip, %minion, "_return without return, jid or id; ignored as Salt ignores it");
            return ignored;
        }
        let jid = match load.get_text("jid") {
            Some("req") => {
                let jid = jid::new_jid();
                let args = load.get("arg").or_else(|| load.get("fun_args")).cloned();
                payload::insert(&mut load, "arg", args.unwrap_or(Value::Array(vec![])));
                payload::insert(&mut load, "tgt_type", Value::from("glob"));
                payload::insert(&mut load, "tgt", Value::from(minion));
                payload::insert(&mut load, "jid", Value::from(jid.as_str()));
                jid
            }
            // Salt's jids, or `nocache` (a return to announce but not keep); the jid keys the
            // job cache, so nothing else is taken from a minion.
            Some(j) if j == "nocache" || (jid::is_jid(j) && j.len() <= MAX_JID_BYTES) => j.to_owned(),
            _ => {
                peer_warn!("bad return", ip, %minion, "_return whose jid is not a jid; ignored");
                return ignored;
            }
        };
        // The cached return and its event name the caller, whatever the load claimed (and
        // carry no `resource_id`, which Salt 3008's CLI would show the return under).
        payload::insert(&mut load, "id", Value::from(minion));
        payload::remove(&mut load, "resource_id");
        info!(%jid, fun = %halite_ratelog::shown(load.get_text("fun").unwrap_or("")), "job return");
        Outcome::AfterCommit { ret: PendingReturn { jid, minion: minion.to_owned(), load }, reply: Value::Nil }
    }

    /// Caches a return, then announces it; whether it was saved (a return that was not is
    /// neither announced nor acknowledged, see [`Master::save_return_then`]).
    pub(crate) fn save_return(&self, ret: PendingReturn) -> bool {
        if ret.jid != "nocache" {
            if let Err(e) = self.store.put_return(&ret.jid, &ret.minion, &ret.load, jid::now_micros()) {
                return_not_saved(&ret.jid, &ret.minion, &e);
                return false;
            }
        }
        ret.announce(&self.events);
        true
    }

    /// [`Master::save_return`] without waiting for the write: once the return is durable it
    /// is announced and `then` runs (it sends the minion's acknowledgement). A return that
    /// cannot be saved (a full disk, a failing store) gets neither: the minion's request
    /// times out and it sends the return again, so no acknowledged return is ever missing
    /// from the job cache (Salt answers an error string, and the return is lost).
    pub(crate) fn save_return_then(&self, ret: PendingReturn, then: impl FnOnce() + Send + 'static) {
        if ret.jid == "nocache" {
            ret.announce(&self.events);
            return then();
        }
        let events = self.events.clone();
        let PendingReturn { jid, minion, load } = ret;
        let (jid_for_store, minion_for_store) = (jid.clone(), minion.clone());
        self.store.put_return_then(&jid_for_store, &minion_for_store, load, jid::now_micros(), move |saved, load| {
            match saved {
                Ok(()) => {
                    PendingReturn { jid, minion, load }.announce(&events);
                    then();
                }
                Err(e) => return_not_saved(&jid, &minion, &e),
            }
        });
    }
}

/// One budget for the whole store, not one per minion: under a full disk every return fails
/// alike, and the first lines say why.
fn return_not_saved(jid: &str, minion: &str, error: &halite_store::StoreError) {
    halite_ratelog::limited_error!(
        "job return not saved",
        %jid,
        %minion,
        %error,
        "job return not saved; not acknowledged, so the minion sends it again"
    );
}

/// The longest jid a return may name: 20 digits and a suffix (Salt's `<jid>_<n>` forms).
const MAX_JID_BYTES: usize = 128;

/// A `_return` accepted and waiting to be cached and announced.
pub(crate) struct PendingReturn {
    jid: String,
    minion: String,
    load: Value,
}

impl PendingReturn {
    /// After the write, not before (Salt fires first): a listener that falls behind the bus
    /// re-reads the job cache, which must then hold every return it missed.
    fn announce(self, events: &EventBus) {
        events.fire(format!("salt/job/{}/ret/{}", self.jid, self.minion), self.load);
    }
}
