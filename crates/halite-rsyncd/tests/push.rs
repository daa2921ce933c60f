//! Pushes into a writable module (the site's `backups` share) with the stock rsync
//! client, against halite-rsyncd and the reference `rsync --daemon` on the same config:
//! the trees that result, deltas, --delete, authentication, host and connection limits,
//! paths that try to leave the module, and a client killed mid-file.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The site's `backups` share, as the states write it, pointed at `dir`.
fn config(dir: &Path, extra: &str) -> String {
    let privileges = if root() { "use chroot = yes\n    uid = root\n    gid = root\n" } else { "use chroot = no\n" };
    format!(
        "lock file = @DIR@/rsyncd.lock\n\n[backups]\n    comment = Backups every VM pushes to and pulls from\n    path = {}\n    read only = no\n    {privileges}{extra}",
        dir.display()
    )
}

fn skip() -> bool {
    if !rsync_available() {
        eprintln!("rsync is not installed: skipped (tests/install-rsync.sh installs it)");
        return true;
    }
    false
}

/// Two daemons on the same config, each with its own copy of the module's tree.
struct Pair {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    hal: Daemon,
    reference: Daemon,
}

impl Pair {
    fn new(extra: &str, seed: impl Fn(&Path)) -> Pair {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let mut daemons = Vec::new();
        for (side, server) in [("hal", Server::Halite), ("ref", Server::Reference)] {
            let dir = root.join(side);
            let module = dir.join("module");
            std::fs::create_dir_all(&module).unwrap();
            seed(&module);
            // The same times on both sides' seeded entries, whatever second they were
            // made: directories' too, the module's own included, or "./" is listed by
            // the side whose module shares the source's second and not by the other.
            pin_times(&module, 1_600_000_000);
            daemons.push(Daemon::start(server, &config(&module, extra), &dir));
        }
        let reference = daemons.pop().unwrap();
        let hal = daemons.pop().unwrap();
        Pair { _tmp: tmp, root, hal, reference }
    }

    fn module(&self, side: &str) -> std::path::PathBuf {
        self.root.join(side).join("module")
    }

    /// Runs the client against both (`URL` in args is the module URL) and returns
    /// both outputs after checking the modules ended up the same.
    fn both(&self, args: &[&str], password: Option<&str>) -> (std::process::Output, std::process::Output) {
        self.both_compared(args, password, true)
    }

    /// [`Pair::both`], comparing times or not (a directory that loses entries takes
    /// the time of the deletion, which differs between the two runs).
    fn both_compared(
        &self,
        args: &[&str],
        password: Option<&str>,
        with_times: bool,
    ) -> (std::process::Output, std::process::Output) {
        let run = |d: &Daemon| {
            let url = d.url("backups/");
            let args: Vec<&str> = args.iter().map(|a| if *a == "URL" { url.as_str() } else { a }).collect();
            rsync(&args, password)
        };
        let h = run(&self.hal);
        let r = run(&self.reference);
        assert_eq!(
            h.status.code(),
            r.status.code(),
            "{args:?}\nhalite: {}\nreference: {}\n{}",
            text(&h),
            text(&r),
            self.hal.log()
        );
        assert_same(
            &snapshot(&self.module("ref"), with_times),
            &snapshot(&self.module("hal"), with_times),
            &format!("{args:?}: reference vs halite module"),
        );
        (h, r)
    }
}

/// What -v printed, without the timing lines ("sending incremental file list"
/// included: halite-rsyncd takes a push's lists as the reference does).
fn names(o: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.starts_with("sent ") && !l.starts_with("total size"))
        .map(str::to_string)
        .collect()
}

/// [`names`] in order: the directories the daemon's generator reports and the files
/// the client sends interleave as the two sides' timing has it.
fn sorted_names(o: &std::process::Output) -> Vec<String> {
    let mut v = names(o);
    v.sort();
    v
}

#[test]
fn pushes_with_deltas_and_delete_leave_the_same_module_as_the_reference() {
    if skip() {
        return;
    }
    let pair = Pair::new("", |m| {
        std::fs::write(m.join("stale.txt"), b"old\n").unwrap();
        std::fs::create_dir_all(m.join("stale-dir/inner")).unwrap();
        std::fs::write(m.join("stale-dir/inner/x"), b"x").unwrap();
    });
    let src = pair.root.join("src");
    make_tree(&src, 60, &[400_000]);
    let s = format!("{}/", src.display());
    let sorted = |o| {
        let mut v = names(o);
        v.sort();
        v
    };
    let (h, r) = pair.both(&["-av", &s, "URL"], None);
    // The same lines; the directories the daemon's generator reports and the files the
    // client sends interleave as the two sides' timing has it.
    assert_eq!(sorted(&h), sorted(&r));
    // One byte changed in the large file: a delta, not the file.
    let big = src.join("large0.bin");
    let mut data = std::fs::read(&big).unwrap();
    data[200_000] ^= 0xff;
    std::fs::write(&big, &data).unwrap();
    let (h, _) = pair.both(&["-a", "--stats", &s, "URL"], None);
    let stats = String::from_utf8_lossy(&h.stdout);
    let literal: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("Literal data: "))
        .and_then(|v| v.split_whitespace().next())
        .map(|v| v.replace(',', "").parse().unwrap())
        .unwrap();
    assert!(literal < 10_000, "a one-byte change sent {literal} literal bytes\n{stats}");
    // --delete removes what the source no longer has, as the reference does.
    std::fs::remove_file(src.join("exec.sh")).unwrap();
    std::fs::remove_dir_all(src.join("d3")).unwrap();
    let (h, r) = pair.both(&["-av", "--delete", &s, "URL"], None);
    assert_eq!(sorted(&h), sorted(&r), "deletions reported");
    assert!(!pair.module("hal").join("stale-dir").exists());
    // Nothing to do: nothing moves.
    let (h, _) = pair.both(&["-a", "--delete", "--stats", &s, "URL"], None);
    assert!(String::from_utf8_lossy(&h.stdout).contains("Number of regular files transferred: 0"));
    // The client sends one list per directory (incremental recursion) unless told not
    // to, or unless --delete-after needs the whole list first: both ways land the same.
    for (i, how) in ["--no-inc-recursive", "--delete-after"].into_iter().enumerate() {
        std::fs::write(src.join("d1").join(format!("new{i}.txt")), b"new\n").unwrap();
        std::fs::remove_file(src.join("private.txt")).ok();
        let (h, r) = pair.both(&["-av", "--delete", how, &s, "URL"], None);
        assert_eq!(sorted_names(&h), sorted_names(&r), "{how}");
        assert!(names(&h).contains(&"building file list ... done".to_string()), "{how}: {:?}", names(&h));
    }
    let (h, r) = pair.both(&["-av", &s, "URL"], None);
    assert_eq!(sorted_names(&h), sorted_names(&r));
    assert_eq!(names(&h).first().map(String::as_str), Some("sending incremental file list"));
    // And the push comes back whole in a pull.
    let back = pair.root.join("back");
    let out = rsync(&["-a", &pair.hal.url("backups/"), back.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out));
    assert_same(&snapshot(&pair.module("hal"), true), &snapshot(&back, true), "module vs pulled back");
}

#[test]
fn itemized_pushes_say_what_changed_as_the_reference_does() {
    if skip() {
        return;
    }
    let pair = Pair::new("", |_| {});
    let src = pair.root.join("src");
    make_tree(&src, 8, &[]);
    let s = format!("{}/", src.display());
    let sorted = |o: &std::process::Output| {
        let mut v = names(o);
        v.sort();
        v
    };
    pair.both(&["-a", &s, "URL"], None);
    // New data and size; permissions only; a time only; a directory's permissions.
    std::fs::write(src.join("private.txt"), b"longer now\n").unwrap();
    set_mtime(&src.join("private.txt"), 1_700_000_000);
    std::fs::set_permissions(src.join("exec.sh"), std::fs::Permissions::from_mode(0o700)).unwrap();
    set_mtime(&src.join("exec.sh"), 1_600_000_000);
    set_mtime(&src.join("with space.txt"), 1_650_000_000);
    std::fs::set_permissions(src.join("d1"), std::fs::Permissions::from_mode(0o750)).unwrap();
    pair.both(&["-a", &s, "URL"], None);
    for (i, args) in [
        // Each kind of change again, itemized: `>f.st......`, `.f...p.....`, `>f..t......`.
        vec!["-ai"],
        // With --checksum a time-only change is an attribute change: `.f..t......`.
        vec!["-ai", "--checksum"],
        // Without -t a rewritten file's time is the rewrite's: `>f.sT......`.
        vec!["-rlpi"],
        // -ii: the unchanged items too (`--log-format=%i%I` to the daemon).
        vec!["-aii"],
    ]
    .into_iter()
    .enumerate()
    {
        let i = i as i64;
        std::fs::write(src.join("private.txt"), "x".repeat(20 + i as usize)).unwrap();
        set_mtime(&src.join("private.txt"), 1_700_000_100 + i);
        let mode = [0o755, 0o700, 0o750, 0o755][i as usize];
        std::fs::set_permissions(src.join("exec.sh"), std::fs::Permissions::from_mode(mode)).unwrap();
        set_mtime(&src.join("with space.txt"), 1_650_000_100 + i);
        let mut argv = args.clone();
        argv.extend([s.as_str(), "URL"]);
        let (h, r) = pair.both_compared(&argv, None, false);
        assert_eq!(sorted(&h), sorted(&r), "{args:?}");
    }
}

#[test]
fn deletions_keep_what_the_filters_protect_as_with_the_reference() {
    if skip() {
        return;
    }
    let pair = Pair::new("", |m| {
        for (name, body) in [
            // Protected at the top: an exclude, a perishable exclude (perishable only
            // inside a directory being deleted), and a rule of the module's own
            // per-directory merge file.
            ("keep.log", "x"),
            ("junk.tmp", "x"),
            ("precious", "x"),
            (".rsync-filter", "P precious\n"),
            ("stale.txt", "x"),
            // Extraneous directories: one kept alive by an excluded file inside, one by
            // its own merge file's rule, one whose perishable file does not keep it.
            ("old-dir/a.txt", "x"),
            ("old-dir/b.log", "x"),
            ("old-dir/sub/c.txt", "x"),
            ("old-dir/deep/er/k.log", "x"),
            ("old-dir/deep/er/gone", "x"),
            ("old-dir2/.rsync-filter", "- *.keep\n"),
            ("old-dir2/x.keep", "x"),
            ("old-dir2/y", "x"),
            ("old-dir3/only.tmp", "x"),
            // A listed directory whose own merge file protects an extraneous name.
            ("d/stale-in-d", "x"),
            ("d/other", "x"),
            ("d/.rsync-filter", "P stale-in-d\n"),
        ] {
            let path = m.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
    });
    let src = pair.root.join("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("new.txt"), b"new\n").unwrap();
    std::fs::write(src.join("d/f.txt"), b"f\n").unwrap();
    let s = format!("{}/", src.display());
    let (h, r) = pair.both_compared(
        &["-rv", "-F", "--delete", "--exclude=*.log", "--filter=-p *.tmp", "--no-inc-recursive", &s, "URL"],
        None,
        false,
    );
    // The deletions in the reference's order; the names the client sends meanwhile
    // interleave with them as the two sides' timing has it.
    let deletions = |o| -> Vec<String> {
        names(o).into_iter().filter(|l| l.starts_with("deleting ") || l.starts_with("cannot delete")).collect()
    };
    assert_eq!(deletions(&h), deletions(&r), "\nhalite: {}\nreference: {}", text(&h), text(&r));
    let sorted = |o| {
        let mut v = names(o);
        v.sort();
        v
    };
    assert_eq!(sorted(&h), sorted(&r));
    let m = pair.module("hal");
    for kept in [
        "keep.log",
        "junk.tmp",
        "precious",
        "old-dir/b.log",
        "old-dir/deep/er/k.log",
        "old-dir2/x.keep",
        "d/stale-in-d",
    ] {
        assert!(m.join(kept).exists(), "{kept} was deleted");
    }
    for gone in
        ["stale.txt", "old-dir/a.txt", "old-dir/sub", "old-dir/deep/er/gone", "old-dir3", "d/other", "old-dir2/y"]
    {
        assert!(!m.join(gone).exists(), "{gone} was kept");
    }
}

#[test]
fn a_dry_run_says_what_the_push_would_do_and_changes_nothing() {
    if skip() {
        return;
    }
    let pair = Pair::new("", |m| {
        for (name, body) in [
            ("same.txt", "same\n"),
            ("changed.txt", "old\n"),
            ("perms.txt", "perms\n"),
            ("stale.txt", "x"),
            ("stale-dir/inner/x", "x"),
            ("d1/extra", "x"),
            ("d1/kept", "x"),
        ] {
            let path = m.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        std::os::unix::fs::symlink("old-target", m.join("link")).unwrap();
    });
    let src = pair.root.join("src");
    for (name, body) in
        [("same.txt", "same\n"), ("changed.txt", "new and longer\n"), ("perms.txt", "perms\n"), ("d1/kept", "x")]
    {
        let path = src.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, body).unwrap();
        set_mtime(&path, 1_600_000_000);
    }
    std::fs::set_permissions(src.join("perms.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::create_dir_all(src.join("new-dir/sub")).unwrap();
    std::fs::write(src.join("new-dir/sub/f"), b"f\n").unwrap();
    std::os::unix::fs::symlink("new-target", src.join("link")).unwrap();
    std::os::unix::fs::symlink("f", src.join("new-dir/sub/new-link")).unwrap();
    let s = format!("{}/", src.display());
    let sorted = |o: &std::process::Output| {
        let mut v = names(o);
        v.sort();
        v
    };
    let before = snapshot(&pair.module("hal"), true);
    for args in [vec!["-avn", "--delete"], vec!["-ain", "--delete", "--no-inc-recursive"], vec!["-aiin"]] {
        let mut argv = args.clone();
        argv.extend([s.as_str(), "URL"]);
        let (h, r) = pair.both(&argv, None);
        assert_eq!(sorted(&h), sorted(&r), "{args:?}");
        assert_same(&before, &snapshot(&pair.module("hal"), true), &format!("{args:?}: the module after a dry run"));
    }
    // And what the dry run said is what the run does.
    let (dry, _) = pair.both(&["-ain", "--delete", &s, "URL"], None);
    let (run, _) = pair.both_compared(&["-ai", "--delete", &s, "URL"], None, false);
    assert_eq!(sorted(&dry), sorted(&run));
}

#[test]
fn a_dry_run_keeps_what_the_run_would_keep() {
    if skip() {
        return;
    }
    // A directory kept alive by a protected file: the run cannot delete it, and the dry
    // run says so, line for line (the reference's dry run says it would delete the
    // inner directory, which its run does not: docs/decisions.md).
    let pair = Pair::new("", |m| {
        for name in ["old/a", "old/inner/keep.log", "old/inner/gone"] {
            let path = m.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"x").unwrap();
        }
    });
    let src = pair.root.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let s = format!("{}/", src.display());
    let args = ["-rv", "--delete", "--exclude=*.log", &s];
    let run = |dry: bool| {
        let url = pair.hal.url("backups/");
        let mut argv: Vec<&str> = args.to_vec();
        if dry {
            argv.push("-n");
        }
        argv.push(&url);
        let out = rsync(&argv, None);
        assert!(out.status.success(), "{}", text(&out));
        let mut lines = names(&out);
        lines.sort();
        lines
    };
    let before = snapshot(&pair.module("hal"), true);
    let dry = run(true);
    assert_same(&before, &snapshot(&pair.module("hal"), true), "the module after a dry run");
    assert!(dry.contains(&"cannot delete non-empty directory: old/inner".to_string()), "{dry:?}");
    assert_eq!(dry, run(false));
    assert!(pair.module("hal").join("old/inner/keep.log").exists());
}

#[test]
fn update_and_max_delete_act_as_with_the_reference() {
    if skip() {
        return;
    }
    let pair = Pair::new("", |m| {
        for name in ["newer-here.txt", "older-here.txt", "x1", "x2", "x3", "xdir/a", "xdir/b"] {
            let path = m.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"module's copy\n").unwrap();
        }
    });
    for side in ["hal", "ref"] {
        set_mtime(&pair.module(side).join("newer-here.txt"), 1_700_000_000);
    }
    let src = pair.root.join("src");
    std::fs::create_dir_all(&src).unwrap();
    for name in ["newer-here.txt", "older-here.txt"] {
        std::fs::write(src.join(name), b"the client's copy\n").unwrap();
        set_mtime(&src.join(name), 1_650_000_000);
    }
    let s = format!("{}/", src.display());
    let (h, r) = pair.both(&["-avu", &s, "URL"], None);
    assert_eq!(sorted_names(&h), sorted_names(&r));
    assert_eq!(std::fs::read(pair.module("hal").join("newer-here.txt")).unwrap(), b"module's copy\n");
    assert_eq!(std::fs::read(pair.module("hal").join("older-here.txt")).unwrap(), b"the client's copy\n");
    // -vv: nothing more, the module's `max verbosity` being 1 (the default).
    let (h, r) = pair.both(&["-avvu", "--no-inc-recursive", &s, "URL"], None);
    let says = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).contains("is newer");
    assert_eq!(says(&h), says(&r));
    assert!(!says(&h), "{}", text(&h));
    // Five extraneous entries, two deletions allowed: the same two go, and the same
    // warning and exit code.
    let (h, r) = pair.both_compared(&["-av", "--delete", "--max-delete=2", &s, "URL"], None, false);
    let warning = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stderr).lines().find(|l| l.contains("--max-delete")).map(str::to_string)
    };
    assert!(warning(&h).is_some(), "{}", text(&h));
    assert_eq!(warning(&h), warning(&r));
    assert_eq!(sorted_names(&h), sorted_names(&r));
    // --max-size and --min-size leave out what the client's sizes say (the sizes come
    // as plain numbers from the client, which reads "1k" itself).
    std::fs::write(src.join("big.bin"), vec![7u8; 5000]).unwrap();
    std::fs::write(src.join("tiny.txt"), b"t").unwrap();
    let (h, r) = pair.both_compared(&["-avv", "--max-size=1k", "--min-size=2", &s, "URL"], None, false);
    let skipped = |o: &std::process::Output| -> Vec<String> {
        String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.contains("-size")).map(str::to_string).collect()
    };
    assert_eq!(skipped(&h), skipped(&r));
    let m = pair.module("hal");
    assert!(!m.join("big.bin").exists() && !m.join("tiny.txt").exists());
    // --max-delete=0 deletes nothing.
    let (h, r) = pair.both_compared(&["-a", "--delete", "--max-delete=0", &s, "URL"], None, false);
    assert_eq!(warning(&h), warning(&r));
}

#[test]
fn pushes_land_where_the_client_names_as_with_the_reference() {
    if skip() {
        return;
    }
    // The module's rules are anchored at its top, wherever a push goes.
    let pair = Pair::new("    exclude = /private /web5/secret.txt\n", |m| {
        std::fs::create_dir_all(m.join("web1")).unwrap();
        std::fs::write(m.join("web1/stale"), b"x").unwrap();
        std::fs::write(m.join("a-file"), b"x").unwrap();
    });
    let src = pair.root.join("src");
    make_tree(&src, 6, &[]);
    let one = pair.root.join("one.txt");
    std::fs::write(&one, b"one file\n").unwrap();
    set_mtime(&one, 1_600_000_000);
    let s = format!("{}/", src.display());
    let single = one.to_str().unwrap();
    let with_secret = pair.root.join("with-secret");
    std::fs::create_dir_all(&with_secret).unwrap();
    std::fs::write(with_secret.join("secret.txt"), b"no\n").unwrap();
    std::fs::write(with_secret.join("ok.txt"), b"yes\n").unwrap();
    let ws = format!("{}/", with_secret.display());
    // The destination's time differs from the pushed directory's: both report "./".
    for side in ["hal", "ref"] {
        set_mtime(&pair.module(side).join("web1"), 1_500_000_000);
    }
    set_mtime(&src, 1_600_000_000);
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o750)).unwrap();
    let sorted = |o: &std::process::Output| {
        let mut v = names(o);
        v.sort();
        v
    };
    let err = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("").replace("[Receiver] ", "").to_string()
    };
    for (args, dest) in [
        // Into an existing directory, with --delete confined to it.
        (vec!["-av", "--delete", &s], "web1/"),
        // A directory made for the push (-i: the client hears of it).
        (vec!["-ai", &s], "web2/"),
        (vec!["-av", &s], "web3"),
        (vec!["-avn", &s], "web4/"),
        // A single file under the name given; into a directory; onto a file.
        (vec!["-av", single], "renamed.txt"),
        (vec!["-av", single], "web1/"),
        (vec!["-av", single], "a-file"),
        // What cannot be: a missing parent, a list onto a file, a file onto a
        // directory's name with a slash, and a destination the module excludes.
        (vec!["-a", &s], "no/such/dir/"),
        (vec!["-a", &s], "a-file"),
        (vec!["-a", single], "a-file/"),
        (vec!["-a", &s], "private/"),
        (vec!["-a", "--no-inc-recursive", &ws], "web5/"),
        (vec!["-a", "--no-inc-recursive", &ws], "web6/"),
        // --mkpath: the whole path, for a list or a name with a slash; a file's parents.
        (vec!["-av", "--mkpath", &s], "deep/er/list/"),
        (vec!["-av", "--mkpath", &s], "deep/est/list"),
        (vec!["-av", "--mkpath", single], "deep/file/one/renamed.txt"),
        (vec!["-av", "--mkpath", single], "deep/dir/one/"),
        (vec!["-avn", "--mkpath", &s], "dry/er/list/"),
        (vec!["-avn", "--mkpath", single], "dry/file/renamed.txt"),
        (vec!["-a", "--mkpath", &s], "a-file/under/it/"),
    ] {
        let url = |d: &Daemon| format!("{}{dest}", d.url("backups/"));
        let run = |d: &Daemon| {
            let mut argv = args.clone();
            let u = url(d);
            argv.push(&u);
            rsync(&argv, None)
        };
        let (h, r) = (run(&pair.hal), run(&pair.reference));
        let what = format!("{args:?} -> {dest}\nhalite: {}\nreference: {}\n{}", text(&h), text(&r), pair.hal.log());
        assert_eq!(h.status.code(), r.status.code(), "{what}");
        assert_eq!(sorted(&h), sorted(&r), "{what}");
        if !h.status.success() {
            assert_eq!(err(&h), err(&r), "{what}");
        }
        assert_same(&snapshot(&pair.module("ref"), false), &snapshot(&pair.module("hal"), false), &what);
    }
    assert!(!pair.module("hal").join("web1/stale").exists());
    assert!(!pair.module("hal").join("web4").exists(), "a dry run made its destination");
    assert!(!pair.module("hal").join("web5/secret.txt").exists());
    assert!(pair.module("hal").join("web6/secret.txt").exists());
}

#[test]
fn safe_links_leaves_out_the_links_the_reference_leaves_out() {
    if skip() {
        return;
    }
    let pair = Pair::new("", |_| {});
    let src = pair.root.join("src");
    std::fs::create_dir_all(src.join("a/b")).unwrap();
    std::fs::write(src.join("f"), b"f\n").unwrap();
    for (name, target) in [
        ("inside", "f"),
        ("absolute", "/etc/passwd"),
        ("up-and-out", "../f"),
        ("a/up", "../f"),
        ("a/b/up-two", "../../f"),
        ("a/b/out", "../../../f"),
        // A ".." after a name (CVE-2024-12088's form): refused at any depth.
        ("a/b/detour", "x/../../f"),
        // The top itself is inside.
        ("a/dotdot", ".."),
    ] {
        std::os::unix::fs::symlink(target, src.join(name)).unwrap();
    }
    let s = format!("{}/", src.display());
    let sorted = |o: &std::process::Output| {
        let mut v = names(o);
        v.sort();
        v
    };
    let (h, r) = pair.both(&["-av", "--safe-links", &s, "URL"], None);
    assert_eq!(sorted(&h), sorted(&r), "\nhalite: {}\nreference: {}", text(&h), text(&r));
    let m = pair.module("hal");
    for kept in ["inside", "a/up", "a/b/up-two", "a/dotdot"] {
        assert!(m.join(kept).symlink_metadata().is_ok(), "{kept} was left out");
    }
    for gone in ["absolute", "up-and-out", "a/b/out", "a/b/detour"] {
        assert!(m.join(gone).symlink_metadata().is_err(), "{gone} was made");
    }
}

/// A source with two hard-linked sets across directories (a, b, d/c; y, z) and a file
/// alone.
fn linked_source(src: &Path) {
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("a"), b"hello\n").unwrap();
    std::fs::hard_link(src.join("a"), src.join("b")).unwrap();
    std::fs::hard_link(src.join("a"), src.join("d/c")).unwrap();
    std::fs::write(src.join("y"), b"x\n").unwrap();
    std::fs::hard_link(src.join("y"), src.join("z")).unwrap();
    std::fs::write(src.join("alone"), b"alone\n").unwrap();
    for f in ["a", "y", "alone"] {
        set_mtime(&src.join(f), 1_600_000_000);
    }
}

#[test]
fn hard_links_are_pushed_as_the_reference_links_them() {
    if skip() {
        return;
    }
    let pair = Pair::new("", |_| {});
    let src = pair.root.join("src");
    linked_source(&src);
    let s = format!("{}/", src.display());
    let sorted = |o: &std::process::Output| {
        let mut v = names(o);
        v.sort();
        v
    };
    let same_links = |what: &str| {
        let (h, r) = (link_sets(&pair.module("hal")), link_sets(&pair.module("ref")));
        assert_eq!(h, r, "{what}: hard-linked sets, halite vs reference");
        h
    };
    // A dry run first: the same "hf ... => ..." lines, nothing made.
    let (h, r) = pair.both(&["-aHin", &s, "URL"], None);
    assert_eq!(sorted(&h), sorted(&r), "dry run");
    assert!(sorted(&h).iter().any(|l| l.starts_with("hf+++++++++ a => d/c")), "{:?}", sorted(&h));
    assert!(snapshot(&pair.module("hal"), false).is_empty());
    // Nothing here: the last of each set is sent, the others linked to it.
    let (h, r) = pair.both(&["-aHi", &s, "URL"], None);
    assert_eq!(sorted(&h), sorted(&r), "first push");
    let sets = same_links("first push");
    assert!(sets.contains(&vec!["a".to_string(), "b".into(), "d/c".into()]), "{sets:?}");
    // Nothing changed: nothing said at -i, the links shown at -ii.
    let (h, r) = pair.both(&["-aHi", &s, "URL"], None);
    assert!(sorted(&h).is_empty(), "{:?}", sorted(&h));
    assert_eq!(sorted(&h), sorted(&r));
    let (h, r) = pair.both(&["-aHii", &s, "URL"], None);
    assert_eq!(sorted(&h), sorted(&r), "-ii");
    // A member gone and the set's data changed here: the first member is sent again,
    // the others linked to it ("hf.st...... d/c => a").
    for side in ["hal", "ref"] {
        let m = pair.module(side);
        std::fs::remove_file(m.join("b")).unwrap();
        std::fs::write(m.join("d/c"), b"new\n").unwrap();
        set_mtime(&m.join("d/c"), 1_000_000_000);
    }
    let (h, r) = pair.both(&["-aHi", &s, "URL"], None);
    assert_eq!(sorted(&h), sorted(&r), "repair");
    same_links("repair");
    // --ignore-existing leaves the last member here alone: the one before it is sent
    // instead, and the first linked to that (the reference's handle_skipped_hlink).
    for side in ["hal", "ref"] {
        let m = pair.module(side);
        for f in ["a", "b"] {
            std::fs::remove_file(m.join(f)).unwrap();
        }
        std::fs::write(m.join("d/c"), b"kept\n").unwrap();
    }
    let (h, r) = pair.both(&["-aHi", "--ignore-existing", &s, "URL"], None);
    assert_eq!(sorted(&h), sorted(&r), "--ignore-existing");
    let sets = same_links("--ignore-existing");
    assert!(sets.contains(&vec!["a".to_string(), "b".into()]), "{sets:?}");
    // --ignore-existing leaves a member with other data alone even when its set's copy
    // is here, and --existing makes no new name (the reference checks both first).
    for side in ["hal", "ref"] {
        let m = pair.module(side);
        std::fs::remove_file(m.join("b")).unwrap();
        std::fs::write(m.join("b"), b"other data\n").unwrap();
        std::fs::remove_file(m.join("z")).unwrap();
    }
    let (h, r) = pair.both(&["-aHi", "--ignore-existing", &s, "URL"], None);
    assert_eq!(sorted(&h), sorted(&r), "--ignore-existing, copy here");
    assert_eq!(std::fs::read(pair.module("hal").join("b")).unwrap(), b"other data\n");
    same_links("--ignore-existing, copy here");
    for side in ["hal", "ref"] {
        std::fs::remove_file(pair.module(side).join("a")).unwrap();
    }
    let (h, r) = pair.both(&["-aHi", "--existing", &s, "URL"], None);
    assert_eq!(sorted(&h), sorted(&r), "--existing");
    assert!(!pair.module("hal").join("a").exists());
    same_links("--existing");
    // Put right again; then a dry run of the unchanged tree says nothing.
    pair.both(&["-aH", &s, "URL"], None);
    let (h, r) = pair.both(&["-aHin", &s, "URL"], None);
    assert!(sorted(&h).is_empty(), "{:?}", sorted(&h));
    assert_eq!(sorted(&h), sorted(&r));
    // A symlink, and a directory with contents, where members go: replaced by links.
    for side in ["hal", "ref"] {
        let m = pair.module(side);
        std::fs::remove_file(m.join("b")).unwrap();
        std::os::unix::fs::symlink("a", m.join("b")).unwrap();
        std::fs::remove_file(m.join("z")).unwrap();
        std::fs::create_dir_all(m.join("z/sub")).unwrap();
        std::fs::write(m.join("z/sub/x"), b"x").unwrap();
    }
    let (h, r) = pair.both(&["-aHi", "--force", &s, "URL"], None);
    let without_deletions = |o: &std::process::Output| -> Vec<String> {
        sorted(o).into_iter().filter(|l| !l.starts_with("*deleting")).collect()
    };
    assert_eq!(without_deletions(&h), without_deletions(&r), "things in the way");
    same_links("things in the way");
}

#[test]
fn hard_links_with_remove_source_files_remove_every_linked_name() {
    if skip() {
        return;
    }
    let pair = Pair::new("", |_| {});
    let srcs: Vec<std::path::PathBuf> = ["src-hal", "src-ref"].iter().map(|d| pair.root.join(d)).collect();
    for src in &srcs {
        linked_source(src);
        pin_times(src, 1_650_000_000);
    }
    let run = |d: &Daemon, src: &Path| {
        rsync(&["-aH", "--remove-source-files", &format!("{}/", src.display()), &d.url("backups/")], None)
    };
    let (h, r) = (run(&pair.hal, &srcs[0]), run(&pair.reference, &srcs[1]));
    assert_eq!(h.status.code(), r.status.code(), "\nhalite: {}\nreference: {}", text(&h), text(&r));
    assert_same(&snapshot(&pair.module("ref"), true), &snapshot(&pair.module("hal"), true), "the modules");
    assert_eq!(link_sets(&pair.module("hal")), link_sets(&pair.module("ref")));
    assert_same(&snapshot(&srcs[1], false), &snapshot(&srcs[0], false), "the sources after the push");
}

#[test]
fn remove_source_files_removes_what_landed_as_with_the_reference() {
    if skip() {
        return;
    }
    let pair = Pair::new("", |m| {
        // Already here and the same: the client removes its copy too.
        std::fs::write(m.join("same.txt"), b"same\n").unwrap();
    });
    let srcs: Vec<std::path::PathBuf> = ["src-hal", "src-ref"].iter().map(|d| pair.root.join(d)).collect();
    for src in &srcs {
        make_tree(src, 6, &[200_000]);
        std::fs::write(src.join("same.txt"), b"same\n").unwrap();
        pin_times(src, 1_650_000_000);
        set_mtime(&src.join("same.txt"), 1_600_000_000);
    }
    let run = |d: &Daemon, src: &Path| {
        rsync(&["-av", "--remove-source-files", &format!("{}/", src.display()), &d.url("backups/")], None)
    };
    let (h, r) = (run(&pair.hal, &srcs[0]), run(&pair.reference, &srcs[1]));
    assert_eq!(h.status.code(), r.status.code(), "\nhalite: {}\nreference: {}", text(&h), text(&r));
    assert!(h.status.success(), "{}", text(&h));
    assert_same(&snapshot(&pair.module("ref"), true), &snapshot(&pair.module("hal"), true), "the modules");
    // What the client kept: its directories, nothing else (links included).
    assert_same(&snapshot(&srcs[1], false), &snapshot(&srcs[0], false), "the sources after the push");
    assert!(!srcs[0].join("same.txt").exists() && !srcs[0].join("large0.bin").exists());
    assert!(srcs[0].join("d0").is_dir());
}

#[test]
fn max_verbosity_lets_a_vv_client_hear_why_files_are_skipped() {
    if skip() {
        return;
    }
    let pair = Pair::new("    max verbosity = 2\n", |m| std::fs::write(m.join("newer.txt"), b"module's\n").unwrap());
    for side in ["hal", "ref"] {
        set_mtime(&pair.module(side).join("newer.txt"), 1_700_000_000);
    }
    let src = pair.root.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("newer.txt"), b"client's\n").unwrap();
    set_mtime(&src.join("newer.txt"), 1_600_000_000);
    std::fs::write(src.join("big.bin"), vec![7u8; 5000]).unwrap();
    let s = format!("{}/", src.display());
    let (h, r) = pair.both_compared(&["-avvu", "--max-size=1k", &s, "URL"], None, false);
    let why = |o: &std::process::Output| -> Vec<String> {
        let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.contains(" is ") && !l.starts_with("total size"))
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    assert_eq!(why(&h), vec!["big.bin is over max-size".to_string(), "newer.txt is newer".to_string()], "{}", text(&h));
    assert_eq!(why(&h), why(&r));
}

#[test]
fn protocol_30_and_checksum_pushes_match_the_reference() {
    if skip() {
        return;
    }
    let pair = Pair::new("", |_| {});
    let src = pair.root.join("src");
    make_tree(&src, 20, &[100_000]);
    let s = format!("{}/", src.display());
    pair.both(&["-a", "--protocol=30", &s, "URL"], None);
    std::fs::write(src.join("with space.txt"), b"changed, same size?").unwrap();
    pair.both(&["-ac", "--protocol=31", &s, "URL"], None);
    pair.both(&["-a", "--checksum-choice=md5", &s, "URL"], None);
    // Hard links at the oldest protocol halite-rsyncd speaks.
    std::fs::hard_link(src.join("exec.sh"), src.join("linked.sh")).unwrap();
    pair.both(&["-aH", "--protocol=30", &s, "URL"], None);
    assert_eq!(link_sets(&pair.module("hal")), link_sets(&pair.module("ref")));
    assert_eq!(link_sets(&pair.module("hal")).len(), 1);
    // Every compression the client offers, on a push with deltas.
    for (i, z) in ["--zc=zstd", "--zc=lz4", "--zc=zlibx", "--zc=zlib"].iter().enumerate() {
        let big = src.join("large0.bin");
        let mut data = std::fs::read(&big).unwrap();
        data[1000 * (i + 1)] ^= 0x55;
        std::fs::write(&big, &data).unwrap();
        set_mtime(&big, 1_700_000_000 + i as i64);
        pair.both(&["-az", z, &s, "URL"], None);
    }
}

#[test]
fn names_the_module_excludes_are_refused_like_the_reference() {
    if skip() {
        return;
    }
    let pair = Pair::new("exclude = secret/ *.key\n", |_| {});
    let src = pair.root.join("src");
    std::fs::create_dir_all(src.join("secret/deeper")).unwrap();
    std::fs::write(src.join("secret/inner.txt"), b"no\n").unwrap();
    std::fs::write(src.join("secret/deeper/x"), b"no\n").unwrap();
    std::fs::write(src.join("id.key"), b"no\n").unwrap();
    std::fs::write(src.join("ok.txt"), b"yes\n").unwrap();
    let s = format!("{}/", src.display());
    // Without incremental recursion on both sides: with it, the reference leaves an
    // empty 0700 directory where it refused one (its receiver makes the directories of
    // a sub-list before the generator refuses them).
    let (h, r) = pair.both(&["-a", "--no-inc-recursive", &s, "URL"], None);
    assert_eq!(h.status.code(), Some(23), "{}", text(&h));
    let refusals = |o: &std::process::Output| -> Vec<String> {
        let mut lines: Vec<String> = String::from_utf8_lossy(&o.stderr)
            .lines()
            .filter(|l| l.contains("daemon refused") || l.contains("Skipping any contents"))
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(refusals(&h), refusals(&r), "halite: {}\nreference: {}", text(&h), text(&r));
    assert!(pair.module("hal").join("ok.txt").exists());
    // --delete-excluded is the client's: it cannot switch the module's rules off.
    let (h, _) = pair.both(&["-a", "--no-inc-recursive", "--delete", "--delete-excluded", &s, "URL"], None);
    assert_eq!(h.status.code(), Some(23), "{}", text(&h));
    assert!(!pair.module("hal").join("id.key").exists() && !pair.module("hal").join("secret").exists());
}

#[test]
fn logins_hosts_and_read_only_are_refused_like_the_reference() {
    if skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let secrets = tmp.path().join("rsyncd.secrets");
    std::fs::write(&secrets, "backup:s3cret\n").unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&secrets).unwrap().permissions(), 0o600);
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    let extra = format!("auth users = backup\n    secrets file = {}\n", secrets.display());
    let pair = Pair::new(&extra, |_| {});
    let src = pair.root.join("src");
    make_tree(&src, 3, &[]);
    let s = format!("{}/", src.display());
    let user_url = |d: &Daemon| format!("rsync://backup@127.0.0.1:{}/backups/", d.port);
    for (password, expect_ok) in [(Some("wrong"), false), (Some("s3cret"), true)] {
        let h = rsync(&["-a", &s, &user_url(&pair.hal)], password);
        let r = rsync(&["-a", &s, &user_url(&pair.reference)], password);
        assert_eq!(h.status.code(), r.status.code(), "{}\n{}", text(&h), text(&r));
        assert_eq!(h.status.success(), expect_ok, "{}", text(&h));
        assert_eq!(
            String::from_utf8_lossy(&h.stderr).lines().next(),
            String::from_utf8_lossy(&r.stderr).lines().next()
        );
    }
    // A host outside `hosts allow`, and a read-only module.
    let tmp2 = tempfile::tempdir().unwrap();
    let conf = format!(
        "lock file = @DIR@/lock\n[closed]\n    path = {0}\n    hosts allow = 192.0.2.0/24\n    use chroot = no\n[ro]\n    path = {0}\n    use chroot = no\n",
        tmp2.path().display()
    );
    let hd = tmp2.path().join("h");
    let rd = tmp2.path().join("r");
    std::fs::create_dir_all(&hd).unwrap();
    std::fs::create_dir_all(&rd).unwrap();
    let hal = Daemon::start(Server::Halite, &conf, &hd);
    let reference = Daemon::start(Server::Reference, &conf, &rd);
    for module in ["closed/", "ro/"] {
        let h = rsync(&["-a", &s, &hal.url(module)], None);
        let r = rsync(&["-a", &s, &reference.url(module)], None);
        assert_eq!(h.status.code(), r.status.code(), "{module}\n{}\n{}", text(&h), text(&r));
        assert!(!h.status.success());
        assert_eq!(
            String::from_utf8_lossy(&h.stderr).lines().next(),
            String::from_utf8_lossy(&r.stderr).lines().next(),
            "{module}"
        );
    }
}

/// Opens a connection that takes a module's slot and holds it.
fn hold_slot(port: u16, module: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"@RSYNCD: "));
    s.write_all(format!("@RSYNCD: 32.0 sha512 sha256 sha1 md5 md4\n{module}\n").as_bytes()).unwrap();
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"@RSYNCD: OK"), "{}", String::from_utf8_lossy(&buf[..n]));
    s
}

#[test]
fn the_connection_past_max_connections_is_refused_with_the_references_message() {
    if skip() {
        return;
    }
    let pair = Pair::new("max connections = 2\n", |_| {});
    let src = pair.root.join("src");
    make_tree(&src, 2, &[]);
    let s = format!("{}/", src.display());
    for d in [&pair.hal, &pair.reference] {
        let _held: Vec<TcpStream> = (0..2).map(|_| hold_slot(d.port, "backups")).collect();
        let out = rsync(&["-a", &s, &d.url("backups/")], None);
        assert_eq!(out.status.code(), Some(5), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("max connections (2) reached -- try again later"),
            "{}",
            text(&out)
        );
    }
    // Slots come back when the holders go.
    let out = rsync(&["-a", &s, &pair.hal.url("backups/")], None);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn nothing_outside_the_module_is_written_or_read() {
    if skip() {
        return;
    }
    let pair = Pair::new("", |m| {
        // A symlink already in the module pointing out of it (CVE-2024-12087/12088).
        std::os::unix::fs::symlink("/tmp", m.join("escape")).unwrap();
    });
    let outside = pair.root.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let src = pair.root.join("src");
    std::fs::create_dir_all(src.join("escape")).unwrap();
    std::fs::write(src.join("escape/planted"), b"x").unwrap();
    std::fs::write(src.join("ok.txt"), b"ok").unwrap();
    let s = format!("{}/", src.display());
    // A directory where the module has a symlink: replaced, never written through.
    let h = rsync(&["-a", &s, &pair.hal.url("backups/")], None);
    assert!(h.status.success(), "{}", text(&h));
    assert!(!Path::new("/tmp/planted").exists());
    assert!(pair.module("hal").join("escape/planted").is_file());
    // Destination paths that climb: they land inside the module.
    for dest in ["backups/../../", "backups/./../", "backups//"] {
        let url = format!("rsync://127.0.0.1:{}/{dest}", pair.hal.port);
        let h = rsync(&["-a", &s, &url], None);
        let url = format!("rsync://127.0.0.1:{}/{dest}", pair.reference.port);
        let r = rsync(&["-a", &s, &url], None);
        assert_eq!(h.status.code(), r.status.code(), "{dest}\n{}\n{}", text(&h), text(&r));
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none(), "{dest} wrote outside");
    }
}

#[test]
fn a_client_killed_mid_file_leaves_the_old_file_or_the_new_one() {
    if skip() {
        return;
    }
    let pair = Pair::new("", |_| {});
    let src = pair.root.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let old: Vec<u8> = (0..8_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(src.join("big"), &old).unwrap();
    let s = format!("{}/", src.display());
    let out = rsync(&["-a", &s, &pair.hal.url("backups/")], None);
    assert!(out.status.success(), "{}", text(&out));
    let new: Vec<u8> = (0..40_000_000u32).map(|i| (i % 253) as u8 ^ 0x5a).collect();
    std::fs::write(src.join("big"), &new).unwrap();
    let mut child = std::process::Command::new("rsync")
        .args(["-a", "--bwlimit=4000", &s, &pair.hal.url("backups/")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let _ = child.kill();
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(500));
    let now = std::fs::read(pair.module("hal").join("big")).unwrap();
    assert!(now == old || now == new, "a torn file: {} bytes", now.len());
    // And no temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(pair.module("hal"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}
