//! The master's event bus: Salt's tags and data, fanned out to whoever listens in-process.
//! `_minion_event`, `_return`, `_auth` and the master's own jobs and key changes report into
//! it; Salt's event socket (`event_pub`), the local channel and the reactor (`reactor`) read it.

use halite_proto::Value;
use tokio::sync::broadcast;
use tracing::{debug, warn};

#[derive(Debug, Clone)]
pub struct Event {
    pub tag: String,
    pub data: Value,
}

#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        Self { tx: broadcast::channel(capacity).0 }
    }

    /// Sends an event to every listener, stamping a map's `_stamp` (UTC, ISO 8601) as Salt's
    /// `fire_event` does unless the data already has one.
    pub fn fire(&self, tag: impl Into<String>, mut data: Value) {
        let tag = tag.into();
        if let Value::Map(pairs) = &mut data {
            if !pairs.iter().any(|(k, _)| k.as_str() == Some("_stamp")) {
                pairs.push((Value::from("_stamp"), Value::from(crate::jid::iso_stamp(crate::jid::now_micros()))));
            }
        }
        // No subscriber is not an error: the bus is fire-and-forget, as Salt's is.
        let _ = self.tx.send(Event { tag, data });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

/// Writes every event to the debug log: the bus's journal.
pub async fn journal(mut rx: broadcast::Receiver<Event>) {
    loop {
        match rx.recv().await {
            Ok(event) => debug!(tag = %event.tag, data = ?event.data, "event"),
            Err(broadcast::error::RecvError::Lagged(n)) => warn!(skipped = n, "event journal fell behind"),
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
