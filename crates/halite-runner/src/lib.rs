//! Salt's runner functions that halite has: `jobs.*` over the master's job cache, `manage.*`
//! through jobs of their own, `mine.get` from the master's mine, and
//! `pillar.show_pillar`/`pillar.show_top` compiled by the master from its minion data cache,
//! each returning what Salt's returns (and the outputter it asks for).
//!
//! Owns: the functions' argument binding and results ([`call`]), Salt's reading of
//! arguments ([`args`]), and the wait for a job's returns ([`collect`]).
//!
//! Must not: reach the master itself. A runner uses it through a [`Backend`]: `salt-run`
//! implements it over the local channel (as Salt's runners use the master through its client
//! interfaces), the master in-process for `publish.runner` (`peer_run`) and its own callers.

pub mod args;
pub mod collect;

use std::time::{Duration, Instant};

use halite_ipc::{JobQuery, PillarQuery};
use halite_yaml::{py, Value};

use crate::collect::{wait_for_returns, Collector, MinionReturn};

/// A job as the master published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub jid: String,
    pub minions: Vec<String>,
    pub missing: Vec<String>,
}

/// Publishing jobs and following their events: what waiting for returns needs.
pub trait JobChannel {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Publishes `load` (the fields of Salt's clear `publish` load) and follows the job's
    /// events from before it is sent; `None` when the target names no minion.
    fn publish(&mut self, load: Value) -> Result<Option<Published>, Self::Error>;

    /// The next event of a followed job, or `None` once `deadline` passes.
    fn next_event(&mut self, deadline: Instant) -> Result<Option<(String, Value)>, Self::Error>;
}

/// The rest of the master a runner reads.
pub trait Backend: JobChannel {
    /// Salt's returner reads (`get_load`, `get_jid`, `get_jids`).
    fn job_cache(&mut self, query: JobQuery) -> Result<Value, Self::Error>;
    /// A minion's pillar or merged top file, compiled from its cached grains.
    fn pillar(&mut self, query: PillarQuery) -> Result<Value, Self::Error>;
    /// Minions holding a connection to the publish port (Salt's `connected_ids`).
    fn connected(&mut self) -> Result<Vec<String>, Self::Error>;
    /// Accepted minion ids.
    fn accepted(&mut self) -> Result<Vec<String>, Self::Error>;
    /// The mine data `tgt`/`fun`/`tgt_type` select, asked as the master's own id (Salt's
    /// `RemoteFuncs._mine_get` with `id: <master id>`, so minion-side ACLs apply to it).
    fn mine_get(&mut self, tgt: Value, fun: Value, tgt_type: Value) -> Result<Value, Self::Error>;
    /// What a Salt runner prints besides its return (`salt-run` prints it, the master logs it).
    fn notice(&mut self, text: &str);
}

/// What a runner gives back: data, and the outputter it asks for (Salt's
/// `{"outputter": ..., "data": ...}` return).
pub struct RunnerOutput {
    pub data: Value,
    pub outputter: Option<String>,
}

impl RunnerOutput {
    fn plain(data: Value) -> RunnerOutput {
        RunnerOutput { data, outputter: None }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// Salt's message for an unknown function.
    #[error("'{0}' is not available.")]
    Unknown(String),
    #[error("{0}")]
    BadArguments(String),
    /// The backend failed (the master unreachable, its store unreadable).
    #[error(transparent)]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

impl RunnerError {
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> RunnerError {
        RunnerError::Backend(Box::new(e))
    }
}

/// The master options runners read.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Seconds a runner's job waits for returns (`-t`, else the master's `timeout`).
    pub timeout: u64,
    /// Salt's `gather_job_timeout`.
    pub gather_job_timeout: u64,
}

/// The runner functions halite has, by Salt's names.
pub const FUNCTIONS: &[&str] = &[
    "jobs.active",
    "jobs.list_job",
    "jobs.list_jobs",
    "jobs.lookup_jid",
    "manage.down",
    "manage.not_present",
    "manage.present",
    "manage.status",
    "manage.up",
    "mine.get",
    "pillar.show_pillar",
    "pillar.show_top",
];

/// Calls runner `fun` with Salt's parsed arguments (`parse_input`: positionals, then a
/// `__kwarg__` dict).
pub fn call<B: Backend>(
    ctx: &mut B,
    settings: &Settings,
    fun: &str,
    args: &[Value],
) -> Result<RunnerOutput, RunnerError> {
    if fun == "pillar.show_pillar" {
        return show_pillar(ctx, args);
    }
    if fun == "mine.get" {
        return mine_get(ctx, args);
    }
    let params: &[&str] = match fun {
        "jobs.lookup_jid" => &["jid", "ext_source", "returned", "missing", "display_progress"],
        "jobs.list_job" => &["jid", "ext_source", "display_progress"],
        "jobs.list_jobs" => &[
            "ext_source",
            "outputter",
            "search_metadata",
            "search_function",
            "search_target",
            "start_time",
            "end_time",
            "display_progress",
        ],
        "jobs.active" => &["display_progress"],
        "manage.status" => &["output", "tgt", "tgt_type", "timeout", "gather_job_timeout"],
        "manage.up" => &["tgt", "tgt_type", "timeout", "gather_job_timeout"],
        "manage.down" => &["removekeys", "tgt", "tgt_type", "timeout", "gather_job_timeout"],
        "manage.present" | "manage.not_present" => &["subset", "show_ip"],
        "pillar.show_top" => &["minion", "saltenv"],
        _ => return Err(RunnerError::Unknown(fun.to_owned())),
    };
    let bound = bind(fun, params, args)?;
    let arg = |name: &str| bound.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
    let text = |name: &str| arg(name).map(py::text);
    let truthy = |name: &str, default: bool| arg(name).map_or(default, py::truthy);
    let need_jid = || {
        text("jid")
            .ok_or_else(|| RunnerError::BadArguments(format!("{fun}() missing 1 required positional argument: 'jid'")))
    };
    match fun {
        "jobs.lookup_jid" => lookup_jid(ctx, &need_jid()?, truthy("returned", true), truthy("missing", false)),
        "jobs.list_job" => list_job(ctx, &need_jid()?).map(RunnerOutput::plain),
        "jobs.list_jobs" => {
            for unsupported in ["start_time", "end_time", "ext_source"] {
                if arg(unsupported).is_some_and(|v| !v.is_nil()) {
                    return Err(RunnerError::BadArguments(format!("{unsupported} is not supported by halite yet")));
                }
            }
            let data = list_jobs(ctx, arg("search_function"), arg("search_target"), arg("search_metadata"))?;
            Ok(RunnerOutput { data, outputter: text("outputter").filter(|o| o != "None") })
        }
        "jobs.active" => active(ctx, settings).map(RunnerOutput::plain),
        "pillar.show_top" => {
            let query = PillarQuery {
                minion: text("minion").unwrap_or_default(),
                saltenv: Some(text("saltenv").unwrap_or_else(|| "base".into())),
                pillarenv: None,
                grains: Value::Map(Vec::new()),
                top: true,
            };
            pillar(ctx, query).map(RunnerOutput::plain)
        }
        "manage.status" | "manage.up" | "manage.down" => {
            if truthy("removekeys", false) {
                return Err(RunnerError::BadArguments(
                    "removekeys is not supported by halite yet; use salt-key -d".into(),
                ));
            }
            let tgt = text("tgt").unwrap_or_else(|| "*".into());
            let tgt_type = text("tgt_type").unwrap_or_else(|| "glob".into());
            let timeout = arg("timeout").and_then(Value::as_u64);
            let gather = arg("gather_job_timeout").and_then(Value::as_u64);
            let (up, down) = ping(ctx, settings, &tgt, &tgt_type, timeout, gather)?;
            let list = |ids: Vec<String>| Value::Array(ids.into_iter().map(Value::from).collect());
            Ok(RunnerOutput::plain(match fun {
                "manage.up" => list(up),
                "manage.down" => list(down),
                _ => Value::Map(vec![(Value::from("up"), list(up)), (Value::from("down"), list(down))]),
            }))
        }
        _ => {
            let connected = ctx.connected().map_err(RunnerError::backend)?;
            let ids = if fun == "manage.present" {
                connected
            } else {
                let accepted = ctx.accepted().map_err(RunnerError::backend)?;
                accepted.into_iter().filter(|id| !connected.contains(id)).collect()
            };
            Ok(RunnerOutput::plain(Value::Array(ids.into_iter().map(Value::from).collect())))
        }
    }
}

/// `pillar.show_pillar(minion='*', **kwargs)`: `saltenv` and `pillarenv` choose the
/// environments; any other keyword is a grain set for this compile.
fn show_pillar<B: Backend>(ctx: &mut B, args: &[Value]) -> Result<RunnerOutput, RunnerError> {
    let mut query = PillarQuery {
        minion: "*".into(),
        saltenv: Some("base".into()),
        pillarenv: None,
        grains: Value::Map(Vec::new()),
        top: false,
    };
    let mut positional = 0;
    for a in args {
        match a {
            Value::Map(pairs)
                if pairs.iter().any(|(k, v)| k.as_str() == Some("__kwarg__") && v.as_bool() == Some(true)) =>
            {
                for (k, v) in pairs.iter().filter(|(k, _)| k.as_str() != Some("__kwarg__")) {
                    match k.as_str() {
                        Some("minion") => query.minion = py::text(v),
                        Some("saltenv") => query.saltenv = Some(py::text(v)),
                        Some("pillarenv") => query.pillarenv = Some(py::text(v)),
                        _ => {
                            if let Value::Map(grains) = &mut query.grains {
                                grains.push((k.clone(), v.clone()));
                            }
                        }
                    }
                }
            }
            other if positional == 0 => {
                query.minion = py::text(other);
                positional += 1;
            }
            _ => {
                return Err(RunnerError::BadArguments(
                    "show_pillar() takes from 0 to 1 positional arguments but 2 were given".into(),
                ))
            }
        }
    }
    pillar(ctx, query).map(RunnerOutput::plain)
}

fn pillar<B: Backend>(ctx: &mut B, query: PillarQuery) -> Result<Value, RunnerError> {
    ctx.pillar(query).map_err(RunnerError::backend)
}

/// The `_mine_get` load a runner sends as `master_id`.
pub fn mine_load(master_id: &str, tgt: Value, fun: Value, tgt_type: Value) -> Value {
    Value::Map(vec![
        (Value::from("id"), Value::from(master_id)),
        (Value::from("fun"), fun),
        (Value::from("tgt"), tgt),
        (Value::from("tgt_type"), tgt_type),
    ])
}

/// `mine.get(tgt, fun, tgt_type='glob')`.
fn mine_get<B: Backend>(ctx: &mut B, args: &[Value]) -> Result<RunnerOutput, RunnerError> {
    let bound = bind("get", &["tgt", "fun", "tgt_type"], args)?;
    let arg = |name: &str| bound.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
    let (Some(tgt), Some(fun)) = (arg("tgt"), arg("fun")) else {
        let missing: Vec<String> =
            ["tgt", "fun"].iter().filter(|p| arg(p).is_none()).map(|p| format!("'{p}'")).collect();
        return Err(RunnerError::BadArguments(format!(
            "get() missing {} required positional argument{}: {}",
            missing.len(),
            if missing.len() > 1 { "s" } else { "" },
            missing.join(" and ")
        )));
    };
    let tgt_type = arg("tgt_type").unwrap_or_else(|| Value::from("glob"));
    ctx.mine_get(tgt, fun, tgt_type).map(RunnerOutput::plain).map_err(RunnerError::backend)
}

/// Binds positional and keyword arguments to parameter names, as Python calls a function;
/// Salt rejects keyword arguments the function does not take.
pub fn bind<'p>(fun: &str, params: &[&'p str], args: &[Value]) -> Result<Vec<(&'p str, Value)>, RunnerError> {
    let mut bound = Vec::new();
    let mut positional = 0;
    for a in args {
        if let Value::Map(pairs) = a {
            if pairs.iter().any(|(k, v)| k.as_str() == Some("__kwarg__") && *v == Value::Boolean(true)) {
                let mut invalid = Vec::new();
                for (k, v) in pairs.iter().filter(|(k, _)| k.as_str() != Some("__kwarg__")) {
                    match params.iter().find(|p| Some(**p) == k.as_str()) {
                        Some(p) => bound.push((*p, v.clone())),
                        None => invalid.push(format!("{}={}", py::text(k), py::text(v))),
                    }
                }
                if !invalid.is_empty() {
                    return Err(RunnerError::BadArguments(format!(
                        "The following keyword arguments are not valid: {}",
                        invalid.join(", ")
                    )));
                }
                continue;
            }
        }
        let Some(p) = params.get(positional) else {
            return Err(RunnerError::BadArguments(format!(
                "{fun}() takes {} positional arguments but {} were given",
                params.len(),
                positional + 1
            )));
        };
        bound.push((*p, a.clone()));
        positional += 1;
    }
    Ok(bound)
}

fn query<B: Backend>(ctx: &mut B, query: JobQuery) -> Result<Value, RunnerError> {
    ctx.job_cache(query).map_err(RunnerError::backend)
}

fn get<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    map.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
}

fn map_of(pairs: Vec<(&str, Value)>) -> Value {
    Value::Map(pairs.into_iter().map(|(k, v)| (Value::from(k), v)).collect())
}

/// Salt's `jid_to_time`: `2026, Nov 25 02:54:42.895485` from a jid's digits.
pub fn jid_to_time(jid: &str) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let digits: String = jid.chars().take(20).collect();
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return String::new();
    }
    let month: usize = digits[4..6].parse().unwrap_or(1);
    format!(
        "{}, {} {} {}:{}:{}.{}",
        &digits[0..4],
        MONTHS.get(month.wrapping_sub(1)).unwrap_or(&"Jan"),
        &digits[6..8],
        &digits[8..10],
        &digits[10..12],
        &digits[12..14],
        &digits[14..20]
    )
}

/// Salt's `_format_jid_instance`: the job's load in the runners' words.
fn format_job(jid: &str, load: &Value) -> Value {
    if load.is_nil() {
        return map_of(vec![
            ("Error", Value::from("Cannot contact returner or no job with this jid")),
            ("StartTime", Value::from(jid_to_time(jid))),
        ]);
    }
    let field = |k: &str, default: Value| get(load, k).cloned().unwrap_or(default);
    let mut out = vec![
        ("Function", field("fun", Value::from("unknown-function"))),
        ("Arguments", field("arg", Value::Array(vec![]))),
        ("Target", field("tgt", Value::from("unknown-target"))),
        ("Target-type", field("tgt_type", Value::from("list"))),
        ("User", field("user", Value::from("root"))),
    ];
    if let Some(m) = get(load, "metadata").or_else(|| get(load, "kwargs").and_then(|k| get(k, "metadata"))) {
        out.push(("Metadata", m.clone()));
    }
    if let Some(m) = get(load, "Minions") {
        out.push(("Minions", m.clone()));
    }
    out.push(("StartTime", Value::from(jid_to_time(jid))));
    map_of(out)
}

fn list_job<B: Backend>(ctx: &mut B, jid: &str) -> Result<Value, RunnerError> {
    let load = query(ctx, JobQuery::Load(jid.to_owned()))?;
    let returns = query(ctx, JobQuery::Returns(jid.to_owned()))?;
    let mut out = vec![(Value::from("jid"), Value::from(jid))];
    if let Value::Map(pairs) = format_job(jid, &load) {
        out.extend(pairs);
    }
    out.push((Value::from("Result"), result_view(&returns)));
    Ok(Value::Map(out))
}

/// Salt's `get_jid` view of the returns: `{id: {"return": ..., "out"?: ...}}` plus the
/// retcode and success the minion sent.
fn result_view(returns: &Value) -> Value {
    let Some(pairs) = returns.as_map() else { return Value::Map(vec![]) };
    Value::Map(
        pairs
            .iter()
            .map(|(id, ret)| {
                let mut view = vec![(Value::from("return"), get(ret, "return").cloned().unwrap_or(Value::Nil))];
                for key in ["retcode", "success", "out"] {
                    if let Some(v) = get(ret, key) {
                        view.push((Value::from(key), v.clone()));
                    }
                }
                (id.clone(), Value::Map(view))
            })
            .collect(),
    )
}

fn lookup_jid<B: Backend>(ctx: &mut B, jid: &str, returned: bool, missing: bool) -> Result<RunnerOutput, RunnerError> {
    let load = query(ctx, JobQuery::Load(jid.to_owned()))?;
    let returns = query(ctx, JobQuery::Returns(jid.to_owned()))?;
    let mut out = Vec::new();
    let mut outputter = None;
    if let Some(pairs) = returns.as_map() {
        for (id, ret) in pairs {
            if outputter.is_none() {
                outputter = Some(get(ret, "out").and_then(Value::as_str).map(str::to_owned));
            }
            if returned {
                out.push((id.clone(), get(ret, "return").cloned().unwrap_or(Value::Nil)));
            }
        }
    }
    if missing {
        let targeted = get(&load, "Minions").and_then(Value::as_array).cloned().unwrap_or_default();
        for id in targeted {
            if !out.iter().any(|(k, _)| *k == id) && returns.as_map().is_none_or(|p| !p.iter().any(|(k, _)| *k == id)) {
                out.push((id, Value::from("Minion did not return")));
            }
        }
    }
    Ok(RunnerOutput { data: Value::Map(out), outputter: outputter.flatten() })
}

fn list_jobs<B: Backend>(
    ctx: &mut B,
    search_function: Option<&Value>,
    search_target: Option<&Value>,
    search_metadata: Option<&Value>,
) -> Result<Value, RunnerError> {
    let jobs = query(ctx, JobQuery::List)?;
    let patterns = |v: Option<&Value>| -> Vec<String> {
        match v {
            None | Some(Value::Nil) => Vec::new(),
            Some(Value::Array(items)) => items.iter().map(py::text).collect(),
            Some(other) => py::text(other).split(',').map(|s| s.trim().to_owned()).collect(),
        }
    };
    let (functions, targets) = (patterns(search_function), patterns(search_target));
    let mut out = Vec::new();
    for (jid, load) in jobs.as_map().map(Vec::as_slice).unwrap_or_default() {
        // Salt's job listing leaves the expected minions out.
        let jid = py::text(jid);
        let mut job = format_job(&jid, load);
        if let Value::Map(pairs) = &mut job {
            pairs.retain(|(k, _)| k.as_str() != Some("Minions"));
        }
        if let Some(meta) = search_metadata.filter(|m| !m.is_nil()) {
            let Some(wanted) = meta.as_map() else { continue };
            let have = get(&job, "Metadata");
            if !wanted.iter().any(|(k, v)| {
                have.and_then(|h| h.as_map()).is_some_and(|h| h.iter().any(|(hk, hv)| hk == k && hv == v))
            }) {
                continue;
            }
        }
        if !targets.is_empty() {
            let tgt = get(&job, "Target").cloned().unwrap_or(Value::Nil);
            let names: Vec<String> = match &tgt {
                Value::Array(items) => items.iter().map(py::text).collect(),
                other => vec![py::text(other)],
            };
            if !names.iter().any(|n| targets.iter().any(|p| halite_target::fnmatch(n, p))) {
                continue;
            }
        }
        if !functions.is_empty() {
            let f = get(&job, "Function").map(py::text).unwrap_or_default();
            if !functions.iter().any(|p| halite_target::fnmatch(&f, p)) {
                continue;
            }
        }
        out.push((Value::from(jid), job));
    }
    Ok(Value::Map(out))
}

/// A finished job: the minions it expected and the returns that came.
type JobResult = (Vec<String>, Vec<MinionReturn>);

/// Publishes `fun` and waits for its returns as the CLI does, without reporting minions
/// that did not return. `None` when the target names nobody.
fn run_job<B: Backend>(
    ctx: &mut B,
    tgt: &str,
    tgt_type: &str,
    fun: &str,
    timeout: u64,
    gather: u64,
) -> Result<Option<JobResult>, RunnerError> {
    let load = map_of(vec![
        ("tgt", Value::from(tgt)),
        ("tgt_type", Value::from(tgt_type)),
        ("fun", Value::from(fun)),
        ("arg", Value::Array(vec![])),
        ("ret", Value::from("")),
        ("kwargs", Value::Map(vec![])),
    ]);
    let Some(published) = ctx.publish(load).map_err(RunnerError::backend)? else { return Ok(None) };
    let collector = Collector::new(
        &published.jid,
        &published.minions,
        &[],
        Duration::from_secs(timeout),
        Duration::from_secs(gather),
        false,
        Instant::now(),
    );
    let returns = wait_for_returns(ctx, &published.jid, collector, |_| Ok(())).map_err(RunnerError::backend)?;
    Ok(Some((published.minions, returns)))
}

const NO_MATCH: &str = "No minions matched the target. No command was sent, no jid was assigned.";

/// Salt's `manage._ping`: who answers `test.ping`, who does not (both sorted).
fn ping<B: Backend>(
    ctx: &mut B,
    settings: &Settings,
    tgt: &str,
    tgt_type: &str,
    timeout: Option<u64>,
    gather: Option<u64>,
) -> Result<(Vec<String>, Vec<String>), RunnerError> {
    let (timeout, gather) = (timeout.unwrap_or(settings.timeout), gather.unwrap_or(settings.gather_job_timeout));
    let Some((minions, returns)) = run_job(ctx, tgt, tgt_type, "test.ping", timeout, gather)? else {
        ctx.notice(NO_MATCH);
        return Ok((Vec::new(), Vec::new()));
    };
    let mut up: Vec<String> = returns.into_iter().map(|r| r.id).collect();
    up.sort();
    up.dedup();
    let mut down: Vec<String> = minions.into_iter().filter(|m| !up.contains(m)).collect();
    down.sort();
    Ok((up, down))
}

/// Salt's `jobs.active`: each job some minion reports running (`saltutil.running`), with
/// who runs it and who already returned it.
fn active<B: Backend>(ctx: &mut B, settings: &Settings) -> Result<Value, RunnerError> {
    let Some((_, returns)) =
        run_job(ctx, "*", "glob", "saltutil.running", settings.timeout, settings.gather_job_timeout)?
    else {
        ctx.notice(NO_MATCH);
        return Ok(Value::Map(vec![]));
    };
    let mut jobs: Vec<(String, Value, Vec<Value>)> = Vec::new();
    for r in &returns {
        let Some(running) = r.ret.as_array() else { continue };
        for job in running {
            let Some(jid) = get(job, "jid").map(py::text) else { continue };
            let entry = map_of(vec![(r.id.as_str(), get(job, "pid").cloned().unwrap_or(Value::Nil))]);
            match jobs.iter_mut().find(|(j, _, _)| *j == jid) {
                Some((_, _, running)) => running.push(entry),
                None => jobs.push((jid.clone(), job.clone(), vec![entry])),
            }
        }
    }
    let mut out = Vec::new();
    for (jid, job, running) in jobs {
        let mut formatted = format_job(&jid, &job);
        let returned = query(ctx, JobQuery::Returns(jid.clone()))?;
        let returned: Vec<Value> =
            returned.as_map().map(|p| p.iter().map(|(k, _)| k.clone()).collect()).unwrap_or_default();
        if let Value::Map(pairs) = &mut formatted {
            pairs.push((Value::from("Running"), Value::Array(running)));
            pairs.push((Value::from("Returned"), Value::Array(returned)));
        }
        out.push((Value::from(jid), formatted));
    }
    Ok(Value::Map(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jid_times_like_salt() {
        assert_eq!(jid_to_time("20261125025442895485"), "2026, Nov 25 02:54:42.895485");
        assert_eq!(jid_to_time("bogus"), "");
    }

    #[test]
    fn binds_like_python() {
        let kw = Value::Map(vec![
            (Value::from("__kwarg__"), Value::Boolean(true)),
            (Value::from("missing"), Value::Boolean(true)),
        ]);
        let got =
            bind("jobs.lookup_jid", &["jid", "ext_source", "returned", "missing"], &[Value::from("1"), kw]).unwrap();
        assert_eq!(got, vec![("jid", Value::from("1")), ("missing", Value::Boolean(true))]);
        let bad =
            Value::Map(vec![(Value::from("__kwarg__"), Value::Boolean(true)), (Value::from("x"), Value::from(1))]);
        assert!(matches!(bind("f", &["jid"], &[bad]), Err(RunnerError::BadArguments(m)) if m.contains("x=1")));
    }
}
