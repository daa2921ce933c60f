//! The master's end of the local channel (`halite-ipc`): a unix socket in `sock_dir` that
//! halite's `salt` and `salt-run` use to publish jobs, follow their returns and run runners.
//!
//! Each connection is one task. Requests are answered in order; blocking work (targeting
//! reads the store, publishing seals with RSA) runs on the blocking pool. A connection that
//! publishes with `listen` gets its job's events pushed as they happen; if it falls behind
//! the bus, the returns it missed are re-read from the job cache, so a slow client loses
//! nothing.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use halite_ipc::{encode_frame, job_tag_prefix, ErrorKind, FrameDecoder, Request, ServerMsg};
use halite_proto::payload::{map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;
use tracing::{debug, warn, Instrument};

use crate::events::Event;
use crate::jobs::{PublishError, PublishRequest};
use crate::master::Master;

/// Binds `sock_dir/halite_local.ipc`, replacing a stale socket file a previous run left,
/// readable and writable by the master's user only: the user key in every request is the
/// real proof, the mode keeps other users from even trying.
pub fn bind(sock_dir: &Path) -> anyhow::Result<(UnixListener, PathBuf)> {
    let path = sock_dir.join(halite_ipc::SOCKET_NAME);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing stale {}", path.display())),
    }
    let listener = UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok((listener, path))
}

/// Accepts connections until the listener fails.
pub async fn serve(listener: UnixListener, master: Arc<Master>) {
    let mut next_id = 0u64;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                next_id += 1;
                let span = tracing::info_span!("local", conn = next_id);
                tokio::spawn(Connection::new(stream, master.clone()).run().instrument(span));
            }
            Err(e) => {
                warn!(error = %e, "local channel: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

struct Connection {
    stream: Option<UnixStream>,
    master: Arc<Master>,
    /// Jids whose events this connection follows.
    jobs: Vec<String>,
    events: Option<broadcast::Receiver<Event>>,
    /// (jid, minion) returns already sent, so a resend after lagging sends each once.
    sent: HashSet<(String, String)>,
    /// Every event goes to this client (`state.event`), not only its jobs'.
    watching: bool,
}

impl Connection {
    fn new(stream: UnixStream, master: Arc<Master>) -> Connection {
        Connection {
            stream: Some(stream),
            master,
            jobs: Vec::new(),
            events: None,
            sent: HashSet::new(),
            watching: false,
        }
    }

    async fn run(mut self) {
        let Some(stream) = self.stream.take() else { return };
        let (mut rd, mut wr) = stream.into_split();
        let mut decoder = FrameDecoder::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            tokio::select! {
                read = rd.read(&mut buf) => {
                    let n = match read {
                        Ok(0) => return,
                        Ok(n) => n,
                        Err(e) => {
                            debug!(error = %e, "local client read failed");
                            return;
                        }
                    };
                    decoder.push(&buf[..n]);
                    loop {
                        let frame = match decoder.next_frame() {
                            Ok(Some(f)) => f,
                            Ok(None) => break,
                            Err(e) => {
                                warn!(error = %e, "local client sent a bad frame; closing");
                                return;
                            }
                        };
                        let reply = self.answer(&frame).await;
                        if send(&mut wr, &ServerMsg::Reply(reply)).await.is_err() {
                            return;
                        }
                    }
                }
                event = next_event(&mut self.events) => {
                    let keep_going = match event {
                        Ok(ev) => self.forward(&mut wr, ev).await,
                        Err(broadcast::error::RecvError::Lagged(skipped)) if self.watching => {
                            // A live stream has no cache to catch up from, as Salt's has not
                            // (its subscribers drop at the socket's high-water mark).
                            warn!(skipped, "event stream client fell behind the event bus; events skipped");
                            true
                        }
                        Err(broadcast::error::RecvError::Lagged(skipped)) => {
                            warn!(skipped, "local client fell behind the event bus; resending its returns from the job cache");
                            self.resend_returns(&mut wr).await
                        }
                        Err(broadcast::error::RecvError::Closed) => false,
                    };
                    if !keep_going {
                        return;
                    }
                }
            }
        }
    }

    async fn answer(&mut self, frame: &Value) -> Result<Value, (ErrorKind, String)> {
        let request = Request::from_value(frame).map_err(|e| (ErrorKind::BadRequest, e.to_string()))?;
        if !self.master.user_keys.check(request.user(), Some(request.key())) {
            warn!(user = request.user(), "local request with a wrong user key refused");
            return Err((
                ErrorKind::Auth,
                format!("Authentication failure of type \"user\" occurred for user {}.", request.user()),
            ));
        }
        match request {
            Request::Publish { user, load, listen, .. } => {
                let mut req = PublishRequest::from_load(&load).map_err(publish_error)?;
                req.user = user;
                let jid = req.jid.clone().unwrap_or_else(crate::jid::new_jid);
                req.jid = Some(jid.clone());
                if listen {
                    // Subscribe before publishing: a fast minion's return must not be missed.
                    let bus = &self.master.events;
                    self.events.get_or_insert_with(|| bus.subscribe());
                    self.jobs.push(jid.clone());
                }
                let master = self.master.clone();
                let published = tokio::task::spawn_blocking(move || master.publish_job(&req))
                    .await
                    .map_err(|e| (ErrorKind::Internal, format!("publish task failed: {e}")))?;
                match published {
                    Ok(p) => Ok(map([
                        ("jid", Value::from(p.jid.as_str())),
                        ("minions", ids_value(&p.minions)),
                        ("missing", ids_value(&p.missing)),
                    ])),
                    Err(e) => {
                        self.jobs.retain(|j| *j != jid);
                        Err(publish_error(e))
                    }
                }
            }
            Request::Preview { load, .. } => {
                let req = PublishRequest::from_load(&load).map_err(publish_error)?;
                let master = self.master.clone();
                let matched = tokio::task::spawn_blocking(move || {
                    let delimiter = req.delimiter().unwrap_or(halite_target::subdict::DEFAULT_DELIMITER).to_owned();
                    master.expected_minions(&req.tgt, &req.tgt_type, &delimiter)
                })
                .await
                .map_err(|e| (ErrorKind::Internal, format!("preview task failed: {e}")))?
                .map_err(publish_error)?;
                Ok(map([("minions", ids_value(&matched.minions)), ("missing", ids_value(&matched.missing))]))
            }
            Request::Jobs { query, .. } => {
                let master = self.master.clone();
                tokio::task::spawn_blocking(move || master.job_cache_query(&query))
                    .await
                    .map_err(|e| (ErrorKind::Internal, format!("job cache task failed: {e}")))?
                    .map_err(|e| (ErrorKind::Internal, e.to_string()))
            }
            Request::Fire { user, tag, data, .. } => {
                debug!(%user, %tag, "event fired by a local client");
                self.master.events.fire(tag, data);
                Ok(Value::Boolean(true))
            }
            Request::Pillar { query, .. } => {
                let master = self.master.clone();
                tokio::task::spawn_blocking(move || master.pillar_query(&query))
                    .await
                    .map_err(|e| (ErrorKind::Internal, format!("pillar task failed: {e}")))?
                    .map_err(|e| (ErrorKind::Internal, e))
            }
            Request::Watch { user, .. } => {
                debug!(%user, "local client watches the event bus");
                let bus = &self.master.events;
                self.events.get_or_insert_with(|| bus.subscribe());
                self.watching = true;
                Ok(Value::Boolean(true))
            }
            Request::Mine { load, .. } => {
                let master = self.master.clone();
                tokio::task::spawn_blocking(move || master.mine.get(&load))
                    .await
                    .map_err(|e| (ErrorKind::Internal, format!("mine task failed: {e}")))
            }
            Request::Connected { .. } => {
                let master = self.master.clone();
                let ids = tokio::task::spawn_blocking(move || master.connected_ids())
                    .await
                    .map_err(|e| (ErrorKind::Internal, format!("presence task failed: {e}")))?;
                Ok(ids_value(&ids))
            }
        }
    }

    /// Sends `ev` if the client watches the bus or follows its job; false once the client is gone.
    async fn forward(&mut self, wr: &mut OwnedWriteHalf, ev: Event) -> bool {
        if self.watching {
            return send(wr, &ServerMsg::Event { tag: ev.tag, data: ev.data }).await.is_ok();
        }
        let Some(jid) = self.jobs.iter().find(|j| ev.tag.starts_with(&job_tag_prefix(j))).cloned() else {
            return true;
        };
        if let Some(minion) = ev.tag.strip_prefix(&format!("{}ret/", job_tag_prefix(&jid))) {
            if !self.sent.insert((jid.clone(), minion.to_owned())) {
                return true;
            }
        }
        send(wr, &ServerMsg::Event { tag: ev.tag, data: ev.data }).await.is_ok()
    }

    async fn resend_returns(&mut self, wr: &mut OwnedWriteHalf) -> bool {
        for jid in self.jobs.clone() {
            let master = self.master.clone();
            let j = jid.clone();
            let returns = match tokio::task::spawn_blocking(move || master.store.returns(&j)).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    warn!(%jid, error = %e, "cannot re-read returns for a lagging client");
                    continue;
                }
                Err(_) => continue,
            };
            for (minion, data) in returns {
                let tag = format!("{}ret/{minion}", job_tag_prefix(&jid));
                if !self.forward(wr, Event { tag, data }).await {
                    return false;
                }
            }
        }
        true
    }
}

async fn next_event(rx: &mut Option<broadcast::Receiver<Event>>) -> Result<Event, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn send(wr: &mut OwnedWriteHalf, msg: &ServerMsg) -> std::io::Result<()> {
    wr.write_all(&encode_frame(&msg.to_value())).await
}

fn ids_value(list: &[String]) -> Value {
    Value::Array(list.iter().map(|m| Value::from(m.as_str())).collect())
}

fn publish_error(e: PublishError) -> (ErrorKind, String) {
    let kind = match &e {
        PublishError::NoMinions(_) => ErrorKind::NoMinions,
        PublishError::Target { .. } | PublishError::UnknownTargetType(_) => ErrorKind::Target,
        PublishError::BadRequest(_) => ErrorKind::BadRequest,
        PublishError::Internal(_) | PublishError::NotStored(_) => ErrorKind::Internal,
    };
    (kind, e.to_string())
}
