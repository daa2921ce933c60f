//! The daemon's `log file` and `transfer logging`, against the reference's log of the same
//! sessions on the same config: connections, refusals, logins, the per-file lines in the
//! default `log format` and in one with `%i`, deletions and the totals, and `%C` with and
//! without `--checksum`.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn config(code: &Path, backups: &Path) -> String {
    let privileges = if root() { "use chroot = yes\n    uid = root\n    gid = root\n" } else { "use chroot = no\n" };
    format!(
        "lock file = @DIR@/rsyncd.lock\nlog file = @DIR@/rsyncd.log\n\n\
         [code]\n    path = {}\n    read only = yes\n    transfer logging = yes\n    {privileges}\n\
         [backups]\n    path = {}\n    read only = no\n    transfer logging = yes\n    \
         log format = %i %o %n%L %f %l %b %B %u %m %C\n    auth users = backup, ghost\n    \
         secrets file = @DIR@/secrets\n    strict modes = no\n    {privileges}\n\
         [closed]\n    path = {}\n    hosts allow = 192.0.2.1\n    {privileges}\n\
         [sums]\n    path = {}\n    transfer logging = yes\n    log format = %o %f %l [%C]\n    {privileges}",
        code.display(),
        backups.display(),
        code.display(),
        code.display()
    )
}

/// Each connection's lines (by pid, in the order connections began), without the time
/// and pid, sorted within a connection (the reference logs a push from two processes);
/// the startup line and the byte counts of the totals are left out.
fn sessions(log: &str) -> Vec<Vec<String>> {
    let mut order: Vec<String> = Vec::new();
    let mut lines: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in log.lines() {
        let Some((pid, text)) = line.get(20..).and_then(|rest| rest.split_once("] ")) else { continue };
        if text.contains("starting, listening on") {
            continue;
        }
        let text = match text.find("total size") {
            Some(at) if text.starts_with("sent ") => text[at..].to_string(),
            // The reference escapes bytes by its locale's isprint, byte by byte, so a
            // UTF-8 name comes out half escaped; halite writes valid UTF-8 as it is
            // (docs/decisions.md). Such lines are compared by their count only.
            _ if !text.is_ascii() || text.contains("\\#") => "(a line naming a non-ASCII file)".to_string(),
            _ => text.to_string(),
        };
        if !lines.contains_key(pid) {
            order.push(pid.to_string());
        }
        lines.entry(pid.to_string()).or_default().push(text);
    }
    order
        .iter()
        .map(|pid| {
            let mut l = lines.remove(pid).unwrap_or_default();
            l.sort();
            l
        })
        // The harness's readiness probe: a connection that said nothing, logged at a
        // moment that depends on its name lookup.
        .filter(|l| l.len() > 1)
        .collect()
}

/// The log once it stops growing: a connection's process may write its last line after
/// the client has exited.
fn settled_log(path: &Path) -> String {
    let mut last = Vec::new();
    for _ in 0..30 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = std::fs::read(path).unwrap_or_default();
        if !now.is_empty() && now == last {
            break;
        }
        last = now;
    }
    String::from_utf8_lossy(&last).into_owned()
}

#[test]
fn the_log_file_says_what_the_references_says() {
    if !rsync_available() {
        eprintln!("rsync is not installed: skipped (tests/install-rsync.sh installs it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let code = tmp.path().join("code");
    make_tree(&code, 12, &[40_000]);
    let push_src = tmp.path().join("push");
    make_tree(&push_src, 5, &[]);
    // The pushed top directory's time differs from the module's, so both itemize it.
    set_mtime(&push_src, 1_600_000_000);
    // Hard links (-H): the linked names' lines end " => the name they were linked to".
    let linked_src = tmp.path().join("linked");
    std::fs::create_dir_all(linked_src.join("d")).unwrap();
    std::fs::write(linked_src.join("a"), b"linked\n").unwrap();
    std::fs::hard_link(linked_src.join("a"), linked_src.join("b")).unwrap();
    std::fs::hard_link(linked_src.join("a"), linked_src.join("d/c")).unwrap();
    let mut logs = Vec::new();
    for (side, server) in [("hal", Server::Halite), ("ref", Server::Reference)] {
        let dir = tmp.path().join(side);
        let backups = dir.join("backups");
        std::fs::create_dir_all(&backups).unwrap();
        std::fs::write(backups.join("stale"), b"old\n").unwrap();
        std::fs::write(dir.join("secrets"), b"backup:s3cret\n").unwrap();
        let d = Daemon::start(server, &config(&code, &backups), &dir);
        let dst = dir.join("dst");
        let dst = dst.to_str().unwrap();
        let src = format!("{}/", push_src.display());
        let linked = format!("{}/", linked_src.display());
        let runs: [(Vec<String>, Option<&str>); 16] = [
            (vec!["-a".into(), d.url("code/"), dst.into()], None),
            (vec!["-a".into(), d.url("code/d1"), format!("{dst}/one")], None),
            // Dry runs: a session each, and no line of a file.
            (vec!["-an".into(), d.url("code/"), format!("{dst}-dry")], None),
            (
                vec!["-an".into(), "--delete".into(), src.clone(), d.url("backups/").replace("//", "//backup@")],
                Some("s3cret"),
            ),
            (
                vec!["-a".into(), "--delete".into(), src.clone(), d.url("backups/").replace("//", "//backup@")],
                Some("s3cret"),
            ),
            // Into a directory made for it: the log names files from the module's top.
            (
                vec!["-a".into(), "--delete".into(), src.clone(), d.url("backups/sub/").replace("//", "//backup@")],
                Some("s3cret"),
            ),
            (vec!["-aH".into(), linked.clone(), d.url("backups/linked/").replace("//", "//backup@")], Some("s3cret")),
            (vec!["-a".into(), src.clone(), d.url("backups/").replace("//", "//backup@")], Some("wrong")),
            // A user the rules allow but the secrets file does not know; one no rule allows.
            (vec!["-a".into(), src.clone(), d.url("backups/").replace("//", "//ghost@")], Some("x")),
            (vec!["-a".into(), src.clone(), d.url("backups/").replace("//", "//intruder@")], Some("x")),
            (vec![d.url("")], None),
            (vec![d.url("nosuch/"), dst.into()], None),
            (vec![d.url("closed/"), dst.into()], None),
            // %C: the transfer's checksum of each file sent, then the list's of each file.
            (vec!["-a".into(), d.url("sums/"), format!("{dst}-sums")], None),
            (vec!["-a".into(), "--checksum".into(), d.url("sums/"), format!("{dst}-checksum")], None),
            // A pull that fails: a path the module does not have.
            (vec!["-a".into(), d.url("code/missing"), format!("{dst}-missing")], None),
        ];
        for (args, password) in &runs {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            rsync(&args, *password);
        }
        drop(d);
        logs.push(settled_log(&dir.join("rsyncd.log")));
    }
    let (hal, reference) = (sessions(&logs[0]), sessions(&logs[1]));
    assert_eq!(hal.len(), 16, "one session per run:\n{}", logs[0]);
    assert!(hal[6].iter().any(|l| l.starts_with("hf+++++++++ recv b => d/c ")), "{:#?}", hal[6]);
    assert_eq!(hal.len(), reference.len(), "sessions:\n{}\n{}", logs[0], logs[1]);
    for (i, (h, r)) in hal.iter().zip(&reference).enumerate() {
        let only_hal: Vec<_> = h.iter().filter(|l| !r.contains(l)).collect();
        let only_ref: Vec<_> = r.iter().filter(|l| !h.contains(l)).collect();
        assert_eq!(
            h, r,
            "session {i}: only halite's: {only_hal:#?}\nonly the reference's: {only_ref:#?}\nhalite's log:\n{}\nreference's log:\n{}",
            logs[0], logs[1]
        );
    }
    // The reference's form, so log readers keep working: "YYYY/MM/DD HH:MM:SS [pid] ".
    let first = logs[0].lines().next().unwrap();
    assert!(first.as_bytes()[4] == b'/' && first.as_bytes()[19] == b' ' && first.as_bytes()[20] == b'[', "{first}");
}

#[test]
fn a_name_with_a_newline_stays_on_one_line_of_the_log() {
    if !rsync_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let code = tmp.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("evil\n2026-01-01 00:00:00 [1] forged"), b"x").unwrap();
    let d = Daemon::start(Server::Halite, &config(&code, &code), tmp.path());
    let dst = tmp.path().join("dst");
    let out = rsync(&["-a", &d.url("code/"), dst.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out));
    drop(d);
    let log = settled_log(&tmp.path().join("rsyncd.log"));
    assert!(log.contains("evil\\#0122026-01-01 00:00:00 [1] forged"), "{log}");
    assert!(!log.lines().any(|l| l.starts_with("2026-01-01")), "{log}");
}

#[test]
fn a_modules_own_log_file_takes_its_connections_lines_after_the_login() {
    if !rsync_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let code = tmp.path().join("code");
    make_tree(&code, 3, &[]);
    let conf = config(&code, &code).replace("[code]\n    path", "[code]\n    log file = @DIR@/code.log\n    path");
    let d = Daemon::start(Server::Halite, &conf, tmp.path());
    let dst = tmp.path().join("dst");
    let out = rsync(&["-a", &d.url("code/"), dst.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out));
    drop(d);
    let global = settled_log(&tmp.path().join("rsyncd.log"));
    let module = settled_log(&tmp.path().join("code.log"));
    assert!(global.contains("rsync allowed access on module code"), "{global}");
    assert!(!global.contains("rsync on code/"), "{global}");
    assert!(module.contains("rsync on code/ from") && module.contains("send localhost"), "{module}");
}

#[test]
fn no_client_text_starts_a_line_and_a_rotated_log_is_followed() {
    if !rsync_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let code = tmp.path().join("code");
    make_tree(&code, 2, &[]);
    let d = Daemon::start(Server::Halite, &config(&code, &code), tmp.path());
    let dst = tmp.path().join("dst");
    let forged = "\n2026-01-01 00:00:00 [1] FORGED";
    // A missing path and an unknown option, each carrying a newline: both are reported
    // to the client and logged.
    rsync(&["-a", &d.url(&format!("code/nosuch{forged}")), dst.to_str().unwrap()], None);
    rsync(&["-a", &format!("-M--bogus{forged}"), &d.url("code/"), dst.to_str().unwrap()], None);
    let log_path = tmp.path().join("rsyncd.log");
    let log = settled_log(&log_path);
    assert!(log.contains("nosuch\\#0122026-01-01"), "{log}");
    assert!(!log.lines().any(|l| l.starts_with("2026-01-01")), "{log}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&log_path).unwrap().permissions().mode() & 0o777, 0o644);
    // logrotate's move: the next connection writes a new file.
    std::fs::rename(&log_path, tmp.path().join("rsyncd.log.1")).unwrap();
    let out = rsync(&["-a", &d.url("code/"), dst.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out));
    let fresh = settled_log(&log_path);
    assert!(fresh.contains("rsync on code/ from"), "{fresh}");
}
