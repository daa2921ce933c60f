//! Any text as a reaction file, rendered with an event and compiled into reactions: the
//! render, Salt's compiler steps and the reading of each chunk must end in reactions or
//! errors naming the file, never a panic or a hang.
#![no_main]

use std::sync::Arc;

use halite_pillar::jinja::{JinjaOptions, TemplateFiles};
use halite_reactor::{Renderer, SourceFile, Sources};
use libfuzzer_sys::fuzz_target;

struct One(String);

impl Sources for One {
    fn files(&self, path: &str) -> Vec<SourceFile> {
        vec![SourceFile { path: path.into(), template_name: "fuzzed.sls".into(), text: Ok(self.0.clone()) }]
    }
}

impl TemplateFiles for One {
    fn read(&self, _rel: &str) -> Option<Result<String, String>> {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let event = halite_yaml::load("{act: accept, id: web1, result: true}").expect("event");
    let files = Arc::new(One(text.to_owned()));
    let empty = halite_yaml::Value::Map(Vec::new());
    let renderer = Renderer::new("jinja|yaml", JinjaOptions::default(), empty.clone(), empty, files.clone(), None);
    let _ = renderer.reactions("salt/key", &event, &["salt://fuzzed.sls".into()], files.as_ref());
});
