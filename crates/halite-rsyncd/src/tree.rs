//! A module's tree on disk, opened so that nothing outside it can be reached.
//!
//! Every path a client names is resolved relative to a descriptor of the module's root
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`: the
//! kernel refuses any `..` above the root and any symlink on the way, at the moment of
//! the open. That holds with or without `use chroot`, and it closes the race of
//! CVE-2024-12747 (a directory swapped for a symlink between a check and an open),
//! because there is no separate check.

use halite_rsync::flist::{FileEntry, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub struct Tree {
    root: OwnedFd,
}

/// What lstat says of one name, as the file list needs it.
#[derive(Debug, Clone)]
pub struct Stat {
    pub mode: u32,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
}

fn cstr(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl Tree {
    pub fn open(root: &Path) -> io::Result<Tree> {
        let path = cstr(root.as_os_str().as_bytes())?;
        // SAFETY: a valid C string and flags; the result is checked.
        let fd = check(unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) })?;
        // SAFETY: fd was just opened and is owned by nobody else.
        Ok(Tree { root: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Opens `rel` (relative, '/'-separated, "" or "." for the root) beneath the root.
    pub fn open_beneath(&self, rel: &[u8], flags: libc::c_int) -> io::Result<OwnedFd> {
        let rel = if rel.is_empty() { &b"."[..] } else { rel };
        let path = cstr(rel)?;
        // SAFETY: open_how is plain data; zero is "no flags" for every field.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (flags | libc::O_CLOEXEC | libc::O_NOFOLLOW) as u64;
        how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
        // SAFETY: openat2 with a valid dirfd, C string and open_how of the right size.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.root.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
    }

    /// Opens a regular file for reading. O_NONBLOCK, then a check of what was opened: a
    /// FIFO or device put in the module must not hang a connection or be read.
    pub fn open_file(&self, rel: &[u8]) -> io::Result<File> {
        regular(File::from(self.open_beneath(rel, libc::O_RDONLY | libc::O_NONBLOCK)?))
    }

    pub fn open_dir(&self, rel: &[u8]) -> io::Result<OwnedFd> {
        self.open_beneath(rel, libc::O_RDONLY | libc::O_DIRECTORY)
    }

    /// The directory `rel` as a tree of its own (where a push into a subdirectory
    /// works): everything is then resolved beneath it.
    pub fn subtree(&self, rel: &[u8]) -> io::Result<Tree> {
        Ok(Tree { root: self.open_dir(rel)? })
    }

    /// lstat of `rel`: its parent is opened beneath the root, the last name is not
    /// followed.
    pub fn lstat(&self, rel: &[u8]) -> io::Result<Stat> {
        let (parent, name) = split_parent(rel);
        let dir = self.open_dir(parent)?;
        stat_at(&dir, name)
    }
}

/// Checks, once at start-up, that this kernel confines opens the way every transfer
/// needs. Without `openat2` (Linux before 5.6, or a seccomp profile that does not know
/// it) no file could be served or received, and each client would see only per-file
/// errors; refusing to start says why instead. The probe touches no file: a relative
/// path against no directory (`-1`) fails with EBADF when the call exists.
pub fn check_confinement() -> io::Result<()> {
    // SAFETY: open_how is plain data; zero is "no flags" for every field.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: openat2 with a C string literal and an open_how of the right size; it
    // cannot succeed without a directory, and a descriptor it returned would be closed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            -1,
            c"probe".as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if rc >= 0 {
        // SAFETY: a descriptor this call just returned, owned by nobody else.
        drop(unsafe { OwnedFd::from_raw_fd(rc as libc::c_int) });
        return Ok(());
    }
    let e = io::Error::last_os_error();
    let why = match e.raw_os_error() {
        Some(libc::EBADF) => return Ok(()),
        Some(libc::ENOSYS) => "openat2 is missing: Linux before 5.6, or a seccomp profile that predates it",
        Some(libc::EPERM) => "openat2 is refused, probably by a seccomp profile",
        _ => "openat2 does not work here",
    };
    Err(io::Error::new(
        e.kind(),
        format!("{why} ({e}); halite-rsyncd opens every file of a module with openat2(RESOLVE_BENEATH) and cannot serve without it"),
    ))
}

fn regular(f: File) -> io::Result<File> {
    if f.metadata()?.is_file() {
        Ok(f)
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"))
    }
}

/// Opens the regular file `name` inside `dir` for reading, not following a symlink.
pub fn open_at(dir: &OwnedFd, name: &[u8]) -> io::Result<OwnedFd> {
    let name = cstr(name)?;
    // SAFETY: valid dirfd and C string; the result is checked.
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: a new descriptor owned by nobody else.
    let file = regular(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))?;
    Ok(OwnedFd::from(file))
}

/// Splits "a/b/c" into ("a/b", "c"); "c" into ("", "c"); "" into ("", ".").
pub fn split_parent(rel: &[u8]) -> (&[u8], &[u8]) {
    if rel.is_empty() {
        return (b"", b".");
    }
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (b"", rel),
    }
}

pub fn stat_at(dir: &OwnedFd, name: &[u8]) -> io::Result<Stat> {
    let name = cstr(name)?;
    // SAFETY: zeroed stat is a valid out-parameter for fstatat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid dirfd, C string and stat buffer.
    check(unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(Stat {
        mode: st.st_mode,
        size: st.st_size as u64,
        mtime: st.st_mtime,
        mtime_nsec: st.st_mtime_nsec as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev,
        dev: st.st_dev,
        ino: st.st_ino,
        nlink: st.st_nlink,
    })
}

pub fn readlink_at(dir: &OwnedFd, name: &[u8]) -> io::Result<Vec<u8>> {
    let name = cstr(name)?;
    let mut buf = vec![0u8; halite_rsync::flist::MAXPATHLEN + 1];
    // SAFETY: valid dirfd, C string and a buffer of the given length.
    let n = unsafe { libc::readlinkat(dir.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    if n > halite_rsync::flist::MAXPATHLEN {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "symlink target too long"));
    }
    buf.truncate(n);
    Ok(buf)
}

/// The names in a directory (without "." and ".."), from its descriptor.
pub fn read_dir_fd(dir: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    // SAFETY: dup gives fdopendir a descriptor it may own and close.
    let fd = check(unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: fd is a directory descriptor we own; ownership passes to the DIR.
    let dirp = unsafe { libc::fdopendir(fd) };
    if dirp.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so fd is still ours to close.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    // SAFETY: rewind in case the descriptor's offset was moved by an earlier read.
    unsafe { libc::rewinddir(dirp) };
    let mut names = Vec::new();
    loop {
        // SAFETY: errno is reset so that a NULL from readdir can be told apart.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: dirp is a valid DIR until closedir below.
        let ent = unsafe { libc::readdir(dirp) };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            // SAFETY: dirp is valid and closed once.
            unsafe { libc::closedir(dirp) };
            if e.raw_os_error().unwrap_or(0) != 0 {
                return Err(e);
            }
            return Ok(names);
        }
        // SAFETY: d_name is a NUL-terminated array inside the dirent readdir returned.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
}

impl Stat {
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }
    pub fn is_reg(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }
    pub fn is_link(&self) -> bool {
        self.mode & S_IFMT == S_IFLNK
    }

    pub fn to_entry(&self, name: Vec<u8>) -> FileEntry {
        FileEntry {
            name,
            mode: self.mode,
            size: self.size,
            mtime: self.mtime,
            mtime_nsec: self.mtime_nsec,
            uid: self.uid,
            gid: self.gid,
            rdev: (libc::major(self.rdev), libc::minor(self.rdev)),
            ..Default::default()
        }
    }
}
