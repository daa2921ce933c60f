//! The request workers: a fixed set of OS threads (`worker_threads`, Salt's MWorker count)
//! that turn request bodies into replies.
//!
//! Why a fixed pool rather than tokio's blocking pool: handlers are RSA-, disk- and
//! lock-bound. Under an auth storm the blocking pool grows to hundreds of threads that only
//! contend for two cores (and for OpenSSL's internal locks), each with its own malloc arena;
//! a pool sized like Salt's keeps the CPU on the work and memory flat, and requests wait
//! in one queue in arrival order.
//!
//! The queue is bounded ([`QUEUE_PER_WORKER`] requests per worker, and [`QUEUED_BYTES`] of
//! request bodies in all): past it a request is dropped with a rate-limited warning, and its REQ peer times out and asks again, as it
//! would of a busy Salt master. The ROUTER's own queue in front of it is bounded the same
//! way, so what waits for a worker is bounded end to end (with the message-size limit, so is
//! its memory).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use halite_proto::payload::ValueExt;
use halite_proto::request::{self, Request};
use halite_ratelog::peer_warn;
use tracing::{debug, error, warn};

use crate::master::Master;

/// One request from the ROUTER: who asked, and what.
pub struct Job {
    pub peer: halite_zmq::PeerId,
    pub remote: std::net::SocketAddr,
    pub body: Vec<u8>,
}

/// Requests that may wait per worker thread before new ones are dropped: about a second of
/// sign-ins (the slowest request) for each worker, far more of anything else.
pub const QUEUE_PER_WORKER: usize = 256;

/// Bytes of request bodies that may wait for a worker: a few maximum-size messages, or
/// thousands of ordinary ones (a minion's request is a few KiB; a big state run's return a
/// few MiB), so a peer pipelining 64 MiB messages cannot queue gigabytes.
pub const QUEUED_BYTES: usize = 256 << 20;

pub struct Workers {
    queue: Option<mpsc::SyncSender<Job>>,
    /// Body bytes queued and not yet taken by a worker.
    queued_bytes: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts `count` workers that answer through `replier`.
    pub fn start(count: usize, master: Arc<Master>, replier: halite_zmq::Replier) -> std::io::Result<Workers> {
        let (queue, jobs) = mpsc::sync_channel::<Job>(QUEUE_PER_WORKER * count.max(1));
        let jobs = Arc::new(Mutex::new(jobs));
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::with_capacity(count);
        for n in 0..count.max(1) {
            let (jobs, master, replier, queued) = (jobs.clone(), master.clone(), replier.clone(), queued_bytes.clone());
            let thread = std::thread::Builder::new()
                .name(format!("worker-{n}"))
                .spawn(move || work(&jobs, &queued, &master, &replier))?;
            threads.push(thread);
        }
        Ok(Workers { queue: Some(queue), queued_bytes, threads })
    }

    /// Queues a request; never blocks. A full queue drops it (the peer asks again).
    pub fn submit(&self, job: Job) {
        let Some(queue) = &self.queue else { return };
        let (len, ip) = (job.body.len(), job.remote.ip());
        let before = self.queued_bytes.fetch_add(len, Ordering::SeqCst);
        let refused = if before.saturating_add(len) > QUEUED_BYTES {
            Some(job)
        } else {
            match queue.try_send(job) {
                Ok(()) => None,
                Err(mpsc::TrySendError::Full(job)) => Some(job),
                Err(mpsc::TrySendError::Disconnected(job)) => {
                    error!("request workers have stopped; request dropped");
                    Some(job)
                }
            }
        };
        if refused.is_some() {
            self.queued_bytes.fetch_sub(len, Ordering::SeqCst);
            peer_warn!(
                "queue full",
                Some(ip),
                bytes = len,
                "request workers' queue is full; request dropped, the peer will retry"
            );
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

fn work(jobs: &Mutex<mpsc::Receiver<Job>>, queued: &AtomicUsize, master: &Arc<Master>, replier: &halite_zmq::Replier) {
    loop {
        // The lock is held only while waiting for the next job, never while handling one.
        let next = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = next else { return };
        queued.fetch_sub(job.body.len(), Ordering::SeqCst);
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
        let (peer, replier) = (job.peer, replier.clone());
        let respond = move |body: Vec<u8>| match replier.reply(peer, &body) {
            // Logged with the peer: a return's reply is sent from the thread that committed it.
            Ok(()) => debug!(%peer, bytes = body.len(), "reply queued"),
            Err(e) => warn!(%peer, error = %e, "reply not sent"),
        };
        let ip = Some(job.remote.ip());
        let handled =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| master.handle_then(ip, &job.body, respond)));
        if handled.is_err() {
            error!("request handler panicked; the peer gets no reply and retries");
        }
    }
}

/// A clear `_auth`: the one request that is safe to drop when its asker is gone (it changes
/// nothing but the asker's own state, and the asker asks again). Returns and events are
/// never dropped, so nothing a minion reported is lost.
fn is_sign_in(body: &[u8]) -> bool {
    matches!(request::parse(body), Ok(Request::Clear { load, .. }) if load.get_text("cmd") == Some("_auth"))
}
