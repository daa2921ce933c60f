//! The options halite runs on without a config directory (see the crate docs).

use std::path::{Path, PathBuf};

use halite_yaml::Value;

use crate::error::Origin;
use crate::layer::Layer;

pub(crate) fn overrides(cwd: &Path) -> Layer {
    let repo = find_repo(cwd);
    let root = |dir: &str| {
        let key = Value::from("base");
        let dirs = Value::Array(vec![Value::from(repo.join(dir).to_string_lossy().into_owned())]);
        Value::Map(vec![(key, dirs)])
    };
    let mut layer = Layer::default();
    // Relative paths: root_dir prefixing puts them under .halite/, together with every other
    // path Salt re-roots (pidfile, extension_modules, ...), so nothing lands outside it.
    for (key, value) in [
        ("interface", Value::from("127.0.0.1")),
        ("root_dir", Value::from(cwd.join(".halite").to_string_lossy().into_owned())),
        ("pki_dir", Value::from("pki/master")),
        ("cachedir", Value::from("cache")),
        ("sock_dir", Value::from("run")),
        ("log_file", Value::from("master.log")),
        ("file_roots", root("states")),
        ("pillar_roots", root("pillar")),
    ] {
        layer.set(key, value, Origin::Embedded);
    }
    layer
}

/// The nearest directory at or above `cwd` holding `states/`, `pillar/` and `Cargo.toml`.
fn find_repo(cwd: &Path) -> PathBuf {
    cwd.ancestors()
        .find(|dir| dir.join("states").is_dir() && dir.join("pillar").is_dir() && dir.join("Cargo.toml").is_file())
        .unwrap_or(cwd)
        .to_path_buf()
}
