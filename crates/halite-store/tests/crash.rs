//! A store killed (SIGKILL) while it writes: opened again, it holds every write that was
//! reported durable before the kill, and says whether redb had to repair the whole file.
//!
//! The writer is this test binary run again as a child process (the test `writer`, which does
//! nothing unless `HALITE_STORE_CRASH_DIR` is set). It stores returns from several threads
//! through the group commit, as the master's workers do, and prints each one once
//! `put_return` has said it is durable, which is when the master acknowledges a return to its
//! minion. The parent kills it once enough are printed, with more in flight.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use halite_proto::payload::{map, Value};
use halite_store::jobs::Job;
use halite_store::{Options, Store};

const DIR: &str = "HALITE_STORE_CRASH_DIR";
const QUICK_REPAIR: &str = "HALITE_STORE_CRASH_QUICK_REPAIR";
const WRITERS: usize = 6;
/// Returns printed as durable before the parent kills the writer.
const BEFORE_THE_KILL: usize = 300;

fn jid(round: u64) -> String {
    format!("20261207{round:012}")
}

#[test]
fn writer() {
    let Some(dir) = std::env::var_os(DIR) else { return };
    let options = Options { quick_repair: std::env::var(QUICK_REPAIR).as_deref() == Ok("1"), ..Options::default() };
    let store = Store::open_with(&Path::new(&dir).join("halite.redb"), options).expect("store");
    let ret = map([("fun", Value::from("state.apply")), ("return", Value::from("x".repeat(2000)))]);
    // The parent kills this long before; the limit only keeps a lost child from running on.
    let until = Instant::now() + Duration::from_secs(120);
    let mut round = 0;
    while Instant::now() < until {
        let jid = jid(round);
        let minions: Vec<String> = (0..WRITERS).map(|w| format!("minion{w}")).collect();
        let job =
            Job { jid: jid.clone(), load: map([("fun", Value::from("state.apply"))]), minions, started_micros: 0 };
        store.put_job(&job).expect("put_job");
        std::thread::scope(|s| {
            for w in 0..WRITERS {
                let (store, jid, ret) = (&store, &jid, &ret);
                s.spawn(move || {
                    let minion = format!("minion{w}");
                    store.put_return(jid, &minion, ret, 0).expect("put_return");
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "durable {jid} {minion}").and_then(|()| out.flush()).expect("stdout");
                });
            }
        });
        round += 1;
    }
}

/// Runs the writer, kills it, and opens what it left: how it opened, and how many of the
/// returns reported durable are missing.
fn kill_a_writer(quick_repair: bool) -> (halite_store::Opened, usize, usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "writer", "--nocapture", "--test-threads", "1"])
        .env(DIR, dir.path())
        .env(QUICK_REPAIR, if quick_repair { "1" } else { "0" })
        .stdout(Stdio::piped())
        .spawn()
        .expect("writer");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut durable = Vec::new();
    while durable.len() < BEFORE_THE_KILL {
        let line = lines.next().expect("the writer ended before the kill").expect("stdout");
        if let Some(write) = line.strip_prefix("durable ") {
            durable.push(write.to_owned());
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("writer reaped");
    // What it printed before dying was durable too.
    durable.extend(lines.map_while(Result::ok).filter_map(|l| l.strip_prefix("durable ").map(str::to_owned)));

    let store = Store::open(&dir.path().join("halite.redb")).expect("the store opens after the kill");
    let missing = durable
        .iter()
        .filter(|write| {
            let (jid, minion) = write.split_once(' ').expect("jid and minion");
            !store.returns(jid).expect("returns").iter().any(|(id, _)| id == minion)
        })
        .count();
    (store.opened(), durable.len(), missing)
}

#[test]
fn a_store_killed_while_writing_opens_with_every_durable_write_and_reports_its_repair() {
    let (opened, durable, missing) = kill_a_writer(false);
    eprintln!("redb's default commits: {durable} returns durable at the kill, {missing} missing, opened {opened:?}");
    assert_eq!(missing, 0, "of {durable} returns reported durable, {missing} are not in the store");
    assert!(opened.full_repair, "a file left by a kill was opened without a repair being reported: {opened:?}");
}

/// What `Options::quick_repair` buys, and the other side of the test above: the same kill
/// leaves a file that opens without a full repair.
#[test]
fn with_quick_repair_the_same_kill_needs_no_full_repair() {
    let (opened, durable, missing) = kill_a_writer(true);
    eprintln!("quick repair: {durable} returns durable at the kill, {missing} missing, opened {opened:?}");
    assert_eq!(missing, 0, "of {durable} returns reported durable, {missing} are not in the store");
    assert!(!opened.full_repair, "the file needed a full repair after the kill: {opened:?}");
}
