//! Bytes to frames: the greeting, then command frames and whole multipart messages.

use crate::{Greeting, Limits, ZmtpError, FLAG_COMMAND, FLAG_LONG, FLAG_MORE, FRAME_COST, GREETING_LEN};

/// What the decoder assembled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Greeting(Greeting),
    /// A command frame's body: name length, name, data.
    Command(Vec<u8>),
    Message(Vec<Vec<u8>>),
}

/// Buffers what has arrived and cuts it into frames. Memory held between calls is only the
/// unfinished tail: an idle connection holds no buffer at all. Every limit is checked on a
/// frame's header, before anything is buffered for its body.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    pos: usize,
    greeted: bool,
    parts: Vec<Vec<u8>>,
    /// What the message being assembled is charged: its bodies and [`FRAME_COST`] a frame.
    message_cost: u64,
    limits: Limits,
    /// Whether message frames may come (the connection's handshake is done). When not, one
    /// is refused on its header rather than buffered up to the message limit first.
    messages: bool,
}

impl FrameDecoder {
    /// A decoder with [`Limits::new`]`(max_message)`.
    pub fn new(max_message: u64) -> FrameDecoder {
        FrameDecoder::with_limits(Limits::new(max_message))
    }

    pub fn with_limits(limits: Limits) -> FrameDecoder {
        FrameDecoder {
            buf: Vec::new(),
            pos: 0,
            greeted: false,
            parts: Vec::new(),
            message_cost: 0,
            limits,
            messages: true,
        }
    }

    /// Refuses message frames (on their header) until allowed again: before READY only
    /// commands may come.
    pub(crate) fn allow_messages(&mut self, allow: bool) {
        self.messages = allow;
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Gives back what consumed bytes hold: the whole buffer if nothing is left in it,
    /// else the consumed prefix, shrinking to what remains. For a caller that will not ask
    /// for the next frame for a while (a message it handed on must wait): otherwise the
    /// buffer that brought that message stays allocated beside the copy handed on.
    pub fn release_consumed(&mut self) {
        if self.pos == self.buf.len() {
            self.buf = Vec::new();
        } else if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.buf.shrink_to_fit();
        }
        self.pos = 0;
    }

    /// Bytes held for frames not yet complete (capacity, not length: what memory it costs).
    pub fn buffered_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// What the frames of an unfinished message are charged against
    /// [`Limits::max_message`]: their bodies plus [`FRAME_COST`] each. Never over the limit.
    pub fn message_cost(&self) -> u64 {
        self.message_cost
    }

    /// Frames held for an unfinished message.
    pub fn message_frames(&self) -> usize {
        self.parts.len()
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// The next frame, `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ZmtpError> {
        let frame = if self.greeted { self.next_data_frame()? } else { self.greeting()? };
        if frame.is_none() && self.pos == self.buf.len() && self.buf.capacity() > 0 {
            // Everything consumed: give the buffer back rather than keep it per idle peer.
            self.buf = Vec::new();
            self.pos = 0;
        }
        Ok(frame)
    }

    fn greeting(&mut self) -> Result<Option<Frame>, ZmtpError> {
        let have = self.pending();
        // Refuse as early as the bytes allow, so a peer speaking something else (HTTP, an
        // old ZMTP that waits for our reply to its short greeting) is told at once.
        if !have.is_empty() && have[0] != 0xff {
            return Err(ZmtpError::NotZmtp);
        }
        if have.len() >= 10 && have[9] & 1 != 1 {
            return Err(ZmtpError::NotZmtp);
        }
        if have.len() >= 11 && have[10] < 3 {
            return Err(ZmtpError::OldVersion(have[10]));
        }
        if have.len() < GREETING_LEN {
            return Ok(None);
        }
        let mechanism = &have[12..32];
        let end = mechanism.iter().position(|&b| b == 0).unwrap_or(mechanism.len());
        let greeting = Greeting {
            major: have[10],
            minor: have[11],
            mechanism: String::from_utf8_lossy(&mechanism[..end]).into_owned(),
        };
        self.pos += GREETING_LEN;
        self.greeted = true;
        Ok(Some(Frame::Greeting(greeting)))
    }

    fn next_data_frame(&mut self) -> Result<Option<Frame>, ZmtpError> {
        loop {
            let have = self.pending();
            let Some(&flags) = have.first() else { return Ok(None) };
            let (size, header) = if flags & FLAG_LONG != 0 {
                let Some(b) = have.get(1..9) else { return Ok(None) };
                let mut size = [0u8; 8];
                size.copy_from_slice(b);
                (u64::from_be_bytes(size), 9)
            } else {
                let Some(&b) = have.get(1) else { return Ok(None) };
                (u64::from(b), 2)
            };
            let command = flags & FLAG_COMMAND != 0;
            let mut cost = self.message_cost;
            if command {
                let limit = self.limits.max_command.min(self.limits.max_message);
                if size > limit {
                    return Err(ZmtpError::CommandTooLarge { size, limit });
                }
            } else {
                if !self.messages {
                    return Err(ZmtpError::BeforeReady("a message"));
                }
                if self.parts.len() >= self.limits.max_frames {
                    return Err(ZmtpError::TooManyFrames { limit: self.limits.max_frames });
                }
                // An empty frame costs no body but still a slot in `parts`: charging a fixed
                // cost per frame keeps the limit a bound on memory, not only on payload.
                cost = cost.saturating_add(size).saturating_add(FRAME_COST);
                if cost > self.limits.max_message {
                    return Err(ZmtpError::TooLarge { size: cost, limit: self.limits.max_message });
                }
            }
            // Only a limit near u64::MAX lets a size through that does not fit in memory.
            let Some(end) = usize::try_from(size).ok().and_then(|s| s.checked_add(header)) else {
                return Err(ZmtpError::TooLarge { size, limit: self.limits.max_message });
            };
            if have.len() < end {
                // Reserve for the frame (up to 1 MiB: the declared size is the peer's claim, not data).
                let missing = (end - have.len()).min(1 << 20);
                self.buf.reserve(missing);
                return Ok(None);
            }
            let body = have[header..end].to_vec();
            self.pos += end;
            if command {
                return Ok(Some(Frame::Command(body)));
            }
            self.message_cost = cost;
            self.parts.push(body);
            if flags & FLAG_MORE == 0 {
                self.message_cost = 0;
                return Ok(Some(Frame::Message(std::mem::take(&mut self.parts))));
            }
        }
    }
}
