//! One client connection, from the greeting to the end of the transfer.
//!
//! The order is the reference's (clientserver.c start_daemon/rsync_module, then
//! compat.c setup_protocol and main.c start_server): greetings, module line (or the
//! listing), hosts check, connection slot, challenge–response, privileges and
//! confinement, `@RSYNCD: OK`, the argument list parsed into typed options, the
//! compatibility flags and checksum/compression choices, then the sender or the receiver.
//! Every refusal is the reference's line, so a stock client reports it the same way.

use crate::io::{ConnError, Wire};
use crate::module::ModuleView;
use crate::tree::Tree;
use halite_rsync::checksum::{self, Strong};
use halite_rsync::flist::FileEntry;
use halite_rsync::handshake::{self, ArgsReader, ClientGreeting};
use halite_rsync::mux::Msg;
use halite_rsync::negotiate::{self, Compat};
use halite_rsync::options::ServerOptions;
use halite_rsync::wire::{put_i32, put_varint, WireError};
use std::io::Read;
use std::net::{IpAddr, TcpStream};
use thiserror::Error;

/// rsync's exit codes that a daemon reports (errcode.h).
pub const RERR_SYNTAX: i32 = 1;
pub const RERR_PROTOCOL: i32 = 2;
pub const RERR_FILESELECT: i32 = 3;
pub const RERR_UNSUPPORTED: i32 = 4;
pub const RERR_FILEIO: i32 = 11;
pub const RERR_STREAMIO: i32 = 12;

/// The most of a file read at once: the reference's largest map window.
pub const READ_PIECE: usize = 256 * 1024;

/// The longest each handshake phase may take, however steadily the client sends: from
/// the connection to the module line, then through the login, then the argument list
/// (the reference's DAEMON_HANDSHAKE_TIMEOUT). A module's shorter `timeout` shortens the
/// last two.
pub const HANDSHAKE_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

fn handshake_limit(module: &ModuleView) -> std::time::Duration {
    match module.config.timeout {
        0 => HANDSHAKE_LIMIT,
        t => HANDSHAKE_LIMIT.min(std::time::Duration::from_secs(t.into())),
    }
}

/// The checksum names offered, in the reference's order of preference.
pub const CHECKSUMS: [&str; 6] = ["xxh128", "xxh3", "xxh64", "md5", "md4", "none"];

/// Why a transfer stopped early: what the client is told, and the exit code it gets.
#[derive(Debug, Error)]
pub enum Fatal {
    #[error("{text}")]
    Client { text: String, code: i32 },
    #[error(transparent)]
    Conn(#[from] ConnError),
}

impl Fatal {
    pub fn protocol(text: String) -> Fatal {
        Fatal::Client { text, code: RERR_PROTOCOL }
    }

    pub fn io<'p>(what: &'static str, path: &'p [u8]) -> impl FnOnce(std::io::Error) -> Fatal + 'p {
        move |e| Fatal::Client {
            text: format!(
                "rsync: {what} \"{}\" failed: {}",
                String::from_utf8_lossy(path),
                crate::sender::os_error(&e)
            ),
            code: RERR_FILEIO,
        }
    }
}

impl From<WireError> for Fatal {
    fn from(e: WireError) -> Self {
        Fatal::Conn(ConnError::Protocol(e))
    }
}

/// Everything a running transfer needs; handlers get this and nothing global.
pub struct Transfer<'a> {
    pub wire: &'a mut Wire,
    pub tree: Tree,
    pub module_name: &'a str,
    pub module: &'a ModuleView,
    pub options: ServerOptions,
    pub protocol: i32,
    pub compat: Compat,
    pub sums: SumChoice,
    pub ndx_in: crate::sender::NdxCodec,
    pub ndx_out: crate::sender::NdxCodec,
    pub filters: crate::filters::Filters,
    /// The client asked for --numeric-ids itself (then no id lists are sent).
    pub numeric_ids_from_client: bool,
    pub peer: IpAddr,
    pub user: Option<String>,
    /// The token encoding of file data (plain or the negotiated compression).
    pub encoder: Box<dyn halite_rsync::token::Encode + Send>,
    /// The negotiated compression, if any.
    pub compression: Option<String>,
    /// `transfer logging`: one line per file, in the module's `log format`.
    pub log: Option<crate::log::TransferLog>,
    pub id_names: crate::ids::NameCache,
    /// The sender's read buffer, one per connection, lent to each file's delta matcher as
    /// its window: allocated (and zeroed) per file it cost more CPU than reading the file
    /// on a tree of small files.
    pub read_buf: Vec<u8>,
}

/// [`Transfer::change_filter_dir`] for a caller holding the filters and tree apart.
pub fn enter_filter_dir(filters: &mut crate::filters::Filters, tree: &Tree, dir: &[u8]) -> Result<(), Fatal> {
    let mut read = |path: &[u8]| {
        let f = tree.open_file(path).ok()?;
        let mut contents = Vec::new();
        f.take(halite_rsync::filter::MAX_MERGE_FILE_BYTES as u64 + 1).read_to_end(&mut contents).ok()?;
        Some(contents)
    };
    filters.change_dir(dir, &mut read).map_err(|e| Fatal::Client {
        text: format!("rsync: per-directory merge file in \"{}\": {e}", String::from_utf8_lossy(dir)),
        code: RERR_SYNTAX,
    })
}

/// What a finished transfer logs: bytes on the wire each way, and the size of the files
/// (and link targets) the list described.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    pub written: u64,
    pub read: u64,
    pub total_size: u64,
}

/// The checksum the transfer settled on, and its seed.
#[derive(Debug, Clone, Copy)]
pub struct SumChoice {
    pub strong: Strong,
    pub seed: i32,
    pub proper_seed_order: bool,
}

impl SumChoice {
    pub fn file_sum_len(&self) -> usize {
        self.strong.digest_len()
    }
}

impl Transfer<'_> {
    /// Sends a per-file error line the client prints (MSG_ERROR_XFER: the transfer
    /// goes on, and the client ends with code 23, as with the reference).
    pub fn error(&mut self, text: &str) -> Result<(), ConnError> {
        self.wire.message(Msg::ErrorXfer, format!("{text}\n").as_bytes())
    }

    /// Sends a warning line the client prints (MSG_WARNING: the transfer goes on, and
    /// what it means for the exit code is in the io_error bits sent with it).
    pub fn warning(&mut self, text: &str) -> Result<(), ConnError> {
        self.wire.message(Msg::Warning, format!("{text}\n").as_bytes())
    }

    /// Sends an informational line the client prints (MSG_INFO).
    pub fn info(&mut self, text: &str) -> Result<(), ConnError> {
        self.wire.message(Msg::Info, format!("{text}\n").as_bytes())
    }

    /// Whether the module's filters or the client's leave `name` out.
    pub fn excluded(&self, name: &[u8], is_dir: bool) -> bool {
        self.filters.excluded(name, is_dir)
    }

    /// A symlink's target as the client sees it: with `munge symlinks`, prefixed so that
    /// it cannot point anywhere once copied back into a module.
    pub fn outgoing_link(&self, target: Vec<u8>) -> Vec<u8> {
        const MUNGE: &[u8] = b"/rsyncd-munged/";
        if self.module.munge_symlinks {
            if let Some(rest) = target.strip_prefix(MUNGE) {
                return rest.to_vec();
            }
        }
        target
    }

    /// The user and group names sent with the file list (none with numeric ids).
    pub fn names(&mut self, uid: u32, gid: u32) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        if self.module.numeric_ids || self.numeric_ids_from_client {
            return (None, None);
        }
        (self.id_names.user(uid), self.id_names.group(gid))
    }

    /// The names of uid and gid 0 the client's 'u' capability asks for.
    pub fn id0_names(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        if !self.compat.id0_names {
            return None;
        }
        if self.module.numeric_ids {
            return Some((Vec::new(), Vec::new()));
        }
        Some((crate::ids::user_name(0).unwrap_or_default(), crate::ids::group_name(0).unwrap_or_default()))
    }

    /// The whole-file checksum --checksum puts in the file list.
    pub fn file_checksum(&mut self, dir: &std::os::fd::OwnedFd, name: &[u8]) -> std::io::Result<Vec<u8>> {
        let fd = crate::tree::open_at(dir, name)?;
        let mut f = std::fs::File::from(fd);
        let mut sum = checksum::FileSum::unseeded(self.sums.strong);
        let buf = self.read_buffer();
        loop {
            let n = f.read(buf)?;
            if n == 0 {
                break;
            }
            sum.update(&buf[..n]);
        }
        Ok(sum.finish().as_bytes().to_vec())
    }

    /// The connection's read buffer for file data.
    pub fn read_buffer(&mut self) -> &mut Vec<u8> {
        if self.read_buf.len() < READ_PIECE {
            self.read_buf = vec![0u8; READ_PIECE];
        }
        &mut self.read_buf
    }

    /// Makes `dir` (relative to the transfer root) the directory whose entries the
    /// client's per-directory merge files judge next; the files are read beneath the
    /// module root, never through a symlink, at most one byte over the size a merge
    /// file may have (so a huge one is refused without being read whole).
    pub fn change_filter_dir(&mut self, dir: &[u8]) -> Result<(), Fatal> {
        enter_filter_dir(&mut self.filters, &self.tree, dir)
    }

    /// How this connection's file list is encoded, from the options and compat flags
    /// (the whole list is sent at once: no names inline).
    pub fn list_options(&self) -> halite_rsync::flist::ListOptions {
        let o = &self.options;
        halite_rsync::flist::ListOptions {
            protocol: self.protocol,
            varint_flags: self.compat.varint_flist_flags,
            preserve_uid: o.owner,
            preserve_gid: o.group,
            preserve_links: o.links,
            preserve_devices: o.devices,
            preserve_specials: o.specials,
            preserve_hard_links: o.hard_links,
            inline_names: self.compat.inc_recurse,
            checksum_len: o.checksum.then(|| self.sums.file_sum_len()),
        }
    }

    /// Reads the block sums the client's generator sent for one file.
    pub fn read_sums(&mut self) -> Result<halite_rsync::delta::BlockSums, Fatal> {
        let proto = self.protocol;
        let max_strong = self.sums.strong.digest_len();
        let head = self.wire.parse(|r| halite_rsync::delta::SumHead::read(r, proto, max_strong))?;
        let mut sums = halite_rsync::delta::BlockSums::new(head);
        // Entries taken stay taken; a cut-off one waits for more bytes.
        while !self.wire.parse(|r| Ok(sums.fill(r)))? {
            self.wire.read_more()?;
        }
        Ok(sums)
    }

    /// Sends the sum head, the delta of `file` against `sums` and the file's checksum.
    /// Returns (literal bytes, matched bytes).
    pub fn send_delta(
        &mut self,
        sums: halite_rsync::delta::BlockSums,
        file: &mut dyn Read,
    ) -> Result<halite_rsync::delta::Finished, Fatal> {
        crate::delta_io::send_delta(self, sums, file)
    }

    /// The owner and group a transfer log line shows: those the transfer carries.
    pub fn logged_owner(&self, file: &FileEntry) -> (Option<u32>, Option<u32>) {
        (self.options.owner.then_some(file.uid), self.options.group.then_some(file.gid))
    }
}

/// The module-relative path of a file argument: the module name and its '/' removed,
/// then `..`, `.` and empty components dropped so that nothing climbs above the module
/// (the reference's sanitize_path for daemons).
pub fn module_relative(module: &str, arg: &[u8]) -> Vec<u8> {
    let rest = arg.strip_prefix(module.as_bytes()).filter(|r| r.is_empty() || r[0] == b'/');
    let rest = rest.unwrap_or(arg);
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in rest.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join(&b'/')
}

/// The options and settings a connection is run with, from the daemon's config.
pub struct Served<'a> {
    pub modules: &'a [ModuleView],
    pub motd: Option<Vec<u8>>,
    /// The global `reverse lookup`.
    pub reverse_lookup: bool,
    /// The global `log file`, which a module's own replaces for its connections.
    pub log_file: Option<&'a std::path::Path>,
}

/// Runs one connection to its end. Returns the exit code the client was given.
pub fn serve(stream: TcpStream, peer: IpAddr, served: &Served<'_>) -> i32 {
    let _span = tracing::info_span!("conn", %peer).entered();
    let mut wire = Wire::new(stream);
    let _ = wire.set_timeout(HANDSHAKE_LIMIT.as_secs());
    wire.set_deadline(Some(HANDSHAKE_LIMIT));
    let mut greeted = false;
    match handshake_and_run(&mut wire, peer, served, &mut greeted) {
        Ok(code) => code,
        // A client gone before its greeting (a port probe) is not worth a line: the
        // reference logs only its connection.
        Err(e) if !greeted && !matches!(e, ConnError::HandshakeTimeout) => {
            tracing::debug!("before the greeting: {e}");
            RERR_STREAMIO
        }
        Err(e) => {
            tracing::warn!("{e}");
            RERR_STREAMIO
        }
    }
}

fn refuse(wire: &mut Wire, line: String) -> Result<i32, ConnError> {
    wire.send(line.as_bytes())?;
    wire.flush()?;
    Ok(RERR_SYNTAX)
}

fn handshake_and_run(wire: &mut Wire, peer: IpAddr, served: &Served<'_>, greeted: &mut bool) -> Result<i32, ConnError> {
    // The reference names the client by a (forward-confirmed) reverse lookup when the
    // global `reverse lookup` is on; a module may ask for one on its own.
    let global_host = served.reverse_lookup.then(|| crate::ids::client_name(peer));
    let host = global_host.clone().unwrap_or_else(|| "UNDETERMINED".to_string());
    tracing::info!("connect from {host} ({peer})");
    wire.send(handshake::server_greeting().as_bytes())?;
    if let Some(motd) = &served.motd {
        wire.send(motd)?;
        wire.send(b"\n")?;
    }
    wire.flush()?;
    let line = wire.line()?;
    *greeted = true;
    let greeting: ClientGreeting = match handshake::parse_client_greeting(&line) {
        Ok(g) => g,
        Err(e) => return refuse(wire, e.reply()),
    };
    let module_line = wire.line()?;
    if module_line.is_empty() || module_line == "#list" {
        tracing::info!("module-list request from {host} ({peer})");
        let mut listing = String::new();
        for m in served.modules.iter().filter(|m| m.config.list) {
            listing.push_str(&format!("{:<15}\t{}\n", m.name, m.config.comment));
        }
        listing.push_str("@RSYNCD: EXIT\n");
        wire.send(listing.as_bytes())?;
        wire.flush()?;
        return Ok(0);
    }
    if module_line.starts_with('#') {
        return refuse(wire, format!("@ERROR: Unknown command '{}'\n", shown(&module_line)));
    }
    let Some(module) = served.modules.iter().find(|m| m.name == module_line) else {
        tracing::info!("unknown module '{}' tried from {host} ({peer})", shown(&module_line));
        return refuse(wire, format!("@ERROR: Unknown module '{}'\n", shown(&module_line)));
    };
    // The reference looks the name up before the chroot when any module wants it.
    let host = match global_host {
        None if module.config.reverse_lookup => crate::ids::client_name(peer),
        _ => host,
    };
    if !module.allows(peer, &host) {
        tracing::warn!("rsync denied on module {} from {host} ({peer})", module.name);
        return refuse(wire, format!("@ERROR: access denied to {} from {host} ({peer})\n", module.name));
    }
    tracing::info!("rsync allowed access on module {} from {host} ({peer})", module.name);
    wire.set_deadline(Some(handshake_limit(module)));
    let _slot = match module.claim_slot() {
        Ok(slot) => slot,
        Err(crate::module::SlotError::Full(n)) => {
            tracing::info!("max connections ({n}) reached");
            return refuse(wire, format!("@ERROR: max connections ({n}) reached -- try again later\n"));
        }
        Err(crate::module::SlotError::Lock(e)) => {
            tracing::error!("module {}: lock file: {e}", module.name);
            return refuse(wire, "@ERROR: failed to open lock file\n".into());
        }
    };
    let mut user = None;
    if module.config.requires_auth() {
        match authenticate(wire, module, &greeting, &host, peer)? {
            Some(u) => user = Some(u),
            None => return refuse(wire, format!("@ERROR: auth failed on module {}\n", module.name)),
        }
    }
    wire.set_deadline(None);
    let mut module = module.clone();
    crate::log::use_module_log(module.config.log_file.as_deref(), served.log_file);
    let tree = match module.enter() {
        Ok(tree) => tree,
        Err(e) => {
            tracing::error!("module {}: {e}", module.name);
            return refuse(wire, format!("@ERROR: {e}\n"));
        }
    };
    wire.send(b"@RSYNCD: OK\n")?;
    wire.flush()?;
    wire.set_deadline(Some(handshake_limit(&module)));
    let args = read_args(wire, greeting.protocol)?;
    wire.set_deadline(None);
    let timeout = module.config.timeout as u64;
    wire.set_timeout(if timeout > 0 { timeout } else { 0 })?;
    let request = args
        .iter()
        .skip_while(|a| a.as_slice() != b".")
        .skip(1)
        .map(|a| halite_rsync::logformat::shown(a))
        .collect::<Vec<_>>()
        .join(" ");
    let direction = if args.iter().any(|a| a == b"--sender") { "on" } else { "to" };
    match &user {
        Some(u) => tracing::info!("rsync {direction} {request} from {u}@{host} ({peer})"),
        None => tracing::info!("rsync {direction} {request} from {host} ({peer})"),
    }
    let parsed = ServerOptions::parse(&args, &module.config.refuse_options);
    let mut options = match parsed {
        Ok(o) => o,
        Err(e) => {
            // The reference finishes the protocol setup first, so the error reaches the
            // client through the multiplexed stream.
            let lenient = ServerOptions::parse_lenient(&args);
            setup(wire, greeting.protocol, &lenient)?;
            wire.start_mux_out()?;
            let (text, code) = match &e {
                halite_rsync::options::OptionError::Refused(..) => (format!("rsync: {e}"), RERR_UNSUPPORTED),
                _ => (format!("rsync: on remote machine: {e}"), RERR_SYNTAX),
            };
            return fail(wire, greeting.protocol, &text, code);
        }
    };
    // `max verbosity` (default 1) caps what the daemon tells the client, as the
    // reference's limit_output_verbosity() does: a client's -vv does not get more.
    options.verbose = options.verbose.min(module.config.max_verbosity.clamp(0, 255) as u8);
    let (compat, sums, compression) = setup(wire, greeting.protocol, &options)?;
    wire.set_bwlimit(options.bwlimit_kib);
    wire.start_mux_out()?;
    if timeout > 0 && greeting.protocol >= 31 {
        wire.message(Msg::IoTimeout, &(timeout as i32).to_le_bytes())?;
    }
    let sender = options.sender;
    let module = &module;
    if sender && module.config.write_only {
        return fail(wire, greeting.protocol, "ERROR: module is write only", RERR_SYNTAX);
    }
    if !sender && module.read_only_for(user.as_deref()) {
        return fail(wire, greeting.protocol, "ERROR: module is read only", RERR_SYNTAX);
    }
    if sender && options.remove_source_files {
        // A pull that would delete from the module: the reference's refusal for a
        // read-only one; from a writable one not taken yet (docs/decisions.md).
        return match module.read_only_for(user.as_deref()) {
            true => fail(
                wire,
                greeting.protocol,
                "ERROR: --remove-source-files cannot be used with a read-only module",
                RERR_SYNTAX,
            ),
            false => fail(
                wire,
                greeting.protocol,
                "ERROR: halite-rsyncd does not remove the files a pull sends",
                RERR_UNSUPPORTED,
            ),
        };
    }
    wire.start_mux_in();
    let sends_list = halite_rsync::filter::client_sends_list(
        sender,
        options.prune_empty_dirs,
        options.delete.is_some(),
        options.delete_excluded,
        greeting.protocol,
    );
    let client_filters = if sends_list { wire.parse(halite_rsync::filter::decode_list)? } else { Vec::new() };
    let filters = match crate::filters::Filters::new(module, &client_filters, &options, sender, greeting.protocol) {
        Ok(f) => f,
        Err(text) => return fail(wire, greeting.protocol, &text, RERR_SYNTAX),
    };
    let numeric_ids_from_client = options.numeric_ids;
    let compress_level = options.compress_level;
    let protocol = greeting.protocol;
    let log = crate::log::TransferLog::new(&host, peer, module, user.as_deref(), sender, sums.strong, options.checksum);
    let result = {
        let mut t = Transfer {
            wire: &mut *wire,
            tree,
            module_name: &module.name,
            module,
            options,
            protocol,
            compat,
            sums,
            ndx_in: Default::default(),
            ndx_out: Default::default(),
            filters,
            numeric_ids_from_client,
            peer,
            user,
            encoder: crate::delta_io::encoder(compression.as_deref(), compress_level, protocol),
            compression: compression.clone(),
            log,
            id_names: Default::default(),
            read_buf: Vec::new(),
        };
        if sender {
            crate::sender::run(&mut t)
        } else {
            crate::receiver::run(&mut t)
        }
    };
    match result {
        Ok(Totals { written, read, total_size }) => {
            tracing::info!("sent {written} bytes  received {read} bytes  total size {total_size}");
            wire.shutdown();
            Ok(0)
        }
        Err(Fatal::Client { text, code }) => fail(wire, protocol, &text, code),
        Err(Fatal::Conn(e)) => Err(e),
    }
}

/// Reports a fatal error the way the reference does: the text, then (protocol ≥ 31) an
/// error-exit message with the code, then reads until the client closes.
fn fail(wire: &mut Wire, protocol: i32, text: &str, code: i32) -> Result<i32, ConnError> {
    wire.message(Msg::Error, format!("{text}\n").as_bytes())?;
    if protocol >= 31 {
        wire.message(Msg::ErrorExit, &code.to_le_bytes())?;
    }
    wire.drain_until_closed();
    Ok(code)
}

fn authenticate(
    wire: &mut Wire,
    module: &ModuleView,
    greeting: &ClientGreeting,
    host: &str,
    peer: IpAddr,
) -> Result<Option<String>, ConnError> {
    let name = &module.name;
    if let Some(floor) = module.config.auth_digest.as_deref() {
        // `auth digest`: a client that negotiated (or fell back to) a weaker digest
        // than the floor is refused before any challenge.
        match handshake::AuthDigest::by_name(floor) {
            Some(min) if greeting.auth.rank() <= min.rank() => {}
            _ => {
                tracing::warn!(
                    "auth failed on module {name} from {host} ({peer}): negotiated auth digest {} is weaker than the required 'auth digest = {floor}'",
                    greeting.auth.name()
                );
                return Ok(None);
            }
        }
    }
    // No randomness, no challenge worth sending: refuse rather than authenticate anyone.
    let random = match crate::ids::random_bytes() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot read the kernel's random source: {e}");
            return Ok(None);
        }
    };
    let challenge = handshake::challenge(greeting.auth, &random);
    wire.send(format!("@RSYNCD: AUTHREQD {challenge}\n").as_bytes())?;
    wire.flush()?;
    let response = wire.line()?;
    let Some((claimed, _)) = response.split_once(' ') else {
        tracing::warn!("auth failed on module {name} from {host} ({peer}): invalid challenge response");
        return Ok(None);
    };
    let user = handshake::check_response(greeting.auth, &challenge, &response, |u| module.passwords_for(u));
    if user.is_none() {
        let why = module.secrets_of(claimed).err().unwrap_or("password mismatch");
        tracing::warn!("auth failed on module {name} from {host} ({peer}) for {}: {why}", shown(claimed));
    }
    Ok(user)
}

fn read_args(wire: &mut Wire, protocol: i32) -> Result<Vec<Vec<u8>>, ConnError> {
    let mut reader = ArgsReader::new(protocol);
    loop {
        let (used, done) = reader.feed(wire.raw_pending()).map_err(|e| WireError::Invalid(e.to_string()))?;
        wire.consume_raw(used);
        if let Some(args) = done {
            return Ok(args);
        }
        wire.read_more_raw()?;
    }
}

/// The protocol setup after the arguments: compatibility flags, checksum and
/// compression choices, the checksum seed.
fn setup(
    wire: &mut Wire,
    protocol: i32,
    options: &ServerOptions,
) -> Result<(Compat, SumChoice, Option<String>), ConnError> {
    let compat = setup_protocol(wire, protocol, options)?;
    let strong = negotiate_checksum(wire, protocol, &compat, options)?;
    let compression = negotiate_compression(wire, &compat, options)?;
    let seed = options.checksum_seed.unwrap_or_else(crate::ids::random_seed);
    let mut out = Vec::new();
    put_i32(&mut out, seed);
    wire.send(&out)?;
    let sums = SumChoice { strong, seed, proper_seed_order: compat.proper_seed_order };
    Ok((compat, sums, compression))
}

fn setup_protocol(wire: &mut Wire, protocol: i32, options: &ServerOptions) -> Result<Compat, ConnError> {
    // Incremental recursion for recursive transfers, as the reference offers it (a push
    // not with --delete-before/--delete-after nor --prune-empty-dirs, which need the
    // whole list first, nor with --remove-source-files, whose MSG_SUCCESS waits for a
    // landing batch that a list cannot wait for). A pull with -H too: its hard links name
    // their set's first member by its index over all the lists (`ListWriter`); a push
    // with -H takes the whole list, as matching a later list's link to an earlier list's
    // file on this side (the reference's prior_hlinks) is not done. Nor for a pull of
    // several source arguments: two of them may hold a directory of the same name, which
    // the reference expands as one list; halite-rsyncd sends the whole list.
    use halite_rsync::options::DeleteMode;
    let incremental = options.recursive
        && match options.sender {
            true => options.paths.len() <= 1,
            false => {
                !options.hard_links
                    && !matches!(options.delete, Some(DeleteMode::Before | DeleteMode::After))
                    && !options.prune_empty_dirs
                    && !options.remove_source_files
            }
        };
    let compat = negotiate::server_compat(protocol, &options.client_info, incremental);
    if protocol >= 30 {
        let mut out = Vec::new();
        put_varint(&mut out, compat.flags);
        wire.send(&out)?;
    }
    Ok(compat)
}

fn negotiate_checksum(
    wire: &mut Wire,
    protocol: i32,
    compat: &Compat,
    options: &ServerOptions,
) -> Result<Strong, ConnError> {
    let chosen = if let Some(choice) = &options.checksum_choice {
        // --checksum-choice=X[,Y]: the client named it; the first is the transfer's.
        choice.split(',').next().unwrap_or("").to_string()
    } else if compat.negotiated_strings {
        let mut out = Vec::new();
        negotiate::put_vstring(&mut out, CHECKSUMS.join(" ").as_bytes());
        wire.send(&out)?;
        wire.flush()?;
        let theirs = wire.parse(|r| Ok(negotiate::read_vstring(r, negotiate::MAX_NSTR)?.to_vec()))?;
        match negotiate::choose(&CHECKSUMS, &theirs) {
            Some(c) => c.to_string(),
            None => {
                return Err(WireError::Invalid(format!(
                    "Failed to negotiate a checksum choice (client list: {})",
                    String::from_utf8_lossy(&theirs)
                ))
                .into())
            }
        }
    } else if protocol >= 30 {
        "md5".to_string()
    } else {
        "md4".to_string()
    };
    Strong::from_name(&chosen).ok_or_else(|| WireError::Invalid(format!("unknown checksum {chosen}")).into())
}

fn negotiate_compression(
    wire: &mut Wire,
    compat: &Compat,
    options: &ServerOptions,
) -> Result<Option<String>, ConnError> {
    if !options.compress {
        return Ok(None);
    }
    // --compress-choice (and --old-compress/--new-compress, which the client sends as
    // a choice) names it; no list is exchanged then.
    if let Some(choice) = &options.compress_choice {
        if halite_rsync::compress::Compression::from_name(choice).is_none() {
            return Err(WireError::Invalid(format!("unknown compress choice {choice}")).into());
        }
        return Ok(Some(choice.clone()));
    }
    if !compat.negotiated_strings {
        return Ok(Some("zlib".into()));
    }
    let ours = crate::delta_io::COMPRESSIONS;
    let mut out = Vec::new();
    negotiate::put_vstring(&mut out, ours.join(" ").as_bytes());
    wire.send(&out)?;
    wire.flush()?;
    let theirs = wire.parse(|r| Ok(negotiate::read_vstring(r, negotiate::MAX_NSTR)?.to_vec()))?;
    match negotiate::choose(ours, &theirs) {
        Some(c) => Ok(Some(c.to_string())),
        None => Err(WireError::Invalid(format!(
            "Failed to negotiate a compress choice (client list: {})",
            String::from_utf8_lossy(&theirs)
        ))
        .into()),
    }
}

/// A client-supplied string made safe for one log line: control characters escaped,
/// length capped.
pub fn shown(s: &str) -> String {
    s.chars()
        .take(200)
        .flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_never_climb_out_of_the_module() {
        assert_eq!(module_relative("code", b"code/"), b"");
        assert_eq!(module_relative("code", b"code"), b"");
        assert_eq!(module_relative("code", b"code/sub/x"), b"sub/x");
        assert_eq!(module_relative("code", b"code/../../etc/passwd"), b"etc/passwd");
        assert_eq!(module_relative("code", b"/etc/passwd"), b"etc/passwd");
        assert_eq!(module_relative("code", b"codex/a"), b"codex/a");
        assert_eq!(module_relative("code", b"code/./a//b/.."), b"a");
    }
}
