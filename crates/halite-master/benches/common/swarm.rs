//! The swarm benches' side of `halite-swarm --control`: swarm processes sharded under the
//! descriptor limit, steered over their stdin and read from their stdout, and the CPU and
//! memory of a set of processes from /proc.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::release_bin;

/// Simulated minions per swarm process: two descriptors each, under a 20,000 limit.
pub const SHARD: usize = 4000;

pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// CPU seconds, RSS MiB and PSS MiB summed over `pids`.
pub fn usage(pids: &[u32]) -> (f64, f64, f64) {
    let u = halite_testkit::procstat::usage(pids);
    (u.cpu_s, u.rss_mib, u.pss_mib)
}

/// Swarm processes under the control protocol of `halite-swarm --control`.
pub struct Swarm {
    pub shards: Vec<(Child, ChildStdin)>,
    pub events: mpsc::Receiver<(usize, Value)>,
}

impl Swarm {
    pub fn pids(&self) -> Vec<u32> {
        self.shards.iter().map(|(child, _)| child.id()).collect()
    }

    pub fn spawn(minions: usize, ports: (u16, u16), ready_timeout: Duration) -> Swarm {
        let (tx, events) = mpsc::channel();
        let mut shards = Vec::new();
        for (n, first) in (0..minions).step_by(SHARD).enumerate() {
            let count = Swarm::shard_size(minions, n);
            let mut child = Command::new(release_bin("halite-swarm"))
                .args(["--control", "--protocol", "mixed", "--prefix", "swarm"])
                .args(["--minions", &count.to_string(), "--first", &first.to_string()])
                .args(["--ret-port", &ports.0.to_string(), "--publish-port", &ports.1.to_string()])
                .args(["--ready-timeout", &ready_timeout.as_secs().to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start halite-swarm");
            let stdout = child.stdout.take().expect("swarm stdout");
            let stdin = child.stdin.take().expect("swarm stdin");
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        if tx.send((n, v)).is_err() {
                            break;
                        }
                    }
                }
            });
            shards.push((child, stdin));
        }
        Swarm { shards, events }
    }

    pub fn send(&mut self, line: &str) {
        for (_, stdin) in &mut self.shards {
            let _ = writeln!(stdin, "{line}");
            let _ = stdin.flush();
        }
    }

    /// Sends `line` to one shard only.
    pub fn send_to(&mut self, shard: usize, line: &str) {
        if let Some((_, stdin)) = self.shards.get_mut(shard) {
            let _ = writeln!(stdin, "{line}");
            let _ = stdin.flush();
        }
    }

    /// How many minions shard `shard` of a swarm of `minions` runs.
    pub fn shard_size(minions: usize, shard: usize) -> usize {
        SHARD.min(minions.saturating_sub(shard * SHARD))
    }

    /// One event of kind in `kinds` from every shard, in shard order.
    pub fn collect(&self, kinds: &[&str], timeout: Duration) -> Vec<Value> {
        self.collect_where(kinds, |_| true, timeout).into_iter().map(|v| v.unwrap_or(Value::Null)).collect()
    }

    /// One event of kind in `kinds` for which `wanted` holds from every shard, in shard
    /// order; `None` for a shard that sent none in time. Other events are dropped.
    pub fn collect_where(
        &self,
        kinds: &[&str],
        wanted: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Vec<Option<Value>> {
        let mut got: Vec<Option<Value>> = vec![None; self.shards.len()];
        let deadline = Instant::now() + timeout;
        while got.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok((n, v)) = self.events.recv_timeout(left) else { break };
            if kinds.contains(&v["event"].as_str().unwrap_or("")) && wanted(&v) {
                got[n] = Some(v);
            }
        }
        got
    }

    pub fn ready_since(&mut self, unix: f64) -> usize {
        self.send(&format!("ready_since {unix}"));
        self.collect(&["ready_since"], Duration::from_secs(10)).iter().filter_map(|v| v["count"].as_u64()).sum::<u64>()
            as usize
    }

    /// The minions whose return of `jid` the master acknowledged, over all shards.
    /// `None` when a shard did not answer in time: then nobody knows.
    pub fn acknowledged(&mut self, jid: &str) -> Option<Vec<String>> {
        self.send(&format!("acknowledged {jid}"));
        let shards = self.collect_where(&["acknowledged"], |v| v["jid"] == jid, Duration::from_secs(30));
        let mut ids = Vec::new();
        for shard in shards {
            let ids_of_shard = shard?["ids"].as_array().cloned().unwrap_or_default();
            ids.extend(ids_of_shard.iter().filter_map(|id| id.as_str().map(str::to_owned)));
        }
        Some(ids)
    }

    pub fn stop(mut self) -> Vec<Value> {
        self.send("stop");
        let finals = self.collect(&["final"], Duration::from_secs(60));
        for (mut child, stdin) in self.shards.drain(..) {
            drop(stdin);
            let _ = child.wait();
        }
        finals
    }
}
