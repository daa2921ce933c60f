//! Just enough ZMTP 3.0 (RFC 23/ZMTP, NULL mechanism) for a simulated minion: a DEALER that
//! talks to the master's ROUTER the way a REQ socket does (an empty delimiter frame before
//! each body), and a SUB that subscribes to everything. Sans-IO: [`Codec`] turns bytes into
//! messages and messages into bytes; the swarm's tasks move the bytes.
//!
//! Why not libzmq here: a swarm holds two connections per minion, tens of thousands in one
//! process; libzmq gives every socket a mailbox file descriptor and runs its own I/O
//! threads, while this is two tokio streams per minion and a few hundred bytes of state.

/// The 64-byte greeting: signature, version 3.0, mechanism NULL, as-server false.
pub fn greeting() -> [u8; 64] {
    let mut g = [0u8; 64];
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3;
    g[11] = 0;
    g[12..16].copy_from_slice(b"NULL");
    g
}

const MORE: u8 = 0x01;
const LONG: u8 = 0x02;
const COMMAND: u8 = 0x04;

fn frame(flags: u8, body: &[u8], out: &mut Vec<u8>) {
    if body.len() > 255 {
        out.push(flags | LONG);
        out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    } else {
        out.push(flags);
        out.push(body.len() as u8);
    }
    out.extend_from_slice(body);
}

/// The READY command announcing `socket_type` (`DEALER`, `SUB`) and an identity.
pub fn ready(socket_type: &str, identity: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.push(5);
    body.extend_from_slice(b"READY");
    for (name, value) in [("Socket-Type", socket_type.as_bytes()), ("Identity", identity)] {
        body.push(name.len() as u8);
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(&(value.len() as u32).to_be_bytes());
        body.extend_from_slice(value);
    }
    let mut out = Vec::new();
    frame(COMMAND, &body, &mut out);
    out
}

/// A multipart message on the wire.
pub fn message(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 9).sum());
    for (i, part) in parts.iter().enumerate() {
        frame(if i + 1 < parts.len() { MORE } else { 0 }, part, &mut out);
    }
    out
}

/// What a REQ peer sends: the empty delimiter, then the body.
pub fn request(body: &[u8]) -> Vec<u8> {
    message(&[b"", body])
}

/// A ZMTP 3.0 subscription (a message whose first byte is 1) to every topic.
pub fn subscribe_all() -> Vec<u8> {
    message(&[&[1]])
}

/// What the peer sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer's greeting was read and is a ZMTP 3 NULL greeting.
    Greeted,
    Message(Vec<Vec<u8>>),
    /// A command other than PING (READY, ERROR...): its name.
    Command(String),
    /// Bytes to send back (the PONG to a heartbeat PING).
    Reply(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZmtpError {
    #[error("the peer is not a ZMTP 3 NULL peer")]
    BadGreeting,
    #[error("a {0}-byte frame exceeds the limit")]
    TooLarge(u64),
    #[error("malformed command")]
    BadCommand,
}

/// Incoming bytes to events.
#[derive(Debug, Default)]
pub struct Codec {
    buf: Vec<u8>,
    greeted: bool,
    parts: Vec<Vec<u8>>,
}

/// Largest frame a simulated minion accepts (a pillar or publish is far below it).
pub const MAX_FRAME: u64 = 256 << 20;

impl Codec {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next event, `None` when more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<Event>, ZmtpError> {
        loop {
            if !self.greeted {
                if self.buf.len() < 64 {
                    return Ok(None);
                }
                if self.buf[0] != 0xff || self.buf[9] & 1 != 1 || self.buf[10] < 3 || &self.buf[12..16] != b"NULL" {
                    return Err(ZmtpError::BadGreeting);
                }
                self.buf.drain(..64);
                self.greeted = true;
                return Ok(Some(Event::Greeted));
            }
            let Some(&flags) = self.buf.first() else { return Ok(None) };
            let (size, header) = if flags & LONG != 0 {
                let Some(b) = self.buf.get(1..9) else { return Ok(None) };
                (u64::from_be_bytes(b.try_into().expect("8 bytes")), 9)
            } else {
                let Some(&b) = self.buf.get(1) else { return Ok(None) };
                (u64::from(b), 2)
            };
            if size > MAX_FRAME {
                return Err(ZmtpError::TooLarge(size));
            }
            let end = header + size as usize;
            if self.buf.len() < end {
                return Ok(None);
            }
            let body: Vec<u8> = self.buf[header..end].to_vec();
            self.buf.drain(..end);
            if flags & COMMAND != 0 {
                let name_len = *body.first().ok_or(ZmtpError::BadCommand)? as usize;
                let name = body.get(1..1 + name_len).ok_or(ZmtpError::BadCommand)?;
                if name == b"PING" {
                    // PONG echoes the ping's context (after its 2-byte TTL).
                    let context = body.get(1 + name_len + 2..).unwrap_or(&[]);
                    let mut pong = vec![4];
                    pong.extend_from_slice(b"PONG");
                    pong.extend_from_slice(context);
                    let mut out = Vec::new();
                    frame(COMMAND, &pong, &mut out);
                    return Ok(Some(Event::Reply(out)));
                }
                return Ok(Some(Event::Command(String::from_utf8_lossy(name).into_owned())));
            }
            self.parts.push(body);
            if flags & MORE == 0 {
                return Ok(Some(Event::Message(std::mem::take(&mut self.parts))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_the_codec() {
        let mut c = Codec::default();
        let mut bytes = greeting().to_vec();
        bytes.extend(ready("ROUTER", b""));
        bytes.extend(request(&vec![7u8; 300]));
        let mut ping = Vec::new();
        frame(COMMAND, b"\x04PING\x00\x10ctx", &mut ping);
        bytes.extend(ping);
        for chunk in bytes.chunks(7) {
            c.push(chunk);
        }
        assert_eq!(c.next_event().unwrap(), Some(Event::Greeted));
        assert_eq!(c.next_event().unwrap(), Some(Event::Command("READY".into())));
        assert_eq!(c.next_event().unwrap(), Some(Event::Message(vec![vec![], vec![7u8; 300]])));
        let mut pong = Vec::new();
        frame(COMMAND, b"\x04PONGctx", &mut pong);
        assert_eq!(c.next_event().unwrap(), Some(Event::Reply(pong)));
        assert_eq!(c.next_event().unwrap(), None);
    }

    #[test]
    fn refuses_what_is_not_zmtp() {
        let mut c = Codec::default();
        c.push(&[b'G'; 64]);
        assert_eq!(c.next_event(), Err(ZmtpError::BadGreeting));
    }
}
