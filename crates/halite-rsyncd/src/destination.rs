//! Where a push lands: the reference's get_local_name(). The client names a place in
//! the module (`backups/`, `backups/web1/`, `backups/notes.txt`); the list is placed in
//! that directory — made first when it is missing and the list needs one — or a single
//! entry is written under the name given.
//!
//! [`plan`] decides from what is there (pure, tested below); the receiver makes the
//! directory and opens it as the tree the transfer works in, so nothing a push does can
//! reach above its destination.

use thiserror::Error;

/// What stands at the destination now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Missing,
    Dir,
    /// A file, a symlink (never followed) or anything else that is not a directory.
    Other,
}

/// Where the list's names go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Beneath `dir` (module-relative, "" for the top), made first when `create`.
    Dir { dir: Vec<u8>, create: bool },
    /// The list's single entry, written as `name` in `dir`.
    Renamed { dir: Vec<u8>, name: Vec<u8> },
}

/// A destination the list cannot go to: the reference's words and exit codes.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum DestError {
    #[error("ERROR: destination must be a directory when copying more than 1 file")]
    NotADirForMany,
    #[error("ERROR: cannot overwrite non-directory with a directory")]
    DirOverNonDir,
    #[error("ERROR: destination path is not a directory")]
    NotADir,
}

impl DestError {
    pub fn exit_code(&self) -> i32 {
        match self {
            DestError::NotADirForMany | DestError::DirOverNonDir => crate::session::RERR_FILESELECT,
            DestError::NotADir => crate::session::RERR_SYNTAX,
        }
    }
}

/// Decides where a list of `entries` entries (`single_is_dir`: the only one is a
/// directory) goes, for destination `rel` (module-relative, cleaned; `trailing_slash`
/// as the client wrote it) where `found` stands.
pub fn plan(
    rel: &[u8],
    trailing_slash: bool,
    found: Found,
    entries: usize,
    single_is_dir: bool,
) -> Result<Placement, DestError> {
    if rel.is_empty() || found == Found::Dir {
        return Ok(Placement::Dir { dir: rel.to_vec(), create: false });
    }
    if found == Found::Other {
        if entries > 1 {
            return Err(DestError::NotADirForMany);
        }
        if entries == 1 && single_is_dir {
            return Err(DestError::DirOverNonDir);
        }
    }
    if entries > 1 || trailing_slash {
        if found == Found::Other {
            return Err(DestError::NotADir);
        }
        return Ok(Placement::Dir { dir: rel.to_vec(), create: true });
    }
    let (dir, name) = crate::tree::split_parent(rel);
    Ok(Placement::Renamed { dir: dir.to_vec(), name: name.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(d: &str, create: bool) -> Result<Placement, DestError> {
        Ok(Placement::Dir { dir: d.as_bytes().to_vec(), create })
    }

    #[test]
    fn a_list_goes_into_the_directory_named_made_when_missing() {
        assert_eq!(plan(b"", true, Found::Dir, 5, false), dir("", false));
        assert_eq!(plan(b"web1", true, Found::Dir, 5, false), dir("web1", false));
        assert_eq!(plan(b"web1", false, Found::Dir, 1, false), dir("web1", false));
        assert_eq!(plan(b"web1", true, Found::Missing, 5, false), dir("web1", true));
        assert_eq!(plan(b"web1", false, Found::Missing, 5, false), dir("web1", true));
        // A single file to a name ending in '/' makes the directory too.
        assert_eq!(plan(b"a/web1", true, Found::Missing, 1, false), dir("a/web1", true));
        assert_eq!(plan(b"web1", true, Found::Missing, 0, false), dir("web1", true));
    }

    #[test]
    fn a_single_entry_takes_the_name_given() {
        let renamed =
            |d: &str, n: &str| Ok(Placement::Renamed { dir: d.as_bytes().to_vec(), name: n.as_bytes().to_vec() });
        assert_eq!(plan(b"notes.txt", false, Found::Missing, 1, false), renamed("", "notes.txt"));
        assert_eq!(plan(b"a/b/notes.txt", false, Found::Other, 1, false), renamed("a/b", "notes.txt"));
        assert_eq!(plan(b"newdir", false, Found::Missing, 1, true), renamed("", "newdir"));
    }

    #[test]
    fn what_cannot_be_is_the_references_error() {
        assert_eq!(plan(b"f", false, Found::Other, 3, false), Err(DestError::NotADirForMany));
        assert_eq!(plan(b"f", false, Found::Other, 1, true), Err(DestError::DirOverNonDir));
        assert_eq!(plan(b"f", true, Found::Other, 1, false), Err(DestError::NotADir));
        assert_eq!(DestError::NotADir.exit_code(), 1);
        assert_eq!(DestError::NotADirForMany.exit_code(), 3);
    }
}
