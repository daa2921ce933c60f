use std::sync::Arc;

use halite_pillar::jinja::{JinjaOptions, TemplateFiles};
use halite_yaml::Value;

use super::*;

struct Files(Vec<(&'static str, &'static str)>);

impl Sources for Files {
    fn files(&self, path: &str) -> Vec<SourceFile> {
        self.0
            .iter()
            .filter(|(p, _)| halite_target::fnmatch(p, path))
            .map(|(p, text)| SourceFile { path: (*p).into(), template_name: (*p).into(), text: Ok((*text).into()) })
            .collect()
    }
}

impl TemplateFiles for Files {
    fn read(&self, rel: &str) -> Option<Result<String, String>> {
        self.0.iter().find(|(p, _)| *p == rel).map(|(_, t)| Ok((*t).to_owned()))
    }
}

fn react(files: &[(&'static str, &'static str)], tag: &str, data: &str) -> Reactions {
    let files = Arc::new(Files(files.to_vec()));
    let opts = halite_yaml::load("{id: salt_master, renderer: jinja|yaml}").unwrap();
    let r = Renderer::new("jinja|yaml", JinjaOptions::default(), opts, Value::Map(Vec::new()), files.clone(), None);
    let paths: Vec<String> = files.0.iter().map(|(p, _)| (*p).to_owned()).collect();
    r.reactions(tag, &halite_yaml::load(data).unwrap(), &paths, files.as_ref())
}

fn ok(r: &Reactions) -> Vec<Reaction> {
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    r.reactions.iter().map(|x| x.clone().unwrap_or_else(|e| panic!("{e}"))).collect()
}

fn local(r: &Reaction) -> &LocalJob {
    match &r.action {
        Action::Local(job) => job,
        other => panic!("not local: {other:?}"),
    }
}

const KEY_SLS: &str = "{% if data['act'] == 'accept' %}\n\
mine_on_accept:\n  local.mine.send:\n    - tgt: '*'\n    - arg:\n      - network.ip_addrs\n\
{% elif data['act'] == 'reject' %}\n\
mine_on_reject:\n  local.mine.delete:\n    - tgt: '*'\n    - arg:\n      - {{ data['id'] }}\n\
{% endif %}\n";

#[test]
fn tags_match_as_python_fnmatch() {
    let map = ReactorMap::new(vec![
        ("salt/key".into(), vec!["a.sls".into()]),
        ("salt/minion/*/start".into(), vec!["b.sls".into(), "c.sls".into()]),
        ("salt/*".into(), vec!["d.sls".into()]),
    ]);
    assert_eq!(map.reactors_for("salt/key"), ["a.sls", "d.sls"]);
    assert_eq!(map.reactors_for("salt/minion/web1/start"), ["b.sls", "c.sls", "d.sls"]);
    assert!(map.reactors_for("minion_start").is_empty());
}

#[test]
fn the_site_key_reactor_sends_the_mine_on_accept_and_deletes_on_reject() {
    let accepted = react(&[("key.sls", KEY_SLS)], "salt/key", "{act: accept, id: web1, result: true}");
    let r = ok(&accepted);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].id.as_str(), r[0].sls.as_str()), ("mine_on_accept", "key.sls"));
    let job = local(&r[0]);
    assert_eq!((job.fun.as_str(), job.tgt.as_str(), job.tgt_type.as_str()), ("mine.send", Some("*"), "glob"));
    assert_eq!(job.arg, [Value::from("network.ip_addrs")]);

    let rejected = react(&[("key.sls", KEY_SLS)], "salt/key", "{act: reject, id: web1, result: true}");
    let job = local(&ok(&rejected)[0]).clone();
    assert_eq!((job.fun.as_str(), job.arg), ("mine.delete", vec![Value::from("web1")]));

    // An act the file does not handle renders to nothing: no reaction, no error.
    let deleted = react(&[("key.sls", KEY_SLS)], "salt/key", "{act: delete, id: web1}");
    assert!(ok(&deleted).is_empty());
}

#[test]
fn tag_and_opts_are_in_the_context_and_kwargs_become_salts_kwarg_dict() {
    let sls = "setval:\n  local.grains.setval:\n    - tgt: {{ data['id'] }}\n    - tgt_type: list\n    \
               - arg: [reacted, '{{ tag }}']\n    - kwarg: {destructive: true}\n    - ret: '{{ opts['id'] }}'\n";
    let r = ok(&react(&[("start.sls", sls)], "salt/minion/web1/start", "{id: web1}"));
    let job = local(&r[0]);
    assert_eq!(job.tgt, Value::from("web1"));
    assert_eq!(job.tgt_type, "list");
    assert_eq!(job.ret, "salt_master");
    assert_eq!(
        Value::Array(job.arg.clone()),
        halite_yaml::load("[reacted, salt/minion/web1/start, {__kwarg__: true, destructive: true}]").unwrap()
    );
    let keys: Vec<&str> = job.kwargs.iter().map(|(k, _)| k.as_str()).collect();
    assert!(keys.contains(&"__id__") && keys.contains(&"name") && !keys.contains(&"tgt"), "{keys:?}");
}

#[test]
fn new_style_args_are_keyword_arguments_and_win_over_arg() {
    let sls =
        "ping:\n  local.test.arg:\n    - tgt: '*'\n    - arg: [ignored]\n    - args:\n      - a: 1\n      - b: two\n\
               accept:\n  wheel.key.accept:\n    - args:\n      - match: web*\n      - include_rejected: true\n";
    let r = ok(&react(&[("r.sls", sls)], "t", "{}"));
    assert_eq!(r.len(), 2);
    // Salt's order: `state + name + fun`, so local (l) before wheel (w).
    assert_eq!(Value::Array(local(&r[0]).arg.clone()), halite_yaml::load("[{__kwarg__: true, a: 1, b: two}]").unwrap());
    assert_eq!(
        r[1].action,
        Action::WheelKey {
            op: KeyOp::Accept { include_rejected: true, include_denied: false },
            patterns: vec!["web*".into()]
        }
    );
}

#[test]
fn old_style_wheel_binds_parameters_by_name() {
    let sls = "del:\n  wheel.key.delete:\n    - match: 'a,b'\n\
               rej:\n  wheel.key.reject:\n    - match: [c]\n    - include_accepted: true\n\
               bad:\n  wheel.key.accept:\n    - tgt: x\n";
    let r = react(&[("w.sls", sls)], "t", "{}");
    assert!(r.errors.is_empty());
    let [bad, del, rej] = r.reactions.as_slice() else { panic!("{r:?}") };
    let err = bad.clone().unwrap_err();
    assert!(err.to_string().contains("'tgt' not a keyword argument of 'key.accept'"), "{err}");
    assert_eq!(
        del.clone().unwrap().action,
        Action::WheelKey { op: KeyOp::Delete, patterns: vec!["a".into(), "b".into()] }
    );
    assert_eq!(
        rej.clone().unwrap().action,
        Action::WheelKey {
            op: KeyOp::Reject { include_accepted: true, include_denied: false },
            patterns: vec!["c".into()]
        }
    );
}

#[test]
fn order_is_salts_order_then_state_name_fun() {
    let sls = "zzz:\n  local.test.ping:\n    - tgt: '*'\n\
               aaa:\n  local.test.ping:\n    - tgt: '*'\n\
               last:\n  local.test.ping:\n    - tgt: '*'\n    - order: last\n\
               first:\n  runner.jobs.list_jobs:\n    - order: 1\n\
               old:\n  cmd.test.echo:\n    - tgt: '*'\n    - arg: [x]\n\
               ping:\n  local.test.ping:\n    - names: [web1, web2]\n    - tgt: '*'\n";
    let r = ok(&react(&[("o.sls", sls)], "t", "{}"));
    let ids: Vec<String> = r.iter().map(|x| format!("{}/{}", x.id, halite_yaml::py::text(&name_of(x)))).collect();
    // What Salt 3007.8's Compiler makes of the same file: `cmd` sorts before `local` (the
    // alias is read after ordering), and `names` entries come after the default order.
    assert_eq!(ids, ["first/first", "old/old", "aaa/aaa", "zzz/zzz", "ping/web1", "ping/web2", "last/last"]);
    assert_eq!(local(&r[1]).fun, "test.echo");
    assert_eq!(r[0].action, Action::Runner(RunnerCall { fun: "jobs.list_jobs".into(), arg: vec![], kwarg: vec![] }));
    assert_eq!(local(&r[4]).kwargs.iter().find(|(k, _)| k == "order").map(|(_, v)| v), Some(&Value::F64(101.0001)));
}

#[test]
fn names_expand_into_one_reaction_each() {
    let sls = "ping:\n  local.test.ping:\n    - names:\n      - web1\n      - web2\n    - tgt: '*'\n";
    let r = ok(&react(&[("n.sls", sls)], "t", "{}"));
    let names: Vec<String> = r.iter().map(|x| halite_yaml::py::text(&name_of(x))).collect();
    assert_eq!(names, ["web1", "web2"]);
}

/// The `name` a reaction carries (its ID, or a `names` entry).
fn name_of(r: &Reaction) -> Value {
    match &r.action {
        Action::Local(job) => job.kwargs.iter().find(|(k, _)| k == "name").map(|(_, v)| v.clone()).expect("name"),
        _ => Value::from(r.id.as_str()),
    }
}

#[test]
fn a_broken_file_is_reported_and_the_others_still_react() {
    let good = "ping:\n  local.test.ping:\n    - tgt: '*'\n";
    let r = react(&[("bad.sls", "{% if %}\n"), ("good.sls", good), ("list.sls", "- a\n- b\n")], "t", "{}");
    assert_eq!(ok(&Reactions { errors: vec![], ..r.clone() }).len(), 1);
    assert_eq!(r.errors.len(), 2, "{:?}", r.errors);
    assert!(matches!(&r.errors[0], ReactorError::Render { path, .. } if path == "bad.sls"), "{:?}", r.errors);
    assert!(r.errors[1].to_string().contains("list.sls") && r.errors[1].to_string().contains("not a dictionary"));

    let missing = Renderer::new(
        "jinja|yaml",
        JinjaOptions::default(),
        Value::Map(vec![]),
        Value::Map(vec![]),
        Arc::new(Files(vec![])),
        None,
    )
    .reactions("t", &Value::Nil, &["salt://nowhere.sls".into()], &Files(vec![]));
    assert_eq!(missing.errors, [ReactorError::Missing { path: "salt://nowhere.sls".into(), tag: "t".into() }]);
}

#[test]
fn invalid_high_data_stops_every_reaction_of_the_event() {
    let two_funs = "x:\n  local:\n    - test.ping\n    - test.echo\n    - tgt: '*'\n";
    let good = "ping:\n  local.test.ping:\n    - tgt: '*'\n";
    let r = react(&[("a.sls", two_funs), ("b.sls", good)], "t", "{}");
    assert!(r.reactions.is_empty());
    let msg = r.errors[0].to_string();
    assert!(msg.contains("Too many functions declared in state 'x' in SLS 'a.sls'"), "{msg}");

    let not_list = react(&[("c.sls", "x:\n  local.test.ping: {tgt: '*'}\n")], "t", "{}");
    assert!(not_list.errors[0].to_string().contains("State 'x' in SLS 'c.sls' is not formed as a list"));
}

#[test]
fn unusable_reactions_are_errors_naming_the_reaction() {
    let sls = "notgt:\n  local.test.ping: []\nodd:\n  caller.test.ping: []\nbogus:\n  nope.x: []\n\
               wheelfun:\n  wheel.config.values: []\nempty:\n  local.test.ping:\n    - tgt: '*'\n    - args: []\n";
    let r = react(&[("e.sls", sls)], "t", "{}");
    let errors: Vec<String> = r.reactions.iter().map(|x| x.clone().unwrap_err().to_string()).collect();
    assert_eq!(errors.len(), 5);
    let all = errors.join("\n");
    for needle in [
        "Reactor 'notgt' (in e.sls) failed to execute local 'test.ping'",
        "caller reactions",
        "missing a wrapper function for 'nope'",
        "wheel function 'config.values' is not available",
        "Incorrect argument format",
    ] {
        assert!(all.contains(needle), "{needle} not in\n{all}");
    }
}

#[test]
fn a_short_state_string_is_padded() {
    let r = ok(&react(&[("s.sls", "run: runner.manage.up\n")], "t", "{}"));
    assert_eq!(r[0].action, Action::Runner(RunnerCall { fun: "manage.up".into(), arg: vec![], kwarg: vec![] }));
}
