//! Salt's pillar, compiled per minion: what `salt.pillar.Pillar.compile_pillar` makes of
//! `pillar_roots` for one minion's id and grains.
//!
//! Owns: the top files of every saltenv (with `include`), their merge, order and matching
//! ([`top`]); rendering each sls through its renderer pipe ([`render`]: Jinja on MiniJinja
//! with Salt's context, filters, tags and `salt` functions ([`jinja`], [`salt_fns`]), then
//! YAML exactly as Salt's loader reads it, or JSON); includes (dotted, relative, glob,
//! `defaults:` and `key:`), merging sources by `pillar_source_merging_strategy` and
//! `pillar_merge_lists` ([`merge`]); the `_errors` Salt puts in a minion's pillar when a file
//! fails, with Salt's messages.
//!
//! Must not: speak the protocol, know about sockets or threads, or cache across compiles.
//! It reads the pillar tree through `halite-fileserver` (whose file lists check themselves
//! against the filesystem) and nothing else; the master decides when to compile and where
//! to keep the result.
//!
//! Where halite parts from Salt on purpose: a renderer it does not have (`py`, `mako`, a
//! `gpg` block to decrypt) is an error in `_errors` instead of being run; a target in the
//! top file that cannot be evaluated is logged; `salt[...]` offers the functions listed in
//! [`salt_fns::FUNCTIONS`] and fails loudly on any other.

pub mod jinja;
pub mod merge;
pub mod render;
pub mod salt_fns;
pub mod top;

use std::path::PathBuf;
use std::sync::Arc;

use halite_fileserver::Roots;
use halite_yaml::py::{self, truthy};
use halite_yaml::Value;

pub use jinja::JinjaOptions;
use jinja::{FileContext, Globals, JinjaEnv, TemplateFiles};
pub use merge::Strategy;
use salt_fns::FnData;

/// The pillar options of the master config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// saltenv → directories (`pillar_roots`), `__env__` included.
    pub pillar_roots: Vec<(String, Vec<PathBuf>)>,
    /// `state_top` (`salt://top.sls` or `top.sls`).
    pub state_top: String,
    /// `renderer`, the pipe of files without a `#!` line.
    pub renderer: String,
    pub strategy: Strategy,
    pub merge_lists: bool,
    /// `pillar_includes_override_sls`.
    pub includes_override_sls: bool,
    /// `pillar_safe_render_error`: `_errors` says only which file failed.
    pub safe_render_error: bool,
    /// Jinja options for top files (`jinja_env`) and for sls files (`jinja_sls_env`).
    pub top_jinja: JinjaOptions,
    pub sls_jinja: JinjaOptions,
    pub nodegroups: Vec<(String, Value)>,
    /// The master options templates see as `opts` (and `config.get` reads).
    pub opts: Value,
    /// `pillarenv`, and `pillarenv_from_saltenv`.
    pub pillarenv: Option<String>,
    pub pillarenv_from_saltenv: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PillarError {
    #[error("pillar_roots: {0}")]
    Roots(#[from] halite_fileserver::FileServerError),
    #[error("{key}: {problem}")]
    Config { key: &'static str, problem: String },
}

impl Settings {
    /// Salt's defaults, over `pillar_roots`.
    pub fn with_roots(pillar_roots: Vec<(String, Vec<PathBuf>)>) -> Settings {
        Settings {
            pillar_roots,
            state_top: "salt://top.sls".into(),
            renderer: "jinja|yaml".into(),
            strategy: Strategy::Smart,
            merge_lists: false,
            includes_override_sls: false,
            safe_render_error: true,
            top_jinja: JinjaOptions::default(),
            sls_jinja: JinjaOptions::default(),
            nodegroups: Vec::new(),
            opts: Value::Map(Vec::new()),
            pillarenv: None,
            pillarenv_from_saltenv: false,
        }
    }

    /// The pillar options of a master config; an invalid value names its key.
    pub fn from_config(c: &halite_config::MasterConfig) -> Result<Settings, PillarError> {
        let flag = |key: &'static str, default: bool| -> Result<bool, PillarError> {
            match c.extra(key) {
                None | Some(Value::Nil) => Ok(default),
                Some(Value::Boolean(b)) => Ok(*b),
                Some(other) => {
                    Err(PillarError::Config { key, problem: format!("{} is not True or False", py::repr(other)) })
                }
            }
        };
        let text = |key: &'static str| -> Result<Option<String>, PillarError> {
            match c.extra(key) {
                None | Some(Value::Nil) => Ok(None),
                Some(Value::String(s)) => Ok(s.as_str().map(str::to_owned)),
                Some(other) => Ok(Some(py::text(other))),
            }
        };
        let strategy_name = text("pillar_source_merging_strategy")?.unwrap_or_else(|| "smart".into());
        let strategy = Strategy::from_name(&strategy_name).ok_or_else(|| PillarError::Config {
            key: "pillar_source_merging_strategy",
            problem: format!("{strategy_name:?} is not one of smart, recurse, aggregate, overwrite, none, list"),
        })?;
        let allow_undefined = flag("allow_undefined", false)?;
        let jinja = |pairs: &[(String, Value)]| -> JinjaOptions {
            let get = |k: &str| pairs.iter().any(|(key, v)| key.eq_ignore_ascii_case(k) && *v == Value::Boolean(true));
            JinjaOptions {
                trim_blocks: get("trim_blocks") || c.jinja_trim_blocks,
                lstrip_blocks: get("lstrip_blocks") || c.jinja_lstrip_blocks,
                keep_trailing_newline: get("keep_trailing_newline"),
                allow_undefined,
            }
        };
        let mut opts = vec![
            (Value::from("renderer"), Value::from(c.renderer.as_str())),
            (Value::from("state_top"), Value::from(c.state_top.as_str())),
            (Value::from("hash_type"), Value::from(c.hash_type.as_str())),
            (Value::from("file_roots"), roots_value(&c.file_roots.0)),
            (Value::from("pillar_roots"), roots_value(&c.pillar_roots.0)),
            (
                Value::from("nodegroups"),
                Value::Map(c.nodegroups.iter().map(|(k, v)| (Value::from(k.as_str()), v.clone())).collect()),
            ),
            (Value::from("cachedir"), Value::from(c.cachedir.to_string_lossy().into_owned())),
        ];
        for key in ["master_id", "pillar_source_merging_strategy", "pillar_merge_lists", "pillarenv", "environment"] {
            if let Some(v) = c.extra(key) {
                opts.push((Value::from(key), v.clone()));
            }
        }
        Ok(Settings {
            pillar_roots: c.pillar_roots.0.clone(),
            state_top: c.state_top.clone(),
            renderer: c.renderer.clone(),
            strategy,
            merge_lists: flag("pillar_merge_lists", false)?,
            includes_override_sls: flag("pillar_includes_override_sls", false)?,
            safe_render_error: flag("pillar_safe_render_error", true)?,
            top_jinja: jinja(&c.jinja_env),
            sls_jinja: jinja(&c.jinja_sls_env),
            nodegroups: c.nodegroups.clone(),
            opts: Value::Map(opts),
            pillarenv: text("pillarenv")?,
            pillarenv_from_saltenv: flag("pillarenv_from_saltenv", false)?,
        })
    }
}

fn roots_value(roots: &[(String, Vec<PathBuf>)]) -> Value {
    Value::Map(
        roots
            .iter()
            .map(|(env, dirs)| {
                let dirs = dirs.iter().map(|d| Value::from(d.to_string_lossy().into_owned())).collect();
                (Value::from(env.as_str()), Value::Array(dirs))
            })
            .collect(),
    )
}

/// What a minion asks for in `_pillar`.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub minion_id: &'a str,
    pub grains: &'a Value,
    pub saltenv: Option<&'a str>,
    pub pillarenv: Option<&'a str>,
    /// `pillar_override` (`pillar=` on the command line), merged over the result.
    pub pillar_override: &'a Value,
}

/// A compiled pillar, with what went wrong on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    /// The minion's pillar; holds `_errors` when `errors` is not empty.
    pub pillar: Value,
    /// The `_errors` entries, Salt's messages.
    pub errors: Vec<String>,
    /// The full reason of each failure, with file and line, for the master's log.
    pub details: Vec<String>,
    /// saltenv → sls names the top file gave the minion.
    pub matches: Vec<(String, Vec<String>)>,
}

pub struct Compiler {
    settings: Settings,
    roots: Arc<Roots>,
    mine: Option<Arc<dyn salt_fns::Mine>>,
}

struct EnvFiles {
    roots: Arc<Roots>,
    saltenv: String,
}

impl TemplateFiles for EnvFiles {
    fn read(&self, rel: &str) -> Option<Result<String, String>> {
        let found = self.roots.find_file(rel, &self.saltenv)?;
        Some(std::fs::read_to_string(&found.path).map_err(|e| format!("{}: {e}", found.path.display())))
    }
}

/// The state of one compile: Salt's `Pillar` object for one minion.
struct Run<'c> {
    compiler: &'c Compiler,
    id: &'c str,
    grains: Value,
    pillarenv: Option<String>,
    /// saltenv → available sls names (`list_states`).
    avail: Vec<(String, Vec<String>)>,
    globals: Globals,
    errors: Vec<String>,
    details: Vec<String>,
    ignore: top::MergedTop,
}

/// One rendered sls as `render_pstate` keeps it in `mods`.
type Mods = Vec<(String, Option<Value>)>;

impl Compiler {
    pub fn new(settings: Settings) -> Result<Compiler, PillarError> {
        let roots = Roots::new(halite_fileserver::Settings {
            file_roots: settings.pillar_roots.clone(),
            ignore_regex: Vec::new(),
            ignore_glob: Vec::new(),
            ignore_symlinks: false,
            buffer_size: halite_fileserver::DEFAULT_BUFFER_SIZE,
            hash_type: "sha256".into(),
        })?;
        Ok(Compiler { settings, roots: Arc::new(roots), mine: None })
    }

    /// Where templates' `mine.get` reads (the master's mine); without it they find nothing.
    pub fn with_mine(mut self, mine: Arc<dyn salt_fns::Mine>) -> Compiler {
        self.mine = Some(mine);
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// `compile_pillar()` for one minion.
    pub fn compile(&self, req: &Request<'_>) -> Compiled {
        let mut run = self.start(req);
        let (merged, top_errors) = run.top(req.saltenv);
        let (matches, problems) =
            top::matches(&merged, run.id, &run.grains, &self.settings.nodegroups, run.pillarenv.as_deref());
        run.details.extend(problems);
        run.ignore = merged;
        // Salt starts from the override too, so its keys come first.
        let initial = match req.pillar_override {
            Value::Map(_) => req.pillar_override.clone(),
            _ => Value::Map(Vec::new()),
        };
        let mut pillar = run.render_pillar(&matches, initial);
        run.errors.extend(top_errors);
        let errors = std::mem::take(&mut run.errors);
        if !errors.is_empty() {
            let list = Value::Array(errors.iter().map(|e| Value::from(e.as_str())).collect());
            set_key(&mut pillar, "_errors", list);
        }
        if matches!(req.pillar_override, Value::Map(m) if !m.is_empty()) {
            pillar = self.merge(pillar, req.pillar_override.clone());
        }
        Compiled { pillar, errors, details: run.details, matches }
    }

    /// `show_top`: the merged top file as the minion's compile reads it, and its errors.
    pub fn top(&self, req: &Request<'_>) -> (Value, Vec<String>) {
        let mut run = self.start(req);
        let (merged, errors) = run.top(req.saltenv);
        (merged.to_value(), errors)
    }

    fn merge(&self, a: Value, b: Value) -> Value {
        merge::merge(a, b, self.settings.strategy, &self.settings.renderer, self.settings.merge_lists)
    }

    fn start<'c>(&'c self, req: &Request<'c>) -> Run<'c> {
        let pillarenv = req
            .pillarenv
            .map(str::to_owned)
            .or_else(|| self.settings.pillarenv.clone())
            .or_else(|| self.settings.pillarenv_from_saltenv.then(|| req.saltenv.map(str::to_owned)).flatten());
        let mut grains = match req.grains {
            Value::Map(_) => req.grains.clone(),
            _ => Value::Map(Vec::new()),
        };
        set_key(&mut grains, "id", Value::from(req.minion_id));
        let mut opts = match &self.settings.opts {
            Value::Map(_) => self.settings.opts.clone(),
            _ => Value::Map(Vec::new()),
        };
        set_key(&mut opts, "id", Value::from(req.minion_id));
        set_key(&mut opts, "saltenv", req.saltenv.map_or(Value::Nil, Value::from));
        set_key(&mut opts, "pillarenv", pillarenv.as_deref().map_or(Value::Nil, Value::from));
        let data =
            Arc::new(FnData { grains: grains.clone(), pillar: Value::Map(Vec::new()), opts, mine: self.mine.clone() });
        let avail = self
            .envs(pillarenv.as_deref().or(req.saltenv))
            .into_iter()
            .map(|env| {
                let states = list_states(&self.roots.listing(&env).files);
                (env, states)
            })
            .collect();
        Run {
            compiler: self,
            id: req.minion_id,
            grains,
            pillarenv,
            avail,
            globals: Globals::new(data),
            errors: Vec::new(),
            details: Vec::new(),
            ignore: top::MergedTop::default(),
        }
    }

    /// `_get_envs`: `base`, then the saltenvs of `pillar_roots` in order; `__env__` stands
    /// for `env` (the pillarenv or saltenv) when that is not configured itself.
    fn envs(&self, env: Option<&str>) -> Vec<String> {
        let mut envs = vec!["base".to_owned()];
        let env = env.unwrap_or("base");
        let configured = self.settings.pillar_roots.iter().any(|(e, _)| e == env);
        for (e, _) in &self.settings.pillar_roots {
            let name = if e == "__env__" {
                if configured {
                    continue;
                }
                env
            } else {
                e.as_str()
            };
            if !envs.iter().any(|x| x == name) {
                envs.push(name.to_owned());
            }
        }
        envs
    }

    fn has_roots(&self, saltenv: &str) -> bool {
        self.settings.pillar_roots.iter().any(|(e, dirs)| (e == saltenv || e == "__env__") && !dirs.is_empty())
    }

    fn top_path(&self) -> String {
        let top = self.settings.state_top.strip_prefix("salt://").unwrap_or(&self.settings.state_top);
        top.trim_start_matches('/').to_owned()
    }
}

/// `list_states`: every `.sls` file as a dotted name, `x/init.sls` as `x`, sorted.
fn list_states(files: &[String]) -> Vec<String> {
    let mut states: Vec<String> = files
        .iter()
        .filter_map(|f| {
            if let Some(dir) = f.strip_suffix("/init.sls") {
                Some(dir.replace('/', "."))
            } else {
                f.strip_suffix(".sls").map(|s| s.replace('/', "."))
            }
        })
        .collect();
    states.sort();
    states.dedup();
    states
}

fn set_key(map: &mut Value, key: &str, value: Value) {
    if let Value::Map(pairs) = map {
        match pairs.iter_mut().find(|(k, _)| k.as_str() == Some(key)) {
            Some(slot) => slot.1 = value,
            None => pairs.push((Value::from(key), value)),
        }
    }
}

fn get_key<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    match map {
        Value::Map(pairs) => pairs.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v),
        _ => None,
    }
}

impl Run<'_> {
    fn settings(&self) -> &Settings {
        &self.compiler.settings
    }

    /// Renders the file `rel` of `saltenv` for sls `sls` (empty for a top file).
    fn compile_file(
        &self,
        rel: &str,
        saltenv: &str,
        sls: &str,
        defaults: &[(String, Value)],
    ) -> Option<Result<Value, render::RenderError>> {
        let found = self.compiler.roots.find_file(rel, saltenv)?;
        let text = match std::fs::read(&found.path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => return Some(Err(render::RenderError::Jinja(format!("{}: {e}", found.path.display())))),
        };
        let options = if sls.is_empty() { self.settings().top_jinja } else { self.settings().sls_jinja };
        let files = Arc::new(EnvFiles { roots: Arc::clone(&self.compiler.roots), saltenv: saltenv.to_owned() });
        let env = JinjaEnv::new(files, &self.globals, saltenv, options);
        let file = FileContext {
            saltenv: saltenv.to_owned(),
            sls: sls.to_owned(),
            rel: found.rel.clone(),
            path: found.path.to_string_lossy().into_owned(),
            defaults: defaults.to_vec(),
        };
        Some(render::compile(&text, &self.settings().renderer, &env, &file))
    }

    /// `get_state`: the file of an sls (`a.b` → `a/b.sls`, else `a/b/init.sls`).
    fn sls_file(&self, sls: &str, saltenv: &str) -> Option<String> {
        let base = sls.replace('.', "/");
        [format!("{base}.sls"), format!("{base}/init.sls")]
            .into_iter()
            .find(|rel| self.compiler.roots.find_file(rel, saltenv).is_some())
    }

    /// `get_tops` + `merge_tops`: the merged top, and the top errors.
    fn top(&mut self, saltenv: Option<&str>) -> (top::MergedTop, Vec<String>) {
        let mut errors = Vec::new();
        let envs: Vec<String> = match &self.pillarenv {
            Some(p) if self.compiler.has_roots(p) => vec![p.clone()],
            Some(_) => Vec::new(),
            None if self.settings().strategy == Strategy::None => vec![saltenv.unwrap_or("base").to_owned()],
            None => self.avail.iter().map(|(e, _)| e.clone()).collect(),
        };
        let top_rel = self.compiler.top_path();
        let mut tops: Vec<(String, Vec<Value>)> = Vec::new();
        for env in &envs {
            match self.compile_file(&top_rel, env, "", &[]) {
                None => {}
                Some(Ok(t)) => tops.push((env.clone(), vec![t])),
                Some(Err(e)) => {
                    self.details.push(format!("pillar top file of saltenv {env}: {e}"));
                    errors.push(format!("Rendering Primary Top file failed, render error:\n{e}"));
                }
            }
        }
        // Includes of the primary top files (only theirs: an included top's own `include`
        // is ignored, as in Salt).
        for (env, ctops) in &mut tops {
            let mut includes: Vec<String> = Vec::new();
            for ctop in ctops.iter_mut() {
                if let Value::Map(pairs) = ctop {
                    if let Some(i) = pairs.iter().position(|(k, _)| k.as_str() == Some("include")) {
                        let (_, list) = pairs.remove(i);
                        if let Value::Array(items) = list {
                            includes.extend(items.iter().map(py::text));
                        }
                    }
                }
            }
            let mut done: Vec<String> = Vec::new();
            for sls in includes {
                if done.contains(&sls) {
                    continue;
                }
                let rendered = self
                    .sls_file(&sls, env)
                    .and_then(|rel| self.compile_file(&rel, env, "", &[]))
                    .unwrap_or_else(|| Ok(Value::Map(Vec::new())));
                match rendered {
                    Ok(t) => ctops.push(t),
                    Err(e) => {
                        self.details.push(format!("pillar top file {sls} of saltenv {env}: {e}"));
                        errors.push(format!("Rendering Top file {sls} failed, render error:\n{e}"));
                    }
                }
                done.push(sls);
            }
        }
        let all: Vec<Value> = tops.into_iter().flat_map(|(_, t)| t).collect();
        match top::merge(&all) {
            Ok(m) => (m, errors),
            Err(top::MalformedTop) => {
                errors.push("Error encountered while rendering pillar top file.".to_owned());
                (top::MergedTop::default(), errors)
            }
        }
    }

    fn avail(&self, saltenv: &str) -> Option<&[String]> {
        self.avail.iter().find(|(e, _)| e == saltenv).map(|(_, s)| s.as_slice())
    }

    /// `render_pillar`: every matched sls (globs expanded over the available ones) rendered
    /// and merged in order.
    fn render_pillar(&mut self, matches: &[(String, Vec<String>)], initial: Value) -> Value {
        let mut pillar = initial;
        for (saltenv, pstates) in matches {
            let mut files: Vec<String> = Vec::new();
            for pattern in pstates {
                let matched: Vec<String> = match self.avail(saltenv) {
                    Some(avail) => avail.iter().filter(|s| halite_target::fnmatch(s, pattern)).cloned().collect(),
                    None => {
                        self.errors.push(format!("No matching pillar environment for environment '{saltenv}' found"));
                        Vec::new()
                    }
                };
                if matched.is_empty() {
                    files.push(pattern.clone());
                } else {
                    files.extend(matched);
                }
            }
            let mut mods: Mods = Vec::new();
            for sls in files {
                let (state, errors) = self.render_pstate(&sls, saltenv, &mut mods, Vec::new());
                self.errors.extend(errors);
                match state {
                    Some(s @ Value::Map(_)) => pillar = self.compiler.merge(pillar, s),
                    Some(other) => {
                        self.details.push(format!(
                            "the rendered pillar sls file '{sls}' is not a dict but {}",
                            py::repr(&other)
                        ));
                    }
                    None => {}
                }
            }
        }
        pillar
    }

    /// `render_pstate`: one sls rendered, its includes rendered and merged under it.
    /// Returns the state (`None` when missing or failed) and the errors of this sls.
    fn render_pstate(
        &mut self,
        sls: &str,
        saltenv: &str,
        mods: &mut Mods,
        mut defaults: Vec<(String, Value)>,
    ) -> (Option<Value>, Vec<String>) {
        let mut errors: Vec<String> = Vec::new();
        let Some(rel) = self.sls_file(sls, saltenv) else {
            if self.ignore.is_ignored_missing(saltenv, sls) {
                return (None, errors);
            }
            if self.compiler.has_roots(saltenv) {
                let msg =
                    format!("Specified SLS '{sls}' in environment '{saltenv}' is not available on the salt master");
                self.details.push(msg.clone());
                errors.push(msg);
            }
            return (None, errors);
        };
        let from_init = rel.ends_with("/init.sls");
        let mut state = match self.compile_file(&rel, saltenv, sls, &defaults) {
            Some(Ok(v)) => Some(v),
            Some(Err(e)) => {
                self.details.push(format!("Rendering SLS '{sls}' failed, render error:\n{e}"));
                errors.push(if self.settings().safe_render_error {
                    format!("Rendering SLS '{sls}' failed. Please see master log for details.")
                } else {
                    format!("Rendering SLS '{sls}' failed, render error:\n{e}")
                });
                None
            }
            None => None,
        };
        // `mods` holds the state with its include popped, before includes merge into it.
        let includes = match &mut state {
            Some(Value::Map(pairs)) => {
                pairs.iter().position(|(k, _)| k.as_str() == Some("include")).map(|i| pairs.remove(i).1)
            }
            _ => None,
        };
        mods.push((sls.to_owned(), state.clone()));
        let Some(s) = &state else { return (None, errors) };
        if !truthy(s) {
            return (state, errors);
        }
        if !matches!(s, Value::Map(_)) {
            let msg = format!("SLS '{sls}' does not render to a dictionary");
            self.details.push(msg.clone());
            errors.push(msg);
            return (state, errors);
        }
        let Some(includes) = includes else { return (state, errors) };
        let Value::Array(includes) = includes else {
            let msg = format!("Include Declaration in SLS '{sls}' is not formed as a list");
            self.details.push(msg.clone());
            errors.push(msg);
            return (state, errors);
        };
        let override_sls = self.settings().includes_override_sls;
        let mut include_states: Vec<Value> = Vec::new();
        // Python's `err` outlives the loop's iterations: an include served from `mods`
        // repeats the previous include's errors, as in Salt.
        let mut err: Vec<String> = Vec::new();
        for include in includes {
            let (sub_sls, key) = match &include {
                Value::Map(pairs) if !pairs.is_empty() => {
                    let (name, options) = &pairs[0];
                    defaults = match get_key(options, "defaults") {
                        Some(Value::Map(d)) => d.iter().map(|(k, v)| (py::text(k), v.clone())).collect(),
                        _ => Vec::new(),
                    };
                    (py::text(name), get_key(options, "key").map(py::text))
                }
                other => (py::text(other), None),
            };
            let mut matched: Vec<String> = Vec::new();
            let mut relative = sub_sls.clone();
            match self.avail(saltenv).map(<[String]>::to_vec) {
                Some(avail) => {
                    let stripped = sub_sls.trim_start_matches('.').replace('/', ".");
                    matched.extend(avail.iter().filter(|s| halite_target::fnmatch(s, &stripped)).cloned());
                    if let Some(rest) = sub_sls.strip_prefix('.') {
                        let mut parts: Vec<&str> = sls.split('.').collect();
                        if !from_init {
                            parts.pop();
                        }
                        parts.push(rest);
                        relative = parts.join(".");
                    }
                    matched.extend(avail.iter().filter(|s| halite_target::fnmatch(s, &relative)).cloned());
                }
                None => {
                    errors.push(format!("No matching pillar environment for environment '{saltenv}' found"));
                    matched.push(relative.clone());
                }
            }
            if matched.is_empty() {
                matched.push(relative);
            }
            for m in matched {
                let nstate = match mods.iter().find(|(name, _)| *name == m) {
                    Some((_, cached)) => cached.clone(),
                    None => {
                        let (n, e) = self.render_pstate(&m, saltenv, mods, defaults.clone());
                        err = e;
                        n
                    }
                };
                if let Some(mut n) = nstate.filter(truthy) {
                    if let Some(key) = &key {
                        for fragment in key.split(':').rev() {
                            n = Value::Map(vec![(Value::from(fragment), n)]);
                        }
                    }
                    if override_sls {
                        state = Some(self.compiler.merge(state.take().unwrap_or(Value::Map(Vec::new())), n));
                    } else {
                        include_states.push(n);
                    }
                }
                errors.extend(err.iter().cloned());
            }
        }
        if !override_sls {
            include_states.extend(state.take());
            let mut merged: Option<Value> = None;
            for s in include_states {
                merged = Some(match merged {
                    None => s,
                    Some(m) => self.compiler.merge(m, s),
                });
            }
            state = merged;
        }
        (state, errors)
    }
}

#[cfg(test)]
mod tests;
