//! halite's salt-key against Salt's own (3007.8), on identical copies of one pki dir: same
//! stdout, stderr and exit code, and the same key files and AES-rotation dropfile afterwards.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use halite_testkit::{salt_bin, SaltVersion};

/// A pki dir with keys in every state: ids of the site, plus `Web1` to show the two sort
/// orders Salt uses (case-insensitive listings, code-point order in the key outputter).
fn fixture(root: &Path) {
    let pki = root.join("pki");
    for dir in ["minions", "minions_pre", "minions_rejected", "minions_denied", "minions_autosign"] {
        std::fs::create_dir_all(pki.join(dir)).unwrap();
    }
    std::fs::create_dir_all(root.join("cache")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    std::fs::write(pki.join("master.pem"), rsa.private_key_to_pem().unwrap()).unwrap();
    std::fs::write(pki.join("master.pub"), rsa.public_key_to_pem().unwrap()).unwrap();
    let states = [
        ("minions", &["salt", "db1-masterdb"][..]),
        ("minions_pre", &["db2", "Web1", "app1", "sessions1"][..]),
        ("minions_rejected", &["bots"][..]),
        ("minions_denied", &["mail"][..]),
    ];
    for (state, ids) in states {
        for id in ids {
            let key = openssl::rsa::Rsa::generate(1024).unwrap();
            std::fs::write(pki.join(state).join(id), key.public_key_to_pem().unwrap()).unwrap();
        }
    }
    // A pending key that is not a key: Salt refuses to accept it.
    std::fs::write(pki.join("minions_pre/broken"), "not a key\n").unwrap();
}

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(status.success());
}

fn write_config(root: &Path) {
    let r = root.display();
    let conf = format!(
        "pki_dir: {r}/pki\ncachedir: {r}/cache\nsock_dir: {r}/run\nuser: root\nlog_file: {r}/master.log\nkey_logfile: {r}/key.log\n"
    );
    std::fs::write(root.join("etc/master"), conf).unwrap();
}

struct Outcome {
    stdout: String,
    stderr: String,
    code: Option<i32>,
    files: BTreeMap<String, Vec<u8>>,
}

fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for dir in ["minions", "minions_pre", "minions_rejected", "minions_denied"] {
        for entry in std::fs::read_dir(root.join("pki").join(dir)).unwrap().flatten() {
            files
                .insert(format!("{dir}/{}", entry.file_name().to_string_lossy()), std::fs::read(entry.path()).unwrap());
        }
    }
    if let Ok(dfn) = std::fs::read(root.join("cache/.dfn")) {
        files.insert("cache/.dfn".into(), dfn);
    }
    files
}

fn run(bin: &Path, root: &Path, args: &[&str], stdin: &str) -> Outcome {
    let mut child = Command::new(bin)
        .arg("-c")
        .arg(root.join("etc"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let root_text = root.display().to_string();
    Outcome {
        stdout: String::from_utf8_lossy(&out.stdout).replace(&root_text, "ROOT"),
        stderr: String::from_utf8_lossy(&out.stderr).replace(&root_text, "ROOT"),
        code: out.status.code(),
        files: snapshot(root),
    }
}

fn compare(base: &Path, work: &Path, case: usize, args: &[&str], stdin: &str) -> Vec<String> {
    let mut roots = Vec::new();
    for who in ["salt", "halite"] {
        let root = work.join(format!("{case}-{who}"));
        copy_tree(base, &root);
        write_config(&root);
        roots.push(root);
    }
    let salt = run(&salt_bin(SaltVersion::V3007, "salt-key"), &roots[0], args, stdin);
    let halite = run(Path::new(env!("CARGO_BIN_EXE_salt-key")), &roots[1], args, stdin);
    let mut diffs = Vec::new();
    let label = format!("salt-key {args:?} (stdin {stdin:?})");
    if salt.stdout != halite.stdout {
        diffs.push(format!("{label}: stdout differs\n--- salt\n{}--- halite\n{}", salt.stdout, halite.stdout));
    }
    // Salt's usage errors also print optparse's full usage text; compare the error line.
    let last = |s: &str| s.lines().last().unwrap_or("").to_owned();
    if last(&salt.stderr) != last(&halite.stderr) {
        diffs.push(format!("{label}: stderr differs\n--- salt\n{}--- halite\n{}", salt.stderr, halite.stderr));
    }
    if salt.code != halite.code {
        diffs.push(format!("{label}: exit code {:?} vs {:?}", salt.code, halite.code));
    }
    if salt.files != halite.files {
        let names = |f: &BTreeMap<String, Vec<u8>>| f.keys().cloned().collect::<Vec<_>>();
        diffs.push(format!(
            "{label}: files differ\n--- salt {:?}\n--- halite {:?}",
            names(&salt.files),
            names(&halite.files)
        ));
    }
    diffs
}

#[test]
fn salt_key_matches_salt_3007() {
    let work = tempfile::tempdir().unwrap();
    let base: PathBuf = work.path().join("base");
    fixture(&base);
    let cases: &[(&[&str], &str)] = &[
        (&[], ""),
        (&["-L"], ""),
        (&["-L", "--out", "json"], ""),
        (&["-L", "--out", "yaml"], ""),
        (&["-L", "--out", "txt"], ""),
        (&["-L", "--out", "raw"], ""),
        (&["-L", "--out", "nested"], ""),
        (&["-L", "--out", "json", "--out-indent", "2"], ""),
        (&["-l", "un"], ""),
        (&["-l", "acc", "--out", "json"], ""),
        (&["-l", "rejected"], ""),
        (&["-l", "den", "--out", "yaml"], ""),
        (&["-l", "all"], ""),
        (&["-l", "bogus"], ""),
        (&["-a", "db2", "-y"], ""),
        (&["-a", "nomatch*", "-y"], ""),
        (&["-a", "db*,app1"], "\n"),
        (&["-a", "db2"], "n\n"),
        (&["-a", "broken", "-y"], ""),
        (&["-A", "-y"], ""),
        (&["-a", "bots", "--include-rejected", "-y"], ""),
        (&["-a", "mail", "--include-denied", "-y"], ""),
        (&["-r", "app1", "-y"], ""),
        (&["-r", "*", "--include-accepted", "-y"], ""),
        (&["-r", "nomatch", "--include-accepted", "--include-denied", "-y"], ""),
        (&["-R", "-y", "--out", "json"], ""),
        (&["-d", "mail", "-y"], ""),
        (&["-d", "sessions1"], "y\n"),
        (&["-D"], "\n"),
        (&["-D", "-y"], ""),
        (&["-d", "nomatch", "-y"], ""),
        (&["-p", "db2"], ""),
        (&["-p", "db*", "--out", "yaml"], ""),
        (&["-P", "--out", "json"], ""),
        (&["-f", "db2"], ""),
        (&["-f", "master*"], ""),
        (&["-F"], ""),
        (&["-F", "--out", "json"], ""),
    ];
    // Two workers: most of the time is the Python tool starting up.
    let indexed: Vec<(usize, &(&[&str], &str))> = cases.iter().enumerate().collect();
    let diffs: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = indexed
            .chunks(cases.len().div_ceil(2))
            .map(|chunk| {
                let base = &base;
                let work = work.path();
                s.spawn(move || {
                    chunk.iter().flat_map(|(i, (args, stdin))| compare(base, work, *i, args, stdin)).collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("a diff worker")).collect()
    });
    assert!(diffs.is_empty(), "{} difference(s):\n\n{}", diffs.len(), diffs.join("\n\n"));
}
