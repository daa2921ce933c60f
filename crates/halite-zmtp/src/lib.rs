//! ZMTP, the wire protocol under ZeroMQ sockets (RFC 23 for 3.0, RFC 37 for 3.1), with the
//! NULL mechanism Salt uses, as a sans-IO state machine.
//!
//! Owns: the greeting and its version rules, the READY handshake and the socket-type
//! pairing it enforces, frame encoding and decoding with a message-size limit, PING/PONG,
//! and subscriptions in both their 3.0 form (a message whose first byte is 1 or 0) and their
//! 3.1 form (SUBSCRIBE/CANCEL commands). [`Connection`] is one peer: bytes in through
//! [`Connection::receive`], [`Event`]s out through [`Connection::next_event`], bytes to send
//! from [`Connection::take_output`]. The master's sockets (halite-zmq) and the simulated
//! minions (halite-swarm) are both built on it.
//!
//! Must not: touch sockets, clocks or threads (the shells decide when to send a PING and
//! when a silent peer is dead), or accept a frame larger than its limit: the size is checked
//! from the frame header, before anything is buffered for it.
//!
//! What a peer can make a connection hold is bounded by [`Limits`], whoever the peer is (the
//! master's ports take connections from anyone): a message by its size with every frame
//! charged [`FRAME_COST`] on top of its body, and by its frame count (endless empty frames
//! with MORE set would otherwise grow a message forever at 0 bytes counted); a command frame,
//! and anything a subscriber sends a publisher, by [`Limits::max_command`]; READY by
//! [`MAX_PROPERTIES`]. Going over any of them is an error from [`Connection::next_event`], on
//! which the shell closes the connection. How many subscriptions a subscriber may hold is the
//! socket's business (halite-zmq keeps the list); here each one is bounded in size.
//!
//! Not supported, on purpose: ZMTP 1.0/2.0 peers (libzmq older than 4.0, never bundled by a
//! salt-minion 3006+), and the PLAIN/CURVE mechanisms (Salt encrypts above ZeroMQ).

mod decode;
mod socket_type;

pub use decode::{Frame, FrameDecoder};
pub use socket_type::SocketType;

/// Greeting bytes; the peer's is parsed by [`FrameDecoder`].
pub const GREETING_LEN: usize = 64;

const FLAG_MORE: u8 = 0x01;
const FLAG_LONG: u8 = 0x02;
const FLAG_COMMAND: u8 = 0x04;

/// What each frame of a message is charged against [`Limits::max_message`] on top of its
/// body: its `Vec` in the message's part list (24 bytes) and, for a non-empty body, the
/// allocator's smallest block (32 bytes on glibc), rounded up. With it the limit bounds the
/// memory a message holds, not only its payload: an empty frame is not free.
pub const FRAME_COST: u64 = 64;

/// Properties a READY command may carry. libzmq sends two (`Socket-Type` and `Identity`),
/// plus any `X-` metadata an application sets; Salt sets none.
pub const MAX_PROPERTIES: usize = 64;

/// What one peer may make its connection hold. Each is checked on a frame's header, before
/// anything is buffered for the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes a message may take: its bodies plus [`FRAME_COST`] per frame.
    pub max_message: u64,
    /// Frames a message may have. Salt's messages have one (publishes) or two (requests and
    /// replies, `['', body]`); a ROUTER in front adds one per hop.
    pub max_frames: usize,
    /// Bytes a command frame's body may have (never more than `max_message`). Commands
    /// are READY (a socket type and an identity of at most 255 bytes), PING/PONG (a 16-byte
    /// context), ERROR (a 255-byte reason) and SUBSCRIBE/CANCEL (a topic prefix: `""`, or
    /// with `zmq_filtering` a 64-character hash or `broadcast`). It also bounds a message a
    /// subscriber sends a publisher (plus one [`FRAME_COST`]): those are ZMTP 3.0
    /// subscriptions and nothing else, so a PUB connection never buffers 64 MiB for one.
    pub max_command: u64,
}

impl Limits {
    /// `max_message` with the defaults for the rest: 64 frames (32 times what Salt
    /// sends), 64 KiB commands.
    pub const fn new(max_message: u64) -> Limits {
        Limits { max_message, max_frames: 64, max_command: 64 << 10 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZmtpError {
    #[error("the peer does not speak ZMTP (bad greeting signature)")]
    NotZmtp,
    #[error("the peer speaks ZMTP {0}.x; only 3.0 and later are supported")]
    OldVersion(u8),
    #[error("the peer wants the {0:?} security mechanism; only NULL is supported")]
    Mechanism(String),
    /// Over [`Limits::max_message`]; `size` counts [`FRAME_COST`] per frame.
    #[error("a message of {size} bytes (frame overhead included) exceeds the {limit}-byte message limit")]
    TooLarge { size: u64, limit: u64 },
    /// Over [`Limits::max_frames`].
    #[error("a message of more than {limit} frames exceeds the frame limit")]
    TooManyFrames { limit: usize },
    /// Over [`Limits::max_command`].
    #[error("a {size}-byte command exceeds the {limit}-byte command limit")]
    CommandTooLarge { size: u64, limit: u64 },
    /// Over [`MAX_PROPERTIES`].
    #[error("a READY command with more than {limit} properties")]
    TooManyProperties { limit: usize },
    #[error("malformed {0} command")]
    MalformedCommand(&'static str),
    #[error("the peer sent {0} before completing the handshake")]
    BeforeReady(&'static str),
    #[error("the peer's READY names no socket type")]
    NoSocketType,
    #[error("a {theirs} peer cannot talk to a {ours} socket")]
    Incompatible { ours: &'static str, theirs: String },
    #[error("the peer reported an error: {0}")]
    PeerError(String),
}

/// The peer's greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    pub major: u8,
    pub minor: u8,
    pub mechanism: String,
}

/// This side's greeting: ZMTP 3.1, NULL, `as-server` false (NULL ignores it).
pub fn greeting() -> [u8; GREETING_LEN] {
    let mut g = [0u8; GREETING_LEN];
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3;
    g[11] = 1;
    g[12..16].copy_from_slice(b"NULL");
    g
}

/// Appends one frame.
fn encode_frame(flags: u8, body: &[u8], out: &mut Vec<u8>) {
    if body.len() > 255 {
        out.push(flags | FLAG_LONG);
        out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    } else {
        out.push(flags);
        out.push(body.len() as u8);
    }
    out.extend_from_slice(body);
}

/// Appends a multipart message.
pub fn encode_message(parts: &[&[u8]], out: &mut Vec<u8>) {
    out.reserve(parts.iter().map(|p| p.len() + 9).sum());
    for (i, part) in parts.iter().enumerate() {
        encode_frame(if i + 1 < parts.len() { FLAG_MORE } else { 0 }, part, out);
    }
}

/// A multipart message, encoded.
pub fn message(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_message(parts, &mut out);
    out
}

/// Appends a command frame: the name's length, the name, the data.
fn encode_command(name: &str, data: &[u8], out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(1 + name.len() + data.len());
    body.push(name.len() as u8);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(data);
    encode_frame(FLAG_COMMAND, &body, out);
}

/// The READY command: `Socket-Type`, and `Identity` when there is one.
fn encode_ready(socket_type: SocketType, identity: &[u8], out: &mut Vec<u8>) {
    let mut props = Vec::new();
    let mut property = |name: &str, value: &[u8]| {
        props.push(name.len() as u8);
        props.extend_from_slice(name.as_bytes());
        props.extend_from_slice(&(value.len() as u32).to_be_bytes());
        props.extend_from_slice(value);
    };
    property("Socket-Type", socket_type.name().as_bytes());
    if !identity.is_empty() && socket_type.sends_identity() {
        property("Identity", identity);
    }
    encode_command("READY", &props, out);
}

/// Properties of a READY command, in the order the peer sent them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata(pub Vec<(String, Vec<u8>)>);

impl Metadata {
    /// A property's value; names are case-insensitive (RFC 37).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    fn parse(mut data: &[u8]) -> Result<Metadata, ZmtpError> {
        let bad = ZmtpError::MalformedCommand("READY");
        let mut props = Vec::new();
        while let Some((&name_len, rest)) = data.split_first() {
            // Each property costs two allocations for 5 bytes on the wire at the least.
            if props.len() == MAX_PROPERTIES {
                return Err(ZmtpError::TooManyProperties { limit: MAX_PROPERTIES });
            }
            let name = rest.get(..name_len as usize).ok_or(bad.clone())?;
            let rest = &rest[name_len as usize..];
            let len_bytes: [u8; 4] = rest.get(..4).and_then(|b| b.try_into().ok()).ok_or(bad.clone())?;
            let value_len = u32::from_be_bytes(len_bytes) as usize;
            let end = value_len.checked_add(4).ok_or(bad.clone())?;
            let value = rest.get(4..end).ok_or(bad.clone())?;
            props.push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
            data = &rest[end..];
        }
        Ok(Metadata(props))
    }
}

/// What a command frame carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ready(Metadata),
    Error(String),
    /// A heartbeat: its time-to-live (tenths of a second) and context, echoed by the PONG.
    Ping {
        ttl: u16,
        context: Vec<u8>,
    },
    Pong(Vec<u8>),
    Subscribe(Vec<u8>),
    Cancel(Vec<u8>),
    /// A command this side has no use for (JOIN, LEAVE...), by name.
    Other(String),
}

impl Command {
    pub fn parse(body: &[u8]) -> Result<Command, ZmtpError> {
        let (&name_len, rest) = body.split_first().ok_or(ZmtpError::MalformedCommand("empty"))?;
        let name = rest.get(..name_len as usize).ok_or(ZmtpError::MalformedCommand("truncated"))?;
        let data = &rest[name_len as usize..];
        Ok(match name {
            b"READY" => Command::Ready(Metadata::parse(data)?),
            b"ERROR" => {
                let (&len, reason) = data.split_first().unwrap_or((&0, &[]));
                let reason = reason.get(..len as usize).unwrap_or(reason);
                Command::Error(String::from_utf8_lossy(reason).into_owned())
            }
            b"PING" => {
                let ttl: [u8; 2] =
                    data.get(..2).and_then(|b| b.try_into().ok()).ok_or(ZmtpError::MalformedCommand("PING"))?;
                Command::Ping { ttl: u16::from_be_bytes(ttl), context: data[2..].to_vec() }
            }
            b"PONG" => Command::Pong(data.to_vec()),
            b"SUBSCRIBE" => Command::Subscribe(data.to_vec()),
            b"CANCEL" => Command::Cancel(data.to_vec()),
            other => Command::Other(String::from_utf8_lossy(other).into_owned()),
        })
    }
}

/// What a connection reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake is complete: the peer's socket type and identity (empty when it set
    /// none). Messages may flow from here on.
    Open {
        socket_type: SocketType,
        identity: Vec<u8>,
        minor_version: u8,
    },
    Message(Vec<Vec<u8>>),
    /// A subscriber's new topic prefix (only reported to PUB and XPUB sockets).
    Subscribe(Vec<u8>),
    Cancel(Vec<u8>),
    /// The answer to a PING this side sent.
    Pong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Greeting,
    Ready,
    Open,
}

/// One ZMTP peer, from the greeting on.
#[derive(Debug)]
pub struct Connection {
    ours: SocketType,
    identity: Vec<u8>,
    decoder: FrameDecoder,
    phase: Phase,
    peer_minor: u8,
    out: Vec<u8>,
}

impl Connection {
    /// A connection for a socket of type `ours`; the greeting is queued at once (libzmq does
    /// the same, so neither side waits for the other). `identity` goes into READY for the
    /// socket types that announce one; `max_message` bounds any message the peer sends, the
    /// other limits are [`Limits::new`]'s.
    pub fn new(ours: SocketType, identity: &[u8], max_message: u64) -> Connection {
        Connection::with_limits(ours, identity, Limits::new(max_message))
    }

    pub fn with_limits(ours: SocketType, identity: &[u8], mut limits: Limits) -> Connection {
        if ours.is_publisher() {
            // What a subscriber sends is a subscription, one frame no larger than a command.
            limits.max_message = limits.max_message.min(limits.max_command.saturating_add(FRAME_COST));
        }
        let mut decoder = FrameDecoder::with_limits(limits);
        decoder.allow_messages(false);
        Connection {
            ours,
            identity: identity.to_vec(),
            decoder,
            phase: Phase::Greeting,
            peer_minor: 0,
            out: greeting().to_vec(),
        }
    }

    /// What the peer's unfinished frames hold right now: the receive buffer's capacity and
    /// what an unfinished message is charged (see [`FrameDecoder::message_cost`]).
    pub fn held_bytes(&self) -> u64 {
        self.decoder.buffered_capacity() as u64 + self.decoder.message_cost()
    }

    /// Frees the receive buffer's consumed bytes ([`FrameDecoder::release_consumed`]): for
    /// a caller that stops reading after a message, until it can take the next.
    pub fn release_consumed(&mut self) {
        self.decoder.release_consumed();
    }

    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// The peer speaks 3.1 or later, so it knows PING.
    pub fn peer_has_heartbeats(&self) -> bool {
        self.is_open() && self.peer_minor >= 1
    }

    pub fn receive(&mut self, bytes: &[u8]) {
        self.decoder.push(bytes);
    }

    /// Bytes waiting to be written (handshake, PONGs, queued messages).
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Queues a message. Before the handshake completes it waits behind the handshake bytes,
    /// which is where ZMTP wants it.
    pub fn send(&mut self, parts: &[&[u8]]) {
        encode_message(parts, &mut self.out);
    }

    /// Queues a subscription to every message starting with `prefix`, in the form the
    /// peer's version expects.
    pub fn subscribe(&mut self, prefix: &[u8]) {
        if self.peer_minor >= 1 {
            encode_command("SUBSCRIBE", prefix, &mut self.out);
        } else {
            let mut body = Vec::with_capacity(prefix.len() + 1);
            body.push(1);
            body.extend_from_slice(prefix);
            encode_frame(0, &body, &mut self.out);
        }
    }

    /// Queues a heartbeat; `ttl` (tenths of a second) tells the peer how long to wait for
    /// the next sign of life before giving up on this side.
    pub fn ping(&mut self, ttl: u16) {
        let mut data = ttl.to_be_bytes().to_vec();
        data.extend_from_slice(b"halite");
        encode_command("PING", &data, &mut self.out);
    }

    /// Queues an ERROR command; the shell closes the connection after writing it.
    pub fn error(&mut self, reason: &str) {
        let reason = &reason.as_bytes()[..reason.len().min(255)];
        let mut data = vec![reason.len() as u8];
        data.extend_from_slice(reason);
        encode_command("ERROR", &data, &mut self.out);
    }

    /// The next event, `None` when more bytes are needed. After an error the connection is
    /// unusable; the shell queues [`Connection::error`] if it likes and closes.
    pub fn next_event(&mut self) -> Result<Option<Event>, ZmtpError> {
        loop {
            let Some(frame) = self.decoder.next_frame()? else { return Ok(None) };
            match (self.phase, frame) {
                (Phase::Greeting, Frame::Greeting(g)) => {
                    if g.mechanism != "NULL" {
                        return Err(ZmtpError::Mechanism(g.mechanism));
                    }
                    self.peer_minor = if g.major > 3 { u8::MAX } else { g.minor };
                    encode_ready(self.ours, &self.identity, &mut self.out);
                    self.phase = Phase::Ready;
                }
                (Phase::Ready, Frame::Command(body)) => match Command::parse(&body)? {
                    Command::Ready(meta) => {
                        let name = meta.get("Socket-Type").ok_or(ZmtpError::NoSocketType)?;
                        let theirs =
                            SocketType::from_name(name).filter(|t| self.ours.pairs_with(*t)).ok_or_else(|| {
                                ZmtpError::Incompatible {
                                    ours: self.ours.name(),
                                    theirs: String::from_utf8_lossy(name).into_owned(),
                                }
                            })?;
                        self.phase = Phase::Open;
                        self.decoder.allow_messages(true);
                        let identity = meta.get("Identity").unwrap_or_default().to_vec();
                        return Ok(Some(Event::Open { socket_type: theirs, identity, minor_version: self.peer_minor }));
                    }
                    Command::Error(reason) => return Err(ZmtpError::PeerError(reason)),
                    _ => return Err(ZmtpError::BeforeReady("a command other than READY")),
                },
                (Phase::Ready, _) => return Err(ZmtpError::BeforeReady("a message")),
                (Phase::Open, Frame::Command(body)) => match Command::parse(&body)? {
                    Command::Ping { context, .. } => {
                        let context = &context[..context.len().min(16)];
                        encode_command("PONG", context, &mut self.out);
                    }
                    Command::Pong(_) => return Ok(Some(Event::Pong)),
                    Command::Subscribe(prefix) if self.ours.is_publisher() => {
                        return Ok(Some(Event::Subscribe(prefix)))
                    }
                    Command::Cancel(prefix) if self.ours.is_publisher() => return Ok(Some(Event::Cancel(prefix))),
                    Command::Error(reason) => return Err(ZmtpError::PeerError(reason)),
                    // READY twice, JOIN/LEAVE, subscriptions sent to a non-publisher: ignored,
                    // as libzmq ignores them.
                    _ => {}
                },
                (Phase::Open, Frame::Message(parts)) => {
                    if self.ours.is_publisher() {
                        // A subscriber's messages are its subscriptions (ZMTP 3.0 form);
                        // anything else from it is dropped, as libzmq's PUB drops it.
                        if let [part] = parts.as_slice() {
                            match part.split_first() {
                                Some((1, prefix)) => return Ok(Some(Event::Subscribe(prefix.to_vec()))),
                                Some((0, prefix)) => return Ok(Some(Event::Cancel(prefix.to_vec()))),
                                _ => {}
                            }
                        }
                        continue;
                    }
                    return Ok(Some(Event::Message(parts)));
                }
                // The decoder yields exactly one greeting, before any frame.
                (Phase::Greeting, _) | (_, Frame::Greeting(_)) => return Err(ZmtpError::NotZmtp),
            }
        }
    }
}

#[cfg(test)]
mod tests;
