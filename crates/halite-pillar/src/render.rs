//! Salt's `compile_template`: a file's renderer pipe (`#!jinja|yaml` or the configured
//! `renderer`) run over its text, ending in data.

use halite_yaml::Value;

use crate::jinja::{FileContext, JinjaEnv};

/// What a renderer stage hands the next one.
enum Stage {
    Text(String),
    Data(Value),
}

/// Why a file did not render; the message goes to the master's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("Jinja error: {0}")]
    Jinja(String),
    #[error("YAML error: {0}")]
    Yaml(String),
    #[error("JSON error: {0}")]
    Json(String),
    #[error(
        "renderer {0:?} is not available in halite (it renders jinja, yaml, json and gpg without encrypted blocks)"
    )]
    Renderer(String),
    #[error("renderer {0:?} must come first in the pipe: it renders text")]
    Misplaced(String),
    #[error("the file holds a PGP message; halite's pillar renderer does not decrypt")]
    Encrypted,
}

/// The renderer names of the pipe for `text`: its `#!` line (not a `#!/path`), or `default`;
/// Salt's old-style names (`yaml_jinja`) read as the pipe they stand for.
pub fn pipe(text: &str, default: &str) -> Vec<String> {
    let first = text.lines().next().unwrap_or("");
    let spec = match first.strip_prefix("#!") {
        Some(rest) if !rest.starts_with('/') => rest.trim(),
        _ => default,
    };
    let spec = match spec.split_once('_') {
        Some((data, template)) if !spec.contains('|') && ["yaml", "json", "yamlex"].contains(&data) => {
            format!("{template}|{data}")
        }
        _ => spec.to_owned(),
    };
    spec.split('|').map(|p| p.trim().split(' ').next().unwrap_or("").to_owned()).collect()
}

/// Renders `text` through its pipe. Whitespace-only text is `{}`, as in Salt; a YAML or JSON
/// stage reading nothing (or a false value) gives `{}` too.
pub fn compile(text: &str, default_renderer: &str, jinja: &JinjaEnv, file: &FileContext) -> Result<Value, RenderError> {
    if text.trim().is_empty() {
        return Ok(Value::Map(Vec::new()));
    }
    let mut stage = Stage::Text(text.to_owned());
    for name in pipe(text, default_renderer) {
        stage = match (name.as_str(), stage) {
            ("jinja", Stage::Text(t)) => {
                Stage::Text(jinja.render(&t, file).map_err(|e| RenderError::Jinja(e.message))?)
            }
            ("yaml", Stage::Text(t)) => Stage::Data(falsy_to_empty(
                halite_yaml::load_sls(&t).map_err(|e| RenderError::Yaml(format!("{e} (in {})", file.rel)))?,
            )),
            ("json", Stage::Text(t)) => {
                let body = if t.starts_with("#!") { t.split_once('\n').map_or("", |(_, b)| b) } else { &t };
                if body.trim().is_empty() {
                    Stage::Data(Value::Map(Vec::new()))
                } else {
                    let v = crate::jinja::filters::load_json(body)
                        .and_then(|v| crate::jinja::value::to_value(&v))
                        .map_err(|e| RenderError::Json(format!("{e} (in {})", file.rel)))?;
                    Stage::Data(v)
                }
            }
            ("gpg", Stage::Text(t)) => {
                if t.contains("-----BEGIN PGP MESSAGE-----") {
                    return Err(RenderError::Encrypted);
                }
                Stage::Text(t)
            }
            ("gpg", Stage::Data(d)) => {
                if halite_yaml::py::repr(&d).contains("-----BEGIN PGP MESSAGE-----") {
                    return Err(RenderError::Encrypted);
                }
                Stage::Data(d)
            }
            ("jinja" | "yaml" | "json", Stage::Data(_)) => return Err(RenderError::Misplaced(name)),
            _ => return Err(RenderError::Renderer(name)),
        };
    }
    Ok(match stage {
        Stage::Data(d) => d,
        // A pipe that never parsed (`#!jinja` alone) leaves text, which Salt's pillar then
        // refuses as "does not render to a dictionary".
        Stage::Text(t) => Value::from(t),
    })
}

fn falsy_to_empty(v: Value) -> Value {
    if halite_yaml::py::truthy(&v) {
        v
    } else {
        Value::Map(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes() {
        assert_eq!(pipe("a: 1", "jinja|yaml"), ["jinja", "yaml"]);
        assert_eq!(pipe("#!yaml\na: 1", "jinja|yaml"), ["yaml"]);
        assert_eq!(pipe("#!jinja | json\n{}", "jinja|yaml"), ["jinja", "json"]);
        assert_eq!(pipe("#!/usr/bin/env x\na: 1", "yaml"), ["yaml"]);
        assert_eq!(pipe("a", "yaml_jinja"), ["jinja", "yaml"]);
    }
}
