//! Salt's `roots` file server: what `salt://` paths mean on the master.
//!
//! Owns: resolving a minion's path (with Salt's `?saltenv=` query) in the `file_roots` of a
//! saltenv, first root first; refusing absolute paths, `..`, and files whose real path
//! leaves every root (symlinks included — Salt's CVE-2024-22231/22232 class); the file, dir,
//! empty-dir and symlink lists; file hashes and stat as Salt reports them; reading a chunk of
//! a file for `_serve_file` (gzipped when the minion asks); `file_ignore_regex`/
//! `file_ignore_glob`.
//!
//! Must not: speak the protocol or know about minions. The master's request handlers call
//! this with a load's fields and put the answers in Salt's reply shapes. It reads the
//! filesystem (that is what a file server is); its only state is two caches that check
//! themselves against the filesystem before answering (see [`Roots::listing`] and
//! [`Roots::file_hash`]), so an edit to `states/` is seen by the next request without a
//! restart or Salt's `fileserver.update`.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use halite_target::pyre::PyRegex;

/// Salt's `file_buffer_size` default: `_serve_file` answers in 1 MiB chunks.
pub const DEFAULT_BUFFER_SIZE: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FileServerError {
    #[error("file_ignore_regex {0}")]
    IgnoreRegex(#[from] halite_target::pyre::RegexError),
    #[error("hash_type {0:?} is not one of md5, sha1, sha224, sha256, sha384, sha512")]
    HashType(String),
    #[error("reading {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// The settings of the roots backend, from the master config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// saltenv → directories, in order (`file_roots`).
    pub file_roots: Vec<(String, Vec<PathBuf>)>,
    pub ignore_regex: Vec<String>,
    pub ignore_glob: Vec<String>,
    /// `fileserver_ignoresymlinks`: leave symlinks out of the lists.
    pub ignore_symlinks: bool,
    pub buffer_size: usize,
    pub hash_type: String,
}

/// A file found for a path: where it is, and the path relative to its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    pub rel: String,
}

/// The lists `_file_list`, `_dir_list`, `_file_list_emptydirs` and `_symlink_list` answer
/// from, relative to the roots, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub files: Vec<String>,
    pub dirs: Vec<String>,
    pub empty_dirs: Vec<String>,
    /// rel path → link target as written in the link.
    pub links: Vec<(String, String)>,
}

pub struct Roots {
    settings: Settings,
    ignore_regex: Vec<PyRegex>,
    digest: openssl::hash::MessageDigest,
    listings: Mutex<HashMap<String, CachedListing>>,
    hashes: Mutex<HashMap<PathBuf, (FileVersion, String)>>,
}

/// A saltenv's listing and the modification time of every directory it walked. Adding,
/// removing or renaming an entry (a symlink's retargeting included) changes the mtime of
/// the directory holding it, so re-checking the directories, not re-reading them, tells
/// whether the listing still holds.
struct CachedListing {
    listing: Arc<Listing>,
    dir_mtimes: Vec<(PathBuf, Option<SystemTime>)>,
}

/// What identifies one content of a file for the hash cache: a rewrite changes the mtime or
/// the size, a replacement by rename changes the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileVersion {
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl FileVersion {
    fn of(meta: &std::fs::Metadata) -> FileVersion {
        FileVersion { ino: meta.ino(), size: meta.size(), mtime: meta.mtime(), mtime_nsec: meta.mtime_nsec() }
    }
}

fn mtime_of(dir: &Path) -> Option<SystemTime> {
    std::fs::metadata(dir).and_then(|m| m.modified()).ok()
}

impl Roots {
    pub fn new(settings: Settings) -> Result<Roots, FileServerError> {
        let ignore_regex =
            settings.ignore_regex.iter().map(|r| PyRegex::new_search(r)).collect::<Result<Vec<_>, _>>()?;
        let digest = match settings.hash_type.as_str() {
            "md5" => openssl::hash::MessageDigest::md5(),
            "sha1" => openssl::hash::MessageDigest::sha1(),
            "sha224" => openssl::hash::MessageDigest::sha224(),
            "sha256" => openssl::hash::MessageDigest::sha256(),
            "sha384" => openssl::hash::MessageDigest::sha384(),
            "sha512" => openssl::hash::MessageDigest::sha512(),
            other => return Err(FileServerError::HashType(other.to_owned())),
        };
        Ok(Roots { settings, ignore_regex, digest, listings: Mutex::default(), hashes: Mutex::default() })
    }

    pub fn hash_type(&self) -> &str {
        &self.settings.hash_type
    }

    pub fn buffer_size(&self) -> usize {
        self.settings.buffer_size
    }

    /// Salt's `envs()`: the saltenvs of `file_roots`, sorted.
    pub fn envs(&self) -> Vec<String> {
        let mut envs: Vec<String> = self.settings.file_roots.iter().map(|(e, _)| e.clone()).collect();
        envs.sort();
        envs.dedup();
        envs
    }

    /// The roots of `saltenv`, `__env__` standing in for any saltenv not configured (its
    /// `__env__` path components replaced by the saltenv's name).
    fn roots_of(&self, saltenv: &str) -> Vec<PathBuf> {
        if let Some((_, dirs)) = self.settings.file_roots.iter().find(|(e, _)| e == saltenv) {
            return dirs.clone();
        }
        // A saltenv comes from the minion; spliced into an `__env__` path it must stay one
        // path component.
        if saltenv.is_empty() || saltenv == "." || saltenv == ".." || saltenv.contains(['/', '\\', '\0']) {
            return Vec::new();
        }
        match self.settings.file_roots.iter().find(|(e, _)| e == "__env__") {
            Some((_, dirs)) => {
                dirs.iter().map(|d| PathBuf::from(d.to_string_lossy().replace("__env__", saltenv))).collect()
            }
            None => Vec::new(),
        }
    }

    fn is_ignored(&self, rel: &str) -> bool {
        self.ignore_regex.iter().any(|r| r.is_match(rel))
            || self.settings.ignore_glob.iter().any(|g| halite_target::fnmatch(rel, g))
    }

    /// Salt's `Fileserver.find_file`: `path` may carry `?saltenv=...` (which wins over
    /// `saltenv`); absolute paths and `..` find nothing; the first root holding a regular file
    /// at that path wins, provided its real path stays inside that root.
    pub fn find_file(&self, path: &str, saltenv: &str) -> Option<Found> {
        let (path, query_env) = split_query(path);
        let saltenv = query_env.as_deref().unwrap_or(saltenv);
        let rel = normalize(path)?;
        for root in self.roots_of(saltenv) {
            let full = root.join(&rel);
            if !full.is_file() || self.is_ignored(&rel) {
                continue;
            }
            if !inside(&root, &full) {
                continue;
            }
            return Some(Found { path: full, rel });
        }
        None
    }

    /// Salt's `file_hash`: the file's digest in `hash_type`, hex. Remembered per file until
    /// its inode, size or mtime changes, as Salt keeps its hash cache by mtime.
    pub fn file_hash(&self, found: &Found) -> Result<String, FileServerError> {
        let io = |source| FileServerError::Io { path: found.path.clone(), source };
        let mut file = std::fs::File::open(&found.path).map_err(io)?;
        let version = FileVersion::of(&file.metadata().map_err(io)?);
        if let Some((v, hsum)) = self.hashes.lock().unwrap_or_else(|p| p.into_inner()).get(&found.path) {
            if *v == version {
                return Ok(hsum.clone());
            }
        }
        let mut hasher = openssl::hash::Hasher::new(self.digest).map_err(|e| io(std::io::Error::other(e)))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]).map_err(|e| io(std::io::Error::other(e)))?;
        }
        let digest = hasher.finish().map_err(|e| io(std::io::Error::other(e)))?;
        let hsum: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.hashes.lock().unwrap_or_else(|p| p.into_inner()).insert(found.path.clone(), (version, hsum.clone()));
        Ok(hsum)
    }

    /// `list(os.stat(path))` as Salt sends it: mode, ino, dev, nlink, uid, gid, size, and the
    /// three times in whole seconds.
    pub fn stat(&self, found: &Found) -> Result<[i64; 10], FileServerError> {
        let m = std::fs::metadata(&found.path)
            .map_err(|source| FileServerError::Io { path: found.path.clone(), source })?;
        Ok([
            i64::from(m.mode()),
            m.ino() as i64,
            m.dev() as i64,
            m.nlink() as i64,
            i64::from(m.uid()),
            i64::from(m.gid()),
            m.size() as i64,
            m.atime(),
            m.mtime(),
            m.ctime(),
        ])
    }

    /// One chunk of the file from byte `loc`: at most `buffer_size` bytes, empty past the end.
    pub fn read_chunk(&self, found: &Found, loc: u64) -> Result<Vec<u8>, FileServerError> {
        let io = |source| FileServerError::Io { path: found.path.clone(), source };
        let mut file = std::fs::File::open(&found.path).map_err(io)?;
        file.seek(SeekFrom::Start(loc)).map_err(io)?;
        let mut data = Vec::with_capacity(self.settings.buffer_size.min(1 << 20));
        file.take(self.settings.buffer_size as u64).read_to_end(&mut data).map_err(io)?;
        Ok(data)
    }

    /// A saltenv's lists, from the cache while every directory walked to make them is
    /// unchanged; otherwise walked again. Salt instead rebuilds its list cache on a timer
    /// (`fileserver_list_cache_time`), so a new file can be missing from its lists for 20 s.
    pub fn listing(&self, saltenv: &str) -> Arc<Listing> {
        if let Some(cached) = self.listings.lock().unwrap_or_else(|p| p.into_inner()).get(saltenv) {
            if cached.dir_mtimes.iter().all(|(dir, mtime)| mtime_of(dir) == *mtime) {
                return Arc::clone(&cached.listing);
            }
        }
        let (listing, dir_mtimes) = self.walk(saltenv);
        let listing = Arc::new(listing);
        self.listings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(saltenv.to_owned(), CachedListing { listing: Arc::clone(&listing), dir_mtimes });
        listing
    }

    /// Salt's `_file_lists` for `saltenv`: every file, dir, empty dir and symlink under its
    /// roots (relative, `/`-separated, sorted, ignored names left out). Symlinked files whose
    /// target leaves the root are listed as links only, since they are never served. Also
    /// returns each directory walked (roots included, existing or not) with its mtime.
    fn walk(&self, saltenv: &str) -> (Listing, Vec<(PathBuf, Option<SystemTime>)>) {
        let mut files = std::collections::BTreeSet::new();
        let mut dirs = std::collections::BTreeSet::new();
        let mut empty = std::collections::BTreeSet::new();
        let mut links = std::collections::BTreeMap::new();
        let mut dir_mtimes = Vec::new();
        for root in self.roots_of(saltenv) {
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                // Taken before reading, so a change made during the walk invalidates it.
                dir_mtimes.push((dir.clone(), mtime_of(&dir)));
                let Ok(entries) = std::fs::read_dir(&dir) else { continue };
                for entry in entries.flatten() {
                    let abs = entry.path();
                    let Ok(rel) = abs.strip_prefix(&root) else { continue };
                    let Some(rel) = rel.to_str().map(str::to_owned) else { continue };
                    if self.is_ignored(&rel) {
                        continue;
                    }
                    let Ok(meta) = std::fs::symlink_metadata(&abs) else { continue };
                    let is_link = meta.file_type().is_symlink();
                    if is_link && self.settings.ignore_symlinks {
                        continue;
                    }
                    if is_link {
                        if let Ok(target) = std::fs::read_link(&abs) {
                            links.insert(rel.clone(), target.to_string_lossy().into_owned());
                        }
                        if !inside(&root, &abs) {
                            continue;
                        }
                    }
                    if abs.is_dir() {
                        dirs.insert(rel.clone());
                        if std::fs::read_dir(&abs).map(|mut d| d.next().is_none()).unwrap_or(false) {
                            empty.insert(rel.clone());
                        }
                        // Salt walks into symlinked dirs too (fileserver_followsymlinks).
                        stack.push(abs);
                    } else if abs.is_file() {
                        files.insert(rel);
                    }
                }
            }
        }
        let listing = Listing {
            files: files.into_iter().collect(),
            dirs: dirs.into_iter().collect(),
            empty_dirs: empty.into_iter().collect(),
            links: links.into_iter().collect(),
        };
        (listing, dir_mtimes)
    }
}

/// Salt's `gzip_util.compress`: the chunk as a gzip stream at `level` (clamped to 1..=9, as
/// Python's `GzipFile` would refuse anything else).
pub fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level.clamp(1, 9)));
    // Writing to a Vec cannot fail.
    enc.write_all(data).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

/// Salt's URL query in a fileserver path: `path?saltenv=dev&x=y` → (`path`, `dev`).
pub fn split_query(path: &str) -> (&str, Option<String>) {
    let Some((path, query)) = path.split_once('?') else { return (path, None) };
    let env =
        query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == "saltenv").map(|(_, v)| v.to_owned());
    (path, env)
}

/// The relative path as Salt's `os.path.normpath` leaves it, or `None` for what Salt refuses:
/// an absolute path, any `..`, or nothing at all.
fn normalize(path: &str) -> Option<String> {
    if path.is_empty() || path.starts_with('/') || path.contains("../") || path == ".." || path.ends_with("/..") {
        return None;
    }
    let mut parts = Vec::new();
    for comp in Path::new(path).components() {
        match comp {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Whether `path`, symlinks resolved, is inside `root` (also resolved).
fn inside(root: &Path, path: &Path) -> bool {
    match (std::fs::canonicalize(root), std::fs::canonicalize(path)) {
        (Ok(root), Ok(path)) => path.starts_with(root),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, Roots) {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base");
        let over = dir.path().join("over");
        let outside = dir.path().join("outside");
        for d in [&base, &over, &outside, &base.join("web/empty"), &base.join("web/conf")] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(base.join("top.sls"), "base:\n  '*': [web]\n").unwrap();
        std::fs::write(base.join("web/init.sls"), "in base").unwrap();
        std::fs::write(
            over.join("web/init.sls")
                .parent()
                .map(|p| {
                    std::fs::create_dir_all(p).unwrap();
                    p.join("init.sls")
                })
                .unwrap(),
            "in over",
        )
        .unwrap();
        std::fs::write(base.join("web/conf/app.conf.swp"), "ignored").unwrap();
        std::fs::write(outside.join("secret"), "no").unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), base.join("escape")).unwrap();
        std::os::unix::fs::symlink("init.sls", base.join("web/alias.sls")).unwrap();
        let settings = Settings {
            file_roots: vec![("base".into(), vec![over, base]), ("__env__".into(), vec![dir.path().join("__env__")])],
            ignore_regex: vec![r"\.swp$".into()],
            ignore_glob: vec![],
            ignore_symlinks: false,
            buffer_size: 4,
            hash_type: "sha256".into(),
        };
        (dir, Roots::new(settings).unwrap())
    }

    #[test]
    fn finds_first_root_first_and_refuses_escapes() {
        let (_dir, roots) = tree();
        let found = roots.find_file("web/init.sls", "base").expect("found");
        assert!(found.path.to_string_lossy().contains("/over/"), "the first root wins");
        assert_eq!(found.rel, "web/init.sls");
        assert_eq!(roots.find_file("./web//init.sls", "base").map(|f| f.rel), Some("web/init.sls".into()));
        assert!(roots.find_file("web/alias.sls", "base").is_some(), "a link inside the root is served");
        for refused in ["/etc/passwd", "../outside/secret", "web/../../outside/secret", "escape", "..", ""] {
            assert_eq!(roots.find_file(refused, "base"), None, "{refused:?} must not be served");
        }
        assert_eq!(roots.find_file("web/conf/app.conf.swp", "base"), None, "ignored by regex");
        assert_eq!(roots.find_file("top.sls", "nope"), None, "__env__ dir does not exist");
        std::fs::create_dir_all(_dir.path().join("__env__")).unwrap();
        std::fs::write(_dir.path().join("outside/top.sls"), "x").unwrap();
        assert_eq!(roots.find_file("top.sls", "../outside"), None, "a saltenv cannot climb out of __env__");
        assert!(roots.find_file("top.sls?saltenv=base", "dev").is_some(), "the query's saltenv wins");
    }

    #[test]
    fn lists_hashes_and_chunks() {
        let (_dir, roots) = tree();
        let listing = roots.listing("base");
        assert_eq!(listing.files, ["top.sls", "web/alias.sls", "web/init.sls"]);
        assert_eq!(listing.dirs, ["web", "web/conf", "web/empty"]);
        assert_eq!(listing.empty_dirs, ["web/empty"]);
        assert_eq!(listing.links.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["escape", "web/alias.sls"]);
        let top = roots.find_file("top.sls", "base").unwrap();
        let expected: String = openssl::hash::hash(openssl::hash::MessageDigest::sha256(), b"base:\n  '*': [web]\n")
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(roots.file_hash(&top).unwrap(), expected);
        assert_eq!(roots.read_chunk(&top, 0).unwrap(), b"base");
        assert_eq!(roots.read_chunk(&top, 4).unwrap(), b":\n  ");
        assert!(roots.read_chunk(&top, 1000).unwrap().is_empty());
        assert_eq!(roots.stat(&top).unwrap()[6], 19, "size");
        assert_eq!(roots.envs(), ["__env__", "base"]);
    }

    #[test]
    fn cached_listing_and_hash_follow_the_tree() {
        let (dir, roots) = tree();
        let first = roots.listing("base");
        assert!(Arc::ptr_eq(&first, &roots.listing("base")), "unchanged tree: served from the cache");
        std::fs::write(dir.path().join("base/web/conf/new.sls"), "x").unwrap();
        let second = roots.listing("base");
        assert!(second.files.contains(&"web/conf/new.sls".to_owned()), "a new file deep in the tree is listed");
        std::fs::remove_file(dir.path().join("base/web/conf/new.sls")).unwrap();
        assert!(!roots.listing("base").files.contains(&"web/conf/new.sls".to_owned()), "and unlisted once removed");

        let top = roots.find_file("top.sls", "base").unwrap();
        let before = roots.file_hash(&top).unwrap();
        std::fs::write(&top.path, "base: {}\n").unwrap();
        assert_ne!(roots.file_hash(&top).unwrap(), before, "a rewritten file is hashed again");
    }

    #[test]
    fn ignore_globs_hide_files_from_lists_and_lookups() {
        let (dir, _) = tree();
        let settings = Settings {
            file_roots: vec![("base".into(), vec![dir.path().join("base")])],
            ignore_regex: vec![],
            ignore_glob: vec!["*.sls".into()],
            ignore_symlinks: true,
            buffer_size: DEFAULT_BUFFER_SIZE,
            hash_type: "md5".into(),
        };
        let roots = Roots::new(settings).unwrap();
        let listing = roots.listing("base");
        assert!(listing.files.iter().all(|f| !f.ends_with(".sls")), "{:?}", listing.files);
        assert!(listing.links.is_empty(), "fileserver_ignoresymlinks leaves links out");
        assert_eq!(roots.find_file("top.sls", "base"), None);
        assert!(roots.find_file("web/conf/app.conf.swp", "base").is_some());
        assert!(Roots::new(Settings { hash_type: "crc32".into(), ..roots.settings.clone() }).is_err());
        assert!(Roots::new(Settings { ignore_regex: vec!["(".into()], ..roots.settings.clone() }).is_err());
    }

    #[test]
    fn gzip_round_trips() {
        let data = b"salt://".repeat(1000);
        let packed = gzip(&data, 5);
        assert!(packed.len() < data.len());
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&packed[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
    }
}
