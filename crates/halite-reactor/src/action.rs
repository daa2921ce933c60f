//! A compiled chunk read as Salt's `ReactWrap.run` reads it: which client, which function,
//! and its arguments in either style — the old one (`tgt`, `arg`, `kwarg` and, for wheel and
//! runner functions, their parameters by name) or the new one (`args`: keyword arguments as a
//! list of single-key mappings, which wins over `arg`/`kwarg`).

use halite_yaml::py::{text, truthy};
use halite_yaml::Value;

use crate::compile::{get, Chunk};

/// `REACTOR_INTERNAL_KEYWORDS`: chunk keys that are never a function's argument.
const INTERNAL: &[&str] = &["__id__", "__sls__", "name", "order", "fun", "key", "state"];

/// Keys the compiler adds that no client reads.
const COMPILER: &[&str] = &["__env__", "__sls_included_from__", "name_order"];

/// One reaction, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Reaction {
    /// The ID of the reaction in its file.
    pub id: String,
    /// The file it came from.
    pub sls: String,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `local.<fun>`: a job published to minions (`LocalClient.cmd_async`).
    Local(LocalJob),
    /// `wheel.key.accept|reject|delete`: key changes on the master.
    WheelKey { op: KeyOp, patterns: Vec<String> },
    /// `runner.<fun>`: a runner on the master.
    Runner(RunnerCall),
}

/// A job as `LocalClient.cmd_async` publishes it.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalJob {
    pub tgt: Value,
    pub tgt_type: String,
    pub fun: String,
    /// Positional arguments, with the keyword arguments appended as Salt's `__kwarg__` dict.
    pub arg: Vec<Value>,
    pub ret: String,
    pub jid: Option<String>,
    /// The other keys of the chunk, which Salt packs into the publish load's `kwargs`.
    pub kwargs: Vec<(String, Value)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOp {
    Accept { include_rejected: bool, include_denied: bool },
    Reject { include_accepted: bool, include_denied: bool },
    Delete,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunnerCall {
    pub fun: String,
    pub arg: Vec<Value>,
    pub kwarg: Vec<(String, Value)>,
}

/// A reaction that cannot run, named as Salt's log names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Reactor '{id}' (in {sls}) failed to execute {state} '{fun}': {reason}")]
pub struct ReactionError {
    pub id: String,
    pub sls: String,
    pub state: String,
    pub fun: String,
    pub reason: String,
}

/// The positional and keyword arguments a chunk gives its client.
struct Args {
    arg: Vec<Value>,
    kwarg: Vec<(String, Value)>,
}

/// Reads one chunk.
pub fn read(chunk: &Chunk) -> Result<Reaction, ReactionError> {
    let field = |k: &str| get(chunk, k).map(text).unwrap_or_default();
    let (id, sls, state, fun) = (field("__id__"), field("__sls__"), field("state"), field("fun"));
    let fail = |reason: String| ReactionError {
        id: id.clone(),
        sls: sls.clone(),
        state: state.clone(),
        fun: fun.clone(),
        reason,
    };
    let action = match state.as_str() {
        "local" => local(chunk, &fun).map(Action::Local),
        "wheel" => wheel(chunk, &fun),
        "runner" => runner(chunk, &fun).map(Action::Runner),
        "caller" => Err("caller reactions run salt-call on a minion of the master's host; halite's reactor runs \
                         local, wheel and runner reactions"
            .to_owned()),
        other => Err(format!("ReactWrap is missing a wrapper function for '{other}'")),
    }
    .map_err(fail)?;
    Ok(Reaction { id, sls, action })
}

/// The new style: `args` as keyword arguments (a mapping, or a list of single-key mappings).
fn new_style(chunk: &Chunk) -> Option<Result<Args, String>> {
    let args = get(chunk, "args")?;
    let kwarg = match args {
        Value::Map(pairs) => Some(pairs.iter().map(|(k, v)| (text(k), v.clone())).collect::<Vec<_>>()),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::Map(pairs) if pairs.len() == 1 => Some((text(&pairs[0].0), pairs[0].1.clone())),
                _ => None,
            })
            .collect(),
        _ => None,
    };
    Some(match kwarg {
        Some(kwarg) if !kwarg.is_empty() => Ok(Args { arg: Vec::new(), kwarg }),
        _ => {
            Err("Incorrect argument format, check the Reactor System documentation for the correct format.".to_owned())
        }
    })
}

/// `arg` / `kwarg` as written in the chunk (absent: none).
fn explicit(chunk: &Chunk) -> Result<Args, String> {
    let arg = match get(chunk, "arg") {
        None | Some(Value::Nil) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        // Python would iterate a string's characters; a list of one is what was meant.
        Some(other) => return Err(format!("arg must be a list, not {}", halite_yaml::py::repr(other))),
    };
    let kwarg = match get(chunk, "kwarg") {
        None | Some(Value::Nil) => Vec::new(),
        Some(Value::Map(pairs)) => pairs.iter().map(|(k, v)| (text(k), v.clone())).collect(),
        Some(other) => return Err(format!("kwarg must be a mapping, not {}", halite_yaml::py::repr(other))),
    };
    Ok(Args { arg, kwarg })
}

fn local(chunk: &Chunk, fun: &str) -> Result<LocalJob, String> {
    let args = match new_style(chunk) {
        Some(args) => args?,
        None => explicit(chunk)?,
    };
    let tgt = get(chunk, "tgt").cloned().ok_or("local takes at least 2 arguments (1 given): it needs a tgt")?;
    let tgt_type = get(chunk, "tgt_type").map_or_else(|| "glob".to_owned(), text);
    let ret = get(chunk, "ret").filter(|v| truthy(v)).map(text).unwrap_or_default();
    let jid = get(chunk, "jid").filter(|v| truthy(v)).map(text);
    let consumed = ["fun", "tgt", "arg", "kwarg", "args", "tgt_type", "ret", "jid", "timeout"];
    let kwargs =
        chunk.iter().filter(|(k, _)| !consumed.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut arg = args.arg;
    if !args.kwarg.is_empty() {
        let mut kw = vec![(Value::from("__kwarg__"), Value::Boolean(true))];
        kw.extend(args.kwarg.into_iter().map(|(k, v)| (Value::from(k), v)));
        arg.push(Value::Map(kw));
    }
    Ok(LocalJob { tgt, tgt_type, fun: fun.to_owned(), arg, ret, jid, kwargs })
}

/// The chunk's keys that are a function's arguments in the old style.
fn named(chunk: &Chunk) -> Vec<(String, Value)> {
    chunk
        .iter()
        .filter(|(k, _)| !INTERNAL.contains(&k.as_str()) && !COMPILER.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn wheel(chunk: &Chunk, fun: &str) -> Result<Action, String> {
    let params: &[&str] = match fun {
        "key.accept" => &["match", "include_rejected", "include_denied"],
        "key.reject" => &["match", "include_accepted", "include_denied"],
        "key.delete" => &["match"],
        other => {
            return Err(format!(
                "wheel function '{other}' is not available in halite's reactor (it runs key.accept, key.reject and \
                 key.delete)"
            ))
        }
    };
    let args = match new_style(chunk) {
        Some(args) => args?,
        None if get(chunk, "arg").is_some() && get(chunk, "kwarg").is_some() => explicit(chunk)?,
        // Salt binds the chunk's keys to the function's parameters (`format_call`).
        None => Args { arg: Vec::new(), kwarg: named(chunk) },
    };
    if args.arg.len() > params.len() {
        return Err(format!("{fun} takes at most {} arguments ({} given)", params.len(), args.arg.len()));
    }
    let mut bound: Vec<(&str, Value)> = params.iter().copied().zip(args.arg).collect();
    let mut unknown = Vec::new();
    for (k, v) in args.kwarg {
        match params.iter().find(|p| **p == k) {
            Some(p) if bound.iter().any(|(b, _)| b == p) => {
                return Err(format!("{fun} got multiple values for argument '{k}'"))
            }
            Some(p) => bound.push((p, v)),
            None => unknown.push(format!("'{k}'")),
        }
    }
    if !unknown.is_empty() {
        return Err(format!("{} not a keyword argument of '{fun}'", unknown.join(", ")));
    }
    let value = |p: &str| bound.iter().find(|(b, _)| *b == p).map(|(_, v)| v);
    let flag = |p: &str| value(p).is_some_and(truthy);
    let patterns = match value("match") {
        None => return Err(format!("{fun} takes at least 1 argument (0 given): it needs a match")),
        Some(Value::Array(items)) => items.iter().map(text).collect(),
        Some(one) => text(one).split(',').map(str::to_owned).collect(),
    };
    let op = match fun {
        "key.accept" => {
            KeyOp::Accept { include_rejected: flag("include_rejected"), include_denied: flag("include_denied") }
        }
        "key.reject" => {
            KeyOp::Reject { include_accepted: flag("include_accepted"), include_denied: flag("include_denied") }
        }
        _ => KeyOp::Delete,
    };
    Ok(Action::WheelKey { op, patterns })
}

fn runner(chunk: &Chunk, fun: &str) -> Result<RunnerCall, String> {
    let args = match new_style(chunk) {
        Some(args) => args?,
        None if get(chunk, "arg").is_some() || get(chunk, "kwarg").is_some() => explicit(chunk)?,
        // Salt binds the chunk's keys to the runner's parameters by name; passing them as
        // keyword arguments binds them the same way.
        None => Args { arg: Vec::new(), kwarg: named(chunk) },
    };
    Ok(RunnerCall { fun: fun.to_owned(), arg: args.arg, kwarg: args.kwarg })
}
