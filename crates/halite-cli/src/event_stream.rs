//! `salt-run state.event`: the master's event bus, live, one line per matching event in
//! Salt's format (`tag<TAB>json`), for shell scripts and for watching a site.
//!
//! The master streams every event over the local channel; the tag filter runs here, with
//! Salt's `expr_match` (a glob, else an anchored regular expression), as Salt's runner
//! filters what its bus subscription delivers.

use std::io::Write;

use halite_ipc::Request;
use halite_yaml::dump::{json, JsonStyle};
use halite_yaml::{py, Value};

use halite_runner::bind;

use crate::runners::{Context, RunnerError, RunnerOutput};

/// The runner's parameters, in Salt's order.
const PARAMS: &[&str] = &["tagmatch", "count", "quiet", "sock_dir", "pretty", "node"];

/// What the arguments ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    pub tagmatch: String,
    /// Matching events still to print before returning; negative: forever.
    pub count: i64,
    pub quiet: bool,
    pub pretty: bool,
}

impl Watch {
    pub fn from_args(args: &[Value]) -> Result<Watch, RunnerError> {
        let mut watch = Watch { tagmatch: "*".into(), count: -1, quiet: false, pretty: false };
        for (name, value) in bind("state.event", PARAMS, args)? {
            match name {
                "tagmatch" => watch.tagmatch = py::text(&value),
                "count" => {
                    watch.count = value.as_i64().or_else(|| py::text(&value).parse().ok()).ok_or_else(|| {
                        RunnerError::BadArguments(format!("count: {} is not an integer", py::repr(&value)))
                    })?
                }
                "quiet" => watch.quiet = py::truthy(&value),
                "pretty" => watch.pretty = py::truthy(&value),
                "node" if py::text(&value) != "master" => {
                    return Err(RunnerError::BadArguments(format!(
                        "node={}: salt-run watches the master's bus; use salt-call state.event for a minion's",
                        py::text(&value)
                    )))
                }
                // `sock_dir` names where Salt's bus socket is; halite's channel is found
                // from the master config, which `-c` chooses.
                _ => {}
            }
        }
        Ok(watch)
    }

    /// The line Salt prints for an event, or `None` when the tag does not match.
    pub fn line(&self, tag: &str, data: &Value) -> Option<String> {
        if !halite_target::expr_match(tag, &self.tagmatch) {
            return None;
        }
        let style = JsonStyle { indent: self.pretty.then_some(4), sort_keys: self.pretty, ensure_ascii: false };
        Some(format!("{tag}\t{}", json(data, &style)))
    }
}

/// Streams matching events to `out` until `count` of them have been seen (forever when
/// negative), then returns Salt's runner result, `None`.
pub fn event(ctx: &mut Context<'_>, args: &[Value], out: &mut dyn Write) -> Result<RunnerOutput, RunnerError> {
    let mut watch = Watch::from_args(args)?;
    ctx.client
        .call(&Request::Watch { user: ctx.identity.user.clone(), key: ctx.identity.key.clone() })
        .map_err(RunnerError::backend)?;
    loop {
        // No deadline: the stream lasts until enough events matched or the master goes.
        let far = std::time::Instant::now() + std::time::Duration::from_secs(3600);
        let Some((tag, data)) = ctx.client.next_event(far).map_err(RunnerError::backend)? else {
            continue;
        };
        let Some(line) = watch.line(&tag, &data) else { continue };
        if !watch.quiet {
            writeln!(out, "{line}").and_then(|()| out.flush()).map_err(RunnerError::backend)?;
        }
        // Salt's own countdown: 0 at the start still stops after the first match.
        if watch.count > 0 {
            watch.count -= 1;
        }
        if watch.count == 0 {
            return Ok(RunnerOutput { data: Value::Nil, outputter: None });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: Vec<(&str, Value)>) -> Value {
        Value::Map(pairs.into_iter().map(|(k, v)| (Value::from(k), v)).collect())
    }

    fn kw(pairs: &[(&str, Value)]) -> Value {
        let mut all = vec![("__kwarg__", Value::Boolean(true))];
        all.extend(pairs.iter().cloned());
        map(all)
    }

    #[test]
    fn lines_as_salt_prints_them() {
        let data = map(vec![("b", Value::from(1)), ("a", Value::from("é"))]);
        let plain = Watch::from_args(&[]).unwrap();
        assert_eq!(plain.line("my/tag", &data).unwrap(), "my/tag\t{\"b\": 1, \"a\": \"é\"}");
        let pretty = Watch::from_args(&[kw(&[("pretty", Value::Boolean(true))])]).unwrap();
        assert_eq!(pretty.line("my/tag", &data).unwrap(), "my/tag\t{\n    \"a\": \"é\",\n    \"b\": 1\n}");
    }

    #[test]
    fn tags_match_as_a_glob_or_an_anchored_regex() {
        let glob = Watch::from_args(&[Value::from("salt/job/*/ret/*")]).unwrap();
        assert!(glob.line("salt/job/1/ret/web1", &Value::Nil).is_some());
        assert!(glob.line("salt/job/1/new", &Value::Nil).is_none());
        let regex = Watch::from_args(&[Value::from(r"salt/minion/\w+/start")]).unwrap();
        assert!(regex.line("salt/minion/web1/start", &Value::Nil).is_some());
        assert!(regex.line("salt/minion/web1/start/x", &Value::Nil).is_none());
    }

    #[test]
    fn arguments_bind_like_salts_runner() {
        let w = Watch::from_args(&[Value::from("a/*"), Value::from(2), kw(&[("quiet", Value::from("True"))])]).unwrap();
        assert_eq!(w, Watch { tagmatch: "a/*".into(), count: 2, quiet: true, pretty: false });
        assert!(Watch::from_args(&[kw(&[("node", Value::from("minion"))])]).is_err());
        assert!(Watch::from_args(&[kw(&[("count", Value::from("many"))])]).is_err());
        assert!(Watch::from_args(&[kw(&[("tagmach", Value::from("x"))])]).is_err());
    }
}
