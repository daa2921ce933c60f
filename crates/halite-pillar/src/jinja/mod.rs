//! Salt's Jinja renderer (`salt.utils.templates.render_jinja_tmpl`) on MiniJinja.
//!
//! One [`JinjaEnv`] serves one minion's compile: its globals are that minion's context
//! (`grains`, `opts`, `pillar`, `salt`, `saltenv`), as Salt puts the whole context into the
//! environment's globals — which is why imported templates (`{% from 'map.jinja' import x %}`)
//! see `grains` without `with context`. Per file, `sls`, `slspath`, `tpldir` and friends are
//! passed to the render. Templates are loaded from the saltenv's roots through
//! [`TemplateFiles`], relative names (`./x`, `../x`) from the including template's directory
//! and never above the root; every source goes through [`preprocess::rewrite`] first.
//!
//! Undefined variables are errors (Salt's `StrictUndefined`) unless `allow_undefined`.

pub mod filters;
pub mod preprocess;
pub mod value;

use std::sync::Arc;

use halite_yaml::Value;
use minijinja::value::{Kwargs, Object, ObjectRepr, Value as MjValue};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior};

use crate::salt_fns::{self, Args, FnData};
use value::{dict, list, map_pairs, py_str, to_jinja, to_value};

/// Where templates come from: a saltenv's roots, by path relative to them.
pub trait TemplateFiles: Send + Sync {
    /// The text of `rel` (a `/`-separated path under the roots), `None` when no root has it.
    fn read(&self, rel: &str) -> Option<Result<String, String>>;
}

/// Jinja options from the master config (`jinja_env` / `jinja_sls_env` and the legacy
/// `jinja_trim_blocks` / `jinja_lstrip_blocks`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JinjaOptions {
    pub trim_blocks: bool,
    pub lstrip_blocks: bool,
    pub keep_trailing_newline: bool,
    pub allow_undefined: bool,
}

/// The per-file context Salt's `generate_sls_context` adds.
#[derive(Debug, Clone, Default)]
pub struct FileContext {
    pub saltenv: String,
    /// Dotted sls name; empty for a top file.
    pub sls: String,
    /// Path of the file relative to its root (`users/init.sls`).
    pub rel: String,
    /// Absolute path of the file (`tplpath`).
    pub path: String,
    /// Extra variables (an include's `defaults:`).
    pub defaults: Vec<(String, Value)>,
}

pub struct JinjaEnv {
    env: Environment<'static>,
}

/// A minion's context as template values, converted once per compile and shared by every
/// file's render — as Salt hands every render the same `grains` dict.
#[derive(Clone)]
pub struct Globals {
    grains: MjValue,
    pillar: MjValue,
    opts: MjValue,
    salt: MjValue,
}

impl Globals {
    pub fn new(data: Arc<FnData>) -> Globals {
        Globals {
            grains: to_jinja(&data.grains),
            pillar: to_jinja(&data.pillar),
            opts: to_jinja(&data.opts),
            salt: MjValue::from_object(SaltTable { data, module: None }),
        }
    }
}

/// A template that failed, with the file and line where MiniJinja saw it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JinjaError {
    pub message: String,
}

impl JinjaEnv {
    /// An environment for one minion's compile.
    pub fn new(files: Arc<dyn TemplateFiles>, globals: &Globals, saltenv: &str, options: JinjaOptions) -> JinjaEnv {
        let mut env = Environment::new();
        env.set_undefined_behavior(if options.allow_undefined {
            UndefinedBehavior::Lenient
        } else {
            UndefinedBehavior::Strict
        });
        let mut syntax = minijinja::syntax::SyntaxConfig::builder();
        syntax
            .trim_blocks(options.trim_blocks)
            .lstrip_blocks(options.lstrip_blocks)
            .keep_trailing_newline(options.keep_trailing_newline);
        if let Ok(config) = syntax.build() {
            env.set_syntax(config);
        }
        env.set_recursion_limit(100);
        env.set_formatter(|out, _state, value| {
            // Python's `str()` of what `{{ }}` prints: `True`, `None`, `['a', 1]`.
            out.write_str(&py_str(value)).map_err(|e| Error::new(ErrorKind::WriteFailure, e.to_string()))
        });
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_path_join_callback(|name, parent| {
            if name.starts_with("./") || name.starts_with("../") {
                let dir = parent.rsplit_once('/').map_or("", |(d, _)| d);
                join_relative(dir, name).map_or_else(|| name.into(), Into::into)
            } else {
                name.into()
            }
        });
        let loader_files = Arc::clone(&files);
        env.set_loader(move |name| {
            let Some(rel) = normalize(name) else { return Ok(None) };
            match loader_files.read(&rel) {
                None => Ok(None),
                Some(Ok(text)) => Ok(Some(preprocess::rewrite(&text))),
                Some(Err(e)) => Err(Error::new(ErrorKind::TemplateNotFound, format!("{name}: {e}"))),
            }
        });
        filters::register(&mut env);
        env.add_function(preprocess::LIST_FN, |v: MjValue| -> Result<MjValue, Error> {
            Ok(list(v.try_iter()?.collect()))
        });
        env.add_function(preprocess::DICT_FN, |v: MjValue| -> Result<MjValue, Error> { Ok(dict(map_pairs(&v)?)) });
        env.add_function(preprocess::IMPORT_FN, import_file);
        env.add_global("grains", globals.grains.clone());
        env.add_global("pillar", globals.pillar.clone());
        env.add_global("opts", globals.opts.clone());
        env.add_global("saltenv", saltenv.to_owned());
        env.add_global("salt", globals.salt.clone());
        JinjaEnv { env }
    }

    /// Renders `source` (the text of `file.rel`) as Salt does: one trailing newline kept.
    pub fn render(&self, source: &str, file: &FileContext) -> Result<String, JinjaError> {
        let rewritten = preprocess::rewrite(source);
        let tmpl = self.env.template_from_named_str(&file.rel, &rewritten).map_err(|e| describe(&e))?;
        let mut ctx: Vec<(String, MjValue)> =
            sls_context(file).into_iter().map(|(k, v)| (k, MjValue::from(v))).collect();
        ctx.push(("sls".into(), MjValue::from(file.sls.as_str())));
        ctx.push(("saltenv".into(), MjValue::from(file.saltenv.as_str())));
        for (k, v) in &file.defaults {
            ctx.push((k.clone(), to_jinja(v)));
        }
        let ctx: std::collections::BTreeMap<String, MjValue> = ctx.into_iter().collect();
        let mut out = tmpl.render(MjValue::from(ctx)).map_err(|e| describe(&e))?;
        // Jinja drops the source's final newline; Salt puts it back.
        if source.ends_with('\n') && !out.ends_with('\n') {
            out.push('\n');
        }
        Ok(out)
    }
}

/// Salt's `generate_sls_context` for a file.
fn sls_context(file: &FileContext) -> Vec<(String, String)> {
    let template = if file.sls.is_empty() {
        file.rel.rsplit('/').next().unwrap_or(&file.rel).to_owned()
    } else {
        file.rel.clone()
    };
    let dir = template.rsplit_once('/').map_or(String::new(), |(d, _)| d.to_owned());
    vec![
        ("tplpath".into(), file.path.clone()),
        ("tplfile".into(), template.clone()),
        ("tpldir".into(), if dir.is_empty() { ".".into() } else { dir.clone() }),
        ("tpldot".into(), dir.replace('/', ".")),
        ("slspath".into(), dir.clone()),
        ("slsdotpath".into(), dir.replace('/', ".")),
        ("slscolonpath".into(), dir.replace('/', ":")),
        ("sls_path".into(), dir.replace('/', "_")),
    ]
}

/// A template name as a path under the roots; `None` for what would leave them.
fn normalize(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn join_relative(dir: &str, name: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// MiniJinja's error with its template, line and cause chain, for the master's log.
fn describe(e: &Error) -> JinjaError {
    let mut message = e.to_string();
    if let (Some(name), Some(line)) = (e.name(), e.line()) {
        if !message.contains(name) {
            message = format!("{message} ({name} line {line})");
        }
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    JinjaError { message }
}

/// `{% import_yaml 'x' as y %}` and friends: the file rendered as a template (with the
/// environment's globals), then loaded.
fn import_file(state: &State, kind: String, path: String) -> Result<MjValue, Error> {
    let tmpl = state.get_template(&path)?;
    let text = tmpl.render(())?;
    match kind.as_str() {
        "yaml" => filters::load_yaml(&text),
        "json" => filters::load_json(&text),
        _ => Ok(MjValue::from(text)),
    }
}

/// `salt` in templates: `salt['grains.get'](...)` and `salt.grains.get(...)`.
#[derive(Debug)]
struct SaltTable {
    data: Arc<FnData>,
    /// Set on `salt.grains`: the module whose functions the object holds.
    module: Option<String>,
}

impl Object for SaltTable {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &MjValue) -> Option<MjValue> {
        let name = key.as_str()?;
        let full = match &self.module {
            Some(module) => format!("{module}.{name}"),
            None if name.contains('.') => name.to_owned(),
            None => {
                return Some(MjValue::from_object(SaltTable {
                    data: Arc::clone(&self.data),
                    module: Some(name.into()),
                }))
            }
        };
        Some(MjValue::from_object(SaltFunction { name: full, data: Arc::clone(&self.data) }))
    }
}

#[derive(Debug)]
struct SaltFunction {
    name: String,
    data: Arc<FnData>,
}

impl Object for SaltFunction {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn call(self: &Arc<Self>, state: &mut State<'_, '_>, args: &[MjValue]) -> Result<MjValue, Error> {
        let (positional, kwargs): (&[MjValue], Option<Kwargs>) = match args.split_last() {
            Some((last, rest)) if Kwargs::try_from(last.clone()).is_ok() => (rest, Kwargs::try_from(last.clone()).ok()),
            _ => (args, None),
        };
        let mut keyword = Vec::new();
        if let Some(kw) = kwargs {
            for k in kw.args() {
                let v: MjValue = kw.get(k)?;
                keyword.push((k.to_owned(), to_value(&v)?));
            }
        }
        let call_args = Args { positional: positional.iter().map(to_value).collect::<Result<_, _>>()?, keyword };
        salt_fns::call(&self.name, &call_args, &self.data)
            .map(|v| to_jinja(&v))
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("{e} (in {})", state.name())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files(Vec<(&'static str, &'static str)>);

    impl TemplateFiles for Files {
        fn read(&self, rel: &str) -> Option<Result<String, String>> {
            self.0.iter().find(|(p, _)| *p == rel).map(|(_, t)| Ok((*t).to_owned()))
        }
    }

    fn render_with(files: Vec<(&'static str, &'static str)>, source: &str) -> Result<String, JinjaError> {
        let data = FnData {
            grains: halite_yaml::load("id: web1\nroles: [app, db]\nos: Debian\n").unwrap(),
            pillar: Value::Map(vec![]),
            opts: halite_yaml::load("renderer: jinja|yaml\n").unwrap(),
            mine: None,
        };
        let env = JinjaEnv::new(Arc::new(Files(files)), &Globals::new(Arc::new(data)), "base", JinjaOptions::default());
        let file = FileContext {
            saltenv: "base".into(),
            sls: "site.web".into(),
            rel: "site/web.sls".into(),
            ..Default::default()
        };
        env.render(source, &file)
    }

    fn render(source: &str) -> String {
        render_with(vec![], source).unwrap_or_else(|e| panic!("{source}: {e}"))
    }

    #[test]
    fn python_printing_and_mutation() {
        assert_eq!(render("{{ grains.roles }} {{ none }} {{ true }} {{ 1.0 }}\n"), "['app', 'db'] None True 1.0\n");
        assert_eq!(render("{% set x = [] %}{% do x.append(1) %}{% do x.extend([2]) %}{{ x }}"), "[1, 2]");
        assert_eq!(
            render("{% set d = {} %}{% do d.update({'a': 1}) %}{% do d.setdefault('b', []).append(2) %}{{ d }}"),
            "{'a': 1, 'b': [2]}"
        );
        assert_eq!(render("{% for k, v in {'b': 1, 'a': 2}.items() %}{{ k }}{{ v }}{% endfor %}"), "b1a2");
        assert_eq!(render("{{ grains.get('os') }} {{ grains.get('nope', 'x') }}"), "Debian x");
        assert_eq!(render("{{ 'a' in grains.roles }} {{ 'app' in grains.roles }}"), "False True");
    }

    #[test]
    fn salt_functions_and_filters() {
        assert_eq!(render("{{ salt['grains.get']('roles:0') }} {{ salt.grains.get('os') }}"), "app Debian");
        assert_eq!(render("{{ {'b': [1, 'x'], 'a': None}|yaml }}"), "{a: null, b: [1, x]}");
        assert_eq!(render("{{ {'b': 1, 'a': 'é'}|json }}"), "{\"a\": \"\\u00e9\", \"b\": 1}");
        assert_eq!(render(r#"{{ 'yes'|to_bool }} {{ "it's"|yaml_encode }}"#), "True \"it's\"");
        assert_eq!(render("{{ slspath }} {{ tpldir }} {{ sls }}"), "site site site.web");
        let err = render_with(vec![], "{{ salt['cmd.run']('id') }}").unwrap_err();
        assert!(err.message.contains("cmd.run") && err.message.contains("site/web.sls"), "{}", err.message);
        assert!(render_with(vec![], "{{ nope }}").is_err(), "undefined is an error");
    }

    #[test]
    fn imports_and_salt_tags() {
        let files = vec![
            ("site/map.jinja", "{% set conf = {'port': 80} %}{% do conf.update({'os': grains.os}) %}"),
            ("site/defaults.yaml", "port: {{ 8000 + 80 }}\nname: {{ grains.id }}\n"),
        ];
        assert_eq!(
            render_with(files.clone(), "{% from './map.jinja' import conf %}{{ conf.port }} {{ conf.os }}").unwrap(),
            "80 Debian"
        );
        assert_eq!(
            render_with(files.clone(), "{% import_yaml 'site/defaults.yaml' as d %}{{ d.port }} {{ d.name }}").unwrap(),
            "8080 web1"
        );
        assert_eq!(render_with(files, "{% load_yaml as x %}\na: [1, 2]\n{% endload %}{{ x.a|sum }}").unwrap(), "3");
    }
}
