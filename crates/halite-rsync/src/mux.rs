//! The multiplexed stream of protocol ≥ 23: after the handshake every message the daemon
//! writes (and, from protocol 30 on, every message the client writes) is a frame of a
//! 4-byte little-endian header — message code + 7 in the top byte, payload length in the
//! low 24 bits — and its payload. `Data` frames carry the protocol stream; the others
//! carry log lines, error exits and the per-file bookkeeping of protocol 30.

use crate::wire::WireError;

/// The code rsync adds to every message code in a frame header.
const MPLEX_BASE: u32 = 7;

/// Largest payload a frame header can announce.
pub const MAX_FRAME: usize = 0x00ff_ffff;

/// Longest payload this crate accepts for a message other than `Data`: those are log
/// lines and small ints, and a peer must not make the daemon buffer megabytes of them.
pub const MAX_MESSAGE: usize = 4096 + 1024;

/// The message codes (rsync.h `enum msgcode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Msg {
    Data = 0,
    ErrorXfer = 1,
    Info = 2,
    Error = 3,
    Warning = 4,
    ErrorSocket = 5,
    Log = 6,
    Client = 7,
    ErrorUtf8 = 8,
    Redo = 9,
    Stats = 10,
    IoError = 22,
    IoTimeout = 33,
    Noop = 42,
    ErrorExit = 86,
    Success = 100,
    Deleted = 101,
    NoSend = 102,
}

impl Msg {
    pub fn from_code(code: u8) -> Option<Msg> {
        use Msg::*;
        Some(match code {
            0 => Data,
            1 => ErrorXfer,
            2 => Info,
            3 => Error,
            4 => Warning,
            5 => ErrorSocket,
            6 => Log,
            7 => Client,
            8 => ErrorUtf8,
            9 => Redo,
            10 => Stats,
            22 => IoError,
            33 => IoTimeout,
            42 => Noop,
            86 => ErrorExit,
            100 => Success,
            101 => Deleted,
            102 => NoSend,
            _ => return None,
        })
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub msg: Msg,
    pub len: usize,
}

/// Reads a frame header. Unknown codes and over-long non-data messages are errors: the
/// reference dies on them too ("unexpected tag").
pub fn parse_header(bytes: [u8; 4]) -> Result<Header, WireError> {
    let raw = u32::from_le_bytes(bytes);
    let tag = raw >> 24;
    let len = (raw & 0x00ff_ffff) as usize;
    let code = tag
        .checked_sub(MPLEX_BASE)
        .and_then(|c| u8::try_from(c).ok())
        .ok_or_else(|| WireError::Invalid(format!("unexpected tag {tag} in the multiplexed stream")))?;
    let msg = Msg::from_code(code).ok_or_else(|| WireError::Invalid(format!("unexpected message code {code}")))?;
    if msg != Msg::Data && len > MAX_MESSAGE {
        return Err(WireError::OutOfRange { what: "message length", value: len as i64, lo: 0, hi: MAX_MESSAGE as i64 });
    }
    Ok(Header { msg, len })
}

pub fn header(msg: Msg, len: usize) -> [u8; 4] {
    debug_assert!(len <= MAX_FRAME);
    (((MPLEX_BASE + msg as u32) << 24) | len as u32).to_le_bytes()
}

/// Appends `payload` as frames of `msg`, split at the 24-bit length limit.
pub fn put_frames(out: &mut Vec<u8>, msg: Msg, payload: &[u8]) {
    if payload.is_empty() {
        out.extend_from_slice(&header(msg, 0));
    }
    for piece in payload.chunks(MAX_FRAME) {
        out.extend_from_slice(&header(msg, piece.len()));
        out.extend_from_slice(piece);
    }
}

/// Appends a message carrying one int (MSG_IO_ERROR, MSG_NO_SEND, MSG_ERROR_EXIT...).
pub fn put_int_message(out: &mut Vec<u8>, msg: Msg, value: i32) {
    put_frames(out, msg, &value.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_match_rsyncs_bytes() {
        // A 4-byte data frame as the real client sends its empty filter list.
        assert_eq!(header(Msg::Data, 4), [0x04, 0x00, 0x00, 0x07]);
        assert_eq!(parse_header([0x04, 0x00, 0x00, 0x07]).unwrap(), Header { msg: Msg::Data, len: 4 });
        assert_eq!(parse_header(header(Msg::ErrorExit, 4)).unwrap().msg, Msg::ErrorExit);
    }

    #[test]
    fn unknown_tags_and_long_messages_are_refused() {
        assert!(parse_header([0, 0, 0, 0x06]).is_err());
        assert!(parse_header([0, 0, 0, 7 + 50]).is_err());
        assert!(parse_header(header(Msg::Info, MAX_MESSAGE + 1)).is_err());
        assert!(parse_header(header(Msg::Data, MAX_FRAME)).is_ok());
    }
}
