//! The transfer log's line format: rsyncd.conf(5)'s `log format` escapes (`%o %h [%a] %m
//! (%u) %f %l` by default), parsed once per connection into pieces and rendered for each
//! file sent, received or deleted (log.c log_formatted), and the itemize flags (`%i`) a
//! generator attaches to each file index.
//!
//! The daemon supplies everything a line shows — names, sizes, addresses, the clock — as a
//! [`LogItem`]; nothing here reads a clock or the environment. One deliberate difference:
//! a byte of a name that is a control character or not UTF-8 (and the backslash of a
//! literal `\#`) is written `\#ooo` (octal), as the reference writes it to a terminal, so a name sent by a client can never start a
//! forged line in the log.

use crate::flist::{S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFSOCK};
use thiserror::Error;

/// The itemize flags of rsync.h (the low 16 travel with an index on the wire; the rest
/// only ever reach a log line).
pub mod item {
    pub const REPORT_ATIME: u32 = 1 << 0;
    pub const REPORT_CHANGE: u32 = 1 << 1;
    /// Regular files: the size changed. Symlinks: setting their time failed.
    pub const REPORT_SIZE: u32 = 1 << 2;
    pub const REPORT_TIMEFAIL: u32 = 1 << 2;
    pub const REPORT_TIME: u32 = 1 << 3;
    pub const REPORT_PERMS: u32 = 1 << 4;
    pub const REPORT_OWNER: u32 = 1 << 5;
    pub const REPORT_GROUP: u32 = 1 << 6;
    pub const REPORT_ACL: u32 = 1 << 7;
    pub const REPORT_XATTR: u32 = 1 << 8;
    pub const REPORT_CRTIME: u32 = 1 << 10;
    pub const BASIS_TYPE_FOLLOWS: u32 = 1 << 11;
    pub const XNAME_FOLLOWS: u32 = 1 << 12;
    pub const IS_NEW: u32 = 1 << 13;
    pub const LOCAL_CHANGE: u32 = 1 << 14;
    pub const TRANSFER: u32 = 1 << 15;
    pub const MISSING_DATA: u32 = 1 << 16;
    pub const DELETED: u32 = 1 << 17;
    /// Flags that say something changed (log.c SIGNIFICANT_ITEM_FLAGS).
    pub const SIGNIFICANT: u32 = !(BASIS_TYPE_FOLLOWS | XNAME_FOLLOWS | LOCAL_CHANGE);
}

/// rsyncd.conf(5)'s default `log format`.
pub const DEFAULT_LOG_FORMAT: &str = "%o %h [%a] %m (%u) %f %l";

/// The longest format accepted: the reference refuses one longer than a path.
pub const MAX_FORMAT_LEN: usize = crate::flist::MAXPATHLEN;

/// The longest field width: the reference's format buffer holds a handful of digits.
const MAX_WIDTH: usize = 9999;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum LogFormatError {
    #[error("log format is {0} bytes long; at most {MAX_FORMAT_LEN} are accepted")]
    TooLong(usize),
}

/// A parsed `log format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFormat {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(Field),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    code: char,
    left: bool,
    width: Option<usize>,
    /// `'` repeated: 1 groups thousands with commas, 2 and 3 use units of 1000 and 1024.
    humanize: u8,
}

/// What one line describes: a file sent, received, deleted or (with `%i`) changed.
#[derive(Debug, Clone, Default)]
pub struct LogItem<'a> {
    /// "send", "recv" or "del.".
    pub op: &'a str,
    /// The client's name (or "UNDETERMINED" without reverse lookups) and address.
    pub host: &'a str,
    pub addr: &'a str,
    pub module: &'a str,
    /// The module's path as configured.
    pub module_path: &'a str,
    /// The authenticated user, empty when the module needs none.
    pub user: &'a str,
    /// The path from the module's root (`%f`).
    pub path: &'a [u8],
    /// The name as the file list carries it (`%n`).
    pub name: &'a [u8],
    pub mode: u32,
    pub len: u64,
    /// The owner and group, when the transfer carries them (`-o`, `-g`).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mtime: i64,
    /// The time of the line (`%t`).
    pub now: i64,
    pub link_target: Option<&'a [u8]>,
    /// A hard link's (`-H`) other name, which `%L` shows as " => name".
    pub hlink: Option<&'a [u8]>,
    pub pid: u32,
    /// `%b`: bytes of file data that crossed the wire for this item; `%c`: the checksum
    /// bytes that went the other way.
    pub data_bytes: u64,
    pub checksum_bytes: u64,
    /// `%C`: the whole-file checksum in hex, and how many hex digits a blank one takes.
    pub checksum_hex: Option<&'a str>,
    pub checksum_hex_width: usize,
    pub iflags: u32,
    /// Whether this side is the sender (the direction of `%i`'s first column).
    pub sender: bool,
}

impl LogFormat {
    pub fn parse(format: &str) -> Result<LogFormat, LogFormatError> {
        if format.len() > MAX_FORMAT_LEN {
            return Err(LogFormatError::TooLong(format.len()));
        }
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = format;
        while let Some(at) = rest.find('%') {
            text.push_str(&rest[..at]);
            let escape = &rest[at..];
            match parse_escape(escape) {
                Some((field, used)) => {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Field(field));
                    rest = &escape[used..];
                }
                // An escape the reference does not know stays in the line as written.
                None => {
                    text.push('%');
                    rest = &escape[1..];
                }
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(LogFormat { pieces })
    }

    /// Whether the format uses `%code`.
    pub fn has(&self, code: char) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Field(f) if f.code == code))
    }

    /// The line for `item` (without a newline). `timestring` renders a Unix time the way
    /// the daemon's log does (`%t`, `%M`).
    pub fn render(&self, item: &LogItem<'_>, timestring: &dyn Fn(i64) -> String) -> String {
        let mut line = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => line.push_str(t),
                Piece::Field(f) => render_field(&mut line, f, item, timestring),
            }
        }
        line
    }
}

/// Reads one escape starting at '%': flags, width, code. `None` for an unknown code (or a
/// '%' ending the format), which the reference leaves in the line.
fn parse_escape(escape: &str) -> Option<(Field, usize)> {
    let bytes = escape.as_bytes();
    let mut i = 1;
    let mut humanize = 0u8;
    while bytes.get(i) == Some(&b'\'') {
        humanize = humanize.saturating_add(1);
        i += 1;
    }
    let left = bytes.get(i) == Some(&b'-');
    if left {
        i += 1;
    }
    let digits_start = i;
    while bytes.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let width = escape[digits_start..i].parse::<usize>().ok().map(|w| w.min(MAX_WIDTH));
    while bytes.get(i) == Some(&b'\'') {
        humanize = humanize.saturating_add(1);
        i += 1;
    }
    let code = *bytes.get(i)? as char;
    if !"halUGpMBofnLmtPubcCi%".contains(code) {
        return None;
    }
    Some((Field { code, left, width, humanize }, i + 1))
}

fn render_field(line: &mut String, f: &Field, item: &LogItem<'_>, timestring: &dyn Fn(i64) -> String) {
    let text: String = match f.code {
        'h' => item.host.to_string(),
        'a' => item.addr.to_string(),
        'l' => big_num(item.len as i64, f.humanize),
        'U' => item.uid.unwrap_or(0).to_string(),
        'G' => item.gid.map_or_else(|| "DEFAULT".to_string(), |g| g.to_string()),
        'p' => item.pid.to_string(),
        'M' => timestring(item.mtime).replace(' ', "-"),
        'B' => permstring(item.mode)[1..].to_string(),
        'o' => item.op.to_string(),
        'f' => {
            let path = shown(item.path);
            path.strip_prefix('/').map(str::to_string).unwrap_or(path)
        }
        'n' => {
            let mut name = shown(item.name);
            if item.mode & S_IFMT == S_IFDIR {
                name.push('/');
            }
            name
        }
        'L' => {
            // The arrow and target, or (with a width) blanks the width of the arrow.
            let (arrow, target) = match (item.hlink, item.link_target) {
                (Some(h), _) if !h.is_empty() => (" => ", shown(h)),
                (_, Some(t)) if item.mode & S_IFMT == S_IFLNK && item.iflags & item::XNAME_FOLLOWS == 0 => {
                    (" -> ", shown(t))
                }
                _ if f.width.is_none() => return,
                _ => ("    ", String::new()),
            };
            line.push_str(arrow);
            line.push_str(&pad(target, f));
            return;
        }
        'm' => item.module.to_string(),
        't' => timestring(item.now),
        'P' => item.module_path.to_string(),
        'u' => item.user.to_string(),
        'b' | 'c' => {
            let bytes = if item.iflags & item::TRANSFER == 0 {
                0
            } else if f.code == 'b' {
                item.data_bytes
            } else {
                item.checksum_bytes
            };
            big_num(bytes as i64, f.humanize)
        }
        'C' => match item.checksum_hex {
            Some(hex) if item.mode & S_IFMT == crate::flist::S_IFREG => hex.to_string(),
            _ => " ".repeat(item.checksum_hex_width),
        },
        'i' => itemize(item),
        '%' => "%".to_string(),
        _ => return,
    };
    line.push_str(&pad(text, f));
}

fn pad(text: String, f: &Field) -> String {
    match f.width {
        Some(w) if text.chars().count() < w => {
            let fill = " ".repeat(w - text.chars().count());
            if f.left {
                text + &fill
            } else {
                fill + &text
            }
        }
        _ => text,
    }
}

/// A number as the reference's do_big_num writes it: plain, with thousands separated by
/// commas (`humanize` 1), or scaled to K/M/G/T/P by 1000 (2) or 1024 (3 and more).
pub fn big_num(num: i64, humanize: u8) -> String {
    if humanize > 1 {
        let mult: f64 = if humanize == 2 { 1000.0 } else { 1024.0 };
        if num as f64 >= mult || num as f64 <= -mult {
            let mut d = (num as f64).abs() / mult;
            let mut unit = 'K';
            for next in ['M', 'G', 'T', 'P'] {
                if d < mult {
                    break;
                }
                d /= mult;
                unit = next;
            }
            if num < 0 {
                d = -d;
            }
            return format!("{d:.2}{unit}");
        }
    }
    let digits = num.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if num < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if humanize == 1 && i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `ls -l`'s ten-character mode string (lib/permstring.c).
pub fn permstring(mode: u32) -> String {
    let mut p = *b"----------";
    let bits = b"rwxrwxrwx";
    for i in 0..9 {
        if mode & (1 << i) != 0 {
            p[9 - i] = bits[8 - i];
        }
    }
    if mode & 0o4000 != 0 {
        p[3] = if mode & 0o100 != 0 { b's' } else { b'S' };
    }
    if mode & 0o2000 != 0 {
        p[6] = if mode & 0o010 != 0 { b's' } else { b'S' };
    }
    if mode & 0o1000 != 0 {
        p[9] = if mode & 0o001 != 0 { b't' } else { b'T' };
    }
    p[0] = match mode & S_IFMT {
        S_IFDIR => b'd',
        S_IFLNK => b'l',
        S_IFBLK => b'b',
        S_IFCHR => b'c',
        S_IFSOCK => b's',
        S_IFIFO => b'p',
        _ => b'-',
    };
    String::from_utf8_lossy(&p).into_owned()
}

/// `%i`: the eleven-character change summary (`>f+++++++++`, `.d..t......`, `*deleting  `).
fn itemize(item: &LogItem<'_>) -> String {
    use item::*;
    let fl = item.iflags;
    if fl & DELETED != 0 {
        return "*deleting  ".to_string();
    }
    let kind = item.mode & S_IFMT;
    let mut c = [b'.'; 11];
    c[0] = if fl & LOCAL_CHANGE != 0 {
        if fl & XNAME_FOLLOWS != 0 {
            b'h'
        } else {
            b'c'
        }
    } else if fl & TRANSFER == 0 {
        b'.'
    } else if item.sender {
        b'<'
    } else {
        b'>'
    };
    let set = |flag: u32, yes: u8| if fl & flag != 0 { yes } else { b'.' };
    if kind == S_IFLNK {
        c[1] = b'L';
        c[4] = set(REPORT_TIME, if fl & REPORT_TIMEFAIL != 0 { b'T' } else { b't' });
    } else {
        c[1] = match kind {
            S_IFDIR => b'd',
            S_IFIFO | S_IFSOCK => b'S',
            S_IFBLK | S_IFCHR => b'D',
            _ => b'f',
        };
        c[3] = set(REPORT_SIZE, b's');
        c[4] = set(REPORT_TIME, b't');
    }
    c[2] = set(REPORT_CHANGE, b'c');
    c[5] = set(REPORT_PERMS, b'p');
    c[6] = set(REPORT_OWNER, b'o');
    c[7] = set(REPORT_GROUP, b'g');
    c[8] = match (fl & REPORT_ATIME != 0, fl & REPORT_CRTIME != 0) {
        (true, true) => b'b',
        (true, false) => b'u',
        (false, true) => b'n',
        (false, false) => b'.',
    };
    c[9] = set(REPORT_ACL, b'a');
    c[10] = set(REPORT_XATTR, b'x');
    if fl & (IS_NEW | MISSING_DATA) != 0 {
        let ch = if fl & IS_NEW != 0 { b'+' } else { b'?' };
        c[2..].fill(ch);
    } else if matches!(c[0], b'.' | b'h' | b'c') && c[2..].iter().all(|&b| b == b'.') {
        c[2..].fill(b' ');
    }
    String::from_utf8_lossy(&c).into_owned()
}

/// A name for a log line: control characters, backslash-hash and bytes that are not UTF-8
/// written as `\#ooo`, so the line stays one line whatever the client named its files.
pub fn shown(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        let mut chars = chunk.valid().chars().peekable();
        while let Some(ch) = chars.next() {
            // A literal "\#" is escaped too, so an escape in the log is never ambiguous.
            if ch.is_control() || (ch == '\\' && chars.peek() == Some(&'#')) {
                let mut buf = [0u8; 4];
                for b in ch.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\#{b:03o}"));
                }
            } else {
                out.push(ch);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\#{b:03o}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flist::S_IFREG;

    fn utc(t: i64) -> String {
        format!("T{t}")
    }

    // Expected lines are what rsync 3.5.0 printed for the same files with
    // `--out-format` (the same log_formatted code that writes a daemon's log).
    const VECTOR_FORMAT: &str = "[%i|%n|%l|%'l|%''l|%'''l|%-10n|%10l|%B|%z|%L|%5L|%%|%-6o]";

    fn new_file<'a>(name: &'a [u8], mode: u32, len: u64, link: Option<&'a [u8]>, iflags: u32) -> LogItem<'a> {
        LogItem { op: "send", path: name, name, mode, len, link_target: link, iflags, ..Default::default() }
    }

    #[test]
    fn escapes_render_as_the_reference_renders_them() {
        let f = LogFormat::parse(VECTOR_FORMAT).unwrap();
        let cases: [(LogItem<'_>, &str); 4] = [
            (
                new_file(b".", S_IFDIR | 0o755, 4096, None, item::IS_NEW | item::LOCAL_CHANGE),
                "[cd+++++++++|./|4096|4,096|4.10K|4.00K|./        |      4096|rwxr-xr-x|%z||         |%|send  ]",
            ),
            (
                new_file(b"big", S_IFREG | 0o4755, 1_234_567, None, item::IS_NEW | item::TRANSFER),
                "[>f+++++++++|big|1234567|1,234,567|1.23M|1.18M|big       |   1234567|rwsr-xr-x|%z||         |%|send  ]",
            ),
            (
                new_file(b"lnk", S_IFLNK | 0o777, 3, Some(b"d/f"), item::IS_NEW | item::LOCAL_CHANGE),
                "[cL+++++++++|lnk|3|3|3|3|lnk       |         3|rwxrwxrwx|%z| -> d/f| ->   d/f|%|send  ]",
            ),
            (
                new_file(b"d/f", S_IFREG | 0o644, 3, None, item::IS_NEW | item::TRANSFER),
                "[>f+++++++++|d/f|3|3|3|3|d/f       |         3|rw-r--r--|%z||         |%|send  ]",
            ),
        ];
        for (item, want) in cases {
            let item = LogItem { sender: false, ..item };
            assert_eq!(f.render(&item, &utc), want);
        }
        let changed =
            new_file(b"d/f", S_IFREG | 0o600, 3, None, item::TRANSFER | item::REPORT_TIME | item::REPORT_PERMS);
        assert_eq!(LogFormat::parse("[%i|%n|%B]").unwrap().render(&changed, &utc), "[>f..tp.....|d/f|rw-------]");
        let deleted = LogItem { op: "del.", iflags: item::DELETED, ..new_file(b"big", S_IFREG, 0, None, 0) };
        assert_eq!(LogFormat::parse("[%i|%n|%o]").unwrap().render(&deleted, &utc), "[*deleting  |big|del.]");
    }

    #[test]
    fn the_default_format_names_the_client_module_and_user() {
        let item = LogItem {
            op: "recv",
            host: "localhost",
            addr: "127.0.0.1",
            module: "backups",
            user: "backup",
            path: b"/vm1/etc.tar",
            name: b"etc.tar",
            mode: S_IFREG | 0o600,
            len: 10240,
            ..Default::default()
        };
        let line = LogFormat::parse(DEFAULT_LOG_FORMAT).unwrap().render(&item, &utc);
        assert_eq!(line, "recv localhost [127.0.0.1] backups (backup) vm1/etc.tar 10240");
    }

    #[test]
    fn bytes_times_owners_and_unknown_escapes() {
        let item = LogItem {
            mode: S_IFREG | 0o644,
            iflags: item::TRANSFER,
            data_bytes: 1_234_758,
            checksum_bytes: 46,
            mtime: 7,
            now: 9,
            pid: 42,
            uid: Some(1000),
            checksum_hex: Some("00ff"),
            checksum_hex_width: 4,
            ..Default::default()
        };
        let f = LogFormat::parse("%b %'b %c %M %t %p %U %G %C %q %5 %").unwrap();
        assert_eq!(f.render(&item, &utc), "1234758 1,234,758 46 T7 T9 42 1000 DEFAULT 00ff %q %5 %");
        let untransferred = LogItem { iflags: 0, checksum_hex: None, ..item };
        assert_eq!(LogFormat::parse("[%b|%C]").unwrap().render(&untransferred, &utc), "[0|    ]");
        assert!(f.has('p') && !f.has('i'));
    }

    #[test]
    fn names_cannot_break_the_line() {
        let item = LogItem { path: b"a\nb\xff\x1b[31m", name: b"a\nb", mode: S_IFREG, ..Default::default() };
        let line = LogFormat::parse("%f|%n").unwrap().render(&item, &utc);
        assert_eq!(line, "a\\#012b\\#377\\#033[31m|a\\#012b");
        let literal = LogItem { path: b"a\\#012b", ..item };
        assert_eq!(LogFormat::parse("%f").unwrap().render(&literal, &utc), "a\\#134#012b");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn an_overlong_format_is_refused() {
        let long = "%f".repeat(MAX_FORMAT_LEN);
        assert_eq!(LogFormat::parse(&long), Err(LogFormatError::TooLong(long.len())));
        assert_eq!(big_num(-1_234_567, 1), "-1,234,567");
        assert_eq!(big_num(5 << 40, 3), "5.00T");
    }
}
