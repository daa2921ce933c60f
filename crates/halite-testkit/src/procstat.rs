//! What a set of processes costs, read from /proc: CPU seconds, resident and proportional
//! memory, open descriptors; the processes of a daemon (its children, its process group);
//! and a soak's samples reduced to a Markdown table of how flat they stayed.

use std::time::Instant;

/// Clock ticks per second in /proc's CPU times: USER_HZ, 100 on every Linux this runs on.
const TICKS: f64 = 100.0;

/// One reading of a set of processes, summed over them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// User + system CPU seconds since each process started.
    pub cpu_s: f64,
    pub rss_mib: f64,
    /// Proportional set size: shared pages split among their users, so processes that
    /// share libraries or a forked image are not counted twice.
    pub pss_mib: f64,
    pub fds: usize,
    /// How many of the pids could be read (the others exited).
    pub processes: usize,
}

/// `pids`' usage now; a pid that exited adds nothing.
pub fn usage(pids: &[u32]) -> Usage {
    let mut total = Usage::default();
    for &pid in pids {
        let Some(fields) = stat_fields(pid) else { continue };
        let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        total.cpu_s += (tick(11) + tick(12)) / TICKS;
        total.rss_mib += kib(pid, "status", "VmRSS:") / 1024.0;
        total.pss_mib += kib(pid, "smaps_rollup", "Pss:") / 1024.0;
        total.fds += std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
        total.processes += 1;
    }
    total
}

/// User + system CPU seconds of the children `pid` has waited for: a forking daemon's
/// finished connections.
pub fn reaped_cpu_s(pid: u32) -> f64 {
    let Some(fields) = stat_fields(pid) else { return 0.0 };
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(13) + tick(14)) / TICKS
}

/// The most `pid` ever held resident (VmHWM), in KiB; 0 once it exited.
pub fn peak_rss_kib(pid: u32) -> f64 {
    kib(pid, "status", "VmHWM:")
}

fn kib(pid: u32, file: &str, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// /proc/<pid>/stat's fields after the command name (the state, field 3, is index 0).
pub fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 2..];
    Some(after.split_whitespace().map(str::to_owned).collect())
}

/// Pids whose stat fields (see [`stat_fields`]) satisfy `keep`.
fn processes_where(keep: impl Fn(&[String]) -> bool) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| stat_fields(*pid).is_some_and(|f| keep(&f)))
        .collect()
}

pub fn children_of(parent: u32) -> Vec<u32> {
    processes_where(|f| f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent))
}

/// `pid`'s children, theirs and so on: a connection process may fork again (the reference
/// rsync's generator and receiver). Read from each thread's `children` list, not by scanning
/// all of /proc: benches call this every few milliseconds while they measure.
pub fn descendants_of(root: u32) -> Vec<u32> {
    let children = |pid: u32| -> Vec<u32> {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
        tasks
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
            .flat_map(|list| list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()).collect::<Vec<_>>())
            .collect()
    };
    let mut found: Vec<u32> = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for child in children(p) {
            // A pid reused while we read cannot make this loop forever.
            if child != root && !found.contains(&child) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

/// `pid` and its children: a daemon with its per-connection or helper processes.
pub fn with_children(pid: u32) -> Vec<u32> {
    let mut pids = children_of(pid);
    pids.push(pid);
    pids
}

pub fn processes_in_group(pgid: u32) -> Vec<u32> {
    processes_where(|f| f.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid))
}

/// A bench's command line (without the `--bench` cargo adds): the minutes of
/// `--soak MINUTES` if given, and its other bare words in order.
pub fn soak_args() -> (Option<u64>, Vec<String>) {
    let mut minutes = None;
    let mut words = Vec::new();
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(arg) = args.next() {
        if arg == "--soak" {
            let value = args.next().expect("--soak takes minutes");
            minutes = Some(value.parse().unwrap_or_else(|_| panic!("--soak takes minutes, not {value:?}")));
        } else if !arg.starts_with('-') {
            words.push(arg);
        }
    }
    (minutes, words)
}

/// A soak's readings of one daemon, one per sampling.
#[derive(Debug, Clone)]
pub struct Soak {
    started: Instant,
    cpu_at_start: f64,
    /// (seconds since the start, usage) in order.
    pub samples: Vec<(f64, Usage)>,
}

impl Soak {
    /// Starts counting now; `at_start` is the daemon's usage before the load.
    pub fn new(at_start: Usage) -> Soak {
        Soak { started: Instant::now(), cpu_at_start: at_start.cpu_s, samples: Vec::new() }
    }

    /// Samples `read` every `every` for `duration` (the load runs elsewhere meanwhile),
    /// printing each sample to stderr.
    pub fn run(duration: std::time::Duration, every: std::time::Duration, read: impl Fn() -> Usage) -> Soak {
        let mut soak = Soak::new(read());
        while soak.started.elapsed() < duration {
            std::thread::sleep(every.min(duration.saturating_sub(soak.started.elapsed())));
            let (t, u) = soak.record(read());
            eprintln!(
                "   {t:>6.0} s: RSS {:.1} MiB, PSS {:.1} MiB, {} descriptors, {} processes, CPU {:.1} s",
                u.rss_mib,
                u.pss_mib,
                u.fds,
                u.processes,
                soak.cpu_s()
            );
        }
        soak
    }

    pub fn record(&mut self, usage: Usage) -> (f64, Usage) {
        let sample = (self.started.elapsed().as_secs_f64(), usage);
        self.samples.push(sample);
        sample
    }

    /// CPU seconds the daemon spent since [`Soak::new`], at the last sample.
    pub fn cpu_s(&self) -> f64 {
        self.samples.last().map_or(0.0, |(_, u)| u.cpu_s - self.cpu_at_start)
    }

    /// The samples after the first fifth of the run: what the load looked like once caches,
    /// buffers and pools had warmed up.
    pub fn warm(&self) -> &[(f64, Usage)] {
        &self.samples[self.samples.len() / 5..]
    }

    /// `| what | min | median | max | min / max against the median |` rows for RSS, PSS and
    /// descriptors over the warm samples, with the table's header.
    pub fn flatness_table(&self) -> String {
        let mut out = String::from("| | min | median | max | min / max against the median |\n|---|---|---|---|---|\n");
        let column = |field: fn(&Usage) -> f64| self.warm().iter().map(|(_, u)| field(u)).collect::<Vec<f64>>();
        let (rss, pss) = (column(|u| u.rss_mib), column(|u| u.pss_mib));
        // A small daemon's few MiB need a decimal to show a change at all.
        let digits = if rss.iter().any(|&v| v < 100.0) { 1 } else { 0 };
        out += &spread_row("RSS (MiB)", &rss, digits);
        out += &spread_row("PSS (MiB)", &pss, digits);
        out += &spread_row("open descriptors", &column(|u| u.fds as f64), 0);
        out
    }
}

/// One flatness row for `values`: min, median, max, and how far min and max are from the
/// median in per cent.
pub fn spread_row(name: &str, values: &[f64], digits: usize) -> String {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let Some((&lo, &hi)) = v.first().zip(v.last()) else { return format!("| {name} | — | — | — | — |\n") };
    let mid = v[v.len() / 2];
    let pct = |x: f64| if mid > 0.0 { (x / mid - 1.0) * 100.0 } else { 0.0 };
    format!("| {name} | {lo:.digits$} | {mid:.digits$} | {hi:.digits$} | {:+.1}% / {:+.1}% |\n", pct(lo), pct(hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_read_and_an_exited_one_adds_nothing() {
        let me = usage(&[std::process::id()]);
        assert_eq!(me.processes, 1);
        assert!(me.rss_mib > 0.0 && me.fds > 0, "{me:?}");
        assert_eq!(usage(&[u32::MAX]), Usage::default());
    }

    #[test]
    fn a_spread_row_measures_from_the_median() {
        assert_eq!(spread_row("x", &[90.0, 100.0, 110.0], 0), "| x | 90 | 100 | 110 | -10.0% / +10.0% |\n");
        assert_eq!(spread_row("x", &[], 0), "| x | — | — | — | — |\n");
    }
}
