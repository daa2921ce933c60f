//! Salt's master event bus socket, `sock_dir/master_event_pub.ipc`, for Salt's own tools:
//! the stock `salt` CLI collects its returns there, `salt-run state.event` watches it.
//!
//! The wire format is Salt's publish framing over a unix stream: a sequence of msgpack maps
//! `{"head": {}, "body": <bin>}`, the body being Salt's packed event, `tag + "\n\n" +
//! msgpack(data)`. Subscribers send nothing; every event goes to every subscriber. A
//! subscriber too slow for the bus loses the events it fell behind on (logged), as on
//! Salt's bus, and never slows the master.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use halite_proto::payload;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;
use tracing::warn;

use crate::events::{Event, EventBus};

pub const SOCKET_NAME: &str = "master_event_pub.ipc";

/// One event as Salt's subscribers read it. The body must travel as msgpack *bin*: 3006's
/// IPC subscriber unpacks with `raw=False` and would try to read a str-typed body as UTF-8
/// (halite's own encoder writes every blob in the old raw family, as Salt's request channel
/// wants, so the frame is written here by hand).
pub fn frame(event: &Event) -> Vec<u8> {
    let mut body = Vec::with_capacity(event.tag.len() + 64);
    body.extend_from_slice(event.tag.as_bytes());
    body.extend_from_slice(b"\n\n");
    payload::encode_into(&event.data, &mut body);
    let mut out = Vec::with_capacity(body.len() + 16);
    out.push(0x82); // a map of two entries
    out.extend_from_slice(b"\xa4head\x80\xa4body");
    // Writing into a Vec cannot fail.
    let _ = rmp::encode::write_bin(&mut out, &body);
    out
}

/// Binds the socket (replacing a stale one), readable and writable by the master's user
/// only, as Salt creates it.
pub fn bind(sock_dir: &Path) -> anyhow::Result<(UnixListener, PathBuf)> {
    let path = sock_dir.join(SOCKET_NAME);
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

pub async fn serve(listener: UnixListener, bus: EventBus) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(subscriber(stream, bus.subscribe()));
            }
            Err(e) => {
                warn!(error = %e, "event bus socket: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn subscriber(stream: UnixStream, mut events: broadcast::Receiver<Event>) {
    let (mut rd, mut wr) = stream.into_split();
    let mut scratch = [0u8; 256];
    loop {
        tokio::select! {
            // Subscribers send nothing; a read returns only when one hangs up.
            read = rd.read(&mut scratch) => {
                if matches!(read, Ok(0) | Err(_)) {
                    return;
                }
            }
            event = events.recv() => match event {
                Ok(ev) => {
                    if wr.write_all(&frame(&ev)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    warn!(skipped = n, "an event bus subscriber fell behind; it missed events");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_like_salt_pack() {
        use halite_proto::payload::{map, Value};
        let ev = Event { tag: "salt/job/1/ret/a".into(), data: map([("return", Value::Boolean(true))]) };
        let framed = payload::decode(&frame(&ev)).unwrap();
        let body = match framed {
            Value::Map(pairs) => pairs.into_iter().find(|(k, _)| k.as_str() == Some("body")).map(|(_, v)| v),
            _ => None,
        };
        let Some(Value::Binary(body)) = body else { panic!("no bin body") };
        let (tag, data) = body.split_at(body.windows(2).position(|w| w == b"\n\n").unwrap());
        assert_eq!(tag, b"salt/job/1/ret/a");
        assert_eq!(payload::decode(&data[2..]).unwrap(), ev.data);
    }
}
