//! Python's `posixpath` and `glob` as Salt's config code uses them. Salt's paths are strings
//! manipulated lexically (`normpath`, `join`, `abspath`), and the results must match Salt's
//! character for character, so this works on `str`, not on `std::path`.

use std::path::Path;

/// `posixpath.normpath`: collapses `//`, `.` and `..` lexically. A path starting with exactly
/// two slashes keeps them (POSIX leaves `//` implementation-defined); an empty result is `.`.
pub(crate) fn normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let leading = if path.starts_with("//") && !path.starts_with("///") {
        "//"
    } else if path.starts_with('/') {
        "/"
    } else {
        ""
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if leading.is_empty() {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = format!("{leading}{}", parts.join("/"));
    if joined.is_empty() {
        ".".to_owned()
    } else {
        joined
    }
}

/// `posixpath.join(a, b)`: `b` when it is absolute, else `a` and `b` with one `/` between.
pub(crate) fn join(a: &str, b: &str) -> String {
    if b.starts_with('/') || a.is_empty() {
        b.to_owned()
    } else if a.ends_with('/') {
        format!("{a}{b}")
    } else {
        format!("{a}/{b}")
    }
}

/// `posixpath.abspath` relative to `cwd`.
pub(crate) fn abspath(path: &str, cwd: &str) -> String {
    if path.starts_with('/') {
        normpath(path)
    } else {
        normpath(&join(cwd, path))
    }
}

pub(crate) fn dirname(path: &str) -> &str {
    let cut = path.rfind('/').map_or(0, |i| i + 1);
    let head = &path[..cut];
    let trimmed = head.trim_end_matches('/');
    if trimmed.is_empty() {
        head
    } else {
        trimmed
    }
}

pub(crate) fn basename(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

/// `os.path.expanduser` for `~` and `~/...` (the only forms a config file can mean portably);
/// `~user` forms are left alone, as Python does when the user is unknown.
pub(crate) fn expanduser(path: &str, home: Option<&str>) -> String {
    match (path.strip_prefix('~'), home) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            let home = home.trim_end_matches('/');
            format!("{}{rest}", if home.is_empty() { "/" } else { home })
        }
        _ => path.to_owned(),
    }
}

/// `salt.utils.path.join(root, path)`: both normalised, `path`'s leading slashes dropped, so an
/// absolute path is re-rooted under `root`.
pub(crate) fn salt_join(root: &str, path: &str) -> String {
    let root = normpath(root);
    let path = normpath(path);
    normpath(&join(&root, path.trim_start_matches('/')))
}

/// Whether `urllib.parse.urlparse(value).scheme` is non-empty: a run of letters, digits,
/// `+`, `-` or `.` starting with a letter, then `:`. Salt does not prefix such log targets
/// (`udp://host:514`, `file:///dev/log`) with root_dir.
pub(crate) fn has_url_scheme(value: &str) -> bool {
    let value = value.trim_start_matches(|c: char| c <= ' ');
    let Some(colon) = value.find(':') else {
        return false;
    };
    let scheme = &value[..colon];
    scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// `glob.has_magic`.
pub(crate) fn has_magic(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// `glob.glob(pattern)` (not recursive): matching paths that exist, in directory order (Salt
/// sorts where order matters; halite sorts here so results never depend on the filesystem).
/// Unreadable directories match nothing, as in Python.
pub(crate) fn glob(pattern: &str) -> Vec<String> {
    let mut out = if !has_magic(pattern) {
        if Path::new(pattern).symlink_metadata().is_ok() {
            vec![pattern.to_owned()]
        } else {
            Vec::new()
        }
    } else {
        let (dir, base) = split(pattern);
        let dirs = if dir.is_empty() {
            vec![String::new()]
        } else if dir != pattern && has_magic(dir) {
            glob(dir)
        } else {
            vec![dir.to_owned()]
        };
        let mut out = Vec::new();
        for d in dirs {
            if has_magic(base) {
                out.extend(match_in_dir(&d, base).into_iter().map(|name| join(&d, &name)));
            } else if base.is_empty() {
                if Path::new(&d).is_dir() {
                    out.push(join(&d, ""));
                }
            } else {
                let candidate = join(&d, base);
                if Path::new(&candidate).symlink_metadata().is_ok() {
                    out.push(candidate);
                }
            }
        }
        out
    };
    out.sort();
    out
}

/// `posixpath.split`: the part before the last `/` (trailing slashes dropped unless it is all
/// slashes) and the part after it.
fn split(path: &str) -> (&str, &str) {
    let cut = path.rfind('/').map_or(0, |i| i + 1);
    let head = &path[..cut];
    let trimmed = head.trim_end_matches('/');
    (if trimmed.is_empty() { head } else { trimmed }, &path[cut..])
}

fn match_in_dir(dir: &str, pattern: &str) -> Vec<String> {
    let listing = std::fs::read_dir(if dir.is_empty() { "." } else { dir });
    let Ok(listing) = listing else {
        return Vec::new();
    };
    // Names starting with a dot only match patterns that start with one.
    let hidden_ok = pattern.starts_with('.');
    listing
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| (hidden_ok || !name.starts_with('.')) && fnmatch(name, pattern))
        .collect()
}

/// `fnmatch.fnmatchcase`: `*`, `?`, `[seq]`, `[!seq]`; a `[` without its `]` is literal.
pub(crate) fn fnmatch(name: &str, pattern: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    matches_from(&name, &pattern)
}

fn matches_from(name: &[char], pattern: &[char]) -> bool {
    // Iterative wildcard matching with backtracking to the last `*`.
    let (mut n, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() {
            match pattern[p] {
                '*' => {
                    star = Some((p, n));
                    p += 1;
                    continue;
                }
                '?' => {
                    n += 1;
                    p += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = class(&pattern[p..], name[n]) {
                        if matched {
                            n += 1;
                            p += next;
                            continue;
                        }
                    } else if name[n] == '[' {
                        n += 1;
                        p += 1;
                        continue;
                    }
                }
                c if c == name[n] => {
                    n += 1;
                    p += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class opening `pattern`; `None` when the `[` is not closed.
/// Returns whether it matched and the class's length in the pattern.
fn class(pattern: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pattern.get(i), Some('!'));
    if negate {
        i += 1;
    }
    // A `]` right after `[` or `[!` is a member, not the end.
    if pattern.get(i) == Some(&']') {
        i += 1;
    }
    let close = i + pattern[i..].iter().position(|&ch| ch == ']')?;
    let members = &pattern[1 + usize::from(negate)..close];
    let mut hit = false;
    let mut j = 0;
    while j < members.len() {
        if j + 2 < members.len() && members[j + 1] == '-' {
            if members[j] <= c && c <= members[j + 2] {
                hit = true;
            }
            j += 3;
        } else {
            if members[j] == c {
                hit = true;
            }
            j += 1;
        }
    }
    Some((hit != negate, close + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normpath_like_python() {
        for (input, want) in [
            ("", "."),
            ("/", "/"),
            ("//", "//"),
            ("///", "/"),
            ("/a//b/./c/", "/a/b/c"),
            ("/../a", "/a"),
            ("a/../../b", "../b"),
            ("./", "."),
            ("//a/b", "//a/b"),
        ] {
            assert_eq!(normpath(input), want, "{input:?}");
        }
    }

    #[test]
    fn salt_join_reroots_absolute_paths() {
        assert_eq!(salt_join("/srv/root", "/etc/salt/pki"), "/srv/root/etc/salt/pki");
        assert_eq!(salt_join("/", "/etc/salt/pki"), "/etc/salt/pki");
        assert_eq!(salt_join("/srv/root", "pki"), "/srv/root/pki");
        assert_eq!(salt_join("/srv/root", ""), "/srv/root");
    }

    #[test]
    fn url_schemes() {
        assert!(has_url_scheme("udp://localhost:514"));
        assert!(has_url_scheme("file:///dev/log"));
        assert!(!has_url_scheme("/var/log/salt/master"));
        assert!(!has_url_scheme("logs/master"));
        assert!(!has_url_scheme("1abc:/x"));
    }

    #[test]
    fn fnmatch_like_python() {
        assert!(fnmatch("a.conf", "*.conf"));
        assert!(!fnmatch("a.confx", "*.conf"));
        assert!(fnmatch("x1", "x[0-9]"));
        assert!(!fnmatch("x1", "x[!0-9]"));
        assert!(fnmatch("x]", "x[]]"));
        assert!(fnmatch("x[", "x["));
        assert!(fnmatch("abc", "a?c"));
        assert!(fnmatch("", "*"));
    }
}
