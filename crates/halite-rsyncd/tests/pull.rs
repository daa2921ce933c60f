//! Pulls from halite-rsyncd with the stock rsync client, and the same pulls from the
//! reference `rsync --daemon` on the same config and tree: the trees that arrive, the
//! exit codes and what the client prints must be the same.

mod common;

use common::*;
use std::path::Path;

/// The site's `code` share, as the states write it, pointed at `tree`.
fn config(tree: &Path, extra: &str) -> String {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let privileges = if root { "use chroot = yes\n    uid = root\n    gid = root\n" } else { "use chroot = no\n" };
    format!(
        "lock file = @DIR@/rsyncd.lock\npid file = @DIR@/rsyncd.pid\n\n[code]\n    comment = Mirrored sources for deployments\n    path = {}\n    read only = yes\n    {privileges}{extra}",
        tree.display()
    )
}

fn skip() -> bool {
    if !rsync_available() {
        eprintln!("rsync is not installed: skipped (tests/install-rsync.sh installs it)");
        return true;
    }
    false
}

#[test]
fn a_pull_brings_the_tree_with_its_modes_times_and_links() {
    if skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    make_tree(&tree, 300, &[200_000, 1_500_000]);
    let d = Daemon::start(Server::Halite, &config(&tree, ""), tmp.path());
    let dst = tmp.path().join("dst");
    let out = rsync(&["-a", &d.url("code/"), dst.to_str().unwrap()], None);
    assert!(out.status.success(), "{}\n{}", text(&out), d.log());
    assert_same(&snapshot(&tree, true), &snapshot(&dst, true), "source vs pulled");
    // Nothing changed: the second pull moves no file data.
    let out = rsync(&["-a", "--stats", &d.url("code/"), dst.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out));
    let stats = String::from_utf8_lossy(&out.stdout);
    assert!(stats.contains("Number of regular files transferred: 0"), "{stats}");
}

#[test]
fn the_same_pulls_from_the_reference_give_the_same_trees_and_output() {
    if skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    make_tree(&tree, 40, &[70_000]);
    let conf = config(&tree, "");
    let cases: &[&[&str]] = &[
        &["-a"],
        &["-av"],
        &["-r"],
        &["-rl"],
        &["-a", "--protocol=30"],
        &["-a", "--protocol=31"],
        &["-ac"],
        &["-aH"],
        &["-a", "--checksum-choice=md5"],
        &["-a", "--checksum-choice=xxh64"],
        &["-a", "--exclude=*.bin", "--exclude=d1/"],
        &["-az"],
        &["-az", "--zc=lz4"],
        &["-az", "--zc=zlibx"],
        &["-az", "--zc=zlib"],
        &["-az", "--compress-level=9", "--protocol=30"],
        &["-a", "-F"],
        // A dry run: the client's list and lines, nothing written; --update is the
        // client's own business on a pull, and accepted.
        &["-avn"],
        &["-ain", "--delete", "code/d3/"],
        &["-avu"],
        &["-av", "--safe-links"],
        // Refused: the module is read-only.
        &["-a", "--remove-source-files"],
        // Other transfer roots (incremental recursion starts from what is named).
        &["-av", "code/d1"],
        &["-av", "code/d1/"],
        &["-av", "code/d0/sub0", "code/d2"],
        &["-rv", "--delete", "code/d3/"],
        // Two roots holding directories of the same names (sub0..sub2).
        &["-av", "code/d0/", "code/d1/"],
    ];
    pulls_match_the_reference(tmp.path(), &conf, cases);
}

#[test]
fn per_directory_merge_files_filter_pulls_as_with_the_reference() {
    if skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    let files: &[(&str, &str)] = &[
        (".rsync-filter", "- *.log\n- /top-only\n"),
        ("top-only", "x"),
        ("keep.txt", "x"),
        ("a.log", "x"),
        ("top.tmp", "named after d1, whose rules exclude *.tmp: sent"),
        // A deeper file's rules come before the inherited ones.
        ("d1/.rsync-filter", "+ keep.log\n- *.tmp\n"),
        ("d1/keep.log", "x"),
        ("d1/x.log", "x"),
        ("d1/y.tmp", "x"),
        ("d1/top-only", "anchored at the top: stays"),
        ("d1/sub/z.tmp", "x"),
        ("d1/sub/w.log", "x"),
        ("d1/sub/keep.log", "x"),
        // A merge file without inheritance (dir-merge,n-): d2's rules stop at d2.
        ("d2/.excl", "*.dat\n"),
        ("d2/a.dat", "x"),
        ("d2/sub/b.dat", "x"),
        // A merge file the module hides is not read: nothing it names is excluded.
        ("d3/secret-rules", "- keep.txt\n- *\n"),
        ("d3/keep.txt", "x"),
        ("d3/deep/er/.rsync-filter", "- *\n"),
        ("d3/deep/er/gone", "x"),
        ("d3/deep/kept", "x"),
    ];
    for (name, body) in files {
        let path = tree.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, body).unwrap();
    }
    let conf = config(&tree, "exclude = secret-rules\n");
    let cases: &[&[&str]] = &[
        &["-a", "-F"],
        // A dry run: the client's list and lines, nothing written; --update is the
        // client's own business on a pull, and accepted.
        &["-avn"],
        &["-ain", "--delete", "code/d3/"],
        &["-avu"],
        &["-av", "--safe-links"],
        // Refused: the module is read-only.
        &["-a", "--remove-source-files"],
        &["-a", "-FF"],
        &["-a", "-F", "--no-inc-recursive"],
        &["-a", "-F", "--protocol=30"],
        &["-a", "--filter=dir-merge,n- .excl"],
        &["-a", "--filter=dir-merge secret-rules"],
        &["-a", "-F", "--filter=dir-merge,n- .excl", "--delete"],
        &["-av", "-F", "code/d1"],
        &["-av", "-F", "code/d3/"],
        // Each named path is judged without the rules of the one walked before it.
        &["-rv", "-F", "--no-inc-recursive", "code/d1", "code/top.tmp"],
        &["-rv", "-F", "code/d1", "code/top.tmp"],
    ];
    pulls_match_the_reference(tmp.path(), &conf, cases);
}

/// Runs each case (client options, and module paths starting "code/"; the module's top
/// when none) against halite-rsyncd and the reference on `conf`: exit codes, trees and
/// the names the client prints must be the same.
fn pulls_match_the_reference(work: &Path, conf: &str, cases: &[&[&str]]) {
    let hal_dir = work.join("hal");
    let ref_dir = work.join("ref");
    std::fs::create_dir_all(&hal_dir).unwrap();
    std::fs::create_dir_all(&ref_dir).unwrap();
    let hal = Daemon::start(Server::Halite, conf, &hal_dir);
    let reference = Daemon::start(Server::Reference, conf, &ref_dir);
    for (i, case) in cases.iter().enumerate() {
        let run = |d: &Daemon, side: &str| {
            let dst = work.join(format!("{side}-{i}"));
            let (paths, options): (Vec<&str>, Vec<&str>) = case.iter().partition(|a| a.starts_with("code/"));
            let mut args: Vec<String> = options.iter().map(|a| a.to_string()).collect();
            if paths.is_empty() {
                args.push(d.url("code/"));
            }
            args.extend(paths.iter().map(|p| d.url(p)));
            args.push(dst.to_str().unwrap().to_string());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = rsync(&args, None);
            (out, snapshot(&dst, case.contains(&"-a")))
        };
        let (h_out, h_tree) = run(&hal, "hal");
        let (r_out, r_tree) = run(&reference, "ref");
        assert_eq!(
            h_out.status.code(),
            r_out.status.code(),
            "{case:?}: exit codes\nhalite: {}\nreference: {}\n{}",
            text(&h_out),
            text(&r_out),
            hal.log()
        );
        assert_same(&h_tree, &r_tree, &format!("{case:?}: halite vs reference"));
        // -v lists the same names (the statistics lines differ in timing only). A pull of
        // several roots gets the whole list first (a directory name two roots share
        // would have to be one list), which the client announces differently; the names
        // that follow are the same.
        let whole_list = case.iter().filter(|a| a.starts_with("code/")).count() > 1;
        let names = |o: &std::process::Output| -> Vec<String> {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| !l.starts_with("sent ") && !l.starts_with("total size"))
                .map(|l| match whole_list {
                    true => l.replace("receiving incremental file list", "receiving file list ... done"),
                    false => l.to_string(),
                })
                .map(|l| l.replace(&format!("/hal-{i}"), "/DST").replace(&format!("/ref-{i}"), "/DST"))
                .collect()
        };
        assert_eq!(names(&h_out), names(&r_out), "{case:?}: client output");
    }
}

#[test]
fn the_module_listing_is_the_references() {
    if skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    make_tree(&tree, 1, &[]);
    let conf = format!(
        "{}\n[hidden]\n    path = {}\n    list = no\n[backups]\n    comment = Backups\n    path = {}\n    read only = no\n",
        config(&tree, ""),
        tree.display(),
        tree.display()
    );
    let hal_dir = tmp.path().join("hal");
    let ref_dir = tmp.path().join("ref");
    std::fs::create_dir_all(&hal_dir).unwrap();
    std::fs::create_dir_all(&ref_dir).unwrap();
    let hal = Daemon::start(Server::Halite, &conf, &hal_dir);
    let reference = Daemon::start(Server::Reference, &conf, &ref_dir);
    let h = rsync(&[&format!("rsync://127.0.0.1:{}/", hal.port)], None);
    let r = rsync(&[&format!("rsync://127.0.0.1:{}/", reference.port)], None);
    assert!(h.status.success(), "{}", text(&h));
    assert_eq!(h.stdout, r.stdout, "{}\n{}", text(&h), text(&r));
    assert!(String::from_utf8_lossy(&h.stdout).contains("code"));
    assert!(!String::from_utf8_lossy(&h.stdout).contains("hidden"));
}

#[test]
fn errors_end_with_the_references_exit_codes() {
    if skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    make_tree(&tree, 3, &[]);
    let conf = config(&tree, "refuse options = checksum delete\n");
    let hal_dir = tmp.path().join("hal");
    let ref_dir = tmp.path().join("ref");
    std::fs::create_dir_all(&hal_dir).unwrap();
    std::fs::create_dir_all(&ref_dir).unwrap();
    let hal = Daemon::start(Server::Halite, &conf, &hal_dir);
    let reference = Daemon::start(Server::Reference, &conf, &ref_dir);
    let dst = tmp.path().join("dst");
    let dst = dst.to_str().unwrap();
    let cases: Vec<Vec<String>> = vec![
        vec!["-a".into(), "MOD/nonexistent".into(), dst.into()],
        vec!["-a".into(), "nomodule/".into(), dst.into()],
        vec!["-ac".into(), "MOD/".into(), dst.into()],
        vec!["-a".into(), "--delete".into(), "MOD/".into(), dst.into()],
        vec!["-a".into(), "MOD/../../etc/".into(), dst.into()],
        vec!["-a".into(), tree.join("d0").to_str().unwrap().into(), "MOD/".into()],
        // Refused with "delete" (this module refuses it), and from a read-only module.
        vec!["-a".into(), "--remove-source-files".into(), "MOD/".into(), dst.into()],
    ];
    for case in &cases {
        let run = |d: &Daemon| {
            let args: Vec<String> = case
                .iter()
                .map(|a| {
                    if let Some(rest) = a.strip_prefix("MOD/") {
                        d.url(&format!("code/{rest}"))
                    } else if a == "nomodule/" {
                        d.url("nomodule/")
                    } else {
                        a.clone()
                    }
                })
                .collect();
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            rsync(&refs, None)
        };
        let h = run(&hal);
        let r = run(&reference);
        let r_err = String::from_utf8_lossy(&r.stderr);
        if r_err.contains("refuse") && r.status.code() == Some(10) {
            // The reference exits without reading the rest of the client's request, so
            // its error reaches the client as a connection reset (code 10);
            // halite-rsyncd ends cleanly with the code the error means (4), and both
            // show the same message (docs/decisions.md).
            assert_eq!(h.status.code(), Some(4), "{}", text(&h));
            let first = |e: &str| e.lines().next().unwrap_or("").to_string();
            assert_eq!(first(&String::from_utf8_lossy(&h.stderr)), first(&r_err));
            continue;
        }
        assert_eq!(
            h.status.code(),
            r.status.code(),
            "{case:?}\nhalite: {}\nreference: {}\n{}",
            text(&h),
            text(&r),
            hal.log()
        );
    }
}

#[test]
fn a_file_deleted_after_the_listing_is_a_vanished_warning_and_exit_24_as_with_the_reference() {
    if skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    // The first file takes two seconds: the daemon honours the client's --bwlimit, as
    // the reference does (it is sent to the server, which throttles what it writes), so
    // the daemon is still sending it well after the client has the list. A daemon that
    // ignored --bwlimit would finish first, and the test says so.
    let big: Vec<u8> = (0..12u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let conf = config(&tree, "");
    for server in [Server::Halite, Server::Reference] {
        std::fs::write(tree.join("a-big"), &big).unwrap();
        std::fs::write(tree.join("z-gone"), b"listed, then deleted\n").unwrap();
        let run_dir = tmp.path().join(format!("{server:?}"));
        std::fs::create_dir_all(&run_dir).unwrap();
        let d = Daemon::start(server, &conf, &run_dir);
        let dst = run_dir.join("dst");
        let mut client = std::process::Command::new("rsync")
            .args(["-a", "--bwlimit=6000", &d.url("code/"), dst.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The big file's temporary copy shows the list has arrived.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !std::fs::read_dir(&dst)
            .map(|rd| rd.flatten().any(|e| e.file_name().to_string_lossy().starts_with(".a-big.")))
            .unwrap_or(false)
        {
            if let Ok(Some(_)) = client.try_wait() {
                let out = client.wait_with_output().unwrap();
                panic!("{server:?}: the client ended before the big file: {}\n{}", text(&out), d.log());
            }
            assert!(std::time::Instant::now() < deadline, "{server:?}: the transfer did not start");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::fs::remove_file(tree.join("z-gone")).unwrap();
        let out = client.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(24), "{server:?}: {}\n{}", text(&out), d.log());
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Chrooted (as root), both name it from the chroot's top: "/z-gone".
        // SAFETY: geteuid has no preconditions.
        let chrooted = unsafe { libc::geteuid() } == 0;
        let named = format!("file has vanished: \"{}z-gone\" (in code)", if chrooted { "/" } else { "" });
        assert!(stderr.contains(&named), "{server:?}: {}", text(&out));
        assert_eq!(std::fs::read(dst.join("a-big")).unwrap(), big, "{server:?}");
        assert!(!dst.join("z-gone").exists(), "{server:?}");
    }
}

#[test]
fn a_tree_of_thousands_of_directories_arrives_whole_through_incremental_lists() {
    if skip() {
        return;
    }
    // More entries than the lookahead keeps in flight (so lists are sent while files
    // move and dropped as the client finishes them), wide and deep.
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    for i in 0..1500 {
        let dir = tree.join(format!("w{}/x{}", i % 40, i));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a"), format!("{i}\n")).unwrap();
        std::fs::write(dir.join("b"), b"").unwrap();
    }
    let mut deep = tree.join("deep");
    for level in 0..60 {
        deep = deep.join(format!("l{level}"));
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("bottom"), b"found\n").unwrap();
    std::fs::create_dir_all(tree.join("zz-empty")).unwrap();
    let d = Daemon::start(Server::Halite, &config(&tree, ""), tmp.path());
    let dst = tmp.path().join("dst");
    let out = rsync(&["-a", "--stats", &d.url("code/"), dst.to_str().unwrap()], None);
    assert!(out.status.success(), "{}\n{}", text(&out), d.log());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Number of files: 4,"), "{}", text(&out));
    assert_same(&snapshot(&tree, true), &snapshot(&dst, true), "source vs pulled");
    // And again with a change deep down: only it moves.
    std::fs::write(deep.join("bottom"), b"changed\n").unwrap();
    let out = rsync(&["-a", "--stats", &d.url("code/"), dst.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Number of regular files transferred: 1"), "{}", text(&out));
    assert_same(&snapshot(&tree, true), &snapshot(&dst, true), "source vs pulled again");
}

#[test]
fn a_file_swapped_for_a_symlink_during_pulls_never_serves_what_the_link_points_at() {
    // CVE-2024-12747: a file replaced by a symlink between the daemon's check and its
    // open was followed. Here a thread swaps the served file and a symlink to a file
    // outside the module, as fast as it can, while clients pull.
    if skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let outside = tmp.path().join("secret");
    std::fs::write(&outside, b"SECRET\n").unwrap();
    for i in 0..20 {
        std::fs::write(tree.join(format!("f{i}")), b"inside\n").unwrap();
    }
    let d = Daemon::start(Server::Halite, &config(&tree, ""), tmp.path());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (tree, outside, stop) = (tree.clone(), outside.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for i in 0..20 {
                    let name = tree.join(format!("f{i}"));
                    let spare = tree.join(format!(".spare{i}"));
                    if swaps.is_multiple_of(2) {
                        let _ = std::os::unix::fs::symlink(&outside, &spare);
                    } else {
                        let _ = std::fs::write(&spare, b"inside\n");
                    }
                    let _ = std::fs::rename(&spare, &name);
                }
                swaps += 1;
            }
            swaps
        })
    };
    let mut served = 0;
    for round in 0..20 {
        let dst = tmp.path().join(format!("dst{round}"));
        // Plain -r: a symlink met at listing time is skipped, a file is copied.
        rsync(&["-r", "--exclude=.spare*", &d.url("code/"), dst.to_str().unwrap()], None);
        for entry in std::fs::read_dir(&dst).into_iter().flatten().flatten() {
            let data = std::fs::read(entry.path()).unwrap_or_default();
            assert!(!data.starts_with(b"SECRET"), "{} carried the outside file", entry.path().display());
            served += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(swaps > 10 && served > 0, "the race ran: {swaps} swaps, {served} files served");
}

/// Hard links across directories, so that with incremental recursion a set's members
/// arrive in different lists (the first in an earlier list than the others), and within
/// one directory; pulled with -H from both daemons: the same trees, the same sets of
/// linked names, the same client output.
#[test]
fn hard_links_are_pulled_as_from_the_reference() {
    if skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    for dir in ["a/deep", "b", "c/sub"] {
        std::fs::create_dir_all(tree.join(dir)).unwrap();
    }
    std::fs::write(tree.join("top.txt"), b"top\n").unwrap();
    std::fs::hard_link(tree.join("top.txt"), tree.join("a/top-link")).unwrap();
    std::fs::hard_link(tree.join("top.txt"), tree.join("c/sub/top-link")).unwrap();
    std::fs::write(tree.join("a/deep/x"), b"x\n").unwrap();
    std::fs::hard_link(tree.join("a/deep/x"), tree.join("b/x-link")).unwrap();
    std::fs::hard_link(tree.join("a/deep/x"), tree.join("a/deep/x2")).unwrap();
    std::fs::write(tree.join("b/y"), b"y\n").unwrap();
    std::fs::hard_link(tree.join("b/y"), tree.join("b/y2")).unwrap();
    std::fs::write(tree.join("c/alone"), b"alone\n").unwrap();
    pin_times(&tree, 1_600_000_000);
    let conf = config(&tree, "");
    let work = tmp.path().join("work");
    let cases: &[&[&str]] = &[&["-aH"], &["-aHv"], &["-aH", "--no-inc-recursive"], &["-aH", "--protocol=30"]];
    pulls_match_the_reference(&work, &conf, cases);
    for (i, _) in cases.iter().enumerate() {
        let (h, r) = (link_sets(&work.join(format!("hal-{i}"))), link_sets(&work.join(format!("ref-{i}"))));
        assert_eq!(h, r, "case {i}: hard-linked sets, halite vs reference");
        assert_eq!(h.len(), 3, "case {i}: {h:?}");
    }
}

/// One byte changed in the middle of a 64 MiB file: the second pull sends a delta of a
/// few KiB, the same literal and matched bytes as the reference's for the same change
/// (the client's generator picks the blocks, so the two senders must find the same).
#[test]
fn one_byte_changed_in_a_large_file_pulls_as_the_references_delta() {
    if skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut data: Vec<u8> = (0..64 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    std::fs::write(tree.join("big.bin"), &data).unwrap();
    // Explicit times: the change keeps the size, so only the time tells the client's
    // quick check that the file changed, and both writes may fall in one second.
    set_mtime(&tree.join("big.bin"), 1_600_000_000);
    let conf = config(&tree, "");
    let (hal_dir, ref_dir) = (tmp.path().join("hal"), tmp.path().join("ref"));
    std::fs::create_dir_all(&hal_dir).unwrap();
    std::fs::create_dir_all(&ref_dir).unwrap();
    let daemons = [Daemon::start(Server::Halite, &conf, &hal_dir), Daemon::start(Server::Reference, &conf, &ref_dir)];
    let pull = |d: &Daemon, dst: &Path| {
        let out = rsync(&["-a", "--stats", &d.url("code/"), dst.to_str().unwrap()], None);
        assert!(out.status.success(), "{}\n{}", text(&out), d.log());
        let stats = String::from_utf8_lossy(&out.stdout).into_owned();
        let field = |name: &str| -> u64 {
            let line = stats.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_else(|| panic!("{name}: {stats}"));
            line.split_whitespace().next().unwrap().replace(',', "").parse().unwrap()
        };
        (field("Literal data: "), field("Matched data: "))
    };
    let dsts = [tmp.path().join("dst-hal"), tmp.path().join("dst-ref")];
    for (d, dst) in daemons.iter().zip(&dsts) {
        assert_eq!(pull(d, dst), (64 << 20, 0), "the first pull sends the file whole");
    }
    data[(32 << 20) + 12_345] ^= 0x5a;
    std::fs::write(tree.join("big.bin"), &data).unwrap();
    set_mtime(&tree.join("big.bin"), 1_600_000_100);
    let deltas: Vec<(u64, u64)> = daemons.iter().zip(&dsts).map(|(d, dst)| pull(d, dst)).collect();
    let (literal, matched) = deltas[0];
    assert!(literal > 0 && literal < 64 * 1024, "a one-byte change sent {literal} literal bytes");
    assert_eq!(literal + matched, 64 << 20);
    assert_eq!(deltas[0], deltas[1], "literal and matched bytes, halite vs reference");
    for dst in &dsts {
        assert_same(&snapshot(&tree, true), &snapshot(dst, true), "source vs pulled");
    }
}
