//! Waiting for a job's returns as Salt's `LocalClient.get_iter_returns` and
//! `get_cli_event_returns` do. [`Collector`] holds the rule without I/O: the caller feeds
//! events and the clock in, and is told when to publish `saltutil.find_job`, how long to
//! wait, and what to report; [`wait_for_returns`] drives it over any [`JobChannel`] (the
//! CLI's local channel, or the master's own bus).
//!
//! The rule: wait `timeout` for the expected minions; then ask the stragglers with
//! `saltutil.find_job` whether they still run the job, and give those that do another
//! `timeout` from their answer, asking again every `gather_job_timeout`; a minion that never
//! answers is reported as not having returned.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use halite_yaml::Value;

use crate::JobChannel;

/// One minion's result, as the CLI prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct MinionReturn {
    pub id: String,
    pub ret: Value,
    /// The outputter the minion asked for (`out` of its return; `no_return` for minions that
    /// did not return).
    pub out: Option<String>,
    pub retcode: Option<Value>,
}

/// What the caller should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Publish `saltutil.find_job [jid]` to these minions (list target) and report the new
    /// job's jid with [`Collector::find_job_published`].
    FindJob(Vec<String>),
    /// Wait for events until this instant, then ask again.
    WaitUntil(Instant),
    /// Every expected minion returned or timed out; [`Collector::finish`] has the rest.
    Done,
}

pub struct Collector {
    jid: String,
    minions: BTreeSet<String>,
    missing: BTreeSet<String>,
    found: BTreeSet<String>,
    minion_timeouts: HashMap<String, Instant>,
    /// Expected minions not yet found: kept as the sets change, so that an event costs
    /// O(log n) and a 10,000-minion job is not O(n²).
    pending: usize,
    timeout: Duration,
    gather_job_timeout: Duration,
    timeout_at: Instant,
    minions_running: bool,
    find_jobs: Vec<String>,
    expect_minions: bool,
}

/// The longest a job is waited for, whatever timeout was asked: a week.
const LONGEST_WAIT: Duration = Duration::from_secs(7 * 24 * 3600);

impl Collector {
    /// `expect_minions` is Salt's `verbose or show_timeout`: report minions that did not
    /// return (the default; `--hide-timeout` turns it off).
    pub fn new(
        jid: &str,
        minions: &[String],
        missing: &[String],
        timeout: Duration,
        gather_job_timeout: Duration,
        expect_minions: bool,
        now: Instant,
    ) -> Collector {
        // Timeouts can come from a minion (a peer publish's `tmo`) or a reaction: a huge one
        // must mean "a long wait", not an Instant that overflows.
        let (timeout, gather_job_timeout) = (timeout.min(LONGEST_WAIT), gather_job_timeout.min(LONGEST_WAIT));
        let mut collector = Collector {
            jid: jid.to_owned(),
            minions: BTreeSet::new(),
            missing: missing.iter().cloned().collect(),
            found: BTreeSet::new(),
            minion_timeouts: HashMap::new(),
            pending: 0,
            timeout,
            gather_job_timeout,
            timeout_at: now + timeout,
            minions_running: true,
            find_jobs: Vec::new(),
            expect_minions,
        };
        for id in minions {
            collector.expect(id.clone(), now);
        }
        collector
    }

    /// Adds an expected minion. Its own timeout starts now, as Salt's loop starts it on the
    /// first pass that finds the minion waiting.
    fn expect(&mut self, id: String, now: Instant) {
        self.minion_timeouts.entry(id.clone()).or_insert(now + self.timeout);
        let found = self.found.contains(&id);
        if self.minions.insert(id) && !found {
            self.pending += 1;
        }
    }

    fn stop_expecting(&mut self, id: &str) {
        if self.minions.remove(id) && !self.found.contains(id) {
            self.pending -= 1;
        }
    }

    fn mark_found(&mut self, id: String) {
        let expected = self.minions.contains(&id);
        if self.found.insert(id) && expected {
            self.pending -= 1;
        }
    }

    /// Takes one event of the job or of a `find_job` it sent; a return of the job comes back
    /// to be printed.
    ///
    /// Only the master's `salt/job/<jid>/new` says which minions a job expects (a minion may
    /// fire its own progress events under the job's tag, and must not add minions to wait
    /// for), and a return counts only under `salt/job/<jid>/ret/<id>` with `data.id` that
    /// same id.
    pub fn on_event(&mut self, tag: &str, data: &Value, now: Instant) -> Option<MinionReturn> {
        let job_prefix = format!("salt/job/{}/", self.jid);
        if let Some(rest) = tag.strip_prefix(&job_prefix) {
            return self.on_job_event(rest, data, now);
        }
        let find_job = self.find_jobs.iter().find_map(|j| tag.strip_prefix(&format!("salt/job/{j}/")));
        if let Some(rest) = find_job {
            self.on_find_job_event(rest, data, now);
        }
        None
    }

    /// `rest`: the tag past `salt/job/<jid>/`.
    fn on_job_event(&mut self, rest: &str, data: &Value, now: Instant) -> Option<MinionReturn> {
        if rest == "new" {
            let Some(Value::Array(ids)) = data.as_map().and_then(|_| get(data, "minions")) else { return None };
            for id in ids.iter().filter_map(|v| v.as_str()) {
                self.expect(id.to_owned(), now);
            }
            if let Some(Value::Array(ids)) = get(data, "missing") {
                self.missing.extend(ids.iter().filter_map(|v| v.as_str().map(str::to_owned)));
            }
            return None;
        }
        let tag_id = rest.strip_prefix("ret/")?;
        let ret = get(data, "return")?.clone();
        let id = get(data, "id")?.as_str()?.to_owned();
        if id != tag_id {
            return None;
        }
        self.mark_found(id.clone());
        Some(MinionReturn {
            id,
            ret,
            out: get(data, "out").and_then(Value::as_str).map(str::to_owned),
            retcode: get(data, "retcode").cloned(),
        })
    }

    fn on_find_job_event(&mut self, rest: &str, data: &Value, now: Instant) {
        if rest == "new" {
            if let Some(Value::Array(ids)) = get(data, "minions") {
                for id in ids.iter().filter_map(|v| v.as_str()) {
                    self.expect(id.to_owned(), now);
                }
            }
            return;
        }
        let Some(tag_id) = rest.strip_prefix("ret/") else { return };
        let Some(id) = get(data, "id").and_then(Value::as_str).map(str::to_owned) else { return };
        if id != tag_id {
            return;
        }
        if get(data, "retcode").and_then(Value::as_i64).is_some_and(|rc| rc > 0) {
            // find_job itself failed on that minion: Salt stops waiting for it.
            self.stop_expecting(&id);
            return;
        }
        let running = match get(data, "return") {
            Some(Value::Map(pairs)) if pairs.is_empty() => false,
            Some(ret @ Value::Map(_)) => !matches!(get(ret, "return"), Some(Value::Map(p)) if p.is_empty()),
            _ => false,
        };
        if running {
            self.minion_timeouts.insert(id.clone(), now + self.timeout);
            self.expect(id, now);
            self.minions_running = true;
        }
    }

    /// Salt's end-of-loop checks: all found, time to ask the stragglers, or all timed out.
    pub fn next_step(&mut self, now: Instant) -> Step {
        if self.pending == 0 {
            return Step::Done;
        }
        if now <= self.timeout_at {
            return Step::WaitUntil(self.timeout_at + Duration::from_millis(1));
        }
        let waiting: Vec<String> = self.minions.difference(&self.found).cloned().collect();
        if self.minions_running {
            return Step::FindJob(waiting);
        }
        let latest = waiting.iter().filter_map(|id| self.minion_timeouts.get(id)).max().copied();
        match latest {
            Some(t) if now < t => Step::WaitUntil(t),
            _ => Step::Done,
        }
    }

    /// Records the `find_job` publish (`None` when it could not be sent): its events are
    /// watched from now on, and the stragglers get `gather_job_timeout` to answer it.
    pub fn find_job_published(&mut self, find_jid: Option<String>, now: Instant) {
        self.find_jobs.extend(find_jid);
        self.minions_running = false;
        self.timeout_at = now + self.gather_job_timeout;
    }

    /// The jids of the `find_job` publishes, whose events the caller must follow too.
    pub fn find_jobs(&self) -> &[String] {
        &self.find_jobs
    }

    /// What `get_cli_event_returns` yields after the loop: a "did not return" entry for each
    /// expected minion that never returned (when expected), and for each missing one.
    pub fn finish(self) -> Vec<MinionReturn> {
        let mut out = Vec::new();
        let mut reported = BTreeSet::new();
        if self.expect_minions {
            for id in self.minions.difference(&self.found) {
                reported.insert(id.clone());
                out.push(no_response(id, &self.jid));
            }
        }
        for id in self.missing.difference(&self.found) {
            if reported.insert(id.clone()) {
                out.push(no_response(id, &self.jid));
            }
        }
        out
    }
}

/// Drives a [`Collector`] over a channel that published job `jid` and follows its events:
/// reports through `on_return` as returns arrive, sends the `find_job` follow-ups, and
/// returns every minion's result (those that did not return included, when `collector`
/// expects them).
pub fn wait_for_returns<C: JobChannel>(
    channel: &mut C,
    jid: &str,
    mut collector: Collector,
    mut on_return: impl FnMut(&MinionReturn) -> Result<(), C::Error>,
) -> Result<Vec<MinionReturn>, C::Error> {
    let mut all = Vec::new();
    loop {
        match collector.next_step(Instant::now()) {
            Step::Done => break,
            Step::FindJob(stragglers) => {
                let find_jid = publish_find_job(channel, jid, &stragglers);
                collector.find_job_published(find_jid, Instant::now());
            }
            Step::WaitUntil(deadline) => {
                if let Some((tag, data)) = channel.next_event(deadline)? {
                    if let Some(ret) = collector.on_event(&tag, &data, Instant::now()) {
                        on_return(&ret)?;
                        all.push(ret);
                    }
                }
            }
        }
    }
    for ret in collector.finish() {
        on_return(&ret)?;
        all.push(ret);
    }
    Ok(all)
}

/// Salt's `gather_job_info`: `saltutil.find_job [jid]` to the stragglers, followed on the
/// same channel. `None` when nothing could be published (then they are reported).
pub fn publish_find_job<C: JobChannel>(channel: &mut C, jid: &str, stragglers: &[String]) -> Option<String> {
    let load = Value::Map(vec![
        (Value::from("tgt"), Value::Array(stragglers.iter().map(|s| Value::from(s.as_str())).collect())),
        (Value::from("tgt_type"), Value::from("list")),
        (Value::from("fun"), Value::from("saltutil.find_job")),
        (Value::from("arg"), Value::Array(vec![Value::from(jid)])),
        (Value::from("ret"), Value::from("")),
        (Value::from("kwargs"), Value::Map(vec![])),
    ]);
    channel.publish(load).ok().flatten().map(|p| p.jid)
}

fn no_response(id: &str, jid: &str) -> MinionReturn {
    MinionReturn {
        id: id.to_owned(),
        ret: Value::from(format!(
            "Minion did not return. [No response]\nThe minions may not have all finished running and any remaining \
             minions will return upon completion. To look up the return data for this job later, run the following \
             command:\n\nsalt-run jobs.lookup_jid {jid}"
        )),
        out: Some("no_return".to_owned()),
        retcode: Some(Value::from(1)),
    }
}

fn get<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    map.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
}

/// Salt's `_get_retcode` of one minion's return: its `retcode`, the largest of a dict of
/// them, 0 when absent.
pub fn retcode_of(ret: &MinionReturn) -> i64 {
    match &ret.retcode {
        Some(Value::Map(pairs)) => pairs.iter().filter_map(|(_, v)| v.as_i64()).max().unwrap_or(0),
        Some(v) => v.as_i64().unwrap_or_else(|| i64::from(!v.is_nil())),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: Vec<(&str, Value)>) -> Value {
        Value::Map(pairs.into_iter().map(|(k, v)| (Value::from(k), v)).collect())
    }

    fn ret_event(id: &str, ret: Value) -> Value {
        map(vec![("id", Value::from(id)), ("return", ret), ("retcode", Value::from(0))])
    }

    #[test]
    fn an_absurd_timeout_is_a_long_wait_not_an_overflow() {
        let t0 = Instant::now();
        let ids = vec!["a".to_owned()];
        let mut c = Collector::new("1", &ids, &[], Duration::from_secs(u64::MAX), Duration::MAX, true, t0);
        assert_eq!(c.next_step(t0), Step::WaitUntil(t0 + LONGEST_WAIT + Duration::from_millis(1)));
    }

    #[test]
    fn all_return_before_the_timeout() {
        let t0 = Instant::now();
        let ids = vec!["a".to_string(), "b".to_string()];
        let mut c = Collector::new("1", &ids, &[], Duration::from_secs(5), Duration::from_secs(10), true, t0);
        assert_eq!(c.next_step(t0), Step::WaitUntil(t0 + Duration::from_secs(5) + Duration::from_millis(1)));
        assert!(c.on_event("salt/job/1/ret/a", &ret_event("a", Value::Boolean(true)), t0).is_some());
        assert!(c.on_event("salt/job/1/new", &map(vec![("minions", Value::Array(vec![]))]), t0).is_none());
        c.on_event("salt/job/1/ret/b", &ret_event("b", Value::Boolean(true)), t0);
        assert_eq!(c.next_step(t0), Step::Done);
        assert!(c.finish().is_empty());
    }

    #[test]
    fn only_the_masters_new_event_adds_minions_and_a_return_names_its_sender() {
        let t0 = Instant::now();
        let ids = vec!["a".to_string()];
        let mut c = Collector::new("1", &ids, &[], Duration::from_secs(5), Duration::from_secs(10), true, t0);
        // A minion's own progress event under the job's tag claims more minions.
        let ghosts = map(vec![("minions", Value::Array(vec![Value::from("ghost")]))]);
        assert!(c.on_event("salt/job/1/prog/a/0", &ghosts, t0).is_none());
        // Another jid that starts with this one's digits is another job.
        assert!(c.on_event("salt/job/10/ret/a", &ret_event("a", Value::Boolean(true)), t0).is_none());
        // A return whose data names another minion than its tag.
        assert!(c.on_event("salt/job/1/ret/a", &ret_event("ghost", Value::Boolean(true)), t0).is_none());
        assert!(c.on_event("salt/job/1/ret/a", &ret_event("a", Value::Boolean(true)), t0).is_some());
        assert_eq!(c.next_step(t0), Step::Done);
    }

    #[test]
    fn stragglers_are_asked_then_reported() {
        let t0 = Instant::now();
        let ids = vec!["a".to_string(), "slow".to_string(), "gone".to_string()];
        let (timeout, gather) = (Duration::from_secs(5), Duration::from_secs(10));
        let mut c = Collector::new("1", &ids, &[], timeout, gather, true, t0);
        c.on_event("salt/job/1/ret/a", &ret_event("a", Value::Boolean(true)), t0);
        let t1 = t0 + Duration::from_secs(6);
        assert_eq!(c.next_step(t1), Step::FindJob(vec!["gone".into(), "slow".into()]));
        c.find_job_published(Some("2".into()), t1);
        // `slow` still runs the job; `gone` never answers.
        let running = map(vec![("jid", Value::from("1"))]);
        c.on_event("salt/job/2/ret/slow", &ret_event("slow", running), t1);
        let t2 = t1 + Duration::from_secs(11);
        assert_eq!(c.next_step(t2), Step::FindJob(vec!["gone".into(), "slow".into()]));
        c.find_job_published(Some("3".into()), t2);
        c.on_event("salt/job/1/ret/slow", &ret_event("slow", Value::Boolean(true)), t2);
        let t3 = t2 + Duration::from_secs(11);
        assert_eq!(c.next_step(t3), Step::Done);
        let left = c.finish();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, "gone");
        assert!(left[0].ret.as_str().unwrap().starts_with("Minion did not return. [No response]"));
        assert_eq!(retcode_of(&left[0]), 1);
    }
}
