//! Salt's reactor (`salt.utils.reactor`) as a pure library: which reaction files an event's
//! tag selects, what those files render to with the event in their context, and the typed
//! actions (`local.*`, `wheel.key.*`, `runner.*`) they ask for, in the order Salt runs them.
//!
//! Owns: the `reactor` map (tag globs matched with Python's `fnmatch`, as Salt does), the
//! render of a reaction sls (the master's `renderer` pipe, Jinja + YAML through
//! `halite-pillar`, with `tag`, `data` and Salt's master-side context), Salt's state
//! compiler steps the reactor uses (`pad_funcs`, `verify_high`, `compile_high_data`,
//! `order_chunks`, the `cmd` alias) in [`compile`], and reading each chunk as Salt's
//! `ReactWrap` does, in both argument styles (`arg`/`kwarg` and `args`), in [`action`].
//! Every failure is a value naming the file or reaction, never a panic.
//!
//! Must not: read files, open sockets, start threads or publish anything. The caller hands
//! in the files a path names ([`Sources`]) and runs the actions; it decides where reactions
//! run (halite's master: a thread pool off the request path).

pub mod action;
pub mod compile;

use std::sync::Arc;

use halite_pillar::jinja::{FileContext, Globals, JinjaEnv, JinjaOptions, TemplateFiles};
use halite_pillar::salt_fns::{FnData, Mine};
use halite_yaml::Value;

pub use action::{Action, KeyOp, LocalJob, Reaction, ReactionError, RunnerCall};

/// The `reactor` option: tag glob → reaction files, in the configured order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReactorMap {
    entries: Vec<(String, Vec<String>)>,
}

impl ReactorMap {
    pub fn new(entries: Vec<(String, Vec<String>)>) -> ReactorMap {
        ReactorMap { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `list_reactors`: the files of every entry whose glob matches `tag`, in map order (a
    /// file listed by two matching entries is rendered twice, as in Salt).
    pub fn reactors_for(&self, tag: &str) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(glob, _)| halite_target::fnmatch(tag, glob))
            .flat_map(|(_, files)| files.iter().cloned())
            .collect()
    }
}

/// One file a reaction path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The path Salt would name it by in its log (`__sls__` of its reactions).
    pub path: String,
    /// Its name for Jinja (relative imports, error messages).
    pub template_name: String,
    /// Its text, or why it could not be read.
    pub text: Result<String, String>,
}

/// What the caller reads for the reactor: the files of a path (`salt://` through the file
/// server's `base`, anything else as a filesystem glob), none when nothing matches.
pub trait Sources {
    fn files(&self, path: &str) -> Vec<SourceFile>;
}

/// A reaction file that could not be used; the event's other files still react.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReactorError {
    #[error("Can not render SLS {path} for tag {tag}. File missing or not found.")]
    Missing { path: String, tag: String },
    #[error("Failed to render \"{path}\" for tag {tag}: {reason}")]
    Render { path: String, tag: String, reason: String },
    /// Salt's `verify_high` refusing the rendered data: nothing reacts to the event.
    #[error(
        "Unable to render reactions for event {tag} due to errors ({errors}) in one or more of the sls files ({files})"
    )]
    Invalid { tag: String, errors: String, files: String },
}

/// What an event makes the reactor do: the reactions in Salt's order (each one usable or the
/// reason it is not, as Salt's `ReactWrap.run` logs per chunk), and the files that failed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reactions {
    pub reactions: Vec<Result<Reaction, ReactionError>>,
    pub errors: Vec<ReactorError>,
}

/// How reaction files render: the master's `renderer`, its Jinja options (`jinja_env`: a
/// reaction file has no sls name), and the master-side context Salt gives them.
pub struct Renderer {
    renderer: String,
    options: JinjaOptions,
    globals: Globals,
    templates: Arc<dyn TemplateFiles>,
}

impl Renderer {
    /// `opts` is what templates see as `opts`; `grains` the master's (Salt's `MasterMinion`
    /// loads them); `templates` serves `{% import %}`s (Salt's file client, `base`); `mine`
    /// answers `salt['mine.get']`.
    pub fn new(
        renderer: &str,
        options: JinjaOptions,
        opts: Value,
        grains: Value,
        templates: Arc<dyn TemplateFiles>,
        mine: Option<Arc<dyn Mine>>,
    ) -> Renderer {
        let data = FnData { grains, pillar: Value::Map(Vec::new()), opts, mine };
        Renderer { renderer: renderer.to_owned(), options, globals: Globals::new(Arc::new(data)), templates }
    }

    /// `Reactor.reactions` + the per-chunk reading of `ReactWrap.run`: renders `files` (from
    /// [`ReactorMap::reactors_for`]) with the event and compiles what they ask for.
    pub fn reactions(&self, tag: &str, data: &Value, files: &[String], sources: &dyn Sources) -> Reactions {
        let mut out = Reactions::default();
        let mut high = compile::High::default();
        for path in files {
            let found = sources.files(path);
            if found.is_empty() {
                out.errors.push(ReactorError::Missing { path: path.clone(), tag: tag.to_owned() });
            }
            for file in found {
                match self.render_file(tag, data, &file) {
                    Ok(rendered) => high.update(rendered),
                    Err(reason) => {
                        out.errors.push(ReactorError::Render { path: file.path.clone(), tag: tag.to_owned(), reason })
                    }
                }
            }
        }
        if high.is_empty() {
            return out;
        }
        let errors = high.verify();
        if !errors.is_empty() {
            out.errors.push(ReactorError::Invalid {
                tag: tag.to_owned(),
                errors: halite_yaml::py::repr(&Value::Array(errors.into_iter().map(Value::from).collect())),
                files: halite_yaml::py::repr(&Value::Array(files.iter().map(|f| Value::from(f.as_str())).collect())),
            });
            return out;
        }
        out.reactions = high.chunks().into_iter().map(|chunk| action::read(&chunk)).collect();
        out
    }

    /// `render_reaction` for one file: its high data, each ID tagged with the file.
    fn render_file(&self, tag: &str, data: &Value, file: &SourceFile) -> Result<compile::High, String> {
        let text = file.text.clone()?;
        let env = JinjaEnv::new(Arc::clone(&self.templates), &self.globals, "base", self.options);
        let context = FileContext {
            saltenv: "base".into(),
            sls: String::new(),
            rel: file.template_name.clone(),
            path: file.path.clone(),
            defaults: vec![("tag".into(), Value::from(tag)), ("data".into(), data.clone())],
        };
        let rendered =
            halite_pillar::render::compile(&text, &self.renderer, &env, &context).map_err(|e| e.to_string())?;
        compile::High::from_rendered(rendered, &file.path)
    }
}

#[cfg(test)]
mod tests;
