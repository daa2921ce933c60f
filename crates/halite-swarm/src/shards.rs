//! One swarm in several processes: how many minions a process can hold under its
//! descriptor limit, and the reports of the parts merged into the report of the whole.
//!
//! A process runs out of descriptors long before it runs out of memory or CPU: each minion
//! holds a REQ and a SUB connection, and a third for a moment when it signs in again while
//! its old REQ is still open (every minion at once after an AES rotation). So the swarm
//! raises its soft limit to the hard one and, when even that is too few, the binary runs
//! the rest in child processes ([`capacity`]); the parent speaks for all of them with
//! [`merge`]d reports. The process management itself is the binary's (`parent.rs`); this
//! module is the limit and arithmetic over numbers and JSON, tested as such.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// Descriptors a minion may hold at once: REQ, SUB, and a REQ of a sign-in under way.
pub const DESCRIPTORS_PER_MINION: u64 = 3;
/// Descriptors kept for everything else: the runtime, stdio, key files, pipes to children.
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// Raises the soft limit on open descriptors to the hard one and returns the soft limit
/// now in force. An error reading it is the caller's to report.
pub fn raise_descriptor_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // An unlimited hard limit still stops at the kernel's fs.nr_open.
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|n| n.trim().parse::<libc::rlim_t>().ok())
        .unwrap_or(libc::rlim_t::MAX);
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let wanted = limit.rlim_max.min(nr_open);
        if limit.rlim_cur < wanted {
            let raised = libc::rlimit { rlim_cur: wanted, rlim_max: limit.rlim_max };
            // Refused (a hard limit above the kernel's nr_open): keep working under the soft one.
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Ok(limit.rlim_cur)
}

/// How many minions one process holds under a soft limit of `soft_limit` descriptors.
pub fn capacity(soft_limit: u64) -> usize {
    (soft_limit.saturating_sub(RESERVED_DESCRIPTORS) / DESCRIPTORS_PER_MINION) as usize
}

/// Most processes a swarm splits into: past this the limit is the thing to fix (each process
/// loads keys and runs a runtime of its own), and the swarm says so instead of starting them.
pub const MAX_PROCESSES: usize = 64;

/// `total` minions cut into parts of at most `per_process`, as (first index, count).
pub fn split(first: usize, total: usize, per_process: usize) -> Vec<(usize, usize)> {
    let parts = total.div_ceil(per_process.max(1)).max(1);
    // Even parts: ten thousand under a cap of 6,000 is 5,000 + 5,000, not 6,000 + 4,000.
    let base = total / parts;
    let extra = total % parts;
    let mut at = first;
    (0..parts)
        .map(|i| {
            let count = base + usize::from(i < extra);
            let part = (at, count);
            at += count;
            part
        })
        .collect()
}

/// `n` (minions to restart) shared among parts of `sizes` in proportion, the remainder
/// going to the parts from `turn` on, so repeated small requests go round all parts.
pub fn share(n: usize, sizes: &[usize], turn: usize) -> Vec<usize> {
    let total: usize = sizes.iter().sum();
    if total == 0 || sizes.is_empty() {
        return vec![0; sizes.len()];
    }
    let n = n.min(total);
    let mut shares: Vec<usize> = sizes.iter().map(|s| n * s / total).collect();
    let mut left = n - shares.iter().sum::<usize>();
    let mut i = turn;
    while left > 0 {
        let part = i % sizes.len();
        if shares[part] < sizes[part] {
            shares[part] += 1;
            left -= 1;
        }
        i += 1;
    }
    shares
}

/// The report of a swarm run as parts of `sizes` minions, `parts[i]` the report of part `i`
/// (a [`crate::Report`]'s JSON) or `None` when that process did not answer: counts summed,
/// times re-based on the earliest start, jobs merged by jid. A figure that needs every part
/// (`all_ready_s`) is null when any part lacks it or did not answer, `minions` counts every
/// part's minions, and `missing_processes` says how many did not answer, so a report with a
/// part gone never reads as complete.
pub fn merge(parts: &[Option<Value>], sizes: &[usize]) -> Value {
    let present: Vec<&Value> = parts.iter().flatten().collect();
    let missing = parts.len() - present.len();
    let start = present.iter().filter_map(|r| r["started_unix"].as_f64()).fold(f64::INFINITY, f64::min);
    let start = if start.is_finite() { start } else { 0.0 };
    let sum = |field: &str| present.iter().filter_map(|r| r[field].as_u64()).sum::<u64>();
    // The latest moment at which `field` was reached in any part, from the common start.
    let latest = |field: &str| -> Value {
        if missing > 0 {
            return Value::Null;
        }
        let mut latest = f64::NEG_INFINITY;
        for r in &present {
            match (r["started_unix"].as_f64(), r[field].as_f64()) {
                (Some(s), Some(t)) => latest = latest.max(s + t - start),
                _ => return Value::Null,
            }
        }
        if latest.is_finite() {
            json!(latest)
        } else {
            Value::Null
        }
    };
    let error_samples: Vec<Value> =
        present.iter().flat_map(|r| r["error_samples"].as_array().cloned().unwrap_or_default()).take(10).collect();
    json!({
        "minions": sizes.iter().sum::<usize>(),
        "processes": sizes.len(),
        "missing_processes": missing,
        "started_unix": start,
        "authenticated": sum("authenticated"),
        "ready": sum("ready"),
        "all_authenticated_s": latest("all_authenticated_s"),
        "all_ready_s": latest("all_ready_s"),
        "reauths": sum("reauths"),
        "errors": sum("errors"),
        "auth_resends": sum("auth_resends"),
        "return_resends": sum("return_resends"),
        "restarts": sum("restarts"),
        "error_samples": error_samples,
        "elapsed_s": latest("elapsed_s"),
        "jobs": merge_jobs(&present, start),
    })
}

#[derive(Default)]
struct Job {
    fun: Value,
    received: u64,
    returned: u64,
    dropped_by_restart: u64,
    first_publish: Option<f64>,
    last_return: Option<f64>,
}

fn merge_jobs(parts: &[&Value], start: f64) -> Vec<Value> {
    let mut jobs: BTreeMap<String, Job> = BTreeMap::new();
    for r in parts {
        let rebase = r["started_unix"].as_f64().unwrap_or(start) - start;
        for j in r["jobs"].as_array().into_iter().flatten() {
            let Some(jid) = j["jid"].as_str() else { continue };
            let job = jobs.entry(jid.to_owned()).or_default();
            if job.fun.is_null() {
                job.fun = j["fun"].clone();
            }
            job.received += j["received"].as_u64().unwrap_or(0);
            job.returned += j["returned"].as_u64().unwrap_or(0);
            job.dropped_by_restart += j["dropped_by_restart"].as_u64().unwrap_or(0);
            if let Some(p) = j["first_publish_s"].as_f64() {
                job.first_publish = Some(job.first_publish.map_or(p + rebase, |f| f.min(p + rebase)));
            }
            if let Some(l) = j["last_return_s"].as_f64() {
                job.last_return = Some(job.last_return.map_or(l + rebase, |f| f.max(l + rebase)));
            }
        }
    }
    jobs.into_iter()
        .map(|(jid, j)| {
            json!({
                "jid": jid,
                "fun": j.fun,
                "received": j.received,
                "returned": j.returned,
                "dropped_by_restart": j.dropped_by_restart,
                "first_publish_s": j.first_publish,
                "last_return_s": j.last_return,
                "publish_to_last_return_s": match (j.first_publish, j.last_return) {
                    (Some(a), Some(b)) => json!((b - a).max(0.0)),
                    _ => Value::Null,
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_keeps_three_descriptors_a_minion_and_a_reserve() {
        assert_eq!(capacity(1024), (1024 - 64) / 3);
        assert_eq!(capacity(20_000), 6_645);
        assert_eq!(capacity(10), 0, "too few to hold a minion beside the reserve");
    }

    #[test]
    fn split_makes_even_parts_covering_the_range_once() {
        assert_eq!(split(0, 10_000, 6_645), vec![(0, 5_000), (5_000, 5_000)]);
        assert_eq!(split(100, 1_000, 320), vec![(100, 250), (350, 250), (600, 250), (850, 250)]);
        assert_eq!(split(0, 7, 3), vec![(0, 3), (3, 2), (5, 2)]);
        assert_eq!(split(0, 5, 100), vec![(0, 5)]);
    }

    #[test]
    fn share_is_proportional_and_rotates_the_remainder() {
        assert_eq!(share(100, &[500, 500], 0), vec![50, 50]);
        assert_eq!(share(1, &[500, 500], 0), vec![1, 0]);
        assert_eq!(share(1, &[500, 500], 1), vec![0, 1]);
        assert_eq!(share(5, &[3, 2], 0), vec![3, 2]);
        assert_eq!(share(50, &[3, 2], 0), vec![3, 2], "no part restarts more minions than it has");
        assert_eq!(share(3, &[], 0), Vec::<usize>::new());
    }

    #[test]
    fn merge_sums_counts_and_rebases_times_on_the_earliest_start() {
        let a = json!({
            "minions": 2, "started_unix": 100.0, "authenticated": 2, "ready": 2,
            "all_authenticated_s": 1.0, "all_ready_s": 2.0, "reauths": 1, "errors": 0,
            "auth_resends": 0, "return_resends": 0, "restarts": 0, "error_samples": ["a0: x"],
            "elapsed_s": 10.0,
            "jobs": [{"jid": "1", "fun": "test.ping", "received": 2, "returned": 2, "dropped_by_restart": 0,
                      "first_publish_s": 5.0, "last_return_s": 5.5}],
        });
        let b = json!({
            "minions": 3, "started_unix": 100.5, "authenticated": 3, "ready": 3,
            "all_authenticated_s": 1.0, "all_ready_s": 1.0, "reauths": 0, "errors": 2,
            "auth_resends": 1, "return_resends": 4, "restarts": 1, "error_samples": [],
            "elapsed_s": 9.0,
            "jobs": [{"jid": "1", "fun": "test.ping", "received": 3, "returned": 2, "dropped_by_restart": 1,
                      "first_publish_s": 4.6, "last_return_s": 5.3},
                     {"jid": "2", "fun": "grains.get", "received": 1, "returned": 0, "dropped_by_restart": 0,
                      "first_publish_s": 7.0, "last_return_s": null}],
        });
        let m = merge(&[Some(a), Some(b)], &[2, 3]);
        assert_eq!(m["minions"], 5);
        assert_eq!(m["processes"], 2);
        assert_eq!(m["missing_processes"], 0);
        assert_eq!(m["started_unix"], 100.0);
        assert_eq!(m["authenticated"], 5);
        assert_eq!(m["all_authenticated_s"], 1.5);
        assert_eq!(m["all_ready_s"], 2.0);
        assert_eq!(m["errors"], 2);
        assert_eq!(m["return_resends"], 4);
        assert_eq!(m["elapsed_s"], 10.0);
        assert_eq!(m["error_samples"], json!(["a0: x"]));
        let jobs = m["jobs"].as_array().unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0]["jid"], "1");
        assert_eq!(jobs[0]["received"], 5);
        assert_eq!(jobs[0]["returned"], 4);
        assert_eq!(jobs[0]["dropped_by_restart"], 1);
        assert_eq!(jobs[0]["first_publish_s"], 5.0);
        assert_eq!(jobs[0]["last_return_s"], 5.8);
        assert!((jobs[0]["publish_to_last_return_s"].as_f64().unwrap() - 0.8).abs() < 1e-9);
        assert_eq!(jobs[1]["last_return_s"], Value::Null);
        assert_eq!(jobs[1]["publish_to_last_return_s"], Value::Null);
    }

    #[test]
    fn merge_leaves_a_figure_null_when_a_part_has_not_reached_it() {
        let a = json!({"started_unix": 1.0, "all_ready_s": 2.0});
        let b = json!({"started_unix": 1.0, "all_ready_s": null});
        assert_eq!(merge(&[Some(a), Some(b)], &[1, 1])["all_ready_s"], Value::Null);
    }

    #[test]
    fn a_part_that_did_not_answer_leaves_the_report_visibly_incomplete() {
        let a = json!({"started_unix": 1.0, "ready": 4, "all_ready_s": 2.0, "minions": 4});
        let m = merge(&[Some(a), None], &[4, 6]);
        assert_eq!(m["minions"], 10, "the silent part's minions still count");
        assert_eq!(m["ready"], 4);
        assert_eq!(m["missing_processes"], 1);
        assert_eq!(m["all_ready_s"], Value::Null);
    }
}
