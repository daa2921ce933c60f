//! The key-state directories of a pki dir and atomic file replacement.

use std::collections::HashMap;
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use halite_proto::rsa::PublicKey;
use openssl::hash::{hash, MessageDigest};

use crate::PkiError;

/// The state of a minion key: which directory of the pki dir holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyState {
    Accepted,
    Pending,
    Rejected,
    Denied,
}

impl KeyState {
    /// In the order `salt-key -L` prints them.
    pub const ALL: [KeyState; 4] = [KeyState::Accepted, KeyState::Denied, KeyState::Pending, KeyState::Rejected];

    /// The directory name, which is also the key `salt-key --out json` uses.
    pub fn dir_name(self) -> &'static str {
        match self {
            KeyState::Accepted => "minions",
            KeyState::Pending => "minions_pre",
            KeyState::Rejected => "minions_rejected",
            KeyState::Denied => "minions_denied",
        }
    }

    pub fn from_dir_name(name: &str) -> Option<KeyState> {
        KeyState::ALL.into_iter().find(|s| s.dir_name() == name)
    }
}

/// A Salt pki dir (`/etc/salt/pki/master` by default).
#[derive(Debug, Clone)]
pub struct PkiDir {
    root: PathBuf,
    /// Accepted keys already parsed, each with the stamp of the file it came from. Every v3
    /// request and every pillar needs the minion's key; a `stat` tells whether the file is
    /// still the one parsed (salt-key replaces files by rename, so the inode changes), which
    /// saves a read and OpenSSL's PEM decoder (the costliest step of a `_return`).
    parsed: Arc<Mutex<HashMap<String, Parsed>>>,
}

/// One accepted key file as last read.
#[derive(Debug, Clone)]
struct Parsed {
    stamp: FileStamp,
    key: PublicKey,
    /// SHA-256 of the file's bytes: a sign-in presenting exactly these bytes (a minion sends
    /// what was stored from it) needs no parse to show it is an RSA key. Not the
    /// `clean_key` form: a variant equal after trimming need not parse, and in `open_mode`
    /// it would be written.
    text: [u8; 32],
    /// SHA-256 of a `tok` that verified with this key. A tok is X9.31 of `b"salt"` under the
    /// minion's key, the same bytes every time, so the same bytes verify again for as long
    /// as the file is unchanged: a digest compare instead of an RSA operation per request.
    tok: Option<[u8; 32]>,
}

fn sha256(data: &[u8]) -> [u8; 32] {
    openssl::sha::sha256(data)
}

/// What identifies one version of a key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileStamp {
    fn of(meta: &fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }
}

impl PkiDir {
    /// Opens `root`, creating it and the key-state directories (0700, as Salt's verify_env
    /// does) when missing. Existing directories keep their modes: an operator's pki dir is
    /// used unchanged.
    pub fn open(root: impl Into<PathBuf>) -> Result<PkiDir, PkiError> {
        let pki = PkiDir { root: root.into(), parsed: Arc::default() };
        create_private_dir(&pki.root)?;
        for state in KeyState::ALL {
            create_private_dir(&pki.state_dir(state))?;
        }
        create_private_dir(&pki.root.join("minions_autosign"))?;
        Ok(pki)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn state_dir(&self, state: KeyState) -> PathBuf {
        self.root.join(state.dir_name())
    }

    /// Path of `id`'s key file in `state`, refusing ids that would escape the directory.
    pub fn key_path(&self, state: KeyState, id: &str) -> Result<PathBuf, PkiError> {
        if !halite_proto::valid_id(id) {
            return Err(PkiError::InvalidId(id.to_owned()));
        }
        Ok(self.state_dir(state).join(id))
    }

    /// Ids in `state`, sorted case-insensitively as `salt-key` sorts them; dot-files (including
    /// halite's in-flight temporaries) are skipped, a missing directory is empty.
    pub fn list(&self, state: KeyState) -> Result<Vec<String>, PkiError> {
        let dir = self.state_dir(state);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(PkiError::Io { path: dir, source: e }),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(PkiError::io(&dir))?;
            if let Some(name) = entry.file_name().to_str() {
                if !name.starts_with('.') {
                    ids.push(name.to_owned());
                }
            }
        }
        sort_ignorecase(&mut ids);
        Ok(ids)
    }

    /// The local key files (`master.pem`, `master.pub`, ...), as `salt-key -L --include-local`.
    pub fn local_keys(&self) -> Result<Vec<String>, PkiError> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(PkiError::io(&self.root))? {
            let entry = entry.map_err(PkiError::io(&self.root))?;
            if let Some(name) = entry.file_name().to_str() {
                if name.ends_with(".pem") || name.ends_with(".pub") {
                    names.push(name.to_owned());
                }
            }
        }
        sort_ignorecase(&mut names);
        Ok(names)
    }

    /// The PEM text of `id`'s key in `state`, `None` when there is no such regular file.
    pub fn read(&self, state: KeyState, id: &str) -> Result<Option<String>, PkiError> {
        let path = self.key_path(state, id)?;
        read_optional(&path)
    }

    pub fn contains(&self, state: KeyState, id: &str) -> Result<bool, PkiError> {
        Ok(self.key_path(state, id)?.is_file())
    }

    /// `id`'s accepted public key, parsed; `None` when the minion is not accepted. A file that
    /// does not parse is an error naming it (Salt logs "Corrupt public key" and refuses).
    pub fn accepted_key(&self, id: &str) -> Result<Option<PublicKey>, PkiError> {
        Ok(self.accepted(id)?.map(|parsed| parsed.key))
    }

    /// Whether `pub_pem` is, byte for byte, `id`'s accepted key file as last parsed, the file
    /// unchanged since (a `stat`, no read). `false` says only that this shortcut does not
    /// apply: the caller then checks the text itself.
    pub fn presents_accepted_key(&self, id: &str, pub_pem: &str) -> bool {
        let Ok(path) = self.key_path(KeyState::Accepted, id) else { return false };
        let Ok(meta) = fs::metadata(&path) else { return false };
        let stamp = FileStamp::of(&meta);
        let presented = sha256(pub_pem.as_bytes());
        self.cache().get(id).is_some_and(|p| p.stamp == stamp && p.text == presented)
    }

    /// Whether `tok` proves its sender holds `id`'s accepted key (X9.31 of `b"salt"` under
    /// it, as [`halite_proto::request::verify_tok`] checks); `None` when `id` has no
    /// accepted key.
    pub fn proves(&self, id: &str, tok: &[u8]) -> Result<Option<bool>, PkiError> {
        let Some(parsed) = self.accepted(id)? else { return Ok(None) };
        let digest = sha256(tok);
        if parsed.tok == Some(digest) {
            return Ok(Some(true));
        }
        if !halite_proto::request::verify_tok(&parsed.key, tok) {
            return Ok(Some(false));
        }
        if let Some(entry) = self.cache().get_mut(id).filter(|p| p.stamp == parsed.stamp) {
            entry.tok = Some(digest);
        }
        Ok(Some(true))
    }

    fn accepted(&self, id: &str) -> Result<Option<Parsed>, PkiError> {
        let path = self.key_path(KeyState::Accepted, id)?;
        let stamp = match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => FileStamp::of(&meta),
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.forget(id);
                return Ok(None);
            }
            Err(e) => return Err(PkiError::Io { path, source: e }),
        };
        if let Some(parsed) = self.cache().get(id).filter(|p| p.stamp == stamp) {
            return Ok(Some(parsed.clone()));
        }
        let Some(pem) = read_optional(&path)? else { return Ok(None) };
        let key = PublicKey::from_pem(pem.as_bytes()).map_err(|e| PkiError::BadKey { path, reason: e.to_string() })?;
        let parsed = Parsed { stamp, key, text: sha256(pem.as_bytes()), tok: None };
        self.cache().insert(id.to_owned(), parsed.clone());
        Ok(Some(parsed))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Parsed>> {
        self.parsed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn forget(&self, id: &str) {
        self.cache().remove(id);
    }

    /// Whether `id`'s file in `state` parses as an RSA public key (Salt's salt-key refuses to
    /// accept one that does not).
    pub fn holds_valid_key(&self, state: KeyState, id: &str) -> Result<bool, PkiError> {
        Ok(self.read(state, id)?.is_some_and(|pem| PublicKey::from_pem(pem.as_bytes()).is_ok()))
    }

    /// Writes `id`'s key into `state`, replacing any previous file atomically (mode 0644, the
    /// mode Salt's umask gives these files).
    pub fn write(&self, state: KeyState, id: &str, pem: &str) -> Result<(), PkiError> {
        let path = self.key_path(state, id)?;
        write_atomic(&path, pem.as_bytes(), 0o644)
    }

    /// Moves `id`'s key from one state to another (a rename: atomic, and it keeps the file's
    /// bytes exactly). Returns false when `id` had no key in `from`.
    pub fn move_key(&self, id: &str, from: KeyState, to: KeyState) -> Result<bool, PkiError> {
        let src = self.key_path(from, id)?;
        let dst = self.key_path(to, id)?;
        match fs::rename(&src, &dst) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(PkiError::Io { path: src, source: e }),
        }
    }

    /// Deletes `id`'s key in `state`; false when there was none.
    pub fn remove(&self, state: KeyState, id: &str) -> Result<bool, PkiError> {
        let path = self.key_path(state, id)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(PkiError::Io { path, source: e }),
        }
    }
}

/// Salt's `pem_finger`: the hash of a PEM file's body (header and footer lines and blank lines
/// dropped, line endings kept), hex digits paired with colons. `hash_type` is Salt's
/// `hash_type` option (`sha256` by default).
pub fn finger(pem: &[u8], hash_type: &str) -> Result<String, String> {
    let digest = match hash_type {
        "md5" => MessageDigest::md5(),
        "sha1" => MessageDigest::sha1(),
        "sha224" => MessageDigest::sha224(),
        "sha256" => MessageDigest::sha256(),
        "sha384" => MessageDigest::sha384(),
        "sha512" => MessageDigest::sha512(),
        other => return Err(format!("unsupported hash_type {other:?}")),
    };
    let lines: Vec<&[u8]> = pem.split_inclusive(|b| *b == b'\n').filter(|l| !l.trim_ascii().is_empty()).collect();
    let body: Vec<u8> = if lines.len() > 2 { lines[1..lines.len() - 1].concat() } else { Vec::new() };
    let body = replace_crlf(&body);
    let sum = hash(digest, &body).map_err(|e| e.to_string())?;
    let hex: Vec<String> = sum.iter().map(|b| format!("{b:02x}")).collect();
    Ok(hex.join(":"))
}

fn replace_crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Python's `sorted(..., key=str.lower)` as Salt's `sorted_ignorecase` does it.
fn sort_ignorecase(names: &mut [String]) {
    names.sort_by_cached_key(|n| n.to_lowercase());
}

pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, PkiError> {
    if !path.is_file() {
        return Ok(None);
    }
    match fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::Io { path: path.to_owned(), source: e }),
    }
}

fn create_private_dir(path: &Path) -> Result<(), PkiError> {
    match fs::create_dir(path) {
        Ok(()) => fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(PkiError::io(path)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(PkiError::io(parent))?;
            }
            create_private_dir(path)
        }
        Err(e) => Err(PkiError::Io { path: path.to_owned(), source: e }),
    }
}

/// Writes `bytes` to a dot-file beside `path` with `mode`, fsyncs it and renames it over
/// `path`, so readers see the old file or the whole new one, never a prefix.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        // The umask may have narrowed the mode; Salt's files have exactly these bits.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        PkiError::Io { path: path.to_owned(), source: e }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_pair() -> (halite_proto::rsa::PrivateKey, String) {
        let private = halite_proto::rsa::PrivateKey::generate(1024).unwrap();
        let public = String::from_utf8(private.public_key().unwrap().to_spki_pem().unwrap()).unwrap();
        (private, public)
    }

    #[test]
    fn a_tok_proves_the_accepted_key_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let pki = PkiDir::open(dir.path().join("pki")).unwrap();
        let (first, first_pub) = key_pair();
        let tok = first.encrypt_x931(b"salt").unwrap();
        assert_eq!(pki.proves("m1", &tok).unwrap(), None, "no accepted key yet");
        pki.write(KeyState::Accepted, "m1", &first_pub).unwrap();
        assert_eq!(pki.proves("m1", &tok).unwrap(), Some(true));
        assert_eq!(pki.proves("m1", &tok).unwrap(), Some(true), "the remembered tok");
        let mut forged = tok.clone();
        forged[10] ^= 1;
        assert_eq!(pki.proves("m1", &forged).unwrap(), Some(false));
        let not_salt = first.encrypt_x931(b"pepper").unwrap();
        assert_eq!(pki.proves("m1", &not_salt).unwrap(), Some(false), "a signature of something else");
        // salt-key replaces the key by rename: the old key's tok, remembered, no longer proves.
        let (second, second_pub) = key_pair();
        pki.write(KeyState::Accepted, "m1", &second_pub).unwrap();
        assert_eq!(pki.proves("m1", &tok).unwrap(), Some(false));
        assert_eq!(pki.proves("m1", &second.encrypt_x931(b"salt").unwrap()).unwrap(), Some(true));
        pki.remove(KeyState::Accepted, "m1").unwrap();
        assert_eq!(pki.proves("m1", &tok).unwrap(), None);
    }

    #[test]
    fn the_accepted_text_is_recognised_only_once_parsed_and_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let pki = PkiDir::open(dir.path().join("pki")).unwrap();
        let (_, first_pub) = key_pair();
        let (_, second_pub) = key_pair();
        pki.write(KeyState::Accepted, "m1", &first_pub).unwrap();
        assert!(!pki.presents_accepted_key("m1", &first_pub), "not parsed yet");
        pki.accepted_key("m1").unwrap().unwrap();
        assert!(pki.presents_accepted_key("m1", &first_pub));
        // Equal after Salt's clean_key, but not these bytes: a leading space stops OpenSSL's
        // PEM reader, so such a text must go through the parse (and be refused) as before.
        assert!(!pki.presents_accepted_key("m1", &format!(" {first_pub}")));
        assert!(!pki.presents_accepted_key("m1", &format!("\n{}\r\n", first_pub.trim())));
        assert!(!pki.presents_accepted_key("m1", &second_pub));
        assert!(!pki.presents_accepted_key("../m1", &first_pub));
        pki.write(KeyState::Accepted, "m1", &second_pub).unwrap();
        assert!(!pki.presents_accepted_key("m1", &second_pub), "a changed file is parsed again first");
        assert!(!pki.presents_accepted_key("m1", &first_pub));
    }

    #[test]
    fn states_round_trip_and_listing_skips_dotfiles() {
        let dir = tempfile::tempdir().unwrap();
        let pki = PkiDir::open(dir.path().join("pki")).unwrap();
        pki.write(KeyState::Pending, "web2", "PEM2").unwrap();
        pki.write(KeyState::Pending, "Web1", "PEM1").unwrap();
        fs::write(pki.state_dir(KeyState::Pending).join(".hidden"), "x").unwrap();
        assert_eq!(pki.list(KeyState::Pending).unwrap(), ["Web1", "web2"]);
        assert!(pki.move_key("web2", KeyState::Pending, KeyState::Accepted).unwrap());
        assert!(!pki.move_key("web2", KeyState::Pending, KeyState::Accepted).unwrap());
        assert_eq!(pki.read(KeyState::Accepted, "web2").unwrap().as_deref(), Some("PEM2"));
        assert!(pki.remove(KeyState::Accepted, "web2").unwrap());
        assert!(!pki.remove(KeyState::Accepted, "web2").unwrap());
        let mode = fs::metadata(pki.key_path(KeyState::Pending, "Web1").unwrap()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn a_cached_key_follows_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let pki = PkiDir::open(dir.path()).unwrap();
        let pem = |k: &halite_proto::rsa::PrivateKey| {
            String::from_utf8(k.public_key().unwrap().to_spki_pem().unwrap()).unwrap()
        };
        let (a, b) = (
            halite_proto::rsa::PrivateKey::generate(2048).unwrap(),
            halite_proto::rsa::PrivateKey::generate(2048).unwrap(),
        );
        pki.write(KeyState::Accepted, "m1", &pem(&a)).unwrap();
        let first = pki.accepted_key("m1").unwrap().unwrap();
        assert_eq!(first.to_spki_pem().unwrap(), pem(&a).into_bytes());
        assert_eq!(pki.accepted_key("m1").unwrap().unwrap().to_spki_pem().unwrap(), pem(&a).into_bytes());
        // Replaced in place (as Salt's own master writes), then by rename (as salt-key does).
        // File times tick with the kernel's coarse clock, so let one tick pass first.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(pki.key_path(KeyState::Accepted, "m1").unwrap(), pem(&b)).unwrap();
        assert_eq!(pki.accepted_key("m1").unwrap().unwrap().to_spki_pem().unwrap(), pem(&b).into_bytes());
        pki.write(KeyState::Accepted, "m1", &pem(&a)).unwrap();
        assert_eq!(pki.accepted_key("m1").unwrap().unwrap().to_spki_pem().unwrap(), pem(&a).into_bytes());
        pki.remove(KeyState::Accepted, "m1").unwrap();
        assert!(pki.accepted_key("m1").unwrap().is_none(), "a deleted key is not served from the cache");
    }

    #[test]
    fn hostile_ids_never_name_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let pki = PkiDir::open(dir.path()).unwrap();
        for id in ["../x", "a/b", "", "..", "a\0b"] {
            assert!(matches!(pki.write(KeyState::Pending, id, "k"), Err(PkiError::InvalidId(_))), "{id:?}");
        }
    }

    #[test]
    fn finger_matches_salt_pem_finger() {
        // Expected values from salt.utils.crypt.pem_finger (3007.8) on the same bytes: blank
        // lines and CRLFs do not change a fingerprint.
        let pem = b"-----BEGIN PUBLIC KEY-----\r\nQUJD\r\n\r\nREVG\r\n-----END PUBLIC KEY-----\r\n";
        assert_eq!(
            finger(pem, "sha256").unwrap(),
            "ab:a8:5f:e1:54:bd:a5:24:5c:3a:86:e5:ba:8a:46:03:9b:25:b8:9c:29:fd:51:fc:3a:0c:67:b0:41:4a:7b:b1"
        );
        assert_eq!(finger(pem, "md5").unwrap(), "3c:93:73:cb:92:9d:97:8d:d1:e5:46:62:95:5c:88:f5");
        assert!(finger(pem, "crc32").is_err());
    }
}
