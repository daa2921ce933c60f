//! Reading config files the way `salt.config.master_config` does: the main file, then
//! `default_include` (`master.d/*.conf`), then `include`, each included file's own `include`
//! followed recursively.

use std::path::{Path, PathBuf};

use halite_yaml::{py, Value};

use crate::error::{ConfigError, Origin, Warning};
use crate::layer::{truthy, Layer};
use crate::pypath;

pub(crate) struct Reader<'a> {
    pub home: Option<String>,
    pub warnings: &'a mut Vec<Warning>,
    /// Every file read, in order.
    pub files: Vec<PathBuf>,
    /// Files being read right now, outermost first; an include of one of them is a loop.
    reading: Vec<PathBuf>,
}

impl<'a> Reader<'a> {
    pub fn new(home: Option<String>, warnings: &'a mut Vec<Warning>) -> Reader<'a> {
        Reader { home, warnings, files: Vec::new(), reading: Vec::new() }
    }

    /// `load_config` + the include handling of `master_config`: the options of `main` (none
    /// if it does not exist) updated by its `default_include`, then by its `include`.
    pub fn read_master(&mut self, main: &str, default_include: &Value) -> Result<Layer, ConfigError> {
        let mut overrides = if Path::new(main).is_file() {
            let mut layer = self.read_file(main)?;
            layer.set("conf_file", Value::from(main), Origin::File(PathBuf::from(main)));
            layer
        } else {
            Layer::default()
        };
        // The main file's own value wins, even when it is null (which then includes nothing).
        let default_include = overrides
            .entry("default_include")
            .map_or_else(|| (default_include.clone(), Origin::SaltDefaults), |e| (e.value.clone(), e.origin.clone()));
        let include = overrides.entry("include").map(|e| (e.value.clone(), e.origin.clone()));

        self.reading.push(PathBuf::from(main));
        let from_default = self.include("default_include", &default_include.0, &default_include.1, main, false)?;
        overrides.update(from_default);
        if let Some((include, origin)) = include {
            let from_include = self.include("include", &include, &origin, main, true)?;
            overrides.update(from_include);
        }
        self.reading.pop();
        Ok(overrides)
    }

    /// `include_config`: the files matched by `patterns` (relative to `including`'s
    /// directory), merged with Salt's `dictupdate` in sorted order.
    fn include(
        &mut self,
        key: &str,
        patterns: &Value,
        origin: &Origin,
        including: &str,
        verbose: bool,
    ) -> Result<Layer, ConfigError> {
        let mut configuration = Layer::default();
        if !truthy(patterns) {
            return Ok(configuration);
        }
        let patterns: Vec<&str> = match patterns {
            Value::String(s) => vec![s.as_str().unwrap_or_default()],
            Value::Array(items) => items
                .iter()
                .map(|item| item.as_str().ok_or_else(|| invalid_include(key, origin)))
                .collect::<Result<_, _>>()?,
            _ => return Err(invalid_include(key, origin)),
        };
        for pattern in patterns {
            let mut path = pypath::expanduser(pattern, self.home.as_deref());
            if !path.starts_with('/') {
                path = pypath::join(pypath::dirname(including), &path);
            }
            let matches = pypath::glob(&path);
            if matches.is_empty() && verbose {
                self.warnings
                    .push(Warning::IncludeMatchedNothing { pattern: path.clone(), file: PathBuf::from(including) });
            }
            for file in matches {
                let path = PathBuf::from(&file);
                if self.reading.contains(&path) {
                    return Err(ConfigError::IncludeCycle { path, chain: self.reading.clone() });
                }
                let mut opts = self.read_file(&file)?;
                // Salt first replaces whole jobs of an earlier file's `schedule` with this
                // file's, and only then merges the rest.
                if let (Some(Value::Map(jobs)), Some(Value::Map(earlier))) =
                    (opts.get("schedule"), configuration.get("schedule"))
                {
                    let mut earlier = earlier.clone();
                    update_map(&mut earlier, jobs.clone());
                    configuration.replace("schedule", Value::Map(earlier));
                }
                if let Some(e) = opts.entry("include").filter(|e| truthy(&e.value)).cloned() {
                    self.reading.push(path);
                    let nested = self.include("include", &e.value, &e.origin, &file, verbose)?;
                    self.reading.pop();
                    opts.update(nested);
                }
                configuration.merge(opts);
            }
        }
        Ok(configuration)
    }

    /// `_read_conf_file`: a YAML mapping (an empty or false-y document is no options).
    fn read_file(&mut self, file: &str) -> Result<Layer, ConfigError> {
        let path = PathBuf::from(file);
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
        let value = halite_yaml::load(&text).map_err(|source| ConfigError::Yaml { path: path.clone(), source })?;
        self.files.push(path.clone());
        let origin = Origin::File(path.clone());
        let mut layer = match value {
            Value::Map(pairs) => Layer::from_map(pairs, &origin),
            v if !truthy(&v) => Layer::default(),
            v => return Err(ConfigError::NotAMapping { path, found: kind(&v) }),
        };
        // Salt allows numeric minion ids and turns them into strings.
        if let Some(id) = layer.get("id").filter(|v| !v.is_str()).and_then(py::str) {
            layer.set("id", Value::from(id), origin);
        }
        Ok(layer)
    }
}

/// Python's `dict.update` on a loaded mapping.
fn update_map(dest: &mut Vec<(Value, Value)>, upd: Vec<(Value, Value)>) {
    for (key, value) in upd {
        match dest.iter_mut().find(|(k, _)| py::eq(k, &key)) {
            Some((_, existing)) => *existing = value,
            None => dest.push((key, value)),
        }
    }
}

fn invalid_include(key: &str, origin: &Origin) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_owned(),
        origin: origin.clone(),
        problem: "must be a path pattern or a list of path patterns".to_owned(),
    }
}

/// How a value's type reads in messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Nil => "null",
        Value::Boolean(_) => "a boolean",
        Value::Integer(_) => "an integer",
        Value::F32(_) | Value::F64(_) => "a float",
        Value::String(_) => "a string",
        Value::Binary(_) => "binary data",
        Value::Array(_) => "a list",
        Value::Map(_) => "a mapping",
        Value::Ext(..) => "an extension value",
    }
}
