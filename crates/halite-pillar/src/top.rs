//! The pillar top file: Salt's `merge_tops`, `sort_top_targets` and `top_matches`.

use halite_target::{matches_one, CachedMinion, Expr, TargetType};
use halite_yaml::py::{self, truthy};
use halite_yaml::Value;

/// One target line of a merged top: the target, its `match:`/`order:` dicts and its sls
/// names, in the top file's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub target: Value,
    pub matchers: Vec<Value>,
    pub states: Vec<String>,
    order: i64,
}

/// saltenv → targets, as Salt's merged top (`OrderedDict` of `OrderedDict`s).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergedTop {
    pub envs: Vec<(String, Vec<Target>)>,
    /// saltenv → sls names marked `ignore_missing`.
    pub ignore_missing: Vec<(String, Vec<String>)>,
}

impl MergedTop {
    /// As Salt's `show_top` prints it: saltenv → target → its list (matchers then states).
    pub fn to_value(&self) -> Value {
        Value::Map(
            self.envs
                .iter()
                .map(|(env, targets)| {
                    let body = targets
                        .iter()
                        .map(|t| {
                            let mut items = t.matchers.clone();
                            items.extend(t.states.iter().map(|s| Value::from(s.as_str())));
                            (t.target.clone(), Value::Array(items))
                        })
                        .collect();
                    (Value::from(env.as_str()), Value::Map(body))
                })
                .collect(),
        )
    }

    pub fn is_ignored_missing(&self, saltenv: &str, sls: &str) -> bool {
        self.ignore_missing.iter().any(|(env, names)| env == saltenv && names.iter().any(|n| n == sls))
    }
}

/// The merge failed the way Salt's `TypeError` does ("Error encountered while rendering
/// pillar top file.").
#[derive(Debug)]
pub struct MalformedTop;

fn text_of(v: &Value) -> String {
    py::text(v)
}

/// Salt's `merge_tops` over the rendered top files (primary ones first, then included
/// ones, per saltenv in order).
pub fn merge(tops: &[Value]) -> Result<MergedTop, MalformedTop> {
    let mut merged = MergedTop::default();
    for ctop in tops {
        let Value::Map(envs) = ctop else { return Err(MalformedTop) };
        for (env_key, targets) in envs {
            let saltenv = text_of(env_key);
            if saltenv == "include" {
                continue;
            }
            let Value::Map(targets) = targets else { return Err(MalformedTop) };
            for (tgt, comps) in targets {
                let comps: Vec<Value> = match comps {
                    Value::Array(items) => items.clone(),
                    // Python iterates a string's characters, each a one-letter sls name.
                    Value::String(s) => {
                        s.as_str().unwrap_or_default().chars().map(|c| Value::from(c.to_string())).collect()
                    }
                    Value::Map(pairs) => pairs.iter().map(|(k, _)| k.clone()).collect(),
                    _ => return Err(MalformedTop),
                };
                let mut matchers = Vec::new();
                let mut states: Vec<String> = Vec::new();
                let mut order = 0;
                let mut ignore_missing = false;
                for comp in &comps {
                    match comp {
                        Value::Map(pairs) => {
                            let get = |k: &str| pairs.iter().find(|(key, _)| key.as_str() == Some(k)).map(|(_, v)| v);
                            if get("match").is_some() {
                                matchers.push(comp.clone());
                            }
                            if let Some(o) = get("order") {
                                order = match o {
                                    Value::Integer(i) => i.as_i64().unwrap_or(0),
                                    other => text_of(other).trim().parse().unwrap_or(0),
                                };
                            }
                            if get("ignore_missing").is_some_and(truthy) {
                                ignore_missing = true;
                            }
                        }
                        Value::String(s) => {
                            let s = s.as_str().unwrap_or_default().to_owned();
                            if !states.contains(&s) {
                                states.push(s);
                            }
                        }
                        _ => {}
                    }
                }
                if ignore_missing {
                    match merged.ignore_missing.iter_mut().find(|(e, _)| *e == saltenv) {
                        Some((_, names)) => names.extend(states.iter().cloned()),
                        None => merged.ignore_missing.push((saltenv.clone(), states.clone())),
                    }
                }
                let target = Target { target: tgt.clone(), matchers, states, order };
                let env_targets = match merged.envs.iter().position(|(e, _)| *e == saltenv) {
                    Some(i) => &mut merged.envs[i].1,
                    None => {
                        merged.envs.push((saltenv.clone(), Vec::new()));
                        &mut merged.envs.last_mut().expect("just pushed").1
                    }
                };
                match env_targets.iter_mut().find(|t| py::eq(&t.target, tgt)) {
                    Some(existing) => *existing = target,
                    None => env_targets.push(target),
                }
            }
        }
    }
    for (_, targets) in &mut merged.envs {
        targets.sort_by_key(|t| t.order);
    }
    Ok(merged)
}

/// Salt's `top_matches`: saltenv → the sls names of every target the minion matches, each
/// once, in top order. `pillarenv` limits it to that saltenv. A target that cannot be
/// evaluated (bad regex, unknown nodegroup) matches nothing and is reported.
pub fn matches(
    top: &MergedTop,
    minion_id: &str,
    grains: &Value,
    nodegroups: &[(String, Value)],
    pillarenv: Option<&str>,
) -> (Vec<(String, Vec<String>)>, Vec<String>) {
    // No pillar: Salt's pillar top matches `I@` against the master's `ext_pillar` list,
    // i.e. nothing.
    let data = CachedMinion { grains: Some(grains), pillar: None };
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut problems = Vec::new();
    for (saltenv, targets) in &top.envs {
        if pillarenv.is_some_and(|p| p != saltenv) {
            continue;
        }
        for t in &targets.clone() {
            let matcher = t
                .matchers
                .iter()
                .filter_map(|m| match m {
                    Value::Map(pairs) => {
                        pairs.iter().find(|(k, _)| k.as_str() == Some("match")).map(|(_, v)| text_of(v))
                    }
                    _ => None,
                })
                .next_back()
                .unwrap_or_else(|| "compound".to_owned());
            let Some(tgt_type) = TargetType::from_name(&matcher) else {
                problems.push(format!(
                    "unknown matcher {matcher:?} for target {} in saltenv {saltenv}",
                    text_of(&t.target)
                ));
                continue;
            };
            match matches_one(minion_id, data, &Expr::from_value(&t.target), tgt_type, ":", nodegroups) {
                Ok(true) => {
                    let slot = match out.iter().position(|(e, _)| e == saltenv) {
                        Some(i) => &mut out[i].1,
                        None => {
                            out.push((saltenv.clone(), Vec::new()));
                            &mut out.last_mut().expect("just pushed").1
                        }
                    };
                    for s in &t.states {
                        if !slot.contains(s) {
                            slot.push(s.clone());
                        }
                    }
                }
                Ok(false) => {}
                Err(e) => problems.push(format!("top target {} in saltenv {saltenv}: {e}", text_of(&t.target))),
            }
        }
    }
    (out, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(t: &str) -> Value {
        halite_yaml::load(t).unwrap()
    }

    #[test]
    fn merges_sorts_and_matches() {
        let top = merge(&[
            y("base:\n  '*': [common]\n  'roles:db':\n    - match: grain\n    - db\n  web*: [web, {order: -1}]\n"),
            y("base:\n  '*': [common, users]\ndev:\n  '*': [dev]\n"),
        ])
        .unwrap();
        let names: Vec<String> = top.envs[0].1.iter().map(|t| text_of(&t.target)).collect();
        assert_eq!(names, ["web*", "*", "roles:db"], "order: -1 first, a later top replaces a target");
        let grains = y("roles: [db]");
        let (m, problems) = matches(&top, "db1", &grains, &[], None);
        assert!(problems.is_empty());
        assert_eq!(
            m,
            vec![
                ("base".into(), vec!["common".into(), "users".into(), "db".into()]),
                ("dev".into(), vec!["dev".into()])
            ]
        );
        let (m, _) = matches(&top, "web1", &y("{}"), &[], Some("base"));
        assert_eq!(m, vec![("base".into(), vec!["web".into(), "common".into(), "users".into()])]);
        assert!(merge(&[y("base: [x]")]).is_err());
    }
}
