//! Batch mode (`salt -b N|N%`, `--batch-wait`): Salt's `salt.cli.batch.Batch`. The target's
//! minions are pinged first; those that answer get the job a window of N at a time, a slot
//! reopening when its minion returns (plus `--batch-wait` seconds).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use halite_ipc::{ErrorKind, Request};
use halite_yaml::Value;

use crate::client::{Client, ClientError, Identity};
use crate::returns::{retcode_of, wait_for_returns, Collector, MinionReturn, Step};

/// `-b`: a count, or a share of the minions that answered the ping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BatchSize {
    Count(usize),
    Percent(f64),
}

impl BatchSize {
    /// Salt's reading: `10%` (also `%10`) or an integer. The error is Salt's message.
    pub fn parse(text: &str) -> Result<BatchSize, String> {
        let invalid = || format!("Invalid batch data sent: {text}\nData must be in the form of %10, 10% or 3");
        if text.contains('%') {
            return text.trim_matches('%').parse::<f64>().map(BatchSize::Percent).map_err(|_| invalid());
        }
        text.trim().parse::<usize>().map(BatchSize::Count).map_err(|_| invalid())
    }

    /// Salt's `get_bnum`: a share below one minion rounds up, above rounds down.
    pub fn of(self, minions: usize) -> usize {
        match self {
            BatchSize::Count(n) => n,
            BatchSize::Percent(p) => {
                let share = p / 100.0 * minions as f64;
                if share < 1.0 {
                    share.ceil() as usize
                } else {
                    share as usize
                }
            }
        }
    }
}

pub struct BatchJob<'a> {
    pub tgt: Value,
    pub tgt_type: &'a str,
    pub fun: Value,
    pub arg: Value,
    pub kwargs: Value,
    pub ret: &'a str,
    pub size: BatchSize,
    pub wait: Duration,
    pub timeout: Duration,
    pub gather_job_timeout: Duration,
    /// `--failhard`: stop starting runs once a minion returns a non-zero retcode.
    pub failhard: bool,
}

/// What the batch prints, in Salt's order: plain lines, and minion returns as Salt's batch
/// hands them to the outputter (`{retcode, jid, <id>: ret}`, with the minion's outputter).
pub enum BatchEvent<'a> {
    Line(String),
    Return { data: Value, out: Option<&'a str> },
}

fn publish(
    client: &mut Client,
    identity: &Identity,
    load: Vec<(&str, Value)>,
) -> Result<Option<(String, Vec<String>)>, ClientError> {
    let load = Value::Map(load.into_iter().map(|(k, v)| (Value::from(k), v)).collect());
    let request = Request::Publish { user: identity.user.clone(), key: identity.key.clone(), load, listen: true };
    let reply = match client.call(&request) {
        Ok(r) => r,
        Err(ClientError::Master { kind: ErrorKind::NoMinions, .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let get = |k: &str| reply.as_map().and_then(|m| m.iter().find(|(key, _)| key.as_str() == Some(k))).map(|(_, v)| v);
    let jid = get("jid").and_then(Value::as_str).unwrap_or("").to_owned();
    let minions = get("minions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    Ok(Some((jid, minions)))
}

/// Python's `str()` of a list of ids: `['a', 'b']`.
fn py_list(ids: &[String]) -> String {
    halite_yaml::py::repr(&Value::Array(ids.iter().map(|s| Value::from(s.as_str())).collect()))
}

/// Runs the batch; returns the highest retcode among the returns (Salt's exit code).
pub fn run(
    client: &mut Client,
    identity: &Identity,
    job: &BatchJob<'_>,
    mut emit: impl FnMut(BatchEvent<'_>) -> Result<(), ClientError>,
) -> Result<i64, ClientError> {
    // Who is up: a test.ping of the target, waiting as the CLI waits.
    let ping = publish(
        client,
        identity,
        vec![
            ("tgt", job.tgt.clone()),
            ("tgt_type", Value::from(job.tgt_type)),
            ("fun", Value::from("test.ping")),
            ("arg", Value::Array(vec![])),
            ("ret", Value::from("")),
            ("kwargs", job.kwargs.clone()),
        ],
    )?;
    let Some((ping_jid, expected)) = ping else {
        emit(BatchEvent::Line("No minions matched the target. No command was sent, no jid was assigned.".into()))?;
        emit(BatchEvent::Line("No minions matched the target.".into()))?;
        return Ok(0);
    };
    let collector =
        Collector::new(&ping_jid, &expected, &[], job.timeout, job.gather_job_timeout, false, Instant::now());
    let mut up: Vec<String> =
        wait_for_returns(client, identity, &ping_jid, collector, |_| Ok(()))?.into_iter().map(|r| r.id).collect();
    up.sort();
    up.dedup();
    for id in expected.iter().filter(|id| !up.contains(id)) {
        emit(BatchEvent::Line(format!("Minion {id} did not respond. No job will be sent.")))?;
    }
    if up.is_empty() {
        return Ok(0);
    }

    let bnum = job.size.of(up.len()).max(1);
    let total = up.len();
    let mut to_run: VecDeque<String> = up.into_iter().collect();
    let mut active: Vec<String> = Vec::new();
    let mut slots_waiting: Vec<Instant> = Vec::new();
    let mut sub_jobs: Vec<(String, Collector, Vec<String>)> = Vec::new();
    let mut done = 0usize;
    let mut worst = 0i64;
    while done < total {
        let now = Instant::now();
        slots_waiting.retain(|t| *t > now);
        let mut next = Vec::new();
        if to_run.len() + slots_waiting.len() <= bnum && active.is_empty() {
            next.extend(to_run.drain(..).rev());
        } else {
            let free = bnum.saturating_sub(active.len() + slots_waiting.len());
            for _ in 0..free {
                match to_run.pop_back() {
                    Some(id) => next.push(id),
                    None => break,
                }
            }
        }
        if !next.is_empty() {
            let mut shown = next.clone();
            shown.sort();
            emit(BatchEvent::Line(format!("\nExecuting run on {}\n", py_list(&shown))))?;
            let ids = Value::Array(next.iter().map(|s| Value::from(s.as_str())).collect());
            let published = publish(
                client,
                identity,
                vec![
                    ("tgt", ids),
                    ("tgt_type", Value::from("list")),
                    ("fun", job.fun.clone()),
                    ("arg", job.arg.clone()),
                    ("ret", Value::from(job.ret)),
                    ("kwargs", job.kwargs.clone()),
                ],
            )?;
            active.extend(next.iter().cloned());
            match published {
                Some((jid, _)) => {
                    let c =
                        Collector::new(&jid, &next, &[], job.timeout, job.gather_job_timeout, false, Instant::now());
                    sub_jobs.push((jid, c, next));
                }
                None => {
                    // Their keys went away between the ping and now: nothing will return.
                    for id in next {
                        emit_empty(&mut emit, &id)?;
                        active.retain(|a| *a != id);
                        done += 1;
                    }
                }
            }
        }

        // Wait for the earliest thing any sub-job waits for (or the next free slot).
        let mut deadline = Instant::now() + Duration::from_millis(200);
        let mut finished = Vec::new();
        for (i, (jid, collector, _)) in sub_jobs.iter_mut().enumerate() {
            match collector.next_step(Instant::now()) {
                Step::Done => finished.push(i),
                Step::WaitUntil(t) => deadline = deadline.min(t),
                Step::FindJob(stragglers) => {
                    let find = crate::returns::publish_find_job(client, identity, jid, &stragglers);
                    collector.find_job_published(find, Instant::now());
                }
            }
        }
        if let Some(t) = slots_waiting.iter().min() {
            deadline = deadline.min(*t);
        }
        for i in finished.into_iter().rev() {
            let (_, _, members) = sub_jobs.remove(i);
            for id in members.iter().filter(|m| active.contains(m)) {
                emit_empty(&mut emit, id)?;
                done += 1;
                if !job.wait.is_zero() {
                    slots_waiting.push(Instant::now() + job.wait);
                }
            }
            active.retain(|a| !members.contains(a));
        }
        if done >= total || sub_jobs.is_empty() {
            continue;
        }
        let Some((tag, data)) = client.next_event(deadline)? else { continue };
        for (jid, collector, _) in sub_jobs.iter_mut() {
            if let Some(ret) = collector.on_event(&tag, &data, Instant::now()) {
                if !active.contains(&ret.id) {
                    continue;
                }
                let retcode = retcode_of(&ret);
                worst = worst.max(retcode);
                emit(BatchEvent::Return { data: batch_view(&ret, jid), out: ret.out.as_deref() })?;
                if job.failhard && retcode > 0 {
                    eprintln!(
                        "[ERROR   ] Minion {} returned with non-zero exit code. Batch run stopped due to failhard",
                        ret.id
                    );
                    return Ok(worst);
                }
                active.retain(|a| *a != ret.id);
                done += 1;
                if !job.wait.is_zero() {
                    slots_waiting.push(Instant::now() + job.wait);
                }
            }
        }
    }
    Ok(worst)
}

/// The dict Salt's batch prints for a return: the return's `retcode` and `jid` beside the
/// minion's own entry.
fn batch_view(ret: &MinionReturn, jid: &str) -> Value {
    let mut pairs = Vec::new();
    if let Some(rc) = &ret.retcode {
        pairs.push((Value::from("retcode"), rc.clone()));
    }
    pairs.push((Value::from("jid"), Value::from(jid)));
    pairs.push((Value::from(ret.id.as_str()), ret.ret.clone()));
    Value::Map(pairs)
}

/// A minion whose sub-job ended without its return: Salt prints it with an empty dict.
fn emit_empty(emit: &mut impl FnMut(BatchEvent<'_>) -> Result<(), ClientError>, id: &str) -> Result<(), ClientError> {
    emit(BatchEvent::Return { data: Value::Map(vec![(Value::from(id), Value::Map(vec![]))]), out: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_sizes_like_salt() {
        assert_eq!(BatchSize::parse("3"), Ok(BatchSize::Count(3)));
        assert_eq!(BatchSize::parse("10%"), Ok(BatchSize::Percent(10.0)));
        assert_eq!(BatchSize::parse("%50"), Ok(BatchSize::Percent(50.0)));
        assert!(BatchSize::parse("x").is_err());
        assert_eq!(BatchSize::Percent(10.0).of(6), 1, "0.6 rounds up");
        assert_eq!(BatchSize::Percent(50.0).of(5), 2, "2.5 rounds down");
        assert_eq!(BatchSize::Count(2).of(100), 2);
    }
}
