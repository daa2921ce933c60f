//! The reactor's runtime: Salt's `Reactor` process, as threads of the master.
//!
//! One thread reads the event bus and matches each tag against the `reactor` map (a glob per
//! entry: cheap, so it keeps up with the bus); an event with reaction files is queued, up to
//! `reactor_worker_hwm` waiting, for `reactor_worker_threads` threads that render the files
//! (`halite-reactor`) and run what they ask for, in Salt's order. Nothing here runs on a
//! request worker or a socket task, so a slow reaction never delays a minion. A full queue,
//! a bus the reader fell behind, a file that fails and a reaction that cannot run are each
//! an error in the log naming the tag or reaction; nothing is dropped without a word.
//!
//! Actions: `local.*` publish through [`Master::publish_job`] (as Salt's `LocalClient`, user
//! `root` or the configured `user`); `wheel.key.*` change keys through `halite-pki`, fire
//! `salt/key` per changed key and ask for an AES rotation after a reject or delete (as
//! `salt-key` does); `runner.*` through [`Master::run_runner`] (the runners `salt-run` has).

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use halite_pki::KeyChange;
use halite_proto::payload::{map, Value, ValueExt};
use halite_reactor::{Action, KeyOp, LocalJob, Reaction, ReactorMap, Renderer, RunnerCall, SourceFile, Sources};
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, error, info, warn};

use crate::events::Event;
use crate::jobs::{PublishError, PublishRequest};
use crate::master::Master;

/// The user Salt's `ReactWrap` runs wheel and runner functions as; events carrying it are
/// the reactor's own and never react (Salt's guard against reaction loops).
const REACTOR_USER: &str = "Reactor";

/// The reactor options of the master config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub map: ReactorMap,
    pub threads: usize,
    pub queue: usize,
    /// Who `local` reactions publish as.
    pub user: String,
    pub rotate_aes_key: bool,
    pub master_id: String,
    pub renderer: String,
}

impl Settings {
    pub fn from_config(c: &halite_config::MasterConfig) -> Settings {
        Settings {
            map: ReactorMap::new(c.reactor.clone()),
            threads: c.reactor_worker_threads as usize,
            queue: c.reactor_worker_hwm as usize,
            user: c.publishing_user(),
            rotate_aes_key: c.rotate_aes_key,
            master_id: c.master_id(),
            renderer: c.renderer.clone(),
        }
    }
}

/// An event with the reaction files its tag selected.
struct Work {
    tag: String,
    data: Value,
    files: Vec<String>,
}

/// The running reactor; its threads live as long as the process.
pub struct Reactor {
    _threads: Vec<std::thread::JoinHandle<()>>,
}

/// Starts the reactor when `reactor` maps any tag (Salt starts its reactor engine only then).
pub fn start(master: Arc<Master>, settings: Settings) -> std::io::Result<Option<Reactor>> {
    if settings.map.is_empty() {
        return Ok(None);
    }
    let settings = Arc::new(settings);
    let files = Arc::new(MasterFiles(Arc::clone(&master)));
    let mut opts = master.settings.pillar.opts.clone();
    if let Value::Map(pairs) = &mut opts {
        pairs.retain(|(k, _)| k.as_str() != Some("id"));
        pairs.push((Value::from("id"), Value::from(settings.master_id.as_str())));
    }
    let renderer = Arc::new(Renderer::new(
        &settings.renderer,
        master.pillar.settings().top_jinja,
        opts,
        // Salt's reactor templates see the master host's grains; halite collects none.
        Value::Map(Vec::new()),
        files.clone(),
        Some(master.mine.clone()),
    ));
    let (tx, rx) = sync_channel::<Work>(settings.queue);
    let rx = Arc::new(Mutex::new(rx));
    let mut threads = Vec::with_capacity(settings.threads + 1);
    for i in 0..settings.threads {
        let (rx, master, settings, renderer, files) =
            (Arc::clone(&rx), Arc::clone(&master), Arc::clone(&settings), Arc::clone(&renderer), Arc::clone(&files));
        threads.push(std::thread::Builder::new().name(format!("reactor-{i}")).spawn(move || {
            let worker = Worker { master, settings, renderer, files };
            worker.run(&rx);
        })?);
    }
    let events = master.events.subscribe();
    let map = settings.map.clone();
    threads.push(std::thread::Builder::new().name("reactor-events".into()).spawn(move || {
        read_events(events, &map, &tx);
    })?);
    info!(threads = settings.threads, queue = settings.queue, "reactor started");
    Ok(Some(Reactor { _threads: threads }))
}

/// Feeds the queue until the bus closes; returns how many events found it full.
fn read_events(mut events: tokio::sync::broadcast::Receiver<Event>, map: &ReactorMap, tx: &SyncSender<Work>) -> u64 {
    let mut refused = 0;
    loop {
        let event = match events.blocking_recv() {
            Ok(event) => event,
            Err(RecvError::Lagged(n)) => {
                error!(missed = n, "the reactor fell behind the event bus: {n} events got no reaction");
                continue;
            }
            Err(RecvError::Closed) => return refused,
        };
        if event.data.get_text("user") == Some(REACTOR_USER) {
            continue;
        }
        if event.tag.contains("salt/reactors/manage") {
            warn!(tag = %event.tag, "halite's reactor is managed through the master config; this request is ignored");
            continue;
        }
        let files = map.reactors_for(&event.tag);
        if files.is_empty() {
            continue;
        }
        debug!(tag = %event.tag, ?files, "event selects reactions");
        let tag = event.tag;
        match tx.try_send(Work { tag, data: event.data, files }) {
            Ok(()) => {}
            Err(TrySendError::Full(w)) => {
                refused += 1;
                error!(
                    tag = %w.tag,
                    "reactions to {} not run: the reactor queue is full; consider tuning reactor_worker_threads and/or \
                     reactor_worker_hwm",
                    w.tag
                );
            }
            Err(TrySendError::Disconnected(_)) => return refused,
        }
    }
}

struct Worker {
    master: Arc<Master>,
    settings: Arc<Settings>,
    renderer: Arc<Renderer>,
    files: Arc<MasterFiles>,
}

impl Worker {
    fn run(&self, rx: &Mutex<Receiver<Work>>) {
        loop {
            let work = {
                let Ok(rx) = rx.lock() else { return };
                match rx.recv() {
                    Ok(work) => work,
                    Err(_) => return,
                }
            };
            // A defect in a renderer must not take a reactor thread down with it.
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.react(&work)));
            if done.is_err() {
                error!(tag = %work.tag, files = ?work.files, "the reaction to {} panicked; the reactor carries on", work.tag);
            }
        }
    }

    fn react(&self, work: &Work) {
        let reactions = self.renderer.reactions(&work.tag, &work.data, &work.files, self.files.as_ref());
        for e in &reactions.errors {
            error!(tag = %work.tag, "{e}");
        }
        for reaction in reactions.reactions {
            match reaction {
                Ok(r) => self.execute(&work.tag, &r),
                Err(e) => error!(tag = %work.tag, "{e}"),
            }
        }
    }

    fn execute(&self, tag: &str, r: &Reaction) {
        match &r.action {
            Action::Local(job) => self.local(tag, r, job),
            Action::WheelKey { op, patterns } => self.wheel_key(tag, r, *op, patterns),
            Action::Runner(call) => self.runner(tag, r, call),
        }
    }

    /// Salt hands runner reactions to its thread pool; here the reactor thread runs it (a
    /// runner that waits for returns holds that thread, never a request worker).
    fn runner(&self, tag: &str, r: &Reaction, call: &RunnerCall) {
        match self.master.run_runner(&call.fun, call.arg.clone(), call.kwarg.clone()) {
            Ok(ret) => info!(tag, reaction = %r.id, sls = %r.sls, fun = %call.fun, ret = %halite_yaml::py::repr(&ret),
                "runner reaction done"),
            Err(e) => error!(tag, reaction = %r.id, sls = %r.sls,
                "Reactor '{}' failed to execute runner '{}': {e}", r.id, call.fun),
        }
    }

    fn local(&self, tag: &str, r: &Reaction, job: &LocalJob) {
        let req = PublishRequest {
            ret: Value::from(job.ret.as_str()),
            jid: job.jid.clone().filter(|j| crate::jid::is_jid(j)),
            kwargs: Value::Map(job.kwargs.iter().map(|(k, v)| (Value::from(k.as_str()), v.clone())).collect()),
            ..PublishRequest::from_master(
                &self.settings.user,
                job.tgt.clone(),
                &job.tgt_type,
                Value::from(job.fun.as_str()),
                Value::Array(job.arg.clone()),
            )
        };
        match self.master.publish_job(&req) {
            Ok(p) => {
                info!(tag, reaction = %r.id, sls = %r.sls, jid = %p.jid, fun = %job.fun, minions = p.minions.len(),
                "reaction published")
            }
            // Salt's cmd_async answers 0 and says nothing; the log says who was missing.
            Err(PublishError::NoMinions(tgt)) => {
                warn!(tag, reaction = %r.id, sls = %r.sls, fun = %job.fun, "reaction targets no minion: {tgt}")
            }
            Err(e) => error!(tag, reaction = %r.id, sls = %r.sls,
                "Reactor '{}' failed to execute local '{}': {e}", r.id, job.fun),
        }
    }

    fn wheel_key(&self, tag: &str, r: &Reaction, op: KeyOp, patterns: &[String]) {
        let change = match op {
            KeyOp::Accept { include_rejected, include_denied } => {
                KeyChange::Accept { include_rejected, include_denied }
            }
            KeyOp::Reject { include_accepted, include_denied } => {
                KeyChange::Reject { include_accepted, include_denied }
            }
            KeyOp::Delete => KeyChange::Delete,
        };
        let applied = match halite_pki::keyops::apply(&self.master.pki, change, patterns) {
            Ok(applied) => applied,
            Err(e) => {
                error!(tag, reaction = %r.id, sls = %r.sls, "Reactor '{}' failed to execute wheel 'key.{}': {e}",
                    r.id, change.act());
                return;
            }
        };
        for (id, _) in &applied.changed {
            self.master.events.fire(
                "salt/key",
                map([
                    ("result", Value::Boolean(true)),
                    ("act", Value::from(change.act())),
                    ("id", Value::from(id.as_str())),
                ]),
            );
        }
        info!(tag, reaction = %r.id, sls = %r.sls, act = change.act(), keys = ?applied.ids(), "reaction changed keys");
        for (id, e) in &applied.failed {
            error!(tag, reaction = %r.id, sls = %r.sls, minion = %id,
                "Reactor '{}' could not {} the key of {id}: {e}", r.id, change.act());
        }
        // Only an accepted key going changes who may read publishes; rotating for a pending
        // stranger's key would send every minion to sign in again for nothing.
        if change.rotates_aes_key() && applied.removed_an_accepted_key() && self.settings.rotate_aes_key {
            if let Err(e) = halite_pki::request_rotation(&self.master.settings.cachedir, &self.settings.master_id) {
                error!(tag, reaction = %r.id, "the AES key was not rotated after key.{}: {e}", change.act());
            }
        }
    }
}

/// Reaction files and the templates they import: `salt://` through the file server's `base`
/// (as Salt's `cp.cache_file`), anything else as a filesystem glob.
struct MasterFiles(Arc<Master>);

impl Sources for MasterFiles {
    fn files(&self, path: &str) -> Vec<SourceFile> {
        let read = |p: &std::path::Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
        if let Some(rel) = path.strip_prefix("salt://") {
            return self
                .0
                .fileserver
                .find_file(rel, "base")
                .map(|found| SourceFile {
                    path: path.to_owned(),
                    template_name: found.rel.clone(),
                    text: read(&found.path),
                })
                .into_iter()
                .collect();
        }
        halite_config::glob(path)
            .into_iter()
            .map(|p| SourceFile { text: read(std::path::Path::new(&p)), template_name: p.clone(), path: p })
            .collect()
    }
}

impl halite_pillar::jinja::TemplateFiles for MasterFiles {
    fn read(&self, rel: &str) -> Option<Result<String, String>> {
        let found = self.0.fileserver.find_file(rel, "base")?;
        Some(std::fs::read_to_string(&found.path).map_err(|e| format!("{}: {e}", found.path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventBus;

    #[test]
    fn a_full_queue_refuses_events_and_says_so_and_own_events_never_queue() {
        let bus = EventBus::new(16);
        let events = bus.subscribe();
        let map = ReactorMap::new(vec![("salt/key".into(), vec!["salt://key.sls".into()])]);
        let (tx, rx) = sync_channel::<Work>(1);
        for id in ["a", "b", "c"] {
            bus.fire("salt/key", map_of(&[("act", "accept"), ("id", id)]));
        }
        bus.fire("salt/key", map_of(&[("act", "accept"), ("user", REACTOR_USER)]));
        bus.fire("salt/auth", map_of(&[("act", "pend")]));
        drop(bus);
        assert_eq!(read_events(events, &map, &tx), 2);
        let queued = rx.try_recv().expect("the first event queued");
        assert_eq!((queued.tag.as_str(), queued.data.get_text("id")), ("salt/key", Some("a")));
        assert_eq!(queued.files, ["salt://key.sls"]);
        assert!(rx.try_recv().is_err());
    }

    fn map_of(pairs: &[(&str, &str)]) -> Value {
        Value::Map(pairs.iter().map(|(k, v)| (Value::from(*k), Value::from(*v))).collect())
    }
}
