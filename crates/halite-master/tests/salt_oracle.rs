//! Differential test of the `salt` CLI: the same commands against the same real minions,
//! first with Salt's own `salt` and salt-master 3007.8, then — after halite takes over that
//! master's pki dir and ports, as a site migrates — with halite's `salt` and halite-master.
//! stdout, stderr and exit codes must be identical once jids are masked.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{workspace_bin, Master, Setup};
use halite_testkit::{Minion, MinionSpec, PythonMaster, SaltVersion};

const TIMEOUT: Duration = Duration::from_secs(90);

/// Commands whose output is deterministic: one minion each (returns arrive in any order),
/// or `--static` where the outputter sorts keys.
const CASES: &[&[&str]] = &[
    &["app1", "test.ping"],
    &["app1", "grains.get", "roles"],
    &["db1", "grains.get", "roles", "--out", "json"],
    &["db1", "grains.get", "roles", "--out", "yaml"],
    &["db1", "grains.get", "roles", "--out", "txt"],
    &["db1", "grains.get", "roles", "--out", "raw"],
    &["db1", "grains.get", "roles", "--out", "newline_values_only"],
    &["db1", "grains.get", "roles", "--out", "quiet"],
    &["db1", "grains.get", "roles", "--out", "json", "--out-indent", "2"],
    &["db1", "grains.get", "roles", "--out", "json", "--out-indent", "-1"],
    &["mail", "grains.item", "roles", "id"],
    &["mail", "grains.item", "roles", "id", "--out", "json"],
    &["mail", "grains.item", "roles", "id", "--out", "yaml"],
    &["mail", "grains.item", "roles", "id", "--out", "txt"],
    &["mail", "grains.item", "roles", "id", "--out", "raw"],
    &["app1", "test.echo", "hello world"],
    &["app1", "test.echo", "multi\nline"],
    &["app1", "test.echo", "1.50", "--out", "json"],
    &["app1", "test.kwarg", "a=1", "b=[x, y]", "--out", "json"],
    &["app1", "test.echo,test.ping", "hi", ","],
    &["app1", "test.retcode", "3"],
    &["app1", "test.false"],
    &["app1", "test.outputs", "--out", "json"],
    &["app1", "test.outputs"],
    &["*", "grains.get", "roles", "--static"],
    &["*", "grains.get", "roles", "--static", "--out", "yaml"],
    &["-G", "roles:db", "test.ping", "--static"],
    // txt keeps arrival order, which differs run to run: one minion only.
    &["-L", "app1", "test.ping", "--static", "--out", "txt"],
    &["-C", "G@roles:db or mail", "test.ping", "--static"],
    &["app1", "state.single", "test.succeed_with_changes", "name=foo"],
    &["app1", "state.single", "test.succeed_without_changes", "name=bar"],
    &["app1", "state.single", "test.fail_without_changes", "name=baz"],
    &[
        "app1",
        "state.single",
        "test.configurable_test_state",
        "name=cfg",
        "changes=False",
        "result=None",
        "comment=not run",
    ],
    &["app1", "state.single", "test.succeed_with_changes", "name=foo", "--state-output", "terse"],
    &["app1", "state.single", "test.fail_with_changes", "name=foo", "--state-output", "mixed"],
    &["app1", "state.single", "test.succeed_without_changes", "name=foo", "--state-output", "changes"],
    &["app1", "state.single", "test.succeed_without_changes", "name=foo", "--state-verbose", "False"],
    &["app1", "state.single", "test.succeed_with_changes", "name=foo", "--out", "json"],
    // highstate prints hosts in arrival order: one minion only.
    &["app1", "state.single", "test.succeed_with_changes", "name=foo", "--static"],
    &["nomatch*", "test.ping"],
    &["nomatch*", "test.ping", "--out", "json"],
    &["nomatch*", "test.ping", "--async"],
    &["app1", "test.ping", "-b", "1"],
    &["db1", "grains.get", "roles", "-b", "50%", "--out", "json"],
    &["nomatch*", "test.ping", "-b", "2"],
    &["--preview-target", "-G", "roles:db"],
    &["--preview-target", "-G", "roles:db", "--out", "json"],
];

/// The cases Salt's own `salt` also runs against halite.
const STOCK_CLI_CASES: &[&[&str]] = &[
    &["app1", "test.ping"],
    &["db1", "grains.get", "roles", "--out", "json"],
    &["*", "grains.get", "roles", "--static"],
    &["-G", "roles:db", "test.ping", "--static"],
    &["nomatch*", "test.ping"],
];

fn site() -> Vec<MinionSpec> {
    vec![
        MinionSpec::new("app1", SaltVersion::V3008).with_roles(&["app"]),
        MinionSpec::new("db1", SaltVersion::V3007).with_roles(&["db", "masterdb"]),
        MinionSpec::new("mail", SaltVersion::V3006).with_roles(&["mail"]),
    ]
}

/// jids (20 digits), state start times and durations differ between runs; everything else
/// must not.
fn masked(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = Vec::new();
    for line in text.split('\n') {
        let trimmed = line.trim_start();
        let line = if trimmed.starts_with("Started: ") || trimmed.starts_with("Duration: ") {
            format!("{}<volatile>", &line[..line.len() - trimmed.len() + trimmed.find(": ").unwrap_or(0) + 2])
        } else if trimmed.starts_with("Total run time:") {
            "Total run time: <volatile>".to_owned()
        } else {
            mask_runs(line)
        };
        lines.push(line);
    }
    lines.join("\n")
}

/// Masks 20-digit runs (jids) and the time and duration fields of terse state lines and JSON.
fn mask_runs(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let run = chars[i..].iter().take_while(|c| c.is_ascii_digit() || **c == '.' || **c == ':').count();
        let digits = chars[i..i + run].iter().filter(|c| c.is_ascii_digit()).count();
        if run > 0 && (digits == 20 || chars[i..i + run].contains(&'.') && (digits >= 3 || out.ends_with("Duration: ")))
        {
            out.push_str("<n>");
            i += run;
        } else if run > 0 {
            out.extend(&chars[i..i + run]);
            i += run;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn wait_all_ping(mut run: impl FnMut() -> Output) {
    let started = Instant::now();
    loop {
        let out = run();
        let text = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && ["app1", "db1", "mail"].iter().all(|id| text.contains(&format!("{id}:\n    True"))) {
            return;
        }
        assert!(started.elapsed() < TIMEOUT, "not every minion answers:\n{text}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn salt_cli_output_matches_salt_3007() {
    let python = PythonMaster::start(&["auto_accept: True"]);
    let endpoints = python.endpoints();
    let mut minions: Vec<Minion> = site().into_iter().map(|s| Minion::start(s, &endpoints)).collect();
    for m in &minions {
        m.wait_authenticated(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    }
    wait_all_ping(|| python.cli("salt", &["*", "test.ping"]));
    let expected: Vec<Output> = CASES.iter().map(|args| python.cli("salt", args)).collect();
    // The state cases must really run states (test.* needs no file server), or the
    // comparison of the highstate outputter would compare two error messages.
    for (args, out) in CASES.iter().zip(&expected) {
        if args.contains(&"state.single") && !args.contains(&"json") && !args.contains(&"--static") {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("Summary for app1"), "Salt ran no state for {args:?}:\n{text}");
        }
    }
    // See real_minions.rs: let the first mine update finish before the master goes away.
    for m in &minions {
        m.wait_log_contains("__mine_interval", TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    }
    std::thread::sleep(Duration::from_secs(2));
    // The migration case: halite reads the Python master's config paths, so it also finds
    // its minion data cache (grains) and its `.root_key`.
    let setup = Setup::taking_over(&python);
    let mut python = python;
    python.stop();

    let master = Master::start_with(setup);
    let salt = |args: &[&str]| {
        std::process::Command::new(workspace_bin("salt"))
            .arg("-c")
            .arg(master.config_dir())
            .args(args)
            .output()
            .expect("run halite's salt")
    };
    wait_all_ping(|| salt(&["*", "test.ping"]));
    let mut failures = Vec::new();
    for (args, want) in CASES.iter().zip(&expected) {
        let got = salt(args);
        let (w, g) = (
            (want.status.code(), masked(&want.stdout), masked(&want.stderr)),
            (got.status.code(), masked(&got.stdout), masked(&got.stderr)),
        );
        if w != g {
            failures.push(format!(
                "salt {args:?}\n  salt:   exit {:?}\n{}\n  stderr: {:?}\n  halite: exit {:?}\n{}\n  stderr: {:?}",
                w.0, w.1, w.2, g.0, g.1, g.2
            ));
        }
    }
    // Salt's own CLI, unchanged, against halite: it publishes on the request port and
    // collects the returns from halite's `master_event_pub.ipc`.
    for (args, want) in CASES.iter().zip(&expected).filter(|(args, _)| STOCK_CLI_CASES.contains(args)) {
        let got = python.cli("salt", args);
        if (want.status.code(), masked(&want.stdout)) != (got.status.code(), masked(&got.stdout)) {
            failures.push(format!(
                "Salt's salt {args:?} against halite\n  want: exit {:?}\n{}\n  got:  exit {:?}\n{}\n  stderr: {}",
                want.status.code(),
                masked(&want.stdout),
                got.status.code(),
                masked(&got.stdout),
                String::from_utf8_lossy(&got.stderr)
            ));
        }
    }
    Minion::stop_all(&mut minions);
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from Salt:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}
