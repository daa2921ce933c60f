//! Differential test: every target of the table is resolved by halite's `check_minions` and
//! by Salt's own `CkMinions.check_minions` (Salt 3006.30 from the test venvs, the release
//! whose cache rule halite follows), over the same accepted keys, grains, pillar and
//! nodegroups. The expected and missing minions must be the same sets; where Salt logs an
//! error and matches nothing, halite must return an error.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use halite_target::{check_minions, CachedMinion, Expr, MinionIndex, TargetType};
use rmpv::Value;
use serde_json::{json, Value as Json};

fn site() -> Json {
    json!({
        "web1": {"grains": {
            "roles": ["web", "app"], "os": "Debian", "osrelease": "12", "num_cpus": 4, "virtual": false,
            "ipv4": ["10.0.0.11", "127.0.0.1"], "ip_interfaces": {"eth0": ["10.0.0.11"], "lo": []},
            "nested": {"a": {"b": "c:d"}}, "mixed": [{"k": "v"}, "plain", 3], "Case": "UPPER", "none": null,
            "ratio": 1.5, "ports": {"80": "http"}
        }, "pillar": {"role": "production", "web": {"port": 8080, "vhosts": ["a.example", "b.example"]}}},
        "web2": {"grains": {
            "roles": ["web"], "os": "Ubuntu", "osrelease": "22.04", "num_cpus": 2, "virtual": "kvm",
            "ipv4": ["10.0.1.12", "127.0.0.1"], "ip_interfaces": {"eth0": ["10.0.1.12"]}
        }, "pillar": {"role": "staging"}},
        "db1": {"grains": {
            "roles": ["db", "masterdb"], "os": "Debian", "ipv4": ["10.0.2.21"], "ipv6": ["fe80::1", "::1"]
        }, "pillar": {"role": "production", "db": {"primary": true}}},
        "db2": {"grains": {"roles": ["db"], "os": "CentOS", "ipv4": ["192.168.1.5"]}, "pillar": {}},
        "Mail.Example": {"grains": {"roles": "mail", "os": "Debian"}, "pillar": {"role": "production"}},
        "nodata": null
    })
}

fn nodegroups() -> Json {
    json!({
        "webs": "G@roles:web",
        "nested": "N@webs or db1",
        "listgroup": ["web1", "db1"],
        "regexgroup": "db[0-9]",
        "mixedgroup": "web1 db1",
        "loop": "N@loop"
    })
}

/// (target, tgt_type, delimiter)
const CASES: &[(&str, &str, &str)] = &[
    ("*", "glob", ":"),
    ("web*", "glob", ":"),
    ("web?", "glob", ":"),
    ("db[12]", "glob", ":"),
    ("db[!1]", "glob", ":"),
    ("[a-z]*", "glob", ":"),
    ("Mail.*", "glob", ":"),
    ("mail.*", "glob", ":"),
    ("nodata", "glob", ":"),
    ("x*", "glob", ":"),
    ("web", "pcre", ":"),
    (r"^db\d$", "pcre", ":"),
    ("db1|web1", "pcre", ":"),
    (".*Example", "pcre", ":"),
    ("(?i)mail", "pcre", ":"),
    ("[", "pcre", ":"),
    ("web(?=1)", "pcre", ":"),
    (r"(d)b\d", "pcre", ":"),
    ("web1,db1", "list", ":"),
    ("web1,nope", "list", ":"),
    ("nope", "list", ":"),
    (",web1,", "list", ":"),
    ("roles:web", "grain", ":"),
    ("roles:db", "grain", ":"),
    ("roles:WEB", "grain", ":"),
    ("roles:mail", "grain", ":"),
    ("os:debian", "grain", ":"),
    ("os:Deb*", "grain", ":"),
    ("OS:Debian", "grain", ":"),
    ("num_cpus:4", "grain", ":"),
    ("virtual:False", "grain", ":"),
    ("virtual:kvm", "grain", ":"),
    ("ipv4:10.0.0.*", "grain", ":"),
    ("ip_interfaces:eth0:10.0.0.11", "grain", ":"),
    ("ip_interfaces:eth0", "grain", ":"),
    ("ip_interfaces:lo:*", "grain", ":"),
    ("nested:a:b:c:d", "grain", ":"),
    ("nested:a:b:c*", "grain", ":"),
    ("nested:a", "grain", ":"),
    ("nested:*:b", "grain", ":"),
    ("mixed:k:v", "grain", ":"),
    ("mixed:plain", "grain", ":"),
    ("mixed:3", "grain", ":"),
    ("mixed:0:k:v", "grain", ":"),
    ("mixed:1", "grain", ":"),
    ("Case:upper", "grain", ":"),
    ("case:upper", "grain", ":"),
    ("none:None", "grain", ":"),
    ("ratio:1.5", "grain", ":"),
    ("ports:80:http", "grain", ":"),
    ("roles", "grain", ":"),
    ("roles:*", "grain", ":"),
    ("*:Debian", "grain", ":"),
    ("osrelease:12", "grain", ":"),
    ("osrelease:22.*", "grain", ":"),
    ("ip_interfaces|eth0|10.0.0.11", "grain", "|"),
    ("ip_interfaces:eth0:10.0.0.11", "grain", "|"),
    ("ip_interfaces::eth0::10.0.0.*", "grain", "::"),
    ("nested::a::b::c:d", "grain", "::"),
    ("*:*:b:c*", "grain", ":"),
    ("*:*:*:c:d", "grain", ":"),
    ("*:*:*:*:*:*:*:*:nothing", "grain", ":"),
    ("nested:*:*:c:d", "grain", ":"),
    ("*:eth0:10.0.*", "grain", ":"),
    ("ports:*:http", "grain", ":"),
    ("mixed:*:v", "grain", ":"),
    ("*|debian", "grain", "|"),
    ("nested:a:b:C:D", "grain", ":"),
    ("nested:a:b:c:d", "grain_pcre", ":"),
    ("web:vhosts:*.example", "pillar", ":"),
    ("web:*:8080", "pillar", ":"),
    ("roles:w.b", "grain_pcre", ":"),
    ("os:^deb", "grain_pcre", ":"),
    ("os:(", "grain_pcre", ":"),
    (r"osrelease:\d+\.\d+", "grain_pcre", ":"),
    (r"roles:^(db|web)$", "grain_pcre", ":"),
    ("role:production", "pillar", ":"),
    ("web:port:8080", "pillar", ":"),
    ("web:vhosts:a.*", "pillar", ":"),
    ("db:primary:True", "pillar", ":"),
    ("role:*", "pillar", ":"),
    ("role:prod.*", "pillar_pcre", ":"),
    ("role:production", "pillar_exact", ":"),
    ("role:prod*", "pillar_exact", ":"),
    ("10.0.0.0/24", "ipcidr", ":"),
    ("10.0.0.0/8", "ipcidr", ":"),
    ("10.0.0.11", "ipcidr", ":"),
    ("10.0.0.5/24", "ipcidr", ":"),
    ("fe80::/10", "ipcidr", ":"),
    ("::1", "ipcidr", ":"),
    ("192.168.0.0/16", "ipcidr", ":"),
    ("garbage", "ipcidr", ":"),
    ("G@roles:web and G@os:Debian", "compound", ":"),
    ("web* or db*", "compound", ":"),
    ("not web1", "compound", ":"),
    ("G@roles:db and not db2", "compound", ":"),
    ("( web1 or web2 ) and not G@os:Ubuntu", "compound", ":"),
    ("not ( web1 or db1 )", "compound", ":"),
    ("web1 or db1 and db2", "compound", ":"),
    ("web1 not db1", "compound", ":"),
    ("web1 and", "compound", ":"),
    ("and web1", "compound", ":"),
    ("( web1", "compound", ":"),
    ("web1 )", "compound", ":"),
    ("( and web1 )", "compound", ":"),
    ("not not web1", "compound", ":"),
    ("web1 web2", "compound", ":"),
    ("L@web1,nope or db1", "compound", ":"),
    ("not L@web1,nope", "compound", ":"),
    ("E@^db and I@role:production", "compound", ":"),
    ("S@10.0.0.0/8 and G@roles:web", "compound", ":"),
    ("P@os:^(Deb|Cent)", "compound", ":"),
    ("J@role:^prod", "compound", ":"),
    ("N@webs or db1", "compound", ":"),
    ("N@nested", "compound", ":"),
    ("N@listgroup and not web1", "compound", ":"),
    ("G|@ip_interfaces|eth0|10.0.0.11", "compound", ":"),
    ("G@nested:a:b:c:d", "compound", "|"),
    ("R@foo", "compound", ":"),
    ("X@foo", "compound", ":"),
    ("*", "compound", ":"),
    ("I@role:prod*", "compound_pillar_exact", ":"),
    ("I@role:production", "compound_pillar_exact", ":"),
    ("webs", "nodegroup", ":"),
    ("nested", "nodegroup", ":"),
    ("listgroup", "nodegroup", ":"),
    ("regexgroup", "nodegroup", ":"),
    ("mixedgroup", "nodegroup", ":"),
    ("unknown", "nodegroup", ":"),
    ("loop", "nodegroup", ":"),
];

/// [`CASES`] and the targets at halite's nesting limit: 199 levels are the deepest Salt's
/// Python evaluates, 200 the first it cannot (an error in halite).
fn cases() -> Vec<(String, &'static str, &'static str)> {
    let nested = |depth: usize, opener: &str| format!("{}web1{}", opener.repeat(depth), " )".repeat(depth));
    let limits = [
        nested(halite_target::MAX_DEPTH, "( "),
        nested(halite_target::MAX_DEPTH + 1, "( "),
        format!("not {}", nested(halite_target::MAX_DEPTH - 1, "( ")),
        format!("not {}", nested(halite_target::MAX_DEPTH, "( ")),
    ];
    CASES
        .iter()
        .map(|&(tgt, tgt_type, delim)| (tgt.to_owned(), tgt_type, delim))
        .chain(limits.into_iter().map(|tgt| (tgt, "compound", ":")))
        .collect()
}

const ORACLE: &str = r#"
import json, os, sys, tempfile, logging
logging.disable(logging.CRITICAL)
import salt.config, salt.cache, salt.utils.minions
spec = json.load(sys.stdin)
root = tempfile.mkdtemp()
opts = salt.config.DEFAULT_MASTER_OPTS.copy()
opts.update({"pki_dir": os.path.join(root, "pki"), "cachedir": os.path.join(root, "cache"),
             "minion_data_cache": True, "key_cache": "", "nodegroups": spec["nodegroups"],
             "sock_dir": root, "extension_modules": os.path.join(root, "ext")})
os.makedirs(os.path.join(opts["pki_dir"], "minions"))
cache = salt.cache.factory(opts)
for mid, data in spec["minions"].items():
    with open(os.path.join(opts["pki_dir"], "minions", mid), "w") as f:
        f.write("key")
    if data is not None:
        cache.store("minions/" + mid, "data", data)
        cache.store("grains", mid, data["grains"])
        cache.store("pillar", mid, data["pillar"])
ck = salt.utils.minions.CkMinions(opts)
out = []
for tgt, tgt_type, delim in spec["cases"]:
    res = ck.check_minions(tgt, tgt_type, delim)
    out.append({"minions": sorted(set(res["minions"])), "missing": sorted(set(res["missing"]))})
json.dump(out, sys.stdout)
"#;

fn salt_python() -> Result<PathBuf, String> {
    let cache = match std::env::var_os("HALITE_MINION_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").ok_or("HOME is not set")?).join(".cache/halite/minions"),
    };
    let python = cache.join("salt-3006.30/bin/python");
    python
        .is_file()
        .then_some(python.clone())
        .ok_or_else(|| format!("{} not found (run tests/install-minions.sh)", python.display()))
}

fn to_value(j: &Json) -> Value {
    match j {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(f)) => Value::F64(f),
            _ => Value::Nil,
        },
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => Value::Array(items.iter().map(to_value).collect()),
        Json::Object(pairs) => Value::Map(pairs.iter().map(|(k, v)| (Value::from(k.as_str()), to_value(v))).collect()),
    }
}

struct Index {
    data: Vec<(String, Option<(Value, Value)>)>,
}

impl MinionIndex for Index {
    fn accepted(&self) -> Vec<String> {
        self.data.iter().map(|(id, _)| id.clone()).collect()
    }

    fn cached(&self, id: &str) -> Option<CachedMinion<'_>> {
        let (_, data) = self.data.iter().find(|(i, _)| i == id)?;
        data.as_ref().map(|(g, p)| CachedMinion { grains: Some(g), pillar: Some(p) })
    }
}

#[test]
fn targets_resolve_like_salt_ckminions() {
    let python = match salt_python() {
        Ok(p) => p,
        Err(reason) => {
            eprintln!("SKIPPED targets_resolve_like_salt_ckminions: {reason}");
            return;
        }
    };
    let cases = cases();
    let spec = json!({"minions": site(), "nodegroups": nodegroups(), "cases": cases});
    let mut child = Command::new(&python)
        .args(["-c", ORACLE])
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the Salt venv's python");
    child.stdin.take().expect("stdin").write_all(spec.to_string().as_bytes()).expect("write spec");
    let output = child.wait_with_output().expect("oracle output");
    assert!(output.status.success(), "oracle failed: {}", String::from_utf8_lossy(&output.stderr));
    let expected: Vec<Json> = serde_json::from_slice(&output.stdout).expect("oracle JSON");

    let index = Index {
        data: site()
            .as_object()
            .expect("site")
            .iter()
            .map(|(id, d)| (id.clone(), (!d.is_null()).then(|| (to_value(&d["grains"]), to_value(&d["pillar"])))))
            .collect(),
    };
    let groups: Vec<(String, Value)> =
        nodegroups().as_object().expect("groups").iter().map(|(k, v)| (k.clone(), to_value(v))).collect();
    let mut failures = Vec::new();
    for ((tgt, tgt_type, delim), salt) in cases.iter().zip(&expected) {
        let kind = TargetType::from_name(tgt_type).expect("known type");
        let got = match check_minions(&index, &Expr::Text(tgt.to_string()), kind, delim, &groups) {
            Ok(m) => {
                let (mut minions, mut missing) = (m.minions, m.missing);
                minions.sort();
                missing.sort();
                json!({"minions": minions, "missing": missing})
            }
            Err(_) => json!({"minions": [], "missing": []}),
        };
        if &got != salt {
            failures.push(format!("{tgt_type} {tgt:?} (delimiter {delim:?})\n  salt:   {salt}\n  halite: {got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} targets differ from Salt:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
