//! The argument list a client sends a daemon (`--server [--sender] -vlogDtpre.iLsfxCIvu
//! [long options] . module/path...`) parsed once into typed [`ServerOptions`].
//!
//! Only what the client's server_options() can emit is accepted; anything else is refused
//! with the reference's wording, before a byte of file data moves. The daemon's
//! `refuse options` is applied here too, by the option's long name, so a refused option
//! is refused however the client spelled it.

use thiserror::Error;

/// A parsed server argument list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerOptions {
    /// The daemon sends (the client pulls).
    pub sender: bool,
    pub verbose: u8,
    pub recursive: bool,
    pub links: bool,
    pub perms: bool,
    pub times: bool,
    pub owner: bool,
    pub group: bool,
    pub devices: bool,
    pub specials: bool,
    pub hard_links: bool,
    pub checksum: bool,
    pub compress: bool,
    pub dry_run: bool,
    pub whole_file: bool,
    pub relative: bool,
    pub dirs: bool,
    pub update: bool,
    pub copy_links: bool,
    pub copy_dirlinks: bool,
    pub keep_dirlinks: bool,
    pub omit_dir_times: bool,
    pub omit_link_times: bool,
    pub cvs_exclude: bool,
    pub sparse: bool,
    pub ignore_times: bool,
    pub one_file_system: bool,
    pub prune_empty_dirs: bool,
    pub itemize: bool,
    /// The pushing client itemizes unchanged items too (`-ii`, sent as
    /// `--log-format=%i%I`): the receiver's generator then reports every item.
    pub itemize_unchanged: bool,
    pub delete: Option<DeleteMode>,
    pub delete_excluded: bool,
    pub force: bool,
    pub max_delete: Option<i64>,
    pub numeric_ids: bool,
    pub partial: bool,
    pub inplace: bool,
    pub append: bool,
    pub existing: bool,
    pub ignore_existing: bool,
    pub size_only: bool,
    pub safe_links: bool,
    pub copy_unsafe_links: bool,
    pub ignore_errors: bool,
    pub no_implied_dirs: bool,
    pub remove_source_files: bool,
    pub fsync: bool,
    pub mkpath: bool,
    pub modify_window: i32,
    pub block_size: Option<u32>,
    pub checksum_seed: Option<i32>,
    pub checksum_choice: Option<String>,
    pub compress_choice: Option<String>,
    pub compress_level: Option<i32>,
    pub timeout: Option<u32>,
    /// `--bwlimit`, in KiB per second (the client sends a whole number of KiB; 0 is
    /// no limit).
    pub bwlimit_kib: Option<u32>,
    /// `--max-size`/`--min-size` in bytes (the client sends them as plain numbers).
    pub max_size: Option<u64>,
    pub min_size: Option<u64>,
    /// The client's capability letters (after `-e.`).
    pub client_info: String,
    /// The file arguments after the `.` marker, as sent (module name prefix included).
    pub paths: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteMode {
    Before,
    During,
    Delay,
    After,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum OptionError {
    #[error("{0}: unknown option")]
    Unknown(String),
    /// The module's `refuse options` names it: the long name and the short letter.
    #[error("The server is configured to refuse --{}{}", .0, .1.map(|c| format!(" (-{c})")).unwrap_or_default())]
    Refused(String, Option<char>),
    #[error("{option}: {reason}")]
    BadValue { option: String, reason: String },
    #[error("the argument list is not a server's (no --server)")]
    NotServer,
    #[error("{0} is not supported by halite-rsyncd")]
    Unsupported(String),
}

impl ServerOptions {
    /// Parses `args` (as received, without the reference's "rsyncd" argv[0]); `refused` is
    /// the module's `refuse options` list (long names, wildcards `*` and `?` allowed,
    /// as rsyncd.conf(5) describes).
    pub fn parse(args: &[Vec<u8>], refused: &[String]) -> Result<ServerOptions, OptionError> {
        let mut o = ServerOptions::default();
        let mut saw_server = false;
        let mut i = 0;
        while i < args.len() {
            let arg = String::from_utf8_lossy(&args[i]).into_owned();
            i += 1;
            if arg == "." {
                o.paths = args[i..].to_vec();
                break;
            }
            if let Some(long) = arg.strip_prefix("--") {
                let (name, value) = match long.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (long.to_string(), None),
                };
                if name == "server" {
                    saw_server = true;
                    continue;
                }
                check_refused(&name, refused)?;
                // Options the client sends with a separate value argument.
                let takes_value = matches!(
                    name.as_str(),
                    "partial-dir"
                        | "temp-dir"
                        | "backup-dir"
                        | "suffix"
                        | "max-size"
                        | "min-size"
                        | "files-from"
                        | "checksum-choice"
                        | "compress-choice"
                        | "skip-compress"
                        | "usermap"
                        | "groupmap"
                        | "iconv"
                        | "max-alloc"
                );
                let value = if takes_value && value.is_none() {
                    let v = args.get(i).map(|v| String::from_utf8_lossy(v).into_owned());
                    i += 1;
                    v
                } else {
                    value
                };
                o.long(&name, value)?;
            } else if let Some(cluster) = arg.strip_prefix('-') {
                o.short_cluster(cluster, refused)?;
            } else {
                return Err(OptionError::Unknown(arg));
            }
        }
        if !saw_server {
            return Err(OptionError::NotServer);
        }
        if o.sender && o.remove_source_files {
            // A pull that removes what it sends deletes from the module: refused with
            // "delete", as the reference infers it.
            check_refused("delete", refused)?;
        }
        Ok(o)
    }

    /// The options that could be understood, skipping refused and unknown ones: what
    /// the protocol setup needs (capabilities, compression) to report an option error
    /// to the client through the multiplexed stream, as the reference does.
    pub fn parse_lenient(args: &[Vec<u8>]) -> ServerOptions {
        let mut o = ServerOptions::default();
        for arg in args {
            let arg = String::from_utf8_lossy(arg);
            if arg == "." {
                break;
            }
            if let Some(long) = arg.strip_prefix("--") {
                let name = long.split('=').next().unwrap_or("");
                let value = long.split_once('=').map(|(_, v)| v.to_string());
                let _ = o.long(name, value);
            } else if let Some(cluster) = arg.strip_prefix('-') {
                for (i, c) in cluster.char_indices() {
                    if c == 'e' {
                        o.client_info =
                            cluster[i + 1..].split_once('.').map(|(_, l)| l.to_string()).unwrap_or_default();
                        break;
                    }
                    if let Some(l) = short_name(c) {
                        let _ = o.long(l, None);
                    }
                }
            }
        }
        o
    }

    fn short_cluster(&mut self, cluster: &str, refused: &[String]) -> Result<(), OptionError> {
        let chars: Vec<char> = cluster.chars().collect();
        let mut j = 0;
        while j < chars.len() {
            let c = chars[j];
            j += 1;
            if c == 'e' {
                // `-e.<letters>`: the rest of the cluster is the client's capabilities.
                let rest: String = chars[j..].iter().collect();
                self.client_info = rest.split_once('.').map(|(_, l)| l.to_string()).unwrap_or_default();
                return Ok(());
            }
            if c == 'B' {
                let rest: String = chars[j..].iter().collect();
                check_refused("block-size", refused)?;
                return self.long("block-size", Some(rest));
            }
            let long = short_name(c).ok_or_else(|| OptionError::Unknown(format!("-{c}")))?;
            check_refused(long, refused)?;
            self.long(long, None)?;
        }
        Ok(())
    }

    fn long(&mut self, name: &str, value: Option<String>) -> Result<(), OptionError> {
        let int = |v: &Option<String>| -> Result<i64, OptionError> {
            v.as_deref().and_then(|s| s.trim().parse::<i64>().ok()).ok_or_else(|| OptionError::BadValue {
                option: format!("--{name}"),
                reason: format!("not a number: {}", v.as_deref().unwrap_or("")),
            })
        };
        match name {
            "sender" => self.sender = true,
            "verbose" => self.verbose = self.verbose.saturating_add(1),
            "recursive" => self.recursive = true,
            "no-r" | "no-recursive" => self.recursive = false,
            "links" => self.links = true,
            "perms" => self.perms = true,
            "times" => self.times = true,
            "owner" => self.owner = true,
            "group" => self.group = true,
            "devices" => self.devices = true,
            "specials" => self.specials = true,
            "no-specials" => self.specials = false,
            "devices+specials" => {
                self.devices = true;
                self.specials = true;
            }
            "hard-links" => self.hard_links = true,
            "checksum" => self.checksum = true,
            "compress" => self.compress = true,
            // What the client sends for a chosen zlibx or zlib: no list is exchanged.
            "new-compress" => {
                self.compress = true;
                self.compress_choice = Some("zlibx".into());
            }
            "old-compress" => {
                self.compress = true;
                self.compress_choice = Some("zlib".into());
            }
            "dry-run" => self.dry_run = true,
            "update" => self.update = true,
            // The client sends -1 for --max-delete=0: both mean "delete nothing".
            "max-delete" => self.max_delete = Some(int(&value)?.max(0)),
            "safe-links" => self.safe_links = true,
            "mkpath" => self.mkpath = true,
            "remove-source-files" => self.remove_source_files = true,
            "max-size" => self.max_size = Some(int(&value)?.max(0) as u64),
            "min-size" => self.min_size = Some(int(&value)?.max(0) as u64),
            "copy-unsafe-links" | "one-file-system" | "copy-links" | "copy-dirlinks" | "keep-dirlinks"
            | "remove-sent-files" | "append" | "append-verify" | "relative" => {
                return Err(OptionError::Unsupported(format!("--{name}")));
            }
            "whole-file" => self.whole_file = true,
            "no-relative" => self.relative = false,
            "dirs" => self.dirs = true,
            "omit-dir-times" => self.omit_dir_times = true,
            "omit-link-times" => self.omit_link_times = true,
            "cvs-exclude" => self.cvs_exclude = true,
            "sparse" => self.sparse = true,
            "ignore-times" => self.ignore_times = true,
            "prune-empty-dirs" => self.prune_empty_dirs = true,
            "itemize-changes" => self.itemize = true,
            "quiet" | "stats" | "msgs2stderr" | "no-msgs2stderr" | "use-qsort" | "open-noatime" | "preallocate" => {}
            "delete" => {
                self.delete.get_or_insert(DeleteMode::During);
            }
            "delete-before" => self.delete = Some(DeleteMode::Before),
            "delete-during" => self.delete = Some(DeleteMode::During),
            "delete-delay" => self.delete = Some(DeleteMode::Delay),
            "delete-after" => self.delete = Some(DeleteMode::After),
            "delete-excluded" => {
                self.delete_excluded = true;
                self.delete.get_or_insert(DeleteMode::During);
            }
            "force" => self.force = true,
            "numeric-ids" => self.numeric_ids = true,
            "partial" => self.partial = true,
            "inplace" => self.inplace = true,
            "existing" => self.existing = true,
            "ignore-existing" => self.ignore_existing = true,
            "size-only" => self.size_only = true,
            "ignore-errors" => self.ignore_errors = true,
            "no-implied-dirs" => self.no_implied_dirs = true,
            "fsync" => self.fsync = true,
            "modify-window" => self.modify_window = int(&value)?.clamp(-1, i32::MAX as i64) as i32,
            "block-size" => {
                let v = int(&value)?;
                if !(0..=(1 << 17)).contains(&v) {
                    return Err(OptionError::BadValue {
                        option: "--block-size".into(),
                        reason: format!("{v} is outside 0..=131072"),
                    });
                }
                self.block_size = (v > 0).then_some(v as u32);
            }
            "checksum-seed" => self.checksum_seed = Some(int(&value)? as i32),
            "checksum-choice" => self.checksum_choice = value,
            "compress-choice" => {
                self.compress = true;
                self.compress_choice = value
            }
            "compress-level" => self.compress_level = Some(int(&value)? as i32),
            "timeout" => self.timeout = Some(int(&value)?.clamp(0, u32::MAX as i64) as u32),
            "bwlimit" => {
                let kib = int(&value)?;
                if kib < 0 {
                    return Err(OptionError::BadValue {
                        option: "--bwlimit".into(),
                        reason: format!("{kib} is negative"),
                    });
                }
                self.bwlimit_kib = (kib > 0).then(|| kib.min(i64::from(u32::MAX)) as u32);
            }
            // A pushing client's output format, of which a server uses two facts: whether
            // the client itemizes (then it hears of a directory made for it), and whether
            // it itemizes unchanged items too.
            "log-format" => {
                let format = value.as_deref().unwrap_or("");
                self.itemize |= format_has(format, 'i');
                self.itemize_unchanged = format_has(format, 'I');
            }
            // Accepted by the reference but meaning an action halite-rsyncd does not
            // take: refused by name rather than silently ignored.
            "files-from"
            | "from0"
            | "partial-dir"
            | "temp-dir"
            | "backup-dir"
            | "suffix"
            | "delay-updates"
            | "iconv"
            | "usermap"
            | "groupmap"
            | "super"
            | "fake-super"
            | "copy-devices"
            | "write-devices"
            | "list-only"
            | "only-write-batch"
            | "delete-missing-args"
            | "ignore-missing-args"
            | "skip-compress"
            | "max-alloc"
            | "backup"
            | "fuzzy"
            | "acls"
            | "xattrs"
            | "atimes"
            | "crtimes"
            | "executability"
            | "compare-dest"
            | "copy-dest"
            | "link-dest"
            | "protect-args"
            | "secluded-args" => {
                return Err(OptionError::Unsupported(format!("--{name}")));
            }
            _ => return Err(OptionError::Unknown(format!("--{name}"))),
        }
        Ok(())
    }
}

/// Whether a log format has escape `code` (`%I`, `%-5I`, ...), as the reference's
/// log_format_has() reads it.
fn format_has(format: &str, code: char) -> bool {
    let mut rest = format;
    while let Some(at) = rest.find('%') {
        let after = rest[at + 1..].strip_prefix('-').unwrap_or(&rest[at + 1..]);
        let after = after.trim_start_matches(|c: char| c.is_ascii_digit());
        match after.chars().next() {
            Some(c) if c == code => return true,
            // The search goes on from that character: "%%I" has `I`, as there.
            Some(_) => rest = after,
            None => return false,
        }
    }
    false
}

/// The long name of each short option server_options() emits.
fn short_name(c: char) -> Option<&'static str> {
    SHORTS.iter().find(|(s, _)| *s == c).map(|(_, l)| *l)
}

const SHORTS: &[(char, &str)] = &[
    ('v', "verbose"),
    ('r', "recursive"),
    ('l', "links"),
    ('p', "perms"),
    ('t', "times"),
    ('o', "owner"),
    ('g', "group"),
    ('D', "devices+specials"),
    ('H', "hard-links"),
    ('c', "checksum"),
    ('z', "compress"),
    ('n', "dry-run"),
    ('W', "whole-file"),
    ('R', "relative"),
    ('d', "dirs"),
    ('u', "update"),
    ('L', "copy-links"),
    ('k', "copy-dirlinks"),
    ('K', "keep-dirlinks"),
    ('O', "omit-dir-times"),
    ('J', "omit-link-times"),
    ('C', "cvs-exclude"),
    ('S', "sparse"),
    ('I', "ignore-times"),
    ('x', "one-file-system"),
    ('m', "prune-empty-dirs"),
    ('i', "itemize-changes"),
    ('q', "quiet"),
    ('s', "protect-args"),
    ('b', "backup"),
    ('y', "fuzzy"),
    ('A', "acls"),
    ('X', "xattrs"),
    ('U', "atimes"),
    ('N', "crtimes"),
    ('E', "executability"),
];

/// rsyncd.conf(5): "refuse options" names long options, may use wildcards, and `-D`
/// is refused by refusing "devices" or "specials"; "delete" refuses every --delete-*.
fn check_refused(name: &str, refused: &[String]) -> Result<(), OptionError> {
    let short = SHORTS.iter().find(|(_, l)| *l == name).map(|(c, _)| *c);
    let names: Vec<&str> = match name {
        "devices+specials" => vec!["devices", "specials"],
        n if n.starts_with("delete-") && n != "delete-excluded" => vec![n, "delete"],
        n => vec![n],
    };
    for pattern in refused {
        let pattern = pattern.trim_start_matches('-');
        if names.iter().any(|n| glob(pattern.as_bytes(), n.as_bytes())) {
            return Err(OptionError::Refused(name.to_string(), short));
        }
    }
    Ok(())
}

/// `*` and `?` wildcards, for option names only (short and ASCII).
fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn format_has_reads_escapes_as_the_reference_does() {
        assert!(format_has("%i%I", 'I'));
        assert!(format_has("%-5I", 'I'));
        assert!(!format_has("%i", 'I'));
        assert!(format_has("%%I", 'I'));
        assert!(!format_has("I", 'I'));
        assert!(!format_has("%", 'I'));
        assert!(!format_has("%-", 'I'));
    }

    use super::*;

    fn args(list: &[&str]) -> Vec<Vec<u8>> {
        list.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn a_pull_with_minus_av_parses_as_the_client_meant() {
        let o =
            ServerOptions::parse(&args(&["--server", "--sender", "-vlogDtpre.iLsfxCIvu", ".", "code/"]), &[]).unwrap();
        assert!(o.sender && o.recursive && o.links && o.owner && o.group && o.devices);
        assert!(o.specials && o.times && o.perms && !o.compress);
        assert_eq!(o.client_info, "iLsfxCIvu");
        assert_eq!(o.paths, args(&["code/"]));
    }

    #[test]
    fn a_push_with_delete_and_values() {
        let o = ServerOptions::parse(
            &args(&[
                "--server",
                "-lHogDtprze.iLsfxCIvu",
                "--delete-after",
                "--compress-choice",
                "zstd",
                "-B2048",
                ".",
                "backups/",
            ]),
            &[],
        )
        .unwrap();
        assert!(!o.sender && o.hard_links && o.compress);
        assert_eq!(o.delete, Some(DeleteMode::After));
        assert_eq!(o.compress_choice.as_deref(), Some("zstd"));
        assert_eq!(o.block_size, Some(2048));
    }

    #[test]
    fn dry_run_update_and_max_delete_are_taken() {
        let o = ServerOptions::parse(&args(&["--server", "-vunlr", "--max-delete=-1", ".", "backups/"]), &[]).unwrap();
        assert!(o.dry_run && o.update && o.recursive);
        assert_eq!(o.max_delete, Some(0), "the client's -1 is --max-delete=0");
        let o = ServerOptions::parse(&args(&["--server", "--max-delete=3", "--bwlimit=6000", ".", "backups/"]), &[])
            .unwrap();
        assert_eq!(o.max_delete, Some(3));
        assert_eq!(o.bwlimit_kib, Some(6000));
        let o = ServerOptions::parse(&args(&["--server", "--bwlimit=0", ".", "backups/"]), &[]).unwrap();
        assert_eq!(o.bwlimit_kib, None);
        let e = ServerOptions::parse(&args(&["--server", "--max-delete=lots", "."]), &[]);
        assert!(matches!(e, Err(OptionError::BadValue { .. })));
    }

    #[test]
    fn refused_and_unknown_options_are_errors() {
        let refused = vec!["delete".to_string(), "c*".to_string()];
        let e = ServerOptions::parse(&args(&["--server", "--delete-after", "."]), &refused);
        assert_eq!(e, Err(OptionError::Refused("delete-after".into(), None)));
        let e = ServerOptions::parse(&args(&["--server", "-vc", "."]), &refused);
        assert_eq!(e, Err(OptionError::Refused("checksum".into(), Some('c'))));
        assert_eq!(e.unwrap_err().to_string(), "The server is configured to refuse --checksum (-c)");
        let e = ServerOptions::parse(&args(&["--server", "--frobnicate", "."]), &[]);
        assert_eq!(e, Err(OptionError::Unknown("--frobnicate".into())));
        let e = ServerOptions::parse(&args(&["--sender", "."]), &[]);
        assert_eq!(e, Err(OptionError::NotServer));
        let e = ServerOptions::parse(&args(&["--server", "-B999999", "."]), &[]);
        assert!(matches!(e, Err(OptionError::BadValue { .. })));
    }
}
