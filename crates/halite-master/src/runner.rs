//! Runners on the master: `halite-runner`'s functions run in-process, for `publish.runner`
//! (`peer_run`) and for any master-side caller ([`Master::run_runner`]).
//!
//! A runner blocks for as long as its jobs take (`manage.up` waits `timeout` for returns), so
//! callers run it off the request workers. Its jobs go through [`Master::publish_job`] like
//! every other publish, and their returns are read from the master's own event bus.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use halite_ipc::{JobQuery, PillarQuery};
use halite_proto::payload::Value;
use halite_runner::{Backend, JobChannel, Published, RunnerError};
use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::events::Event;
use crate::jobs::{PublishError, PublishRequest};
use crate::master::Master;

/// Why the master could not do what a runner or a peer publish asked of it.
#[derive(Debug, thiserror::Error)]
pub enum InProcessError {
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("job cache: {0}")]
    Store(#[from] halite_store::StoreError),
    #[error("pki dir: {0}")]
    Pki(#[from] halite_pki::PkiError),
    #[error("{0}")]
    Pillar(String),
    #[error("the event bus closed")]
    BusClosed,
}

/// The master as a runner backend and job channel: publishes as `user`, and follows the
/// bus from its creation, so no return of a job it publishes can be missed.
pub struct InProcess<'a> {
    master: &'a Master,
    user: String,
    events: broadcast::Receiver<Event>,
    /// Raw return events of the jobs it published (Salt's `cmd_iter(raw=True)` data), kept
    /// for callers that answer with them.
    returns: Vec<(String, Value)>,
    published: Vec<String>,
}

impl<'a> InProcess<'a> {
    pub fn new(master: &'a Master, user: &str) -> InProcess<'a> {
        InProcess {
            master,
            user: user.to_owned(),
            events: master.events.subscribe(),
            returns: Vec::new(),
            published: Vec::new(),
        }
    }

    /// Publishes an already-built request (the peer path, which sets more than a runner does).
    pub fn publish_request(&mut self, mut req: PublishRequest) -> Result<Published, PublishError> {
        req.user = self.user.clone();
        let p = self.master.publish_job(&req)?;
        self.published.push(p.jid.clone());
        Ok(Published { jid: p.jid, minions: p.minions, missing: p.missing })
    }

    /// The return events seen so far, by minion, as they arrived.
    pub fn raw_returns(&self) -> &[(String, Value)] {
        &self.returns
    }
}

impl JobChannel for InProcess<'_> {
    type Error = InProcessError;

    fn publish(&mut self, load: Value) -> Result<Option<Published>, InProcessError> {
        match PublishRequest::from_load(&load).and_then(|req| self.publish_request(req)) {
            Ok(p) => Ok(Some(p)),
            Err(PublishError::NoMinions(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn next_event(&mut self, deadline: Instant) -> Result<Option<(String, Value)>, InProcessError> {
        loop {
            match recv_until(&mut self.events, deadline) {
                None => return Ok(None),
                Some(Ok(ev)) => {
                    let Some(jid) = self.published.iter().find(|j| ev.tag.starts_with(&format!("salt/job/{j}/")))
                    else {
                        continue;
                    };
                    if let Some(minion) = ev.tag.strip_prefix(&format!("salt/job/{jid}/ret/")) {
                        self.returns.push((minion.to_owned(), ev.data.clone()));
                    }
                    return Ok(Some((ev.tag, ev.data)));
                }
                // The job cache still has what was skipped: peer publishes merge it in at the
                // end, as Salt's do; a runner's ping may report a skipped minion down.
                Some(Err(broadcast::error::RecvError::Lagged(skipped))) => {
                    warn!(skipped, "in-process runner fell behind the event bus");
                }
                Some(Err(broadcast::error::RecvError::Closed)) => return Err(InProcessError::BusClosed),
            }
        }
    }
}

impl Backend for InProcess<'_> {
    fn job_cache(&mut self, query: JobQuery) -> Result<Value, InProcessError> {
        Ok(self.master.job_cache_query(&query)?)
    }

    fn pillar(&mut self, query: PillarQuery) -> Result<Value, InProcessError> {
        self.master.pillar_query(&query).map_err(InProcessError::Pillar)
    }

    fn connected(&mut self) -> Result<Vec<String>, InProcessError> {
        Ok(self.master.connected_ids())
    }

    fn accepted(&mut self) -> Result<Vec<String>, InProcessError> {
        Ok(self.master.pki.list(halite_pki::KeyState::Accepted)?)
    }

    fn mine_get(&mut self, tgt: Value, fun: Value, tgt_type: Value) -> Result<Value, InProcessError> {
        Ok(self.master.mine.get(&halite_runner::mine_load(&self.master.settings.master_id, tgt, fun, tgt_type)))
    }

    fn notice(&mut self, text: &str) {
        info!("runner: {text}");
    }
}

/// Waits for the next event until `deadline` on a plain thread (runners run outside the
/// async runtime): the receive future is polled with a waker that unparks this thread.
/// `None` once the deadline passes; the future is cancel-safe, so nothing is lost.
fn recv_until(
    rx: &mut broadcast::Receiver<Event>,
    deadline: Instant,
) -> Option<Result<Event, broadcast::error::RecvError>> {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut recv = std::pin::pin!(rx.recv());
    loop {
        if let Poll::Ready(got) = recv.as_mut().poll(&mut cx) {
            return Some(got);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::park_timeout(deadline - now);
    }
}

impl Master {
    /// Runs runner `fun` in the master, as Salt's `RunnerClient` does, and returns its data.
    /// Blocks for as long as the runner's jobs take: call it off the request workers.
    pub fn run_runner(&self, fun: &str, arg: Vec<Value>, kwarg: Vec<(String, Value)>) -> Result<Value, RunnerError> {
        let mut args = arg;
        if !kwarg.is_empty() {
            let mut kw = vec![(Value::from("__kwarg__"), Value::Boolean(true))];
            kw.extend(kwarg.into_iter().map(|(k, v)| (Value::from(k), v)));
            args.push(Value::Map(kw));
        }
        self.run_runner_parsed(fun, &args)
    }

    /// [`Master::run_runner`] with arguments already in `parse_input`'s shape.
    pub(crate) fn run_runner_parsed(&self, fun: &str, args: &[Value]) -> Result<Value, RunnerError> {
        let mut backend = InProcess::new(self, &self.settings.peer.user);
        halite_runner::call(&mut backend, &self.settings.peer.runner, fun, args).map(|out| out.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_an_event_or_the_deadline() {
        let (tx, mut rx) = broadcast::channel(4);
        let soon = Instant::now() + std::time::Duration::from_millis(20);
        assert!(recv_until(&mut rx, soon).is_none(), "nothing sent: times out");
        let sender = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            let _ = tx.send(Event { tag: "t".into(), data: Value::Nil });
        });
        let later = Instant::now() + std::time::Duration::from_secs(5);
        let got = recv_until(&mut rx, later).and_then(Result::ok).map(|e| e.tag);
        assert_eq!(got.as_deref(), Some("t"), "woken by a send from another thread");
        sender.join().ok();
    }
}
