//! Which master configuration a command-line tool reads.

use std::path::{Path, PathBuf};

use halite_config::MasterConfig;

/// Salt's default configuration directory.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/salt";

/// Loads the master configuration a tool run with `-c dir` (or without) should use: the named
/// directory; else `/etc/salt` when it holds a `master` file, as Salt's tools default to; else
/// halite's embedded defaults, the same ones `halite-master` runs on without `-c`, so the tools
/// and a master started from this checkout agree on the pki dir. Warnings go to stderr in
/// Salt's log format.
pub fn load(dir: Option<&Path>) -> anyhow::Result<MasterConfig> {
    let chosen: Option<PathBuf> = match dir {
        Some(dir) => Some(dir.to_owned()),
        None if Path::new(DEFAULT_CONFIG_DIR).join("master").is_file() => Some(PathBuf::from(DEFAULT_CONFIG_DIR)),
        None => None,
    };
    let (config, warnings) = MasterConfig::load(chosen.as_deref())?;
    for warning in warnings {
        eprintln!("[WARNING ] {warning}");
    }
    Ok(config)
}
