//! The publish socket: every publish is encoded once and written to each subscriber whose
//! subscription matches, from one fan-out thread, so a publisher never waits on a
//! subscriber and a slow subscriber only delays itself.
//!
//! The publisher also writes the log limiter's summaries of suppressed warnings, once a
//! second: the master runs it in a process of its own (`--publisher`), where the master's
//! own tick, which does this for the request socket, does not reach.

use std::net::SocketAddr;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use halite_zmtp::SocketType;
use tracing::{debug, info};

use crate::peer::{OnMessage, Publication, Sent, Server};
use crate::{listen, SocketOptions, TransportError};

/// Queues publishes from any thread or task. Cheap to clone.
#[derive(Clone)]
pub struct PublishSender {
    tx: std_mpsc::Sender<Vec<u8>>,
}

impl PublishSender {
    /// A sender and the receiving end, for a publisher that lives elsewhere (the master
    /// runs its publisher in a child process and feeds it through this).
    pub fn channel() -> (PublishSender, std_mpsc::Receiver<Vec<u8>>) {
        let (tx, rx) = std_mpsc::channel();
        (PublishSender { tx }, rx)
    }

    /// Queues one single-frame publish for every subscriber.
    pub fn publish(&self, frame: Vec<u8>) -> Result<(), TransportError> {
        if frame.is_empty() {
            return Ok(());
        }
        self.tx.send(frame).map_err(|_| TransportError::Stopped("publish"))
    }
}

/// The listening publish socket and its fan-out thread.
pub struct Publisher {
    sender: PublishSender,
    pub local_addr: SocketAddr,
    pub(crate) server: Arc<Server>,
    accept: tokio::task::JoinHandle<()>,
    /// Writes the summaries of suppressed warnings every second.
    flush: tokio::task::JoinHandle<()>,
    fan_out: Option<JoinHandle<()>>,
}

impl Publisher {
    pub fn sender(&self) -> PublishSender {
        self.sender.clone()
    }

    /// Subscribers connected now (handshake complete or not).
    pub fn connections(&self) -> usize {
        self.server.snapshot().len()
    }

    pub async fn shutdown(mut self) {
        // Senders may outlive the publisher (handlers hold clones), so the channel closing
        // cannot be what stops the thread: the empty frame does.
        let _ = self.sender.tx.send(Vec::new());
        if let Some(thread) = self.fan_out.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        self.accept.abort();
        self.server.close(Duration::from_secs(1)).await;
        self.flush.abort();
        // What was suppressed in windows still open goes with the process; what ended is
        // written now.
        halite_ratelog::PEERS.flush();
    }
}

/// Listens for SUB peers on `addr`. Must be called inside a tokio runtime.
pub fn bind_publisher(addr: SocketAddr, opts: &SocketOptions) -> Result<Publisher, TransportError> {
    let (sender, rx) = PublishSender::channel();
    serve_publisher(addr, opts, sender, rx)
}

/// Listens on `addr` and publishes whatever arrives on `rx` until it closes or yields an
/// empty frame.
pub fn serve_publisher(
    addr: SocketAddr,
    opts: &SocketOptions,
    sender: PublishSender,
    rx: std_mpsc::Receiver<Vec<u8>>,
) -> Result<Publisher, TransportError> {
    let listener = listen(addr, opts)?;
    let local_addr = listener.local_addr().map_err(|source| TransportError::Bind { addr, source })?;
    let server = Server::new(SocketType::Pub, "publish", opts.clone());
    // Subscribers' messages are subscriptions, which the connection handles itself.
    let on_message: OnMessage = Arc::new(|_, _| None);
    let accept = server.spawn_accept(listener, on_message);
    let fan_out = {
        let server = server.clone();
        std::thread::Builder::new()
            .name("publish".into())
            .spawn(move || fan_out(&server, rx))
            .map_err(|_| TransportError::Stopped("publish"))?
    };
    let flush = tokio::spawn(flush_suppressed_warnings());
    info!(%local_addr, max_connections = server.max_connections(), "publisher listening");
    Ok(Publisher { sender, local_addr, server, accept, flush, fan_out: Some(fan_out) })
}

/// Every second, logs one summary line per peer and kind of warning whose window ended with
/// lines suppressed ([`halite_ratelog::Limiter::flush`]); runs until aborted.
async fn flush_suppressed_warnings() {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        halite_ratelog::PEERS.flush();
    }
}

fn fan_out(server: &Server, rx: std_mpsc::Receiver<Vec<u8>>) {
    let hwm = server.opts().pub_hwm.max(1);
    for frame in rx {
        if frame.is_empty() {
            break;
        }
        let publication = Publication::new(Bytes::from(halite_zmtp::message(&[&frame])), server.budget().clone());
        let (mut written, mut queued, mut dropped) = (0usize, 0usize, 0usize);
        for peer in server.snapshot() {
            match server.publish(&peer, &publication, &frame, hwm) {
                Sent::Written => written += 1,
                Sent::Queued => queued += 1,
                Sent::Dropped => dropped += 1,
                Sent::Skipped | Sent::Gone => {}
            }
        }
        debug!(bytes = frame.len(), written, queued, dropped, "published");
    }
}
