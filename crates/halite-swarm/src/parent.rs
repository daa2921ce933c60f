//! The swarm as a parent of swarm processes, when one process cannot hold every minion
//! under its descriptor limit: children of the same binary, each with `--child --control`
//! and its part of the range, steered over their stdin; their answers merged
//! ([`shards::merge`]) into the answers one process would give.
//!
//! A child that exits early is noted (its stdout closes) and never waited on again; reports
//! still count its minions, as not ready, and say `missing_processes`, and a list only it
//! could complete (`acknowledged`) is answered `null`: unknown, not empty. Children die with
//! the parent (`PR_SET_PDEATHSIG`), so a killed driver leaves no minions signing in, and the
//! parent exits with an error when any child failed.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use halite_swarm::shards;
use serde_json::{json, Value};

use crate::{emit, Args};

/// How long an ordinary command (a report, a count) may take a child.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

struct Children {
    processes: Vec<(Child, Option<ChildStdin>)>,
    sizes: Vec<usize>,
    /// One line of a child's stdout, or `None` when it closed.
    lines: mpsc::Receiver<(usize, Option<Value>)>,
    exited: Vec<bool>,
    restart_turn: usize,
    /// Set once `stop` is sent: children exiting are then expected, not news.
    stopping: bool,
}

impl Children {
    fn spawn(args: &Args, parts: &[(usize, usize)]) -> anyhow::Result<Children> {
        let exe = std::env::current_exe().context("the swarm's own executable")?;
        let (tx, lines) = mpsc::channel();
        let mut processes = Vec::new();
        let parent = std::process::id() as libc::pid_t;
        for (n, &(first, count)) in parts.iter().enumerate() {
            let c = &args.config;
            let mut command = Command::new(&exe);
            // SAFETY: between fork and exec only prctl and getppid run, both async-signal-safe.
            unsafe {
                command.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // The parent may have died before the line above took effect.
                    if libc::getppid() != parent {
                        return Err(std::io::Error::other("the parent swarm exited"));
                    }
                    Ok(())
                });
            }
            let mut child = command
                .args(["--child", "--control", "--protocol", c.protocol.name(), "--prefix", &c.prefix])
                .args(["--minions", &count.to_string(), "--first", &first.to_string(), "--host", &c.host])
                .args(["--ret-port", &c.ret_port.to_string(), "--publish-port", &c.publish_port.to_string()])
                .args(["--ready-timeout", &args.ready_timeout.as_secs().to_string()])
                .arg("--keys-dir")
                .arg(&args.keys_dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .with_context(|| format!("starting swarm process {n} ({}) for minions {first}..", exe.display()))?;
            let stdout = child.stdout.take().context("a child's stdout")?;
            let stdin = child.stdin.take();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    match serde_json::from_str::<Value>(&line) {
                        Ok(v) => {
                            if tx.send((n, Some(v))).is_err() {
                                return;
                            }
                        }
                        Err(_) => eprintln!("halite-swarm: process {n} wrote a line that is not JSON: {line:?}"),
                    }
                }
                let _ = tx.send((n, None));
            });
            processes.push((child, stdin));
        }
        Ok(Children {
            processes,
            sizes: parts.iter().map(|p| p.1).collect(),
            lines,
            exited: vec![false; parts.len()],
            restart_turn: 0,
            stopping: false,
        })
    }

    fn send_to(&mut self, n: usize, line: &str) {
        if let Some((_, Some(stdin))) = self.processes.get_mut(n) {
            // A child gone is found by its closed stdout; the write error says nothing more.
            let _ = writeln!(stdin, "{line}").and_then(|()| stdin.flush());
        }
    }

    fn send(&mut self, line: &str) {
        self.drop_stale_lines();
        for n in 0..self.processes.len() {
            self.send_to(n, line);
        }
    }

    /// Lines that arrived after their command's answer was given up on would otherwise be
    /// taken for the answer to the next command of their kind.
    fn drop_stale_lines(&mut self) {
        while let Ok((n, line)) = self.lines.try_recv() {
            if line.is_none() {
                self.exited[n] = true;
            }
        }
    }

    /// From every child still running, its next line of kind in `kinds` for which `wanted`
    /// holds (other lines dropped); `None` for a child that exited or did not answer in time.
    fn collect(&mut self, kinds: &[&str], wanted: impl Fn(&Value) -> bool, timeout: Duration) -> Vec<Option<Value>> {
        let mut got: Vec<Option<Value>> = vec![None; self.processes.len()];
        let deadline = Instant::now() + timeout;
        while (0..got.len()).any(|n| got[n].is_none() && !self.exited[n]) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((n, Some(v))) => {
                    if kinds.contains(&v["event"].as_str().unwrap_or("")) && wanted(&v) {
                        got[n] = Some(v);
                    }
                }
                Ok((n, None)) => {
                    if !self.exited[n] && !self.stopping {
                        eprintln!("halite-swarm: swarm process {n} exited");
                    }
                    self.exited[n] = true;
                }
                Err(_) => {
                    let silent: Vec<usize> = (0..got.len()).filter(|&n| got[n].is_none() && !self.exited[n]).collect();
                    eprintln!("halite-swarm: no {kinds:?} from swarm processes {silent:?} in {timeout:?}");
                    break;
                }
            }
        }
        got
    }

    fn merged(&mut self, command: &str, kinds: &[&str], timeout: Duration) -> Value {
        self.send(command);
        let parts = self.collect(kinds, |_| true, timeout);
        shards::merge(&parts, &self.sizes)
    }

    /// Answers one control command as a single swarm would.
    fn answer(&mut self, line: &str) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("report"), _) => emit("report", self.merged("report", &["report"], ANSWER_TIMEOUT)),
            (Some("ready_since"), Some(unix)) if unix.parse::<f64>().is_ok() => {
                self.send(line);
                let counts = self.collect(&["ready_since"], |_| true, ANSWER_TIMEOUT);
                let count: u64 = counts.iter().flatten().filter_map(|v| v["count"].as_u64()).sum();
                let missing = counts.iter().filter(|c| c.is_none()).count();
                emit("ready_since", json!({ "count": count, "missing_processes": missing }));
            }
            (Some("acknowledged"), Some(jid)) => {
                self.send(line);
                let answers = self.collect(&["acknowledged"], |v| v["jid"] == jid, ANSWER_TIMEOUT);
                // Children hold consecutive ranges, so their lists in order are in index order.
                let lists: Option<Vec<Vec<Value>>> =
                    answers.iter().map(|a| a.as_ref().and_then(|v| v["ids"].as_array().cloned())).collect();
                let ids = lists.map(|lists| lists.concat());
                emit("acknowledged", json!({ "jid": jid, "ids": ids }));
            }
            (Some("restart"), Some(count)) if count.parse::<usize>().is_ok() => {
                let count = count.parse::<usize>().unwrap_or(0);
                let shares = shards::share(count, &self.sizes, self.restart_turn);
                self.restart_turn += 1;
                // Every child is asked, those with no share for 0, so every child answers.
                for (n, share) in shares.iter().enumerate() {
                    self.send_to(n, &format!("restart {share}"));
                }
                let answers = self.collect(&["restarting"], |_| true, ANSWER_TIMEOUT);
                let restarting: u64 = answers.iter().flatten().filter_map(|a| a["count"].as_u64()).sum();
                emit("restarting", json!({ "count": restarting }));
            }
            (Some("ready_since"), Some(unix)) => emit("error", json!({ "not_a_time": unix })),
            (Some("restart"), Some(count)) => emit("error", json!({ "not_a_count": count })),
            _ => emit("error", json!({ "unknown_command": line })),
        }
    }

    /// Stops every child and returns their merged final report, and whether every child
    /// exited successfully. A child that does not answer in time is killed.
    fn stop(mut self) -> (Value, bool) {
        self.stopping = true;
        self.send("stop");
        let parts = self.collect(&["final"], |_| true, ANSWER_TIMEOUT);
        let report = shards::merge(&parts, &self.sizes);
        let mut all_ok = true;
        for (n, ((mut child, stdin), answered)) in self.processes.drain(..).zip(&parts).enumerate() {
            drop(stdin);
            if answered.is_none() {
                let _ = child.kill();
            }
            let status = child.wait();
            if !status.as_ref().is_ok_and(|s| s.success()) {
                eprintln!("halite-swarm: swarm process {n} ended with {status:?}");
                all_ok = false;
            }
        }
        (report, all_ok)
    }

    /// Ends children that never started their minions (no `go`): their input closes, which
    /// ends them before they start.
    fn abandon(mut self) {
        for (mut child, stdin) in self.processes.drain(..) {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// Runs the swarm as `parts.len()` child processes and speaks for them.
pub fn run(args: &Args, parts: &[(usize, usize)]) -> anyhow::Result<()> {
    let mut children = Children::spawn(args, parts)?;
    let loaded = children.collect(&["loaded"], |_| true, Duration::from_secs(3600));
    let input = args.control.then(stdin_lines);
    if let Some(input) = &input {
        emit("loaded", json!({}));
        loop {
            match input.recv().ok().as_deref() {
                Some("go") => break,
                Some(_) => continue,
                None => {
                    children.abandon();
                    return Ok(());
                }
            }
        }
    }
    if loaded.iter().any(Option::is_none) {
        eprintln!("halite-swarm: not every swarm process loaded its keys; going on with the others");
    }
    children.send("go");
    let ready_wait = args.ready_timeout + Duration::from_secs(60);
    let ready = children.collect(&["ready", "not_ready"], |_| true, ready_wait);
    let all_ready = ready.iter().all(|r| r.as_ref().is_some_and(|r| r["event"] == "ready"));
    let report = shards::merge(&ready, &children.sizes);
    eprintln!("halite-swarm: {} of {} ready", report["ready"], args.minions);
    match &input {
        None => {
            if all_ready {
                std::thread::sleep(args.duration);
            }
        }
        Some(input) => {
            emit(if all_ready { "ready" } else { "not_ready" }, report);
            while let Ok(line) = input.recv() {
                if line == "stop" {
                    break;
                }
                children.answer(&line);
            }
        }
    }
    let (report, all_ok) = children.stop();
    if args.control {
        emit("final", report);
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    anyhow::ensure!(all_ok, "a swarm process failed (its errors are above)");
    Ok(())
}

/// The parent's own input lines, read on a thread so a command and the children's answers
/// never wait on each other.
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line.trim().to_owned()).is_err() {
                break;
            }
        }
    });
    rx
}
