//! The request workers: a fixed set of OS threads (`worker_threads`, Salt's MWorker count)
//! that turn request bodies into replies.
//!
//! Why a fixed pool rather than tokio's blocking pool: handlers are RSA-, disk- and
//! lock-bound. Under an auth storm the blocking pool grows to hundreds of threads that only
//! contend for two cores (and for OpenSSL's internal locks), each with its own malloc arena;
//! a pool sized like Salt's keeps the CPU on the work and memory flat, and requests wait
//! in one queue in arrival order.
//!
//! The queue is bounded ([`QUEUE_PER_WORKER`] requests per worker, and the request socket's
//! `request_queue_bytes` in all, counted until each request is answered, so a return
//! waiting for its group commit counts too):
//! when it is full, the request socket stops taking requests, and a minion's request waits
//! in its connection until there is room, answered late rather than dropped (halite-zmq's
//! crate documentation). Dropping instead made a storm of 10,000 sign-ins four times
//! slower: every dropped minion waited out its timeout, then queued again.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use halite_proto::payload::ValueExt;
use halite_proto::request;
use halite_zmq::Request;
use tokio::sync::mpsc;
use tracing::{debug, error, warn};

use crate::master::Master;

/// Requests that may wait per worker thread before the request socket stops taking more:
/// about a second of sign-ins (the slowest request) for each worker, far more of anything
/// else.
pub const QUEUE_PER_WORKER: usize = 256;

pub struct Workers {
    queue: Option<mpsc::Sender<Request>>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts `count` workers that answer through `replier`.
    pub fn start(count: usize, master: Arc<Master>, replier: halite_zmq::Replier) -> std::io::Result<Workers> {
        let (queue, jobs) = mpsc::channel::<Request>(QUEUE_PER_WORKER * count.max(1));
        let jobs = Arc::new(Mutex::new(jobs));
        let mut threads = Vec::with_capacity(count);
        for n in 0..count.max(1) {
            let (jobs, master, replier) = (jobs.clone(), master.clone(), replier.clone());
            let thread = std::thread::Builder::new()
                .name(format!("worker-{n}"))
                .spawn(move || work(&jobs, &master, &replier))?;
            threads.push(thread);
        }
        Ok(Workers { queue: Some(queue), threads })
    }

    /// Queues a request, waiting for room if the queue is full (meanwhile the request
    /// socket's own queue fills, and then peers wait in their connections).
    pub async fn submit(&self, request: Request) {
        let Some(queue) = &self.queue else { return };
        if queue.send(request).await.is_err() {
            error!("request workers have stopped; request dropped");
        }
    }

    /// Lets the workers finish what is queued, then joins them.
    pub fn shutdown(mut self) {
        self.queue = None;
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                error!("a request worker panicked");
            }
        }
    }
}

fn work(jobs: &Mutex<mpsc::Receiver<Request>>, master: &Arc<Master>, replier: &halite_zmq::Replier) {
    loop {
        // The lock is held only while waiting for the next job, never while handling one.
        let next = match jobs.lock() {
            Ok(mut receiver) => receiver.blocking_recv(),
            Err(_) => return,
        };
        let Some(job) = next else { return };
        let span = tracing::debug_span!("request", peer = %job.peer, remote = %job.remote);
        let _entered = span.enter();
        if !replier.is_connected(job.peer) && is_sign_in(&job.body) {
            // After a rotation every minion signs in at once; one whose request waited past
            // its `auth_timeout` has closed that connection and asked again on a new one.
            // Computing the old sign-in (a private-key operation) would only delay the new
            // one, which is how an auth storm feeds itself (Salt issue #64035).
            debug!("sign-in skipped: its connection closed while it waited");
            continue;
        }
        debug!(bytes = job.body.len(), "request taken");
        let Request { peer, remote, body, admission } = job;
        let replier = replier.clone();
        // The request's bytes stay counted until it is answered, or its answer given up: a
        // return waits for its group commit, and the queue's byte budget must cover what
        // waits there too (a slow disk must not let returns pile up without bound).
        let respond = move |reply: Vec<u8>| {
            let _admission = admission;
            match replier.reply(peer, &reply) {
                // Logged with the peer: a return's reply is sent from the thread that committed it.
                Ok(()) => debug!(%peer, bytes = reply.len(), "reply queued"),
                Err(e) => warn!(%peer, error = %e, "reply not sent"),
            }
        };
        let ip = Some(remote.ip());
        let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| master.handle_then(ip, &body, respond)));
        if handled.is_err() {
            error!("request handler panicked; the peer gets no reply and retries");
        }
    }
}

/// A clear `_auth`: the one request that is safe to drop when its asker is gone (it changes
/// nothing but the asker's own state, and the asker asks again). Returns and events are
/// never dropped, so nothing a minion reported is lost.
fn is_sign_in(body: &[u8]) -> bool {
    matches!(request::parse(body), Ok(request::Request::Clear { load, .. }) if load.get_text("cmd") == Some("_auth"))
}
