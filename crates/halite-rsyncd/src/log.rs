//! The daemon's log, as rsyncd.conf(5) defines it.
//!
//! With a `log file` (global, or a module's own), every line goes to that file in the
//! reference's form, `YYYY/MM/DD HH:MM:SS [pid] text`, with the reference's wording for
//! connections, refusals and totals, so the scripts that read an rsyncd log keep working.
//! Without one, the reference uses syslog; halite-rsyncd writes tracing's lines to stderr
//! instead (the unit's journal), with the connection's span.
//!
//! `transfer logging` adds one line per file sent, received or deleted, in the module's
//! `log format` ([`TransferLog`]).
//!
//! Each connection's process opens the file afresh right after the fork (and a module's
//! own before the chroot), the listener for each of its rare lines, so a rotated log is
//! followed as the reference follows it. The file is opened in append mode, 0644, never
//! through a symlink, and each line is one `write`, so the lines of concurrent
//! connections (one process each) never interleave. Every line is made safe whole: a
//! control character anywhere in it (a client's file name, option or user name) is
//! written `\#ooo`, so no client can start a line of its own.

use halite_rsync::flist::FileEntry;
use halite_rsync::logformat::{item, LogFormat, LogItem};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// Where lines go: the `log file` (its path, and the file once open), or stderr when
/// there is none.
static LOG_FILE: Mutex<Option<LogFile>> = Mutex::new(None);

struct LogFile {
    path: std::path::PathBuf,
    /// Open for the connection's life in a connection's process; None in the listener,
    /// which opens the file for each line.
    open: Option<File>,
}

/// The longest line written: a path and then some, as the reference's line buffer.
const MAX_LINE: usize = halite_rsync::flist::MAXPATHLEN + 1024;

/// Sets up the daemon's logging: to `log_file` in the reference's form when set, else to
/// stderr. `RUST_LOG` filters as usual (default `info`).
pub fn init(log_file: Option<&Path>) -> io::Result<()> {
    prime_timezone();
    if let Some(path) = log_file {
        // Opened once now so a bad path fails the start-up, then per line.
        open(path)?;
        *lock() = Some(LogFile { path: path.to_path_buf(), open: None });
    }
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .event_format(Lines { plain: format::Format::default() })
        .with_writer(Target)
        .init();
    Ok(())
}

/// Switches this connection's process to a module's own `log file` (the reference
/// reopens it once the module is known, before the chroot). A file that cannot be opened
/// leaves the log where it was, and says so there.
pub fn use_module_log(path: Option<&Path>, global: Option<&Path>) {
    let Some(path) = path else { return };
    if Some(path) == global {
        return;
    }
    match open(path) {
        Ok(file) => *lock() = Some(LogFile { path: path.to_path_buf(), open: Some(file) }),
        Err(e) => tracing::error!("cannot open the module's log file {}: {e}", path.display()),
    }
}

/// In a connection's process, just after the fork: the log file opened afresh (a
/// rotated log is followed) and kept for the connection.
pub fn open_for_connection() {
    let mut guard = lock();
    if let Some(log) = guard.as_mut() {
        log.open = open(&log.path).ok();
    }
}

fn open(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        // Root writes it: never through a link someone else put there.
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("log file {}: {e}", path.display())))
}

fn lock() -> std::sync::MutexGuard<'static, Option<LogFile>> {
    LOG_FILE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The C library reads the time zone on first use; doing it now, before any chroot, keeps
/// the log's times local afterwards (the reference does the same).
fn prime_timezone() {
    // glibc's localtime_r loads the zone once, on first use.
    let _ = timestring(now());
}

/// A time as the reference's logs write it: `YYYY/MM/DD HH:MM:SS`, local time.
pub fn timestring(t: i64) -> String {
    // SAFETY: a zeroed tm is valid output space; localtime_r writes only into it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let secs = t as libc::time_t;
    // SAFETY: both pointers are valid for the call.
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return "(time out of range)".to_string();
    }
    // A client's mtime can be anything: the year is widened before the addition.
    format!(
        "{:04}/{:02}/{:02} {:02}:{:02}:{:02}",
        i64::from(tm.tm_year) + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Formats events as the reference's log lines when a log file is open, else as
/// tracing's usual lines.
struct Lines {
    plain: format::Format,
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: format::Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        if lock().is_none() {
            return self.plain.format_event(ctx, writer, event);
        }
        write!(writer, "{} [{}] ", timestring(now()), std::process::id())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// The writer tracing formats each line into; it writes the whole line at once.
struct Target;

struct LineWriter;

impl<'a> MakeWriter<'a> for Target {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        LineWriter
    }
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let line = safe_line(buf);
        let mut guard = lock();
        match guard.as_mut() {
            // One write per line: O_APPEND keeps each whole against other processes.
            Some(LogFile { open: Some(file), .. }) => file.write_all(&line)?,
            Some(LogFile { path, open: None }) => open(path)?.write_all(&line)?,
            None => io::stderr().write_all(&line)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One formatted line made safe to write: control characters (tab aside) written `\#ooo`
/// as the reference's log does, cut at [`MAX_LINE`], one newline at the end. (Names in
/// transfer lines come already escaped, a literal `\#` included, by `logformat::shown`.)
fn safe_line(buf: &[u8]) -> Vec<u8> {
    let body = buf.strip_suffix(b"\n").unwrap_or(buf);
    let mut out = Vec::with_capacity(body.len().min(MAX_LINE) + 1);
    for &b in body {
        if out.len() >= MAX_LINE {
            break;
        }
        if (b < 0x20 && b != b'\t') || b == 0x7f {
            out.extend_from_slice(format!("\\#{b:03o}").as_bytes());
        } else {
            out.push(b);
        }
    }
    out.push(b'\n');
    out
}

/// One connection's `transfer logging`: who is on the other end, and the module's
/// `log format`. Absent when the module does not log transfers.
pub struct TransferLog {
    format: LogFormat,
    /// Deletions use the format only when it says what happened (`%o` or `%i`), as
    /// the reference does; else "deleting %n".
    deletions: LogFormat,
    /// Items that were not transferred are logged only when the format itemizes them.
    itemizes: bool,
    host: String,
    addr: String,
    module: String,
    module_path: String,
    user: String,
    sender: bool,
    /// The whole-file checksum, for `%C`.
    strong: halite_rsync::checksum::Strong,
    /// `--checksum`: `%C` is then the file list's checksum of every regular file, else
    /// the transfer's checksum of a transferred file.
    always_checksum: bool,
}

/// What a transfer logs about one file, beside the entry itself.
pub struct Logged<'a> {
    /// The path from the module's root.
    pub path: &'a [u8],
    pub iflags: u32,
    pub data_bytes: u64,
    pub checksum_bytes: u64,
    /// The whole-file checksum the sender sent after the file's data.
    pub file_sum: Option<&'a [u8]>,
    /// The owner and group, when the transfer carries them.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// `-H`: the name this one was hard-linked to.
    pub hlink: Option<&'a [u8]>,
}

impl TransferLog {
    /// The log for a connection, if the module has `transfer logging`.
    pub fn new(
        host: &str,
        addr: std::net::IpAddr,
        module: &crate::module::ModuleView,
        user: Option<&str>,
        sender: bool,
        strong: halite_rsync::checksum::Strong,
        always_checksum: bool,
    ) -> Option<TransferLog> {
        let format = module.transfer_log_format.clone()?;
        let deletions = if format.has('o') || format.has('i') {
            format.clone()
        } else {
            LogFormat::parse("deleting %n").expect("a fixed, short format")
        };
        Some(TransferLog {
            itemizes: format.has('i'),
            format,
            deletions,
            host: host.to_string(),
            addr: addr.to_string(),
            module: module.name.clone(),
            module_path: module.config.path.display().to_string(),
            user: user.unwrap_or("").to_string(),
            sender,
            strong,
            always_checksum,
        })
    }

    /// What `%C` prints for an entry, as the reference's log_formatted has it.
    fn checksum_hex(&self, entry: &FileEntry, logged: &Logged<'_>) -> Option<String> {
        let sum = if self.always_checksum && logged.iflags & item::DELETED == 0 {
            entry.checksum.as_deref()
        } else if logged.iflags & item::TRANSFER != 0 {
            logged.file_sum
        } else {
            None
        };
        self.strong.log_hex(sum?)
    }

    fn base<'a>(&'a self, entry: &'a FileEntry, logged: &Logged<'a>) -> LogItem<'a> {
        LogItem {
            op: if self.sender { "send" } else { "recv" },
            host: &self.host,
            addr: &self.addr,
            module: &self.module,
            module_path: &self.module_path,
            user: &self.user,
            // The module's top is "." in the reference's lines.
            path: if logged.path.is_empty() { b"." } else { logged.path },
            name: &entry.name,
            mode: entry.mode,
            len: entry.size,
            uid: logged.uid,
            gid: logged.gid,
            mtime: entry.mtime,
            now: now(),
            link_target: entry.link_target.as_deref(),
            hlink: logged.hlink,
            pid: std::process::id(),
            data_bytes: logged.data_bytes,
            checksum_bytes: logged.checksum_bytes,
            checksum_hex: None,
            checksum_hex_width: self.strong.digest_len() * 2,
            iflags: logged.iflags,
            sender: self.sender,
        }
    }

    /// A file whose data was sent or received.
    pub fn transferred(&self, entry: &FileEntry, logged: &Logged<'_>) {
        let hex = if self.format.has('C') { self.checksum_hex(entry, logged) } else { None };
        let item = LogItem { checksum_hex: hex.as_deref(), ..self.base(entry, logged) };
        let line = self.format.render(&item, &timestring);
        tracing::info!("{line}");
    }

    /// A file that changed without a transfer (a new directory, a symlink, new times):
    /// logged only when the format itemizes (`%i`), as the reference does.
    pub fn changed(&self, entry: &FileEntry, logged: &Logged<'_>) {
        if self.itemizes && logged.iflags & item::SIGNIFICANT != 0 {
            self.transferred(entry, logged);
        }
    }

    /// A name removed by `--delete`, with the mode it had.
    pub fn deleted(&self, name: &[u8], mode: u32) {
        let entry = FileEntry { name: name.to_vec(), mode, ..Default::default() };
        let logged = Logged {
            path: name,
            iflags: item::DELETED,
            data_bytes: 0,
            checksum_bytes: 0,
            file_sum: None,
            uid: None,
            gid: None,
            hlink: None,
        };
        let item = LogItem { op: "del.", ..self.base(&entry, &logged) };
        tracing::info!("{}", self.deletions.render(&item, &timestring));
    }
}
