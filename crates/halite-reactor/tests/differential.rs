//! Differential test: rendered reaction files compiled by halite's `compile` and by Salt
//! 3007.8's own state `Compiler` steps as its reactor runs them (`pad_funcs`, the `__sls__`
//! stamp of `render_reaction`, `verify_high`, `compile_high_data`, `order_chunks` again, the
//! `cmd` alias). The chunks (every key, the order values included) or the errors must match.

use std::io::Write;
use std::process::{Command, Stdio};

use halite_reactor::compile::High;
use halite_testkit::SaltVersion;
use halite_yaml::dump::{json, JsonStyle};
use halite_yaml::Value;

const CASES: &[(&str, &str)] = &[
    ("site_key", "mine_on_accept:\n  local.mine.send:\n    - tgt: '*'\n    - arg:\n      - network.ip_addrs\n"),
    (
        "order",
        "zzz:\n  local.test.ping:\n    - tgt: '*'\naaa:\n  local.test.ping:\n    - tgt: '*'\n\
         last:\n  local.test.ping:\n    - tgt: '*'\n    - order: last\nfirst:\n  runner.jobs.list_jobs:\n    - order: 1\n\
         neg:\n  local.test.ping:\n    - tgt: '*'\n    - order: -1\nzero:\n  wheel.key.delete:\n    - match: x\n    - order: first\n\
         old:\n  cmd.test.echo:\n    - tgt: '*'\n    - arg: [x]\nbig:\n  local.test.ping:\n    - tgt: b\n    - order: 500\n",
    ),
    (
        "names",
        "ping:\n  local.test.ping:\n    - names:\n      - web1\n      - web2:\n        - tgt: web2\n      - db1\n    - tgt: '*'\n\
         ordered:\n  local.test.echo:\n    - names: [a, b]\n    - order: 3\n    - tgt: '*'\n",
    ),
    ("short", "run: runner.manage.up\ncmd_short: cmd.test.ping\n"),
    ("padding", "x:\n  local:\n    - test.ping\n    - tgt: '*'\ny:\n  local.test.ping:\n    - tgt: '*'\n  __env__: base\n"),
    ("two_funs", "x:\n  local:\n    - test.ping\n    - test.echo\n    - tgt: '*'\n"),
    ("no_fun", "x:\n  local:\n    - tgt: '*'\n"),
    ("not_list", "x:\n  local.test.ping: {tgt: '*'}\n"),
    ("whitespace", "x:\n  local:\n    - test ping\n    - tgt: '*'\n"),
    ("multi_dict", "x:\n  local.test.ping:\n    - {tgt: '*', arg: [1]}\n"),
    ("requisites", "x:\n  local.test.ping:\n    - require: y\n    - watch: [{a: b}, {c: d}]\n    - tgt: '*'\n"),
    ("requisite_two_keys", "x:\n  local.test.ping:\n    - {require: [y], tgt: '*'}\n"),
    ("args_style", "x:\n  wheel.key.accept:\n    - args:\n      - match: web*\n      - include_rejected: true\n"),
    ("empty", "{}\n"),
];

/// Salt's side, on JSON `[[name, text], ...]` from stdin: JSON `{name: result}` on stdout.
const ORACLE: &str = r#"
import json, sys
import salt.state, salt.utils.yaml
c = salt.state.Compiler({}, {})
out = {}
for name, text in json.load(sys.stdin):
    try:
        res = c.pad_funcs(salt.utils.yaml.safe_load(text) or {})
        for key in res:
            res[key]["__sls__"] = "case.sls"
    except Exception as exc:
        out[name] = {"render_error": True}
        continue
    errors = c.verify_high(res)
    if errors:
        out[name] = {"errors": errors}
        continue
    chunks = c.order_chunks(c.compile_high_data(res))
    for chunk in chunks:
        if chunk["state"] == "cmd":
            chunk["state"] = "local"
    out[name] = {"chunks": chunks}
print(json.dumps(out))
"#;

fn halite(text: &str) -> serde_json::Value {
    let rendered = halite_yaml::load_sls(text).expect("case YAML");
    let high = match High::from_rendered(rendered, "case.sls") {
        Ok(high) => high,
        Err(_) => return serde_json::json!({"render_error": true}),
    };
    let errors = high.verify();
    if !errors.is_empty() {
        return serde_json::json!({ "errors": errors });
    }
    let chunks: Vec<Value> = high
        .chunks()
        .into_iter()
        .map(|c| Value::Map(c.into_iter().map(|(k, v)| (Value::from(k), v)).collect()))
        .collect();
    let text = json(&Value::Array(chunks), &JsonStyle::default());
    serde_json::json!({ "chunks": serde_json::from_str::<serde_json::Value>(&text).expect("JSON") })
}

#[test]
fn reactions_compile_like_salt_3007() {
    let python = halite_testkit::venv(SaltVersion::V3007).join("bin/python");
    assert!(python.is_file(), "{} is missing: run tests/install-minions.sh", python.display());
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(ORACLE)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run Salt's compiler");
    let input = serde_json::to_vec(&CASES).expect("cases");
    child.stdin.take().expect("stdin").write_all(&input).expect("write cases");
    let out = child.wait_with_output().expect("oracle output");
    assert!(out.status.success(), "Salt's compiler failed: {}", String::from_utf8_lossy(&out.stderr));
    let salt: serde_json::Value = serde_json::from_slice(&out.stdout).expect("oracle JSON");

    let mut failures = Vec::new();
    for (name, text) in CASES {
        let ours = halite(text);
        if ours != salt[name] {
            failures.push(format!("{name}:\n  salt:   {}\n  halite: {ours}", salt[name]));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), CASES.len(), failures.join("\n"));
}
