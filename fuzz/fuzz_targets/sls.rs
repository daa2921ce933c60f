//! Any text as a pillar sls rendered through `jinja|yaml`, with an include-able neighbour:
//! the Jinja rewrite, MiniJinja and the YAML stage must end in data or an error for that
//! file, never a panic or a hang (the renderer's recursion and alias limits hold).
#![no_main]

use std::sync::Arc;

use halite_pillar::jinja::{FileContext, Globals, JinjaEnv, JinjaOptions, TemplateFiles};
use halite_pillar::salt_fns::FnData;
use libfuzzer_sys::fuzz_target;

struct Neighbour;

impl TemplateFiles for Neighbour {
    fn read(&self, rel: &str) -> Option<Result<String, String>> {
        (rel == "map.jinja").then(|| Ok("{% set conf = {'port': 80} %}{% macro m(x) %}{{ x }}{% endmacro %}".into()))
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let grains = halite_yaml::load("{id: m, roles: [app, db], os: Debian, num_cpus: 2}").expect("grains");
    let data = FnData {
        grains,
        pillar: halite_yaml::Value::Map(Vec::new()),
        opts: halite_yaml::Value::Map(Vec::new()),
        mine: None,
    };
    let env = JinjaEnv::new(Arc::new(Neighbour), &Globals::new(Arc::new(data)), "base", JinjaOptions::default());
    let file = FileContext { saltenv: "base".into(), sls: "fuzzed".into(), rel: "fuzzed.sls".into(), ..Default::default() };
    let _ = halite_pillar::render::compile(text, "jinja|yaml", &env, &file);
});
