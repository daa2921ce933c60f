//! One connection's socket: buffered, with the multiplexing of the rsync stream on top.
//!
//! The protocol library parses from bytes already received; [`Wire::parse`] retries a
//! parse after each read until it has enough, so no parser here ever blocks. Output is
//! buffered and always flushed before the connection blocks on a read: a client waiting
//! for our data while we wait for its would otherwise hang both.

use halite_rsync::mux::{self, Msg};
use halite_rsync::wire::{Reader, WireError};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Output is written to the socket once this much is buffered.
const OUT_FLUSH: usize = 64 * 1024;

/// A multiplexed frame's header: the message code and a 24-bit length.
const FRAME_HEADER: usize = 4;
/// The most a single read asks for.
const READ_CHUNK: usize = 256 * 1024;

#[derive(Debug, Error)]
pub enum ConnError {
    #[error("connection closed by the client")]
    Closed,
    #[error("no data from the client for {0} s (timeout)")]
    Timeout(u64),
    /// The client took longer than the handshake's deadline (the reference's "daemon
    /// handshake timeout"), however steadily it trickled bytes.
    #[error("daemon handshake timeout -- exiting")]
    HandshakeTimeout,
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    #[error("protocol: {0}")]
    Protocol(#[from] WireError),
    /// The client ended the transfer with an error exit code.
    #[error("the client stopped the transfer (exit code {0})")]
    ClientExit(i32),
}

/// The client's `--bwlimit` on what this side writes, as the reference's
/// sleep_for_bwlimit() applies it: writes go out in pieces of at most
/// [`Throttle::piece`] bytes, and after each the writer sleeps long enough that the
/// average stays under the limit (short waits, under a tenth of a second, are carried
/// over rather than slept).
#[derive(Debug, Clone)]
pub struct Throttle {
    bytes_per_sec: u64,
    /// Bytes written and not yet paid for by elapsed time.
    owed: u64,
    last: Option<Instant>,
}

impl Throttle {
    pub fn new(kib_per_sec: u32) -> Throttle {
        Throttle { bytes_per_sec: u64::from(kib_per_sec.max(1)) * 1024, owed: 0, last: None }
    }

    /// The most written at once: an eighth of a second's worth (512 bytes at least).
    pub fn piece(&self) -> usize {
        (self.bytes_per_sec / 8).max(512) as usize
    }

    /// Accounts for `bytes` written at `now`; how long to sleep before writing more.
    pub fn wrote(&mut self, bytes: usize, now: Instant) -> Option<Duration> {
        self.owed += bytes as u64;
        if let Some(last) = self.last {
            let paid =
                (now.saturating_duration_since(last).as_micros() as u64).saturating_mul(self.bytes_per_sec) / 1_000_000;
            self.owed = self.owed.saturating_sub(paid);
        }
        self.last = Some(now);
        let wait = Duration::from_micros(self.owed.saturating_mul(1_000_000) / self.bytes_per_sec);
        if wait < Duration::from_millis(100) {
            return None;
        }
        // Paid for by the sleep; whatever the sleep overshoots is credited next time.
        self.owed = 0;
        self.last = Some(now + wait);
        Some(wait)
    }
}

pub struct Wire {
    stream: TcpStream,
    /// `--bwlimit`, when the client asked for one.
    throttle: Option<Throttle>,
    /// Bytes read from the socket not yet demultiplexed.
    raw: Vec<u8>,
    raw_pos: usize,
    /// The protocol stream (MSG_DATA payloads once multiplexed input starts).
    data: Vec<u8>,
    data_pos: usize,
    mux_in: bool,
    mux_out: bool,
    out: Vec<u8>,
    timeout: Option<Duration>,
    /// An absolute bound on the current handshake phase, on top of `timeout`.
    deadline: Option<Instant>,
    /// The read timeout last given to the socket, to set it only when it changes.
    applied_read_timeout: Option<Duration>,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Error bits the client reported with MSG_IO_ERROR.
    pub peer_io_error: i32,
    /// Messages (MSG_ERROR/INFO text) the client sent, for the log.
    pub peer_messages: Vec<String>,
    /// Told of each MSG_NO_SEND (a file the client's sender could not open) as it is
    /// read, even while a read waits for data: a push's generator counts the files it
    /// asked for, and would otherwise wait for one that never comes.
    pub no_send: Option<Box<dyn FnMut(i32) + Send>>,
}

impl Wire {
    pub fn new(stream: TcpStream) -> Self {
        Wire {
            stream,
            throttle: None,
            raw: Vec::new(),
            raw_pos: 0,
            data: Vec::new(),
            data_pos: 0,
            mux_in: false,
            mux_out: false,
            out: Vec::new(),
            timeout: None,
            deadline: None,
            applied_read_timeout: None,
            bytes_read: 0,
            bytes_written: 0,
            peer_io_error: 0,
            peer_messages: Vec::new(),
            no_send: None,
        }
    }

    /// Bytes this side has produced so far, sent or still buffered (the transfer log's
    /// per-file counts).
    pub fn produced(&self) -> u64 {
        let header = if self.mux_out && !self.out.is_empty() { FRAME_HEADER } else { 0 };
        self.bytes_written + (self.out.len() - header) as u64
    }

    /// Bytes of the client's stream this side has taken so far.
    pub fn consumed(&self) -> u64 {
        let unread = (self.raw.len() - self.raw_pos) + (self.data.len() - self.data_pos);
        self.bytes_read.saturating_sub(unread as u64)
    }

    /// Limits what this side writes to `kib_per_sec` KiB a second (`--bwlimit`).
    pub fn set_bwlimit(&mut self, kib_per_sec: Option<u32>) {
        self.throttle = kib_per_sec.map(Throttle::new);
    }

    pub fn set_timeout(&mut self, secs: u64) -> io::Result<()> {
        self.timeout = (secs > 0).then(|| Duration::from_secs(secs));
        self.applied_read_timeout = self.timeout;
        self.stream.set_read_timeout(self.timeout)?;
        self.stream.set_write_timeout(self.timeout)
    }

    /// Bounds the reads of a handshake phase to `within` from now, whatever the idle
    /// timeout (`None` lifts the bound). A slow client can otherwise hold one of the
    /// daemon's processes and a connection slot by sending a byte a minute.
    pub fn set_deadline(&mut self, within: Option<Duration>) {
        self.deadline = within.map(|d| Instant::now() + d);
    }

    /// The read timeout for the next read: the idle timeout, shortened to what is left
    /// of the deadline.
    fn arm_read_timeout(&mut self) -> Result<(), ConnError> {
        let wanted = match self.deadline {
            None => self.timeout,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ConnError::HandshakeTimeout);
                }
                Some(self.timeout.map_or(left, |t| t.min(left)))
            }
        };
        if wanted != self.applied_read_timeout {
            self.stream.set_read_timeout(wanted)?;
            self.applied_read_timeout = wanted;
        }
        Ok(())
    }

    /// A second handle on the same socket for writing only, so one thread can write
    /// while another reads (the generator and the receiver of a push). Output buffered
    /// so far is flushed first.
    pub fn writer(&mut self) -> Result<Wire, ConnError> {
        self.flush()?;
        let mut w = Wire::new(self.stream.try_clone()?);
        w.mux_out = self.mux_out;
        w.timeout = self.timeout;
        w.throttle = self.throttle.clone();
        Ok(w)
    }

    /// From here on output is framed; what was buffered before goes out as it was.
    pub fn start_mux_out(&mut self) -> Result<(), ConnError> {
        self.flush()?;
        self.mux_out = true;
        Ok(())
    }

    pub fn start_mux_in(&mut self) {
        self.mux_in = true;
    }

    fn read_socket(&mut self) -> Result<(), ConnError> {
        self.flush()?;
        // Consumed bytes are dropped before reading more, so the buffer holds at most
        // one partial frame plus one read, whatever the transfer's length.
        if self.raw_pos > 0 {
            self.raw.drain(..self.raw_pos);
            self.raw_pos = 0;
        }
        self.arm_read_timeout()?;
        let start = self.raw.len();
        self.raw.resize(start + READ_CHUNK, 0);
        let got = loop {
            match self.stream.read(&mut self.raw[start..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    self.raw.truncate(start);
                    if self.deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(ConnError::HandshakeTimeout);
                    }
                    return Err(ConnError::Timeout(self.timeout.map_or(0, |t| t.as_secs())));
                }
                Err(e) => {
                    self.raw.truncate(start);
                    return Err(e.into());
                }
            }
        };
        self.raw.truncate(start + got);
        if got == 0 {
            return Err(ConnError::Closed);
        }
        self.bytes_read += got as u64;
        Ok(())
    }

    /// Whether the client has sent something not read yet (buffered here or waiting on
    /// the socket), without blocking.
    pub fn input_waiting(&self) -> Result<bool, ConnError> {
        if self.data_pos < self.data.len() || self.raw_pos < self.raw.len() {
            return Ok(true);
        }
        use std::os::fd::AsRawFd;
        let mut pfd = libc::pollfd { fd: self.stream.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: poll on one valid pollfd, without waiting.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error().into());
        }
        Ok(n > 0)
    }

    /// A handshake line (before multiplexing), without its newline.
    pub fn line(&mut self) -> Result<String, ConnError> {
        loop {
            match halite_rsync::handshake::take_line(&self.raw[self.raw_pos..])? {
                Some((line, used)) => {
                    self.raw_pos += used;
                    return Ok(line);
                }
                None => self.read_socket()?,
            }
        }
    }

    /// Handshake bytes not yet consumed (before multiplexing).
    pub fn raw_pending(&self) -> &[u8] {
        &self.raw[self.raw_pos..]
    }

    pub fn consume_raw(&mut self, n: usize) {
        self.raw_pos += n;
    }

    pub fn read_more_raw(&mut self) -> Result<(), ConnError> {
        self.read_socket()
    }

    /// Moves received bytes into the protocol stream, demultiplexing frames.
    fn fill_data(&mut self) -> Result<(), ConnError> {
        loop {
            if !self.mux_in {
                if self.raw_pos == self.raw.len() {
                    self.read_socket()?;
                }
                self.data.extend_from_slice(&self.raw[self.raw_pos..]);
                self.raw_pos = self.raw.len();
                return Ok(());
            }
            let pending = &self.raw[self.raw_pos..];
            if pending.len() < 4 {
                self.read_socket()?;
                continue;
            }
            let header = mux::parse_header([pending[0], pending[1], pending[2], pending[3]])?;
            if pending.len() < 4 + header.len {
                self.read_socket()?;
                continue;
            }
            let payload = &pending[4..4 + header.len];
            self.raw_pos += 4 + header.len;
            match header.msg {
                Msg::Data => {
                    self.data.extend_from_slice(payload);
                    if header.len > 0 {
                        return Ok(());
                    }
                }
                Msg::IoError => {
                    self.peer_io_error |= int_payload(payload)?;
                }
                // The client's sender could not open a file it listed: that file's
                // transfer never comes. Nothing is kept here, so a flood costs nothing.
                Msg::NoSend => {
                    let ndx = int_payload(payload)?;
                    if let Some(tell) = self.no_send.as_mut() {
                        tell(ndx);
                    }
                }
                Msg::ErrorExit => {
                    let code = if payload.is_empty() { 0 } else { int_payload(payload)? };
                    return Err(ConnError::ClientExit(code));
                }
                Msg::Noop => {}
                Msg::Info
                | Msg::Error
                | Msg::ErrorXfer
                | Msg::Warning
                | Msg::Log
                | Msg::Client
                | Msg::ErrorSocket
                | Msg::ErrorUtf8 => {
                    // Bounded by mux::MAX_MESSAGE, and only kept up to a few.
                    if self.peer_messages.len() < 64 {
                        self.peer_messages.push(String::from_utf8_lossy(payload).trim_end().to_string());
                    }
                }
                other => return Err(WireError::Invalid(format!("unexpected message {other:?} from the client")).into()),
            }
        }
    }

    /// Reads more of the protocol stream, for a caller that consumed what it could.
    pub fn read_more(&mut self) -> Result<(), ConnError> {
        if self.data_pos > 0 {
            self.data.drain(..self.data_pos);
            self.data_pos = 0;
        }
        self.fill_data()
    }

    /// Runs `parse` on the protocol stream, reading more until it no longer needs more.
    pub fn parse<T>(&mut self, mut parse: impl FnMut(&mut Reader<'_>) -> Result<T, WireError>) -> Result<T, ConnError> {
        loop {
            let mut r = Reader::new(&self.data[self.data_pos..]);
            match parse(&mut r) {
                Ok(v) => {
                    self.data_pos += r.position();
                    if self.data_pos == self.data.len() {
                        self.data.clear();
                        self.data_pos = 0;
                    }
                    return Ok(v);
                }
                Err(WireError::Incomplete) => {
                    if self.data_pos > 0 {
                        self.data.drain(..self.data_pos);
                        self.data_pos = 0;
                    }
                    self.fill_data()?
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Appends protocol bytes to the output.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        self.out_buffer().extend_from_slice(bytes);
        self.flush_if_full()
    }

    /// The output buffer, for an encoder to write protocol bytes straight into (then
    /// [`Wire::flush_if_full`]). When output is multiplexed it starts with room for the
    /// frame header, filled in by flush: the data is written as it lies, not copied
    /// again into a framed buffer.
    pub fn out_buffer(&mut self) -> &mut Vec<u8> {
        if self.out.is_empty() && self.mux_out {
            self.out.extend_from_slice(&[0; FRAME_HEADER]);
        }
        &mut self.out
    }

    /// Writes the output buffer out once it holds enough to be worth a frame.
    pub fn flush_if_full(&mut self) -> Result<(), ConnError> {
        if self.out.len() >= OUT_FLUSH {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends a message other than data, after the data before it.
    pub fn message(&mut self, msg: Msg, payload: &[u8]) -> Result<(), ConnError> {
        // What the client is told went wrong goes to the daemon's log too, as the
        // reference's rprintf does: here, so no path of an error can miss it.
        if matches!(msg, Msg::Error | Msg::ErrorXfer | Msg::Warning) {
            for line in String::from_utf8_lossy(payload).lines() {
                tracing::warn!("{line}");
            }
        }
        self.flush()?;
        let mut frame = Vec::with_capacity(payload.len() + 8);
        mux::put_frames(&mut frame, msg, payload);
        self.write_all(&frame)
    }

    pub fn flush(&mut self) -> Result<(), ConnError> {
        if self.out.is_empty() || (self.mux_out && self.out.len() == FRAME_HEADER) {
            self.out.clear();
            return Ok(());
        }
        let mut out = std::mem::take(&mut self.out);
        if self.mux_out {
            let len = out.len() - FRAME_HEADER;
            if len <= mux::MAX_FRAME {
                out[..FRAME_HEADER].copy_from_slice(&mux::header(Msg::Data, len));
                self.write_all(&out)?;
            } else {
                let mut framed = Vec::with_capacity(len + len / mux::MAX_FRAME * FRAME_HEADER + FRAME_HEADER);
                mux::put_frames(&mut framed, Msg::Data, &out[FRAME_HEADER..]);
                self.write_all(&framed)?;
            }
        } else {
            self.write_all(&out)?;
        }
        self.out = out;
        self.out.clear();
        Ok(())
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        let Some(piece) = self.throttle.as_ref().map(Throttle::piece) else { return self.write_now(bytes) };
        for chunk in bytes.chunks(piece) {
            self.write_now(chunk)?;
            if let Some(wait) = self.throttle.as_mut().and_then(|t| t.wrote(chunk.len(), Instant::now())) {
                std::thread::sleep(wait);
            }
        }
        Ok(())
    }

    fn write_now(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        match self.stream.write_all(bytes) {
            Ok(()) => {
                self.bytes_written += bytes.len() as u64;
                Ok(())
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                Err(ConnError::Timeout(self.timeout.map_or(0, |t| t.as_secs())))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The reference's "noop until death" after an error exit: reads (and drops) what
    /// the client still sends until it answers with its own error exit or closes,
    /// bounded in time, so the client reads our error before the socket goes away and
    /// neither side waits for the other to hang up first.
    pub fn drain_until_closed(&mut self) {
        let _ = self.flush();
        self.timeout = Some(Duration::from_secs(5));
        let _ = self.stream.set_read_timeout(self.timeout);
        self.mux_in = true;
        for _ in 0..10_000 {
            self.data.clear();
            self.data_pos = 0;
            if self.fill_data().is_err() {
                return;
            }
        }
    }

    /// Ends the connection both ways at once, waking a thread blocked reading it.
    pub fn abort(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    pub fn shutdown(&mut self) {
        let _ = self.flush();
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }
}

fn int_payload(payload: &[u8]) -> Result<i32, WireError> {
    let b: [u8; 4] = payload.try_into().map_err(|_| WireError::Invalid("message with a bad int payload".into()))?;
    Ok(i32::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_holds_the_average_to_the_limit() {
        // 100 KiB/s, 1 MiB written in pieces as fast as they are allowed: 10.24 s.
        let mut t = Throttle::new(100);
        assert_eq!(t.piece(), 12_800);
        let start = Instant::now();
        let mut now = start;
        let mut written = 0usize;
        while written < 1 << 20 {
            let n = t.piece().min((1 << 20) - written);
            written += n;
            if let Some(wait) = t.wrote(n, now) {
                now += wait;
            }
        }
        let took = now - start;
        assert!(took >= Duration::from_millis(10_100) && took <= Duration::from_millis(10_300), "{took:?}");
    }

    #[test]
    fn time_spent_elsewhere_is_credited() {
        let mut t = Throttle::new(100);
        let start = Instant::now();
        assert_eq!(t.wrote(10_000, start), None, "under a tenth of a second owed: no sleep");
        // A second later the debt is paid: another 100 KiB goes without a sleep long
        // enough to matter.
        let wait = t.wrote(102_400, start + Duration::from_secs(1));
        assert!(wait.is_none_or(|w| w <= Duration::from_millis(1_000)), "{wait:?}");
        // A huge write owes its time.
        let wait = t.wrote(1 << 20, start + Duration::from_secs(2)).unwrap();
        assert!(wait >= Duration::from_secs(9), "{wait:?}");
    }
}
