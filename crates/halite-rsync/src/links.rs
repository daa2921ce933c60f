//! Symlink targets judged by their text alone, as the reference's unsafe_symlink()
//! judges them for `--safe-links`: a link is unsafe when its target is absolute or
//! empty, has a `..` anywhere but at its start, or climbs above the top of the
//! transfer from where the link stands. Nothing here looks at a filesystem.

/// Whether `target`, the target of a link named `name` (relative to the top of the
/// transfer), may point outside the transfer.
pub fn unsafe_symlink(target: &[u8], name: &[u8]) -> bool {
    if target.is_empty() || target[0] == b'/' {
        return true;
    }
    // Leading "../" (with any run of slashes after each) may be counted below; a ".."
    // further in could climb back out of a directory it named, so it is refused whole
    // (the form of CVE-2024-12088's bypass).
    let mut rest = target;
    while let Some(after) = rest.strip_prefix(b"../") {
        rest = after;
        while let Some(after) = rest.strip_prefix(b"/") {
            rest = after;
        }
    }
    if rest.windows(4).any(|w| w == b"/../") || (target.len() > 3 && target.ends_with(b"/..")) {
        return true;
    }
    // How far below the top the link's directory is...
    let mut depth: i64 = 0;
    for part in dir_parts(name) {
        match part {
            b"." => {}
            b".." => depth = 0,
            _ => depth += 1,
        }
    }
    if last_part(name) == b".." {
        depth = 0;
    }
    // ...and whether the target climbs above it at any point.
    for part in dir_parts(target) {
        match part {
            b"." => {}
            b".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    if last_part(target) == b".." {
        depth -= 1;
    }
    depth < 0
}

/// The components before the last '/', runs of slashes counting as one.
fn dir_parts(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    let dir = match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[..i],
        None => &path[..0],
    };
    dir.split(|&b| b == b'/').filter(|p| !p.is_empty())
}

fn last_part(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::unsafe_symlink;

    #[test]
    fn targets_inside_the_transfer_are_safe() {
        for (target, name) in [
            ("f", "link"),
            ("sub/f", "link"),
            ("../f", "sub/link"),
            ("../../f", "a/b/link"),
            ("./f", "link"),
            ("..//f", "sub/link"),
            ("sub/./f", "link"),
        ] {
            assert!(!unsafe_symlink(target.as_bytes(), name.as_bytes()), "{name} -> {target}");
        }
    }

    #[test]
    fn targets_that_may_leave_it_are_unsafe() {
        for (target, name) in [
            ("", "link"),
            ("/etc/passwd", "link"),
            ("../f", "link"),
            ("../../f", "sub/link"),
            // A ".." after a name: refused whatever the depth (CVE-2024-12088).
            ("sub/../../f", "a/b/c/link"),
            ("a/..", "sub/link"),
            ("..", "link"),
            // A ".." in the link's own path starts the count over.
            ("../f", "a/../link"),
        ] {
            assert!(unsafe_symlink(target.as_bytes(), name.as_bytes()), "{name} -> {target}");
        }
    }
}
