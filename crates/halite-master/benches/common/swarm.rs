//! The swarm benches' side of `halite-swarm --control`: one swarm process (which runs its
//! minions in child processes of its own when its descriptor limit requires, and answers
//! for all of them), steered over its stdin and read from its stdout, and the CPU and
//! memory of a set of processes from /proc.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::{release_bin, Cpus};

pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// CPU seconds, RSS MiB and PSS MiB summed over `pids`.
pub fn usage(pids: &[u32]) -> (f64, f64, f64) {
    let u = halite_testkit::procstat::usage(pids);
    (u.cpu_s, u.rss_mib, u.pss_mib)
}

/// Longer than a split swarm waits for its own processes (60 s), so its answer, complete or
/// saying what is missing, always comes before this gives up.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(90);

/// A swarm process under the control protocol of `halite-swarm --control`.
pub struct Swarm {
    child: Child,
    stdin: ChildStdin,
    events: mpsc::Receiver<Value>,
}

impl Swarm {
    /// The swarm's process and the processes it runs minions in.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = halite_testkit::procstat::descendants_of(self.child.id());
        pids.push(self.child.id());
        pids
    }

    pub fn spawn(minions: usize, ports: (u16, u16), ready_timeout: Duration, cpus: Option<&Cpus>) -> Swarm {
        let mut cmd = Command::new(release_bin("halite-swarm"));
        cmd.args(["--control", "--protocol", "mixed", "--prefix", "swarm", "--minions", &minions.to_string()])
            .args(["--ret-port", &ports.0.to_string(), "--publish-port", &ports.1.to_string()])
            .args(["--ready-timeout", &ready_timeout.as_secs().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(cpus) = cpus {
            cpus.apply(&mut cmd);
        }
        let mut child = cmd.spawn().expect("start halite-swarm");
        let stdout = child.stdout.take().expect("swarm stdout");
        let stdin = child.stdin.take().expect("swarm stdin");
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        Swarm { child, stdin, events }
    }

    /// Sends a command. Lines still queued are answers given up on; dropped, so none is taken
    /// for the answer to this command.
    pub fn send(&mut self, line: &str) {
        while self.events.try_recv().is_ok() {}
        let _ = writeln!(self.stdin, "{line}");
        let _ = self.stdin.flush();
    }

    /// The next event of kind in `kinds`, or `Null` when none came in time.
    pub fn next(&self, kinds: &[&str], timeout: Duration) -> Value {
        self.next_where(kinds, |_| true, timeout).unwrap_or(Value::Null)
    }

    /// The next event of kind in `kinds` for which `wanted` holds; others are dropped.
    pub fn next_where(&self, kinds: &[&str], wanted: impl Fn(&Value) -> bool, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.events.recv_timeout(left).ok()?;
            if kinds.contains(&v["event"].as_str().unwrap_or("")) && wanted(&v) {
                return Some(v);
            }
        }
    }

    /// The swarm's report now.
    pub fn report(&mut self) -> Value {
        self.send("report");
        self.next(&["report"], ANSWER_TIMEOUT)
    }

    pub fn ready_since(&mut self, unix: f64) -> usize {
        self.send(&format!("ready_since {unix}"));
        self.next(&["ready_since"], ANSWER_TIMEOUT)["count"].as_u64().unwrap_or(0) as usize
    }

    /// The minions whose return of `jid` the master acknowledged. `None` when the swarm
    /// did not answer in time: then nobody knows.
    pub fn acknowledged(&mut self, jid: &str) -> Option<Vec<String>> {
        self.send(&format!("acknowledged {jid}"));
        let answer = self.next_where(&["acknowledged"], |v| v["jid"] == jid, ANSWER_TIMEOUT)?;
        let ids = answer["ids"].as_array()?;
        Some(ids.iter().filter_map(|id| id.as_str().map(str::to_owned)).collect())
    }

    /// Stops the swarm and returns its final report.
    pub fn stop(mut self) -> Value {
        self.send("stop");
        let last = self.next(&["final"], Duration::from_secs(120));
        drop(self.stdin);
        if last.is_null() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        last
    }
}
